"""A second article/summary corpus, read from the manual pages installed on a machine.

The embedded corpus (:mod:`seqae.text.corpus`) is the one every setting of the summary recipes
was tuned on. This module builds an untouched one from a different genre, given to a recipe as
a user's files (``data.articles``, ``data.summaries``, ``data.valid_pairs``,
``data.test_pairs``; :mod:`seqae.text.loaders`)::

    info = build_man_corpus("runs/man_corpus")    # /usr/share/man/man1 .. man8

or ``.venv/bin/python scripts/man_corpus.py --out runs/man_corpus``.

How a page becomes an (article, summary) pair (:func:`man_page_pair`):

- *summary*: the NAME line's description, after the separator (``ls \\- list directory
  contents`` gives ``list directory contents``); for mdoc pages the ``.Nd`` line.
- *article*: the first paragraph of the DESCRIPTION section, as plain text: fonts, sizes,
  glyphs and strings (``\\fB``, ``\\s-1``, ``\\(aq``, ``\\*(lq``, ``\\-``) become their text or
  nothing, ``.B``/``.I``/``.BR``-style lines and mdoc's inline macros (``.Nm``, ``.Xr ls 1``,
  ``.Fl x``, ``.Op``) are joined into the text, and paragraph macros (``.PP``, ``.TP``, ``.IP``,
  ``.SS``, ``.Pp``, ``.Bl``, a blank line) end the paragraph.

A page is dropped, and counted under its reason, when:

- ``so_link``: it is a ``.so`` link to another page (read through that page instead);
  symbolic links are read through their target, once (``broken_link``: it has none).
- ``unreadable`` / ``encoding``: it cannot be decompressed / is not UTF-8.
- ``no_name``: there is no NAME line with a description after a ``-`` separator.
- ``short_summary``: that description has fewer than :data:`~seqae.text.corpus.MIN_SUMMARY_WORDS`
  words.
- ``no_description``: there is no DESCRIPTION section, or no text in it.
- ``list`` / ``verbatim``: its first paragraph is a list item (``.TP``, ``.IP`` with a tag,
  ``.Bl``) or text laid out verbatim (``.nf``, ``.EX``, ``.Bd -literal``, a line starting with
  a space, pod2man's ``.Vb``, a table).
- ``intro``, ``symbols``, ``too_short``, ``too_long``: the filters of the embedded corpus,
  with its constants: the paragraph only introduces what follows (ends with ``:``), under
  :data:`~seqae.text.corpus.MIN_LETTER_FRACTION` of it is letters, or it has fewer than
  :data:`~seqae.text.corpus.MIN_WORDS` or more than :data:`~seqae.text.corpus.MAX_WORDS` words.
- ``duplicate``: its article or its summary equals (ignoring case) one kept before, taking
  pages with shorter names first (``gcloud compute ...`` before ``gcloud alpha compute ...``).

Each page goes, by a hash of its name stem (the file name without section and compression:
``printf`` for ``printf.1.gz`` and ``printf.3.gz``), to one part of
:data:`~seqae.text.corpus.SPLIT_FRACTIONS`, so a page, its links and its namesakes in other
sections are never in two parts::

    DIR/articles.txt    unpaired articles, one per line
    DIR/summaries.txt   descriptions of a disjoint set of pages, one per line
    DIR/valid.jsonl     {"article", "summary", "id": "ls(1)", "name": "ls", "section": "1"}
    DIR/test.jsonl      the same; pairs are for evaluation only
    DIR/corpus.json     sizes, fractions, filters, counts of what was dropped and why (last)

``corpus.json`` follows the embedded corpus's layout (``format_version``, ``files``), so the
folder also loads as ``data.corpus``. Lines are in a fixed pseudo-random order (a hash of the
page's name and section) and the build is deterministic: the same pages give the same bytes.
Only ``ROOT/man1`` .. ``ROOT/man8`` are read: translations live in ``ROOT/<lang>/`` folders.
A build that would leave a part without a pair is refused before anything is written
(:func:`~seqae.text.corpus.refuse_unfilled_parts`).
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import json
import lzma
import os
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqae.data.corpus_folder import check_corpus_folder
from seqae.errors import UsageError
from seqae.files import atomic_write_json, atomic_write_text, refuse_overwriting_inputs
from seqae.text.corpus import (
    CORPUS_FORMAT,
    FILTERS,
    MIN_SUMMARY_WORDS,
    SPLIT_FRACTIONS,
    article_dropped,
    drop_duplicates,
    refuse_unfilled_parts,
    split_of,
)

__all__ = [
    "MANIFEST",
    "MAN_CORPUS_FILES",
    "MAN_SECTIONS",
    "ManCorpusError",
    "ManPage",
    "build_man_corpus",
    "find_man_pages",
    "man_page_pair",
    "page_name",
    "read_man_source",
    "render_escapes",
]

#: The sections read by default.
MAN_SECTIONS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8)
#: The file each part is written to (keys: the parts of :data:`SPLIT_FRACTIONS`).
MAN_CORPUS_FILES: dict[str, str] = {
    "train_articles": "articles.txt",
    "train_summaries": "summaries.txt",
    "valid": "valid.jsonl",
    "test": "test.jsonl",
}
#: The manifest, written last.
MANIFEST = "corpus.json"
_COMPRESSED = (".gz", ".bz2", ".xz")
_DECOMPRESSORS: dict[bytes, Callable[[bytes], bytes]] = {
    b"\x1f\x8b": gzip.decompress,
    b"BZh": bz2.decompress,
    b"\xfd7zXZ\x00": lzma.decompress,
}
_SEPARATOR = re.compile(r"\s+(?:-{1,2}|\u2013|\u2014)\s+")


class ManCorpusError(UsageError):
    """The corpus cannot be built: no pages found, or a used ``out`` folder."""


@dataclass(frozen=True)
class ManPage:
    """One page's (article, summary) pair.

    Attributes:
        article: The first paragraph of the DESCRIPTION section, on one line.
        summary: The NAME line's description.
        name: The name stem (the split key): ``ls`` for ``man1/ls.1.gz``.
        section: The section suffix of the file name: ``1``, ``3ssl``.
    """

    article: str
    summary: str
    name: str
    section: str

    @property
    def page_id(self) -> str:
        """``name(section)``, e.g. ``ls(1)``."""
        return f"{self.name}({self.section})"


# --------------------------------------------------------------------------------------------
# Files


def page_name(path: str | os.PathLike[str]) -> tuple[str, str]:
    """The (name stem, section) of a page file: ``("CA.pl", "1ssl")`` for ``CA.pl.1ssl.gz``.

    Args:
        path: The page file (compressed or not).
    """
    name = Path(path).name
    for suffix in _COMPRESSED:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    stem, dot, section = name.rpartition(".")
    if dot and stem and section[:1].isdigit():
        return stem, section
    return name, ""


def read_man_source(path: str | os.PathLike[str]) -> str:
    """The groff source of a page: gzip'd, bzip2'd, xz'd (told by its first bytes) or plain.

    Args:
        path: The page file.

    Raises:
        OSError: The file cannot be read or decompressed (``gzip.BadGzipFile`` included).
        UnicodeDecodeError: The source is not UTF-8.
    """
    data = Path(path).read_bytes()
    for magic, decompress in _DECOMPRESSORS.items():
        if data.startswith(magic):
            try:
                data = decompress(data)
            except (EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
                raise OSError(f"{path}: damaged compressed data ({exc})") from exc
            break
    return data.decode("utf-8")


def find_man_pages(roots: Iterable[str | os.PathLike[str]], sections: Iterable[int]) -> list[Path]:
    """The page files (and links to pages) in ``ROOT/manN`` for each root and section, sorted.

    Args:
        roots: Manual folders such as ``/usr/share/man``; their ``<lang>/`` folders are not read.
        sections: Section numbers (``manN`` folders); suffixed sections (``3ssl``) live in them.
    """
    found: list[Path] = []
    for root in roots:
        for section in sections:
            folder = Path(root) / f"man{section}"
            if folder.is_dir():
                found += [p for p in folder.iterdir() if not p.name.startswith(".")]
    return sorted(p for p in found if p.is_file() or p.is_symlink())


# --------------------------------------------------------------------------------------------
# groff text: escapes

#: Named glyphs (``\(xx``, ``\[xx]``, ``\C'xx'``) as plain text; unknown ones are dropped.
_GLYPHS: dict[str, str] = {
    "aq": "'", "dq": '"', "lq": '"', "rq": '"', "oq": "'", "cq": "'", "Lq": '"', "Rq": '"',
    "em": "\u2014", "en": "\u2013", "hy": "-", "mi": "-", "pl": "+", "eq": "=", "mu": "\u00d7",
    "di": "\u00f7", "bu": "\u2022", "co": "\u00a9", "rg": "\u00ae", "tm": "\u2122",
    "dg": "\u2020", "de": "\u00b0", "ga": "`", "ha": "^", "ti": "~", "rs": "\\", "sl": "/",
    "ba": "|", "or": "|", "br": "|", "lB": "[", "rB": "]", "lC": "{", "rC": "}", "la": "<",
    "ra": ">", "Fo": "\u00ab", "Fc": "\u00bb", "fo": "\u2039", "fc": "\u203a", "ss": "\u00df",
    "at": "@", "sh": "#", "Do": "$", "ct": "\u00a2", "Eu": "\u20ac", "eu": "\u20ac",
    "Po": "\u00a3", "Ye": "\u00a5", "sc": "\u00a7", "ps": "\u00b6", "pc": "\u00b7",
    ">=": "\u2265", "<=": "\u2264", "!=": "\u2260", "->": "\u2192", "<-": "\u2190",
    "12": "\u00bd", "14": "\u00bc", "34": "\u00be", "ul": "_", "'e": "\u00e9", "`e": "\u00e8",
    "'a": "\u00e1", "`a": "\u00e0", ":a": "\u00e4", ":o": "\u00f6", ":u": "\u00fc",
    ",c": "\u00e7", "~n": "\u00f1", "ae": "\u00e6", "'E": "\u00c9", "oe": "\u0153",
}  # fmt: skip
#: Strings (``\*x``, ``\*(xx``, ``\*[name]``) the usual generators define; unknown ones: "".
_STRINGS: dict[str, str] = {
    "R": "\u00ae", "Tm": "\u2122", "lq": '"', "rq": '"', "Lq": '"', "Rq": '"', "Aq": "'",
    'L"': '"', 'R"': '"', "C'": "", "C`": "", "--": "\u2014", "PI": "\u03c0", "Ba": "|",
    "q": '"', "ga": "`", "aq": "'",
}  # fmt: skip
_ESCAPE = re.compile(
    r"""\\(?:
        (?P<font>f(?:\[[^\]]*\]|\(..|.))
      | (?P<size>s(?:\[[^\]]*\]|'[^']*'|[+-]?\(\d\d|[+-]?\d))
      | (?P<delim>[hvwlLbxoZDXNABRSV])(?P<q>.)(?P<arg>.*?)(?P=q)
      | (?P<string>\*(?:\[(?P<sl>[^\]]*)\]|\((?P<s2>..)|(?P<s1>.)))
      | (?P<other>[nmMFkYg$](?:\[[^\]]*\]|\(..|.))
      | \[u(?P<hex>[0-9A-Fa-f]{4,6})\]
      | \[(?P<gl>[^\]]*)\]
      | \((?P<g2>..)
      | C'(?P<gc>[^']*)'
      | (?P<char>.)
    )""",
    re.VERBOSE,
)
#: Single-character escapes: the text they stand for (others stand for the character).
_CHAR_ESCAPES = {
    "e": "\\", "\\": "\\", "-": "-", " ": " ", "~": " ", "0": " ", "t": " ", "'": "'", "`": "'",
    "&": "", "|": "", "^": "", "%": "", ":": "", ",": "", "/": "", ")": "", "c": "", "{": "",
    "}": "", "a": "", "p": "", "r": "", "d": "", "u": "", "z": "", "E": "", "!": "",
}  # fmt: skip
_COMMENT_OR_ESCAPE = re.compile(r"\\(.)")


def _escape_text(match: re.Match[str]) -> str:
    group = match.groupdict()
    if group["string"] is not None:
        return _STRINGS.get(group["sl"] or group["s2"] or group["s1"], "")
    if group["hex"] is not None:
        return chr(int(group["hex"], 16))
    glyph = group["gl"] if group["gl"] is not None else group["g2"] or group["gc"]
    if glyph is not None:
        return _GLYPHS.get(glyph, "")
    if group["char"] is not None:
        return _CHAR_ESCAPES.get(group["char"], group["char"])
    return ""  # fonts, sizes, motions, registers, colours


def render_escapes(text: str) -> str:
    """``text`` with groff's escapes replaced by the text they print (see the module docstring).

    Args:
        text: One line of groff text (comments already removed).
    """
    return _ESCAPE.sub(_escape_text, text)


def _comment_start(line: str) -> tuple[int, str] | None:
    """Where a ``\\"`` or ``\\#`` comment starts in ``line`` (escaped backslashes skipped)."""
    for match in _COMMENT_OR_ESCAPE.finditer(line):
        if match.group(1) in ('"', "#"):
            return match.start(), match.group(1)
    return None


def _logical_lines(source: str) -> Iterator[str]:
    """Source lines with comments removed and continued lines (a final ``\\``, ``\\#``
    comments) joined to the next; lines holding only a comment are left out."""
    pending = ""
    for raw in source.split("\n"):
        line = pending + raw.rstrip("\r")
        pending = ""
        comment = _comment_start(line)
        if comment is not None:
            index, kind = comment
            only_comment = line[:index].strip() in ("", ".", "'")
            line = line[:index]
            if kind == "#":
                pending = line
                continue
            if only_comment:
                continue
        elif (len(line) - len(line.rstrip("\\"))) % 2:
            pending = line[:-1]
            continue
        yield line
    if pending:
        yield pending


def _split_args(text: str) -> list[str]:
    """A request's arguments: words, or ``"quoted words"`` (``""`` inside is one quote)."""
    args: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and text[i] in " \t":
            i += 1
        if i >= n:
            break
        if text[i] == '"':
            i += 1
            word = []
            while i < n:
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        word.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                if text[i] == "\\" and i + 1 < n:
                    word.append(text[i : i + 2])
                    i += 2
                    continue
                word.append(text[i])
                i += 1
            args.append("".join(word))
        else:
            start = i
            while i < n and text[i] not in " \t":
                i += 2 if text[i] == "\\" else 1
            args.append(text[start:i])
    return args


# --------------------------------------------------------------------------------------------
# Pages -> sections -> paragraphs


@dataclass
class _Block:
    """A paragraph of the DESCRIPTION section: its kind and its rendered text pieces."""

    kind: str = "prose"  # prose | list | verbatim
    parts: list[str] | None = None

    def add(self, text: str, *, attach: bool = False) -> None:
        self.parts = self.parts or []
        if attach and self.parts:
            self.parts[-1] += text
        else:
            self.parts.append(text)

    def text(self) -> str:
        return " ".join(" ".join(self.parts or []).split())


@dataclass
class _Page:
    """What the parser keeps of a page: the NAME text and the DESCRIPTION's paragraphs."""

    name_text: list[str]
    blocks: list[_Block]
    summary: str | None = None  # mdoc's .Nd


_BREAKS_MAN = {"PP", "P", "LP", "sp", "Sp", "br", "HP", "RS", "RE", "in", "ti", "YS", "SY"}
_FONT_SPACED = {"B", "I", "SM", "SB"}
_FONT_ALTERNATING = {"BR", "BI", "IB", "IR", "RB", "RI"}
_VERBATIM_START = {"nf": "fi", "EX": "EE", "Vb": "Ve", "TS": "TE", "EQ": "EN", "PS": "PE"}


def _request(line: str) -> tuple[str, str]:
    """(macro name, the rest) of a control line."""
    body = line[1:].lstrip(" \t")
    name, _, rest = body.partition(" ")
    if "\t" in name:
        name, _, more = name.partition("\t")
        rest = f"{more} {rest}".strip()
    return name, rest


def _is_mdoc(lines: Sequence[str]) -> bool:
    """Whether a page uses mdoc(7): its prologue starts with ``.Dd`` (old pod2man pages define
    an ``.Sh`` macro of their own, so ``.Sh`` alone does not tell)."""
    return any(re.match(r"[.']\s*Dd\b", line) for line in lines[:200])


def _parse(lines: Sequence[str]) -> _Page:
    """NAME text and DESCRIPTION paragraphs of a man(7) or mdoc(7) page."""
    mdoc = _is_mdoc(lines)
    page = _Page(name_text=[], blocks=[_Block()])
    names: list[str] = []  # mdoc's .Nm names
    section = ""
    heading_next = False  # .SH / .SS without arguments: the next text line is the heading
    skip_body = False  # inside a .de / .ig body (up to "..")
    brace_depth = 0  # inside an .if/.ie/.el \{ ... \} block
    verbatim_end: str | None = None  # the request ending a no-fill block
    list_depth = 0  # mdoc .Bl nesting
    joined = False  # the previous text line ended with \c: no space before the next

    def new_block(kind: str = "prose") -> None:
        if page.blocks[-1].parts:
            page.blocks.append(_Block(kind))
        else:
            page.blocks[-1].kind = kind

    def add_text(text: str, *, attach: bool = False) -> None:
        if section == "NAME":
            if page.summary is not None:
                page.summary += " " + text
            else:
                page.name_text.append(text)
        elif section == "DESCRIPTION" and text.strip():
            page.blocks[-1].add(text, attach=attach or joined)

    for line in lines:
        if skip_body:
            skip_body = not line.startswith("..")
            continue
        if brace_depth:
            brace_depth += line.count("\\{") - line.count("\\}")
            continue
        is_control = line.startswith((".", "'"))
        name, rest = _request(line) if is_control else ("", "")
        if name in ("if", "ie", "el", "while"):
            brace_depth = max(0, line.count("\\{") - line.count("\\}"))
            continue
        if name in ("de", "de1", "am", "ig"):
            skip_body = True
            continue
        if name in ("SH", "Sh"):
            args = _split_args(rest)
            section = " ".join(render_escapes(a) for a in args).strip().upper() if args else ""
            heading_next = not args
            verbatim_end, list_depth = None, 0
            new_block()
            continue
        if verbatim_end is not None:
            if name == verbatim_end:
                verbatim_end = None
                new_block()
            elif not is_control:
                add_text(render_escapes(line))
            continue
        if heading_next and not is_control:
            heading_next = False
            if not section:
                section = render_escapes(line).strip().strip('"').upper()
            continue
        if name in ("SS", "Ss"):
            new_block()
            heading_next = not rest.strip()
            continue
        if not is_control:
            if not line.strip():
                new_block("list" if list_depth else "prose")
                continue
            if line[:1] in " \t" and not mdoc:
                new_block("verbatim")
            add_text(render_escapes(line))
            joined = line.rstrip().endswith("\\c")
            continue
        if mdoc:
            _mdoc_request(name, rest, page, names, section, new_block, add_text)
            if name == "Bl":
                list_depth += 1
            elif name == "El":
                list_depth = max(0, list_depth - 1)
            if name in ("Pp", "Lp", "El", "Ed", "D1", "Dl", "br", "sp"):
                new_block("list" if list_depth else "prose")
            elif name == "Bl":
                new_block("list")
            continue
        if name in _BREAKS_MAN:
            new_block()
        elif name == "TP":
            new_block("list")
        elif name == "IP":
            args = _split_args(rest)
            tag = render_escapes(args[0]).strip() if args else ""
            new_block("list" if tag else "prose")
            add_text(tag)
        elif name in _VERBATIM_START:
            new_block("verbatim")
            verbatim_end = _VERBATIM_START[name]
        elif name in _FONT_SPACED:
            add_text(" ".join(render_escapes(a) for a in _split_args(rest)))
        elif name in _FONT_ALTERNATING:
            add_text("".join(render_escapes(a) for a in _split_args(rest)))
        elif name in ("UE", "ME"):
            add_text("".join(render_escapes(a) for a in _split_args(rest)), attach=True)
        elif name == "OP":
            add_text("[" + " ".join(render_escapes(a) for a in _split_args(rest)) + "]")
        else:
            continue  # other requests print nothing
        joined = False
    return page


#: mdoc macros whose arguments are not text.
_MDOC_SILENT = {"Dd", "Dt", "Os", "Bl", "El", "Ed", "Bf", "Ef", "Bk", "Ek", "Rs", "Re", "Sm",
                "Tg", "Pp", "Lp", "br", "sp", "Sp"}  # fmt: skip


def _mdoc_request(
    name: str,
    rest: str,
    page: _Page,
    names: list[str],
    section: str,
    new_block: Callable[..., None],
    add_text: Callable[..., None],
) -> None:
    """Handle one mdoc control line (paragraph breaks are the caller's)."""
    args = _split_args(rest)
    if section == "NAME" and name == "Nm" and args and page.summary is None:
        names.append(render_escapes(args[0]).rstrip(","))
    elif section == "NAME" and name == "Nd":
        page.summary = _mdoc_line(args, names)
    elif name == "Bd":
        literal = any(a in ("-literal", "-unfilled") for a in args)
        new_block("verbatim" if literal else "prose")
    elif name in ("D1", "Dl"):
        new_block("verbatim")
        add_text(_mdoc_line(args, names))
    elif name in _MDOC_SILENT or not name[:1].isupper():
        return
    else:
        text = _mdoc_line([name, *args] if name in _MDOC_CALLABLE else args, names)
        add_text(text, attach=text[:1] != "" and text[0] in _MDOC_PUNCT_AFTER)


# --------------------------------------------------------------------------------------------
# mdoc's inline macros

_MDOC_PUNCT_AFTER = set(".,;:?!)]")
_MDOC_PUNCT_BEFORE = set("([")
#: Enclosing macros: (opening, closing) text around the rest of the line.
_MDOC_ENCLOSE = {
    "Op": ("[", "]"), "Pq": ("(", ")"), "Dq": ('"', '"'), "Qq": ('"', '"'), "Sq": ("'", "'"),
    "Aq": ("<", ">"), "Bq": ("[", "]"), "Brq": ("{", "}"), "Ql": ("'", "'"),
}  # fmt: skip
_MDOC_OPEN = {"Oo": "[", "Po": "(", "Do": '"', "Qo": '"', "So": "'", "Ao": "<", "Bo": "[",
              "Bro": "{"}  # fmt: skip
_MDOC_CLOSE = {"Oc": "]", "Pc": ")", "Dc": '"', "Qc": '"', "Sc": "'", "Ac": ">", "Bc": "]",
               "Brc": "}"}  # fmt: skip
_MDOC_SYSTEMS = {"Bx": "BSD", "Ox": "OpenBSD", "Nx": "NetBSD", "Fx": "FreeBSD",
                 "Dx": "DragonFly", "Bsx": "BSD/OS", "Ux": "UNIX", "At": "AT&T UNIX"}  # fmt: skip
_MDOC_STANDARDS = (("-p1003", "POSIX"), ("-iso9899", "ISO C"), ("-ansiC", "ANSI C"),
                   ("-isoC", "ISO C"), ("-sus", "the Single UNIX Specification"),
                   ("-xpg", "the X/Open Portability Guide"), ("-svid", "SVID"))  # fmt: skip
#: Every mdoc macro that may appear inside a line (callable); their names are not text.
_MDOC_CALLABLE = {
    "Ad", "An", "Ap", "Ar", "Cd", "Cm", "Dv", "Em", "Er", "Ev", "Fa", "Fl", "Fn", "Fo", "Fc",
    "Ft", "Ic", "Li", "Lk", "Ms", "Mt", "Nm", "No", "Ns", "Pa", "Pf", "St", "Sx", "Sy", "Tn",
    "Va", "Vt", "Xr", "Xo", "Xc", "Eo", "Ec", "Fd", "Ot", "Hf", "In", "Lb",
    *_MDOC_ENCLOSE, *_MDOC_OPEN, *_MDOC_CLOSE, *_MDOC_SYSTEMS,
}  # fmt: skip


def _mdoc_line(tokens: Sequence[str], names: Sequence[str]) -> str:
    """The text of one mdoc macro line (``tokens``: the macro and its arguments).

    ``names``: the page's names from NAME (``.Nm`` without an argument prints the first).
    """
    words: list[tuple[str, bool]] = []  # (text, attach to the previous word)
    closers: list[str] = []  # texts that enclosing macros put at the line's end
    attach_next = False
    macro = ""
    i = 0
    while i < len(tokens):
        token = tokens[i]
        i += 1
        if token in _MDOC_CALLABLE:
            macro = token
            if token == "Ns":
                attach_next = True
            elif token == "Ap":
                words.append(("'", True))
                attach_next = True
            elif token == "Nm" and (
                i >= len(tokens) or tokens[i] in _MDOC_CALLABLE or tokens[i] in _MDOC_PUNCT_AFTER
            ):
                words.append((names[0] if names else "", attach_next))
                attach_next = False
            elif token == "Fl" and (
                i >= len(tokens) or tokens[i] in _MDOC_CALLABLE or tokens[i] in _MDOC_PUNCT_AFTER
            ):
                words.append(("-", attach_next))
                attach_next = False
            elif token == "Ar" and (
                i >= len(tokens) or tokens[i] in _MDOC_CALLABLE or tokens[i] in _MDOC_PUNCT_AFTER
            ):
                words.append(("file ...", attach_next))
                attach_next = False
            elif token == "Xr" and i + 1 < len(tokens):
                words.append((f"{render_escapes(tokens[i])}({tokens[i + 1]})", attach_next))
                attach_next = False
                i += 2
            elif token in _MDOC_ENCLOSE:
                opening, closing = _MDOC_ENCLOSE[token]
                words.append((opening, attach_next))
                attach_next = True
                closers.append(closing)
            elif token in _MDOC_OPEN:
                words.append((_MDOC_OPEN[token], attach_next))
                attach_next = True
            elif token in _MDOC_CLOSE:
                words.append((_MDOC_CLOSE[token], True))
            elif token in _MDOC_SYSTEMS:
                version = ""
                if i < len(tokens) and re.match(r"v?\d", tokens[i]):
                    version = tokens[i]
                    i += 1
                text = _MDOC_SYSTEMS[token]
                words.append((f"{version}{text}" if token == "Bx" else f"{text} {version}".strip(),
                              attach_next))  # fmt: skip
                attach_next = False
            elif token == "Pf" and i < len(tokens):
                words.append((render_escapes(tokens[i]), attach_next))
                attach_next = True
                i += 1
            continue
        if token in _MDOC_PUNCT_AFTER and len(words) > 0:
            if (
                closers
                and i == len(tokens)
                or (closers and all(t in _MDOC_PUNCT_AFTER for t in tokens[i - 1 :]))
            ):
                words.append(("".join(reversed(closers)), True))
                closers = []
            words.append((token, True))
            continue
        text = render_escapes(token)
        if macro == "St":
            text = next((label for key, label in _MDOC_STANDARDS if text.startswith(key)), "")
        elif macro == "Fl":
            text = "-" + text
        words.append((text, attach_next))
        attach_next = token in _MDOC_PUNCT_BEFORE
    if closers:
        words.append(("".join(reversed(closers)), True))
    out = ""
    for text, attach in words:
        if not text:
            continue
        out += text if (attach or not out) else " " + text
    return out


# --------------------------------------------------------------------------------------------
# Pages -> pairs


def _summary_of(page: _Page) -> str | None:
    if page.summary is not None:
        return " ".join(page.summary.split())
    text = " ".join(" ".join(page.name_text).split())
    parts = _SEPARATOR.split(text, maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else None


def man_page_pair(source: str) -> tuple[str, str] | str:
    """The (article, summary) of one page's groff source, or why it is dropped.

    Args:
        source: The page's text (man(7) or mdoc(7) macros).

    Returns:
        ``(article, summary)``, or one of the reasons in the module docstring (``so_link``,
        ``no_name``, ``short_summary``, ``no_description``, ``list``, ``verbatim``, ``intro``,
        ``symbols``, ``too_short``, ``too_long``). ``duplicate`` is decided across pages.
    """
    lines = list(_logical_lines(source))
    first = next((line for line in lines if line.strip()), "")
    if re.match(r"[.']\s*so\s", first):
        return "so_link"
    page = _parse(lines)
    summary = _summary_of(page)
    if not summary:
        return "no_name"
    if len(summary.split()) < MIN_SUMMARY_WORDS:
        return "short_summary"
    block = next((b for b in page.blocks if b.text()), None)
    if block is None:
        return "no_description"
    if block.kind != "prose":
        return block.kind
    article = block.text()
    if article.startswith("\u2022"):
        return "list"
    return article_dropped(article) or (article, summary)


# --------------------------------------------------------------------------------------------
# Building


def _order_key(page: ManPage) -> tuple[bytes, str]:
    """A fixed pseudo-random order of the lines of a part."""
    return hashlib.sha256(b"seqae.text.manpages/order/" + page.page_id.encode()).digest(), (
        page.page_id
    )


def _read_pages(
    files: Sequence[Path],
) -> tuple[list[ManPage], list[Path], Counter[str], dict[str, int]]:
    """Pairs of the pages (links read through their targets, once); the files read; drops per
    reason; counts of files, links and pages read."""
    dropped: Counter[str] = Counter()
    seen: set[Path] = set()
    read: list[Path] = []
    pages: list[ManPage] = []
    links = 0
    for path in files:
        real = path.resolve()
        if path.is_symlink():
            links += 1
            if not real.is_file():
                dropped["broken_link"] += 1
                continue
        if real in seen:
            continue
        seen.add(real)
        read.append(real)
        try:
            result = man_page_pair(read_man_source(real))
        except UnicodeDecodeError:
            result = "encoding"
        except OSError:
            result = "unreadable"
        if isinstance(result, str):
            dropped[result] += 1
            continue
        name, section = page_name(real)
        pages.append(ManPage(result[0], result[1], name, section))
    counts = {"files_found": len(files), "links": links, "pages": len(read)}
    return pages, read, dropped, counts


def _dedup(pages: list[ManPage], dropped: Counter[str]) -> list[ManPage]:
    """Pages whose article and summary were not kept before (ignoring case), shorter names
    first."""
    return drop_duplicates(
        sorted(pages, key=lambda p: (len(p.name), p.name, p.section)),
        lambda p: (p.article.casefold(), p.summary.casefold()),
        dropped,
    )


def _refuse_inputs(outputs: Sequence[Path], inputs: Sequence[Path]) -> None:
    """:func:`refuse_overwriting_inputs` for each output, asking it only about inputs with the
    output's resolved path or inode (thousands of inputs: one stat each, not one per pair)."""
    by_key: dict[Any, Path] = {}
    for path in inputs:
        by_key[path.resolve()] = path
        try:
            stat = path.stat()
        except OSError:
            continue
        by_key[(stat.st_dev, stat.st_ino)] = path
    for output in outputs:
        hits = [by_key.get(output.resolve())]
        try:
            stat = output.stat()
        except OSError:
            pass
        else:
            hits.append(by_key.get((stat.st_dev, stat.st_ino)))
        refuse_overwriting_inputs(output, hits, what="--out")


def build_man_corpus(
    out_dir: str | os.PathLike[str],
    *,
    roots: Sequence[str | os.PathLike[str]] = ("/usr/share/man",),
    sections: Sequence[int] = MAN_SECTIONS,
    overwrite: bool = False,
    extra_outputs: Sequence[str | os.PathLike[str]] = (),
) -> dict[str, Any]:
    """Build the man-page corpus into folder ``out_dir`` (layout in the module docstring).

    Args:
        out_dir: The corpus folder; created if needed. It must be empty or absent unless
            ``overwrite``.
        roots: Manual folders to read ``manN`` folders from.
        sections: The sections (``manN`` folders) to read.
        overwrite: Replace the corpus files of a non-empty ``out_dir`` (other files are left).
        extra_outputs: Files the caller writes next to the corpus afterwards (a run config),
            refused like the corpus files when one of them is a page.

    Returns:
        The manifest written to ``corpus.json`` (sizes, filters, drops per reason, the counts
        of files, links and pages read) plus ``"directory"`` and ``"seconds"``.

    Raises:
        ManCorpusError: No pages under ``roots``, too few usable pages to give every part a
            pair, or a used ``out_dir`` without ``overwrite``.
        seqae.files.OutputOverwritesInputError: An output file (``extra_outputs`` included) is
            one of the pages.
    """
    start = time.perf_counter()
    out = Path(out_dir)
    files = find_man_pages(roots, sections)
    where = ", ".join(f"{root}/man{{{','.join(map(str, sections))}}}" for root in roots)
    if not files:
        raise ManCorpusError(f"no man pages found in {where}; expected gzip'd or plain pages")
    used = check_corpus_folder(out, overwrite=overwrite, error=ManCorpusError)

    candidates, read, dropped, counts = _read_pages(files)
    outputs = [out / name for name in (*MAN_CORPUS_FILES.values(), MANIFEST)]
    _refuse_inputs([*outputs, *map(Path, extra_outputs)], read)
    pages = _dedup(candidates, dropped)
    parts: dict[str, list[ManPage]] = {part: [] for part in SPLIT_FRACTIONS}
    for page in pages:
        parts[split_of(page.name)].append(page)
    refuse_unfilled_parts(
        {part: len(members) for part, members in parts.items()},
        usable=len(pages),
        where=where,
        noun="man pages",
        error=ManCorpusError,
    )
    if used:
        (out / MANIFEST).unlink(missing_ok=True)  # a half-rewritten folder is no corpus
    for members in parts.values():
        members.sort(key=_order_key)

    def pair_line(page: ManPage) -> str:
        record = {"article": page.article, "summary": page.summary, "id": page.page_id,
                  "name": page.name, "section": page.section}  # fmt: skip
        return json.dumps(record, ensure_ascii=False)

    texts = {
        "train_articles": [p.article for p in parts["train_articles"]],
        "train_summaries": [p.summary for p in parts["train_summaries"]],
        "valid": [pair_line(p) for p in parts["valid"]],
        "test": [pair_line(p) for p in parts["test"]],
    }
    out.mkdir(parents=True, exist_ok=True)
    for part, lines in texts.items():
        atomic_write_text(
            out / MAN_CORPUS_FILES[part], "".join(f"{x}\n" for x in lines), sync_dir=False
        )
    manifest: dict[str, Any] = {
        "format_version": CORPUS_FORMAT,
        "kind": "seqae.text.manpages",
        "files": MAN_CORPUS_FILES,
        "sizes": {part: len(lines) for part, lines in texts.items()},
        "split_fractions": SPLIT_FRACTIONS,
        "split_by": "page name stem",
        "filters": {**FILTERS, "dedup": "article or summary equal ignoring case"},
        "roots": [str(root) for root in roots],
        "sections": list(sections),
        **counts,
        "usable_pairs": len(pages),
        "filtered": dict(sorted(dropped.items())),
    }
    atomic_write_json(out / MANIFEST, manifest)
    return {**manifest, "directory": str(out), "seconds": time.perf_counter() - start}
