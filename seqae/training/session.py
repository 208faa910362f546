"""The run session: what every recipe run needs, around a loop the recipe writes itself.

A recipe keeps its loop and its losses, readable top to bottom; the session does the plumbing
that every run shares and that is easy to get subtly wrong:

- **the run folder** (``output_dir``): created, ``config.yaml`` written, and owned by one run.
  ``run.json`` records the config's fingerprint. A fresh run into a folder that holds another
  run is refused unless ``overwrite=true`` (a run that stopped before it saved anything, say on
  a mistake in its config, is taken over); ``resume=true`` under a config that differs in
  anything that changes the result is refused, naming the keys that differ.
- **a lock**: a second run into a folder in use is refused. The lock is an ``flock`` on
  ``.lock``, which the operating system drops when its process dies, so a killed run never
  leaves a folder locked.
- **checkpoints**: atomic, every N steps and at the end, with the tracked state (early stopping,
  schedules, anything with ``state_dict``) and the training time; resume falls back from a
  damaged newest checkpoint to the newest intact one and says which file was damaged.
- **a wall-clock budget** (``train.max_minutes``), counted over all the run's resumes.
- **parts**: the finished pieces of a multi-part run (sweep points, seeds, stages) are stored
  once and reused when the run resumes (:meth:`RunSession.part`).
- **the end**: ``metrics.json`` and a one-line summary.

    with RunSession(cfg, recipe="vae_digits", ctx=ctx) as run:
        run.track(early_stopping=stopper)
        resumed = run.resume(model=model, optimizer=optimizer)
        step = resumed.step if resumed else 0
        for ...:
            ...                                          # the recipe's own loop
            if run.checkpoint_due(step) or last:
                run.save(step, model=model, optimizer=optimizer, extra={"epoch": epoch})
            if run.out_of_time():
                break
        run.finish(metrics)

Under torchrun every rank builds the session; only rank 0 writes, and a refusal reaches every
rank, so no rank is left waiting in a collective.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from seqae.config import save_config
from seqae.errors import UsageError
from seqae.files import atomic_write_json
from seqae.training.checkpoint import (
    CheckpointCorruptError,
    CheckpointManager,
    CheckpointMismatchError,
    LoadedCheckpoint,
)
from seqae.training.distributed import DistributedContext, barrier
from seqae.training.logging import write_metrics_json

__all__ = ["RunSession", "RunFolderError", "config_fingerprint", "RESULT_NEUTRAL_KEYS"]

RUN_FILE = "run.json"
LOCK_FILE = ".lock"
#: Keys that never change a run's result: they may differ between a run and its resume.
RESULT_NEUTRAL_KEYS = (
    "output_dir",
    "resume",
    "overwrite",
    "device",
    "train.max_minutes",
    "train.progress",
    "train.log_every",
    "train.checkpoint_every",
    "train.compile",
)
#: What ``overwrite=true`` removes: the state that would otherwise be resumed or mixed in.
_RUN_STATE = ("checkpoints", "parts", "model", "metrics.json", RUN_FILE)


class RunFolderError(UsageError):
    """The run folder cannot be used for this run (in use, another run's, a file...)."""


def _flatten(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _neutral(key: str, neutral: Iterable[str]) -> bool:
    return any(key == n or key.startswith(n + ".") for n in neutral)


def config_fingerprint(
    cfg: Mapping[str, Any], *, neutral: Iterable[str] = RESULT_NEUTRAL_KEYS
) -> tuple[str, dict[str, Any]]:
    """A short hash of every config value that can change a run's result, and those values
    flattened to dotted keys (what :class:`RunSession` compares on resume)."""
    neutral = tuple(neutral)
    flat = {k: v for k, v in _flatten(cfg).items() if not _neutral(k, neutral)}
    text = json.dumps(flat, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16], flat


def _describe_differences(old: Mapping[str, Any], new: Mapping[str, Any], limit: int = 6) -> str:
    keys = sorted(set(old) | set(new))
    missing = object()
    diffs = [
        f"{k} {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
        for k in keys
        if old.get(k, missing) != new.get(k, missing)
    ]
    shown = ", ".join(diffs[:limit])
    return shown + (f" and {len(diffs) - limit} more" if len(diffs) > limit else "")


class _FolderLock:
    """An exclusive ``flock`` on ``<run_dir>/.lock``; the OS releases it if the process dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # no flock on this platform: the folder checks still apply
            return
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the run
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunFolderError(
                f"run folder {self.path.parent} is in use by another run ({holder}); wait for it "
                "to finish or choose another output_dir"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        if self._handle is not None:
            with contextlib.suppress(OSError):
                self._handle.seek(0)
                self._handle.truncate()
            self._handle.close()  # closing drops the flock
            self._handle = None


class RunSession:
    """One recipe run in one folder. See the module docstring for what it guarantees.

    Args:
        cfg: The resolved config. Reads ``output_dir``, ``resume``, ``overwrite`` (optional,
            default False), ``train.max_minutes`` and ``train.checkpoint_every`` (both optional).
        recipe: The recipe's name (recorded, and used in messages and ``config.yaml``'s header).
        ctx: The distributed context; a single process when None.
        keep_last: Checkpoints kept on disk.
        neutral: Dotted config keys that do not change the result (may differ on resume).
        verbose: Print what the session decides (resumed, fell back, reused a part).
    """

    def __init__(
        self,
        cfg: Mapping[str, Any],
        *,
        recipe: str,
        ctx: DistributedContext | None = None,
        keep_last: int = 2,
        neutral: Iterable[str] = RESULT_NEUTRAL_KEYS,
        verbose: bool = True,
    ) -> None:
        self.cfg = cfg
        self.recipe = recipe
        self.ctx = ctx or DistributedContext()
        self.dir = Path(cfg["output_dir"])
        self.resuming = bool(cfg.get("resume", False))
        self.overwrite = bool(cfg.get("overwrite", False))
        train = cfg.get("train") if isinstance(cfg.get("train"), Mapping) else {}
        self.max_minutes: float | None = train.get("max_minutes")
        self.checkpoint_every: int | None = train.get("checkpoint_every")
        self._neutral = tuple(neutral)
        self.fingerprint, self._flat = config_fingerprint(cfg, neutral=self._neutral)
        self._finished_parts: frozenset[str] = frozenset()
        self.verbose = verbose and self.ctx.is_main
        self.checkpoints = CheckpointManager(self.dir / "checkpoints", keep_last=keep_last)
        self._tracked: dict[str, Any] = {}
        self._lock = _FolderLock(self.dir / LOCK_FILE)
        self._seconds_before = 0.0
        self._clock = time.perf_counter()
        self._open = False
        self.finished = False

    # -- opening and closing -------------------------------------------------------------------
    def __enter__(self) -> RunSession:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close(failed=exc_type is not None)

    def open(self) -> RunSession:
        """Claim the folder (rank 0) and share the verdict with every rank."""
        error = None
        if self.ctx.is_main:
            try:
                self._claim()
            except RunFolderError as exc:
                error = str(exc)
        if self.ctx.world_size > 1 and dist.is_available() and dist.is_initialized():
            verdict = [error]
            dist.broadcast_object_list(verdict, src=0)
            error = verdict[0]
        if error is not None:
            raise RunFolderError(error)
        # which parts are done is read once, here, so that every rank agrees on what to compute
        # (a rank that looked later could see a part another rank has just finished)
        parts = self.dir / "parts"
        self._finished_parts = (
            frozenset(p.stem for p in parts.glob("*.json") if p.is_file())
            if parts.is_dir()
            else frozenset()
        )
        self._open = True
        self._clock = time.perf_counter()
        return self

    def _claim(self) -> None:
        if self.dir.exists() and not self.dir.is_dir():
            raise RunFolderError(
                f"output_dir {self.dir} is a file; expected a folder (new, or one an earlier "
                f"run of {self.recipe} wrote)"
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunFolderError(f"cannot create output_dir {self.dir}: {exc.strerror}") from None
        self._lock.acquire()
        try:
            self._check_ownership()
            save_config(dict(self.cfg), self.dir / "config.yaml", header=f"seqae run {self.recipe}")
            self._write_record("running")
        except BaseException:
            self._lock.release()
            raise

    def _previous_run(self) -> dict[str, Any] | None:
        """The record of the run that owns the folder: ``run.json``, or for folders written
        before it existed, their ``config.yaml`` when they hold checkpoints."""
        record = self.dir / RUN_FILE
        if record.is_file():
            try:
                data = json.loads(record.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                data = None
            if isinstance(data, dict) and "fingerprint" in data:
                return data
            raise RunFolderError(
                f"{record} is damaged; this folder's run cannot be identified. Choose another "
                "output_dir, or overwrite=true to discard the folder's run"
            )
        if self.checkpoints.checkpoints() or (self.dir / "parts").is_dir():
            from seqae.config import ConfigError, load_config

            try:
                old_cfg = load_config(self.dir / "config.yaml")
            except ConfigError:
                old_cfg = {}
            fingerprint, flat = config_fingerprint(old_cfg, neutral=self._neutral)
            return {"recipe": None, "fingerprint": fingerprint, "config": flat}
        return None

    def _check_ownership(self) -> None:
        previous = self._previous_run()
        if previous is None:
            return
        if self.overwrite:
            self._discard_run_state()
            if self.verbose:
                print(f"{self.recipe}: overwrite=true: discarded the earlier run in {self.dir}")
            return
        if not self.resuming and self._nothing_to_resume(previous):
            # e.g. a run stopped by a mistake in its config before it saved anything: the
            # user fixes the mistake and runs again, without overwrite=true
            self._discard_run_state()
            if self.verbose:
                print(
                    f"{self.recipe}: output_dir {self.dir} held a run that stopped before its "
                    "first checkpoint (nothing to resume); this run takes the folder over"
                )
            return
        if not self.resuming:
            raise RunFolderError(
                f"output_dir {self.dir} already holds a run; resume=true continues it, "
                "overwrite=true discards it, or choose another output_dir"
            )
        if previous.get("recipe") not in (None, self.recipe):
            raise RunFolderError(
                f"resume=true, but output_dir {self.dir} holds a run of recipe "
                f"{previous['recipe']!r}, not {self.recipe!r}; choose another output_dir"
            )
        if previous["fingerprint"] != self.fingerprint:
            raise RunFolderError(
                f"resume=true, but output_dir {self.dir} holds a run with another config "
                f"({_describe_differences(previous.get('config', {}), self._flat)}); resume "
                "with that config, choose another output_dir, or overwrite=true to discard it"
            )

    def _nothing_to_resume(self, previous: Mapping[str, Any]) -> bool:
        """Whether the folder's earlier run left nothing a resume or a user could want: it did
        not finish and wrote no checkpoint, no finished part, no model and no metrics."""
        parts = self.dir / "parts"
        return (
            previous.get("status") != "finished"
            and not self.checkpoints.checkpoints()
            and not (parts.is_dir() and any(p.is_file() for p in parts.glob("*.json")))
            and not (self.dir / "model").exists()
            and not (self.dir / "metrics.json").exists()
        )

    def _discard_run_state(self) -> None:
        """Remove what an earlier run left that could be resumed or mixed into this one."""
        for name in _RUN_STATE:
            target = self.dir / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()

    def _write_record(self, status: str, **more: Any) -> None:
        if not self.ctx.is_main:
            return
        atomic_write_json(
            self.dir / RUN_FILE,
            {
                "recipe": self.recipe,
                "fingerprint": self.fingerprint,
                "status": status,
                "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "config": self._flat,
                **more,
            },
        )

    def close(self, *, failed: bool = False) -> None:
        """Release the folder; a run that did not :meth:`finish` stays resumable."""
        if self._open and self.ctx.is_main and failed and not self.finished:
            with contextlib.suppress(OSError):
                self._write_record("interrupted")
        self._lock.release()
        self._open = False

    # -- state, checkpoints and resume ---------------------------------------------------------
    def track(self, **objects: Any) -> None:
        """Save and restore these objects (anything with ``state_dict`` / ``load_state_dict``:
        early stopping, schedules, a second optimizer) with every checkpoint."""
        for name, obj in objects.items():
            if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
                raise TypeError(f"track({name}=...) needs state_dict and load_state_dict")
            self._tracked[name] = obj

    @property
    def train_seconds(self) -> float:
        """Wall-clock seconds this run has trained, over all its resumes."""
        return self._seconds_before + (time.perf_counter() - self._clock)

    def resume(
        self,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
    ) -> LoadedCheckpoint | None:
        """With ``resume=true``, restore the newest intact checkpoint (and the tracked state);
        None for a fresh run. A damaged newest checkpoint is named and skipped."""
        self._clock = time.perf_counter()
        if not self.resuming:
            return None
        latest = self.checkpoints.latest_path
        if latest is None:
            if self.verbose:
                print(f"{self.recipe}: resume=true but no checkpoint in {self.dir}; starting fresh")
            return None
        try:
            with _warnings_as_notes(self.verbose):
                loaded = self.checkpoints.load_latest(
                    model=model,
                    optimizer=optimizer,
                    scheduler=scheduler,
                    map_location=self.ctx.device,
                    fallback=True,
                )
        except CheckpointCorruptError as exc:
            raise RunFolderError(
                f"cannot resume: {str(exc).splitlines()[0]} (and no older checkpoint is intact); "
                "overwrite=true starts the run again"
            ) from None
        except CheckpointMismatchError as exc:
            raise RunFolderError(f"cannot resume: {str(exc).splitlines()[0]}") from None
        if loaded is None:
            return None
        run = loaded.extra.get("run", {})
        if run and run.get("fingerprint") not in (None, self.fingerprint):
            raise RunFolderError(
                f"cannot resume: checkpoint {loaded.path} belongs to another run (config "
                f"fingerprint {run['fingerprint']}, this config {self.fingerprint})"
            )
        for name, obj in self._tracked.items():
            if name in run.get("tracked", {}):
                obj.load_state_dict(run["tracked"][name])
        self._seconds_before = float(run.get("train_seconds", loaded.extra.get("train_seconds", 0)))
        self._clock = time.perf_counter()
        if self.verbose:
            print(f"{self.recipe}: resumed from {loaded.path.name} (step {loaded.step})")
        return loaded

    def checkpoint_due(self, count: int) -> bool:
        """Whether ``count`` (steps or epochs, as the recipe's ``checkpoint_every`` means)
        falls on the checkpoint cadence."""
        every = self.checkpoint_every
        return bool(every) and count > 0 and count % int(every) == 0

    def save(
        self,
        step: int,
        *,
        model: nn.Module,
        optimizer: torch.optim.Optimizer | None = None,
        scheduler: Any | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> Path:
        """Write a checkpoint (every rank calls it; rank 0 writes) with the tracked state."""
        run_state = {
            "fingerprint": self.fingerprint,
            "train_seconds": self.train_seconds,
            "tracked": {name: obj.state_dict() for name, obj in self._tracked.items()},
        }
        return self.checkpoints.save(
            step,
            model=model,
            optimizer=optimizer,
            scheduler=scheduler,
            extra={**dict(extra or {}), "run": run_state},
        )

    def out_of_time(self) -> bool:
        """Whether ``train.max_minutes`` is spent (the same answer on every rank)."""
        if self.max_minutes is None:
            return False
        spent = self.train_seconds > 60 * float(self.max_minutes)
        if self.ctx.world_size > 1 and dist.is_available() and dist.is_initialized():
            flag = torch.tensor([float(spent)], device=self.ctx.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            spent = bool(flag.item())
        return spent

    # -- multi-part runs -----------------------------------------------------------------------
    def part_dir(self, name: str) -> Path:
        """A folder for a part's files (models, arrays), under ``parts/``."""
        return self.dir / "parts" / name

    def part(
        self, name: str, compute: Callable[[], Mapping[str, Any]], *, main_only: bool = False
    ) -> dict[str, Any]:
        """The result of one part of a multi-part run, computed once.

        ``compute()`` returns a JSON-able summary (and may write files under
        :meth:`part_dir`). The summary is written last, atomically, and marks the part done:
        a resumed run reads it back instead of computing it again. Without ``resume=true`` a
        folder never holds parts, so they are always computed.

        Args:
            name: The part's name (its record is ``parts/<name>.json``).
            compute: Makes the part and returns its summary.
            main_only: Under torchrun, rank 0 alone computes the part (e.g. a warm start every
                rank then loads from :meth:`part_dir`); the other ranks wait for it at a barrier
                and read its record. Every rank must call it. Without it every rank computes.
        """
        if main_only and self.ctx.is_distributed:
            result = self.part(name, compute) if self.ctx.is_main else None
            barrier()
            if result is None:
                marker = self.dir / "parts" / f"{name}.json"
                result = json.loads(marker.read_text(encoding="utf-8"))
            return result
        marker = self.dir / "parts" / f"{name}.json"
        if name in self._finished_parts:
            try:
                result = json.loads(marker.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                result = None
            if isinstance(result, dict):
                if self.verbose:
                    print(f"{self.recipe}: {name}: reused from an earlier session of this run")
                return result
            if self.verbose:
                print(f"{self.recipe}: {name}: its record {marker} is damaged; computing it again")
        result = dict(compute())
        if self.ctx.is_main:
            atomic_write_json(marker, result)
        return result

    # -- the end -------------------------------------------------------------------------------
    def finish(self, metrics: Mapping[str, Any], *, summary: str | None = None) -> dict[str, Any]:
        """Write ``metrics.json`` (rank 0), mark the run finished, print the summary line."""
        metrics = dict(metrics)
        if self.ctx.is_main:
            write_metrics_json(self.dir / "metrics.json", metrics)
            self._write_record("finished", train_seconds=self.train_seconds)
        if self.verbose:
            if summary:
                print(f"{self.recipe}: {summary}")
            print(f"{self.recipe}: wrote {self.dir}/")
        self.finished = True
        return metrics


@contextlib.contextmanager
def _warnings_as_notes(verbose: bool) -> Any:
    """Show the checkpoint manager's fall-back warning as one plain line."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for warning in caught:
        if verbose:
            print(f"note: {str(warning.message).splitlines()[0]}")
