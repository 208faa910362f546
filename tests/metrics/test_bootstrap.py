"""Bootstrap intervals and standard errors (seqae.metrics.bootstrap) on data with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from seqae.metrics.bootstrap import (
    BootstrapInterval,
    bootstrap_ratio,
    mean_and_se,
    paired_bootstrap,
    paired_difference,
    standard_error,
)
from seqae.metrics.wer import corpus_wer_bootstrap, word_errors


def test_bootstrap_of_a_mean_matches_the_textbook_standard_error() -> None:
    x = np.random.default_rng(0).normal(loc=2.0, scale=3.0, size=400)
    iv = bootstrap_ratio(x, n_boot=4000)
    assert isinstance(iv, BootstrapInterval)
    assert iv.estimate == pytest.approx(x.mean())
    # the bootstrap se of a mean is the plug-in std / sqrt(n)
    assert iv.se == pytest.approx(x.std() / np.sqrt(len(x)), rel=0.1)
    assert iv.low < iv.estimate < iv.high
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * iv.se, rel=0.1)
    # a narrower level gives a narrower interval; the same seed the same interval
    iv50 = bootstrap_ratio(x, n_boot=4000, level=0.5)
    assert iv.low < iv50.low < iv50.high < iv.high
    assert bootstrap_ratio(x, n_boot=4000) == iv
    assert bootstrap_ratio(x, n_boot=4000, seed=1) != iv


def test_bootstrap_interval_covers_the_true_mean_about_as_often_as_promised() -> None:
    rng = np.random.default_rng(1)
    hits = 0
    reps = 300
    for seed in range(reps):
        x = rng.exponential(scale=1.0, size=100)  # skewed; true mean 1
        iv = bootstrap_ratio(x, n_boot=500, level=0.9, seed=seed)
        hits += iv.low <= 1.0 <= iv.high
    # 90% nominal; percentile intervals of a skewed mean undercover slightly at n = 100
    assert 0.82 <= hits / reps <= 0.96


def test_bootstrap_ratio_weights_items_by_their_denominators() -> None:
    num = np.array([1.0, 0.0, 5.0])
    den = np.array([10.0, 1.0, 5.0])
    iv = bootstrap_ratio(num, den, n_boot=200)
    assert iv.estimate == pytest.approx(6.0 / 16.0)  # not the mean of the ratios (0.37)
    # every resample's ratio lies between the smallest and largest per-item ratio
    assert 0.0 <= iv.low <= iv.high <= 1.0


def test_corpus_wer_bootstrap_is_the_ratio_of_edits_to_reference_words() -> None:
    refs = ["a b c d", "e f", "g h i", "j"]
    hyps = ["a x c", "e f", "g h i k", "z"]
    counts = [word_errors(r, h) for r, h in zip(refs, hyps, strict=True)]
    expected = bootstrap_ratio(
        [c.errors for c in counts], [c.n_ref_words for c in counts], n_boot=300, seed=3
    )
    assert tuple(corpus_wer_bootstrap(refs, hyps, n_boot=300, seed=3)) == tuple(expected)


def test_paired_bootstrap_cancels_what_the_items_share() -> None:
    rng = np.random.default_rng(2)
    difficulty = rng.gamma(2.0, 2.0, size=300)  # shared by both systems, varies a lot
    a = difficulty + rng.normal(scale=0.2, size=300)
    b = difficulty - 0.1 + rng.normal(scale=0.2, size=300)
    d = paired_bootstrap(a, b, n_boot=2000)
    assert d.estimate == pytest.approx(b.mean() - a.mean())
    assert d == bootstrap_ratio(b - a, n_boot=2000)  # the statistic of the differences
    assert d.high < 0  # B is lower, and the pairing resolves it
    unpaired = np.hypot(bootstrap_ratio(a).se, bootstrap_ratio(b).se)
    assert d.se < 0.25 * unpaired
    # swapping the systems negates the difference; a system against itself is exactly zero
    assert paired_bootstrap(b, a, n_boot=2000).estimate == pytest.approx(-d.estimate)
    assert paired_bootstrap(a, a) == (0.0, 0.0, 0.0, 0.0)
    # with shared denominators: ratio(B) - ratio(A)
    w = rng.integers(1, 20, size=300).astype(float)
    dw = paired_bootstrap(a * w, b * w, w, n_boot=500)
    assert dw.estimate == pytest.approx((b * w).sum() / w.sum() - (a * w).sum() / w.sum())


def test_bootstrap_errors_name_the_caller_and_the_problem() -> None:
    with pytest.raises(ValueError, match="bootstrap_ratio: n_boot must be >= 1, got 0"):
        bootstrap_ratio([1.0], n_boot=0)
    with pytest.raises(ValueError, match=r"level must lie in \(0, 1\), got 1.0"):
        bootstrap_ratio([1.0], level=1.0)
    with pytest.raises(ValueError, match="numerators is empty"):
        bootstrap_ratio([])
    with pytest.raises(ValueError, match="NaN or infinite"):
        bootstrap_ratio([1.0, float("nan")])
    with pytest.raises(ValueError, match="1-d"):
        bootstrap_ratio([[1.0, 2.0]])
    with pytest.raises(ValueError, match="2 numerators but 3 denominators"):
        bootstrap_ratio([1.0, 2.0], [1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="denominators must be >= 0"):
        bootstrap_ratio([1.0, 2.0], [1.0, -1.0])
    with pytest.raises(ValueError, match="sum to zero"):
        bootstrap_ratio([1.0, 2.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="my_metric: 2 items from A but 1 from B"):
        paired_bootstrap([1.0, 2.0], [1.0], who="my_metric")


def test_resamples_without_denominator_are_left_out() -> None:
    # item 0 has no weight: the resamples that draw only it (about a quarter) have no ratio;
    # every other resample has ratio 1 / 2 exactly
    assert bootstrap_ratio([0.0, 1.0], [0.0, 2.0], n_boot=400) == (0.5, 0.0, 0.5, 0.5)
    # a single resample that draws only item 0 leaves nothing to estimate from
    seed = next(
        s
        for s in range(100)
        if np.random.default_rng(s).multinomial(2, [0.5, 0.5], size=1)[0][1] == 0
    )
    with pytest.raises(ValueError, match="every one of the 1 resamples drew only zero"):
        bootstrap_ratio([0.0, 1.0], [0.0, 2.0], n_boot=1, seed=seed)


def test_standard_errors_of_means_and_paired_differences() -> None:
    x = np.array([1.0, 2.0, 4.0, 7.0])
    assert standard_error(x) == pytest.approx(np.std(x, ddof=1) / 2.0)
    assert standard_error([5.0]) == 0.0
    assert mean_and_se(x) == pytest.approx((3.5, np.std(x, ddof=1) / 2.0))
    rng = np.random.default_rng(3)
    shared = rng.normal(scale=5.0, size=200)
    a, b = shared + rng.normal(size=200), shared + 0.5 + rng.normal(size=200)
    d = paired_difference(a, b)
    assert d.mean == pytest.approx((b - a).mean())
    assert d.se == pytest.approx(standard_error(b - a))
    assert d.se < 0.3 * np.hypot(standard_error(a), standard_error(b))
    assert d.mean - 3 * d.se > 0  # the 0.5 shift is resolved
    with pytest.raises(ValueError, match="3 values from A but 2 from B"):
        paired_difference([1.0, 2.0, 3.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="standard_error: values is empty"):
        standard_error([])
