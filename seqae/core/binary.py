"""Binary-code bottleneck: Bernoulli bits with a straight-through gradient.

The encoder's features are logits of independent Bernoulli bits. Training samples (or
thresholds) the bits and passes gradients straight through to the probabilities (Bengio et al.
2013, arXiv 1308.3432); evaluation thresholds at ``p > 0.5``. The optional loss is the analytic
``KL(Bernoulli(p) || Bernoulli(prior))`` in nats per example.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
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

__all__ = ["BinaryBottleneck"]


class BinaryBottleneck(nn.Module):
    """Bernoulli code bits ``z in {0, 1}`` from logits, trained with the straight-through estimator.

    Args:
        code_dim: Number of bits per position (``z``'s feature size).
        in_dim: When given, a ``Linear(in_dim, code_dim)`` on the feature axis maps the
            encoder's features to logits; when ``None`` the input must have ``code_dim``
            features and is used as the logits directly.
        stochastic: In training, sample ``b ~ Bernoulli(sigmoid(logits))`` (the stochastic binary
            neurons of arXiv 1308.3432, sec. 3) when ``True``; threshold at ``p > 0.5`` when
            ``False``. Either way the gradient is straight-through: ``z = b + (p - sg[p])``, so
            ``dz/dp = 1`` (arXiv 1308.3432, sec. 4). Evaluation always thresholds
            (deterministic).
        prior_kl: Make ``loss`` the analytic ``KL(Bernoulli(p) || Bernoulli(prior))`` summed over
            bits and positions, averaged over the batch (the binary VAE term; with
            ``prior=0.5`` it pushes bits towards maximum entropy). When ``False`` the loss is
            zero; ``info["kl"]`` is reported either way.
        prior: Bernoulli prior probability of a 1, in ``(0, 1)``; also used by
            :meth:`sample_prior`.
        feature_dim: Axis of ``h`` that holds features: ``-1`` for ``(B, ..., F)``, ``1`` for
            channel-first maps ``(B, F, T)`` / ``(B, F, H, W)``. Every other axis is a batch or
            position axis; axis 0 is the batch.
    """

    def __init__(
        self,
        *,
        code_dim: int,
        in_dim: int | None = None,
        stochastic: bool = True,
        prior_kl: bool = True,
        prior: float = 0.5,
        feature_dim: int = -1,
    ) -> None:
        super().__init__()
        who = "BinaryBottleneck"
        if not isinstance(code_dim, int) or code_dim < 1:
            raise ValueError(f"{who}: code_dim must be a positive int, got {code_dim!r}")
        if in_dim is not None and (not isinstance(in_dim, int) or in_dim < 1):
            raise ValueError(f"{who}: in_dim must be a positive int or None, got {in_dim!r}")
        if not 0.0 < prior < 1.0:
            raise ValueError(f"{who}: prior must be in (0, 1), got {prior}")
        check_feature_dim(feature_dim, who=who)
        self.code_dim = code_dim
        self.in_dim = in_dim
        self.stochastic = stochastic
        self.prior_kl = prior_kl
        self.prior = float(prior)
        self.feature_dim = feature_dim
        self.proj = nn.Linear(in_dim, code_dim) if in_dim is not None else None

    @property
    def code_size(self) -> int:
        """Size of ``z``'s feature axis (``code_dim``)."""
        return self.code_dim

    @property
    def in_size(self) -> int:
        """Number of input features expected on ``feature_dim``."""
        return self.in_dim if self.in_dim is not None else self.code_dim

    def logits(self, h: Tensor) -> Tensor:
        """Bit logits laid out like ``h`` with ``code_dim`` features."""
        logits = self._logits(h)
        check_finite_input(h, who="BinaryBottleneck", feature_dim=self.feature_dim)
        return logits

    def _logits(self, h: Tensor) -> Tensor:
        """:meth:`logits` without the finiteness check (``forward`` checks its KL instead)."""
        who = "BinaryBottleneck"
        check_input(h, expected=self.in_size, feature_dim=self.feature_dim, who=who, finite=False)
        if self.proj is not None:
            h = self.proj(h.movedim(self.feature_dim, -1)).movedim(-1, self.feature_dim)
        return h

    def sample_prior(
        self,
        n: int,
        *,
        positions: tuple[int, ...] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n`` codes of ``Bernoulli(prior)`` bits as floats in ``{0, 1}``, laid out like the input
        (``feature_dim=1``, ``positions=(T,)`` -> ``(n, code_dim, T)``)."""
        shape = prior_shape(n, self.code_dim, positions=positions, feature_dim=self.feature_dim)
        probs = torch.full(shape, self.prior, device=default_device(self, device), dtype=dtype)
        return torch.bernoulli(probs)

    def forward(self, h: Tensor) -> BottleneckOutput:
        logits = self._logits(h)  # (B, ..., code_dim) in h's layout
        kl = losses.kl_bernoulli(logits, prior=self.prior)  # nats per example
        # a NaN or +/-inf logit makes its KL term NaN (0 * -inf), so the KL is the check
        check_finite_input(h, who="BinaryBottleneck", feature_dim=self.feature_dim, stat=kl)
        p = torch.sigmoid(logits)
        if self.training and self.stochastic:
            bits = torch.bernoulli(p.detach())
        else:
            bits = (logits > 0).to(p.dtype)  # p > 0.5, decided on the logits to avoid rounding
        z = bits + (p - p.detach())  # values exactly `bits`; gradient straight through to p

        loss = kl if self.prior_kl else logits.new_zeros(())
        with torch.no_grad():
            entropy = F.binary_cross_entropy_with_logits(logits, p, reduction="none")
            bit_usage = bits.movedim(self.feature_dim, -1).reshape(-1, self.code_dim).mean(0)
        info = {
            "kl": kl.detach(),
            "bit_usage": bit_usage,  # (code_dim,): fraction of 1s per bit
            "entropy": entropy.mean(),  # mean entropy of one bit, nats
            "probs": p.detach(),
        }
        return BottleneckOutput(z=z, loss=loss, info=info)

    def extra_repr(self) -> str:
        return (
            f"code_dim={self.code_dim}, in_dim={self.in_dim}, stochastic={self.stochastic}, "
            f"prior_kl={self.prior_kl}, prior={self.prior}, feature_dim={self.feature_dim}"
        )
