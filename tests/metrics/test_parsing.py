"""Unlabeled parsing F1 (seqae.metrics.parsing): Kim et al.'s convention worked by hand, its
edge cases, the baselines, the breakdowns and the tables."""

from __future__ import annotations

import math
import random
from collections import Counter

import numpy as np
import pytest

from seqae.metrics.parsing import (
    Bracketing,
    as_bracketing,
    baseline_bracketings,
    f1_by_length,
    label_recall,
    label_recall_table,
    left_branching,
    length_table,
    paired_f1_difference,
    parsing_scores,
    parsing_table,
    random_binary,
    right_branching,
    sentence_f1,
    span_counts,
)


def B(length: int, *spans: tuple) -> Bracketing:
    return Bracketing.from_spans(length, spans)


# ((a b) (c d)) and (a (b (c d)))
BALANCED = B(4, (0, 4), (0, 2), (2, 4))
RIGHT4 = B(4, (0, 4), (1, 4), (2, 4))


def test_one_sentence_by_hand() -> None:
    # non-trivial spans: gold {(0,2), (2,4)}, predicted {(1,4), (2,4)}: one match of two each
    assert span_counts(RIGHT4, BALANCED) == (1, 2, 2)
    assert sentence_f1(RIGHT4, BALANCED) == pytest.approx(0.5)
    # precision 1/3, recall 1/2 -> F1 = 2 * (1/6) / (5/6) = 0.4
    five_gold = B(5, (0, 5), (0, 2), (2, 5))
    five_pred = B(5, (0, 5), (0, 2), (2, 4), (2, 3), (3, 5))
    assert span_counts(five_pred, five_gold) == (1, 3, 2)
    assert sentence_f1(five_pred, five_gold) == pytest.approx(0.4)


def test_inclusive_spans_convert() -> None:
    # (i, j) with j the last word, single words (k, k): the tree CRF's convention
    inclusive = Bracketing.from_spans(4, [(0, 3), (0, 1), (2, 3), (0, 0), (3, 3)], inclusive=True)
    assert inclusive.unlabeled() == BALANCED.unlabeled()
    assert Bracketing.from_spans(3, [(0, 1, "NP")], inclusive=True).spans == ((0, 2, "NP"),)


def test_trivial_spans_are_discarded() -> None:
    # the whole sentence and single words never count, matched or not
    gold = B(3, (0, 3), (0, 2), (0, 1), (1, 2), (2, 3))
    pred = B(3, (0, 2))
    assert gold.unlabeled() == {(0, 2)}
    assert sentence_f1(pred, gold) == 1.0


def test_sentences_of_one_word_are_skipped_and_two_words_score_one() -> None:
    one = B(1, (0, 1))
    two = B(2, (0, 2))
    assert sentence_f1(one, one) is None
    assert sentence_f1(two, two) == 1.0
    assert sentence_f1(B(2), two) == 1.0  # no span predicted at all: still nothing to miss
    scores = parsing_scores([one, two, RIGHT4], [one, two, BALANCED], n_boot=None)
    assert scores.n_sentences == 2 and scores.n_skipped == 1
    assert math.isnan(scores.per_sentence[0])
    assert scores.per_sentence[1:].tolist() == [1.0, 0.5]
    assert scores.sentence_f1.estimate == pytest.approx(0.75)
    # corpus level: the two-word sentence adds no span, so only RIGHT4 counts
    assert scores.corpus_f1.estimate == pytest.approx(0.5)
    with pytest.raises(ValueError, match="none of the 1 sentences has two words or more"):
        parsing_scores([one], [one])


def test_duplicate_spans_and_unary_chains_count_once() -> None:
    # gold (S (VP (V a) (NP (NP b c))) d) style: a unary chain repeats (1, 3)
    gold = B(4, (0, 4, "S"), (0, 3, "VP"), (1, 3, "NP"), (1, 3, "NP"), (1, 3, "QP"))
    pred = B(4, (0, 4), (0, 3), (0, 3), (1, 3), (1, 3))
    assert span_counts(pred, gold) == (2, 2, 2)
    assert sentence_f1(pred, gold) == 1.0
    assert gold.labeled() == {(0, 3, "VP"), (1, 3, "NP"), (1, 3, "QP")}


def test_flat_trees() -> None:
    flat = B(4, (0, 4))
    assert sentence_f1(flat, BALANCED) == 0.0  # nothing predicted, two gold spans missed
    assert sentence_f1(BALANCED, flat) == 0.0  # two spans predicted, none exists
    assert sentence_f1(flat, flat) == 1.0
    only_flat = parsing_scores([flat], [flat], n_boot=None)
    assert (only_flat.precision, only_flat.recall) == (1.0, 1.0)


def test_corpus_f1_is_micro_and_differs_from_the_sentence_mean() -> None:
    gold = [BALANCED, B(5, (0, 5), (1, 5), (2, 5), (3, 5))]
    pred = [RIGHT4, right_branching(5)]
    scores = parsing_scores(pred, gold, n_boot=None)
    # sentence 1: 1 of 2 / 2; sentence 2: 3 of 3 / 3 -> mean (0.5 + 1) / 2
    assert scores.sentence_f1.estimate == pytest.approx(0.75)
    # corpus: matched 4, predicted 5, gold 5 -> 2 * 4 / 10
    assert scores.corpus_f1.estimate == pytest.approx(0.8)
    assert scores.precision == pytest.approx(0.8) and scores.recall == pytest.approx(0.8)


def test_bootstrap_intervals_hold_the_estimate() -> None:
    rng = random.Random(0)
    gold = [random_binary(n, rng) for n in range(3, 40)]
    pred = baseline_bracketings(gold, "right")
    scores = parsing_scores(pred, gold, n_boot=500, seed=1)
    plain = parsing_scores(pred, gold, n_boot=None)
    assert scores.sentence_f1.estimate == pytest.approx(plain.sentence_f1.estimate)
    assert scores.corpus_f1.estimate == pytest.approx(plain.corpus_f1.estimate)
    for iv in (scores.sentence_f1, scores.corpus_f1):
        assert iv.low < iv.estimate < iv.high and iv.se > 0
    assert math.isnan(plain.sentence_f1.se)
    again = parsing_scores(pred, gold, n_boot=500, seed=1)
    assert (again.sentence_f1, again.corpus_f1) == (scores.sentence_f1, scores.corpus_f1)


def test_mismatched_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="2 predicted trees but 1 gold trees"):
        parsing_scores([RIGHT4, RIGHT4], [BALANCED])
    with pytest.raises(
        ValueError, match="sentence 0: the prediction covers 5 words but the gold tree 4"
    ):
        parsing_scores([right_branching(5)], [BALANCED])
    with pytest.raises(ValueError, match=r"span \(2, 7\) is not within a sentence of 4 words"):
        B(4, (2, 7))
    with pytest.raises(TypeError, match="expected a Bracketing or a tree"):
        as_bracketing([(0, 2)])


# --------------------------------------------------------------------------------------------
# Baselines


@pytest.mark.parametrize("n", [2, 3, 7, 30])
def test_right_branching_scores_100_on_right_branching_gold(n: int) -> None:
    gold = [right_branching(m) for m in range(2, n + 1)]
    scores = parsing_scores(baseline_bracketings(gold, "right"), gold, n_boot=None)
    assert scores.sentence_f1.estimate == 1.0 and scores.corpus_f1.estimate == 1.0


def test_branching_baselines_by_hand() -> None:
    assert right_branching(4).spans == ((0, 4, None), (1, 4, None), (2, 4, None))
    assert left_branching(4).spans == ((0, 2, None), (0, 3, None), (0, 4, None))
    for n in (3, 6):  # no non-trivial span in common
        assert sentence_f1(left_branching(n), right_branching(n)) == 0.0
    assert right_branching(1).spans == () and left_branching(1).spans == ()


def _is_binary(b: Bracketing) -> bool:
    spans = {(i, j) for i, j, _ in b.spans}
    if len(spans) != b.length - 1 or (b.length > 1 and (0, b.length) not in spans):
        return False
    for i, j in spans:  # every span splits into two children: one split point
        inner = [(a, c) for a, c in spans if i <= a < c <= j and (a, c) != (i, j)]
        tops = [
            s for s in inner if not any(t != s and t[0] <= s[0] and s[1] <= t[1] for t in inner)
        ]
        covered = sum(c - a for a, c in tops)
        if len(tops) + (j - i - covered) != 2:
            return False
    return True


def test_random_trees_are_binary_seeded_and_uniform() -> None:
    rng = random.Random(0)
    for n in range(1, 25):
        assert _is_binary(random_binary(n, rng))
    a = baseline_bracketings([B(9)] * 5, "random", seed=3)
    assert a == baseline_bracketings([B(9)] * 5, "random", seed=3)
    assert a != baseline_bracketings([B(9)] * 5, "random", seed=4)
    # 4 words have Catalan(3) = 5 binary trees, each drawn with probability 1/5
    rng = random.Random(1)
    counts = Counter(random_binary(4, rng).spans for _ in range(5000))
    assert len(counts) == 5
    assert all(850 <= c <= 1150 for c in counts.values()), counts  # about 5 s.d. of 28
    with pytest.raises(ValueError, match="unknown kind 'middle'"):
        baseline_bracketings([B(3)], "middle")


# --------------------------------------------------------------------------------------------
# Breakdowns and tables


def test_f1_by_length_buckets() -> None:
    gold = [B(3, (0, 3), (0, 2)), BALANCED, right_branching(12), B(1)]
    pred = [right_branching(3), RIGHT4, right_branching(12), B(1)]
    buckets = f1_by_length(pred, gold, edges=(4, 10))
    assert [(b.low, b.high, b.n_sentences) for b in buckets] == [(2, 4, 2), (11, None, 1)]
    assert buckets[0].sentence_f1 == pytest.approx((0.0 + 0.5) / 2)
    # bucket 2-4: matched 0 + 1, predicted 1 + 2, gold 1 + 2 -> 2 / 6
    assert buckets[0].corpus_f1 == pytest.approx(1 / 3)
    assert buckets[1].sentence_f1 == 1.0
    with pytest.raises(ValueError, match="edges must increase"):
        f1_by_length(pred, gold, edges=(10, 5))


def test_label_recall_by_hand() -> None:
    gold = [
        B(5, (0, 5, "S"), (0, 2, "NP"), (2, 5, "VP"), (3, 5, "NP"), (3, 5, "NP")),
        B(4, (0, 4, "S"), (0, 2, "NP"), (2, 4, "VP"), (3, 4, "NP")),
        B(1, (0, 1, "NP")),
    ]
    pred = [B(5, (0, 5), (1, 5), (2, 5), (3, 5)), RIGHT4, B(1)]
    recall = label_recall(pred, gold)
    # NP: (0,2) no, (3,5) yes, (0,2) no -> 1 of 3; VP: (2,5) yes, (2,4) yes; S is trivial
    assert list(recall) == ["NP", "VP"]
    assert recall["NP"] == (pytest.approx(1 / 3), 1, 3)
    assert recall["VP"] == (1.0, 2, 2)
    table = label_recall_table({"right": recall}).splitlines()
    assert table[0] == "| system | NP (3) | VP (2) |"
    assert table[2] == "| right | 33.3 | 100.0 |"


def test_paired_difference_of_two_systems() -> None:
    gold = [BALANCED, B(5, (0, 5), (0, 2), (2, 5)), B(6, (0, 6), (0, 3), (3, 6))]
    right = baseline_bracketings(gold, "right")
    diff = paired_f1_difference(right, gold, gold, n_boot=200)
    right_scores = parsing_scores(right, gold, n_boot=None)
    assert diff.estimate == pytest.approx(1.0 - right_scores.sentence_f1.estimate)
    assert diff.low <= diff.estimate <= diff.high


def test_tables() -> None:
    gold = [BALANCED, B(5, (0, 5), (0, 2), (2, 5))]
    systems = {
        "right": parsing_scores(baseline_bracketings(gold, "right"), gold, n_boot=None),
        "oracle": parsing_scores(gold, gold, n_boot=None),
    }
    lines = parsing_table(systems).splitlines()
    assert lines[0] == "| system | sentence F1 | corpus F1 | sentences |"
    f1 = 100 * systems["right"].sentence_f1.estimate
    assert lines[2] == f"| right | {f1:.1f} | {100 * systems['right'].corpus_f1.estimate:.1f} | 2 |"
    assert lines[3] == "| oracle | 100.0 | 100.0 | 2 |"
    with_se = parsing_table({"right": parsing_scores(gold, gold, n_boot=50)}, percent=False)
    assert "1.0 ± 0.0 [1.0, 1.0]" in with_se
    buckets = {"right": f1_by_length(baseline_bracketings(gold, "right"), gold, edges=(4,))}
    assert length_table(buckets).splitlines()[0] == "| system | 2-4 (1) | 5- (1) |"
    with pytest.raises(TypeError, match="expected parsing_scores' ParsingScores"):
        parsing_table({"x": 0.5})
    with pytest.raises(ValueError, match="no systems"):
        parsing_table({})


def test_trees_with_a_bracketing_method_stand_for_bracketings() -> None:
    class Tree:
        def bracketing(self) -> Bracketing:
            return BALANCED

    assert sentence_f1(Tree(), BALANCED) == 1.0
    assert np.allclose(parsing_scores([Tree()], [BALANCED], n_boot=None).per_sentence, [1.0])
