"""One-hot (categorical) code bottleneck: the Gumbel-softmax / Concrete relaxation.

The encoder's features are logits of ``num_codes`` independent categorical variables with
``num_categories`` classes each. Training draws a relaxed sample
``y = softmax((logits + g) / temperature)`` with Gumbel noise ``g`` (Jang et al. 2017,
arXiv 1611.01144; Maddison et al. 2017, arXiv 1611.00712); with ``hard=True`` the forward pass
uses ``one_hot(argmax y)`` and the gradient of ``y`` (straight-through Gumbel-softmax).
Evaluation returns ``one_hot(argmax logits)``. The optional loss is the analytic
``KL(q || Uniform)`` in nats per example.
"""

from __future__ import annotations

import math

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

__all__ = ["OneHotBottleneck"]


class OneHotBottleneck(nn.Module):
    """``num_codes`` one-hot codes of ``num_categories`` classes, trained with Gumbel-softmax.

    ``z`` has ``num_codes * num_categories`` features: code ``i`` occupies features
    ``[i * num_categories, (i + 1) * num_categories)``.

    Args:
        num_categories: Classes per categorical variable (``K``).
        num_codes: Independent categorical variables per position (``N``).
        in_dim: When given, a ``Linear(in_dim, num_codes * num_categories)`` on the feature axis
            maps the encoder's features to logits; when ``None`` the input must have
            ``num_codes * num_categories`` features and is used as the logits directly.
        temperature: Gumbel-softmax temperature ``tau > 0`` (arXiv 1611.01144, eq. 2): low
            values make samples nearly one-hot with high-variance gradients, high values smooth
            them. A plain attribute, so a schedule can anneal it between steps
            (``bn.temperature = 0.7``); not saved in the state dict.
        hard: In training, use ``one_hot(argmax y)`` in the forward pass and the gradient of the
            soft sample ``y`` (the straight-through Gumbel-softmax estimator, arXiv 1611.01144,
            sec. 2.2). When ``False`` training passes the soft sample ``y`` itself. Evaluation
            always returns exact one-hot codes.
        prior_kl: Make ``loss`` the analytic ``KL(softmax(logits) || Uniform(K))`` summed over
            codes and positions, averaged over the batch (the categorical VAE term of
            arXiv 1611.01144, sec. 3.1/4). When ``False`` the loss is zero; ``info["kl"]`` is
            reported either way.
        feature_dim: Axis of ``h`` that holds features: ``-1`` for ``(B, ..., F)``, ``1`` for
            channel-first maps ``(B, F, T)`` / ``(B, F, H, W)``. Every other axis is a batch or
            position axis; axis 0 is the batch.
    """

    def __init__(
        self,
        *,
        num_categories: int,
        num_codes: int = 1,
        in_dim: int | None = None,
        temperature: float = 1.0,
        hard: bool = True,
        prior_kl: bool = True,
        feature_dim: int = -1,
    ) -> None:
        super().__init__()
        who = "OneHotBottleneck"
        if not isinstance(num_categories, int) or num_categories < 2:
            raise ValueError(f"{who}: num_categories must be an int >= 2, got {num_categories!r}")
        if not isinstance(num_codes, int) or num_codes < 1:
            raise ValueError(f"{who}: num_codes must be a positive int, got {num_codes!r}")
        if in_dim is not None and (not isinstance(in_dim, int) or in_dim < 1):
            raise ValueError(f"{who}: in_dim must be a positive int or None, got {in_dim!r}")
        check_feature_dim(feature_dim, who=who)
        self.num_categories = num_categories
        self.num_codes = num_codes
        self.in_dim = in_dim
        self.temperature = temperature  # validated by the setter
        self.hard = hard
        self.prior_kl = prior_kl
        self.feature_dim = feature_dim
        self.proj = nn.Linear(in_dim, self.code_size) if in_dim is not None else None

    @property
    def temperature(self) -> float:
        """Current Gumbel-softmax temperature; assign a new positive value to anneal it."""
        return self._temperature

    @temperature.setter
    def temperature(self, value: float) -> None:
        value = float(value)
        if not (value > 0.0 and math.isfinite(value)):
            raise ValueError(f"OneHotBottleneck: temperature must be finite and > 0, got {value}")
        self._temperature = value

    @property
    def code_size(self) -> int:
        """Size of ``z``'s feature axis (``num_codes * num_categories``)."""
        return self.num_codes * self.num_categories

    @property
    def in_size(self) -> int:
        """Number of input features expected on ``feature_dim``."""
        return self.in_dim if self.in_dim is not None else self.code_size

    def logits(self, h: Tensor) -> Tensor:
        """Logits with features last and split per code: ``(B, *positions, num_codes, K)``."""
        logits = self._logits(h)
        check_finite_input(h, who="OneHotBottleneck", feature_dim=self.feature_dim)
        return logits

    def _logits(self, h: Tensor) -> Tensor:
        """:meth:`logits` without the finiteness check (``forward`` checks its KL instead)."""
        who = "OneHotBottleneck"
        check_input(h, expected=self.in_size, feature_dim=self.feature_dim, who=who, finite=False)
        h = h.movedim(self.feature_dim, -1)  # (B, *positions, in_size)
        if self.proj is not None:
            h = self.proj(h)
        return h.unflatten(-1, (self.num_codes, self.num_categories))

    def sample_prior(
        self,
        n: int,
        *,
        positions: tuple[int, ...] = (),
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """``n`` codes drawn uniformly, as one-hot floats laid out like the input
        (``feature_dim=1``, ``positions=(T,)`` -> ``(n, num_codes * num_categories, T)``)."""
        prior_shape(n, self.code_size, positions=positions, feature_dim=self.feature_dim)
        device = default_device(self, device)
        dtype = dtype if dtype is not None else torch.get_default_dtype()
        idx = torch.randint(self.num_categories, (n, *positions, self.num_codes), device=device)
        codes = F.one_hot(idx, self.num_categories).to(dtype).flatten(-2)
        return codes.movedim(-1, self.feature_dim)

    def forward(self, h: Tensor) -> BottleneckOutput:
        logits = self._logits(h)  # (B, *positions, N, K)
        kl = losses.kl_categorical_uniform(logits)  # nats per example
        # a NaN or +/-inf logit makes the log-softmax NaN or its term 0 * -inf = NaN: the KL is
        # the check
        check_finite_input(h, who="OneHotBottleneck", feature_dim=self.feature_dim, stat=kl)
        if self.training:
            u = torch.rand_like(logits)
            u = u.clamp(min=torch.finfo(u.dtype).tiny, max=1.0 - torch.finfo(u.dtype).eps)
            gumbel = -torch.log(-torch.log(u))
            soft = torch.softmax((logits + gumbel) / self.temperature, dim=-1)
            indices = soft.argmax(dim=-1)  # (B, *positions, N)
            if self.hard:
                hard = F.one_hot(indices, self.num_categories).to(soft.dtype)
                z = hard + (soft - soft.detach())  # values exactly one-hot; gradient of `soft`
            else:
                z = soft
        else:
            q = torch.softmax(logits / self.temperature, dim=-1)
            indices = logits.argmax(dim=-1)
            z = F.one_hot(indices, self.num_categories).to(q.dtype) + (q - q.detach())
        z = z.flatten(-2).movedim(-1, self.feature_dim)  # back to h's layout, N * K features

        loss = kl if self.prior_kl else logits.new_zeros(())
        with torch.no_grad():
            onehot = F.one_hot(indices, self.num_categories).to(logits.dtype)
            usage = onehot.reshape(-1, self.num_codes, self.num_categories).mean(0)  # (N, K)
            entropy = -(usage * torch.log(usage.clamp(min=1e-12))).sum(-1)  # (N,)
        info = {
            "kl": kl.detach(),
            "indices": indices.detach(),  # (B, *positions, N)
            "perplexity": entropy.exp().mean(),  # of the batch code usage, mean over codes
            "usage": usage,  # (N, K): fraction of rows choosing each category
        }
        return BottleneckOutput(z=z, loss=loss, info=info)

    def extra_repr(self) -> str:
        return (
            f"num_categories={self.num_categories}, num_codes={self.num_codes}, "
            f"in_dim={self.in_dim}, temperature={self.temperature}, hard={self.hard}, "
            f"prior_kl={self.prior_kl}, feature_dim={self.feature_dim}"
        )
