"""scikit-learn's 8x8 handwritten digits: 1797 images, 10 classes, bundled in the sklearn wheel.

Pixel values are integers ``v`` in ``0..16``. Two ways to turn them into model inputs:

- **scaled** (default): ``x = v / 16`` in ``[0, 1]``, for plain autoencoders and Bernoulli /
  Gaussian decoders used as reconstruction losses;
- **dequantized**, for likelihood models (Theis et al. 2016, "A note on the evaluation of
  generative models", arXiv 1511.01844, sec. 3.1): ``x = (v + u) / 17`` with
  ``u ~ U[0, 1)^64``, so ``x`` has a density on ``[0, 1)^64``.

Change of variables for dequantized data. Let ``y = v + u`` (a point in the unit cube above
``v``) and ``x = y / 17``, so ``p_y(y) = p_x(x) / 17^64``. Because the cubes tile the space,
``P(v) = integral over the cube of p_y``, and by Jensen's inequality

    log P(v) >= E_u[ log p_x((v + u) / 17) ] - 64 * log(17).

A continuous model's negative log-likelihood ``-log p_x(x)`` in nats per image therefore
becomes a bound on the discrete NLL by adding ``64 * log(17) = 181.33`` nats
(:func:`discrete_nll_bound`); that number is comparable across papers and with discrete models.
Training draws a fresh ``u`` each time an example is read (``dequantize="fresh"``); validation
and test sets use one fixed, seeded ``u`` (``dequantize="fixed"``) so an evaluation is
reproducible. Without dequantization a continuous density can put arbitrarily high density on
the 17 grey levels, and its "likelihood" means nothing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, get_worker_info

__all__ = [
    "DIGITS_LEVELS",
    "DIGITS_PIXELS",
    "DigitsDataset",
    "DigitsSplits",
    "discrete_nll_bound",
    "load_digits_arrays",
    "load_digits_splits",
]

DIGITS_LEVELS = 17  # grey levels 0..16
DIGITS_PIXELS = 64  # 8 x 8

Dequantize = Literal["none", "fresh", "fixed"]


def discrete_nll_bound(
    nll: Tensor | float, *, num_dims: int = DIGITS_PIXELS, levels: int = DIGITS_LEVELS
) -> Tensor | float:
    """Turn a continuous NLL on ``x = (v + u) / levels`` into a bound on the discrete NLL of ``v``.

    Returns ``nll + num_dims * log(levels)`` (nats per image): ``-log P(v)`` is at most this,
    in expectation over the dequantization noise ``u`` (see the module docstring).

    Args:
        nll: Negative log-likelihood of dequantized images in nats per image, as a float or a
            tensor of per-example values.
        num_dims: Number of dequantized values per image (64 for 8x8 digits).
        levels: Number of discrete values per pixel (17 for digits: 0..16).
    """
    return nll + num_dims * math.log(levels)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The raw digits: pixel values ``(1797, 64)`` int64 in ``0..16`` and labels ``(1797,)`` int64."""
    from sklearn.datasets import load_digits  # bundled with scikit-learn, nothing downloads

    bunch = load_digits()
    values = np.asarray(bunch.data, dtype=np.int64)
    labels = np.asarray(bunch.target, dtype=np.int64)
    return values, labels


class DigitsDataset(Dataset):
    """Digits as ``(x, y)`` items: ``x`` float32 in ``[0, 1]``, ``y`` an int64 class scalar.

    Args:
        values: Raw pixel values, integers in ``0..16``, shape ``(N, 64)`` (or ``(N, 8, 8)``).
        labels: Class labels, shape ``(N,)``.
        dequantize: ``"none"`` (or ``False``): ``x = v / 16``. ``"fresh"`` (or ``True``):
            ``x = (v + u) / 17`` with a new ``u ~ U[0, 1)`` every time an item is read, drawn
            from this dataset's own generator (in DataLoader workers, from a generator seeded
            by the worker's seed, which changes every epoch). ``"fixed"``: ``x = (v + u) / 17``
            with one ``u`` drawn once from ``seed``, so every read returns the same ``x``
            (for validation and test NLL).
        seed: Seed of the dequantization noise.
        flatten: Items of shape ``(64,)``; otherwise ``(1, 8, 8)``.
    """

    def __init__(
        self,
        values: np.ndarray | Tensor,
        labels: np.ndarray | Tensor,
        *,
        dequantize: Dequantize | bool = "none",
        seed: int = 0,
        flatten: bool = True,
    ) -> None:
        if dequantize is True:
            dequantize = "fresh"
        elif dequantize is False:
            dequantize = "none"
        if dequantize not in ("none", "fresh", "fixed"):
            raise ValueError(
                f"DigitsDataset: dequantize must be 'none', 'fresh' or 'fixed' (or a bool), "
                f"got {dequantize!r}"
            )
        v = torch.as_tensor(np.asarray(values))
        y = torch.as_tensor(np.asarray(labels)).to(torch.int64).reshape(-1)
        if v.dim() == 3:
            v = v.flatten(1)
        if v.dim() != 2 or v.shape[1] != DIGITS_PIXELS:
            raise ValueError(
                f"DigitsDataset: expected 64 pixels per image, got shape {tuple(v.shape)}"
            )
        if v.is_floating_point() and not torch.equal(v, v.round()):
            raise ValueError("DigitsDataset: pixel values must be integers 0..16")
        if v.numel() and (v.min() < 0 or v.max() > DIGITS_LEVELS - 1):
            raise ValueError(
                f"DigitsDataset: pixel values must be in 0..16, got range "
                f"[{v.min().item()}, {v.max().item()}]"
            )
        if len(y) != len(v):
            raise ValueError(f"DigitsDataset: {len(y)} labels for {len(v)} images")
        self.values = v.to(torch.uint8)  # (N, 64) raw integers
        self.y = y
        self.dequantize: Dequantize = dequantize
        self.seed = seed
        self.flatten = flatten
        self._generator = torch.Generator().manual_seed(seed)
        self._worker_key: tuple[int, int] | None = None
        # The model inputs, computed once, whenever a read draws no noise: "none", "fixed", and
        # "fresh" after set_epoch. Elementwise the same values as computing them per read.
        self._x: Tensor | None = None
        if dequantize == "none":
            self._x = self._transform(self.values)
        elif dequantize == "fixed":
            noise = torch.rand(v.shape, generator=self._generator)
            self._x = (self.values.float() + noise) / DIGITS_LEVELS

    def __len__(self) -> int:
        return len(self.values)

    def set_epoch(self, epoch: int) -> None:
        """Key ``"fresh"`` noise to ``(seed, epoch)``: item ``i`` of epoch ``e`` gets the same
        ``u`` whatever the read order, the number of workers, or a resume in the middle of the
        epoch. Recipes call it at the start of every epoch; without it, noise comes from the
        dataset's running generator."""
        if self.dequantize != "fresh":
            return
        generator = torch.Generator().manual_seed((self.seed * 1_000_003 + int(epoch)) % 2**63)
        noise = torch.rand(self.values.shape, generator=generator)
        self._x = (self.values.float() + noise) / DIGITS_LEVELS

    def _noise_generator(self) -> torch.Generator:
        """This process's generator; in a DataLoader worker, one reseeded from the worker seed.

        A worker gets a copy of the dataset, so without reseeding every worker (and every epoch,
        unless workers persist) would replay the same noise.
        """
        info = get_worker_info()
        if info is not None and self._worker_key != (info.id, info.seed):
            self._worker_key = (info.id, info.seed)
            self._generator = torch.Generator().manual_seed((info.seed + self.seed) % 2**63)
        return self._generator

    def _transform(self, v: Tensor) -> Tensor:
        """Raw values ``(..., 64)`` -> model inputs, following ``dequantize``."""
        if self.dequantize == "none":
            return v.float() / (DIGITS_LEVELS - 1)
        noise = torch.rand(v.shape, generator=self._noise_generator())
        return (v.float() + noise) / DIGITS_LEVELS

    def _shape(self, x: Tensor) -> Tensor:
        return x if self.flatten else x.reshape(*x.shape[:-1], 1, 8, 8)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x = self._x[index] if self._x is not None else self._transform(self.values[index])
        return self._shape(x), self.y[index]

    def get_batch(self, indices: Tensor | Sequence[int]) -> tuple[Tensor, Tensor]:
        """Items ``indices`` as one batch ``(x, y)``, ``x`` of shape ``(B, 64)`` (or
        ``(B, 1, 8, 8)``): the values ``[self[i] for i in indices]`` would give, stacked, read
        with one gather instead of ``B`` item reads (what :func:`seqae.training.make_loader`
        uses). ``"fresh"`` noise without :meth:`set_epoch` is drawn from the same generator
        stream, in the same order, as item-by-item reads."""
        index = (
            indices if isinstance(indices, Tensor) else torch.as_tensor(indices, dtype=torch.long)
        )
        x = self._x[index] if self._x is not None else self._transform(self.values[index])
        return self._shape(x), self.y[index]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        """torch's batched read for ``DataLoader``: the items ``indices``, as a list of
        ``(x, y)`` (read with :meth:`get_batch`, then split)."""
        x, y = self.get_batch(indices)
        return list(zip(x.unbind(0), y.unbind(0), strict=True))

    def tensors(self) -> tuple[Tensor, Tensor]:
        """The whole set as ``(x, y)`` tensors (with ``"fresh"`` noise: a new draw per call)."""
        if self._x is not None and self.dequantize != "fresh":
            x = self._x.clone()
        else:
            x = self._transform(self.values)
        return self._shape(x), self.y


class DigitsSplits(NamedTuple):
    """Train / validation / test digits datasets."""

    train: DigitsDataset
    val: DigitsDataset
    test: DigitsDataset


def _stratified_split(
    labels: np.ndarray, *, val_fraction: float, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test): each class is split in the given proportions."""
    rng = np.random.default_rng(seed)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_test = int(round(len(idx) * test_fraction))
        n_val = int(round(len(idx) * val_fraction))
        parts[2].append(idx[:n_test])
        parts[1].append(idx[n_test : n_test + n_val])
        parts[0].append(idx[n_test + n_val :])
    train, val, test = (np.sort(np.concatenate(p)) for p in parts)
    return train, val, test


def load_digits_splits(
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    flatten: bool = True,
    dequantize: bool = False,
) -> DigitsSplits:
    """Stratified, seeded train/val/test splits of the 8x8 digits.

    Args:
        val_fraction: Fraction of each class put in the validation set (may be 0).
        test_fraction: Fraction of each class put in the test set (may be 0).
        seed: Seed of the split and of the dequantization noise. The same seed gives the
            same split and the same validation/test noise.
        flatten: Items of shape ``(64,)``; otherwise ``(1, 8, 8)``.
        dequantize: Uniform dequantization for likelihood models (see the module docstring):
            fresh noise on every read for ``train``, fixed seeded noise for ``val`` and
            ``test``. Otherwise ``x = v / 16``.

    Returns:
        :class:`DigitsSplits` of :class:`DigitsDataset` items ``(x float32, y int64)``;
        ``splits.test.tensors()`` gives a whole split as tensors.
    """
    for name, frac in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError(f"load_digits_splits: {name} must be in [0, 1), got {frac}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(
            f"load_digits_splits: val_fraction + test_fraction must be < 1, got "
            f"{val_fraction} + {test_fraction}"
        )
    values, labels = load_digits_arrays()
    train, val, test = _stratified_split(
        labels, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    train_mode: Dequantize = "fresh" if dequantize else "none"
    eval_mode: Dequantize = "fixed" if dequantize else "none"
    return DigitsSplits(
        train=DigitsDataset(
            values[train], labels[train], dequantize=train_mode, seed=seed, flatten=flatten
        ),
        # distinct seeds so validation and test noise are not the same stream
        val=DigitsDataset(
            values[val], labels[val], dequantize=eval_mode, seed=seed + 1, flatten=flatten
        ),
        test=DigitsDataset(
            values[test], labels[test], dequantize=eval_mode, seed=seed + 2, flatten=flatten
        ),
    )
