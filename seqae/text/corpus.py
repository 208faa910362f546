"""The embedded article/summary corpus, built offline from Debian's English package descriptions.

Every Debian package has a one-line synopsis and a long description; the first paragraph of
the long description is a short article about the package and the synopsis is a human-written
summary of it. apt keeps these texts in its ``Translation-en`` index files once English
descriptions are enabled (``apt-get update -o Acquire::Languages=en``). This module turns them
into a corpus for unsupervised summarization::

    info = build_text_corpus("data/text")               # preset="full"

or from a shell (``add_parser`` adds this subcommand to ``seqae data``)::

    seqae data text --out data/text [--preset tiny|full] [--overwrite] [--source FILE ...]

How a package becomes an (article, summary) pair (:func:`description_pair`):

- *summary*: the synopsis (``Description-en``'s first line), whitespace-normalised. Dropped
  when it has fewer than :data:`MIN_SUMMARY_WORDS` words (a bare name says nothing).
- *article*: the first paragraph of the long description (up to the first ``" ."`` line),
  whitespace-normalised to one line. The paragraph is dropped, with the package, when it is
  not prose that a synopsis summarises:

  - ``verbatim``: a line starts with two spaces. Debian policy displays such lines verbatim;
    they hold lists, tables and code, whose line layout carries the meaning.
  - ``list``: a line starts with a list marker (``*``, ``-``, ``+``, ``o``, ``1.``, ``a)``).
  - ``intro``: the paragraph ends with ``:``, i.e. it only introduces a list that follows.
  - ``symbols``: under :data:`MIN_LETTER_FRACTION` of its non-space characters are letters
    (version tables, chip names, code).
  - ``too_short`` / ``too_long``: fewer than :data:`MIN_WORDS` or more than :data:`MAX_WORDS`
    words (a 10-word article has nothing to summarise; long ones are rare and mostly
    catalogues).
  - ``encoding``: the text had bytes that are not UTF-8.

Binary packages are mapped to their *source* package through apt's ``Packages`` index files
(the ``Source:`` field, without a version in parentheses; a package without one is its own
source). A package that no ``Packages`` file lists (``Translation-en`` covers every
architecture, the lists only this machine's) is dropped as ``unknown_source``: without its
source it cannot be split safely (these are mostly other architectures' kernel packages whose
descriptions differ only in version numbers). Pairs are then deduplicated: packages built from
one source often share a first paragraph or a synopsis, so a pair is kept only when neither its
article nor its summary was kept before (compared ignoring case and with every number alike, so
that texts differing only in versions count as one), taking packages in a fixed order (the
package named like its source first, then shorter names, then alphabetical).

Each source package goes, by a hash of its name, to exactly one part (:data:`SPLIT_FRACTIONS`),
so no source package, and no package, contributes to two parts::

    DIR/train_articles.txt    unpaired articles, one per line
    DIR/train_summaries.txt   synopses of a disjoint set of packages, one per line
    DIR/valid.jsonl           {"article", "summary", "package", "source"} per line
    DIR/test.jsonl            the same; pairs are for evaluation only
    DIR/corpus.json           sizes, fractions, filters and the index files read (written last)

Lines are in a fixed pseudo-random order (a hash of the package name), so the build is
deterministic: the same index files give the same bytes. The ``tiny`` preset keeps the first
few lines of each part (:data:`PRESETS`), for tests.

A build that leaves a part with fewer than :data:`MIN_PART_PAIRS` pairs (index files without
usable descriptions, a damaged file that reads as garbage) is refused before anything is
written, so an existing corpus in the folder stays as it was.
"""

from __future__ import annotations

import argparse
import bz2
import glob
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from seqae.data.corpus_folder import check_corpus_folder
from seqae.errors import UsageError
from seqae.files import atomic_write_json, atomic_write_text, refuse_overwriting_inputs

__all__ = [
    "CORPUS_FILES",
    "CORPUS_FORMAT",
    "FILTERS",
    "MAX_WORDS",
    "MIN_LETTER_FRACTION",
    "MIN_PART_PAIRS",
    "MIN_SUMMARY_WORDS",
    "MIN_WORDS",
    "PRESETS",
    "SPLIT_FRACTIONS",
    "CorpusInfo",
    "DescriptionPair",
    "IndexFiles",
    "TextCorpusError",
    "add_parser",
    "article_dropped",
    "build_text_corpus",
    "description_pair",
    "drop_duplicates",
    "find_index_files",
    "read_index_file",
    "refuse_unfilled_parts",
    "split_of",
]

#: Version of the layout written to ``corpus.json``.
CORPUS_FORMAT = 1
#: Article length range, in whitespace-separated words (both ends included).
MIN_WORDS = 25
MAX_WORDS = 80
#: A synopsis needs at least this many words.
MIN_SUMMARY_WORDS = 2
#: At least this fraction of an article's non-space characters must be letters.
MIN_LETTER_FRACTION = 0.7
#: The filters above, as a corpus's ``corpus.json`` records them.
FILTERS: dict[str, float] = {
    "min_words": MIN_WORDS,
    "max_words": MAX_WORDS,
    "min_summary_words": MIN_SUMMARY_WORDS,
    "min_letter_fraction": MIN_LETTER_FRACTION,
}
#: Fraction of source packages in each part (by a hash of the source name).
SPLIT_FRACTIONS: dict[str, float] = {
    "train_articles": 0.5,
    "train_summaries": 0.3,
    "valid": 0.1,
    "test": 0.1,
}
#: Fewest pairs every part needs; a build leaving a part with fewer is refused.
MIN_PART_PAIRS = 1
#: Most lines kept per part; ``None``: all.
PRESETS: dict[str, dict[str, int | None]] = {
    "full": dict.fromkeys(SPLIT_FRACTIONS),
    "tiny": {"train_articles": 300, "train_summaries": 300, "valid": 40, "test": 40},
}
#: The file each part is written to.
CORPUS_FILES: dict[str, str] = {
    "train_articles": "train_articles.txt",
    "train_summaries": "train_summaries.txt",
    "valid": "valid.jsonl",
    "test": "test.jsonl",
}
_APT_HELPER = "/usr/lib/apt/apt-helper"
_LISTS_DIR = "/var/lib/apt/lists"
_UPDATE_HINT = "run `apt-get update -o Acquire::Languages=en` (as root) first"
_LIST_MARKER = re.compile(r"^([*+\-o\u2022\u00b7]|\d+[.)]|[a-z][.)])\s")
_SPLIT_SALT = b"seqae.text.corpus/"
_LETTER = re.compile(r"[^\W\d_]")
_DIGITS = re.compile(r"\d+")
_Pair = TypeVar("_Pair")


class TextCorpusError(UsageError):
    """The corpus cannot be built: no description files, unreadable files, too few usable
    descriptions, a used output folder."""


@dataclass(frozen=True)
class IndexFiles:
    """apt index files to read.

    Attributes:
        translations: ``Translation-en`` files (package descriptions), compressed or not.
        packages: ``Packages`` files (binary package -> source package).
    """

    translations: tuple[Path, ...]
    packages: tuple[Path, ...]


@dataclass(frozen=True)
class DescriptionPair:
    """One package's (article, summary) pair.

    Attributes:
        article: The first paragraph of the long description, on one line.
        summary: The synopsis.
        package: The binary package name.
        source: The source package name.
    """

    article: str
    summary: str
    package: str
    source: str


@dataclass(frozen=True)
class CorpusInfo:
    """What :func:`build_text_corpus` wrote.

    Attributes:
        directory: The corpus folder.
        sizes: Lines per part (``train_articles``, ``train_summaries``, ``valid``, ``test``).
        descriptions: Packages with an English description read.
        filtered: Packages dropped, per reason (see the module docstring).
        seconds: Wall-clock build time.
    """

    directory: Path
    sizes: dict[str, int]
    descriptions: int
    filtered: dict[str, int]
    seconds: float


# --------------------------------------------------------------------------------------------
# Reading apt's index files


def find_index_files() -> IndexFiles:
    """The ``Translation-en`` and ``Packages`` files apt has downloaded on this machine.

    Asks ``apt-get indextargets`` (with English descriptions enabled, since apt may be
    configured to skip them) and keeps the files that exist; falls back to the names in
    ``/var/lib/apt/lists`` when apt-get is not there.

    Raises:
        TextCorpusError: No ``Translation-en`` file exists.
    """
    translations: list[Path] = []
    packages: list[Path] = []
    apt_get = shutil.which("apt-get")
    if apt_get is not None:
        result = subprocess.run(
            [
                apt_get,
                "indextargets",
                "-o",
                "Acquire::Languages=en",
                "--format",
                "$(CREATED_BY)\t$(LANGUAGE)\t$(FILENAME)",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        for line in result.stdout.splitlines():
            created_by, language, filename = (line.split("\t") + ["", "", ""])[:3]
            path = Path(filename)
            if not filename or not path.is_file():
                continue
            if created_by == "Translations" and language == "en":
                translations.append(path)
            elif created_by == "Packages":
                packages.append(path)
    if not translations:
        translations = [Path(p) for p in sorted(glob.glob(f"{_LISTS_DIR}/*_Translation-en*"))]
        packages = [Path(p) for p in sorted(glob.glob(f"{_LISTS_DIR}/*_Packages*"))]
    if not translations:
        raise TextCorpusError(
            f"no English package descriptions (Translation-en) in apt's lists: {_UPDATE_HINT}"
        )
    if not packages:
        raise TextCorpusError(f"no Packages index in apt's lists: {_UPDATE_HINT}")
    return IndexFiles(tuple(translations), tuple(packages))


def _classify_sources(sources: Sequence[str | os.PathLike[str]]) -> IndexFiles:
    """Sort explicit paths into Translation and Packages files by their names."""
    translations: list[Path] = []
    packages: list[Path] = []
    for source in sources:
        path = Path(source)
        if path.is_dir():
            raise TextCorpusError(
                f"{path} is a directory, expected a Packages or Translation file (an apt index file)"
            )
        if not path.is_file():
            raise TextCorpusError(f"{path}: no such file (expected an apt index file)")
        if "Translation-" in path.name:
            translations.append(path)
        elif "Packages" in path.name:
            packages.append(path)
        else:
            raise TextCorpusError(
                f"{path}: not an apt index file name; expected a name with 'Translation-' "
                "(package descriptions) or 'Packages' (binary -> source packages)"
            )
    if not translations:
        raise TextCorpusError("no Translation-en file among the sources (package descriptions)")
    if not packages:
        raise TextCorpusError(
            "no Packages file among the sources (needed to map binary to source packages)"
        )
    return IndexFiles(tuple(translations), tuple(packages))


def read_index_file(path: str | os.PathLike[str]) -> str:
    """The text of an apt index file, compressed or not.

    Uses ``apt-helper cat-file`` (every compression apt uses, lz4 and zstd included); without
    apt, Python reads plain, gzip, bzip2 and xz files. Bytes that are not UTF-8 become U+FFFD
    (descriptions holding one are then dropped).

    Args:
        path: The file.

    Raises:
        TextCorpusError: The file cannot be read or decompressed.
    """
    path = Path(path)
    if os.access(_APT_HELPER, os.X_OK):
        result = subprocess.run(
            [_APT_HELPER, "cat-file", str(path)], capture_output=True, check=False
        )
        if result.returncode != 0:
            detail = result.stderr.decode("utf-8", "replace").strip().splitlines()
            raise TextCorpusError(
                f"{path}: cannot read it with apt-helper cat-file"
                + (f" ({detail[-1]})" if detail else "")
            )
        data = result.stdout
    else:
        openers = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open, ".lzma": lzma.open}
        if path.suffix in (".lz4", ".zst"):
            raise TextCorpusError(f"{path}: reading {path.suffix} files needs apt's apt-helper")
        try:
            with openers.get(path.suffix, open)(path, "rb") as handle:
                data = handle.read()
        except (OSError, EOFError, lzma.LZMAError) as exc:
            raise TextCorpusError(f"{path}: cannot read it ({exc})") from exc
    return data.decode("utf-8", errors="replace")


def _stanzas(text: str) -> Iterator[dict[str, str]]:
    """deb822 stanzas as {field: value}; continuation lines are kept with their newline."""
    fields: dict[str, str] = {}
    name = None
    for line in text.split("\n"):
        if not line.strip():
            if fields:
                yield fields
            fields, name = {}, None
        elif line[0] in " \t":
            if name is not None:
                fields[name] += "\n" + line
        else:
            name, _, value = line.partition(":")
            fields[name] = value.strip()
    if fields:
        yield fields


def _source_map(files: Sequence[Path]) -> dict[str, str]:
    """Binary package -> source package from Packages files (the first file naming a package
    wins). Only the ``Package`` and ``Source`` lines matter, so this scans for those."""
    sources: dict[str, str] = {}
    field = re.compile(r"^(Package|Source): *(\S+)", re.MULTILINE)
    for path in files:
        package = None  # the stanza's package, while no earlier file named it
        for match in field.finditer(read_index_file(path)):
            name = match.group(2)
            if match.group(1) == "Package":
                package = None if name in sources else name
                sources.setdefault(name, name)
            elif package is not None:
                sources[package] = name
                package = None
    return sources


# --------------------------------------------------------------------------------------------
# Descriptions -> pairs


def _normalise(text: str) -> str:
    return " ".join(text.split())


def description_pair(description: str) -> tuple[str, str] | str:
    """The (article, summary) of one ``Description-en`` field, or why it is dropped.

    Args:
        description: The field's value: the synopsis, then continuation lines that each start
            with one space (``" ."`` separates paragraphs).

    Returns:
        ``(article, summary)``, or one of the reasons in the module docstring (``synopsis``,
        ``verbatim``, ``list``, ``intro``, ``symbols``, ``too_short``, ``too_long``,
        ``encoding``). ``unknown_source`` and ``duplicate`` are decided later, across
        packages.
    """
    synopsis, *body = description.split("\n")
    summary = _normalise(synopsis)
    paragraph: list[str] = []
    for line in body:
        line = line[1:] if line[:1] in (" ", "\t") else line
        if line.strip() == ".":
            if paragraph:
                break
            continue
        paragraph.append(line)
    article = _normalise(" ".join(paragraph))
    if "\ufffd" in summary or "\ufffd" in article:
        return "encoding"
    if len(summary.split()) < MIN_SUMMARY_WORDS:
        return "synopsis"
    if any(line.startswith((" ", "\t")) for line in paragraph):
        return "verbatim"
    if any(_LIST_MARKER.match(line) for line in paragraph):
        return "list"
    return article_dropped(article) or (article, summary)


def article_dropped(article: str) -> str | None:
    """Why an article (normalised: on one line, single spaces) is dropped by the filters every
    article/summary corpus shares, or ``None`` where it is kept: ``too_short`` or ``too_long``
    (outside :data:`MIN_WORDS`..:data:`MAX_WORDS` words), ``intro`` (ends with a colon), or
    ``symbols`` (under :data:`MIN_LETTER_FRACTION` of its non-space characters are letters).
    """
    n_words = len(article.split())
    if n_words < MIN_WORDS:
        return "too_short"
    if n_words > MAX_WORDS:
        return "too_long"
    if article.endswith(":"):
        return "intro"
    letters = len(_LETTER.findall(article))
    visible = len(article) - article.count(" ")  # normalised: single spaces only
    if letters < MIN_LETTER_FRACTION * visible:
        return "symbols"
    return None


def drop_duplicates(
    pairs: Iterable[_Pair], keys: Callable[[_Pair], tuple[str, str]], dropped: Counter[str]
) -> list[_Pair]:
    """The pairs, in order, whose article key and summary key no earlier kept pair has; each
    other one counts as ``dropped["duplicate"]``.

    Args:
        pairs: The candidate pairs, the preferred ones first.
        keys: A pair's ``(article key, summary key)``: equal keys are duplicates.
        dropped: Drops per reason, updated.
    """
    articles: set[str] = set()
    summaries: set[str] = set()
    kept: list[_Pair] = []
    for pair in pairs:
        a, s = keys(pair)
        if a in articles or s in summaries:
            dropped["duplicate"] += 1
            continue
        articles.add(a)
        summaries.add(s)
        kept.append(pair)
    return kept


def _dedup_key(text: str) -> str:
    """Texts equal up to case and numbers (versions) are duplicates."""
    return _DIGITS.sub("0", text.casefold())


def _hash01(salt: bytes, name: str) -> float:
    digest = hashlib.sha256(salt + name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_of(source: str) -> str:
    """The part (a key of :data:`SPLIT_FRACTIONS`) that source package ``source`` belongs to."""
    u = _hash01(_SPLIT_SALT, source)
    edge = 0.0
    for part, fraction in SPLIT_FRACTIONS.items():
        edge += fraction
        if u < edge:
            return part
    return part  # u within rounding of 1.0


def _collect_pairs(files: IndexFiles) -> tuple[list[DescriptionPair], int, Counter[str]]:
    """Usable, deduplicated pairs; the number of packages read; drops per reason."""
    sources = _source_map(files.packages)
    seen_packages: set[str] = set()
    candidates: list[DescriptionPair] = []
    dropped: Counter[str] = Counter()
    for path in files.translations:
        for stanza in _stanzas(read_index_file(path)):
            package = stanza.get("Package")
            description = stanza.get("Description-en")
            if not package or description is None or package in seen_packages:
                continue
            seen_packages.add(package)
            result = description_pair(description)
            if isinstance(result, str):
                dropped[result] += 1
                continue
            if package not in sources:
                dropped["unknown_source"] += 1
                continue
            article, summary = result
            candidates.append(DescriptionPair(article, summary, package, sources[package]))
    candidates.sort(key=lambda p: (p.package != p.source, len(p.package), p.package))
    pairs = drop_duplicates(
        candidates, lambda p: (_dedup_key(p.article), _dedup_key(p.summary)), dropped
    )
    return pairs, len(seen_packages), dropped


# --------------------------------------------------------------------------------------------
# Building


def _file_record(path: Path, kind: str) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {
        "kind": kind,
        "path": str(path),
        "bytes": path.stat().st_size,
        "sha256": digest.hexdigest(),
    }


def _file_list(paths: Sequence[Path], shown: int = 4) -> str:
    """``a, b, c`` (at most ``shown`` names, then how many more): the sources, on one line."""
    names = [str(p) for p in paths[:shown]]
    if len(paths) > shown:
        names.append(f"{len(paths) - shown} more")
    return ", ".join(names)


def refuse_unfilled_parts(
    sizes: Mapping[str, int],
    *,
    usable: int,
    where: str,
    noun: str,
    error: Callable[[str], Exception],
) -> None:
    """Refuse a build that leaves a part with fewer than :data:`MIN_PART_PAIRS` pairs.

    Args:
        sizes: Pairs per part (the keys of :data:`SPLIT_FRACTIONS`).
        usable: Usable pairs in all parts together.
        where: What was read, for the message (file or folder names).
        noun: What a pair is made from, plural (``"descriptions"``, ``"man pages"``).
        error: The builder's exception class (a :class:`~seqae.errors.UsageError`).

    Raises:
        error: ``usable`` is 0, or a part has fewer than :data:`MIN_PART_PAIRS` pairs.
    """
    if usable == 0:
        raise error(f"no usable {noun} found in {where}; nothing was written")
    short = [part for part, n in sizes.items() if n < MIN_PART_PAIRS]
    if short:
        raise error(
            f"too few usable {noun} in {where}: {usable} in all, fewer than {MIN_PART_PAIRS} "
            f"for part {', '.join(short)}; expected enough for every part "
            f"({', '.join(sizes)}); nothing was written"
        )


def build_text_corpus(
    out: str | os.PathLike[str],
    *,
    preset: str = "full",
    sources: Sequence[str | os.PathLike[str]] | None = None,
    overwrite: bool = False,
    what: str = "--out",
) -> CorpusInfo:
    """Build the article/summary corpus into folder ``out`` (layout in the module docstring).

    Nothing in ``out`` changes when the build is refused.

    Args:
        out: The corpus folder; created if needed. It must be empty or absent unless
            ``overwrite``.
        preset: ``"full"`` (everything) or ``"tiny"`` (a few hundred lines, for tests).
        sources: apt index files to read instead of the machine's: ``Translation-en`` files
            and ``Packages`` files (told apart by name), compressed or not. ``None``: the files
            ``apt-get indextargets`` names (:func:`find_index_files`).
        overwrite: Replace the corpus files of a non-empty ``out`` (other files are left).
        what: How error messages name ``out``: the option or config key it came from
            (``"--out"``, ``"data.corpus"``).

    Returns:
        The sizes and the filter counts (:class:`CorpusInfo`).

    Raises:
        TextCorpusError: No description files, an unreadable file, a source that is a
            folder, too few usable descriptions to give every part a pair
            (:func:`refuse_unfilled_parts`), an ``out`` that is a file, a used ``out``
            without ``overwrite``, an unknown preset.
        seqae.files.OutputOverwritesInputError: A corpus file would replace a source.
    """
    start = time.perf_counter()
    if preset not in PRESETS:
        raise TextCorpusError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    out = Path(out)
    files = find_index_files() if sources is None else _classify_sources(sources)
    inputs = [*files.translations, *files.packages]
    outputs = [out / name for name in (*CORPUS_FILES.values(), "corpus.json")]
    for output in outputs:
        refuse_overwriting_inputs(output, inputs, what=what)
    used = check_corpus_folder(out, overwrite=overwrite, error=TextCorpusError, what=what)

    pairs, n_descriptions, dropped = _collect_pairs(files)
    parts: dict[str, list[DescriptionPair]] = {part: [] for part in SPLIT_FRACTIONS}
    for pair in pairs:
        parts[split_of(pair.source)].append(pair)
    refuse_unfilled_parts(
        {part: len(members) for part, members in parts.items()},
        usable=len(pairs),
        where=_file_list(inputs),
        noun="descriptions",
        error=TextCorpusError,
    )
    if used:  # without corpus.json a half-rewritten folder is not taken for a corpus
        (out / "corpus.json").unlink(missing_ok=True)
    for part, members in parts.items():
        members.sort(key=lambda p: (_hash01(b"order/", p.package), p.package))
        limit = PRESETS[preset][part]
        if limit is not None:
            del members[limit:]

    out.mkdir(parents=True, exist_ok=True)
    texts = {
        "train_articles": [p.article for p in parts["train_articles"]],
        "train_summaries": [p.summary for p in parts["train_summaries"]],
        **{
            part: [
                json.dumps(
                    {
                        "article": p.article,
                        "summary": p.summary,
                        "package": p.package,
                        "source": p.source,
                    },
                    ensure_ascii=False,
                )
                for p in parts[part]
            ]
            for part in ("valid", "test")
        },
    }
    for part, lines in texts.items():
        atomic_write_text(
            out / CORPUS_FILES[part], "".join(f"{x}\n" for x in lines), sync_dir=False
        )
    sizes = {part: len(lines) for part, lines in texts.items()}
    filtered = dict(sorted(dropped.items()))
    atomic_write_json(
        out / "corpus.json",
        {
            "format_version": CORPUS_FORMAT,
            "kind": "seqae.text.corpus",
            "preset": preset,
            "files": CORPUS_FILES,
            "sizes": sizes,
            "split_fractions": SPLIT_FRACTIONS,
            "split_by": "source package",
            "filters": FILTERS,
            "descriptions": n_descriptions,
            "usable_pairs": len(pairs),
            "filtered": filtered,
            "sources": [
                *(_file_record(p, "Translation-en") for p in files.translations),
                *(_file_record(p, "Packages") for p in files.packages),
            ],
        },
    )
    return CorpusInfo(out, sizes, n_descriptions, filtered, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# Command line


def _cmd_text(args: argparse.Namespace) -> int:
    info = build_text_corpus(
        args.out, preset=args.preset, sources=args.source or None, overwrite=args.overwrite
    )
    s = info.sizes
    print(
        f"text corpus in {info.directory}: {s['train_articles']} train articles, "
        f"{s['train_summaries']} train summaries, {s['valid']} valid pairs, {s['test']} test "
        f"pairs (from {info.descriptions} package descriptions, {info.seconds:.1f} s)",
        file=sys.stdout,
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``seqae data text`` under ``seqae data``.

    The ``data_builder`` component of the registry: the ``text`` parser has a ``func`` default
    that takes the parsed arguments and returns an exit status.

    Args:
        sub: The subparsers object of the ``seqae data`` command.
    """
    text = sub.add_parser(
        "text",
        help="build the article/summary corpus from Debian's package descriptions (offline)",
    )
    text.add_argument("--out", required=True, help="output folder")
    text.add_argument(
        "--preset", choices=sorted(PRESETS), default="full", help="full, or tiny for tests"
    )
    text.add_argument(
        "--overwrite", action="store_true", help="replace the corpus files in a non-empty --out"
    )
    text.add_argument(
        "--source",
        action="append",
        metavar="FILE",
        help="an apt Translation-en or Packages file to read instead of apt's lists (repeat)",
    )
    text.set_defaults(func=_cmd_text)
    return text
