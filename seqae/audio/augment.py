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

__all__ = ["mel_centers_hz", "warp_matrices", "warp_mels", "sample_warp_factors"]


def _hz_to_mel_slaney(f: Tensor) -> Tensor:
    # Slaney's scale (librosa's default, torchaudio's mel_scale="slaney"): linear below 1 kHz,
    # logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return torch.where(
        f < min_log_hz,
        f / f_sp,
        min_log_mel + torch.log(f.clamp_min(1e-12) / min_log_hz) / logstep,
    )


def _mel_to_hz_slaney(m: Tensor) -> Tensor:
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return torch.where(
        m < min_log_mel, m * f_sp, min_log_hz * torch.exp(logstep * (m - min_log_mel))
    )


def mel_centers_hz(features: FeatureConfig) -> Tensor:
    """Centre frequency (Hz) of each mel band of ``features``, shape ``(n_mels,)``."""
    lo = _hz_to_mel_slaney(torch.tensor(float(features.f_min), dtype=torch.float64))
    hi = _hz_to_mel_slaney(torch.tensor(float(features.f_max), dtype=torch.float64))
    edges = torch.linspace(float(lo), float(hi), features.n_mels + 2, dtype=torch.float64)
    return _mel_to_hz_slaney(edges[1:-1])


def warp_matrices(features: FeatureConfig, alphas: Tensor) -> Tensor:
    """Linear maps ``(B, n_mels, n_mels)`` that scale the frequency axis by each ``alpha``.

    ``alpha > 1`` moves spectral features up (a shorter vocal tract, a higher voice), ``alpha < 1``
    down. Frequencies read from beyond the top band take the top band's value. ``alpha = 1`` gives
    the identity exactly.
    """
    alphas = torch.as_tensor(alphas, dtype=torch.float64).reshape(-1)
    if alphas.numel() == 0 or not bool(torch.isfinite(alphas).all()) or bool((alphas <= 0).any()):
        raise ValueError(f"warp factors must be finite and positive, got {alphas.tolist()}")
    centers = mel_centers_hz(features)  # (n,)
    n = centers.numel()
    lo = _hz_to_mel_slaney(torch.tensor(float(features.f_min), dtype=torch.float64))
    hi = _hz_to_mel_slaney(torch.tensor(float(features.f_max), dtype=torch.float64))
    step = (hi - lo) / (n + 1)
    read_hz = centers[None, :] / alphas[:, None]  # (B, n): where output bin k reads the input
    pos = (_hz_to_mel_slaney(read_hz) - lo) / step - 1  # fractional input bin index
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


def sample_warp_factors(
    n: int,
    bounds: Sequence[float],
    generator: torch.Generator,
    *,
    prob: float = 1.0,
) -> Tensor:
    """``n`` factors log-uniform in ``bounds = (low, high)``; each is 1 with probability ``1 - prob``."""
    low, high = (float(b) for b in bounds)
    if not 0 < low <= high:
        raise ValueError(f"warp bounds must satisfy 0 < low <= high, got {list(bounds)}")
    if not 0.0 <= prob <= 1.0:
        raise ValueError(f"warp probability must be in [0, 1], got {prob}")
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    alphas = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))
    keep = torch.rand(n, generator=generator, dtype=torch.float64) < prob
    return torch.where(keep, alphas, torch.ones_like(alphas))
