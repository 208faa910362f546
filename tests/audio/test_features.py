"""Log-mel features, normalisation statistics and the Griffin-Lim vocoder."""

from __future__ import annotations

import math

import pytest
import torch

from seqae.audio.features import (
    FeatureConfig,
    FeatureMismatchError,
    FeatureNormalizer,
    MelExtractor,
    check_same_features,
    log_mel,
)
from seqae.audio.vocoder import GriffinLimVocoder, Vocoder


def harmonic(seconds: float = 1.0, f0: float = 150.0, rate: int = 16000) -> torch.Tensor:
    t = torch.arange(int(seconds * rate)) / rate
    return sum(0.3 / k * torch.sin(2 * math.pi * k * f0 * t) for k in range(1, 8))


def test_shapes_and_frame_count():
    c = FeatureConfig()
    wav = harmonic(1.0)
    m = log_mel(wav, c)
    assert m.shape == (80, c.num_frames(wav.numel())) == (80, 63)
    batch = MelExtractor(c)(torch.stack([wav, wav]))
    assert batch.shape == (2, 80, 63)
    assert torch.allclose(batch[0], m, atol=1e-5)
    assert m.min() >= math.log(c.log_floor) - 1e-6


def test_mel_energy_sits_at_the_harmonics():
    m = log_mel(harmonic(1.0, f0=300.0))
    # the loudest band is the one holding 300 Hz, far below the 8 kHz top
    assert int(m.mean(1).argmax()) < 15


def test_config_round_trip_and_errors():
    c = FeatureConfig(hop_length=200)
    assert FeatureConfig.from_dict(c.to_dict()) == c
    with pytest.raises(KeyError, match="unknown feature setting"):
        FeatureConfig.from_dict({"n_mel": 80})
    with pytest.raises(ValueError, match="f_max"):
        FeatureConfig(f_max=9000.0)
    with pytest.raises(FeatureMismatchError, match="hop_length: 256 vs 200"):
        check_same_features(FeatureConfig(), c, what="the reference")
    check_same_features(c, FeatureConfig(hop_length=200), what="same")


def test_normalizer_fits_per_bin_statistics():
    torch.manual_seed(0)
    mels = [torch.randn(80, n) * 2 + torch.arange(80.0)[:, None] for n in (50, 70, 30)]
    norm = FeatureNormalizer(80).fit(mels)
    z = torch.cat([norm(m) for m in mels], 1)
    assert torch.allclose(z.mean(1), torch.zeros(80), atol=1e-4)
    assert torch.allclose(z.std(1, unbiased=False), torch.ones(80), atol=1e-3)
    assert torch.allclose(norm.inverse(norm(mels[0])), mels[0], atol=1e-4)
    assert {"mean", "std"} <= set(norm.state_dict())
    with pytest.raises(ValueError, match="zero frames"):
        FeatureNormalizer(80).fit([])
    with pytest.raises(ValueError, match="n_mels=80"):
        FeatureNormalizer(80).fit([torch.zeros(40, 10)])


def test_griffin_lim_round_trip_preserves_the_spectrum():
    c = FeatureConfig()
    wav = harmonic(1.0)
    m = log_mel(wav, c)
    voc = GriffinLimVocoder(c, n_iter=32)
    assert isinstance(voc, Vocoder)
    y = voc(m)
    assert y.shape == ((m.shape[1] - 1) * c.hop_length,)
    m2 = log_mel(y, c)
    frames = min(m.shape[1], m2.shape[1])
    err = (m[:, 2 : frames - 2] - m2[:, 2 : frames - 2]).abs()
    loud = m[:, 2 : frames - 2] > m.max() - 6  # bands within 6 nats of the peak
    assert err[loud].mean() < 0.35
    # batched input, and reproducible with a fixed seed
    yb = voc(torch.stack([m, m]))
    assert yb.shape == (2, y.numel())
    assert torch.allclose(voc(m), y)


def test_vocoder_refuses_wrong_shape():
    with pytest.raises(ValueError, match="n_mels=80"):
        GriffinLimVocoder()(torch.zeros(40, 10))
