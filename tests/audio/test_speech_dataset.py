"""VCTK-layout scanning, the log-mel cache and the training crops."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
import soundfile as sf
import torch

from seqae.audio.dataset import (
    SegmentBatcher,
    SpeechCorpus,
    SpeechDataError,
    load_features,
    scan_speakers,
)
from seqae.audio.features import FeatureConfig, log_mel
from seqae.audio.io import AudioFileError


def write_tone(path, f0, seconds=1.0, rate=16000):
    t = np.arange(int(seconds * rate)) / rate
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * math.pi * f0 * t)).astype(np.float32), rate)


@pytest.fixture
def vctk(tmp_path):
    """A tiny tree in the VCTK layout: wav48/<spk>/<spk>_<id>.wav + txt/<spk>/<spk>_<id>.txt."""
    root = tmp_path / "VCTK"
    for s, spk in enumerate(("p225", "p226", "p227")):
        for i in (1, 2, 3):
            write_tone(root / "wav48" / spk / f"{spk}_{i:03d}.wav", 120 + 40 * s + i, rate=48000)
            txt = root / "txt" / spk / f"{spk}_{i:03d}.txt"
            txt.parent.mkdir(parents=True, exist_ok=True)
            txt.write_text(f"sentence number {i}\n")
    return root


def test_scan_vctk_layout(vctk):
    utts = scan_speakers(vctk / "wav48")
    assert [u.speaker for u in utts] == ["p225"] * 3 + ["p226"] * 3 + ["p227"] * 3
    assert utts[0].utt_id == "p225_001" and utts[0].sentence_id == "001"
    assert utts[4].text == "sentence number 2"
    corpus = SpeechCorpus(vctk)
    assert corpus.wav_root.name == "wav48" and corpus.speakers == ["p225", "p226", "p227"]
    assert corpus.role("p225") == "train"
    assert len(corpus.select(speakers=["p226"])) == 3


def test_corpus_roles_and_split(vctk):
    (vctk / "speakers.json").write_text(json.dumps({"p227": {"role": "unseen"}}))
    (vctk / "corpus.json").write_text(
        json.dumps({"sentences": {"train": ["001", "002"], "test": ["003"]}})
    )
    corpus = SpeechCorpus(vctk)
    assert corpus.speakers_with_role("unseen") == ["p227"]
    train = corpus.select(role="train", split="train")
    assert {u.speaker for u in train} == {"p225", "p226"}
    assert {u.sentence_id for u in train} == {"001", "002"}
    assert {u.sentence_id for u in corpus.select(split="test")} == {"003"}
    with pytest.raises(SpeechDataError, match="unknown speaker"):
        corpus.select(speakers=["p999"])


def test_empty_or_missing_folders_are_refused(tmp_path):
    with pytest.raises(SpeechDataError, match="no such directory"):
        scan_speakers(tmp_path / "nope")
    (tmp_path / "empty" / "spk").mkdir(parents=True)
    (tmp_path / "empty" / "spk" / "notes.md").write_text("x")
    with pytest.raises(SpeechDataError, match="no speakers found"):
        SpeechCorpus(tmp_path / "empty")
    (tmp_path / "bad.json").mkdir()
    (tmp_path / "bad.json" / "wav" / "a").mkdir(parents=True)
    write_tone(tmp_path / "bad.json" / "wav" / "a" / "a_001.wav", 200)
    (tmp_path / "bad.json" / "corpus.json").write_text("{not json")
    with pytest.raises(SpeechDataError, match="not valid JSON"):
        SpeechCorpus(tmp_path / "bad.json")


def test_feature_cache_computes_once_and_notices_changes(vctk, tmp_path, monkeypatch):
    utts = scan_speakers(vctk / "wav48")
    cfg = FeatureConfig()
    cache = tmp_path / "cache"
    first = load_features(utts, cfg, cache_dir=cache)
    assert len(first) == 9 and first[0].shape[0] == 80
    assert len(list(cache.glob("logmel-*/*.safetensors"))) == 3

    import seqae.audio.dataset as ds

    calls = []
    real = ds.load_audio
    monkeypatch.setattr(ds, "load_audio", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = load_features(utts, cfg, cache_dir=cache)
    assert calls == []  # everything from the cache
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))

    # a changed file is recomputed, the others are not
    write_tone(utts[0].path, 500, seconds=1.5)
    os.utime(utts[0].path, ns=(1, 10**18))
    changed = load_features(utts, cfg, cache_dir=cache)
    assert len(calls) == 1
    assert changed[0].shape[1] > first[0].shape[1]
    # other settings get their own cache
    load_features(utts[:1], FeatureConfig(hop_length=200), cache_dir=cache)
    assert len(list(cache.glob("logmel-*"))) == 2


def test_corrupt_cache_is_rebuilt(vctk, tmp_path):
    utts = scan_speakers(vctk / "wav48")[:3]
    cache = tmp_path / "cache"
    ref = load_features(utts, cache_dir=cache)
    (f,) = list(cache.glob("logmel-*/*.safetensors"))
    f.write_bytes(b"garbage")
    again = load_features(utts, cache_dir=cache)
    assert all(torch.equal(a, b) for a, b in zip(ref, again, strict=True))


def test_bad_file_in_corpus(vctk):
    utts = scan_speakers(vctk / "wav48")
    utts[1].path.write_bytes(b"RIFF....garbage")
    with pytest.raises(AudioFileError, match=str(utts[1].path)):
        load_features(utts)
    mels = load_features(utts, skip_bad=True)
    assert mels[1].shape == (80, 0)


def test_features_match_direct_extraction(vctk):
    from seqae.audio.io import load_audio

    (u,) = scan_speakers(vctk / "wav48")[:1]
    (m,) = load_features([u])
    assert torch.allclose(m, log_mel(load_audio(u.path)))


def test_segment_batcher_is_reproducible_and_pads():
    mels = [torch.randn(80, n) for n in (200, 40, 150, 300)]
    b = SegmentBatcher(mels, [0, 0, 1, 1], segment_frames=64, seed=3)
    one = b.batch(step=5, batch_size=16)
    two = b.batch(step=5, batch_size=16)
    assert all(torch.equal(one[k], two[k]) for k in one)
    assert not torch.equal(one["x"], b.batch(step=6, batch_size=16)["x"])
    assert one["x"].shape == (16, 80, 64) and one["ref"].shape == (16, 80, 64)
    assert set(one["lengths"].tolist()) <= {40, 64}
    # the reference is another utterance of the same speaker
    for i in range(16):
        spk = int(one["speaker"][i])
        assert spk in (0, 1)
    # a crop is a slice of some mel of that speaker
    x0, s0 = one["x"][0], int(one["speaker"][0])
    cands = [m for m, s in zip(mels, [0, 0, 1, 1], strict=True) if s == s0]
    assert any(
        any(torch.equal(x0[:, :10], m[:, j : j + 10]) for j in range(m.shape[1] - 9)) for m in cands
    )
    with pytest.raises(SpeechDataError):
        SegmentBatcher([], [], segment_frames=8)
