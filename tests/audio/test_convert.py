"""VoiceConverter, chunked conversion with cross-fades, and the ``seqae convert`` command."""

from __future__ import annotations

import argparse
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from torch import Tensor, nn

from seqae.audio.convert import (
    ManifestError,
    ModelDirectoryError,
    VoiceConverter,
    add_parser,
    chunk_spans,
    crossfade_weights,
    read_manifest,
)
from seqae.audio.features import FeatureConfig, FeatureMismatchError, FeatureNormalizer, log_mel
from seqae.audio.io import AudioFileError
from seqae.audio.models import AdaINVC
from seqae.audio.vocoder import GriffinLimVocoder
from seqae.core.base import BottleneckOutput

RATE = 16000
HOP = FeatureConfig().hop_length


# ---------------------------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------------------------
def harmonic(
    seconds: float, *, f0: float = 120.0, am: float = 4.0, rate: int = RATE, seed: int = 0
) -> Tensor:
    """A stationary voiced-speech-like signal: vibrato f0, 11 harmonics, syllable-rate envelope."""
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    phase = 2 * torch.pi * f0 * t + 6 * torch.sin(2 * torch.pi * am * t) / am
    w = sum(torch.sin(k * phase) / k for k in range(1, 12))
    w = w * (0.6 + 0.4 * torch.sin(2 * torch.pi * am * t)) + 0.05 * torch.randn(
        t.shape, generator=g
    )
    return (0.3 * w / w.abs().max()).float()


def tiny_adain() -> AdaINVC:
    torch.manual_seed(0)
    model = AdaINVC(
        channels=16,
        content_dim=8,
        speaker_dim=8,
        n_blocks=2,
        strides=(1, 2),
        speaker_channels=16,
        speaker_blocks=1,
        speaker_strides=None,
    )
    model.normalizer.fit([log_mel(harmonic(3.0)), log_mel(harmonic(2.0, f0=210.0, am=3.0))])
    return model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_adain().save_pretrained(tmp_path_factory.mktemp("vc") / "model")


@pytest.fixture(scope="module")
def wavs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """src.wav (2.3 s, 16 kHz), ref.wav and ref2.wav (another voice), all mono 16 kHz."""
    d = tmp_path_factory.mktemp("wavs")
    files = {
        "src": (harmonic(2.3), "src.wav"),
        "ref": (harmonic(1.5, f0=210.0, am=3.0, seed=1), "ref.wav"),
        "ref2": (harmonic(1.2, f0=190.0, am=3.5, seed=2), "ref2.wav"),
    }
    out = {}
    for key, (wav, name) in files.items():
        sf.write(d / name, wav.numpy(), RATE, subtype="PCM_16")
        out[key] = d / name
    return out


class FrameLocalVC(nn.Module):
    """A VC model whose conversion is purely frame-local (1x1 convs, no time statistics): any
    chunking must give exactly the single-pass result."""

    model_type = "frame_local"
    total_stride = 1

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.feature_config = FeatureConfig()
        self.normalizer = FeatureNormalizer(80)
        self.enc = nn.Conv1d(80, 12, 1)
        self.spk = nn.Linear(80, 6)
        self.dec = nn.Conv1d(12, 80, 1)
        self.style = nn.Linear(6, 80)
        self.speaker_calls = 0

    def encode_content(self, x: Tensor, lengths: Tensor | None = None) -> BottleneckOutput:
        return BottleneckOutput(torch.tanh(self.enc(x)), x.new_zeros(()), {})

    def encode_speaker(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        self.speaker_calls += 1
        return self.spk(x.mean(-1))

    def decode(self, z: Tensor, speaker: Tensor, *, length: int | None = None) -> Tensor:
        return self.dec(z) + self.style(speaker)[..., None]


class MeanRemovingVC(FrameLocalVC):
    """Content = input minus its own time mean (a per-chunk statistic, like instance norm)."""

    def encode_content(self, x: Tensor, lengths: Tensor | None = None) -> BottleneckOutput:
        return BottleneckOutput(x - x.mean(-1, keepdim=True), x.new_zeros(()), {})

    def decode(self, z: Tensor, speaker: Tensor, *, length: int | None = None) -> Tensor:
        return z + self.style(speaker)[..., None]

    @torch.no_grad()
    def convert(self, source: Tensor, references: list[Tensor]) -> Tensor:
        speaker = torch.cat([self.encode_speaker(r[None]) for r in references]).mean(0)
        return self.decode(self.encode_content(source[None]).z, speaker[None])[0]


def run_cli(argv: list[str]) -> int:
    """``seqae convert ...`` through seqae's own CLI when the plugin is registered, else through
    a parser built with this module's ``add_parser``."""
    from seqae import registry

    if "convert" in registry.names("cli"):
        from seqae.cli import main

        return main(["convert", *argv])
    parser = argparse.ArgumentParser(prog="seqae")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", *argv])
    return args.func(args)


# ---------------------------------------------------------------------------------------------
# chunk plan and cross-fade weights
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("chunk", "overlap", "align"), [(250, 62, 1), (250, 62, 2), (500, 62, 8), (9, 3, 1)]
)
def test_chunk_spans_cover_overlap_and_align(chunk: int, overlap: int, align: int) -> None:
    for n in [1, chunk - 1, chunk, chunk + 1, 2 * chunk, 977, 5003]:
        spans = chunk_spans(n, chunk, overlap, align=align)
        assert spans[0][0] == 0 and spans[-1][1] == n
        lengths = [e - s for s, e in spans]
        assert max(lengths) <= chunk
        assert len(set(lengths[:-1])) <= 1 and lengths[-1] - lengths[0] < align
        assert all(s % align == 0 for s, _ in spans)
        for i in range(1, len(spans)):
            assert spans[i - 1][1] - spans[i][0] >= overlap  # neighbours overlap enough
            if i >= 2:
                assert spans[i][0] >= spans[i - 2][1]  # never three chunks on one frame
        total = torch.zeros(n)
        for (s, e), w in zip(spans, crossfade_weights(spans), strict=True):
            assert (w > 0).all() and (w <= 1).all()
            total[s:e] += w
        torch.testing.assert_close(total, torch.ones(n))  # a partition of unity
    with pytest.raises(ValueError, match="3 \\* "):
        chunk_spans(100, 10, 5)


# ---------------------------------------------------------------------------------------------
# conversion in memory
# ---------------------------------------------------------------------------------------------
def test_frame_local_model_chunked_equals_single_pass() -> None:
    model = FrameLocalVC()
    src, ref = harmonic(20.0), harmonic(2.0, f0=210.0, am=3.0, seed=1)
    chunked = VoiceConverter(model, device="cpu", chunk_seconds=4.0, overlap_seconds=1.0)
    single = VoiceConverter(model, device="cpu", chunk_seconds=60.0, overlap_seconds=1.0)
    mel, refs = chunked.features(src), chunked.reference_features([ref])
    assert mel.shape == (80, 20 * RATE // HOP + 1)
    model.speaker_calls = 0
    out = chunked.convert_mel(mel, refs)
    assert model.speaker_calls == 1  # speaker embedding computed once, not per chunk
    assert len(chunk_spans(mel.shape[1], chunked.chunk_frames, chunked.overlap_frames)) >= 5
    torch.testing.assert_close(out, single.convert_mel(mel, refs), atol=1e-5, rtol=1e-5)


def test_single_pass_matches_model_convert() -> None:
    model = tiny_adain()
    vc = VoiceConverter(model, device="cpu", match_stats="none")
    mel = vc.features(harmonic(3.0))
    refs = vc.reference_features([harmonic(1.5, f0=210.0, seed=1), harmonic(1.2, f0=190.0, seed=2)])
    assert len(refs) == 2
    torch.testing.assert_close(vc.convert_mel(mel, refs), model.convert(mel, refs))


def test_adain_chunked_is_crossfade_of_chunks_and_close_to_single_pass() -> None:
    model = tiny_adain()
    kw = {"device": "cpu", "overlap_seconds": 1.0, "match_stats": "none"}
    vc = VoiceConverter(model, chunk_seconds=4.0, **kw)
    single = VoiceConverter(model, chunk_seconds=60.0, **kw)
    mel = vc.features(harmonic(20.0))
    refs = vc.reference_features([harmonic(2.0, f0=210.0, am=3.0, seed=1)])
    out = vc.convert_mel(mel, refs)
    spans = chunk_spans(mel.shape[1], vc.chunk_frames, vc.overlap_frames, align=model.total_stride)
    assert len(spans) >= 5 and all(s % 2 == 0 for s, _ in spans)

    # Each frame is exactly the cross-fade of the standalone conversions of the chunks covering
    # it (model.convert on the chunk alone: an independent path), i.e. a convex combination.
    parts = [model.convert(mel[:, s:e], refs) for s, e in spans]
    expected = torch.zeros_like(mel)
    lo, hi = torch.full_like(mel, float("inf")), torch.full_like(mel, -float("inf"))
    for (s, e), y, w in zip(spans, parts, crossfade_weights(spans), strict=True):
        expected[:, s:e] += y * w
        lo[:, s:e] = torch.minimum(lo[:, s:e], y)
        hi[:, s:e] = torch.maximum(hi[:, s:e], y)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    assert (out >= lo - 1e-5).all() and (out <= hi + 1e-5).all()
    overlap = torch.zeros(mel.shape[1], dtype=torch.bool)
    for i in range(1, len(spans)):
        overlap[spans[i][0] : spans[i - 1][1]] = True
    # The neighbours disagree over their overlap, so the cross-fade is doing real work.
    s1, e0 = spans[1][0], spans[0][1]
    disagreement = (parts[0][:, s1:e0] - parts[1][:, : e0 - s1]).abs().mean()
    assert disagreement > 0.05 * parts[0].std()

    # Close to the single pass: the content encoder's instance normalisation sees each chunk's
    # statistics instead of the whole input's, which for this stationary input differ little.
    ref_out = single.convert_mel(mel, refs)
    rel = (out - ref_out).abs().mean() / ref_out.std()
    assert rel < 0.2, f"chunked output differs from the single pass by {rel:.3f} of its std"


def test_no_seam_with_per_chunk_statistics() -> None:
    """A model that, like instance normalisation, removes each input's own time mean: chunks of
    a drifting input disagree by an offset. On this smooth input the output must change from
    frame to frame across each overlap hardly more than the two chunk outputs themselves do;
    a hard splice would add their whole disagreement at one frame."""
    model = MeanRemovingVC()
    vc = VoiceConverter(
        model, device="cpu", chunk_seconds=4.0, overlap_seconds=1.0, match_stats="none"
    )
    t = torch.linspace(0, 1, 20 * RATE // HOP + 1)
    bins = torch.linspace(0, 1, 80)[:, None]
    mel = 3 * t * (1 + bins) + torch.sin(2 * torch.pi * (5 * t + bins))  # smooth, drifting
    ref = torch.randn(80, 100, generator=torch.Generator().manual_seed(0))
    out = vc.convert_mel(mel, [ref])
    spans = chunk_spans(mel.shape[1], vc.chunk_frames, vc.overlap_frames)
    parts = [model.convert(mel[:, s:e], [ref]) for s, e in spans]
    assert len(spans) >= 5
    for i in range(1, len(spans)):
        (s0, _), (s1, e0) = spans[i - 1], (spans[i][0], spans[i - 1][1])
        a, b = parts[i - 1][:, s1 - s0 : e0 - s0], parts[i][:, : e0 - s1]
        disagreement = (a - b).abs().mean()
        assert disagreement > 0.3  # the chunks really disagree here
        step = (out[:, s1 + 1 : e0] - out[:, s1 : e0 - 1]).abs().mean(0)
        own = torch.maximum((a[:, 1:] - a[:, :-1]).abs(), (b[:, 1:] - b[:, :-1]).abs()).mean(0)
        excess = (step - own).max()
        assert excess <= 0.1 * disagreement, f"seam {i}: jump {excess:.3f} of {disagreement:.3f}"


def test_feature_mismatch_names_both_sides() -> None:
    model = tiny_adain()
    other = FeatureConfig(hop_length=200)
    with pytest.raises(
        FeatureMismatchError, match="adain_vc.*vocoder GriffinLimVocoder.*hop_length: 256 vs 200"
    ):
        VoiceConverter(model, vocoder=GriffinLimVocoder(other), device="cpu")
    with pytest.raises(
        FeatureMismatchError, match="adain_vc vs the converter.*hop_length: 256 vs 200"
    ):
        VoiceConverter(model, feature_config=other, device="cpu")
    vc = VoiceConverter(model, device="cpu")
    mel = vc.features(harmonic(1.0))
    with pytest.raises(FeatureMismatchError, match="reference 2 has 40 mel bins.*80"):
        vc.convert_mel(mel, [mel, torch.zeros(40, 50)])
    with pytest.raises(ValueError, match="at least one reference"):
        vc.reference_features([])


def test_bad_waveforms_are_rejected() -> None:
    vc = VoiceConverter(tiny_adain(), device="cpu")
    with pytest.raises(AudioFileError, match="too short"):
        vc.convert_wav(harmonic(0.3), [harmonic(1.0)])
    with pytest.raises(AudioFileError, match="silence"):
        vc.convert_wav(torch.zeros(RATE), [harmonic(1.0)])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu() -> None:
    src, ref = harmonic(10.0), harmonic(1.5, f0=210.0, seed=1)
    cpu = VoiceConverter(tiny_adain(), device="cpu", chunk_seconds=4.0)
    gpu = VoiceConverter(tiny_adain(), device="cuda", chunk_seconds=4.0)
    mel_c = cpu.convert_mel(cpu.features(src), cpu.reference_features(ref))
    mel_g = gpu.convert_mel(gpu.features(src), gpu.reference_features(ref))
    assert mel_g.device.type == "cuda"
    torch.testing.assert_close(mel_g.cpu(), mel_c, atol=1e-3, rtol=1e-3)
    assert gpu.convert_wav(src, ref).shape == src.shape


# ---------------------------------------------------------------------------------------------
# files
# ---------------------------------------------------------------------------------------------
def test_convert_file_writes_16k_wav_of_source_length(model_dir: Path, tmp_path: Path) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng not installed")
    src = tmp_path / "src.wav"
    subprocess.run(
        [espeak, "-v", "en+m3", "-w", str(src), "Good morning, how are you today?"],
        check=True,
        capture_output=True,
    )
    data, rate = sf.read(src)
    ref = tmp_path / "ref.wav"
    sf.write(ref, harmonic(1.5, f0=210.0, seed=1).numpy(), RATE)
    vc = VoiceConverter.from_pretrained(model_dir, device="cpu")
    out = vc.convert_file(src, ref, tmp_path / "out" / "converted.wav")
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
    expected = round(len(data) * RATE / rate)
    assert abs(info.frames - expected) < HOP
    wav, _ = sf.read(out)
    assert np.abs(wav).max() > 0.01  # not silence


def test_stereo_44k_source_and_22k_reference(model_dir: Path, tmp_path: Path) -> None:
    src = harmonic(2.0, rate=44100)
    stereo = torch.stack([src, 0.5 * src], dim=1).numpy()
    sf.write(tmp_path / "stereo.wav", stereo, 44100)
    sf.write(tmp_path / "ref22.wav", harmonic(1.5, f0=210.0, rate=22050, seed=1).numpy(), 22050)
    vc = VoiceConverter.from_pretrained(model_dir, device="cpu")
    out = vc.convert_file(tmp_path / "stereo.wav", [tmp_path / "ref22.wav"], tmp_path / "o.wav")
    info = sf.info(out)
    assert (info.samplerate, info.channels) == (RATE, 1)
    assert abs(info.frames - 2 * RATE) < HOP
    # The same conversion from in-memory (waveform, rate) pairs gives the same samples.
    src_data, src_rate = sf.read(tmp_path / "stereo.wav", dtype="float32")
    ref_data, ref_rate = sf.read(tmp_path / "ref22.wav", dtype="float32")
    assert (src_data.shape, src_rate, ref_rate) == ((88200, 2), 44100, 22050)
    wav = vc.convert_wav((src_data, src_rate), [(ref_data, ref_rate)])
    written, _ = sf.read(out, dtype="float32")
    np.testing.assert_allclose(written, wav.clamp(-1, 1).numpy(), atol=1 / 16384)


def test_model_dir_errors(
    tmp_path: Path, wavs: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    with pytest.raises(ModelDirectoryError, match="no such model directory"):
        VoiceConverter.from_pretrained(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirectoryError, match="no config.json"):
        VoiceConverter.from_pretrained(tmp_path / "empty")
    rc = run_cli(
        [
            "--model",
            str(tmp_path / "empty"),
            "--source",
            str(wavs["src"]),
            "--target",
            str(wavs["ref"]),
            "--out",
            str(tmp_path / "o.wav"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "empty" in err and "config.json" in err
    assert not (tmp_path / "o.wav").exists()


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def test_cli_single_file(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out.wav"
    rc = run_cli(
        [
            "--model",
            str(model_dir),
            "--source",
            str(wavs["src"]),
            "--target",
            str(wavs["ref"]),
            str(wavs["ref2"]),
            "--out",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0
    assert abs(sf.info(out).frames - int(2.3 * RATE)) < HOP
    line = capsys.readouterr().out
    assert str(out) in line and "2.30 s of audio" in line and "RTF" in line


@pytest.mark.parametrize(
    ("make_source", "message"),
    [
        (lambda p: sf.write(p, np.zeros(RATE, dtype=np.float32), RATE), "silence only"),
        (lambda p: sf.write(p, harmonic(0.2).numpy(), RATE), "too short"),
        (lambda p: p.write_text("not audio"), "not a readable audio file"),
    ],
    ids=["silent", "short", "not-audio"],
)
def test_cli_bad_source(
    model_dir: Path,
    wavs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    make_source,
    message: str,
) -> None:  # noqa: ANN001
    src = tmp_path / "bad.wav"
    make_source(src)
    rc = run_cli(
        [
            "--model",
            str(model_dir),
            "--source",
            str(src),
            "--target",
            str(wavs["ref"]),
            "--out",
            str(tmp_path / "o.wav"),
            "--device",
            "cpu",
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and str(src) in err and message in err


def test_cli_manifest_relative_paths(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "batch"
    (root / "in").mkdir(parents=True)
    for key in ("src", "ref", "ref2"):
        shutil.copy(wavs[key], root / "in" / wavs[key].name)
    (root / "pairs.tsv").write_text(
        "source\ttarget\tout\n"
        "in/src.wav\tin/ref.wav\tone.wav\n"
        "# a comment\n"
        "in/ref2.wav\tin/ref.wav|in/src.wav\tsub/two.wav\n"
    )
    rc = run_cli(
        ["--model", str(model_dir), "--manifest", str(root / "pairs.tsv"), "--device", "cpu"]
    )
    assert rc == 0
    assert abs(sf.info(root / "one.wav").frames - int(2.3 * RATE)) < HOP
    assert abs(sf.info(root / "sub" / "two.wav").frames - int(1.2 * RATE)) < HOP
    out = capsys.readouterr().out
    assert "converted 2 of 2 file(s)" in out and out.count("RTF") == 3
    # --out-dir: relative outputs go there, inputs still relative to the manifest.
    rc = run_cli(
        [
            "--model",
            str(model_dir),
            "--manifest",
            str(root / "pairs.tsv"),
            "--out-dir",
            str(tmp_path / "elsewhere"),
            "--device",
            "cpu",
        ]
    )
    assert rc == 0 and (tmp_path / "elsewhere" / "sub" / "two.wav").is_file()


def test_cli_manifest_bad_row(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    m = tmp_path / "pairs.csv"
    m.write_text(
        "source,target,out\n"
        f"{wavs['src']},{wavs['ref']},a.wav\n"
        f"missing.wav,{wavs['ref']},b.wav\n"
        f"{wavs['ref2']},{wavs['ref']},c.wav\n"
    )
    rc = run_cli(["--model", str(model_dir), "--manifest", str(m), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 2 and "row 2 (line 3)" in err and "missing.wav" in err and "no such file" in err
    assert (tmp_path / "a.wav").is_file() and not (tmp_path / "c.wav").exists()  # stopped

    rc = run_cli(
        ["--model", str(model_dir), "--manifest", str(m), "--keep-going", "--device", "cpu"]
    )
    captured = capsys.readouterr()
    assert rc == 2 and (tmp_path / "c.wav").is_file()
    assert "converted 2 of 3 file(s)" in captured.out
    assert "1 row(s) skipped" in captured.err and "row 2 (line 3)" in captured.err


def test_read_manifest_errors(tmp_path: Path) -> None:
    m = tmp_path / "m.tsv"
    m.write_text("source\ttarget\na.wav\tb.wav\n")
    with pytest.raises(ManifestError, match=r"m\.tsv line 1: .*lacks column\(s\) \['out'\]"):
        read_manifest(m)
    m.write_text("source\ttarget\tout\na.wav\tb.wav|c.wav\to.wav\na.wav\tb.wav\n")
    with pytest.raises(ManifestError, match=r"m\.tsv row 2 \(line 3\): 2 field\(s\)"):
        read_manifest(m)
    m.write_text("source\ttarget\tout\na.wav\t\to.wav\n")
    with pytest.raises(ManifestError, match=r"row 1 \(line 2\): empty field\(s\) \['target'\]"):
        read_manifest(m)
    m.write_text("source\ttarget\tout\na.wav\tb.wav | c.wav\t/abs/o.wav\n")
    (row,) = read_manifest(m, out_dir=tmp_path / "outs")
    assert row.source == tmp_path / "a.wav"
    assert row.targets == (tmp_path / "b.wav", tmp_path / "c.wav")
    assert row.out == Path("/abs/o.wav")
    with pytest.raises(ManifestError, match="no such manifest"):
        read_manifest(tmp_path / "nope.tsv")


def test_cli_usage_errors_with_own_parser(
    model_dir: Path, wavs: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    parser = argparse.ArgumentParser(prog="seqae")
    add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["convert", "--model", str(model_dir), "--source", str(wavs["src"])])
    assert args.func(args) == 2
    assert "--manifest" in capsys.readouterr().err
    args = parser.parse_args(
        ["convert", "--model", str(model_dir), "--manifest", "m.tsv", "--source", "x.wav"]
    )
    assert args.func(args) == 2
    assert "cannot be combined" in capsys.readouterr().err


def test_registered_in_seqae_cli() -> None:
    from seqae import registry

    if "convert" not in registry.names("cli"):
        pytest.skip("the audio plugin's convert command is not registered yet")
    from seqae.cli import build_parser

    args = build_parser().parse_args(["convert", "--model", "m", "--manifest", "x.tsv"])
    assert args.func.__name__ == "_cmd_convert"


# ---------------------------------------------------------------------------------------------
# trustworthy outputs: never over an input, never clipped, in the format the extension names
# ---------------------------------------------------------------------------------------------
def convert_args(model_dir: Path, source: Path, targets: list[Path], out: Path) -> list[str]:
    targets_args = [str(t) for t in targets]
    return [
        "--model",
        str(model_dir),
        "--source",
        str(source),
        "--target",
        *targets_args,
        "--out",
        str(out),
        "--device",
        "cpu",
    ]


def one_line(err: str) -> str:
    """The one line a refused command prints (a traceback or a second line fails the test)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    return lines[0]


@pytest.mark.parametrize("kind", ["source", "target", "symlink-to-source", "hardlink-to-target"])
def test_cli_refuses_out_that_is_an_input(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture, kind
) -> None:  # noqa: ANN001
    src, ref = tmp_path / "src.wav", tmp_path / "ref.wav"
    shutil.copy(wavs["src"], src)
    shutil.copy(wavs["ref"], ref)
    before = {p: p.read_bytes() for p in (src, ref)}
    out = {"source": src, "target": ref}.get(kind)
    if kind == "symlink-to-source":
        out = tmp_path / "link.wav"
        out.symlink_to(src)
    elif kind == "hardlink-to-target":
        out = tmp_path / "hard.wav"
        out.hardlink_to(ref)
    rc = run_cli(convert_args(model_dir, src, [ref], out))
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "is also an input" in line and str(out) in line
    assert {p: p.read_bytes() for p in (src, ref)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        {"src.wav", "ref.wav", out.name}
    )  # nothing else written


def test_cli_manifest_row_over_an_input_is_refused_before_anything_is_written(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    for key in ("src", "ref", "ref2"):
        shutil.copy(wavs[key], tmp_path / wavs[key].name)
    before = (tmp_path / "ref2.wav").read_bytes()
    m = tmp_path / "pairs.tsv"
    m.write_text("source\ttarget\tout\nsrc.wav\tref.wav\tone.wav\nref2.wav\tref.wav\tref2.wav\n")
    rc = run_cli(["--model", str(model_dir), "--manifest", str(m), "--device", "cpu"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "row 2 (line 3)" in line and "is also an input" in line
    assert (tmp_path / "ref2.wav").read_bytes() == before
    assert not (tmp_path / "one.wav").exists()  # refused before the first row was converted

    # --keep-going converts the good rows and lists the refused one
    rc = run_cli(
        ["--model", str(model_dir), "--manifest", str(m), "--device", "cpu", "--keep-going"]
    )
    captured = capsys.readouterr()
    assert rc == 2 and (tmp_path / "one.wav").is_file()
    assert (tmp_path / "ref2.wav").read_bytes() == before
    assert "converted 1 of 2 file(s)" in captured.out and "1 row(s) skipped" in captured.err


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        # row 1 would replace what row 2 reads
        ("src.wav\tref.wav\tmid.wav\nmid.wav\tref.wav\tlast.wav\n", "row 1 (line 2): out"),
        # two rows, one output
        ("src.wav\tref.wav\tsame.wav\nref2.wav\tref.wav\tsame.wav\n", "output of"),
    ],
    ids=["chain", "same-output"],
)
def test_cli_manifest_outputs_are_checked_across_rows(
    model_dir: Path,
    wavs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    rows: str,
    message: str,
) -> None:
    for key in ("src", "ref", "ref2"):
        shutil.copy(wavs[key], tmp_path / wavs[key].name)
    (tmp_path / "mid.wav").write_bytes(wavs["ref2"].read_bytes())
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    m = tmp_path / "pairs.tsv"
    m.write_text("source\ttarget\tout\n" + rows)
    rc = run_cli(["--model", str(model_dir), "--manifest", str(m), "--device", "cpu"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and message in line
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p != m} == before


def test_cli_out_that_is_a_folder(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    folder = tmp_path / "outputs"
    folder.mkdir()
    rc = run_cli(convert_args(model_dir, wavs["src"], [wavs["ref"]], folder))
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and f"--out {folder} is a folder" in line
    assert list(folder.iterdir()) == []


def loud(wav: Tensor, gain: float = 6.0) -> np.ndarray:
    """A loud, clipped recording of ``wav``."""
    return np.clip(gain * wav.numpy(), -1.0, 1.0)


def steady_tone(seconds: float, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.mark.parametrize(
    "make",
    [
        lambda: (steady_tone(2.0), steady_tone(1.5, 330.0)),
        lambda: (loud(harmonic(2.0)), loud(harmonic(1.5, f0=210.0, am=3.0, seed=1))),
    ],
    ids=["steady-tone", "loud-clipped"],
)
@pytest.mark.parametrize("ext", [".wav", ".mp3"])
def test_cli_output_never_clips(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture, make, ext: str
) -> None:  # noqa: ANN001
    """These inputs make the tiny model's output peak far above full scale (the old writer
    clipped 1-96% of the samples): it is scaled down as a whole, and the command says so."""
    src_wav, ref_wav = make()
    src, ref = tmp_path / "src.wav", tmp_path / "ref.wav"
    sf.write(src, src_wav, RATE, subtype="FLOAT")
    sf.write(ref, ref_wav, RATE, subtype="FLOAT")
    out = tmp_path / f"out{ext}"
    assert run_cli(convert_args(model_dir, src, [ref], out)) == 0
    written, _ = sf.read(out, dtype="float32")
    assert np.abs(written).max() <= 0.99 + 1 / 32768  # -0.1 dBFS, never full scale
    assert np.abs(written).max() > 0.5  # scaled to the limit, not to silence
    note = one_line(capsys.readouterr().err)
    assert str(out) in note and "scaled down by" in note


def test_cli_espeak_loud_source_never_clips(
    model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng not installed")
    src, ref = tmp_path / "src.wav", tmp_path / "ref.wav"
    for path, text in ((src, "Good morning, how are you today?"), (ref, "The weather is fine.")):
        subprocess.run(
            [espeak, "-a", "200", "-w", str(path), text], check=True, capture_output=True
        )
    out = tmp_path / "out.wav"
    assert run_cli(convert_args(model_dir, src, [ref], out)) == 0
    written, _ = sf.read(out, dtype="float32")
    assert np.abs(written).max() <= 0.99 + 1 / 32768


def test_cli_truncated_source_is_refused(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """``head -c 53945 src.wav > t.wav`` of a 3.67 s 22.05 kHz recording: 1.22 s are left."""
    full = tmp_path / "full.wav"
    sf.write(full, harmonic(3.67, rate=22050).numpy(), 22050, subtype="PCM_16")
    cut = tmp_path / "t.wav"
    cut.write_bytes(full.read_bytes()[:53945])
    out = tmp_path / "o.wav"
    rc = run_cli(convert_args(model_dir, cut, [wavs["ref"]], out))
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and str(cut) in line and "truncated" in line
    assert "3.67 s" in line and "1.22 s" in line  # declared and present
    assert not out.exists()


@pytest.mark.parametrize(("ext", "fmt"), [(".mp3", "MP3"), (".flac", "FLAC"), (".ogg", "OGG")])
def test_cli_writes_the_format_the_extension_names(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, ext: str, fmt: str
) -> None:
    if fmt not in sf.available_formats():
        pytest.skip(f"this libsndfile does not write {fmt}")
    out = tmp_path / f"out{ext}"
    assert run_cli(convert_args(model_dir, wavs["src"], [wavs["ref"]], out)) == 0
    info = sf.info(out)
    assert (info.format, info.samplerate, info.channels) == (fmt, RATE, 1)
    assert abs(info.frames - int(2.3 * RATE)) < HOP


def test_cli_refuses_an_extension_it_cannot_write(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "out.xyz"
    rc = run_cli(convert_args(model_dir, wavs["src"], [wavs["ref"]], out))
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "'.xyz'" in line and ".wav" in line and ".flac" in line
    assert not out.exists()


def test_cli_chunk_seconds_too_short_names_the_setting(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = convert_args(model_dir, wavs["src"], [wavs["ref"]], tmp_path / "o.wav")
    rc = run_cli([*args, "--chunk-seconds", "0.5"])
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and "--chunk-seconds 0.5" in line and "cannot load the model" not in line
    minimum = float(line.split("must be at least ")[1].split()[0])
    assert 3.0 <= minimum < 3.2  # 3 x the 1 s overlap plus the stride's frames
    # the minimum it names works
    assert run_cli([*args, "--chunk-seconds", str(minimum)]) == 0
    capsys.readouterr()


def test_cli_model_with_nan_weights(
    model_dir: Path, wavs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from safetensors.torch import load_file, save_file

    bad = tmp_path / "model"
    shutil.copytree(model_dir, bad)
    state = load_file(bad / "model.safetensors")
    name = next(k for k, v in sorted(state.items()) if v.is_floating_point() and v.numel() > 1)
    state[name] = state[name].clone()
    state[name].view(-1)[0] = float("nan")
    save_file(state, bad / "model.safetensors")
    rc = run_cli(convert_args(bad, wavs["src"], [wavs["ref"]], tmp_path / "o.wav"))
    line = one_line(capsys.readouterr().err)
    assert rc == 2 and f"--model {bad}" in line and "NaN or infinite weights" in line
    assert name in line and "non-finite values" not in line
    assert not (tmp_path / "o.wav").exists()


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--threads", "-3"), ("--chunk-seconds", "-1"), ("--overlap-seconds", "nan")],
)
def test_cli_bad_numbers_are_usage_errors(
    model_dir: Path,
    wavs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture,
    flag: str,
    value: str,
) -> None:
    args = convert_args(model_dir, wavs["src"], [wavs["ref"]], tmp_path / "o.wav")
    with pytest.raises(SystemExit) as exit_:
        run_cli([*args, flag, value])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]  # argparse: usage, then the error
    assert last.startswith("seqae convert: error: argument " + flag) and repr(value) in last
    assert not (tmp_path / "o.wav").exists()
