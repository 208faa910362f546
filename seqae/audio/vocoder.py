"""Vocoders: log-mel -> waveform, behind one small interface.

:class:`Vocoder` is a protocol: anything with a ``feature_config`` and a ``__call__`` from
log-mel ``(n_mels, frames)`` or ``(B, n_mels, frames)`` to a waveform ``(T,)`` or ``(B, T)``.
The default, :class:`GriffinLimVocoder`, needs no training: it inverts the mel filterbank by
least squares (torchaudio ``InverseMelScale``) and recovers a phase with Griffin-Lim's fast
variant (torchaudio ``GriffinLim``, momentum 0.99). A neural vocoder trained on the same
:class:`~seqae.audio.features.FeatureConfig` can be dropped in wherever a vocoder is taken.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
import torchaudio.transforms as T
from torch import Tensor, nn

from seqae.audio.features import FeatureConfig

__all__ = ["Vocoder", "GriffinLimVocoder"]


@runtime_checkable
class Vocoder(Protocol):
    """Log-mel features in, waveform out."""

    feature_config: FeatureConfig

    def __call__(self, log_mel: Tensor) -> Tensor: ...


class GriffinLimVocoder(nn.Module):
    """Griffin-Lim vocoder for :class:`~seqae.audio.features.FeatureConfig` log-mels.

    Args:
        feature_config: The settings the log-mels were computed with.
        n_iter: Griffin-Lim iterations (32 is the usual quality/speed point).
        momentum: Fast Griffin-Lim momentum (Perraudin et al. 2013).
        seed: Seed of the random initial phase, so outputs are reproducible.
    """

    def __init__(
        self,
        feature_config: FeatureConfig | None = None,
        *,
        n_iter: int = 32,
        momentum: float = 0.99,
        seed: int | None = 0,
    ) -> None:
        super().__init__()
        c = self.feature_config = feature_config or FeatureConfig()
        self.seed = seed
        self.inverse_mel = T.InverseMelScale(
            n_stft=c.n_fft // 2 + 1,
            n_mels=c.n_mels,
            sample_rate=c.sample_rate,
            f_min=c.f_min,
            f_max=c.f_max,
            norm="slaney",
            mel_scale="slaney",
        )
        self.griffin_lim = T.GriffinLim(
            n_fft=c.n_fft,
            n_iter=n_iter,
            win_length=c.win_length,
            hop_length=c.hop_length,
            power=1.0,
            momentum=momentum,
        )

    @torch.no_grad()
    def forward(self, log_mel: Tensor) -> Tensor:
        c = self.feature_config
        if log_mel.ndim not in (2, 3) or log_mel.shape[-2] != c.n_mels:
            raise ValueError(
                f"expected log-mels (n_mels={c.n_mels}, frames) or (B, n_mels, frames), "
                f"got shape {tuple(log_mel.shape)}"
            )
        mel = log_mel.float().exp()
        spec = self.inverse_mel(mel).clamp_min(0)
        length = (log_mel.shape[-1] - 1) * c.hop_length
        if self.seed is None:
            return self.griffin_lim(spec)[..., :length]
        devices = [spec.device] if spec.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(self.seed)
            wav = self.griffin_lim(spec)
        return wav[..., :length]
