"""``seqae demo``: serve the web demo for the trained models under a runs folder.

    seqae demo                          # runs/ in the current folder, http://127.0.0.1:7860
    seqae demo --runs /data/runs --port 8080
    seqae demo --host 0.0.0.0           # reachable from other machines (it says so)
    seqae demo --threads 2              # torch CPU threads (default 1)

The page (:mod:`seqae.demo.app`) has one tab per kind of model; a kind with no trained model
says which ``seqae run`` command makes one. Without gradio (the ``demo`` extra) the command says
how to install it; a runs folder that does not exist, a port in use or a host that cannot be
bound is one line ``seqae: error: ...`` and exit status 2. Ctrl-C stops the server.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from seqae.cli import int_at_least
from seqae.errors import UsageError
from seqae.extras import MissingExtraError, require_extra

__all__ = ["DEFAULT_THREADS", "LOOPBACK_HOSTS", "MAX_PORT", "add_parser"]

#: Hosts that keep the server on this machine.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
#: The highest TCP port.
MAX_PORT = 65535
#: torch's CPU threads per conversion by default: one keeps a 5 s conversion near 0.1 s even
#: when other jobs share the cores, where two threads waiting on each other take seconds
#: (benchmarks/bench_demo_latency.py), and sessions served at once do not fight over cores.
DEFAULT_THREADS = 1


def _cmd_demo(args: argparse.Namespace) -> int:
    try:
        require_extra("demo", feature="seqae demo")
    except MissingExtraError as exc:
        raise UsageError(str(exc)) from None
    if args.port is not None and args.port > MAX_PORT:
        raise UsageError(f"--port {args.port}: not a port number; expected 1 to {MAX_PORT}")
    runs = Path(args.runs)
    if not runs.is_dir():
        raise UsageError(
            f"--runs {runs}: no such folder; train a model first (`seqae run vae_digits` writes "
            "runs/vae_digits/) or give the folder your runs are in"
        )
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before gradio is imported
    import torch

    torch.set_num_threads(args.threads)
    from seqae.demo.app import TABS, build_app, launch_app
    from seqae.demo.discovery import find_models

    found = find_models(runs)
    for spec in TABS:
        names = (
            ", ".join(m.name for m in found[spec.kind]) or "none (the tab says how to train one)"
        )
        print(f"{spec.title}: {names}")
    app = build_app(runs, found=found)
    try:
        url = launch_app(app, host=args.host, port=args.port)
    except OSError as exc:
        where = f"{args.host}:{args.port}" if args.port else f"{args.host} (ports from 7860)"
        message = next((line for line in str(exc).splitlines() if line.strip()), repr(exc))
        raise UsageError(
            f"cannot serve on {where}: {message}; give another --port or --host"
        ) from None
    print(f"seqae demo: serving {url} (Ctrl-C stops it)", flush=True)
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"seqae demo: note: bound to {args.host}, so other machines that can reach this one "
            "can use the page",
            file=sys.stderr,
        )
    try:
        app.block_thread()
    finally:
        app.close()
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae demo`` to an argparse subparsers object.

    The ``cli`` component of the registry: the parser's ``func`` default takes the parsed
    arguments and returns the exit status (0 after Ctrl-C; bad input raises
    :class:`~seqae.errors.UsageError`, which ``seqae`` reports in one line with exit status 2).

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "demo",
        help="a local web app for the trained models under a runs folder (needs seqae[demo])",
        description=(
            "Serve a Gradio web app, offline, with one tab per kind of trained model found "
            "under --runs: voice conversion, a VAE's latent space, a VQ-VAE's codes, summaries, "
            "parsed trees. Binds to 127.0.0.1 unless --host says otherwise; never opens a "
            "public share link."
        ),
    )
    parser.add_argument(
        "--runs", default="runs", metavar="DIR", help="the runs folder (default: runs)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine)"
    )
    parser.add_argument(
        "--port",
        type=int_at_least(1),
        default=None,
        help="port (default: the first free one from 7860)",
    )
    parser.add_argument(
        "--threads",
        type=int_at_least(1),
        default=DEFAULT_THREADS,
        help=f"torch CPU threads per request (default {DEFAULT_THREADS}: steadiest when other "
        "jobs share the cores)",
    )
    parser.set_defaults(func=_cmd_demo)
    return parser
