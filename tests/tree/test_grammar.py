"""The embedded grammars (seqae.tree.grammar) and the tree corpus builder (seqae.tree.corpus,
``seqae data tree``): determinism, gold trees whose words are the sentences, the settings, the
files and the command's errors."""

from __future__ import annotations

import json
import statistics
from collections.abc import Iterator
from pathlib import Path

import pytest

from seqae import registry
from seqae.cli import main
from seqae.errors import UsageError
from seqae.tree import corpus
from seqae.tree.corpus import CORPUS_FILES, PRESETS, build_tree_corpus, parse_overrides
from seqae.tree.grammar import Grammar, GrammarError, GrammarSettings
from seqae.tree.loaders import load_tree_corpus, read_sentences
from seqae.tree.treebank import Tree, parse_tree

PHRASES = {"S", "NP", "VP", "PP", "SBAR", "ADJP", "ADVP"}
TAGS = {"DT", "NN", "NNP", "JJ", "RB", "IN", "WDT", "CC", "VBD"}


def _nodes(tree: Tree) -> Iterator[Tree]:
    yield tree
    for child in tree.children:
        if isinstance(child, Tree):
            yield from _nodes(child)


def _first(node: Tree) -> str | None:
    child = node.children[0]
    return child.label if isinstance(child, Tree) else None


def _last(node: Tree) -> str | None:
    child = node.children[-1]
    return child.label if isinstance(child, Tree) else None


@pytest.fixture(scope="module")
def english() -> list[Tree]:
    return Grammar(GrammarSettings()).generate(400, seed=3)


@pytest.fixture(scope="module")
def other() -> list[Tree]:
    return Grammar(GrammarSettings(family="other")).generate(400, seed=3)


# --------------------------------------------------------------------------------------------
# The grammar


@pytest.mark.parametrize("family", ["english", "other"])
def test_generation_is_deterministic_and_seeded(family: str) -> None:
    settings = GrammarSettings(family=family, vocab_size=120)
    a = [t.to_string() for t in Grammar(settings).generate(50, seed=7)]
    b = [t.to_string() for t in Grammar(settings).generate(50, seed=7)]
    c = [t.to_string() for t in Grammar(settings).generate(50, seed=8)]
    assert a == b
    assert a != c
    # the lexicon does not depend on the seed
    assert Grammar(settings).lexicon == Grammar(settings).lexicon


def test_trees_are_labelled_within_lengths_and_distinct(english: list[Tree]) -> None:
    s = GrammarSettings()
    sentences = [tuple(t.leaves()) for t in english]
    assert len(set(sentences)) == len(sentences)
    assert all(s.min_length <= len(x) <= s.max_length for x in sentences)
    lexicon_words = set(Grammar(s).vocabulary)
    for tree in english:
        assert tree.label == "S"
        for node in _nodes(tree):
            if node.is_preterminal:
                assert node.label in TAGS
                assert node.children[0] in lexicon_words
            else:
                assert node.label in PHRASES
        # the words of a gold tree are its sentence, in order, and each has its tag
        assert len(tree.tags()) == len(tree.leaves()) and None not in tree.tags()


def test_every_word_has_the_tag_of_its_category() -> None:
    grammar = Grammar(GrammarSettings(vocab_size=150))
    allowed: dict[str, set[str]] = {}
    for category, words in grammar.lexicon.items():
        for w in words:
            allowed.setdefault(w, set()).add(category.partition("@")[0])
    for tree in grammar.generate(200, seed=0):
        for word, tag in zip(tree.leaves(), tree.tags(), strict=True):
            assert tag in allowed[word]


@pytest.mark.parametrize("family", ["english", "other"])
@pytest.mark.parametrize("size", [60, 400, 1500])
def test_vocab_size_is_the_number_of_distinct_words(family: str, size: int) -> None:
    grammar = Grammar(GrammarSettings(family=family, vocab_size=size))
    assert len(grammar.vocabulary) == size
    assert sum(len(w) for w in grammar.lexicon.values()) >= size
    for words in grammar.lexicon.values():
        assert len(set(words)) == len(words) > 0


def test_a_vocab_too_small_for_the_closed_classes_is_refused() -> None:
    with pytest.raises(GrammarError, match="vocab_size 20 is too small.*expected vocab_size >= "):
        Grammar(GrammarSettings(vocab_size=20))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"family": "klingon"}, "family: 'klingon'; expected one of english, other"),
        ({"min_length": 10, "max_length": 5}, "max_length 5 is below min_length 10"),
        ({"max_depth": 0}, "max_depth: 0; expected an integer >= 1"),
        ({"recursion": -1.0}, "recursion: -1.0; expected a number >= 0"),
        ({"binary": "yes"}, "binary: 'yes'; expected true or false"),
    ],
)
def test_bad_settings_say_what_was_expected(kwargs: dict, message: str) -> None:
    with pytest.raises(GrammarError, match=message.replace("(", r"\(")):
        GrammarSettings(**kwargs)
    assert issubclass(GrammarError, UsageError)


def test_lengths_the_grammar_cannot_reach_are_reported() -> None:
    grammar = Grammar(GrammarSettings(recursion=0.0, min_length=28, max_length=30))
    with pytest.raises(GrammarError, match=r"gave only 0 distinct sentences of 28-30 words"):
        grammar.generate(5, seed=0, max_tries=300)


def test_recursion_and_depth_shape_the_trees() -> None:
    flat = Grammar(GrammarSettings(recursion=0.0)).generate(300, seed=0)
    for tree in flat:  # no recursive rule: no clause or NP inside another of its kind
        assert not any(n.label == "S" for n in _nodes(tree) if n is not tree)
        assert not any(n.label == "NP" and _first(n) == "NP" for n in _nodes(tree))
    # the deepest non-recursive path: S > VP > PP > NP > ADJP > RB > word
    assert max(t.height() for t in flat) == 6

    def mean_length(**kw: float) -> float:
        trees = Grammar(GrammarSettings(**kw)).generate(300, seed=0)
        return statistics.fmean(t.length for t in trees)

    assert mean_length(recursion=0.5) < mean_length(recursion=1.0) < mean_length(recursion=2.0)
    assert mean_length(max_depth=2) < mean_length(max_depth=8)


def test_binary_gold_trees_have_at_most_two_children() -> None:
    nary = Grammar(GrammarSettings()).generate(200, seed=0)
    binary = Grammar(GrammarSettings(binary=True)).generate(200, seed=0)
    assert any(len(n.children) > 2 for t in nary for n in _nodes(t))
    assert all(len(n.children) <= 2 for t in binary for n in _nodes(t))
    labels = {n.label for t in binary for n in _nodes(t) if not n.is_preterminal}
    assert "NP'" in labels  # the intermediate node of NP -> DT JJ NN


def test_english_is_head_initial_and_other_head_final(
    english: list[Tree], other: list[Tree]
) -> None:
    for tree in english:
        for node in _nodes(tree):
            if node.label == "PP":
                assert _first(node) == "IN" and _last(node) == "NP"
            if node.label == "SBAR":
                assert _first(node) in ("IN", "WDT")
    for tree in other:
        for node in _nodes(tree):
            if node.label == "PP":
                assert _first(node) == "NP" and _last(node) == "IN"
            if node.label == "SBAR":
                assert _last(node) in ("IN", "WDT")
            if node.label == "VP":
                assert _last(node) in ("VBD", "VP")
    # the two lexicons share no open-class word
    a, b = Grammar(GrammarSettings()), Grammar(GrammarSettings(family="other"))
    assert not set(a.lexicon["NN"]) & set(b.lexicon["NN"])


def test_mirror_reverses_every_rule() -> None:
    mirrored = Grammar(GrammarSettings(mirror=True)).generate(200, seed=0)
    for tree in mirrored:
        for node in _nodes(tree):
            if node.label == "PP":
                assert _first(node) == "NP" and _last(node) == "IN"
        # S -> NP VP | ADVP NP VP | S CC S, reversed
        assert (_first(tree), _last(tree)) in (("VP", "NP"), ("VP", "ADVP"), ("S", "S"))


# --------------------------------------------------------------------------------------------
# The corpus folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tiny") / "corpus"
    build_tree_corpus(out, preset="tiny", seed=0)
    return out


def test_tiny_corpus_files_and_manifest(tiny: Path) -> None:
    meta = json.loads((tiny / "corpus.json").read_text())
    preset = PRESETS["tiny"]
    assert meta["sizes"] == {"train": preset.train, "valid": preset.valid, "test": preset.test}
    assert meta["files"] == CORPUS_FILES
    assert meta["grammar"]["settings"]["vocab_size"] == preset.settings.vocab_size
    assert meta["grammar"]["rules"] and meta["grammar"]["categories"]["DT"] > 0
    assert set(meta["test_sentence_f1_of_baselines"]) == {"right", "left", "random"}
    parts = {
        p: (tiny / CORPUS_FILES[p]).read_text().splitlines() for p in ("train", "valid", "test")
    }
    for part, lines in parts.items():
        assert len(lines) == meta["sizes"][part]
        assert all(
            preset.settings.min_length <= len(x.split()) <= preset.settings.max_length
            for x in lines
        )
    everything = [line for lines in parts.values() for line in lines]
    assert len(set(everything)) == len(everything)  # no sentence in two parts
    for part in ("valid", "test"):
        trees = (tiny / CORPUS_FILES[f"{part}_trees"]).read_text().splitlines()
        assert len(trees) == len(parts[part])
        for line, sentence in zip(trees, parts[part], strict=True):
            assert parse_tree(line).leaves() == sentence.split()


def test_the_corpus_reads_back(tiny: Path) -> None:
    data = load_tree_corpus(tiny)
    assert [len(data.train), len(data.valid), len(data.test)] == [200, 20, 20]
    assert [t.leaves() for t in data.test_trees] == data.test
    assert data.info["preset"] == "tiny"
    assert read_sentences(tiny / "train.txt") == data.train


def test_the_build_is_deterministic_and_the_test_set_keeps_its_sentences(
    tiny: Path, tmp_path: Path
) -> None:
    build_tree_corpus(tmp_path / "again", preset="tiny", seed=0)
    for name in [*CORPUS_FILES.values(), "corpus.json"]:
        assert (tmp_path / "again" / name).read_bytes() == (tiny / name).read_bytes(), name
    build_tree_corpus(tmp_path / "seed1", preset="tiny", seed=1)
    assert (tmp_path / "seed1" / "test.txt").read_bytes() != (tiny / "test.txt").read_bytes()
    build_tree_corpus(tmp_path / "small", preset="tiny", seed=0, overrides={"train": 30})
    assert (tmp_path / "small" / "test.txt").read_bytes() == (tiny / "test.txt").read_bytes()
    assert len((tmp_path / "small" / "train.txt").read_text().splitlines()) == 30


def test_other_presets_use_the_other_grammar(tmp_path: Path) -> None:
    info = build_tree_corpus(tmp_path / "o", preset="other-tiny", seed=0)
    assert info.settings.family == "other" and PRESETS["other"].settings.family == "other"
    words = set((tmp_path / "o" / "train.txt").read_text().split())
    assert words <= set(Grammar(PRESETS["other-tiny"].settings).vocabulary)
    assert not words & set(Grammar(PRESETS["tiny"].settings).lexicon["NN"])
    trees = load_tree_corpus(tmp_path / "o").test_trees
    assert any(_first(n) == "NP" and n.label == "PP" for t in trees for n in _nodes(t))


def test_overrides_parse_their_types_and_refuse_unknown_keys() -> None:
    assert parse_overrides(["binary=true", "recursion=0.5", "train=10", "family=other"]) == {
        "binary": True,
        "recursion": 0.5,
        "train": 10,
        "family": "other",
    }
    with pytest.raises(UsageError, match="--set depth: unknown setting; expected one of"):
        parse_overrides(["depth=3"])
    with pytest.raises(UsageError, match="--set vocab_size=many: expected an integer"):
        parse_overrides(["vocab_size=many"])
    with pytest.raises(UsageError, match="--set binary=maybe: expected true or false"):
        parse_overrides(["binary=maybe"])
    with pytest.raises(UsageError, match="--set binary: expected KEY=VALUE"):
        parse_overrides(["binary"])


# --------------------------------------------------------------------------------------------
# seqae data tree


@pytest.fixture()
def cli(monkeypatch: pytest.MonkeyPatch):
    """``seqae`` with ``data tree``, registered here until the tree plugin registers it."""
    if "tree" not in registry.names("data_builder"):
        monkeypatch.setitem(registry.REGISTRY._items["data_builder"], "tree", corpus.add_parser)
    return main


def test_seqae_data_tree_builds_a_corpus(cli, tmp_path: Path, capsys) -> None:
    out = tmp_path / "c"
    assert cli(["data", "tree", "--out", str(out), "--preset", "tiny", "--set", "train=40"]) == 0
    assert "40 train, 20 valid and 20 test sentences" in capsys.readouterr().out
    assert len((out / "train.txt").read_text().splitlines()) == 40


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--set", "vocab_size=10"], "vocab_size 10 is too small"),
        (["--set", "nonsense=1"], "--set nonsense: unknown setting"),
        (["--set", "train=0"], "train: 0; expected a number of sentences >= 1"),
        (["--set", "min_length=9", "--set", "max_length=4"], "max_length 4 is below min_length 9"),
    ],
)
def test_seqae_data_tree_bad_settings_exit_2_with_one_line(
    cli, tmp_path: Path, capsys, args: list[str], message: str
) -> None:
    out = tmp_path / "c"
    assert cli(["data", "tree", "--out", str(out), "--preset", "tiny", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqae: error: ") and message in err and "\n" not in err
    assert not out.exists()


def test_seqae_data_tree_refuses_a_used_folder_unless_overwrite(
    cli, tmp_path: Path, capsys
) -> None:
    out = tmp_path / "c"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    assert cli(["data", "tree", "--out", str(out), "--preset", "tiny"]) == 2
    assert "exists and is not empty; pass --overwrite" in capsys.readouterr().err
    assert cli(["data", "tree", "--out", str(out), "--preset", "tiny", "--overwrite"]) == 0
    assert (out / "notes.txt").read_text() == "mine\n" and (out / "corpus.json").is_file()
    (tmp_path / "file").write_text("x")
    assert cli(["data", "tree", "--out", str(tmp_path / "file"), "--preset", "tiny"]) == 2
    assert "is a file; expected a folder" in capsys.readouterr().err
