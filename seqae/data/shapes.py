"""Procedural dSprites-like shapes with known generative factors.

A stand-in for dSprites (Matthey et al. 2017, https://github.com/deepmind/dsprites-dataset),
rendered here from the factors instead of downloaded. Five independent factors:

====================  ==========================================================  ===========
factor                values                                                      default size
====================  ==========================================================  ===========
``shape``             square, ellipse, heart (stored as 1, 2, 3 like dSprites)     3
``scale``             ``linspace(0.5, 1, n)``                                      6
``orientation``       ``2 pi k / n``, ``k = 0..n-1`` (radians, endpoint excluded)   40
``pos_x``             ``linspace(0, 1, n)``: left to right                         32
``pos_y``             ``linspace(0, 1, n)``: top to bottom (image rows)            32
====================  ==========================================================  ===========

Geometry. The image covers the unit square; a shape's centre is ``0.23 + 0.54 * pos`` on each
axis and its size unit is ``0.17 * scale`` of the image width, so even the largest rotated
shape stays clear of the border pixels at 32x32 and 64x64. Shapes are the zero sublevel sets of
implicit functions in the shape's rotated, scaled frame ``(u, v)``: square
``max(|u|, |v|) <= 0.8``; ellipse ``(u / 1.1)^2 + (v / 0.55)^2 <= 1``; heart
``(a^2 + b^2 - 1)^3 - a^2 b^3 <= 0`` with ``a = u / 0.85`` and ``b = 0.118 - v / 0.85``
(the heart points down). The three have similar areas and extents.

Symmetries, as in dSprites: a square at orientation ``theta`` equals one at ``theta + pi/2``
and an ellipse at ``theta`` one at ``theta + pi``, so those factor values are not identifiable
from the image. Binary rendering also cannot show sub-pixel changes: at 32x32 with 32
positions one position step is 0.56 pixel, and small shapes can render identically at
adjacent positions, orientations or scales (about 0.5-2% of adjacent steps). Use
``antialias`` (pixel coverage, grey levels) or a higher ``resolution`` when that matters.

Rendering is deterministic and independent of the batch an image is rendered in (fixed
tables, elementwise float32 numpy arithmetic), vectorised over a batch (single-threaded, a few
milliseconds per hundred 32x32 images), and done on demand: the full default product is
``3 * 6 * 40 * 32 * 32 = 737,280`` images, too many to keep around by default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = [
    "DEFAULT_FACTOR_SIZES",
    "FACTOR_NAMES",
    "SHAPE_NAMES",
    "ShapesDataset",
    "factor_values",
    "render_shapes",
]

FACTOR_NAMES: tuple[str, ...] = ("shape", "scale", "orientation", "pos_x", "pos_y")
SHAPE_NAMES: tuple[str, ...] = ("square", "ellipse", "heart")
DEFAULT_FACTOR_SIZES: tuple[int, int, int, int, int] = (3, 6, 40, 32, 32)

_CENTRE_LOW, _CENTRE_SPAN = 0.23, 0.54  # centre = 0.23 + 0.54 * pos
_SIZE_UNIT = 0.17  # shape size unit, fraction of image width, times scale
_SQUARE_HALF_SIDE = 0.8
_ELLIPSE_AXES = (1.1, 0.55)
_HEART_SCALE, _HEART_SHIFT = 0.85, 0.118
_MAX_ELEMENTS = 1 << 20  # elements per rendering chunk (batch * supersampled pixels)
_AUTO_CACHE_BYTES = 1 << 28  # cache automatically when the cache needs at most 256 MiB


def _check_factor_sizes(factor_sizes: Sequence[int]) -> tuple[int, int, int, int, int]:
    sizes = tuple(int(s) for s in factor_sizes)
    if len(sizes) != len(FACTOR_NAMES):
        raise ValueError(
            f"factor_sizes needs {len(FACTOR_NAMES)} entries ({', '.join(FACTOR_NAMES)}), "
            f"got {len(sizes)}"
        )
    if any(s < 1 for s in sizes):
        raise ValueError(f"factor_sizes must be positive, got {sizes}")
    if sizes[0] > len(SHAPE_NAMES):
        raise ValueError(
            f"at most {len(SHAPE_NAMES)} shapes ({', '.join(SHAPE_NAMES)}), got {sizes[0]}"
        )
    return sizes  # type: ignore[return-value]


def factor_values(
    factor_sizes: Sequence[int] = DEFAULT_FACTOR_SIZES,
) -> tuple[np.ndarray, ...]:
    """The value of every index of every factor, as five float64 arrays (see the module table).

    Args:
        factor_sizes: Number of values of ``(shape, scale, orientation, pos_x, pos_y)``.
    """
    n_shape, n_scale, n_orient, n_x, n_y = _check_factor_sizes(factor_sizes)
    return (
        np.arange(1, n_shape + 1, dtype=np.float64),
        np.linspace(0.5, 1.0, n_scale),
        2.0 * math.pi * np.arange(n_orient, dtype=np.float64) / n_orient,
        np.linspace(0.0, 1.0, n_x),
        np.linspace(0.0, 1.0, n_y),
    )


def _check_factors(factors: Any, sizes: Sequence[int]) -> np.ndarray:
    array = np.asarray(factors)
    if array.ndim == 1 and array.shape[0] == len(FACTOR_NAMES):
        array = array[None]
    if array.ndim != 2 or array.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must have shape (B, {len(FACTOR_NAMES)}), got {array.shape}")
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"factors must be integer indices, got dtype {array.dtype}")
    array = array.astype(np.int64)
    if array.size:
        high = np.asarray(sizes)
        bad = (array < 0) | (array >= high)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            raise ValueError(
                f"factor index out of range: {FACTOR_NAMES[col]} = {array[row, col]} in row {row}, "
                f"expected 0..{high[col] - 1}"
            )
    return array


def _inside_square(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    return np.maximum(np.abs(u), np.abs(v)) <= _SQUARE_HALF_SIDE


def _inside_ellipse(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    eu, ev = u / np.float32(_ELLIPSE_AXES[0]), v / np.float32(_ELLIPSE_AXES[1])
    return eu * eu + ev * ev <= 1.0


def _inside_heart(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    a = u / np.float32(_HEART_SCALE)
    b = np.float32(_HEART_SHIFT) - v / np.float32(_HEART_SCALE)  # b points up the image
    r = a * a + b * b - np.float32(1.0)
    return r * r * r - a * a * b * b * b <= 0.0


_INSIDE = (_inside_square, _inside_ellipse, _inside_heart)


def _inside(shape: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Whether points ``(u, v)`` of each shape's own frame ``(b, P, P)`` lie inside shape ``(b,)``."""
    present = np.unique(shape).tolist()
    if len(present) == 1:
        return _INSIDE[present[0]](u, v)
    out = np.empty(u.shape, dtype=bool)
    for s in present:  # each shape's function only on its own rows
        rows = np.flatnonzero(shape == s)
        out[rows] = _INSIDE[s](u[rows], v[rows])
    return out


def render_shapes(
    factors: np.ndarray | Tensor | Sequence[Sequence[int]],
    *,
    resolution: int = 32,
    factor_sizes: Sequence[int] = DEFAULT_FACTOR_SIZES,
    antialias: int = 1,
) -> Tensor:
    """Render images from factor indices: ``(B, 5)`` ints -> ``(B, 1, R, R)`` float32 in ``[0, 1]``.

    Args:
        factors: Index rows ``(shape, scale, orientation, pos_x, pos_y)``, each in
            ``0..factor_sizes[i] - 1``. A single row of 5 is accepted.
        resolution: Image side ``R`` in pixels.
        factor_sizes: Number of values of each factor (they set the factor values, see
            :func:`factor_values`).
        antialias: Supersampling per axis. ``1`` gives binary images (a pixel is on when its
            centre is inside the shape); ``k > 1`` gives the fraction of ``k * k`` sub-pixel
            samples inside, in steps of ``1 / k^2``.
    """
    sizes = _check_factor_sizes(factor_sizes)
    counts = _render_counts(_check_factors(factors, sizes), resolution, sizes, antialias)
    return _to_images(counts, antialias)


def _to_images(counts: np.ndarray, antialias: int) -> Tensor:
    """uint8 sub-pixel counts ``(B, R, R)`` -> float32 images ``(B, 1, R, R)`` in ``[0, 1]``."""
    return torch.from_numpy(counts[:, None].astype(np.float32) / np.float32(antialias**2))


def _render_counts(
    factors: np.ndarray, resolution: int, sizes: Sequence[int], antialias: int
) -> np.ndarray:
    """Render checked factor rows to uint8 counts ``(B, R, R)`` of sub-pixel samples inside."""
    if not isinstance(resolution, int) or resolution < 4:
        raise ValueError(f"resolution must be an int >= 4, got {resolution!r}")
    if not isinstance(antialias, int) or not 1 <= antialias <= 15:
        raise ValueError(f"antialias must be an int in 1..15, got {antialias!r}")
    # Plain numpy in float32: single-threaded, so it neither fights DataLoader workers for
    # cores nor depends on thread scheduling; elementwise IEEE arithmetic keeps every pixel
    # independent of the batch it is rendered in.
    _, scales, angles, xs, ys = factor_values(sizes)
    cos_table = np.cos(angles).astype(np.float32)
    sin_table = np.sin(angles).astype(np.float32)
    unit = (_SIZE_UNIT * scales).astype(np.float32)
    centre_x = (_CENTRE_LOW + _CENTRE_SPAN * xs).astype(np.float32)
    centre_y = (_CENTRE_LOW + _CENTRE_SPAN * ys).astype(np.float32)

    side = resolution * antialias  # supersampled grid, sample centres in (0, 1)
    grid = ((np.arange(side, dtype=np.float64) + 0.5) / side).astype(np.float32)
    gy, gx = grid.reshape(1, side, 1), grid.reshape(1, 1, side)

    out = np.empty((len(factors), resolution, resolution), dtype=np.uint8)
    chunk = max(1, _MAX_ELEMENTS // (side * side))
    for start in range(0, len(factors), chunk):
        fc = factors[start : start + chunk]

        def col(i: int, table: np.ndarray, fc: np.ndarray = fc) -> np.ndarray:
            return table[fc[:, i]].reshape(-1, 1, 1)

        dx = gx - col(3, centre_x)  # (b, 1, side)
        dy = gy - col(4, centre_y)  # (b, side, 1)
        cos, sin, s = col(2, cos_table), col(2, sin_table), col(1, unit)
        u = (cos * dx + sin * dy) / s  # (b, side, side): rotate by -theta, then unscale
        v = (cos * dy - sin * dx) / s
        inside = _inside(fc[:, 0], u, v)
        blocks = inside.reshape(-1, resolution, antialias, resolution, antialias)
        out[start : start + chunk] = blocks.sum(axis=(2, 4), dtype=np.int32)
    return out


class ShapesDataset(Dataset):
    """dSprites-like images with their factor indices as ``(x, factors)`` items.

    ``x`` is float32 ``(1, R, R)`` in ``[0, 1]``; ``factors`` is int64 ``(5,)`` in the order of
    :data:`FACTOR_NAMES`. Items are rendered on first access (in batches with a DataLoader, via
    ``__getitems__``) and kept in a cache when it is enabled.

    Args:
        resolution: Image side in pixels (32 is quick on CPU; 64 matches dSprites).
        factor_sizes: Number of values of ``(shape, scale, orientation, pos_x, pos_y)``.
        indices: Which images: flat indices into the full factor product (C order, as
            ``numpy.ravel_multi_index``) of shape ``(N,)``, or factor index rows ``(N, 5)``.
        n: Instead of ``indices``: a uniform sample of ``n`` distinct images, drawn with
            ``seed``. With neither, the dataset is the full product.
        seed: Seed for ``n`` and for the default generator of :meth:`sample_factors`.
        antialias: Supersampling per axis; ``1`` renders binary images (see
            :func:`render_shapes`).
        cache: Keep rendered images (one byte per pixel, ``N * R * R`` bytes allocated on first
            use). ``None`` caches when that is at most 256 MiB.

    Attributes:
        factor_names: Names of the five factors.
        factor_sizes: Number of values of each factor.
    """

    factor_names: tuple[str, ...] = FACTOR_NAMES

    def __init__(
        self,
        *,
        resolution: int = 32,
        factor_sizes: Sequence[int] = DEFAULT_FACTOR_SIZES,
        indices: np.ndarray | Sequence[int] | Sequence[Sequence[int]] | None = None,
        n: int | None = None,
        seed: int = 0,
        antialias: int = 1,
        cache: bool | None = None,
    ) -> None:
        self.factor_sizes = _check_factor_sizes(factor_sizes)
        self.num_combinations = int(np.prod(self.factor_sizes))
        self.resolution = resolution
        self.antialias = antialias
        self.seed = seed
        _render_counts(np.zeros((0, 5), dtype=np.int64), resolution, self.factor_sizes, antialias)
        if indices is not None and n is not None:
            raise ValueError("ShapesDataset: give either indices or n, not both")
        self._flat: np.ndarray | None  # flat product indices; None = the full product
        if indices is not None:
            array = np.asarray(indices)
            if array.ndim == 2:
                array = self.index_of(array)
            if array.ndim != 1 or (array.size and not np.issubdtype(array.dtype, np.integer)):
                raise ValueError(
                    f"ShapesDataset: indices must be flat ints (N,) or factor rows (N, 5), "
                    f"got shape {array.shape} dtype {array.dtype}"
                )
            array = array.astype(np.int64)
            if array.size and (array.min() < 0 or array.max() >= self.num_combinations):
                raise ValueError(
                    f"ShapesDataset: flat indices must be in 0..{self.num_combinations - 1}"
                )
            self._flat = array
        elif n is not None:
            if not 1 <= n <= self.num_combinations:
                raise ValueError(f"ShapesDataset: n must be in 1..{self.num_combinations}, got {n}")
            rng = np.random.default_rng(seed)
            self._flat = rng.choice(self.num_combinations, size=n, replace=False).astype(np.int64)
        else:
            self._flat = None
        length = len(self)
        if cache is None:
            cache = length * resolution * resolution <= _AUTO_CACHE_BYTES
        self.cache = cache
        self._images: np.ndarray | None = None  # uint8 counts (N, R, R), allocated on first use
        self._rendered: np.ndarray | None = None  # bool (N,)
        self._factors: np.ndarray | None = None
        self._sample_rng = np.random.default_rng([seed, 1])  # for sample_factors

    # -- factors ------------------------------------------------------------------------------
    def __len__(self) -> int:
        return self.num_combinations if self._flat is None else len(self._flat)

    def flat_indices(self) -> np.ndarray:
        """Each item's flat index into the full factor product, ``(N,)`` int64."""
        return np.arange(len(self), dtype=np.int64) if self._flat is None else self._flat

    def factors_of(self, items: np.ndarray | Sequence[int]) -> np.ndarray:
        """Factor index rows ``(B, 5)`` int64 of the given item positions in this dataset."""
        items = np.asarray(items, dtype=np.int64)
        if items.size and (items.min() < -len(self) or items.max() >= len(self)):
            raise IndexError(f"ShapesDataset: item index out of range for length {len(self)}")
        if items.size:
            items = items % len(self)
        flat = items if self._flat is None else self._flat[items]
        return np.stack(np.unravel_index(flat, self.factor_sizes), axis=-1).astype(np.int64)

    @property
    def factors(self) -> np.ndarray:
        """Factor index rows of every item, ``(N, 5)`` int64 (computed once, then kept)."""
        if self._factors is None:
            self._factors = self.factors_of(np.arange(len(self)))
        return self._factors

    @property
    def factor_values(self) -> tuple[np.ndarray, ...]:
        """The value of every index of each factor (see :func:`factor_values`)."""
        return factor_values(self.factor_sizes)

    @property
    def latents_values(self) -> np.ndarray:
        """Factor values of every item, ``(N, 5)`` float64, like dSprites' ``latents_values``."""
        tables = self.factor_values
        f = self.factors
        return np.stack([tables[i][f[:, i]] for i in range(len(FACTOR_NAMES))], axis=1)

    def index_of(self, factors: np.ndarray | Sequence[Sequence[int]]) -> np.ndarray:
        """Flat indices into the full product of factor rows ``(B, 5)``."""
        rows = _check_factors(factors, self.factor_sizes)
        return np.ravel_multi_index(tuple(rows.T), self.factor_sizes).astype(np.int64)

    def sample_factors(
        self,
        n: int,
        *,
        rng: np.random.Generator | int | None = None,
        fixed: Mapping[str | int, int] | None = None,
    ) -> np.ndarray:
        """Draw ``n`` factor rows uniformly from the full product, ``(n, 5)`` int64.

        This samples the generative process, not this dataset's subsample, which is what
        disentanglement metrics need ("fix one factor, sample the rest"): pass
        ``fixed={"scale": 3}`` and render with :meth:`images_from_factors`.

        Args:
            n: Number of rows.
            rng: A numpy Generator, a seed, or ``None`` for the dataset's own generator
                (seeded with ``seed`` at construction and advancing with each call, so
                successive calls differ but a run is reproducible).
            fixed: Factors held at one index, keyed by name or position.
        """
        if rng is None:
            rng = self._sample_rng
        elif not isinstance(rng, np.random.Generator):
            rng = np.random.default_rng(rng)
        rows = np.stack([rng.integers(0, size, size=n) for size in self.factor_sizes], axis=1)
        for key, value in (fixed or {}).items():
            col = self._factor_position(key)
            if not 0 <= value < self.factor_sizes[col]:
                raise ValueError(
                    f"fixed {FACTOR_NAMES[col]} = {value} out of range 0..{self.factor_sizes[col] - 1}"
                )
            rows[:, col] = value
        return rows.astype(np.int64)

    def _factor_position(self, key: str | int) -> int:
        if isinstance(key, str):
            if key not in FACTOR_NAMES:
                raise KeyError(f"unknown factor {key!r}; factors are {', '.join(FACTOR_NAMES)}")
            return FACTOR_NAMES.index(key)
        if not 0 <= key < len(FACTOR_NAMES):
            raise KeyError(f"factor position {key} out of range 0..{len(FACTOR_NAMES) - 1}")
        return int(key)

    # -- images -------------------------------------------------------------------------------
    def images_from_factors(self, factors: np.ndarray | Sequence[Sequence[int]]) -> Tensor:
        """Render factor rows ``(B, 5)`` with this dataset's settings: ``(B, 1, R, R)`` float32.

        Does not touch the cache (the rows need not be items of this dataset).
        """
        return render_shapes(
            factors,
            resolution=self.resolution,
            factor_sizes=self.factor_sizes,
            antialias=self.antialias,
        )

    def _counts(self, items: np.ndarray) -> np.ndarray:
        """uint8 sub-pixel counts ``(B, R, R)`` of item positions, through the cache."""
        if not self.cache:
            return _render_counts(
                self.factors_of(items), self.resolution, self.factor_sizes, self.antialias
            )
        if self._images is None or self._rendered is None:
            r = self.resolution
            self._images = np.empty((len(self), r, r), dtype=np.uint8)
            self._rendered = np.zeros(len(self), dtype=bool)
        missing = np.unique(items[~self._rendered[items]])
        if len(missing):
            self._images[missing] = _render_counts(
                self.factors_of(missing), self.resolution, self.factor_sizes, self.antialias
            )
            self._rendered[missing] = True
        return self._images[items]

    def _items(self, positions: Sequence[int]) -> tuple[Tensor, Tensor]:
        items = np.asarray(positions, dtype=np.int64)
        if items.size and (items.min() < -len(self) or items.max() >= len(self)):
            raise IndexError(f"ShapesDataset: index out of range for length {len(self)}")
        if items.size:
            items = items % len(self)  # negative positions count from the end
        x = _to_images(self._counts(items), self.antialias)
        return x, torch.from_numpy(self.factors_of(items))

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        x, f = self._items([index])
        return x[0], f[0]

    def __getitems__(self, indices: Sequence[int]) -> list[tuple[Tensor, Tensor]]:
        """Batched access used by DataLoader: renders the batch's missing images in one call."""
        x, f = self._items(indices)
        return list(zip(x, f, strict=True))

    def images(self, items: np.ndarray | Sequence[int] | None = None) -> Tensor:
        """Images of item positions (all items when ``None``): ``(B, 1, R, R)`` float32."""
        positions = np.arange(len(self)) if items is None else items
        return self._items(positions)[0]
