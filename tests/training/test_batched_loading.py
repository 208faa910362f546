"""make_loader's batched path (BatchLoader): the same batches as the DataLoader path.

Same samples, same order, same resume (skip_batches) and DDP sharding semantics; only the way
a batch is read differs (one gather instead of item reads and collation).
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from seqae.data import NpzDataset, load_digits_splits
from seqae.training import (
    BatchLoader,
    DistributedContext,
    ResumableSampler,
    batch_fetcher,
    make_loader,
    set_epoch,
)


def _ctx(rank: int = 0, world: int = 1) -> DistributedContext:
    return DistributedContext(rank=rank, local_rank=rank, world_size=world)


class ItemsOnly(Dataset):
    """A dataset with no batched read: make_loader gives it a DataLoader."""

    def __init__(self, n: int) -> None:
        self.x = torch.arange(n, dtype=torch.float32)[:, None] * torch.ones(1, 3)
        self.y = torch.arange(n)

    def __len__(self) -> int:
        return len(self.y)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]


class WithGetBatch(ItemsOnly):
    """The same items, with a batched read."""

    def get_batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[indices], self.y[indices]


def _batches(loader) -> list[list[torch.Tensor]]:
    return [list(batch) for batch in loader]


def _assert_same(a: list[list[torch.Tensor]], b: list[list[torch.Tensor]]) -> None:
    assert len(a) == len(b)
    for batch_a, batch_b in zip(a, b, strict=True):
        assert len(batch_a) == len(batch_b)
        for ta, tb in zip(batch_a, batch_b, strict=True):
            assert ta.dtype == tb.dtype and torch.equal(ta, tb)


def test_make_loader_picks_the_batched_path_only_when_it_can() -> None:
    ctx = _ctx()
    digits = load_digits_splits(seed=0).train
    tensors = TensorDataset(torch.arange(10))
    for dataset in (digits, tensors, WithGetBatch(10)):
        loader = make_loader(dataset, batch_size=4, shuffle=True, seed=0, ctx=ctx)
        assert isinstance(loader, BatchLoader) and loader.dataset is dataset
        assert batch_fetcher(dataset) is not None
    assert batch_fetcher(ItemsOnly(10)) is None
    assert isinstance(
        make_loader(ItemsOnly(10), batch_size=4, shuffle=True, seed=0, ctx=ctx), DataLoader
    )
    # workers or a collate function: the DataLoader, which has them
    kwargs = dict(batch_size=4, shuffle=True, seed=0, ctx=ctx)
    assert isinstance(make_loader(digits, num_workers=1, **kwargs), DataLoader)
    assert isinstance(make_loader(digits, collate_fn=lambda b: b, **kwargs), DataLoader)


@pytest.mark.parametrize("n", [1, 2, 5, 20, 21])
@pytest.mark.parametrize("world", [1, 2, 3, 7])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
def test_sampler_order_tensor_equals_its_iteration(
    n: int, world: int, shuffle: bool, drop_last: bool
) -> None:
    data = TensorDataset(torch.arange(n))
    for rank, epoch, skip in itertools.product(range(world), (0, 3), (0, 1, 4)):
        sampler = ResumableSampler(
            data, num_replicas=world, rank=rank, shuffle=shuffle, seed=11, drop_last=drop_last
        )
        sampler.set_epoch(epoch, skip=skip)
        order = sampler.order()
        assert order.dtype == torch.int64
        assert order.tolist() == list(sampler)
        assert len(order) == len(sampler)


@pytest.mark.parametrize("world", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_last", [False, True])
@pytest.mark.parametrize("batch_size", [1, 4, 7])
def test_batched_loader_gives_the_dataloader_batches(
    world: int, shuffle: bool, drop_last: bool, batch_size: int
) -> None:
    n = 23
    kwargs = dict(batch_size=batch_size, shuffle=shuffle, seed=5, drop_last=drop_last)
    for rank in range(world):
        batched = make_loader(WithGetBatch(n), ctx=_ctx(rank, world), **kwargs)
        reference = make_loader(ItemsOnly(n), ctx=_ctx(rank, world), **kwargs)
        assert isinstance(batched, BatchLoader) and isinstance(reference, DataLoader)
        for epoch, skip in ((0, 0), (1, 0), (1, 2), (4, 1)):
            set_epoch(batched, epoch, skip_batches=skip)
            set_epoch(reference, epoch, skip_batches=skip)
            assert len(batched) == len(reference)
            _assert_same(_batches(batched), _batches(reference))


def test_skip_batches_resumes_mid_epoch_and_applies_once() -> None:
    loader = make_loader(WithGetBatch(20), batch_size=4, shuffle=True, seed=1, ctx=_ctx())
    set_epoch(loader, 3)
    full = [batch[1].tolist() for batch in loader]
    set_epoch(loader, 3, skip_batches=2)
    assert len(loader) == 3
    assert [batch[1].tolist() for batch in loader] == full[2:]
    set_epoch(loader, 3)
    assert len(loader) == 5 and [batch[1].tolist() for batch in loader] == full
    set_epoch(loader, 3, skip_batches=5)
    assert len(loader) == 0 and list(loader) == []


def test_shards_are_disjoint_and_cover_the_data() -> None:
    shards = []
    for rank in (0, 1):
        loader = make_loader(
            TensorDataset(torch.arange(21)), batch_size=2, shuffle=True, seed=5, ctx=_ctx(rank, 2)
        )
        assert isinstance(loader, BatchLoader)
        set_epoch(loader, 0)
        shards.append([int(i) for (batch,) in loader for i in batch])
    assert len(shards[0]) == len(shards[1]) == 11  # 21 padded to 22: equal batch counts
    assert set(shards[0]) | set(shards[1]) == set(range(21))
    assert len(set(shards[0]) & set(shards[1])) == 1  # only the padding sample repeats


def test_iterating_leaves_the_global_rng_alone() -> None:
    loader = make_loader(WithGetBatch(20), batch_size=4, shuffle=True, seed=1, ctx=_ctx())
    before = torch.get_rng_state()
    for epoch in range(3):
        set_epoch(loader, epoch)
        _batches(loader)
    assert torch.equal(before, torch.get_rng_state())


@pytest.mark.parametrize("dequantize", [False, True])
def test_digits_batches_equal_item_reads_every_epoch(dequantize: bool) -> None:
    # the vae_digits recipe's loop: set_epoch on the loader and on the dataset (noise key)
    splits = load_digits_splits(seed=3, dequantize=dequantize)
    kwargs = dict(batch_size=64, shuffle=True, seed=3, ctx=_ctx())
    batched = make_loader(splits.train, **kwargs)
    reference = make_loader(splits.train, collate_fn=torch.utils.data.default_collate, **kwargs)
    assert isinstance(batched, BatchLoader) and isinstance(reference, DataLoader)
    for epoch in (0, 1, 7):
        splits.train.set_epoch(epoch)
        set_epoch(batched, epoch)
        set_epoch(reference, epoch, skip_batches=0)
        _assert_same(_batches(batched), _batches(reference))


def test_npz_and_tensor_datasets_batch_like_the_dataloader(tmp_path) -> None:
    path = tmp_path / "d.npz"
    np.savez(path, x=np.random.default_rng(0).random((13, 2, 2)), y=np.arange(13))
    npz = NpzDataset(path, label_key="y")
    tensors = TensorDataset(torch.randn(13, 3), torch.arange(13))
    for dataset in (npz, tensors):
        kwargs = dict(batch_size=5, shuffle=True, seed=2, ctx=_ctx())
        batched = make_loader(dataset, **kwargs)
        reference = make_loader(dataset, collate_fn=torch.utils.data.default_collate, **kwargs)
        set_epoch(batched, 1)
        set_epoch(reference, 1)
        _assert_same(_batches(batched), _batches(reference))


def test_batch_loader_rejects_a_bad_batch_size() -> None:
    data = WithGetBatch(4)
    with pytest.raises(ValueError, match="batch_size"):
        BatchLoader(data, fetch=data.get_batch, sampler=ResumableSampler(data), batch_size=0)


def test_pin_memory_without_cuda_is_ignored_like_the_dataloader(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    loader = make_loader(
        WithGetBatch(8), batch_size=4, shuffle=False, seed=0, ctx=_ctx(), pin_memory=True
    )
    set_epoch(loader, 0)
    assert not loader.pin_memory and len(_batches(loader)) == 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA for pinned memory")
def test_pin_memory_pins_every_tensor() -> None:
    loader = make_loader(
        WithGetBatch(8), batch_size=4, shuffle=False, seed=0, ctx=_ctx(), pin_memory=True
    )
    set_epoch(loader, 0)
    assert all(t.is_pinned() for batch in loader for t in batch)
