"""Reading and writing audio files: soundfile for the container, torchaudio for resampling.

Every file that enters seqae goes through :func:`load_audio`, which returns mono float32 at the
requested rate, peak-normalised when the input is clipped or too loud, and raises
:class:`AudioFileError` (naming the file and the problem) for anything it cannot use: a file
that is not audio, a corrupt, truncated or empty one, one shorter than ``min_seconds``, or
silence only. A file shorter than its header declares (a copy cut short, a download that
stopped) is refused rather than read in part: for WAV, Wave64 and AIFF the header's data size
is compared with the bytes present, for every format the frames libsndfile declares with those
it can read (an Ogg file declares no length, so one cut at a page boundary cannot be told).

Every file seqae writes goes through :func:`write_audio` (or :func:`save_audio`, which returns
just the path): the container and codec are the ones the extension names (:func:`output_format`;
``.wav``, ``.flac``, ``.ogg``, ``.mp3``, ... as far as the installed libsndfile writes them), and
the samples are never clipped: a waveform whose peak exceeds :data:`OUTPUT_PEAK` (-0.1 dBFS;
:data:`LOSSY_OUTPUT_PEAK`, -1 dBFS, for lossy codecs, whose decoded waveform overshoots the
encoded one) is scaled down as a whole to that peak, one gain for the file, so nothing is
distorted; the result says by how much.
"""

from __future__ import annotations

import functools
import io
import math
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

__all__ = [
    "AudioFileError",
    "AudioOutputError",
    "AudioFormat",
    "WrittenAudio",
    "load_audio",
    "save_audio",
    "write_audio",
    "output_format",
    "writable_formats",
    "limit_peak",
    "prepare_waveform",
    "MIN_SECONDS",
    "SILENCE_DBFS",
    "PEAK_TARGET",
    "OUTPUT_PEAK",
    "LOSSY_OUTPUT_PEAK",
]

#: Shortest input accepted, in seconds: below this there is too little speech for a speaker.
MIN_SECONDS = 0.5
#: An input whose RMS level is below this (dB relative to full scale) is "silence only".
SILENCE_DBFS = -60.0
#: Loud or clipped inputs are scaled so that their peak is this (about -1 dBFS).
PEAK_TARGET = 0.89
#: Highest peak written to a PCM or lossless file: 0.99 (-0.09 dBFS); louder output is scaled.
OUTPUT_PEAK = 0.99
#: Highest peak encoded into a lossy file (-1 dBFS): MP3 and Vorbis decode a few percent above
#: what they were given; the decoded file is checked to stay at or below :data:`OUTPUT_PEAK`.
LOSSY_OUTPUT_PEAK = 0.89

#: A declared data size at or above this (or 0) is a streaming writer's placeholder ("unknown",
#: e.g. 0xFFFFFFFF or 0x7FFFF000 when writing to a pipe), not a length to hold the file to.
_STREAMED_SIZE = 0x7FFF0000
#: Encodings tried before giving up on a lossy codec that keeps overshooting (one is the rule).
_LOSSY_TRIES = 5
#: Frames read at a time (a damaged file is reported with how much of it could be read).
_READ_BLOCK = 1 << 13


class AudioFileError(ValueError):
    """A file (or waveform) that cannot be used as speech input; the message names it and why."""


class AudioOutputError(ValueError):
    """An output path audio cannot be written to: a folder, or an extension naming no format
    the installed libsndfile writes (the message lists those it does)."""


# ---------------------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------------------
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


@dataclass(frozen=True)
class _DataChunk:
    """Where a WAV or AIFF file's sample data lies, by its header: the declared byte count and
    what it holds per second (None when the header does not say, e.g. compressed AIFF-C)."""

    offset: int
    declared: int
    bytes_per_second: float | None


def _wav_data_chunk(f: io.BufferedReader, size: int) -> _DataChunk | None:
    """The data chunk of a RIFF, RIFX or RF64 WAVE file (``f`` after its 12-byte header)."""
    f.seek(0)
    magic = f.read(4)
    order = ">" if magic == b"RIFX" else "<"
    bytes_per_second: float | None = None
    ds64_data: int | None = None
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        cid, csize = struct.unpack(order + "4sI", f.read(8))
        if cid == b"fmt " and csize >= 16:
            bytes_per_second = float(struct.unpack(order + "HHII", f.read(12))[3]) or None
        elif cid == b"ds64" and csize >= 16:
            ds64_data = struct.unpack(order + "QQ", f.read(16))[1]
        elif cid == b"data":
            if magic == b"RF64" and csize == 0xFFFFFFFF and ds64_data is not None:
                csize = ds64_data
            return _DataChunk(pos + 8, csize, bytes_per_second)
        pos += 8 + csize + (csize & 1)
    return None


def _w64_data_chunk(f: io.BufferedReader, size: int) -> _DataChunk | None:
    """The data chunk of a Sony Wave64 file: 16-byte GUID ids, 8-byte sizes that count the
    24-byte chunk header, chunks aligned to 8 bytes."""
    bytes_per_second: float | None = None
    pos = 40
    while pos + 24 <= size:
        f.seek(pos)
        cid, csize = struct.unpack("<16sQ", f.read(24))
        if csize < 24:
            return None
        if cid[:4] == b"fmt " and csize >= 40:
            bytes_per_second = float(struct.unpack("<HHII", f.read(12))[3]) or None
        elif cid[:4] == b"data":
            return _DataChunk(pos + 24, csize - 24, bytes_per_second)
        pos += csize + (-csize % 8)
    return None


def _aiff_data_chunk(f: io.BufferedReader, size: int) -> _DataChunk | None:
    """The SSND chunk of an AIFF or AIFF-C file."""
    bytes_per_second: float | None = None
    compressed = False
    pos = 12
    while pos + 8 <= size:
        f.seek(pos)
        cid, csize = struct.unpack(">4sI", f.read(8))
        if cid == b"COMM" and csize >= 18:
            channels, _, bits = struct.unpack(">HIH", f.read(8))
            exponent, mantissa = struct.unpack(">HQ", f.read(10))
            rate = math.ldexp(mantissa, (exponent & 0x7FFF) - 16383 - 63) if mantissa else 0.0
            compressed = csize > 18 and f.read(4) not in (b"NONE", b"twos", b"sowt", b"")
            if rate > 0 and not compressed:
                bytes_per_second = channels * ((bits + 7) // 8) * rate
        elif cid == b"SSND" and csize >= 8:
            (data_offset,) = struct.unpack(">I", f.read(4))
            return _DataChunk(pos + 16 + data_offset, csize - 8 - data_offset, bytes_per_second)
        pos += 8 + csize + (csize & 1)
    return None


def _header_data_chunk(path: Path) -> _DataChunk | None:
    """The sample data a WAV (RIFF, RIFX, RF64, Wave64) or AIFF header declares, or None for other
    formats and for sizes a streaming writer left unknown (0 or 0xFFFFFFFF)."""
    size = path.stat().st_size
    with path.open("rb") as f:
        head = f.read(12)
        if len(head) < 12:
            return None
        if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
            chunk = _wav_data_chunk(f, size)
        elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
            chunk = _aiff_data_chunk(f, size)
        elif head[:4] == b"riff" and f.read(28)[12:16] == b"wave":
            chunk = _w64_data_chunk(f, size)
        else:
            return None
    if chunk is None or chunk.declared == 0 or chunk.declared >= _STREAMED_SIZE:
        return None
    return chunk


def _amount(n_bytes: int, bytes_per_second: float | None) -> str:
    """``"3.67 s (117440 bytes)"``, or just the bytes when the rate is unknown."""
    if not bytes_per_second:
        return f"{n_bytes} bytes"
    return f"{n_bytes / bytes_per_second:.2f} s ({n_bytes} bytes)"


def _check_not_truncated(path: Path) -> None:
    """Refuse a WAV, Wave64 or AIFF file that holds fewer data bytes than its header declares."""
    try:
        chunk = _header_data_chunk(path)
    except (OSError, struct.error):
        return  # not a header this parser knows; libsndfile decides
    if chunk is None:
        return
    present = max(0, path.stat().st_size - chunk.offset)
    if present < chunk.declared:
        rate = chunk.bytes_per_second
        raise AudioFileError(
            f"{path}: the file is truncated: its header declares {_amount(chunk.declared, rate)} "
            f"of audio but only {_amount(present, rate)} are present; it was cut short (an "
            "interrupted copy or download?): re-create or re-copy it"
        )


def _read_all(path: Path) -> tuple[np.ndarray, int]:
    """Every frame of an audio file as ``(frames, channels)`` float32, and its rate; a file
    from which fewer frames can be read than its header declares is refused."""
    try:
        handle = sf.SoundFile(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(
            f"{path}: not a readable audio file ({err}); expected WAV, FLAC or another format "
            "libsndfile reads"
        ) from err
    with handle:
        rate, declared = int(handle.samplerate), int(handle.frames)
        # an MP3's frame count is an estimate (from the bit rate when there is no Xing header)
        exact = handle.format != "MP3"
        blocks: list[np.ndarray] = []
        got = 0
        try:
            while True:
                block = handle.read(_READ_BLOCK, dtype="float32", always_2d=True)
                if len(block) == 0:
                    break
                blocks.append(block)
                got += len(block)
        except (sf.LibsndfileError, RuntimeError) as err:
            raise AudioFileError(
                f"{path}: the file is damaged or truncated: its header declares {declared} "
                f"frames ({declared / rate:.2f} s) but reading failed after {got} frames "
                f"({got / rate:.2f} s) ({err})"
            ) from err
        if exact and got < declared:
            raise AudioFileError(
                f"{path}: the file is truncated: its header declares {declared} frames "
                f"({declared / rate:.2f} s) but only {got} frames ({got / rate:.2f} s) can be read"
            )
        channels = handle.channels
    data = np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float32)
    return data, rate


def load_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = 16000,
    min_seconds: float = MIN_SECONDS,
) -> Tensor:
    """Read an audio file as a mono float32 waveform at ``sample_rate``.

    Any format libsndfile reads (WAV, FLAC, OGG, ...) at any rate and channel count is accepted:
    channels are averaged and the rate converted with a band-limited resampler.

    Args:
        path: The file.
        sample_rate: Rate of the result in Hz.
        min_seconds: Shortest duration accepted.

    Raises:
        AudioFileError: the file is missing, not audio, corrupt, truncated (shorter than its
            header declares: the message gives both lengths), empty, shorter than
            ``min_seconds``, or silence only.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioFileError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioFileError(f"{path}: the file is empty (0 bytes)")
    _check_not_truncated(path)
    data, rate = _read_all(path)
    return prepare_waveform(
        torch.from_numpy(data),
        rate,
        target_rate=sample_rate,
        source=str(path),
        min_seconds=min_seconds,
    )


# ---------------------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class AudioFormat:
    """What a file extension is written as.

    Attributes:
        extension: The extension, lower case with its dot (``".wav"``).
        format: libsndfile's container name (``"WAV"``).
        subtype: libsndfile's codec name (``"PCM_16"``).
        lossy: Whether the codec changes the samples (MP3, Vorbis).
    """

    extension: str
    format: str
    subtype: str
    lossy: bool = False

    @property
    def peak(self) -> float:
        """The highest peak encoded into this format (:data:`OUTPUT_PEAK` or, for lossy
        codecs, :data:`LOSSY_OUTPUT_PEAK`)."""
        return LOSSY_OUTPUT_PEAK if self.lossy else OUTPUT_PEAK


#: Extension -> (container, codec, lossy): formats that keep a mono speech waveform's rate and
#: that any audio tool reads. :func:`writable_formats` keeps those the installed libsndfile writes.
_FORMATS: dict[str, tuple[str, str, bool]] = {
    ".wav": ("WAV", "PCM_16", False),
    ".flac": ("FLAC", "PCM_16", False),
    ".ogg": ("OGG", "VORBIS", True),
    ".oga": ("OGG", "VORBIS", True),
    ".mp3": ("MP3", "MPEG_LAYER_III", True),
    ".aif": ("AIFF", "PCM_16", False),
    ".aiff": ("AIFF", "PCM_16", False),
    ".au": ("AU", "PCM_16", False),
    ".caf": ("CAF", "PCM_16", False),
    ".w64": ("W64", "PCM_16", False),
    ".rf64": ("RF64", "PCM_16", False),
}


@functools.cache
def _writable() -> tuple[AudioFormat, ...]:
    available = sf.available_formats()
    return tuple(
        AudioFormat(ext, fmt, subtype, lossy)
        for ext, (fmt, subtype, lossy) in _FORMATS.items()
        if fmt in available and sf.check_format(fmt, subtype)
    )


def writable_formats() -> dict[str, AudioFormat]:
    """Extension -> :class:`AudioFormat` for every output format the installed libsndfile
    writes (``soundfile.available_formats()`` and ``soundfile.check_format``)."""
    return {f.extension: f for f in _writable()}


def output_format(path: str | os.PathLike[str]) -> AudioFormat:
    """The format an output file is written in, named by its extension (case-insensitive).

    Args:
        path: The file to write.

    Raises:
        AudioOutputError: ``path`` is an existing folder, or its extension names no format
            that libsndfile writes here (the message lists those it does).
    """
    path = Path(path)
    if path.is_dir():
        raise AudioOutputError(
            f"{path} is a folder; give the audio file to write, e.g. {path / 'converted.wav'}"
        )
    formats = writable_formats()
    fmt = formats.get(path.suffix.lower())
    if fmt is None:
        what = f"extension {path.suffix!r}" if path.suffix else "no extension"
        raise AudioOutputError(
            f"{path}: cannot write audio with {what}; the formats written here are "
            f"{', '.join(formats)} (the extension chooses the format)"
        )
    return fmt


def limit_peak(wav: Tensor | np.ndarray, peak: float = OUTPUT_PEAK) -> tuple[np.ndarray, float]:
    """Scale a waveform down so that no sample exceeds ``peak`` in magnitude.

    One gain for the whole waveform (no limiter's distortion); quieter waveforms are returned
    as they are.

    Args:
        wav: Samples, any shape (flattened).
        peak: The highest magnitude allowed, in (0, 1].

    Returns:
        ``(samples, gain)``: float32 ``(T,)`` samples and the gain applied (1.0 when none).

    Raises:
        ValueError: the waveform holds NaN or infinite samples.
    """
    x = wav.detach().float().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("the waveform holds NaN or infinite samples; nothing can be written")
    top = float(np.abs(x).max()) if x.size else 0.0
    if top <= peak:
        return x, 1.0
    gain = peak / top
    return (x * np.float32(gain)).astype(np.float32), gain


@dataclass(frozen=True)
class WrittenAudio:
    """What :func:`write_audio` wrote.

    Attributes:
        path: The file.
        format: Its format.
        peak: The waveform's peak magnitude before any scaling.
        gain: The gain applied so that nothing clips (1.0 when the waveform was left alone).
    """

    path: Path
    format: AudioFormat
    peak: float
    gain: float

    @property
    def scaled(self) -> bool:
        """Whether the waveform was scaled down."""
        return self.gain < 1.0

    def describe_scaling(self) -> str:
        """One sentence saying by how much the waveform was scaled (for ``scaled`` results)."""
        level = 20 * math.log10(max(self.peak, 1e-12))
        return (
            f"{self.path}: the output peaked at {level:+.1f} dBFS; scaled down by "
            f"{-20 * math.log10(self.gain):.1f} dB so that no sample clips"
        )


def _encode(x: np.ndarray, sample_rate: int, fmt: AudioFormat) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, sample_rate, format=fmt.format, subtype=fmt.subtype)
    return buf.getvalue()


def _decoded_peak(data: bytes, fmt: AudioFormat) -> float:
    """The peak of an encoded file once decoded (libsndfile decodes MP3 only from a file)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"check{fmt.extension}"
        path.write_bytes(data)
        decoded, _ = sf.read(str(path), dtype="float32")
    return float(np.abs(decoded).max()) if decoded.size else 0.0


def write_audio(
    path: str | os.PathLike[str], wav: Tensor | np.ndarray, sample_rate: int
) -> WrittenAudio:
    """Write a mono waveform in the format its extension names, atomically, never clipping.

    ``.wav`` is 16-bit PCM; :func:`output_format` lists the others. A waveform whose peak
    exceeds the format's :attr:`AudioFormat.peak` is scaled down to it as a whole; for a lossy
    codec the decoded file is checked too and the gain lowered until it stays at or below
    :data:`OUTPUT_PEAK`. The file is complete or untouched; parent folders are created.

    Args:
        path: The file to write.
        wav: ``(T,)`` samples (any shape is flattened), nominally in [-1, 1].
        sample_rate: Rate in Hz.

    Returns:
        A :class:`WrittenAudio` (path, format, the waveform's peak, the gain applied).

    Raises:
        AudioOutputError: ``path`` is a folder or its extension names no writable format.
        ValueError: the waveform holds NaN or infinite samples.
    """
    from seqae.files import atomic_write_bytes

    path = Path(path)
    fmt = output_format(path)
    x = wav.detach().float().cpu().numpy() if isinstance(wav, Tensor) else np.asarray(wav)
    x = np.asarray(x, dtype=np.float32).reshape(-1)
    limited, gain = limit_peak(x, fmt.peak)
    peak = float(np.abs(x).max()) if x.size else 0.0
    for _ in range(_LOSSY_TRIES):
        data = _encode(limited, int(sample_rate), fmt)
        decoded = _decoded_peak(data, fmt) if fmt.lossy and x.size else 0.0
        if decoded <= OUTPUT_PEAK:
            break
        gain *= LOSSY_OUTPUT_PEAK / decoded  # the codec overshot: lower the gain and re-encode
        limited = (x * np.float32(gain)).astype(np.float32)
    else:
        raise RuntimeError(
            f"{path}: the {fmt.format} encoder kept overshooting full scale; write .wav or .flac"
        )
    atomic_write_bytes(path, data, sync_dir=False)
    return WrittenAudio(path=path, format=fmt, peak=peak, gain=gain)


def save_audio(path: str | os.PathLike[str], wav: Tensor | np.ndarray, sample_rate: int) -> Path:
    """:func:`write_audio`, returning just the path written.

    Args:
        path: The file to write (its extension names the format; ``.wav``: 16-bit PCM).
        wav: ``(T,)`` samples; a peak above the format's :attr:`AudioFormat.peak` is scaled
            down to it (never clipped).
        sample_rate: Rate in Hz.
    """
    return write_audio(path, wav, sample_rate).path
