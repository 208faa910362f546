"""Objective speech metrics for voice conversion: content, speaker identity, spectral distance.

- Content preservation: transcripts from :class:`Transcriber` (pocketsphinx 5 and the en-us
  model shipped in its wheel; offline), scored with the text-level word error rate of
  :mod:`seqae.metrics.wer` (:func:`word_error_rate`, :func:`corpus_wer`,
  :func:`corpus_wer_bootstrap`, :func:`paired_wer_difference`; re-exported here).
- Speaker identity: :class:`SpeakerEmbedder` (resemblyzer's GE2E ``VoiceEncoder``, Wan et al.
  2018, arXiv 1710.10467; 256-d L2-normalised utterance embeddings) and
  :func:`speaker_similarity_report` (cosine to target and to source, and the share of
  conversions closer to the target than to the source).
- Spectral distance: :func:`mel_cepstral_distortion` with :func:`dtw_path` alignment.
- Disentanglement probe: :func:`speaker_probe`, a held-out logistic-regression speaker
  classifier on any per-utterance features (content codes should score near chance, speaker
  embeddings near 1).

    >>> word_error_rate("the cat sat", "the cat sat down")          # 1 insertion / 3 words
    0.3333333333333333
    >>> asr = Transcriber(); asr.transcribe(wav)                    # wav: (T,) at 16 kHz
    >>> enc = SpeakerEmbedder(); cosine(enc.embed(a), enc.embed(b))
    >>> mel_cepstral_distortion(reference_wav, converted_wav)        # dB, DTW-aligned

Heavy dependencies (torchaudio, pocketsphinx, resemblyzer, scikit-learn) are imported inside
the functions and classes that use them, so ``import seqae.metrics`` stays fast.

Waveforms are ``(T,)`` float arrays or tensors in [-1, 1] (int16 arrays are also accepted);
pass ``sample_rate`` when they are not at 16 kHz.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

# the text-level WER lives in seqae.metrics.wer; re-exported so that imports from here still work
from seqae.metrics.wer import (
    WERInterval,
    WordErrors,
    corpus_wer,
    corpus_wer_bootstrap,
    normalize_text,
    paired_wer_difference,
    word_error_rate,
    word_errors,
)

__all__ = [
    "WordErrors",
    "normalize_text",
    "word_errors",
    "word_error_rate",
    "corpus_wer",
    "WERInterval",
    "corpus_wer_bootstrap",
    "paired_wer_difference",
    "Transcriber",
    "SpeakerEmbedder",
    "cosine",
    "speaker_similarity_report",
    "mel_cepstrum",
    "dtw_path",
    "mel_cepstral_distortion",
    "speaker_probe",
    "SPEECH_SAMPLE_RATE",
    "MCD_CONSTANT",
]

#: The rate the pocketsphinx en-us model and resemblyzer's encoder work at.
SPEECH_SAMPLE_RATE = 16000
#: ``(10 / ln 10) * sqrt(2)``: turns a Euclidean cepstral distance into MCD in dB.
MCD_CONSTANT = 10.0 / math.log(10.0) * math.sqrt(2.0)

WaveformLike = Tensor | np.ndarray


# --------------------------------------------------------------------------------------------
# Waveform helpers
# --------------------------------------------------------------------------------------------


def _as_mono_float(wav: WaveformLike, *, who: str) -> np.ndarray:
    """``(T,)`` float32 numpy in [-1, 1] from a tensor/array (int16 scaled by 1/32768)."""
    if isinstance(wav, Tensor):
        x = wav.detach().cpu().numpy()
    elif isinstance(wav, np.ndarray):
        x = wav
    else:
        raise TypeError(
            f"{who}: expected a waveform Tensor or numpy array, got {type(wav).__name__}"
        )
    x = np.squeeze(x)
    if x.ndim != 1:
        raise ValueError(f"{who}: expected a mono waveform of shape (T,), got {tuple(wav.shape)}")
    if x.dtype == np.int16:
        x = x.astype(np.float32) / 32768.0
    elif not np.issubdtype(x.dtype, np.floating):
        raise TypeError(f"{who}: expected float (or int16) samples, got dtype {x.dtype}")
    x = np.asarray(x, dtype=np.float32)
    if x.size == 0:
        raise ValueError(f"{who}: the waveform is empty (0 samples)")
    if not np.isfinite(x).all():
        raise ValueError(f"{who}: the waveform contains NaN or infinite samples")
    return x


def _resample(x: np.ndarray, sample_rate: int, target: int, *, who: str) -> np.ndarray:
    if sample_rate <= 0:
        raise ValueError(f"{who}: sample_rate must be positive, got {sample_rate}")
    if sample_rate == target:
        return x
    import torchaudio.functional as AF

    return AF.resample(torch.from_numpy(x), int(sample_rate), int(target)).numpy()


# --------------------------------------------------------------------------------------------
# ASR: pocketsphinx
# --------------------------------------------------------------------------------------------


class Transcriber:
    """Offline English speech recognition with pocketsphinx 5 (CMU Sphinx), for WER.

    Uses the en-us acoustic model, language model and CMU dictionary shipped in the pocketsphinx
    wheel (``pocketsphinx.get_model_path()``); nothing is downloaded. One decoder is created at
    construction (about 0.3 s) and reused for every utterance; its feature state (the cepstral
    mean, which pocketsphinx otherwise carries over) is reset before each one, so a transcript
    never depends on the utterances decoded before it. Decoding runs on the CPU at roughly 0.1 s
    per second of audio. Not thread-safe: use one instance per thread.

    Args:
        hmm: Acoustic model directory (default: the wheel's ``en-us/en-us``).
        lm: N-gram language model file (default: the wheel's ``en-us.lm.bin``).
        dictionary: Pronunciation dictionary (default: the wheel's ``cmudict-en-us.dict``).

    Raises:
        ImportError: pocketsphinx is not installed.
        FileNotFoundError: A model path does not exist.
    """

    def __init__(
        self,
        *,
        hmm: str | Path | None = None,
        lm: str | Path | None = None,
        dictionary: str | Path | None = None,
    ) -> None:
        try:
            import pocketsphinx
        except ImportError as err:  # pragma: no cover - pocketsphinx is a dependency
            raise ImportError(
                "Transcriber needs pocketsphinx 5 (pip install 'pocketsphinx>=5')"
            ) from err
        model = Path(pocketsphinx.get_model_path()) / "en-us"
        paths = {
            "hmm": Path(hmm) if hmm is not None else model / "en-us",
            "lm": Path(lm) if lm is not None else model / "en-us.lm.bin",
            "dict": Path(dictionary) if dictionary is not None else model / "cmudict-en-us.dict",
        }
        for name, path in paths.items():
            if not path.exists():
                raise FileNotFoundError(f"Transcriber: {name} model {path} does not exist")
        self.model_paths = {k: str(v) for k, v in paths.items()}
        self._decoder = pocketsphinx.Decoder(
            **self.model_paths, samprate=SPEECH_SAMPLE_RATE, loglevel="FATAL"
        )

    def transcribe(self, wav: WaveformLike, *, sample_rate: int = SPEECH_SAMPLE_RATE) -> str:
        """Recognise one utterance.

        Args:
            wav: ``(T,)`` waveform (float in [-1, 1], or int16).
            sample_rate: Rate of ``wav``; resampled to 16 kHz when different.

        Returns:
            The recognised words, lowercase, separated by single spaces (``""`` when nothing
            was recognised, e.g. for silence).
        """
        x = _as_mono_float(wav, who="Transcriber.transcribe")
        x = _resample(x, sample_rate, SPEECH_SAMPLE_RATE, who="Transcriber.transcribe")
        pcm = (np.clip(x, -1.0, 1.0) * 32767.0).round().astype("<i2")
        dec = self._decoder
        # The decoder carries its cepstral-mean estimate from one utterance to the next, which
        # made a transcript depend on what was decoded before it; reset it so each transcript
        # depends on its own audio only (as from a fresh decoder).
        dec.reinit_feat()
        dec.start_utt()
        dec.process_raw(pcm.tobytes(), no_search=False, full_utt=True)
        dec.end_utt()
        hyp = dec.hyp()
        return " ".join(hyp.hypstr.split()) if hyp is not None else ""

    def transcribe_many(
        self, wavs: Sequence[WaveformLike], *, sample_rate: int = SPEECH_SAMPLE_RATE
    ) -> list[str]:
        """:meth:`transcribe` each waveform in turn; returns one string per input."""
        return [self.transcribe(w, sample_rate=sample_rate) for w in wavs]


# --------------------------------------------------------------------------------------------
# Speaker embeddings: resemblyzer
# --------------------------------------------------------------------------------------------


def _import_resemblyzer() -> Any:
    """Import resemblyzer, hiding its SciPy deprecation warning (``scipy.ndimage.morphology``)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import resemblyzer
        import resemblyzer.audio
        import resemblyzer.voice_encoder
    return resemblyzer


class SpeakerEmbedder:
    """Utterance-level speaker embeddings from resemblyzer's pretrained GE2E voice encoder.

    The network (3-layer LSTM over 40-band mel frames, 256-d output) is rebuilt here and its
    weights read with ``torch.load(..., weights_only=True)``: resemblyzer's own
    ``VoiceEncoder.__init__`` calls ``torch.load`` without ``weights_only`` (its checkpoint,
    ``{"step", "model_state", "optimizer_state"}``, holds only tensors and plain containers, so
    it is weights-only safe; we just never rely on torch's default).

    Each waveform goes through the steps of resemblyzer's ``preprocess_wav``: volume
    normalisation, then long silences trimmed with the webrtcvad voice-activity detector (which
    also drops the last partial 30 ms window). resemblyzer only ever raises the level, to -30
    dBFS RMS; since its encoder reads linear (not log) mel energies, inputs louder than that
    embed differently depending on their level (cosine 0.90 between an utterance and a copy
    10 dB quieter, 0.88 for 40 dB). Here every input is instead set to ``level_dbfs`` (-20 dBFS
    RMS by default), so the embedding does not depend on loudness (cosine 1.0 for those
    copies); measured on flite voices, -20 dBFS separates voices as well as resemblyzer's
    default (same voice 0.92, different voices 0.54 on average) and better than -30 dBFS
    (0.60). When
    the detector keeps less than ``min_voiced_seconds`` (e.g. for heavily distorted speech), the
    untrimmed, volume-normalised waveform is used instead so that every input gets an embedding.
    The utterance is cut into 1.6 s partial windows, each is embedded, and the L2-normalised mean
    is returned (as in ``VoiceEncoder.embed_utterance``); :meth:`embed_many` runs the partials of
    all utterances in one batch.

    Args:
        device: Where the encoder runs (default ``"cpu"``; ``"cuda"`` works when present).
        weights_path: A resemblyzer checkpoint (default: the ``pretrained.pt`` in the wheel).
        min_voiced_seconds: Shortest VAD-trimmed audio accepted before falling back to the
            untrimmed waveform.
        level_dbfs: RMS level every input is scaled to before embedding; ``None`` reproduces
            resemblyzer's ``preprocess_wav`` exactly (inputs below -30 dBFS raised to it,
            louder ones left as they are).

    Raises:
        ImportError: resemblyzer is not installed.
        FileNotFoundError: ``weights_path`` does not exist.
        ValueError: The checkpoint does not hold the expected encoder weights.
    """

    def __init__(
        self,
        *,
        device: str | torch.device = "cpu",
        weights_path: str | Path | None = None,
        min_voiced_seconds: float = 0.3,
        level_dbfs: float | None = -20.0,
    ) -> None:
        try:
            resemblyzer = _import_resemblyzer()
        except ImportError as err:  # pragma: no cover - resemblyzer is a dependency
            raise ImportError(
                "SpeakerEmbedder needs resemblyzer (pip install resemblyzer)"
            ) from err
        hparams = resemblyzer.hparams
        default = Path(resemblyzer.__file__).resolve().parent / "pretrained.pt"
        path = Path(weights_path) if weights_path is not None else default
        if not path.is_file():
            raise FileNotFoundError(f"SpeakerEmbedder: weights file {path} does not exist")
        self.device = torch.device(device)
        self.min_voiced_seconds = float(min_voiced_seconds)
        self.level_dbfs = None if level_dbfs is None else float(level_dbfs)
        self._hp = hparams
        self.embedding_dim = int(hparams.model_embedding_size)

        lstm = torch.nn.LSTM(
            hparams.mel_n_channels,
            hparams.model_hidden_size,
            hparams.model_num_layers,
            batch_first=True,
        )
        linear = torch.nn.Linear(hparams.model_hidden_size, hparams.model_embedding_size)
        self._net = torch.nn.ModuleDict({"lstm": lstm, "linear": linear})
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        state = checkpoint.get("model_state") if isinstance(checkpoint, dict) else None
        if not isinstance(state, dict):
            raise ValueError(
                f"SpeakerEmbedder: {path} is not a resemblyzer checkpoint (no 'model_state' dict)"
            )
        # The GE2E loss's similarity_weight / similarity_bias are training-only parameters.
        state = {k: v for k, v in state.items() if not k.startswith("similarity_")}
        try:
            self._net.load_state_dict(state, strict=True)
        except RuntimeError as err:
            raise ValueError(
                f"SpeakerEmbedder: {path} does not match the GE2E encoder: {err}"
            ) from err
        self._net.to(self.device).eval()

    # -- preprocessing ---------------------------------------------------------------------

    def _preprocess(self, wav: WaveformLike, sample_rate: int) -> np.ndarray:
        from resemblyzer import audio as raudio

        x = _as_mono_float(wav, who="SpeakerEmbedder.embed")
        x = _resample(x, sample_rate, self._hp.sampling_rate, who="SpeakerEmbedder.embed")
        if not np.any(x):
            raise ValueError("SpeakerEmbedder.embed: the waveform is all zeros (silence)")
        if self.level_dbfs is None:
            x = raudio.normalize_volume(x, self._hp.audio_norm_target_dBFS, increase_only=True)
        else:
            x = raudio.normalize_volume(x, self.level_dbfs)
        # webrtcvad reads int16 PCM: clip so loud samples do not wrap around.
        x = np.clip(x, -1.0, 1.0).astype(np.float32)
        trimmed = raudio.trim_long_silences(x)
        if len(trimmed) >= self.min_voiced_seconds * self._hp.sampling_rate:
            return trimmed
        return x

    def _partials(self, wav: np.ndarray) -> np.ndarray:
        """``(n_partials, 160, 40)`` mel windows of a preprocessed waveform."""
        from resemblyzer import VoiceEncoder
        from resemblyzer import audio as raudio

        wav_slices, mel_slices = VoiceEncoder.compute_partial_slices(len(wav), 1.3, 0.75)
        stop = wav_slices[-1].stop
        if stop >= len(wav):
            wav = np.pad(wav, (0, stop - len(wav)))
        mel = raudio.wav_to_mel_spectrogram(wav)
        return np.stack([mel[s] for s in mel_slices])

    # -- public API ------------------------------------------------------------------------

    @torch.no_grad()
    def embed_many(
        self, wavs: Sequence[WaveformLike], *, sample_rate: int = SPEECH_SAMPLE_RATE
    ) -> np.ndarray:
        """Embed several utterances, batching their partial windows through the encoder.

        Args:
            wavs: ``(T_i,)`` waveforms (any lengths).
            sample_rate: Rate of every waveform (resampled to 16 kHz when different).

        Returns:
            ``(N, 256)`` float32 array of L2-normalised embeddings (one row per input).
        """
        if isinstance(wavs, Tensor | np.ndarray) and wavs.ndim == 1:
            raise TypeError("SpeakerEmbedder.embed_many: pass a sequence of waveforms; use embed()")
        if len(wavs) == 0:
            return np.zeros((0, self.embedding_dim), dtype=np.float32)
        parts = [self._partials(self._preprocess(w, sample_rate)) for w in wavs]
        counts = [len(p) for p in parts]
        mels = torch.from_numpy(np.concatenate(parts)).to(self.device)
        _, (hidden, _) = self._net["lstm"](mels)
        raw = torch.relu(self._net["linear"](hidden[-1]))
        partial = raw / raw.norm(dim=1, keepdim=True).clamp_min(1e-12)
        out = []
        for chunk in torch.split(partial, counts):
            mean = chunk.mean(dim=0)
            out.append(mean / mean.norm().clamp_min(1e-12))
        return torch.stack(out).float().cpu().numpy()

    def embed(self, wav: WaveformLike, *, sample_rate: int = SPEECH_SAMPLE_RATE) -> np.ndarray:
        """Embed one utterance: ``(256,)`` float32, L2-normalised (entries are >= 0).

        Args:
            wav: ``(T,)`` waveform (float in [-1, 1], or int16).
            sample_rate: Rate of ``wav`` (resampled to 16 kHz when different).
        """
        return self.embed_many([wav], sample_rate=sample_rate)[0]

    def embed_speaker(
        self, wavs: Sequence[WaveformLike], *, sample_rate: int = SPEECH_SAMPLE_RATE
    ) -> np.ndarray:
        """One embedding for a speaker from several utterances: the normalised mean, ``(256,)``."""
        e = self.embed_many(wavs, sample_rate=sample_rate).mean(axis=0)
        return (e / max(float(np.linalg.norm(e)), 1e-12)).astype(np.float32)

    @staticmethod
    def cosine(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float | np.ndarray:
        """Cosine similarity of embeddings; see :func:`cosine`."""
        return cosine(a, b)


def _as_matrix(x: Any, *, who: str) -> np.ndarray:
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    elif not isinstance(x, np.ndarray):
        x = np.stack(
            [v.detach().cpu().numpy() if isinstance(v, Tensor) else np.asarray(v) for v in x]
        )
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[None]
    if x.ndim != 2:
        raise ValueError(f"{who}: expected embeddings of shape (D,) or (N, D), got {x.shape}")
    return x


def cosine(a: np.ndarray | Tensor, b: np.ndarray | Tensor) -> float | np.ndarray:
    """Cosine similarity of two embeddings, or row-wise for two ``(N, D)`` stacks.

    Args:
        a: ``(D,)`` or ``(N, D)``.
        b: Same shape as ``a`` (a ``(D,)`` vector is broadcast against ``(N, D)``).

    Returns:
        A float for two vectors, else an ``(N,)`` array.
    """
    vector = np.ndim(a) == 1 and np.ndim(b) == 1
    x, y = _as_matrix(a, who="cosine"), _as_matrix(b, who="cosine")
    if x.shape[1] != y.shape[1] or (len(x) != len(y) and 1 not in (len(x), len(y))):
        raise ValueError(f"cosine: shapes {np.shape(a)} and {np.shape(b)} do not match")
    num = (x * y).sum(axis=1)
    den = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    if np.any(den == 0):
        raise ValueError("cosine: an embedding is all zeros; cosine similarity is undefined")
    out = num / den
    return float(out[0]) if vector else out


def speaker_similarity_report(
    converted: np.ndarray | Tensor | Sequence[np.ndarray],
    targets: np.ndarray | Tensor | Sequence[np.ndarray],
    sources: np.ndarray | Tensor | Sequence[np.ndarray],
) -> dict[str, float]:
    """Speaker similarity of conversions, from speaker embeddings.

    Row ``i`` of each argument belongs to conversion ``i``: the embedding of the converted
    speech, of the target speaker's reference (one utterance or the mean of a few), and of the
    source utterance (or source speaker).

    Args:
        converted: ``(N, D)`` embeddings of the converted utterances.
        targets: ``(N, D)`` target-reference embeddings.
        sources: ``(N, D)`` source embeddings.

    Returns:
        ``{"n", "similarity_target", "similarity_source", "closer_to_target",
        "similarity_target_std", "similarity_source_std"}``: the mean cosine to the target and
        to the source, the share of pairs with ``cos(conv, tgt) > cos(conv, src)``, and the
        standard deviations of the cosines.
    """
    c = _as_matrix(converted, who="speaker_similarity_report: converted")
    t = _as_matrix(targets, who="speaker_similarity_report: targets")
    s = _as_matrix(sources, who="speaker_similarity_report: sources")
    if not (c.shape == t.shape == s.shape):
        raise ValueError(
            "speaker_similarity_report: converted, targets and sources must have the same shape "
            f"(N, D), got {c.shape}, {t.shape}, {s.shape}"
        )
    cos_t = np.asarray(cosine(c, t))
    cos_s = np.asarray(cosine(c, s))
    return {
        "n": int(len(c)),
        "similarity_target": float(cos_t.mean()),
        "similarity_source": float(cos_s.mean()),
        "closer_to_target": float((cos_t > cos_s).mean()),
        "similarity_target_std": float(cos_t.std()),
        "similarity_source_std": float(cos_s.std()),
    }


# --------------------------------------------------------------------------------------------
# Mel-cepstral distortion
# --------------------------------------------------------------------------------------------

#: Analysis settings of :func:`mel_cepstrum`: 25 ms window, 5 ms hop, 80 mel bands.
MCD_WIN_SECONDS = 0.025
MCD_HOP_SECONDS = 0.005
MCD_N_MELS = 80


@lru_cache(maxsize=8)
def _mcd_analysis(sample_rate: int, n_mels: int, n_ceps: int) -> tuple[Any, torch.Tensor]:
    import torchaudio

    win = int(round(MCD_WIN_SECONDS * sample_rate))
    n_fft = 1 << (win - 1).bit_length()
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate,
        n_fft=n_fft,
        win_length=win,
        hop_length=int(round(MCD_HOP_SECONDS * sample_rate)),
        f_min=0.0,
        f_max=sample_rate / 2,
        n_mels=n_mels,
        power=2.0,
        center=True,
        norm="slaney",
        mel_scale="slaney",
    )
    # DCT-II in cepstral scaling, (n_mels, n_ceps): c = log_amp @ dct with
    # c_k = (1/N) sum_n log_amp[n] cos(pi k (n + 1/2) / N), so that
    # log_amp(w) ~ c_0 + 2 sum_k c_k cos(k w) on the mel-warped axis w in [0, pi].
    k = torch.arange(n_ceps, dtype=torch.float64)
    n = torch.arange(n_mels, dtype=torch.float64)
    dct = torch.cos(math.pi / n_mels * (n[:, None] + 0.5) * k[None, :]) / n_mels
    return mel, dct.float()


def mel_cepstrum(
    wav: WaveformLike,
    *,
    sample_rate: int = SPEECH_SAMPLE_RATE,
    n_mcep: int = 24,
    n_mels: int = MCD_N_MELS,
    silence_db: float | None = 40.0,
) -> np.ndarray:
    """MFCC-style mel-cepstrum: DCT-II of the log (natural) mel amplitude spectrum.

    Analysis: 25 ms Hann window, 5 ms hop (the hop usual for MCD), ``n_mels`` Slaney mel bands
    from 0 Hz to Nyquist, power spectrum; the log amplitude is ``0.5 * ln(power)``. The DCT is
    scaled as a cepstrum, ``c_k = (1/N) sum_n log_amp[n] cos(pi k (n + 1/2) / N)``, so that
    ``log_amp(w) ~ c_0 + 2 sum_k c_k cos(k w)`` on the mel axis ``w`` in [0, pi] (an orthonormal
    DCT would be ``sqrt(2N)`` times larger and give MCDs in the tens of dB). This is still
    *not* SPTK's ``mcep`` (all-pass warped cepstrum fitted to the spectral envelope by
    iteration): the filterbank smooths harmonics differently, so absolute distortions differ
    from published MCD numbers; compare systems only with this function.

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Rate of ``wav`` in Hz.
        n_mcep: Number of cepstral coefficients returned after ``c0``.
        n_mels: Mel bands.
        silence_db: Frames whose energy is more than this many dB below the loudest frame are
            dropped (``None`` keeps all frames).

    Returns:
        ``(frames, n_mcep + 1)`` float32 array; column 0 is ``c0`` (log energy), columns 1..
        are the coefficients MCD uses.

    Raises:
        ValueError: Bad arguments, or no frame above the silence threshold.
    """
    if not 1 <= n_mcep < n_mels:
        raise ValueError(f"mel_cepstrum: n_mcep must be in [1, n_mels), got {n_mcep}")
    x = _as_mono_float(wav, who="mel_cepstrum")
    if sample_rate <= 0:
        raise ValueError(f"mel_cepstrum: sample_rate must be positive, got {sample_rate}")
    mel, dct = _mcd_analysis(int(sample_rate), int(n_mels), int(n_mcep) + 1)
    with torch.no_grad():
        power = mel(torch.from_numpy(x)).T  # (frames, n_mels)
        log_amp = 0.5 * torch.log(power.clamp_min(1e-10))
        ceps = (log_amp @ dct).numpy()
    if silence_db is not None:
        energy_db = 10.0 * np.log10(power.sum(dim=1).clamp_min(1e-20).numpy())
        keep = energy_db >= energy_db.max() - silence_db
        ceps = ceps[keep]
    if len(ceps) == 0:
        raise ValueError("mel_cepstrum: no frames left after silence trimming")
    return ceps


def dtw_path(cost: np.ndarray) -> tuple[np.ndarray, float]:
    """Dynamic time warping over a local cost matrix, steps (1, 0), (0, 1) and (1, 1).

    The accumulated cost ``D[i, j] = C[i, j] + min(D[i-1, j], D[i-1, j-1], D[i, j-1])`` is
    filled row by row without a Python loop over columns: with ``b[j] = C[i, j] +
    min(D[i-1, j], D[i-1, j-1])`` and ``S`` the prefix sums of row ``C[i]``,
    ``D[i, j] = S[j] + min_{k <= j}(b[k] - S[k])`` (a cumulative minimum). About 20 ms for a
    1000 x 1000 matrix.

    Args:
        cost: ``(N, M)`` non-negative local costs, N, M >= 1.

    Returns:
        ``(path, total)``: ``path`` is an ``(L, 2)`` int array of aligned index pairs from
        ``(0, 0)`` to ``(N-1, M-1)``, monotone in both; ``total`` is the summed cost on it.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise ValueError(f"dtw_path: expected a non-empty (N, M) cost matrix, got {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("dtw_path: the cost matrix contains NaN or infinite values")
    n, m = c.shape
    acc = np.empty_like(c)
    acc[0] = np.cumsum(c[0])
    for i in range(1, n):
        row = c[i]
        prev = acc[i - 1]
        b = row.copy()
        b[0] += prev[0]
        b[1:] += np.minimum(prev[1:], prev[:-1])
        s = np.cumsum(row)
        acc[i] = s + np.minimum.accumulate(b - s)
    # Backtrack: the step with the smallest accumulated cost (diagonal first on ties).
    path = [(n - 1, m - 1)]
    i, j = n - 1, m - 1
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            diag, up, left = acc[i - 1, j - 1], acc[i - 1, j], acc[i, j - 1]
            if diag <= up and diag <= left:
                i, j = i - 1, j - 1
            elif up <= left:
                i -= 1
            else:
                j -= 1
        path.append((i, j))
    return np.asarray(path[::-1], dtype=np.int64), float(acc[-1, -1])


def mel_cepstral_distortion(
    ref_wav: WaveformLike,
    test_wav: WaveformLike,
    *,
    sample_rate: int = SPEECH_SAMPLE_RATE,
    n_mcep: int = 24,
    dtw: bool = True,
    silence_db: float | None = 40.0,
) -> float:
    """Mel-cepstral distortion in dB between a reference and a test utterance.

    ``MCD = (10 / ln 10) * sqrt(2 * sum_{d=1..n_mcep} (c_d - c'_d)^2)``, averaged over aligned
    frame pairs. Cepstra come from :func:`mel_cepstrum` (``c0``, the energy, is dropped; silent
    frames are trimmed), aligned with :func:`dtw_path` on the Euclidean cepstral distance.
    These are MFCC-style mel-cepstra, not SPTK ``mcep``: absolute values are not comparable
    with papers, only between systems scored here. Identical audio gives 0; a different voice
    saying the same sentence typically gives several dB more than a re-timed copy.

    Args:
        ref_wav: ``(T,)`` reference waveform (e.g. the target speaker saying the sentence).
        test_wav: ``(T',)`` waveform to score (e.g. the conversion).
        sample_rate: Rate of both waveforms.
        n_mcep: Cepstral coefficients compared (after ``c0``).
        dtw: Align with DTW (default); ``False`` compares frame ``t`` with frame ``t``,
            truncated to the shorter utterance.
        silence_db: Silence threshold passed to :func:`mel_cepstrum`.

    Returns:
        MCD in dB (>= 0).
    """
    a = mel_cepstrum(ref_wav, sample_rate=sample_rate, n_mcep=n_mcep, silence_db=silence_db)[:, 1:]
    b = mel_cepstrum(test_wav, sample_rate=sample_rate, n_mcep=n_mcep, silence_db=silence_db)[:, 1:]
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    if dtw:
        sq = (a64**2).sum(1)[:, None] + (b64**2).sum(1)[None, :] - 2.0 * a64 @ b64.T
        dist = np.sqrt(np.maximum(sq, 0.0))
        path, _ = dtw_path(dist)
        d = np.sqrt(((a64[path[:, 0]] - b64[path[:, 1]]) ** 2).sum(1))
    else:
        t = min(len(a64), len(b64))
        d = np.sqrt(((a64[:t] - b64[:t]) ** 2).sum(1))
    return float(MCD_CONSTANT * d.mean())


# --------------------------------------------------------------------------------------------
# Speaker probe
# --------------------------------------------------------------------------------------------


def speaker_probe(
    features: np.ndarray | Tensor,
    speakers: Sequence[Any],
    groups: Sequence[Any] | None = None,
    *,
    seed: int = 0,
    test_size: float = 0.25,
    C: float = 1.0,
    max_iter: int = 2000,
) -> dict[str, float | int]:
    """How much speaker identity a representation carries: a held-out linear speaker classifier.

    Standardised features -> multinomial logistic regression (scikit-learn), trained on one
    split and scored on the other. With ``groups`` (e.g. sentence ids) the split is by group
    (``GroupShuffleSplit``), so the same sentence never appears in training and test and the
    classifier cannot use content to recognise utterances. Without groups the split is
    stratified by speaker when every speaker has at least two examples.

    Content codes of a well-disentangled model should score near ``chance``; speaker
    embeddings near 1.

    Args:
        features: ``(N, D)`` per-utterance features (e.g. time-averaged content codes).
        speakers: ``N`` speaker labels (any hashable).
        groups: Optional ``N`` group labels for the split.
        seed: Seed of the split and the classifier.
        test_size: Share of examples (or of groups) held out.
        C: Inverse L2 regularisation strength of the logistic regression.
        max_iter: Iteration limit of the solver.

    Returns:
        ``{"accuracy", "chance", "n_classes", "n_train", "n_test"}``; ``chance`` is the
        share of the most frequent speaker in the test split, the best a constant guess can
        score there (``1 / n_classes`` for a balanced test split).

    Raises:
        ValueError: Mismatched lengths, fewer than two speakers, or a split that leaves a side
            empty or with a single speaker for training.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupShuffleSplit, ShuffleSplit, StratifiedShuffleSplit
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = features.detach().cpu().numpy() if isinstance(features, Tensor) else np.asarray(features)
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"speaker_probe: features must have shape (N, D), got {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("speaker_probe: features contain NaN or infinite values")
    y = np.asarray(list(speakers), dtype=object)
    if len(y) != len(x):
        raise ValueError(f"speaker_probe: {len(x)} feature rows but {len(y)} speaker labels")
    classes, y_idx = np.unique(y.astype(str), return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"speaker_probe: need at least 2 speakers, got {len(classes)}")
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"speaker_probe: test_size must be in (0, 1), got {test_size}")
    if groups is not None:
        g = np.asarray([str(v) for v in groups])
        if len(g) != len(x):
            raise ValueError(f"speaker_probe: {len(x)} feature rows but {len(g)} group labels")
        if len(np.unique(g)) < 2:
            raise ValueError("speaker_probe: need at least 2 distinct groups to split by group")
        splitter: Any = GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed)
        train, test = next(splitter.split(x, y_idx, groups=g))
    else:
        counts = np.bincount(y_idx)
        n_test = math.ceil(test_size * len(x))
        stratify = counts.min() >= 2 and n_test >= len(classes) and len(x) - n_test >= len(classes)
        splitter = (StratifiedShuffleSplit if stratify else ShuffleSplit)(
            n_splits=1, test_size=test_size, random_state=seed
        )
        train, test = next(splitter.split(x, y_idx))
    if len(train) == 0 or len(test) == 0:
        raise ValueError(
            f"speaker_probe: the split left {len(train)} training and {len(test)} test examples"
        )
    if len(np.unique(y_idx[train])) < 2:
        raise ValueError("speaker_probe: the training split holds a single speaker")
    clf = make_pipeline(
        StandardScaler(), LogisticRegression(C=C, max_iter=max_iter, random_state=seed)
    )
    clf.fit(x[train], y_idx[train])
    accuracy = float((clf.predict(x[test]) == y_idx[test]).mean())
    chance = float(np.bincount(y_idx[test]).max() / len(test))
    return {
        "accuracy": accuracy,
        "chance": chance,
        "n_classes": int(len(classes)),
        "n_train": int(len(train)),
        "n_test": int(len(test)),
    }
