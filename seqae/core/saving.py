"""The one saved-model format: a folder with ``config.json`` and ``model.safetensors``.

Every model seqae can save (autoencoders, the voice models, the vocoder, the one-hot classifier,
and any plugin's) writes and reads its folder through this module, so one schema holds for all:

    config.json        {"model_type": "autoencoder",      # the registry name that loads it
                        "format_version": 2,
                        "seqae_version": "0.1.0",
                        "config": {...},                  # what the class's from_config takes
                        ...}                              # named extras (e.g. "features")
    model.safetensors  the state_dict, as safetensors (never pickle)

A model class registers itself under the registry kind ``saved_model`` with its ``model_type``;
:func:`load_pretrained` reads ``model_type`` and asks the registry for the class, so any saved
folder loads without knowing what it holds:

    >>> model = seqae.load_pretrained("runs/vae_digits/model")

Folders written before this format (version 1: the autoencoder's flat ``{"model":
"autoencoder", ...}`` and the voice models' ``{"model_type", "config", "features", "format"}``)
are read as they are.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol, Self

import torch
from torch import Tensor, nn

from seqae.files import atomic_write_json, save_safetensors_atomic

__all__ = [
    "CONFIG_NAME",
    "WEIGHTS_NAME",
    "FORMAT_VERSION",
    "SAVED_MODEL_KIND",
    "SavedModelError",
    "SavedModelMissingError",
    "SavedModel",
    "Pretrained",
    "save_model_files",
    "read_model_config",
    "load_weights_strict",
    "tensors_checksum",
    "CHECKSUM_KEY",
    "CONFIG_CHECKSUM_KEY",
    "config_checksum",
    "load_state_dict_strict",
    "load_pretrained",
    "SavedByConfig",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_VERSION = 2
SAVED_MODEL_KIND = "saved_model"
#: safetensors metadata key holding the SHA-256 of the tensors (safetensors has no checksum of
#: its own: a flipped bit would load as a silently different model)
CHECKSUM_KEY = "seqae.sha256"
#: safetensors metadata key holding the SHA-256 of config.json's "config" section: a config
#: changed or damaged after saving no longer matches its weights and is refused
CONFIG_CHECKSUM_KEY = "seqae.config_sha256"
_RESERVED = ("model_type", "format_version", "seqae_version", "config")


class SavedModelError(ValueError):
    """A saved-model folder is missing, damaged, of another kind, or from a newer seqae."""


class SavedModelMissingError(SavedModelError, FileNotFoundError):
    """The folder, or one of its two files, does not exist."""


class Pretrained(Protocol):
    """What the registry's ``saved_model`` entries provide."""

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: Any = "cpu"
    ) -> nn.Module: ...


@dataclass(frozen=True)
class SavedModel:
    """The parsed ``config.json`` of a saved-model folder.

    Attributes:
        directory: The folder.
        model_type: Registry name of the class that loads it.
        config: What that class's ``from_config`` takes.
        extras: Other named entries (``features`` for the voice models, ...).
        format_version: 1 for folders written before the one format, else 2.
    """

    directory: Path
    model_type: str
    config: dict[str, Any]
    extras: dict[str, Any] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def weights_path(self) -> Path:
        return self.directory / WEIGHTS_NAME


def _version() -> str:
    from seqae import __version__

    return __version__


def save_model_files(
    module: nn.Module,
    directory: str | os.PathLike[str],
    *,
    model_type: str,
    config: Mapping[str, Any],
    extras: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``config.json`` and ``model.safetensors`` for ``module`` into ``directory``.

    Each file is written atomically (weights first, so a folder whose ``config.json`` is new
    always has the weights it describes).

    Args:
        module: The model; its ``state_dict`` is saved (tied tensors must be de-duplicated).
        directory: The folder (created when missing).
        model_type: The registry ``saved_model`` name that loads the folder.
        config: JSON-serialisable arguments of the class's ``from_config``.
        extras: Further JSON-serialisable entries; may not use a reserved name.
    """
    extras = dict(extras or {})
    clash = sorted(set(extras) & set(_RESERVED))
    if clash:
        raise ValueError(f"extras may not use the reserved config.json keys {clash}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    document = {
        "model_type": model_type,
        "format_version": FORMAT_VERSION,
        "seqae_version": _version(),
        "config": dict(config),
        **extras,
    }
    try:
        json.dumps(document)
    except TypeError as exc:
        raise TypeError(f"the {model_type} config cannot be written as JSON: {exc}") from exc
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    # each file is fsynced before its rename; one directory sync after the second persists both
    save_safetensors_atomic(
        tensors,
        directory / WEIGHTS_NAME,
        metadata={
            CHECKSUM_KEY: tensors_checksum(tensors),
            CONFIG_CHECKSUM_KEY: config_checksum(document["config"]),
        },
        sync_dir=False,
    )
    atomic_write_json(directory / CONFIG_NAME, document)
    return directory


def _from_legacy(document: dict[str, Any], directory: Path) -> SavedModel:
    """Version-1 folders: the autoencoder's flat config, the voice models' nested one."""
    if document.get("model") == "autoencoder":
        config = {k: v for k, v in document.items() if k not in ("model", "format_version")}
        return SavedModel(directory, "autoencoder", config, {}, 1)
    if "model_type" in document and "config" in document and "format" in document:
        extras = {k: v for k, v in document.items() if k not in ("model_type", "config", "format")}
        return SavedModel(directory, document["model_type"], dict(document["config"]), extras, 1)
    raise SavedModelError(
        f"{directory / CONFIG_NAME} is not a seqae saved-model config (no 'model_type'); "
        "a saved model is a folder written by save_pretrained"
    )


def read_model_config(
    directory: str | os.PathLike[str], *, expected: Collection[str] | None = None
) -> SavedModel:
    """Read and check a saved-model folder's ``config.json`` (the weights are not read).

    Args:
        directory: The folder.
        expected: ``model_type`` values the caller can use; another is refused, naming both.

    Raises:
        SavedModelError: The folder or one of its two files is missing, ``config.json`` is not
            valid JSON or not a seqae config, it comes from a newer seqae, or its
            ``model_type`` is not one of ``expected``.
    """
    directory = Path(directory)
    if not directory.is_dir():
        what = "is a file" if directory.exists() else "does not exist"
        raise SavedModelMissingError(
            f"model folder {directory} {what}; expected a folder with {CONFIG_NAME} and "
            f"{WEIGHTS_NAME} (as save_pretrained writes)"
        )
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (directory / name).is_file():
            raise SavedModelMissingError(
                f"{directory / name} not found: a saved seqae model folder holds {CONFIG_NAME} "
                f"and {WEIGHTS_NAME}"
            )
    path = directory / CONFIG_NAME
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SavedModelError(f"{path} is not valid JSON ({exc}); the file is corrupt") from None
    if not isinstance(document, dict):
        raise SavedModelError(f"{path} must hold a JSON object, got {type(document).__name__}")
    if "format_version" in document and "model_type" in document:
        version = document["format_version"]
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise SavedModelError(
                f"{directory} was saved by a newer seqae (format {version}, this one reads up to "
                f"{FORMAT_VERSION}); upgrade seqae to load it"
            )
        if not isinstance(document.get("config"), dict):
            raise SavedModelError(f"{path} has no 'config' object")
        extras = {k: v for k, v in document.items() if k not in _RESERVED}
        saved = SavedModel(directory, str(document["model_type"]), document["config"], extras)
    else:
        saved = _from_legacy(document, directory)
    if expected is not None and saved.model_type not in expected:
        raise SavedModelError(
            f"{directory} holds a {saved.model_type!r} model; expected "
            f"{' or '.join(repr(e) for e in expected)}"
        )
    recorded = _recorded_metadata(saved.weights_path).get(CONFIG_CHECKSUM_KEY)
    if recorded is not None and recorded != config_checksum(saved.config):
        raise SavedModelError(
            f"{path} does not match the weights saved with it (its config was changed or "
            "damaged after saving); save the model again from its source"
        )
    return saved


def config_checksum(config: Mapping[str, Any]) -> str:
    """SHA-256 of a config in canonical JSON (sorted keys)."""
    text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _recorded_metadata(weights_path: Path) -> dict[str, str]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(weights_path), framework="pt") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise SavedModelError(
            f"{weights_path} is not a readable safetensors file ({exc}); the file is corrupt or "
            "truncated"
        ) from None


def tensors_checksum(tensors: Mapping[str, Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def load_weights_strict(
    model: nn.Module, weights_path: str | os.PathLike[str], *, map_location: Any = "cpu"
) -> None:
    """Load a safetensors weights file into ``model`` with :func:`load_state_dict_strict`.

    Raises:
        ValueError: the file is not readable safetensors (corrupt or truncated), or its tensors
            do not match the model (each missing, unexpected or mis-shaped one is named).
    """
    from safetensors import SafetensorError, safe_open

    try:  # one open of the file: its tensors and the checksum written with them
        with safe_open(str(weights_path), framework="pt", device="cpu") as handle:
            recorded = (handle.metadata() or {}).get(CHECKSUM_KEY)
            state = {name: handle.get_tensor(name) for name in handle.keys()}  # noqa: SIM118 (safe_open is not a dict)
    except (SafetensorError, OSError, ValueError) as exc:
        raise SavedModelError(
            f"{weights_path} is not a readable safetensors file ({exc}); the file is corrupt or "
            "truncated"
        ) from exc
    if recorded is not None and recorded != tensors_checksum(state):
        raise SavedModelError(
            f"{weights_path} is damaged: its tensors do not match the checksum written with them"
        )
    state = {k: v.to(map_location) for k, v in state.items()}
    load_state_dict_strict(model, state, source=str(weights_path))


def load_state_dict_strict(model: nn.Module, state: Mapping[str, Tensor], *, source: str) -> None:
    """Load ``state`` into ``model``, naming every missing, unexpected or mis-shaped tensor, and
    refusing weights that hold NaN or infinite values."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    mis_shaped = sorted(
        f"{k}: saved {tuple(state[k].shape)}, model {tuple(own[k].shape)}"
        for k in set(own) & set(state)
        if state[k].shape != own[k].shape
    )
    if missing or unexpected or mis_shaped:
        parts = []
        for title, items in (
            ("missing", missing),
            ("unexpected", unexpected),
            ("wrong shape", mis_shaped),
        ):
            if items:
                shown = ", ".join(items[:8]) + (
                    f", ... ({len(items)} in all)" if len(items) > 8 else ""
                )
                parts.append(f"{title}: {shown}")
        raise SavedModelError(f"{source} holds weights of a different model ({'; '.join(parts)})")
    bad = [
        k
        for k, v in state.items()
        if (v.is_floating_point() or v.is_complex()) and not bool(torch.isfinite(v).all())
    ]
    if bad:
        raise SavedModelError(
            f"{source} holds NaN or infinite weights in {', '.join(sorted(bad)[:5])}"
            f"{' ...' if len(bad) > 5 else ''}; the model diverged or the file is damaged"
        )
    model.load_state_dict(state, strict=True)


def load_pretrained(directory: str | os.PathLike[str], *, map_location: Any = "cpu") -> nn.Module:
    """Load any saved seqae model, whatever its kind, through the registry.

    Raises:
        SavedModelError: The folder is not a loadable seqae model; the message says why.
    """
    from seqae import registry
    from seqae.registry import UnknownComponentError

    saved = read_model_config(directory)
    try:
        cls = registry.get(SAVED_MODEL_KIND, saved.model_type)
    except UnknownComponentError as exc:
        raise SavedModelError(
            f"{saved.directory} holds a {saved.model_type!r} model, which no installed plugin "
            f"loads ({exc})"
        ) from None
    return cls.from_pretrained(saved.directory, map_location=map_location)


class SavedByConfig:
    """``from_config``, ``save_pretrained`` and ``from_pretrained`` in the one format, for an
    ``nn.Module`` whose keyword-only constructor takes its ``config`` property back.

    A model class lists it first (``class MyModel(SavedByConfig, nn.Module)``), defines
    ``model_type`` and ``config``, and registers itself under the registry kinds ``model``
    (``MyModel.from_config``) and ``saved_model`` (``MyModel``)."""

    model_type: ClassVar[str]
    config: Mapping[str, Any]

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None = None, **kwargs: Any) -> Self:
        """Build from ``config`` (or a registry spec ``{"name": ..., **config}``)."""
        options = dict(config or {}, **kwargs)
        options.pop("name", None)  # a registry spec names the model
        return cls(**options)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` into ``directory``, each atomically."""
        assert isinstance(self, nn.Module)
        return save_model_files(self, directory, model_type=self.model_type, config=self.config)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: Any = "cpu"
    ) -> Self:
        """Rebuild a model saved by :meth:`save_pretrained`.

        Raises:
            SavedModelError: The folder is missing, damaged, holds another kind of model, or
                weights that do not fit its config.
        """
        saved = read_model_config(directory, expected=(cls.model_type,))
        try:
            model = cls.from_config(saved.config)
        except (TypeError, ValueError) as exc:
            raise SavedModelError(
                f"{saved.directory / CONFIG_NAME}: cannot build a {cls.model_type} from it: {exc}"
            ) from None
        assert isinstance(model, nn.Module)
        load_weights_strict(model, saved.weights_path, map_location=map_location)
        return model.to(map_location)
