"""Datasets read from a user's files, and the input checks recipes share.

- :class:`NpzDataset`: arrays saved with ``numpy.savez`` / ``numpy.savez_compressed``.
- :class:`ImageFolderDataset`: PNG/JPEG images in ``root/`` (unlabelled) or in
  ``root/<class>/`` subfolders (the sorted folder names become labels ``0..C-1``).
- :func:`validate_array`: one place for bad-input errors (wrong shape, empty, NaN/inf,
  non-numeric dtype), so every recipe reports them the same way.

Every dataset here returns a tuple whose first element is ``x``: ``(x,)`` without labels and
``(x, y)`` with them, like :class:`torch.utils.data.TensorDataset`. A batch therefore always
unpacks as ``x, *rest = batch``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

__all__ = ["IMAGE_EXTENSIONS", "ImageFolderDataset", "NpzDataset", "validate_array"]

IMAGE_EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg")


def validate_array(
    x: Any,
    *,
    name: str = "x",
    expected_ndim: int | Sequence[int] | None = None,
    expected_shape: Sequence[int | None] | None = None,
    allow_empty: bool = False,
    require_finite: bool = True,
) -> Any:
    """Check an array or tensor and raise a clear error naming it; return it unchanged.

    Args:
        x: A :class:`numpy.ndarray` or :class:`torch.Tensor`.
        name: What to call ``x`` in error messages (a file name, ``"train images"``, ...).
        expected_ndim: Required number of dimensions, or a sequence of allowed numbers.
        expected_shape: Required shape; ``None`` entries match any size, e.g.
            ``(None, 1, 28, 28)``. Implies the number of dimensions.
        allow_empty: Accept an array with zero elements.
        require_finite: Reject NaN and +/-inf (the message gives how many there are).

    Raises:
        TypeError: ``x`` is not an array/tensor, or its dtype is not numeric (bool counts as
            numeric).
        ValueError: wrong number of dimensions, wrong shape, empty, or non-finite values.
    """
    if isinstance(x, Tensor):
        is_numeric = not x.is_complex()
        is_float = x.is_floating_point()
    elif isinstance(x, np.ndarray):
        is_numeric = np.issubdtype(x.dtype, np.number) or x.dtype == np.bool_
        is_numeric = is_numeric and not np.issubdtype(x.dtype, np.complexfloating)
        is_float = np.issubdtype(x.dtype, np.floating)
    else:
        raise TypeError(f"{name}: expected a numpy array or torch tensor, got {type(x).__name__}")
    if not is_numeric:
        raise TypeError(f"{name}: expected a real numeric dtype, got {x.dtype}")

    shape = tuple(x.shape)
    if expected_shape is not None:
        expected = tuple(expected_shape)
        matches = len(shape) == len(expected) and all(
            e is None or e == s for e, s in zip(expected, shape, strict=True)
        )
        if not matches:
            pretty = "(" + ", ".join("*" if e is None else str(e) for e in expected) + ")"
            raise ValueError(f"{name}: expected shape {pretty}, got {shape}")
    if expected_ndim is not None:
        allowed = (expected_ndim,) if isinstance(expected_ndim, int) else tuple(expected_ndim)
        if len(shape) not in allowed:
            want = " or ".join(str(a) for a in allowed)
            raise ValueError(
                f"{name}: expected {want} dimensions, got {len(shape)} (shape {shape})"
            )
    size = x.numel() if isinstance(x, Tensor) else x.size
    if size == 0 and not allow_empty:
        raise ValueError(f"{name}: is empty (shape {shape})")
    if require_finite and is_float and size > 0:
        bad = (
            int((~torch.isfinite(x)).sum())
            if isinstance(x, Tensor)
            else int((~np.isfinite(x)).sum())
        )
        if bad:
            raise ValueError(f"{name}: contains {bad} non-finite values (NaN or inf) out of {size}")
    return x


# --------------------------------------------------------------------------------------------
# .npz arrays
# --------------------------------------------------------------------------------------------
def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every array of an ``.npz`` file, turning numpy's many failure modes into one error."""
    if not path.exists():
        raise FileNotFoundError(f"NpzDataset: no such file: {path}")
    if path.is_dir():
        raise IsADirectoryError(f"NpzDataset: {path} is a directory, expected an .npz file")
    if path.stat().st_size == 0:
        raise ValueError(f"NpzDataset: {path} is empty (0 bytes), expected an .npz archive")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"NpzDataset: {path} is not a valid .npz file (write one with numpy.savez): {err}"
        ) from err
    if isinstance(loaded, np.ndarray):
        raise ValueError(
            f"NpzDataset: {path} holds a single .npy array, expected an .npz archive of named "
            "arrays (write one with numpy.savez(path, x=...))"
        )
    try:
        with loaded:
            return {k: loaded[k] for k in loaded.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as err:
        raise ValueError(f"NpzDataset: {path} is a corrupt .npz file: {err}") from err


class NpzDataset(Dataset):
    """Examples stored as arrays in a ``.npz`` file, indexed along axis 0.

    Items are ``(x,)`` or, with ``label_key``, ``(x, y)`` with ``y`` an int64 scalar tensor.

    Args:
        path: The ``.npz`` file.
        key: Name of the data array inside the file (axis 0 indexes examples).
        label_key: Name of an optional label array of shape ``(N,)`` with integer values.
        dtype: Floating dtype the data are converted to.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: the file is empty or not a valid ``.npz``; the data hold NaN/inf (the
            message names the file and the count); labels have the wrong length.
        KeyError: ``key`` or ``label_key`` is missing (the message lists the available keys).
        TypeError: an array is not numeric, or labels are not integers.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        key: str = "x",
        label_key: str | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.path = Path(path)
        arrays = _load_npz(self.path)
        available = ", ".join(sorted(arrays)) or "(none)"
        for wanted in (key, label_key):
            if wanted is not None and wanted not in arrays:
                raise KeyError(
                    f"NpzDataset: {self.path} has no array {wanted!r}; available keys: {available}"
                )
        data = arrays[key]
        validate_array(data, name=f"{self.path} [{key!r}]")
        if data.ndim == 0:
            raise ValueError(
                f"NpzDataset: {self.path} [{key!r}] is a scalar, expected examples on axis 0"
            )
        self.x = torch.as_tensor(data).to(dtype)
        self.y: Tensor | None = None
        if label_key is not None:
            labels = arrays[label_key]
            where = f"{self.path} [{label_key!r}]"
            validate_array(labels, name=where, expected_ndim=1)
            integral = np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_
            if not integral and np.issubdtype(labels.dtype, np.floating):
                integral = bool(np.all(labels == np.round(labels)))  # e.g. 0.0, 1.0, 2.0
            if not integral:
                raise TypeError(f"{where}: labels must be integers, got dtype {labels.dtype}")
            if len(labels) != len(data):
                raise ValueError(
                    f"{where}: {len(labels)} labels for {len(data)} examples in {key!r}"
                )
            self.y = torch.as_tensor(labels).to(torch.int64)
        self.key = key
        self.label_key = label_key

    def __len__(self) -> int:
        return self.x.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        if self.y is None:
            return (self.x[index],)
        return self.x[index], self.y[index]

    def get_batch(self, indices: Tensor | Sequence[int]) -> tuple[Tensor, ...]:
        """Items ``indices`` as one batch, ``(x,)`` or ``(x, y)`` with a leading batch axis:
        the stacked items, read with one gather (what :func:`seqae.training.make_loader`
        uses)."""
        return self[torch.as_tensor(indices, dtype=torch.long)]


# --------------------------------------------------------------------------------------------
# Image folders
# --------------------------------------------------------------------------------------------
def _image_files(folder: Path, extensions: tuple[str, ...]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in extensions)


class ImageFolderDataset(Dataset):
    """Images read with PIL from ``root/`` or from ``root/<class>/`` subfolders.

    Layouts:

    - images directly in ``root``: unlabelled, items are ``(x,)``;
    - images in subfolders of ``root``: each subfolder is a class, labels are the indices of the
      sorted folder names (:attr:`classes`), items are ``(x, y)``. Subfolders without images
      are skipped. Mixing the two layouts is an error.

    ``x`` is a float32 tensor in ``[0, 1]`` of shape ``(1, H, W)`` (grayscale) or ``(3, H, W)``.
    Images are decoded on access; a file PIL cannot read raises an error naming it.

    Args:
        root: The folder.
        size: Resize every image to ``size`` (an int for square images, or ``(height, width)``)
            with bilinear filtering. Without it all images must already share a size to be
            batched by a DataLoader.
        grayscale: Convert to one channel (PIL mode ``"L"``); otherwise to RGB.
        extensions: File suffixes read as images (case-insensitive).
        verify: Open every image at construction, so a broken file fails early instead of in
            the middle of training.

    Raises:
        FileNotFoundError: ``root`` does not exist or is not a folder.
        ValueError: no images found, mixed layouts, bad ``size``, or (with ``verify``) an
            unreadable image.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        size: int | tuple[int, int] | None = None,
        grayscale: bool = True,
        extensions: Sequence[str] = IMAGE_EXTENSIONS,
        verify: bool = False,
    ) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"ImageFolderDataset: no such folder: {self.root}")
        exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        if isinstance(size, int):
            size = (size, size)
        if size is not None and (len(size) != 2 or min(size) < 1):
            raise ValueError(f"ImageFolderDataset: size must be positive, got {size}")
        self.size: tuple[int, int] | None = None if size is None else (int(size[0]), int(size[1]))
        self.grayscale = grayscale

        top = _image_files(self.root, exts)
        subdirs = sorted(p for p in self.root.iterdir() if p.is_dir())
        per_class = {d.name: _image_files(d, exts) for d in subdirs}
        per_class = {name: files for name, files in per_class.items() if files}
        if top and per_class:
            raise ValueError(
                f"ImageFolderDataset: {self.root} has images both at the top level and in "
                f"subfolders ({', '.join(per_class)}); use one layout"
            )
        if not top and not per_class:
            raise ValueError(
                f"ImageFolderDataset: no images ({', '.join(exts)}) in {self.root} or its "
                "immediate subfolders"
            )
        self.classes: list[str] = list(per_class)
        self.files: list[Path] = top or [f for files in per_class.values() for f in files]
        self.labels: Tensor | None = None
        if per_class:
            self.labels = torch.tensor(
                [i for i, files in enumerate(per_class.values()) for _ in files],
                dtype=torch.int64,
            )
        if verify:
            for i in range(len(self.files)):
                self._load(i)

    def __len__(self) -> int:
        return len(self.files)

    def _load(self, index: int) -> Tensor:
        from PIL import Image, UnidentifiedImageError

        path = self.files[index]
        try:
            with Image.open(path) as image:
                image = image.convert("L" if self.grayscale else "RGB")
                if self.size is not None:
                    height, width = self.size
                    image = image.resize((width, height), Image.Resampling.BILINEAR)
                array = np.asarray(image, dtype=np.uint8)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise ValueError(f"ImageFolderDataset: cannot read image {path}: {err}") from err
        x = torch.from_numpy(array.copy()).to(torch.float32).div_(255.0)
        return x.unsqueeze(0) if x.dim() == 2 else x.permute(2, 0, 1).contiguous()

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:
        x = self._load(index)
        if self.labels is None:
            return (x,)
        return x, self.labels[index]
