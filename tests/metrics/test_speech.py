"""Speech metrics on known inputs: DTW, cosine and the speaker probe on arrays, and ASR /
speaker similarity / MCD on utterances synthesised here with flite (skipped when flite is not
installed). The text-level WER is tested in test_wer.py."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae.audio.io import load_audio
from seqae.metrics.speech import (
    MCD_CONSTANT,
    SpeakerEmbedder,
    Transcriber,
    corpus_wer,
    cosine,
    dtw_path,
    mel_cepstral_distortion,
    mel_cepstrum,
    speaker_probe,
    speaker_similarity_report,
    word_error_rate,
)

SENTENCE_A = "The quick brown fox jumps over the lazy dog."
SENTENCE_B = "Please call Stella and ask her to bring these things with her from the store."


# --------------------------------------------------------------------------------------------
# DTW, cosine and the probe on synthetic arrays
# --------------------------------------------------------------------------------------------


def _dtw_reference(c: np.ndarray) -> float:
    n, m = c.shape
    acc = np.full((n + 1, m + 1), np.inf)
    acc[0, 0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i, j] = c[i - 1, j - 1] + min(acc[i - 1, j], acc[i, j - 1], acc[i - 1, j - 1])
    return float(acc[n, m])


@pytest.mark.parametrize("shape", [(1, 1), (1, 5), (6, 1), (7, 9), (20, 13)])
def test_dtw_path_matches_brute_force(shape: tuple[int, int]) -> None:
    c = np.random.default_rng(sum(shape)).random(shape)
    path, total = dtw_path(c)
    assert total == pytest.approx(_dtw_reference(c))
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (shape[0] - 1, shape[1] - 1)
    steps = np.diff(path, axis=0)
    assert ((steps == 0) | (steps == 1)).all() and (steps.sum(1) >= 1).all()
    assert c[path[:, 0], path[:, 1]].sum() == pytest.approx(total)


def test_dtw_path_aligns_a_stretched_sequence() -> None:
    x = np.random.default_rng(0).normal(size=(30, 3))
    y = np.repeat(x, 2, axis=0)  # every frame twice
    cost = np.linalg.norm(x[:, None] - y[None], axis=-1)
    path, total = dtw_path(cost)
    assert total == pytest.approx(0.0, abs=1e-9)
    assert (path[:, 0] == path[:, 1] // 2).all()
    with pytest.raises(ValueError, match="non-empty"):
        dtw_path(np.zeros((0, 3)))


def test_cosine() -> None:
    a, b = np.array([1.0, 0.0]), np.array([1.0, 1.0])
    assert cosine(a, a) == pytest.approx(1.0)
    assert cosine(a, b) == pytest.approx(2**-0.5)
    rows = cosine(np.stack([a, b]), np.stack([b, b]))
    assert np.allclose(rows, [2**-0.5, 1.0])
    with pytest.raises(ValueError, match="all zeros"):
        cosine(a, np.zeros(2))
    with pytest.raises(ValueError, match="do not match"):
        cosine(a, np.ones(3))


def test_speaker_similarity_report_on_known_embeddings() -> None:
    tgt = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    src = np.array([[0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    conv = np.array([[0.9, 0.1], [0.2, 0.8], [0.1, 0.9]])
    r = speaker_similarity_report(conv, tgt, src)
    assert r["n"] == 3
    assert r["closer_to_target"] == pytest.approx(2 / 3)
    cos_t = [0.9 / np.hypot(0.9, 0.1), 0.2 / np.hypot(0.2, 0.8), 0.9 / np.hypot(0.1, 0.9)]
    assert r["similarity_target"] == pytest.approx(np.mean(cos_t))
    with pytest.raises(ValueError, match="same shape"):
        speaker_similarity_report(conv, tgt[:2], src)


def _probe_data(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    n_spk, n_sent, dim = 8, 30, 16
    speakers = np.repeat(np.arange(n_spk), n_sent)
    sentences = np.tile(np.arange(n_sent), n_spk)
    centroids = rng.normal(size=(n_spk, dim))
    separable = centroids[speakers] + 0.3 * rng.normal(size=(len(speakers), dim))
    noise = rng.normal(size=(len(speakers), dim))
    return separable, noise, speakers, sentences


def test_speaker_probe_separable_and_random() -> None:
    separable, noise, speakers, sentences = _probe_data(0)
    good = speaker_probe(separable, [f"spk{s}" for s in speakers], list(sentences))
    assert good["accuracy"] >= 0.95
    assert good["n_classes"] == 8
    assert good["chance"] == pytest.approx(1 / 8)  # group split: every speaker says each sentence
    assert good["n_test"] % 8 == 0 and good["n_train"] + good["n_test"] == len(speakers)
    bad = speaker_probe(noise, speakers, sentences)
    assert bad["accuracy"] <= bad["chance"] + 0.15
    ungrouped = speaker_probe(torch.from_numpy(separable), speakers, seed=1)
    assert ungrouped["accuracy"] >= 0.95


def test_speaker_probe_errors() -> None:
    separable, _, speakers, sentences = _probe_data(0)
    with pytest.raises(ValueError, match="speaker labels"):
        speaker_probe(separable, speakers[:-1])
    with pytest.raises(ValueError, match="at least 2 speakers"):
        speaker_probe(separable, np.zeros(len(speakers)))
    with pytest.raises(ValueError, match="shape \\(N, D\\)"):
        speaker_probe(separable[:, 0], speakers)
    with pytest.raises(ValueError, match="2 distinct groups"):
        speaker_probe(separable, speakers, np.zeros(len(speakers)))


# --------------------------------------------------------------------------------------------
# Real speech synthesised with flite
# --------------------------------------------------------------------------------------------


def _flite(voice: str, text: str, out: Path, *, stretch: float | None = None) -> torch.Tensor:
    cmd = ["flite", "-voice", voice, "-t", text, "-o", str(out)]
    if stretch is not None:
        cmd[1:1] = ["--setf", f"duration_stretch={stretch}"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    return load_audio(out)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    if shutil.which("flite") is None:
        pytest.skip("flite is not installed (apt-get install -y flite); speech tests need it")
    d = tmp_path_factory.mktemp("flite")
    return {
        "slt_a": _flite("slt", SENTENCE_A, d / "slt_a.wav"),
        "slt_b": _flite("slt", SENTENCE_B, d / "slt_b.wav"),
        "slt_a_slow": _flite("slt", SENTENCE_A, d / "slt_a_slow.wav", stretch=1.3),
        "awb_a": _flite("awb", SENTENCE_A, d / "awb_a.wav"),
        "rms_a": _flite("rms", SENTENCE_A, d / "rms_a.wav"),
    }


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.fixture(scope="module")
def embedder() -> SpeakerEmbedder:
    return SpeakerEmbedder()


def test_transcriber_on_clean_speech(
    transcriber: Transcriber, speech: dict[str, torch.Tensor]
) -> None:
    wav = speech["slt_a"]
    first = transcriber.transcribe(wav)
    assert first == transcriber.transcribe(wav.numpy())  # decoder reuse is stateless
    assert word_error_rate(first, transcriber.transcribe(wav)) == 0.0
    assert word_error_rate(SENTENCE_A, first) < 0.3
    hyps = transcriber.transcribe_many([speech["slt_a"], speech["slt_b"], speech["awb_a"]])
    assert corpus_wer([SENTENCE_A, SENTENCE_B, SENTENCE_A], hyps) < 0.3
    # int16 input at another rate is converted, not misread.
    import torchaudio.functional as AF

    pcm = (AF.resample(wav, 16000, 22050).numpy() * 32767).astype(np.int16)
    assert word_error_rate(SENTENCE_A, transcriber.transcribe(pcm, sample_rate=22050)) < 0.3
    with pytest.raises(ValueError, match=r"shape \(T,\)"):
        transcriber.transcribe(torch.zeros(2, 16000))


def test_transcripts_do_not_depend_on_what_was_decoded_before(
    transcriber: Transcriber, speech: dict[str, torch.Tensor]
) -> None:
    """pocketsphinx carries its cepstral mean across utterances; on noisy speech that changed
    the words it heard after, say, a burst of noise. Every transcript must equal a fresh
    decoder's."""
    g = torch.Generator().manual_seed(0)
    noise = 0.3 * torch.randn(32000, generator=g)
    for name in ("rms_a", "awb_a"):
        noisy = speech[name] + 0.03 * torch.randn(speech[name].shape, generator=g)
        fresh = Transcriber().transcribe(noisy)
        for before in (noise, speech["slt_b"], speech["slt_a_slow"]):
            transcriber.transcribe(before)
            assert transcriber.transcribe(noisy) == fresh, name


def test_speaker_embedder_identical_and_level(
    embedder: SpeakerEmbedder, speech: dict[str, torch.Tensor]
) -> None:
    wav = speech["slt_a"]
    e = embedder.embed(wav)
    assert e.shape == (256,) and e.dtype == np.float32
    assert np.linalg.norm(e) == pytest.approx(1.0, abs=1e-5)
    assert cosine(e, embedder.embed(wav.clone())) > 0.99
    assert embedder.cosine(e, embedder.embed(0.05 * wav)) > 0.99  # loudness does not matter
    many = embedder.embed_many([wav, speech["awb_a"]])
    assert many.shape == (2, 256)
    assert np.allclose(many[0], e, atol=1e-5)
    with pytest.raises(ValueError, match="all zeros"):
        embedder.embed(np.zeros(16000, dtype=np.float32))
    with pytest.raises(TypeError, match="sequence of waveforms"):
        embedder.embed_many(wav)


def test_speaker_embedder_separates_voices(
    embedder: SpeakerEmbedder, speech: dict[str, torch.Tensor]
) -> None:
    e = dict(zip(speech, embedder.embed_many(list(speech.values())), strict=True))
    same_voice = cosine(e["slt_a"], e["slt_b"])  # same voice, other sentence
    other_voices = [cosine(e["slt_a"], e["awb_a"]), cosine(e["slt_a"], e["rms_a"])]
    assert same_voice > 0.8
    assert max(other_voices) < same_voice - 0.15
    # A conversion of awb's sentence "into slt" that is really slt: closer to the target.
    report = speaker_similarity_report(
        np.stack([e["slt_b"], e["awb_a"]]),
        np.stack([e["slt_a"], e["slt_a"]]),
        np.stack([e["awb_a"], e["rms_a"]]),
    )
    assert report["closer_to_target"] == pytest.approx(0.5)
    assert report["similarity_target"] == pytest.approx((same_voice + other_voices[0]) / 2)


def test_speaker_embedder_matches_resemblyzer(
    speech: dict[str, torch.Tensor],
) -> None:
    """Our weights-only loading and batching reproduce resemblyzer's own pipeline."""
    from resemblyzer import VoiceEncoder, preprocess_wav

    wav = speech["awb_a"].numpy()
    ours = SpeakerEmbedder(level_dbfs=None).embed(wav)
    theirs = VoiceEncoder("cpu", verbose=False).embed_utterance(
        preprocess_wav(wav, source_sr=16000)
    )
    assert np.allclose(ours, theirs, atol=1e-5)


def test_mcd_known_inputs(speech: dict[str, torch.Tensor]) -> None:
    a = speech["slt_a"]
    assert mel_cepstral_distortion(a, a.clone()) == pytest.approx(0.0, abs=1e-6)
    stretched = mel_cepstral_distortion(a, speech["slt_a_slow"])
    other = mel_cepstral_distortion(a, speech["awb_a"])
    other_rev = mel_cepstral_distortion(speech["awb_a"], a)
    assert abs(other - other_rev) <= 0.05 * other  # symmetric up to DTW tie-breaking
    assert stretched < 0.5 * other  # DTW undoes the re-timing; a new voice stays far
    assert stretched < 0.5 * mel_cepstral_distortion(a, speech["slt_a_slow"], dtw=False)
    assert other > stretched + 2.0
    assert mel_cepstral_distortion(a, speech["rms_a"]) > 2 * stretched


def test_mel_cepstrum_shape_and_silence(speech: dict[str, torch.Tensor]) -> None:
    a = speech["slt_a"]
    padded = torch.cat([torch.zeros(8000), a, torch.zeros(8000)])
    full = mel_cepstrum(padded, silence_db=None)
    trimmed = mel_cepstrum(padded)
    assert full.shape[1] == 25 and trimmed.shape[1] == 25
    assert len(full) == len(padded) // 80 + 1  # 5 ms hop, centred frames
    assert len(trimmed) < len(full) - 150  # the 2 x 0.5 s of zeros are gone
    assert mel_cepstral_distortion(a, padded) < 0.5  # leading/trailing silence is ignored
    assert abs(MCD_CONSTANT - 10 / np.log(10) * np.sqrt(2)) < 1e-12
    with pytest.raises(ValueError, match="n_mcep"):
        mel_cepstrum(a, n_mcep=0)
    with pytest.raises(ValueError, match="empty"):
        mel_cepstrum(np.zeros(0, dtype=np.float32))


def test_mcd_speed(speech: dict[str, torch.Tensor]) -> None:
    """Five seconds against five seconds (1000 x 1000 DTW) stays well under a second."""
    a = torch.cat([speech["slt_b"], speech["slt_a"]])[: 5 * 16000]
    b = torch.cat([speech["awb_a"], speech["slt_b"]])[: 5 * 16000]
    start = time.perf_counter()
    mel_cepstral_distortion(a, b)
    assert time.perf_counter() - start < 2.0
