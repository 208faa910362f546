"""The text-level word error rate (seqae.metrics.wer): edit operations, normalisation, corpus
WER, and its bootstrap interval and paired difference."""

from __future__ import annotations

import functools

import numpy as np
import pytest

import seqae.metrics
import seqae.metrics.speech
from seqae.metrics import wer
from seqae.metrics.wer import (
    WordErrors,
    corpus_wer,
    corpus_wer_bootstrap,
    edit_operations,
    normalize_text,
    paired_wer_difference,
    word_error_rate,
    word_errors,
)

# what seqae.metrics.speech exported before the WER moved to seqae.metrics.wer
SPEECH_WER_NAMES = (
    "WordErrors",
    "normalize_text",
    "word_errors",
    "word_error_rate",
    "corpus_wer",
    "WERInterval",
    "corpus_wer_bootstrap",
    "paired_wer_difference",
)


def test_names_stay_importable_from_speech_and_the_package() -> None:
    for name in SPEECH_WER_NAMES:
        assert getattr(seqae.metrics.speech, name) is getattr(wer, name), name
        assert name in seqae.metrics.speech.__all__
    for name in wer.__all__:
        assert getattr(seqae.metrics, name) is getattr(wer, name), name
        assert name in seqae.metrics.__all__


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ("kitten", "sitting", WordErrors(2, 0, 1, 6)),  # characters as tokens
        ([3, 1, 4, 1, 5], [3, 1, 5], WordErrors(0, 2, 0, 5)),  # token ids
        ((), ("a",), WordErrors(0, 0, 1, 0)),
        ([], [], WordErrors(0, 0, 0, 0)),
    ],
)
def test_edit_operations_on_any_tokens(ref, hyp, expected: WordErrors) -> None:
    assert edit_operations(ref, hyp) == expected


def _levenshtein(a: list[str], b: list[str]) -> int:
    """Textbook recursion with memoisation, as an independent reference."""

    @functools.cache
    def d(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(d(i - 1, j) + 1, d(i, j - 1) + 1, d(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return d(len(a), len(b))


def test_edit_operations_total_is_the_levenshtein_distance() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        a = list(rng.choice(list("abc"), size=rng.integers(0, 8)))
        b = list(rng.choice(list("abc"), size=rng.integers(0, 8)))
        e = edit_operations(a, b)
        assert e.errors == _levenshtein(a, b)
        # the operations turn len(a) tokens into len(b): b = a - deletions + insertions
        assert len(b) == len(a) - e.deletions + e.insertions
        assert e.n_ref_words == len(a)


def test_normalize_text() -> None:
    assert normalize_text("  Don't   STOP-now, it's 5 o'clock! ") == "dont stop now its 5 oclock"
    assert normalize_text("Hello,\tworld...\n") == "hello world"
    assert normalize_text("?!") == ""
    with pytest.raises(TypeError, match="expected a str"):
        normalize_text(3)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("ref", "hyp", "expected"),
    [
        ("a b c", "a b c", WordErrors(0, 0, 0, 3)),
        ("a b c", "a x c", WordErrors(1, 0, 0, 3)),
        ("a b c", "a c", WordErrors(0, 1, 0, 3)),
        ("a b c", "a b c d", WordErrors(0, 0, 1, 3)),
        ("a b c", "x a b c", WordErrors(0, 0, 1, 3)),
        ("a b c", "", WordErrors(0, 3, 0, 3)),
        ("a b c d e", "z a x c e", WordErrors(1, 1, 1, 5)),
        ("The cat sat on the mat.", "the cat sat on mat", WordErrors(0, 1, 0, 6)),
    ],
)
def test_word_errors_counts(ref: str, hyp: str, expected: WordErrors) -> None:
    got = word_errors(ref, hyp)
    assert got == expected
    assert word_error_rate(ref, hyp) == pytest.approx(expected.errors / expected.n_ref_words)


def test_word_errors_tie_prefers_substitutions() -> None:
    # 4 edits either way (S, D, I, I or S, S, S, I): the backtrace takes substitutions first.
    assert word_errors("a b c d e", "a x c e f g") == WordErrors(3, 0, 1, 5)


def test_wer_edge_cases() -> None:
    assert word_error_rate("Hello, World!", "hello world") == 0.0
    assert word_error_rate("Hello, World!", "hello world", normalize=False) == 1.0
    assert word_error_rate("one", "two three four") == 3.0  # WER can exceed 1
    with pytest.raises(ValueError, match="no words"):
        word_error_rate("...", "something")
    with pytest.raises(TypeError, match="must be str"):
        word_errors(["a"], "a")  # type: ignore[arg-type]


def test_corpus_wer_weights_by_reference_words() -> None:
    refs = ["a b c d e f g h i j", "x"]
    hyps = ["a b c d e f g h i j", "y"]
    # 1 error over 11 words, not the mean of per-sentence WERs (0.5).
    assert corpus_wer(refs, hyps) == pytest.approx(1 / 11)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer(refs, hyps[:1])
    with pytest.raises(ValueError, match="no sentence pairs"):
        corpus_wer([], [])
    with pytest.raises(TypeError, match="not a single string"):
        corpus_wer("abc", "abc")  # type: ignore[arg-type]


def _simulated_transcripts(n: int, error_rate: float, seed: int) -> tuple[list[str], list[str]]:
    """``n`` ten-word sentences, each word replaced with probability ``error_rate``."""
    rng = np.random.default_rng(seed)
    refs, hyps = [], []
    for i in range(n):
        words = [f"w{i}_{k}" for k in range(10)]
        refs.append(" ".join(words))
        hyps.append(" ".join("zz" if rng.random() < error_rate else w for w in words))
    return refs, hyps


def test_corpus_wer_bootstrap_matches_the_binomial_standard_error() -> None:
    refs, hyps = _simulated_transcripts(400, 0.25, seed=0)
    iv = corpus_wer_bootstrap(refs, hyps, n_boot=4000)
    assert iv.wer == pytest.approx(corpus_wer(refs, hyps))
    # equal-length sentences of independent word errors: se = sqrt(p (1 - p) / words)
    assert iv.se == pytest.approx(np.sqrt(iv.wer * (1 - iv.wer) / 4000), rel=0.1)
    assert iv.low < iv.wer < iv.high
    # a 95% percentile interval of a near-normal statistic spans about 2 x 1.96 se
    assert iv.high - iv.low == pytest.approx(2 * 1.96 * iv.se, rel=0.1)
    # four times the sentences halve the standard error
    refs4, hyps4 = _simulated_transcripts(1600, 0.25, seed=1)
    assert corpus_wer_bootstrap(refs4, hyps4, n_boot=4000).se == pytest.approx(iv.se / 2, rel=0.15)
    # seeded: the same call gives the same interval, another seed a slightly different one
    assert corpus_wer_bootstrap(refs, hyps, n_boot=4000) == iv
    assert corpus_wer_bootstrap(refs, hyps, n_boot=4000, seed=1) != iv


def test_corpus_wer_bootstrap_edge_cases() -> None:
    refs = ["a b c", "d e"]
    assert corpus_wer_bootstrap(refs, refs) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="2 references but 1 hypotheses"):
        corpus_wer_bootstrap(refs, refs[:1])
    with pytest.raises(ValueError, match="n_boot must be >= 1"):
        corpus_wer_bootstrap(refs, refs, n_boot=0)
    with pytest.raises(ValueError, match=r"level must lie in \(0, 1\)"):
        corpus_wer_bootstrap(refs, refs, level=1.0)
    # resamples drawing only the empty reference have no WER and are left out
    iv = corpus_wer_bootstrap(["", "a b"], ["x", "a c"], n_boot=500)
    assert np.isfinite([iv.wer, iv.se, iv.low, iv.high]).all()
    assert iv.wer == pytest.approx(corpus_wer(["", "a b"], ["x", "a c"]))


def test_paired_wer_difference() -> None:
    refs, hyp_a = _simulated_transcripts(300, 0.3, seed=2)
    # B fixes one error in every third sentence that has one and is otherwise the same as A
    hyp_b = list(hyp_a)
    fixed = 0
    for i in range(0, len(refs), 3):
        ref_words, words = refs[i].split(), hyp_a[i].split()
        if "zz" in words:
            k = words.index("zz")
            words[k] = ref_words[k]
            hyp_b[i] = " ".join(words)
            fixed += 1
    d = paired_wer_difference(refs, hyp_a, hyp_b, n_boot=2000)
    assert d.wer == pytest.approx(corpus_wer(refs, hyp_b) - corpus_wer(refs, hyp_a))
    assert d.wer == pytest.approx(-fixed / 3000)
    assert d.high < 0  # the improvement is resolved
    # pairing cancels what the sentences share: far tighter than the two WERs' own errors
    se_a = corpus_wer_bootstrap(refs, hyp_a, n_boot=2000).se
    se_b = corpus_wer_bootstrap(refs, hyp_b, n_boot=2000).se
    assert d.se < 0.5 * np.hypot(se_a, se_b)
    # against itself: exactly zero
    assert paired_wer_difference(refs, hyp_a, hyp_a) == (0.0, 0.0, 0.0, 0.0)
    # swapping the systems negates the difference
    assert paired_wer_difference(refs, hyp_b, hyp_a).wer == pytest.approx(-d.wer)
    with pytest.raises(ValueError, match="300 hypotheses from A but 299 from B"):
        paired_wer_difference(refs, hyp_a, hyp_b[:-1])
