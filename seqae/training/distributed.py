"""torchrun / DistributedDataParallel helpers that also work, unchanged, in a single process.

A recipe does::

    ctx = init_distributed(device_preference=cfg["device"])
    model = wrap_model(model.to(ctx.device), ctx)
    loader = make_loader(train_set, batch_size=32, shuffle=True, seed=cfg["seed"], ctx=ctx)
    for epoch in range(start_epoch, epochs):
        set_epoch(loader, epoch, skip_batches=batches_done_in_this_epoch)
        for batch in loader:
            ...
        val = all_reduce_mean(val_loss, ctx)
    cleanup(wait=True)

Started with ``torchrun --nproc_per_node=N recipe.py`` the same script trains with DDP: one
process per device, each on its own shard of the data; gradients are averaged by DDP. Only rank
0 writes files (:class:`~seqae.training.CheckpointManager` and
:class:`~seqae.training.MetricLogger` enforce this; plain writers such as
:func:`~seqae.config.save_config` are guarded by ``if ctx.is_main`` in the recipe).
"""

from __future__ import annotations

import gc
import itertools
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler, TensorDataset

from seqae.training.runtime import DevicePreference, get_device

__all__ = [
    "DistributedContext",
    "init_distributed",
    "is_main_process",
    "wrap_model",
    "unwrap",
    "ResumableSampler",
    "BatchLoader",
    "batch_fetcher",
    "make_loader",
    "set_epoch",
    "all_reduce_mean",
    "barrier",
    "cleanup",
]


@dataclass(frozen=True)
class DistributedContext:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank (0 in a single process).
        local_rank: Rank within the node; selects the GPU.
        world_size: Number of processes (1 in a single process).
        device: The device this process computes on.
        backend: ``"nccl"``, ``"gloo"`` or None when no process group was started.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def is_main(self) -> bool:
        """True on rank 0, the only rank that writes files and prints progress."""
        return self.rank == 0

    @property
    def is_distributed(self) -> bool:
        """True when there is more than one process."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return default if value in (None, "") else int(value)


def init_distributed(
    *,
    device_preference: DevicePreference = "auto",
    backend: str | None = None,
    timeout: timedelta | None = None,
) -> DistributedContext:
    """Join the torchrun job this process belongs to, or describe a single-process run.

    torchrun is detected from ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``. With more than one
    process the default process group is initialised (NCCL when the device is CUDA, gloo on
    CPU) and the CUDA device is set to ``LOCAL_RANK``. Calling it again returns the same
    context.

    Args:
        device_preference: ``"auto"``, ``"cpu"`` or ``"cuda"``; see
            :func:`~seqae.training.get_device`.
        backend: Override the process-group backend.
        timeout: Collective timeout (torch's default when None).
    """
    world_size = _env_int("WORLD_SIZE", 1)
    local_rank = _env_int("LOCAL_RANK", 0)
    device = get_device(device_preference)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world_size <= 1:
        return DistributedContext(0, local_rank, 1, device, None)
    if not dist.is_available():
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed")
    if not dist.is_initialized():
        chosen = backend or ("nccl" if device.type == "cuda" else "gloo")
        kwargs: dict[str, Any] = {"backend": chosen}
        if timeout is not None:
            kwargs["timeout"] = timeout
        dist.init_process_group(**kwargs)
    return DistributedContext(
        rank=dist.get_rank(),
        local_rank=local_rank,
        world_size=dist.get_world_size(),
        device=device,
        backend=str(dist.get_backend()),
    )


def _world() -> tuple[int, int]:
    """(rank, world_size) from the process group, or from torchrun's environment before it."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)


def require_single_process(recipe: str) -> None:
    """Refuse to run under torchrun with more than one process.

    For recipes that train many small models one after another: every rank would repeat the
    whole job and race to write the same files.
    """
    world_size = _env_int("WORLD_SIZE", 1)
    if world_size > 1:
        raise RuntimeError(
            f"{recipe} runs in a single process (its models are small and trained one after "
            f"another); it was launched with WORLD_SIZE={world_size}: run it without torchrun"
        )


def is_main_process() -> bool:
    """True unless this is a non-zero rank of a torchrun job. Usable anywhere, any time."""
    return _world()[0] == 0


def wrap_model(model: nn.Module, ctx: DistributedContext, **ddp_kwargs: Any) -> nn.Module:
    """Wrap ``model`` (already on ``ctx.device``) in DDP when there is more than one process.

    Args:
        model: The module to train.
        ctx: From :func:`init_distributed`.
        **ddp_kwargs: Passed to ``DistributedDataParallel`` (e.g.
            ``find_unused_parameters=True`` for models with branches unused in a step).
    """
    if not ctx.is_distributed:
        return model
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, **ddp_kwargs)


def unwrap(model: nn.Module) -> nn.Module:
    """The bare module under DDP and/or ``torch.compile`` wrappers (the module itself otherwise)."""
    while True:
        if isinstance(model, DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


class ResumableSampler(Sampler[int]):
    """A ``DistributedSampler`` that can also skip the first samples of an epoch.

    The order of epoch ``e`` depends only on ``(seed, e)`` (and the rank picks its shard), so a
    resumed run replays exactly the order the interrupted run saw; ``skip`` drops the samples
    already consumed without loading them. Works with ``world_size == 1`` too.

    Args:
        dataset: Map-style dataset.
        num_replicas: World size.
        rank: This process's rank.
        shuffle: Reshuffle every epoch.
        seed: Base seed of the shuffle.
        drop_last: Drop the tail so every rank has the same number of samples without
            padding; when False the tail is padded with repeated samples.
    """

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        num_replicas: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        self.inner = DistributedSampler(
            dataset,
            num_replicas=num_replicas,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
        self.skip = 0

    @property
    def seed(self) -> int:
        return int(self.inner.seed)

    @property
    def rank(self) -> int:
        return int(self.inner.rank)

    @property
    def epoch(self) -> int:
        return int(self.inner.epoch)

    def set_epoch(self, epoch: int, *, skip: int = 0) -> None:
        """Select epoch ``epoch``'s order and skip its first ``skip`` samples (of this rank)."""
        if skip < 0:
            raise ValueError(f"skip must be >= 0, got {skip}")
        self.inner.set_epoch(epoch)
        self.skip = int(skip)

    def __iter__(self) -> Iterator[int]:
        return itertools.islice(iter(self.inner), self.skip, None)

    def order(self) -> torch.Tensor:
        """``list(self)`` as an int64 tensor, built with tensor ops instead of Python lists.

        The same order as ``DistributedSampler.__iter__`` (seeded ``randperm``, the tail padded
        by cycling or dropped, every ``num_replicas``-th sample from ``rank``), then the skip.
        """
        inner = self.inner
        n = len(inner.dataset)  # type: ignore[arg-type]
        if inner.shuffle:
            generator = torch.Generator()
            generator.manual_seed(inner.seed + inner.epoch)
            indices = torch.randperm(n, generator=generator)
        else:
            indices = torch.arange(n)
        if not inner.drop_last:
            padding = inner.total_size - n
            if padding > 0:
                indices = torch.cat([indices, indices.repeat(math.ceil(padding / n))[:padding]])
        else:
            indices = indices[: inner.total_size]
        return indices[inner.rank : inner.total_size : inner.num_replicas][self.skip :]

    def __len__(self) -> int:
        return max(0, len(self.inner) - self.skip)


def _loader_seed(seed: int, rank: int, epoch: int) -> int:
    # Seeds the DataLoader's own generator, which draws the worker base seed on every iter().
    return (int(seed) * 1_000_003 + int(rank) * 7_919 + int(epoch) * 104_729) % (2**63)


def batch_fetcher(dataset: Dataset[Any]) -> Callable[[torch.Tensor], Any] | None:
    """The batched read of ``dataset``, or ``None`` when it only reads one item at a time.

    A dataset opts in by defining ``get_batch(indices)``: given a 1-D int64 tensor of indices
    it returns the whole batch, with the values (and the nesting of tuples) that collating
    ``[dataset[i] for i in indices]`` would give. seqae's in-memory datasets
    (:class:`~seqae.data.DigitsDataset`, :class:`~seqae.data.NpzDataset`) define it; a
    ``torch.utils.data.TensorDataset`` is read by indexing its tensors. (Not torch's
    ``__getitems__``: that one returns a list of items, which ``Subset`` and ``random_split``
    pass on to a collate function.)
    """
    get_batch = getattr(dataset, "get_batch", None)
    if callable(get_batch):
        return get_batch
    if type(dataset) is TensorDataset:
        tensors = dataset.tensors
        return lambda indices: tuple(t[indices] for t in tensors)
    return None


class BatchLoader:
    """A single-process loader that reads each batch with one ``get_batch`` call.

    The counterpart of ``DataLoader(dataset, batch_size, sampler=ResumableSampler(...))`` for
    in-memory datasets: the same batches of the same samples in the same order (from the same
    :class:`ResumableSampler`, so :func:`set_epoch`, ``skip_batches`` and DDP sharding behave
    alike), without reading and collating the items one by one, which for small examples costs
    more than the model's step. Batches are tuples where a ``DataLoader`` gives lists.
    :func:`make_loader` builds one when the dataset has a batched read (see
    :func:`batch_fetcher`) and no worker processes or ``collate_fn`` are asked for.

    Args:
        dataset: A map-style dataset.
        fetch: Reads a batch from a 1-D int64 index tensor (see :func:`batch_fetcher`).
        sampler: Gives this rank's sample order.
        batch_size: Samples per batch.
        drop_last: Drop the last incomplete batch.
        pin_memory: Copy each batch's tensors to page-locked memory (for CUDA transfers;
            ignored, as by ``DataLoader``, when CUDA is not available).
    """

    num_workers = 0
    generator = None  # set_epoch reseeds a DataLoader's worker-seed generator; none here

    def __init__(
        self,
        dataset: Dataset[Any],
        *,
        fetch: Callable[[torch.Tensor], Any],
        sampler: ResumableSampler,
        batch_size: int,
        drop_last: bool = False,
        pin_memory: bool = False,
    ) -> None:
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
        self.dataset = dataset
        self.fetch = fetch
        self.sampler = sampler
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.pin_memory = pin_memory and torch.cuda.is_available()

    def __len__(self) -> int:
        n = len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[Any]:
        order = self.sampler.order()  # this rank's samples, after the skip
        for indices in order.split(self.batch_size)[: len(self)]:
            batch = self.fetch(indices)
            yield _pin(batch) if self.pin_memory else batch


def _pin(batch: Any) -> Any:
    if isinstance(batch, torch.Tensor):
        return batch.pin_memory()
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # a named tuple
        return type(batch)(*(_pin(b) for b in batch))
    if isinstance(batch, tuple | list):
        return type(batch)(_pin(b) for b in batch)
    if isinstance(batch, dict):
        return {k: _pin(v) for k, v in batch.items()}
    return batch


def make_loader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    ctx: DistributedContext,
    drop_last: bool = False,
    num_workers: int = 0,
    collate_fn: Callable[[list[Any]], Any] | None = None,
    pin_memory: bool | None = None,
) -> DataLoader[Any] | BatchLoader:
    """A loader whose order is reproducible and resumable, sharded across ranks under DDP.

    Batches come from a :class:`ResumableSampler` (a ``DistributedSampler`` with skipping). It
    has its own seeded generator, so iterating it never draws from the global torch RNG (a plain
    ``DataLoader`` does, once per ``iter()``, which would shift dropout masks after a resume).
    Call :func:`set_epoch` at the start of every epoch, including the first.

    A dataset with a batched read (``get_batch(indices)``, or a ``TensorDataset``; see
    :func:`batch_fetcher`) gets a :class:`BatchLoader` when ``num_workers == 0`` and no
    ``collate_fn`` is given: the same batches, read a batch at a time. Any other dataset gets a
    ``torch.utils.data.DataLoader``.

    Args:
        dataset: Map-style dataset.
        batch_size: Per-process batch size (the global batch is ``batch_size * world_size``).
        shuffle: Reshuffle every epoch (by ``seed + epoch``).
        seed: Shuffle seed; use the same value on every rank.
        ctx: From :func:`init_distributed`.
        drop_last: Drop the last incomplete batch (and, under DDP, the tail that does not
            split evenly across ranks instead of padding it).
        num_workers: Worker processes; each is seeded from ``(seed, rank, epoch)``.
        collate_fn: Batch collation function.
        pin_memory: Defaults to True when the device is CUDA.
    """
    sampler = ResumableSampler(
        dataset,
        num_replicas=ctx.world_size,
        rank=ctx.rank,
        shuffle=shuffle,
        seed=seed,
        drop_last=drop_last,
    )
    pin = ctx.device.type == "cuda" if pin_memory is None else pin_memory
    fetch = batch_fetcher(dataset) if num_workers == 0 and collate_fn is None else None
    if fetch is not None:
        return BatchLoader(
            dataset,
            fetch=fetch,
            sampler=sampler,
            batch_size=batch_size,
            drop_last=drop_last,
            pin_memory=pin,
        )
    generator = torch.Generator()
    generator.manual_seed(_loader_seed(seed, ctx.rank, 0))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        collate_fn=collate_fn,
        pin_memory=pin,
        generator=generator,
        persistent_workers=False,
    )


def set_epoch(loader: DataLoader[Any] | BatchLoader, epoch: int, *, skip_batches: int = 0) -> None:
    """Prepare ``loader`` (from :func:`make_loader`) for epoch ``epoch``.

    Args:
        loader: A loader built by :func:`make_loader` (a ``DataLoader`` or a
            :class:`BatchLoader`; or any loader whose sampler has ``set_epoch``).
        epoch: Epoch number, starting at 0.
        skip_batches: Batches of this epoch already consumed before a resume; they are skipped
            without being loaded.
    """
    sampler = loader.sampler
    if isinstance(sampler, ResumableSampler):
        sampler.set_epoch(epoch, skip=skip_batches * int(loader.batch_size or 1))
        if loader.generator is not None:
            loader.generator.manual_seed(_loader_seed(sampler.seed, sampler.rank, epoch))
        return
    if skip_batches:
        raise ValueError("skip_batches needs a loader built by make_loader")
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


def all_reduce_mean(value: torch.Tensor | float, ctx: DistributedContext) -> torch.Tensor:
    """Average ``value`` over ranks (for metrics; DDP already averages gradients).

    Returns a new tensor on the input's device (a 0-d float tensor for a Python number); in a
    single process the value is returned as a tensor unchanged.
    """
    tensor = torch.as_tensor(value, dtype=torch.float32 if not torch.is_tensor(value) else None)
    tensor = tensor.detach().clone()
    if not ctx.is_distributed:
        return tensor
    original_device = tensor.device
    if not tensor.is_floating_point():
        tensor = tensor.float()
    work = tensor.to(ctx.device) if ctx.backend == "nccl" else tensor.cpu()
    dist.all_reduce(work, op=dist.ReduceOp.SUM)
    return (work / ctx.world_size).to(original_device)


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


def cleanup(*, wait: bool = False) -> None:
    """Destroy the process group if one was started (safe to call in a single process).

    A process that exits with its gloo/NCCL group still alive can abort in the C++ runtime
    ("terminate called without an active exception") while the group's threads are torn
    down, which torchrun reports as a failed job even though training finished. The same
    abort follows when objects that hold the group's pending work (a DDP wrapper's reducer
    keeps its last all-reduce; an async collective's handle) outlive the group and are freed
    only at interpreter shutdown: reference cycles keep a dead DDP wrapper alive until then,
    and freeing its work there takes the GIL from a C++ thread while the interpreter is being
    torn down. So the garbage is collected first, while the group and the interpreter are both
    alive, and the group is destroyed after. Every run ends here, once:
    :func:`seqae.cli.run_recipe` does it for every recipe (recipes do not call it).

    Args:
        wait: Meet the other ranks at a barrier first, so no rank destroys the group while
            another still has a collective in flight. Only for a normal finish, and only when
            the other ranks will arrive within the process group's timeout: after an error
            they may never arrive.
    """
    if dist.is_available() and dist.is_initialized():
        gc.collect()  # free DDP reducers and work handles while the group is alive
        if wait:
            barrier()
        dist.destroy_process_group()
