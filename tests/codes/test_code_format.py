"""seqae.codes.format: code-file round trips, rate accounting, and every reading error."""

from __future__ import annotations

import math
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae.codes import (
    CODINGS,
    FORMAT_VERSION,
    MAGIC,
    CodeFileError,
    CorruptCodeFileError,
    ModelMismatchError,
    NotACodeFileError,
    TruncatedCodeFileError,
    UnsupportedVersionError,
    bit_width,
    decode_codes,
    empirical_entropy_bits,
    encode_codes,
    read_codes,
    write_codes,
)

HASH = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
FIXED_HEADER = 57  # bytes of fixed fields before the shape, table and header CRC


# ---------------------------------------------------------------------------------------------
# the file format: round trips and rate accounting
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", CODINGS)
@pytest.mark.parametrize(("k", "shape"), [(2, (5,)), (16, (3, 4)), (256, (2, 2, 2)), (1000, ())])
def test_file_round_trip(tmp_path: Path, coding: str, k: int, shape: tuple[int, ...]) -> None:
    rng = np.random.default_rng(k)
    codes = rng.integers(0, k, size=(37, *shape))
    path = tmp_path / "codes.sqc"
    info = write_codes(path, codes, codebook_size=k, model_hash=HASH, coding=coding)
    read = read_codes(path, expected_model_hash=HASH)
    np.testing.assert_array_equal(read.codes, codes)
    assert read.codes.dtype == np.int64
    assert read.info == info
    assert (info.coding, info.codebook_size, info.shape, info.num_samples) == (coding, k, shape, 37)
    assert info.model_hash == HASH and info.bits == bit_width(k)


def test_one_symbol_alphabet_and_tensor_input(tmp_path: Path) -> None:
    for coding in CODINGS:
        info = write_codes(
            tmp_path / coding, torch.zeros(10, 3, dtype=torch.long), codebook_size=1,
            model_hash=HASH, coding=coding,
        )  # fmt: skip
        assert info.bits == 0
        np.testing.assert_array_equal(read_codes(tmp_path / coding).codes, np.zeros((10, 3)))


@pytest.mark.parametrize("coding", CODINGS)
def test_rate_accounting_matches_file_size(tmp_path: Path, coding: str) -> None:
    rng = np.random.default_rng(0)
    n, shape, k = 120, (4,), 64
    codes = rng.choice(k, size=(n, *shape), p=rng.dirichlet(np.full(k, 0.3)))
    path = tmp_path / "c.sqc"
    info = write_codes(path, codes, codebook_size=k, model_hash=HASH, coding=coding)
    size = path.stat().st_size
    assert size == info.file_bytes == info.header_bytes + info.payload_bytes
    assert info.file_bits_per_sample == pytest.approx(8 * size / n)
    assert info.payload_bits_per_sample == pytest.approx(8 * info.payload_bytes / n)
    assert info.header_bytes == FIXED_HEADER + 4 * len(shape) + info.table_bytes + 4
    symbols = n * math.prod(shape)
    if coding == "packed":
        assert info.table_bytes == 0
        assert info.payload_bytes == math.ceil(symbols * 6 / 8)  # ceil(log2 64) = 6 bits
    if coding == "arithmetic":
        assert info.table_bytes >= k  # one varint per code
        ideal = empirical_entropy_bits(codes, k)
        assert ideal <= 8 * info.payload_bytes <= ideal + 2 + 7
        assert 8 * info.payload_bytes < symbols * 6  # skewed codes: cheaper than packing
    if coding == "adaptive":
        assert info.table_bytes == 0
        assert 8 * info.payload_bytes < symbols * 6
    assert info.as_dict()["file_bytes"] == size


def test_frequency_table_is_rescaled_for_large_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    codes = rng.choice(4, size=(100_000,), p=[0.7, 0.2, 0.0999, 0.0001])
    info = write_codes(tmp_path / "c", codes, codebook_size=4, model_hash=HASH)
    np.testing.assert_array_equal(read_codes(tmp_path / "c").codes, codes)
    ideal = empirical_entropy_bits(codes, 4)
    assert 8 * info.payload_bytes <= ideal * 1.001 + 16  # rescaled model costs almost nothing


def test_adaptive_beats_a_stored_table_on_small_files() -> None:
    codes = np.random.default_rng(0).integers(0, 256, size=(100, 2))
    sizes = {c: len(encode_codes(codes, codebook_size=256, model_hash=HASH, coding=c))
             for c in ("arithmetic", "adaptive")}  # fmt: skip
    assert sizes["adaptive"] < sizes["arithmetic"]  # a 256-entry table is dear for 200 codes


def test_write_is_atomic(tmp_path: Path) -> None:
    path = tmp_path / "codes.sqc"
    write_codes(path, [[1, 2]], codebook_size=4, model_hash=HASH)
    before = path.read_bytes()
    with pytest.raises(ValueError, match=r"0\.\.3"):
        write_codes(path, [[1, 9]], codebook_size=4, model_hash=HASH)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["codes.sqc"]  # no temporary left over


def test_encode_refuses_bad_arguments() -> None:
    with pytest.raises(ValueError, match="N >= 1"):
        encode_codes(np.zeros((0, 3), dtype=int), codebook_size=4, model_hash=HASH)
    with pytest.raises(ValueError, match="coding"):
        encode_codes([[0]], codebook_size=4, model_hash=HASH, coding="huffman")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="32 hex"):
        encode_codes([[0]], codebook_size=4, model_hash="abc")
    with pytest.raises(ValueError, match="codebook_size"):
        encode_codes([[0]], codebook_size=0, model_hash=HASH)


# ---------------------------------------------------------------------------------------------
# the file format: errors
# ---------------------------------------------------------------------------------------------
def _file(coding: str = "arithmetic") -> bytes:
    codes = np.random.default_rng(0).integers(0, 32, size=(20, 3))
    return encode_codes(codes, codebook_size=32, model_hash=HASH, coding=coding)


@pytest.mark.parametrize(
    "data", [b"", b"PK\x03\x04 a zip file, not codes", b"\x93NUMPY", b"SEQAECOX" + bytes(100)]
)
def test_bad_magic(tmp_path: Path, data: bytes) -> None:
    (tmp_path / "x").write_bytes(data)
    with pytest.raises(NotACodeFileError, match="not a seqae code file"):
        read_codes(tmp_path / "x")


@pytest.mark.parametrize("coding", CODINGS)
def test_every_truncation_is_reported(coding: str) -> None:
    data = _file(coding)
    for cut in range(1, len(data)):
        with pytest.raises(TruncatedCodeFileError, match="truncated"):
            decode_codes(data[:cut])


def test_truncated_file_on_disk(tmp_path: Path) -> None:
    data = _file()
    (tmp_path / "t").write_bytes(data[:-3])
    with pytest.raises(TruncatedCodeFileError, match=r"payload bytes, only \d+ follow"):
        read_codes(tmp_path / "t")


@pytest.mark.parametrize("coding", CODINGS)
def test_corrupt_payload_and_header(coding: str) -> None:
    data = bytearray(_file(coding))
    payload = bytearray(data)
    payload[-1] ^= 0x01
    with pytest.raises(CorruptCodeFileError, match="payload CRC32"):
        decode_codes(bytes(payload))
    header = bytearray(data)
    header[33] ^= 0x01  # the sample count
    with pytest.raises(CorruptCodeFileError, match="header CRC32"):
        decode_codes(bytes(header))
    with pytest.raises(CorruptCodeFileError, match="unexpected bytes after the payload"):
        decode_codes(bytes(data) + b"\x00")


def test_wrong_version() -> None:
    data = bytearray(_file())
    struct.pack_into("<H", data, len(MAGIC), FORMAT_VERSION + 1)
    with pytest.raises(UnsupportedVersionError, match=f"version {FORMAT_VERSION + 1}.*newer"):
        decode_codes(bytes(data))
    struct.pack_into("<H", data, len(MAGIC), 0)
    with pytest.raises(UnsupportedVersionError, match=f"reads version {FORMAT_VERSION}"):
        decode_codes(bytes(data))


def test_codes_from_a_different_model() -> None:
    data = _file()
    with pytest.raises(ModelMismatchError, match=f"different model.*{HASH}.*{OTHER}"):
        decode_codes(data, expected_model_hash=OTHER)
    assert decode_codes(data, expected_model_hash=HASH).info.model_hash == HASH


def test_crc_matching_but_inconsistent_payload_is_corrupt() -> None:
    """A payload rewritten with a valid CRC but holding codes >= K still fails loudly."""
    good = _file("packed")
    info = decode_codes(good).info
    payload = b"\xff" * info.payload_bytes  # every 5-bit code = 31 < 32: valid; make K smaller
    fixed = struct.pack("<8sHBBB16sIQIQI", MAGIC, FORMAT_VERSION, 0, 5, 1, bytes.fromhex(HASH),
                        20, 20, 0, len(payload), zlib.crc32(payload))  # fmt: skip
    header = fixed + struct.pack("<I", 3)
    data = header + struct.pack("<I", zlib.crc32(header)) + payload
    with pytest.raises(CorruptCodeFileError, match="code 31 >= codebook size 20"):
        decode_codes(data)


def test_errors_are_value_errors_and_missing_file(tmp_path: Path) -> None:
    assert issubclass(CodeFileError, ValueError)
    with pytest.raises(FileNotFoundError, match="not found"):
        read_codes(tmp_path / "missing.sqc")
