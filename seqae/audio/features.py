"""Log-mel features: the representation every seqae audio model reads and writes.

Choices (:class:`FeatureConfig` defaults), at 16 kHz:

- ``n_fft = win_length = 1024`` (64 ms): long enough to resolve the harmonics of low voices
  (five periods of an 80 Hz fundamental), which Griffin-Lim needs to rebuild a clean pitch;
- ``hop_length = 256`` (16 ms, 62.5 frames/s): a quarter of the window, the overlap Griffin-Lim
  converges well with, and few enough frames that CPU training stays fast (a 2 s crop is 125
  frames);
- 80 Slaney-normalised mel bands from 0 to 8 kHz on the magnitude (power 1) spectrogram, the
  convention of neural vocoders, so a better vocoder can read the same features;
- natural log with a floor of 1e-5 (-11.5), so silence does not dominate the statistics.

Models work on normalised features: :class:`FeatureNormalizer` holds per-bin mean and standard
deviation fitted on the training corpus and travels in the model's safetensors file, and the
feature settings travel in its config.json. :func:`check_same_features` refuses a model or a
cache made with other settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from typing import Any

import torch
import torchaudio.transforms as T
from torch import Tensor, nn

__all__ = [
    "FeatureConfig",
    "FeatureMismatchError",
    "MelExtractor",
    "FeatureNormalizer",
    "check_same_features",
    "log_mel",
]


class FeatureMismatchError(ValueError):
    """Two parts of a pipeline were made with different feature settings."""


@dataclasses.dataclass(frozen=True)
class FeatureConfig:
    """Log-mel settings; see the module docstring for why these defaults."""

    sample_rate: int = 16000
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    f_min: float = 0.0
    f_max: float = 8000.0
    log_floor: float = 1e-5

    def __post_init__(self) -> None:
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length {self.win_length} must be <= n_fft {self.n_fft}")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError(
                f"need 0 <= f_min < f_max <= sample_rate/2, got f_min={self.f_min}, "
                f"f_max={self.f_max}, sample_rate={self.sample_rate}"
            )
        if self.hop_length <= 0 or self.n_mels <= 0:
            raise ValueError("hop_length and n_mels must be positive")

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.hop_length

    def num_frames(self, num_samples: int) -> int:
        """Frames the (centred) STFT gives for ``num_samples`` samples."""
        return num_samples // self.hop_length + 1

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FeatureConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise KeyError(f"unknown feature setting(s) {unknown}; valid: {sorted(names)}")
        return cls(**dict(d))


def check_same_features(a: FeatureConfig, b: FeatureConfig, *, what: str) -> None:
    """Raise :class:`FeatureMismatchError` naming every setting where ``a`` and ``b`` differ."""
    if a == b:
        return
    diffs = [
        f"{k}: {getattr(a, k)} vs {getattr(b, k)}"
        for k in a.to_dict()
        if getattr(a, k) != getattr(b, k)
    ]
    raise FeatureMismatchError(f"{what} uses other feature settings ({'; '.join(diffs)})")


class MelExtractor(nn.Module):
    """Waveform ``(T,)`` or ``(B, T)`` -> log-mel ``(n_mels, frames)`` or ``(B, n_mels, frames)``."""

    def __init__(self, config: FeatureConfig | None = None) -> None:
        super().__init__()
        self.config = config or FeatureConfig()
        c = self.config
        self.mel = T.MelSpectrogram(
            sample_rate=c.sample_rate,
            n_fft=c.n_fft,
            win_length=c.win_length,
            hop_length=c.hop_length,
            f_min=c.f_min,
            f_max=c.f_max,
            n_mels=c.n_mels,
            power=1.0,
            norm="slaney",
            mel_scale="slaney",
            center=True,
        )

    def forward(self, wav: Tensor) -> Tensor:
        if wav.ndim not in (1, 2):
            raise ValueError(f"expected a waveform (T,) or (B, T), got shape {tuple(wav.shape)}")
        return self.mel(wav.float()).clamp_min(self.config.log_floor).log()


_EXTRACTORS: dict[FeatureConfig, MelExtractor] = {}


def log_mel(wav: Tensor, config: FeatureConfig | None = None) -> Tensor:
    """Functional :class:`MelExtractor` with a cached transform per settings."""
    config = config or FeatureConfig()
    ext = _EXTRACTORS.get(config)
    if ext is None:
        ext = _EXTRACTORS[config] = MelExtractor(config)
    with torch.no_grad():
        return ext.to(wav.device)(wav)


class FeatureNormalizer(nn.Module):
    """Per-mel-bin standardisation ``(x - mean) / std``, its statistics stored as buffers.

    Args:
        n_mels: Number of mel bins.
        min_std: Floor on the standard deviation of a bin.
    """

    def __init__(self, n_mels: int = 80, *, min_std: float = 1e-3) -> None:
        super().__init__()
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(n_mels))
        self.register_buffer("std", torch.ones(n_mels))

    @torch.no_grad()
    def fit(self, mels: Iterable[Tensor]) -> FeatureNormalizer:
        """Fit mean and std over all frames of ``(n_mels, frames)`` tensors (float64 sums)."""
        n = 0
        s = torch.zeros_like(self.mean, dtype=torch.float64)
        ss = torch.zeros_like(s)
        for m in mels:
            if m.ndim != 2 or m.shape[0] != self.mean.numel():
                raise ValueError(
                    f"expected log-mels (n_mels={self.mean.numel()}, frames), got {tuple(m.shape)}"
                )
            m = m.to(torch.float64)
            n += m.shape[1]
            s += m.sum(1).cpu()
            ss += m.pow(2).sum(1).cpu()
        if n == 0:
            raise ValueError("cannot fit feature statistics on zero frames")
        mean = s / n
        var = (ss / n - mean.pow(2)).clamp_min(0)
        self.mean.copy_(mean.to(self.mean))
        self.std.copy_(var.sqrt().clamp_min(self.min_std).to(self.std))
        return self

    def forward(self, mel: Tensor) -> Tensor:
        """Normalise ``(..., n_mels, frames)``."""
        return (mel - self.mean[:, None]) / self.std[:, None]

    def inverse(self, z: Tensor) -> Tensor:
        """Undo :meth:`forward`."""
        return z * self.std[:, None] + self.mean[:, None]
