"""``seqae summarize`` (issue 19): a summarizer folder (a tiny untrained generator whose ``</s>``
is suppressed, so every summary has exactly ``--max-words`` words, with its tokenizer beside it)
on plain and JSON Lines input, standard input/output, greedy and beam decoding, truncation,
blank lines, and every kind of bad input."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
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


def test_folder_no_repeat_setting_is_the_default(
    tmp_path: Path, tok: WordTokenizer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder saved with no_repeat_ngram=1 writes no word twice unless told otherwise
    (the summaries a summary_ae run's evaluation scored)."""
    gen = _generator(tok)
    with torch.no_grad():  # unconstrained, one word again and again
        gen.out.bias[tok.eos_id + 1] += 50.0
        gen.switch.bias.fill_(30.0)
    folder = tmp_path / "model"
    save_summarizer(folder, gen, tok, max_article_words=50, max_words=4, no_repeat_ngram=1)
    assert load_summarizer(folder).no_repeat_ngram == 1
    src = tmp_path / "articles.txt"
    src.write_text(ARTICLES[0] + "\n", encoding="utf-8")
    for args, distinct in (((), 4), (("--no-repeat-ngram", "0"), 1)):
        out = tmp_path / "out.txt"
        assert _run(folder, "--input", str(src), "--out", str(out), *args) == 0
        words = tok.tokenize(out.read_text(encoding="utf-8")).words
        assert len(words) == 4 and len(set(words)) == distinct, (args, words)
    # folders written without the setting keep the unconstrained default
    assert load_summarizer(_folder_of(tmp_path, tok)).no_repeat_ngram == 0


def _folder_of(tmp_path: Path, tok: WordTokenizer) -> Path:
    folder = tmp_path / "plain"
    save_summarizer(folder, _generator(tok), tok, max_article_words=50, max_words=4)
    return folder


@pytest.mark.parametrize(
    "settings, needle",
    [
        ([3], "holds a JSON list, expected an object"),
        ({"no_repeat_ngram": -1}, "no_repeat_ngram is -1, expected an integer >= 0"),
        ({"max_words": 0}, "max_words is 0, expected an integer >= 1"),
    ],
)
def test_bad_settings_file_refused(
    tmp_path: Path,
    tok: WordTokenizer,
    capsys: pytest.CaptureFixture[str],
    settings: object,
    needle: str,
) -> None:
    folder = _folder_of(tmp_path, tok)
    (folder / SETTINGS_FILE).write_text(json.dumps(settings), encoding="utf-8")
    assert _run(folder, "--input", "-", "--out", "-") == 2
    _one_error_line(capsys, "not a summarizer folder", needle)


# -- output and input paths (audit) ----------------------------------------------------------


def _articles(tmp_path: Path) -> Path:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(ARTICLES) + "\n", encoding="utf-8")
    return src


def test_out_symlink_is_written_through(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _articles(tmp_path)
    direct = tmp_path / "direct.txt"
    assert _run(model_dir, "--input", str(src), "--out", str(direct)) == 0
    (tmp_path / "real").mkdir()
    target = tmp_path / "real" / "target.txt"
    target.write_text("old\n", encoding="utf-8")
    link = tmp_path / "l.txt"
    link.symlink_to(target)
    assert _run(model_dir, "--input", str(src), "--out", str(link)) == 0
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text(encoding="utf-8") == direct.read_text(encoding="utf-8")
    assert sorted(p.name for p in target.parent.iterdir()) == ["target.txt"]


def test_out_fifo_is_refused_not_replaced(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _articles(tmp_path)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "to_pipe.txt"
    link.symlink_to(fifo)
    for out in (fifo, link):
        assert _run(model_dir, "--input", str(src), "--out", str(out)) == 2
        _one_error_line(capsys, f"--out {out}", "is a FIFO")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode) and link.is_symlink()


def test_out_inside_the_model_folder_is_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)  # a copy: a failure must not break the shared folder
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    src = _articles(tmp_path)
    alias = tmp_path / "alias"
    alias.symlink_to(folder)
    for out in (folder / "config.json", folder / "new.txt", alias / SETTINGS_FILE):
        assert _run(folder, "--input", str(src), "--out", str(out)) == 2
        _one_error_line(capsys, f"--out {out}", "inside the --model folder")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    assert load_summarizer(folder).max_words == FOLDER_MAX_WORDS


@pytest.mark.parametrize(
    ("out", "needle"),
    [
        ("in.txt/x.txt", "is a file, not a folder"),
        ("nodir/x.txt", "no folder"),
        ("nodir/deeper/x.txt", "no folder"),
    ],
)
def test_out_folder_checked_before_any_work(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    out: str,
    needle: str,
) -> None:
    src = _articles(tmp_path)

    def no_work(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before --out was checked")

    monkeypatch.setattr("seqae.text.summarize.load_summarizer", no_work)
    assert _run(model_dir, "--input", str(src), "--out", str(tmp_path / out)) == 2
    _one_error_line(capsys, str(tmp_path / out), needle)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no folder created


def test_out_write_error_is_one_line(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src, out = _articles(tmp_path), tmp_path / "s.txt"

    def denied(src: object, dst: object) -> None:
        raise PermissionError(13, "Permission denied", str(dst))

    monkeypatch.setattr("seqae.files.os.replace", denied)
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 2
    _one_error_line(capsys, f"--out {out}: cannot write it (Permission denied)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt"]  # no temp file left


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_in_proc_is_one_line(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _articles(tmp_path)
    assert _run(model_dir, "--input", str(src), "--out", "/proc/seqae-test-out.txt") == 2
    _one_error_line(capsys, "--out /proc/seqae-test-out.txt: cannot write it (")


def test_unreadable_input_is_one_line(
    model_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    src = _articles(tmp_path)
    real = Path.read_bytes

    def read_bytes(self: Path) -> bytes:
        if self == src:
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    with monkeypatch.context() as patch:
        patch.setattr(Path, "read_bytes", read_bytes)
        assert _run(model_dir, "--input", str(src), "--out", "-") == 2
    _one_error_line(capsys, f"--input {src}: cannot read it (Permission denied)")

    class Broken:
        def read(self) -> bytes:
            raise OSError(5, "Input/output error")

    monkeypatch.setattr("sys.stdin", type("Stdin", (), {"buffer": Broken()})())
    assert _run(model_dir, "--input", "-", "--out", "-") == 2
    _one_error_line(capsys, "--input <stdin>: cannot read it (Input/output error)")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_input_proc_self_mem_is_one_line(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(model_dir, "--input", "/proc/self/mem", "--out", "-") == 2
    _one_error_line(capsys, "--input /proc/self/mem: cannot read it (")


@pytest.mark.parametrize(
    "line",
    [
        '{"article": "hello \\ud800 world"}',
        '{"id": "x\\ud800", "article": "the cat sat ."}',
        '{"\\udc00": 1, "article": "the cat sat ."}',
    ],
)
def test_jsonl_unpaired_surrogate_is_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], line: str
) -> None:
    src, out = tmp_path / "a.jsonl", tmp_path / "out.jsonl"
    # a valid pair written as two escapes (an emoji) is fine on line 1
    src.write_text('{"article": "the cat \\ud83d\\ude00 ."}\n' + line + "\n", encoding="utf-8")
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 2
    surrogate = "\\udc00" if "udc00" in line else "\\ud800"
    _one_error_line(capsys, f"{src} line 2", f"unpaired surrogate ({surrogate})", "valid Unicode")
    assert not out.exists()
    capsys.readouterr()
    assert _run(model_dir, "--input", str(src), "--out", "-") == 2
    assert capsys.readouterr().out == ""  # nothing written to standard output either


def test_pretty_printed_json_array_is_refused(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src, out = tmp_path / "articles.json", tmp_path / "out.txt"
    src.write_text("\n" + json.dumps([{"article": a} for a in ARTICLES], indent=2) + "\n")
    assert _run(model_dir, "--input", str(src), "--out", str(out)) == 2
    _one_error_line(capsys, f"--input {src}", "looks like a JSON array", "JSON Lines")
    assert not out.exists()
