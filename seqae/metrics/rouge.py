"""ROUGE for summaries, with bootstrap intervals, paired comparisons and the Lead-N baseline.

Scores are those of Google's ``rouge-score`` package (a re-implementation of ROUGE-1.5.5, the
scores the summarization literature reports): ROUGE-1 and ROUGE-2 (unigram and bigram
overlap) and ROUGE-L (longest common subsequence), each as precision, recall and F1, with the
Porter stemmer on (``"running"`` and ``"runs"`` match). Its tokenizer lowercases and keeps only
``[a-z0-9]`` runs, so the scores are meant for English text.

- :func:`rouge_scores`: the three scores of one summary against its reference.
- :func:`rouge_per_item`: one measure per summary, as arrays (for your own statistics).
- :func:`corpus_rouge`: the corpus means with bootstrap intervals (:mod:`seqae.metrics.bootstrap`)
  and the summaries' mean length in words.
- :func:`paired_rouge_difference`: system B minus system A on the same references, with a
  paired bootstrap, which is how to read a difference between two systems.
- :func:`lead_n` and :func:`lead_baseline`: the first words of each article, the baseline every
  summarizer has to beat, at the same mean length as the system it is compared to (ROUGE F1
  depends on length).
- :func:`rouge_table`: the Markdown table "system | R-1 | R-2 | R-L | mean words".

    >>> rouge_scores("the cat sat on the mat", "the cat lay on the mat")["rouge2"].f1   # 3 of 5 bigrams
    0.6
    >>> system = corpus_rouge(references, summaries)
    >>> lead = corpus_rouge(references, lead_baseline(articles, system.mean_words))
    >>> print(rouge_table({"Lead": lead, "ours": system}))

A word, for lengths, is a white-space separated piece of text (:func:`count_words`).
``rouge-score`` comes with seqae's ``text`` extra and is imported on first use.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from seqae.extras import MissingExtraError
from seqae.metrics.bootstrap import BootstrapInterval, bootstrap_ratio, paired_bootstrap
from seqae.metrics.tables import format_estimate, format_number, markdown_table

__all__ = [
    "ROUGE_TYPES",
    "MEASURES",
    "RougeScore",
    "CorpusRouge",
    "RougeDifference",
    "rouge_scores",
    "rouge_per_item",
    "corpus_rouge",
    "paired_rouge_difference",
    "count_words",
    "lead_n",
    "lead_baseline",
    "rouge_table",
]

#: The ROUGE variants, as ``rouge-score`` names them.
ROUGE_TYPES: tuple[str, ...] = ("rouge1", "rouge2", "rougeL")
#: What each variant can report.
MEASURES: tuple[str, ...] = ("precision", "recall", "f1")


class RougeScore(NamedTuple):
    """One ROUGE variant of one summary against its reference."""

    #: Share of the summary's n-grams (ROUGE-L: words) found in the reference.
    precision: float
    #: Share of the reference's n-grams found in the summary.
    recall: float
    #: Harmonic mean of the two (0 when both are 0).
    f1: float


class CorpusRouge(NamedTuple):
    """Corpus means of ROUGE over summaries, each with its bootstrap uncertainty."""

    rouge1: BootstrapInterval
    rouge2: BootstrapInterval
    rouge_l: BootstrapInterval
    #: Mean length of the summaries in words (:func:`count_words`).
    mean_words: float
    #: Number of summaries.
    n_items: int


class RougeDifference(NamedTuple):
    """ROUGE of system B minus system A on the same references (paired bootstrap)."""

    rouge1: BootstrapInterval
    rouge2: BootstrapInterval
    rouge_l: BootstrapInterval


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    try:
        from rouge_score import rouge_scorer
    except ImportError:
        raise MissingExtraError(
            "ROUGE needs seqae's 'text' extra (rouge_score not installed): "
            "pip install 'seqae[text]'",
            extra="text",
            missing=("rouge_score",),
        ) from None
    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def _text(value: Any, *, what: str, who: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{who}: {what} must be a str, got {type(value).__name__}")
    return value


def rouge_scores(reference: str, hypothesis: str) -> dict[str, RougeScore]:
    """ROUGE-1, ROUGE-2 and ROUGE-L of one summary.

    Args:
        reference: The reference summary.
        hypothesis: The produced summary.

    Returns:
        ``{"rouge1": RougeScore, "rouge2": ..., "rougeL": ...}``; all zeros when either text
        has no words.
    """
    ref = _text(reference, what="reference", who="rouge_scores")
    hyp = _text(hypothesis, what="hypothesis", who="rouge_scores")
    # rouge-score takes the reference (its "target") first
    scores = _scorer().score(ref, hyp)
    return {
        name: RougeScore(float(s.precision), float(s.recall), float(s.fmeasure))
        for name, s in scores.items()
    }


def _check_pairs(
    references: Sequence[str], hypotheses: Sequence[str], *, who: str, what: str = "hypotheses"
) -> None:
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError(f"{who}: pass sequences of strings, not a single string")
    if len(references) != len(hypotheses):
        raise ValueError(f"{who}: {len(references)} references but {len(hypotheses)} {what}")
    if len(references) == 0:
        raise ValueError(f"{who}: no summaries to score")


def _check_measure(measure: str, who: str) -> None:
    if measure not in MEASURES:
        raise ValueError(f"{who}: measure must be one of {', '.join(MEASURES)}, got {measure!r}")


def rouge_per_item(
    references: Sequence[str], hypotheses: Sequence[str], *, measure: str = "f1"
) -> dict[str, np.ndarray]:
    """One ROUGE measure of each summary.

    Args:
        references: Reference summaries.
        hypotheses: Produced summaries, one per reference, in the same order.
        measure: ``"precision"``, ``"recall"`` or ``"f1"``.

    Returns:
        ``{"rouge1": (n,) array, "rouge2": ..., "rougeL": ...}``.

    Raises:
        ValueError: Different lengths, no summaries, or an unknown measure.
    """
    who = "rouge_per_item"
    _check_measure(measure, who)
    _check_pairs(references, hypotheses, who=who)
    field = MEASURES.index(measure)
    out = {name: np.empty(len(references)) for name in ROUGE_TYPES}
    for i, (ref, hyp) in enumerate(zip(references, hypotheses, strict=True)):
        for name, score in rouge_scores(ref, hyp).items():
            out[name][i] = score[field]
    return out


def count_words(text: str) -> int:
    """Words in ``text``: its white-space separated pieces (the unit of lengths here)."""
    return len(_text(text, what="text", who="count_words").split())


def corpus_rouge(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    measure: str = "f1",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> CorpusRouge:
    """Mean ROUGE-1/2/L over summaries, each with a bootstrap standard error and interval.

    The summaries are resampled with replacement ``n_boot`` times (the same resamples for the
    three variants; seeded, so the same call gives the same intervals). To compare two systems
    use :func:`paired_rouge_difference`, not the overlap of two intervals.

    Args:
        references: Reference summaries.
        hypotheses: Produced summaries, one per reference, in the same order.
        measure: ``"precision"``, ``"recall"`` or ``"f1"`` (the one usually reported).
        n_boot: Number of resamples, >= 1.
        level: Coverage of the percentile intervals, in ``(0, 1)``.
        seed: Seed of the resampling.

    Returns:
        :class:`CorpusRouge` ``(rouge1, rouge2, rouge_l, mean_words, n_items)``.
    """
    who = "corpus_rouge"
    scores = rouge_per_item(references, hypotheses, measure=measure)
    ivs = [
        bootstrap_ratio(scores[name], n_boot=n_boot, level=level, seed=seed, who=who)
        for name in ROUGE_TYPES
    ]
    mean_words = float(np.mean([count_words(h) for h in hypotheses]))
    return CorpusRouge(*ivs, mean_words=mean_words, n_items=len(hypotheses))


def paired_rouge_difference(
    references: Sequence[str],
    hypotheses_a: Sequence[str],
    hypotheses_b: Sequence[str],
    *,
    measure: str = "f1",
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> RougeDifference:
    """Mean ROUGE of system B minus system A on the same references, with a paired bootstrap.

    Both systems are resampled on the same references (Koehn 2004), so what the references
    share (how easy each one is to summarize) cancels and the interval of the difference is
    much narrower than the two systems' own intervals suggest. Positive means B scores higher.

    Args:
        references: Reference summaries.
        hypotheses_a: System A's summaries, one per reference.
        hypotheses_b: System B's summaries, one per reference.
        measure: ``"precision"``, ``"recall"`` or ``"f1"``.
        n_boot: Number of resamples, >= 1.
        level: Coverage of the percentile intervals, in ``(0, 1)``.
        seed: Seed of the resampling.

    Returns:
        :class:`RougeDifference` ``(rouge1, rouge2, rouge_l)`` of B - A.
    """
    who = "paired_rouge_difference"
    _check_pairs(references, hypotheses_a, who=who, what="summaries from A")
    _check_pairs(references, hypotheses_b, who=who, what="summaries from B")
    a = rouge_per_item(references, hypotheses_a, measure=measure)
    b = rouge_per_item(references, hypotheses_b, measure=measure)
    return RougeDifference(
        *(
            paired_bootstrap(a[name], b[name], n_boot=n_boot, level=level, seed=seed, who=who)
            for name in ROUGE_TYPES
        )
    )


def lead_n(article: str, n_words: int) -> str:
    """The first ``n_words`` words of ``article`` (all of it when shorter), single-spaced.

    Args:
        article: The text.
        n_words: Number of words to keep, >= 0.
    """
    text = _text(article, what="article", who="lead_n")
    if isinstance(n_words, bool) or not isinstance(n_words, int) or n_words < 0:
        raise ValueError(f"lead_n: n_words must be an int >= 0, got {n_words!r}")
    return " ".join(text.split()[:n_words])


def lead_baseline(articles: Sequence[str], mean_words: float) -> list[str]:
    """Lead-N summaries of ``articles`` whose mean length is ``mean_words``.

    ROUGE F1 grows or shrinks with a summary's length, so a baseline is compared at the length
    of the system it is compared to. Each article gets ``floor(mean_words)`` or one more words,
    the longer ones spread evenly over the list, so that the lengths add up to
    ``round(mean_words * len(articles))``. An article shorter than its share is taken whole,
    and then the mean falls short of ``mean_words`` (:func:`count_words` tells).

    Args:
        articles: The articles.
        mean_words: The wanted mean length in words (>= 0; a system's
            :attr:`CorpusRouge.mean_words`).

    Returns:
        One summary per article.
    """
    if isinstance(articles, str):
        raise TypeError("lead_baseline: pass a sequence of articles, not a single string")
    if not math.isfinite(mean_words) or mean_words < 0:
        raise ValueError(
            f"lead_baseline: mean_words must be a finite number >= 0, got {mean_words}"
        )
    n = len(articles)
    if n == 0:
        return []
    total = round(mean_words * n)
    base, extra = divmod(total, n)
    # item i gets one more word when floor((i + 1) * extra / n) steps up: `extra` items, spread
    return [
        lead_n(article, base + ((i + 1) * extra // n - i * extra // n))
        for i, article in enumerate(articles)
    ]


def rouge_table(
    results: Mapping[str, CorpusRouge] | Sequence[tuple[str, CorpusRouge]],
    *,
    digits: int = 3,
    percent: bool = False,
) -> str:
    """A Markdown table of systems: "system | R-1 | R-2 | R-L | mean words".

    Each ROUGE cell is ``mean ± s.e. [low, high]`` (:func:`~seqae.metrics.tables.format_estimate`).

    Args:
        results: System name -> :func:`corpus_rouge` result, in the order of the rows.
        digits: Decimals of the ROUGE cells.
        percent: Write ROUGE as percentages (x 100), as papers do.

    Returns:
        The table, without a trailing newline.
    """
    items = list(results.items()) if isinstance(results, Mapping) else list(results)
    if not items:
        raise ValueError("rouge_table: no systems to show")
    scale = 100.0 if percent else 1.0
    rows = []
    for name, result in items:
        if not isinstance(result, CorpusRouge):
            raise TypeError(
                f"rouge_table: the result for {name!r} is a {type(result).__name__}; "
                "expected corpus_rouge's CorpusRouge"
            )
        cells = [
            format_estimate(*(scale * v for v in iv), digits=digits)
            for iv in (result.rouge1, result.rouge2, result.rouge_l)
        ]
        rows.append([str(name), *cells, format_number(result.mean_words, digits=1)])
    return markdown_table(["system", "R-1", "R-2", "R-L", "mean words"], rows)
