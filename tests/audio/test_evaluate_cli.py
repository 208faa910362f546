"""``seqae vc-eval`` refuses bad input in one line with exit status 2, before evaluating."""

from __future__ import annotations

from pathlib import Path

import pytest

from seqae.cli import main
from tests.audio.test_convert import tiny_adain
from tests.audio.test_eval_pairs import _corpus


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_adain().save_pretrained(tmp_path_factory.mktemp("vc") / "model")


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    return lines[0]


def test_missing_corpus(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = tmp_path / "no_corpus"
    rc = main(["vc-eval", "--model", str(model_dir), "--corpus", str(corpus), "--no-probe"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and line.startswith(f"seqae vc-eval: --corpus {corpus}")
    assert "no such directory" in line


@pytest.mark.parametrize("flag", ["--seen", "--unseen"])
def test_unknown_voice(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, flag: str
) -> None:
    corpus = _corpus(tmp_path)
    other = "--unseen" if flag == "--seen" else "--seen"
    argv = ["vc-eval", "--model", str(model_dir), "--corpus", str(corpus.root), "--no-probe"]
    rc = main([*argv, flag, "kal16", "nobody", other, "awb"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and f"{flag}: voice(s) nobody not in the corpus" in line
    assert all(voice in line for voice in corpus.speakers)  # what it has
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("pairs", ["0", "-2", "many"])
def test_pairs_must_be_at_least_one(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, pairs: str
) -> None:
    corpus = _corpus(tmp_path)
    argv = ["vc-eval", "--model", str(model_dir), "--corpus", str(corpus.root), "--no-probe"]
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--seen", "kal16", "--unseen", "awb", "--pairs", pairs])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage, then the error
    assert last.startswith("seqae vc-eval: error: argument --pairs") and ">= 1" in last


def test_out_that_is_a_file(model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    corpus = _corpus(tmp_path)
    out = tmp_path / "results"
    out.write_text("not a folder")
    argv = ["vc-eval", "--model", str(model_dir), "--corpus", str(corpus.root), "--no-probe"]
    rc = main([*argv, "--seen", "kal16", "--unseen", "awb", "--out", str(out)])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and f"--out {out} is a file" in line
    assert out.read_text() == "not a folder"


def test_pair_voices_must_be_unseen_voices(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    corpus = _corpus(tmp_path)
    argv = ["vc-eval", "--model", str(model_dir), "--corpus", str(corpus.root), "--no-probe"]
    rc = main([*argv, "--seen", "kal16", "--unseen", "awb", "--pair-voices", "awb", "slt"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "--pair-voices: slt are training voices" in line
    rc = main([*argv, "--seen", "kal16", "--unseen", "awb", "--pair-voices", "awb", "nobody"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "--pair-voices: voice(s) nobody not in the corpus" in line
