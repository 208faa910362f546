"""Bit packing: integer symbols at ``b = ceil(log2 K)`` bits each, most significant bit first.

The ``packed`` payload of a code file (:mod:`seqae.codes.format`) and the input of its ``zlib``
one; :func:`bit_width` is the ``b`` of an alphabet of ``K`` symbols.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["bit_width", "pack_bits", "unpack_bits"]

_MAX_BITS = 32  # packed symbols hold at most 32 bits


def bit_width(codebook_size: int) -> int:
    """Bits per packed symbol for an alphabet of ``codebook_size``: ``ceil(log2 K)`` (0 if K = 1).

    Args:
        codebook_size: Alphabet size ``K`` >= 1 (a VQ codebook size, or ``2^b`` levels).
    """
    if not isinstance(codebook_size, int | np.integer) or codebook_size < 1:
        raise ValueError(f"codebook_size must be a positive integer, got {codebook_size!r}")
    bits = (int(codebook_size) - 1).bit_length()
    if bits > _MAX_BITS:
        raise ValueError(
            f"codebook_size {codebook_size} needs {bits} bits per symbol; at most {_MAX_BITS} are supported"
        )
    return bits


def _as_symbols(
    values: Any, *, codebook_size: int | None = None, bits: int | None = None
) -> np.ndarray:
    """Integer array -> flat int64 array, checked against ``codebook_size`` or ``bits``."""
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"codes must be integers, got dtype {array.dtype}")
    flat = array.astype(np.int64, copy=False).reshape(-1)
    limit = (
        codebook_size if codebook_size is not None else (1 << bits if bits is not None else None)
    )
    if flat.size and (flat.min() < 0 or (limit is not None and flat.max() >= limit)):
        what = f"codebook_size={codebook_size}" if codebook_size is not None else f"{bits} bits"
        raise ValueError(
            f"codes must be in 0..{limit - 1 if limit is not None else 'inf'} for {what}, "
            f"got range [{flat.min()}, {flat.max()}]"
        )
    return flat


def pack_bits(values: Any, bits: int) -> bytes:
    """Pack non-negative integers at ``bits`` bits each, most significant bit first.

    Args:
        values: Integers in ``0..2^bits - 1``, any shape (read in C order).
        bits: Bits per value, 0..32; ``0`` packs nothing (an alphabet of one symbol).

    Returns:
        ``ceil(len * bits / 8)`` bytes; the unused low bits of the last byte are zero.
    """
    if not isinstance(bits, int) or not 0 <= bits <= _MAX_BITS:
        raise ValueError(f"bits must be an int in 0..{_MAX_BITS}, got {bits!r}")
    flat = _as_symbols(values, bits=bits)
    if bits == 0 or flat.size == 0:
        return b""
    shifts = np.arange(bits - 1, -1, -1, dtype=np.int64)  # (bits,) MSB first
    bit_matrix = ((flat[:, None] >> shifts) & 1).astype(np.uint8)  # (n, bits)
    return np.packbits(bit_matrix.reshape(-1)).tobytes()


def unpack_bits(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``count`` integers of ``bits`` bits, as int64 ``(count,)``.

    Args:
        data: Packed bytes; must hold exactly ``ceil(count * bits / 8)`` bytes.
        bits: Bits per value, 0..32.
        count: Number of values.
    """
    if not isinstance(bits, int) or not 0 <= bits <= _MAX_BITS:
        raise ValueError(f"bits must be an int in 0..{_MAX_BITS}, got {bits!r}")
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    expected = (count * bits + 7) // 8
    if len(data) != expected:
        raise ValueError(f"{count} values of {bits} bits need {expected} bytes, got {len(data)}")
    if bits == 0 or count == 0:
        return np.zeros(count, dtype=np.int64)
    bit_array = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    weights = np.int64(1) << np.arange(bits - 1, -1, -1, dtype=np.int64)  # (bits,)
    return bit_array.reshape(count, bits).astype(np.int64) @ weights
