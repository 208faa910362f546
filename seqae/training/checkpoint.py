"""Atomic file writes and resumable training checkpoints.

Atomic writes live in :mod:`seqae.files` (re-exported here for existing imports).

:class:`CheckpointManager` keeps ``step_{N:08d}.pt`` files plus a ``latest`` pointer in one
folder and resumes a run exactly: model, optimizer, scheduler, every RNG stream and any
``extra`` state (epoch, early stopping, best metric). Checkpoints are read with
``torch.load(weights_only=True)`` only, so opening one can never run code.

    ckpt = CheckpointManager(run_dir / "checkpoints", keep_last=2)
    resumed = ckpt.load_latest(model=model, optimizer=opt, scheduler=sched)
    step = resumed.step if resumed else 0
    ...
    ckpt.save(step, model=model, optimizer=opt, scheduler=sched, extra={"epoch": epoch})
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from seqae.files import (
    TMP_PREFIX,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    save_safetensors_atomic,
)
from seqae.training.distributed import unwrap
from seqae.training.runtime import capture_rng_state, restore_rng_state

__all__ = [
    "atomic_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "save_safetensors_atomic",
    "model_fingerprint",
    "CheckpointManager",
    "LoadedCheckpoint",
    "CheckpointError",
    "CheckpointCorruptError",
    "CheckpointMismatchError",
    "CHECKPOINT_FORMAT",
]

CHECKPOINT_FORMAT = "seqae.checkpoint/2"
# Version 2 wraps the serialised state with its SHA-256: torch.load does not check the zip's
# CRCs, so a flipped bit in a version-1 file loads as silently different weights.
_SEALED_FORMAT = "seqae.checkpoint/2"
_STEP_RE = re.compile(r"^step_(\d+)\.pt$")


# -- errors ------------------------------------------------------------------------------------


class CheckpointError(RuntimeError):
    """A checkpoint could not be written or loaded."""


class CheckpointCorruptError(CheckpointError):
    """A checkpoint file is truncated, corrupt, not a seqae checkpoint, or holds objects that
    ``weights_only`` loading refuses to unpickle.

    Attributes:
        path: The offending file.
        fallback: An older checkpoint in the same folder that loads, if one was found.
    """

    def __init__(self, message: str, *, path: Path, fallback: Path | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.fallback = fallback


class CheckpointMismatchError(CheckpointError):
    """A checkpoint was written by a model with different parameters (names or shapes).

    Attributes:
        missing: Keys the model has but the checkpoint lacks.
        unexpected: Keys the checkpoint has but the model lacks.
        shape_mismatches: ``{key: (checkpoint_shape, model_shape)}``.
    """

    def __init__(
        self,
        message: str,
        *,
        missing: list[str],
        unexpected: list[str],
        shape_mismatches: dict[str, tuple[tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.shape_mismatches = shape_mismatches


# -- fingerprints and payload checks -----------------------------------------------------------


def model_fingerprint(model_or_state: nn.Module | Mapping[str, Tensor]) -> str:
    """A short hash of a model's state_dict keys and shapes (not values, not dtypes).

    Two models with the same architecture have the same fingerprint; DDP and ``torch.compile``
    wrappers are looked through.
    """
    state = (
        unwrap(model_or_state).state_dict()
        if isinstance(model_or_state, nn.Module)
        else model_or_state
    )
    digest = hashlib.sha256()
    for key in sorted(state):
        value = state[key]
        shape = tuple(value.shape) if isinstance(value, Tensor) else ()
        digest.update(f"{key}:{shape};".encode())
    return digest.hexdigest()[:16]


# Exact types: NumPy scalars subclass float and IntEnums subclass int, yet weights_only
# loading refuses both, as it refuses tuple subclasses such as named tuples.
_SAFE_SCALARS = (type(None), bool, int, float, str, bytes, complex, torch.Size)
_SAFE_DICTS = (dict, OrderedDict)
_SAFE_SEQUENCES = (list, tuple, set)


def _check_weights_only_safe(obj: Any, where: str) -> None:
    """Reject values that ``torch.load(weights_only=True)`` would refuse, before writing."""
    kind = type(obj)
    if kind in _SAFE_SCALARS or isinstance(obj, Tensor | torch.dtype | torch.device):
        return
    if kind in _SAFE_DICTS:
        for key, value in obj.items():
            _check_weights_only_safe(key, f"{where} key {key!r}")
            _check_weights_only_safe(value, f"{where}[{key!r}]")
        return
    if kind in _SAFE_SEQUENCES:
        for index, value in enumerate(obj):
            _check_weights_only_safe(value, f"{where}[{index}]")
        return
    raise TypeError(
        f"{where} is a {kind.__module__}.{kind.__qualname__}, which "
        "torch.load(weights_only=True) cannot read back; store plain numbers, strings, "
        "tensors, lists and dicts (e.g. float(x) for a NumPy scalar, obj.state_dict() for an "
        "object)"
    )


def _shape_diff(
    checkpoint_state: Mapping[str, Any], model_state: Mapping[str, Tensor]
) -> tuple[list[str], list[str], dict[str, tuple[tuple[int, ...], tuple[int, ...]]]]:
    missing = sorted(set(model_state) - set(checkpoint_state))
    unexpected = sorted(set(checkpoint_state) - set(model_state))
    shapes = {}
    for key in sorted(set(model_state) & set(checkpoint_state)):
        a, b = checkpoint_state[key], model_state[key]
        if isinstance(a, Tensor) and isinstance(b, Tensor) and a.shape != b.shape:
            shapes[key] = (tuple(a.shape), tuple(b.shape))
    return missing, unexpected, shapes


def _list_some(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


# -- sealing: a checksum around the serialised state -----------------------------------------


def _seal(payload: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    blob = buffer.getvalue()
    return {
        "format": _SEALED_FORMAT,
        "sha256": hashlib.sha256(blob).hexdigest(),
        "payload": torch.frombuffer(bytearray(blob), dtype=torch.uint8),
    }


def _unseal(sealed: dict[str, Any], path: Path, *, map_location: Any) -> Any:
    blob = sealed.get("payload")
    if not isinstance(blob, Tensor) or blob.dtype != torch.uint8:
        raise CheckpointCorruptError(f"checkpoint {path} is damaged (no sealed payload)", path=path)
    data = blob.numpy().tobytes()
    if hashlib.sha256(data).hexdigest() != sealed.get("sha256"):
        raise CheckpointCorruptError(
            f"checkpoint {path} is damaged: its contents do not match their checksum", path=path
        )
    return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)


# -- manager -----------------------------------------------------------------------------------


@dataclass
class LoadedCheckpoint:
    """What :meth:`CheckpointManager.load_latest` restored.

    Attributes:
        step: The step passed to :meth:`CheckpointManager.save`.
        extra: The ``extra`` dict passed to ``save`` (``{}`` when none).
        path: The file that was loaded.
    """

    step: int
    extra: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _gather_rng_states() -> list[dict[str, Any]]:
    """Every rank's RNG snapshot, in rank order (a collective under DDP)."""
    state = capture_rng_state()
    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return [state]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return gathered


def _rank_and_world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class CheckpointManager:
    """Rolling, atomic, resumable checkpoints in one folder.

    Files: ``<directory>/step_{N:08d}.pt`` and ``<directory>/latest`` (a text file holding the
    newest checkpoint's file name). Each checkpoint is a dict of plain data:
    ``format``, ``step``, ``model`` (the unwrapped model's state_dict), ``model_fingerprint``,
    ``optimizer``, ``scheduler``, ``rng`` (one :func:`capture_rng_state` snapshot per rank),
    ``world_size`` and ``extra``.

    Under torchrun, call :meth:`save` on *every* rank: it gathers each rank's RNG state, rank 0
    writes, and all ranks wait at a barrier so nobody reads a checkpoint before it exists.
    :meth:`load_latest` is called on every rank and each rank restores its own RNG stream.

    Corrupt files: :meth:`load_latest` raises :class:`CheckpointCorruptError` naming the file
    and, if an older checkpoint in the folder loads, naming that one too. It does not silently
    fall back (that would quietly discard training); pass ``fallback=True`` to load the newest
    intact checkpoint instead, with a warning.

    Args:
        directory: Folder for the checkpoints, typically ``run_dir / "checkpoints"``.
        keep_last: How many checkpoints to keep; older ones are deleted after each save. The
            one just written is never deleted.
        enabled: Whether this process writes; defaults to "rank 0 of the job".
    """

    def __init__(
        self, directory: str | os.PathLike[str], *, keep_last: int = 2, enabled: bool | None = None
    ) -> None:
        if keep_last < 1:
            raise ValueError(f"keep_last must be >= 1, got {keep_last}")
        self.directory = Path(directory)
        self.keep_last = int(keep_last)
        self._enabled = enabled

    @property
    def enabled(self) -> bool:
        return _rank_and_world()[0] == 0 if self._enabled is None else self._enabled

    # -- paths --
    def path_for(self, step: int) -> Path:
        """File name a checkpoint of ``step`` gets."""
        return self.directory / f"step_{int(step):08d}.pt"

    def checkpoints(self) -> list[Path]:
        """Existing checkpoint files, oldest first (by step)."""
        if not self.directory.is_dir():
            return []
        found = []
        for entry in self.directory.iterdir():
            match = _STEP_RE.match(entry.name)
            if match and entry.is_file():
                found.append((int(match.group(1)), entry))
        return [p for _, p in sorted(found)]

    @property
    def latest_path(self) -> Path | None:
        """The checkpoint the ``latest`` pointer names (or, without a valid pointer, the
        highest-step file); None when there is none."""
        pointer = self.directory / "latest"
        if pointer.is_file():
            try:
                name = pointer.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):  # a damaged pointer: use the file names
                name = ""
            candidate = self.directory / name
            if _STEP_RE.match(name) and candidate.is_file():
                return candidate
        existing = self.checkpoints()
        return existing[-1] if existing else None

    # -- save --
    def save(
        self,
        step: int,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write ``step_{step:08d}.pt`` atomically, point ``latest`` at it, prune old ones.

        Args:
            step: Optimisation steps completed.
            model: The model (DDP / compiled wrappers are unwrapped).
            optimizer: Optional optimizer whose state is saved.
            scheduler: Optional LR scheduler (anything with ``state_dict``).
            extra: Plain data to restore with the run: epoch, batches consumed in the epoch,
                ``EarlyStopping.state_dict()``, best metric... Checked before writing: an
                object that ``weights_only`` loading cannot read raises ``TypeError``.

        Returns:
            The checkpoint path (also on ranks that do not write).
        """
        extra_dict = dict(extra or {})
        _check_weights_only_safe(extra_dict, "extra")
        rng = _gather_rng_states()  # collective: every rank must reach this line
        path = self.path_for(step)
        if self.enabled:
            bare = unwrap(model)
            model_state = bare.state_dict()
            payload = {
                "format": CHECKPOINT_FORMAT,
                "step": int(step),
                "model": model_state,
                "model_fingerprint": model_fingerprint(model_state),
                "optimizer": optimizer.state_dict() if optimizer is not None else None,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "rng": rng,
                "world_size": len(rng),
                "extra": extra_dict,
            }
            atomic_save(_seal(payload), path)
            atomic_write_text(self.directory / "latest", path.name + "\n")
            self._prune(keep=path)
        if _rank_and_world()[1] > 1:
            dist.barrier()
        return path

    def _prune(self, *, keep: Path) -> None:
        existing = self.checkpoints()
        newest = existing[-self.keep_last :]
        for old in existing:
            if old not in newest and old != keep:
                with contextlib.suppress(FileNotFoundError):
                    old.unlink()
        for leftover in self.directory.glob(f"{TMP_PREFIX}*"):  # from crashed writes
            with contextlib.suppress(OSError):
                leftover.unlink()

    # -- load --
    @staticmethod
    def read(path: str | os.PathLike[str], *, map_location: Any = "cpu") -> dict[str, Any]:
        """Read a checkpoint file with ``weights_only=True`` and check that it is a seqae
        checkpoint. Raises :class:`CheckpointCorruptError` naming the file otherwise."""
        path = Path(path)
        try:
            payload = torch.load(path, map_location=map_location, weights_only=True)
        except FileNotFoundError:
            raise
        except pickle.UnpicklingError as exc:
            if "weights only" in str(exc).lower() or "weights_only" in str(exc).lower():
                raise CheckpointCorruptError(
                    f"checkpoint {path} contains objects other than tensors and plain "
                    "containers; seqae loads checkpoints with torch.load(weights_only=True) "
                    f"and refuses to unpickle them. Details: {str(exc).splitlines()[0]}",
                    path=path,
                ) from exc
            raise CheckpointCorruptError(
                f"checkpoint {path} is corrupt or truncated and cannot be read ({exc})", path=path
            ) from exc
        except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
            raise CheckpointCorruptError(
                f"checkpoint {path} is corrupt or truncated and cannot be read "
                f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                path=path,
            ) from exc
        if isinstance(payload, dict) and payload.get("format") == _SEALED_FORMAT:
            payload = _unseal(payload, path, map_location=map_location)
        if not isinstance(payload, dict) or not str(payload.get("format", "")).startswith(
            "seqae.checkpoint/"
        ):
            raise CheckpointCorruptError(
                f"{path} is not a seqae checkpoint (no 'format' field); it was not written by "
                "CheckpointManager.save",
                path=path,
            )
        return payload

    def load_latest(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        map_location: Any = "cpu",
        restore_rng: bool = True,
        fallback: bool = False,
    ) -> LoadedCheckpoint | None:
        """Restore the newest checkpoint into the given objects; None when there is none.

        Args:
            model: Model to load into (DDP-wrapped or not).
            optimizer: Optimizer to restore, if the run has one.
            scheduler: Scheduler to restore.
            map_location: Where tensors are loaded before being copied into the model
                (``"cpu"`` is safe; the optimizer moves its state to the parameters' device).
            restore_rng: Also restore this rank's Python/NumPy/torch/CUDA RNG streams.
            fallback: When the newest checkpoint is corrupt, load the newest intact older
                one (with a warning) instead of raising.

        Raises:
            CheckpointCorruptError: The newest checkpoint cannot be read (and ``fallback`` is
                False or no older checkpoint is intact).
            CheckpointMismatchError: The checkpoint belongs to a different model.
        """
        latest = self.latest_path
        if latest is None:
            return None
        try:
            payload = self.read(latest, map_location=map_location)
        except CheckpointCorruptError as exc:
            older = self._newest_intact(before=latest, map_location=map_location)
            if older is None:
                raise
            if not fallback:
                raise CheckpointCorruptError(
                    f"{exc} An older intact checkpoint exists: {older[0]}. Pass "
                    "fallback=True to load_latest to resume from it, or delete the corrupt "
                    "file.",
                    path=latest,
                    fallback=older[0],
                ) from exc
            warnings.warn(f"{exc} Falling back to {older[0]}.", stacklevel=2)
            latest, payload = older
        return self._restore(
            payload,
            latest,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            restore_rng=restore_rng,
        )

    def load(
        self,
        path: str | os.PathLike[str],
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        map_location: Any = "cpu",
        restore_rng: bool = True,
    ) -> LoadedCheckpoint:
        """Like :meth:`load_latest` for an explicit checkpoint file."""
        path = Path(path)
        payload = self.read(path, map_location=map_location)
        return self._restore(
            payload,
            path,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            restore_rng=restore_rng,
        )

    def _newest_intact(
        self, *, before: Path, map_location: Any
    ) -> tuple[Path, dict[str, Any]] | None:
        for candidate in reversed(self.checkpoints()):
            if candidate == before:
                continue
            try:
                return candidate, self.read(candidate, map_location=map_location)
            except CheckpointCorruptError:
                continue
        return None

    @staticmethod
    def _restore(
        payload: dict[str, Any],
        path: Path,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None,
        scheduler: Any | None,
        restore_rng: bool,
    ) -> LoadedCheckpoint:
        bare = unwrap(model)
        model_state = bare.state_dict()
        saved_state = payload["model"]
        if payload.get("model_fingerprint") != model_fingerprint(model_state) or set(
            saved_state
        ) != set(model_state):
            missing, unexpected, shapes = _shape_diff(saved_state, model_state)
            parts = []
            if missing:
                parts.append(f"missing from the checkpoint: {_list_some(missing)}")
            if unexpected:
                parts.append(f"not in the model: {_list_some(unexpected)}")
            if shapes:
                parts.append(
                    "shape differs (checkpoint vs model): "
                    + _list_some([f"{k} {a} vs {b}" for k, (a, b) in shapes.items()])
                )
            if parts:  # an identical key/shape set with another fingerprint loads fine
                raise CheckpointMismatchError(
                    f"checkpoint {path} was written by a different model; "
                    + "; ".join(parts)
                    + ". Resume with the config that wrote it, or start a fresh run directory.",
                    missing=missing,
                    unexpected=unexpected,
                    shape_mismatches=shapes,
                )
        bare.load_state_dict(saved_state, strict=True)
        if optimizer is not None:
            if payload.get("optimizer") is None:
                raise CheckpointError(f"checkpoint {path} has no optimizer state to restore")
            optimizer.load_state_dict(payload["optimizer"])
        if scheduler is not None:
            if payload.get("scheduler") is None:
                raise CheckpointError(f"checkpoint {path} has no scheduler state to restore")
            scheduler.load_state_dict(payload["scheduler"])
        if restore_rng and payload.get("rng"):
            states = payload["rng"]
            rank, world = _rank_and_world()
            if len(states) != world:
                warnings.warn(
                    f"checkpoint {path} was written by {len(states)} process(es) but this run "
                    f"has {world}; RNG streams are restored from rank {rank % len(states)}",
                    stacklevel=3,
                )
            restore_rng_state(states[rank % len(states)])
        return LoadedCheckpoint(step=int(payload["step"]), extra=dict(payload["extra"]), path=path)
