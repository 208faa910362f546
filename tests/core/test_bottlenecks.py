"""Tests for the core bottlenecks: identity, Gaussian (VAE), binary and one-hot codes."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from seqae.core.base import (
    Bottleneck,
    BottleneckOutput,
    NonFiniteInputError,
    PriorBottleneck,
    check_finite_input,
)
from seqae.core.binary import BinaryBottleneck
from seqae.core.gaussian import GaussianBottleneck
from seqae.core.identity import IdentityBottleneck
from seqae.core.onehot import OneHotBottleneck

# name -> factory(feature_dim) -> bottleneck; one entry per flag combination worth covering
CASES: dict[str, Callable[[int], nn.Module]] = {
    "identity": lambda fd: IdentityBottleneck(dim=6, feature_dim=fd),
    "identity_any": lambda fd: IdentityBottleneck(feature_dim=fd),
    "gaussian": lambda fd: GaussianBottleneck(latent_dim=3, feature_dim=fd),
    "gaussian_proj": lambda fd: GaussianBottleneck(latent_dim=3, in_dim=5, feature_dim=fd),
    "gaussian_iwae": lambda fd: GaussianBottleneck(latent_dim=3, num_samples=3, feature_dim=fd),
    "gaussian_freebits": lambda fd: GaussianBottleneck(latent_dim=3, free_bits=0.5, feature_dim=fd),
    "binary": lambda fd: BinaryBottleneck(code_dim=6, feature_dim=fd),
    "binary_det": lambda fd: BinaryBottleneck(code_dim=6, stochastic=False, feature_dim=fd),
    "binary_proj_noprior": lambda fd: BinaryBottleneck(
        code_dim=4, in_dim=5, prior_kl=False, prior=0.3, feature_dim=fd
    ),
    "onehot": lambda fd: OneHotBottleneck(num_categories=3, num_codes=2, feature_dim=fd),
    "onehot_soft": lambda fd: OneHotBottleneck(
        num_categories=3, num_codes=2, hard=False, feature_dim=fd
    ),
    "onehot_proj": lambda fd: OneHotBottleneck(
        num_categories=4, in_dim=5, prior_kl=False, temperature=0.5, feature_dim=fd
    ),
}

# layout name -> (feature_dim, shape with "F" for the feature axis)
LAYOUTS: dict[str, tuple[int, tuple[int | str, ...]]] = {
    "flat": (-1, (4, "F")),
    "seq_last": (-1, (4, 5, "F")),
    "seq_first": (1, (4, "F", 5)),
    "image": (1, (4, "F", 3, 2)),
}


def in_features(bn: nn.Module) -> int:
    return bn.in_size if bn.in_size is not None else 6


def make_input(
    bn: nn.Module, layout: str, *, scale: float = 1.0, batch: int | None = None
) -> torch.Tensor:
    _, shape = LAYOUTS[layout]
    f = in_features(bn)
    size = [f if s == "F" else s for s in shape]
    if batch is not None:
        size[0] = batch
    return scale * torch.randn(*size)


def build(name: str, layout: str = "flat") -> nn.Module:
    return CASES[name](LAYOUTS[layout][0])


def is_stochastic_in_training(bn: nn.Module) -> bool:
    if isinstance(bn, BinaryBottleneck):
        return bn.stochastic
    return isinstance(bn, GaussianBottleneck | OneHotBottleneck)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# --------------------------------------------------------------------------------------------
# Contract tests, every bottleneck and flag
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_output_shapes_and_contract(name: str, layout: str, training: bool) -> None:
    bn = build(name, layout).train(training)
    fd = bn.feature_dim
    h = make_input(bn, layout)
    out = bn(h)
    assert isinstance(out, BottleneckOutput)
    assert isinstance(bn, Bottleneck)

    expected = list(h.shape)
    expected[fd] = bn.code_size if bn.code_size is not None else h.shape[fd]
    if training and isinstance(bn, GaussianBottleneck):
        expected[0] *= bn.num_samples
    assert tuple(out.z.shape) == tuple(expected)
    assert out.z.dtype == h.dtype

    assert out.loss.dim() == 0 and torch.isfinite(out.loss)
    if isinstance(bn, IdentityBottleneck) or getattr(bn, "prior_kl", True) is False:
        assert out.loss.item() == 0.0
    for key, value in out.info.items():
        assert isinstance(value, torch.Tensor), key
        assert not value.requires_grad, f"info[{key!r}] is not detached"


@pytest.mark.parametrize("name", list(CASES))
def test_gradients_reach_encoder_input(name: str) -> None:
    bn = build(name, "seq_first").train()
    h = make_input(bn, "seq_first").requires_grad_()
    out = bn(h)
    w = torch.randn_like(out.z)
    (out.z * w).sum().backward()
    assert h.grad is not None and torch.isfinite(h.grad).all()
    assert h.grad.abs().sum() > 0
    if getattr(bn, "proj", None) is None:
        # every input feature influences z (no dead half, e.g. logvar for the Gaussian)
        assert (h.grad.abs().sum(dim=(0, 2)) > 0).all()


@pytest.mark.parametrize("stochastic", [True, False])
def test_binary_straight_through_gradient_is_sigmoid_derivative(stochastic: bool) -> None:
    # z = b + (p - sg[p])  =>  dL/dlogits = dL/dz * p (1 - p), whatever b was (arXiv 1308.3432)
    bn = BinaryBottleneck(code_dim=5, stochastic=stochastic, prior_kl=False).train()
    h = torch.randn(7, 5, requires_grad=True)
    w = torch.randn(7, 5)
    (bn(h).z * w).sum().backward()
    p = torch.sigmoid(h.detach())
    torch.testing.assert_close(h.grad, w * p * (1 - p))


def test_onehot_hard_straight_through_gradient_matches_soft_sample() -> None:
    # The hard code's gradient is the soft sample's gradient: same noise (same seed) for both.
    h = torch.randn(6, 8, requires_grad=True)
    w = torch.randn(6, 8)
    grads = []
    for hard in (True, False):
        bn = OneHotBottleneck(num_categories=4, num_codes=2, hard=hard, prior_kl=False).train()
        h.grad = None
        torch.manual_seed(123)
        (bn(h).z * w).sum().backward()
        grads.append(h.grad.clone())
    assert grads[0].abs().sum() > 0
    torch.testing.assert_close(grads[0], grads[1])


@pytest.mark.parametrize("layout", ["flat", "image"])
@pytest.mark.parametrize("name", list(CASES))
def test_eval_is_deterministic_and_training_samples(name: str, layout: str) -> None:
    bn = build(name, layout)
    h = make_input(bn, layout, batch=64)  # large enough that two hard samples never agree
    bn.eval()
    a, b = bn(h), bn(h)
    assert torch.equal(a.z, b.z)
    assert torch.equal(a.loss, b.loss)
    bn.train()
    c, d = bn(h), bn(h)
    if is_stochastic_in_training(bn):
        assert not torch.equal(c.z, d.z)
    else:
        assert torch.equal(c.z, d.z)
        assert torch.equal(c.z, a.z)  # deterministic training output equals the eval output


@pytest.mark.parametrize("name", list(CASES))
def test_state_dict_round_trip(name: str, tmp_path) -> None:
    bn = build(name, "seq_first").eval()
    h = make_input(bn, "seq_first")
    expected = bn(h)

    torch.manual_seed(1)  # a fresh instance with different initial weights
    fresh = build(name, "seq_first").eval()
    fresh.load_state_dict(bn.state_dict())
    got = fresh(h)
    assert torch.equal(got.z, expected.z) and torch.equal(got.loss, expected.loss)

    path = tmp_path / "bottleneck.safetensors"
    save_file(bn.state_dict(), str(path))
    torch.manual_seed(2)
    fresh2 = build(name, "seq_first").eval()
    fresh2.load_state_dict(load_file(str(path)))
    got2 = fresh2(h)
    assert torch.equal(got2.z, expected.z) and torch.equal(got2.loss, expected.loss)
    if getattr(bn, "proj", None) is not None:  # the round trip really carried the weights
        assert not torch.equal(build(name, "seq_first").eval()(h).z, expected.z)


@pytest.mark.parametrize("layout", ["flat", "seq_first"])
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_rejected_with_a_clear_message(name: str, layout: str) -> None:
    bn = build(name, layout)
    h = make_input(bn, layout)
    fd = bn.feature_dim

    if bn.in_size is not None:
        wrong = list(h.shape)
        wrong[fd] += 1
        with pytest.raises(ValueError, match=rf"expected {bn.in_size} features"):
            bn(torch.randn(wrong))
    with pytest.raises(TypeError, match="floating-point"):
        bn(h.long())
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        bn(h.flatten()[: in_features(bn)])
    for bad, word in ((float("nan"), "NaN"), (float("inf"), "inf")):
        corrupt = h.clone()
        corrupt.view(-1)[3] = bad
        with pytest.raises(ValueError, match=rf"non-finite.*1 {word}"):
            bn(corrupt)


@pytest.mark.parametrize("layout", ["flat", "seq_first"])
@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
def test_non_finite_input_is_caught_at_every_position(
    name: str, layout: str, training: bool
) -> None:
    # The finiteness check reads one scalar the bottleneck computes anyway (its KL) or a sum of
    # h; a NaN or +/-inf anywhere in h (e.g. in the log-variance half that the clamp bounds)
    # must still raise, naming the count, in training and in evaluation.
    bn = build(name, layout).train(training)
    h = make_input(bn, layout)
    for bad, word in ((float("nan"), "NaN"), (float("inf"), "inf"), (-float("inf"), "inf")):
        for i in range(h.numel()):
            corrupt = h.clone()
            corrupt.view(-1)[i] = bad
            with pytest.raises(NonFiniteInputError, match=rf"non-finite.*1 {word}"):
                bn(corrupt)
    # the public pre-processing methods check too
    method = {"gaussian": "posterior", "binary": "logits", "onehot": "logits"}.get(
        name.split("_")[0]
    )
    if method is not None:
        corrupt = h.clone()
        corrupt.view(-1)[-1] = float("nan")
        with pytest.raises(ValueError, match="non-finite"):
            getattr(bn, method)(corrupt)


def test_large_but_finite_input_is_not_rejected() -> None:
    # a KL that overflows on finite values is no input error (as before): no exception
    bn = GaussianBottleneck(latent_dim=2).train()
    h = torch.tensor([[1e30, 0.0, 0.0, 0.0]])
    out = bn(h)
    assert torch.isinf(out.loss)
    check_finite_input(torch.full((3, 4), 3e38), who="test")  # h.sum() overflows: still fine
    with pytest.raises(NonFiniteInputError, match="1 NaN, 0 inf"):
        check_finite_input(torch.tensor([[3e38, float("nan")]]), who="test")
    assert issubclass(NonFiniteInputError, ValueError)


@pytest.mark.parametrize(
    "factory",
    [
        lambda: IdentityBottleneck(dim=0),
        lambda: IdentityBottleneck(feature_dim=0),
        lambda: GaussianBottleneck(latent_dim=0),
        lambda: GaussianBottleneck(latent_dim=2, num_samples=0),
        lambda: GaussianBottleneck(latent_dim=2, free_bits=-1.0),
        lambda: GaussianBottleneck(latent_dim=2, logvar_bounds=(1.0, -1.0)),
        lambda: BinaryBottleneck(code_dim=4, prior=1.0),
        lambda: BinaryBottleneck(code_dim=0),
        lambda: OneHotBottleneck(num_categories=1),
        lambda: OneHotBottleneck(num_categories=3, num_codes=0),
        lambda: OneHotBottleneck(num_categories=3, temperature=0.0),
    ],
)
def test_bad_constructor_arguments(factory: Callable[[], nn.Module]) -> None:
    with pytest.raises(ValueError):
        factory()


def test_feature_dim_must_exist_in_input() -> None:
    bn = IdentityBottleneck(feature_dim=2)
    with pytest.raises(ValueError, match="does not exist"):
        bn(torch.randn(3, 4))


PRIOR_CASES = [
    "gaussian",
    "gaussian_proj",
    "binary",
    "binary_proj_noprior",
    "onehot",
    "onehot_proj",
]


@pytest.mark.parametrize("positions", [(), (5,), (3, 2)])
@pytest.mark.parametrize("feature_dim", [-1, 1])
@pytest.mark.parametrize("name", PRIOR_CASES)
def test_sample_prior_layout(name: str, feature_dim: int, positions: tuple[int, ...]) -> None:
    bn = CASES[name](feature_dim)
    assert isinstance(bn, PriorBottleneck)
    z = bn.sample_prior(7, positions=positions)
    expected = [7, *positions]
    expected.insert(feature_dim % (2 + len(positions)), bn.code_size)
    assert tuple(z.shape) == tuple(expected)
    assert z.dtype == torch.get_default_dtype()
    assert z.device == torch.device("cpu")
    # the prior sample is a valid decoder input: it has the layout forward() produces
    if positions == (3, 2) and feature_dim == 1:
        h = make_input(bn, "image")
        assert bn.eval()(h).z.shape[1:] == z.shape[1:]


def test_sample_prior_distributions() -> None:
    n = 20000
    z = GaussianBottleneck(latent_dim=2).sample_prior(n)
    assert abs(z.mean().item()) < 5 / math.sqrt(2 * n)
    assert abs(z.var().item() - 1.0) < 5 * math.sqrt(2 / (2 * n))

    bits = BinaryBottleneck(code_dim=3, prior=0.2).sample_prior(n)
    assert set(bits.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(
        bits.mean(0), torch.full((3,), 0.2), atol=5 * 0.4 / math.sqrt(n), rtol=0
    )

    codes = OneHotBottleneck(num_categories=4, num_codes=2).sample_prior(n).view(n, 2, 4)
    assert torch.equal(codes.sum(-1), torch.ones(n, 2))
    freq = codes.mean(0)
    torch.testing.assert_close(
        freq, torch.full((2, 4), 0.25), atol=5 * 0.433 / math.sqrt(n), rtol=0
    )


# --------------------------------------------------------------------------------------------
# Identity
# --------------------------------------------------------------------------------------------
def test_identity_passes_input_through() -> None:
    h = torch.randn(3, 4, 5)
    out = IdentityBottleneck(dim=4, feature_dim=1)(h)
    assert out.z is h
    assert out.loss.item() == 0.0 and out.loss.device == h.device and out.info == {}
    assert IdentityBottleneck(dim=4).code_size == 4 and IdentityBottleneck().code_size is None


# --------------------------------------------------------------------------------------------
# Gaussian
# --------------------------------------------------------------------------------------------
def gaussian_input(mu: torch.Tensor, logvar: torch.Tensor, feature_dim: int) -> torch.Tensor:
    return torch.cat([mu, logvar], dim=feature_dim)


def test_gaussian_eval_returns_mean_and_posterior_split() -> None:
    mu, logvar = torch.randn(4, 3, 5), torch.randn(4, 3, 5)
    bn = GaussianBottleneck(latent_dim=3, feature_dim=1).eval()
    out = bn(gaussian_input(mu, logvar, 1))
    assert torch.equal(out.z, mu)
    got_mu, got_logvar = bn.posterior(gaussian_input(mu, logvar, 1))
    assert torch.equal(got_mu, mu) and torch.equal(got_logvar, logvar)
    assert torch.equal(out.info["mu"], mu) and torch.equal(out.info["logvar"], logvar)


def test_gaussian_kl_matches_closed_form_and_monte_carlo() -> None:
    # KL(q || p) = E_q[log q(z) - log p(z)]; estimate it from forward()'s own samples.
    B, L, T, S = 4, 3, 5, 4000
    mu, logvar = 0.8 * torch.randn(B, L, T), 0.5 * torch.randn(B, L, T)
    bn = GaussianBottleneck(latent_dim=L, num_samples=S, feature_dim=1).train()
    out = bn(gaussian_input(mu, logvar, 1))

    q = torch.distributions.Normal(mu, (0.5 * logvar).exp())
    p = torch.distributions.Normal(torch.zeros_like(mu), torch.ones_like(mu))
    exact = torch.distributions.kl_divergence(q, p).sum(dim=(1, 2)).mean()
    torch.testing.assert_close(out.info["kl"], exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, exact, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.info["kl_per_dim"].sum(), exact, rtol=1e-5, atol=1e-5)
    per_dim = torch.distributions.kl_divergence(q, p).sum(dim=2).mean(0)
    torch.testing.assert_close(out.info["kl_per_dim"], per_dim, rtol=1e-5, atol=1e-5)

    z = out.z  # (S * B, L, T), sample-major
    log_q = bn.log_prob_posterior(z, mu, logvar)  # (S * B,)
    log_p = bn.log_prob_prior(z)
    # the densities are the textbook ones
    zs = z.view(S, B, L, T)
    torch.testing.assert_close(
        log_q.view(S, B), q.log_prob(zs).sum(dim=(2, 3)), rtol=1e-5, atol=1e-4
    )
    torch.testing.assert_close(
        log_p.view(S, B), p.log_prob(zs).sum(dim=(2, 3)), rtol=1e-5, atol=1e-4
    )

    per_sample = (log_q - log_p).view(S, B).mean(1)  # S independent estimates of the batch KL
    estimate = per_sample.mean()
    stderr = per_sample.std() / math.sqrt(S)
    assert abs(estimate - exact) < 5 * stderr, (estimate, exact, stderr)


def test_gaussian_num_samples_layout_is_sample_major() -> None:
    B, L, m = 5, 2, 3
    mu = torch.arange(B * L, dtype=torch.float32).view(B, L)  # every row distinct
    bn = GaussianBottleneck(latent_dim=L, num_samples=m).train()

    tight = bn(gaussian_input(mu, torch.full((B, L), -20.0), -1)).z  # std ~ 5e-5
    assert tight.shape == (m * B, L)
    for j in range(m):
        torch.testing.assert_close(tight.view(m, B, L)[j], mu, atol=1e-3, rtol=0)

    wide = bn(gaussian_input(mu, torch.zeros(B, L), -1)).z.view(m, B, L)
    assert not torch.allclose(wide[0], wide[1])  # the m samples are independent draws
    assert bn.eval()(gaussian_input(mu, torch.zeros(B, L), -1)).z.shape == (B, L)


def test_gaussian_free_bits_clamps_the_loss_not_the_reported_kl() -> None:
    B, L, lam = 8, 4, 0.5
    mu = torch.zeros(B, L)
    mu[:, 2:] = 3.0  # units 2, 3 carry 4.5 nats each; units 0, 1 carry none
    h = gaussian_input(mu, torch.zeros(B, L), -1).requires_grad_()
    bn = GaussianBottleneck(latent_dim=L, free_bits=lam).train()
    out = bn(h)
    torch.testing.assert_close(out.info["kl"], torch.tensor(9.0))
    torch.testing.assert_close(out.loss, torch.tensor(9.0 + 2 * lam))
    out.loss.backward()
    assert h.grad[:, :2].abs().max() == 0  # no gradient pushing clamped units below lambda
    assert h.grad[:, 2:L].abs().min() > 0

    free = GaussianBottleneck(latent_dim=L).train()
    torch.testing.assert_close(free(h).loss, torch.tensor(9.0))


def test_gaussian_logvar_is_clamped() -> None:
    bn = GaussianBottleneck(latent_dim=2, logvar_bounds=(-5.0, 5.0)).train()
    h = gaussian_input(torch.zeros(3, 2), torch.tensor([[-100.0, 100.0]] * 3), -1)
    out = bn(h)
    assert torch.isfinite(out.z).all() and torch.isfinite(out.loss)
    assert torch.equal(out.info["logvar"], torch.tensor([[-5.0, 5.0]] * 3))


# --------------------------------------------------------------------------------------------
# Binary
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["binary", "binary_det", "binary_proj_noprior"])
def test_binary_codes_are_exactly_zero_or_one(name: str, training: bool) -> None:
    bn = build(name, "seq_first").train(training)
    z = bn(make_input(bn, "seq_first", scale=3.0)).z
    assert set(z.unique().tolist()) <= {0.0, 1.0}


def test_binary_eval_thresholds_at_one_half() -> None:
    logits = torch.tensor([[-2.0, -1e-3, 1e-3, 2.0]])
    out = BinaryBottleneck(code_dim=4).eval()(logits)
    assert torch.equal(out.z, torch.tensor([[0.0, 0.0, 1.0, 1.0]]))
    torch.testing.assert_close(out.info["bit_usage"], torch.tensor([0.0, 0.0, 1.0, 1.0]))


@pytest.mark.parametrize("prior", [0.5, 0.2])
def test_binary_kl_matches_enumeration_and_sampling_matches_probs(prior: float) -> None:
    B, D = 3, 3
    logits = 1.5 * torch.randn(B, D)
    out = BinaryBottleneck(code_dim=D, prior=prior).train()(logits)

    p = torch.sigmoid(logits)
    exact = torch.zeros(B)
    for code in itertools.product([0.0, 1.0], repeat=D):  # all 2^D codes
        b = torch.tensor(code)
        q_b = (p**b * (1 - p) ** (1 - b)).prod(-1)  # (B,)
        prior_b = math.prod(prior if c else 1 - prior for c in code)
        exact += q_b * (q_b / prior_b).log()
    torch.testing.assert_close(out.info["kl"], exact.mean())
    torch.testing.assert_close(out.loss, exact.mean())

    # Training bits are Bernoulli(p): frequency over many copies matches p within 5 SE.
    n = 4000
    bits = BinaryBottleneck(code_dim=D).train()(logits.repeat(n, 1)).z.view(n, B, D)
    se = (p * (1 - p) / n).sqrt()
    assert ((bits.mean(0) - p).abs() < 5 * se + 1e-6).all()


def test_binary_info_diagnostics() -> None:
    logits = torch.zeros(10, 3)
    out = BinaryBottleneck(code_dim=3).eval()(logits)
    torch.testing.assert_close(out.info["entropy"], torch.tensor(math.log(2.0)))
    torch.testing.assert_close(out.info["probs"], torch.full((10, 3), 0.5))
    assert out.info["kl"].abs() < 1e-6


# --------------------------------------------------------------------------------------------
# One-hot
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", ["onehot", "onehot_soft", "onehot_proj"])
def test_onehot_codes(name: str, training: bool) -> None:
    bn = build(name, "seq_first").train(training)
    out = bn(make_input(bn, "seq_first"))
    codes = out.z.movedim(1, -1).unflatten(-1, (bn.num_codes, bn.num_categories))
    torch.testing.assert_close(codes.sum(-1), torch.ones(codes.shape[:-1]))
    assert torch.equal(codes.argmax(-1), out.info["indices"])
    assert out.info["indices"].shape == (4, 5, bn.num_codes)
    if bn.hard or not training:
        assert set(codes.unique().tolist()) <= {0.0, 1.0}  # exactly one-hot
    else:
        assert ((codes > 0) & (codes < 1)).all()  # a relaxed sample


def test_onehot_eval_is_argmax_of_logits() -> None:
    logits = torch.randn(6, 2, 3)
    out = OneHotBottleneck(num_categories=3, num_codes=2).eval()(logits.flatten(1))
    assert torch.equal(out.info["indices"], logits.argmax(-1))
    expected = torch.nn.functional.one_hot(logits.argmax(-1), 3).float().flatten(1)
    assert torch.equal(out.z, expected)


def test_onehot_temperature_is_a_schedulable_attribute() -> None:
    bn = OneHotBottleneck(num_categories=5, hard=False).train()
    h = torch.randn(16, 5)
    torch.manual_seed(7)
    warm = bn(h).z
    bn.temperature = 0.2
    assert bn.temperature == 0.2
    torch.manual_seed(7)  # same Gumbel noise, lower temperature: a sharper sample
    cold = bn(h).z
    assert not torch.allclose(warm, cold)
    assert (cold.max(-1).values >= warm.max(-1).values - 1e-6).all()
    assert torch.equal(cold.argmax(-1), warm.argmax(-1))
    assert "temperature" not in "".join(bn.state_dict())
    for bad in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="temperature"):
            bn.temperature = bad
    assert bn.temperature == 0.2


def test_onehot_kl_matches_enumeration_and_gumbel_max_sampling() -> None:
    B, N, K = 3, 2, 3
    logits = torch.randn(B, N, K)
    bn = OneHotBottleneck(num_categories=K, num_codes=N).train()
    out = bn(logits.flatten(1))

    q = logits.softmax(-1)
    exact = torch.zeros(B)
    for combo in itertools.product(range(K), repeat=N):  # all K^N joint codes
        q_c = torch.stack([q[:, i, c] for i, c in enumerate(combo)]).prod(0)
        exact += q_c * (q_c * K**N).log()
    torch.testing.assert_close(out.info["kl"], exact.mean())
    torch.testing.assert_close(out.loss, exact.mean())

    # Gumbel-max: argmax of the training sample is distributed as softmax(logits), at any tau.
    n = 4000
    bn.temperature = 0.3
    idx = bn(logits.flatten(1).repeat(n, 1)).info["indices"].view(n, B, N)
    freq = torch.nn.functional.one_hot(idx, K).float().mean(0)
    se = (q * (1 - q) / n).sqrt()
    assert ((freq - q).abs() < 5 * se + 1e-6).all()


def test_onehot_perplexity_and_usage() -> None:
    K = 4
    idx = torch.arange(4 * K) % K  # every category used equally often
    logits = 10.0 * torch.nn.functional.one_hot(idx, K).float()
    out = OneHotBottleneck(num_categories=K).eval()(logits)
    torch.testing.assert_close(out.info["perplexity"], torch.tensor(float(K)))
    torch.testing.assert_close(out.info["usage"], torch.full((1, K), 1 / K))

    collapsed = OneHotBottleneck(num_categories=K).eval()(logits[:1].repeat(8, 1))
    torch.testing.assert_close(collapsed.info["perplexity"], torch.tensor(1.0))
