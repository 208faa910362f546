"""An embedded, parallel multi-speaker speech corpus synthesised offline.

Voice conversion needs many speakers saying the same sentences. This module builds such a
corpus (VCTK-like layout) from speech synthesisers that run offline: espeak-ng (formant
synthesis, many accents and voice variants), flite (the CMU voices kal16, slt and kal; awb and
rms are recordings of real speakers and are kept *unseen*), festival (kal_diphone, ked_diphone,
cmu_us_slt_arctic_hts, when installed) and speed-perturbed copies of the natural voices (vocal
tract length and pitch perturbation by resampling, Ko et al. 2015, "Audio augmentation for
speech recognition", Interspeech).

    info = build_speech_corpus("data/speech", preset="full", workers=2)

or from a shell (``add_parser`` adds this subcommand to ``seqae``)::

    seqae data speech --out data/speech --preset full --workers 2
    seqae data speech --preset tiny --list

Layout::

    DIR/wav/<speaker>/<speaker>_<NNN>.wav   16 kHz mono PCM16, NNN = sentence id from 001
    DIR/txt/<speaker>/<speaker>_<NNN>.txt   the sentence text
    DIR/speakers.json   {"<speaker>": {"source": ..., "role": "train"|"unseen", "settings": {...}}}
    DIR/corpus.json     {"format": 1, "sample_rate": 16000, "sentences": {"train": [...],
                         "test": [...]}, "speakers": N, ...}   (written last)

Every speaker speaks every sentence. The last :data:`N_TEST_SENTENCES` sentences of the shipped
list are the ``test`` split, held out from training. Each utterance has its leading and trailing
silence trimmed (energy based, :data:`TRIM_MARGIN` seconds kept) and is levelled to a common RMS
(:data:`TARGET_DBFS`) with a peak limit. The build is resumable: an utterance whose WAV and
matching text file already exist is not synthesised again.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF
from torch import Tensor

from seqae.audio.io import PEAK_TARGET, prepare_waveform, save_audio
from seqae.files import atomic_write_json, atomic_write_text

if TYPE_CHECKING:
    from seqae.audio.dataset import SpeechCorpus

__all__ = [
    "CORPUS_FORMAT",
    "N_TEST_SENTENCES",
    "PRESETS",
    "RECORDED_SPEAKERS",
    "SPEAKERS",
    "TARGET_DBFS",
    "TRIM_MARGIN",
    "CorpusBuildError",
    "MissingToolError",
    "Sentence",
    "SpeakerSpec",
    "add_parser",
    "build_speech_corpus",
    "open_or_build_corpus",
    "recorded_speaker",
    "load_sentences",
    "normalize_level",
    "select_speakers",
    "select_sentences",
    "speed_perturb",
    "trim_silence",
]

#: Version of the corpus layout written to ``corpus.json``.
CORPUS_FORMAT = 1
#: The last this-many sentences of ``sentences.txt`` form the held-out ``test`` split.
N_TEST_SENTENCES = 20
#: Common RMS level of every utterance, in dB relative to full scale.
TARGET_DBFS = -23.0
#: Seconds of audio kept before the first and after the last frame with speech energy.
TRIM_MARGIN = 0.1

Source = Literal["espeak-ng", "flite", "festival", "foreign", "perturbed"]
Engine = Literal["espeak-ng", "flite", "festival"]
Role = Literal["train", "unseen"]
Sex = Literal["female", "male"]

#: Debian package that provides each synthesiser binary.
_APT_PACKAGES: dict[str, str] = {
    "espeak-ng": "espeak-ng",
    "flite": "flite",
    "festival": "festival",
}
_FESTIVAL_VOICE_PACKAGES: dict[str, str] = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
    "upc_ca_ona_hts": "festvox-ca-ona-hts",
    "czech_dita": "festvox-czech-dita",
    "czech_krb": "festvox-czech-krb",
    "czech_machac": "festvox-czech-machac",
    "czech_ph": "festvox-czech-ph",
    "suo_fi_lj_diphone": "festvox-suopuhe-lj",
    "hy_fi_mv_diphone": "festvox-suopuhe-mv",
    "lp_diphone": "festvox-italp16k",
    "pc_diphone": "festvox-itapc16k",
    "msu_ru_nsh_clunits": "festvox-ru",
}
_SUBPROCESS_TIMEOUT = 600.0

#: The person whose recordings each synthesiser voice was built from, where more than one voice
#: in the corpus shares them: flite's ``kal`` (8 kHz) and ``kal16`` and festival's
#: ``kal_diphone`` are all built from the CMU KAL diphone recordings, and flite's ``slt`` and
#: festival's ``cmu_us_slt_arctic_hts`` from the CMU ARCTIC speaker SLT. A speaker verifier
#: hears such voices as one person (resemblyzer cosine 0.85-0.86 between flite kal16 and
#: festival kal_diphone, or flite slt and festival slt HTS: the level of two utterances of one
#: voice, against about 0.5 between different voices).
RECORDED_SPEAKERS: dict[tuple[str, str], str] = {
    ("flite", "kal"): "cmu_kal",
    ("flite", "kal16"): "cmu_kal",
    ("festival", "kal_diphone"): "cmu_kal",
    ("flite", "slt"): "cmu_arctic_slt",
    ("festival", "cmu_us_slt_arctic_hts"): "cmu_arctic_slt",
    ("flite", "awb"): "cmu_arctic_awb",
    ("flite", "rms"): "cmu_arctic_rms",
    ("festival", "ked_diphone"): "cmu_ked",
    # the foreign festival voices: one person each
    ("festival", "upc_ca_ona_hts"): "upc_ca_ona",
    ("festival", "czech_dita"): "czech_dita",
    ("festival", "czech_krb"): "czech_krb",
    ("festival", "czech_machac"): "czech_machac",
    ("festival", "czech_ph"): "czech_ph",
    ("festival", "suo_fi_lj_diphone"): "suopuhe_lj",
    ("festival", "hy_fi_mv_diphone"): "suopuhe_mv",
    ("festival", "lp_diphone"): "italian_lp",
    ("festival", "pc_diphone"): "italian_pc",
    ("festival", "msu_ru_nsh_clunits"): "msu_ru_nsh",
}


def recorded_speaker(engine: str, voice: str) -> str:
    """The recorded person behind synthesiser ``voice`` of ``engine`` (:data:`RECORDED_SPEAKERS`);
    ``"<engine>:<voice>"`` for a voice not listed there (each espeak-ng voice is its own)."""
    return RECORDED_SPEAKERS.get((engine, voice), f"{engine}:{voice}")


class CorpusBuildError(RuntimeError):
    """The corpus cannot be built (bad arguments, output directory, synthesiser failure)."""


class MissingToolError(CorpusBuildError):
    """A synthesiser binary or voice that the requested speakers need is not installed."""


# --------------------------------------------------------------------------------------------
# Sentences
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sentence:
    """One sentence of the corpus.

    Args:
        id: Three-digit id, ``"001"`` for the first line of ``sentences.txt``.
        text: The sentence.
        split: ``"train"`` or ``"test"`` (held out from training).
    """

    id: str
    text: str
    split: Literal["train", "test"]


def load_sentences() -> list[Sentence]:
    """Read the shipped sentence list (package data ``seqae/audio/sentences.txt``).

    Returns:
        All sentences in file order, ids ``001``, ``002``, ...; the last
        :data:`N_TEST_SENTENCES` have split ``"test"``, the others ``"train"``.
    """
    text = resources.files("seqae.audio").joinpath("sentences.txt").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    n_train = len(lines) - N_TEST_SENTENCES
    return [
        Sentence(f"{i + 1:03d}", line, "train" if i < n_train else "test")
        for i, line in enumerate(lines)
    ]


def select_sentences(sentences: int | Sequence[str] | None = None) -> list[Sentence]:
    """Choose the sentences to synthesise.

    Args:
        sentences: ``None`` for all; an int ``n`` for ``n`` sentences with both splits kept in
            proportion (at least one test sentence when ``n >= 2``): the first train sentences
            and the first test sentences; or a sequence of sentence ids (``"001"``, ...).

    Raises:
        CorpusBuildError: unknown ids, or ``n`` outside ``1..len(all sentences)``.
    """
    every = load_sentences()
    if sentences is None:
        return every
    if isinstance(sentences, int):
        if not 1 <= sentences <= len(every):
            raise CorpusBuildError(
                f"sentences={sentences}: expected a number from 1 to {len(every)}"
            )
        train = [s for s in every if s.split == "train"]
        test = [s for s in every if s.split == "test"]
        n_test = round(sentences * len(test) / len(every))
        n_test = min(len(test), max(1 if sentences >= 2 else 0, n_test))
        return train[: sentences - n_test] + test[:n_test]
    by_id = {s.id: s for s in every}
    unknown = [str(i) for i in sentences if str(i) not in by_id]
    if unknown:
        raise CorpusBuildError(
            f"sentences: unknown sentence ids {unknown}; expected ids 001..{len(every):03d}"
        )
    return [by_id[str(i)] for i in dict.fromkeys(str(i) for i in sentences)]


# --------------------------------------------------------------------------------------------
# Speakers
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SpeakerSpec:
    """How one (pseudo-)speaker of the corpus is synthesised.

    Args:
        name: Speaker name, used in file names (``[a-z0-9_]``).
        source: ``"espeak-ng"``, ``"flite"``, ``"festival"`` or ``"perturbed"``.
        engine: The synthesiser that produces the audio (for ``"perturbed"``, that of the base
            voice).
        voice: Voice name for the engine (espeak-ng: ``language+variant``).
        role: ``"train"`` or ``"unseen"`` (never used for training).
        sex: ``"female"`` or ``"male"``: the recorded person's (or, for an espeak-ng variant,
            the variant's), for evaluating conversion within and across sexes; None: not
            stated (espeak-ng's klatt voices).
        language: The language the voice was built for (ISO 639-1); every voice reads the
            corpus's English sentences with its own language's letter-to-sound rules.
        pitch: espeak-ng ``-p`` (0-99).
        speed: espeak-ng ``-s`` (words per minute).
        f0_mean: flite ``int_f0_target_mean`` in Hz (None: the voice's own).
        duration_stretch: flite ``duration_stretch`` (None: 1).
        alpha: Speed-perturbation factor applied after synthesis: formants and pitch are
            multiplied by ``alpha``, duration divided by it (1: none).
        base: For perturbed speakers, the name of the speaker they derive from.
    """

    name: str
    source: Source
    engine: Engine
    voice: str
    role: Role = "train"
    sex: Sex | None = None
    language: str = "en"
    pitch: int | None = None
    speed: int | None = None
    f0_mean: float | None = None
    duration_stretch: float | None = None
    alpha: float = 1.0
    base: str | None = None

    def entry(self) -> dict[str, Any]:
        """This speaker's record in ``speakers.json``."""
        out: dict[str, Any] = {
            "source": self.source,
            "role": self.role,
            "settings": self.settings(),
        }
        if self.sex is not None:
            out["sex"] = self.sex
        return out | {"language": self.language}

    def settings(self) -> dict[str, Any]:
        """The synthesis settings recorded in ``speakers.json``."""
        out: dict[str, Any] = {"engine": self.engine, "voice": self.voice}
        for key in ("pitch", "speed", "f0_mean", "duration_stretch", "base"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.alpha != 1.0:
            out["alpha"] = self.alpha
        return out


def _espeak(name: str, voice: str, pitch: int, speed: int) -> SpeakerSpec:
    variant = voice.rsplit("+", 1)[-1]
    sex: Sex | None = (
        {"m": "male", "f": "female"}.get(variant[0]) if variant[1:].isdigit() else None
    )
    return SpeakerSpec(name, "espeak-ng", "espeak-ng", voice, sex=sex, pitch=pitch, speed=speed)


def _flite(
    name: str,
    voice: str,
    *,
    role: Role = "train",
    f0_mean: float | None = None,
    duration_stretch: float | None = None,
) -> SpeakerSpec:
    sex: Sex = "female" if voice == "slt" else "male"  # kal, kal16, awb and rms are men
    return SpeakerSpec(
        name,
        "flite",
        "flite",
        voice,
        role=role,
        sex=sex,
        f0_mean=f0_mean,
        duration_stretch=duration_stretch,
    )


def _festival(
    name: str,
    voice: str,
    sex: Sex,
    *,
    language: str = "en",
    role: Role = "train",
) -> SpeakerSpec:
    source: Source = "festival" if language == "en" else "foreign"
    return SpeakerSpec(name, source, "festival", voice, role=role, sex=sex, language=language)


def _perturbed(base: SpeakerSpec, alpha: float) -> SpeakerSpec:
    return dataclasses.replace(
        base,
        name=f"pert_{base.name}_x{round(alpha * 100):03d}",
        source="perturbed",
        alpha=alpha,
        base=base.name,
    )


_ESPEAK = [
    _espeak("espeak_us_m1", "en-us+m1", 45, 160),
    _espeak("espeak_us_f2", "en-us+f2", 60, 165),
    _espeak("espeak_gb_m3", "en+m3", 40, 170),
    _espeak("espeak_gb_f4", "en+f4", 65, 150),
    _espeak("espeak_scot_m2", "en-gb-scotland+m2", 35, 155),
    _espeak("espeak_scot_f1", "en-gb-scotland+f1", 55, 165),
    _espeak("espeak_rp_klatt", "en-gb-x-rp+klatt", 50, 160),
    _espeak("espeak_rp_f3", "en-gb-x-rp+f3", 70, 155),
    _espeak("espeak_car_m4", "en-029+m4", 45, 150),
    _espeak("espeak_car_f5", "en-029+f5", 60, 160),
    _espeak("espeak_lanc_m5", "en-gb-x-gbclan+m5", 30, 160),
    _espeak("espeak_wmid_m6", "en-gb-x-gbcwmd+m6", 40, 145),
    _espeak("espeak_us_klatt4", "en-us+klatt4", 55, 170),
    _espeak("espeak_nyc_m7", "en-us-nyc+m7", 25, 150),
    _espeak("espeak_us_f1", "en-us+f1", 75, 185),
]
_FLITE_KAL16 = _flite("flite_kal16", "kal16")
_FLITE_SLT = _flite("flite_slt", "slt")
_FLITE_KAL = _flite("flite_kal", "kal")
_FLITE_SLT_LOW = _flite("flite_slt_low", "slt", f0_mean=135.0)
_FLITE_SLT_HIGH = _flite("flite_slt_high", "slt", f0_mean=215.0)
_FLITE_KAL16_LOW = _flite("flite_kal16_low", "kal16", f0_mean=85.0)
_FLITE_KAL16_HIGH = _flite("flite_kal16_high", "kal16", f0_mean=140.0)
_FLITE = [
    _FLITE_KAL16,
    _FLITE_SLT,
    _FLITE_KAL,
    _FLITE_SLT_LOW,
    _FLITE_SLT_HIGH,
    _flite("flite_slt_slow", "slt", f0_mean=185.0, duration_stretch=1.2),
    _FLITE_KAL16_LOW,
    _FLITE_KAL16_HIGH,
    _flite("flite_kal16_fast", "kal16", f0_mean=115.0, duration_stretch=0.85),
    _flite("flite_kal_high", "kal", f0_mean=125.0, duration_stretch=1.1),
]
_FEST_KAL = _festival("fest_kal", "kal_diphone", "male")
_FEST_KED = _festival("fest_ked", "ked_diphone", "male")
_FEST_SLT = _festival("fest_slt_hts", "cmu_us_slt_arctic_hts", "female")
_FESTIVAL = [_FEST_KAL, _FEST_KED, _FEST_SLT]
#: Festival voices recorded from people speaking other languages (Debian's festvox packages),
#: reading the English sentences: more real voices for the speaker space. Hindi, Marathi and
#: Telugu (festvox-*-nsk) are left out: their Debian voices fail to load (a missing phone set).
_FOREIGN = [
    _festival("fest_ca_ona", "upc_ca_ona_hts", "female", language="ca"),
    _festival("fest_cs_dita", "czech_dita", "female", language="cs"),
    _festival("fest_cs_krb", "czech_krb", "male", language="cs"),  # a boy
    _festival("fest_cs_machac", "czech_machac", "male", language="cs"),
    _festival("fest_cs_ph", "czech_ph", "male", language="cs"),
    _festival("fest_fi_mv", "hy_fi_mv_diphone", "male", language="fi"),
    _festival("fest_it_lp", "lp_diphone", "female", language="it"),
    _festival("fest_it_pc", "pc_diphone", "male", language="it"),
    _festival("fest_ru_nsh", "msu_ru_nsh_clunits", "male", language="ru"),
]
#: Voices never trained on: flite's awb and rms (two men, recorded for CMU ARCTIC) and the
#: Finnish woman of festvox-suopuhe-lj (the recogniser reads her English best of the foreign
#: voices), so conversion between unseen voices is measured within and across sexes.
_UNSEEN = [
    _flite("flite_awb", "awb", role="unseen"),
    _flite("flite_rms", "rms", role="unseen"),
    _festival("fest_fi_lj", "suo_fi_lj_diphone", "female", language="fi", role="unseen"),
]
_PERTURBED = [
    _perturbed(_FLITE_KAL16, 0.88),
    _perturbed(_FLITE_KAL16, 0.94),
    _perturbed(_FLITE_KAL16, 1.08),
    _perturbed(_FLITE_KAL16, 1.15),
    _perturbed(_FLITE_SLT, 0.86),
    _perturbed(_FLITE_SLT, 0.93),
    _perturbed(_FLITE_SLT, 1.07),
    _perturbed(_FLITE_SLT, 1.13),
    _perturbed(_FLITE_KAL, 0.90),
    _perturbed(_FLITE_KAL, 1.10),
    _perturbed(_FLITE_SLT_LOW, 1.10),
    _perturbed(_FLITE_SLT_HIGH, 0.92),
    _perturbed(_FLITE_KAL16_LOW, 1.10),
    _perturbed(_FLITE_KAL16_HIGH, 0.90),
    _perturbed(_FEST_KAL, 0.90),
    _perturbed(_FEST_KAL, 1.10),
    _perturbed(_FEST_KED, 0.88),
    _perturbed(_FEST_KED, 1.06),
    _perturbed(_FEST_KED, 1.12),
    _perturbed(_FEST_SLT, 0.88),
    _perturbed(_FEST_SLT, 0.94),
    _perturbed(_FEST_SLT, 1.10),
]

#: Every speaker of the ``full`` preset, by name (train speakers first, then the unseen).
SPEAKERS: dict[str, SpeakerSpec] = {
    s.name: s for s in [*_ESPEAK, *_FLITE, *_FESTIVAL, *_FOREIGN, *_PERTURBED, *_UNSEEN]
}

#: Speaker names of each preset, and the number of sentences the preset uses (None: all).
PRESETS: dict[str, dict[str, Any]] = {
    "full": {"speakers": list(SPEAKERS), "sentences": None},
    "tiny": {
        "speakers": [
            "espeak_us_m1",
            "flite_kal16",
            "flite_slt",
            "pert_flite_slt_x093",
            "flite_awb",
            "flite_rms",
            "fest_fi_lj",
        ],
        "sentences": 17,  # 14 train, 3 held out: enough for 2 references and a source
    },
}


def _interleaved(specs: Sequence[SpeakerSpec]) -> list[SpeakerSpec]:
    """Round-robin over sources so that a prefix of the list mixes every source."""
    groups: dict[str, list[SpeakerSpec]] = {}
    for spec in specs:
        groups.setdefault(spec.source, []).append(spec)
    out: list[SpeakerSpec] = []
    while any(groups.values()):
        for group in groups.values():
            if group:
                out.append(group.pop(0))
    return out


def select_speakers(
    speakers: int | Sequence[str] | None = None, *, preset: str = "full"
) -> list[SpeakerSpec]:
    """Choose the speakers to synthesise.

    Args:
        speakers: ``None`` for every speaker of ``preset``; an int ``n`` for ``n`` train
            speakers of the full table, mixed across sources, plus the unseen speakers; or a
            sequence of speaker names from :data:`SPEAKERS`.
        preset: ``"full"`` or ``"tiny"``; used when ``speakers`` is None.

    Raises:
        CorpusBuildError: an unknown preset or speaker name, or ``n`` out of range.
    """
    if speakers is None:
        if preset not in PRESETS:
            raise CorpusBuildError(f"preset={preset!r}: expected one of {sorted(PRESETS)}")
        return [SPEAKERS[name] for name in PRESETS[preset]["speakers"]]
    if isinstance(speakers, int):
        train = [s for s in SPEAKERS.values() if s.role == "train"]
        if not 1 <= speakers <= len(train):
            raise CorpusBuildError(f"speakers={speakers}: expected a number from 1 to {len(train)}")
        unseen = [s for s in SPEAKERS.values() if s.role == "unseen"]
        return _interleaved(train)[:speakers] + unseen
    unknown = [name for name in speakers if name not in SPEAKERS]
    if unknown:
        raise CorpusBuildError(
            f"speakers: unknown speaker names {unknown}; see `seqae data speech --list`"
        )
    return [SPEAKERS[name] for name in dict.fromkeys(speakers)]


# --------------------------------------------------------------------------------------------
# Signal processing
# --------------------------------------------------------------------------------------------


def speed_perturb(wav: Tensor, alpha: float, sample_rate: int) -> Tensor:
    """Play ``wav`` ``alpha`` times faster: formants and pitch scale by ``alpha``.

    A vocal-tract-length and pitch perturbation by resampling; the duration becomes
    ``1 / alpha`` times as long.

    Args:
        wav: ``(T,)`` waveform.
        alpha: Speed factor (> 0); 1 returns ``wav`` unchanged.
        sample_rate: Rate of ``wav`` (and of the result) in Hz.
    """
    if alpha <= 0:
        raise ValueError(f"alpha must be positive, got {alpha}")
    if alpha == 1.0:
        return wav
    return AF.resample(wav, int(round(sample_rate * alpha)), sample_rate)


def trim_silence(
    wav: Tensor,
    sample_rate: int,
    *,
    margin: float = TRIM_MARGIN,
    threshold_db: float = 40.0,
    frame_seconds: float = 0.01,
) -> Tensor:
    """Cut leading and trailing silence, keeping ``margin`` seconds around the speech.

    A 10 ms frame counts as speech when its RMS level is within ``threshold_db`` of the loudest
    frame (and above -60 dBFS).

    Args:
        wav: ``(T,)`` waveform.
        sample_rate: Rate of ``wav`` in Hz.
        margin: Seconds of audio kept before the first and after the last speech frame.
        threshold_db: Frames quieter than the loudest by more than this are silence.
        frame_seconds: Frame length in seconds.

    Returns:
        The trimmed ``(T',)`` waveform (``wav`` itself when no frame is speech).
    """
    frame = max(1, int(round(frame_seconds * sample_rate)))
    n_frames = wav.numel() // frame
    if n_frames == 0:
        return wav
    frames = wav[: n_frames * frame].reshape(n_frames, frame)
    level = 10 * torch.log10(frames.pow(2).mean(dim=1).clamp_min(1e-12))
    threshold = max(level.max().item() - threshold_db, -60.0)
    active = torch.nonzero(level > threshold).flatten()
    if active.numel() == 0:
        return wav
    keep = int(round(margin * sample_rate))
    start = max(0, int(active[0]) * frame - keep)
    stop = min(wav.numel(), (int(active[-1]) + 1) * frame + keep)
    return wav[start:stop].contiguous()


def normalize_level(
    wav: Tensor, *, target_dbfs: float = TARGET_DBFS, peak: float = PEAK_TARGET
) -> Tensor:
    """Scale ``wav`` to an RMS level of ``target_dbfs``, then limit its peak to ``peak``.

    Args:
        wav: ``(T,)`` waveform, not silent.
        target_dbfs: RMS level in dB relative to full scale.
        peak: Largest absolute sample allowed after scaling (the whole signal is scaled down
            when it would exceed it).
    """
    rms = wav.pow(2).mean().sqrt().clamp_min(1e-8)
    out = wav * (10 ** (target_dbfs / 20) / rms)
    top = out.abs().max().item()
    if top > peak:
        out = out * (peak / top)
    return out


# --------------------------------------------------------------------------------------------
# Synthesisers
# --------------------------------------------------------------------------------------------


def _run(cmd: Sequence[str], what: str, *, timeout: float = _SUBPROCESS_TIMEOUT) -> str:
    """Run a command; raise CorpusBuildError with its output when it fails."""
    try:
        proc = subprocess.run(
            list(cmd), capture_output=True, text=True, timeout=timeout, check=False
        )
    except FileNotFoundError as err:
        raise MissingToolError(
            f"{cmd[0]} is not installed (apt-get install -y {_APT_PACKAGES.get(cmd[0], cmd[0])})"
        ) from err
    except subprocess.TimeoutExpired as err:
        raise CorpusBuildError(f"{what}: {cmd[0]} did not finish within {timeout:.0f} s") from err
    if proc.returncode != 0:
        raise CorpusBuildError(
            f"{what}: `{' '.join(cmd)}` failed with exit status {proc.returncode}: "
            f"{(proc.stderr or proc.stdout).strip()[-500:]}"
        )
    return proc.stdout


def _festival_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _synthesize(
    spec: SpeakerSpec, sentences: Sequence[Sentence], tmp: Path
) -> dict[str, tuple[np.ndarray, int]]:
    """Synthesise ``sentences`` with ``spec``'s engine and voice (before any perturbation)."""
    out: dict[str, tuple[np.ndarray, int]] = {}
    paths = {s.id: tmp / f"{s.id}.wav" for s in sentences}
    if spec.engine == "festival":
        script = [f"(voice_{spec.voice})"]
        for s in sentences:
            script.append(
                f"(utt.save.wave (utt.synth (Utterance Text {_festival_string(s.text)})) "
                f"{_festival_string(str(paths[s.id]))} 'riff)"
            )
        script_path = tmp / "synth.scm"
        script_path.write_text("\n".join(script) + "\n", encoding="utf-8")
        _run(["festival", "-b", str(script_path)], f"speaker {spec.name}")
    else:
        for s in sentences:
            text_path = tmp / f"{s.id}.txt"
            text_path.write_text(s.text + "\n", encoding="utf-8")
            if spec.engine == "espeak-ng":
                cmd = ["espeak-ng", "-v", spec.voice]
                if spec.pitch is not None:
                    cmd += ["-p", str(spec.pitch)]
                if spec.speed is not None:
                    cmd += ["-s", str(spec.speed)]
                cmd += ["-w", str(paths[s.id]), "-f", str(text_path)]
            else:
                cmd = ["flite", "-voice", spec.voice]
                if spec.f0_mean is not None:
                    cmd += ["--setf", f"int_f0_target_mean={spec.f0_mean:g}"]
                if spec.duration_stretch is not None:
                    cmd += ["--setf", f"duration_stretch={spec.duration_stretch:g}"]
                cmd += ["-f", str(text_path), "-o", str(paths[s.id])]
            _run(cmd, f"speaker {spec.name}, sentence {s.id}")
    for s in sentences:
        path = paths[s.id]
        if not path.is_file() or path.stat().st_size == 0:
            raise CorpusBuildError(
                f"speaker {spec.name}, sentence {s.id}: {spec.engine} wrote no audio to {path}"
            )
        data, rate = sf.read(str(path), dtype="float32", always_2d=False)
        out[s.id] = (data, int(rate))
    return out


def _is_complete(wav_path: Path, txt_path: Path, text: str) -> float | None:
    """Duration of an existing, complete utterance, or None if it must be (re)made."""
    try:
        if txt_path.read_text(encoding="utf-8").strip() != text:
            return None
        info = sf.info(str(wav_path))
    except (OSError, RuntimeError, sf.LibsndfileError):
        return None
    if info.frames <= 0:
        return None
    return info.frames / info.samplerate


@dataclass
class _SpeakerJob:
    spec: SpeakerSpec
    sentences: list[Sentence]
    out: str
    sample_rate: int
    target_dbfs: float


@dataclass
class _SpeakerResult:
    name: str
    made: int = 0
    skipped: int = 0
    seconds: float = 0.0


def _build_speaker(job: _SpeakerJob) -> _SpeakerResult:
    """Synthesise the missing utterances of one speaker (runs in a worker process)."""
    torch.set_num_threads(1)
    spec, out = job.spec, Path(job.out)
    result = _SpeakerResult(spec.name)
    todo: list[Sentence] = []
    for s in job.sentences:
        stem = f"{spec.name}_{s.id}"
        seconds = _is_complete(
            out / "wav" / spec.name / f"{stem}.wav", out / "txt" / spec.name / f"{stem}.txt", s.text
        )
        if seconds is None:
            todo.append(s)
        else:
            result.skipped += 1
            result.seconds += seconds
    if not todo:
        return result
    with tempfile.TemporaryDirectory(prefix=f"seqae_{spec.name}_") as tmp:
        raw = _synthesize(spec, todo, Path(tmp))
        for s in todo:
            stem = f"{spec.name}_{s.id}"
            data, rate = raw[s.id]
            wav = prepare_waveform(
                data, rate, target_rate=job.sample_rate, source=f"{spec.name} sentence {s.id}"
            )
            wav = speed_perturb(wav, spec.alpha, job.sample_rate)
            wav = trim_silence(wav, job.sample_rate)
            wav = normalize_level(wav, target_dbfs=job.target_dbfs)
            save_audio(out / "wav" / spec.name / f"{stem}.wav", wav, job.sample_rate)
            txt_path = out / "txt" / spec.name / f"{stem}.txt"
            txt_path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(txt_path, s.text + "\n", sync_dir=False)
            result.made += 1
            result.seconds += wav.numel() / job.sample_rate
    return result


# --------------------------------------------------------------------------------------------
# Tool checks
# --------------------------------------------------------------------------------------------


def _tool_version(tool: str) -> str:
    """The version line a tool prints for ``--version`` (flite exits 1 after printing it)."""
    try:
        proc = subprocess.run(
            [tool, "--version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    lines = [line.strip() for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    for line in lines:
        if "version" in line.lower():
            return line
    return lines[0] if lines else "unknown"


def _flite_voices() -> set[str]:
    text = _run(["flite", "-lv"], "flite -lv", timeout=30)
    return set(text.split(":", 1)[-1].split())


def _festival_voice_ok(voice: str) -> bool:
    try:
        _run(["festival", "-b", f"(voice_{voice})"], f"festival voice {voice}", timeout=120)
    except CorpusBuildError:
        return False
    return True


def _check_tools(specs: Sequence[SpeakerSpec]) -> tuple[list[SpeakerSpec], list[str], dict]:
    """Keep the speakers whose synthesiser is usable; festival voices are optional.

    Returns:
        (usable speakers, names of skipped speakers, tool versions).

    Raises:
        MissingToolError: espeak-ng or flite (or a flite voice) is needed but missing.
    """
    engines = {s.engine for s in specs}
    versions: dict[str, str] = {}
    for tool in ("espeak-ng", "flite"):
        if tool in engines:
            if shutil.which(tool) is None:
                raise MissingToolError(
                    f"{tool} is not installed or not on PATH; install it with "
                    f"`apt-get install -y {_APT_PACKAGES[tool]}`"
                )
            versions[tool] = _tool_version(tool)
    if "flite" in engines:
        have = _flite_voices()
        missing = sorted({s.voice for s in specs if s.engine == "flite"} - have)
        if missing:
            raise MissingToolError(
                f"flite lacks the voices {missing} (it has {sorted(have)}); install the Debian "
                "package flite, which builds in kal, kal16, slt, awb and rms"
            )
    usable_festival: set[str] = set()
    festival_voices = sorted({s.voice for s in specs if s.engine == "festival"})
    if festival_voices:
        if shutil.which("festival") is None:
            reason = "festival is not installed (apt-get install -y festival)"
        else:
            versions["festival"] = _tool_version("festival")
            usable_festival = {v for v in festival_voices if _festival_voice_ok(v)}
            absent = [v for v in festival_voices if v not in usable_festival]
            reason = "festival voices not installed: " + ", ".join(
                f"{v} (apt-get install -y {_FESTIVAL_VOICE_PACKAGES.get(v, 'festvox-...')})"
                for v in absent
            )
        skipped = [
            s.name for s in specs if s.engine == "festival" and s.voice not in usable_festival
        ]
        if skipped:
            warnings.warn(
                f"{reason}; skipping the speakers {skipped}", RuntimeWarning, stacklevel=3
            )
    else:
        skipped = []
    usable = [s for s in specs if s.name not in set(skipped)]
    return usable, skipped, versions


# --------------------------------------------------------------------------------------------
# Build
# --------------------------------------------------------------------------------------------


def _prepare_out(out: Path, overwrite: bool) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise CorpusBuildError(f"out={out}: cannot create the output directory ({err})") from err
    if not out.is_dir():
        raise CorpusBuildError(f"out={out}: exists and is not a directory")
    if not os.access(out, os.W_OK | os.X_OK):
        raise CorpusBuildError(f"out={out}: the output directory is not writable")
    if overwrite:
        for name in ("wav", "txt"):
            shutil.rmtree(out / name, ignore_errors=True)
        for name in ("speakers.json", "corpus.json"):
            (out / name).unlink(missing_ok=True)


def _check_existing(out: Path, speakers: dict[str, Any]) -> None:
    """Refuse to mix a previous build with different speakers into this one."""
    path = out / "speakers.json"
    if not path.is_file():
        stray = [p.name for p in (out / "wav").glob("*") if p.name not in speakers]
        if stray:
            raise CorpusBuildError(
                f"out={out}: wav/ holds speakers {sorted(stray)[:5]} that are not being built; "
                "use overwrite=True (--overwrite) or another directory"
            )
        return
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise CorpusBuildError(
            f"{path}: unreadable ({err}); use overwrite=True (--overwrite) to rebuild"
        ) from err

    def made_by(entry: Any) -> Any:  # what decides the audio (not the sex or language notes)
        return (
            {k: entry.get(k) for k in ("source", "role", "settings")}
            if isinstance(entry, dict)
            else entry
        )

    changed = [n for n, v in speakers.items() if n in old and made_by(old[n]) != made_by(v)]
    extra = [n for n in old if n not in speakers]
    if changed or extra:
        raise CorpusBuildError(
            f"{path}: this directory holds a corpus with other speakers (changed: {changed}, "
            f"not selected now: {extra[:5]}); use overwrite=True (--overwrite) or another "
            "directory"
        )


def build_speech_corpus(
    out: str | os.PathLike[str],
    *,
    preset: str = "full",
    speakers: int | Sequence[str] | None = None,
    sentences: int | Sequence[str] | None = None,
    workers: int = 2,
    overwrite: bool = False,
    sample_rate: int = 16000,
    target_dbfs: float = TARGET_DBFS,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Synthesise the parallel multi-speaker corpus into ``out`` (resumable).

    Args:
        out: Output directory (created).
        preset: ``"full"`` (about 48 train speakers and the 2 unseen, all sentences) or
            ``"tiny"`` (6 speakers, 17 sentences, for tests).
        speakers: Overrides the preset's speakers; see :func:`select_speakers`.
        sentences: Overrides the preset's sentences; see :func:`select_sentences`.
        workers: Worker processes synthesising speakers in parallel (1: in this process).
        overwrite: Delete a previous corpus in ``out`` (``wav/``, ``txt/``, the JSON files)
            first. Without it, complete utterances already in ``out`` are kept (resume).
        sample_rate: Output sample rate in Hz.
        target_dbfs: RMS level of every utterance, dBFS.
        progress: Called as ``progress(done, total, speaker)`` after each speaker.

    Returns:
        The contents written to ``corpus.json``.

    Raises:
        MissingToolError: espeak-ng or flite is needed but not installed (festival voices are
            skipped with a ``RuntimeWarning`` instead).
        CorpusBuildError: bad arguments, an unusable output directory, or a synthesiser error.
    """
    start = time.perf_counter()
    if workers < 1:
        raise CorpusBuildError(f"workers={workers}: expected at least 1")
    if preset not in PRESETS:
        raise CorpusBuildError(f"preset={preset!r}: expected one of {sorted(PRESETS)}")
    specs = select_speakers(speakers, preset=preset)
    chosen = select_sentences(PRESETS[preset]["sentences"] if sentences is None else sentences)
    specs, skipped, versions = _check_tools(specs)
    if not specs:
        raise CorpusBuildError("no speaker can be synthesised with the installed tools")
    out_path = Path(out)
    _prepare_out(out_path, overwrite)
    speakers_json = {s.name: s.entry() for s in specs}
    _check_existing(out_path, speakers_json)
    (out_path / "corpus.json").unlink(missing_ok=True)
    atomic_write_json(out_path / "speakers.json", speakers_json)

    # Slowest first (festival HTS, then other festival voices) for a balanced pool.
    order = sorted(specs, key=lambda s: (s.engine != "festival", "hts" not in s.voice, s.name))
    jobs = [_SpeakerJob(s, chosen, str(out_path), sample_rate, target_dbfs) for s in order]
    results: list[_SpeakerResult] = []
    if workers == 1:
        for job in jobs:
            results.append(_build_speaker(job))
            if progress is not None:
                progress(len(results), len(jobs), job.spec.name)
    else:
        context = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_build_speaker, job) for job in jobs]
            try:
                for fut in cf.as_completed(futures):
                    results.append(fut.result())
                    if progress is not None:
                        progress(len(results), len(jobs), results[-1].name)
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    roles = Counter(s.role for s in specs)
    by_source = Counter(s.source for s in specs if s.role == "train")
    seconds = sum(r.seconds for r in results)
    info: dict[str, Any] = {
        "format": CORPUS_FORMAT,
        "sample_rate": sample_rate,
        "sentences": {
            "train": [s.id for s in chosen if s.split == "train"],
            "test": [s.id for s in chosen if s.split == "test"],
        },
        "speakers": len(specs),
        "speakers_by_role": {"train": roles.get("train", 0), "unseen": roles.get("unseen", 0)},
        "train_speakers_by_source": dict(sorted(by_source.items())),
        "unseen_speakers": [s.name for s in specs if s.role == "unseen"],
        "skipped_speakers": skipped,
        "utterances": len(specs) * len(chosen),
        "hours": round(seconds / 3600, 4),
        "preset": preset if speakers is None else "custom",
        "target_dbfs": target_dbfs,
        "trim_margin_seconds": TRIM_MARGIN,
        "tools": versions,
        "synthesised_this_run": sum(r.made for r in results),
        "build_seconds": round(time.perf_counter() - start, 2),
    }
    atomic_write_json(out_path / "corpus.json", info)
    return info


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def open_or_build_corpus(
    root: str | os.PathLike[str],
    *,
    preset: str,
    workers: int = 2,
    build: bool = True,
    who: str = "seqae",
) -> SpeechCorpus:
    """Open the corpus at ``root``; when it holds none yet, synthesise preset ``preset`` there.

    What the speech recipes run first. ``build=False`` (torchrun ranks other than 0) refuses a
    missing corpus instead of building it, with the command that builds it.

    """
    from seqae.audio.dataset import SpeechCorpus

    root = Path(root)
    if not (root / "corpus.json").is_file() and not (root / "wav").is_dir():
        if not build:
            raise RuntimeError(f"{root}: build the corpus first (seqae data speech --out {root})")
        print(f"{who}: no corpus at {root}; synthesizing preset {preset!r}")
        build_speech_corpus(root, preset=preset, workers=workers)
    return SpeechCorpus(root)


def _cmd_speech(args: argparse.Namespace) -> int:
    speakers: int | None = args.speakers
    if args.list:
        specs = select_speakers(speakers, preset=args.preset)
        for spec in specs:
            settings = " ".join(f"{k}={v}" for k, v in spec.settings().items())
            print(f"{spec.name:28s} {spec.source:10s} {spec.role:7s} {settings}")
        counts = Counter(s.source for s in specs if s.role == "train")
        print(f"# {len(specs)} speakers; train by source: {dict(counts)}")
        return 0
    if args.out is None:
        print("seqae data speech: --out DIR is required (or --list)", file=sys.stderr)
        return 2

    def report(done: int, total: int, name: str) -> None:
        print(f"[{done}/{total}] {name}", file=sys.stderr, flush=True)

    try:
        info = build_speech_corpus(
            args.out,
            preset=args.preset,
            speakers=speakers,
            sentences=args.sentences,
            workers=args.workers,
            overwrite=args.overwrite,
            progress=None if args.quiet else report,
        )
    except CorpusBuildError as err:
        print(f"seqae data speech: {err}", file=sys.stderr)
        return 1
    print(json.dumps(info, indent=2))
    return 0


def add_parser(sub: Any) -> argparse.ArgumentParser:
    """Add ``seqae data speech`` under ``seqae data``.

    The ``data_builder`` component of the registry: the ``speech`` parser has a ``func``
    default that takes the parsed arguments and returns an exit status.

    Args:
        sub: The subparsers object of the ``seqae data`` command.
    """
    speech = sub.add_parser(
        "speech", help="synthesise the parallel multi-speaker speech corpus (offline)"
    )
    speech.add_argument("--out", default=None, help="output directory")
    speech.add_argument(
        "--preset", choices=sorted(PRESETS), default="full", help="speaker/sentence preset"
    )
    speech.add_argument(
        "--speakers", type=int, default=None, help="number of train speakers (plus the unseen)"
    )
    speech.add_argument("--sentences", type=int, default=None, help="number of sentences")
    speech.add_argument("--workers", type=int, default=2, help="synthesis processes")
    speech.add_argument(
        "--overwrite", action="store_true", help="delete a previous corpus in --out first"
    )
    speech.add_argument("--list", action="store_true", help="list the speakers and exit")
    speech.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    speech.set_defaults(func=_cmd_speech)
    return speech
