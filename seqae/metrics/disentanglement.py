"""Disentanglement metrics: how well single latents capture single generative factors.

- :func:`mig`: the mutual information gap (Chen et al. 2018, "Isolating Sources of
  Disentanglement in VAEs", arXiv 1802.04942, Sec. 5), with the discretised (histogram)
  mutual-information estimate of Locatello et al. 2019 (arXiv 1811.12359, App. C).
- :func:`dci`: disentanglement, completeness and informativeness (Eastwood & Williams 2018,
  "A Framework for the Quantitative Evaluation of Disentangled Representations", ICLR),
  from the importance matrix of per-factor predictors (gradient-boosted trees, random forests
  or the lasso, from scikit-learn).
- :func:`factor_vae_score`: the majority-vote metric of Kim & Mnih 2018 ("Disentangling by
  Factorising", arXiv 1802.05983, Sec. 4): fix one factor, sample the others, normalise the
  codes by their standard deviation over the data, and see which code dimension varies least.
- :func:`evaluate_disentanglement`: all three from one encoder and one factor source.

Every metric is 1 for a code whose dimensions are the factors themselves and near 0 for a code
that ignores them. Latents are ``(N, D)`` arrays (numpy or torch), factors ``(N, K)`` integer
index arrays; factors that never vary (one value) are left out, since no code can capture them.

The factor source is duck-typed (:class:`FactorSource`): anything with ``factor_sizes``,
``sample_factors(n, rng=..., fixed=...)`` and ``images_from_factors(factors)``, such as
:class:`seqae.data.ShapesDataset`. The encoder is any callable mapping a batch of images to
codes ``(B, D)``; for a VAE pass the posterior means.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "DCIResult",
    "FactorSource",
    "FactorVAEResult",
    "MIGResult",
    "dci",
    "discrete_entropy",
    "discrete_mutual_info",
    "discretize",
    "encode_factors",
    "evaluate_disentanglement",
    "factor_vae_score",
    "mig",
]

Encoder = Callable[[Tensor], Tensor]
DCIModel = Literal["gbt", "random_forest", "lasso"]


@runtime_checkable
class FactorSource(Protocol):
    """What the sampling metrics need from a dataset with known factors (e.g. ShapesDataset)."""

    factor_sizes: Sequence[int]

    def sample_factors(
        self,
        n: int,
        *,
        rng: np.random.Generator | int | None = None,
        fixed: Mapping[str | int, int] | None = None,
    ) -> np.ndarray: ...

    def images_from_factors(self, factors: np.ndarray) -> Tensor: ...


# --------------------------------------------------------------------------------------------
# input checks
# --------------------------------------------------------------------------------------------
def _as_array(values: Any, name: str, *, dtype: Any = np.float64) -> np.ndarray:
    if isinstance(values, Tensor):
        values = values.detach().cpu().numpy()
    array = np.asarray(values)
    if array.ndim != 2:
        width = "K" if name.startswith("factors") else "D"
        raise ValueError(f"{name} must have shape (N, {width}), got {array.shape}")
    if array.shape[0] < 2 or array.shape[1] < 1:
        raise ValueError(
            f"{name} has shape {array.shape}; expected at least 2 examples and 1 column"
        )
    if dtype is np.int64:
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"{name} must hold integer factor indices, got dtype {array.dtype}")
        return array.astype(np.int64)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds {int((~np.isfinite(array)).sum())} NaN or infinite values")
    return array


def _pair(latents: Any, factors: Any) -> tuple[np.ndarray, np.ndarray]:
    z = _as_array(latents, "latents")
    f = _as_array(factors, "factors", dtype=np.int64)
    if z.shape[0] != f.shape[0]:
        raise ValueError(
            f"latents have {z.shape[0]} rows but factors have {f.shape[0]}; expected one factor "
            "row per latent row"
        )
    return z, f


def _varying(factors: np.ndarray) -> np.ndarray:
    """Columns of ``factors`` that take more than one value."""
    keep = np.array([np.unique(col).size > 1 for col in factors.T])
    if not keep.any():
        raise ValueError(
            "every factor is constant over these examples; a disentanglement metric needs at "
            "least one factor that varies"
        )
    return keep


# --------------------------------------------------------------------------------------------
# discrete information
# --------------------------------------------------------------------------------------------
def discretize(latents: Any, *, num_bins: int = 20) -> np.ndarray:
    """Bin each latent column into ``num_bins`` equal-width bins over its observed range.

    The histogram discretisation of Locatello et al. 2019 (arXiv 1811.12359, App. C), used to
    estimate mutual information between continuous codes and discrete factors. A constant
    column falls in bin 0. Affine maps of a column (scaling, shifting, sign flips) give the
    same partition of the examples.

    Args:
        latents: ``(N, D)`` codes.
        num_bins: Bins per column; at least 2.

    Returns:
        ``(N, D)`` int64 bin indices in ``0..num_bins - 1``.
    """
    if not isinstance(num_bins, int) or num_bins < 2:
        raise ValueError(f"num_bins must be an int >= 2, got {num_bins!r}")
    z = _as_array(latents, "latents")
    low, high = z.min(axis=0), z.max(axis=0)
    span = np.where(high > low, high - low, 1.0)
    bins = np.floor((z - low) / span * num_bins).astype(np.int64)
    return np.clip(bins, 0, num_bins - 1)


def _codes(column: np.ndarray) -> tuple[np.ndarray, int]:
    values, inverse = np.unique(column, return_inverse=True)
    return inverse.reshape(-1), values.size


def discrete_entropy(factors: Any) -> np.ndarray:
    """Empirical entropy of each column of an integer array, ``(K,)`` in nats.

    Args:
        factors: ``(N, K)`` integer values (factor indices or binned latents).
    """
    f = _as_array(factors, "factors", dtype=np.int64)
    out = np.empty(f.shape[1])
    for k, col in enumerate(f.T):
        counts = np.bincount(_codes(col)[0]).astype(np.float64)
        p = counts / counts.sum()
        out[k] = float(-(p * np.log(p)).sum())
    return out


def discrete_mutual_info(codes: Any, factors: Any) -> np.ndarray:
    """Empirical mutual information between every code column and every factor, in nats.

    ``I(c_j; v_k) = sum p(c, v) log[p(c, v) / (p(c) p(v))]`` from the joint counts of the N
    rows; the plug-in estimate, as in Locatello et al. 2019 (arXiv 1811.12359).

    Args:
        codes: ``(N, D)`` integer codes (e.g. from :func:`discretize`).
        factors: ``(N, K)`` integer factor indices.

    Returns:
        ``(D, K)`` mutual information matrix.
    """
    c = _as_array(codes, "codes", dtype=np.int64)
    f = _as_array(factors, "factors", dtype=np.int64)
    if c.shape[0] != f.shape[0]:
        raise ValueError(f"codes have {c.shape[0]} rows but factors have {f.shape[0]}")
    n = c.shape[0]
    out = np.zeros((c.shape[1], f.shape[1]))
    coded_f = [_codes(col) for col in f.T]
    for j, col in enumerate(c.T):
        a, na = _codes(col)
        for k, (b, nb) in enumerate(coded_f):
            joint = np.bincount(a * nb + b, minlength=na * nb).reshape(na, nb) / n
            pa, pb = joint.sum(axis=1, keepdims=True), joint.sum(axis=0, keepdims=True)
            nz = joint > 0
            out[j, k] = max(0.0, float((joint[nz] * np.log(joint[nz] / (pa @ pb)[nz])).sum()))
    return out


# --------------------------------------------------------------------------------------------
# MIG
# --------------------------------------------------------------------------------------------
class MIGResult(NamedTuple):
    """Result of :func:`mig`."""

    score: float
    """Mean over the varying factors of the normalised gap; in [0, 1]."""
    per_factor: np.ndarray
    """``(K,)`` normalised gap of each factor; NaN for factors that never vary."""
    mutual_info: np.ndarray
    """``(D, K)`` mutual information (nats) between binned latents and factors."""
    factor_entropy: np.ndarray
    """``(K,)`` entropy (nats) of each factor over the examples."""


def mig(latents: Any, factors: Any, *, num_bins: int = 20) -> MIGResult:
    """Mutual information gap (Chen et al. 2018, arXiv 1802.04942, eq. 6).

    For each factor ``v_k``, the gap between the largest and second-largest mutual information
    any single latent has with it, divided by the factor's entropy ``H(v_k)``; averaged over
    factors. One latent per factor gives 1; a factor spread over several latents, or captured
    by none, gives ~0. The mutual information is estimated by binning each latent into
    ``num_bins`` equal-width bins (Locatello et al. 2019, arXiv 1811.12359), not with the
    paper's posterior-based estimator, so it needs only latent means. Invariant to
    permutations and affine maps of the latents.

    Args:
        latents: ``(N, D)`` codes, ``D >= 2``, e.g. posterior means of N images.
        factors: ``(N, K)`` integer factor indices of the same images.
        num_bins: Histogram bins per latent. A factor with more values than bins cannot reach
            1 even when a latent equals it.
    """
    z, f = _pair(latents, factors)
    if z.shape[1] < 2:
        raise ValueError(f"MIG needs at least 2 latent dimensions to form a gap, got {z.shape[1]}")
    varying = _varying(f)
    info = discrete_mutual_info(discretize(z, num_bins=num_bins), f)  # (D, K)
    entropy = discrete_entropy(f)  # (K,)
    top2 = np.sort(info, axis=0)[-2:]  # (2, K): second largest, largest
    per_factor = np.full(f.shape[1], np.nan)
    per_factor[varying] = (top2[1] - top2[0])[varying] / entropy[varying]
    return MIGResult(
        score=float(np.mean(per_factor[varying])),
        per_factor=per_factor,
        mutual_info=info,
        factor_entropy=entropy,
    )


# --------------------------------------------------------------------------------------------
# DCI
# --------------------------------------------------------------------------------------------
class DCIResult(NamedTuple):
    """Result of :func:`dci`."""

    disentanglement: float
    """Importance-weighted mean over codes of ``1 - H_K(P_i.)``; in [0, 1]."""
    completeness: float
    """Mean over factors of ``1 - H_D(P_.k)``; in [0, 1]."""
    informativeness: float
    """Mean over factors of the test accuracy (classifiers) or test R^2 (lasso)."""
    informativeness_train: float
    """The same on the training examples."""
    importance: np.ndarray
    """``(D, K)`` importance of code i for predicting factor k (columns sum to 1, or 0 when a
    factor's predictor uses no code); zero columns for factors that never vary."""
    per_code_disentanglement: np.ndarray
    """``(D,)`` ``1 - H_K`` of each code's importance row (0 for codes of no importance)."""
    per_factor_completeness: np.ndarray
    """``(K,)`` ``1 - H_D`` of each factor's importance column; NaN where the factor is
    constant."""
    per_factor_informativeness: np.ndarray
    """``(K,)`` test accuracy or R^2 per factor; NaN where the factor is constant."""


def _fit_predictor(
    model: DCIModel,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    *,
    seed: int,
    options: Mapping[str, Any],
) -> tuple[np.ndarray, float, float]:
    """Fit one factor's predictor; returns (importances (D,), train score, test score)."""
    if model == "lasso":
        from sklearn.linear_model import Lasso

        mean, std = y_train.mean(), y_train.std()
        std = std if std > 0 else 1.0
        reg = Lasso(**{"alpha": 0.01, "random_state": seed, **options})
        reg.fit(x_train, (y_train - mean) / std)
        return (
            np.abs(reg.coef_),
            float(reg.score(x_train, (y_train - mean) / std)),
            float(reg.score(x_test, (y_test - mean) / std)),
        )
    if model == "gbt":
        from sklearn.ensemble import GradientBoostingClassifier

        clf: Any = GradientBoostingClassifier(**{"random_state": seed, **options})
    elif model == "random_forest":
        from sklearn.ensemble import RandomForestClassifier

        # every code is a split candidate at every node (max_features=None): with sklearn's
        # default of sqrt(D) random candidates, trees split on uninformative codes whenever the
        # informative one is not drawn, which spreads importance over codes
        defaults = {"random_state": seed, "n_jobs": 1, "max_features": None}
        clf = RandomForestClassifier(**{**defaults, **options})
    else:
        raise ValueError(f"unknown DCI model {model!r}; expected 'gbt', 'random_forest' or 'lasso'")
    clf.fit(x_train, y_train)
    return (
        np.abs(clf.feature_importances_),
        float(np.mean(clf.predict(x_train) == y_train)),
        float(np.mean(clf.predict(x_test) == y_test)),
    )


def _one_minus_entropy(p: np.ndarray, axis: int) -> np.ndarray:
    """``1 - H(p / sum p)`` along ``axis``, the entropy in base ``p.shape[axis]``; 0 where the
    sum is 0."""
    total = p.sum(axis=axis, keepdims=True)
    q = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    logs = np.log(q, out=np.zeros_like(q), where=q > 0)
    h = -(q * logs).sum(axis=axis) / math.log(p.shape[axis])
    return np.where(total.squeeze(axis) > 0, 1.0 - h, 0.0)


def dci(
    latents_train: Any,
    factors_train: Any,
    latents_test: Any,
    factors_test: Any,
    *,
    model: DCIModel = "gbt",
    seed: int = 0,
    model_options: Mapping[str, Any] | None = None,
) -> DCIResult:
    """Disentanglement, completeness and informativeness (Eastwood & Williams 2018, ICLR).

    One predictor per factor maps the D codes to the factor; the absolute feature importances
    form the ``(D, K)`` importance matrix R, each column normalised to sum 1. Disentanglement
    of code i is ``1 - H_K(P_i.)`` with ``P_ik = R_ik / sum_k R_ik`` (entropy in base K),
    averaged with weights ``rho_i = sum_k R_ik / sum R``; completeness of factor k is
    ``1 - H_D(P_.k)`` (base D), averaged over factors; informativeness is the predictors'
    held-out accuracy (classifiers) or R^2 (lasso). Codes are standardised first, so the lasso
    is invariant to scaling them, as the trees are to any monotone map.

    Args:
        latents_train: ``(N, D)`` codes to fit the predictors on, ``D >= 2``.
        factors_train: ``(N, K)`` integer factor indices of the same examples.
        latents_test: ``(M, D)`` held-out codes, for informativeness.
        factors_test: ``(M, K)`` their factor indices.
        model: ``"gbt"``: gradient-boosted tree classifiers, impurity importances (the choice
            of Locatello et al. 2019, arXiv 1811.12359); ``"random_forest"``: random forest
            classifiers (Eastwood & Williams' second predictor), every code a candidate at
            every split (``max_features=None``); ``"lasso"``: L1-regularised
            linear regression of the standardised factor index, importances ``|w|``
            (Eastwood & Williams' first predictor).
        seed: Random state of the predictors.
        model_options: Extra keyword arguments of the scikit-learn estimator, e.g.
            ``{"n_estimators": 20}`` for quicker trees or ``{"alpha": 0.05}`` for the lasso.
    """
    if model not in ("gbt", "random_forest", "lasso"):
        raise ValueError(f"unknown DCI model {model!r}; expected 'gbt', 'random_forest' or 'lasso'")
    z_train, f_train = _pair(latents_train, factors_train)
    z_test, f_test = _pair(latents_test, factors_test)
    if z_train.shape[1] != z_test.shape[1] or f_train.shape[1] != f_test.shape[1]:
        raise ValueError(
            f"train and test disagree in width: latents {z_train.shape[1]} vs {z_test.shape[1]}, "
            f"factors {f_train.shape[1]} vs {f_test.shape[1]}"
        )
    d, k = z_train.shape[1], f_train.shape[1]
    if d < 2:
        raise ValueError(f"DCI needs at least 2 latent dimensions, got {d}")
    varying = _varying(f_train)
    if varying.sum() < 2:
        raise ValueError(
            "DCI disentanglement needs at least 2 varying factors (its entropy is in base K), "
            f"got {int(varying.sum())}"
        )
    mean, std = z_train.mean(axis=0), z_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    z_train, z_test = (z_train - mean) / std, (z_test - mean) / std
    options = dict(model_options or {})

    importance = np.zeros((d, k))
    score_train, score_test = np.full(k, np.nan), np.full(k, np.nan)
    for j in np.flatnonzero(varying):
        weights, score_train[j], score_test[j] = _fit_predictor(
            model, z_train, f_train[:, j], z_test, f_test[:, j], seed=seed, options=options
        )
        total = weights.sum()
        importance[:, j] = weights / total if total > 0 else 0.0

    r = importance[:, varying]  # (D, K') over varying factors
    per_code = _one_minus_entropy(r, axis=1)  # (D,)
    rho = r.sum(axis=1) / r.sum() if r.sum() > 0 else np.zeros(d)
    per_factor = np.full(k, np.nan)
    per_factor[varying] = _one_minus_entropy(r, axis=0)
    return DCIResult(
        disentanglement=float((rho * per_code).sum()),
        completeness=float(np.mean(per_factor[varying])),
        informativeness=float(np.mean(score_test[varying])),
        informativeness_train=float(np.mean(score_train[varying])),
        importance=importance,
        per_code_disentanglement=per_code,
        per_factor_completeness=per_factor,
        per_factor_informativeness=score_test,
    )


# --------------------------------------------------------------------------------------------
# sampling metrics
# --------------------------------------------------------------------------------------------
def _rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)


@torch.no_grad()
def encode_factors(
    encode: Encoder, source: FactorSource, factors: np.ndarray, *, batch_size: int = 256
) -> np.ndarray:
    """Render factor rows with ``source`` and encode them: ``(N, 5) -> (N, D)`` float64.

    Args:
        encode: Maps a batch of images ``(B, ...)`` to codes ``(B, D)`` (e.g. posterior means).
        source: Renders factor rows (``images_from_factors``).
        factors: ``(N, K)`` integer factor rows.
        batch_size: Images rendered and encoded at a time.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    chunks = []
    for start in range(0, len(factors), batch_size):
        codes = encode(source.images_from_factors(factors[start : start + batch_size]))
        codes = torch.as_tensor(codes)
        if codes.dim() != 2:
            raise ValueError(
                f"encode must return codes of shape (B, D), got {tuple(codes.shape)}; flatten "
                "spatial codes or pass the posterior means of a vector bottleneck"
            )
        chunks.append(codes.detach().float().cpu().numpy().astype(np.float64))
    if not chunks:
        raise ValueError("encode_factors got no factor rows")
    return np.concatenate(chunks)


class FactorVAEResult(NamedTuple):
    """Result of :func:`factor_vae_score`."""

    score: float
    """Majority-vote classifier accuracy on the evaluation votes; in [0, 1]."""
    train_accuracy: float
    """Its accuracy on the votes it was built from."""
    active_dims: np.ndarray
    """``(D,)`` bool: dimensions whose variance over the data exceeds the pruning threshold."""
    votes: np.ndarray
    """``(D, K)`` training votes: how often dimension d had the least variance when factor k
    was fixed (rows of pruned dimensions are 0)."""
    classifier: np.ndarray
    """``(D,)`` the factor each dimension votes for (-1 for pruned dimensions)."""


def _votes(
    encode: Encoder,
    source: FactorSource,
    *,
    num_votes: int,
    batch_size: int,
    factors: np.ndarray,
    scale: np.ndarray,
    active: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    """``(D, K)`` counts of (argmin-variance dimension, fixed factor) over ``num_votes`` batches."""
    sizes = list(source.factor_sizes)
    votes = np.zeros((active.size, len(sizes)), dtype=np.int64)
    active_index = np.flatnonzero(active)
    for _ in range(num_votes):
        k = int(rng.choice(factors))
        rows = source.sample_factors(batch_size, rng=rng, fixed={k: int(rng.integers(sizes[k]))})
        z = encode_factors(encode, source, rows, batch_size=batch_size) / scale  # (B, D)
        variance = z[:, active_index].var(axis=0, ddof=1)
        votes[active_index[int(np.argmin(variance))], k] += 1
    return votes


def factor_vae_score(
    encode: Encoder,
    source: FactorSource,
    *,
    num_train: int = 500,
    num_eval: int = 300,
    batch_size: int = 64,
    num_variance_estimate: int = 5000,
    prune_threshold: float = 0.05,
    rng: np.random.Generator | int | None = None,
) -> FactorVAEResult:
    """The FactorVAE disentanglement score (Kim & Mnih 2018, arXiv 1802.05983, Sec. 4).

    Each vote: pick a factor k, draw ``batch_size`` images with factor k fixed at a random
    value and the others sampled; divide each code dimension by its standard deviation over
    the data; the dimension with the smallest variance in the batch votes for k. A majority
    vote classifier (each dimension predicts the factor it voted for most) is built from
    ``num_train`` votes and scored on ``num_eval`` fresh ones. Dimensions whose variance over
    the data is at most ``prune_threshold`` (collapsed to the prior) are left out, as in the
    paper; a code with none left scores 0. Invariant to permuting the code and to scaling
    dimensions, as long as no dimension crosses the pruning threshold.

    Args:
        encode: Maps images ``(B, ...)`` to codes ``(B, D)``, e.g. posterior means.
        source: Samples and renders factors (``factor_sizes``, ``sample_factors``,
            ``images_from_factors``), e.g. a :class:`~seqae.data.ShapesDataset`.
        num_train: Votes to build the classifier from (10000 in Locatello et al. 2019; fewer
            give a noisier score at lower cost).
        num_eval: Votes to score it on (5000 there).
        batch_size: Images per vote (64 in the paper's setup).
        num_variance_estimate: Images to estimate each dimension's standard deviation from.
        prune_threshold: Variance over the data at or below which a dimension is pruned.
        rng: Generator or seed for every draw (factor choice and factor samples).
    """
    for name, value, low in (
        ("num_train", num_train, 1),
        ("num_eval", num_eval, 1),
        ("batch_size", batch_size, 2),
        ("num_variance_estimate", num_variance_estimate, 2),
    ):
        if not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    rng = _rng(rng)
    sizes = list(source.factor_sizes)
    factors = np.flatnonzero(np.asarray(sizes) > 1)
    if factors.size == 0:
        raise ValueError(f"every factor has a single value (factor_sizes {sizes}); nothing varies")
    data = encode_factors(encode, source, source.sample_factors(num_variance_estimate, rng=rng))
    variance = data.var(axis=0)
    active = variance > prune_threshold
    if not active.any():
        d = data.shape[1]
        return FactorVAEResult(
            0.0, 0.0, active, np.zeros((d, len(sizes)), np.int64), np.full(d, -1, np.int64)
        )
    scale = np.sqrt(np.where(active, variance, 1.0))
    common = {"batch_size": batch_size, "factors": factors, "scale": scale, "active": active}
    train = _votes(encode, source, num_votes=num_train, rng=rng, **common)
    evaluation = _votes(encode, source, num_votes=num_eval, rng=rng, **common)
    classifier = np.where(active, np.argmax(train, axis=1), -1)
    rows = np.flatnonzero(active)
    train_acc = train[rows, classifier[rows]].sum() / train.sum()
    eval_acc = evaluation[rows, classifier[rows]].sum() / evaluation.sum()
    return FactorVAEResult(float(eval_acc), float(train_acc), active, train, classifier)


def evaluate_disentanglement(
    encode: Encoder,
    source: FactorSource,
    *,
    num_train: int = 5000,
    num_test: int = 2000,
    num_bins: int = 20,
    dci_model: DCIModel = "gbt",
    dci_options: Mapping[str, Any] | None = None,
    factor_vae_train: int = 500,
    factor_vae_eval: int = 300,
    factor_vae_batch: int = 64,
    rng: np.random.Generator | int | None = None,
) -> dict[str, Any]:
    """MIG, DCI and the FactorVAE score of one encoder, on fresh samples of the factors.

    Args:
        encode: Maps images ``(B, ...)`` to codes ``(B, D)`` (posterior means for a VAE).
        source: Samples and renders factors, e.g. a :class:`~seqae.data.ShapesDataset`
            (its full factor product is sampled, not its subsample).
        num_train: Examples for MIG, for fitting the DCI predictors and for the FactorVAE
            score's per-dimension standard deviations.
        num_test: Held-out examples for DCI informativeness.
        num_bins: Histogram bins per latent for MIG (see :func:`mig`).
        dci_model: Predictor for DCI (see :func:`dci`).
        dci_options: Extra scikit-learn keyword arguments for the DCI predictor.
        factor_vae_train: Training votes of the FactorVAE score.
        factor_vae_eval: Evaluation votes of the FactorVAE score.
        factor_vae_batch: Images per FactorVAE vote.
        rng: Generator or seed for all sampling.

    Returns:
        A flat dict of floats (``mig``, ``dci_disentanglement``, ``dci_completeness``,
        ``dci_informativeness``, ``factor_vae_score``, ...) plus the arrays ``mig_per_factor``,
        ``mutual_info`` ``(D, K)`` and ``dci_importance`` ``(D, K)`` as nested lists.
    """
    rng = _rng(rng)
    f_train = source.sample_factors(num_train, rng=rng)
    f_test = source.sample_factors(num_test, rng=rng)
    z_train = encode_factors(encode, source, f_train)
    z_test = encode_factors(encode, source, f_test)
    m = mig(z_train, f_train, num_bins=num_bins)
    d = dci(
        z_train,
        f_train,
        z_test,
        f_test,
        model=dci_model,
        seed=int(rng.integers(2**31)),
        model_options=dci_options,
    )
    fv = factor_vae_score(
        encode,
        source,
        num_train=factor_vae_train,
        num_eval=factor_vae_eval,
        batch_size=factor_vae_batch,
        num_variance_estimate=num_train,
        rng=rng,
    )
    return {
        "mig": m.score,
        "dci_disentanglement": d.disentanglement,
        "dci_completeness": d.completeness,
        "dci_informativeness": d.informativeness,
        "dci_informativeness_train": d.informativeness_train,
        "factor_vae_score": fv.score,
        "factor_vae_train_accuracy": fv.train_accuracy,
        "factor_vae_active_dims": int(fv.active_dims.sum()),
        "mig_per_factor": [None if np.isnan(v) else float(v) for v in m.per_factor],
        "mutual_info": m.mutual_info.tolist(),
        "dci_importance": d.importance.tolist(),
    }
