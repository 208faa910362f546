"""Tests for seqae.core.losses: each value against an independent formula or a hand computation."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import distributions as D
from torch import nn

from seqae.core import losses as L

REDUCTIONS = ["none", "per_example", "batch_mean", "mean", "sum"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _manual_reduce(elem: torch.Tensor, reduction: str) -> torch.Tensor:
    """Independent restatement of the module's reductions for (B, ...) tensors."""
    per_example = torch.stack([e.sum() for e in elem])
    return {
        "none": elem,
        "per_example": per_example,
        "batch_mean": per_example.sum() / elem.shape[0],
        "mean": elem.sum() / elem.numel(),
        "sum": elem.sum(),
    }[reduction]


# ------------------------------------------------------------------------------------------
# reduce
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_reduce_matches_manual(reduction: str) -> None:
    x = torch.randn(3, 4, 5, generator=_gen())
    torch.testing.assert_close(L.reduce(x, reduction), _manual_reduce(x, reduction))


def test_reduce_rejects_unknown() -> None:
    with pytest.raises(ValueError, match="unknown reduction"):
        L.reduce(torch.zeros(2), "avg")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------
# reconstruction
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse(reduction: str) -> None:
    g = _gen(1)
    x_hat, x = torch.randn(4, 3, 2, generator=g), torch.randn(4, 3, 2, generator=g)
    expected = _manual_reduce((x_hat - x) * (x_hat - x), reduction)
    torch.testing.assert_close(L.mse(x_hat, x, reduction=reduction), expected)


def test_mse_default_is_elementwise_mean() -> None:
    assert L.mse(torch.tensor([[1.0, 3.0]]), torch.zeros(1, 2)).item() == pytest.approx(5.0)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_bce_with_logits_matches_manual(reduction: str) -> None:
    g = _gen(2)
    logits = 3 * torch.randn(5, 7, generator=g)
    x = torch.rand(5, 7, generator=g)  # soft targets are allowed
    p = 1 / (1 + torch.exp(-logits.double()))
    manual = -(x * torch.log(p) + (1 - x) * torch.log(1 - p))
    out = L.bce_with_logits(logits, x, reduction=reduction)
    torch.testing.assert_close(
        out.double(), _manual_reduce(manual, reduction), atol=1e-5, rtol=1e-5
    )


def test_bce_with_logits_stable_for_large_logits() -> None:
    out = L.bce_with_logits(torch.tensor([[200.0, -200.0]]), torch.tensor([[0.0, 1.0]]))
    assert out.item() == pytest.approx(400.0)


def test_bce_default_is_nats_per_example() -> None:
    logits = torch.zeros(2, 3)
    assert L.bce_with_logits(logits, torch.ones(2, 3)).item() == pytest.approx(3 * math.log(2))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_sigma", [0.0, -1.3, "per_channel", "per_element"])
def test_gaussian_nll_matches_normal_log_prob(reduction: str, log_sigma: object) -> None:
    g = _gen(3)
    mean, x = torch.randn(4, 3, 5, generator=g), torch.randn(4, 3, 5, generator=g)
    if log_sigma == "per_channel":
        log_sigma = 0.3 * torch.randn(3, 1, generator=g)
    elif log_sigma == "per_element":
        log_sigma = 0.3 * torch.randn(4, 3, 5, generator=g)
    sigma = torch.exp(torch.as_tensor(log_sigma))
    reference = -D.Normal(mean, sigma).log_prob(x)
    out = L.gaussian_nll(mean, x, log_sigma=log_sigma, reduction=reduction)
    torch.testing.assert_close(out, _manual_reduce(reference, reduction), atol=1e-5, rtol=1e-5)


def test_gaussian_nll_hand_value() -> None:
    # one element, x - mean = 2, sigma = e: 0.5 * (2/e)^2 + 1 + 0.5 log(2 pi)
    out = L.gaussian_nll(torch.zeros(1, 1), torch.full((1, 1), 2.0), log_sigma=1.0)
    assert out.item() == pytest.approx(0.5 * (2 / math.e) ** 2 + 1 + 0.5 * math.log(2 * math.pi))


def test_gaussian_nll_learned_sigma_gets_gradient() -> None:
    g = _gen(4)
    mean, x = torch.zeros(8, 4), 2.0 * torch.randn(8, 4, generator=g)
    log_sigma = nn.Parameter(torch.zeros(()))
    L.gaussian_nll(mean, x, log_sigma=log_sigma).backward()
    # d/dls sum[0.5 r^2 e^{-2 ls} + ls] / B at ls = 0 = sum(1 - r^2) / B
    expected = (1 - x.pow(2)).sum() / 8
    torch.testing.assert_close(log_sigma.grad, expected)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["float", "buffer", "parameter"])
@pytest.mark.parametrize("shape", [(6, 5), (4, 3, 5), (7,)])
def test_gaussian_nll_shared_sigma_fast_path_matches_elementwise_form(
    reduction: str, kind: str, shape: tuple[int, ...]
) -> None:
    # one shared sigma takes a shortcut (squared errors reduced first, normaliser added once):
    # the same values and gradients, up to float rounding, as the elementwise formula
    g = _gen(5)
    mean = torch.randn(*shape, generator=g, requires_grad=True)
    x = torch.randn(*shape, generator=g)
    value = -0.7
    log_sigma: float | torch.Tensor = value
    if kind != "float":
        log_sigma = torch.tensor(value, requires_grad=kind == "parameter")
    out = L.gaussian_nll(mean, x, log_sigma=log_sigma, reduction=reduction)
    expected = 0.5 * ((x - mean) / math.exp(value)) ** 2 + value + 0.5 * math.log(2 * math.pi)
    torch.testing.assert_close(out, _manual_reduce(expected, reduction), atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad(out.sum(), mean)
    (expected_grad,) = torch.autograd.grad(_manual_reduce(expected, reduction).sum(), mean)
    torch.testing.assert_close(grad, expected_grad)
    if kind == "parameter":
        out = L.gaussian_nll(mean.detach(), x, log_sigma=log_sigma, reduction=reduction)
        (grad_ls,) = torch.autograd.grad(out.sum(), log_sigma)
        ls_ref = torch.tensor(value, requires_grad=True)
        ref = 0.5 * ((x - mean.detach()) * torch.exp(-ls_ref)) ** 2 + ls_ref
        (expected_ls,) = torch.autograd.grad(_manual_reduce(ref, reduction).sum(), ls_ref)
        torch.testing.assert_close(grad_ls, expected_ls)


def test_gaussian_nll_rejects_log_sigma_that_changes_shape() -> None:
    with pytest.raises(ValueError, match="log_sigma"):
        L.gaussian_nll(torch.zeros(2, 3), torch.zeros(2, 3), log_sigma=torch.zeros(5, 2, 3))


def test_optimal_log_sigma_is_the_minimiser() -> None:
    g = _gen(5)
    mean, x = torch.randn(16, 10, generator=g), torch.randn(16, 10, generator=g)
    ls = L.optimal_log_sigma(mean, x)
    assert ls.dim() == 0
    torch.testing.assert_close(ls, 0.5 * torch.log(((x - mean) ** 2).mean()))
    best = L.gaussian_nll(mean, x, log_sigma=ls)
    for delta in (-0.05, 0.05, -0.5, 0.5):
        assert L.gaussian_nll(mean, x, log_sigma=ls + delta) > best
    # closed form at the optimum: D * (0.5 + log sigma + 0.5 log 2 pi) per example
    torch.testing.assert_close(best, 10 * (0.5 + ls + 0.5 * math.log(2 * math.pi)))


def test_optimal_log_sigma_clamped_for_perfect_reconstruction() -> None:
    x = torch.randn(3, 4, generator=_gen(6))
    assert L.optimal_log_sigma(x, x.clone(), min_log_sigma=-6.0).item() == -6.0


# ------------------------------------------------------------------------------------------
# token cross-entropy
# ------------------------------------------------------------------------------------------
PAD = 0


def _tokens(seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    g = _gen(seed)
    logits = torch.randn(3, 5, 6, generator=g)
    targets = torch.randint(1, 6, (3, 5), generator=g)
    targets[0, 3:] = PAD
    targets[2, 1:] = PAD
    return logits, targets


def test_token_ce_mean_matches_cross_entropy_ignore_index() -> None:
    logits, targets = _tokens()
    expected = F.cross_entropy(logits.reshape(-1, 6), targets.reshape(-1), ignore_index=PAD)
    torch.testing.assert_close(L.token_cross_entropy(logits, targets, pad_id=PAD), expected)


def test_token_ce_ignores_pad_positions() -> None:
    logits, targets = _tokens()
    perturbed = logits.clone()
    perturbed[targets == PAD] = 100 * torch.randn_like(perturbed[targets == PAD])
    for reduction in REDUCTIONS:
        a = L.token_cross_entropy(logits, targets, pad_id=PAD, reduction=reduction)
        b = L.token_cross_entropy(perturbed, targets, pad_id=PAD, reduction=reduction)
        torch.testing.assert_close(a, b)
    none = L.token_cross_entropy(logits, targets, pad_id=PAD, reduction="none")
    assert none.shape == targets.shape
    assert (none[targets == PAD] == 0).all() and (none[targets != PAD] > 0).all()


@pytest.mark.parametrize("reduction", ["none", "per_example", "batch_mean", "sum"])
def test_token_ce_reductions_match_manual(reduction: str) -> None:
    logits, targets = _tokens()
    log_p = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    elem = torch.where(targets != PAD, -log_p, torch.zeros(()))
    out = L.token_cross_entropy(logits, targets, pad_id=PAD, reduction=reduction)
    torch.testing.assert_close(out, _manual_reduce(elem, reduction))


def test_token_ce_mask_and_out_of_range_pad() -> None:
    logits, targets = _tokens()
    mask = targets != PAD
    ignore = targets.masked_fill(~mask, -100)  # out of [0, V)
    reference = L.token_cross_entropy(logits, targets, pad_id=PAD)
    torch.testing.assert_close(L.token_cross_entropy(logits, targets, mask=mask), reference)
    torch.testing.assert_close(L.token_cross_entropy(logits, ignore, pad_id=-100), reference)
    # mask and pad_id combine: masking one more real token changes the result
    mask2 = mask.clone()
    mask2[1, 0] = False
    expected = F.cross_entropy(
        logits[mask2].reshape(-1, 6), targets[mask2].reshape(-1), reduction="mean"
    )
    torch.testing.assert_close(
        L.token_cross_entropy(logits, targets, pad_id=PAD, mask=mask2), expected
    )


def test_token_ce_label_smoothing_formula() -> None:
    logits, targets = _tokens()
    eps, v = 0.2, logits.shape[-1]
    log_p = torch.log_softmax(logits, dim=-1)
    nll = -log_p.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    smooth = (1 - eps) * nll + eps * (-log_p.sum(-1) / v)
    valid = targets != PAD
    expected = smooth[valid].mean()
    out = L.token_cross_entropy(logits, targets, pad_id=PAD, label_smoothing=eps)
    torch.testing.assert_close(out, expected)


def test_token_ce_all_padding_is_zero_not_nan() -> None:
    logits = torch.randn(2, 3, 4, generator=_gen(8))
    out = L.token_cross_entropy(logits, torch.zeros(2, 3, dtype=torch.long), pad_id=0)
    assert out.item() == 0.0


def test_token_ce_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="disagree"):
        L.token_cross_entropy(torch.zeros(2, 3, 4), torch.zeros(2, 4, dtype=torch.long))


# ------------------------------------------------------------------------------------------
# KL divergences (existing API)
# ------------------------------------------------------------------------------------------
def _normals(seed: int = 9) -> tuple[torch.Tensor, ...]:
    g = _gen(seed)
    return tuple(torch.randn(4, 6, generator=g) for _ in range(4))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_kl_normal_matches_torch_distributions(reduction: str) -> None:
    mu_q, lv_q, mu_p, lv_p = _normals()
    ref = D.kl_divergence(D.Normal(mu_q, (0.5 * lv_q).exp()), D.Normal(mu_p, (0.5 * lv_p).exp()))
    out = L.kl_normal(mu_q, lv_q, mu_p, lv_p, reduction=reduction)
    torch.testing.assert_close(out, _manual_reduce(ref, reduction), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_kl_normal_std_matches_torch_distributions(reduction: str) -> None:
    mu, lv, _, _ = _normals()
    ref = D.kl_divergence(D.Normal(mu, (0.5 * lv).exp()), D.Normal(0.0, 1.0))
    out = L.kl_normal_std(mu, lv, reduction=reduction)
    torch.testing.assert_close(out, _manual_reduce(ref, reduction), atol=1e-5, rtol=1e-5)


def test_kl_normal_std_free_bits() -> None:
    mu = torch.tensor([[0.0, 3.0], [0.0, 1.0]])
    lv = torch.zeros(2, 2)
    # per-dimension batch-mean KL: [0, (9 + 1) / 4] = [0, 2.5]; clamp at 1 -> 1 + 2.5
    assert L.kl_normal_std(mu, lv, free_bits=1.0).item() == pytest.approx(3.5)
    assert L.kl_normal_std(mu, lv, free_bits=1.0, reduction="sum").item() == pytest.approx(7.0)
    with pytest.raises(ValueError, match="free_bits"):
        L.kl_normal_std(mu, lv, free_bits=1.0, reduction="mean")


@pytest.mark.parametrize("prior", [0.5, 0.2])
def test_kl_bernoulli_matches_torch_distributions(prior: float) -> None:
    logits = 2 * torch.randn(3, 5, generator=_gen(10))
    ref = D.kl_divergence(D.Bernoulli(logits=logits), D.Bernoulli(probs=torch.tensor(prior)))
    out = L.kl_bernoulli(logits, prior=prior, reduction="per_example")
    torch.testing.assert_close(out, ref.sum(1), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="prior"):
        L.kl_bernoulli(logits, prior=1.0)


def test_kl_categorical_uniform_matches_torch_distributions() -> None:
    logits = torch.randn(3, 4, 7, generator=_gen(11))
    ref = D.kl_divergence(D.Categorical(logits=logits), D.Categorical(logits=torch.zeros(7)))
    out = L.kl_categorical_uniform(logits, reduction="none")
    assert out.shape == (3, 4)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_vq_losses_route_gradients() -> None:
    z_e = torch.randn(2, 3, requires_grad=True, generator=_gen(12))
    z_q = torch.randn(2, 3, requires_grad=True, generator=_gen(13))
    expected = ((z_e - z_q) ** 2).mean().item()
    codebook = L.vq_codebook_loss(z_e, z_q)
    commit = L.vq_commitment_loss(z_e, z_q)
    assert codebook.item() == pytest.approx(expected) and commit.item() == pytest.approx(expected)
    (g_e,) = torch.autograd.grad(codebook, z_e, allow_unused=True)
    assert g_e is None
    (g_q,) = torch.autograd.grad(commit, z_q, allow_unused=True)
    assert g_q is None


# ------------------------------------------------------------------------------------------
# total correlation
# ------------------------------------------------------------------------------------------
def _posterior_samples(
    mu: torch.Tensor, logvar: torch.Tensor, seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    z = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=_gen(seed))
    return z, mu, logvar


def _independent(batch: int = 1000, dim: int = 4, seed: int = 14):
    mu = 0.5 * torch.randn(batch, dim, generator=_gen(seed))
    return _posterior_samples(mu, torch.full((batch, dim), math.log(0.75)), seed + 1)


def _correlated(batch: int = 1000, dim: int = 4, seed: int = 16):
    mu = torch.randn(batch, 1, generator=_gen(seed)).expand(batch, dim)  # all dims equal
    return _posterior_samples(mu, torch.full((batch, dim), math.log(0.01)), seed + 1)


def test_tc_near_zero_for_independent_latents() -> None:
    z, mu, lv = _independent()
    out = L.tc_decomposition(z, mu, lv, dataset_size=z.shape[0])
    assert abs(out.total_correlation.item()) < 0.02
    assert all(t.dim() == 0 for t in out)


@pytest.mark.parametrize("estimator", ["mss", "mws"])
def test_tc_positive_for_correlated_latents(estimator: str) -> None:
    ind = L.tc_decomposition(*_independent(), dataset_size=1000, estimator=estimator)
    cor = L.tc_decomposition(*_correlated(), dataset_size=1000, estimator=estimator)
    assert cor.total_correlation.item() > ind.total_correlation.item() + 3.0


@pytest.mark.parametrize("estimator", ["mss", "mws"])
@pytest.mark.parametrize("make", [_independent, _correlated])
def test_tc_terms_sum_to_monte_carlo_kl(estimator: str, make) -> None:
    z, mu, lv = make()
    out = L.tc_decomposition(z, mu, lv, dataset_size=5000, estimator=estimator)
    total = out.mutual_info + out.total_correlation + out.dimension_kl
    # exact identity on the samples: mean[log q(z|x) - log p(z)]
    per_example = (D.Normal(mu, (0.5 * lv).exp()).log_prob(z) - D.Normal(0.0, 1.0).log_prob(z)).sum(
        1
    )
    torch.testing.assert_close(total, per_example.mean(), atol=1e-3, rtol=1e-4)
    # approximately the analytic mean KL, within Monte-Carlo error
    analytic = L.kl_normal_std(mu, lv)
    stderr = per_example.std() / math.sqrt(len(per_example))
    assert abs(total.item() - analytic.item()) < 4 * stderr.item()


def test_tc_weights_in_the_deterministic_limit() -> None:
    # Very narrow, well separated posteriors: the aggregate posterior is N point masses, so
    # MI = log N and TC = (D - 1) log N exactly; MWS is offset by log B per log-density.
    batch, dim, n = 200, 3, 10_000
    # each dimension: a shuffled grid with spacing 0.03 = 30 posterior standard deviations
    grid = torch.linspace(-3.0, 3.0, batch)
    mu = torch.stack([grid[torch.randperm(batch, generator=_gen(18 + d))] for d in range(dim)], 1)
    z, mu, lv = _posterior_samples(mu, torch.full((batch, dim), math.log(1e-6)), 19)
    mss = L.tc_decomposition(z, mu, lv, dataset_size=n, estimator="mss")
    assert mss.mutual_info.item() == pytest.approx(math.log(n), abs=1e-2)
    assert mss.total_correlation.item() == pytest.approx((dim - 1) * math.log(n), abs=1e-2)
    mws = L.tc_decomposition(z, mu, lv, dataset_size=n, estimator="mws")
    assert mws.mutual_info.item() == pytest.approx(math.log(n * batch), abs=1e-2)
    offset = mws.total_correlation.item() - mss.total_correlation.item()
    assert offset == pytest.approx((dim - 1) * math.log(batch), abs=1e-2)


def test_tc_mss_with_whole_dataset_is_exact_mixture() -> None:
    z, mu, lv = _independent(batch=50, dim=2, seed=20)
    out = L.tc_decomposition(z, mu, lv, dataset_size=50, estimator="mss")
    comp = D.Independent(D.Normal(mu, (0.5 * lv).exp()), 1)
    mixture = D.MixtureSameFamily(D.Categorical(logits=torch.zeros(50)), comp)
    log_q_z = mixture.log_prob(z)
    log_q_zx = comp.log_prob(z)
    torch.testing.assert_close(out.mutual_info, (log_q_zx - log_q_z).mean(), atol=1e-4, rtol=1e-4)


def test_tc_decomposition_validates() -> None:
    z, mu, lv = _independent(batch=4, dim=2)
    with pytest.raises(ValueError, match="estimator"):
        L.tc_decomposition(z, mu, lv, dataset_size=10, estimator="iwae")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="dataset_size"):
        L.tc_decomposition(z, mu, lv, dataset_size=2)


def test_tc_is_differentiable() -> None:
    z, mu, lv = _correlated(batch=16, dim=3)
    mu = mu.clone().requires_grad_(True)
    out = L.tc_decomposition(mu + 0.1 * z, mu, lv, dataset_size=100)
    out.total_correlation.backward()
    assert mu.grad is not None and torch.isfinite(mu.grad).all()


# ------------------------------------------------------------------------------------------
# adversarial
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kind", "d_value", "g_value"),
    [("nonsaturating", 2 * math.log(2), math.log(2)), ("hinge", 2.0, 0.0), ("wgan", 0.0, 0.0)],
)
def test_gan_losses_at_zero_logits(kind: str, d_value: float, g_value: float) -> None:
    zeros = torch.zeros(5)
    assert L.gan_discriminator_loss(zeros, zeros, kind=kind).item() == pytest.approx(d_value)
    assert L.gan_generator_loss(zeros, kind=kind).item() == pytest.approx(g_value, abs=1e-7)


def test_gan_losses_hand_values() -> None:
    real, fake = torch.tensor([2.0, 0.5]), torch.tensor([-3.0, 0.0])
    sig = torch.sigmoid
    ns_d = -(torch.log(sig(real)).mean() + torch.log(1 - sig(fake)).mean())
    torch.testing.assert_close(L.gan_discriminator_loss(real, fake), ns_d)
    torch.testing.assert_close(L.gan_generator_loss(fake), -torch.log(sig(fake)).mean())
    # hinge: relu(1 - [2, .5]) = [0, .5] -> .25; relu(1 + [-3, 0]) = [0, 1] -> .5
    assert L.gan_discriminator_loss(real, fake, kind="hinge").item() == pytest.approx(0.75)
    assert L.gan_generator_loss(fake, kind="hinge").item() == pytest.approx(1.5)
    assert L.gan_discriminator_loss(real, fake, kind="wgan").item() == pytest.approx(-2.75)
    assert L.gan_generator_loss(fake, kind="wgan").item() == pytest.approx(1.5)
    with pytest.raises(ValueError, match="hinge"):
        L.gan_generator_loss(fake, kind="lsgan")  # type: ignore[arg-type]


def _linear_critic(weight: torch.Tensor):
    return lambda x: (x * weight).reshape(x.shape[0], -1).sum(1)


@pytest.mark.parametrize("shape", [(8, 5), (8, 3, 4), (8, 2, 3, 4)])
def test_gradient_penalty_linear_critics(shape: tuple[int, ...]) -> None:
    g = _gen(21)
    real, fake = torch.randn(shape, generator=g), torch.randn(shape, generator=g)
    w = torch.randn(shape[1:], generator=g)
    unit = w / w.norm()
    gp = L.gradient_penalty(_linear_critic(unit), real, fake, generator=g)
    assert gp.item() == pytest.approx(0.0, abs=1e-10)
    steep = L.gradient_penalty(_linear_critic(3 * unit), real, fake, generator=g)
    assert steep.item() == pytest.approx(4.0, rel=1e-5)  # (3 - 1)^2
    assert L.gradient_penalty(_linear_critic(3 * unit), real, fake, target=3.0).item() < 1e-10


def test_gradient_penalty_sequence_of_embeddings_is_differentiable() -> None:
    # A critic over (B, T, E) embeddings: shared linear score per position, summed over T.
    b, t, e = 6, 5, 4
    g = _gen(22)
    real, fake = torch.randn(b, t, e, generator=g), torch.randn(b, t, e, generator=g)
    w = nn.Parameter(torch.randn(e, generator=g))
    gp = L.gradient_penalty(lambda x: (x @ w).sum(1), real, fake)
    norm = w.detach().norm() * math.sqrt(t)  # grad is w at every position
    assert gp.item() == pytest.approx((norm.item() - 1) ** 2, rel=1e-5)
    gp.backward()
    expected = 2 * (norm - 1) * math.sqrt(t) * w.detach() / w.detach().norm()
    torch.testing.assert_close(w.grad, expected)


def test_gradient_penalty_uses_interpolates_and_works_under_no_grad() -> None:
    g = _gen(23)
    real, fake = torch.randn(16, 3, 2, generator=g), torch.randn(16, 3, 2, generator=g)
    seen: list[torch.Tensor] = []

    def critic(x: torch.Tensor) -> torch.Tensor:
        seen.append(x.detach())
        return (x**3).sum(dim=(1, 2))

    with torch.no_grad():
        gp = L.gradient_penalty(critic, real, fake)
    assert gp.item() > 0
    alpha = (seen[0] - fake) / (real - fake)  # one interpolation weight per example
    a0 = alpha[:, :1, :1]
    torch.testing.assert_close(alpha, a0.expand_as(alpha), atol=1e-4, rtol=1e-4)
    assert (a0 >= 0).all() and (a0 <= 1).all() and a0.std() > 0.1


def test_gradient_penalty_shape_mismatch() -> None:
    with pytest.raises(ValueError, match="shape"):
        L.gradient_penalty(lambda x: x.sum(), torch.zeros(2, 3), torch.zeros(2, 4))


# ------------------------------------------------------------------------------------------
# REINFORCE
# ------------------------------------------------------------------------------------------
def test_reinforce_loss_hand_value_and_gradient() -> None:
    log_probs = torch.tensor([-1.0, -2.0, -0.5], requires_grad=True)
    rewards = torch.tensor([1.0, 0.0, 3.0])
    loss = L.reinforce_loss(log_probs, rewards, baseline=1.0)
    # advantages [0, -1, 2]: -(0 + 2 - 1) / 3
    assert loss.item() == pytest.approx(-1.0 / 3)
    loss.backward()
    torch.testing.assert_close(log_probs.grad, torch.tensor([0.0, 1.0, -2.0]) / 3)


def test_reinforce_loss_detaches_rewards_and_baseline() -> None:
    log_probs = torch.tensor([-1.0, -2.0], requires_grad=True)
    rewards = torch.tensor([1.0, 2.0], requires_grad=True)
    baseline = torch.tensor(0.5, requires_grad=True)
    L.reinforce_loss(log_probs, rewards, baseline=baseline).backward()
    assert rewards.grad is None and baseline.grad is None and log_probs.grad is not None


def test_reinforce_loss_per_token_with_mask() -> None:
    g = _gen(24)
    tok = torch.randn(3, 4, generator=g)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    rewards = torch.tensor([1.0, -2.0, 0.5])
    seq = (tok * mask).sum(1)
    expected = -(rewards * seq).mean()
    torch.testing.assert_close(L.reinforce_loss(tok, rewards, mask=mask), expected)
    # padding values never matter
    noisy = torch.where(mask, tok, torch.full_like(tok, 1e3))
    torch.testing.assert_close(L.reinforce_loss(noisy, rewards, mask=mask), expected)


def test_reinforce_entropy_bonus() -> None:
    log_probs = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)
    entropy = torch.ones(2, 3)
    loss = L.reinforce_loss(
        log_probs, torch.zeros(2), mask=mask, entropy=entropy, entropy_weight=0.1
    )
    assert loss.item() == pytest.approx(-0.1 * (2 + 3) / 2)  # entropy summed over valid tokens
    per_seq = L.reinforce_loss(
        torch.zeros(2), torch.zeros(2), entropy=torch.tensor([1.0, 3.0]), entropy_weight=0.5
    )
    assert per_seq.item() == pytest.approx(-1.0)


def test_reinforce_normalize_advantage() -> None:
    log_probs = torch.zeros(4, requires_grad=True)
    rewards = torch.tensor([1.0, 2.0, 3.0, 10.0])
    L.reinforce_loss(log_probs, rewards, baseline=100.0, normalize_advantage=True).backward()
    adv = -log_probs.grad * 4
    assert adv.mean().item() == pytest.approx(0.0, abs=1e-6)
    assert adv.pow(2).mean().item() == pytest.approx(1.0, rel=1e-5)
    centred = rewards - rewards.mean()
    torch.testing.assert_close(adv, centred / centred.pow(2).mean().sqrt())


def test_reinforce_shape_checks() -> None:
    with pytest.raises(ValueError, match="mask"):
        L.reinforce_loss(torch.zeros(3), torch.zeros(3), mask=torch.ones(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="axes"):
        L.reinforce_loss(torch.zeros(3, 2, 2), torch.zeros(3))
    with pytest.raises(ValueError, match="advantage shape"):
        L.reinforce_loss(torch.zeros(3), torch.zeros(3), baseline=torch.zeros(2, 3))


# A 4-armed bandit with a softmax policy: the exact gradient of E[r] is known.
THETA = torch.tensor([0.5, -0.3, 0.1, 0.8], dtype=torch.float64)
REWARD = torch.tensor([1.0, 3.0, 0.0, 2.0], dtype=torch.float64) + 10.0  # offset: baselines help


def _exact_gradient() -> torch.Tensor:
    theta = THETA.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad((torch.softmax(theta, 0) * REWARD).sum(), theta)
    return grad


def _reinforce_estimates(baseline_kind: str, n_batches: int = 300, batch: int = 32):
    """One REINFORCE gradient estimate of grad E[r] per minibatch."""
    g = _gen(25)
    moving = L.MovingAverageBaseline(momentum=0.9)
    probs = torch.softmax(THETA, 0)
    estimates = []
    for _ in range(n_batches):
        theta = THETA.clone().requires_grad_(True)
        log_pi = torch.log_softmax(theta, 0)
        if baseline_kind == "leave_one_out":
            actions = torch.multinomial(probs, batch, replacement=True, generator=g).view(-1, 4)
        else:
            actions = torch.multinomial(probs, batch, replacement=True, generator=g)
        rewards = REWARD[actions]
        baseline: torch.Tensor | float
        if baseline_kind == "none":
            baseline = 0.0
        elif baseline_kind == "expected":
            baseline = float((probs * REWARD).sum())
        elif baseline_kind == "self_critical":
            baseline = float(REWARD[THETA.argmax()])  # the greedy action's reward
        elif baseline_kind == "moving":
            baseline = moving.update(rewards)
        else:
            baseline = L.leave_one_out_baseline(rewards)
        loss = L.reinforce_loss(log_pi[actions], rewards, baseline=baseline)
        (grad,) = torch.autograd.grad(-loss, theta)
        estimates.append(grad)
    return torch.stack(estimates)


@pytest.fixture(scope="module")
def no_baseline_estimates() -> torch.Tensor:
    return _reinforce_estimates("none")


def test_reinforce_gradient_is_unbiased(no_baseline_estimates: torch.Tensor) -> None:
    est = no_baseline_estimates
    stderr = est.std(0) / math.sqrt(len(est))
    assert ((est.mean(0) - _exact_gradient()).abs() < 4 * stderr).all()
    # and the test has power: a wrong sign would be many standard errors away
    assert ((est.mean(0) + _exact_gradient()).abs() > 4 * stderr).any()


@pytest.mark.parametrize("kind", ["expected", "self_critical", "moving", "leave_one_out"])
def test_baselines_keep_the_mean_and_reduce_variance(
    kind: str, no_baseline_estimates: torch.Tensor
) -> None:
    est = _reinforce_estimates(kind)
    stderr = est.std(0) / math.sqrt(len(est))
    assert ((est.mean(0) - _exact_gradient()).abs() < 4 * stderr + 1e-12).all()
    assert est.var(0).sum() < 0.2 * no_baseline_estimates.var(0).sum()


def test_moving_average_baseline() -> None:
    b = L.MovingAverageBaseline(momentum=0.5)
    assert b.value == 0.0
    assert b.update(torch.tensor([2.0, 4.0])) == 0.0  # value before the update
    assert b.value == pytest.approx(3.0)  # bias-corrected: 0.5 * 3 / (1 - 0.5)
    assert b.update(torch.tensor([7.0])) == pytest.approx(3.0)
    # average = 0.5 * 1.5 + 0.5 * 7 = 4.25, corrected by 1 - 0.25
    assert b.value == pytest.approx(4.25 / 0.75)
    restored = L.MovingAverageBaseline()
    restored.load_state_dict(b.state_dict())
    assert restored.value == b.value and restored.momentum == 0.5
    with pytest.raises(ValueError, match="momentum"):
        L.MovingAverageBaseline(momentum=1.0)


def test_leave_one_out_baseline() -> None:
    rewards = torch.tensor([[1.0, 2.0, 6.0], [0.0, 0.0, 3.0]], requires_grad=True)
    out = L.leave_one_out_baseline(rewards)
    torch.testing.assert_close(out, torch.tensor([[4.0, 3.5, 1.5], [1.5, 1.5, 0.0]]))
    assert not out.requires_grad
    with pytest.raises(ValueError, match="at least 2"):
        L.leave_one_out_baseline(torch.zeros(3, 1))


def test_leave_one_out_equals_kool_estimator() -> None:
    # Kool et al. 2019: 1/(K-1) sum_k (r_k - mean r) grad log p_k
    k = 4
    log_probs = torch.randn(1, k, generator=_gen(26)).requires_grad_(True)
    rewards = torch.tensor([[1.0, 5.0, 2.0, 0.0]])
    loss = L.reinforce_loss(log_probs, rewards, baseline=L.leave_one_out_baseline(rewards))
    loss.backward()
    kool = (rewards - rewards.mean()) / (k - 1)
    torch.testing.assert_close(-log_probs.grad, kool)


# ------------------------------------------------------------------------------------------
# weight penalties
# ------------------------------------------------------------------------------------------
def test_penalties_on_tensors_include_everything() -> None:
    a, b = torch.tensor([[1.0, -2.0]]), torch.tensor([3.0])
    assert L.l1_penalty([a, b]).item() == pytest.approx(6.0)
    assert L.l2_penalty([a, b]).item() == pytest.approx(14.0)
    assert L.l1_penalty([]).item() == 0.0


def test_penalties_on_module_skip_biases_and_norms() -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Embedding(5, 2))
    frozen = nn.Linear(2, 2)
    frozen.weight.requires_grad_(False)
    model.append(frozen)
    weights = [model[0].weight, model[2].weight]
    assert L.l1_penalty(model).item() == pytest.approx(sum(w.abs().sum() for w in weights).item())
    assert L.l2_penalty(model).item() == pytest.approx(sum(w.pow(2).sum() for w in weights).item())
    L.l2_penalty(model).backward()
    torch.testing.assert_close(model[0].weight.grad, 2 * model[0].weight.detach())
    assert model[0].bias.grad is None and model[1].weight.grad is None
