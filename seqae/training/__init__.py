"""Small, explicit utilities for recipe training loops (no hidden framework loop).

- :mod:`~seqae.training.runtime`: seeding, device choice, bf16 autocast, RNG snapshots,
  non-finite loss checks.
- :mod:`~seqae.training.distributed`: torchrun/DDP setup, sharded resumable loaders, metric
  all-reduce.
- :mod:`~seqae.training.checkpoint`: atomic writes and resumable checkpoints.
- :mod:`~seqae.training.logging`: TensorBoard logger, progress bar, metrics.json.
- :mod:`~seqae.training.early_stopping`: patience-based early stopping.
- :mod:`~seqae.training.session`: the run session every recipe uses (run folder, lock, resume,
  checkpoints, time budget, parts, metrics.json).
"""

from seqae.training.checkpoint import (
    CHECKPOINT_FORMAT,
    CheckpointCorruptError,
    CheckpointError,
    CheckpointManager,
    CheckpointMismatchError,
    LoadedCheckpoint,
    atomic_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    model_fingerprint,
    save_safetensors_atomic,
)
from seqae.training.distributed import (
    BatchLoader,
    DistributedContext,
    ResumableSampler,
    all_reduce_mean,
    barrier,
    batch_fetcher,
    cleanup,
    init_distributed,
    is_main_process,
    make_loader,
    require_single_process,
    set_epoch,
    unwrap,
    wrap_model,
)
from seqae.training.early_stopping import EarlyStopping
from seqae.training.logging import MetricLogger, progress, to_python_number, write_metrics_json
from seqae.training.runtime import (
    PRECISIONS,
    NonFiniteLossError,
    autocast_context,
    capture_rng_state,
    check_finite,
    check_precision,
    cpu_has_native_bf16,
    get_device,
    maybe_compile,
    resolve_precision,
    restore_rng_state,
    seed_everything,
)
from seqae.training.session import (
    RESULT_NEUTRAL_KEYS,
    RunFolderError,
    RunSession,
    config_fingerprint,
)

__all__ = [
    # runtime
    "seed_everything",
    "get_device",
    "autocast_context",
    "PRECISIONS",
    "check_precision",
    "cpu_has_native_bf16",
    "resolve_precision",
    "capture_rng_state",
    "restore_rng_state",
    "check_finite",
    "maybe_compile",
    "NonFiniteLossError",
    # distributed
    "DistributedContext",
    "init_distributed",
    "is_main_process",
    "wrap_model",
    "unwrap",
    "ResumableSampler",
    "BatchLoader",
    "batch_fetcher",
    "make_loader",
    "require_single_process",
    "set_epoch",
    "all_reduce_mean",
    "barrier",
    "cleanup",
    # checkpoint
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
    # logging
    "MetricLogger",
    "progress",
    "write_metrics_json",
    "to_python_number",
    # early stopping
    "EarlyStopping",
    # run session
    "RunSession",
    "RunFolderError",
    "config_fingerprint",
    "RESULT_NEUTRAL_KEYS",
]
