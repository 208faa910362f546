"""The code-file format: header, CRCs, payload codings, and reading and writing files.

File format, version 1 (all integers little-endian)::

    offset  size  field
    0       8     magic b"SEQAECOD"
    8       2     format version (uint16), 1
    10      1     coding: 0 packed, 1 arithmetic, 2 zlib, 3 adaptive
    11      1     bits per symbol b = ceil(log2 K) (0 when K = 1)
    12      1     ndim: number of per-sample code axes
    13      16    model hash (see :func:`seqae.codes.model.model_hash`): which model made the codes
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
most significant bit first, the last byte zero-padded (:mod:`seqae.codes.bits`); ``zlib`` is
that packed stream through zlib (deflate, level 9), a general-purpose baseline; ``arithmetic``
is a static arithmetic code (Witten, Neal & Cleary 1987, "Arithmetic coding for data
compression", CACM 30(6)) under the empirical symbol distribution of the file itself, whose
(possibly rescaled) counts are the header's frequency table: side information, counted in the
file size, that pays off for large files; ``adaptive`` is an arithmetic code under a model that
learns the frequencies while coding (the Krichevsky-Trofimov estimator), with no table: the
better choice for small files (both in :mod:`seqae.codes.entropy`).

Reading checks, in order: the magic (:class:`NotACodeFileError`), the version
(:class:`UnsupportedVersionError`), the length of header and payload
(:class:`TruncatedCodeFileError`), the header and payload CRCs and the payload's own consistency
(:class:`CorruptCodeFileError`), and, when a model hash is expected, the model
(:class:`ModelMismatchError`). All are :class:`CodeFileError`, a ``ValueError``.
"""

from __future__ import annotations

import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from torch import Tensor

from seqae.codes.bits import _as_symbols, bit_width, pack_bits, unpack_bits
from seqae.codes.entropy import (
    _MAX_ARITHMETIC_SYMBOLS,
    _frequency_table,
    adaptive_decode,
    adaptive_encode,
    arithmetic_decode,
    arithmetic_encode,
)

__all__ = [
    "CODINGS",
    "FORMAT_VERSION",
    "MAGIC",
    "CodeFile",
    "CodeFileError",
    "CodeFileInfo",
    "Coding",
    "CorruptCodeFileError",
    "ModelMismatchError",
    "NotACodeFileError",
    "TruncatedCodeFileError",
    "UnsupportedVersionError",
    "decode_codes",
    "encode_codes",
    "read_codes",
    "read_header",
    "write_codes",
]

MAGIC = b"SEQAECOD"
FORMAT_VERSION = 1
Coding = Literal["packed", "arithmetic", "zlib", "adaptive"]
CODINGS: tuple[str, ...] = ("packed", "arithmetic", "zlib", "adaptive")  # ids 0, 1, 2, 3
_FIXED = struct.Struct("<8sHBBB16sIQIQI")  # magic .. payload CRC: 57 bytes
_CRC = struct.Struct("<I")
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
# the frequency table: LEB128 varints
# ---------------------------------------------------------------------------------------------
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
