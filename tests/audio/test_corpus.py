"""The embedded speech corpus: layout, speakers, splits, resuming, tool errors."""

from __future__ import annotations

import json
import math
import os
import shutil
from importlib import resources
from pathlib import Path

import pytest
import soundfile as sf
import torch

from seqae.audio.corpus import (
    N_TEST_SENTENCES,
    PRESETS,
    SPEAKERS,
    TARGET_DBFS,
    CorpusBuildError,
    MissingToolError,
    build_speech_corpus,
    load_sentences,
    normalize_level,
    select_sentences,
    select_speakers,
    speed_perturb,
    trim_silence,
)

TINY = PRESETS["tiny"]["speakers"]
N_SENT = 4


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (apt-get install -y {tool})")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    """A tiny corpus built once with two worker processes."""
    _need("espeak-ng", "flite")
    out = tmp_path_factory.mktemp("speech")
    info = build_speech_corpus(out, preset="tiny", sentences=N_SENT, workers=2)
    return out, info


def _wavs(out: Path) -> list[Path]:
    return sorted((out / "wav").glob("*/*.wav"))


# ---------------------------------------------------------------------------- sentences


def test_sentence_list_is_shipped_and_well_formed() -> None:
    assert resources.files("seqae.audio").joinpath("sentences.txt").is_file()
    sentences = load_sentences()
    assert len(sentences) >= 120
    assert [s.id for s in sentences] == [f"{i:03d}" for i in range(1, len(sentences) + 1)]
    assert [s.split for s in sentences[-N_TEST_SENTENCES:]] == ["test"] * N_TEST_SENTENCES
    assert all(s.split == "train" for s in sentences[:-N_TEST_SENTENCES])
    assert len({s.text.lower() for s in sentences}) == len(sentences)
    for s in sentences:
        assert 6 <= len(s.text.split()) <= 12, s.text
        assert not any(ch.isdigit() for ch in s.text), s.text


def test_select_sentences_keeps_both_splits() -> None:
    chosen = select_sentences(N_SENT)
    assert len(chosen) == N_SENT
    assert {s.split for s in chosen} == {"train", "test"}
    assert [s.id for s in select_sentences(["003", "001"])] == ["003", "001"]
    with pytest.raises(CorpusBuildError, match="unknown sentence ids"):
        select_sentences(["999"])
    with pytest.raises(CorpusBuildError, match="sentences=0"):
        select_sentences(0)


# ---------------------------------------------------------------------------- speakers


def test_full_preset_speakers() -> None:
    specs = select_speakers(preset="full")
    train = [s for s in specs if s.role == "train"]
    unseen = [s for s in specs if s.role == "unseen"]
    assert len(train) >= 44
    assert {s.name for s in unseen} == {"flite_awb", "flite_rms", "fest_fi_lj"}
    assert {"flite_kal16", "flite_slt"} <= {s.name for s in train}
    # no voice of an unseen person reaches training (fest_fi_mv is another Finnish speaker)
    assert all(s.voice != "suo_fi_lj_diphone" for s in train)
    assert len({s.name for s in specs}) == len(specs)
    # awb/rms never reach training, not even perturbed.
    assert all(s.voice not in ("awb", "rms") for s in train)
    natural = [s for s in train if s.source != "espeak-ng"]
    assert len(natural) > len(train) / 2
    for s in specs:
        assert s.name.replace("_", "").isalnum() and s.name == s.name.lower()
        if s.source == "perturbed":
            assert s.base in SPEAKERS and s.alpha != 1.0 and 0.8 <= s.alpha <= 1.2
    assert len({json.dumps(s.settings(), sort_keys=True) for s in specs}) == len(specs)


def test_select_speakers_by_number_mixes_sources() -> None:
    specs = select_speakers(8)
    assert len([s for s in specs if s.role == "train"]) == 8
    assert len({s.source for s in specs if s.role == "train"}) >= 3
    assert [s.name for s in specs if s.role == "unseen"] == ["flite_awb", "flite_rms", "fest_fi_lj"]
    with pytest.raises(CorpusBuildError, match="unknown speaker names"):
        select_speakers(["nobody"])
    with pytest.raises(CorpusBuildError, match="preset="):
        select_speakers(preset="huge")


# ---------------------------------------------------------------------------- signal helpers


def test_speed_perturb_scales_duration_and_pitch() -> None:
    sr = 16000
    t = torch.arange(sr) / sr
    wav = torch.sin(2 * math.pi * 200 * t)
    fast = speed_perturb(wav, 1.1, sr)
    assert abs(fast.numel() - sr / 1.1) < 3
    spectrum = torch.fft.rfft(fast).abs()
    peak_hz = spectrum.argmax().item() * sr / fast.numel()
    assert abs(peak_hz - 220) < 3
    assert speed_perturb(wav, 1.0, sr) is wav


def test_trim_and_level() -> None:
    sr = 16000
    tone = 0.5 * torch.sin(2 * math.pi * 300 * torch.arange(sr) / sr)
    wav = torch.cat([torch.zeros(sr), tone, torch.zeros(2 * sr)])
    trimmed = trim_silence(wav, sr, margin=0.1)
    assert abs(trimmed.numel() - 1.2 * sr) <= 2 * 160
    levelled = normalize_level(trimmed)
    tone_level = 20 * math.log10(normalize_level(tone).pow(2).mean().sqrt().item())
    assert abs(tone_level - TARGET_DBFS) < 0.01
    assert levelled.abs().max().item() <= 0.89 + 1e-6


# ---------------------------------------------------------------------------- the build


def test_layout_and_metadata(tiny: tuple[Path, dict]) -> None:
    out, info = tiny
    speakers = json.loads((out / "speakers.json").read_text())
    corpus = json.loads((out / "corpus.json").read_text())
    assert corpus == info
    assert set(speakers) == set(TINY)
    assert corpus["format"] == 1 and corpus["sample_rate"] == 16000
    assert corpus["speakers"] == len(TINY)
    assert corpus["utterances"] == len(TINY) * N_SENT
    assert corpus["hours"] > 0 and corpus["build_seconds"] > 0
    assert set(corpus["tools"]) == {"espeak-ng", "flite", "festival"}  # fest_fi_lj: festival
    assert sum(corpus["train_speakers_by_source"].values()) == corpus["speakers_by_role"]["train"]
    for name, entry in speakers.items():
        assert entry["source"] in ("espeak-ng", "flite", "festival", "foreign", "perturbed")
        assert entry["settings"] == SPEAKERS[name].settings()
    texts = {s.id: s.text for s in load_sentences()}
    ids = corpus["sentences"]["train"] + corpus["sentences"]["test"]
    # Every speaker speaks every sentence, in 16 kHz mono PCM16, next to its text.
    for name in speakers:
        for sid in ids:
            wav = out / "wav" / name / f"{name}_{sid}.wav"
            txt = out / "txt" / name / f"{name}_{sid}.txt"
            meta = sf.info(str(wav))
            assert (meta.samplerate, meta.channels, meta.subtype) == (16000, 1, "PCM_16")
            assert 0.8 < meta.duration < 8.0
            assert txt.read_text().strip() == texts[sid]
    assert len(_wavs(out)) == len(TINY) * N_SENT


def test_audio_is_trimmed_and_levelled(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    for path in _wavs(out)[::3]:
        data, sr = sf.read(str(path), dtype="float32")
        x = torch.from_numpy(data)
        level = 20 * math.log10(x.pow(2).mean().sqrt().item())
        assert TARGET_DBFS - 4 < level < TARGET_DBFS + 0.5, path.name
        assert x.abs().max().item() <= 0.9
        # Already trimmed: trimming again removes at most a few frames.
        assert x.numel() - trim_silence(x, sr).numel() < 0.05 * sr, path.name


def test_speakers_differ(tiny: tuple[Path, dict]) -> None:
    out, _ = tiny
    a, _ = sf.read(str(out / "wav" / "flite_slt" / "flite_slt_001.wav"))
    b, _ = sf.read(str(out / "wav" / "pert_flite_slt_x093" / "pert_flite_slt_x093_001.wav"))
    # alpha = 0.93 slows the voice down: about 1/0.93 as long.
    assert 1.03 < len(b) / len(a) < 1.12


def test_unseen_speakers_and_split(tiny: tuple[Path, dict]) -> None:
    out, corpus = tiny
    speakers = json.loads((out / "speakers.json").read_text())
    unseen = {n for n, e in speakers.items() if e["role"] == "unseen"}
    assert unseen == {"flite_awb", "flite_rms", "fest_fi_lj"}
    # the unseen voices span both sexes, and every entry says its language
    assert {speakers[n]["sex"] for n in unseen} == {"male", "female"}
    assert speakers["fest_fi_lj"]["language"] == "fi" and speakers["flite_awb"]["language"] == "en"
    assert corpus["unseen_speakers"] == ["flite_awb", "flite_rms", "fest_fi_lj"]
    assert corpus["speakers_by_role"] == {"train": len(TINY) - 3, "unseen": 3}
    train, test = corpus["sentences"]["train"], corpus["sentences"]["test"]
    assert train and test and not set(train) & set(test)
    split = {s.id: s.split for s in load_sentences()}
    assert all(split[i] == "train" for i in train) and all(split[i] == "test" for i in test)


def test_rerun_resumes_without_resynthesis(tmp_path: Path) -> None:
    _need("espeak-ng", "flite")
    kwargs = {"speakers": ["espeak_us_m1", "flite_slt"], "sentences": 3, "workers": 1}
    first = build_speech_corpus(tmp_path, **kwargs)
    assert first["synthesised_this_run"] == 6
    mtimes = {p: p.stat().st_mtime_ns for p in _wavs(tmp_path)}
    victim = tmp_path / "wav" / "flite_slt" / "flite_slt_002.wav"
    victim.unlink()
    (tmp_path / "corpus.json").unlink()  # as if the build was killed before the end
    second = build_speech_corpus(tmp_path, **kwargs)
    assert second["synthesised_this_run"] == 1
    assert victim.is_file() and (tmp_path / "corpus.json").is_file()
    for path, mtime in mtimes.items():
        if path != victim:
            assert path.stat().st_mtime_ns == mtime, path.name
    # A changed speaker set is refused unless overwriting.
    with pytest.raises(CorpusBuildError, match="overwrite"):
        build_speech_corpus(tmp_path, speakers=["flite_slt"], sentences=3, workers=1)
    third = build_speech_corpus(
        tmp_path, speakers=["flite_slt"], sentences=3, workers=1, overwrite=True
    )
    assert third["synthesised_this_run"] == 3 and not (tmp_path / "wav" / "espeak_us_m1").exists()


def test_missing_binary_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(MissingToolError, match=r"apt-get install -y (espeak-ng|flite)"):
        build_speech_corpus(tmp_path / "out", preset="tiny", workers=1)
    with pytest.raises(MissingToolError, match="apt-get install -y flite"):
        build_speech_corpus(tmp_path / "out", speakers=["flite_slt"], workers=1)
    assert not (tmp_path / "out").exists()


def test_missing_festival_skips_its_speakers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _need("espeak-ng", "flite")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("espeak-ng", "flite"):
        os.symlink(shutil.which(tool), bin_dir / tool)
    monkeypatch.setenv("PATH", str(bin_dir))
    with pytest.warns(RuntimeWarning, match=r"festival is not installed.*fest_kal"):
        info = build_speech_corpus(
            tmp_path / "out", speakers=["flite_slt", "fest_kal"], sentences=1, workers=1
        )
    assert info["skipped_speakers"] == ["fest_kal"] and info["speakers"] == 1
    assert not (tmp_path / "out" / "wav" / "fest_kal").exists()


def test_unusable_output_directory(tmp_path: Path) -> None:
    _need("espeak-ng", "flite")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(CorpusBuildError, match="cannot create the output directory"):
        build_speech_corpus(blocker / "speech", speakers=["flite_slt"], sentences=1, workers=1)
    with pytest.raises(CorpusBuildError, match="workers=0"):
        build_speech_corpus(tmp_path / "x", workers=0)


def test_cli_lists_and_builds(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _need("espeak-ng", "flite")
    from seqae.cli import build_parser

    parser = build_parser()  # `seqae data speech` comes from the registry's data builders
    args = parser.parse_args(["data", "speech", "--preset", "tiny", "--list"])
    assert args.func(args) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in TINY)
    out = tmp_path / "speech"
    argv = ["data", "speech", "--out", str(out), "--speakers", "1", "--sentences", "2"]
    args = parser.parse_args([*argv, "--workers", "1", "--quiet"])
    assert args.func(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads((out / "corpus.json").read_text())
    assert printed["speakers"] == 4 and printed["utterances"] == 8  # 1 train + 3 unseen voices
    args = parser.parse_args(["data", "speech"])
    assert args.func(args) == 2


def test_festival_voice_when_installed(tmp_path: Path) -> None:
    _need("espeak-ng", "flite", "festival")
    if not Path("/usr/share/festival/voices/english/kal_diphone").is_dir():
        pytest.skip(
            "festival voice kal_diphone is not installed (apt-get install -y festvox-kallpc16k)"
        )
    info = build_speech_corpus(
        tmp_path, speakers=["fest_kal", "pert_fest_kal_x110"], sentences=1, workers=1
    )
    assert info["skipped_speakers"] == [] and info["tools"]["festival"].startswith("festival")
    a, sr = sf.read(str(tmp_path / "wav" / "fest_kal" / "fest_kal_001.wav"))
    b, _ = sf.read(str(tmp_path / "wav" / "pert_fest_kal_x110" / "pert_fest_kal_x110_001.wav"))
    assert sr == 16000 and 0.85 < len(b) / len(a) < 0.96
