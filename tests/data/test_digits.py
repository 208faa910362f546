import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from seqae.data import DigitsDataset, discrete_nll_bound, load_digits_arrays, load_digits_splits


def test_raw_arrays():
    values, labels = load_digits_arrays()
    assert values.shape == (1797, 64) and labels.shape == (1797,)
    assert values.dtype == np.int64 and labels.dtype == np.int64
    assert values.min() == 0 and values.max() == 16
    assert set(labels.tolist()) == set(range(10))


def test_splits_partition_and_types():
    splits = load_digits_splits()
    sizes = [len(s) for s in splits]
    assert sum(sizes) == 1797
    assert abs(sizes[2] - 0.2 * 1797) <= 10 and abs(sizes[1] - 0.1 * 1797) <= 10
    rows = [{tuple(r) for r in s.values.tolist()} for s in splits]
    # the digits contain no duplicate images, so splits are disjoint iff their rows are
    assert sum(len(r) for r in rows) == len(set.union(*rows)) == 1797
    x, y = splits.train[0]
    assert x.shape == (64,) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.dim() == 0
    xs, ys = splits.test.tensors()
    assert xs.shape == (sizes[2], 64) and ys.shape == (sizes[2],)
    assert xs.min() >= 0 and xs.max() <= 1
    torch.testing.assert_close(xs * 16, (xs * 16).round())  # x = v / 16


def test_splits_are_stratified():
    splits = load_digits_splits(val_fraction=0.1, test_fraction=0.2)
    _, labels = load_digits_arrays()
    overall = np.bincount(labels, minlength=10) / len(labels)
    for split in splits:
        freq = np.bincount(split.y.numpy(), minlength=10) / len(split)
        np.testing.assert_allclose(freq, overall, atol=0.02)


def test_splits_deterministic_by_seed():
    a, b, c = (load_digits_splits(seed=s) for s in (3, 3, 4))
    for sa, sb in zip(a, b, strict=True):
        assert torch.equal(sa.values, sb.values)
    assert not torch.equal(a.test.values, c.test.values)


def test_zero_val_fraction():
    splits = load_digits_splits(val_fraction=0.0)
    assert len(splits.val) == 0 and len(splits.train) + len(splits.test) == 1797


def test_unflattened():
    splits = load_digits_splits(flatten=False)
    x, _ = splits.train[5]
    assert x.shape == (1, 8, 8)
    assert splits.val.tensors()[0].shape == (len(splits.val), 1, 8, 8)


def test_dequantized_values_and_noise_modes():
    splits = load_digits_splits(dequantize=True, seed=1)
    for split in splits:
        x, _ = split.tensors()
        v = split.values.float()
        assert ((x * 17 - v) >= 0).all() and ((x * 17 - v) < 1 + 1e-5).all()
        assert x.min() >= 0 and x.max() < 1
    assert splits.train.dequantize == "fresh"
    assert splits.val.dequantize == splits.test.dequantize == "fixed"
    # fresh: a new draw on every read
    assert not torch.equal(splits.train[0][0], splits.train[0][0])
    # fixed: the same on every read, and on a rebuilt split with the same seed
    assert torch.equal(splits.test[0][0], splits.test[0][0])
    again = load_digits_splits(dequantize=True, seed=1)
    assert torch.equal(splits.test.tensors()[0], again.test.tensors()[0])
    # validation and test noise are different streams
    assert not torch.equal(
        splits.val.tensors()[0][:10] * 17 % 1, splits.test.tensors()[0][:10] * 17 % 1
    )


def test_fresh_noise_roughly_uniform():
    values, labels = load_digits_arrays()
    ds = DigitsDataset(values, labels, dequantize=True)
    x, _ = ds.tensors()
    u = x * 17 - ds.values.float()
    assert abs(u.mean().item() - 0.5) < 0.01 and abs(u.var().item() - 1 / 12) < 0.01


def test_fresh_noise_differs_across_workers_and_epochs():
    values, labels = load_digits_arrays()
    ds = DigitsDataset(values[:8], labels[:8], dequantize="fresh")
    loader = DataLoader(ds, batch_size=4, num_workers=2)
    epoch1 = torch.cat([x for x, _ in loader])
    epoch2 = torch.cat([x for x, _ in loader])
    u1 = epoch1 * 17 - ds.values.float()
    assert not torch.equal(epoch1, epoch2)
    assert not torch.allclose(u1[:4], u1[4:])  # the two workers do not replay one stream


def test_discrete_nll_bound():
    assert discrete_nll_bound(10.0) == pytest.approx(10.0 + 64 * math.log(17))
    nll = torch.tensor([1.0, 2.0])
    torch.testing.assert_close(discrete_nll_bound(nll, num_dims=2, levels=4), nll + 2 * math.log(4))


@pytest.mark.parametrize(
    ("values", "match"),
    [
        (np.full((2, 64), 17), "0..16"),
        (np.zeros((2, 63)), "64 pixels"),
        (np.full((2, 64), 0.5), "integers"),
    ],
)
def test_dataset_rejects_bad_values(values, match):
    with pytest.raises(ValueError, match=match):
        DigitsDataset(values, np.zeros(2))


def test_dataset_rejects_bad_mode_and_labels():
    with pytest.raises(ValueError, match="dequantize"):
        DigitsDataset(np.zeros((2, 64)), np.zeros(2), dequantize="sometimes")
    with pytest.raises(ValueError, match="labels"):
        DigitsDataset(np.zeros((2, 64)), np.zeros(3))


@pytest.mark.parametrize(("val", "test"), [(-0.1, 0.2), (0.1, 1.0), (0.5, 0.5)])
def test_splits_reject_bad_fractions(val, test):
    with pytest.raises(ValueError, match="fraction"):
        load_digits_splits(val_fraction=val, test_fraction=test)


def test_fresh_noise_keyed_to_epoch_is_order_independent() -> None:
    from seqae.data.digits import load_digits_splits

    train = load_digits_splits(dequantize=True, seed=3).train
    train.set_epoch(5)
    forward = [train[i][0] for i in range(10)]
    backward = [train[i][0] for i in reversed(range(10))][::-1]
    for a, b in zip(forward, backward, strict=True):
        assert torch.equal(a, b)
    again = load_digits_splits(dequantize=True, seed=3).train
    again.set_epoch(5)
    assert torch.equal(again[7][0], forward[7])
    again.set_epoch(6)
    assert not torch.equal(again[7][0], forward[7])


# --------------------------------------------------------------------------------------------
# Batched reads (get_batch, __getitems__): the values item-by-item reads give
# --------------------------------------------------------------------------------------------
def _per_item(dataset: DigitsDataset, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    items = [dataset[i] for i in indices]
    return torch.stack([x for x, _ in items]), torch.stack([y for _, y in items])


@pytest.mark.parametrize("mode", ["none", "fixed", "fresh_epoch"])
@pytest.mark.parametrize("flatten", [True, False])
def test_get_batch_equals_item_reads(mode: str, flatten: bool) -> None:
    values, labels = load_digits_arrays()
    dequantize = "fresh" if mode == "fresh_epoch" else mode
    dataset = DigitsDataset(
        values[:200], labels[:200], dequantize=dequantize, seed=4, flatten=flatten
    )
    indices = [17, 3, 199, 3, 0, 64]  # any order, repeats allowed
    for epoch in (0, 1):
        dataset.set_epoch(epoch)
        x, y = dataset.get_batch(torch.tensor(indices))
        x_items, y_items = _per_item(dataset, indices)
        assert x.shape == ((6, 64) if flatten else (6, 1, 8, 8))
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert torch.equal(x, x_items) and torch.equal(y, y_items)  # bitwise
        x_list, _ = dataset.get_batch(indices)  # a list of ints works too
        assert torch.equal(x_list, x)


def test_get_batch_fresh_noise_follows_the_item_stream() -> None:
    # without set_epoch, fresh noise comes from the dataset's running generator: a batched read
    # draws the same numbers, in the same order, as the same items read one at a time
    values, labels = load_digits_arrays()
    one = DigitsDataset(values[:50], labels[:50], dequantize="fresh", seed=9)
    other = DigitsDataset(values[:50], labels[:50], dequantize="fresh", seed=9)
    indices = [5, 1, 44, 5]
    for _ in range(2):
        x, _ = one.get_batch(torch.tensor(indices))
        x_items, _ = _per_item(other, indices)
        assert torch.equal(x, x_items)


def test_get_batch_empty_and_dataloader_paths_agree() -> None:
    splits = load_digits_splits(seed=2)
    x, y = splits.train.get_batch([])
    assert x.shape == (0, 64) and y.shape == (0,)
    # __getitems__ follows torch's contract (a list of items), so a plain DataLoader, its
    # default collation, Subset and random_split keep working and give the same batches
    items = splits.train.__getitems__([4, 2])
    assert isinstance(items, list) and len(items) == 2
    assert all(torch.equal(a, b) for a, b in zip(items[1], splits.train[2], strict=True))
    loader = DataLoader(splits.train, batch_size=16, shuffle=False)
    xb, yb = next(iter(loader))
    x_ref, y_ref = splits.train.get_batch(torch.arange(16))
    assert torch.equal(xb, x_ref) and torch.equal(yb, y_ref)
    subset = torch.utils.data.Subset(splits.train, [7, 8, 9])
    xs, ys = next(iter(DataLoader(subset, batch_size=3)))
    assert torch.equal(xs, splits.train.get_batch([7, 8, 9])[0])
    assert torch.equal(ys, splits.train.y[7:10])


def test_tensors_unchanged_by_precomputed_inputs() -> None:
    splits = load_digits_splits(seed=0)
    x, _ = splits.train.tensors()
    assert torch.equal(x, splits.train.values.float() / 16)
    x.zero_()  # a copy: the dataset's own inputs are untouched
    assert splits.train[0][0].sum() > 0
