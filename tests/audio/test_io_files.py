"""seqae.audio.io on damaged inputs and on what it writes: truncated files are refused with both
lengths, the extension chooses the output format, and nothing written ever clips."""

from __future__ import annotations

import math
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from seqae.audio.io import AudioFileError, load_audio, save_audio


def tone(seconds: float, rate: int, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * math.pi * freq * t)).astype(np.float32)


# ---------------------------------------------------------------------------------------------
# truncated inputs
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ext", "fmt"), [(".wav", "WAV"), (".aiff", "AIFF"), (".w64", "W64"), (".rf64", "RF64")]
)
def test_truncated_file_is_refused_with_both_lengths(tmp_path: Path, ext: str, fmt: str) -> None:
    """A 3.67 s file cut to about a third (``head -c``): libsndfile reads what is left without a
    word; the header's data size says how much there should be."""
    full = tmp_path / f"full{ext}"
    sf.write(full, tone(3.67, 22050), 22050, format=fmt, subtype="PCM_16")
    assert load_audio(full).numel() == pytest.approx(3.67 * 16000, abs=2)  # complete: read
    data = full.read_bytes()
    cut = tmp_path / f"cut{ext}"
    header = len(data) - int(3.67 * 22050) * 2
    cut.write_bytes(data[: header + int(1.22 * 22050) * 2])
    with pytest.raises(AudioFileError) as err:
        load_audio(cut)
    message = str(err.value)
    assert str(cut) in message and "truncated" in message
    assert "3.67 s" in message and "1.22 s" in message  # declared, present


def test_the_example_from_the_report(tmp_path: Path) -> None:
    """``head -c 53945 src.wav > t.wav`` of espeak-ng's 22.05 kHz output: 1.22 s of 3.67 s."""
    src = tmp_path / "src.wav"
    sf.write(src, tone(3.67, 22050), 22050, subtype="PCM_16")
    cut = tmp_path / "t.wav"
    cut.write_bytes(src.read_bytes()[:53945])
    with pytest.raises(AudioFileError, match=r"declares 3\.67 s .* only 1\.22 s"):
        load_audio(cut)


def test_truncated_flac_is_refused_with_both_lengths(tmp_path: Path) -> None:
    full = tmp_path / "full.flac"
    sf.write(full, tone(3.67, 16000), 16000, subtype="PCM_16")
    cut = tmp_path / "cut.flac"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(AudioFileError) as err:
        load_audio(cut)
    message = str(err.value)
    assert str(cut) in message and "truncated" in message and "3.67 s" in message


def test_streamed_wav_of_unknown_length_is_read(tmp_path: Path) -> None:
    """A WAV written to a pipe has 0xFFFFFFFF for its sizes: unknown, not a length to hold the
    file to."""
    path = tmp_path / "streamed.wav"
    sf.write(path, tone(1.0, 16000), 16000, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[4:8] = data[at + 4 : at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    assert load_audio(path).numel() == 16000


# ---------------------------------------------------------------------------------------------
# output formats
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("x.wav", "WAV"),
        ("x.WAV", "WAV"),
        ("x.flac", "FLAC"),
        ("x.ogg", "OGG"),
        ("x.mp3", "MP3"),
        ("x.aiff", "AIFF"),
    ],
)
def test_the_extension_chooses_the_format(tmp_path: Path, name: str, fmt: str) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile does not write {fmt}")
    path = save_audio(tmp_path / name, tone(1.0, 16000), 16000)
    info = sf.info(path)
    assert (info.format, info.samplerate, info.channels) == (fmt, 16000, 1)
    assert abs(info.frames - 16000) < 256
    if fmt == "WAV":
        assert info.subtype == "PCM_16"


@pytest.mark.parametrize("name", ["x.xyz", "x", "x.txt"])
def test_an_extension_no_format_is_written_in_is_refused(tmp_path: Path, name: str) -> None:
    from seqae.audio.io import AudioOutputError, writable_formats

    with pytest.raises(AudioOutputError) as err:
        save_audio(tmp_path / name, tone(1.0, 16000), 16000)
    message = str(err.value)
    assert str(tmp_path / name) in message
    assert all(ext in message for ext in writable_formats())  # the list of what it can write
    assert {".wav", ".flac"} <= set(writable_formats())
    assert not (tmp_path / name).exists()


def test_a_folder_is_refused(tmp_path: Path) -> None:
    from seqae.audio.io import AudioOutputError

    folder = tmp_path / "out.wav"
    folder.mkdir()
    with pytest.raises(AudioOutputError, match="is a folder"):
        save_audio(folder, tone(1.0, 16000), 16000)


# ---------------------------------------------------------------------------------------------
# never clipping
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", [".wav", ".flac", ".mp3", ".ogg"])
def test_a_loud_waveform_is_scaled_not_clipped(tmp_path: Path, ext: str) -> None:
    """A steady tone at twice full scale: the old writer clipped half its samples."""
    from seqae.audio.io import LOSSY_OUTPUT_PEAK, OUTPUT_PEAK, write_audio

    x = tone(1.0, 16000, amp=2.0)
    written = write_audio(tmp_path / f"loud{ext}", torch.from_numpy(x), 16000)
    y, _ = sf.read(written.path, dtype="float32")
    assert np.abs(y).max() <= OUTPUT_PEAK + 1 / 32768  # -0.1 dBFS: nothing at full scale
    assert written.scaled and written.peak == pytest.approx(2.0, rel=1e-4)
    if written.format.lossy:
        assert written.gain <= LOSSY_OUTPUT_PEAK / 2.0 + 1e-6
        assert np.abs(y).max() > 0.8
    else:
        # one gain for the whole file: the waveform keeps its shape
        assert written.gain == pytest.approx(OUTPUT_PEAK / 2.0)
        np.testing.assert_allclose(y, x * written.gain, atol=1 / 16384)
    assert "scaled down by" in written.describe_scaling()


def test_a_quiet_waveform_is_left_alone(tmp_path: Path) -> None:
    from seqae.audio.io import write_audio

    x = tone(1.0, 16000, amp=0.5)
    written = write_audio(tmp_path / "q.wav", x, 16000)
    assert not written.scaled and written.gain == 1.0
    y, _ = sf.read(written.path, dtype="float32")
    np.testing.assert_allclose(y, x, atol=1 / 16384)
