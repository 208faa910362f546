"""Audio file reading/writing and the bad-input cases of seqae.audio.io."""

from __future__ import annotations

import math

import numpy as np
import pytest
import soundfile as sf
import torch

from seqae.audio.io import PEAK_TARGET, AudioFileError, load_audio, prepare_waveform, save_audio


def tone(seconds: float, rate: int, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


def test_round_trip_keeps_samples(tmp_path):
    x = tone(1.0, 16000)
    path = save_audio(tmp_path / "a" / "x.wav", torch.from_numpy(x), 16000)
    y = load_audio(path)
    assert y.dtype == torch.float32 and y.shape == (16000,)
    assert torch.allclose(y, torch.from_numpy(x), atol=1 / 32768 * 2)


def test_resamples_and_downmixes_stereo(tmp_path):
    left, right = tone(1.0, 44100, 440.0), tone(1.0, 44100, 440.0)
    sf.write(tmp_path / "s.wav", np.stack([left, right], 1), 44100)
    y = load_audio(tmp_path / "s.wav", sample_rate=16000)
    assert abs(y.numel() - 16000) <= 1
    # the 440 Hz tone survives resampling: its spectrum peaks at 440 Hz
    spec = np.abs(np.fft.rfft(y.numpy()))
    assert abs(np.argmax(spec) * 16000 / y.numel() - 440) < 2


def test_flac_is_read(tmp_path):
    sf.write(tmp_path / "x.flac", tone(0.8, 22050), 22050)
    assert load_audio(tmp_path / "x.flac").numel() == pytest.approx(0.8 * 16000, abs=2)


def test_loud_and_clipped_input_is_normalised_not_rejected(tmp_path):
    x = np.clip(tone(1.0, 16000, amp=3.0), -1, 1)  # hard-clipped
    sf.write(tmp_path / "loud.wav", x, 16000, subtype="FLOAT")
    y = load_audio(tmp_path / "loud.wav")
    assert y.abs().max().item() == pytest.approx(PEAK_TARGET, rel=1e-4)
    quiet = load_audio(save_audio(tmp_path / "q.wav", tone(1.0, 16000, amp=0.1), 16000))
    assert quiet.abs().max().item() == pytest.approx(0.1, rel=1e-2)  # left alone


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_text("this is not audio at all" * 20), "not a readable audio"),
        (lambda p: sf.write(p, tone(0.2, 16000), 16000), "too short"),
        (lambda p: sf.write(p, np.zeros(16000, np.float32), 16000), "silence only"),
    ],
    ids=["empty", "not-audio", "short", "silent"],
)
def test_bad_files_name_the_file_and_problem(tmp_path, make, message):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioFileError, match=message) as err:
        load_audio(path)
    assert str(path) in str(err.value)


def test_truncated_wav_is_refused(tmp_path):
    path = save_audio(tmp_path / "t.wav", tone(1.0, 16000), 16000)
    data = path.read_bytes()
    path.write_bytes(data[:30])  # header cut
    with pytest.raises(AudioFileError, match=str(path)):
        load_audio(path)


def test_missing_file():
    with pytest.raises(AudioFileError, match="no such file"):
        load_audio("/nonexistent/x.wav")


def test_nan_waveform_refused():
    x = torch.from_numpy(tone(1.0, 16000))
    x[100] = float("nan")
    with pytest.raises(AudioFileError, match="NaN"):
        prepare_waveform(x, 16000, target_rate=16000)


def test_save_is_atomic_and_never_clips(tmp_path):
    path = save_audio(tmp_path / "c.wav", np.full(16000, 2.0, np.float32), 16000)
    y, rate = sf.read(path)
    assert rate == 16000 and y.max() <= 0.99 + 1 / 32768  # scaled to -0.1 dBFS, not clipped
    assert not list(tmp_path.glob("*.tmp*"))
