"""The trained models under a runs folder, by the kind of tab that shows them.

Any ``seqae run`` output works: the folders below ``--runs`` (to :data:`MAX_DEPTH` levels) that
hold a saved model (``config.json`` + ``model.safetensors``, :mod:`seqae.core.saving`) are read
with :func:`~seqae.core.saving.read_model_config` (the weights are not loaded here) and sorted
into kinds by their ``model_type``:

========== ===================================================================================
kind       saved model
========== ===================================================================================
vae        an ``autoencoder`` with a Gaussian bottleneck on the 8x8 digits (``vae_digits``)
vqvae      an ``autoencoder`` with a vector quantizer on the 8x8 digits (``vqvae``)
vc         a voice-conversion model (the registry's ``vc_model`` names: ``seqae run vc``)
vocoder    a trained vocoder (``istft_vocoder``: ``seqae run vocoder``)
summarizer a ``summary_generator`` with its tokenizer beside it (``seqae run summary_ae``)
tree       an ``urnng`` or ``compound_pcfg`` tree parser with its vocabulary (``seqae run tree_ae``)
========== ===================================================================================

Checkpoints, TensorBoard logs, figures, samples, feature caches and speech corpora are not
searched. A folder that is damaged or of another kind is left out (the other recipes' models
have no tab).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from seqae.core.saving import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    SavedModel,
    SavedModelError,
    read_model_config,
)
from seqae.extras import missing_modules

__all__ = [
    "DIGIT_PIXELS",
    "KINDS",
    "MAX_DEPTH",
    "FoundModel",
    "find_models",
    "kind_of",
    "model_folders",
]

#: Every kind of model the demo shows, in the order of its tabs.
KINDS: tuple[str, ...] = ("vc", "vocoder", "vae", "vqvae", "summarizer", "tree")
#: How deep below the runs folder saved models are looked for (``<run>/parts/<part>/model``).
MAX_DEPTH = 4
#: Folders never searched: run by-products and corpora, which can hold many files.
_SKIPPED = {"checkpoints", "tb", "figures", "samples", "cache", "logs", "wav", "txt", "wav48"}
#: Files that mark a speech, text or tree corpus folder (not searched either).
_CORPUS_MARKERS = ("corpus.json", "speakers.json")
#: The digits the latent tabs decode: 8x8 images as 64 values.
DIGIT_PIXELS = 64


@dataclass(frozen=True)
class FoundModel:
    """A saved model found under the runs folder.

    Attributes:
        kind: One of :data:`KINDS`.
        name: Its folder relative to the runs folder, without a final ``/model``
            (``vae_digits``, ``summary_ae_nodisc``, ``vc/parts/x/model`` stays as it is).
        path: The saved-model folder.
        model_type: ``config.json``'s ``model_type``.
        config: ``config.json``'s ``config`` section.
        run_config: The ``config.yaml`` of the run that wrote it (the nearest folder above it,
            within the runs folder, that has one), or an empty dict.
    """

    kind: str
    name: str
    path: Path
    model_type: str
    config: Mapping[str, Any]
    run_config: Mapping[str, Any]

    def run_setting(self, dotted: str, default: Any = None) -> Any:
        """A value of the run's config by dotted key (``"data.corpus"``), or ``default``."""
        node: Any = self.run_config
        for part in dotted.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def run_path(self, dotted: str, *, holding: str | None = None) -> Path | None:
        """A folder the run's config names (``"data.corpus"``), or None when it names none or
        the folder is not there. A relative path is looked for from each folder above the model,
        nearest first (runs name paths from where they ran, usually the runs folder's parent),
        then from the current folder.

        Args:
            dotted: The setting's dotted key.
            holding: A file or folder the folder must hold (``"test.jsonl"``).
        """
        value = self.run_setting(dotted)
        if not isinstance(value, str) or not value:
            return None
        given = Path(value)
        bases = [] if given.is_absolute() else [*self.path.parents, Path.cwd()]
        for candidate in [base / given for base in bases] or [given]:
            if candidate.is_dir() and (holding is None or (candidate / holding).exists()):
                return candidate.resolve()
        return None


def model_folders(root: Path) -> Iterator[Path]:
    """Folders below ``root`` (``root`` included, :data:`MAX_DEPTH` levels down) holding a
    saved model's two files, in sorted order. Links to folders are followed (a runs folder may
    gather runs from elsewhere), each folder once."""
    seen: set[str] = set()
    for current, dirs, files in os.walk(root, followlinks=True):
        real = os.path.realpath(current)
        depth = len(Path(current).relative_to(root).parts)
        if real in seen:
            dirs[:] = []
            continue
        seen.add(real)
        if depth >= MAX_DEPTH or any(marker in files for marker in _CORPUS_MARKERS):
            dirs[:] = []
        else:
            dirs[:] = sorted(d for d in dirs if d not in _SKIPPED and not d.startswith("."))
        if CONFIG_NAME in files and WEIGHTS_NAME in files:
            yield Path(current)


def _is_digits_autoencoder(config: Mapping[str, Any]) -> bool:
    encoder, decoder = config.get("encoder") or {}, config.get("decoder") or {}
    return (
        encoder.get("name") == "mlp"
        and encoder.get("in_dim") == DIGIT_PIXELS
        and decoder.get("out_dim") == DIGIT_PIXELS
    )


def _plugin_types() -> dict[str, tuple[str, ...]]:
    """model_type values of the kinds that come from plugins whose extra is installed."""
    from seqae import registry
    from seqae.tree.parse import MODEL_TYPES as TREE_TYPES

    types: dict[str, tuple[str, ...]] = {"tree": TREE_TYPES}
    if not missing_modules("audio"):
        from seqae.audio.neural_vocoder import VOCODER_TYPE

        types["vc"] = tuple(registry.names("vc_model"))
        types["vocoder"] = (VOCODER_TYPE,)
    if not missing_modules("text"):
        from seqae.text.generator import PointerGenerator
        from seqae.text.policy import SummaryPolicy

        types["summarizer"] = (PointerGenerator.model_type, SummaryPolicy.model_type)
    return types


def _has_companions(saved: SavedModel, kind: str) -> bool:
    """Whether the files a summarizer or tree-parser folder keeps beside the model are there."""
    if kind == "summarizer":
        from seqae.text.tokenizer import MARKER_FILE

        return (saved.directory / MARKER_FILE).is_file()
    if kind == "tree":
        from seqae.tree.parse import SETTINGS_FILE, VOCAB_FILE

        return all((saved.directory / name).is_file() for name in (VOCAB_FILE, SETTINGS_FILE))
    return True


def kind_of(saved: SavedModel) -> str | None:
    """The demo kind of a saved model (one of :data:`KINDS`), or None for models without a tab."""
    if saved.model_type == "autoencoder":
        if not _is_digits_autoencoder(saved.config):
            return None
        bottleneck = (saved.config.get("bottleneck") or {}).get("name")
        return {"gaussian": "vae", "vq": "vqvae"}.get(bottleneck)
    for kind, types in _plugin_types().items():
        if saved.model_type in types:
            return kind if _has_companions(saved, kind) else None
    return None


def _run_config(folder: Path, root: Path) -> dict[str, Any]:
    """The ``config.yaml`` of the nearest folder from ``folder`` up to ``root`` that has one."""
    for candidate in (folder, *folder.parents):
        path = candidate / "config.yaml"
        if path.is_file():
            try:
                loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError):
                return {}
            return loaded if isinstance(loaded, dict) else {}
        if candidate == root:
            break
    return {}


def _name(folder: Path, root: Path) -> str:
    relative = folder.relative_to(root)
    parts = (
        relative.parts[:-1] if relative.parts and relative.parts[-1] == "model" else relative.parts
    )
    return "/".join(parts) or relative.as_posix() or folder.name


def find_models(runs: str | os.PathLike[str]) -> dict[str, list[FoundModel]]:
    """The saved models below ``runs`` by kind: ``{kind: [FoundModel, ...]}`` for every kind
    of :data:`KINDS` (empty lists included), each list sorted by name.

    Args:
        runs: The runs folder (``seqae run`` writes ``runs/<name>/``).
    """
    root = Path(runs).resolve()
    found: dict[str, list[FoundModel]] = {kind: [] for kind in KINDS}
    for folder in model_folders(root):
        try:
            saved = read_model_config(folder)
        except (SavedModelError, OSError):
            continue  # damaged or half-written: a run may be writing it right now
        kind = kind_of(saved)
        if kind is None:
            continue
        found[kind].append(
            FoundModel(
                kind=kind,
                name=_name(folder, root),
                path=folder,
                model_type=saved.model_type,
                config=saved.config,
                run_config=_run_config(folder, root),
            )
        )
    for models in found.values():
        models.sort(key=lambda m: m.name)
    return found
