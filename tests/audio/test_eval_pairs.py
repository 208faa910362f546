"""How vc evaluation picks its conversion pairs: held-out sentences, references, sources."""

from __future__ import annotations

import json
import math

import numpy as np
import soundfile as sf

from seqae.audio.corpus import recorded_speaker
from seqae.audio.dataset import SpeechCorpus
from seqae.audio.evaluate import make_pairs, related_voices

VOICES = {
    "kal16": {"source": "flite", "settings": {"engine": "flite", "voice": "kal16"}},
    "kal16_low": {
        "source": "flite",
        "settings": {"engine": "flite", "voice": "kal16", "f0_mean": 85.0},
    },
    "pert_kal16": {
        "source": "perturbed",
        "settings": {"engine": "flite", "voice": "kal16", "base": "kal16", "alpha": 0.9},
    },
    "slt": {"source": "flite", "settings": {"engine": "flite", "voice": "slt"}},
    "fest_kal": {"source": "festival", "settings": {"engine": "festival", "voice": "kal_diphone"}},
    "espeak_m1": {"source": "espeak-ng", "settings": {"engine": "espeak-ng", "voice": "en-us+m1"}},
    "awb": {"source": "flite", "role": "unseen", "settings": {"engine": "flite", "voice": "awb"}},
}


def _corpus(tmp_path) -> SpeechCorpus:
    root = tmp_path / "corpus"
    rate = 16000
    t = np.arange(rate) / rate
    for k, spk in enumerate(VOICES):
        for i in range(1, 7):
            path = root / "wav" / spk / f"{spk}_{i:03d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(
                path, (0.3 * np.sin(2 * math.pi * (100 + 10 * k) * t)).astype(np.float32), rate
            )
    speakers = {s: {"role": "train", **v} for s, v in VOICES.items()}
    (root / "speakers.json").write_text(json.dumps(speakers))
    split = {"train": ["001", "002", "003"], "test": ["004", "005", "006"]}
    (root / "corpus.json").write_text(json.dumps({"sentences": split}))
    return SpeechCorpus(root)


def test_related_voices_are_the_voices_made_from_the_targets_recordings(tmp_path) -> None:
    corpus = _corpus(tmp_path)
    # kal16's own variants, and festival's kal_diphone: the same CMU KAL diphone recordings
    kal = {"kal16", "kal16_low", "pert_kal16", "fest_kal"}
    assert related_voices(corpus, "kal16") == kal
    assert related_voices(corpus, "fest_kal") == kal
    assert related_voices(corpus, "slt") == {"slt"}
    assert related_voices(corpus, "awb") == {"awb"}
    assert related_voices(corpus, "espeak_m1") == {"espeak_m1"}
    assert related_voices(corpus, "not_a_speaker") == {"not_a_speaker"}
    assert corpus.source("pert_kal16") == "perturbed" and corpus.source("espeak_m1") == "espeak-ng"


def test_pairs_never_convert_from_an_excluded_voice(tmp_path) -> None:
    corpus = _corpus(tmp_path)
    sources = [s for s in corpus.speakers_with_role("train") if s != "kal16"]
    kwargs = dict(
        sources=sources, sentences=["004", "005", "006"], n_references=1, pairs_per_target=60
    )
    everything = make_pairs(corpus, ["kal16"], seed=0, **kwargs)
    assert {"kal16_low", "pert_kal16"} <= {p["source"].speaker for p in everything}
    excluded = make_pairs(
        corpus, ["kal16"], seed=0, exclude={"kal16": related_voices(corpus, "kal16")}, **kwargs
    )
    assert {p["source"].speaker for p in excluded} == {"slt", "espeak_m1"}
    for p in excluded:
        # the parallel utterance is the target saying the source's sentence; the references are
        # the target saying other held-out sentences
        assert p["parallel"].speaker == "kal16"
        assert p["parallel"].sentence_id == p["source"].sentence_id
        assert all(r.speaker == "kal16" for r in p["references"])
        assert p["source"].sentence_id not in {r.sentence_id for r in p["references"]}


def test_more_references_keep_the_same_pairs(tmp_path) -> None:
    """Evaluations with 1 and 2 references convert the same sources, so they can be paired."""
    corpus = _corpus(tmp_path)
    kwargs = dict(
        sources=[s for s in corpus.speakers_with_role("train") if s not in ("kal16", "slt")],
        sentences=["004", "005", "006"],
        pairs_per_target=40,
        seed=3,
    )
    one = make_pairs(corpus, ["kal16", "slt"], n_references=1, **kwargs)
    two = make_pairs(corpus, ["kal16", "slt"], n_references=2, **kwargs)
    assert len(one) == len(two) == 80
    assert len({p["source"].speaker for p in one}) > 1  # the source draw has a choice to make
    for a, b in zip(one, two, strict=True):
        assert (a["target"], a["source"], a["parallel"]) == (
            b["target"],
            b["source"],
            b["parallel"],
        )
        assert len(a["references"]) == 1 and len(b["references"]) == 2
        assert b["references"][0] == a["references"][0]
        assert len({r.sentence_id for r in b["references"]}) == 2
        assert b["source"].sentence_id not in {r.sentence_id for r in b["references"]}
    again = make_pairs(corpus, ["kal16", "slt"], n_references=2, **kwargs)
    assert [p["references"] for p in again] == [p["references"] for p in two]


def test_recorded_speaker_joins_one_persons_voices_across_engines() -> None:
    assert recorded_speaker("flite", "kal16") == recorded_speaker("festival", "kal_diphone")
    assert recorded_speaker("flite", "kal") == recorded_speaker("flite", "kal16")
    assert recorded_speaker("flite", "slt") == recorded_speaker("festival", "cmu_us_slt_arctic_hts")
    people = {recorded_speaker("flite", v) for v in ("kal16", "slt", "awb", "rms")}
    assert len(people) == 4 and recorded_speaker("festival", "ked_diphone") not in people
    # a voice not in the table is its own person, keyed by engine and voice
    assert recorded_speaker("espeak-ng", "en-us+m1") == "espeak-ng:en-us+m1"
    assert recorded_speaker("espeak-ng", "en-us+m1") != recorded_speaker("espeak-ng", "en+m3")


def test_every_shipped_flite_and_festival_voice_names_its_recorded_speaker() -> None:
    """A voice added to the corpus without an entry would silently count as a new person."""
    from seqae.audio.corpus import RECORDED_SPEAKERS, SPEAKERS

    voices = {(s.engine, s.voice) for s in SPEAKERS.values() if s.engine != "espeak-ng"}
    assert voices and voices <= set(RECORDED_SPEAKERS)
