"""ISTFTVocoder: shapes, the STFT losses on known inputs, learning, save/load and its errors,
the waveform batcher, and using it in VoiceConverter and ``seqae convert --vocoder``."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file, save_file

import seqae
from seqae.audio.convert import VoiceConverter
from seqae.audio.dataset import SpeechDataError, WaveformBatcher
from seqae.audio.features import FeatureConfig, FeatureMismatchError, log_mel
from seqae.audio.neural_vocoder import (
    ISTFTVocoder,
    VocoderLoss,
    load_vocoder,
    multi_resolution_stft_loss,
)
from seqae.audio.vocoder import GriffinLimVocoder, Vocoder
from seqae.core.model import Autoencoder
from tests.audio.test_convert import RATE, harmonic, run_cli, tiny_adain

HOP = FeatureConfig().hop_length


def tiny_vocoder(features: FeatureConfig | None = None, seed: int = 0) -> ISTFTVocoder:
    torch.manual_seed(seed)
    return ISTFTVocoder(features, channels=16, n_blocks=2, hidden_mult=2, kernel_size=5)


@pytest.fixture(scope="module")
def vocoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    v = tiny_vocoder()
    v.normalizer.fit([log_mel(harmonic(2.0))])
    return v.save_pretrained(tmp_path_factory.mktemp("voc") / "vocoder")


# ---------------------------------------------------------------------------------------------
# the network
# ---------------------------------------------------------------------------------------------
def test_is_a_vocoder_with_griffin_lims_output_length() -> None:
    v = tiny_vocoder().eval()
    assert isinstance(v, Vocoder)
    mel = log_mel(harmonic(1.0))  # (80, 63)
    with torch.no_grad():
        one = v(mel)
        batch = v(torch.stack([mel, mel + 0.5]))
    gl = GriffinLimVocoder(n_iter=2)(mel)
    assert one.shape == gl.shape == ((mel.shape[-1] - 1) * HOP,)
    assert batch.shape == (2, one.numel())
    torch.testing.assert_close(batch[0], one, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(batch[1], one)


def test_is_differentiable_and_frame_local_within_its_receptive_field() -> None:
    v = tiny_vocoder()
    mel = log_mel(harmonic(1.0)).requires_grad_(True)
    v(mel).pow(2).sum().backward()
    assert mel.grad is not None and mel.grad.abs().sum() > 0
    assert all(p.grad is not None for p in v.parameters())
    # a change at the last frame leaves the start of the waveform alone (convolutional network)
    with torch.no_grad():
        a = v(mel.detach())
        changed = mel.detach().clone()
        changed[:, -1] += 3.0
        b = v(changed)
    torch.testing.assert_close(a[: 20 * HOP], b[: 20 * HOP])
    assert not torch.allclose(a[-HOP:], b[-HOP:])


@pytest.mark.parametrize(
    "bad", [torch.zeros(40, 10), torch.zeros(2, 3, 80, 10), torch.zeros(80, 1)], ids=str
)
def test_bad_input_shapes_name_what_is_expected(bad: torch.Tensor) -> None:
    with pytest.raises(ValueError, match="n_mels=80|at least 2 frames"):
        tiny_vocoder()(bad)


def test_config_errors_are_named() -> None:
    with pytest.raises(ValueError, match=r"unknown config key\(s\) \['width'\]; valid keys"):
        ISTFTVocoder.from_config({"width": 3})
    with pytest.raises(ValueError, match="kernel_size must be a positive odd"):
        ISTFTVocoder(kernel_size=4)
    with pytest.raises(ValueError, match="channels must be a positive integer"):
        ISTFTVocoder(channels=0)


def test_magnitude_is_clamped_so_an_untrained_network_cannot_explode() -> None:
    v = tiny_vocoder()
    with torch.no_grad():
        v.head.bias.fill_(50.0)
        spec = v.spectrum(log_mel(harmonic(0.5))[None])
    assert spec.abs().max() <= math.exp(v.max_log_magnitude) * (1 + 1e-5)


# ---------------------------------------------------------------------------------------------
# losses
# ---------------------------------------------------------------------------------------------
def test_stft_loss_on_known_inputs() -> None:
    y = torch.stack([harmonic(0.5), harmonic(0.5, f0=200.0, seed=3)])
    sc, mag = multi_resolution_stft_loss(y, y)
    assert sc.item() == 0 and mag.item() == 0
    # twice as loud: every magnitude doubles, so SC = 1 and the log-magnitude gap is log 2
    sc, mag = multi_resolution_stft_loss(2 * y, y)
    assert sc.item() == pytest.approx(1.0, rel=1e-4)
    assert mag.item() == pytest.approx(math.log(2), rel=1e-3)
    # the sign of a waveform does not change its magnitudes
    sc, mag = multi_resolution_stft_loss(-y, y)
    assert sc.item() < 1e-5 and mag.item() < 1e-5
    with pytest.raises(ValueError, match="one shape"):
        multi_resolution_stft_loss(y[:, :-1], y)
    with pytest.raises(ValueError, match="at least one"):
        multi_resolution_stft_loss(y, y, resolutions=())


def test_vocoder_loss_terms_and_bad_settings() -> None:
    y = harmonic(0.5)[None]
    mel = log_mel(y)
    loss = VocoderLoss(FeatureConfig(), mel_weight=2.0, stft_weight=0.5)
    terms = loss(y, y, mel)
    assert terms["mel"].item() < 1e-4 and terms["sc"].item() == 0
    noisy = loss(y + 0.05 * torch.randn_like(y), y, mel)
    expected = 2.0 * noisy["mel"] + 0.5 * (noisy["sc"] + noisy["log_mag"])
    assert noisy["loss"].item() == pytest.approx(expected.item())
    assert noisy["mel"] > 0.01 and noisy["sc"] > 0.01
    with pytest.raises(ValueError, match="bad STFT resolution"):
        VocoderLoss(FeatureConfig(), resolutions=[(512, 0)])
    with pytest.raises(ValueError, match="not both 0"):
        VocoderLoss(FeatureConfig(), mel_weight=0.0, stft_weight=0.0)


def test_training_fits_a_clip_better_than_it_started() -> None:
    """A few dozen Adam steps on one clip: every loss term falls by a clear margin."""
    features = FeatureConfig()
    wav = torch.stack([harmonic(0.75), harmonic(0.75, f0=180.0, seed=1)])
    wav = wav[:, : (wav.shape[1] // HOP) * HOP]
    mel = log_mel(wav)
    v = tiny_vocoder(features)
    v.normalizer.fit(list(mel))
    loss_fn = VocoderLoss(features)
    opt = torch.optim.Adam(v.parameters(), lr=3e-3)
    first = {k: t.item() for k, t in loss_fn(v(mel), wav, mel).items()}
    for _ in range(60):
        terms = loss_fn(v(mel), wav, mel)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
    last = {k: t.item() for k, t in loss_fn(v(mel), wav, mel).items()}
    assert last["loss"] < 0.6 * first["loss"]
    assert last["mel"] < 0.5 * first["mel"]
    assert last["log_mag"] < 0.7 * first["log_mag"]


# ---------------------------------------------------------------------------------------------
# saving and loading
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["load_vocoder", "from_pretrained", "seqae.load_pretrained"])
def test_save_load_round_trip(vocoder_dir: Path, how: str) -> None:
    load = {
        "load_vocoder": load_vocoder,
        "from_pretrained": ISTFTVocoder.from_pretrained,
        "seqae.load_pretrained": seqae.load_pretrained,
    }[how]
    loaded = load(vocoder_dir)
    assert type(loaded) is ISTFTVocoder and not loaded.training
    saved = json.loads((vocoder_dir / "config.json").read_text())
    assert saved["model_type"] == "istft_vocoder" and saved["config"]["channels"] == 16
    assert saved["format_version"] == 2 and saved["features"] == FeatureConfig().to_dict()
    ref = tiny_vocoder()
    ref.normalizer.fit([log_mel(harmonic(2.0))])
    torch.testing.assert_close(loaded.normalizer.mean, ref.normalizer.mean)
    mel = log_mel(harmonic(0.6, f0=150.0))
    with torch.no_grad():
        torch.testing.assert_close(loaded(mel), ref.eval()(mel))


def test_load_errors(vocoder_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope does not exist; expected a folder"):
        load_vocoder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="config.json not found"):
        load_vocoder(tmp_path / "empty")
    vc_dir = tiny_adain().save_pretrained(tmp_path / "vc")
    with pytest.raises(ValueError, match="is not a vocoder: model_type 'adain_vc'"):
        load_vocoder(vc_dir)
    ae_dir = Autoencoder.from_config(
        {
            "encoder": {"name": "mlp", "in_dim": 6, "hidden": [8], "out_dim": 4},
            "bottleneck": {"name": "identity"},
            "decoder": {"name": "mlp", "in_dim": 4, "hidden": [8], "out_dim": 6},
        }
    ).save_pretrained(tmp_path / "ae")
    with pytest.raises(ValueError, match="is not a vocoder: model_type 'autoencoder'"):
        load_vocoder(ae_dir)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    (bad / "model.safetensors").write_bytes(b"")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_vocoder(bad)
    # weights of a wider network under this config
    other = tmp_path / "other"
    ISTFTVocoder(channels=24, n_blocks=2, hidden_mult=2, kernel_size=5).save_pretrained(other)
    (other / "config.json").write_text((vocoder_dir / "config.json").read_text())
    weights = str(other / "model.safetensors")  # without seqae's metadata, as other tools write
    save_file(load_file(weights), weights)
    with pytest.raises(ValueError, match=r"(?s)different model.*saved \(24,\), model \(16,\)"):
        load_vocoder(other)
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    (truncated / "config.json").write_text((vocoder_dir / "config.json").read_text())
    (truncated / "model.safetensors").write_bytes(
        (vocoder_dir / "model.safetensors").read_bytes()[:100]
    )
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_vocoder(truncated)


# ---------------------------------------------------------------------------------------------
# training crops
# ---------------------------------------------------------------------------------------------
def test_waveform_batcher_is_reproducible_and_pads_short_clips() -> None:
    wavs = [torch.arange(1000.0), torch.arange(300.0) + 1]
    b = WaveformBatcher(wavs, segment_samples=500, seed=3)
    x = b.batch(7, 16)
    assert x.shape == (16, 500)
    torch.testing.assert_close(x, WaveformBatcher(wavs, segment_samples=500, seed=3).batch(7, 16))
    assert not torch.equal(x, b.batch(8, 16))
    for row in x:
        if row[-1] == 0:  # the short clip, zero-padded after its 300 samples
            torch.testing.assert_close(row[:300], wavs[1])
            assert row[300:].abs().sum() == 0
        else:  # a contiguous crop of the long one
            assert torch.equal(row.diff(), torch.ones(499))
    assert {bool(r[-1] == 0) for r in x} == {True, False}
    with pytest.raises(SpeechDataError, match="no utterances"):
        WaveformBatcher([], segment_samples=10)
    with pytest.raises(ValueError, match=r"expected \(T,\) waveforms"):
        WaveformBatcher([torch.zeros(2, 10)], segment_samples=10)


# ---------------------------------------------------------------------------------------------
# in voice conversion
# ---------------------------------------------------------------------------------------------
def test_converter_uses_the_trained_vocoder(vocoder_dir: Path) -> None:
    vc = VoiceConverter(tiny_adain(), device="cpu")
    src, ref = harmonic(1.3), harmonic(1.0, f0=210.0, seed=1)
    with_gl = vc.convert_wav(src, [ref])
    vocoder = load_vocoder(vocoder_dir)
    vc.set_vocoder(vocoder)
    assert vc.vocoder is vocoder
    with_trained = vc.convert_wav(src, [ref])
    assert with_trained.shape == with_gl.shape
    mel = vc.convert_mel(vc.features(src), vc.reference_features([ref]))
    with torch.no_grad():
        expected = vocoder(vc.model.normalizer.inverse(mel))
    n = min(expected.numel(), with_trained.numel())  # the output is fitted to the source length
    assert n > with_trained.numel() - HOP
    torch.testing.assert_close(with_trained[:n], expected[:n])
    with pytest.raises(FeatureMismatchError, match="vs vocoder ISTFTVocoder"):
        vc.set_vocoder(tiny_vocoder(FeatureConfig(n_mels=64)))


def test_cli_convert_with_vocoder(
    vocoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    model_dir = tiny_adain().save_pretrained(tmp_path / "model")
    src, ref = tmp_path / "src.wav", tmp_path / "ref.wav"
    sf.write(src, harmonic(1.4).numpy(), RATE)
    sf.write(ref, harmonic(1.0, f0=210.0, seed=1).numpy(), RATE)
    out = tmp_path / "out.wav"
    common = ["--model", str(model_dir), "--source", str(src), "--target", str(ref)]
    assert run_cli([*common, "--out", str(out), "--vocoder", str(vocoder_dir)]) == 0
    assert abs(sf.info(out).frames - int(1.4 * RATE)) < HOP
    assert run_cli([*common, "--out", str(tmp_path / "x.wav"), "--vocoder", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert f"--vocoder {model_dir}" in err and "is not a vocoder" in err
    assert not (tmp_path / "x.wav").exists()


def test_vc_eval_refuses_a_bad_model_or_vocoder_by_name(
    vocoder_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from seqae.cli import main

    model_dir = tiny_adain().save_pretrained(tmp_path / "model")
    corpus = tmp_path / "corpus"  # never reached: the model and vocoder are checked first
    args = ["vc-eval", "--corpus", str(corpus)]
    assert main([*args, "--model", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert "seqae vc-eval: --model" in err and "no such model directory" in err
    assert main([*args, "--model", str(model_dir), "--vocoder", str(model_dir)]) == 2
    err = capsys.readouterr().err
    assert f"seqae vc-eval: --vocoder {model_dir}" in err and "is not a vocoder" in err
