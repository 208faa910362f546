"""ROUGE (seqae.metrics.rouge) on inputs worked out by hand, its corpus means with bootstrap
intervals, the paired comparison, the Lead-N baseline and the result table."""

from __future__ import annotations

import sys
from fractions import Fraction

import numpy as np
import pytest

import seqae.metrics
from seqae.extras import MissingExtraError, missing_modules
from seqae.metrics import rouge
from seqae.metrics.bootstrap import bootstrap_ratio, paired_bootstrap
from seqae.metrics.rouge import (
    CorpusRouge,
    corpus_rouge,
    count_words,
    lead_baseline,
    lead_n,
    paired_rouge_difference,
    rouge_per_item,
    rouge_scores,
    rouge_table,
)
from seqae.metrics.tables import format_estimate

needs_rouge = pytest.mark.skipif(
    "rouge_score" in missing_modules("text"), reason="rouge-score is not installed"
)

REFERENCES = [
    "the cat sat on the mat",
    "a storm hit the coast last night",
    "the library reads and writes image files",
    "tools to manage the system clock",
]
SYSTEM_A = [
    "the cat lay on a mat",
    "a storm hit",
    "reads image files",
    "clock tools",
]
SYSTEM_B = [
    "the cat sat on the mat",
    "a storm hit the coast",
    "the library reads image files",
    "tools to manage the clock",
]


def _f1(p: Fraction, r: Fraction) -> float:
    return float(2 * p * r / (p + r)) if p + r else 0.0


# --------------------------------------------------------------------------------------------
# one summary
# --------------------------------------------------------------------------------------------


@needs_rouge
def test_identical_texts_score_one_and_disjoint_texts_zero() -> None:
    same = rouge_scores("the quick brown fox", "the quick brown fox")
    other = rouge_scores("the quick brown fox", "lazy dogs sleep here")
    assert set(same) == {"rouge1", "rouge2", "rougeL"}
    for name in same:
        assert same[name] == (1.0, 1.0, 1.0), name
        assert other[name] == (0.0, 0.0, 0.0), name


@needs_rouge
def test_a_small_example_worked_out_by_hand() -> None:
    # reference: 8 words, 7 bigrams; summary: 6 words, 5 bigrams
    reference = "the quick brown fox jumps over the dog"
    summary = "brown fox over the quick cat"
    scores = rouge_scores(reference, summary)
    # unigrams in common: brown fox over the quick (cat is not in the reference)
    p1, r1 = Fraction(5, 6), Fraction(5, 8)
    # bigrams in common: "brown fox", "over the", "the quick"
    p2, r2 = Fraction(3, 5), Fraction(3, 7)
    # longest common subsequence: brown fox over the
    pl, rl = Fraction(4, 6), Fraction(4, 8)
    for name, (p, r) in {"rouge1": (p1, r1), "rouge2": (p2, r2), "rougeL": (pl, rl)}.items():
        got = scores[name]
        # the reference is rouge-score's first argument: precision and recall are not swapped
        assert got.precision == pytest.approx(float(p)), name
        assert got.recall == pytest.approx(float(r)), name
        assert got.f1 == pytest.approx(_f1(p, r)), name
    assert scores["rouge1"].f1 == pytest.approx(5 / 7)
    assert scores["rouge2"].f1 == pytest.approx(1 / 2)
    assert scores["rougeL"].f1 == pytest.approx(4 / 7)


@needs_rouge
def test_the_stemmer_is_on() -> None:
    # the Porter stemmer maps both to "run"; without it they would not match
    assert rouge_scores("running", "runs")["rouge1"].f1 == 1.0
    assert rouge_scores("the dogs were running", "the dog runs")["rouge1"].recall == pytest.approx(
        3 / 4
    )
    # an irregular form is not a stem of the other
    assert rouge_scores("running", "ran")["rouge1"].f1 == 0.0


@needs_rouge
def test_case_and_punctuation_do_not_count() -> None:
    assert rouge_scores("The cat, sat.", "the cat sat")["rougeL"].f1 == 1.0


@needs_rouge
def test_empty_summary_scores_zero() -> None:
    assert rouge_scores("the cat", "")["rouge1"] == (0.0, 0.0, 0.0)


def test_non_strings_are_refused() -> None:
    with pytest.raises(TypeError, match="hypothesis must be a str"):
        rouge_scores("the cat", None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not a single string"):
        rouge_per_item("the cat", "the cat")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# per item and corpus
# --------------------------------------------------------------------------------------------


@needs_rouge
@pytest.mark.parametrize("measure", ["precision", "recall", "f1"])
def test_per_item_gives_the_chosen_measure_of_each_pair(measure: str) -> None:
    per_item = rouge_per_item(REFERENCES, SYSTEM_A, measure=measure)
    field = {"precision": 0, "recall": 1, "f1": 2}[measure]
    for name in ("rouge1", "rouge2", "rougeL"):
        expected = [
            rouge_scores(r, h)[name][field] for r, h in zip(REFERENCES, SYSTEM_A, strict=True)
        ]
        np.testing.assert_array_equal(per_item[name], expected)


def test_bad_lists_and_measures_are_refused() -> None:
    with pytest.raises(ValueError, match="4 references but 3 hypotheses"):
        rouge_per_item(REFERENCES, SYSTEM_A[:3])
    with pytest.raises(ValueError, match="no summaries"):
        corpus_rouge([], [])
    with pytest.raises(ValueError, match="measure must be one of precision, recall, f1"):
        rouge_per_item(REFERENCES, SYSTEM_A, measure="fmeasure")
    with pytest.raises(ValueError, match="4 references but 3 summaries from B"):
        paired_rouge_difference(REFERENCES, SYSTEM_A, SYSTEM_B[:3])


@needs_rouge
def test_corpus_means_with_bootstrap_intervals() -> None:
    result = corpus_rouge(REFERENCES, SYSTEM_A, n_boot=500, seed=3)
    per_item = rouge_per_item(REFERENCES, SYSTEM_A)
    for iv, name in zip((result.rouge1, result.rouge2, result.rouge_l), per_item, strict=True):
        assert iv.estimate == pytest.approx(per_item[name].mean())
        # the same resampling as the shared bootstrap
        assert iv == bootstrap_ratio(per_item[name], n_boot=500, seed=3)
        assert iv.low <= iv.estimate <= iv.high
        assert iv.se > 0
    assert result.mean_words == pytest.approx(np.mean([len(s.split()) for s in SYSTEM_A]))
    assert result.n_items == len(SYSTEM_A)
    assert corpus_rouge(REFERENCES, SYSTEM_A, n_boot=500, seed=3) == result  # seeded


@needs_rouge
def test_corpus_recall_differs_from_precision_for_short_summaries() -> None:
    precision = corpus_rouge(REFERENCES, SYSTEM_A, measure="precision", n_boot=50)
    recall = corpus_rouge(REFERENCES, SYSTEM_A, measure="recall", n_boot=50)
    # system A's summaries are shorter than the references: higher precision than recall
    assert precision.rouge1.estimate > recall.rouge1.estimate


@needs_rouge
def test_perfect_summaries_score_one_without_uncertainty() -> None:
    result = corpus_rouge(REFERENCES, REFERENCES, n_boot=100)
    for iv in result[:3]:
        assert tuple(iv) == pytest.approx((1.0, 0.0, 1.0, 1.0))


@needs_rouge
def test_paired_difference_is_b_minus_a_on_the_same_resamples() -> None:
    diff = paired_rouge_difference(REFERENCES, SYSTEM_A, SYSTEM_B, n_boot=500, seed=1)
    a, b = rouge_per_item(REFERENCES, SYSTEM_A), rouge_per_item(REFERENCES, SYSTEM_B)
    for iv, name in zip(diff, ("rouge1", "rouge2", "rougeL"), strict=True):
        assert iv.estimate == pytest.approx(b[name].mean() - a[name].mean())
        assert iv.estimate > 0  # B copies more of each reference
        assert iv == paired_bootstrap(a[name], b[name], n_boot=500, seed=1)
    same = paired_rouge_difference(REFERENCES, SYSTEM_A, SYSTEM_A, n_boot=100)
    for iv in same:
        assert tuple(iv) == (0.0, 0.0, 0.0, 0.0)


# --------------------------------------------------------------------------------------------
# Lead-N
# --------------------------------------------------------------------------------------------


def test_lead_n_keeps_the_first_words() -> None:
    article = "  Debian  is a free\toperating system.\nIt has many packages."
    assert lead_n(article, 3) == "Debian is a"
    assert lead_n(article, 0) == ""
    assert lead_n(article, 100) == "Debian is a free operating system. It has many packages."
    assert count_words(lead_n(article, 5)) == 5
    with pytest.raises(ValueError, match="n_words must be an int >= 0"):
        lead_n(article, -1)
    with pytest.raises(ValueError, match="n_words must be an int >= 0"):
        lead_n(article, 2.5)  # type: ignore[arg-type]


def test_lead_baseline_matches_the_mean_length() -> None:
    articles = [" ".join(f"w{i}_{j}" for j in range(30)) for i in range(7)]
    target = 12.43
    leads = lead_baseline(articles, target)
    lengths = [count_words(s) for s in leads]
    assert sum(lengths) == round(target * len(articles))
    assert set(lengths) == {12, 13}
    # the three longer ones are spread out: never two side by side
    longer = [i for i, n in enumerate(lengths) if n == 13]
    assert len(longer) == 3 and all(b - a > 1 for a, b in zip(longer, longer[1:], strict=False))
    for article, lead in zip(articles, leads, strict=True):
        assert article.startswith(lead)
    assert [count_words(s) for s in lead_baseline(articles, 5)] == [5] * 7
    assert lead_baseline([], 4.0) == []


def test_lead_baseline_takes_short_articles_whole() -> None:
    leads = lead_baseline(["one two", "a b c d e f g h"], 4)
    assert leads == ["one two", "a b c d"]
    with pytest.raises(ValueError, match="mean_words must be a finite number >= 0"):
        lead_baseline(["a"], float("nan"))


# --------------------------------------------------------------------------------------------
# the table, the exports, the missing extra
# --------------------------------------------------------------------------------------------


@needs_rouge
def test_table_has_one_row_per_system_with_intervals() -> None:
    a = corpus_rouge(REFERENCES, SYSTEM_A, n_boot=100)
    b = corpus_rouge(REFERENCES, SYSTEM_B, n_boot=100)
    lines = rouge_table({"Lead": a, "ours": b}).splitlines()
    assert lines[0] == "| system | R-1 | R-2 | R-L | mean words |"
    assert len(lines) == 4
    cells = [c.strip() for c in lines[3].strip("|").split("|")]
    assert cells[0] == "ours"
    assert cells[1:4] == [format_estimate(*iv) for iv in (b.rouge1, b.rouge2, b.rouge_l)]
    assert cells[4] == f"{b.mean_words:.1f}"
    percent = rouge_table([("ours", b)], percent=True, digits=1).splitlines()[2]
    assert format_estimate(*(100 * v for v in b.rouge1), digits=1) in percent
    with pytest.raises(TypeError, match="expected corpus_rouge's CorpusRouge"):
        rouge_table({"x": b.rouge1})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="no systems"):
        rouge_table({})


@needs_rouge
def test_exported_from_the_package_without_hiding_the_module() -> None:
    for name in rouge.__all__:
        if name not in ("ROUGE_TYPES", "MEASURES"):
            assert getattr(seqae.metrics, name) is getattr(rouge, name), name
    import seqae.metrics.rouge as module

    assert module is rouge
    assert isinstance(corpus_rouge(["a b"], ["a b"], n_boot=10), CorpusRouge)


def test_missing_rouge_score_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    rouge._scorer.cache_clear()
    monkeypatch.setitem(sys.modules, "rouge_score", None)
    try:
        with pytest.raises(MissingExtraError, match=r"seqae's 'text' extra") as err:
            rouge_scores("a", "a")
        assert err.value.extra == "text"
        assert "\n" not in str(err.value)
    finally:
        rouge._scorer.cache_clear()
