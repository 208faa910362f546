"""One-shot voice conversion of files: features, chunked model pass, vocoder, and ``seqae convert``.

    vc = VoiceConverter.from_pretrained("runs/vc/model")          # a save_pretrained directory
    vc.convert_file("me.wav", ["target_1.wav", "target_2.wav"], "me_as_target.wav")

:class:`VoiceConverter` wraps a voice-conversion model (``seqae.audio.models``): it turns a
waveform into the model's normalised log-mel, computes the target speaker's embedding once from
one or more reference utterances (the mean of the per-reference embeddings), converts the source,
gives the output the references' per-bin log-mel statistics (:mod:`seqae.audio.matching`;
``match_stats``) and vocodes the result (Griffin-Lim unless another
:class:`~seqae.audio.vocoder.Vocoder` is given).

Long inputs are converted in chunks (:func:`chunk_spans`: equal lengths of at most
``chunk_seconds``, neighbours overlapping by about ``overlap_seconds``) so memory stays bounded
and the content encoder's instance normalisation sees utterance-sized windows. The chunks'
outputs are cross-faded in the mel domain with complementary raised-cosine weights over each
overlap (every output frame is a convex combination of the chunks that cover it), and the whole
mel is vocoded in one pass, so the waveform has no seam: there is no phase discontinuity to
hide, and the mel changes no faster across a boundary than the two chunk outputs do.

The same from a shell (``add_parser`` adds this subcommand to ``seqae``)::

    seqae convert --model DIR --source SRC.wav --target REF.wav [REF2.wav ...] --out OUT.wav
    seqae convert --model DIR --manifest pairs.tsv [--out-dir DIR] [--keep-going]

A manifest is a TSV (or CSV) file with the header ``source<TAB>target<TAB>out``; ``target`` may
list several references separated by ``|``; relative paths are resolved against the manifest's
folder (``out`` against ``--out-dir`` when given). Exit status: 0 when every file was converted,
2 for bad input (a missing or unusable model, audio file, manifest row or setting), each reported
in one line.

Before anything is converted every output is checked: an output that is one of the inputs (the
source, a reference, the manifest; the same file through a link too), an existing folder, an
extension naming no format libsndfile writes, or two rows writing one file are refused. The
extension chooses the format (``.wav``: 16-bit PCM, ``.flac``, ``.ogg``, ``.mp3``, ...; see
:func:`seqae.audio.io.output_format`). Output whose peak would clip is scaled down as a whole
(:func:`seqae.audio.io.write_audio`: to -0.1 dBFS, -1 dBFS for lossy codecs) and the command says
so on stderr.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from seqae.audio.features import (
    FeatureConfig,
    FeatureMismatchError,
    MelExtractor,
    check_same_features,
)
from seqae.audio.io import (
    AudioFileError,
    AudioOutputError,
    WrittenAudio,
    load_audio,
    output_format,
    prepare_waveform,
    write_audio,
)
from seqae.audio.matching import (
    DEFAULT_SPREAD_WEIGHT,
    MATCH_MODES,
    MelStatistics,
    check_match_mode,
    check_spread_weight,
    match_statistics,
    mel_statistics,
)
from seqae.audio.vocoder import GriffinLimVocoder, Vocoder
from seqae.cli import int_at_least

__all__ = [
    "AudioInput",
    "ChunkSettingsError",
    "ManifestError",
    "ManifestRow",
    "ModelDirectoryError",
    "VoiceConverter",
    "add_parser",
    "chunk_spans",
    "crossfade_weights",
    "read_manifest",
]

#: A waveform source: a file path, a waveform at the model's rate, or ``(waveform, rate)``.
AudioInput = str | os.PathLike[str] | Tensor | np.ndarray | tuple[Any, int]


class ModelDirectoryError(FileNotFoundError):
    """A directory that does not hold a saved voice-conversion model."""


class ManifestError(ValueError):
    """A batch-conversion manifest that cannot be read, or one of its rows; names file and row."""


class ChunkSettingsError(ValueError):
    """``chunk_seconds`` / ``overlap_seconds`` a model cannot be converted with.

    Attributes:
        minimum_chunk_seconds: The shortest ``chunk_seconds`` that works with the given
            ``overlap_seconds`` (None when the overlap itself is invalid).
    """

    def __init__(self, message: str, *, minimum_chunk_seconds: float | None = None) -> None:
        super().__init__(message)
        self.minimum_chunk_seconds = minimum_chunk_seconds


# ---------------------------------------------------------------------------------------------
# chunking
# ---------------------------------------------------------------------------------------------
def chunk_spans(
    num_frames: int, chunk_frames: int, overlap_frames: int, *, align: int = 1
) -> list[tuple[int, int]]:
    """Split ``num_frames`` frames into overlapping chunks of (nearly) equal length.

    Inputs of at most ``chunk_frames`` frames are one chunk. Longer ones get the fewest chunks
    of at most ``chunk_frames`` frames whose neighbours overlap by at least ``overlap_frames``
    (about exactly that: the lengths are balanced so that no short tail chunk is left); the
    first chunk starts at 0, the last ends at ``num_frames``, and no frame lies in more than
    two chunks.

    Args:
        num_frames: Frames of the input (> 0).
        chunk_frames: Longest chunk, in frames.
        overlap_frames: Least overlap between neighbours, in frames (>= 1).
        align: Every chunk starts at a multiple of this (a model's total time stride, so that
            each chunk is downsampled on the same frame grid as the whole input would be). All
            chunks but the last have the same length; the last is up to ``align - 1`` longer.
            ``chunk_frames >= 3 * (overlap_frames + align - 1) + align - 1`` is required.

    Returns:
        ``[(start, end), ...]`` half-open frame ranges, in order.
    """
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    # Plan unaligned chunks with room for rounding the starts down to multiples of `align`:
    # each overlap may shrink and the last chunk grow by up to align - 1 frames.
    overlap = overlap_frames + align - 1
    chunk = chunk_frames - (align - 1)
    if overlap_frames < 1 or chunk < 3 * overlap:
        raise ValueError(
            f"need overlap_frames >= 1 and chunk_frames >= 3 * (overlap_frames + align - 1) + "
            f"align - 1, got chunk_frames={chunk_frames}, overlap_frames={overlap_frames}, "
            f"align={align}"
        )
    if num_frames <= chunk_frames:
        return [(0, num_frames)]
    n = math.ceil((num_frames - overlap) / (chunk - overlap))
    length = math.ceil((num_frames + (n - 1) * overlap) / n)  # <= chunk
    # Starts spread evenly from 0 to num_frames - length; rounding down keeps every overlap
    # at least the requested one (the ideal step is at most (num_frames - overlap) / n).
    starts = [(i * (num_frames - length)) // (n - 1) // align * align for i in range(n)]
    spans = [(s, s + length) for s in starts[:-1]] + [(starts[-1], num_frames)]
    for i in range(1, n):
        if spans[i - 1][1] - spans[i][0] < overlap_frames or (
            i >= 2 and spans[i][0] < spans[i - 2][1]
        ):
            raise AssertionError(f"internal error: bad chunk plan {spans}")  # pragma: no cover
    return spans


def crossfade_weights(spans: Sequence[tuple[int, int]]) -> list[Tensor]:
    """Per-chunk weights for :func:`chunk_spans` chunks: 1 inside, raised cosine over overlaps.

    Over the overlap of two neighbours the incoming chunk's weight rises as
    ``0.5 - 0.5 cos(pi (k + 0.5) / L)`` and the outgoing chunk's falls as one minus that, so at
    every frame the weights of the chunks covering it are positive and sum to 1: the output is
    a convex combination of the chunk outputs, equal to a chunk's own output outside overlaps.

    Returns:
        One float32 ``(end - start,)`` tensor per span.
    """
    weights = [torch.ones(e - s) for s, e in spans]
    for i in range(1, len(spans)):
        overlap = spans[i - 1][1] - spans[i][0]
        k = torch.arange(overlap, dtype=torch.float64)
        rise = (0.5 - 0.5 * torch.cos(math.pi * (k + 0.5) / overlap)).float()
        weights[i][:overlap] = rise
        weights[i - 1][-overlap:] = 1.0 - rise
    return weights


# ---------------------------------------------------------------------------------------------
# converter
# ---------------------------------------------------------------------------------------------
def _model_name(model: nn.Module) -> str:
    return f"model {getattr(model, 'model_type', type(model).__name__)!s}"


class VoiceConverter:
    """Convert speech to the voice of one or more reference utterances with a trained VC model.

    The model is put in evaluation mode and moved to ``device``; every method runs under
    ``torch.inference_mode`` (so the tensors returned are inference tensors: ``.clone()`` one
    outside that mode before using it in autograd). Features, vocoder and (optionally) the
    converter's own ``feature_config`` must use the model's feature settings.

    Args:
        model: A voice-conversion model with ``feature_config``, ``normalizer``,
            ``encode_content(x)``, ``encode_speaker(x)`` and ``decode(z, speaker, length=T)``
            (see ``seqae.audio.models``).
        vocoder: Log-mel -> waveform; default :class:`~seqae.audio.vocoder.GriffinLimVocoder`
            with the model's feature settings.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device``; default CUDA when
            available, else CPU.
        chunk_seconds: Inputs longer than this are converted in chunks of at most this length.
        overlap_seconds: Least overlap of neighbouring chunks, cross-faded in the mel domain;
            ``chunk_seconds >= 3 * overlap_seconds``.
        feature_config: The feature settings the caller's data were made with; checked against
            the model's (default: the model's).
        batch_size: Chunks converted together in one model call.
        match_stats: Statistics matching after the model (:mod:`seqae.audio.matching`):
            ``"mean_std"`` (default) gives the output the references' per-bin log-mel mean and
            spread over speech frames, ``"mean"`` the mean only, ``"none"`` leaves the model's
            output as is. It moves the output towards voices the model never heard, whose
            long-term spectrum a learned speaker embedding cannot place.
        spread_weight: For ``"mean_std"``, how far each bin's spread moves towards the
            references', in [0, 1] (:func:`~seqae.audio.matching.match_statistics`): 1 all the
            way, 0 not at all; default 0.5.

    Raises:
        FeatureMismatchError: the model, the vocoder and ``feature_config`` disagree; the message
            names both sides and each differing setting.
        ChunkSettingsError: ``overlap_seconds`` is not positive, or ``chunk_seconds`` is too
            short for it (the error carries the shortest that works).
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        vocoder: Vocoder | None = None,
        device: str | torch.device | None = None,
        chunk_seconds: float = 8.0,
        overlap_seconds: float = 1.0,
        feature_config: FeatureConfig | None = None,
        batch_size: int = 8,
        match_stats: str = "mean_std",
        spread_weight: float = DEFAULT_SPREAD_WEIGHT,
    ) -> None:
        from seqae.training.runtime import get_device

        self.match_stats = check_match_mode(match_stats)
        self.spread_weight = check_spread_weight(spread_weight)

        model_config = getattr(model, "feature_config", None)
        if not isinstance(model_config, FeatureConfig):
            raise TypeError(
                f"{type(model).__name__} is not a voice-conversion model: it has no "
                "feature_config (expected a model from seqae.audio.models)"
            )
        if feature_config is not None:
            check_same_features(
                model_config, feature_config, what=f"{_model_name(model)} vs the converter"
            )
        self.feature_config: FeatureConfig = model_config
        fps = model_config.frames_per_second
        align = int(getattr(model, "total_stride", 1))
        self.align = align
        if not (math.isfinite(overlap_seconds) and overlap_seconds > 0):
            raise ChunkSettingsError(
                f"overlap_seconds must be a positive number of seconds, got {overlap_seconds}"
            )
        self.overlap_frames = max(1, round(overlap_seconds * fps))
        stride_frames = 4 * (align - 1)  # room to align every chunk start to the stride
        need = 3 * self.overlap_frames + stride_frames
        shortest = math.ceil(100 * (need - 0.5) / fps) / 100  # round(c * fps) >= need
        if not (math.isfinite(chunk_seconds) and chunk_seconds > 0):
            raise ChunkSettingsError(
                f"chunk_seconds must be a positive number of seconds, got {chunk_seconds}",
                minimum_chunk_seconds=shortest,
            )
        if round(chunk_seconds * fps) < need:
            raise ChunkSettingsError(
                f"chunk_seconds={chunk_seconds} is too short for overlap_seconds="
                f"{overlap_seconds}: a chunk must hold 3 overlaps plus {stride_frames} frames "
                f"for the model's time stride {align}, so chunk_seconds must be at least "
                f"{shortest:.2f} (or overlap_seconds smaller)",
                minimum_chunk_seconds=shortest,
            )
        self.chunk_frames = round(chunk_seconds * fps)
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.chunk_seconds = chunk_seconds
        self.overlap_seconds = overlap_seconds
        self.batch_size = batch_size

        if isinstance(device, torch.device):
            self.device = device
        else:
            self.device = get_device(device or "auto")
        self.model = model.eval().to(self.device)
        self.set_vocoder(vocoder if vocoder is not None else GriffinLimVocoder(model_config))
        self.extractor = MelExtractor(model_config).to(self.device)

    def set_vocoder(self, vocoder: Vocoder) -> None:
        """Use ``vocoder`` from now on (e.g. a trained :class:`~seqae.audio.ISTFTVocoder`).

        Raises:
            FeatureMismatchError: the vocoder was made for other feature settings than the model.
        """
        check_same_features(
            self.feature_config,
            vocoder.feature_config,
            what=f"{_model_name(self.model)} vs vocoder {type(vocoder).__name__}",
        )
        if isinstance(vocoder, nn.Module):
            vocoder = vocoder.eval().to(self.device)
        self.vocoder = vocoder

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike[str], **kwargs: Any) -> VoiceConverter:
        """Load a model saved with ``save_pretrained`` and wrap it.

        Args:
            directory: The model directory (``config.json`` + ``model.safetensors``).
            **kwargs: Passed to :class:`VoiceConverter`.

        Raises:
            ModelDirectoryError: ``directory`` is missing or holds no ``config.json``.
            ValueError: the saved model cannot be loaded (the model loader's message: e.g. a
                ``SavedModelError`` for NaN or infinite weights), or a setting in ``kwargs`` is
                invalid (:class:`ChunkSettingsError`, ...).
        """
        return cls(cls.load_model(directory), **kwargs)

    @staticmethod
    def load_model(directory: str | os.PathLike[str]) -> nn.Module:
        """The voice-conversion model saved in ``directory`` (``load_vc_model``), on the CPU.

        Raises:
            ModelDirectoryError: ``directory`` is missing or holds no ``config.json``.
            ValueError: the saved model cannot be loaded (the model loader's message).
        """
        from seqae.audio.models import load_vc_model

        path = Path(directory)
        if not path.is_dir():
            raise ModelDirectoryError(f"{path}: no such model directory")
        if not (path / "config.json").is_file():
            raise ModelDirectoryError(
                f"{path}: not a saved voice-conversion model (no config.json); expected a "
                "directory written by save_pretrained, e.g. the model/ folder of a `seqae run vc` "
                "run"
            )
        return load_vc_model(path)

    # -- audio and features --------------------------------------------------------------------
    def load(self, audio: AudioInput, *, name: str | None = None) -> Tensor:
        """Waveform at the model's rate from a file, a waveform, or ``(waveform, rate)``.

        Files go through :func:`~seqae.audio.io.load_audio` and in-memory waveforms through
        :func:`~seqae.audio.io.prepare_waveform` (a bare waveform is taken to be at the model's
        rate): downmixed, resampled, loud input peak-normalised.

        Raises:
            AudioFileError: missing, not audio, corrupt, empty, too short or silent.
        """
        rate = self.feature_config.sample_rate
        if isinstance(audio, str | os.PathLike):
            return load_audio(audio, sample_rate=rate)
        if isinstance(audio, tuple):
            if len(audio) != 2:
                raise TypeError("audio as a tuple must be (waveform, sample_rate)")
            wav, sr = audio
            return prepare_waveform(wav, int(sr), target_rate=rate, source=name or "<waveform>")
        return prepare_waveform(audio, rate, target_rate=rate, source=name or "<waveform>")

    @torch.inference_mode()
    def features(self, wav: AudioInput, *, name: str | None = None) -> Tensor:
        """Normalised log-mel ``(n_mels, frames)`` of a waveform (see :meth:`load`), on ``device``.

        ``name`` labels an in-memory waveform in error messages.
        """
        x = self.load(wav, name=name).to(self.device)
        return self.model.normalizer(self.extractor(x))

    def reference_features(self, references: AudioInput | Sequence[AudioInput]) -> list[Tensor]:
        """Normalised log-mels of one or more reference utterances (paths or waveforms)."""
        refs = self._as_list(references)
        if not refs:
            raise ValueError("at least one reference utterance of the target speaker is needed")
        return [self.features(r, name=f"reference {i + 1}") for i, r in enumerate(refs)]

    @staticmethod
    def _as_list(references: AudioInput | Sequence[AudioInput]) -> list[AudioInput]:
        if isinstance(references, str | os.PathLike | Tensor | np.ndarray):
            return [references]
        if (
            isinstance(references, tuple)
            and len(references) == 2
            and isinstance(references[1], int)
        ):
            return [references]  # one (waveform, rate) pair
        return list(references)

    # -- conversion ----------------------------------------------------------------------------
    def _check_mel(self, mel: Tensor, what: str) -> Tensor:
        if mel.ndim == 3 and mel.shape[0] == 1:
            mel = mel[0]
        n_mels = self.feature_config.n_mels
        if mel.ndim != 2:
            raise ValueError(f"{what}: expected a log-mel (n_mels, frames), got {tuple(mel.shape)}")
        if mel.shape[0] != n_mels:
            raise FeatureMismatchError(
                f"{what} has {mel.shape[0]} mel bins but {_model_name(self.model)} uses "
                f"{n_mels}: it was made with other feature settings"
            )
        if mel.shape[1] < 1:
            raise ValueError(f"{what}: has no frames")
        return mel.to(self.device, torch.float32)

    def _check_references(self, reference_mels: Sequence[Tensor]) -> list[Tensor]:
        """The references as checked ``(n_mels, frames)`` log-mels on ``device``."""
        if isinstance(reference_mels, Tensor) or len(reference_mels) == 0:
            raise ValueError("reference_mels must be a non-empty list of (n_mels, frames) tensors")
        return [self._check_mel(m, f"reference {i + 1}") for i, m in enumerate(reference_mels)]

    @torch.inference_mode()
    def speaker_embedding(self, reference_mels: Sequence[Tensor]) -> Tensor:
        """Target speaker embedding ``(1, S)``: the mean of the references' embeddings."""
        embs = [self.model.encode_speaker(m[None]) for m in self._check_references(reference_mels)]
        return torch.cat(embs, dim=0).mean(dim=0, keepdim=True)

    @torch.inference_mode()
    def convert_mel(
        self,
        source_mel: Tensor,
        reference_mels: Sequence[Tensor] | None = None,
        *,
        speaker: Tensor | None = None,
        statistics: MelStatistics | None = None,
    ) -> Tensor:
        """Convert a normalised log-mel to the references' voice.

        The speaker embedding is computed once (or taken from ``speaker``); sources longer than
        ``chunk_seconds`` are converted in overlapping chunks cross-faded over the overlaps
        (see the module docstring), shorter ones in one pass. The whole output is then matched
        to the references' statistics (``match_stats``).

        Args:
            source_mel: ``(n_mels, T)`` (or ``(1, n_mels, T)``) normalised log-mel.
            reference_mels: Normalised log-mels of the target speaker, one or more.
            speaker: A precomputed :meth:`speaker_embedding` instead of ``reference_mels``.
            statistics: Precomputed :meth:`reference_statistics` instead of ``reference_mels``
                (needed with ``speaker`` unless ``match_stats`` is ``"none"``).

        Returns:
            ``(n_mels, T)`` normalised log-mel on ``device``.
        """
        src = self._check_mel(source_mel, "source")
        if speaker is None:
            if reference_mels is None:
                raise ValueError("give reference_mels (or a precomputed speaker embedding)")
            speaker = self.speaker_embedding(reference_mels)
        if self.match_stats != "none" and statistics is None:
            if reference_mels is None:
                raise ValueError(
                    f"match_stats={self.match_stats!r} needs the references' statistics: give "
                    "reference_mels, or statistics=reference_statistics(reference_mels) with a "
                    "precomputed speaker embedding"
                )
            statistics = self.reference_statistics(reference_mels)
        return self._match(self._convert_chunks(src, speaker), statistics)

    def _convert_chunks(self, src: Tensor, speaker: Tensor) -> Tensor:
        """The model's conversion of ``(n_mels, T)``, chunked and cross-faded when long."""
        speaker = speaker.to(self.device).reshape(1, -1)
        spans = chunk_spans(src.shape[1], self.chunk_frames, self.overlap_frames, align=self.align)
        if len(spans) == 1:
            return self._convert_batch(src[None], speaker)[0]
        weights = crossfade_weights(spans)
        out = torch.zeros_like(src)
        # Batches of equal-length chunks (all but the last chunk have the same length).
        groups: list[list[int]] = []
        for i, (s, e) in enumerate(spans):
            prev = groups[-1] if groups else None
            if (
                prev
                and len(prev) < self.batch_size
                and spans[prev[0]][1] - spans[prev[0]][0] == e - s
            ):
                prev.append(i)
            else:
                groups.append([i])
        for group in groups:
            chunks = torch.stack([src[:, spans[i][0] : spans[i][1]] for i in group])
            converted = self._convert_batch(chunks, speaker)
            for i, y in zip(group, converted, strict=True):
                s, e = spans[i]
                out[:, s:e] += y * weights[i].to(self.device)
        return out

    @torch.inference_mode()
    def reference_statistics(self, reference_mels: Sequence[Tensor]) -> MelStatistics:
        """Per-bin log-mel statistics of the references' speech frames (pooled), unnormalised."""
        inverse = self.model.normalizer.inverse
        return mel_statistics([inverse(m) for m in self._check_references(reference_mels)])

    def _match(self, mel: Tensor, statistics: MelStatistics | None) -> Tensor:
        """Normalised log-mel matched to ``statistics`` (as ``match_stats`` says)."""
        if self.match_stats == "none" or statistics is None:
            return mel
        norm = self.model.normalizer
        matched = match_statistics(
            norm.inverse(mel), statistics, mode=self.match_stats, spread_weight=self.spread_weight
        )
        return norm(matched)

    def _convert_batch(self, chunks: Tensor, speaker: Tensor) -> Tensor:
        """``(B, n_mels, L)`` source chunks, ``(1, S)`` speaker -> ``(B, n_mels, L)``."""
        content = self.model.encode_content(chunks).z
        out = self.model.decode(
            content, speaker.expand(chunks.shape[0], -1), length=chunks.shape[-1]
        )
        if out.shape != chunks.shape:
            raise RuntimeError(
                f"{_model_name(self.model)} returned {tuple(out.shape)} for input "
                f"{tuple(chunks.shape)}; a VC model must keep the number of frames"
            )
        return out

    @torch.inference_mode()
    def vocode(self, mel: Tensor) -> Tensor:
        """Normalised log-mel ``(n_mels, T)`` -> waveform ``(samples,)`` on the CPU."""
        log_mel = self.model.normalizer.inverse(mel.to(self.device))
        return self.vocoder(log_mel).float().cpu()

    @torch.inference_mode()
    def convert_wav(
        self, source_wav: AudioInput, reference_wavs: AudioInput | Sequence[AudioInput]
    ) -> Tensor:
        """Convert a waveform (or file) to the references' voice.

        Args:
            source_wav: The speech to convert: a path, a waveform at the model's rate, or
                ``(waveform, rate)``.
            reference_wavs: One or more utterances of the target speaker, the same kinds.

        Returns:
            ``(samples,)`` float32 waveform on the CPU at the model's rate, as long as the
            source (after resampling).
        """
        src = self.load(source_wav, name="source")
        refs = self.reference_features(reference_wavs)
        mel = self.convert_mel(self.model.normalizer(self.extractor(src.to(self.device))), refs)
        wav = self.vocode(mel)
        n = src.numel()
        return wav[:n] if wav.numel() >= n else torch.nn.functional.pad(wav, (0, n - wav.numel()))

    def convert_file(
        self,
        source: str | os.PathLike[str],
        references: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        out: str | os.PathLike[str],
    ) -> Path:
        """Convert an audio file and write the result at the model's rate.

        The output's extension names its format (``.wav``: 16-bit PCM;
        :func:`~seqae.audio.io.output_format`); output that would clip is scaled down as a
        whole (:func:`~seqae.audio.io.write_audio`). Use :meth:`convert_to_file` to learn
        whether it was.

        Args:
            source: Audio file to convert (any rate and channel count libsndfile reads).
            references: One or more audio files of the target speaker.
            out: File to write (atomically; parent folders are created); it may not be one of
                the inputs.

        Returns:
            The path written.

        Raises:
            AudioFileError: an input file is missing, damaged or not usable speech.
            AudioOutputError: ``out`` is a folder or names no writable format.
            OutputOverwritesInputError: ``out`` is the source or a reference.
        """
        return self.convert_to_file(source, references, out).path

    def convert_to_file(
        self,
        source: str | os.PathLike[str],
        references: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
        out: str | os.PathLike[str],
    ) -> WrittenAudio:
        """:meth:`convert_file`, returning what was written: the path, the format, the output's
        peak and the gain applied so that it does not clip (``.scaled`` when it was lowered).
        Nothing is written when ``out`` is refused."""
        from seqae.files import refuse_overwriting_inputs

        refs = [Path(r) for r in self._as_list(references)]
        output_format(out)
        refuse_overwriting_inputs(out, [source, *refs], what="out")
        wav = self.convert_wav(Path(source), refs)
        return write_audio(out, wav, self.feature_config.sample_rate)


# ---------------------------------------------------------------------------------------------
# manifest
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ManifestRow:
    """One conversion of a manifest: its row number (1 = first after the header) and paths."""

    row: int
    line: int
    source: Path
    targets: tuple[Path, ...]
    out: Path


def read_manifest(
    path: str | os.PathLike[str], *, out_dir: str | os.PathLike[str] | None = None
) -> list[ManifestRow]:
    """Read a batch-conversion manifest (TSV, or CSV when the header has no tab).

    The header names the columns ``source``, ``target`` and ``out`` (any order, extra columns
    ignored). ``target`` lists one or more reference files separated by ``|``. Relative
    ``source`` and ``target`` paths are resolved against the manifest's folder, relative ``out``
    paths against ``out_dir`` (default: the manifest's folder). Blank lines and lines starting
    with ``#`` are skipped.

    Raises:
        ManifestError: the file is missing or empty, the header lacks a column, or a row has
            an empty field or the wrong number of fields (naming the file, row and line).
    """
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"{path}: no such manifest file")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path}: cannot read the manifest as UTF-8 text ({exc})") from None
    lines = [
        (i + 1, line)
        for i, line in enumerate(text.splitlines())
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not lines:
        raise ManifestError(f"{path}: the manifest is empty; expected a header source, target, out")
    delimiter = "\t" if "\t" in lines[0][1] else ","
    parsed = list(csv.reader([line for _, line in lines], delimiter=delimiter))
    header = [h.strip().lower() for h in parsed[0]]
    missing = [c for c in ("source", "target", "out") if c not in header]
    if missing:
        raise ManifestError(
            f"{path} line {lines[0][0]}: the header {parsed[0]} lacks column(s) {missing}; "
            "expected source<TAB>target<TAB>out (targets separated by |)"
        )
    col = {c: header.index(c) for c in ("source", "target", "out")}
    base = path.parent
    outs = Path(out_dir) if out_dir is not None else base
    rows: list[ManifestRow] = []
    for row_no, ((line_no, _), fields) in enumerate(zip(lines[1:], parsed[1:], strict=True), 1):
        where = f"{path} row {row_no} (line {line_no})"
        if len(fields) != len(header):
            raise ManifestError(
                f"{where}: {len(fields)} field(s) but the header has {len(header)} "
                f"(separator {'TAB' if delimiter == chr(9) else 'comma'})"
            )
        src = fields[col["source"]].strip()
        targets = [t.strip() for t in fields[col["target"]].split("|") if t.strip()]
        out = fields[col["out"]].strip()
        if not src or not targets or not out:
            empty = [c for c, v in (("source", src), ("target", targets), ("out", out)) if not v]
            raise ManifestError(f"{where}: empty field(s) {empty}")
        rows.append(
            ManifestRow(
                row=row_no,
                line=line_no,
                source=base / src,
                targets=tuple(base / t for t in targets),
                out=outs / out,
            )
        )
    if not rows:
        raise ManifestError(f"{path}: the manifest has a header but no rows")
    return rows


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    """One conversion the command will do; ``where`` names it in messages."""

    where: str
    source: Path
    targets: tuple[Path, ...]
    out: Path


def _file_key(path: Path) -> tuple[Any, ...]:
    """What makes two paths one file: the inode where the file exists (links included, as
    :func:`seqae.files.same_file`), the resolved path where it does not."""
    try:
        st = path.stat()
    except OSError:
        return ("path", path.resolve())
    return ("inode", st.st_dev, st.st_ino)


class _OutputCheck:
    """Checks each output of a command before anything is written: not a folder, an extension
    naming a writable format, none of the files the command reads (the job's own inputs, and
    for a manifest every other row's and the manifest itself), nor an earlier job's output.

    Inputs and outputs are indexed once, so a manifest of many rows is checked in linear time.
    """

    def __init__(self, inputs: Sequence[Path]) -> None:
        self._inputs: dict[tuple[Any, ...], Path] = {}
        for path in inputs:
            self._inputs.setdefault(_file_key(path), path)
        self._outputs: dict[tuple[Any, ...], _Job] = {}

    def problem(self, job: _Job, *, what: str) -> str | None:
        """Why ``job.out`` cannot be written, in one line (None when it can; it is then
        remembered as an output).

        Args:
            job: The conversion.
            what: How messages name the output (``"--out"``, ``"pairs.tsv row 2 ...: out"``).
        """
        from seqae.files import OutputOverwritesInputError, refuse_overwriting_inputs

        try:
            output_format(job.out)
        except AudioOutputError as exc:
            return f"{what} {exc}"
        key = _file_key(job.out)
        clash = self._inputs.get(key)
        try:
            # the job's own inputs first: the message then names the one it would destroy
            refuse_overwriting_inputs(job.out, [job.source, *job.targets, clash], what=what)
        except OutputOverwritesInputError as exc:
            return str(exc)
        earlier = self._outputs.get(key)
        if earlier is not None:
            return (
                f"{what} {job.out} is also the output of {earlier.where}; one would overwrite "
                "the other: give each row its own output"
            )
        self._outputs[key] = job
        return None


def _convert_one(vc: VoiceConverter, job: _Job) -> tuple[float, float, WrittenAudio]:
    """Convert one file; returns (audio seconds, wall seconds, what was written)."""
    t0 = time.perf_counter()
    src = vc.load(job.source)
    wav = vc.convert_wav(src, list(job.targets))
    try:
        written = write_audio(job.out, wav, vc.feature_config.sample_rate)
    except OSError as exc:
        raise AudioOutputError(
            f"{job.out}: cannot write it ({exc.strerror or exc}); check the folder exists or "
            "can be created and is writable"
        ) from None
    return src.numel() / vc.feature_config.sample_rate, time.perf_counter() - t0, written


def _summary(out: Path, duration: float, seconds: float) -> str:
    return f"{out}: {duration:.2f} s of audio in {seconds:.2f} s (RTF {seconds / duration:.3f})"


def converter_from_args(
    args: argparse.Namespace, prog: str, **kwargs: Any
) -> VoiceConverter | None:
    """The converter that ``--model``, ``--match-stats``, ``--spread-weight``, ``--vocoder``
    and (``seqae convert``) ``--device``, ``--chunk-seconds`` and ``--overlap-seconds`` ask
    for; ``kwargs`` go to :class:`VoiceConverter`.

    Returns None after printing to stderr, in one line, which flag holds a value that cannot be
    used, and why (a folder that holds no loadable model, one whose weights are NaN, a chunk
    length too short for the overlap, a device that is not there); the command then exits 2.
    """
    from seqae.training.runtime import get_device

    try:
        model = VoiceConverter.load_model(args.model)
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        print(f"{prog}: --model {args.model}: cannot load the model: {exc}", file=sys.stderr)
        return None
    device = kwargs.pop("device", None)
    if device is not None and not isinstance(device, torch.device):
        try:
            device = get_device(device)
        except (RuntimeError, ValueError) as exc:
            print(f"{prog}: --device {device}: {exc}", file=sys.stderr)
            return None
    try:
        converter = VoiceConverter(
            model,
            device=device,
            match_stats=args.match_stats,
            spread_weight=args.spread_weight,
            **kwargs,
        )
    except ChunkSettingsError as exc:
        chunk = kwargs.get("chunk_seconds", "the default")
        overlap = kwargs.get("overlap_seconds", "the default")
        if exc.minimum_chunk_seconds is None:
            print(f"{prog}: --overlap-seconds {overlap}: {exc}", file=sys.stderr)
        else:
            print(
                f"{prog}: --chunk-seconds {chunk} is too short for --overlap-seconds {overlap}: "
                f"chunks must hold three overlaps plus the model's time stride, so "
                f"--chunk-seconds must be at least {exc.minimum_chunk_seconds:.2f} here (or "
                "give a smaller --overlap-seconds)",
                file=sys.stderr,
            )
        return None
    if args.vocoder is not None:
        from seqae.audio.neural_vocoder import load_vocoder

        try:
            converter.set_vocoder(load_vocoder(args.vocoder))
        except (OSError, ValueError) as exc:
            print(f"{prog}: --vocoder {args.vocoder}: {exc}", file=sys.stderr)
            return None
    return converter


def _jobs_from_args(args: argparse.Namespace, prog: str) -> tuple[list[_Job], list[Path]] | None:
    """The conversions ``seqae convert`` was asked for and every file it reads (None after
    printing why the flags or the manifest cannot be used)."""
    if args.manifest is None and (args.source is None or not args.target or args.out is None):
        print(
            f"{prog}: give --source, --target and --out, or --manifest (see --help)",
            file=sys.stderr,
        )
        return None
    if args.manifest is not None and (args.source or args.target or args.out):
        print(
            f"{prog}: --manifest cannot be combined with --source/--target/--out", file=sys.stderr
        )
        return None
    if args.manifest is None:
        job = _Job("--out", Path(args.source), tuple(Path(t) for t in args.target), Path(args.out))
        return [job], [job.source, *job.targets]
    try:
        rows = read_manifest(args.manifest, out_dir=args.out_dir)
    except ManifestError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return None
    jobs = [
        _Job(f"{args.manifest} row {r.row} (line {r.line})", r.source, r.targets, r.out)
        for r in rows
    ]
    inputs = [Path(args.manifest), *(p for j in jobs for p in (j.source, *j.targets))]
    return jobs, inputs


def _cmd_convert(args: argparse.Namespace) -> int:
    prog = "seqae convert"
    planned = _jobs_from_args(args, prog)
    if planned is None:
        return 2
    jobs, inputs = planned
    single = args.manifest is None

    # Every output is checked before anything is converted or written.
    failed: list[str] = []
    runnable: list[_Job] = []
    check = _OutputCheck(inputs)
    for job in jobs:
        what = "--out" if single else f"{job.where}: out"
        problem = check.problem(job, what=what)
        if problem is None:
            runnable.append(job)
        elif not args.keep_going or single:
            print(f"{prog}: {problem}", file=sys.stderr)
            return 2
        else:
            print(f"{prog}: skipped {problem}", file=sys.stderr)
            failed.append(problem)

    if args.threads:
        torch.set_num_threads(args.threads)
    vc = converter_from_args(
        args,
        prog,
        device=args.device,
        chunk_seconds=args.chunk_seconds,
        overlap_seconds=args.overlap_seconds,
    )
    if vc is None:
        return 2

    total_audio = total_seconds = 0.0
    for job in runnable:
        try:
            duration, seconds, written = _convert_one(vc, job)
        except (AudioFileError, AudioOutputError, FeatureMismatchError) as exc:
            message = str(exc) if single else f"{job.where}: {exc}"
            if single or not args.keep_going:
                print(f"{prog}: {message}", file=sys.stderr)
                return 2
            print(f"{prog}: skipped {message}", file=sys.stderr)
            failed.append(message)
            continue
        if written.scaled:
            print(f"{prog}: note: {written.describe_scaling()}", file=sys.stderr)
        total_audio += duration
        total_seconds += seconds
        print(_summary(job.out, duration, seconds))
    if single:
        return 0
    done = len(jobs) - len(failed)
    rtf = f", RTF {total_seconds / total_audio:.3f}" if total_audio else ""
    print(f"converted {done} of {len(jobs)} file(s): {total_audio:.2f} s of audio{rtf}")
    if failed:
        print(f"{prog}: {len(failed)} row(s) skipped:", file=sys.stderr)
        for message in failed:
            print(f"  {message}", file=sys.stderr)
        return 2
    return 0


def positive_seconds(text: str) -> float:
    """argparse type: a positive, finite number of seconds.

    Args:
        text: The flag's value as given.
    """
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of seconds")
    return value


def _spread_weight_arg(text: str) -> float:
    try:
        return check_spread_weight(float(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: a number in [0, 1] ({exc})") from None


def add_match_stats_argument(parser: argparse.ArgumentParser) -> None:
    """``--match-stats {none,mean,mean_std}`` and ``--spread-weight W`` (shared by ``seqae
    convert`` and ``seqae vc-eval``)."""
    parser.add_argument(
        "--match-stats",
        choices=MATCH_MODES,
        default="mean_std",
        help="match the output's per-bin log-mel statistics to the references' "
        "(seqae.audio.matching; default mean_std)",
    )
    parser.add_argument(
        "--spread-weight",
        type=_spread_weight_arg,
        default=DEFAULT_SPREAD_WEIGHT,
        help="with mean_std, how far each bin's spread moves towards the references', 0-1 "
        f"(default {DEFAULT_SPREAD_WEIGHT})",
    )


def add_vocoder_argument(parser: argparse.ArgumentParser) -> None:
    """``--vocoder DIR`` (shared by ``seqae convert`` and ``seqae vc-eval``)."""
    parser.add_argument(
        "--vocoder",
        default=None,
        metavar="DIR",
        help="a trained vocoder (the model/ folder of `seqae run vocoder`); default Griffin-Lim",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``seqae convert`` to an argparse subparsers object.

    The ``cli`` component of the registry: the parser's ``func`` default takes the parsed
    arguments and returns the exit status (0 success, 2 bad input).

    Args:
        subparsers: The object returned by ``ArgumentParser.add_subparsers``.
    """
    parser = subparsers.add_parser(
        "convert",
        help="convert speech to the voice of reference utterances with a trained VC model",
        description=(
            "Convert SRC.wav to the voice of one or more reference utterances "
            "(--source/--target/--out), or every row of a manifest (--manifest): a TSV or CSV "
            "file with the header source<TAB>target<TAB>out, several targets separated by |, "
            "relative paths resolved against the manifest's folder."
        ),
    )
    parser.add_argument("--model", required=True, help="saved VC model directory (save_pretrained)")
    parser.add_argument("--source", default=None, help="audio file to convert")
    parser.add_argument(
        "--target",
        nargs="+",
        default=None,
        metavar="REF",
        help="reference utterance(s) of the target voice",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="file to write; its extension names the format (.wav: 16-bit PCM, .flac, .ogg, .mp3, "
        "...); never one of the inputs",
    )
    parser.add_argument(
        "--manifest", default=None, help="batch mode: TSV/CSV of source, target, out"
    )
    parser.add_argument(
        "--out-dir",
        default=None,
        help="folder for the manifest's relative out paths (default: its folder)",
    )
    parser.add_argument(
        "--keep-going", action="store_true", help="skip bad manifest rows and list them at the end"
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    parser.add_argument(
        "--chunk-seconds",
        type=positive_seconds,
        default=8.0,
        help="longest chunk, at least 3 x the overlap (default 8)",
    )
    parser.add_argument(
        "--overlap-seconds",
        type=positive_seconds,
        default=1.0,
        help="cross-faded chunk overlap (default 1)",
    )
    add_match_stats_argument(parser)
    add_vocoder_argument(parser)
    parser.add_argument(
        "--threads", type=int_at_least(0), default=0, help="torch CPU threads (0: default)"
    )
    parser.set_defaults(func=_cmd_convert)
    return parser
