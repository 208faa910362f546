"""The embedded tree corpus: sentences and gold trees from a grammar of :mod:`seqae.tree.grammar`.

::

    info = build_tree_corpus("data/tree", preset="full", seed=0)

or from a shell (``add_parser`` adds this subcommand to ``seqae data``)::

    seqae data tree --out data/tree [--preset full|tiny|other|other-tiny] [--seed N]
                    [--set KEY=VALUE ...] [--overwrite]

``--set`` changes one setting of the preset: a :class:`~seqae.tree.grammar.GrammarSettings`
field (``vocab_size``, ``max_depth``, ``recursion``, ``min_length``, ``max_length``,
``binary``, ``mirror``, ``zipf``, ``family``) or a part's size (``train``, ``valid``,
``test``).

The folder (:data:`CORPUS_FILES`)::

    DIR/train.txt         training sentences, one per line, words separated by one space
    DIR/valid.txt         validation sentences
    DIR/test.txt          test sentences
    DIR/valid_trees.txt   the gold tree of each validation sentence, one per line, Penn style:
                          (S (NP (DT the) (NN cat)) (VP (VBD slept)))
    DIR/test_trees.txt    the gold tree of each test sentence
    DIR/corpus.json       preset, seed, settings, sizes, the grammar's rules and categories,
                          length statistics and the test F1 of the trivial baselines
                          (written last: a folder without it is not a corpus)

Every sentence is distinct across the three parts. The test sentences are drawn first, then
the validation and the training ones, so the test set of a preset and seed stays the same
whatever the training size. The build is deterministic: the same preset, settings and seed
give the same bytes. :func:`~seqae.tree.loaders.load_tree_corpus` reads the folder back.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seqae.data.corpus_folder import check_corpus_folder
from seqae.errors import UsageError
from seqae.files import atomic_write_json, atomic_write_text
from seqae.metrics.parsing import BASELINES, baseline_bracketings, parsing_scores
from seqae.tree.grammar import Grammar, GrammarSettings
from seqae.tree.loaders import CORPUS_FORMAT, CORPUS_KIND

__all__ = [
    "CORPUS_FILES",
    "PRESETS",
    "TreeCorpusError",
    "TreeCorpusInfo",
    "TreePreset",
    "add_parser",
    "build_tree_corpus",
    "parse_overrides",
]

#: The file each part is written to.
CORPUS_FILES: dict[str, str] = {
    "train": "train.txt",
    "valid": "valid.txt",
    "test": "test.txt",
    "valid_trees": "valid_trees.txt",
    "test_trees": "test_trees.txt",
}
_PARTS = ("test", "valid", "train")  # the order the sentences are drawn in


class TreeCorpusError(UsageError):
    """The corpus cannot be built: a used --out, an unknown preset or setting."""


@dataclass(frozen=True)
class TreePreset:
    """A grammar and the size of each part.

    Attributes:
        settings: The grammar's settings.
        train: Training sentences.
        valid: Validation sentences.
        test: Test sentences.
        about: One line on what it is for.
    """

    settings: GrammarSettings
    train: int
    valid: int
    test: int
    about: str = ""


_TINY = {"vocab_size": 80, "max_depth": 4, "max_length": 12}
#: The presets of ``seqae data tree``.
PRESETS: dict[str, TreePreset] = {
    "full": TreePreset(
        GrammarSettings(), 20_000, 1_000, 1_000, "the English-like grammar, 400 words"
    ),
    "tiny": TreePreset(
        GrammarSettings(**_TINY), 200, 20, 20, "the English-like grammar, small, for tests"
    ),
    "other": TreePreset(
        GrammarSettings(family="other"),
        20_000,
        1_000,
        1_000,
        "the head-final grammar of made-up words, for results on a grammar nobody tuned on",
    ),
    "other-tiny": TreePreset(
        GrammarSettings(family="other", **{**_TINY, "vocab_size": 60}),
        200,
        20,
        20,
        "the head-final grammar, small, for tests",
    ),
}
_SIZE_KEYS = ("train", "valid", "test")


@dataclass(frozen=True)
class TreeCorpusInfo:
    """What :func:`build_tree_corpus` wrote.

    Attributes:
        directory: The corpus folder.
        preset: The preset's name.
        seed: The sampling seed.
        sizes: Sentences per part (``train``, ``valid``, ``test``).
        settings: The grammar's settings (the preset's, with the overrides).
        seconds: Wall-clock build time.
    """

    directory: Path
    preset: str
    seed: int
    sizes: dict[str, int]
    settings: GrammarSettings
    seconds: float


def _setting_keys() -> list[str]:
    return [f.name for f in dataclasses.fields(GrammarSettings)] + list(_SIZE_KEYS)


def _convert(key: str, text: str, like: Any) -> Any:
    """``text`` as the type of the default ``like``."""
    if isinstance(like, bool):
        lowered = text.strip().lower()
        if lowered in ("true", "yes", "1", "on"):
            return True
        if lowered in ("false", "no", "0", "off"):
            return False
        raise TreeCorpusError(f"--set {key}={text}: expected true or false")
    if isinstance(like, int | float):
        try:
            return type(like)(text)
        except ValueError:
            kind = "an integer" if isinstance(like, int) else "a number"
            raise TreeCorpusError(f"--set {key}={text}: expected {kind}") from None
    return text


def parse_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``KEY=VALUE`` strings (``--set``) as typed overrides for :func:`build_tree_corpus`.

    Raises:
        TreeCorpusError: A pair without ``=``, an unknown key, or a value of the wrong type.
    """
    defaults = {**dataclasses.asdict(GrammarSettings()), "train": 1, "valid": 1, "test": 1}
    overrides: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep:
            raise TreeCorpusError(f"--set {pair}: expected KEY=VALUE")
        if key not in defaults:
            raise TreeCorpusError(
                f"--set {key}: unknown setting; expected one of {', '.join(_setting_keys())}"
            )
        overrides[key] = _convert(key, value, defaults[key])
    return overrides


def _resolve(
    preset: str, overrides: Mapping[str, Any] | None
) -> tuple[GrammarSettings, dict[str, int]]:
    if preset not in PRESETS:
        raise TreeCorpusError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    base = PRESETS[preset]
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(_setting_keys()))
    if unknown:
        raise TreeCorpusError(
            f"unknown setting {unknown[0]!r}; expected one of {', '.join(_setting_keys())}"
        )
    sizes = {part: overrides.pop(part, getattr(base, part)) for part in _SIZE_KEYS}
    for part, size in sizes.items():
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise TreeCorpusError(f"{part}: {size!r}; expected a number of sentences >= 1")
    return dataclasses.replace(base.settings, **overrides), sizes


def _lines(items: Sequence[str]) -> str:
    return "".join(f"{item}\n" for item in items)


def build_tree_corpus(
    out: str | Path,
    *,
    preset: str = "full",
    seed: int = 0,
    overrides: Mapping[str, Any] | None = None,
    overwrite: bool = False,
) -> TreeCorpusInfo:
    """Generate the sentences and gold trees of a preset into folder ``out``.

    Args:
        out: The corpus folder; created if needed. It must be empty or absent unless
            ``overwrite``.
        preset: A key of :data:`PRESETS`: ``"full"``, ``"tiny"``, ``"other"``,
            ``"other-tiny"``.
        seed: Seed of the sampling.
        overrides: Settings that replace the preset's (a :class:`GrammarSettings` field, or
            ``train``/``valid``/``test`` sizes).
        overwrite: Replace the corpus files of a non-empty ``out`` (other files are left).

    Returns:
        What was written (:class:`TreeCorpusInfo`).

    Raises:
        TreeCorpusError: A used ``out``, an unknown preset or setting.
        GrammarError: Settings the grammar cannot meet (a too small vocabulary, a length
            range it rarely produces).
    """
    start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TreeCorpusError(f"seed: {seed!r}; expected an integer")
    settings, sizes = _resolve(preset, overrides)
    out = Path(out)
    check_corpus_folder(out, overwrite=overwrite, error=TreeCorpusError)
    grammar = Grammar(settings)
    trees = grammar.generate(sum(sizes.values()), seed=seed)
    parts: dict[str, list] = {}
    offset = 0
    for part in _PARTS:
        parts[part] = trees[offset : offset + sizes[part]]
        offset += sizes[part]

    out.mkdir(parents=True, exist_ok=True)
    # without corpus.json a half-rewritten folder is not taken for a corpus
    (out / "corpus.json").unlink(missing_ok=True)
    for part in _PARTS:
        sentences = [" ".join(t.leaves()) for t in parts[part]]
        atomic_write_text(out / CORPUS_FILES[part], _lines(sentences), sync_dir=False)
    for part in ("valid", "test"):
        atomic_write_text(
            out / CORPUS_FILES[f"{part}_trees"],
            _lines([t.to_string(style="penn") for t in parts[part]]),
            sync_dir=False,
        )
    lengths = {part: [t.length for t in parts[part]] for part in _PARTS}
    baselines = {
        kind: round(
            parsing_scores(
                baseline_bracketings(parts["test"], kind, seed=seed), parts["test"], n_boot=None
            ).sentence_f1.estimate,
            4,
        )
        for kind in BASELINES
    }
    atomic_write_json(
        out / "corpus.json",
        {
            "format_version": CORPUS_FORMAT,
            "kind": CORPUS_KIND,
            "preset": preset,
            "seed": seed,
            "files": CORPUS_FILES,
            "sizes": sizes,
            "grammar": grammar.describe(),
            "statistics": {
                part: {
                    "mean_length": round(statistics.fmean(lengths[part]), 3),
                    "max_length": max(lengths[part]),
                    "distinct_words": len({w for t in parts[part] for w in t.leaves()}),
                }
                for part in _PARTS
            },
            "test_sentence_f1_of_baselines": baselines,
        },
    )
    return TreeCorpusInfo(out, preset, seed, sizes, settings, time.perf_counter() - start)


# --------------------------------------------------------------------------------------------
# Command line


def _cmd_tree(args: argparse.Namespace) -> int:
    info = build_tree_corpus(
        args.out,
        preset=args.preset,
        seed=args.seed,
        overrides=parse_overrides(args.set or []),
        overwrite=args.overwrite,
    )
    s = info.sizes
    print(
        f"tree corpus in {info.directory}: {s['train']} train, {s['valid']} valid and "
        f"{s['test']} test sentences from the {info.settings.family} grammar "
        f"({info.settings.vocab_size} words, preset {info.preset}, seed {info.seed}, "
        f"{info.seconds:.1f} s)",
        file=sys.stdout,
    )
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``seqae data tree`` under ``seqae data``.

    The ``data_builder`` component of the registry: the ``tree`` parser has a ``func`` default
    that takes the parsed arguments and returns an exit status.

    Args:
        sub: The subparsers object of the ``seqae data`` command.
    """
    tree = sub.add_parser(
        "tree", help="generate sentences with gold trees from an embedded grammar (offline)"
    )
    tree.add_argument("--out", required=True, help="output folder")
    tree.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        default="full",
        help="; ".join(f"{name}: {p.about}" for name, p in PRESETS.items()),
    )
    tree.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
    tree.add_argument(
        "--set",
        action="append",
        metavar="KEY=VALUE",
        help=f"change one setting of the preset (repeat): {', '.join(_setting_keys())}",
    )
    tree.add_argument(
        "--overwrite", action="store_true", help="replace the corpus files in a non-empty --out"
    )
    tree.set_defaults(func=_cmd_tree)
    return tree
