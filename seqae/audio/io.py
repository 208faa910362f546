"""Reading and writing audio files: soundfile for the container, torchaudio for resampling.

Every file that enters seqae goes through :func:`load_audio`, which returns mono float32 at the
requested rate, peak-normalised when the input is clipped or too loud, and raises
:class:`AudioFileError` (naming the file and the problem) for anything it cannot use: a file
that is not audio, a corrupt or empty one, one shorter than ``min_seconds``, or silence only.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = [
    "AudioFileError",
    "load_audio",
    "save_audio",
    "prepare_waveform",
    "MIN_SECONDS",
    "SILENCE_DBFS",
    "PEAK_TARGET",
]

#: Shortest input accepted, in seconds: below this there is too little speech for a speaker.
MIN_SECONDS = 0.5
#: An input whose RMS level is below this (dB relative to full scale) is "silence only".
SILENCE_DBFS = -60.0
#: Loud or clipped inputs are scaled so that their peak is this (about -1 dBFS).
PEAK_TARGET = 0.89


class AudioFileError(ValueError):
    """A file (or waveform) that cannot be used as speech input; the message names it and why."""


def prepare_waveform(
    wav: Tensor | np.ndarray,
    sample_rate: int,
    *,
    target_rate: int,
    source: str = "<waveform>",
    min_seconds: float = MIN_SECONDS,
) -> Tensor:
    """Downmix, resample, check and level an in-memory waveform.

    Args:
        wav: ``(T,)`` mono or ``(T, C)`` / ``(C, T)`` multichannel samples (the longer axis is
            time).
        sample_rate: Rate of ``wav`` in Hz.
        target_rate: Rate of the result in Hz.
        source: Name used in error messages (a file path).
        min_seconds: Shortest duration accepted.

    Returns:
        ``(T',)`` float32 mono waveform at ``target_rate``. Inputs whose peak exceeds
        :data:`PEAK_TARGET` (clipped or very loud) are scaled down to it; quieter ones are left.

    Raises:
        AudioFileError: empty, non-finite, too short, or silent input.
    """
    x = torch.as_tensor(np.asarray(wav) if not isinstance(wav, Tensor) else wav)
    x = x.to(torch.float32)
    if x.ndim == 2:
        time_axis = 0 if x.shape[0] >= x.shape[1] else 1
        x = x.mean(dim=1 - time_axis)
    elif x.ndim != 1:
        raise AudioFileError(
            f"{source}: expected a 1-D or 2-D waveform, got shape {tuple(x.shape)}"
        )
    if x.numel() == 0:
        raise AudioFileError(f"{source}: the audio is empty (0 samples)")
    if not torch.isfinite(x).all():
        raise AudioFileError(f"{source}: the audio contains NaN or infinite samples")
    if sample_rate <= 0:
        raise AudioFileError(f"{source}: invalid sample rate {sample_rate}")
    duration = x.numel() / sample_rate
    if duration < min_seconds:
        raise AudioFileError(
            f"{source}: {duration:.3f} s of audio is too short; at least {min_seconds} s is needed"
        )
    if sample_rate != target_rate:
        x = AF.resample(x, sample_rate, target_rate)
    rms = x.pow(2).mean().sqrt().item()
    if rms <= 10 ** (SILENCE_DBFS / 20):
        level = 20 * np.log10(max(rms, 1e-12))
        raise AudioFileError(
            f"{source}: silence only (RMS level {level:.1f} dBFS, below {SILENCE_DBFS:.0f} dBFS)"
        )
    peak = x.abs().max().item()
    if peak > PEAK_TARGET:
        x = x * (PEAK_TARGET / peak)
    return x.contiguous()


def load_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 16000,
    min_seconds: float = MIN_SECONDS,
) -> Tensor:
    """Read an audio file as a mono float32 waveform at ``sample_rate``.

    Any format libsndfile reads (WAV, FLAC, OGG, ...) at any rate and channel count is accepted:
    channels are averaged and the rate converted with a band-limited resampler.

    Raises:
        AudioFileError: the file is missing, not audio, corrupt, empty, shorter than
            ``min_seconds``, or silence only.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: the file is empty (0 bytes)")
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(
            f"{path}: not a readable audio file ({err}); expected WAV, FLAC or another format "
            "libsndfile reads"
        ) from err
    return prepare_waveform(
        torch.from_numpy(data),
        int(rate),
        target_rate=sample_rate,
        source=str(path),
        min_seconds=min_seconds,
    )


def save_audio(path: str | os.PathLike[str], wav: Tensor | np.ndarray, sample_rate: int) -> Path:
    """Write a mono waveform as 16-bit PCM WAV, atomically (the file is complete or untouched).

    Samples are clipped to [-1, 1]. Parent directories are created.
    """
    from seqae.files import atomic_write_bytes

    x = wav.detach().float().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
    x = np.clip(np.asarray(x, dtype=np.float32).reshape(-1), -1.0, 1.0)
    buf = io.BytesIO()
    sf.write(buf, x, int(sample_rate), format="WAV", subtype="PCM_16")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buf.getvalue(), sync_dir=False)
