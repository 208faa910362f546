"""How well unsupervised cluster assignments agree with class labels.

A clustering names its groups arbitrarily, so a score must first decide which cluster stands for
which class:

- :func:`clustering_accuracy` with ``mapping="hungarian"`` (the default): a one-to-one matching of
  clusters to classes that maximises the number of correctly labelled examples, found with the
  Hungarian algorithm (Kuhn 1955; the unsupervised clustering accuracy of Xie et al. 2016, DEC,
  arXiv 1511.06335, eq. 10, used by VaDE, arXiv 1611.05148, and IIC, arXiv 1807.06653). With more
  clusters than classes, the clusters left without a class count as errors, so overclustering is
  not rewarded; with fewer, the classes left without a cluster are never predicted.
- ``mapping="many_to_one"``: every cluster takes the majority class of its members, so several
  clusters may map to one class. This equals the *purity* of the clustering (Manning, Raghavan &
  Schuetze 2008, "Introduction to Information Retrieval", sec. 16.3) and is the usual score when
  there are more clusters than classes (the leaves of a tree, an overclustering head). It never
  decreases when a cluster is split, so report it together with the number of clusters.

Label-permutation-invariant scores that need no mapping: :func:`normalized_mutual_info`
(Strehl & Ghosh 2002) and :func:`adjusted_rand_index` (Hubert & Arabie 1985), thin wrappers
around scikit-learn that check their inputs the same way.

Inputs are integer label arrays of the same length (numpy arrays, torch tensors or lists); the
labels may be any integers (not necessarily ``0..K-1``). Scores are Python floats.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import numpy as np

__all__ = [
    "ClusterMatching",
    "ClusteringScores",
    "MatchingMode",
    "adjusted_rand_index",
    "cluster_purities",
    "clustering_accuracy",
    "clustering_scores",
    "contingency_table",
    "match_clusters",
    "matched_confusion_matrix",
    "normalized_mutual_info",
    "purity",
]

MatchingMode = Literal["hungarian", "many_to_one"]
_MAPPINGS = ("hungarian", "many_to_one")


def _as_labels(values: Any, name: str) -> np.ndarray:
    """``values`` as a 1-D int64 array, or a clear error."""
    if hasattr(values, "detach"):  # a torch tensor, without importing torch here
        values = values.detach().cpu().numpy()
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of labels, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; expected at least one label")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or not np.array_equal(arr, np.round(arr)):
            raise TypeError(f"{name} must hold integer labels, got non-integer floats")
    elif arr.dtype.kind not in "iub":
        raise TypeError(f"{name} must hold integer labels, got dtype {arr.dtype}")
    return arr.astype(np.int64)


def _pair(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray]:
    t, p = _as_labels(y_true, "y_true"), _as_labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(
            f"y_true and y_pred must have the same length, got {t.shape[0]} and {p.shape[0]}"
        )
    return t, p


def _check_mapping(mapping: str) -> None:
    if mapping not in _MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(_MAPPINGS)}, got {mapping!r}")


def contingency_table(y_true: Any, y_pred: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts of every (cluster, class) pair.

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.

    Returns:
        ``(counts, clusters, classes)``: ``counts[i, j]`` is the number of examples in cluster
        ``clusters[i]`` with class ``classes[j]``; ``clusters`` and ``classes`` are the sorted
        distinct labels that occur.
    """
    t, p = _pair(y_true, y_pred)
    classes, t_idx = np.unique(t, return_inverse=True)
    clusters, p_idx = np.unique(p, return_inverse=True)
    counts = np.zeros((len(clusters), len(classes)), dtype=np.int64)
    np.add.at(counts, (p_idx, t_idx), 1)
    return counts, clusters, classes


class ClusterMatching(NamedTuple):
    """Result of :func:`match_clusters`.

    Attributes:
        mapping: Cluster label -> class label, for every cluster that received a class. With
            ``"hungarian"`` and more clusters than classes, the extra clusters are absent.
        correct: Number of examples whose cluster maps to their own class.
        total: Number of examples.
    """

    mapping: dict[int, int]
    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        """``correct / total``."""
        return self.correct / self.total


def match_clusters(
    y_true: Any, y_pred: Any, *, mapping: MatchingMode = "hungarian"
) -> ClusterMatching:
    """Map clusters to classes so that as many examples as possible are labelled correctly.

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``; any number of distinct clusters.
        mapping: ``"hungarian"``: one-to-one, the optimal assignment of the contingency table
            (Kuhn 1955; ``scipy.optimize.linear_sum_assignment``), the clustering accuracy of
            DEC (Xie et al. 2016, arXiv 1511.06335, eq. 10). A rectangular table is allowed:
            with more clusters than classes only ``#classes`` clusters get a class and the
            rest count as errors. ``"many_to_one"``: each cluster takes its majority class
            (ties: the smallest class label), the purity of Manning et al. 2008, sec. 16.3.
    """
    _check_mapping(mapping)
    counts, clusters, classes = contingency_table(y_true, y_pred)
    total = int(counts.sum())
    if mapping == "many_to_one":
        best = counts.argmax(axis=1)
        pairs = {int(clusters[i]): int(classes[j]) for i, j in enumerate(best)}
        return ClusterMatching(pairs, int(counts.max(axis=1).sum()), total)
    from scipy.optimize import linear_sum_assignment

    rows, cols = linear_sum_assignment(counts, maximize=True)
    pairs = {int(clusters[i]): int(classes[j]) for i, j in zip(rows, cols, strict=True)}
    return ClusterMatching(pairs, int(counts[rows, cols].sum()), total)


def clustering_accuracy(y_true: Any, y_pred: Any, *, mapping: MatchingMode = "hungarian") -> float:
    """Unsupervised clustering accuracy: the fraction of examples labelled correctly after the
    best mapping of clusters to classes (see :func:`match_clusters`).

    ``1.0`` for any relabelling of the true classes; about ``1/K`` for random assignments to
    ``K`` equally frequent classes (Hungarian).

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.
        mapping: ``"hungarian"`` (one-to-one; DEC, arXiv 1511.06335, eq. 10) or
            ``"many_to_one"`` (majority class per cluster, equal to :func:`purity`; for more
            clusters than classes, where it rewards splitting, so report the cluster count).
    """
    return match_clusters(y_true, y_pred, mapping=mapping).accuracy


def purity(y_true: Any, y_pred: Any) -> float:
    """Purity ``(1/N) sum_k max_j |cluster_k & class_j|`` (Manning et al. 2008, sec. 16.3).

    The same number as ``clustering_accuracy(..., mapping="many_to_one")``; ``1.0`` when every
    cluster holds one class (trivially so with one cluster per example).

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels (e.g. the leaf of a tree each example reaches), shape ``(N,)``.
    """
    counts, _, _ = contingency_table(y_true, y_pred)
    return float(counts.max(axis=1).sum() / counts.sum())


def cluster_purities(y_true: Any, y_pred: Any) -> dict[int, dict[str, float | int]]:
    """Per-cluster purity: for each cluster, its size, majority class and the fraction of its
    members in that class (the per-leaf view of :func:`purity`).

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.

    Returns:
        ``{cluster: {"size": n, "majority": class, "purity": fraction}}`` for each cluster that
        occurs.
    """
    counts, clusters, classes = contingency_table(y_true, y_pred)
    out: dict[int, dict[str, float | int]] = {}
    for i, c in enumerate(clusters):
        size = int(counts[i].sum())
        out[int(c)] = {
            "size": size,
            "majority": int(classes[counts[i].argmax()]),
            "purity": float(counts[i].max() / size),
        }
    return out


def matched_confusion_matrix(
    y_true: Any,
    y_pred: Any,
    *,
    mapping: MatchingMode = "hungarian",
    classes: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Confusion matrix of classes against the classes the clusters were mapped to.

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.
        mapping: How clusters are mapped to classes (see :func:`match_clusters`).
        classes: The class labels to lay out, in order; default the sorted labels in ``y_true``.

    Returns:
        ``(matrix, classes)``: ``matrix[i, j]`` counts examples of class ``classes[i]`` whose
        cluster was mapped to ``classes[j]``; a last column counts examples in clusters left
        without a class (Hungarian with more clusters than classes), so the matrix has
        ``len(classes) + 1`` columns. The trace over the square part equals the number of
        correct examples of :func:`match_clusters`.
    """
    t, p = _pair(y_true, y_pred)
    matching = match_clusters(t, p, mapping=mapping)
    labels = np.unique(t) if classes is None else _as_labels(classes, "classes")
    missing = sorted(set(np.unique(t).tolist()) - set(labels.tolist()))
    if missing:
        raise ValueError(f"classes does not list the labels {missing} found in y_true")
    index = {int(c): i for i, c in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels) + 1), dtype=np.int64)
    unmatched = len(labels)
    for true, cluster in zip(t.tolist(), p.tolist(), strict=True):
        mapped = matching.mapping.get(cluster)
        matrix[index[true], index[mapped] if mapped is not None else unmatched] += 1
    return matrix, labels


def normalized_mutual_info(y_true: Any, y_pred: Any) -> float:
    """Normalised mutual information ``I(Y; C) / mean(H(Y), H(C))`` in ``[0, 1]`` (Strehl &
    Ghosh 2002, JMLR 3; arithmetic-mean normalisation, scikit-learn's default).

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.
    """
    from sklearn.metrics import normalized_mutual_info_score

    t, p = _pair(y_true, y_pred)
    return float(normalized_mutual_info_score(t, p))


def adjusted_rand_index(y_true: Any, y_pred: Any) -> float:
    """Adjusted Rand index (Hubert & Arabie 1985, J. Classification 2): pair-counting agreement
    corrected for chance; 1 for identical partitions, about 0 for random ones.

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.
    """
    from sklearn.metrics import adjusted_rand_score

    t, p = _pair(y_true, y_pred)
    return float(adjusted_rand_score(t, p))


class ClusteringScores(NamedTuple):
    """Result of :func:`clustering_scores`.

    Attributes:
        accuracy: Hungarian (one-to-one) clustering accuracy.
        many_to_one_accuracy: Majority-class accuracy, equal to the purity.
        nmi: Normalised mutual information.
        ari: Adjusted Rand index.
        num_clusters: Number of distinct clusters that occur in ``y_pred``.
    """

    accuracy: float
    many_to_one_accuracy: float
    nmi: float
    ari: float
    num_clusters: int


def clustering_scores(y_true: Any, y_pred: Any) -> ClusteringScores:
    """Every score of this module at once (see :class:`ClusteringScores`).

    Args:
        y_true: Class labels, shape ``(N,)``.
        y_pred: Cluster labels, shape ``(N,)``.
    """
    t, p = _pair(y_true, y_pred)
    return ClusteringScores(
        accuracy=clustering_accuracy(t, p, mapping="hungarian"),
        many_to_one_accuracy=clustering_accuracy(t, p, mapping="many_to_one"),
        nmi=normalized_mutual_info(t, p),
        ari=adjusted_rand_index(t, p),
        num_clusters=int(len(np.unique(p))),
    )
