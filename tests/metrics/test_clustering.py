"""Clustering scores against answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from seqae.metrics.clustering import (
    adjusted_rand_index,
    cluster_purities,
    clustering_accuracy,
    clustering_scores,
    contingency_table,
    match_clusters,
    matched_confusion_matrix,
    normalized_mutual_info,
    purity,
)


@pytest.mark.parametrize("mapping", ["hungarian", "many_to_one"])
def test_permuted_labels_score_one(mapping: str) -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, size=500)
    perm = rng.permutation(10) + 100  # labels need not be 0..K-1
    assert clustering_accuracy(y, perm[y], mapping=mapping) == 1.0
    assert normalized_mutual_info(y, perm[y]) == pytest.approx(1.0)
    assert adjusted_rand_index(y, perm[y]) == pytest.approx(1.0)


def test_random_assignment_scores_about_one_over_k() -> None:
    rng = np.random.default_rng(1)
    k, n = 10, 20_000
    y = rng.integers(0, k, size=n)
    pred = rng.integers(0, k, size=n)
    acc = clustering_accuracy(y, pred)
    # chance is 1/K; the optimal matching of a random table adds a little, never much
    assert 1 / k <= acc < 1 / k + 0.02
    assert adjusted_rand_index(y, pred) == pytest.approx(0.0, abs=0.01)
    assert normalized_mutual_info(y, pred) < 0.01


def test_hand_example_hungarian_and_many_to_one() -> None:
    # classes 0,1,2; clusters a=7, b=8, c=9
    # cluster 7: 0 0 0 1   cluster 8: 1 1 2   cluster 9: 0 0
    y_true = [0, 0, 0, 1, 1, 1, 2, 0, 0]
    y_pred = [7, 7, 7, 7, 8, 8, 8, 9, 9]
    counts, clusters, classes = contingency_table(y_true, y_pred)
    assert clusters.tolist() == [7, 8, 9] and classes.tolist() == [0, 1, 2]
    assert counts.tolist() == [[3, 1, 0], [0, 2, 1], [2, 0, 0]]
    # one-to-one: 7->0 (3), 8->1 (2), 9->2 (0) = 5 correct; any other assignment gives fewer
    hungarian = match_clusters(y_true, y_pred)
    assert hungarian.mapping == {7: 0, 8: 1, 9: 2}
    assert hungarian.correct == 5 and hungarian.total == 9
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(5 / 9)
    # many-to-one: 7->0 (3), 8->1 (2), 9->0 (2) = 7 correct = purity
    many = match_clusters(y_true, y_pred, mapping="many_to_one")
    assert many.mapping == {7: 0, 8: 1, 9: 0}
    assert clustering_accuracy(y_true, y_pred, mapping="many_to_one") == pytest.approx(7 / 9)
    assert purity(y_true, y_pred) == pytest.approx(7 / 9)
    per = cluster_purities(y_true, y_pred)
    assert per[7] == {"size": 4, "majority": 0, "purity": 0.75}
    assert per[8]["majority"] == 1 and per[8]["purity"] == pytest.approx(2 / 3)
    assert per[9] == {"size": 2, "majority": 0, "purity": 1.0}


def test_more_clusters_than_classes() -> None:
    # two classes split into four pure clusters: Hungarian can use only two of them
    y_true = [0] * 6 + [1] * 4
    y_pred = [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(5 / 10)  # 3 + 2
    assert clustering_accuracy(y_true, y_pred, mapping="many_to_one") == 1.0
    matrix, classes = matched_confusion_matrix(y_true, y_pred)
    assert classes.tolist() == [0, 1]
    # rows: true class; columns: mapped class 0, 1, then "unmatched"
    assert matrix.tolist() == [[3, 0, 3], [0, 2, 2]]
    assert np.trace(matrix[:, :2]) == match_clusters(y_true, y_pred).correct


def test_fewer_clusters_than_classes() -> None:
    y_true = [0, 0, 1, 1, 2, 2]
    y_pred = [5, 5, 5, 5, 6, 6]
    assert clustering_accuracy(y_true, y_pred) == pytest.approx(4 / 6)
    matrix, _ = matched_confusion_matrix(y_true, y_pred, classes=[0, 1, 2])
    assert matrix.sum() == 6 and matrix[:, -1].sum() == 0


def test_many_to_one_never_below_hungarian() -> None:
    rng = np.random.default_rng(2)
    for k in (3, 10, 16):
        y = rng.integers(0, 10, size=300)
        pred = np.where(rng.random(300) < 0.6, y % k, rng.integers(0, k, size=300))
        assert clustering_accuracy(y, pred, mapping="many_to_one") >= clustering_accuracy(y, pred)


def test_accepts_tensors_and_lists_and_all_scores() -> None:
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    pred = torch.tensor([1, 1, 0, 0, 2, 0])
    scores = clustering_scores(y, pred)
    assert scores.accuracy == pytest.approx(5 / 6)
    assert scores.many_to_one_accuracy == pytest.approx(5 / 6)
    assert scores.num_clusters == 3
    assert 0 < scores.nmi < 1 and 0 < scores.ari < 1
    assert clustering_accuracy(y.tolist(), pred.numpy()) == scores.accuracy


@pytest.mark.parametrize(
    ("y_true", "y_pred", "error", "match"),
    [
        ([], [], ValueError, "y_true is empty"),
        ([0, 1], [0], ValueError, "same length, got 2 and 1"),
        ([[0, 1]], [[0, 1]], ValueError, "1-D array"),
        ([0.5, 1.0], [0, 1], TypeError, "integer labels"),
        (["a", "b"], [0, 1], TypeError, "integer labels"),
    ],
)
def test_bad_input_is_named(y_true, y_pred, error, match) -> None:
    with pytest.raises(error, match=match):
        clustering_accuracy(y_true, y_pred)


def test_unknown_mapping_and_missing_class_layout() -> None:
    with pytest.raises(ValueError, match="mapping must be one of hungarian, many_to_one"):
        clustering_accuracy([0, 1], [0, 1], mapping="greedy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"does not list the labels \[2\]"):
        matched_confusion_matrix([0, 1, 2], [0, 1, 2], classes=[0, 1])
