"""seqae.codes.command: ``seqae codes encode|decode|info``, and how it refuses a user's mistakes.

Every refusal goes through :func:`seqae.cli.main`, as from a shell: one line on stderr and exit
status 2, with nothing written.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae import cli
from seqae.codes import add_parser, model_hash, read_header, save_with_data_range, write_codes
from seqae.core.saving import CONFIG_NAME, WEIGHTS_NAME
from tests.codes.vq_models import vq_model

HASH = "0123456789abcdef0123456789abcdef"


def _main(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """``seqae ARGV`` as from a shell: exit status, stdout, stderr."""
    capsys.readouterr()
    status = cli.main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str], match: str) -> str:
    """Run ``argv``, check it is refused with one line and exit status 2; return that line."""
    status, out, err = _main(argv, capsys)
    assert status == 2, (status, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqae: error: "), err
    assert match in lines[0], (match, lines[0])
    return lines[0]


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A saved VQ autoencoder (Gaussian likelihood, no recorded data range)."""
    vq_model(0).save_pretrained(tmp_path / "model")
    return tmp_path / "model"


@pytest.fixture
def x_path(tmp_path: Path) -> Path:
    """40 inputs of 12 values in [0, 1], as .npy."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 12)).astype(np.float32))
    return tmp_path / "x.npy"


def test_cli_encode_info_decode(
    tmp_path: Path, model_dir: Path, x_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = vq_model(0)
    x = np.load(x_path)
    codes, out = tmp_path / "codes.sqc", tmp_path / "x_hat.npy"
    status, stdout, _ = _main(["codes", "encode", "--model", str(model_dir), "--input", str(x_path),
                               "--out", str(codes), "--coding", "packed"], capsys)  # fmt: skip
    assert status == 0 and "40 samples" in stdout
    status, stdout, _ = _main(["codes", "info", str(codes)], capsys)
    assert status == 0
    info = json.loads(stdout)
    assert info["num_samples"] == 40 and info["coding"] == "packed"
    assert info["file_bytes"] == codes.stat().st_size
    assert info["model_hash"] == model_hash(model)
    status, _, _ = _main(["codes", "decode", str(codes), "--model", str(model_dir),
                          "--out", str(out)], capsys)  # fmt: skip
    assert status == 0
    np.testing.assert_array_equal(np.load(out), model.reconstruct(torch.from_numpy(x)).numpy())

    vq_model(1).save_pretrained(tmp_path / "other")
    _refused(["codes", "decode", str(codes), "--model", str(tmp_path / "other"),
              "--out", str(tmp_path / "o.npy")], capsys, "different model")  # fmt: skip
    (tmp_path / "junk").write_bytes(b"junk")
    _refused(["codes", "info", str(tmp_path / "junk")], capsys, "not a seqae code file")
    _refused(["codes", "info", str(tmp_path / "missing.sqc")], capsys, "not found")
    assert not (tmp_path / "o.npy").exists()


def test_cli_npz_input_and_bad_inputs(
    tmp_path: Path, model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every refusal of a bad input exits 2 with one line (it used to exit 1)."""
    np.savez(tmp_path / "d.npz", a=np.zeros((4, 12), np.float32), b=np.zeros((4, 5), np.float32))
    base = ["codes", "encode", "--model", str(model_dir), "--out", str(tmp_path / "c")]
    _refused([*base, "--input", str(tmp_path / "d.npz")], capsys, "choose one with --key")
    _refused([*base, "--input", str(tmp_path / "d.npz"), "--key", "z"], capsys, "no array 'z'")
    assert _main([*base, "--input", str(tmp_path / "d.npz"), "--key", "a"], capsys)[0] == 0
    assert read_header(tmp_path / "c").num_samples == 4
    (tmp_path / "c").unlink()
    # wrong shape for the model
    _refused([*base, "--input", str(tmp_path / "d.npz"), "--key", "b"], capsys, "MLP expects input")
    np.save(tmp_path / "empty.npy", np.zeros((0, 12), np.float32))
    _refused([*base, "--input", str(tmp_path / "empty.npy")], capsys, "no samples")
    _refused([*base, "--input", str(tmp_path / "nope.npy")], capsys, "not found")
    (tmp_path / "garbage.npy").write_bytes(b"not an array")
    _refused([*base, "--input", str(tmp_path / "garbage.npy")], capsys, "cannot read")
    np.save(tmp_path / "x.npy", np.zeros((4, 12), np.float32))
    _refused([*base, "--input", str(tmp_path / "x.npy"), "--batch-size", "0"], capsys,
             "--batch-size must be a positive integer")  # fmt: skip
    _refused([*base, "--input", str(tmp_path / "x.npy"), "--model", str(tmp_path / "none")],
             capsys, "does not exist")  # fmt: skip
    assert not (tmp_path / "c").exists()
    with pytest.raises(SystemExit) as exc:  # argparse: a subcommand is required
        cli.main(["codes"])
    assert exc.value.code == 2


@pytest.mark.parametrize("link", [False, True], ids=["same-path", "symlink"])
def test_encode_out_equal_to_its_input_is_refused(
    tmp_path: Path,
    model_dir: Path,
    x_path: Path,
    capsys: pytest.CaptureFixture[str],
    link: bool,
) -> None:
    """``--out`` naming the input (or a link to it) used to overwrite the inputs with codes."""
    out = x_path
    if link:
        out = tmp_path / "link.npy"
        os.symlink(x_path, out)
    before = x_path.read_bytes()
    line = _refused(["codes", "encode", "--model", str(model_dir), "--input", str(x_path),
                     "--out", str(out)], capsys, "--out")  # fmt: skip
    assert "is also an input" in line
    assert x_path.read_bytes() == before
    # the model's own files are inputs too
    weights = model_dir / WEIGHTS_NAME
    saved = weights.read_bytes()
    _refused(["codes", "encode", "--model", str(model_dir), "--input", str(x_path),
              "--out", str(weights)], capsys, "is also an input")  # fmt: skip
    assert weights.read_bytes() == saved


@pytest.mark.parametrize("target", ["codes", "link", "config"])
def test_decode_out_equal_to_its_input_is_refused(
    tmp_path: Path,
    model_dir: Path,
    x_path: Path,
    capsys: pytest.CaptureFixture[str],
    target: str,
) -> None:
    """``decode FILE --out FILE`` used to overwrite the code file with its reconstructions."""
    codes = tmp_path / "codes.sqc"
    assert _main(["codes", "encode", "--model", str(model_dir), "--input", str(x_path),
                  "--out", str(codes)], capsys)[0] == 0  # fmt: skip
    out = {"codes": codes, "link": tmp_path / "link.sqc", "config": model_dir / CONFIG_NAME}[target]
    if target == "link":
        os.symlink(codes, out)
    before = {p: p.read_bytes() for p in (codes, model_dir / CONFIG_NAME)}
    _refused(["codes", "decode", str(codes), "--model", str(model_dir), "--out", str(out)],
             capsys, "is also an input")  # fmt: skip
    assert {p: p.read_bytes() for p in before} == before


@pytest.mark.parametrize("recorded", [False, True], ids=["bernoulli", "recorded-range"])
@pytest.mark.parametrize(
    "make",
    [lambda x: np.rint(x * 16).astype(np.int64), lambda x: x * 1e6],  # raw digit pixels 0..16
    ids=["0-16", "times-1e6"],
)
def test_encode_refuses_inputs_outside_the_models_range(
    tmp_path: Path,
    x_path: Path,
    capsys: pytest.CaptureFixture[str],
    recorded: bool,
    make: Callable[[np.ndarray], np.ndarray],
) -> None:
    """Inputs far from what the model was trained on used to be coded without a word."""
    if recorded:  # a Gaussian model whose training recipe recorded the data's range
        save_with_data_range(vq_model(0), tmp_path / "model", data_range=(0.0, 1.0))
    else:  # a Bernoulli likelihood: data in [0, 1]
        vq_model(0, likelihood="bernoulli").save_pretrained(tmp_path / "model")
    bad = make(np.load(x_path))
    np.save(tmp_path / "bad.npy", bad)
    out = tmp_path / "codes.sqc"
    observed = f"values in [{bad.min():.4g}, {bad.max():.4g}]"
    line = _refused(["codes", "encode", "--model", str(tmp_path / "model"), "--input",
                     str(tmp_path / "bad.npy"), "--out", str(out)], capsys, observed)  # fmt: skip
    assert "outside [0, 1], the range the model was trained on" in line
    assert str(tmp_path / "bad.npy") in line
    assert not out.exists()
    # the same model takes the data in range
    assert _main(["codes", "encode", "--model", str(tmp_path / "model"), "--input",
                  str(x_path), "--out", str(out)], capsys)[0] == 0  # fmt: skip


def test_encode_without_a_known_range_checks_only_finiteness(
    tmp_path: Path, model_dir: Path, x_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A Gaussian model saved without a recorded range cannot tell a wrong scale."""
    np.save(tmp_path / "big.npy", np.load(x_path) * 16)
    out = tmp_path / "codes.sqc"
    assert _main(["codes", "encode", "--model", str(model_dir), "--input",
                  str(tmp_path / "big.npy"), "--out", str(out)], capsys)[0] == 0  # fmt: skip


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_encode_refuses_nan_and_inf(
    tmp_path: Path,
    model_dir: Path,
    x_path: Path,
    capsys: pytest.CaptureFixture[str],
    bad: float,
) -> None:
    x = np.load(x_path)
    x[5, 7] = bad
    np.save(tmp_path / "bad.npy", x)
    out = tmp_path / "codes.sqc"
    _refused(["codes", "encode", "--model", str(model_dir), "--input", str(tmp_path / "bad.npy"),
              "--out", str(out)], capsys, "holds 1 NaN or infinite values (of 480)")  # fmt: skip
    assert not out.exists()


@pytest.mark.parametrize("command", ["encode", "decode"])
def test_a_voice_conversion_model_folder_is_refused(
    tmp_path: Path, x_path: Path, capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """A saved model of another kind (config.json's model_type) is one line, not a traceback."""
    folder = tmp_path / "vc"
    folder.mkdir()
    document = {"model_type": "adain_vc", "format_version": 2, "seqae_version": "0.1.0",
                "config": {"n_mels": 80}}  # fmt: skip
    (folder / CONFIG_NAME).write_text(json.dumps(document))
    (folder / WEIGHTS_NAME).write_bytes(b"")
    codes, out = tmp_path / "codes.sqc", tmp_path / "out"
    write_codes(codes, [[1, 2, 3]], codebook_size=8, model_hash=HASH)
    args = (
        ["encode", "--input", str(x_path)] if command == "encode" else ["decode", str(codes)]
    )  # fmt: skip
    line = _refused(["codes", *args, "--model", str(folder), "--out", str(out)], capsys,
                    "holds a 'adain_vc' model")  # fmt: skip
    assert "expected 'autoencoder'" in line
    assert not out.exists()


def test_registered_as_a_cli_component(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The core plugin registers ``add_parser`` as the ``cli`` component ``codes``."""
    from seqae import codes, registry

    assert registry.get("cli", "codes") is add_parser is codes.add_parser
    write_codes(tmp_path / "c.sqc", [[1, 2, 3]], codebook_size=4, model_hash=HASH)
    status, out, _ = _main(["codes", "info", str(tmp_path / "c.sqc")], capsys)
    assert status == 0
    assert json.loads(out)["shape"] == [3]
