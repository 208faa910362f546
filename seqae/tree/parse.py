"""``seqae parse``: unlabeled binary trees of sentences with a trained tree-parser folder.

A *tree-parser folder* is a saved :class:`~seqae.tree.urnng.URNNG` or
:class:`~seqae.tree.pcfg.CompoundPCFG` (``save_pretrained``: ``config.json`` +
``model.safetensors``, so ``seqae.load_pretrained`` reads it too) with two files beside it
(:func:`save_tree_parser`):

- ``vocab.json``: its :class:`~seqae.data.tokens.Vocabulary` (``Vocabulary.to_dict``);
- ``tree_parser.json``: the preprocessing it was trained with (``lowercase``,
  ``drop_punctuation``, ``max_length``: the longest training sentence allowed).

The ``tree_ae`` recipe writes one as ``output_dir/model/``::

    seqae parse --model runs/tree_ae/model --input sentences.txt --out trees.txt
    echo "the dog saw a cat" | seqae parse --model runs/tree_ae/model --input - --out -
    ((the dog) (saw (a cat)))

Input (``--input FILE`` or ``-`` for standard input): UTF-8 text, one tokenized sentence per
line (words separated by white space). Output: line ``i`` holds the tree of input line ``i``,
in the unlabeled bracketed format of :mod:`seqae.tree.trees` (``spans_to_brackets``; read back
with ``brackets_to_spans``) whose leaves are the line's own words, unchanged. The model parses
by minimum Bayes risk (URNNG: over its tree CRF; the compound PCFG: over its span marginals at
the posterior mean of ``z``).

Documented behaviour:

- **words**: each word is looked up in the vocabulary (lowercased first when the model was
  trained lowercased); words it has not seen, and words spelled like a special token
  (``<s>``, ``</s>``, ``<pad>``), are read as ``<unk>``. The output keeps the original word.
  Punctuation is parsed like any word, also when training dropped it (it is then ``<unk>``):
  remove it from the input first to parse as the model was trained.
- **an empty line** (or one of only white space) gives an empty output line.
- **a one-word sentence**: its only tree is the word itself, written bare (``word``, not
  ``(word)``), as ``spans_to_brackets`` writes it and ``brackets_to_spans`` reads it.
- **a sentence longer than the model's training limit** (``max_length``) is parsed anyway
  (the chart algorithms take any length; cost grows as ``n^3``), with one note on standard
  error giving how many such lines there were.
- **a word holding a bracket** (``(`` or ``)``) cannot be a leaf of a bracketed tree: the
  line is refused (write brackets as ``-LRB-`` and ``-RRB-``, the Penn Treebank's way).

Bad input (a folder that is not a tree parser, bytes that are not UTF-8, a word with a bracket,
``--out`` naming the input) is one line ``seqae: error: ...`` naming the file and line, exit
status 2, and nothing is written. ``--out FILE`` is written atomically; ``-`` writes standard
output.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from seqae.cli import int_at_least
from seqae.data.lines import check_output, read_input_lines, write_output_lines
from seqae.errors import UsageError

if TYPE_CHECKING:
    from torch import nn

    from seqae.data.tokens import Vocabulary
    from seqae.tree.trees import Span

__all__ = [
    "MODEL_TYPES",
    "SETTINGS_FILE",
    "VOCAB_FILE",
    "TreeParser",
    "add_parser",
    "encode_words",
    "load_tree_parser",
    "parse_lines",
    "parse_spans",
    "save_tree_parser",
]

#: The saved model types a tree-parser folder may hold.
MODEL_TYPES: tuple[str, ...] = ("urnng", "compound_pcfg")
#: The vocabulary file of a tree-parser folder.
VOCAB_FILE = "vocab.json"
#: The preprocessing settings file of a tree-parser folder.
SETTINGS_FILE = "tree_parser.json"
_SETTINGS_KIND = "seqae.tree_parser"


class TreeParser(NamedTuple):
    """A loaded tree-parser folder."""

    #: The model (``URNNG`` or ``CompoundPCFG``), in eval mode.
    model: nn.Module
    #: Its vocabulary.
    vocab: Vocabulary
    #: Words were lowercased in training (the lookup lowercases them too).
    lowercase: bool
    #: Punctuation was dropped from the training sentences.
    drop_punctuation: bool
    #: The longest training sentence allowed (``None``: no limit).
    max_length: int | None


def save_tree_parser(
    directory: str | os.PathLike[str],
    model: nn.Module,
    vocab: Vocabulary,
    *,
    lowercase: bool,
    drop_punctuation: bool,
    max_length: int | None,
) -> Path:
    """Write a tree-parser folder: the model, its vocabulary and its preprocessing settings.

    Args:
        directory: The folder (created when missing).
        model: A trained ``URNNG`` or ``CompoundPCFG`` (``save_pretrained``).
        vocab: The vocabulary its token ids come from.
        lowercase: Whether training lowercased the words.
        drop_punctuation: Whether training dropped punctuation.
        max_length: The longest training sentence allowed (``None``: no limit).

    Returns:
        The folder's path.
    """
    from seqae.files import atomic_write_json

    if getattr(model, "model_type", None) not in MODEL_TYPES:
        raise TypeError(f"save_tree_parser: expected one of {MODEL_TYPES}, got {type(model)}")
    directory = Path(directory)
    model.save_pretrained(directory)  # type: ignore[operator]
    atomic_write_json(directory / VOCAB_FILE, vocab.to_dict())
    atomic_write_json(
        directory / SETTINGS_FILE,
        {
            "kind": _SETTINGS_KIND,
            "lowercase": bool(lowercase),
            "drop_punctuation": bool(drop_punctuation),
            "max_length": None if max_length is None else int(max_length),
        },
    )
    return directory


def _not_a_parser(directory: Path, why: str) -> UsageError:
    return UsageError(
        f"--model {directory} is not a tree-parser folder ({why}); expected a saved urnng or "
        f"compound_pcfg model with {VOCAB_FILE} and {SETTINGS_FILE} beside it, such as a "
        "tree_ae run's model/ folder"
    )


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _read_json(path: Path, directory: Path) -> Any:
    import json

    if not path.is_file():
        raise _not_a_parser(directory, f"no {path.name}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _not_a_parser(directory, f"{path.name} is unreadable: {exc}") from None


def load_tree_parser(directory: str | os.PathLike[str], *, map_location: Any = "cpu") -> TreeParser:
    """Read a tree-parser folder (see the module docstring).

    Args:
        directory: The folder.
        map_location: Where the model's weights go.

    Raises:
        UsageError: The folder is missing, holds another kind of model, lacks or has a damaged
            vocabulary or settings file, or its files do not fit together.
    """
    from seqae import registry
    from seqae.core.saving import SavedModelError, read_model_config
    from seqae.data.tokens import Vocabulary

    directory = Path(directory)
    try:
        saved = read_model_config(directory, expected=MODEL_TYPES)
        model = registry.get("saved_model", saved.model_type).from_pretrained(
            directory, map_location=map_location
        )
    except SavedModelError as exc:
        raise _not_a_parser(directory, _first_line(exc)) from None
    try:
        vocab = Vocabulary.from_dict(_read_json(directory / VOCAB_FILE, directory))
    except ValueError as exc:
        raise _not_a_parser(directory, f"{VOCAB_FILE}: {_first_line(exc)}") from None
    size = model.config["vocab_size"]
    if len(vocab) != size:
        raise _not_a_parser(
            directory,
            f"its vocabulary has {len(vocab)} tokens but the model {size}; they are from "
            "different runs",
        )
    settings = _read_json(directory / SETTINGS_FILE, directory)
    if not isinstance(settings, dict) or settings.get("kind") != _SETTINGS_KIND:
        raise _not_a_parser(directory, f"{SETTINGS_FILE} is not a tree-parser settings file")
    flags = {key: settings.get(key) for key in ("lowercase", "drop_punctuation")}
    max_length = settings.get("max_length")
    bad_limit = max_length is not None and (
        isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1
    )
    if any(not isinstance(v, bool) for v in flags.values()) or bad_limit:
        raise _not_a_parser(
            directory,
            f"{SETTINGS_FILE}: expected lowercase and drop_punctuation true/false and "
            f"max_length an integer >= 1 or null, got {settings}",
        )
    return TreeParser(
        model.eval(), vocab, flags["lowercase"], flags["drop_punctuation"], max_length
    )


def encode_words(vocab: Vocabulary, words: Sequence[str], *, lowercase: bool = False) -> list[int]:
    """The ids of ``words`` for a tree model: unknown words, and words spelled like a special
    token (which the models refuse among the words), are ``<unk>``.

    Args:
        vocab: The vocabulary.
        words: One sentence's words.
        lowercase: Lowercase each word before the lookup.
    """
    from seqae.data.tokens import SPECIAL_TOKENS

    ids = []
    for word in words:
        key = word.lower() if lowercase else word
        ids.append(vocab.unk_id if key in SPECIAL_TOKENS else vocab.id(key))
    return ids


def parse_spans(
    model: nn.Module,
    vocab: Vocabulary,
    sentences: Sequence[Sequence[str]],
    *,
    batch_size: int = 32,
    lowercase: bool = False,
) -> list[list[Span]]:
    """The minimum-Bayes-risk tree of each sentence as a span set (inclusive word spans,
    leaves included; :mod:`seqae.tree.trees`), in input order.

    Sentences are parsed in padded batches of neighbouring lengths (the same batches for the
    same sentences and ``batch_size``, so the same trees).

    Args:
        model: A ``URNNG`` or ``CompoundPCFG`` (put in eval mode here).
        vocab: Its vocabulary.
        sentences: Non-empty lists of words.
        batch_size: Sentences per batch.
        lowercase: Lowercase the words for the lookup.
    """
    import torch

    from seqae.data.tokens import length_batches, pad_token_ids
    from seqae.tree.trees import indicators_to_spans

    if any(len(s) == 0 for s in sentences):
        raise ValueError("parse_spans: every sentence needs at least one word")
    model.eval()
    device = next(model.parameters()).device
    out: list[list[Span]] = [[] for _ in sentences]
    groups = length_batches([len(s) for s in sentences], batch_size=batch_size, same_length=False)
    with torch.no_grad():
        for rows in groups:
            batch = pad_token_ids(
                [encode_words(vocab, sentences[i], lowercase=lowercase) for i in rows],
                pad_id=vocab.pad_id,
            ).to(device)
            if model.model_type == "urnng":
                spans = indicators_to_spans(
                    model.parse(batch.ids, batch.lengths, method="mbr"), batch.lengths
                )
            else:
                spans = model.parse(batch.ids, batch.lengths)
            for row, tree in zip(rows, spans, strict=True):
                out[row] = tree
    return out


def _check_brackets(lines: Sequence[str], name: str) -> None:
    for number, line in enumerate(lines, start=1):
        for word in line.split():
            if "(" in word or ")" in word:
                raise UsageError(
                    f"--input {name} line {number}: the word {word!r} holds a bracket, which a "
                    "bracketed tree cannot show as a leaf; write brackets as -LRB- and -RRB-"
                )


def parse_lines(
    parser: TreeParser, lines: Sequence[str], *, batch_size: int = 32
) -> tuple[list[str], int]:
    """The bracketed tree of each line (see the module docstring for empty lines and one-word
    sentences).

    Args:
        parser: The loaded folder.
        lines: One tokenized sentence per line.
        batch_size: Sentences per batch.

    Returns:
        ``(trees, n_long)``: one output line per input line, and how many lines were longer
        than the model's training limit.
    """
    from seqae.tree.trees import spans_to_brackets

    words = [line.split() for line in lines]
    todo = [i for i, w in enumerate(words) if len(w) > 1]
    out = [" ".join(w) for w in words]  # "" for an empty line, the word for a one-word line
    spans = parse_spans(
        parser.model,
        parser.vocab,
        [words[i] for i in todo],
        batch_size=batch_size,
        lowercase=parser.lowercase,
    )
    for i, tree in zip(todo, spans, strict=True):
        out[i] = spans_to_brackets(tree, words[i])
    limit = parser.max_length
    n_long = 0 if limit is None else sum(len(w) > limit for w in words)
    return out, n_long


# -- the command -----------------------------------------------------------------------------


def _cmd_parse(args: argparse.Namespace) -> int:
    check_output(args.out, args.input)
    parser = load_tree_parser(args.model)
    lines, name = read_input_lines(args.input, expected="a text file, one sentence a line")
    _check_brackets(lines, name)
    trees, n_long = parse_lines(parser, lines, batch_size=args.batch)
    if n_long:
        print(
            f"seqae parse: note: {n_long} of {len(lines)} lines are longer than the "
            f"{parser.max_length} words the model was trained on; parsed anyway",
            file=sys.stderr,
        )
    write_output_lines(args.out, trees)
    return 0


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae parse`` to an argparse subparsers object.

    The ``cli`` component of the registry: the parser's ``func`` default takes the parsed
    arguments and returns the exit status (0 success; bad input raises :class:`UsageError`,
    which ``seqae`` reports in one line with exit status 2).

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "parse",
        help="unlabeled binary trees of sentences with a trained tree parser (tree_ae's model/)",
        description=(
            "Parse one tokenized sentence per line of --input into one bracketed binary tree "
            "per output line, the line's own words as leaves: '((the dog) (saw (a cat)))'. An "
            "empty line gives an empty line, a one-word line the word itself; unknown words "
            "are read as <unk>; lines longer than the model's training sentences are parsed "
            "anyway."
        ),
    )
    parser.add_argument(
        "--model", required=True, help="tree-parser folder (a tree_ae run's model/)"
    )
    parser.add_argument("--input", required=True, help="sentences file, or - for standard input")
    parser.add_argument(
        "--out", required=True, help="file to write (atomically), or - for standard output"
    )
    parser.add_argument(
        "--batch", type=int_at_least(1), default=32, help="sentences per batch (default 32)"
    )
    parser.set_defaults(func=_cmd_parse)
    return parser
