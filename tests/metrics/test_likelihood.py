"""Importance-sampled NLL and ELBO against probabilistic PCA, whose likelihood is closed form.

z ~ N(0, I_L), x | z ~ N(W z + b, s^2 I_D)  =>  x ~ N(b, W W^T + s^2 I_D), and the posterior is
N(M^-1 W^T (x - b), s^2 M^-1) with M = W^T W + s^2 I. W has orthogonal columns, so M and the
posterior covariance are diagonal and a diagonal-Gaussian q can be exact.
"""

import math

import pytest
import torch
from torch import nn
from torch.distributions import MultivariateNormal, Normal

from seqae.core.gaussian import GaussianBottleneck
from seqae.metrics import elbo, importance_sampled_nll

D, L, S = 5, 2, 0.5


def _ppca():
    gen = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(D, L, generator=gen, dtype=torch.float64))
    w = q * torch.tensor([2.0, 0.7], dtype=torch.float64)  # orthogonal columns
    b = torch.randn(D, generator=gen, dtype=torch.float64)
    return w, b


W, B = _ppca()
POST_VAR = S**2 / (W.pow(2).sum(0) + S**2)  # diag of s^2 M^-1


def _log_normal(x, mu, logvar):
    """log N(x; mu, exp(logvar)) summed over the last axis."""
    return (
        -0.5 * ((x - mu) ** 2 / torch.exp(torch.as_tensor(logvar)) + logvar + math.log(2 * math.pi))
    ).sum(-1)


def exact_log_px(x):
    cov = W @ W.T + S**2 * torch.eye(D, dtype=torch.float64)
    return MultivariateNormal(B, covariance_matrix=cov).log_prob(x)


def exact_posterior(x):
    mu = (x - B) @ W / (W.pow(2).sum(0) + S**2)
    return mu, POST_VAR.log().expand_as(mu)


def sample_x(n, seed=1):
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(n, L, generator=gen, dtype=torch.float64)
    return z @ W.T + B + S * torch.randn(n, D, generator=gen, dtype=torch.float64)


class Bottleneck:
    def __init__(self, shift=0.0, log_scale=0.0):
        self.shift, self.log_scale = shift, log_scale

    def posterior(self, h):
        mu, logvar = exact_posterior(h)
        return mu + self.shift, logvar + self.log_scale

    def log_prob_prior(self, z):
        return _log_normal(z, 0.0, 0.0)

    def log_prob_posterior(self, z, mu, logvar):
        return _log_normal(z, mu, logvar)


class PPCA:
    """Duck-typed model with the attributes importance_sampled_nll uses."""

    def __init__(self, bottleneck):
        self.bottleneck = bottleneck

    def encoder(self, x):
        return x

    def decoder(self, z):
        return z @ W.T + B

    def log_likelihood(self, x_hat, x):
        return _log_normal(x, x_hat, 2 * math.log(S))


def test_exact_posterior_gives_exact_nll_for_any_k():
    x = sample_x(20)
    exact = -exact_log_px(x)
    for k in (1, 3, 50):
        nll = importance_sampled_nll(PPCA(Bottleneck()), x, num_samples=k)
        assert nll.shape == (20,) and nll.dtype == torch.float64
        torch.testing.assert_close(nll, exact, atol=1e-9, rtol=0)
    torch.testing.assert_close(elbo(PPCA(Bottleneck()), x), -exact, atol=1e-9, rtol=0)


def test_wrong_posterior_converges_from_above():
    x = sample_x(300)
    exact = -exact_log_px(x)
    model = PPCA(Bottleneck(shift=0.4, log_scale=math.log(2.0)))
    excess = {}  # average excess over the exact NLL, nats per example
    for k in (1, 4, 16, 1000):
        nll = importance_sampled_nll(model, x, num_samples=k, seed=k, batch_size=32_768)
        excess[k] = float((nll - exact).mean())
    assert excess[1] > 1.0  # a loose bound at k = 1 (its expectation is -ELBO)
    assert excess[1] > excess[4] > excess[16] > excess[1000], excess
    # Nearly exact with many samples, and not below the exact value beyond Monte Carlo noise
    # (with this q the excess at k = 1000 is far smaller than the noise of a 300-example mean).
    assert abs(excess[1000]) < 0.01, excess


def test_elbo_matches_analytic_gap_and_bounds_nll():
    # log p(x) - ELBO = KL(q || p(z|x)), analytic for Gaussians.
    x = sample_x(50)
    shift, log_scale = 0.3, math.log(1.5)
    model = PPCA(Bottleneck(shift=shift, log_scale=log_scale))
    ratio = math.exp(log_scale)  # q variance / true posterior variance, per dimension
    kl = 0.5 * (ratio - 1 - log_scale) * L + 0.5 * (shift**2 / POST_VAR).sum()
    value = elbo(model, x, num_samples=4000, batch_size=32_768)
    error = value - (exact_log_px(x) - kl)
    assert error.abs().max() < 0.15  # Monte Carlo error of a 4000-sample mean, per example
    assert error.mean().abs() < 0.02
    nll = importance_sampled_nll(model, x, num_samples=100)
    assert (-value >= nll).all()


def test_chunking_and_seed():
    x = sample_x(7)
    model = PPCA(Bottleneck(shift=0.2))
    a = importance_sampled_nll(model, x, num_samples=50, batch_size=16, seed=3)
    b = importance_sampled_nll(model, x, num_samples=50, batch_size=16, seed=3)
    c = importance_sampled_nll(model, x, num_samples=50, batch_size=16, seed=4)
    assert torch.equal(a, b) and not torch.equal(a, c)
    # samples split into chunks (k > batch_size) still pair each z with its own x and q
    exact_model = PPCA(Bottleneck())
    torch.testing.assert_close(
        importance_sampled_nll(exact_model, x, num_samples=33, batch_size=5),
        -exact_log_px(x),
        atol=1e-9,
        rtol=0,
    )


class GaussianPPCA(nn.Module):
    """The same model built on seqae's GaussianBottleneck, as an nn.Module."""

    def __init__(self):
        super().__init__()
        self.bottleneck = GaussianBottleneck(latent_dim=L)
        self.scale = nn.Parameter(torch.ones((), dtype=torch.float64))

    def encoder(self, x):
        mu, logvar = exact_posterior(x)
        return torch.cat([mu, logvar], dim=-1) * self.scale

    def decoder(self, z):
        return z @ W.T + B

    def log_likelihood(self, x_hat, x):
        return Normal(x_hat, S).log_prob(x).sum(-1)


def test_with_seqae_gaussian_bottleneck_and_module_modes():
    model = GaussianPPCA().train()
    x = sample_x(10)
    nll = importance_sampled_nll(model, x, num_samples=20)
    torch.testing.assert_close(nll, -exact_log_px(x), atol=1e-6, rtol=0)
    assert model.training  # mode restored
    assert not nll.requires_grad


def test_model_without_the_api():
    with pytest.raises(TypeError, match=r"model\.encoder.*model\.bottleneck\.posterior"):
        importance_sampled_nll(object(), sample_x(2))


def test_bad_shapes_and_arguments():
    class Bad(PPCA):
        def log_likelihood(self, x_hat, x):
            return Normal(x_hat, S).log_prob(x)  # forgot to sum over dimensions

    with pytest.raises(
        ValueError, match=r"model\.log_likelihood must return one value per example"
    ):
        importance_sampled_nll(Bad(Bottleneck()), sample_x(3), num_samples=2)
    with pytest.raises(ValueError, match="num_samples"):
        importance_sampled_nll(PPCA(Bottleneck()), sample_x(3), num_samples=0)
    with pytest.raises(ValueError, match="non-empty"):
        elbo(PPCA(Bottleneck()), sample_x(3)[:0])
