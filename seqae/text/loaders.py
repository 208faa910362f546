"""The text a summary autoencoder trains and is evaluated on: the embedded corpus or a user's.

:func:`load_text_corpus` reads a recipe's ``data`` section into a :class:`TextCorpus`: unpaired
training articles, unpaired training summaries (the language summaries should be written in)
and (article, summary) pairs for validation and test, which are for evaluation only. The keys
(``null`` or absent when unused):

- ``corpus``: a folder built by ``seqae data text`` (:mod:`seqae.text.corpus`).
- ``gigaword``: a folder with the headline-generation files of Rush et al. 2015 (arXiv
  1509.00685): ``train.article.txt`` and ``train.title.txt``, and optionally ``valid`` and
  ``test`` files named the same way (``valid.article.filter.txt`` style names are accepted),
  one text per line, line ``i`` of a ``.title.txt`` file being the headline of line ``i`` of
  its ``.article.txt`` file. The training articles are those of the first half of the training
  lines and the training summaries the titles of the second half, so that, as in the embedded
  corpus, no training article comes with its own summary.
- ``articles``, ``summaries``: plain text files, one article or one summary per line.
- ``valid_pairs``, ``test_pairs``: JSON Lines files, one ``{"article": ..., "summary": ...}``
  object per line (other fields are ignored, except ``id`` or ``package``, kept as the pair's
  id).
- ``style``: ``"plain"`` or ``"gigaword"`` (default: ``"gigaword"`` with ``gigaword``, else
  ``"plain"``).

``corpus`` or ``gigaword`` (not both) gives all four parts; any file key replaces its part.
Without either, ``articles`` and ``summaries`` are required and the pairs are optional.

Every text is whitespace-normalised (runs of spaces, tabs and a trailing ``\\r`` become one
space or nothing). Blank lines in plain-text and JSON Lines files are skipped, with one
:class:`TextDataWarning` giving their count per file; in Gigaword's line-aligned files a line
blank on either side skips the pair (also counted), so the alignment holds.

Gigaword's conventions (``style: gigaword``): its text has every digit replaced by ``#`` and
rare words replaced by the literal token ``UNK``. Every text read under this style goes
through :func:`normalize_gigaword` (digits to ``#``), so that a user's own files and later
input match the training text; ``UNK`` is kept as it is and :attr:`TextCorpus.unk_token`
names it so that a tokenizer maps it to its unknown token. (Gigaword's files are also
lower-cased: case is the tokenizer's business.)

Bad input raises :class:`TextDataError` (a :class:`seqae.errors.UsageError`, so ``seqae``
prints one line and exits 2) naming the file, the line and the problem.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from seqae.data.lines import decode_utf8_lines
from seqae.errors import UsageError

__all__ = [
    "GIGAWORD_UNK",
    "TextCorpus",
    "TextDataError",
    "TextDataWarning",
    "TextPair",
    "load_gigaword_pairs",
    "load_text_corpus",
    "normalize_gigaword",
    "read_pairs",
    "read_text_lines",
    "decode_lines",
]

#: The token Gigaword's files use for a rare word.
GIGAWORD_UNK = "UNK"
#: The newest ``corpus.json`` format this module reads.
_CORPUS_FORMAT = 1
_ASCII_DIGIT = re.compile(r"[0-9]")
_CORPUS_PARTS = ("train_articles", "train_summaries", "valid", "test")

Style = Literal["plain", "gigaword"]
Normalize = Callable[[str], str]


class TextDataError(UsageError):
    """A text data file (or the ``data`` section naming it) is not what it should be."""


class TextDataWarning(UserWarning):
    """Something in a text data file was skipped (blank lines)."""


@dataclass(frozen=True)
class TextPair:
    """An article and its reference summary.

    Attributes:
        article: The article, on one line.
        summary: Its human-written summary.
        id: Where the pair came from (a package name, a JSONL ``id``), if known.
    """

    article: str
    summary: str
    id: str | None = None


@dataclass(frozen=True)
class TextCorpus:
    """The texts of one experiment (see the module docstring).

    Attributes:
        articles: Unpaired training articles.
        summaries: Unpaired training summaries.
        valid: Validation pairs (may be empty).
        test: Test pairs (may be empty).
        style: ``"plain"`` or ``"gigaword"``; new text for a model trained on this corpus
            should go through :meth:`normalize`.
        unk_token: A literal token in the text that stands for an unknown word (``"UNK"`` in
            Gigaword), or ``None``.
        origin: Where the texts came from, for messages.
    """

    articles: list[str]
    summaries: list[str]
    valid: list[TextPair] = field(default_factory=list)
    test: list[TextPair] = field(default_factory=list)
    style: Style = "plain"
    unk_token: str | None = None
    origin: str = ""

    def normalize(self, text: str) -> str:
        """``text`` as this corpus writes text: whitespace-normalised, and through
        :func:`normalize_gigaword` for the Gigaword style."""
        return _normalizer(self.style)(text)


def normalize_gigaword(text: str) -> str:
    """``text`` in Gigaword's convention: whitespace-normalised, every digit 0-9 as ``#``.

    ``UNK`` tokens are left as they are. Idempotent, so Gigaword's own text is unchanged.
    """
    return _ASCII_DIGIT.sub("#", " ".join(text.split()))


def _normalize_plain(text: str) -> str:
    return " ".join(text.split())


def _normalizer(style: str) -> Normalize:
    return normalize_gigaword if style == "gigaword" else _normalize_plain


# --------------------------------------------------------------------------------------------
# Files


def _read_lines(path: Path, *, what: str) -> list[str]:
    """The raw lines of a UTF-8 text file (a trailing newline ends the last line)."""
    if not path.exists():
        raise TextDataError(f"{what}: {path}: no such file")
    if path.is_dir():
        raise TextDataError(f"{what}: {path} is a folder; expected a text file")
    return decode_lines(path.read_bytes(), where=f"{what}: {path}")


def decode_lines(data: bytes, *, where: str) -> list[str]:
    """The lines of UTF-8 ``data`` (:func:`seqae.data.lines.decode_utf8_lines`: a byte-order
    mark dropped, ``\r\n`` or ``\n`` end lines, a trailing newline ends the last line).

    Raises:
        TextDataError: A byte is not UTF-8; the message starts with ``where`` and names the
            line, the column and the byte.
    """
    return decode_utf8_lines(data, where=where, error=TextDataError)


def _warn_blank(path: Path, blank: int, *, unit: str = "line") -> None:
    if blank:
        warnings.warn(
            f"{path}: skipped {blank} blank {unit}{'s' if blank != 1 else ''}",
            TextDataWarning,
            stacklevel=3,
        )


def read_text_lines(
    path: str | os.PathLike[str], *, what: str = "text file", normalize: Normalize | None = None
) -> list[str]:
    """One text per line of a UTF-8 file, whitespace-normalised; blank lines are skipped (one
    :class:`TextDataWarning` with their count).

    Args:
        path: The file.
        what: What the file is, for error messages (e.g. the config key).
        normalize: Applied to every line (default: whitespace normalisation).

    Raises:
        TextDataError: No such file, bytes that are not UTF-8, or no text at all.
    """
    path = Path(path)
    normalize = normalize or _normalize_plain
    texts: list[str] = []
    blank = 0
    for line in _read_lines(path, what=what):
        text = normalize(line)
        if text:
            texts.append(text)
        else:
            blank += 1
    if not texts:
        raise TextDataError(f"{what}: {path} has no text (empty file); expected one text per line")
    _warn_blank(path, blank)
    return texts


def read_pairs(
    path: str | os.PathLike[str], *, what: str = "pairs file", normalize: Normalize | None = None
) -> list[TextPair]:
    """The (article, summary) pairs of a JSON Lines file: one object per line with non-empty
    string fields ``article`` and ``summary`` (``id`` or ``package``, when a string, becomes
    the pair's id). Blank lines are skipped (one :class:`TextDataWarning`).

    Args:
        path: The file.
        what: What the file is, for error messages (e.g. the config key).
        normalize: Applied to every text (default: whitespace normalisation).

    Raises:
        TextDataError: No such file, not UTF-8, a line that is not a JSON object, a missing or
            empty ``article``/``summary``, or no pairs at all.
    """
    path = Path(path)
    normalize = normalize or _normalize_plain
    pairs: list[TextPair] = []
    blank = 0
    for number, line in enumerate(_read_lines(path, what=what), start=1):
        if not line.strip():
            blank += 1
            continue
        where = f"{what}: {path} line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TextDataError(
                f"{where}: not JSON ({exc.msg}); expected one "
                '{"article": ..., "summary": ...} object per line'
            ) from None
        if not isinstance(obj, dict):
            raise TextDataError(
                f"{where}: a JSON {type(obj).__name__}, expected an object "
                '{"article": ..., "summary": ...}'
            )
        texts = {}
        for key in ("article", "summary"):
            if key not in obj:
                raise TextDataError(
                    f"{where}: no {key!r} field; expected both 'article' and 'summary'"
                )
            if not isinstance(obj[key], str):
                raise TextDataError(
                    f"{where}: {key!r} is a JSON {type(obj[key]).__name__}; expected a string"
                )
            texts[key] = normalize(obj[key])
            if not texts[key]:
                raise TextDataError(f"{where}: {key!r} is empty")
        pair_id = next((obj[k] for k in ("id", "package") if isinstance(obj.get(k), str)), None)
        pairs.append(TextPair(texts["article"], texts["summary"], pair_id))
    if not pairs:
        raise TextDataError(f"{what}: {path} has no pairs (empty file); expected JSON Lines")
    _warn_blank(path, blank)
    return pairs


def load_gigaword_pairs(
    article_path: str | os.PathLike[str],
    title_path: str | os.PathLike[str],
    *,
    what: str = "gigaword",
) -> list[TextPair]:
    """Line-aligned Gigaword files as pairs, in Gigaword's style (:func:`normalize_gigaword`).

    A line blank in either file skips the pair (one :class:`TextDataWarning` with the count).
    Pair ids are ``"<article file name>:<line>"``.

    Args:
        article_path: The ``*.article.txt`` file.
        title_path: The ``*.title.txt`` file of the same lines.
        what: What the files are, for error messages.

    Raises:
        TextDataError: A missing or non-UTF-8 file, different line counts, or no pairs.
    """
    article_path, title_path = Path(article_path), Path(title_path)
    articles = _read_lines(article_path, what=what)
    titles = _read_lines(title_path, what=what)
    if len(articles) != len(titles):
        raise TextDataError(
            f"{what}: {article_path} has {len(articles)} lines but {title_path} has "
            f"{len(titles)}; expected line-aligned files (line i of one is the headline of "
            "line i of the other)"
        )
    pairs: list[TextPair] = []
    skipped = 0
    for number, (article, title) in enumerate(zip(articles, titles, strict=True), start=1):
        article, title = normalize_gigaword(article), normalize_gigaword(title)
        if article and title:
            pairs.append(TextPair(article, title, f"{article_path.name}:{number}"))
        else:
            skipped += 1
    if not pairs:
        raise TextDataError(f"{what}: {article_path} and {title_path} have no pairs (empty files)")
    _warn_blank(article_path, skipped, unit="line pair")
    return pairs


# --------------------------------------------------------------------------------------------
# Recipes' data sections


def _embedded_parts(folder: Path, normalize: Normalize) -> dict[str, Any]:
    """The four parts of a corpus folder built by ``seqae data text``."""
    meta_path = folder / "corpus.json"
    if not meta_path.is_file():
        raise TextDataError(
            f"data.corpus: {folder} is not a text corpus (no corpus.json); build one with "
            f"`seqae data text --out {folder}`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = int(meta["format_version"])
        names = {part: str(meta["files"][part]) for part in _CORPUS_PARTS}
    except (ValueError, KeyError, TypeError) as exc:
        raise TextDataError(f"data.corpus: {meta_path} is damaged ({exc}); rebuild it") from None
    if version > _CORPUS_FORMAT:
        raise TextDataError(
            f"data.corpus: {meta_path} has format {version}, newer than this seqae reads "
            f"({_CORPUS_FORMAT}); upgrade seqae or rebuild the corpus"
        )
    what = "data.corpus"
    return {
        "articles": read_text_lines(
            folder / names["train_articles"], what=what, normalize=normalize
        ),
        "summaries": read_text_lines(
            folder / names["train_summaries"], what=what, normalize=normalize
        ),
        "valid": read_pairs(folder / names["valid"], what=what, normalize=normalize),
        "test": read_pairs(folder / names["test"], what=what, normalize=normalize),
    }


def _gigaword_file(folder: Path, split: str, kind: str) -> Path | None:
    for name in (f"{split}.{kind}.txt", f"{split}.{kind}.filter.txt"):
        if (folder / name).is_file():
            return folder / name
    return None


def _gigaword_parts(folder: Path) -> dict[str, Any]:
    """The four parts of a Gigaword folder (train halves unpaired, see the module docstring)."""
    if not folder.is_dir():
        raise TextDataError(f"data.gigaword: {folder}: no such folder")
    parts: dict[str, Any] = {"valid": [], "test": []}
    for split in ("train", "valid", "test"):
        article, title = (
            _gigaword_file(folder, split, "article"),
            _gigaword_file(folder, split, "title"),
        )
        if article is None and title is None and split != "train":
            continue
        if article is None or title is None:
            raise TextDataError(
                f"data.gigaword: {folder} lacks {split}.{'article' if article is None else 'title'}"
                f".txt; expected {split}.article.txt and {split}.title.txt side by side"
            )
        pairs = load_gigaword_pairs(article, title, what="data.gigaword")
        if split == "train":
            if len(pairs) < 2:
                raise TextDataError(
                    f"data.gigaword: {article} has one pair; expected at least two (the articles "
                    "of the first half and the titles of the second half train)"
                )
            half = len(pairs) // 2
            parts["articles"] = [p.article for p in pairs[:half]]
            parts["summaries"] = [p.summary for p in pairs[half:]]
        else:
            parts[split] = pairs
    return parts


def load_text_corpus(data_cfg: Mapping[str, Any]) -> TextCorpus:
    """Read the texts a recipe's ``data`` section names (keys in the module docstring).

    Args:
        data_cfg: The ``data`` section; keys set to ``None`` count as absent, keys this
            function does not know are ignored (they belong to the recipe).

    Returns:
        The corpus.

    Raises:
        TextDataError: A bad combination of keys or a bad file (one line naming it).
    """

    def path_of(key: str) -> Path | None:
        value = data_cfg.get(key)
        if value is None:
            return None
        if not isinstance(value, str | os.PathLike) or not str(value):
            raise TextDataError(f"data.{key}: {value!r} is not a path")
        return Path(value)

    corpus, gigaword = path_of("corpus"), path_of("gigaword")
    if corpus is not None and gigaword is not None:
        raise TextDataError("data: set either `corpus` or `gigaword`, not both")
    style = data_cfg.get("style") or ("gigaword" if gigaword is not None else "plain")
    if style not in ("plain", "gigaword"):
        raise TextDataError(f"data.style: {style!r}; expected 'plain' or 'gigaword'")
    normalize = _normalizer(style)

    parts: dict[str, Any] = {}
    origin = "data files"
    if corpus is not None:
        parts, origin = _embedded_parts(corpus, normalize), f"text corpus {corpus}"
    elif gigaword is not None:
        parts, origin = _gigaword_parts(gigaword), f"Gigaword {gigaword}"
    elif path_of("articles") is None or path_of("summaries") is None:
        raise TextDataError(
            "data: no texts; set `corpus` (a folder from `seqae data text`), `gigaword` (a "
            "folder of *.article.txt/*.title.txt files) or `articles` and `summaries` files"
        )
    for key, part in (("articles", "articles"), ("summaries", "summaries")):
        if (path := path_of(key)) is not None:
            parts[part] = read_text_lines(path, what=f"data.{key}", normalize=normalize)
    for key, part in (("valid_pairs", "valid"), ("test_pairs", "test")):
        if (path := path_of(key)) is not None:
            parts[part] = read_pairs(path, what=f"data.{key}", normalize=normalize)
    return TextCorpus(
        articles=parts["articles"],
        summaries=parts["summaries"],
        valid=parts.get("valid", []),
        test=parts.get("test", []),
        style=style,
        unk_token=GIGAWORD_UNK if style == "gigaword" else None,
        origin=origin,
    )
