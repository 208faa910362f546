"""Log-likelihood of a latent-variable model: importance-sampled NLL and the ELBO.

For a model ``p(x, z) = p(x|z) p(z)`` with an encoder giving ``q(z|x)``, each posterior sample
``z_i ~ q(z|x)`` gives an importance weight ``w_i = p(x|z_i) p(z_i) / q(z_i|x)``, and

    NLL_k(x) = -log( (1/k) sum_i w_i )           (computed with logsumexp)

is the importance-sampled negative log-likelihood of Burda et al. 2016 ("Importance weighted
autoencoders", arXiv 1509.00519). ``E[NLL_k]`` is an upper bound on ``-log p(x)`` that does not
increase with ``k`` (their Theorem 1) and tends to ``-log p(x)`` as ``k -> inf`` when ``q``
covers the posterior. With ``k = 1`` its expectation is ``-ELBO``. When ``q`` is the exact
posterior every ``w_i`` equals ``p(x)`` and the estimate is exact for any ``k``.

All values are in nats per example, summed over every data dimension. For dequantized
discrete data add the dequantization term (e.g. :func:`seqae.data.digits.discrete_nll_bound`).

The model is duck-typed: any object with

- ``model.encoder(x) -> h``
- ``model.bottleneck.posterior(h) -> (mu, logvar)``: a diagonal-Gaussian ``q(z|x)``
- ``model.bottleneck.log_prob_prior(z) -> (B,)``
- ``model.bottleneck.log_prob_posterior(z, mu, logvar) -> (B,)``
- ``model.decoder(z) -> x_hat``
- ``model.log_likelihood(x_hat, x) -> (B,)``: ``log p(x|z)`` summed over data dimensions

as seqae's :class:`~seqae.core.model.Autoencoder` with a Gaussian bottleneck provides. Samples
are laid out sample-major, like the Gaussian bottleneck's training samples: ``k * B`` rows
where rows ``j * B .. (j + 1) * B - 1`` are sample ``j`` of every example.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from seqae.metrics.reconstruction import evaluating, model_device

__all__ = ["DEFAULT_NUM_SAMPLES", "elbo", "importance_sampled_nll", "log_importance_weights"]

#: Default ``k`` for :func:`importance_sampled_nll`. Burda et al. evaluate with ``k = 5000``;
#: 500 is a tenth of the cost and is usually close for small models, but the gap depends on
#: how well ``q`` matches the posterior: report ``k`` with the number, and check that a larger
#: ``k`` does not change it much.
DEFAULT_NUM_SAMPLES = 500

_REQUIRED = (
    "encoder",
    "decoder",
    "log_likelihood",
    "bottleneck.posterior",
    "bottleneck.log_prob_prior",
    "bottleneck.log_prob_posterior",
)


def _check_model(model: Any, who: str) -> None:
    missing = []
    for name in _REQUIRED:
        obj = model
        for part in name.split("."):
            obj = getattr(obj, part, None)
        if not callable(obj):
            missing.append(name)
    if missing:
        raise TypeError(
            f"{who}: the model needs callable {', '.join('model.' + m for m in missing)} "
            f"(a Gaussian-bottleneck autoencoder); {type(model).__name__} lacks them"
        )


def _per_example(value: Any, rows: int, what: str) -> Tensor:
    if not isinstance(value, Tensor) or value.shape != (rows,):
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"{what} must return one value per example, shape ({rows},); got {shape}")
    return value


def log_importance_weights(
    model: Any,
    x: Tensor,
    *,
    num_samples: int,
    generator: torch.Generator | None = None,
    max_rows: int = 4096,
) -> Tensor:
    """``log w = log p(x|z) + log p(z) - log q(z|x)`` for ``z ~ q(z|x)``: ``(num_samples, B)``.

    Runs under the caller's grad mode and the model's current train/eval mode; the public
    functions below wrap it in :func:`~seqae.metrics.reconstruction.evaluating`.

    Args:
        model: A duck-typed model (see the module docstring).
        x: A batch ``(B, ...)`` on the model's device.
        num_samples: Posterior samples per example (``k``).
        generator: Random generator on ``x``'s device, for reproducible samples.
        max_rows: Most ``(sample, example)`` rows sent through the decoder at once; bounds
            memory. Samples are processed in chunks of ``max(1, max_rows // B)``.
    """
    mu, logvar = model.bottleneck.posterior(model.encoder(x))  # (B, ...) each
    batch = x.shape[0]
    std = torch.exp(0.5 * logvar)
    chunk = max(1, max_rows // batch)
    out = []
    for start in range(0, num_samples, chunk):
        m = min(chunk, num_samples - start)
        eps = torch.randn((m, *mu.shape), generator=generator, device=mu.device, dtype=mu.dtype)
        z = (mu + std * eps).reshape(m * batch, *mu.shape[1:])  # sample-major (m * B, ...)
        rep = (m,) + (1,) * (mu.dim() - 1)
        log_q = model.bottleneck.log_prob_posterior(z, mu.repeat(rep), logvar.repeat(rep))
        log_prior = model.bottleneck.log_prob_prior(z)
        x_rep = x.repeat((m,) + (1,) * (x.dim() - 1))
        log_px = model.log_likelihood(model.decoder(z), x_rep)
        rows = m * batch
        log_w = (
            _per_example(log_px, rows, "model.log_likelihood")
            + _per_example(log_prior, rows, "model.bottleneck.log_prob_prior")
            - _per_example(log_q, rows, "model.bottleneck.log_prob_posterior")
        )
        out.append(log_w.reshape(m, batch))
    return torch.cat(out, dim=0)


def _run(
    model: Any,
    x: Tensor,
    *,
    num_samples: int,
    batch_size: int,
    seed: int | None,
    reduce: str,
    who: str,
) -> Tensor:
    _check_model(model, who)
    if not isinstance(x, Tensor):
        raise TypeError(f"{who}: expected a tensor of examples (N, ...), got {type(x).__name__}")
    if x.dim() < 1 or x.shape[0] == 0:
        raise ValueError(f"{who}: expected a non-empty batch (N, ...), got shape {tuple(x.shape)}")
    if not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"{who}: num_samples must be an int >= 1, got {num_samples!r}")
    if batch_size < 1:
        raise ValueError(f"{who}: batch_size must be >= 1, got {batch_size}")
    device = model_device(model) or x.device
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    # examples per block: all k samples of a block fit in batch_size rows when k <= batch_size
    block = max(1, batch_size // num_samples)
    results = []
    with evaluating(model):
        for xb in x.split(block):
            xb = xb.to(device)
            log_w = log_importance_weights(
                model, xb, num_samples=num_samples, generator=generator, max_rows=batch_size
            )
            if reduce == "iwae":
                value = -(torch.logsumexp(log_w.double(), dim=0) - math.log(num_samples))
            else:
                value = log_w.double().mean(dim=0)
            results.append(value.to(x.device))
    return torch.cat(results)


def importance_sampled_nll(
    model: Any,
    x: Tensor,
    *,
    num_samples: int = DEFAULT_NUM_SAMPLES,
    batch_size: int = 4096,
    seed: int | None = 0,
) -> Tensor:
    """Importance-sampled negative log-likelihood per example, in nats (Burda et al. 2016).

    ``-log( (1/k) sum_i p(x|z_i) p(z_i) / q(z_i|x) )`` with ``z_i ~ q(z|x)``, computed with
    logsumexp in float64. An upper bound on ``-log p(x)`` in expectation, tightening as ``k``
    grows (see the module docstring). The model runs in eval mode without gradients.

    Args:
        model: A duck-typed latent-variable model (see the module docstring).
        x: Examples ``(N, ...)``; moved to the model's device block by block.
        num_samples: Importance samples per example (``k``); see :data:`DEFAULT_NUM_SAMPLES`.
        batch_size: Most ``(sample, example)`` rows decoded at once; bounds memory.
        seed: Seed of the posterior samples (a generator on the model's device) so that the
            estimate is reproducible; ``None`` uses torch's global generator.

    Returns:
        ``(N,)`` float64 tensor on ``x``'s device.
    """
    return _run(
        model,
        x,
        num_samples=num_samples,
        batch_size=batch_size,
        seed=seed,
        reduce="iwae",
        who="importance_sampled_nll",
    )


def elbo(
    model: Any,
    x: Tensor,
    *,
    num_samples: int = 1,
    batch_size: int = 4096,
    seed: int | None = 0,
) -> Tensor:
    """Monte Carlo evidence lower bound per example, in nats: ``mean_i log w_i``.

    ``E[log p(x|z) + log p(z) - log q(z|x)]`` over ``z ~ q(z|x)``, estimated with
    ``num_samples`` samples (unbiased for the ELBO, whose expectation is at most ``log p(x)``).
    Note the sign: this is a lower bound on the log-likelihood, so ``-elbo`` is comparable with
    :func:`importance_sampled_nll` and is at least as large in expectation.

    Args:
        model: A duck-typed latent-variable model (see the module docstring).
        x: Examples ``(N, ...)``.
        num_samples: Posterior samples averaged per example.
        batch_size: Most ``(sample, example)`` rows decoded at once.
        seed: Seed of the posterior samples; ``None`` uses torch's global generator.

    Returns:
        ``(N,)`` float64 tensor on ``x``'s device.
    """
    return _run(
        model,
        x,
        num_samples=num_samples,
        batch_size=batch_size,
        seed=seed,
        reduce="mean",
        who="elbo",
    )
