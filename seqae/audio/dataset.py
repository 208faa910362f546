"""Multi-speaker speech on disk: a VCTK-layout scanner, a log-mel cache and training crops.

Layout read by :func:`scan_speakers` (the VCTK layout; seqae's synthesized corpus uses it too)::

    ROOT/<speaker>/<utterance>.wav          (or .flac; any rate and channel count)
    ROOT/../txt/<speaker>/<utterance>.txt   optional transcripts (VCTK's ``txt`` beside ``wav48``)

:class:`SpeechCorpus` opens either such a folder or a corpus directory holding ``wav/`` (or
VCTK's ``wav48``/``wav48_silence_trimmed``) with the optional ``speakers.json`` (speaker roles:
``train``/``unseen``) and ``corpus.json`` (the train/test sentence split) that
``seqae data speech`` writes.

:func:`load_features` computes each utterance's log-mel once and caches it, one safetensors
file per speaker under ``cache_dir/<feature hash>/``, keyed by utterance and checked against the
source file's size and modification time, so a changed file is recomputed and nothing is
unpickled. :class:`SegmentBatcher` draws random fixed-length crops for training, reproducibly
from ``(seed, step)`` so a resumed run sees the same batches.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from seqae.audio.features import FeatureConfig, log_mel
from seqae.audio.io import AudioFileError, load_audio

__all__ = [
    "AUDIO_EXTENSIONS",
    "SpeechDataError",
    "Utterance",
    "SpeechCorpus",
    "scan_speakers",
    "load_features",
    "SegmentBatcher",
    "WaveformBatcher",
]

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac")


class SpeechDataError(ValueError):
    """A speech folder that cannot be used: missing, without speakers, or inconsistent."""


@dataclasses.dataclass(frozen=True)
class Utterance:
    """One recording: who said it, its id (file stem), where it is, and its text if known."""

    speaker: str
    utt_id: str
    path: Path
    text: str | None = None

    @property
    def sentence_id(self) -> str:
        """The part of ``utt_id`` after the last ``_`` (VCTK: ``p225_001`` -> ``001``)."""
        return self.utt_id.rsplit("_", 1)[-1]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, UnicodeDecodeError):
        return None


def read_vctk_speaker_info(path: str | os.PathLike[str]) -> dict[str, str]:
    """Speaker folder name -> ``female``/``male`` from VCTK's ``speaker-info.txt``.

    Its header starts ``ID AGE GENDER``; rows are whitespace-separated, IDs ``p225`` (VCTK
    0.92) or ``225`` (0.80, whose folders are still ``p225``). Rows whose gender is not ``F``
    or ``M`` are left out; a missing file gives ``{}``.

    Raises:
        SpeechDataError: The file exists but is not UTF-8 text or has no ``ID ... GENDER``
            header.
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise SpeechDataError(f"{path}: not UTF-8 text ({err})") from err
    rows = [line.split() for line in lines if line.strip()]
    header = [word.upper() for word in rows[0]] if rows else []
    if not header or header[0] != "ID" or "GENDER" not in header:
        raise SpeechDataError(
            f"{path}: expected VCTK's speaker-info.txt, whose first line is 'ID AGE GENDER ...'"
        )
    column = header.index("GENDER")
    out = {}
    for row in rows[1:]:
        if len(row) <= column:
            continue
        sex = {"F": "female", "M": "male"}.get(row[column].upper())
        if sex is not None:
            name = row[0] if row[0][:1].isalpha() else f"p{row[0]}"
            out[name] = sex
    return out


def scan_speakers(
    root: str | os.PathLike[str],
    *,
    text_root: str | os.PathLike[str] | None = None,
    extensions: Sequence[str] = AUDIO_EXTENSIONS,
) -> list[Utterance]:
    """All utterances under ``root/<speaker>/``, sorted by speaker then id.

    Args:
        root: Folder with one subfolder of audio files per speaker.
        text_root: Folder with ``<speaker>/<utt>.txt`` transcripts; default: ``root/../txt``
            when it exists, else a ``.txt`` beside each audio file.
        extensions: Audio file suffixes to read.

    Raises:
        SpeechDataError: ``root`` is missing or has no speaker folder with audio in it.
    """
    root = Path(root)
    if not root.is_dir():
        raise SpeechDataError(f"{root}: no such directory; expected <root>/<speaker>/*.wav")
    if text_root is None and (root.parent / "txt").is_dir():
        text_root = root.parent / "txt"
    exts = {e.lower() for e in extensions}
    utts: list[Utterance] = []
    for spk_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for f in sorted(spk_dir.iterdir()):
            if f.suffix.lower() not in exts or not f.is_file():
                continue
            txt = (
                Path(text_root) / spk_dir.name / f"{f.stem}.txt"
                if text_root is not None
                else f.with_suffix(".txt")
            )
            utts.append(Utterance(spk_dir.name, f.stem, f, _read_text(txt)))
    if not utts:
        raise SpeechDataError(
            f"{root}: no speakers found; expected subfolders <speaker>/ holding "
            f"{'/'.join(sorted(exts))} files (the VCTK layout)"
        )
    return utts


class SpeechCorpus:
    """A multi-speaker corpus: its utterances, speakers, speaker roles and sentence split.

    Args:
        root: A corpus directory (with ``wav/``, ``wav48/`` or ``wav48_silence_trimmed/``) or a
            folder of speaker folders.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise SpeechDataError(f"{self.root}: no such directory")
        wav_root = next(
            (
                self.root / name
                for name in ("wav", "wav48_silence_trimmed", "wav48")
                if (self.root / name).is_dir()
            ),
            self.root,
        )
        self.wav_root = wav_root
        self.utterances = scan_speakers(wav_root)
        self.speaker_info: dict[str, dict[str, Any]] = self._read_json("speakers.json") or {}
        self.meta: dict[str, Any] = self._read_json("corpus.json") or {}

    def _read_json(self, name: str) -> Any:
        path = self.root / name
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SpeechDataError(f"{path}: not valid JSON ({err})") from err

    @property
    def speakers(self) -> list[str]:
        return sorted({u.speaker for u in self.utterances})

    def role(self, speaker: str) -> str:
        """``train`` unless ``speakers.json`` says otherwise (e.g. ``unseen``)."""
        return str(self.speaker_info.get(speaker, {}).get("role", "train"))

    def source(self, speaker: str) -> str:
        """What made the voice (``speakers.json``'s ``source``: espeak-ng, flite, ...), or
        ``unknown``."""
        return str(self.speaker_info.get(speaker, {}).get("source", "unknown"))

    def sex(self, speaker: str) -> str | None:
        """``female``, ``male`` or None (not stated): ``speakers.json``'s ``sex``, else VCTK's
        ``speaker-info.txt`` (its ``GENDER`` column, ``F``/``M``) beside ``wav48``."""
        sex = self.speaker_info.get(speaker, {}).get("sex")
        if sex is None:
            sex = self._vctk_sexes.get(speaker)
        return None if sex is None else str(sex)

    @functools.cached_property
    def _vctk_sexes(self) -> dict[str, str]:
        return read_vctk_speaker_info(self.root / "speaker-info.txt")

    def speakers_with_role(self, role: str) -> list[str]:
        return [s for s in self.speakers if self.role(s) == role]

    def sentence_split(self, split: str) -> set[str] | None:
        """Sentence ids of ``split`` (``train``/``test``) from ``corpus.json``, or None."""
        ids = self.meta.get("sentences", {}).get(split)
        return None if ids is None else set(ids)

    def select(
        self,
        *,
        speakers: Sequence[str] | None = None,
        role: str | None = None,
        split: str | None = None,
    ) -> list[Utterance]:
        """Utterances filtered by speaker names, speaker role and sentence split.

        Without a ``corpus.json`` split, ``split`` is ignored (all sentences).

        Raises:
            SpeechDataError: an unknown speaker is asked for, or nothing is left.
        """
        if speakers is not None:
            unknown = sorted(set(speakers) - set(self.speakers))
            if unknown:
                raise SpeechDataError(
                    f"{self.root}: unknown speaker(s) {unknown}; the corpus has {self.speakers}"
                )
        keep_spk = set(speakers) if speakers is not None else None
        keep_sent = self.sentence_split(split) if split is not None else None
        out = [
            u
            for u in self.utterances
            if (keep_spk is None or u.speaker in keep_spk)
            and (role is None or self.role(u.speaker) == role)
            and (keep_sent is None or u.sentence_id in keep_sent)
        ]
        if not out:
            raise SpeechDataError(
                f"{self.root}: no utterances for speakers={speakers}, role={role}, split={split}"
            )
        return out


def _feature_key(config: FeatureConfig) -> str:
    blob = json.dumps(config.to_dict(), sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def load_features(
    utterances: Sequence[Utterance],
    config: FeatureConfig | None = None,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    skip_bad: bool = False,
) -> list[Tensor]:
    """Log-mels ``(n_mels, frames)`` of ``utterances``, in order, computed once and cached.

    Args:
        utterances: What to load.
        config: Feature settings (the cache is keyed by them).
        cache_dir: Where to cache; None computes without caching.
        skip_bad: Replace unreadable files by an empty ``(n_mels, 0)`` tensor instead of
            raising (the caller drops them).

    Raises:
        AudioFileError: a file is not usable audio (unless ``skip_bad``).
    """
    from safetensors import SafetensorError, safe_open

    from seqae.files import save_safetensors_atomic

    config = config or FeatureConfig()
    by_speaker: dict[str, list[int]] = {}
    for i, u in enumerate(utterances):
        by_speaker.setdefault(u.speaker, []).append(i)
    out: list[Tensor | None] = [None] * len(utterances)
    folder = Path(cache_dir) / f"logmel-{_feature_key(config)}" if cache_dir is not None else None

    def compute(u: Utterance) -> Tensor:
        try:
            wav = load_audio(u.path, sample_rate=config.sample_rate)
        except AudioFileError:
            if skip_bad:
                return torch.zeros(config.n_mels, 0)
            raise
        return log_mel(wav, config).contiguous()

    for speaker, idx in by_speaker.items():
        cached: dict[str, Tensor] = {}
        stamps: dict[str, list[int]] = {}
        file = folder / f"{speaker}.safetensors" if folder is not None else None
        if file is not None and file.is_file():
            try:
                with safe_open(str(file), framework="pt") as f:  # one read: stamps and tensors
                    stamps = json.loads((f.metadata() or {}).get("stamps", "{}"))
                    cached = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118
            except (SafetensorError, OSError, json.JSONDecodeError, ValueError):
                cached, stamps = {}, {}  # a corrupt cache file is rebuilt, never trusted
        changed = False
        for i in idx:
            u = utterances[i]
            key = u.utt_id
            if key in cached and stamps.get(key) == _stamp(u.path):
                out[i] = cached[key]
                continue
            out[i] = cached[key] = compute(u)
            stamps[key] = _stamp(u.path)
            changed = True
        if file is not None and changed:
            file.parent.mkdir(parents=True, exist_ok=True)
            save_safetensors_atomic(
                cached, file, metadata={"stamps": json.dumps(stamps)}, sync_dir=False
            )
    return [t for t in out if t is not None]


class SegmentBatcher:
    """Random fixed-length crops of normalised log-mels, with speaker labels.

    Each batch is a function of ``(seed, step)`` only, so a resumed run continues with exactly
    the batches it would have seen. Utterances shorter than ``segment_frames`` are padded by
    repeating their last frame, and ``lengths`` gives the valid frames.

    Args:
        mels: ``(n_mels, frames_i)`` tensors.
        speaker_ids: Integer speaker label of each mel.
        segment_frames: Crop length.
        seed: Base seed.
    """

    def __init__(
        self,
        mels: Sequence[Tensor],
        speaker_ids: Sequence[int],
        *,
        segment_frames: int,
        seed: int = 0,
    ) -> None:
        if len(mels) != len(speaker_ids):
            raise ValueError(f"{len(mels)} mels but {len(speaker_ids)} speaker ids")
        if not mels:
            raise SpeechDataError("no utterances to draw training segments from")
        self.mels = list(mels)
        self.speaker_ids = torch.as_tensor(list(speaker_ids), dtype=torch.long)
        self.segment_frames = int(segment_frames)
        self.seed = int(seed)
        self.by_speaker: dict[int, Tensor] = {
            int(s): torch.nonzero(self.speaker_ids == s).flatten()
            for s in self.speaker_ids.unique()
        }

    def _crop(self, mel: Tensor, g: torch.Generator) -> tuple[Tensor, int]:
        n = self.segment_frames
        t = mel.shape[1]
        if t >= n:
            start = int(torch.randint(0, t - n + 1, (1,), generator=g))
            return mel[:, start : start + n], n
        pad = mel[:, -1:].expand(-1, n - t)
        return torch.cat([mel, pad], dim=1), t

    def batch(self, step: int, batch_size: int, *, rank: int = 0) -> dict[str, Tensor]:
        """Batch ``step``: ``x`` ``(B, n_mels, segment)``, ``lengths``, ``speaker``, and
        ``ref``/``ref_lengths``: a crop of ANOTHER utterance of the same speaker (for a speaker
        encoder that should not see the content it reconstructs)."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 7919 + rank)
        idx = torch.randint(0, len(self.mels), (batch_size,), generator=g)
        xs, lens, refs, ref_lens = [], [], [], []
        for i in idx.tolist():
            x, n = self._crop(self.mels[i], g)
            pool = self.by_speaker[int(self.speaker_ids[i])]
            j = int(pool[torch.randint(0, len(pool), (1,), generator=g)])
            if j == i and len(pool) > 1:
                j = int(pool[(pool == i).nonzero()[0, 0] - 1])
            r, m = self._crop(self.mels[j], g)
            xs.append(x)
            lens.append(n)
            refs.append(r)
            ref_lens.append(m)
        return {
            "x": torch.stack(xs),
            "lengths": torch.tensor(lens),
            "speaker": self.speaker_ids[idx],
            "ref": torch.stack(refs),
            "ref_lengths": torch.tensor(ref_lens),
        }


class WaveformBatcher:
    """Random fixed-length waveform crops (for vocoder training), reproducible from the step.

    Each batch is a function of ``(seed, step, rank)`` only, so a resumed run continues with the
    crops it would have seen. Utterances shorter than ``segment_samples`` are zero-padded at the
    end (silence, which the vocoder must also render).

    Args:
        wavs: ``(T_i,)`` waveforms.
        segment_samples: Crop length in samples.
        seed: Base seed.
    """

    def __init__(self, wavs: Sequence[Tensor], *, segment_samples: int, seed: int = 0) -> None:
        if not wavs:
            raise SpeechDataError("no utterances to draw training segments from")
        if segment_samples < 1:
            raise ValueError(f"segment_samples must be positive, got {segment_samples}")
        bad = [i for i, w in enumerate(wavs) if w.ndim != 1]
        if bad:
            raise ValueError(
                f"expected (T,) waveforms; item {bad[0]} has shape {tuple(wavs[bad[0]].shape)}"
            )
        self.wavs = list(wavs)
        self.segment_samples = int(segment_samples)
        self.seed = int(seed)

    def batch(self, step: int, batch_size: int, *, rank: int = 0) -> Tensor:
        """Batch ``step``: ``(batch_size, segment_samples)``."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 7919 + rank + 31)
        idx = torch.randint(0, len(self.wavs), (batch_size,), generator=g)
        n = self.segment_samples
        out = torch.zeros(batch_size, n)
        for row, i in enumerate(idx.tolist()):
            w = self.wavs[i]
            if w.numel() >= n:
                start = int(torch.randint(0, w.numel() - n + 1, (1,), generator=g))
                out[row] = w[start : start + n]
            else:
                out[row, : w.numel()] = w
        return out
