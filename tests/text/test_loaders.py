"""Text data loaders: the embedded corpus folder, a user's files, Gigaword, and every kind of bad
input (one clear error naming the file and line)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seqae.errors import UsageError
from seqae.text.loaders import (
    GIGAWORD_UNK,
    TextDataError,
    TextDataWarning,
    TextPair,
    load_gigaword_pairs,
    load_text_corpus,
    normalize_gigaword,
    read_pairs,
    read_text_lines,
)


def _write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _jsonl(path: Path, rows: list[dict]) -> Path:
    return _write(path, "".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def user_files(tmp_path: Path) -> dict[str, str]:
    return {
        "articles": str(_write(tmp_path / "a.txt", "first  article\there\nsecond article\r\n")),
        "summaries": str(_write(tmp_path / "s.txt", "a summary\nanother one\nthird\n")),
        "valid_pairs": str(
            _jsonl(tmp_path / "v.jsonl", [{"article": "x  y", "summary": "x", "id": "v1"}])
        ),
        "test_pairs": str(
            _jsonl(
                tmp_path / "t.jsonl",
                [
                    {"article": "p q", "summary": "p", "package": "pkg"},
                    {"article": "r", "summary": "s"},
                ],
            )
        ),
    }


# --------------------------------------------------------------------------------------------
# Reading


def test_user_files(user_files):
    corpus = load_text_corpus({**user_files, "corpus": None, "gigaword": None})
    assert corpus.articles == ["first article here", "second article"]
    assert corpus.summaries == ["a summary", "another one", "third"]
    assert corpus.valid == [TextPair("x y", "x", "v1")]
    assert corpus.test == [TextPair("p q", "p", "pkg"), TextPair("r", "s", None)]
    assert corpus.style == "plain" and corpus.unk_token is None


def test_pairs_are_optional_with_user_files(user_files):
    corpus = load_text_corpus(
        {"articles": user_files["articles"], "summaries": user_files["summaries"]}
    )
    assert corpus.valid == [] and corpus.test == []


def _embedded(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    _write(folder / "train_articles.txt", "article one\narticle two\n")
    _write(folder / "train_summaries.txt", "summary one\n")
    pair = {"article": "an article", "summary": "a summary", "package": "p", "source": "s"}
    _jsonl(folder / "valid.jsonl", [pair])
    _jsonl(folder / "test.jsonl", [pair, {**pair, "package": "q"}])
    meta = {
        "format_version": 1,
        "files": {
            "train_articles": "train_articles.txt",
            "train_summaries": "train_summaries.txt",
            "valid": "valid.jsonl",
            "test": "test.jsonl",
        },
    }
    _write(folder / "corpus.json", json.dumps(meta))
    return folder


def test_embedded_corpus_folder_and_a_part_replaced(tmp_path, user_files):
    folder = _embedded(tmp_path)
    corpus = load_text_corpus({"corpus": str(folder)})
    assert corpus.articles == ["article one", "article two"]
    assert corpus.summaries == ["summary one"]
    assert [p.id for p in corpus.test] == ["p", "q"]
    assert corpus.valid == [TextPair("an article", "a summary", "p")]
    mixed = load_text_corpus({"corpus": str(folder), "test_pairs": user_files["test_pairs"]})
    assert [p.id for p in mixed.test] == ["pkg", None]
    assert mixed.articles == corpus.articles


def test_embedded_corpus_built_by_seqae_data_text_loads(tmp_path):
    """The loader reads what the builder writes (small apt files from the corpus tests)."""
    from test_text_corpus import _write_fixture

    from seqae.text.corpus import build_text_corpus

    apt = tmp_path / "apt"
    apt.mkdir()
    info = build_text_corpus(tmp_path / "text", sources=_write_fixture(apt)["sources"])
    corpus = load_text_corpus({"corpus": str(tmp_path / "text")})
    sizes = {
        "train_articles": len(corpus.articles),
        "train_summaries": len(corpus.summaries),
        "valid": len(corpus.valid),
        "test": len(corpus.test),
    }
    assert sizes == info.sizes
    assert all(p.id for p in corpus.valid + corpus.test)


def test_folder_without_corpus_json(tmp_path):
    folder = _embedded(tmp_path)
    (folder / "corpus.json").unlink()
    with pytest.raises(TextDataError, match="no corpus.json.*seqae data text"):
        load_text_corpus({"corpus": str(folder)})


def test_damaged_corpus_json(tmp_path):
    folder = _embedded(tmp_path)
    meta = json.loads((folder / "corpus.json").read_text())
    del meta["files"]["valid"]
    _write(folder / "corpus.json", json.dumps(meta))
    with pytest.raises(TextDataError, match="is damaged.*rebuild"):
        load_text_corpus({"corpus": str(folder)})
    _write(folder / "corpus.json", "{not json")
    with pytest.raises(TextDataError, match="is damaged"):
        load_text_corpus({"corpus": str(folder)})


def test_corpus_json_from_a_newer_seqae(tmp_path):
    folder = _embedded(tmp_path)
    meta = json.loads((folder / "corpus.json").read_text())
    _write(folder / "corpus.json", json.dumps({**meta, "format_version": 99}))
    with pytest.raises(TextDataError, match="format 99"):
        load_text_corpus({"corpus": str(folder)})


# --------------------------------------------------------------------------------------------
# Gigaword


def _gigaword(tmp_path: Path, *, title_lines: int | None = None) -> Path:
    folder = tmp_path / "giga"
    folder.mkdir()
    articles = [f"article {i} about UNK in #### with {i} dead" for i in "abcdef"]
    titles = [f"title {i} UNK ## dead" for i in "abcdef"][:title_lines]
    _write(folder / "train.article.txt", "\n".join(articles) + "\n")
    _write(folder / "train.title.txt", "\n".join(titles) + "\n")
    _write(folder / "valid.article.filter.txt", "a valid article 12\n")
    _write(folder / "valid.title.filter.txt", "valid 3\n")
    return folder


def test_gigaword_folder(tmp_path, user_files):
    folder = _gigaword(tmp_path)
    corpus = load_text_corpus({"gigaword": str(folder)})
    # first half's articles, second half's titles: no training article with its own title
    assert corpus.articles == [f"article {i} about UNK in #### with {i} dead" for i in "abc"]
    assert corpus.summaries == [f"title {i} UNK ## dead" for i in "def"]
    assert corpus.valid == [TextPair("a valid article ##", "valid #", "valid.article.filter.txt:1")]
    assert corpus.test == []
    assert corpus.style == "gigaword" and corpus.unk_token == GIGAWORD_UNK == "UNK"
    assert corpus.normalize("In 2015, 3  UNK died") == "In ####, # UNK died"
    # a user's pairs read in Gigaword's style get its digit convention
    _jsonl(Path(user_files["test_pairs"]), [{"article": "won 12 to 3", "summary": "won"}])
    mixed = load_text_corpus({"gigaword": str(folder), "test_pairs": user_files["test_pairs"]})
    assert mixed.test == [TextPair("won ## to #", "won", None)]


def test_normalize_gigaword_is_idempotent_and_keeps_unk():
    once = normalize_gigaword(" Sales up 4.5 %\tto UNK 2019 ")
    assert once == "Sales up #.# % to UNK ####"
    assert normalize_gigaword(once) == once


def test_plain_style_can_be_switched_to_gigaword(user_files, tmp_path):
    _write(Path(user_files["articles"]), "born in 1970\n")
    corpus = load_text_corpus({**user_files, "style": "gigaword"})
    assert corpus.articles == ["born in ####"] and corpus.unk_token == "UNK"


def test_gigaword_mismatched_line_counts(tmp_path):
    folder = _gigaword(tmp_path, title_lines=5)
    with pytest.raises(TextDataError, match=r"train\.article\.txt has 6 lines but .* has 5"):
        load_text_corpus({"gigaword": str(folder)})


def test_gigaword_blank_line_skips_the_pair(tmp_path):
    a = _write(tmp_path / "x.article.txt", "one\n\nthree\n")
    t = _write(tmp_path / "x.title.txt", "1\ntwo\n   \n")
    with pytest.warns(TextDataWarning, match="skipped 2 blank line pairs"):
        pairs = load_gigaword_pairs(a, t)
    assert pairs == [TextPair("one", "#", "x.article.txt:1")]


def test_gigaword_missing_title_file(tmp_path):
    folder = _gigaword(tmp_path)
    (folder / "valid.title.filter.txt").unlink()
    with pytest.raises(TextDataError, match="lacks valid.title.txt"):
        load_text_corpus({"gigaword": str(folder)})


# --------------------------------------------------------------------------------------------
# Bad input


def test_blank_lines_are_skipped_with_one_warning(tmp_path):
    path = _write(tmp_path / "a.txt", "one\n\n  \t\ntwo\n\n")
    with pytest.warns(TextDataWarning, match=r"a\.txt: skipped 3 blank lines") as record:
        assert read_text_lines(path) == ["one", "two"]
    assert len(record) == 1
    pairs = _write(tmp_path / "p.jsonl", '\n{"article": "a", "summary": "b"}\n')
    with pytest.warns(TextDataWarning, match="skipped 1 blank line$"):
        assert read_pairs(pairs) == [TextPair("a", "b")]


@pytest.mark.parametrize("content", ["", "\n\n \n"])
def test_empty_files(tmp_path, user_files, content):
    _write(Path(user_files["summaries"]), content)
    with pytest.raises(TextDataError, match=r"data\.summaries: .*s\.txt has no text"):
        load_text_corpus(user_files)
    _write(Path(user_files["valid_pairs"]), content)
    with pytest.raises(TextDataError, match=r"v\.jsonl has no pairs"):
        read_pairs(user_files["valid_pairs"])


def test_bytes_that_are_not_utf8_name_the_line(tmp_path, user_files):
    _write(Path(user_files["articles"]), b"fine\nalso fine\nbad \xff byte\n")
    with pytest.raises(TextDataError, match=r"a\.txt line 3: byte 0xff at column 5 is not UTF-8"):
        load_text_corpus(user_files)
    _write(Path(user_files["articles"]), "fine\n")
    _write(
        Path(user_files["test_pairs"]), b'{"article": "a", "summary": "b"}\n{"article": "\xc3"}\n'
    )
    with pytest.raises(TextDataError, match=r"data\.test_pairs: .*t\.jsonl line 2: byte 0xc3"):
        load_text_corpus(user_files)


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not JSON"),
        ('["article", "summary"]', "a JSON list, expected an object"),
        ('{"article": "only"}', "no 'summary' field"),
        ('{"summary": "only"}', "no 'article' field"),
        ('{"article": 3, "summary": "s"}', "'article' is a JSON int; expected a string"),
        ('{"article": "a", "summary": "  "}', "'summary' is empty"),
    ],
)
def test_bad_jsonl_lines(tmp_path, user_files, line, problem):
    _write(Path(user_files["valid_pairs"]), '{"article": "a", "summary": "b"}\n\n' + line + "\n")
    with pytest.raises(TextDataError) as info:
        load_text_corpus(user_files)
    message = str(info.value)
    assert "data.valid_pairs" in message and "v.jsonl line 3" in message and problem in message
    assert "\n" not in message


def test_missing_file_and_folder_instead_of_file(tmp_path, user_files):
    with pytest.raises(TextDataError, match=r"data\.articles: .*nope\.txt: no such file"):
        load_text_corpus({**user_files, "articles": str(tmp_path / "nope.txt")})
    with pytest.raises(TextDataError, match="is a folder"):
        load_text_corpus({**user_files, "summaries": str(tmp_path)})
    with pytest.raises(TextDataError, match=r"data\.gigaword: .*: no such folder"):
        load_text_corpus({"gigaword": str(tmp_path / "nope")})


@pytest.mark.parametrize(
    ("cfg", "problem"),
    [
        ({}, "no texts"),
        ({"corpus": None, "articles": "a.txt", "summaries": None}, "no texts"),
        ({"corpus": "c", "gigaword": "g"}, "not both"),
        ({"articles": "a", "summaries": "s", "style": "fancy"}, "data.style"),
        ({"articles": 3, "summaries": "s"}, "data.articles: 3 is not a path"),
    ],
)
def test_bad_data_sections(cfg, problem):
    with pytest.raises(TextDataError, match=problem):
        load_text_corpus(cfg)


def test_errors_are_usage_errors():
    assert issubclass(TextDataError, UsageError)
