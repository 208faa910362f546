"""Sentence and tree files for the tree plugin, with one-line errors naming the file and line.

- :func:`read_sentences`: one tokenized sentence per line (words separated by spaces).
- :func:`read_trees`: bracketed trees (:mod:`seqae.tree.treebank`: Penn style or unlabeled),
  one or more per line or spread over lines as in the Treebank's ``.mrg`` files, cleaned with
  :func:`~seqae.tree.treebank.preprocess_tree`; optionally checked against a sentences file
  whose line ``k`` must hold the words of tree ``k``.
- :func:`load_tree_corpus`: a folder written by ``seqae data tree`` (:mod:`seqae.tree.corpus`).

What is skipped, and said once per file in a :class:`TreeDataWarning` with its count:

- a blank line of a sentences file (in a tree file, blank lines only separate trees);
- a sentence or tree of more than ``max_length`` words;
- a tree left without words by the preprocessing (say, only punctuation).

What is an error (:class:`~seqae.tree.treebank.TreeDataError`, a
:class:`seqae.errors.UsageError`, so ``seqae`` prints one line and exits 2): a missing file,
bytes that are not UTF-8, unbalanced or empty brackets, a tree whose words differ from its
sentence (naming both lines and the first differing word), different numbers of trees and
sentences, and a file with nothing in it.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from seqae.data.lines import read_utf8_lines
from seqae.tree.treebank import Style, Tree, TreeDataError, iter_trees, preprocess_tree

__all__ = [
    "TreeCorpus",
    "TreeDataError",
    "TreeDataWarning",
    "load_tree_corpus",
    "read_sentences",
    "read_trees",
]

#: The newest ``corpus.json`` format this module reads.
CORPUS_FORMAT = 1
CORPUS_KIND = "seqae.tree.corpus"


class TreeDataWarning(UserWarning):
    """Something in a sentence or tree file was skipped (blank lines, long sentences)."""


def _warn(path: Path, count: int, what: str) -> None:
    if count:
        warnings.warn(f"{path}: skipped {count} {what}", TreeDataWarning, stacklevel=3)


def _plural(count: int, word: str) -> str:
    return f"{word}{'s' if count != 1 else ''}"


def _check_max_length(max_length: int | None) -> None:
    if max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
    ):
        raise TreeDataError(f"max_length: {max_length!r}; expected an integer >= 1 or None")


def _sentence_records(
    path: Path, *, what: str, lowercase: bool
) -> tuple[list[tuple[int, list[str]]], int]:
    """``(line, words)`` of every non-blank line, and the number of blank lines."""
    records: list[tuple[int, list[str]]] = []
    blank = 0
    for number, line in enumerate(read_utf8_lines(path, what=what, error=TreeDataError), 1):
        words = (line.lower() if lowercase else line).split()
        if words:
            records.append((number, words))
        else:
            blank += 1
    if not records:
        raise TreeDataError(
            f"{what}: {path} has no sentences (empty file); expected one sentence per line"
        )
    return records, blank


def read_sentences(
    path: str | os.PathLike[str],
    *,
    lowercase: bool = False,
    max_length: int | None = None,
    what: str = "sentences",
) -> list[list[str]]:
    """The tokenized sentences of a file, one per line (words split at white space).

    Args:
        path: The file (UTF-8).
        lowercase: Lowercase the words.
        max_length: Skip sentences of more words (counted in a :class:`TreeDataWarning`).
        what: What the file is, for messages (a config key).

    Raises:
        TreeDataError: A missing or non-UTF-8 file, or no sentence at all.
    """
    _check_max_length(max_length)
    path = Path(path)
    records, blank = _sentence_records(path, what=what, lowercase=lowercase)
    _warn(path, blank, _plural(blank, "blank line"))
    sentences = [words for _, words in records]
    return _filter_long(sentences, max_length, path)


def _filter_long(items: list[Any], max_length: int | None, path: Path, key: Any = len) -> list[Any]:
    if max_length is None:
        return items
    kept = [item for item in items if key(item) <= max_length]
    n = len(items) - len(kept)
    _warn(path, n, f"{_plural(n, 'sentence')} longer than {max_length} words (max_length)")
    return kept


def read_trees(
    path: str | os.PathLike[str],
    *,
    style: Style | str = "penn",
    sentences: str | os.PathLike[str] | None = None,
    max_length: int | None = None,
    lowercase: bool = False,
    drop_punctuation: bool = False,
    drop_empty: bool = True,
    strip_function_tags: bool = True,
    what: str = "trees",
) -> list[Tree]:
    """The bracketed trees of a file, preprocessed.

    Args:
        path: The tree file (UTF-8).
        style: ``"penn"`` or ``"unlabeled"`` (:mod:`seqae.tree.treebank`).
        sentences: A sentences file to check the trees against: its ``k``-th non-blank line
            must hold the words of the ``k``-th tree (after the preprocessing; ``lowercase``
            applies to both files).
        max_length: Skip trees (and their sentences) of more words, with a warning.
        lowercase: Lowercase the words.
        drop_punctuation: Drop punctuation words (see
            :func:`~seqae.tree.treebank.preprocess_tree`).
        drop_empty: Drop empty elements (``-NONE-``).
        strip_function_tags: ``NP-SBJ-1`` -> ``NP``.
        what: What the file is, for messages.

    Raises:
        TreeDataError: See the module docstring.
    """
    _check_max_length(max_length)
    path = Path(path)
    lines = read_utf8_lines(path, what=what, error=TreeDataError)
    trees: list[tuple[int, Tree]] = []
    emptied = 0
    n_read = 0
    for number, tree in iter_trees(lines, style=style, where=f"{what}: {path}"):
        n_read += 1
        cleaned = preprocess_tree(
            tree,
            lowercase=lowercase,
            drop_punctuation=drop_punctuation,
            drop_empty=drop_empty,
            strip_function_tags=strip_function_tags,
        )
        if cleaned is None:
            emptied += 1
        else:
            trees.append((number, cleaned))
    if not n_read:
        raise TreeDataError(f"{what}: {path} has no trees (empty file); expected bracketed trees")
    _warn(path, emptied, f"{_plural(emptied, 'tree')} with no words left after preprocessing")
    if sentences is not None:
        _match_sentences(trees, Path(sentences), path, what=what, lowercase=lowercase)
    return _filter_long([tree for _, tree in trees], max_length, path, key=lambda t: t.length)


def _match_sentences(
    trees: list[tuple[int, Tree]], sentences: Path, path: Path, *, what: str, lowercase: bool
) -> None:
    """Raise unless the ``k``-th sentence is the words of the ``k``-th tree."""
    records, blank = _sentence_records(sentences, what=f"{what} sentences", lowercase=lowercase)
    _warn(sentences, blank, _plural(blank, "blank line"))
    for (tree_line, tree), (line, words) in zip(trees, records, strict=False):
        leaves = tree.leaves()
        if leaves == words:
            continue
        k = next(
            (i for i, (a, b) in enumerate(zip(leaves, words, strict=False)) if a != b),
            min(len(leaves), len(words)),
        )
        ours = repr(words[k]) if k < len(words) else "the end of the sentence"
        theirs = repr(leaves[k]) if k < len(leaves) else "the end of the tree"
        raise TreeDataError(
            f"{what}: {sentences} line {line}: the sentence differs from the tree on {path} "
            f"line {tree_line} at word {k + 1}: {ours} in the sentence, {theirs} in the tree; "
            "expected the tree's words in order"
        )
    if len(trees) != len(records):
        raise TreeDataError(
            f"{what}: {path} has {len(trees)} trees but {sentences} has {len(records)} "
            "sentences; expected one sentence per tree, in the same order"
        )


@dataclass(frozen=True)
class TreeCorpus:
    """The sentences and gold trees of a folder built by ``seqae data tree``.

    Attributes:
        train: Training sentences (no trees: the setting is unsupervised).
        valid: Validation sentences.
        test: Test sentences.
        valid_trees: The gold tree of each validation sentence.
        test_trees: The gold tree of each test sentence.
        info: The folder's ``corpus.json`` (preset, seed, settings, sizes, rules).
        directory: The folder.
    """

    train: list[list[str]]
    valid: list[list[str]]
    test: list[list[str]]
    valid_trees: list[Tree]
    test_trees: list[Tree]
    info: dict[str, Any] = field(default_factory=dict)
    directory: Path | None = None


def load_tree_corpus(
    folder: str | os.PathLike[str], *, max_train_length: int | None = None
) -> TreeCorpus:
    """Read a corpus folder written by ``seqae data tree``.

    Args:
        folder: The folder.
        max_train_length: Skip training sentences of more words (with a warning); validation
            and test sentences are all kept, as the field evaluates on every test sentence.

    Raises:
        TreeDataError: Not such a folder, a damaged or newer ``corpus.json``, or a bad file.
    """
    folder = Path(folder)
    meta_path = folder / "corpus.json"
    if not meta_path.is_file():
        raise TreeDataError(
            f"data.corpus: {folder} is not a tree corpus (no corpus.json); build one with "
            f"`seqae data tree --out {folder}`"
        )
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        version = int(meta["format_version"])
        kind = meta["kind"]
        files = {part: str(meta["files"][part]) for part in ("train", "valid", "test")}
        tree_files = {part: str(meta["files"][f"{part}_trees"]) for part in ("valid", "test")}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TreeDataError(f"data.corpus: {meta_path} is damaged ({exc}); rebuild it") from None
    if kind != CORPUS_KIND:
        raise TreeDataError(
            f"data.corpus: {meta_path} describes a {kind!r} corpus; expected {CORPUS_KIND!r}"
        )
    if version > CORPUS_FORMAT:
        raise TreeDataError(
            f"data.corpus: {meta_path} has format {version}, newer than this seqae reads "
            f"({CORPUS_FORMAT}); upgrade seqae or rebuild the corpus"
        )
    what = "data.corpus"
    parts = {
        part: read_sentences(
            folder / name,
            what=what,
            max_length=max_train_length if part == "train" else None,
        )
        for part, name in files.items()
    }
    trees = {
        part: read_trees(folder / name, sentences=folder / files[part], what=what)
        for part, name in tree_files.items()
    }
    return TreeCorpus(
        train=parts["train"],
        valid=parts["valid"],
        test=parts["test"],
        valid_trees=trees["valid"],
        test_trees=trees["test"],
        info=meta,
        directory=folder,
    )
