"""``seqae parse`` (seqae.tree.parse) on small untrained tree-parser folders of both model
types: the round trip (the output's leaves are the input's words), the documented cases (empty
lines, one-word lines, unknown words, lines longer than the training limit) and bad input."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
import torch

from seqae import load_pretrained
from seqae.cli import main
from seqae.data.tokens import Vocabulary
from seqae.tree.lm import TreeLanguageModel
from seqae.tree.parse import (
    SETTINGS_FILE,
    VOCAB_FILE,
    encode_words,
    load_tree_parser,
    parse_spans,
    save_tree_parser,
)
from seqae.tree.pcfg import CompoundPCFG
from seqae.tree.trees import brackets_to_spans, spans_to_brackets
from seqae.tree.urnng import URNNG

TRAIN = [
    "the dog saw a cat",
    "a cat slept",
    "the big dog chased the small cat in the park",
    "alice said that bob slept",
]
MAX_LENGTH = 9
LINES = [
    "the dog saw a cat",
    "",
    "dog",
    "The Zebra saw </s> <pad> cat",  # unknown words, a capital, special-token spellings
    "   ",
    "a b c d e f g h i j k l",  # longer than MAX_LENGTH
    "the cat",
]


def _model(kind: str, vocab: Vocabulary) -> URNNG | CompoundPCFG:
    torch.manual_seed(0)
    if kind == "urnng":
        return URNNG(
            vocab_size=len(vocab),
            pad_id=vocab.pad_id,
            eos_id=vocab.eos_id,
            embed_dim=8,
            hidden_dim=8,
            q_embed_dim=8,
            q_hidden_dim=8,
            q_mlp_dim=8,
        )
    return CompoundPCFG(
        vocab_size=len(vocab),
        nonterminals=3,
        preterminals=4,
        symbol_dim=8,
        z_dim=2,
        embed_dim=8,
        hidden_dim=8,
    )


@pytest.fixture(scope="module", params=["urnng", "compound_pcfg"])
def folder(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    vocab = Vocabulary.build([line.split() for line in TRAIN])
    out = tmp_path_factory.mktemp(request.param) / "model"
    save_tree_parser(
        out,
        _model(request.param, vocab),
        vocab,
        lowercase=True,
        drop_punctuation=False,
        max_length=MAX_LENGTH,
    )
    return out


@pytest.fixture()
def sentences(tmp_path: Path) -> Path:
    path = tmp_path / "sentences.txt"
    path.write_text("".join(f"{line}\n" for line in LINES), encoding="utf-8")
    return path


def _parse(folder: Path, source: Path, out: Path, *more: str) -> int:
    return main(["parse", "--model", str(folder), "--input", str(source), "--out", str(out), *more])


def test_one_tree_per_line_with_the_input_words_as_leaves(
    folder: Path, sentences: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "trees.txt"
    assert _parse(folder, sentences, out) == 0
    got = out.read_text(encoding="utf-8").split("\n")
    assert got[-1] == "" and len(got) - 1 == len(LINES)
    for line, tree in zip(LINES, got, strict=False):
        words = line.split()
        if not words:
            assert tree == ""  # an empty (or blank) line gives an empty line
        elif len(words) == 1:
            assert tree == words[0]  # the only tree of one word is the word itself
        else:
            spans, leaves = brackets_to_spans(tree)
            assert leaves == words  # the original words, capitals and unknown words kept
            assert len(spans) == 2 * len(words) - 1  # a binary tree
    # one note for the one line longer than the model's training sentences, parsed anyway
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"seqae parse: note: 1 of {len(LINES)} lines are longer than the {MAX_LENGTH} words "
        "the model was trained on; parsed anyway"
    ]


def test_the_trees_are_the_models_mbr_trees(folder: Path, sentences: Path, tmp_path: Path) -> None:
    """The command writes the trees parse_spans gives, with words lowercased for the lookup
    (the folder says the model was trained lowercased) and unknown words as <unk>."""
    out = tmp_path / "trees.txt"
    assert _parse(folder, sentences, out, "--batch", "2") == 0
    parser = load_tree_parser(folder)
    assert parser.lowercase and parser.max_length == MAX_LENGTH
    todo = [line.split() for line in LINES if len(line.split()) > 1]
    spans = parse_spans(parser.model, parser.vocab, todo, batch_size=2, lowercase=True)
    expected = [spans_to_brackets(s, w) for s, w in zip(spans, todo, strict=True)]
    got = [
        t
        for t, line in zip(out.read_text().splitlines(), LINES, strict=True)
        if len(line.split()) > 1
    ]
    assert got == expected


def test_words_are_looked_up_lowercased_and_special_spellings_are_unknown() -> None:
    vocab = Vocabulary.build([line.split() for line in TRAIN])
    words = ["The", "Zebra", "</s>", "<pad>", "<s>", "<unk>", "cat"]
    assert encode_words(vocab, words, lowercase=True) == [
        vocab.id("the"),
        *[vocab.unk_id] * 5,
        vocab.id("cat"),
    ]
    assert encode_words(vocab, ["The"]) == [vocab.unk_id]  # without lowercasing: unknown


def test_standard_input_and_output(
    folder: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = b"a cat slept\n\nthe dog\n"
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
    assert main(["parse", "--model", str(folder), "--input", "-", "--out", "-"]) == 0
    lines = capsys.readouterr().out.split("\n")
    assert lines[1:] == ["", "(the dog)", ""]
    assert brackets_to_spans(lines[0])[1] == ["a", "cat", "slept"]


def test_the_folder_loads_with_load_pretrained(folder: Path) -> None:
    model = load_pretrained(folder)
    assert isinstance(model, URNNG | CompoundPCFG)
    assert model.config["vocab_size"] == len(load_tree_parser(folder).vocab)


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("seqae: error: ")
    return err[0]


def test_undecodable_bytes_name_the_file_and_line(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "bad.txt"
    source.write_bytes(b"the dog\na \xff cat\n")
    out = tmp_path / "trees.txt"
    out.write_text("kept\n")
    assert _parse(folder, source, out) == 2
    line = _one_error(capsys)
    assert str(source) in line and "line 2" in line and "UTF-8" in line
    assert out.read_text() == "kept\n"  # nothing written


def test_a_word_with_a_bracket_is_refused(
    folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "brackets.txt"
    source.write_text("the dog\nthe (big) dog\n")
    out = tmp_path / "trees.txt"
    assert _parse(folder, source, out) == 2
    line = _one_error(capsys)
    assert "line 2" in line and "'(big)'" in line and "-LRB-" in line
    assert not out.exists()


def test_a_folder_that_is_not_a_tree_parser_is_refused(
    folder: Path, sentences: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lm_dir = tmp_path / "lm"
    TreeLanguageModel(vocab_size=20, embed_dim=4, hidden_dim=4).save_pretrained(lm_dir)
    out = tmp_path / "trees.txt"
    assert _parse(lm_dir, sentences, out) == 2
    assert "'tree_lm' model" in _one_error(capsys)
    assert _parse(tmp_path / "nowhere", sentences, out) == 2
    assert "is not a tree-parser folder" in _one_error(capsys)
    # a model without its vocabulary, or with a damaged settings file
    bare = tmp_path / "bare"
    load_tree_parser(folder).model.save_pretrained(bare)
    assert _parse(bare, sentences, out) == 2
    assert f"no {VOCAB_FILE}" in _one_error(capsys)
    (bare / VOCAB_FILE).write_bytes((folder / VOCAB_FILE).read_bytes())
    (bare / SETTINGS_FILE).write_text('{"kind": "seqae.tree_parser", "lowercase": "yes"}')
    assert _parse(bare, sentences, out) == 2
    assert SETTINGS_FILE in _one_error(capsys)
    assert not out.exists()


def test_output_over_the_input_is_refused(
    folder: Path, sentences: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = sentences.read_bytes()
    assert _parse(folder, sentences, sentences) == 2
    assert "--out" in _one_error(capsys)
    assert sentences.read_bytes() == before


def test_bad_batch_size_is_refused(folder: Path, sentences: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(folder, sentences, tmp_path / "trees.txt", "--batch", "0")
    assert exc.value.code == 2
