"""The plain autoencoder bottleneck: the code is the encoder's output, unchanged."""

from __future__ import annotations

from torch import Tensor, nn

from seqae.core.base import BottleneckOutput, check_feature_dim, check_input

__all__ = ["IdentityBottleneck"]


# --------------------------------------------------------------------------------------------
# Identity bottleneck
# --------------------------------------------------------------------------------------------
class IdentityBottleneck(nn.Module):
    """No bottleneck at all: ``z = h`` and a zero loss (the plain, deterministic autoencoder).

    Args:
        dim: Expected number of features. When given, inputs are validated against it (and
            ``code_size`` reports it); when ``None`` any feature count passes through, but the
            input is still checked for a floating dtype and finite values.
        feature_dim: Axis of ``h`` that holds features: ``-1`` for ``(B, ..., F)``, ``1`` for
            channel-first maps ``(B, F, T)`` / ``(B, F, H, W)``. Every other axis is a batch or
            position axis; axis 0 is the batch.
    """

    def __init__(self, *, dim: int | None = None, feature_dim: int = -1) -> None:
        super().__init__()
        if dim is not None and (not isinstance(dim, int) or dim < 1):
            raise ValueError(f"IdentityBottleneck: dim must be a positive int or None, got {dim!r}")
        check_feature_dim(feature_dim, who="IdentityBottleneck")
        self.dim = dim
        self.feature_dim = feature_dim

    @property
    def code_size(self) -> int | None:
        """Size of ``z``'s feature axis (``dim``; ``None`` when unconstrained)."""
        return self.dim

    @property
    def in_size(self) -> int | None:
        """Number of input features expected on ``feature_dim`` (``None``: any)."""
        return self.dim

    def forward(self, h: Tensor) -> BottleneckOutput:
        # shape checks, then one reduction + host read for NaN/inf (check_finite_input)
        check_input(h, expected=self.dim, feature_dim=self.feature_dim, who="IdentityBottleneck")
        return BottleneckOutput(z=h, loss=h.new_zeros(()), info={})

    def extra_repr(self) -> str:
        return f"dim={self.dim}, feature_dim={self.feature_dim}"
