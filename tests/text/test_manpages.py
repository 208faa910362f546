"""The man-page corpus: groff/mdoc to text, the drop reasons, links, deduplication, the split by
name stem, determinism, loading with the recipes' loader, and ``scripts/man_corpus.py``."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from seqae.config import load_config
from seqae.text.corpus import MAX_WORDS, MIN_WORDS, SPLIT_FRACTIONS, split_of
from seqae.text.loaders import load_text_corpus
from seqae.text.manpages import (
    MAN_CORPUS_FILES,
    ManCorpusError,
    build_man_corpus,
    man_page_pair,
    page_name,
    read_man_source,
    render_escapes,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "man_corpus.py"
WORDS = [
    "program",
    "reads",
    "files",
    "writes",
    "records",
    "network",
    "socket",
    "buffer",
    "device",
    "driver",
    "kernel",
    "memory",
    "process",
    "signal",
    "thread",
    "queue",
    "table",
    "index",
    "cache",
    "stream",
    "parser",
    "format",
    "archive",
    "terminal",
    "screen",
    "window",
    "printer",
    "library",
    "function",
    "value",
    "string",
    "number",
    "pointer",
]
N_PAGES = 60


def _words(seed: int, n: int) -> str:
    return " ".join(WORDS[(seed * 7 + k * (seed % 5 + 1)) % len(WORDS)] for k in range(n))


def _man(name: str, summary: str, description: str, *, header: str = "") -> str:
    """A man(7) page whose DESCRIPTION is ``description`` (groff lines)."""
    return (
        f'.\\" a comment line\n.TH {name.upper()} 1 "2024" "test"\n{header}.SH NAME\n'
        f"{name} \\- {summary}\n.SH SYNOPSIS\n.B {name}\n[\\fIOPTION\\fR]...\n"
        f".SH DESCRIPTION\n{description}\n.SH OPTIONS\n.TP\n\\fB\\-v\\fR\nbe verbose\n"
    )


def _prose(seed: int, n_words: int = 40, *, name: str = "tool") -> str:
    """A first paragraph of ``n_words`` words naming ``name`` second, wrapped over lines."""
    words = f"The {name} {_words(seed, n_words - 3)} quickly.".split()
    return "\n".join(" ".join(words[i : i + 9]) for i in range(0, len(words), 9))


def _write(path: Path, text: str, *, compress: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if compress else data)
    return path


# --------------------------------------------------------------------------------------------
# groff -> text


def test_escapes_become_their_text():
    line = r"\fBls\fR \-l \f(CWx\fP \(aqa\(aq \*(lqq\*(rq \e \[u00E9] \s-1IV\s0 \&. \(em z\ y"
    assert render_escapes(line) == "ls -l x 'a' \"q\" \\ \u00e9 IV . \u2014 z y"


def test_man_page_pair_joins_font_macros_and_stops_at_the_paragraph():
    description = (
        ".PP\n"
        "\\fBfrob\\fR frobnicates the widgets given on the command line, \\\n"
        "one after the other,\n"
        ".B in place\n"
        "and reports them to\n"
        ".BR syslog (3),\n"
        '.I "the system log"\n'
        '.\\" a comment inside the paragraph\n'
        "which keeps a record of every widget frobnicated since the machine booted \\(em\n"
        'unless told otherwise.  \\" a trailing comment\n'
        ".PP\n"
        "A second paragraph that is not part of the article.\n"
    )
    pair = man_page_pair(_man("frob", "frobnicate the widgets", description))
    assert pair == (
        "frob frobnicates the widgets given on the command line, one after the other, in place "
        "and reports them to syslog(3), the system log which keeps a record of every widget "
        "frobnicated since the machine booted \u2014 unless told otherwise.",
        "frobnicate the widgets",
    )


def test_an_mdoc_page_is_read_through_its_macros():
    page = (
        ".Dd January 1, 2024\n.Dt SSH-THING 1\n.Os\n.Sh NAME\n.Nm ssh-thing\n"
        ".Nd adds private keys to the\n.Nm agent\nof the session\n"
        ".Sh SYNOPSIS\n.Nm\n.Op Fl v\n.Sh DESCRIPTION\n"
        ".Nm\nadds private key identities to the authentication agent,\n.Xr ssh-agent 1 .\n"
        "When run without arguments, it adds the files\n.Pa ~/.ssh/id_rsa\nand\n"
        ".Pa ~/.ssh/id_ed25519 ,\nor those named with\n.Op Fl f Ar file .\n"
        "The keys are kept in memory until the agent exits\n.Pq see Xr ssh 1\n"
        "and are never written to any disk.\n.Pp\nThe options are as follows:\n"
        ".Bl -tag -width Ds\n.It Fl v\nVerbose.\n.El\n"
    )
    assert man_page_pair(page) == (
        "ssh-thing adds private key identities to the authentication agent, ssh-agent(1). When "
        "run without arguments, it adds the files ~/.ssh/id_rsa and ~/.ssh/id_ed25519, or those "
        "named with [-f file]. The keys are kept in memory until the agent exits (see ssh(1)) "
        "and are never written to any disk.",
        "adds private keys to the agent of the session",
    )


@pytest.mark.parametrize(
    ("page", "reason"),
    [
        (".so man1/other.1\n", "so_link"),
        ('.\\" alias\n.so man3/other.3\n', "so_link"),
        (".TH X 1\n.SH NAME\nx \\- do x well\n.SH SYNOPSIS\n.B x\n", "no_description"),
        (".TH X 1\n.SH NAME\nx \\- do x well\n.SH DESCRIPTION\n.SH OPTIONS\nz\n", "no_description"),
        (_man("x", "do x well", ".TP\n\\fB\\-a\\fR\n" + _prose(1)), "list"),
        (_man("x", "do x well", '.IP "\\(bu" 2\n' + _prose(1)), "list"),
        (_man("x", "do x well", ".nf\n" + _prose(1) + "\n.fi"), "verbatim"),
        (_man("x", "do x well", "  indented " + _prose(1)), "verbatim"),
        (_man("x", "do x well", _prose(1, MIN_WORDS - 1)), "too_short"),
        (_man("x", "do x well", _prose(1, MAX_WORDS + 1)), "too_long"),
        (_man("x", "do x well", _prose(1) + " as follows:"), "intro"),
        (_man("x", "do x well", ".PP\n" + " ".join(["0x1F 0x2E 42 -- 7 +="] * 8)), "symbols"),
        (_man("x", "frobnicate", _prose(1)), "short_summary"),
        (".TH X 1\n.SH NAME\nx\n.SH DESCRIPTION\n" + _prose(1), "no_name"),
        (".Dd x\n.Sh NAME\n.Nm x\n.Nd do x well\n.Sh DESCRIPTION\n.Bl -tag\n.It a\nb\n.El\n", "list"),
        (".Dd x\n.Sh NAME\n.Nm x\n.Nd do x well\n.Sh DESCRIPTION\n.Bd -literal\na b\n.Ed\n", "verbatim"),
    ],
)  # fmt: skip
def test_pages_that_give_no_pair_say_why(page, reason):
    assert man_page_pair(page) == reason


def test_a_page_whose_description_is_good_prose_is_kept():
    """The counterpart of the parametrized drops: the same page with a valid paragraph."""
    article, summary = man_page_pair(_man("x", "do x well", ".PP\n" + _prose(1)))
    assert summary == "do x well" and MIN_WORDS <= len(article.split()) <= MAX_WORDS


def test_page_files_gzipped_or_plain(tmp_path):
    text = _man("ls", "list directory contents", _prose(2))
    plain = _write(tmp_path / "man1" / "ls.1", text, compress=False)
    packed = _write(tmp_path / "man1" / "ls.1.gz", text)
    assert read_man_source(plain) == read_man_source(packed) == text
    assert page_name(packed) == ("ls", "1")
    assert page_name(tmp_path / "CA.pl.1ssl.gz") == ("CA.pl", "1ssl")
    assert page_name(tmp_path / "[.1.gz") == ("[", "1")
    assert page_name(tmp_path / "README") == ("README", "")


# --------------------------------------------------------------------------------------------
# Building


def _man_tree(root: Path) -> None:
    """N_PAGES good pages (every third plain, the rest gzip'd) plus the special cases."""
    for i in range(N_PAGES):
        name = f"tool{i:02d}"
        page = _man(name, f"handle the {_words(i + 50, 2)} of {name}", _prose(i, name=name))
        _write(root / "man1" / f"{name}.1.gz", page) if i % 3 else _write(
            root / "man1" / f"{name}.1", page, compress=False
        )
    # a namesake in another section, a symlink alias and a .so alias of one page
    _write(
        root / "man3" / "tool07.3.gz",
        _man("tool07", "the call of tool07", _prose(99, name="tool07")),
    )
    (root / "man1" / "toolalias.1.gz").symlink_to("tool05.1.gz")
    _write(root / "man1" / "toolso.1.gz", ".so man1/tool05.1\n")
    (root / "man1" / "broken.1.gz").symlink_to("missing.1.gz")
    # duplicates of tool01's article and of tool02's summary (ignoring case): dropped
    _write(root / "man8" / "tool01x.8.gz", _man("tool01x", "other words", _prose(1, name="TOOL01")))
    _write(root / "man8" / "tool02x.8.gz", _man("tool02x", "HANDLE THE " + _words(52, 2).upper()
                                               + " OF TOOL02", _prose(77, name="tool02x")))  # fmt: skip
    _write(root / "man5" / "nodesc.5.gz", ".TH N 5\n.SH NAME\nnodesc \\- a page without one\n")
    # translations are not read
    _write(root / "de" / "man1" / "tool99.1.gz", _man("tool99", "ein Werkzeug", _prose(3)))


@pytest.fixture(scope="module")
def man_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("man")
    _man_tree(root)
    return root


@pytest.fixture(scope="module")
def built(man_root, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus") / "man"
    return out, build_man_corpus(out, roots=(man_root,))


def _rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_build_counts_every_page_and_why_it_was_dropped(built):
    out, info = built
    assert info["links"] == 2  # toolalias -> tool05, broken
    assert info["pages"] == N_PAGES + 5  # tool07(3), toolso, tool01x, tool02x, nodesc
    assert info["filtered"] == {
        "broken_link": 1,
        "duplicate": 2,
        "no_description": 1,
        "so_link": 1,
    }
    assert info["usable_pairs"] == N_PAGES + 1 == sum(info["sizes"].values())
    assert json.loads((out / "corpus.json").read_text())["sizes"] == info["sizes"]


def test_the_split_is_by_name_stem_and_the_parts_are_disjoint(built):
    out, info = built
    rows = {part: _rows(out / MAN_CORPUS_FILES[part]) for part in ("valid", "test")}
    for row in rows["valid"] + rows["test"]:
        assert row["id"] == f"{row['name']}({row['section']})"
    names = {
        # every article names its page second, every summary last
        "train_articles": [a.split()[1] for a in (out / "articles.txt").read_text().splitlines()],
        "train_summaries": [
            s.split()[-1] for s in (out / "summaries.txt").read_text().splitlines()
        ],
        "valid": [r["name"] for r in rows["valid"]],
        "test": [r["name"] for r in rows["test"]],
    }
    for part, members in names.items():
        assert members and all(split_of(name) == part for name in members), part
    parts = list(names.values())
    for i, members in enumerate(parts):
        for other in parts[i + 1 :]:
            assert not set(members) & set(other)
    # every good page once; tool07's section-3 namesake in its section-1 page's part
    kept = sorted(n for members in parts for n in members)
    assert kept == sorted([f"tool{i:02d}" for i in range(N_PAGES)] + ["tool07"])
    assert set(SPLIT_FRACTIONS) == set(MAN_CORPUS_FILES)


def test_the_build_is_deterministic(built, man_root, tmp_path):
    out, _ = built
    again = tmp_path / "again"
    build_man_corpus(again, roots=(man_root,))
    for name in (*MAN_CORPUS_FILES.values(), "corpus.json"):
        assert (again / name).read_bytes() == (out / name).read_bytes(), name


def test_the_files_load_as_a_users_data(built):
    out, info = built
    data = {key: str(out / MAN_CORPUS_FILES[part]) for key, part in
            (("articles", "train_articles"), ("summaries", "train_summaries"),
             ("valid_pairs", "valid"), ("test_pairs", "test"))}  # fmt: skip
    corpus = load_text_corpus({"corpus": None, **data})
    sizes = info["sizes"]
    assert (len(corpus.articles), len(corpus.summaries), len(corpus.valid), len(corpus.test)) == (
        sizes["train_articles"],
        sizes["train_summaries"],
        sizes["valid"],
        sizes["test"],
    )
    assert [p.id for p in corpus.test] == [r["id"] for r in _rows(out / "test.jsonl")]
    # the manifest follows the embedded corpus's layout, so the folder also loads as data.corpus
    assert load_text_corpus({"corpus": str(out)}).test == corpus.test


def test_no_pages_and_a_used_folder_are_refused(tmp_path, man_root, built):
    with pytest.raises(ManCorpusError, match="no man pages found"):
        build_man_corpus(tmp_path / "out", roots=(tmp_path / "empty",))
    out, _ = built
    with pytest.raises(ManCorpusError, match="not empty; pass --overwrite"):
        build_man_corpus(out, roots=(man_root,))


def test_too_few_usable_pages_is_refused_and_keeps_the_corpus(tmp_path, man_root, built):
    out = tmp_path / "man"
    shutil.copytree(built[0], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    root = tmp_path / "root"
    _write(root / "man1" / "tool00.1.gz", _man("tool00", "handle the tools", _prose(0)))
    with pytest.raises(ManCorpusError) as caught:
        build_man_corpus(out, roots=(root,), overwrite=True)
    assert "too few usable man pages" in str(caught.value) and str(root) in str(caught.value)
    _write(root / "man1" / "tool00.1.gz", ".TH X 1\n.SH NAME\ntool00 \\- no description\n")
    with pytest.raises(ManCorpusError, match="no usable man pages found in"):
        build_man_corpus(out, roots=(root,), overwrite=True)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


# --------------------------------------------------------------------------------------------
# The script


@pytest.fixture(scope="module")
def script():  # noqa: ANN201 - the script as a module
    spec = importlib.util.spec_from_file_location("man_corpus_script", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_script_writes_a_run_config_the_recipe_reads(script, man_root, tmp_path, capsys):
    out = tmp_path / "corpus"
    assert script.main(["--out", str(out), "--root", str(man_root), "--run-dir", "r/x"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    config = out / "summary_ae.yaml"
    assert printed[-1] == f"train on it: seqae run summary_ae --config {config}"
    assert printed[0].startswith(f"man corpus in {out}: ")
    cfg = load_config(config)  # resolves base: the recipe's own summary_ae.yaml
    assert cfg["output_dir"] == "r/x" and cfg["data"]["corpus"] is None
    assert cfg["tokenizer"]["vocab_size"] == load_config(script.recipes_dir() / "configs"
                                                         / "summary_ae.yaml")["tokenizer"][
        "vocab_size"]  # fmt: skip
    corpus = load_text_corpus(cfg["data"])
    assert corpus.origin == "data files"
    assert len(corpus.articles) == len((out / "articles.txt").read_text().splitlines())


def test_script_errors_are_one_line_and_exit_2(script, man_root, tmp_path, capsys):
    assert script.main(["--out", str(tmp_path / "o"), "--root", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("man_corpus.py: error: no man pages found")
    # an output that is one of the inputs (a file in a man folder) is refused, even with
    # --overwrite, and left as it was
    root = tmp_path / "root"
    _write(root / "man1" / "tool00.1.gz", _man("tool00", "handle the tools", _prose(0)))
    victim = _write(root / "man1" / "articles.txt", "not a page\n", compress=False)
    argv = ["--out", str(root / "man1"), "--root", str(root), "--overwrite"]
    assert script.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is also an input" in err
    assert victim.read_text() == "not a page\n"


def test_script_quotes_every_path_in_the_run_config(script, man_root, tmp_path, capsys):
    out = tmp_path / "mc 10: x #2 'q'"
    run_dir = str(tmp_path / "run #1: a")
    assert script.main(["--out", str(out), "--root", str(man_root), "--run-dir", run_dir]) == 0
    config = out / "summary_ae.yaml"
    command = capsys.readouterr().out.strip().splitlines()[-1].removeprefix("train on it: ")
    assert shlex.split(command) == ["seqae", "run", "summary_ae", "--config", str(config)]
    raw = yaml.safe_load(config.read_text())
    assert raw["output_dir"] == run_dir
    files = {"articles": "articles.txt", "summaries": "summaries.txt",
             "valid_pairs": "valid.jsonl", "test_pairs": "test.jsonl"}  # fmt: skip
    assert raw["data"] == {"corpus": None, **{k: str(out / f) for k, f in files.items()}}
    cfg = load_config(config)  # the base resolves too
    assert cfg["output_dir"] == run_dir and cfg["data"]["articles"] == str(out / "articles.txt")
    assert load_text_corpus(cfg["data"]).origin == "data files"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--run-dir", ""], "argument --run-dir: empty"),
        (["--section", "0"], "argument --section: invalid choice: 0"),
        (["--section", "-1"], "argument --section: invalid choice: -1"),
        (["--section", "1", "--section", "9"], "argument --section: invalid choice: 9"),
    ],
)
def test_script_refuses_bad_arguments_in_one_line(
    script, man_root, tmp_path, capsys, argv, message
):
    out = tmp_path / "o"
    with pytest.raises(SystemExit) as caught:
        script.main(["--out", str(out), "--root", str(man_root), *argv])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"man_corpus.py: error: {message}")
    assert not out.exists()
