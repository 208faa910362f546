"""Uncertainty of an evaluation score: bootstrap intervals and standard errors.

A score computed on a test set of ``n`` items (sentences, utterances, images) would come out
differently on another test set of the same size; these functions say by how much.

- :func:`bootstrap_ratio`: a corpus-level statistic ``sum(numerators) / sum(denominators)``
  (a corpus WER: edits over reference words; a plain mean without denominators) with its
  bootstrap standard error and percentile interval (Efron & Tibshirani 1993, ch. 6 and 13).
- :func:`paired_bootstrap`: the difference of two systems scored on the same items, resampled
  together (Koehn 2004; Bisani & Ney 2004), which cancels what the items share.
- :func:`standard_error`, :func:`mean_and_se`, :func:`paired_difference`: the usual
  ``s / sqrt(n)`` for means of per-item scores, and for per-item differences.

    >>> iv = bootstrap_ratio(errors_per_sentence, words_per_sentence, seed=0)
    >>> iv.estimate, iv.se, iv.low, iv.high
    >>> paired_difference(similarity_a, similarity_b)   # MeanEstimate(mean=..., se=...)

Every bootstrap is seeded (``seed``), so the same call gives the same interval.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "BootstrapInterval",
    "MeanEstimate",
    "bootstrap_ratio",
    "paired_bootstrap",
    "standard_error",
    "mean_and_se",
    "paired_difference",
]

# the (resamples x items) count matrix is built in blocks of about this many entries (16 MB)
_BLOCK_ENTRIES = 2_000_000


class BootstrapInterval(NamedTuple):
    """A statistic with its bootstrap uncertainty."""

    #: The statistic on the items as given.
    estimate: float
    #: Standard deviation of the statistic over the bootstrap resamples.
    se: float
    #: Percentile interval at the requested level.
    low: float
    high: float


class MeanEstimate(NamedTuple):
    """A mean (or a mean difference) with its standard error."""

    mean: float
    se: float


def _vector(values: ArrayLike, *, what: str, who: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"{who}: {what} must be a 1-d sequence of numbers, got shape {x.shape}")
    if len(x) == 0:
        raise ValueError(f"{who}: {what} is empty; there is nothing to estimate")
    if not np.isfinite(x).all():
        raise ValueError(f"{who}: {what} contains NaN or infinite values")
    return x


def bootstrap_ratio(
    numerators: ArrayLike,
    denominators: ArrayLike | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    who: str = "bootstrap_ratio",
) -> BootstrapInterval:
    """``sum(numerators) / sum(denominators)`` with a bootstrap standard error and interval.

    The items are resampled with replacement ``n_boot`` times and the statistic recomputed on
    each resample. With the per-sentence edit counts and reference word counts this is a
    corpus-level WER; without ``denominators`` (each item weighs 1) it is the mean. Resamples
    whose denominators sum to zero have no statistic and are left out.

    Args:
        numerators: ``(n,)`` per-item numerators.
        denominators: ``(n,)`` non-negative per-item weights; ``None`` for all ones.
        n_boot: Number of resamples, >= 1.
        level: Coverage of the percentile interval, in ``(0, 1)``.
        seed: Seed of the resampling.
        who: Name given in error messages (a caller's own function name).

    Returns:
        :class:`BootstrapInterval` ``(estimate, se, low, high)``.

    Raises:
        ValueError: Empty, non-finite or mismatched inputs, negative or all-zero denominators,
            ``n_boot < 1`` or ``level`` outside ``(0, 1)``.
    """
    if n_boot < 1:
        raise ValueError(f"{who}: n_boot must be >= 1, got {n_boot}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"{who}: level must lie in (0, 1), got {level}")
    num = _vector(numerators, what="numerators", who=who)
    if denominators is None:
        den = np.ones_like(num)
    else:
        den = _vector(denominators, what="denominators", who=who)
        if len(den) != len(num):
            raise ValueError(f"{who}: {len(num)} numerators but {len(den)} denominators")
        if (den < 0).any():
            raise ValueError(f"{who}: denominators must be >= 0")
    if den.sum() <= 0:
        raise ValueError(f"{who}: the denominators sum to zero; the ratio is undefined")
    n = len(num)
    rng = np.random.default_rng(seed)
    parts = []
    block = max(1, _BLOCK_ENTRIES // n)
    for start in range(0, n_boot, block):
        # row b counts how often each item is drawn in resample b
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=min(block, n_boot - start))
        w = counts @ den
        keep = w > 0
        parts.append((counts[keep] @ num) / w[keep])
    stats = np.concatenate(parts)
    if len(stats) == 0:
        raise ValueError(
            f"{who}: every one of the {n_boot} resamples drew only zero-denominator items; "
            "use more resamples"
        )
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(stats, [tail, 1.0 - tail])
    return BootstrapInterval(
        float(num.sum() / den.sum()), float(stats.std()), float(low), float(high)
    )


def paired_bootstrap(
    numerators_a: ArrayLike,
    numerators_b: ArrayLike,
    denominators: ArrayLike | None = None,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
    who: str = "paired_bootstrap",
) -> BootstrapInterval:
    """Statistic of B minus statistic of A on the same items, with a paired bootstrap.

    Both systems are resampled on the same items (Koehn 2004, "Statistical significance tests
    for machine translation evaluation"; Bisani & Ney 2004 for WER), so what the items share
    (length, difficulty) cancels: the interval is much narrower than two separate intervals
    suggest when the systems err on the same items, which they usually do. The statistic is
    ``sum(b - a) / sum(denominators)``, i.e. ``ratio(B) - ratio(A)`` of :func:`bootstrap_ratio`.
    Negative means B scores lower.

    Args:
        numerators_a: ``(n,)`` per-item numerators of system A.
        numerators_b: ``(n,)`` per-item numerators of system B, on the same items in order.
        denominators: ``(n,)`` shared per-item weights (``None``: the difference of means).
        n_boot: Number of resamples, >= 1.
        level: Coverage of the percentile interval, in ``(0, 1)``.
        seed: Seed of the resampling.
        who: Name given in error messages.

    Returns:
        :class:`BootstrapInterval` of the difference B - A.
    """
    a = _vector(numerators_a, what="numerators_a", who=who)
    b = _vector(numerators_b, what="numerators_b", who=who)
    if len(a) != len(b):
        raise ValueError(
            f"{who}: {len(a)} items from A but {len(b)} from B; a paired comparison needs the "
            "same items for both"
        )
    return bootstrap_ratio(b - a, denominators, n_boot=n_boot, level=level, seed=seed, who=who)


def standard_error(values: ArrayLike) -> float:
    """Standard error of the mean of ``values``: ``std(ddof=1) / sqrt(n)`` (0 for one value).

    Args:
        values: ``(n,)`` per-item scores, n >= 1.
    """
    x = _vector(values, what="values", who="standard_error")
    return float(x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


def mean_and_se(values: ArrayLike) -> MeanEstimate:
    """The mean of ``values`` and its :func:`standard_error`.

    Args:
        values: ``(n,)`` per-item scores, n >= 1.
    """
    x = _vector(values, what="values", who="mean_and_se")
    return MeanEstimate(float(x.mean()), standard_error(x))


def paired_difference(values_a: ArrayLike, values_b: ArrayLike) -> MeanEstimate:
    """Mean of the per-item differences ``b - a`` and its standard error.

    For two systems scored on the same items this is far tighter than the two means' own
    standard errors when the scores are correlated across items.

    Args:
        values_a: ``(n,)`` per-item scores of system A.
        values_b: ``(n,)`` per-item scores of system B, on the same items in order.
    """
    a = _vector(values_a, what="values_a", who="paired_difference")
    b = _vector(values_b, what="values_b", who="paired_difference")
    if len(a) != len(b):
        raise ValueError(f"paired_difference: {len(a)} values from A but {len(b)} from B")
    return mean_and_se(b - a)
