"""The demo's page: one tab per kind of model, built from what a runs folder holds.

    app = build_app("runs")            # a gr.Blocks; the models are found once, here
    launch_app(app, host="127.0.0.1")  # blocks until Ctrl-C (``seqae demo`` does this)

A tab whose kind has no trained model under the runs folder says which ``seqae run`` command
makes one (and a tab whose plugin's extra is missing, which extra to install). A model folder
that cannot be loaded when its tab is built leaves that tab with the one-line reason. Every
tab shares one :class:`~seqae.demo.cache.ModelCache`, so each model folder is loaded once for
all sessions; Gradio's queue runs each session's events in turn (one conversion at a time),
and each session gets its own results.

The server binds to the host it is given (127.0.0.1 unless told otherwise), never opens a share
link, sends no analytics, caps uploads at :data:`~seqae.demo.limits.MAX_UPLOAD_MB` and renders
on the client only (no Node server), so nothing reaches beyond the machine.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from seqae.demo.cache import ModelCache
from seqae.demo.discovery import FoundModel, find_models
from seqae.demo.errors import first_line, input_error_types
from seqae.demo.limits import MAX_UPLOAD_MB
from seqae.extras import missing_modules

__all__ = ["TABS", "TabSpec", "build_app", "launch_app"]

#: Gradio deletes its cached uploads and results older than an hour, every hour.
_CACHE_CLEANUP = (3600, 3600)


@dataclass(frozen=True)
class TabSpec:
    """A tab of the page.

    Attributes:
        title: The tab's label.
        kind: The kind of model it shows (:data:`seqae.demo.discovery.KINDS`).
        what: What such a model is, for the message of an empty tab.
        command: The ``seqae run`` command that trains one, with how long it takes.
        extra: The seqae extra its plugin needs, or None.
        elem_id: The tab's HTML id.
    """

    title: str
    kind: str
    what: str
    command: str
    extra: str | None
    elem_id: str


TABS: tuple[TabSpec, ...] = (
    TabSpec(
        "Voice conversion",
        "vc",
        "voice-conversion model",
        "`seqae run vc` (about an hour on 2 CPU cores; `seqae run vc --config vc_tiny` makes a "
        "tiny, barely trained one in a few minutes, to try the page)",
        "audio",
        "tab-vc",
    ),
    TabSpec(
        "Latent space (VAE)",
        "vae",
        "VAE on the digits",
        "`seqae run vae_digits` (a few minutes on a CPU)",
        None,
        "tab-vae",
    ),
    TabSpec(
        "VQ-VAE codes",
        "vqvae",
        "VQ-VAE on the digits",
        "`seqae run vqvae` (about a minute on a CPU)",
        None,
        "tab-vqvae",
    ),
    TabSpec(
        "Summaries",
        "summarizer",
        "summarizer",
        "`seqae run summary_ae` (about 40 minutes on a CPU), and for the ablation beside it "
        "`seqae run summary_ae --config summary_ae_nodisc`",
        "text",
        "tab-text",
    ),
    TabSpec(
        "Trees",
        "tree",
        "tree parser",
        "`seqae run tree_ae --config tree_ae_pcfg` (about 20 minutes on a CPU) or "
        "`seqae run tree_ae`",
        "tree",
        "tab-tree",
    ),
)


def _builder(
    kind: str, found: dict[str, list[FoundModel]], cache: ModelCache
) -> Callable[[], None]:
    """The ``build()`` of the tab showing ``kind`` (its module imported only now: each needs
    its plugin's extra)."""
    models = found[kind]
    if kind == "vc":
        from seqae.demo.vc import VoiceTab

        return VoiceTab(models, found["vocoder"], cache).build
    if kind == "vae":
        from seqae.demo.latent import LatentTab

        return LatentTab(models, cache).build
    if kind == "vqvae":
        from seqae.demo.codes import CodesTab

        return CodesTab(models, cache).build
    if kind == "summarizer":
        from seqae.demo.text import TextTab

        return TextTab(models, cache).build
    from seqae.demo.tree import TreeTab

    return TreeTab(models, cache).build


def _tab_content(
    spec: TabSpec, found: dict[str, list[FoundModel]], cache: ModelCache, runs: Path
) -> None:
    """The content of one tab: its models' page, or the one line saying why there is none."""
    missing = missing_modules(spec.extra) if spec.extra else ()
    if missing:
        gr.Markdown(
            f"This tab needs seqae's `{spec.extra}` extra ({', '.join(missing)} not "
            f"installed): `pip install 'seqae[{spec.extra}]'`, then start `seqae demo` again."
        )
        return
    if not found[spec.kind]:
        gr.Markdown(
            f"No trained {spec.what} under `{runs}` yet. Train one with {spec.command}, then "
            "start `seqae demo` again.",
            elem_id=f"{spec.elem_id}-empty",
        )
        return
    try:
        _builder(spec.kind, found, cache)()
    except input_error_types() as exc:
        gr.Markdown(f"This tab's model could not be loaded: {first_line(exc)}")


def build_app(
    runs: str | os.PathLike[str],
    *,
    found: dict[str, list[FoundModel]] | None = None,
    cache: ModelCache | None = None,
) -> gr.Blocks:
    """The demo's page for the models under ``runs``.

    Args:
        runs: The runs folder (any ``seqae run`` output below it).
        found: What :func:`~seqae.demo.discovery.find_models` found there (looked for now
            when not given).
        cache: The model cache to share (a new one by default).
    """
    runs = Path(runs)
    cache = cache if cache is not None else ModelCache()
    found = found if found is not None else find_models(runs)
    listed = [f"{spec.title.lower()}: {len(found[spec.kind])}" for spec in TABS]
    with gr.Blocks(title="seqae demo", analytics_enabled=False, delete_cache=_CACHE_CLEANUP) as app:
        gr.Markdown(
            f"# seqae demo\nTrained models under `{runs.resolve()}`: {'; '.join(listed)}. "
            f"Uploads: at most {MAX_UPLOAD_MB} MB per file. Everything runs on this machine."
        )
        with gr.Tabs():
            for spec in TABS:
                with gr.Tab(spec.title, elem_id=spec.elem_id):
                    _tab_content(spec, found, cache, runs)
    return app


def launch_app(app: gr.Blocks, *, host: str = "127.0.0.1", port: int | None = None) -> str:
    """Start serving the page in the background; returns its local URL. ``app.block_thread()``
    then serves until Ctrl-C, ``app.close()`` stops it.

    Args:
        app: The page (:func:`build_app`).
        host: The address to bind; 127.0.0.1 keeps it on this machine.
        port: The port; None takes the first free one from 7860 (Gradio's default).

    Raises:
        OSError: the port is in use (or no port from 7860 on is free).
    """
    kwargs: dict[str, Any] = {
        "server_name": host,
        "server_port": port,
        "share": False,
        "inbrowser": False,
        "max_file_size": f"{MAX_UPLOAD_MB}mb",
        "ssr_mode": False,
        "pwa": False,
        "mcp_server": False,
        "enable_monitoring": False,
        "show_error": False,
        "prevent_thread_lock": True,
        "quiet": True,  # its banner suggests share=True; the command prints the address
    }
    _, local_url, _ = app.queue().launch(**kwargs)
    return local_url
