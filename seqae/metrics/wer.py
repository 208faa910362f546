"""Word error rate: edit distance between a reference text and a hypothesis.

Text-level and independent of where the hypothesis came from (a speech recogniser, a
summariser, a decoder reading codes back):

- :func:`edit_operations`: substitutions, deletions and insertions between two token
  sequences (any hashable tokens: words, characters, ids);
- :func:`normalize_text`, :func:`word_errors`, :func:`word_error_rate`: the same on the words
  of two strings, after lowercasing and removing punctuation;
- :func:`corpus_wer`: total edits over total reference words, over a list of pairs;
- :func:`corpus_wer_bootstrap` and :func:`paired_wer_difference`: the corpus WER with its
  bootstrap interval, and the paired difference of two systems (:mod:`seqae.metrics.bootstrap`).

    >>> word_error_rate("the cat sat", "the cat sat down")          # 1 insertion / 3 words
    0.3333333333333333
    >>> edit_operations("kitten", "sitting")                         # characters as tokens
    WordErrors(substitutions=2, deletions=0, insertions=1, n_ref_words=6)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Hashable, Sequence
from typing import NamedTuple

import numpy as np

from seqae.metrics.bootstrap import bootstrap_ratio, paired_bootstrap

__all__ = [
    "WordErrors",
    "edit_operations",
    "normalize_text",
    "word_errors",
    "word_error_rate",
    "corpus_wer",
    "WERInterval",
    "corpus_wer_bootstrap",
    "paired_wer_difference",
]


class WordErrors(NamedTuple):
    """Edit operations of the best alignment of a hypothesis to a reference."""

    substitutions: int
    deletions: int
    insertions: int
    #: Tokens (words) in the reference.
    n_ref_words: int

    @property
    def errors(self) -> int:
        """Total edits (substitutions + deletions + insertions)."""
        return self.substitutions + self.deletions + self.insertions


def edit_operations(reference: Sequence[Hashable], hypothesis: Sequence[Hashable]) -> WordErrors:
    """Count substitutions, deletions and insertions between two token sequences.

    Levenshtein distance with unit costs; among the alignments with the fewest edits, the
    backtrace prefers substitutions, then deletions, then insertions. Tokens are compared with
    ``==``: words, characters (pass two strings) or token ids.

    Args:
        reference: The true tokens.
        hypothesis: The produced tokens.

    Returns:
        :class:`WordErrors` ``(substitutions, deletions, insertions, n_ref_words)``, where
        ``n_ref_words`` is ``len(reference)``.
    """
    ref, hyp = list(reference), list(hypothesis)
    n, m = len(ref), len(hyp)
    # dist[i][j]: edits turning ref[:i] into hyp[:j].
    dist = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        dist[i][0] = i
    for j in range(m + 1):
        dist[0][j] = j
    for i in range(1, n + 1):
        row, prev = dist[i], dist[i - 1]
        r = ref[i - 1]
        for j in range(1, m + 1):
            row[j] = min(prev[j - 1] + (r != hyp[j - 1]), prev[j] + 1, row[j - 1] + 1)
    subs = dels = ins = 0
    i, j = n, m
    while i > 0 or j > 0:
        if i > 0 and j > 0 and dist[i][j] == dist[i - 1][j - 1] + (ref[i - 1] != hyp[j - 1]):
            subs += ref[i - 1] != hyp[j - 1]
            i, j = i - 1, j - 1
        elif i > 0 and dist[i][j] == dist[i - 1][j] + 1:
            dels += 1
            i -= 1
        else:
            ins += 1
            j -= 1
    return WordErrors(subs, dels, ins, n)


_APOSTROPHES = re.compile(r"['\u2019\u2018`]")
_NON_WORD = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Normalise a sentence for WER: lowercase, no punctuation, single spaces.

    Apostrophes are removed inside words (``"Don't"`` -> ``"dont"``, so the reference and
    pocketsphinx's ``"don't"`` agree); every other punctuation mark (hyphens included) becomes a
    space; accents are kept (NFKC normalisation only); runs of white space collapse to one.

    Args:
        text: Any string.

    Returns:
        The normalised string (possibly empty).
    """
    if not isinstance(text, str):
        raise TypeError(f"normalize_text: expected a str, got {type(text).__name__}")
    text = unicodedata.normalize("NFKC", text).lower()
    text = _APOSTROPHES.sub("", text)
    text = _NON_WORD.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


def _words(text: str, normalize: bool) -> list[str]:
    return (normalize_text(text) if normalize else text).split()


def word_errors(reference: str, hypothesis: str, *, normalize: bool = True) -> WordErrors:
    """Count substitutions, deletions and insertions between the words of two strings.

    :func:`edit_operations` on the words (white-space separated) of both strings.

    Args:
        reference: The true text.
        hypothesis: The recognised text.
        normalize: Apply :func:`normalize_text` to both first (default); otherwise split on
            white space only.

    Returns:
        :class:`WordErrors` ``(substitutions, deletions, insertions, n_ref_words)``.
    """
    if not isinstance(reference, str) or not isinstance(hypothesis, str):
        raise TypeError(
            "word_errors: reference and hypothesis must be str, got "
            f"{type(reference).__name__} and {type(hypothesis).__name__}"
        )
    return edit_operations(_words(reference, normalize), _words(hypothesis, normalize))


def word_error_rate(reference: str, hypothesis: str, *, normalize: bool = True) -> float:
    """Word error rate of one hypothesis: ``(S + D + I) / N`` (can exceed 1).

    Args:
        reference: The true text; must contain at least one word after normalisation.
        hypothesis: The recognised text (may be empty: WER 1).
        normalize: Apply :func:`normalize_text` first (default).

    Raises:
        ValueError: The reference has no words (WER is undefined).
    """
    e = word_errors(reference, hypothesis, normalize=normalize)
    if e.n_ref_words == 0:
        raise ValueError(
            f"word_error_rate: the reference {reference!r} has no words after normalisation; "
            "WER is undefined"
        )
    return e.errors / e.n_ref_words


def _edit_counts(
    references: Sequence[str], hypotheses: Sequence[str], *, normalize: bool, who: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-pair edit counts and reference word counts, after checking the two lists match."""
    if isinstance(references, str) or isinstance(hypotheses, str):
        raise TypeError(f"{who}: pass sequences of strings, not a single string")
    if len(references) != len(hypotheses):
        raise ValueError(f"{who}: {len(references)} references but {len(hypotheses)} hypotheses")
    if len(references) == 0:
        raise ValueError(f"{who}: no sentence pairs")
    counts = [
        word_errors(r, h, normalize=normalize) for r, h in zip(references, hypotheses, strict=True)
    ]
    words = np.array([c.n_ref_words for c in counts], dtype=np.float64)
    if words.sum() == 0:
        raise ValueError(f"{who}: the references contain no words; WER is undefined")
    return np.array([c.errors for c in counts], dtype=np.float64), words


def corpus_wer(
    references: Sequence[str], hypotheses: Sequence[str], *, normalize: bool = True
) -> float:
    """Corpus-level WER: total edits over all pairs divided by total reference words.

    This weights long sentences more than the mean of per-sentence WERs does, and it is the
    usual way to report ASR error over a test set.

    Args:
        references: True texts.
        hypotheses: Recognised texts, one per reference.
        normalize: Apply :func:`normalize_text` first (default).

    Raises:
        ValueError: Different lengths, no pairs, or no reference words at all.
    """
    errors, words = _edit_counts(references, hypotheses, normalize=normalize, who="corpus_wer")
    return float(errors.sum() / words.sum())


class WERInterval(NamedTuple):
    """A corpus-level WER (or a difference of two) with its bootstrap uncertainty."""

    wer: float
    #: Standard deviation of the statistic over bootstrap resamples of the sentence pairs.
    se: float
    #: Percentile interval at the requested level.
    low: float
    high: float


def corpus_wer_bootstrap(
    references: Sequence[str],
    hypotheses: Sequence[str],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    normalize: bool = True,
) -> WERInterval:
    """:func:`corpus_wer` with a bootstrap standard error and percentile interval.

    The sentence pairs are resampled with replacement ``n_boot`` times (seeded, so the result is
    reproducible; :func:`~seqae.metrics.bootstrap.bootstrap_ratio` of edits over reference
    words). A WER on 100-odd sentences is uncertain by a few hundredths; read a difference
    between two systems with :func:`paired_wer_difference`, not from two intervals.

    Args:
        references: True texts.
        hypotheses: Recognised texts, one per reference.
        n_boot: Number of resamples, >= 1.
        level: Coverage of the percentile interval, in ``(0, 1)``.
        seed: Seed of the resampling.
        normalize: Apply :func:`normalize_text` first (default).
    """
    who = "corpus_wer_bootstrap"
    errors, words = _edit_counts(references, hypotheses, normalize=normalize, who=who)
    iv = bootstrap_ratio(errors, words, n_boot=n_boot, level=level, seed=seed, who=who)
    return WERInterval(*iv)


def paired_wer_difference(
    references: Sequence[str],
    hypotheses_a: Sequence[str],
    hypotheses_b: Sequence[str],
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    normalize: bool = True,
) -> WERInterval:
    """WER(B) - WER(A) on the same sentences, with a paired bootstrap (Bisani & Ney, 2004).

    Negative means B makes fewer errors. Because both systems are resampled on the same
    sentences (:func:`~seqae.metrics.bootstrap.paired_bootstrap`), the interval is much narrower
    than the two WERs' own intervals suggest when the systems err on the same sentences, which
    they usually do.

    Args:
        references: True texts.
        hypotheses_a: System A's texts, one per reference.
        hypotheses_b: System B's texts, one per reference.
        n_boot: Number of resamples, >= 1.
        level: Coverage of the percentile interval, in ``(0, 1)``.
        seed: Seed of the resampling.
        normalize: Apply :func:`normalize_text` first (default).
    """
    who = "paired_wer_difference"
    if len(hypotheses_a) != len(hypotheses_b):
        raise ValueError(
            f"{who}: {len(hypotheses_a)} hypotheses from A but {len(hypotheses_b)} from B; "
            "a paired comparison needs one of each per reference"
        )
    errors_a, words = _edit_counts(references, hypotheses_a, normalize=normalize, who=who)
    errors_b, _ = _edit_counts(references, hypotheses_b, normalize=normalize, who=who)
    iv = paired_bootstrap(errors_a, errors_b, words, n_boot=n_boot, level=level, seed=seed, who=who)
    return WERInterval(*iv)
