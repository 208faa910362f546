"""Discrete codes on disk: a small file format, bit packing, an arithmetic coder, and a baseline.

A VQ-VAE (van den Oord et al. 2017, arXiv 1711.00937) turns an image into a few integer
indices into its codebook; storing those indices is lossy compression. This module writes and
reads such integer code arrays and measures what they cost.

    info = encode_to_file(model, x_test, "codes.sqc", coding="adaptive")   # model: VQ AE
    x_hat = decode_from_file(model, "codes.sqc")      # refuses codes made by another model
    print(info.file_bits_per_sample, info.payload_bits_per_sample)

The same from a shell (``add_parser`` adds this subcommand to ``seqae``)::

    seqae codes encode --model runs/vqvae/model --input x.npy --out codes.sqc
    seqae codes decode --model runs/vqvae/model codes.sqc --out x_hat.npy
    seqae codes info codes.sqc

File format, version 1 (all integers little-endian)::

    offset  size  field
    0       8     magic b"SEQAECOD"
    8       2     format version (uint16), 1
    10      1     coding: 0 packed, 1 arithmetic, 2 zlib, 3 adaptive
    11      1     bits per symbol b = ceil(log2 K) (0 when K = 1)
    12      1     ndim: number of per-sample code axes
    13      16    model hash (see :func:`model_hash`): which model made the codes
    29      4     K, the alphabet (codebook) size, uint32
    33      8     N, number of samples, uint64
    41      4     T, length of the frequency table in bytes, uint32
    45      8     P, payload length in bytes, uint64
    53      4     CRC32 of the payload
    57      4*nd  per-sample code shape, uint32 each
    ..      T     frequency table (arithmetic coding only): K LEB128 varints
    ..      4     CRC32 of every header byte before it (magic through table)
    ..      P     payload

Payloads: ``packed`` stores the ``N * prod(shape)`` symbols in C order at ``b`` bits each,
most significant bit first, the last byte zero-padded; ``zlib`` is that packed stream through
zlib (deflate, level 9), a general-purpose baseline; ``arithmetic`` is a static arithmetic
code (Witten, Neal & Cleary 1987, "Arithmetic coding for data compression", CACM 30(6)) under
the empirical symbol distribution of the file itself, whose (possibly rescaled) counts are the
header's frequency table: side information, counted in the file size, that pays off for large
files; ``adaptive`` is an arithmetic code under a model that learns the frequencies while
coding (the Krichevsky-Trofimov estimator), with no table: the better choice for small files.

Reading checks, in order: the magic (:class:`NotACodeFileError`), the version
(:class:`UnsupportedVersionError`), the length of header and payload
(:class:`TruncatedCodeFileError`), the header and payload CRCs and the payload's own consistency
(:class:`CorruptCodeFileError`), and, when a model hash is expected, the model
(:class:`ModelMismatchError`). All are :class:`CodeFileError`, a ``ValueError``.

Baseline: :class:`QuantizedPCA`, transform coding with PCA and a uniform scalar quantiser per
coefficient (the Karhunen-Loeve transform code of classical transform coding; Goyal 2001,
"Theoretical foundations of transform coding", IEEE Signal Processing Magazine 18(5)), writes
its quantised coefficients with the same format, so its rates are accounted for the same way.
"""

from __future__ import annotations

import argparse
import bisect
import hashlib
import io
import json
import math
import struct
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

__all__ = [
    "CODINGS",
    "FORMAT_VERSION",
    "MAGIC",
    "CodeFile",
    "CodeFileError",
    "CodeFileInfo",
    "CorruptCodeFileError",
    "ModelMismatchError",
    "NotACodeFileError",
    "QuantizedPCA",
    "TruncatedCodeFileError",
    "UnsupportedVersionError",
    "add_parser",
    "adaptive_decode",
    "adaptive_encode",
    "arithmetic_decode",
    "arithmetic_encode",
    "bit_width",
    "decode_codes",
    "decode_from_file",
    "decode_model_codes",
    "encode_codes",
    "encode_to_file",
    "empirical_entropy_bits",
    "model_codes",
    "model_hash",
    "pack_bits",
    "read_codes",
    "read_header",
    "unpack_bits",
    "write_codes",
]

MAGIC = b"SEQAECOD"
FORMAT_VERSION = 1
Coding = Literal["packed", "arithmetic", "zlib", "adaptive"]
CODINGS: tuple[str, ...] = ("packed", "arithmetic", "zlib", "adaptive")  # ids 0, 1, 2, 3
_FIXED = struct.Struct("<8sHBBB16sIQIQI")  # magic .. payload CRC: 57 bytes
_CRC = struct.Struct("<I")
_MAX_BITS = 32  # packed symbols hold at most 32 bits
_MAX_ARITHMETIC_SYMBOLS = 1 << 16  # the arithmetic coder's alphabet limit
_MAX_TOTAL = 1 << 16  # frequency tables are rescaled to at most this total
_MAX_NDIM = 255


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
class CodeFileError(ValueError):
    """A code file cannot be read or does not fit; the message says why."""


class NotACodeFileError(CodeFileError):
    """The file does not start with the seqae code-file magic bytes."""


class UnsupportedVersionError(CodeFileError):
    """The file was written in a format version this seqae cannot read."""


class TruncatedCodeFileError(CodeFileError):
    """The file ends before its header or payload does."""


class CorruptCodeFileError(CodeFileError):
    """A CRC does not match, or the payload contradicts the header."""


class ModelMismatchError(CodeFileError):
    """The codes were made by a different model than the one asked to decode them."""


# ---------------------------------------------------------------------------------------------
# bit packing
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# arithmetic coding (Witten, Neal & Cleary 1987)
# ---------------------------------------------------------------------------------------------
_TOP = (1 << 32) - 1
_HALF = 1 << 31
_QUARTER = 1 << 30
ADAPTIVE_INCREMENT = 2  # what one occurrence adds to a symbol's count (each starts at 1)
_ADAPTIVE_LIMIT = 1 << 16  # counts are halved when their total exceeds this


class _BitEncoder:
    """The coder's state: the interval ``[low, high]`` and the bits emitted so far.

    ``encode(c_lo, c_hi, total)`` narrows the interval to the symbol's slice
    ``[c_lo, c_hi) / total`` of it and shifts out every bit the interval has settled, with
    underflow ("pending bit") handling, in 32-bit integer arithmetic.
    """

    def __init__(self) -> None:
        self.low, self.high, self.pending = 0, _TOP, 0
        self.bits: list[int] = []

    def _emit(self, bit: int) -> None:
        self.bits.append(bit)
        if self.pending:
            self.bits.extend([1 - bit] * self.pending)
            self.pending = 0

    def encode(self, c_lo: int, c_hi: int, total: int) -> None:
        low, high = self.low, self.high
        span = high - low + 1
        high = low + span * c_hi // total - 1
        low = low + span * c_lo // total
        bits, pending = self.bits, self.pending
        while True:
            if high < _HALF:
                bits.append(0)
                if pending:
                    bits.extend([1] * pending)
                    pending = 0
            elif low >= _HALF:
                bits.append(1)
                if pending:
                    bits.extend([0] * pending)
                    pending = 0
                low -= _HALF
                high -= _HALF
            elif low >= _QUARTER and high < 3 * _QUARTER:
                pending += 1
                low -= _QUARTER
                high -= _QUARTER
            else:
                break
            low <<= 1
            high = (high << 1) | 1
        self.low, self.high, self.pending = low, high, pending

    def finish(self) -> bytes:
        # two more bits (and the pending ones) name a point inside [low, high]; the decoder
        # reads zeros past the end of the stream
        self.pending += 1
        self._emit(0 if self.low < _QUARTER else 1)
        return np.packbits(np.asarray(self.bits, dtype=np.uint8)).tobytes()


class _BitDecoder:
    """The decoder's mirror of :class:`_BitEncoder`: ``target(total)`` gives the cumulative
    count the next symbol's slice contains, ``consume`` removes that slice."""

    def __init__(self, data: bytes) -> None:
        self.stream = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).tolist()
        value = 0
        for i in range(32):
            value = (value << 1) | (self.stream[i] if i < len(self.stream) else 0)
        self.value, self.pos = value, 32
        self.low, self.high = 0, _TOP

    def target(self, total: int) -> int:
        return ((self.value - self.low + 1) * total - 1) // (self.high - self.low + 1)

    def consume(self, c_lo: int, c_hi: int, total: int) -> None:
        low, high, value = self.low, self.high, self.value
        span = high - low + 1
        high = low + span * c_hi // total - 1
        low = low + span * c_lo // total
        stream, pos, n = self.stream, self.pos, len(self.stream)
        while True:
            if high < _HALF:
                pass
            elif low >= _HALF:
                low -= _HALF
                high -= _HALF
                value -= _HALF
            elif low >= _QUARTER and high < 3 * _QUARTER:
                low -= _QUARTER
                high -= _QUARTER
                value -= _QUARTER
            else:
                break
            low <<= 1
            high = (high << 1) | 1
            value = (value << 1) | (stream[pos] if pos < n else 0)
            pos += 1
        self.low, self.high, self.value, self.pos = low, high, value, pos


def _cumulative(freqs: Sequence[int]) -> list[int]:
    cum = [0]
    for f in freqs:
        if f < 0:
            raise ValueError(f"frequencies must be >= 0, got {f}")
        cum.append(cum[-1] + int(f))
    if cum[-1] == 0:
        raise ValueError("frequencies must not all be zero")
    if cum[-1] > _QUARTER:
        raise ValueError(f"frequencies must sum to at most 2^30, got {cum[-1]}")
    return cum


def arithmetic_encode(symbols: Any, freqs: Sequence[int]) -> bytes:
    """Arithmetic-code ``symbols`` under a static model with the given frequencies.

    A 32-bit integer implementation of Witten, Neal & Cleary (1987, "Arithmetic coding for
    data compression", CACM 30(6)). The output is at most ``sum(-log2 p(s)) + 2`` bits,
    ``p(s) = freqs[s] / sum(freqs)``, rounded up to whole bytes.

    Args:
        symbols: Integers in ``0..len(freqs) - 1``, any shape (read in C order); each must
            have a non-zero frequency.
        freqs: Non-negative integer frequency of each symbol, summing to at most ``2^30``.
    """
    cum = _cumulative(freqs)
    total = cum[-1]
    flat = _as_symbols(symbols, codebook_size=len(freqs))
    coder = _BitEncoder()
    for s in flat.tolist():
        if cum[s] == cum[s + 1]:
            raise ValueError(f"symbol {s} has frequency 0 and cannot be coded")
        coder.encode(cum[s], cum[s + 1], total)
    return coder.finish()


def arithmetic_decode(data: bytes, freqs: Sequence[int], count: int) -> np.ndarray:
    """Decode ``count`` symbols written by :func:`arithmetic_encode` with the same ``freqs``.

    Args:
        data: The coded bytes.
        freqs: The frequencies the encoder used.
        count: Number of symbols to decode.

    Returns:
        int64 array ``(count,)``.
    """
    cum = _cumulative(freqs)
    total = cum[-1]
    coder = _BitDecoder(data)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        s = bisect.bisect_right(cum, coder.target(total)) - 1  # cum[s] <= target < cum[s + 1]
        out[i] = s
        coder.consume(cum[s], cum[s + 1], total)
    return out


class _AdaptiveModel:
    """Symbol counts that grow as symbols are coded, in a Fenwick tree (Fenwick 1994, "A new
    data structure for cumulative frequency tables"): O(log K) lookups and updates.

    Every count starts at 1 and grows by :data:`ADAPTIVE_INCREMENT` = 2 per occurrence: the
    estimate ``p(s) = (n_s + 1/2) / (n + K/2)`` after ``n`` symbols, the Krichevsky-Trofimov
    estimator (Krichevsky & Trofimov 1981, "The performance of universal encoding", IEEE
    Trans. Inf. Theory 27(2)), whose cost over the empirical entropy grows only like
    ``(K - 1)/2 log2 n`` bits. All counts are halved (rounding up) when their total passes
    ``2^16``, which keeps the arithmetic exact and lets the model follow drifting statistics.
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.freqs = [1] * size
        self.total = size
        self._rebuild()
        self.top = 1 << (size.bit_length() - 1)  # largest power of two <= size

    def _rebuild(self) -> None:
        tree = [0] * (self.size + 1)
        for i, f in enumerate(self.freqs, start=1):
            tree[i] += f
            parent = i + (i & -i)
            if parent <= self.size:
                tree[parent] += tree[i]
        self.tree = tree

    def cumulative(self, s: int) -> int:
        """Sum of the counts of symbols ``0..s-1``."""
        tree, total = self.tree, 0
        while s > 0:
            total += tree[s]
            s -= s & -s
        return total

    def find(self, target: int) -> int:
        """The symbol ``s`` with ``cumulative(s) <= target < cumulative(s + 1)``."""
        tree, pos, step = self.tree, 0, self.top
        while step:
            nxt = pos + step
            if nxt <= self.size and tree[nxt] <= target:
                pos = nxt
                target -= tree[nxt]
            step >>= 1
        return pos

    def update(self, s: int) -> None:
        self.freqs[s] += ADAPTIVE_INCREMENT
        self.total += ADAPTIVE_INCREMENT
        if self.total > _ADAPTIVE_LIMIT:
            self.freqs = [(f + 1) // 2 for f in self.freqs]
            self.total = sum(self.freqs)
            self._rebuild()
            return
        tree, i = self.tree, s + 1
        while i <= self.size:
            tree[i] += ADAPTIVE_INCREMENT
            i += i & -i


def adaptive_encode(symbols: Any, alphabet_size: int) -> bytes:
    """Arithmetic-code ``symbols`` under an adaptive model that learns their frequencies as it
    goes (Witten, Neal & Cleary 1987, Sec. "adaptive models"), so no table is stored.

    Args:
        symbols: Integers in ``0..alphabet_size - 1``, any shape (read in C order).
        alphabet_size: ``K``, at most ``2^15`` (the counts start at 1 and must leave room to
            adapt within the ``2^16`` total).
    """
    if not 1 <= alphabet_size <= _ADAPTIVE_LIMIT // 2:
        raise ValueError(f"alphabet_size must be in 1..{_ADAPTIVE_LIMIT // 2}, got {alphabet_size}")
    flat = _as_symbols(symbols, codebook_size=alphabet_size)
    model, coder = _AdaptiveModel(alphabet_size), _BitEncoder()
    for s in flat.tolist():
        c_lo = model.cumulative(s)
        coder.encode(c_lo, c_lo + model.freqs[s], model.total)
        model.update(s)
    return coder.finish()


def adaptive_decode(data: bytes, alphabet_size: int, count: int) -> np.ndarray:
    """Decode ``count`` symbols written by :func:`adaptive_encode` with the same alphabet."""
    if not 1 <= alphabet_size <= _ADAPTIVE_LIMIT // 2:
        raise ValueError(f"alphabet_size must be in 1..{_ADAPTIVE_LIMIT // 2}, got {alphabet_size}")
    model, coder = _AdaptiveModel(alphabet_size), _BitDecoder(data)
    out = np.empty(count, dtype=np.int64)
    for i in range(count):
        s = model.find(coder.target(model.total))
        out[i] = s
        c_lo = model.cumulative(s)
        coder.consume(c_lo, c_lo + model.freqs[s], model.total)
        model.update(s)
    return out


def _frequency_table(symbols: np.ndarray, codebook_size: int) -> list[int]:
    """Counts of each symbol, rescaled to a total of at most ``2^16`` (present symbols keep >= 1)."""
    counts = np.bincount(symbols, minlength=codebook_size).astype(np.int64)
    total = int(counts.sum())
    if total <= _MAX_TOTAL:
        return counts.tolist()
    budget = _MAX_TOTAL - codebook_size  # + at most one per present symbol: sum <= 2^16
    scaled = counts * budget // total + (counts > 0)
    return scaled.tolist()


def _write_varints(values: Sequence[int]) -> bytes:
    out = bytearray()
    for v in values:
        v = int(v)
        while True:
            byte = v & 0x7F
            v >>= 7
            if v:
                out.append(byte | 0x80)
            else:
                out.append(byte)
                break
    return bytes(out)


def _read_varints(data: bytes, count: int) -> list[int]:
    values: list[int] = []
    v = shift = 0
    for byte in data:
        v |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append(v)
            v = shift = 0
        elif shift > 35:
            raise CorruptCodeFileError("frequency table holds an over-long varint")
    if len(values) != count or shift:
        raise CorruptCodeFileError(
            f"frequency table holds {len(values)} complete entries, expected {count}"
        )
    return values


def empirical_entropy_bits(codes: Any, codebook_size: int) -> float:
    """Total ideal code length ``-sum log2 p(s)`` of ``codes`` under their own empirical
    distribution, in bits: the rate a static entropy coder approaches, side information excluded.

    Args:
        codes: Integer codes in ``0..codebook_size - 1``, any shape.
        codebook_size: Alphabet size ``K``.
    """
    flat = _as_symbols(codes, codebook_size=codebook_size)
    if flat.size == 0:
        return 0.0
    counts = np.bincount(flat, minlength=codebook_size).astype(np.float64)
    p = counts[counts > 0] / flat.size
    return float(-(counts[counts > 0] * np.log2(p)).sum())


# ---------------------------------------------------------------------------------------------
# the file format
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CodeFileInfo:
    """What a code file holds, and what it costs.

    Attributes:
        coding: ``"packed"``, ``"arithmetic"``, ``"zlib"`` or ``"adaptive"``.
        codebook_size: Alphabet size ``K``.
        bits: Bits per packed symbol, ``ceil(log2 K)``.
        shape: Per-sample code shape, e.g. ``(4,)`` or ``(8, 8)``.
        num_samples: ``N``.
        model_hash: 32 hex digits naming the model that made the codes.
        header_bytes: Bytes before the payload (fixed fields, shape, table, header CRC).
        payload_bytes: Bytes of the payload.
        table_bytes: Bytes of the frequency table (part of ``header_bytes``).
        payload_crc: CRC32 of the payload.
    """

    coding: str
    codebook_size: int
    bits: int
    shape: tuple[int, ...]
    num_samples: int
    model_hash: str
    header_bytes: int
    payload_bytes: int
    table_bytes: int
    payload_crc: int

    @property
    def file_bytes(self) -> int:
        """Size of the whole file: header plus payload."""
        return self.header_bytes + self.payload_bytes

    @property
    def symbols_per_sample(self) -> int:
        return math.prod(self.shape)

    @property
    def payload_bits_per_sample(self) -> float:
        """Payload bits per sample (the rate without the file's fixed overhead)."""
        return 8.0 * self.payload_bytes / self.num_samples

    @property
    def file_bits_per_sample(self) -> float:
        """Bits of the whole file per sample: header, table and payload."""
        return 8.0 * self.file_bytes / self.num_samples

    def as_dict(self) -> dict[str, Any]:
        """JSON-able summary (for ``seqae codes info`` and metrics files)."""
        return {
            "coding": self.coding,
            "codebook_size": self.codebook_size,
            "bits": self.bits,
            "shape": list(self.shape),
            "num_samples": self.num_samples,
            "model_hash": self.model_hash,
            "header_bytes": self.header_bytes,
            "table_bytes": self.table_bytes,
            "payload_bytes": self.payload_bytes,
            "file_bytes": self.file_bytes,
            "payload_bits_per_sample": self.payload_bits_per_sample,
            "file_bits_per_sample": self.file_bits_per_sample,
        }


@dataclass(frozen=True)
class CodeFile:
    """A read code file: ``codes`` ``(N, *shape)`` int64 and its :class:`CodeFileInfo`."""

    codes: np.ndarray
    info: CodeFileInfo


def _check_hash(value: str | bytes, *, what: str = "model_hash") -> bytes:
    if isinstance(value, bytes):
        raw = value
    else:
        try:
            raw = bytes.fromhex(value)
        except (ValueError, TypeError):
            raise ValueError(f"{what} must be 32 hex digits, got {value!r}") from None
    if len(raw) != 16:
        raise ValueError(f"{what} must be 16 bytes (32 hex digits), got {len(raw)} bytes")
    return raw


def encode_codes(
    codes: Any,
    *,
    codebook_size: int,
    model_hash: str | bytes,
    coding: Coding = "adaptive",
) -> bytes:
    """Serialise integer codes ``(N, *shape)`` to the bytes of a code file (see the module doc).

    Args:
        codes: Integer array or tensor, axis 0 the samples; values in ``0..codebook_size - 1``.
        codebook_size: Alphabet size ``K`` (the VQ codebook size, or ``2^b`` quantiser levels).
        model_hash: 32 hex digits (or 16 bytes) naming the model that made the codes
            (:func:`model_hash`); checked when decoding.
        coding: ``"packed"`` (``ceil(log2 K)`` bits per code), ``"arithmetic"`` (static
            arithmetic code under the file's own code frequencies, stored in the header;
            Witten et al. 1987), ``"adaptive"`` (arithmetic code under adaptively learned
            frequencies, no table; K <= 2^15) or ``"zlib"`` (the packed stream deflated).
    """
    if coding not in CODINGS:
        raise ValueError(f"unknown coding {coding!r}; expected one of {', '.join(CODINGS)}")
    if isinstance(codes, Tensor):
        codes = codes.detach().cpu().numpy()
    array = np.asarray(codes)
    if array.ndim < 1 or array.shape[0] == 0:
        raise ValueError(
            f"codes must have shape (N, *code_shape) with N >= 1 samples, got shape {array.shape}"
        )
    if array.ndim - 1 > _MAX_NDIM or any(d >= 1 << 32 for d in array.shape[1:]):
        raise ValueError(f"code shape {array.shape[1:]} is too large for the format")
    bits = bit_width(codebook_size)
    flat = _as_symbols(array, codebook_size=codebook_size)
    table = b""
    if coding == "packed":
        payload = pack_bits(flat, bits)
    elif coding == "zlib":
        payload = zlib.compress(pack_bits(flat, bits), 9)
    elif coding == "adaptive":
        payload = adaptive_encode(flat, codebook_size)
    else:
        if codebook_size > _MAX_ARITHMETIC_SYMBOLS:
            raise ValueError(
                f"arithmetic coding supports codebook_size <= {_MAX_ARITHMETIC_SYMBOLS}, got {codebook_size}"
            )
        freqs = _frequency_table(flat, codebook_size) if flat.size else [1] * codebook_size
        table = _write_varints(freqs)
        payload = arithmetic_encode(flat, freqs) if flat.size else b""
    fixed = _FIXED.pack(
        MAGIC,
        FORMAT_VERSION,
        CODINGS.index(coding),
        bits,
        array.ndim - 1,
        _check_hash(model_hash),
        codebook_size,
        array.shape[0],
        len(table),
        len(payload),
        zlib.crc32(payload),
    )
    shape = struct.pack(f"<{array.ndim - 1}I", *array.shape[1:])
    header = fixed + shape + table
    return header + _CRC.pack(zlib.crc32(header)) + payload


def _parse_header(data: bytes, *, source: str) -> tuple[CodeFileInfo, list[int] | None]:
    """Check magic, version, lengths and header CRC; returns the info and frequency table."""
    if data[: len(MAGIC)] != MAGIC[: len(data)] or (not data):
        raise NotACodeFileError(
            f"{source} is not a seqae code file (it does not start with the magic bytes {MAGIC!r})"
        )
    if len(data) < len(MAGIC) + 2:
        raise TruncatedCodeFileError(
            f"{source} is truncated: {len(data)} bytes, shorter than the {_FIXED.size}-byte header"
        )
    (version,) = struct.unpack_from("<H", data, len(MAGIC))
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"{source} is a code file of format version {version}; this seqae reads version "
            f"{FORMAT_VERSION}"
            + (" (it was written by a newer seqae)" if version > FORMAT_VERSION else "")
        )
    if len(data) < _FIXED.size:
        raise TruncatedCodeFileError(
            f"{source} is truncated: {len(data)} bytes, shorter than the {_FIXED.size}-byte header"
        )
    (_, _, coding_id, bits, ndim, raw_hash, k, n, table_len, payload_len, payload_crc) = (
        _FIXED.unpack_from(data)
    )
    header_len = _FIXED.size + 4 * ndim + table_len
    if len(data) < header_len + _CRC.size:
        raise TruncatedCodeFileError(
            f"{source} is truncated: {len(data)} bytes, but its header alone takes "
            f"{header_len + _CRC.size} bytes"
        )
    (header_crc,) = _CRC.unpack_from(data, header_len)
    if zlib.crc32(data[:header_len]) != header_crc:
        raise CorruptCodeFileError(f"{source} is corrupt: the header CRC32 does not match")
    shape = tuple(struct.unpack_from(f"<{ndim}I", data, _FIXED.size))
    if coding_id >= len(CODINGS):
        raise CorruptCodeFileError(f"{source} is corrupt: unknown coding id {coding_id}")
    coding = CODINGS[coding_id]
    if k < 1 or bits != (k - 1).bit_length() or n < 1:
        raise CorruptCodeFileError(
            f"{source} is corrupt: inconsistent header (K={k}, bits={bits}, N={n})"
        )
    table: list[int] | None = None
    if coding == "arithmetic":
        table = _read_varints(data[_FIXED.size + 4 * ndim : header_len], k)
    elif table_len:
        raise CorruptCodeFileError(f"{source} is corrupt: a {coding} file has a frequency table")
    info = CodeFileInfo(
        coding=coding,
        codebook_size=k,
        bits=bits,
        shape=shape,
        num_samples=n,
        model_hash=raw_hash.hex(),
        header_bytes=header_len + _CRC.size,
        payload_bytes=payload_len,
        table_bytes=table_len,
        payload_crc=payload_crc,
    )
    return info, table


def decode_codes(
    data: bytes, *, expected_model_hash: str | bytes | None = None, source: str = "the data"
) -> CodeFile:
    """Parse the bytes of a code file; the inverse of :func:`encode_codes`.

    Args:
        data: The file's bytes.
        expected_model_hash: When given, refuse codes made by any other model
            (:class:`ModelMismatchError`).
        source: How to name the data in error messages (the path, for :func:`read_codes`).

    Raises:
        CodeFileError: Bad magic, unsupported version, truncated, corrupt, or another model's.
    """
    info, table = _parse_header(data, source=source)
    start = info.header_bytes
    available = len(data) - start
    if available < info.payload_bytes:
        raise TruncatedCodeFileError(
            f"{source} is truncated: the header announces {info.payload_bytes} payload bytes, "
            f"only {available} follow"
        )
    if available > info.payload_bytes:
        raise CorruptCodeFileError(
            f"{source} is corrupt: {available - info.payload_bytes} unexpected bytes after the payload"
        )
    payload = data[start:]
    if zlib.crc32(payload) != info.payload_crc:
        raise CorruptCodeFileError(f"{source} is corrupt: the payload CRC32 does not match")
    if expected_model_hash is not None:
        expected = _check_hash(expected_model_hash, what="expected_model_hash").hex()
        if expected != info.model_hash:
            raise ModelMismatchError(
                f"{source} holds codes from a different model (model hash {info.model_hash}); "
                f"the model given has hash {expected}. Decode it with the model that encoded it."
            )
    count = info.num_samples * info.symbols_per_sample
    try:
        if info.coding == "packed":
            flat = unpack_bits(payload, info.bits, count)
        elif info.coding == "zlib":
            flat = unpack_bits(zlib.decompress(payload), info.bits, count)
        elif info.coding == "adaptive":
            flat = adaptive_decode(payload, info.codebook_size, count)
        else:
            assert table is not None
            flat = arithmetic_decode(payload, table, count) if count else np.zeros(0, np.int64)
    except (ValueError, zlib.error) as exc:
        raise CorruptCodeFileError(
            f"{source} is corrupt: its payload does not decode ({exc})"
        ) from exc
    if flat.size and flat.max() >= info.codebook_size:
        raise CorruptCodeFileError(
            f"{source} is corrupt: a code {flat.max()} >= codebook size {info.codebook_size}"
        )
    return CodeFile(codes=flat.reshape(info.num_samples, *info.shape), info=info)


def write_codes(
    path: str | Path,
    codes: Any,
    *,
    codebook_size: int,
    model_hash: str | bytes,
    coding: Coding = "adaptive",
) -> CodeFileInfo:
    """Write integer codes ``(N, *shape)`` to ``path`` atomically; returns what was written.

    The file appears complete or not at all (written to a temporary file, then renamed).
    Arguments as in :func:`encode_codes`.
    """
    from seqae.files import atomic_write_bytes

    data = encode_codes(codes, codebook_size=codebook_size, model_hash=model_hash, coding=coding)
    atomic_write_bytes(path, data)
    info, _ = _parse_header(data, source=str(path))
    return info


def read_codes(path: str | Path, *, expected_model_hash: str | bytes | None = None) -> CodeFile:
    """Read a code file written by :func:`write_codes`.

    Args:
        path: The file.
        expected_model_hash: Refuse codes made by a model with another hash.

    Raises:
        FileNotFoundError: No such file.
        CodeFileError: See :func:`decode_codes`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"code file {path} not found")
    return decode_codes(
        path.read_bytes(), expected_model_hash=expected_model_hash, source=str(path)
    )


def read_header(path: str | Path) -> CodeFileInfo:
    """The :class:`CodeFileInfo` of a code file, after the full integrity checks of :func:`read_codes`."""
    return read_codes(path).info


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def model_hash(model: nn.Module | Mapping[str, Tensor] | bytes) -> str:
    """32 hex digits (128 bits of SHA-256) naming a model by its config and weights.

    Two models share a hash only if they have the same ``config`` (when the module has one, as
    :class:`~seqae.core.Autoencoder` does) and bit-identical state tensors, so a code file can
    say which model made it. Device and ``requires_grad`` do not matter.

    Args:
        model: A module, a state dict, or raw bytes that identify a model.
    """
    digest = hashlib.sha256()
    if isinstance(model, bytes):
        digest.update(model)
        return digest.hexdigest()[:32]
    if isinstance(model, nn.Module):
        config = getattr(model, "config", None)
        if config is not None:
            digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        state: Mapping[str, Tensor] = model.state_dict()
    else:
        state = model
    for key in sorted(state):
        t = state[key].detach().cpu().contiguous()
        digest.update(f"{key}:{t.dtype}:{tuple(t.shape)};".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]


def _vq_of(model: nn.Module) -> nn.Module:
    bottleneck = getattr(model, "bottleneck", None)
    if bottleneck is None or not callable(getattr(bottleneck, "lookup", None)):
        raise TypeError(
            f"{type(model).__name__} has no discrete bottleneck with lookup(indices) and "
            "codebook_size (use a VQ autoencoder)"
        )
    return bottleneck


@torch.no_grad()
def model_codes(model: nn.Module, x: Tensor, *, batch_size: int = 256) -> np.ndarray:
    """Codebook indices of ``x`` under a VQ autoencoder in eval mode: ``(N, *positions)`` int64.

    Args:
        model: An autoencoder whose bottleneck returns ``info["indices"]`` (e.g. a VQ-VAE).
        x: Inputs ``(N, ...)`` of the shape the encoder expects.
        batch_size: Inputs encoded at a time.
    """
    _vq_of(model)
    if x.shape[0] == 0:
        raise ValueError("model_codes: x holds no samples")
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
        parts = [model.encode(xb.to(device)).info["indices"].cpu() for xb in x.split(batch_size)]
    finally:
        model.train(was_training)
    return torch.cat(parts).numpy().astype(np.int64)


@torch.no_grad()
def decode_model_codes(model: nn.Module, codes: Any, *, batch_size: int = 256) -> Tensor:
    """Reconstructions (likelihood means) of codebook indices ``(N, *positions)``."""
    vq = _vq_of(model)
    indices = torch.as_tensor(np.asarray(codes), dtype=torch.long)
    was_training = model.training
    model.eval()
    try:
        device = next(iter(model.parameters())).device
        out = [
            model.mean(model.decode(vq.lookup(c.to(device)))).cpu()
            for c in indices.split(batch_size)
        ]
    finally:
        model.train(was_training)
    return torch.cat(out)


def encode_to_file(
    model: nn.Module,
    x: Tensor,
    path: str | Path,
    *,
    coding: Coding = "adaptive",
    batch_size: int = 256,
) -> CodeFileInfo:
    """Encode ``x`` with a VQ autoencoder and write its codes to ``path`` (atomically).

    Args:
        model: A VQ autoencoder (bottleneck with ``codebook_size`` and ``lookup``).
        x: Inputs ``(N, ...)``.
        path: Output code file.
        coding: See :func:`encode_codes`.
        batch_size: Inputs encoded at a time.
    """
    vq = _vq_of(model)
    codes = model_codes(model, x, batch_size=batch_size)
    return write_codes(
        path,
        codes,
        codebook_size=int(vq.codebook_size),
        model_hash=model_hash(model),
        coding=coding,
    )


def decode_from_file(model: nn.Module, path: str | Path, *, batch_size: int = 256) -> Tensor:
    """Read ``path`` and decode its codes with ``model``, which must be the model that wrote it.

    Raises:
        ModelMismatchError: The file's model hash is not ``model``'s.
        CodeFileError: The file is not a readable code file.
    """
    vq = _vq_of(model)
    read = read_codes(path, expected_model_hash=model_hash(model))
    if read.info.codebook_size != vq.codebook_size:  # unreachable unless hashes collide
        raise ModelMismatchError(
            f"{path}: codebook size {read.info.codebook_size} != model's {vq.codebook_size}"
        )
    return decode_model_codes(model, read.codes, batch_size=batch_size)


# ---------------------------------------------------------------------------------------------
# the PCA baseline
# ---------------------------------------------------------------------------------------------
class QuantizedPCA:
    """PCA with a uniform scalar quantiser per coefficient: the classical transform code.

    ``x -> c = (x - mean) V_k^T`` (the first ``k`` principal axes, the Karhunen-Loeve
    transform), then each coefficient ``c_j`` is clipped to ``[lo_j, hi_j]`` and quantised to
    one of ``2^bits`` equal cells, reconstructed at the cell centre (Goyal 2001, "Theoretical
    foundations of transform coding"). Codes are integers in ``0..2^bits - 1``, shape ``(N, k)``.

    Args:
        num_components: ``k``, principal axes kept; at most the input size and the number of
            training samples.
        bits: Bits per coefficient, 1..16.
        clip_sigmas: Quantiser range per coefficient: ``None`` uses the training minimum and
            maximum; a float ``a`` uses ``+- a`` standard deviations of that coefficient (a
            narrower range trades clipping error for finer cells at low ``bits``).
    """

    def __init__(self, *, num_components: int, bits: int, clip_sigmas: float | None = None) -> None:
        if not isinstance(num_components, int) or num_components < 1:
            raise ValueError(f"num_components must be a positive int, got {num_components!r}")
        if not isinstance(bits, int) or not 1 <= bits <= 16:
            raise ValueError(f"bits must be an int in 1..16, got {bits!r}")
        if clip_sigmas is not None and not clip_sigmas > 0:
            raise ValueError(f"clip_sigmas must be positive or None, got {clip_sigmas!r}")
        self.num_components, self.bits, self.clip_sigmas = num_components, bits, clip_sigmas
        self.mean: np.ndarray | None = None  # (D,)
        self.components: np.ndarray | None = None  # (k, D)
        self.low: np.ndarray | None = None  # (k,)
        self.high: np.ndarray | None = None  # (k,)

    @property
    def codebook_size(self) -> int:
        """Levels per coefficient, ``2^bits``."""
        return 1 << self.bits

    def fit(self, x: Any, *, basis: tuple[np.ndarray, np.ndarray] | None = None) -> QuantizedPCA:
        """Fit the principal axes and quantiser ranges on training data ``(N, ...)``.

        Args:
            x: Training data.
            basis: ``(mean, axes)`` from :meth:`principal_axes` of the same ``x``, to reuse one
                decomposition across many codecs (a grid of ``k`` and ``bits``).
        """
        data = _as_matrix(x)
        n, d = data.shape
        if self.num_components > min(n, d):
            raise ValueError(
                f"num_components={self.num_components} exceeds min(samples, features) = "
                f"min({n}, {d})"
            )
        mean, axes = basis if basis is not None else self.principal_axes(data)
        if axes.shape[1] != d or axes.shape[0] < self.num_components:
            raise ValueError(
                f"basis axes of shape {axes.shape} do not fit {d} features and "
                f"{self.num_components} components"
            )
        self.mean = np.asarray(mean, dtype=np.float64)
        self.components = np.asarray(axes[: self.num_components], dtype=np.float64)
        coeffs = (data - self.mean) @ self.components.T  # (N, k)
        if self.clip_sigmas is None:
            self.low, self.high = coeffs.min(axis=0), coeffs.max(axis=0)
        else:
            spread = self.clip_sigmas * coeffs.std(axis=0)
            self.low, self.high = -spread, spread
        same = self.high <= self.low
        self.high = np.where(same, self.low + 1e-12, self.high)
        return self

    @staticmethod
    def principal_axes(x: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean ``(D,)`` and principal axes ``(min(N, D), D)`` of ``x``, by variance, descending."""
        data = _as_matrix(x)
        mean = data.mean(axis=0)
        # torch's SVD follows torch's thread setting (numpy's BLAS threads can thrash on a
        # busy machine)
        _, _, vt = torch.linalg.svd(torch.from_numpy(data - mean), full_matrices=False)
        return mean, vt.numpy()

    def _fitted(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        if self.mean is None or self.components is None or self.low is None or self.high is None:
            raise RuntimeError("QuantizedPCA is not fitted; call fit(x_train) first")
        return self.mean, self.components, self.low, self.high

    def encode(self, x: Any) -> np.ndarray:
        """Quantised coefficients of ``x``: int64 ``(N, k)`` in ``0..2^bits - 1``."""
        mean, comps, low, high = self._fitted()
        data = _as_matrix(x)
        if data.shape[1] != mean.shape[0]:
            raise ValueError(f"expected {mean.shape[0]} features per sample, got {data.shape[1]}")
        step = (high - low) / self.codebook_size
        cells = np.floor(((data - mean) @ comps.T - low) / step)
        return np.clip(cells, 0, self.codebook_size - 1).astype(np.int64)

    def decode(self, codes: Any) -> np.ndarray:
        """Reconstructions ``(N, D)`` float64 from :meth:`encode`'s codes."""
        mean, comps, low, high = self._fitted()
        q = np.asarray(codes, dtype=np.float64)
        step = (high - low) / self.codebook_size
        return mean + (low + (q + 0.5) * step) @ comps

    @property
    def hash(self) -> str:
        """:func:`model_hash` of the fitted transform and quantiser (for code files)."""
        mean, comps, low, high = self._fitted()
        blob = b"".join(a.astype("<f8").tobytes() for a in (mean, comps, low, high)) + struct.pack(
            "<II", self.num_components, self.bits
        )
        return model_hash(blob)


def _as_matrix(x: Any) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    data = np.asarray(x, dtype=np.float64)
    if data.ndim < 2 or data.shape[0] == 0:
        raise ValueError(f"expected data of shape (N, ...) with N >= 1, got shape {data.shape}")
    data = data.reshape(data.shape[0], -1)
    if not np.isfinite(data).all():
        raise ValueError("data holds NaN or infinite values")
    return data


# ---------------------------------------------------------------------------------------------
# the `seqae codes` command
# ---------------------------------------------------------------------------------------------
def _load_array(path: str, key: str | None) -> np.ndarray:
    p = Path(path)
    if not p.is_file():
        raise SystemExit(f"seqae codes: input {p} not found")
    if p.suffix == ".npz":
        with np.load(p) as archive:
            names = list(archive.files)
            if key is None:
                if len(names) != 1:
                    raise SystemExit(
                        f"seqae codes: {p} holds arrays {names}; choose one with --key"
                    )
                key = names[0]
            if key not in names:
                raise SystemExit(f"seqae codes: {p} has no array {key!r}; it holds {names}")
            return np.asarray(archive[key])
    try:
        return np.load(p, allow_pickle=False)
    except ValueError as exc:
        raise SystemExit(f"seqae codes: cannot read {p} as a .npy array ({exc})") from None


def _cmd_encode(args: argparse.Namespace) -> int:
    from seqae.core import Autoencoder

    model = Autoencoder.from_pretrained(args.model)
    x = torch.as_tensor(_load_array(args.input, args.key), dtype=torch.float32)
    try:
        info = encode_to_file(model, x, args.out, coding=args.coding, batch_size=args.batch_size)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"seqae codes encode: {exc}") from None
    print(
        f"wrote {args.out}: {info.num_samples} samples x {info.shape} codes, "
        f"K={info.codebook_size}, {info.coding}: {info.file_bytes} bytes (header "
        f"{info.header_bytes}, payload {info.payload_bytes}) = "
        f"{info.file_bits_per_sample:.2f} bits/sample ({info.payload_bits_per_sample:.2f} payload)"
    )
    return 0


def _cmd_decode(args: argparse.Namespace) -> int:
    from seqae.core import Autoencoder
    from seqae.files import atomic_write_bytes

    model = Autoencoder.from_pretrained(args.model)
    try:
        x_hat = decode_from_file(model, args.codes, batch_size=args.batch_size)
    except (CodeFileError, FileNotFoundError, TypeError) as exc:
        raise SystemExit(f"seqae codes decode: {exc}") from None
    buffer = io.BytesIO()
    np.save(buffer, x_hat.numpy())
    atomic_write_bytes(args.out, buffer.getvalue())
    print(f"wrote {args.out}: reconstructions of shape {tuple(x_hat.shape)}")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    try:
        info = read_header(args.codes)
    except (CodeFileError, FileNotFoundError) as exc:
        raise SystemExit(f"seqae codes info: {exc}") from None
    print(json.dumps(info.as_dict(), indent=2))
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae codes encode|decode|info`` to an argparse subparsers object.

    The ``cli`` component of the registry: each subcommand's parser has a ``func`` default that
    takes the parsed arguments and returns an exit status.

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "codes", help="encode data to a code file with a VQ model, decode it, or describe it"
    )
    sub = parser.add_subparsers(dest="codes_command", required=True)

    enc = sub.add_parser("encode", help="encode an array of inputs to a code file")
    enc.add_argument("--model", required=True, help="saved model directory (save_pretrained)")
    enc.add_argument("--input", required=True, help=".npy or .npz array of inputs (N, ...)")
    enc.add_argument("--key", default=None, help="array name inside an .npz input")
    enc.add_argument("--out", required=True, help="code file to write")
    enc.add_argument("--coding", choices=CODINGS, default="adaptive")
    enc.add_argument("--batch-size", type=int, default=256)
    enc.set_defaults(func=_cmd_encode)

    dec = sub.add_parser("decode", help="decode a code file to reconstructions (.npy)")
    dec.add_argument("codes", help="code file")
    dec.add_argument("--model", required=True, help="the saved model that wrote the codes")
    dec.add_argument("--out", required=True, help=".npy file for the reconstructions")
    dec.add_argument("--batch-size", type=int, default=256)
    dec.set_defaults(func=_cmd_decode)

    info = sub.add_parser("info", help="print a code file's header as JSON (after checking it)")
    info.add_argument("codes", help="code file")
    info.set_defaults(func=_cmd_info)
    return parser
