"""``seqae summarize`` (issue 19): a summarizer folder (a tiny untrained generator whose ``</s>``
is suppressed, so every summary has exactly ``--max-words`` words, with its tokenizer beside it)
on plain and JSON Lines input, standard input/output, greedy and beam decoding, truncation,
blank lines, and every kind of bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from seqae.extras import missing_modules

if missing_modules("text"):
    pytest.skip("seqae's text extra is not installed", allow_module_level=True)

from seqae.cli import main  # noqa: E402
from seqae.text.generator import PointerGenerator  # noqa: E402
from seqae.text.reconstructor import Reconstructor  # noqa: E402
from seqae.text.summarize import SETTINGS_FILE, load_summarizer, save_summarizer  # noqa: E402
from seqae.text.tokenizer import WordTokenizer  # noqa: E402
from tests.text.summary_data import ARTICLES, TEXTS  # noqa: E402

FOLDER_MAX_WORDS = 5
FOLDER_MAX_ARTICLE_WORDS = 50


@pytest.fixture(scope="module")
def tok() -> WordTokenizer:
    return WordTokenizer.train(TEXTS, vocab_size=50, min_frequency=1)


def _generator(tok: WordTokenizer) -> PointerGenerator:
    torch.manual_seed(0)
    gen = PointerGenerator(
        vocab_size=tok.vocab_size,
        emb_dim=8,
        hidden=8,
        pad_id=tok.pad_id,
        unk_id=tok.unk_id,
        bos_id=tok.bos_id,
        eos_id=tok.eos_id,
    )
    with torch.no_grad():  # never </s>: every summary is exactly max_words words long
        gen.out.bias[tok.eos_id] = -1e4
    return gen


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory, tok: WordTokenizer) -> Path:
    folder = tmp_path_factory.mktemp("summarizer") / "model"
    save_summarizer(
        folder,
        _generator(tok),
        tok,
        max_article_words=FOLDER_MAX_ARTICLE_WORDS,
        max_words=FOLDER_MAX_WORDS,
    )
    return folder


def _run(model_dir: Path, *args: str) -> int:
    return main(["summarize", "--model", str(model_dir), *args])


def _n_words(tok: WordTokenizer, text: str) -> int:
    return len(tok.tokenize(text).words)


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err
    return err


def test_folder_reloads_with_its_limits(model_dir: Path, tok: WordTokenizer) -> None:
    s = load_summarizer(model_dir)
    assert s.tokenizer.vocab_size == tok.vocab_size == s.generator.vocab_size
    assert (s.max_words, s.max_article_words) == (FOLDER_MAX_WORDS, FOLDER_MAX_ARTICLE_WORDS)
    for name in ("config.json", "model.safetensors", "seqae_tokenizer.json", SETTINGS_FILE):
        assert (model_dir / name).is_file()


def test_plain_lines_one_summary_each(
    model_dir: Path, tok: WordTokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "articles.txt", tmp_path / "summaries.txt"
    src.write_text("\n".join(ARTICLES) + "\n", encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out), "--batch-size", "2") == 0
    assert capsys.readouterr().err == ""  # nothing truncated, no warning
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "" and len(lines) - 1 == len(ARTICLES)
    # the folder's own limit applies without --max-words
    assert [_n_words(tok, line) for line in lines[:-1]] == [FOLDER_MAX_WORDS] * len(ARTICLES)
    # batching does not change the result
    one = tmp_path / "one.txt"
    assert _run(model_dir, "--input", str(src), "--out", str(one), "--batch-size", "1") == 0
    assert one.read_text(encoding="utf-8") == out.read_text(encoding="utf-8")


def test_jsonl_keeps_other_keys(
    model_dir: Path, tok: WordTokenizer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "pairs.jsonl", tmp_path / "out.jsonl"
    rows = [{"id": f"a{i}", "article": a, "n": i} for i, a in enumerate(ARTICLES)]
    src.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out), "--max-words", "3") == 0
    got = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(got) == len(rows)
    for row, obj in zip(rows, got, strict=True):
        assert {k: obj[k] for k in row} == row
        assert set(obj) == {*row, "summary"} and _n_words(tok, obj["summary"]) == 3


def test_jsonl_detected_by_first_line_without_extension(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "pairs.txt", tmp_path / "out.txt"
    src.write_text('\n{"article": "the cat sat ."}\n', encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "" and json.loads(lines[1])["article"] == "the cat sat ."


def test_stdin_to_stdout_matches_files(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text = "\n".join(ARTICLES) + "\n"
    src, out = tmp_path / "a.txt", tmp_path / "s.txt"
    src.write_text(text, encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 0
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode("utf-8"))))
    capsys.readouterr()
    assert _run(model_dir, "--input", "-", "--out", "-") == 0
    assert capsys.readouterr().out == out.read_text(encoding="utf-8")


@pytest.mark.parametrize("max_words", [1, 4])
def test_greedy_and_beam_respect_max_words(
    model_dir: Path,
    tok: WordTokenizer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    max_words: int,
) -> None:
    src = tmp_path / "a.txt"
    src.write_text("\n".join(ARTICLES) + "\n", encoding="utf-8")
    for beam in ("1", "3"):
        out = tmp_path / f"beam{beam}.txt"
        args = ("--input", str(src), "--out", str(out), "--max-words", str(max_words))
        assert _run(model_dir, *args, "--beam", beam) == 0
        lines = out.read_text(encoding="utf-8").splitlines()
        assert [_n_words(tok, line) for line in lines] == [max_words] * len(ARTICLES), beam


def test_truncation_one_warning_with_count(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "a.txt", tmp_path / "s.txt"
    long = " ".join(["the cat sat on the mat ."] * 3)  # 21 words
    src.write_text(f"{long}\nthe cat .\n{long}\n", encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out), "--max-article-words", "5") == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning: 2 of 3 articles" in err[0] and "5 words" in err[0]
    # the folder's limit (50) cuts nothing
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 0
    assert capsys.readouterr().err == ""


def test_blank_lines_stay_aligned(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "a.txt", tmp_path / "s.txt"
    src.write_text(f"{ARTICLES[0]}\n\n   \n{ARTICLES[1]}\n", encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 5 and lines[4] == ""
    assert lines[1] == lines[2] == "" and lines[0] and lines[3]
    # JSON Lines: a blank line gives a blank line, an empty article an empty summary
    src, out = tmp_path / "a.jsonl", tmp_path / "s.jsonl"
    src.write_text('{"article": "the cat ."}\n\n{"article": ""}\n', encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 4 and lines[1] == "" and json.loads(lines[2])["summary"] == ""
    assert json.loads(lines[0])["summary"]


@pytest.mark.parametrize(
    ("name", "data", "needle"),
    [
        ("bad.txt", b"the cat\nsat \xff on\n", "line 2: byte 0xff at column 5 is not UTF-8"),
        ("bad.jsonl", b'{"article": "a"}\n{"article": \n', "line 2: not JSON"),
        ("bad2.jsonl", b'{"article": "a"}\n\n{"text": "b"}\n', "line 3: no 'article' key"),
        ("bad3.jsonl", b'{"article": 3}\n', "line 1: 'article' is a JSON int"),
        ("bad4.jsonl", b"[1, 2]\n", "line 1: a JSON list"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    data: bytes,
    needle: str,
) -> None:
    src, out = tmp_path / name, tmp_path / "out.txt"
    src.write_bytes(data)
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 2
    _one_error_line(capsys, str(src), needle)
    assert not out.exists()


def test_bad_stdin_names_stdin(
    model_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xc3(\n")))
    assert _run(model_dir, "--input", "-", "--out", "-") == 2
    _one_error_line(capsys, "<stdin> line 2", "not UTF-8")


def test_missing_input_file(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(model_dir, "--input", str(tmp_path / "nope.txt"), "--out", "-") == 2
    _one_error_line(capsys, "nope.txt: no such file")


def test_out_equal_to_input_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "a.txt"
    src.write_text(ARTICLES[0] + "\n", encoding="utf-8")
    before = src.read_bytes()
    link = tmp_path / "link.txt"
    link.symlink_to(src)
    for out in (src, link):
        assert _run(model_dir, "--input", str(src), "--out", str(out)) == 2
        _one_error_line(capsys, "--out", "also an input")
        assert src.read_bytes() == before


@pytest.mark.parametrize("flag", ["--max-words", "--beam", "--batch-size", "--max-article-words"])
@pytest.mark.parametrize("value", ["0", "-2", "x"])
def test_flags_must_be_at_least_one(
    model_dir: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        _run(model_dir, "--input", "-", "--out", "-", flag, value)
    assert exc.value.code == 2
    err = capsys.readouterr().err  # argparse's usage, then its one error line
    assert err.strip().splitlines()[-1].startswith("seqae summarize: error: argument " + flag)
    assert "must be an integer >= 1" in err and "Traceback" not in err


def test_folder_of_another_model_refused(
    tmp_path: Path, tok: WordTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "rec"
    Reconstructor(vocab_size=tok.vocab_size, emb_dim=8, hidden=8).save_pretrained(other)
    tok.save(other)
    assert _run(other, "--input", "-", "--out", "-") == 2
    _one_error_line(capsys, "not a summarizer folder", "summary_reconstructor")


def test_folder_without_tokenizer_refused(
    tmp_path: Path, tok: WordTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "gen"
    _generator(tok).save_pretrained(folder)
    assert _run(folder, "--input", "-", "--out", "-") == 2
    _one_error_line(capsys, "not a summarizer folder", "no tokenizer")
    assert _run(tmp_path / "missing", "--input", "-", "--out", "-") == 2
    _one_error_line(capsys, "not a summarizer folder")
