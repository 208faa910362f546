"""Image data for the VQ-VAE recipes: the 8x8 digits, procedural shapes or an ``.npz`` file,
split into train, validation and test tensors with values in ``[0, 1]``.

    splits = load_image_splits(cfg["data"], seed=0)
    splits.train.shape     # (N, 64) digits, or (N, C, R, R) images

The settings are a recipe config's ``data`` block:

- ``name``: ``digits`` (scikit-learn's 8x8 digits as vectors of 64 values ``v / 16``),
  ``shapes`` (:class:`~seqae.data.ShapesDataset`, ``(N, 1, R, R)``) or ``npz`` (a user's file);
- ``val_fraction``, ``test_fraction``: the split, seeded, every part non-empty;
- ``shapes``: ``n`` (a random subsample of the factor product), ``resolution``, ``antialias``;
- ``path``, ``key``: the ``.npz`` file and the name of its image array, ``(N, R, R)`` or
  ``(N, C, R, R)``.

:func:`check_image_data_settings` refuses impossible settings before anything is loaded;
:func:`load_image_splits` checks what it loads (:class:`ImageDataError`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import Tensor

from seqae.config import ConfigError
from seqae.data.digits import load_digits_splits
from seqae.data.files import NpzDataset, validate_array
from seqae.data.shapes import DEFAULT_FACTOR_SIZES, ShapesDataset
from seqae.errors import UsageError

__all__ = [
    "IMAGE_DATASETS",
    "SHAPES_TOTAL",
    "ImageDataError",
    "ImageSplits",
    "check_image_data_settings",
    "load_image_splits",
    "split_images",
]

#: The values of ``data.name``.
IMAGE_DATASETS = ("digits", "shapes", "npz")
#: Images in the full shapes factor product (the largest ``data.shapes.n``).
SHAPES_TOTAL = math.prod(DEFAULT_FACTOR_SIZES)


class ImageDataError(UsageError, ValueError):
    """The data cannot be used: unreadable, the wrong shape, values outside ``[0, 1]``, or too
    few samples to split. A user's mistake (``seqae`` prints one line), and a ValueError."""


class ImageSplits(NamedTuple):
    """Train/validation/test inputs: ``(N, 64)`` digits or ``(N, C, R, R)`` images in [0, 1]."""

    train: Tensor
    val: Tensor
    test: Tensor


def check_image_data_settings(data_cfg: Mapping[str, Any], *, prefix: str = "data.") -> None:
    """Refuse impossible data settings before anything is loaded.

    Args:
        data_cfg: The ``data`` block (see the module docstring).
        prefix: How the block is named in messages (``"vqvae.data."`` in a nested config).

    Raises:
        ConfigError: One line naming the setting and what was expected.
    """
    name = data_cfg["name"]
    if name not in IMAGE_DATASETS:
        raise ConfigError(f"{prefix}name must be one of {', '.join(IMAGE_DATASETS)}, got {name!r}")
    for key in ("val_fraction", "test_fraction"):
        if not 0.0 < data_cfg[key] < 1.0:
            raise ConfigError(f"{prefix}{key} must be in (0, 1), got {data_cfg[key]}")
    if data_cfg["val_fraction"] + data_cfg["test_fraction"] >= 1.0:
        raise ConfigError(
            f"{prefix}val_fraction + {prefix}test_fraction must be < 1 (some data must be left "
            f"to train on), got {data_cfg['val_fraction']} + {data_cfg['test_fraction']}"
        )
    if name == "shapes":
        s = data_cfg["shapes"]
        if not 3 <= s["n"] <= SHAPES_TOTAL:
            raise ConfigError(
                f"{prefix}shapes.n must be in 3..{SHAPES_TOTAL} (the full factor product), "
                f"got {s['n']}"
            )
        if s["resolution"] < 4:
            raise ConfigError(f"{prefix}shapes.resolution must be >= 4, got {s['resolution']}")
    if name == "npz" and not data_cfg["path"]:
        raise ConfigError(f"{prefix}name=npz needs {prefix}path, an .npz file with an image array")


def split_images(
    x: Tensor, *, val_fraction: float, test_fraction: float, seed: int, name: str
) -> ImageSplits:
    """A seeded random split of ``x`` along its first axis.

    Args:
        x: The samples, ``(N, ...)``.
        val_fraction: Share of the samples for validation (rounded).
        test_fraction: Share of the samples for the test set (rounded).
        seed: Seed of the permutation.
        name: What to call the data in the error message.

    Raises:
        ImageDataError: A part would be empty.
    """
    n = x.shape[0]
    n_test, n_val = round(n * test_fraction), round(n * val_fraction)
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise ImageDataError(
            f"{name}: {n} samples are too few to split into non-empty train/val/test parts with "
            f"val_fraction={val_fraction} and test_fraction={test_fraction}"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return ImageSplits(
        train=x[order[n_test + n_val :]],
        val=x[order[n_test : n_test + n_val]],
        test=x[order[:n_test]],
    )


def load_image_splits(data_cfg: Mapping[str, Any], *, seed: int) -> ImageSplits:
    """The configured data, split and checked: non-empty, finite, square images, in [0, 1].

    Args:
        data_cfg: The ``data`` block (see the module docstring).
        seed: Seed of the split (and of the shapes' subsample).

    Raises:
        ImageDataError: The ``.npz`` file cannot be read or its images cannot be used.
    """
    fractions = {k: data_cfg[k] for k in ("val_fraction", "test_fraction")}
    name = data_cfg["name"]
    if name == "digits":
        digits = load_digits_splits(**fractions, seed=seed)
        return ImageSplits(*(part.tensors()[0] for part in digits))
    if name == "shapes":
        s = data_cfg["shapes"]
        images = ShapesDataset(
            n=s["n"], seed=seed, resolution=s["resolution"], antialias=s["antialias"]
        ).images()  # (N, 1, R, R)
        return split_images(images, **fractions, seed=seed, name="shapes")
    where = f"{data_cfg['path']} [{data_cfg['key']!r}]"
    try:
        x = NpzDataset(data_cfg["path"], key=data_cfg["key"]).x
        validate_array(x, name=where, expected_ndim=(3, 4))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        raise ImageDataError(message) from None
    if x.dim() == 3:
        x = x.unsqueeze(1)  # (N, R, R) -> (N, 1, R, R)
    if x.shape[2] != x.shape[3]:
        raise ImageDataError(
            f"{where}: expected square images (N, R, R) or (N, C, R, R), got shape {tuple(x.shape)}"
        )
    if x.min() < 0 or x.max() > 1:
        raise ImageDataError(
            f"{where}: pixel values must be in [0, 1], got range [{x.min():.3g}, {x.max():.3g}]"
        )
    return split_images(x, **fractions, seed=seed, name=where)
