"""Diagonal-Gaussian bottleneck: the variational autoencoder (Kingma & Welling 2014, arXiv 1312.6114).

The encoder's features give a posterior ``q(z|x) = N(mu, diag(exp(logvar)))``; training draws
``z`` with the reparameterization trick, evaluation uses ``z = mu``. The loss is the analytic
``KL(q(z|x) || N(0, I))`` in nats per example.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from seqae.core import losses
from seqae.core.base import (
    BottleneckOutput,
    check_feature_dim,
    check_finite_input,
    check_input,
    default_device,
    prior_shape,
)

__all__ = ["GaussianBottleneck"]

_LOG_2PI = math.log(2.0 * math.pi)


def _sum_per_example(x: Tensor) -> Tensor:
    """Sum every axis except the batch axis 0: ``(B, ...) -> (B,)``."""
    if x.dim() == 2:
        return x.sum(dim=1)
    return x.reshape(x.shape[0], -1).sum(dim=1)


class GaussianBottleneck(nn.Module):
    """VAE bottleneck with a diagonal-Gaussian posterior and a standard-normal prior.

    Args:
        latent_dim: Number of latent units per position (``z``'s feature size).
        in_dim: When given, a ``Linear(in_dim, 2 * latent_dim)`` on the feature axis maps the
            encoder's features to ``(mu, logvar)``. When ``None`` the input must already have
            ``2 * latent_dim`` features: the first half is ``mu``, the second ``logvar``.
        num_samples: Latent samples drawn per input in training (the ``k`` of the importance
            weighted autoencoder, Burda et al. 2016, arXiv 1509.00519). With ``m > 1`` the
            training ``z`` has ``m * B`` rows on the batch axis, sample-major:
            ``z.view(m, B, ...)[j]`` is sample ``j`` of every input; tile decoder targets with
            ``x.repeat(m, ...)``. Evaluation always returns ``z = mu`` with ``B`` rows.
        free_bits: Free bits in nats per latent element (Kingma et al. 2016, arXiv 1606.04934,
            eq. 15): the loss clamps each element's batch-averaged KL from below at this value,
            so there is no gradient pushing an element's KL under it. ``info["kl"]`` stays the
            unclamped KL. ``0`` disables it.
        feature_dim: Axis of ``h`` that holds features: ``-1`` for ``(B, ..., F)``, ``1`` for
            channel-first maps ``(B, F, T)`` / ``(B, F, H, W)``. Every other axis is a batch or
            position axis (one latent vector per position); axis 0 is the batch.
        logvar_bounds: ``(low, high)`` clamp on the log-variance, keeping ``exp(logvar)`` finite
            and non-zero. Outside the bounds the log-variance gets no gradient.
    """

    def __init__(
        self,
        *,
        latent_dim: int,
        in_dim: int | None = None,
        num_samples: int = 1,
        free_bits: float = 0.0,
        feature_dim: int = -1,
        logvar_bounds: tuple[float, float] = (-30.0, 20.0),
    ) -> None:
        super().__init__()
        who = "GaussianBottleneck"
        if not isinstance(latent_dim, int) or latent_dim < 1:
            raise ValueError(f"{who}: latent_dim must be a positive int, got {latent_dim!r}")
        if in_dim is not None and (not isinstance(in_dim, int) or in_dim < 1):
            raise ValueError(f"{who}: in_dim must be a positive int or None, got {in_dim!r}")
        if not isinstance(num_samples, int) or num_samples < 1:
            raise ValueError(f"{who}: num_samples must be an int >= 1, got {num_samples!r}")
        if free_bits < 0:
            raise ValueError(f"{who}: free_bits must be >= 0, got {free_bits}")
        low, high = (float(b) for b in logvar_bounds)
        if not low < high:
            raise ValueError(f"{who}: logvar_bounds must satisfy low < high, got {logvar_bounds}")
        check_feature_dim(feature_dim, who=who)
        self.latent_dim = latent_dim
        self.in_dim = in_dim
        self.num_samples = num_samples
        self.free_bits = float(free_bits)
        self.feature_dim = feature_dim
        self.logvar_bounds = (low, high)
        self.proj = nn.Linear(in_dim, 2 * latent_dim) if in_dim is not None else None

    @property
    def code_size(self) -> int:
        """Size of ``z``'s feature axis (``latent_dim``)."""
        return self.latent_dim

    @property
    def in_size(self) -> int:
        """Number of input features expected on ``feature_dim``."""
        return self.in_dim if self.in_dim is not None else 2 * self.latent_dim

    # -- posterior and prior ------------------------------------------------------------------
    def posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior parameters ``(mu, logvar)``, laid out like ``h`` with ``latent_dim`` features.

        ``logvar`` is clamped to ``logvar_bounds``. NaN or inf in ``h`` raise
        :class:`~seqae.core.base.NonFiniteInputError` (a ``ValueError``).
        """
        mu, logvar = self._posterior(h)
        check_finite_input(h, who="GaussianBottleneck", feature_dim=self.feature_dim)
        return mu, logvar

    def _posterior(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """:meth:`posterior` without the finiteness check (``forward`` checks its KL instead)."""
        who = "GaussianBottleneck"
        check_input(h, expected=self.in_size, feature_dim=self.feature_dim, who=who, finite=False)
        fd = self.feature_dim
        if self.proj is not None:
            if fd == -1 or fd == h.dim() - 1:
                h = self.proj(h)
            else:
                h = self.proj(h.movedim(fd, -1)).movedim(-1, fd)
        mu, logvar = h.chunk(2, dim=fd)
        return mu, logvar.clamp(*self.logvar_bounds)

    def sample_prior(
        self,
        n: int,
        *,
        positions: tuple[int, ...] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n`` samples from ``N(0, I)``, laid out like the input: e.g. ``feature_dim=1`` and
        ``positions=(T,)`` give ``(n, latent_dim, T)``; ``feature_dim=-1`` gives ``(n, T, latent_dim)``.
        """
        shape = prior_shape(n, self.latent_dim, positions=positions, feature_dim=self.feature_dim)
        return torch.randn(shape, device=default_device(self, device), dtype=dtype)

    def log_prob_prior(self, z: Tensor) -> Tensor:
        """``log N(z; 0, I)`` per example, summed over every non-batch axis: ``(B,)``."""
        return _sum_per_example(-0.5 * (z.pow(2) + _LOG_2PI))

    def log_prob_posterior(self, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
        """``log N(z; mu, exp(logvar))`` per example, summed over every non-batch axis.

        ``z`` may hold ``m * B`` rows in the sample-major layout of :meth:`forward` while
        ``mu``/``logvar`` hold ``B``; the result then has ``m * B`` entries in the same order.
        """
        if z.shape[0] != mu.shape[0]:
            if z.shape[0] % mu.shape[0] != 0:
                raise ValueError(
                    f"GaussianBottleneck: z has {z.shape[0]} rows, not a multiple of the "
                    f"{mu.shape[0]} rows of mu"
                )
            reps = (z.shape[0] // mu.shape[0],) + (1,) * (mu.dim() - 1)
            mu, logvar = mu.repeat(reps), logvar.repeat(reps)
        log_density = -0.5 * ((z - mu).pow(2) * torch.exp(-logvar) + logvar + _LOG_2PI)
        return _sum_per_example(log_density)

    # -- forward ------------------------------------------------------------------------------
    def forward(self, h: Tensor) -> BottleneckOutput:
        mu, logvar = self._posterior(h)  # (B, ..., L) in h's layout
        if self.training:
            m = self.num_samples
            if m == 1:
                eps = torch.randn_like(mu, memory_format=torch.contiguous_format)
                z = mu + torch.exp(0.5 * logvar) * eps  # reparameterization trick
            else:
                eps = torch.randn((m, *mu.shape), device=mu.device, dtype=mu.dtype)
                z = mu + torch.exp(0.5 * logvar) * eps  # (m, B, ...)
                z = z.reshape(m * mu.shape[0], *mu.shape[1:])  # sample-major (m * B, ...)
        else:
            z = mu

        kl_elem = losses.kl_normal_std(mu, logvar, reduction="none")  # (B, ..., L)
        kl = _sum_per_example(kl_elem).mean()  # nats per example
        # NaN/inf in h reach mu (through the projection, or as h's first half) and so the KL;
        # without a projection an inf in h's logvar half is clamped away, so check h itself
        check_finite_input(
            h,
            who="GaussianBottleneck",
            feature_dim=self.feature_dim,
            stat=kl if self.proj is not None else None,
        )
        if self.free_bits > 0:
            loss = losses.kl_normal_std(mu, logvar, free_bits=self.free_bits)
        else:
            loss = kl
        kl_per_dim = kl_elem.detach()
        if kl_per_dim.dim() == 2:  # (B, L): no position axes to sum over
            kl_per_dim = kl_per_dim.mean(0)
        else:
            kl_per_dim = kl_per_dim.movedim(self.feature_dim, -1)
            kl_per_dim = kl_per_dim.reshape(kl_elem.shape[0], -1, self.latent_dim)
            kl_per_dim = kl_per_dim.sum(1).mean(0)
        info = {
            "kl": kl.detach(),
            "kl_per_dim": kl_per_dim,  # (latent_dim,), sums to kl
            "mu": mu.detach(),
            "logvar": logvar.detach(),
        }
        return BottleneckOutput(z=z, loss=loss, info=info)

    def extra_repr(self) -> str:
        return (
            f"latent_dim={self.latent_dim}, in_dim={self.in_dim}, num_samples={self.num_samples}, "
            f"free_bits={self.free_bits}, feature_dim={self.feature_dim}"
        )
