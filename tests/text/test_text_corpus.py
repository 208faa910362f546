"""The embedded text corpus: extraction from apt index files, filters, deduplication, the split
by source package, determinism, presets and ``seqae data text``."""

from __future__ import annotations

import glob
import gzip
import json
import os
from pathlib import Path

import pytest

from seqae.cli import main
from seqae.errors import UsageError
from seqae.text import corpus
from seqae.text.corpus import (
    CORPUS_FILES,
    MAX_WORDS,
    MIN_WORDS,
    PRESETS,
    SPLIT_FRACTIONS,
    TextCorpusError,
    build_text_corpus,
    description_pair,
    read_index_file,
    split_of,
)

_VOCABULARY = (
    "tool library manages files network data graphics audio video server client plugin "
    "format parser editor viewer archive backup monitor desktop terminal shell fonts "
    "database cache queue scheduler compiler debugger profiler kernel driver firmware "
    "printer scanner camera keyboard mouse window theme icon sound music player recorder "
    "converter encoder decoder compressor"
)
WORDS = _VOCABULARY.split()
ALPHA = "abcdefghijklmnopqrstuvwxyz"
N_SOURCES = 80


def _name(i: int) -> str:
    return "src" + ALPHA[i // 26 % 26] + ALPHA[i % 26]


def _words(seed: int, n: int) -> str:
    return " ".join(WORDS[(seed * 7 + k * (seed % 5 + 1)) % len(WORDS)] for k in range(n))


def _article(i: int, n_words: int = 40, version: str | None = None) -> str:
    version = version or f"{i % 7}.{i % 3}"
    return f"{_name(i).capitalize()} version {version} is a program that {_words(i, n_words - 7)}."


def _description(synopsis: str, *paragraphs: str, raw: list[str] | None = None) -> str:
    """A Description-en field: synopsis, then paragraphs (wrapped at ~8 words) split by ' .'."""
    lines = [f"Description-en: {synopsis}"]
    for k, paragraph in enumerate(paragraphs):
        if k:
            lines.append(" .")
        words = paragraph.split()
        lines += [" " + " ".join(words[j : j + 8]) for j in range(0, len(words), 8)]
    lines += [" " + line for line in raw or []]
    return "\n".join(lines)


def _stanza(package: str, description: str) -> str:
    return f"Package: {package}\nDescription-md5: 0123\n{description}\n"


def _write_fixture(folder: Path) -> dict[str, object]:
    """Translation-en (one part plain, one gzip) and Packages files; returns what they hold."""
    stanzas: list[str] = []
    packages: list[str] = []
    expected: dict[str, tuple[str, str, str]] = {}  # package -> (article, summary, source)
    for i in range(N_SOURCES):
        source = _name(i)
        binary = f"lib{source}1" if i % 3 == 0 else source
        summary = f"{_words(i + 100, 3)} for {source}"
        stanzas.append(_stanza(binary, _description(summary, _article(i), "Second paragraph.")))
        packages.append(
            f"Package: {binary}\nVersion: 1.0-1\n"
            + (f"Source: {source} (1.0-1)\n" if binary != source else "")
            + "Architecture: amd64\n"
        )
        expected[binary] = (_article(i), summary, source)
    # a -doc package of source 0 sharing its article, another sharing its synopsis: both are
    # duplicates of lib<source>1 (no package is named like the source; shorter names first)
    src0 = _name(0)
    stanzas.append(_stanza(f"{src0}-doc", _description("documentation for it", _article(0))))
    stanzas.append(_stanza(f"{src0}-data", _description(expected[f"lib{src0}1"][1], _article(200))))
    # same article up to case and version numbers, another source
    stanzas.append(
        _stanza(
            "zzdup", _description("a different synopsis here", _article(1, version="10.2").upper())
        )
    )
    packages += [
        f"Package: {src0}-doc\nSource: {src0}\n",
        f"Package: {src0}-data\nSource: {src0}\n",
    ]
    packages.append("Package: zzdup\n")
    # dropped by the filters
    drops = {
        "shortpkg": _description("too short an article", _words(1, MIN_WORDS - 1)),
        "longpkg": _description("too long an article", _words(2, MAX_WORDS + 1)),
        "listpkg": _description("has a list", _words(3, 30), raw=["* one item", "* another"]),
        "verbpkg": _description("has a verbatim line", _words(4, 30), raw=[" $ make install"]),
        "intropkg": _description("introduces a list", _words(5, 30) + " features:"),
        "sympkg": _description("mostly symbols", "v1.2.3 " * 20 + _words(6, 10)),
        "onewordpkg": _description("Word", _words(7, 30)),
        "orphanpkg": _description("not in any Packages file", _words(8, 30)),
    }
    for package, description in drops.items():
        stanzas.append(_stanza(package, description))
        if package != "orphanpkg":
            packages.append(f"Package: {package}\n")
    half = len(stanzas) // 2
    plain = folder / "x_main_i18n_Translation-en"
    plain.write_text("\n".join(stanzas[:half]), encoding="utf-8")
    gz = folder / "y_main_i18n_Translation-en.gz"
    gz.write_bytes(gzip.compress("\n".join(stanzas[half:]).encode("utf-8"), mtime=0))
    pk = folder / "x_main_binary-amd64_Packages"
    pk.write_text("\n".join(packages), encoding="utf-8")
    return {"sources": [plain, gz, pk], "expected": expected, "drops": drops}


@pytest.fixture(scope="module")
def fixture_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    return _write_fixture(tmp_path_factory.mktemp("apt"))


@pytest.fixture(scope="module")
def built(fixture_files, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("corpus") / "text"
    info = build_text_corpus(out, sources=fixture_files["sources"])
    return out, info


def _read_parts(out: Path) -> dict[str, list]:
    parts: dict[str, list] = {}
    for part, name in CORPUS_FILES.items():
        lines = (out / name).read_text(encoding="utf-8").splitlines()
        parts[part] = [json.loads(x) for x in lines] if name.endswith(".jsonl") else lines
    return parts


# --------------------------------------------------------------------------------------------
# Descriptions


def test_description_pair_takes_the_first_paragraph_and_the_synopsis():
    article = _words(3, 30)
    field = _description("A  synopsis\tline ", article, "Second one.").split(": ", 1)[1]
    assert field.count("\n") > 3  # the article spans several lines
    assert description_pair(field) == (article, "A synopsis line")


@pytest.mark.parametrize(
    ("n_words", "expected"),
    [
        (MIN_WORDS - 1, "too_short"),
        (MIN_WORDS, None),
        (MAX_WORDS, None),
        (MAX_WORDS + 1, "too_long"),
    ],
)
def test_word_range_is_inclusive(n_words, expected):
    assert (MIN_WORDS, MAX_WORDS) == (25, 80)  # the range the corpus is specified with
    result = description_pair(_description("two words", _words(2, n_words)).split(": ", 1)[1])
    if expected is None:
        assert isinstance(result, tuple)
        assert len(result[0].split()) == n_words
    else:
        assert result == expected


@pytest.mark.parametrize(
    ("description", "reason"),
    [
        (_description("has a list", _words(3, 30), raw=["- one item"]), "list"),
        (_description("has a list", _words(3, 30), raw=["1. first"]), "list"),
        (_description("verbatim code", _words(4, 30), raw=[" ./configure"]), "verbatim"),
        (_description("introduces a list", _words(5, 30) + " such as:"), "intro"),
        (_description("mostly symbols", "0x1F 0x2E 3.14 " * 10 + _words(6, 5)), "symbols"),
        (_description("Word", _words(7, 30)), "synopsis"),
        (_description("bad \ufffd byte", _words(7, 30)), "encoding"),
    ],
)
def test_description_pair_drops_what_is_not_prose(description, reason):
    assert description_pair(description.split(": ", 1)[1]) == reason


# --------------------------------------------------------------------------------------------
# Reading apt files


def test_read_index_file_reads_gzip_with_and_without_apt_helper(fixture_files, monkeypatch):
    gz = fixture_files["sources"][1]
    with gzip.open(gz, "rt", encoding="utf-8") as handle:
        expected = handle.read()
    assert read_index_file(gz) == expected
    monkeypatch.setattr(corpus, "_APT_HELPER", "/nonexistent/apt-helper")
    assert read_index_file(gz) == expected


def test_unreadable_index_file_is_a_clear_error(tmp_path, monkeypatch):
    bad = tmp_path / "Translation-en.gz"
    bad.write_bytes(b"not gzip at all")
    monkeypatch.setattr(corpus, "_APT_HELPER", "/nonexistent/apt-helper")
    with pytest.raises(TextCorpusError, match="cannot read"):
        read_index_file(bad)


# --------------------------------------------------------------------------------------------
# Building


def test_pairs_sources_and_filters(built, fixture_files):
    out, info = built
    parts = _read_parts(out)
    expected = fixture_files["expected"]
    for part in ("valid", "test"):
        for pair in parts[part]:
            article, summary, source = expected[pair["package"]]
            assert (pair["article"], pair["summary"], pair["source"]) == (article, summary, source)
    all_articles = parts["train_articles"] + [p["article"] for p in parts["valid"] + parts["test"]]
    all_summaries = parts["train_summaries"] + [
        p["summary"] for p in parts["valid"] + parts["test"]
    ]
    # every fixture source kept once, in one part, nothing of a dropped package anywhere
    kept = {e[2] for e in expected.values() if e[0] in all_articles or e[1] in all_summaries}
    assert len(kept) == sum(info.sizes.values()) == N_SOURCES
    for description in fixture_files["drops"].values():
        synopsis = description.split("\n")[0].split(": ", 1)[1]
        assert synopsis not in all_summaries
    assert info.filtered == {
        "duplicate": 3,
        "intro": 1,
        "list": 1,
        "symbols": 1,
        "synopsis": 1,
        "too_long": 1,
        "too_short": 1,
        "unknown_source": 1,
        "verbatim": 1,
    }
    assert "Second paragraph" not in " ".join(all_articles)


def test_deduplication_keeps_one_package_per_article_and_summary(built):
    out, _ = built
    parts = _read_parts(out)
    pairs = parts["valid"] + parts["test"]
    articles = parts["train_articles"] + [p["article"] for p in pairs]
    summaries = parts["train_summaries"] + [p["summary"] for p in pairs]
    assert len({a.casefold() for a in articles}) == len(articles)
    assert len(set(summaries)) == len(summaries)
    packages = [p["package"] for p in pairs]
    assert not {f"{_name(0)}-doc", f"{_name(0)}-data", "zzdup"} & set(packages)
    # what is kept of sources 0 and 1 is the first package's pair: lib<src0>1 and src1
    for i, package in ((0, f"lib{_name(0)}1"), (1, _name(1))):
        part = split_of(_name(i))
        if part == "train_articles":
            assert _article(i) in parts[part]
        elif part == "train_summaries":
            assert f"{_words(i + 100, 3)} for {_name(i)}" in parts[part]
        else:
            assert package in [p["package"] for p in parts[part]]
    assert _article(200) not in articles  # srcaa-data went whole


def test_split_is_by_source_package_and_disjoint(built, fixture_files):
    out, _ = built
    parts = _read_parts(out)
    expected = fixture_files["expected"]
    by_article = {e[0]: e[2] for e in expected.values()}
    by_summary = {e[1]: e[2] for e in expected.values()}
    sources = {
        "train_articles": [by_article[a] for a in parts["train_articles"]],
        "train_summaries": [by_summary[s] for s in parts["train_summaries"]],
        "valid": [p["source"] for p in parts["valid"]],
        "test": [p["source"] for p in parts["test"]],
    }
    for part, names in sources.items():
        assert names, f"fixture too small: part {part} is empty"
        assert all(split_of(name) == part for name in names)
    seen = [name for names in sources.values() for name in names]
    assert len(seen) == len(set(seen))  # no source in two parts (nor twice in one)


def test_split_fractions_on_many_names():
    names = [f"package-{i}" for i in range(20000)]
    counts = {part: 0 for part in SPLIT_FRACTIONS}
    for name in names:
        counts[split_of(name)] += 1
    for part, fraction in SPLIT_FRACTIONS.items():
        assert abs(counts[part] / len(names) - fraction) < 0.015


def test_build_is_deterministic_byte_for_byte(built, fixture_files, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    build_text_corpus(again, sources=fixture_files["sources"])
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted([*CORPUS_FILES.values(), "corpus.json"])
    assert sorted(p.name for p in again.iterdir()) == names
    for name in names:
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_corpus_json_records_sizes_and_sources(built, fixture_files):
    out, info = built
    meta = json.loads((out / "corpus.json").read_text(encoding="utf-8"))
    assert meta["format_version"] == corpus.CORPUS_FORMAT
    assert meta["sizes"] == info.sizes
    assert meta["split_fractions"] == SPLIT_FRACTIONS
    for name, size in info.sizes.items():
        assert len((out / CORPUS_FILES[name]).read_text(encoding="utf-8").splitlines()) == size
    recorded = {Path(s["path"]): s for s in meta["sources"]}
    for path in fixture_files["sources"]:
        assert recorded[path]["bytes"] == path.stat().st_size
        assert len(recorded[path]["sha256"]) == 64


def test_tiny_preset_is_a_prefix_of_each_full_part(built, fixture_files, tmp_path, monkeypatch):
    out, _ = built
    limits = {"train_articles": 5, "train_summaries": 4, "valid": 2, "test": 1}
    monkeypatch.setitem(PRESETS, "tiny", limits)
    info = build_text_corpus(tmp_path / "tiny", preset="tiny", sources=fixture_files["sources"])
    assert info.sizes == limits
    full, tiny = _read_parts(out), _read_parts(tmp_path / "tiny")
    for part, limit in limits.items():
        assert tiny[part] == full[part][:limit]


def test_explicit_sources_must_be_apt_index_files(fixture_files, tmp_path):
    plain, _, packages = fixture_files["sources"]
    with pytest.raises(TextCorpusError, match="no Packages file"):
        build_text_corpus(tmp_path / "a", sources=[plain])
    with pytest.raises(TextCorpusError, match="no Translation-en"):
        build_text_corpus(tmp_path / "b", sources=[packages])
    other = tmp_path / "notes.txt"
    other.write_text("x")
    with pytest.raises(TextCorpusError, match="not an apt index file"):
        build_text_corpus(tmp_path / "c", sources=[plain, packages, other])
    with pytest.raises(TextCorpusError, match="no such file"):
        build_text_corpus(tmp_path / "d", sources=[tmp_path / "missing_Translation-en"])


def test_a_source_that_is_a_directory_is_named_as_one(fixture_files, tmp_path):
    plain, _, packages = fixture_files["sources"]
    folder = tmp_path / "lists"
    folder.mkdir()
    for sources in ([folder, packages], [plain, folder]):
        with pytest.raises(TextCorpusError) as caught:
            build_text_corpus(tmp_path / "out", sources=sources)
        assert str(caught.value) == (
            f"{folder} is a directory, expected a Packages or Translation file (an apt index file)"
        )
    assert not (tmp_path / "out").exists()


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("empty_Translation-en", b""),
        ("junk_Translation-en", b"\x00\xffnot a deb822 file\nat all\n"),
        ("junk_Translation-en.gz", b"garbage, not gzip"),  # apt-helper passes it through
    ],
    ids=["empty", "junk", "junk-gz"],
)
def test_cli_refuses_sources_without_usable_descriptions_and_keeps_the_corpus(
    fixture_files, tmp_path, capsys, name, data
):
    out = tmp_path / "text"
    build_text_corpus(out, sources=fixture_files["sources"])
    before = _snapshot(out)
    translation, packages = tmp_path / name, tmp_path / "x_Packages"
    translation.write_bytes(data)
    packages.write_text("")
    argv = ["data", "text", "--out", str(out), "--overwrite"]
    assert main([*argv, "--source", str(translation), "--source", str(packages)]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert err.startswith("seqae: error:") and "\n" not in err and not captured.out
    if os.access(corpus._APT_HELPER, os.X_OK) or not name.endswith(".gz"):
        assert "no usable descriptions found in" in err
        assert str(translation) in err and str(packages) in err
    assert _snapshot(out) == before  # the good corpus, corpus.json included, untouched


def test_a_part_left_without_pairs_is_refused_before_writing(fixture_files, tmp_path):
    # one usable pair: three parts would be empty
    plain, _, packages = fixture_files["sources"]
    one = tmp_path / "one_Translation-en"
    one.write_text(_stanza(_name(5), _description("a tool for src five", _article(5))))
    with pytest.raises(TextCorpusError) as caught:
        build_text_corpus(tmp_path / "out", sources=[one, packages])
    message = str(caught.value)
    assert "too few usable descriptions" in message and "1 in all" in message
    empty = [part for part in SPLIT_FRACTIONS if part != split_of(_name(5))]
    assert f"for part {', '.join(empty)};" in message
    assert str(one) in message and "\n" not in message
    assert not (tmp_path / "out").exists()
    assert corpus.MIN_PART_PAIRS >= 1


def test_an_out_that_is_a_file_is_named_as_the_caller_names_it(fixture_files, tmp_path, capsys):
    target = tmp_path / "corpus_file"
    target.write_text("mine\n")
    sources = fixture_files["sources"]
    with pytest.raises(TextCorpusError) as caught:
        build_text_corpus(target, sources=sources, overwrite=True, what="data.corpus")
    assert str(caught.value).startswith(f"data.corpus {target} is a file")
    assert "--out" not in str(caught.value)
    with pytest.raises(TextCorpusError, match=r"^--out .* is a file"):
        build_text_corpus(target, sources=sources)
    args = ["data", "text", "--out", str(target)]
    assert main([*args, *(x for s in sources for x in ("--source", str(s)))]) == 2
    assert capsys.readouterr().err.startswith(f"seqae: error: --out {target} is a file")
    assert target.read_text() == "mine\n"


def test_no_translation_files_says_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    monkeypatch.setattr(corpus, "_LISTS_DIR", str(tmp_path))
    with pytest.raises(TextCorpusError, match=r"apt-get update -o Acquire::Languages=en"):
        build_text_corpus(tmp_path / "out")
    assert issubclass(TextCorpusError, UsageError)


# --------------------------------------------------------------------------------------------
# Command line


def test_cli_builds_refuses_a_used_out_and_overwrites(fixture_files, tmp_path, capsys):
    out = tmp_path / "text"
    args = ["data", "text", "--out", str(out)]
    for source in fixture_files["sources"]:
        args += ["--source", str(source)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    sizes = json.loads((out / "corpus.json").read_text(encoding="utf-8"))["sizes"]
    assert f"{sizes['train_articles']} train articles" in printed
    assert f"{sizes['test']} test pairs" in printed
    before = (out / "valid.jsonl").read_bytes()

    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("seqae: error:") and "--overwrite" in err and "\n" not in err

    (out / "valid.jsonl").write_text("stale\n")
    assert main([*args, "--overwrite"]) == 0
    assert (out / "valid.jsonl").read_bytes() == before


def test_cli_without_translation_files_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(corpus.shutil, "which", lambda name: None)
    monkeypatch.setattr(corpus, "_LISTS_DIR", str(tmp_path))
    assert main(["data", "text", "--out", str(tmp_path / "out"), "--preset", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Acquire::Languages=en" in err
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------------------------
# This machine's apt lists (tiny preset: reads them all, writes a few hundred lines)


@pytest.mark.skipif(
    not glob.glob("/var/lib/apt/lists/*_Translation-en*"),
    reason="no Translation-en file: run `apt-get update -o Acquire::Languages=en`",
)
def test_tiny_build_from_this_machines_apt_lists(tmp_path):
    info = build_text_corpus(tmp_path / "text", preset="tiny")
    assert info.sizes == PRESETS["tiny"]
    parts = _read_parts(tmp_path / "text")
    pairs = parts["valid"] + parts["test"]
    for pair in pairs:
        assert MIN_WORDS <= len(pair["article"].split()) <= MAX_WORDS
        assert split_of(pair["source"]) in ("valid", "test")
    assert not {p["source"] for p in parts["valid"]} & {p["source"] for p in parts["test"]}
    assert all(MIN_WORDS <= len(a.split()) <= MAX_WORDS for a in parts["train_articles"])
