"""The contracts every seqae component keeps.

A *bottleneck* sits between an encoder and a decoder. It takes the encoder's features ``h`` and
returns a :class:`BottleneckOutput`: the code ``z`` handed to the decoder, the bottleneck's own
scalar loss term (a KL divergence, a commitment loss, ...) and a dict of detached diagnostics.

Features live on one axis of ``h`` (``feature_dim``, the last axis by default, ``1`` for
channel-first convolutional maps); every other axis is a batch or position axis.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Protocol, runtime_checkable

import torch
from torch import Tensor, nn

__all__ = [
    "BottleneckOutput",
    "Bottleneck",
    "PriorBottleneck",
    "NonFiniteInputError",
    "check_features",
    "check_feature_dim",
    "check_input",
    "check_finite_input",
    "prior_shape",
    "default_device",
]


class BottleneckOutput(NamedTuple):
    """What every bottleneck returns.

    Attributes:
        z: The code passed to the decoder. Same layout as the input ``h`` except along the
            feature axis, which has the bottleneck's code size.
        loss: The bottleneck's own scalar regulariser, *not* multiplied by any schedule weight
            (a recipe applies beta/annealing). Summed over code elements and averaged over the
            batch, so that it is in nats per example where it is a KL divergence.
        info: Detached diagnostics for logging and metrics (``kl``, ``perplexity``,
            ``indices``, ...). Never used for gradients.
    """

    z: Tensor
    loss: Tensor
    info: dict[str, Tensor]


@runtime_checkable
class Bottleneck(Protocol):
    """Anything that maps encoder features to a code: ``forward(h) -> BottleneckOutput``."""

    def __call__(self, h: Tensor) -> BottleneckOutput: ...


@runtime_checkable
class PriorBottleneck(Bottleneck, Protocol):
    """A bottleneck with a prior over codes that can be sampled."""

    def sample_prior(self, n: int, *, device: torch.device | str | None = None) -> Tensor: ...


def check_features(h: Tensor, *, expected: int, feature_dim: int, who: str) -> None:
    """Raise a clear error when ``h`` is not a floating tensor with ``expected`` features.

    Args:
        h: Input features.
        expected: Size the feature axis must have.
        feature_dim: Which axis holds features.
        who: Component name used in the message.
    """
    if not isinstance(h, Tensor):
        raise TypeError(f"{who}: expected a torch.Tensor, got {type(h).__name__}")
    if not h.is_floating_point():
        raise TypeError(f"{who}: expected a floating-point tensor, got dtype {h.dtype}")
    if h.dim() < 2:
        raise ValueError(
            f"{who}: expected at least 2 dimensions (batch, ..., features), got shape {tuple(h.shape)}"
        )
    size = h.shape[feature_dim]
    if size != expected:
        raise ValueError(
            f"{who}: expected {expected} features on axis {feature_dim}, got shape {tuple(h.shape)}"
        )


# --------------------------------------------------------------------------------------------
# Input checks and layout helpers shared by the bottlenecks
# --------------------------------------------------------------------------------------------
def check_feature_dim(feature_dim: int, *, who: str) -> None:
    """Constructor-time check: axis 0 is always the batch axis, so it cannot hold features."""
    if not isinstance(feature_dim, int) or feature_dim == 0:
        raise ValueError(
            f"{who}: feature_dim must be a non-zero int (axis 0 is the batch axis), got {feature_dim!r}"
        )


class NonFiniteInputError(ValueError):
    """A bottleneck's input holds NaN or inf values (a :class:`ValueError`).

    :meth:`seqae.core.model.Autoencoder.encode` catches it to say whether the model's input data
    were already non-finite.
    """


def check_input(
    h: Tensor, *, expected: int | None, feature_dim: int, who: str, finite: bool = True
) -> None:
    """Validate encoder features before a bottleneck uses them.

    Runs :func:`seqae.core.base.check_features` (tensor type, floating dtype, at least two axes,
    ``expected`` features on ``feature_dim``; ``expected=None`` accepts any count), then checks
    that ``feature_dim`` exists and is not the batch axis and, with ``finite=True``, that every
    value is finite. A NaN or inf raises :class:`NonFiniteInputError` (a ``ValueError``) naming
    the problem, so a diverging encoder fails here rather than as a silent NaN loss later. A
    non-floating dtype raises ``check_features``'s :class:`TypeError`.

    The shape checks are pure Python. The finiteness check is one reduction and one host read
    (a sync on CUDA): see :func:`check_finite_input`. A bottleneck that computes a scalar which
    is non-finite whenever ``h`` is (its KL, its commitment loss) passes ``finite=False`` and
    hands that scalar to :func:`check_finite_input` instead, which then costs no extra kernel.
    """
    if isinstance(h, Tensor) and h.dim() >= 2:
        if not -h.dim() <= feature_dim < h.dim():
            raise ValueError(
                f"{who}: feature_dim={feature_dim} does not exist in an input of shape "
                f"{tuple(h.shape)}"
            )
        if expected is None:
            expected = h.shape[feature_dim]
    check_features(
        h, expected=-1 if expected is None else expected, feature_dim=feature_dim, who=who
    )
    if feature_dim % h.dim() == 0:
        raise ValueError(
            f"{who}: feature_dim={feature_dim} selects the batch axis of an input of shape "
            f"{tuple(h.shape)}; axis 0 must be the batch axis"
        )
    if finite:
        check_finite_input(h, who=who, feature_dim=feature_dim)


def check_finite_input(
    h: Tensor, *, who: str, feature_dim: int = -1, stat: Tensor | None = None
) -> None:
    """Raise :class:`NonFiniteInputError` when ``h`` holds NaN or inf values.

    Cheap on the common path: one host read of the scalar ``stat`` (default: ``h.sum()``, one
    reduction). ``stat`` must be non-finite whenever ``h`` is, e.g. a loss summed over values
    computed from every element of ``h``: NaN and inf propagate through sums and products, so
    a sum over a tensor holding one is never finite. Only when ``stat`` is not finite is ``h``
    scanned, to count its NaN and inf values for the message; if ``h`` turns out to be finite
    (``stat`` overflowed on large but finite values) nothing is raised, as before.

    Args:
        h: The bottleneck's input features.
        who: Component name used in the message.
        feature_dim: Axis of ``h`` that holds features (for the message).
        stat: A scalar computed from every element of ``h``; ``h.sum()`` when ``None``.
    """
    if stat is None:
        stat = h.detach().sum()
    if math.isfinite(stat.item()):
        return
    n_nan = int(torch.isnan(h).sum())
    n_inf = int(torch.isinf(h).sum())
    if n_nan or n_inf:
        raise NonFiniteInputError(
            f"{who}: input contains non-finite values ({n_nan} NaN, {n_inf} inf) in a tensor of "
            f"shape {tuple(h.shape)} (expected finite features on axis {feature_dim})"
        )


def prior_shape(
    n: int, size: int, *, positions: tuple[int, ...], feature_dim: int
) -> tuple[int, ...]:
    """Shape of ``n`` prior samples with ``size`` features laid out like the bottleneck's input.

    ``prior_shape(4, 8, positions=(16,), feature_dim=1) == (4, 8, 16)``;
    ``prior_shape(4, 8, positions=(16,), feature_dim=-1) == (4, 16, 8)``.
    """
    if n < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    positions = tuple(int(p) for p in positions)
    if any(p < 1 for p in positions):
        raise ValueError(f"positions must be positive sizes, got {positions}")
    ndim = 2 + len(positions)
    if not -ndim <= feature_dim < ndim or feature_dim % ndim == 0:
        raise ValueError(
            f"feature_dim={feature_dim} is not a feature axis of a code with positions={positions} "
            f"({ndim} axes, axis 0 the batch)"
        )
    axis = feature_dim % ndim
    shape = [n, *positions]
    shape.insert(axis, size)
    return tuple(shape)


def default_device(module: nn.Module, device: torch.device | str | None) -> torch.device:
    """``device`` if given, else the device of the module's first parameter or buffer, else CPU."""
    if device is not None:
        return torch.device(device)
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")
