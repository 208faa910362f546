"""Frequency-warp augmentation of log-mels, for speaker/content disentanglement.

Scaling a voice's frequency axis by a factor ``alpha`` moves its formants and harmonics together,
as a longer or shorter vocal tract and a lower or higher pitch would (vocal-tract length
perturbation, VTLP). On log-mels it is a fixed linear map per ``alpha``: output bin ``k`` at
centre frequency ``f_k`` reads the input at ``f_k / alpha``, linearly interpolated between bins.
:func:`warp_matrices` builds those maps for a batch of factors and :func:`warp_mels` applies them.

Two uses in the ``vc`` recipe (``augment.*``):

- **Content perturbation** (as in NANSY, arXiv 2110.14513): the content encoder sees the crop
  warped by a random factor while the decoder must rebuild the unwarped crop. The timbre and the
  pitch level the content code could carry are then wrong by a random amount, so the decoder
  learns to take them from the speaker embedding instead, which is what conversion to a voice
  the model has not heard needs.
- **Pseudo-speakers**: the crop and its reference are both warped by one random factor, which
  makes a new voice from a training voice and fills the space of timbres between the few
  natural voices of a small corpus.

Work in the raw log-mel domain (before :class:`~seqae.audio.features.FeatureNormalizer`): the
warp is a statement about frequencies, and per-bin standardisation is not.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from seqae.audio.features import FeatureConfig

__all__ = [
    "check_warp_bounds",
    "mel_centers_hz",
    "sample_warp_factors",
    "warp_matrices",
    "warp_mels",
]


# Slaney's mel scale (librosa's default, torchaudio's mel_scale="slaney"): linear below 1 kHz,
# logarithmic above.
_F_SP = 200.0 / 3
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = math.log(6.4) / 27.0


def _hz_to_mel_slaney(f: Tensor) -> Tensor:
    return torch.where(
        f < _MIN_LOG_HZ,
        f / _F_SP,
        _MIN_LOG_MEL + torch.log(f.clamp_min(1e-12) / _MIN_LOG_HZ) / _LOGSTEP,
    )


def _mel_to_hz_slaney(m: Tensor) -> Tensor:
    return torch.where(
        m < _MIN_LOG_MEL, m * _F_SP, _MIN_LOG_HZ * torch.exp(_LOGSTEP * (m - _MIN_LOG_MEL))
    )


def _mel_grid(features: FeatureConfig) -> Tensor:
    """The ``n_mels + 2`` equally spaced mel-scale points whose inner ones are the band centres."""
    lo, hi = _hz_to_mel_slaney(
        torch.tensor([float(features.f_min), float(features.f_max)], dtype=torch.float64)
    )
    return torch.linspace(float(lo), float(hi), features.n_mels + 2, dtype=torch.float64)


def mel_centers_hz(features: FeatureConfig) -> Tensor:
    """Centre frequency (Hz) of each mel band of ``features``, shape ``(n_mels,)``."""
    return _mel_to_hz_slaney(_mel_grid(features)[1:-1])


def warp_matrices(features: FeatureConfig, alphas: Tensor) -> Tensor:
    """Linear maps ``(B, n_mels, n_mels)`` that scale the frequency axis by each ``alpha``.

    ``alpha > 1`` moves spectral features up (a shorter vocal tract, a higher voice), ``alpha < 1``
    down. Frequencies read from beyond the top band take the top band's value. ``alpha = 1`` gives
    the identity (to rounding).
    """
    alphas = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    if alphas.numel() == 0 or not bool(torch.isfinite(alphas).all()) or bool((alphas <= 0).any()):
        raise ValueError(f"warp factors must be finite and positive, got {alphas.tolist()}")
    grid = _mel_grid(features)
    n = features.n_mels
    centers = _mel_to_hz_slaney(grid[1:-1])
    read_hz = centers[None, :] / alphas[:, None]  # (B, n): where output bin k reads the input
    # fractional input bin index: band k's centre is grid point k + 1
    pos = (_hz_to_mel_slaney(read_hz) - grid[0]) / (grid[1] - grid[0]) - 1
    pos = pos.clamp(0, n - 1)
    left = pos.floor().long().clamp(max=n - 2)
    frac = pos - left
    w = torch.zeros(alphas.numel(), n, n, dtype=torch.float64)
    w.scatter_(2, left[..., None], (1 - frac)[..., None])
    w.scatter_add_(2, (left + 1)[..., None], frac[..., None])
    return w


def warp_mels(mels: Tensor, features: FeatureConfig, alphas: Tensor) -> Tensor:
    """Warp raw log-mels ``(B, n_mels, T)`` by one factor per example (see :func:`warp_matrices`).

    Interpolating log energies (not energies) keeps the result a plausible log-mel and the map
    linear, so it costs one batched matrix product.
    """
    if mels.dim() != 3 or mels.shape[1] != features.n_mels:
        raise ValueError(
            f"expected log-mels (batch, {features.n_mels}, frames), got {tuple(mels.shape)}"
        )
    alphas = torch.as_tensor(alphas).reshape(-1)
    if alphas.numel() != mels.shape[0]:
        raise ValueError(f"{alphas.numel()} warp factors for a batch of {mels.shape[0]}")
    w = warp_matrices(features, alphas).to(device=mels.device, dtype=mels.dtype)
    return torch.bmm(w, mels)


def check_warp_bounds(bounds: Sequence[float]) -> tuple[float, float]:
    """``(low, high)`` from ``bounds``, refused unless it is two numbers with ``0 < low <= high``."""
    if not isinstance(bounds, (list, tuple)) or len(bounds) != 2:
        raise ValueError(f"warp bounds must be [low, high], got {bounds!r}")
    low, high = (float(b) for b in bounds)
    if not 0 < low <= high:
        raise ValueError(f"warp bounds must satisfy 0 < low <= high, got {list(bounds)}")
    return low, high


def sample_warp_factors(
    n: int,
    bounds: Sequence[float],
    generator: torch.Generator,
    *,
    prob: float = 1.0,
) -> Tensor:
    """``n`` factors log-uniform in ``bounds = (low, high)``; each is 1 with probability ``1 - prob``."""
    low, high = check_warp_bounds(bounds)
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"warp probability must be in [0, 1], got {prob}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    alphas = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    keep = torch.rand(n, generator=generator, dtype=torch.float64) < prob
    return torch.where(keep, alphas, torch.ones_like(alphas))
