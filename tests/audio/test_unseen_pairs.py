"""Conversion between voices the model never heard (issue: unseen-to-unseen evaluation): the
pairs and their sex groups, where a voice's sex comes from, and the GE2E speaker loss."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from seqae.audio.corpus import PRESETS, SPEAKERS
from seqae.audio.dataset import SpeechCorpus, SpeechDataError, read_vctk_speaker_info
from seqae.audio.evaluate import GROUPS, format_table, make_voice_pairs, voice_pair_group
from seqae.audio.speaker_loss import GE2ELoss

VOICES = {
    "awb": ("male", {"engine": "flite", "voice": "awb"}),
    "rms": ("male", {"engine": "flite", "voice": "rms"}),
    "lj": ("female", {"engine": "festival", "voice": "suo_fi_lj_diphone"}),
    "odd": (None, {"engine": "espeak-ng", "voice": "en-us+klatt"}),
    "kal16": ("male", {"engine": "flite", "voice": "kal16"}),
}


def _corpus(tmp_path: Path, sentences: int = 6) -> SpeechCorpus:
    root = tmp_path / "corpus"
    rate = 16000
    t = np.arange(rate // 4) / rate
    for k, spk in enumerate(VOICES):
        for i in range(1, sentences + 1):
            path = root / "wav" / spk / f"{spk}_{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            wave = 0.3 * np.sin(2 * math.pi * (100 + 10 * k) * t)
            sf.write(path, wave.astype(np.float32), rate)
    speakers = {}
    for name, (sex, settings) in VOICES.items():
        entry = {"source": settings["engine"], "settings": settings}
        entry["role"] = "train" if name == "kal16" else "unseen"
        if sex is not None:
            entry["sex"] = sex
        speakers[name] = entry
    (root / "speakers.json").write_text(json.dumps(speakers))
    half = sentences // 2
    split = {
        "train": [f"{i:03d}" for i in range(1, half + 1)],
        "test": [f"{i:03d}" for i in range(half + 1, sentences + 1)],
    }
    (root / "corpus.json").write_text(json.dumps({"sentences": split}))
    return SpeechCorpus(root)


def test_voice_pairs_cover_every_ordered_pair_grouped_by_sex(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    voices = ["awb", "rms", "lj", "odd"]
    pairs = make_voice_pairs(
        corpus, voices, sentences=["004", "005", "006"], pairs_per_target=2, n_references=1, seed=0
    )
    made = {(p["source"].speaker, p["target"]) for p in pairs}
    assert made == {(a, b) for a in voices for b in voices if a != b}
    assert len(pairs) == 12 * 2
    for p in pairs:
        src, tgt = p["source"].speaker, p["target"]
        assert p["group"] == voice_pair_group(corpus, src, tgt)
        assert p["parallel"].speaker == tgt and p["parallel"].sentence_id == p["source"].sentence_id
        assert all(
            r.speaker == tgt and r.sentence_id != p["source"].sentence_id for r in p["references"]
        )
    group = {(p["source"].speaker, p["target"]): p["group"] for p in pairs}
    assert group[("awb", "rms")] == group[("rms", "awb")] == "unseen_same_sex"
    assert group[("awb", "lj")] == group[("lj", "rms")] == "unseen_cross_sex"
    assert group[("odd", "awb")] == group[("lj", "odd")] == "unseen_pairs"


def test_voice_pairs_keep_their_first_reference_with_more_references(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    kwargs = dict(sentences=["004", "005", "006"], pairs_per_target=3, seed=5)
    one = make_voice_pairs(corpus, ["awb", "lj"], n_references=1, **kwargs)
    two = make_voice_pairs(corpus, ["awb", "lj"], n_references=2, **kwargs)
    assert len(one) == len(two) == 6
    for a, b in zip(one, two, strict=True):
        assert (a["target"], a["source"], a["parallel"]) == (
            b["target"],
            b["source"],
            b["parallel"],
        )
        assert b["references"][0] == a["references"][0] and len(b["references"]) == 2
    with pytest.raises(SpeechDataError, match="n_references \\+ 1 = 4"):
        make_voice_pairs(corpus, ["awb", "lj"], n_references=3, **kwargs)


def test_voices_of_one_recorded_person_are_not_paired(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    info = json.loads((corpus.root / "speakers.json").read_text())
    info["rms"]["settings"] = {"engine": "flite", "voice": "awb", "f0_mean": 90.0}  # awb again
    (corpus.root / "speakers.json").write_text(json.dumps(info))
    corpus = SpeechCorpus(corpus.root)
    pairs = make_voice_pairs(
        corpus,
        ["awb", "rms", "lj"],
        sentences=["004", "005"],
        pairs_per_target=1,
        n_references=1,
        seed=0,
    )
    made = {(p["source"].speaker, p["target"]) for p in pairs}
    assert ("awb", "rms") not in made and ("rms", "awb") not in made and ("awb", "lj") in made


def test_sex_from_speakers_json_then_vctk_speaker_info(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path)
    assert corpus.sex("awb") == "male" and corpus.sex("lj") == "female"
    assert corpus.sex("odd") is None
    (corpus.root / "speaker-info.txt").write_text(
        "ID  AGE  GENDER  ACCENTS  REGION\nodd  23  F    English    Southern  England\n"
    )
    assert SpeechCorpus(corpus.root).sex("odd") == "female"


def test_vctk_speaker_info_both_versions_and_bad_files(tmp_path: Path) -> None:
    new = tmp_path / "new.txt"
    new.write_text(
        "ID  AGE  GENDER  ACCENTS  REGION COMMENTS\n"
        "p225  23  F    English    Southern  England\n"
        "p226  22  M    English    Surrey\n"
        "p280  25  F    France     (mic2 files unavailable)\n"
        "s5  22  X  odd\n\n"
    )
    assert read_vctk_speaker_info(new) == {"p225": "female", "p226": "male", "p280": "female"}
    old = tmp_path / "old.txt"
    old.write_text("ID  AGE  GENDER  ACCENTS  REGION\n225  23  F    English    Southern  England\n")
    assert read_vctk_speaker_info(old) == {"p225": "female"}  # 0.80's folders are p225
    assert read_vctk_speaker_info(tmp_path / "missing.txt") == {}
    bad = tmp_path / "bad.txt"
    bad.write_text("speaker sex\np225 F\n")
    with pytest.raises(SpeechDataError, match="bad.txt: expected VCTK's speaker-info.txt"):
        read_vctk_speaker_info(bad)
    bad.write_bytes(b"ID AGE GENDER\n\xff\xfe 23 F\n")
    with pytest.raises(SpeechDataError, match="not UTF-8"):
        read_vctk_speaker_info(bad)


def test_shipped_voices_state_their_sex_and_the_unseen_voices_span_both() -> None:
    foreign = [s for s in SPEAKERS.values() if s.source == "foreign"]
    assert len(foreign) >= 9 and all(s.language != "en" and s.engine == "festival" for s in foreign)
    assert all(s.sex is not None for s in SPEAKERS.values() if s.source != "espeak-ng")
    unseen = {s.name: s.sex for s in SPEAKERS.values() if s.role == "unseen"}
    assert {"flite_awb", "flite_rms"} <= set(unseen) and set(unseen.values()) == {"male", "female"}
    assert sum(s.role == "train" for s in foreign) == 9  # nine more real voices to learn from
    assert set(unseen) <= set(PRESETS["tiny"]["speakers"])  # the tests see both groups
    entry = SPEAKERS["fest_fi_lj"].entry()
    assert entry["sex"] == "female" and entry["language"] == "fi" and entry["role"] == "unseen"


def test_table_names_every_group_with_intervals() -> None:
    row = {
        "n": 4,
        "sim_target": 0.7,
        "sim_target_low": 0.6,
        "sim_target_high": 0.8,
        "sim_source": 0.6,
        "sim_source_low": 0.5,
        "sim_source_high": 0.7,
        "closer": 0.75,
        "closer_low": 0.25,
        "closer_high": 1.0,
        "wer": 0.2,
        "wer_se": 0.05,
        "mcd": 7.0,
    }
    summary = {group: {"converted": row} for group in GROUPS}
    table = format_table(summary)
    for name in GROUPS.values():
        assert f"| {name} | converted | 4 | 0.700 [0.600, 0.800] | 0.600 [0.500, 0.700] " in table
    assert "| 0.75 [0.25, 1.00] |" in table


# ---------------------------------------------------------------------------------------------
# GE2E
# ---------------------------------------------------------------------------------------------
def _ge2e_by_hand(a, b, speakers, w, bias) -> float:
    """The GE2E softmax loss written out item by item (arXiv 1710.10467, eq. 6 and 9)."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    n, total = a.shape[0], 0.0
    for embeddings, others in ((a, b), (b, a)):
        for i in range(n):
            logits = []
            for j in range(n):
                if j == i:
                    cos = float(embeddings[i] @ others[i])  # own centroid without e_i
                elif speakers[j] == speakers[i]:
                    continue
                else:
                    c = (a[j] + b[j]) / 2
                    cos = float(embeddings[i] @ c / c.norm())
                logits.append((j == i, w * cos + bias))
            own = next(v for is_own, v in logits if is_own)
            total += -own + math.log(sum(math.exp(v) for _, v in logits))
    return total / (2 * n)


def test_ge2e_matches_the_loss_written_out() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g)
    speakers = torch.tensor([0, 1, 2, 1, 3, 4])  # items 1 and 3: one speaker, not negatives
    loss = GE2ELoss(init_scale=7.0, init_bias=-2.0)(a, b, speakers)
    assert loss.item() == pytest.approx(_ge2e_by_hand(a, b, speakers.tolist(), 7.0, -2.0), rel=1e-5)


def test_ge2e_prefers_embeddings_grouped_by_speaker_and_trains_them() -> None:
    loss_fn = GE2ELoss()
    speakers = torch.arange(8)
    grouped = torch.eye(8)
    assert loss_fn(grouped, grouped, speakers) < loss_fn(grouped, grouped.roll(1, 0), speakers)
    torch.manual_seed(0)
    a = torch.randn(8, 4, requires_grad=True)
    b = torch.randn(8, 4, requires_grad=True)
    optimizer = torch.optim.Adam([a, b, *loss_fn.parameters()], lr=0.05)
    first = loss_fn(a, b, speakers).item()
    for _ in range(200):
        loss = loss_fn(a, b, speakers)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < first / 4
    cos = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T
    assert torch.equal(cos.argmax(1), speakers)  # each a_i nearest its own b_i


def test_ge2e_refuses_bad_shapes() -> None:
    loss_fn = GE2ELoss()
    with pytest.raises(ValueError, match="one shape"):
        loss_fn(torch.zeros(4, 3), torch.zeros(4, 2), torch.arange(4))
    with pytest.raises(ValueError, match=r"speakers must be \(4,\)"):
        loss_fn(torch.zeros(4, 3), torch.zeros(4, 3), torch.arange(3))
    with pytest.raises(ValueError, match="at least two items"):
        loss_fn(torch.zeros(1, 3), torch.zeros(1, 3), torch.arange(1))
    with pytest.raises(ValueError, match="init_scale must be positive"):
        GE2ELoss(init_scale=0.0)
