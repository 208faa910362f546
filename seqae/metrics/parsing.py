"""Unlabeled bracketing F1 of predicted trees against gold trees, as unsupervised parsing
reports it, with the trivial baselines and result tables.

The convention is that of URNNG and the compound PCFG (Kim et al. 2019, arXiv 1904.03746 and
1906.10225, their evaluation code): a tree is the **set** of the word spans ``(start, end)``
(end exclusive) of its constituents, so duplicate spans (a unary chain ``(S (VP ...))``, a
repeated prediction) count once and labels are ignored; the trivial spans, single words and
the whole sentence, are discarded; sentences of one word are skipped.

- *Sentence-level F1* (what those papers report): per sentence, precision = matched /
  predicted spans and recall = matched / gold spans, F1 their harmonic mean, averaged over
  sentences. A set that is empty counts as precise (precision 1 with no predicted span) and
  complete (recall 1 with no gold span): a two-word sentence, which has no non-trivial span,
  scores 1, and a flat prediction scores 0 against a gold tree that has spans.
- *Corpus-level F1*: the same counts summed over sentences (micro average),
  ``2 * matched / (predicted + gold)``.

Both come with bootstrap intervals over sentences (:mod:`seqae.metrics.bootstrap`).

    >>> gold = [tree.bracketing() for tree in gold_trees]       # or Bracketing(length, spans)
    >>> ours = parsing_scores(predicted, gold)                    # ParsingScores
    >>> right = parsing_scores(baseline_bracketings(gold, "right"), gold)
    >>> print(parsing_table({"right-branching": right, "ours": ours}))

Anything with a ``bracketing()`` method returning a :class:`Bracketing` (a tree of
:mod:`seqae.tree.treebank`) may stand where a :class:`Bracketing` is expected.
"""

from __future__ import annotations

import functools
import math
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

import numpy as np

from seqae.metrics.bootstrap import BootstrapInterval, bootstrap_ratio, paired_bootstrap
from seqae.metrics.tables import format_estimate, markdown_table

__all__ = [
    "BASELINES",
    "Bracketing",
    "LabelRecall",
    "LengthBucket",
    "ParsingScores",
    "SpanCounts",
    "as_bracketing",
    "baseline_bracketings",
    "f1_by_length",
    "label_recall",
    "label_recall_table",
    "left_branching",
    "length_table",
    "paired_f1_difference",
    "parsing_scores",
    "parsing_table",
    "random_binary",
    "right_branching",
    "sentence_f1",
    "span_counts",
]

Span = tuple[int, int]
LabeledSpan = tuple[int, int, str | None]
Baseline = Literal["right", "left", "random"]
#: The baseline trees :func:`baseline_bracketings` makes.
BASELINES: tuple[str, ...] = ("right", "left", "random")


@dataclass(frozen=True)
class Bracketing:
    """The constituents of one sentence.

    Attributes:
        length: Number of words.
        spans: One ``(start, end, label)`` per constituent, ``0 <= start < end <= length``
            (end exclusive); ``label`` is ``None`` for unlabeled trees. Order and repeats do
            not matter.
    """

    length: int
    spans: tuple[LabeledSpan, ...] = ()

    def __post_init__(self) -> None:
        if isinstance(self.length, bool) or not isinstance(self.length, int) or self.length < 0:
            raise ValueError(f"Bracketing: length must be an int >= 0, got {self.length!r}")
        spans = tuple(
            (int(s[0]), int(s[1]), s[2] if len(s) > 2 else None)  # type: ignore[misc]
            for s in self.spans
        )
        for start, end, _ in spans:
            if not 0 <= start < end <= self.length:
                raise ValueError(
                    f"Bracketing: span ({start}, {end}) is not within a sentence of "
                    f"{self.length} words; expected 0 <= start < end <= {self.length}"
                )
        object.__setattr__(self, "spans", spans)

    @classmethod
    def from_spans(
        cls, length: int, spans: Iterable[Sequence[Any]], *, inclusive: bool = False
    ) -> Bracketing:
        """A bracketing from ``(start, end)`` or ``(start, end, label)`` tuples.

        Args:
            length: Number of words.
            spans: The constituents.
            inclusive: The spans' ends are the last word's index (``(k, k)`` is word ``k``,
                as in :mod:`seqae.tree.trees`) rather than one past it.
        """
        shift = 1 if inclusive else 0
        return cls(
            length,
            tuple((int(s[0]), int(s[1]) + shift, *tuple(s[2:3])) for s in spans),  # type: ignore[arg-type]
        )

    def unlabeled(self) -> frozenset[Span]:
        """The non-trivial spans: neither a single word nor the whole sentence."""
        return frozenset(
            (i, j) for i, j, _ in self.spans if j - i > 1 and (i, j) != (0, self.length)
        )

    def labeled(self) -> frozenset[tuple[int, int, str]]:
        """The non-trivial spans with their labels (unlabeled spans left out)."""
        return frozenset(
            (i, j, label)
            for i, j, label in self.spans
            if label is not None and j - i > 1 and (i, j) != (0, self.length)
        )


def as_bracketing(item: Any) -> Bracketing:
    """``item`` as a :class:`Bracketing`: itself, or its ``bracketing()``.

    Raises:
        TypeError: ``item`` is neither.
    """
    if isinstance(item, Bracketing):
        return item
    method = getattr(item, "bracketing", None)
    if callable(method):
        result = method()
        if isinstance(result, Bracketing):
            return result
    raise TypeError(
        f"expected a Bracketing or a tree with a bracketing() method, got {type(item).__name__}"
    )


class SpanCounts(NamedTuple):
    """Non-trivial span counts of one sentence."""

    #: Predicted spans that are gold spans.
    matched: int
    #: Distinct predicted spans.
    predicted: int
    #: Distinct gold spans.
    gold: int


def _pair(predicted: Any, gold: Any, where: str = "") -> tuple[Bracketing, Bracketing]:
    p, g = as_bracketing(predicted), as_bracketing(gold)
    if p.length != g.length:
        raise ValueError(
            f"{where}the prediction covers {p.length} words but the gold tree {g.length}; "
            "expected trees over the same sentence"
        )
    return p, g


def span_counts(predicted: Any, gold: Any) -> SpanCounts:
    """Matched, predicted and gold non-trivial spans of one sentence.

    Args:
        predicted: The predicted tree (a :class:`Bracketing` or a tree).
        gold: The gold tree over the same words.
    """
    p, g = _pair(predicted, gold)
    ps, gs = p.unlabeled(), g.unlabeled()
    return SpanCounts(len(ps & gs), len(ps), len(gs))


def _f1(counts: SpanCounts) -> float:
    precision = counts.matched / counts.predicted if counts.predicted else float(not counts.gold)
    recall = counts.matched / counts.gold if counts.gold else 1.0
    total = precision + recall
    return 2 * precision * recall / total if total else 0.0


def sentence_f1(predicted: Any, gold: Any) -> float | None:
    """Unlabeled F1 of one sentence (the module's convention); ``None`` for a sentence of
    fewer than two words, which is not scored.

    Args:
        predicted: The predicted tree (a :class:`Bracketing` or a tree).
        gold: The gold tree over the same words.
    """
    p, g = _pair(predicted, gold)
    if g.length < 2:
        return None
    return _f1(span_counts(p, g))


class ParsingScores(NamedTuple):
    """Unlabeled F1 of predicted trees over a corpus."""

    #: Mean of the per-sentence F1 (``estimate``), with its bootstrap uncertainty.
    sentence_f1: BootstrapInterval
    #: ``2 * matched / (predicted + gold)`` summed over sentences, with its bootstrap.
    corpus_f1: BootstrapInterval
    #: Corpus precision: matched / predicted spans (1.0 when nothing was predicted).
    precision: float
    #: Corpus recall: matched / gold spans (1.0 when there are no gold spans).
    recall: float
    #: Sentences scored (two words or more).
    n_sentences: int
    #: Sentences skipped for having fewer than two words.
    n_skipped: int
    #: Per input sentence, its F1 (NaN where skipped), aligned with the inputs.
    per_sentence: np.ndarray


def _score_arrays(
    predicted: Sequence[Any], gold: Sequence[Any], who: str
) -> tuple[np.ndarray, np.ndarray, list[Bracketing]]:
    """Per-sentence F1 (NaN when skipped) and ``(matched, predicted, gold)`` counts."""
    if isinstance(predicted, Bracketing | str) or isinstance(gold, Bracketing | str):
        raise TypeError(f"{who}: expected sequences of trees, one per sentence")
    if len(predicted) != len(gold):
        raise ValueError(
            f"{who}: {len(predicted)} predicted trees but {len(gold)} gold trees; expected "
            "one prediction per gold tree, in the same order"
        )
    f1 = np.full(len(gold), np.nan)
    counts = np.zeros((len(gold), 3), dtype=np.int64)
    golds = []
    for k, (p_item, g_item) in enumerate(zip(predicted, gold, strict=True)):
        p, g = _pair(p_item, g_item, where=f"{who}: sentence {k}: ")
        golds.append(g)
        if g.length < 2:
            continue
        c = span_counts(p, g)
        counts[k] = c
        f1[k] = _f1(c)
    return f1, counts, golds


def _interval(
    numerators: np.ndarray, denominators: np.ndarray | None, n_boot: int | None, seed: int
) -> BootstrapInterval:
    if n_boot is None:
        den = np.ones_like(numerators) if denominators is None else denominators
        return BootstrapInterval(float(numerators.sum() / den.sum()), math.nan, math.nan, math.nan)
    return bootstrap_ratio(numerators, denominators, n_boot=n_boot, seed=seed, who="parsing")


def parsing_scores(
    predicted: Sequence[Any],
    gold: Sequence[Any],
    *,
    n_boot: int | None = 1000,
    seed: int = 0,
) -> ParsingScores:
    """Sentence- and corpus-level unlabeled F1 (see the module docstring).

    Args:
        predicted: One predicted tree per sentence (:class:`Bracketing` or trees).
        gold: The gold trees, in the same order and over the same words.
        n_boot: Bootstrap resamples of the sentences for the intervals; ``None`` for none
            (the intervals' ``se``, ``low`` and ``high`` are then NaN).
        seed: Seed of the bootstrap.

    Raises:
        ValueError: Different numbers of trees, a pair over different numbers of words, or no
            sentence of two words or more.
    """
    f1, counts, _ = _score_arrays(predicted, gold, "parsing_scores")
    scored = ~np.isnan(f1)
    if not scored.any():
        raise ValueError(
            f"parsing_scores: none of the {len(gold)} sentences has two words or more; "
            "there is nothing to score"
        )
    c = counts[scored]
    matched, n_pred, n_gold = (int(x) for x in c.sum(axis=0))
    sentence = _interval(f1[scored], None, n_boot, seed)
    if n_pred + n_gold:
        corpus = _interval(2.0 * c[:, 0], (c[:, 1] + c[:, 2]).astype(float), n_boot, seed)
    else:  # only two-word sentences: every set empty, a perfect score as in sentence F1
        corpus = BootstrapInterval(1.0, 0.0, 1.0, 1.0)
    return ParsingScores(
        sentence_f1=sentence,
        corpus_f1=corpus,
        precision=matched / n_pred if n_pred else float(not n_gold),
        recall=matched / n_gold if n_gold else 1.0,
        n_sentences=int(scored.sum()),
        n_skipped=int((~scored).sum()),
        per_sentence=f1,
    )


def paired_f1_difference(
    predicted_a: Sequence[Any],
    predicted_b: Sequence[Any],
    gold: Sequence[Any],
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> BootstrapInterval:
    """Sentence-level F1 of system B minus that of system A on the same gold trees, with a
    paired bootstrap (:func:`~seqae.metrics.bootstrap.paired_bootstrap`).

    Args:
        predicted_a: System A's trees, one per gold tree.
        predicted_b: System B's trees, one per gold tree.
        gold: The gold trees.
        n_boot: Bootstrap resamples.
        seed: Seed of the bootstrap.
    """
    f1_a, _, _ = _score_arrays(predicted_a, gold, "paired_f1_difference")
    f1_b, _, _ = _score_arrays(predicted_b, gold, "paired_f1_difference")
    scored = ~np.isnan(f1_a)
    if not scored.any():
        raise ValueError("paired_f1_difference: no sentence of two words or more to score")
    return paired_bootstrap(
        f1_a[scored], f1_b[scored], n_boot=n_boot, seed=seed, who="paired_f1_difference"
    )


# --------------------------------------------------------------------------------------------
# Breakdowns


class LengthBucket(NamedTuple):
    """Scores of the sentences whose length lies in ``[low, high]``."""

    low: int
    #: Upper end, included; ``None``: no upper end.
    high: int | None
    n_sentences: int
    #: Mean per-sentence F1 of the bucket.
    sentence_f1: float
    #: Corpus F1 of the bucket.
    corpus_f1: float


def f1_by_length(
    predicted: Sequence[Any], gold: Sequence[Any], *, edges: Sequence[int] = (10, 20, 30, 40)
) -> list[LengthBucket]:
    """F1 per sentence-length bucket: ``2..edges[0]``, ``edges[0]+1..edges[1]``, ...,
    ``edges[-1]+1..``; buckets without a sentence are left out.

    Args:
        predicted: One predicted tree per sentence.
        gold: The gold trees.
        edges: Increasing upper ends (included) of the buckets, each >= 2.
    """
    if any(e < 2 for e in edges) or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise ValueError(f"f1_by_length: edges must increase from 2 or more, got {list(edges)}")
    f1, counts, golds = _score_arrays(predicted, gold, "f1_by_length")
    lengths = np.array([g.length for g in golds])
    bounds: list[tuple[int, int | None]] = []
    low = 2
    for edge in edges:
        bounds.append((low, edge))
        low = edge + 1
    bounds.append((low, None))
    buckets = []
    for low, high in bounds:
        top = high if high is not None else np.inf
        inside = ~np.isnan(f1) & (lengths >= low) & (lengths <= top)
        if not inside.any():
            continue
        matched, n_pred, n_gold = counts[inside].sum(axis=0)
        total = n_pred + n_gold
        buckets.append(
            LengthBucket(
                low,
                high,
                int(inside.sum()),
                float(f1[inside].mean()),
                float(2 * matched / total) if total else 1.0,
            )
        )
    return buckets


class LabelRecall(NamedTuple):
    """How many gold constituents of one label the predicted trees contain."""

    recall: float
    matched: int
    total: int


def label_recall(predicted: Sequence[Any], gold: Sequence[Any]) -> dict[str, LabelRecall]:
    """Recall of the gold constituents by their label (Kim et al. 2019, table 3).

    A gold ``(start, end, label)`` is recalled when the predicted tree has the span
    ``(start, end)``; trivial spans and sentences of one word are left out, as in the F1,
    and a span that carries two labels (a unary chain ``(S (VP ...))``) counts for both.

    Args:
        predicted: One predicted tree per sentence.
        gold: The labelled gold trees.

    Returns:
        Label -> :class:`LabelRecall`, most frequent labels first (ties alphabetically).
    """
    f1, _, golds = _score_arrays(predicted, gold, "label_recall")
    matched: dict[str, int] = {}
    total: dict[str, int] = {}
    for k, (p_item, g) in enumerate(zip(predicted, golds, strict=True)):
        if np.isnan(f1[k]):
            continue
        spans = as_bracketing(p_item).unlabeled()
        for i, j, label in g.labeled():
            total[label] = total.get(label, 0) + 1
            matched[label] = matched.get(label, 0) + ((i, j) in spans)
    order = sorted(total, key=lambda label: (-total[label], label))
    return {lab: LabelRecall(matched[lab] / total[lab], matched[lab], total[lab]) for lab in order}


# --------------------------------------------------------------------------------------------
# Baselines


def right_branching(length: int) -> Bracketing:
    """The right-branching binary tree ``(w0 (w1 (w2 ...)))`` over ``length`` words."""
    return Bracketing(length, tuple((i, length, None) for i in range(max(length - 1, 0))))


def left_branching(length: int) -> Bracketing:
    """The left-branching binary tree ``(((w0 w1) w2) ...)`` over ``length`` words."""
    return Bracketing(length, tuple((0, j, None) for j in range(2, length + 1)))


@functools.cache
def _n_binary_trees(n_words: int) -> int:
    """Binary trees over ``n_words`` words: the Catalan number C(n_words - 1)."""
    if n_words <= 1:
        return 1
    return sum(_n_binary_trees(k) * _n_binary_trees(n_words - k) for k in range(1, n_words))


def random_binary(length: int, rng: random.Random | int = 0) -> Bracketing:
    """A binary tree over ``length`` words drawn uniformly among all binary trees.

    Each split point of a span of ``m`` words is chosen with probability proportional to the
    number of trees it leaves on both sides, so every one of the Catalan(``length`` - 1) trees
    is equally likely.

    Args:
        length: Number of words.
        rng: A :class:`random.Random`, or a seed for one.
    """
    rng = random.Random(rng) if not isinstance(rng, random.Random) else rng
    spans: list[LabeledSpan] = []
    stack = [(0, length)] if length >= 2 else []
    while stack:
        start, end = stack.pop()
        spans.append((start, end, None))
        m = end - start
        r = rng.randrange(_n_binary_trees(m))
        k = 1
        while r >= (share := _n_binary_trees(k) * _n_binary_trees(m - k)):
            r -= share
            k += 1
        for a, b in ((start, start + k), (start + k, end)):
            if b - a >= 2:
                stack.append((a, b))
    return Bracketing(length, tuple(sorted(spans)))


def baseline_bracketings(
    gold: Sequence[Any], kind: Baseline | str, *, seed: int = 0
) -> list[Bracketing]:
    """A baseline tree for each gold tree's sentence.

    Args:
        gold: The gold trees (only their lengths are used).
        kind: ``"right"`` (right-branching), ``"left"`` (left-branching) or ``"random"``
            (uniform over binary trees, :func:`random_binary`).
        seed: Seed of the random trees (one generator for the whole corpus).
    """
    lengths = [as_bracketing(g).length for g in gold]
    if kind == "right":
        return [right_branching(n) for n in lengths]
    if kind == "left":
        return [left_branching(n) for n in lengths]
    if kind == "random":
        rng = random.Random(seed)
        return [random_binary(n, rng) for n in lengths]
    raise ValueError(f"baseline_bracketings: unknown kind {kind!r}; expected one of {BASELINES}")


# --------------------------------------------------------------------------------------------
# Tables


def _items(results: Mapping[str, Any] | Sequence[tuple[str, Any]], who: str) -> list[Any]:
    items = list(results.items()) if isinstance(results, Mapping) else list(results)
    if not items:
        raise ValueError(f"{who}: no systems to show")
    return items


def _cell(iv: BootstrapInterval, scale: float, digits: int) -> str:
    values = [scale * v for v in iv]
    if math.isnan(iv.se):
        return format_estimate(values[0], digits=digits)
    return format_estimate(*values, digits=digits)


def parsing_table(
    results: Mapping[str, ParsingScores] | Sequence[tuple[str, ParsingScores]],
    *,
    percent: bool = True,
    digits: int = 1,
) -> str:
    """A Markdown table "system | sentence F1 | corpus F1 | sentences".

    Each F1 cell is ``estimate ± s.e. [low, high]``
    (:func:`~seqae.metrics.tables.format_estimate`), or the estimate alone without a bootstrap.

    Args:
        results: System name -> :func:`parsing_scores`, in the order of the rows.
        percent: Write F1 as percentages (x 100), as papers do.
        digits: Decimals of the F1 cells.
    """
    scale = 100.0 if percent else 1.0
    rows = []
    for name, scores in _items(results, "parsing_table"):
        if not isinstance(scores, ParsingScores):
            raise TypeError(
                f"parsing_table: the result for {name!r} is a {type(scores).__name__}; "
                "expected parsing_scores' ParsingScores"
            )
        rows.append(
            [
                str(name),
                _cell(scores.sentence_f1, scale, digits),
                _cell(scores.corpus_f1, scale, digits),
                scores.n_sentences,
            ]
        )
    return markdown_table(["system", "sentence F1", "corpus F1", "sentences"], rows)


def length_table(
    results: Mapping[str, Sequence[LengthBucket]] | Sequence[tuple[str, Sequence[LengthBucket]]],
    *,
    percent: bool = True,
    digits: int = 1,
) -> str:
    """A Markdown table of sentence F1 by length bucket (:func:`f1_by_length`): one row per
    system, one column per bucket, headed ``low-high (n)``."""
    scale = 100.0 if percent else 1.0
    items = _items(results, "length_table")
    buckets: dict[tuple[int, int | None], int] = {}
    for _, rows in items:
        for b in rows:
            buckets.setdefault((b.low, b.high), b.n_sentences)
    keys = sorted(buckets)
    header = [
        f"{low}-{high if high is not None else ''} ({buckets[(low, high)]})" for low, high in keys
    ]
    table = []
    for name, rows in items:
        by_key = {(b.low, b.high): b for b in rows}
        cells = [
            round(scale * by_key[k].sentence_f1, digits) if k in by_key else None for k in keys
        ]
        table.append([str(name), *cells])
    return markdown_table(["system", *header], table, digits=digits)


def label_recall_table(
    results: Mapping[str, Mapping[str, LabelRecall]]
    | Sequence[tuple[str, Mapping[str, LabelRecall]]],
    *,
    labels: Sequence[str] | None = None,
    percent: bool = True,
    digits: int = 1,
) -> str:
    """A Markdown table of recall by gold label (:func:`label_recall`): one row per system,
    one column per label, headed ``label (gold count)``.

    Args:
        results: System name -> :func:`label_recall`.
        labels: Columns to show, in order (default: every label, most frequent first).
        percent: Write recall as percentages.
        digits: Decimals.
    """
    scale = 100.0 if percent else 1.0
    items = _items(results, "label_recall_table")
    totals: dict[str, int] = {}
    for _, recalls in items:
        for label, r in recalls.items():
            totals.setdefault(label, r.total)
    if labels is None:
        labels = sorted(totals, key=lambda label: (-totals[label], label))
    header = [f"{label} ({totals.get(label, 0)})" for label in labels]
    rows = [
        [
            str(name),
            *(
                round(scale * recalls[label].recall, digits) if label in recalls else None
                for label in labels
            ),
        ]
        for name, recalls in items
    ]
    return markdown_table(["system", *header], rows, digits=digits)
