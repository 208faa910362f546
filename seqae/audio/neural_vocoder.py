"""A trained vocoder for seqae log-mels: a convolutional network predicts every frame's STFT and
an inverse STFT makes the waveform (the Vocos design, arXiv 2306.00814).

Why it exists: Griffin-Lim (:class:`~seqae.audio.vocoder.GriffinLimVocoder`) needs no training,
but it must guess the phase, and the spectrogram it ends with is not quite the one it was given.
A recogniser hears the difference: on this project's corpus pocketsphinx's word error rate rises
by about 0.05 between the original audio and its Griffin-Lim resynthesis. :class:`ISTFTVocoder`
learns magnitude and phase together from the corpus.

Design, and what differs from the paper:

- The network works at the frame rate of the features: a convolution embeds the normalised
  log-mel, ``n_blocks`` ConvNeXt blocks (depthwise convolution, LayerNorm, a pointwise MLP and a
  learned layer scale, arXiv 2201.03545) process it, and a linear head gives each frame's log
  magnitude and phase on the feature settings' own STFT grid (``n_fft``, ``hop_length``). An
  inverse STFT then gives ``(frames - 1) * hop_length`` samples, as Griffin-Lim does, so the two
  vocoders are interchangeable. No upsampling layers: this is what makes it fast on a CPU.
- It is trained without a discriminator (:class:`VocoderLoss`: log-mel L1 plus multi-resolution
  STFT spectral convergence and log-magnitude L1, as in Parallel WaveGAN, arXiv 1910.11480).
  Magnitude losses at several window lengths pin the phase too, since a wrong phase changes
  the magnitudes that other windows see. The sound is less natural than an adversarially
  trained vocoder's, but it trains on two CPU cores in under an hour (``seqae run vocoder``)
  and what it is judged on here is intelligibility.

The vocoder holds the :class:`~seqae.audio.features.FeatureConfig` it was trained for and its own
per-bin feature statistics, and is saved as ``config.json`` + ``model.safetensors`` in the one
saved-model format of :mod:`seqae.core.saving` (:meth:`ISTFTVocoder.save_pretrained`,
:func:`load_vocoder`, or ``seqae.load_pretrained``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from seqae.audio.features import FeatureConfig, FeatureNormalizer, MelExtractor
from seqae.core.saving import (
    CONFIG_NAME,
    SavedModelError,
    load_weights_strict,
    read_model_config,
    save_model_files,
)

__all__ = [
    "ISTFTVocoder",
    "VocoderLoss",
    "multi_resolution_stft_loss",
    "load_vocoder",
    "VOCODER_TYPE",
]

VOCODER_TYPE = "istft_vocoder"


class ConvNeXtBlock(nn.Module):
    """Depthwise conv -> LayerNorm -> Linear -> GELU -> Linear, scaled, plus the input."""

    def __init__(self, dim: int, hidden: int, *, kernel_size: int, layer_scale: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim)
        self.pw1 = nn.Linear(dim, hidden)
        self.pw2 = nn.Linear(hidden, dim)
        self.gamma = nn.Parameter(torch.full((dim,), float(layer_scale)))

    def forward(self, x: Tensor) -> Tensor:  # (B, C, T)
        h = self.dwconv(x).transpose(1, 2)  # (B, T, C)
        h = self.pw2(nn.functional.gelu(self.pw1(self.norm(h)))) * self.gamma
        return x + h.transpose(1, 2)


class ISTFTVocoder(nn.Module):
    """Log-mel -> per-frame STFT (ConvNeXt network) -> waveform (inverse STFT).

    Follows the :class:`~seqae.audio.vocoder.Vocoder` protocol: ``vocoder(log_mel)`` takes
    un-normalised log-mels ``(n_mels, frames)`` or ``(B, n_mels, frames)`` and returns
    ``(T,)`` or ``(B, T)`` with ``T = (frames - 1) * hop_length``. Unlike Griffin-Lim it is
    differentiable; wrap inference in ``torch.no_grad()``.

    Args:
        feature_config: The log-mel settings it is trained for (a dict is accepted).
        channels: Width of the ConvNeXt blocks.
        n_blocks: Number of ConvNeXt blocks.
        hidden_mult: Width of each block's pointwise MLP, as a multiple of ``channels``.
        kernel_size: Temporal kernel of the input and depthwise convolutions (odd).
        layer_scale: Initial value of each block's learned output scale (ConvNeXt's layer scale).
        max_log_magnitude: The predicted log magnitude is clamped to at most this (Vocos clips
            the magnitude at 100, ``log 100 = 4.6``), so an untrained network cannot explode.
    """

    model_type = VOCODER_TYPE

    def __init__(
        self,
        feature_config: FeatureConfig | Mapping[str, Any] | None = None,
        *,
        channels: int = 256,
        n_blocks: int = 6,
        hidden_mult: int = 3,
        kernel_size: int = 7,
        layer_scale: float = 0.1,
        max_log_magnitude: float = 4.6,
    ) -> None:
        super().__init__()
        if isinstance(feature_config, Mapping):
            feature_config = FeatureConfig.from_dict(feature_config)
        c = self.feature_config = feature_config or FeatureConfig()
        for name, value in (("channels", channels), ("n_blocks", n_blocks)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"ISTFTVocoder: {name} must be a positive integer, got {value!r}")
        if not isinstance(hidden_mult, int) or hidden_mult < 1:
            raise ValueError(
                f"ISTFTVocoder: hidden_mult must be a positive integer, got {hidden_mult!r}"
            )
        if not isinstance(kernel_size, int) or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"ISTFTVocoder: kernel_size must be a positive odd integer, got {kernel_size!r}"
            )
        self.config: dict[str, Any] = {
            "channels": channels,
            "n_blocks": n_blocks,
            "hidden_mult": hidden_mult,
            "kernel_size": kernel_size,
            "layer_scale": float(layer_scale),
            "max_log_magnitude": float(max_log_magnitude),
        }
        self.n_freq = c.n_fft // 2 + 1
        self.max_log_magnitude = float(max_log_magnitude)
        self.normalizer = FeatureNormalizer(c.n_mels)
        self.embed = nn.Conv1d(c.n_mels, channels, kernel_size, padding=kernel_size // 2)
        self.norm_in = nn.LayerNorm(channels)
        self.blocks = nn.ModuleList(
            ConvNeXtBlock(
                channels, hidden_mult * channels, kernel_size=kernel_size, layer_scale=layer_scale
            )
            for _ in range(n_blocks)
        )
        self.norm_out = nn.LayerNorm(channels)
        self.head = nn.Linear(channels, 2 * self.n_freq)
        self.register_buffer("window", torch.hann_window(c.win_length), persistent=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> ISTFTVocoder:
        """Build from :attr:`config` plus an optional ``feature_config``; unknown keys are named."""
        valid = {"feature_config", "channels", "n_blocks", "hidden_mult", "kernel_size",
                 "layer_scale", "max_log_magnitude"}  # fmt: skip
        unknown = sorted(set(config) - valid)
        if unknown:
            raise ValueError(
                f"ISTFTVocoder: unknown config key(s) {unknown}; valid keys: {', '.join(sorted(valid))}"
            )
        return cls(**dict(config))

    def _check(self, log_mel: Tensor) -> None:
        n = self.feature_config.n_mels
        if not isinstance(log_mel, Tensor) or log_mel.ndim not in (2, 3) or log_mel.shape[-2] != n:
            shape = tuple(log_mel.shape) if isinstance(log_mel, Tensor) else type(log_mel).__name__
            raise ValueError(
                f"ISTFTVocoder: expected log-mels (n_mels={n}, frames) or (B, n_mels, frames), "
                f"got {shape}"
            )
        if log_mel.shape[-1] < 2:
            raise ValueError(f"ISTFTVocoder: need at least 2 frames, got {log_mel.shape[-1]}")

    def spectrum(self, log_mel: Tensor) -> Tensor:
        """Complex STFT ``(B, n_fft // 2 + 1, frames)`` predicted from log-mels ``(B, n_mels, frames)``."""
        h = self.embed(self.normalizer(log_mel.float()))  # (B, C, T)
        h = self.norm_in(h.transpose(1, 2)).transpose(1, 2)
        for block in self.blocks:
            h = block(h)
        out = self.head(self.norm_out(h.transpose(1, 2))).transpose(1, 2)  # (B, 2F, T)
        log_mag, phase = out.float().split(self.n_freq, dim=1)
        mag = log_mag.clamp(max=self.max_log_magnitude).exp()
        return torch.polar(mag, phase)

    def forward(self, log_mel: Tensor) -> Tensor:
        self._check(log_mel)
        single = log_mel.ndim == 2
        x = log_mel[None] if single else log_mel
        c = self.feature_config
        wav = torch.istft(
            self.spectrum(x),
            n_fft=c.n_fft,
            hop_length=c.hop_length,
            win_length=c.win_length,
            window=self.window,
            center=True,
            length=(x.shape[-1] - 1) * c.hop_length,
        )
        return wav[0] if single else wav

    # -- saving and loading --------------------------------------------------------------------
    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` and ``model.safetensors`` (with the feature statistics) atomically.

        The one saved-model format (:mod:`seqae.core.saving`); the feature settings are the
        extra ``features``.
        """
        return save_model_files(
            self,
            directory,
            model_type=self.model_type,
            config=self.config,
            extras={"features": self.feature_config.to_dict()},
        )

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
    ) -> ISTFTVocoder:
        """Load a vocoder written by :meth:`save_pretrained` (or by older seqae), in eval mode.

        Args:
            directory: The saved folder.
            map_location: Device to load the weights onto.

        Raises:
            SavedModelError: (a ``ValueError``) a missing folder or file (then also a
                ``FileNotFoundError``), a corrupt or foreign ``config.json`` (a voice-conversion
                model's, say), a newer format, or weights of another network (the mismatching
                tensors are named).
        """
        saved = read_model_config(directory)
        if saved.model_type != cls.model_type:
            raise SavedModelError(
                f"{saved.directory} is not a vocoder: model_type {saved.model_type!r}, expected "
                f"{cls.model_type!r} (train one with `seqae run vocoder`)"
            )
        config_path = saved.directory / CONFIG_NAME
        features = saved.extras.get("features")
        if not isinstance(features, dict):
            raise SavedModelError(f'{config_path}: needs a "features" dict (the feature settings)')
        try:
            vocoder = cls.from_config({**saved.config, "feature_config": features})
        except (TypeError, KeyError, ValueError) as exc:
            raise SavedModelError(
                f"{config_path}: cannot build the vocoder from it: {exc}"
            ) from exc
        load_weights_strict(vocoder, saved.weights_path, map_location=map_location)
        return vocoder.to(map_location).eval()


def load_vocoder(
    directory: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> ISTFTVocoder:
    """Load a vocoder written by :meth:`ISTFTVocoder.save_pretrained`, in eval mode.

    Refuses a folder of another kind (a voice-conversion model, an autoencoder) by name; see
    :meth:`ISTFTVocoder.from_pretrained` for every error.
    """
    return ISTFTVocoder.from_pretrained(directory, map_location=map_location)


# ---------------------------------------------------------------------------------------------
# training loss
# ---------------------------------------------------------------------------------------------
def _magnitude(wav: Tensor, n_fft: int, hop: int, window: Tensor) -> Tensor:
    spec = torch.stft(wav, n_fft, hop, n_fft, window=window, center=True, return_complex=True)
    return spec.abs().clamp_min(1e-7)  # (B, F, T)


def multi_resolution_stft_loss(
    pred: Tensor,
    target: Tensor,
    resolutions: Sequence[tuple[int, int]] = ((512, 128), (1024, 256), (2048, 512)),
    *,
    windows: Mapping[int, Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Spectral convergence and log-magnitude L1, each averaged over STFT resolutions.

    Spectral convergence is ``||S - S_hat||_F / ||S||_F`` over the batch (arXiv 1808.06719);
    the log-magnitude term is ``mean |log S - log S_hat|``. Each resolution is ``(n_fft, hop)``
    with a Hann window of ``n_fft`` samples.

    Args:
        pred: ``(B, T)`` waveforms.
        target: ``(B, T)`` waveforms of the same shape.
        resolutions: ``(n_fft, hop)`` pairs.
        windows: Optional cached Hann windows by ``n_fft``.
    """
    if pred.shape != target.shape or pred.ndim != 2:
        raise ValueError(
            f"expected two (B, T) waveforms of one shape, got {tuple(pred.shape)} and "
            f"{tuple(target.shape)}"
        )
    if not resolutions:
        raise ValueError("need at least one STFT resolution")
    sc = pred.new_zeros(())
    mag = pred.new_zeros(())
    for n_fft, hop in resolutions:
        win = (windows or {}).get(n_fft)
        if win is None:
            win = torch.hann_window(n_fft, device=pred.device)
        s_hat = _magnitude(pred.float(), n_fft, hop, win)
        s = _magnitude(target.float(), n_fft, hop, win)
        sc = sc + torch.linalg.vector_norm(s - s_hat) / torch.linalg.vector_norm(s).clamp_min(1e-7)
        mag = mag + (s.log() - s_hat.log()).abs().mean()
    n = len(resolutions)
    return sc / n, mag / n


class VocoderLoss(nn.Module):
    """Log-mel L1 (on the vocoder's own feature settings) plus multi-resolution STFT terms.

    ``loss = mel_weight * mel + stft_weight * (sc + log_mag)``; :meth:`forward` returns every
    term by name, with the total under ``"loss"``.

    Args:
        feature_config: The vocoder's feature settings (the mel term recomputes log-mels of the
            output with them).
        resolutions: ``(n_fft, hop)`` of the STFT terms. The default spans 32-128 ms windows,
            around the 64 ms analysis window of the features and the 25 ms that speech
            recognisers read.
        mel_weight: Weight of the log-mel L1.
        stft_weight: Weight of spectral convergence + log-magnitude L1.
    """

    def __init__(
        self,
        feature_config: FeatureConfig,
        *,
        resolutions: Sequence[Sequence[int]] = ((512, 128), (1024, 256), (2048, 512)),
        mel_weight: float = 1.0,
        stft_weight: float = 1.0,
    ) -> None:
        super().__init__()
        self.resolutions = [(int(n), int(h)) for n, h in resolutions]
        for n_fft, hop in self.resolutions:
            if n_fft < 16 or not 0 < hop <= n_fft:
                raise ValueError(f"bad STFT resolution (n_fft={n_fft}, hop={hop})")
        if mel_weight < 0 or stft_weight < 0 or mel_weight + stft_weight == 0:
            raise ValueError("mel_weight and stft_weight must be >= 0 and not both 0")
        self.mel_weight, self.stft_weight = float(mel_weight), float(stft_weight)
        self.mel = MelExtractor(feature_config)
        for n in {n for n, _ in self.resolutions}:  # buffers, so .to(device) moves them once
            self.register_buffer(f"window_{n}", torch.hann_window(n), persistent=False)

    def forward(self, pred: Tensor, target: Tensor, target_log_mel: Tensor) -> dict[str, Tensor]:
        windows = {n: getattr(self, f"window_{n}") for n, _ in self.resolutions}
        sc, log_mag = multi_resolution_stft_loss(pred, target, self.resolutions, windows=windows)
        mel = (self.mel(pred) - target_log_mel.float()).abs().mean()
        loss = self.mel_weight * mel + self.stft_weight * (sc + log_mag)
        return {"mel": mel, "sc": sc, "log_mag": log_mag, "loss": loss}
