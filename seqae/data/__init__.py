"""Datasets: embedded (8x8 digits, procedural dSprites-like shapes) and user files.

Every dataset returns a tuple whose first element is ``x`` (``(x, y)``, ``(x, factors)`` or
``(x,)``), so a batch always unpacks as ``x, *rest = batch``. Nothing here downloads: the digits
ship with scikit-learn and the shapes are rendered from their factors.
"""

from seqae.data.digits import (
    DigitsDataset,
    DigitsSplits,
    discrete_nll_bound,
    load_digits_arrays,
    load_digits_splits,
)
from seqae.data.files import ImageFolderDataset, NpzDataset, validate_array
from seqae.data.shapes import (
    DEFAULT_FACTOR_SIZES,
    FACTOR_NAMES,
    SHAPE_NAMES,
    ShapesDataset,
    factor_values,
    render_shapes,
)

__all__ = [
    "DEFAULT_FACTOR_SIZES",
    "FACTOR_NAMES",
    "SHAPE_NAMES",
    "DigitsDataset",
    "DigitsSplits",
    "ImageFolderDataset",
    "NpzDataset",
    "ShapesDataset",
    "discrete_nll_bound",
    "factor_values",
    "load_digits_arrays",
    "load_digits_splits",
    "render_shapes",
    "validate_array",
]
