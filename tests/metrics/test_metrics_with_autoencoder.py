"""The metrics on seqae's own Autoencoder: the duck-typed API they use must match it."""

import torch

from seqae.core.gaussian import GaussianBottleneck
from seqae.core.model import Autoencoder
from seqae.core.nets import MLP
from seqae.data import load_digits_splits
from seqae.metrics import elbo, importance_sampled_nll, reconstruction_error


def _vae():
    torch.manual_seed(0)
    return Autoencoder(
        encoder=MLP(in_dim=64, out_dim=8, hidden=(32,)),
        bottleneck=GaussianBottleneck(latent_dim=4, in_dim=8),
        decoder=MLP(in_dim=4, out_dim=64, hidden=(32,)),
        likelihood="bernoulli",
    )


def test_nll_elbo_and_reconstruction_on_a_digits_vae():
    model = _vae()
    x, _ = load_digits_splits().test.tensors()
    x = x[:16]
    nll = importance_sampled_nll(model, x, num_samples=64)
    bound = -elbo(model, x, num_samples=64)
    assert nll.shape == bound.shape == (16,)
    assert torch.isfinite(nll).all()
    # same seed, same samples: log-mean-exp of the weights >= their mean, example by example
    assert (nll <= bound + 1e-9).all()
    err = reconstruction_error(model, x, kind="bce")
    assert err.per_example.shape == (16,) and err.mean > 0
