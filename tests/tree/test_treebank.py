"""Gold trees (seqae.tree.treebank) and their files (seqae.tree.loaders): bracketed formats,
Penn-Treebank preprocessing, and one-line errors naming the file and line for bad input."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from seqae.errors import UsageError
from seqae.metrics.parsing import Bracketing, as_bracketing
from seqae.tree.loaders import TreeDataWarning, read_sentences, read_trees
from seqae.tree.treebank import (
    Tree,
    TreeDataError,
    is_punctuation,
    iter_trees,
    parse_tree,
    preprocess_tree,
    strip_function_tag,
)

PENN = "(S (NP (DT the) (NN cat)) (VP (VBD sat) (PP (IN on) (NP (DT a) (NN mat)))))"
# a Treebank tree: unlabeled root, function tags, an empty element, punctuation
WSJ = """( (S
    (NP-SBJ-1 (DT The) (NN cat) )
    (VP (VBD sat)
      (S (NP-SBJ (-NONE- *-1) )
        (VP (TO to) (VP (VB eat) ))))
    (. .) ))"""


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    else:
        path.write_bytes(text)
    return path


# --------------------------------------------------------------------------------------------
# The tree type and the formats


def test_penn_tree_words_tags_and_spans() -> None:
    tree = parse_tree(PENN)
    assert tree.leaves() == ["the", "cat", "sat", "on", "a", "mat"]
    assert tree.tags() == ["DT", "NN", "VBD", "IN", "DT", "NN"]
    assert tree.length == 6 and tree.height() == 5
    assert tree.spans() == [(0, 6, "S"), (0, 2, "NP"), (2, 6, "VP"), (3, 6, "PP"), (4, 6, "NP")]
    assert tree.bracketing() == Bracketing(6, tuple(tree.spans()))
    assert as_bracketing(tree).unlabeled() == {(0, 2), (2, 6), (3, 6), (4, 6)}


def test_penn_round_trip() -> None:
    tree = parse_tree(PENN)
    assert tree.to_string() == PENN
    assert parse_tree(tree.to_string()) == tree
    # spaces and line breaks do not matter
    assert parse_tree(PENN.replace(" (", "\n   (")) == tree


def test_unlabeled_round_trip_keeps_the_spans() -> None:
    tree = parse_tree("((a b) (c (d e)))", style="unlabeled")
    assert tree.label is None and tree.leaves() == list("abcde")
    assert tree.tags() == [None] * 5
    assert tree.spans() == [(0, 5, None), (0, 2, None), (2, 5, None), (3, 5, None)]
    assert tree.to_string(style="unlabeled") == "((a b) (c (d e)))"
    penn = parse_tree(PENN)
    text = penn.to_string(style="unlabeled")
    assert text == "((the cat) (sat (on (a mat))))"
    back = parse_tree(text, style="unlabeled")
    assert back.bracketing().unlabeled() == penn.bracketing().unlabeled()
    assert back.leaves() == penn.leaves()


def test_a_unary_chain_gives_one_span_per_node() -> None:
    tree = parse_tree("(S (VP (VBD left) (NP (NNP bob))))")
    assert tree.spans() == [(0, 2, "S"), (0, 2, "VP"), (1, 2, "NP")]
    assert tree.bracketing().labeled() == frozenset()  # all trivial: whole sentence or one word


def test_treebank_root_function_tags_and_empty_elements() -> None:
    raw = parse_tree(WSJ)
    assert raw.label is None and raw.leaves()[-1] == "."
    assert "*-1" in raw.leaves()
    clean = preprocess_tree(raw, lowercase=True, drop_punctuation=True)
    assert clean is not None
    assert clean.leaves() == ["the", "cat", "sat", "to", "eat"]
    assert clean.to_string() == (
        "((S (NP (DT the) (NN cat)) (VP (VBD sat) (S (VP (TO to) (VP (VB eat)))))))"
    )
    # the defaults keep case and punctuation but strip tags and drop empty elements
    default = preprocess_tree(raw)
    assert default is not None
    assert default.leaves() == ["The", "cat", "sat", "to", "eat", "."]
    kept = preprocess_tree(raw, drop_empty=False, strip_function_tags=False)
    assert kept is not None and "*-1" in kept.leaves() and "NP-SBJ-1" in kept.to_string()


@pytest.mark.parametrize(
    ("label", "category"),
    [
        ("NP-SBJ-1", "NP"),
        ("PP-LOC=2", "PP"),
        ("S=1", "S"),
        ("WHNP-3", "WHNP"),
        ("NP", "NP"),
        ("PRP$", "PRP$"),
        ("-NONE-", "-NONE-"),
        ("-LRB-", "-LRB-"),
    ],
)
def test_strip_function_tag(label: str, category: str) -> None:
    assert strip_function_tag(label) == category


def test_punctuation_by_tag_or_by_characters() -> None:
    assert is_punctuation("--", ":") and is_punctuation("$", "$")
    assert not is_punctuation("dollars", "NNS")
    assert is_punctuation(",") and is_punctuation("...") and is_punctuation("-LRB-")
    assert is_punctuation("$") and not is_punctuation("cat") and not is_punctuation("3.5")
    unlabeled = parse_tree("((the cat ,) (sat .))", style="unlabeled")
    cleaned = preprocess_tree(unlabeled, drop_punctuation=True)
    assert cleaned is not None and cleaned.to_string(style="unlabeled") == "((the cat) sat)"
    only_punct = parse_tree("(S (. .) (, ,))")
    assert preprocess_tree(only_punct, drop_punctuation=True) is None


def test_from_spans_builds_the_tree_of_a_span_set() -> None:
    words = ["the", "cat", "sat", "on", "a", "mat"]
    spans = [(0, 2), (2, 6), (3, 6), (4, 6), (4, 6)]
    tree = Tree.from_spans(words, spans)
    assert tree.to_string(style="unlabeled") == "((the cat) (sat (on (a mat))))"
    assert tree.bracketing().unlabeled() == {(0, 2), (2, 6), (3, 6), (4, 6)}
    tagged = Tree.from_spans(words, spans, tags=parse_tree(PENN).tags(), label="X")
    assert tagged.to_string().startswith("(X (X (DT the) (NN cat)) (X (VBD sat)")
    with pytest.raises(ValueError, match=r"spans \(1, 3\) and \(2, 4\) cross|cross"):
        Tree.from_spans(list("abcd"), [(1, 3), (2, 4)])
    with pytest.raises(ValueError, match=r"span \(0, 9\) is outside 0..4"):
        Tree.from_spans(list("abcd"), [(0, 9)])


def test_writing_refuses_what_the_format_cannot_hold() -> None:
    with pytest.raises(ValueError, match="holds a space or a bracket.*-LRB-"):
        Tree("NP", ("a b",)).to_string()
    with pytest.raises(ValueError, match="holds a space or a bracket"):
        Tree("NP", (Tree("NN", ("(",)),)).to_string()
    with pytest.raises(ValueError, match="would read as a label"):
        Tree(None, ("a", "b")).to_string(style="penn")
    assert Tree(None, ("a", "b")).to_string(style="unlabeled") == "(a b)"
    with pytest.raises(ValueError, match="has no children"):
        Tree("NP", ())


# --------------------------------------------------------------------------------------------
# Bad tree text: one line naming the place


@pytest.mark.parametrize(
    ("text", "style", "message"),
    [
        ("(S (NP a))\n(S (NP b)))", "penn", r"t\.txt line 2: a '\)' at column 11 closes no '\('"),
        (
            "(S (NP a))\n\n(S (NP b)\n(VP c)",
            "penn",
            r"t\.txt line 3: the tree that starts here is not closed \(1 '\)' missing",
        ),
        ("((a b) ())", "unlabeled", r"t\.txt line 1: \(\) at column 8 has no words"),
        ("(S (NP) (VP a))", "penn", r"t\.txt line 1: \(NP\) at column 4 has no words"),
        ("(S a)\nstray (S b)", "penn", r"t\.txt line 2: 'stray' at column 1 is outside any tree"),
    ],
)
def test_malformed_trees_name_the_file_and_line(
    tmp_path: Path, text: str, style: str, message: str
) -> None:
    path = _write(tmp_path / "t.txt", text)
    with pytest.raises(TreeDataError, match=message) as info:
        read_trees(path, style=style)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UsageError)


def test_iter_trees_gives_the_start_line_of_each_tree() -> None:
    lines = ["(S (NP a)", "  (VP b)) (S c)", "", "(S", "d)"]
    assert [(n, t.leaves()) for n, t in iter_trees(lines)] == [
        (1, ["a", "b"]),
        (2, ["c"]),
        (4, ["d"]),
    ]
    with pytest.raises(TreeDataError, match="expected one bracketed tree, found 2"):
        parse_tree("(S a) (S b)")
    with pytest.raises(TreeDataError, match="unknown tree style 'lisp'; expected one of"):
        parse_tree("(S a)", style="lisp")


def test_undecodable_bytes_name_the_line_and_byte(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.txt", b"(S (NN a))\n(S (NN b))\n(S (NN caf\xe9))\n")
    with pytest.raises(TreeDataError, match=r"t\.txt line 3: byte 0xe9 at column 11 is not UTF-8"):
        read_trees(path)
    sentences = _write(tmp_path / "s.txt", b"a b\n\xff c\n")
    with pytest.raises(TreeDataError, match=r"s\.txt line 2: byte 0xff at column 1 is not UTF-8"):
        read_sentences(sentences)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(TreeDataError, match=r"trees: .*nope\.txt: no such file"):
        read_trees(tmp_path / "nope.txt")
    with pytest.raises(TreeDataError, match="has no trees"):
        read_trees(_write(tmp_path / "e.txt", "\n\n"))
    with pytest.raises(TreeDataError, match="has no sentences"):
        read_sentences(_write(tmp_path / "e2.txt", "  \n"))
    with pytest.raises(TreeDataError, match="is a folder"):
        read_sentences(tmp_path)


# --------------------------------------------------------------------------------------------
# Sentences, skipping and matching


def test_blank_lines_are_skipped_with_a_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.txt", "The cat sat\n\n  \na dog\r\n")
    with pytest.warns(TreeDataWarning, match=r"s\.txt: skipped 2 blank lines"):
        sentences = read_sentences(path, lowercase=True)
    assert sentences == [["the", "cat", "sat"], ["a", "dog"]]


def test_long_sentences_are_skipped_with_a_count(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.txt", "a b c d\na b\na b c\n")
    with pytest.warns(TreeDataWarning, match=r"skipped 2 sentences longer than 2 words"):
        assert read_sentences(path, max_length=2) == [["a", "b"]]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert len(read_sentences(path, max_length=4)) == 3  # nothing skipped: no warning
    with pytest.raises(TreeDataError, match="max_length: 0; expected an integer >= 1"):
        read_sentences(path, max_length=0)


def test_trees_are_checked_against_their_sentences(tmp_path: Path) -> None:
    trees = _write(
        tmp_path / "t.txt",
        "(S (NP (DT The) (NN cat)) (VP (VBD sat)) (. .))\n(S (NN dogs) (VBD ran))\n",
    )
    good = _write(tmp_path / "good.txt", "the cat sat\n\ndogs ran\n")
    with pytest.warns(TreeDataWarning, match="skipped 1 blank line"):
        read = read_trees(trees, sentences=good, lowercase=True, drop_punctuation=True)
    assert [t.leaves() for t in read] == [["the", "cat", "sat"], ["dogs", "ran"]]

    bad = _write(tmp_path / "bad.txt", "the cat sat\ndogs walked\n")
    with pytest.raises(TreeDataError) as info:
        read_trees(trees, sentences=bad, lowercase=True, drop_punctuation=True)
    message = str(info.value)
    assert "bad.txt line 2" in message and "t.txt line 2" in message
    assert "at word 2: 'walked' in the sentence, 'ran' in the tree" in message

    short = _write(tmp_path / "short.txt", "the cat\ndogs ran\n")
    with pytest.raises(
        TreeDataError, match="at word 3: the end of the sentence in the sentence, 'sat'"
    ):
        read_trees(trees, sentences=short, lowercase=True, drop_punctuation=True)

    extra = _write(tmp_path / "extra.txt", "the cat sat\ndogs ran\nmore words\n")
    with pytest.raises(TreeDataError, match=r"has 2 trees but .*extra\.txt has 3 sentences"):
        read_trees(trees, sentences=extra, lowercase=True, drop_punctuation=True)

    # without punctuation removal the tree keeps its '.', which the sentence lacks
    with (
        pytest.warns(TreeDataWarning, match="skipped 1 blank line"),
        pytest.raises(
            TreeDataError, match="at word 4: the end of the sentence in the sentence, '.'"
        ),
    ):
        read_trees(trees, sentences=good, lowercase=True)


def test_tree_length_limit_and_emptied_trees(tmp_path: Path) -> None:
    path = _write(tmp_path / "t.txt", "(S (NN a) (NN b) (NN c))\n(S (. .))\n(S (NN d))\n")
    with pytest.warns(TreeDataWarning) as record:
        trees = read_trees(path, max_length=2, drop_punctuation=True)
    assert [t.leaves() for t in trees] == [["d"]]
    messages = sorted(str(w.message) for w in record)
    assert any("skipped 1 tree with no words left after preprocessing" in m for m in messages)
    assert any("skipped 1 sentence longer than 2 words (max_length)" in m for m in messages)
