"""seqae.codes: bit packing, the arithmetic coder, the code-file format, model hashes, PCA, CLI."""

from __future__ import annotations

import argparse
import json
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
    QuantizedPCA,
    TruncatedCodeFileError,
    UnsupportedVersionError,
    adaptive_decode,
    adaptive_encode,
    add_parser,
    arithmetic_decode,
    arithmetic_encode,
    bit_width,
    decode_codes,
    decode_from_file,
    empirical_entropy_bits,
    encode_codes,
    encode_to_file,
    model_codes,
    model_hash,
    pack_bits,
    read_codes,
    read_header,
    unpack_bits,
    write_codes,
)
from seqae.core import Autoencoder

HASH = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"
FIXED_HEADER = 57  # bytes of fixed fields before the shape, table and header CRC


# ---------------------------------------------------------------------------------------------
# bit packing
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bits", range(1, 17))
@pytest.mark.parametrize("count", [1, 7, 8, 9, 1001])
def test_pack_round_trip_every_bit_width(bits: int, count: int) -> None:
    rng = np.random.default_rng(bits * 1000 + count)
    values = rng.integers(0, 1 << bits, size=count)
    values[0] = (1 << bits) - 1  # the largest value, all bits set
    if count > 1:
        values[1] = 0
    data = pack_bits(values, bits)
    assert len(data) == math.ceil(count * bits / 8)
    np.testing.assert_array_equal(unpack_bits(data, bits, count), values)


def test_pack_is_msb_first_and_zero_padded() -> None:
    assert pack_bits([1, 0, 1], 1) == bytes([0b10100000])
    assert pack_bits([5, 3], 3) == bytes([0b10101100])
    assert pack_bits([0xABC], 12) == bytes([0xAB, 0xC0])


def test_pack_wide_and_empty_widths() -> None:
    values = np.array([0, 1, 2**32 - 1, 123456789])
    np.testing.assert_array_equal(unpack_bits(pack_bits(values, 32), 32, 4), values)
    assert pack_bits([0, 0, 0], 0) == b""
    np.testing.assert_array_equal(unpack_bits(b"", 0, 3), [0, 0, 0])


def test_pack_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match=r"0\.\.7"):
        pack_bits([8], 3)
    with pytest.raises(ValueError, match="range"):
        pack_bits([-1], 3)
    with pytest.raises(TypeError, match="integers"):
        pack_bits([0.5], 3)
    with pytest.raises(ValueError, match="bits"):
        pack_bits([1], 33)
    with pytest.raises(ValueError, match="need 2 bytes"):
        unpack_bits(b"\x00", 4, 3)


@pytest.mark.parametrize(
    ("k", "bits"), [(1, 0), (2, 1), (3, 2), (4, 2), (5, 3), (256, 8), (257, 9)]
)
def test_bit_width(k: int, bits: int) -> None:
    assert bit_width(k) == bits


# ---------------------------------------------------------------------------------------------
# arithmetic coding
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("k", "concentration", "n"),
    [(2, 1.0, 3000), (3, 0.2, 3000), (16, 1.0, 5000), (256, 0.3, 5000), (4096, 5.0, 3000)],
)
def test_arithmetic_round_trip_and_near_entropy(k: int, concentration: float, n: int) -> None:
    rng = np.random.default_rng(k)
    p = rng.dirichlet(np.full(k, concentration))
    symbols = rng.choice(k, size=n, p=p)
    freqs = np.bincount(symbols, minlength=k).tolist()
    data = arithmetic_encode(symbols, freqs)
    np.testing.assert_array_equal(arithmetic_decode(data, freqs, n), symbols)
    ideal = empirical_entropy_bits(symbols, k)
    # Witten-Neal-Cleary: at most 2 bits over the ideal length, plus byte padding
    assert ideal - 1e-6 <= 8 * len(data) <= ideal + 2 + 7


def test_arithmetic_single_symbol_and_skipped_zero_frequencies() -> None:
    symbols = np.full(500, 3)
    freqs = [0, 0, 0, 500, 0]
    data = arithmetic_encode(symbols, freqs)
    assert len(data) <= 1  # zero information: only the two termination bits
    np.testing.assert_array_equal(arithmetic_decode(data, freqs, 500), symbols)
    mixed = np.array([1, 4, 4, 1, 4])
    freqs = [0, 2, 0, 0, 3]
    np.testing.assert_array_equal(
        arithmetic_decode(arithmetic_encode(mixed, freqs), freqs, 5), mixed
    )


def test_arithmetic_refuses_uncodable_input() -> None:
    with pytest.raises(ValueError, match="frequency 0"):
        arithmetic_encode([0, 1], [5, 0])
    with pytest.raises(ValueError, match="all be zero"):
        arithmetic_encode([0], [0, 0])
    with pytest.raises(ValueError, match=r"0\.\.1"):
        arithmetic_encode([2], [1, 1])


@pytest.mark.parametrize(("k", "n"), [(1, 100), (2, 3000), (16, 5000), (256, 5000), (4096, 3000)])
def test_adaptive_round_trip_and_near_entropy(k: int, n: int) -> None:
    rng = np.random.default_rng(k + 7)
    symbols = rng.choice(k, size=n, p=rng.dirichlet(np.full(k, 0.5)))
    data = adaptive_encode(symbols, k)
    np.testing.assert_array_equal(adaptive_decode(data, k, n), symbols)
    ideal = empirical_entropy_bits(symbols, k)
    # Krichevsky-Trofimov: the price of learning is about (K - 1)/2 log2 n bits over the
    # empirical entropy (plus O(K) and byte padding)
    assert ideal <= 8 * len(data) <= ideal + (k - 1) / 2 * math.log2(n) + 2 * k + 16


def test_adaptive_halves_its_counts_and_follows_drift() -> None:
    rng = np.random.default_rng(0)
    # 150k symbols (the counts are halved several times), statistics changing half-way
    symbols = np.concatenate([rng.choice(3, 75_000, p=[0.9, 0.05, 0.05]),
                              rng.choice(3, 75_000, p=[0.05, 0.05, 0.9])])  # fmt: skip
    data = adaptive_encode(symbols, 3)
    np.testing.assert_array_equal(adaptive_decode(data, 3, len(symbols)), symbols)
    # halving the counts forgets the first half: the cost (0.80 bits/symbol here) lies between
    # the halves' own entropy (0.57) and the pooled entropy a static model pays (1.23)
    pooled = empirical_entropy_bits(symbols, 3)
    halves = empirical_entropy_bits(symbols[:75_000], 3) + empirical_entropy_bits(
        symbols[75_000:], 3
    )
    assert halves < 8 * len(data) < 0.7 * pooled


def test_adaptive_refuses_large_alphabets() -> None:
    with pytest.raises(ValueError, match="alphabet_size"):
        adaptive_encode([0], 1 << 16)


def test_empirical_entropy_bits() -> None:
    assert empirical_entropy_bits([0, 0, 1, 1], 2) == pytest.approx(4.0)
    assert empirical_entropy_bits([0, 0, 0, 1], 4) == pytest.approx(
        -(3 * math.log2(0.75) + math.log2(0.25))
    )
    assert empirical_entropy_bits([2, 2, 2], 3) == 0.0


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


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def _vq_model(seed: int = 0, *, codes: int = 3, k: int = 8) -> Autoencoder:
    torch.manual_seed(seed)
    return Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 12, "hidden": [16], "out_dim": codes * 4,
                        "out_shape": [codes, 4]},
            "bottleneck": {"name": "vq", "dim": 4, "codebook_size": k},
            "decoder": {"name": "mlp", "in_dim": codes * 4, "hidden": [16], "out_dim": 12},
        }
    )  # fmt: skip


def test_model_hash_names_config_and_weights(tmp_path: Path) -> None:
    a = _vq_model(0)
    assert model_hash(a) == model_hash(_vq_model(0))
    assert len(model_hash(a)) == 32
    assert model_hash(a) != model_hash(_vq_model(1))  # other weights
    assert model_hash(a) != model_hash(_vq_model(0, k=9))  # other config
    a.save_pretrained(tmp_path / "m")
    assert model_hash(Autoencoder.from_pretrained(tmp_path / "m")) == model_hash(a)
    with torch.no_grad():
        a.bottleneck.embed[0, 0] += 1e-6
    assert model_hash(a) != model_hash(_vq_model(0))
    assert model_hash(b"x") != model_hash(b"y")


@pytest.mark.parametrize("coding", CODINGS)
def test_model_round_trip_through_a_file(tmp_path: Path, coding: str) -> None:
    model = _vq_model(0)
    x = torch.rand(50, 12)
    path = tmp_path / "codes.sqc"
    info = encode_to_file(model, x, path, coding=coding, batch_size=16)
    assert info.shape == (3,) and info.num_samples == 50 and info.codebook_size == 8
    assert info.model_hash == model_hash(model)
    np.testing.assert_array_equal(read_codes(path).codes, model_codes(model, x))
    assert torch.equal(decode_from_file(model, path), model.reconstruct(x))
    torch.testing.assert_close(decode_from_file(model, path, batch_size=7), model.reconstruct(x))
    with pytest.raises(ModelMismatchError, match="different model"):
        decode_from_file(_vq_model(1), path)


def test_model_helpers_refuse_models_without_codes() -> None:
    plain = Autoencoder.stacked([12, 4])
    with pytest.raises(TypeError, match="discrete bottleneck"):
        model_codes(plain, torch.rand(3, 12))
    with pytest.raises(ValueError, match="no samples"):
        model_codes(_vq_model(), torch.rand(0, 12))


# ---------------------------------------------------------------------------------------------
# the PCA baseline
# ---------------------------------------------------------------------------------------------
def test_quantized_pca() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 10))  # rank 6 in 10 dimensions
    errors = []
    for bits in (1, 2, 4, 8, 16):
        codec = QuantizedPCA(num_components=6, bits=bits).fit(x)
        codes = codec.encode(x)
        assert codes.shape == (300, 6) and codes.min() >= 0 and codes.max() < 2**bits
        errors.append(float(np.mean((codec.decode(codes) - x) ** 2)))
    assert all(a > b for a, b in zip(errors, errors[1:], strict=False))  # more bits, less error
    assert errors[-1] < 1e-6 * np.var(x)  # 16 bits on every axis of a rank-6 set: near exact
    basis = QuantizedPCA.principal_axes(x)
    reused = QuantizedPCA(num_components=6, bits=16).fit(x, basis=basis)
    np.testing.assert_array_equal(reused.encode(x), codec.encode(x))  # same decomposition
    clipped = QuantizedPCA(num_components=3, bits=2, clip_sigmas=2.0).fit(x)
    assert clipped.hash != QuantizedPCA(num_components=3, bits=2).fit(x).hash
    assert clipped.codebook_size == 4


def test_quantized_pca_bad_settings() -> None:
    x = np.random.default_rng(0).normal(size=(5, 4))
    with pytest.raises(ValueError, match=r"exceeds min\(samples, features\)"):
        QuantizedPCA(num_components=5, bits=2).fit(x)
    with pytest.raises(ValueError, match="bits"):
        QuantizedPCA(num_components=1, bits=0)
    with pytest.raises(RuntimeError, match="not fitted"):
        QuantizedPCA(num_components=1, bits=2).encode(x)
    with pytest.raises(ValueError, match="expected 4 features"):
        QuantizedPCA(num_components=1, bits=2).fit(x).encode(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        QuantizedPCA(num_components=1, bits=2).fit(np.full((3, 4), np.nan))


# ---------------------------------------------------------------------------------------------
# the `seqae codes` command
# ---------------------------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqae")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def _run(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    return args.func(args)


def test_cli_encode_info_decode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = _vq_model(0)
    model.save_pretrained(tmp_path / "model")
    x = np.random.default_rng(0).random((40, 12)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    codes, out = tmp_path / "codes.sqc", tmp_path / "x_hat.npy"
    assert _run(["codes", "encode", "--model", str(tmp_path / "model"), "--input",
                 str(tmp_path / "x.npy"), "--out", str(codes), "--coding", "packed"]) == 0  # fmt: skip
    assert "40 samples" in capsys.readouterr().out
    assert _run(["codes", "info", str(codes)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["num_samples"] == 40 and info["coding"] == "packed"
    assert info["file_bytes"] == codes.stat().st_size
    assert info["model_hash"] == model_hash(model)
    assert (
        _run(["codes", "decode", str(codes), "--model", str(tmp_path / "model"), "--out", str(out)])
        == 0
    )
    np.testing.assert_array_equal(np.load(out), model.reconstruct(torch.from_numpy(x)).numpy())

    _vq_model(1).save_pretrained(tmp_path / "other")
    with pytest.raises(SystemExit, match="different model"):
        _run(["codes", "decode", str(codes), "--model", str(tmp_path / "other"), "--out", str(out)])
    (tmp_path / "junk").write_bytes(b"junk")
    with pytest.raises(SystemExit, match="not a seqae code file"):
        _run(["codes", "info", str(tmp_path / "junk")])


def test_cli_npz_input_and_bad_inputs(tmp_path: Path) -> None:
    _vq_model(0).save_pretrained(tmp_path / "model")
    np.savez(tmp_path / "d.npz", a=np.zeros((4, 12), np.float32), b=np.zeros((4, 5), np.float32))
    base = ["codes", "encode", "--model", str(tmp_path / "model"), "--out", str(tmp_path / "c")]
    with pytest.raises(SystemExit, match="choose one with --key"):
        _run([*base, "--input", str(tmp_path / "d.npz")])
    assert _run([*base, "--input", str(tmp_path / "d.npz"), "--key", "a"]) == 0
    assert read_header(tmp_path / "c").num_samples == 4
    with pytest.raises(SystemExit, match="MLP expects input"):  # wrong shape for the model
        _run([*base, "--input", str(tmp_path / "d.npz"), "--key", "b"])
    np.save(tmp_path / "empty.npy", np.zeros((0, 12), np.float32))
    with pytest.raises(SystemExit, match="no samples"):
        _run([*base, "--input", str(tmp_path / "empty.npy")])
    with pytest.raises(SystemExit, match="not found"):
        _run([*base, "--input", str(tmp_path / "nope.npy")])
    with pytest.raises(SystemExit):  # argparse: a subcommand is required
        _parser().parse_args(["codes"])


def test_registered_as_a_cli_component(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The core plugin registers ``add_parser`` as the ``cli`` component ``codes``."""
    from seqae import cli, registry

    assert registry.get("cli", "codes") is add_parser
    write_codes(tmp_path / "c.sqc", [[1, 2, 3]], codebook_size=4, model_hash=HASH)
    assert cli.main(["codes", "info", str(tmp_path / "c.sqc")]) == 0
    assert json.loads(capsys.readouterr().out)["shape"] == [3]
