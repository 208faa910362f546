"""One loss module for every seqae model.

Losses are plain functions of tensors. A recipe adds named terms with named weights and logs
each one; nothing here reads a config. Weights that change during training (KL warm-up,
cyclical annealing) come from :mod:`seqae.core.schedules`.

Contents: reconstruction (``mse``, ``bce_with_logits``, ``gaussian_nll``, ``optimal_log_sigma``,
``token_cross_entropy``); analytic KLs; VQ codebook/commitment; total correlation
(``tc_decomposition``); adversarial (``gan_discriminator_loss``, ``gan_generator_loss``,
``gradient_penalty``); REINFORCE (``reinforce_loss``, ``MovingAverageBaseline``,
``leave_one_out_baseline``); weight penalties (``l1_penalty``, ``l2_penalty``).

Reductions (the ``reduction`` keyword, same meaning everywhere):

- ``"none"``: elementwise, same shape as the input;
- ``"per_example"``: summed over every non-batch axis, shape ``(B,)``;
- ``"batch_mean"``: summed over every non-batch axis, then averaged over the batch: a scalar in
  nats per example, the convention of the ELBO;
- ``"mean"``: averaged over every element;
- ``"sum"``: summed over every element.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Literal, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

Reduction = Literal["none", "per_example", "batch_mean", "mean", "sum"]

_LOG_2PI = math.log(2.0 * math.pi)


def reduce(loss: Tensor, reduction: Reduction) -> Tensor:
    """Apply one of the module's reductions to an elementwise loss whose axis 0 is the batch."""
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    if loss.dim() == 2:
        per_example = loss.sum(dim=1)
    else:
        per_example = loss.reshape(loss.shape[0], -1).sum(dim=1) if loss.dim() > 1 else loss
    if reduction == "per_example":
        return per_example
    if reduction == "batch_mean":
        return per_example.mean()
    raise ValueError(
        f"unknown reduction {reduction!r}; expected one of none, per_example, batch_mean, mean, sum"
    )


# --------------------------------------------------------------------------------------------
# KL divergences (analytic)
# --------------------------------------------------------------------------------------------
def kl_normal_std(
    mu: Tensor, logvar: Tensor, *, reduction: Reduction = "batch_mean", free_bits: float = 0.0
) -> Tensor:
    """KL( N(mu, exp(logvar)) || N(0, I) ), analytic (Kingma & Welling 2014, arXiv 1312.6114, App. B).

    Args:
        mu: Posterior means, batch first.
        logvar: Posterior log-variances, same shape as ``mu``.
        reduction: See the module docstring.
        free_bits: Free bits per latent element (Kingma et al. 2016, arXiv 1606.04934, eq. 15):
            each element's KL, averaged over the batch, is clamped from below at this many nats,
            so the optimiser gains nothing by pushing it further towards the prior. Only defined
            for the batch-level reductions ``batch_mean`` and ``sum``.
    """
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar)
    if free_bits > 0.0:
        if reduction not in ("batch_mean", "sum"):
            raise ValueError("free_bits needs reduction='batch_mean' or 'sum'")
        per_element = kl.mean(dim=0).clamp(min=free_bits)  # average over the batch, then clamp
        return per_element.sum() * (kl.shape[0] if reduction == "sum" else 1.0)
    return reduce(kl, reduction)


def kl_normal(
    mu_q: Tensor,
    logvar_q: Tensor,
    mu_p: Tensor,
    logvar_p: Tensor,
    *,
    reduction: Reduction = "batch_mean",
) -> Tensor:
    """KL( N(mu_q, exp(logvar_q)) || N(mu_p, exp(logvar_p)) ) for diagonal Gaussians, analytic."""
    kl = 0.5 * (
        logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0
    )
    return reduce(kl, reduction)


def kl_bernoulli(
    logits: Tensor, *, prior: float = 0.5, reduction: Reduction = "batch_mean"
) -> Tensor:
    """KL( Bernoulli(sigmoid(logits)) || Bernoulli(prior) ), analytic, per code bit."""
    if not 0.0 < prior < 1.0:
        raise ValueError(f"prior must be in (0, 1), got {prior}")
    p = torch.sigmoid(logits)
    log_p = torch.nn.functional.logsigmoid(logits)
    log_1mp = torch.nn.functional.logsigmoid(-logits)
    kl = p * (log_p - math.log(prior)) + (1.0 - p) * (log_1mp - math.log1p(-prior))
    return reduce(kl, reduction)


def kl_categorical_uniform(logits: Tensor, *, reduction: Reduction = "batch_mean") -> Tensor:
    """KL( Categorical(softmax(logits)) || Uniform(K) ) over the last axis (K categories).

    The result has the shape of ``logits`` without its last axis before reduction.
    """
    log_q = torch.log_softmax(logits, dim=-1)
    kl = (log_q.exp() * (log_q + math.log(logits.shape[-1]))).sum(dim=-1)
    return reduce(kl, reduction)


# --------------------------------------------------------------------------------------------
# Vector quantisation
# --------------------------------------------------------------------------------------------
def vq_codebook_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """|| sg[z_e] - e ||^2: moves codebook vectors towards encoder outputs (van den Oord et al.
    2017, arXiv 1711.00937, eq. 3, second term). Mean over elements. Unused with EMA codebooks."""
    return (z_q - z_e.detach()).pow(2).mean()


def vq_commitment_loss(z_e: Tensor, z_q: Tensor) -> Tensor:
    """|| z_e - sg[e] ||^2: keeps the encoder committed to its code (arXiv 1711.00937, eq. 3,
    third term, without its beta). Mean over elements."""
    return (z_e - z_q.detach()).pow(2).mean()


# --------------------------------------------------------------------------------------------
# Reconstruction
# --------------------------------------------------------------------------------------------
def mse(x_hat: Tensor, x: Tensor, *, reduction: Reduction = "mean") -> Tensor:
    """Squared error ``(x_hat - x)^2``; by default averaged over every element (a plain AE's loss).

    Args:
        x_hat: Reconstruction, batch first.
        x: Target, same shape as ``x_hat`` (or broadcastable to it).
        reduction: See the module docstring. ``"batch_mean"`` gives the sum over each example,
            which is what a Gaussian likelihood with fixed unit variance needs up to a factor 1/2
            and a constant (use :func:`gaussian_nll` for the normalised version).
    """
    return reduce((x_hat - x).pow(2), reduction)


def bce_with_logits(logits: Tensor, x: Tensor, *, reduction: Reduction = "batch_mean") -> Tensor:
    """Bernoulli negative log-likelihood ``-[x log sigmoid(l) + (1 - x) log sigmoid(-l)]``.

    The decoder likelihood of binarised data (Kingma & Welling 2014, arXiv 1312.6114, App. C.1);
    computed from logits, which is numerically stable.

    Args:
        logits: Decoder logits, batch first.
        x: Targets in ``[0, 1]``, same shape as ``logits``.
        reduction: See the module docstring; the default is nats per example.
    """
    loss = F.binary_cross_entropy_with_logits(logits, x.to(logits.dtype), reduction="none")
    return reduce(loss, reduction)


def gaussian_nll(
    mean: Tensor,
    x: Tensor,
    *,
    log_sigma: Tensor | float = 0.0,
    reduction: Reduction = "batch_mean",
) -> Tensor:
    """Normalised Gaussian negative log-density ``-log N(x; mean, sigma^2)``, elementwise.

    ``0.5 * ((x - mean) / sigma)^2 + log(sigma) + 0.5 * log(2 pi)``, constant included, so
    the value is a true NLL in nats and comparable across models.

    Args:
        mean: Decoder means, batch first.
        x: Targets, same shape as ``mean``.
        log_sigma: Log standard deviation, broadcastable against ``mean``: a float for a fixed
            sigma, a learned parameter (a scalar, per channel, ...), a per-element decoder output,
            or the closed-form optimum of :func:`optimal_log_sigma` (sigma-VAE, Rybkin et al.
            2021, arXiv 2006.13202). Learning it lets the likelihood, not a hand-tuned beta,
            set the balance between reconstruction and KL.
        reduction: See the module docstring; the default is nats per example.
    """
    shared = isinstance(log_sigma, float | int) or (
        isinstance(log_sigma, Tensor) and log_sigma.dim() == 0
    )
    if shared and reduction != "none" and mean.shape == x.shape and mean.dtype == x.dtype:
        # One sigma for every element: reduce the squared errors first and add the normaliser
        # once, 0.5 * sum((x - mean)^2) / sigma^2 + n * (log sigma + 0.5 log 2 pi), with n the
        # number of elements behind each entry of the result. The same value (up to float
        # rounding) and gradients as the elementwise form below, in fewer kernels.
        sq = reduce(F.mse_loss(mean, x, reduction="none"), reduction)
        if reduction == "mean":
            n = 1
        elif reduction == "sum":
            n = mean.numel()
        else:  # per_example, batch_mean
            n = math.prod(mean.shape[1:])
        if isinstance(log_sigma, Tensor) and (
            log_sigma.requires_grad or log_sigma.device.type != "cpu"
        ):
            ls = log_sigma.to(device=mean.device, dtype=mean.dtype)
            return sq * (0.5 * torch.exp(-2.0 * ls)) + n * (ls + 0.5 * _LOG_2PI)
        ls = float(log_sigma)  # a number, or a fixed CPU scalar: read without a device sync
        return sq * (0.5 * math.exp(-2.0 * ls)) + n * (ls + 0.5 * _LOG_2PI)
    log_sigma_t = torch.as_tensor(log_sigma, dtype=mean.dtype, device=mean.device)
    z = (x - mean) * torch.exp(-log_sigma_t)
    nll = 0.5 * z.pow(2) + log_sigma_t + 0.5 * _LOG_2PI
    if nll.shape != torch.broadcast_shapes(mean.shape, x.shape):
        raise ValueError(
            f"log_sigma of shape {tuple(log_sigma_t.shape)} changes the shape of the loss; "
            f"it must broadcast against mean {tuple(mean.shape)}"
        )
    return reduce(nll, reduction)


def optimal_log_sigma(mean: Tensor, x: Tensor, *, min_log_sigma: float = -6.0) -> Tensor:
    """Closed-form maximum-likelihood shared log sigma of a Gaussian decoder (sigma-VAE).

    For one sigma shared by every element, ``sigma*^2 = mean((x - mean)^2)`` over the batch
    (Rybkin et al. 2021, arXiv 2006.13202, Sec. 3, "optimal sigma-VAE"). Pass the result as
    ``log_sigma`` to :func:`gaussian_nll`. Because it minimises the NLL, the gradient of
    ``gaussian_nll(mean, x, log_sigma=optimal_log_sigma(mean, x))`` with respect to ``mean`` is
    the same whether or not this value is detached.

    Args:
        mean: Decoder means.
        x: Targets, same shape as ``mean``.
        min_log_sigma: Lower clamp, so a perfect reconstruction does not send the NLL to minus
            infinity (the paper soft-clips at -6).

    Returns:
        A 0-dim tensor.
    """
    return (0.5 * (x - mean).pow(2).mean().log()).clamp(min=min_log_sigma)


def token_cross_entropy(
    logits: Tensor,
    targets: Tensor,
    *,
    pad_id: int | None = None,
    mask: Tensor | None = None,
    label_smoothing: float = 0.0,
    reduction: Reduction = "mean",
) -> Tensor:
    """Per-token cross-entropy of a sequence decoder, ignoring padding.

    Args:
        logits: Next-token logits of shape ``(B, T, V)`` (any leading shape ``(B, ...)`` works).
        targets: Token ids of shape ``(B, T)``.
        pad_id: Id whose positions are ignored (they contribute 0 and are not counted). May lie
            outside ``[0, V)``, e.g. ``-100``.
        mask: Optional boolean/0-1 mask of shape ``(B, T)``; ``False`` positions are ignored.
            Combined with ``pad_id`` by logical and.
        label_smoothing: Mix the one-hot target with the uniform distribution (Szegedy et al.
            2016, arXiv 1512.00567, Sec. 7), as in :func:`torch.nn.functional.cross_entropy`.
        reduction: ``"mean"``: averaged over the *valid* tokens only (the usual per-token loss;
            differs from the module-wide meaning of ``"mean"``); ``"sum"``: summed over valid
            tokens; ``"per_example"``: summed per sequence, ``(B,)``; ``"batch_mean"``: summed per
            sequence then averaged over the batch (nats per sequence, for an ELBO); ``"none"``:
            shape ``(B, T)`` with zeros at ignored positions.
    """
    if logits.shape[:-1] != targets.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and targets {tuple(targets.shape)} disagree; expected "
            "logits of shape targets.shape + (V,)"
        )
    valid = torch.ones_like(targets, dtype=torch.bool)
    if pad_id is not None:
        valid = valid & (targets != pad_id)
    if mask is not None:
        valid = valid & mask.to(torch.bool)
    safe_targets = targets.masked_fill(~valid, 0)  # pad ids may be out of range
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]),
        safe_targets.reshape(-1),
        reduction="none",
        label_smoothing=label_smoothing,
    ).reshape(targets.shape)
    ce = ce.masked_fill(~valid, 0.0)
    if reduction == "mean":
        return ce.sum() / valid.sum().clamp(min=1)
    return reduce(ce, reduction)


# --------------------------------------------------------------------------------------------
# Total correlation (beta-TCVAE)
# --------------------------------------------------------------------------------------------
class TCDecomposition(NamedTuple):
    """The three terms of the decomposed KL (Chen et al. 2018, arXiv 1802.04942, eq. 2), each a
    scalar estimate averaged over the batch. They sum to the single-sample Monte-Carlo KL
    ``mean_i[log q(z_i|x_i) - log p(z_i)]`` exactly, whatever the estimator."""

    mutual_info: Tensor
    """Index-code mutual information ``E[log q(z|n) - log q(z)]``."""
    total_correlation: Tensor
    """``KL(q(z) || prod_d q(z_d))``; beta-TCVAE puts its beta on this term."""
    dimension_kl: Tensor
    """Dimension-wise KL ``sum_d KL(q(z_d) || p(z_d))``."""


def tc_decomposition(
    z: Tensor,
    mu: Tensor,
    logvar: Tensor,
    *,
    dataset_size: int,
    estimator: Literal["mws", "mss"] = "mss",
) -> TCDecomposition:
    """Decompose the KL of a diagonal-Gaussian posterior against ``N(0, I)`` (beta-TCVAE).

    The aggregate posterior ``q(z) = 1/N sum_n q(z|n)`` and its marginals are estimated from the
    minibatch (Chen et al. 2018, arXiv 1802.04942, Sec. 4.1 and App. C). Cost: ``O(B^2 D)``.

    Args:
        z: Samples ``z_i ~ q(z|x_i)``, shape ``(B, D)`` (non-batch axes are flattened into D).
        mu: Posterior means, same shape as ``z``.
        logvar: Posterior log-variances, same shape as ``z``.
        dataset_size: N, the number of training examples the batch is drawn from.
        estimator: ``"mss"``, minibatch stratified sampling: sample i's own posterior enters the
            estimate of ``q(z_i)`` with its exact weight ``1/N``, and the other ``N - 1``
            examples are represented by the other ``B - 1`` batch members with weight
            ``(N - 1) / (N (B - 1))`` each, an unbiased estimate of ``q(z_i)``; with ``N = B``
            it is exact. ``"mws"``, minibatch weighted sampling, the paper's eq. for
            ``log q(z) ~ log sum_j q(z_i|n_j) - log(N B)``: every term has weight ``1/(N B)``,
            which sums to ``1/N`` rather than 1, so its log-densities sit between ``log B``
            and ``log N`` nats too low. The shift has no gradient, so MWS works as a training
            penalty, but its values are offset (TC by up to ``(D - 1) log N``): report MSS.
    """
    if estimator not in ("mws", "mss"):
        raise ValueError(f"unknown estimator {estimator!r}; expected 'mws' or 'mss'")
    batch = z.shape[0]
    if batch < 2:
        raise ValueError("tc_decomposition needs a batch of at least 2")
    if dataset_size < batch:
        raise ValueError(f"dataset_size ({dataset_size}) is smaller than the batch ({batch})")
    z, mu, logvar = (t.reshape(batch, -1) for t in (z, mu, logvar))

    # log q(z_i,d | n_j) for every pair (i, j): (B, B, D)
    diff = z.unsqueeze(1) - mu.unsqueeze(0)
    log_q_pair = -0.5 * (
        _LOG_2PI + logvar.unsqueeze(0) + diff.pow(2) * torch.exp(-logvar).unsqueeze(0)
    )

    log_q_z_given_x = log_q_pair.diagonal(dim1=0, dim2=1).sum(dim=0)  # (B,) the i == j terms
    log_p_z = (-0.5 * (_LOG_2PI + z.pow(2))).sum(dim=1)  # (B,)

    if estimator == "mws":
        log_w = torch.full((batch, batch), -math.log(batch * dataset_size))
    else:
        log_w = torch.full(
            (batch, batch), math.log(dataset_size - 1) - math.log(dataset_size * (batch - 1))
        )
        log_w.fill_diagonal_(-math.log(dataset_size))
    log_w = log_w.to(dtype=z.dtype, device=z.device)

    log_q_z = torch.logsumexp(log_w + log_q_pair.sum(dim=2), dim=1)  # (B,)
    log_prod_q_zd = torch.logsumexp(log_w.unsqueeze(2) + log_q_pair, dim=1).sum(dim=1)  # (B,)

    return TCDecomposition(
        mutual_info=(log_q_z_given_x - log_q_z).mean(),
        total_correlation=(log_q_z - log_prod_q_zd).mean(),
        dimension_kl=(log_prod_q_zd - log_p_z).mean(),
    )


# --------------------------------------------------------------------------------------------
# Adversarial
# --------------------------------------------------------------------------------------------
GanKind = Literal["nonsaturating", "hinge", "wgan"]
_GAN_KINDS = ("nonsaturating", "hinge", "wgan")


def _check_gan_kind(kind: str) -> None:
    if kind not in _GAN_KINDS:
        raise ValueError(f"unknown GAN loss kind {kind!r}; expected one of {', '.join(_GAN_KINDS)}")


def gan_discriminator_loss(
    real_logits: Tensor, fake_logits: Tensor, *, kind: GanKind = "nonsaturating"
) -> Tensor:
    """Discriminator (critic) loss; each term is averaged over all its elements.

    Args:
        real_logits: Discriminator outputs on real data (any shape, e.g. ``(B,)`` or per token).
        fake_logits: Discriminator outputs on generated data. Detach the generator's output
            before the discriminator step.
        kind: ``"nonsaturating"``: the logistic loss ``-log D(x) - log(1 - D(G(z)))`` (Goodfellow
            et al. 2014, arXiv 1406.2661); ``"hinge"``: ``relu(1 - D(x)) + relu(1 + D(G(z)))``
            (Lim & Ye 2017, arXiv 1705.02894; Miyato et al. 2018, arXiv 1802.05957);
            ``"wgan"``: ``D(G(z)) - D(x)`` (Arjovsky et al. 2017, arXiv 1701.07875), which needs
            a Lipschitz constraint such as :func:`gradient_penalty`.
    """
    _check_gan_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
    if kind == "hinge":
        return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()
    return fake_logits.mean() - real_logits.mean()


def gan_generator_loss(fake_logits: Tensor, *, kind: GanKind = "nonsaturating") -> Tensor:
    """Generator loss against a discriminator trained with :func:`gan_discriminator_loss`.

    Args:
        fake_logits: Discriminator outputs on generated data (not detached).
        kind: ``"nonsaturating"``: ``-log D(G(z))``, the non-saturating heuristic of Goodfellow
            et al. 2014 (arXiv 1406.2661, Sec. 3); ``"hinge"`` and ``"wgan"``: ``-D(G(z))``
            (Lim & Ye 2017; Arjovsky et al. 2017).
    """
    _check_gan_kind(kind)
    if kind == "nonsaturating":
        return F.softplus(-fake_logits).mean()
    return -fake_logits.mean()


def gradient_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    *,
    target: float = 1.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """WGAN-GP penalty ``E[(||grad_x D(x_hat)||_2 - target)^2]`` on random interpolates
    ``x_hat = a * real + (1 - a) * fake``, ``a ~ U[0, 1]`` per example (Gulrajani et al. 2017,
    arXiv 1704.00028, eq. 3; weight 10 in the paper).

    The gradient norm is taken over all non-batch axes together, so a sequence of embeddings
    ``(B, T, E)`` gets one norm per sequence. The graph is kept (``create_graph=True``), so the
    penalty is differentiable with respect to the critic's parameters. ``real`` and ``fake`` are
    detached: the penalty trains the critic only.

    Args:
        critic: Maps a batch shaped like ``real`` to scores; its outputs are summed, so any
            output shape with the batch first works.
        real: Real inputs, batch first, any rank (continuous: embed discrete tokens first).
        fake: Generated inputs, same shape as ``real``.
        target: Target gradient norm (1 for the 1-Lipschitz constraint of WGAN-GP).
        generator: Random generator for the interpolation weights, for reproducibility.
    """
    if real.shape != fake.shape:
        raise ValueError(f"real {tuple(real.shape)} and fake {tuple(fake.shape)} differ in shape")
    alpha_shape = (real.shape[0],) + (1,) * (real.dim() - 1)
    if generator is None:
        alpha = torch.rand(alpha_shape, device=real.device, dtype=real.dtype)
    else:
        alpha = torch.rand(alpha_shape, generator=generator, device=generator.device)
        alpha = alpha.to(device=real.device, dtype=real.dtype)
    with torch.enable_grad():
        x_hat = (alpha * real.detach() + (1.0 - alpha) * fake.detach()).requires_grad_(True)
        (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    norm = grad.reshape(grad.shape[0], -1).norm(2, dim=1)
    return (norm - target).pow(2).mean()


# --------------------------------------------------------------------------------------------
# REINFORCE (score-function estimator)
# --------------------------------------------------------------------------------------------
def _sum_last_axis(values: Tensor, target_dim: int, mask: Tensor | None) -> Tensor:
    """Sum per-token values over the last axis (under ``mask``) down to ``target_dim`` axes."""
    if values.dim() == target_dim:
        if mask is not None:
            raise ValueError("mask is only meaningful for per-token values (one more axis)")
        return values
    if values.dim() != target_dim + 1:
        raise ValueError(
            f"expected per-sequence values with {target_dim} axes or per-token values with "
            f"{target_dim + 1}, got shape {tuple(values.shape)}"
        )
    if mask is not None:
        values = values.masked_fill(~mask.to(torch.bool), 0.0)
    return values.sum(dim=-1)


def reinforce_loss(
    log_probs: Tensor,
    rewards: Tensor,
    *,
    baseline: Tensor | float = 0.0,
    mask: Tensor | None = None,
    entropy: Tensor | None = None,
    entropy_weight: float = 0.0,
    normalize_advantage: bool = False,
) -> Tensor:
    """REINFORCE surrogate loss ``-mean[(r - b) * log pi(y)] - entropy_weight * mean[H]``.

    Its gradient is the score-function estimate of ``-grad E_pi[r]`` (Williams 1992, "Simple
    statistical gradient-following algorithms", Machine Learning 8). The advantage ``r - b`` is
    detached, so no gradient flows into the reward or the baseline. Any baseline that does not
    depend on the sampled ``y`` keeps the estimate unbiased and can cut its variance:

    - a constant or running average: :class:`MovingAverageBaseline`;
    - the mean reward of the other samples of the same input: :func:`leave_one_out_baseline`
      (Kool et al. 2019, "Buy 4 REINFORCE samples, get a baseline for free!");
    - self-critical sequence training (Rennie et al. 2017, arXiv 1612.00563): pass the reward of
      the greedy (argmax) decode of the same input as ``baseline``; decode it under
      ``torch.no_grad()``. No helper is needed.

    Args:
        log_probs: Log-probabilities of the sampled outputs under the policy, with gradient:
            per sequence, shaped like ``rewards``, or per token, with one extra last axis
            ``T`` (summed over ``T`` under ``mask`` to give ``log pi(y)``).
        rewards: Rewards, ``(B,)``, or ``(B, K)`` for K samples per input.
        baseline: Subtracted from ``rewards``; a float or a tensor broadcastable to them.
        mask: ``(..., T)`` mask of real (non-pad) tokens for per-token ``log_probs``/``entropy``.
        entropy: Optional policy entropy for an exploration bonus, per sequence (shaped like
            ``rewards``) or per token (like ``log_probs``, summed over valid tokens the same
            way). Averaged over the batch.
        entropy_weight: Weight of the entropy bonus (subtracted from the loss).
        normalize_advantage: Standardise the advantages over the batch (zero mean, unit
            standard deviation). Common in practice and reduces variance, but the batch
            statistics make the estimate slightly biased.

    Returns:
        A scalar to minimise.
    """
    seq_log_prob = _sum_last_axis(log_probs, rewards.dim(), mask)
    advantage = (rewards - baseline).detach()
    if advantage.shape != seq_log_prob.shape:
        raise ValueError(
            f"advantage shape {tuple(advantage.shape)} does not match log-prob shape "
            f"{tuple(seq_log_prob.shape)}"
        )
    if normalize_advantage:
        centred = advantage - advantage.mean()
        advantage = centred / (centred.pow(2).mean().sqrt() + 1e-8)
    loss = -(advantage * seq_log_prob).mean()
    if entropy is not None and entropy_weight != 0.0:
        loss = loss - entropy_weight * _sum_last_axis(entropy, rewards.dim(), mask).mean()
    return loss


class MovingAverageBaseline:
    """Exponential moving average of the mean reward, a baseline for :func:`reinforce_loss`.

    Bias-corrected like Adam's moments (Kingma & Ba 2015, arXiv 1412.6980, Sec. 3), so the first
    batches are not pulled towards zero.

    Args:
        momentum: Weight of the old average, in ``[0, 1)``.

    Example::

        baseline = MovingAverageBaseline(momentum=0.9)
        loss = reinforce_loss(log_probs, rewards, baseline=baseline.update(rewards))
    """

    def __init__(self, *, momentum: float = 0.9) -> None:
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}")
        self.momentum = momentum
        self._average = 0.0
        self._updates = 0

    @property
    def value(self) -> float:
        """The current baseline (0.0 before the first update)."""
        if self._updates == 0:
            return 0.0
        return self._average / (1.0 - self.momentum**self._updates)

    def update(self, rewards: Tensor | float) -> float:
        """Fold a batch's mean reward into the average.

        Returns:
            The baseline *before* this update, so that it does not depend on the current batch
            and the REINFORCE estimate stays unbiased.
        """
        before = self.value
        mean = float(torch.as_tensor(rewards, dtype=torch.float64).mean())
        self._average = self.momentum * self._average + (1.0 - self.momentum) * mean
        self._updates += 1
        return before

    def state_dict(self) -> dict[str, float | int]:
        """State for checkpoints."""
        return {"momentum": self.momentum, "average": self._average, "updates": self._updates}

    def load_state_dict(self, state: dict[str, float | int]) -> None:
        """Restore the state written by :meth:`state_dict`."""
        self.momentum = float(state["momentum"])
        self._average = float(state["average"])
        self._updates = int(state["updates"])

    def __repr__(self) -> str:
        return f"MovingAverageBaseline(momentum={self.momentum}, value={self.value:.4g})"


def leave_one_out_baseline(rewards: Tensor) -> Tensor:
    """For K samples per input, each sample's baseline is the mean reward of the other K - 1.

    With :func:`reinforce_loss` this gives the estimator of Kool et al. 2019 ("Buy 4 REINFORCE
    samples, get a baseline for free!", ICLR DeepRLStructPred workshop): unbiased, because a
    sample's baseline does not depend on that sample.

    Args:
        rewards: ``(..., K)`` rewards, K >= 2 samples per input on the last axis.

    Returns:
        Baselines of the same shape, detached.
    """
    k = rewards.shape[-1]
    if k < 2:
        raise ValueError("leave_one_out_baseline needs at least 2 samples per input (last axis)")
    rewards = rewards.detach()
    return (rewards.sum(dim=-1, keepdim=True) - rewards) / (k - 1)


# --------------------------------------------------------------------------------------------
# Weight penalties
# --------------------------------------------------------------------------------------------
def _penalised(params: Iterable[Tensor] | nn.Module) -> list[Tensor]:
    if isinstance(params, nn.Module):
        return [p for p in params.parameters() if p.requires_grad and p.dim() >= 2]
    return list(params)


def l1_penalty(params: Iterable[Tensor] | nn.Module) -> Tensor:
    """``sum |w|`` over the given weights (lasso; Tibshirani 1996).

    Args:
        params: Tensors to penalise (all of them), or a module: then only its trainable
            parameters with two or more axes (weight matrices, conv kernels, embeddings) are
            penalised, and biases and normalisation scales/shifts (1-D) are skipped, the usual
            weight-decay convention. Pass ``module.parameters()`` to include everything.

    Returns:
        A scalar (0 when there is nothing to penalise).
    """
    tensors = _penalised(params)
    if not tensors:
        return torch.zeros(())
    return sum((t.abs().sum() for t in tensors[1:]), tensors[0].abs().sum())


def l2_penalty(params: Iterable[Tensor] | nn.Module) -> Tensor:
    """``sum w^2`` over the given weights (no factor 1/2; weight decay ``lambda`` matches a
    penalty weight ``lambda / 2`` for SGD).

    Args:
        params: Tensors to penalise (all of them), or a module: then only its trainable
            parameters with two or more axes are penalised (see :func:`l1_penalty`).

    Returns:
        A scalar (0 when there is nothing to penalise).
    """
    tensors = _penalised(params)
    if not tensors:
        return torch.zeros(())
    return sum((t.pow(2).sum() for t in tensors[1:]), tensors[0].pow(2).sum())
