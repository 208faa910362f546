"""Frequency-warp augmentation of log-mels (seqae.audio.augment) and the vc recipe's use of it."""

from __future__ import annotations

import math

import pytest
import torch

from seqae.audio.augment import mel_centers_hz, sample_warp_factors, warp_matrices, warp_mels
from seqae.audio.features import FeatureConfig, FeatureNormalizer
from seqae.cli import find_recipe, load_recipe

FEATURES = FeatureConfig()


def test_mel_centres_match_torchaudio_filterbank_peaks() -> None:
    import torchaudio

    n_freqs = FEATURES.n_fft // 2 + 1
    fb = torchaudio.functional.melscale_fbanks(
        n_freqs, FEATURES.f_min, FEATURES.f_max, FEATURES.n_mels, FEATURES.sample_rate,
        norm="slaney", mel_scale="slaney",
    )  # fmt: skip
    peaks = torch.linspace(0, FEATURES.sample_rate / 2, n_freqs)[fb.argmax(0)].double()
    bin_hz = FEATURES.sample_rate / FEATURES.n_fft
    assert torch.allclose(mel_centers_hz(FEATURES), peaks, atol=bin_hz)


def test_unit_factor_is_the_identity() -> None:
    w = warp_matrices(FEATURES, torch.tensor([1.0]))[0]
    assert torch.allclose(w, torch.eye(FEATURES.n_mels, dtype=w.dtype), atol=1e-12)
    mel = torch.randn(2, FEATURES.n_mels, 7)
    assert torch.allclose(warp_mels(mel, FEATURES, torch.ones(2)), mel, atol=1e-6)


@pytest.mark.parametrize("alpha", [0.8, 0.9, 1.1, 1.25])
def test_a_spectral_peak_moves_to_alpha_times_its_frequency(alpha: float) -> None:
    centres = mel_centers_hz(FEATURES)
    k = 35
    mel = torch.full((1, FEATURES.n_mels, 1), -5.0)
    mel[0, k] = 0.0
    out = warp_mels(mel, FEATURES, torch.tensor([alpha]))[0, :, 0]
    moved_to = centres[int(out.argmax())]
    spacing = float(centres[k + 1] - centres[k]) * max(alpha, 1.0)
    assert abs(float(moved_to) - alpha * float(centres[k])) <= spacing
    assert (out > -4.99).sum() <= 3  # the peak stays a peak, not smeared over the spectrum


def test_rows_are_convex_interpolation_weights() -> None:
    w = warp_matrices(FEATURES, torch.tensor([0.7, 0.95, 1.05, 1.4]))
    assert bool((w >= 0).all())
    assert torch.allclose(w.sum(-1), torch.ones(4, FEATURES.n_mels, dtype=w.dtype))
    # a constant spectrum stays constant: the warp moves energy, it does not make or lose it
    flat = torch.full((4, FEATURES.n_mels, 3), -2.0)
    assert torch.allclose(warp_mels(flat, FEATURES, torch.tensor([0.7, 0.95, 1.05, 1.4])), flat)


def test_each_example_gets_its_own_factor() -> None:
    mel = torch.randn(1, FEATURES.n_mels, 5).expand(3, -1, -1).contiguous()
    out = warp_mels(mel, FEATURES, torch.tensor([1.0, 1.2, 1.0]))
    assert torch.allclose(out[0], mel[0], atol=1e-6) and torch.allclose(out[2], mel[2], atol=1e-6)
    assert not torch.allclose(out[1], mel[1], atol=1e-3)


@pytest.mark.parametrize(
    "mels, alphas, message",
    [
        (torch.zeros(2, 40, 5), [1.0, 1.0], "expected log-mels"),
        (torch.zeros(80, 5), [1.0], "expected log-mels"),
        (torch.zeros(2, 80, 5), [1.0], "1 warp factors for a batch of 2"),
        (torch.zeros(1, 80, 5), [0.0], "finite and positive"),
        (torch.zeros(1, 80, 5), [math.nan], "finite and positive"),
    ],
)
def test_bad_warp_inputs_are_refused(mels, alphas, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        warp_mels(mels, FEATURES, torch.tensor(alphas))


def test_factors_are_log_uniform_within_bounds_and_reproducible() -> None:
    a = sample_warp_factors(4000, (0.8, 1.25), torch.Generator().manual_seed(3))
    b = sample_warp_factors(4000, (0.8, 1.25), torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert float(a.min()) >= 0.8 and float(a.max()) <= 1.25
    # log-uniform on a range symmetric in log space: half the factors below 1, mean log near 0
    assert abs(float(a.log().mean())) < 0.02
    assert 0.45 < float((a < 1).double().mean()) < 0.55
    some = sample_warp_factors(4000, (0.8, 1.25), torch.Generator().manual_seed(3), prob=0.25)
    assert 0.2 < float((some != 1).double().mean()) < 0.3
    none = sample_warp_factors(50, (0.8, 1.25), torch.Generator().manual_seed(3), prob=0.0)
    assert bool((none == 1).all())


@pytest.mark.parametrize(
    "bounds, prob",
    [
        ((1.2, 0.8), 1.0),
        ((0.0, 1.2), 1.0),
        ((0.9, 1.1), 1.5),
        ((0.9,), 1.0),
        ((0.8, 1.0, 1.2), 1.0),
    ],
)
def test_bad_factor_settings_are_refused(bounds, prob: float) -> None:
    with pytest.raises(ValueError, match="warp"):
        sample_warp_factors(3, bounds, torch.Generator(), prob=prob)


# --- the vc recipe's WarpAugment ------------------------------------------------------------
@pytest.fixture(scope="module")
def vc():
    return load_recipe(find_recipe("vc"))


def _normalizer() -> FeatureNormalizer:
    norm = FeatureNormalizer(FEATURES.n_mels)
    norm.fit([torch.randn(FEATURES.n_mels, 50) * 2 - 6])
    return norm


def _augment(vc, content=None, speaker=None, prob=1.0):
    cfg = {"content_warp": content, "speaker_warp": speaker, "speaker_warp_prob": prob}
    return vc.WarpAugment(cfg, FEATURES, _normalizer(), seed=0)


def test_recipe_augment_off_passes_the_batch_through(vc) -> None:
    x, ref = torch.randn(4, 80, 16), torch.randn(4, 80, 16)
    x_in, target, r = _augment(vc)(x, ref, step=0, rank=0)
    assert x_in is x and target is x and r is ref


def test_content_warp_changes_only_what_the_content_encoder_sees(vc) -> None:
    x, ref = torch.randn(4, 80, 16), torch.randn(4, 80, 16)
    x_in, target, r = _augment(vc, content=[0.8, 1.25])(x, ref, step=3, rank=0)
    assert torch.equal(target, x) and torch.equal(r, ref)
    assert not torch.allclose(x_in, x, atol=1e-3)


def test_speaker_warp_moves_crop_and_reference_by_the_same_factor(vc) -> None:
    aug = _augment(vc, speaker=[0.8, 1.25])
    x, ref = torch.randn(4, 80, 16), torch.randn(4, 80, 16)
    x_in, target, r = aug(x, ref, step=5, rank=0)
    assert torch.equal(x_in, target)  # no content warp: the encoder sees the target
    # recover each example's factor from the target and check the reference used the same one
    g = torch.Generator().manual_seed(0 * 999_983 + 5 * 7_907 + 0 + 17)
    alphas = vc.sample_warp_factors(4, [0.8, 1.25], g, prob=1.0)
    norm = aug.normalizer
    expected = norm(warp_mels(norm.inverse(ref), FEATURES, alphas))
    assert torch.allclose(r, expected, atol=1e-4)
    assert torch.allclose(target, norm(warp_mels(norm.inverse(x), FEATURES, alphas)), atol=1e-4)


def test_augment_draws_depend_only_on_step_and_rank(vc) -> None:
    aug = _augment(vc, content=[0.8, 1.25], speaker=[0.9, 1.1], prob=0.5)
    x, ref = torch.randn(4, 80, 16), torch.randn(4, 80, 16)
    first = aug(x, ref, step=7, rank=0)
    again = aug(x, ref, step=7, rank=0)
    other = aug(x, ref, step=8, rank=0)
    for a, b in zip(first, again, strict=True):
        assert torch.equal(a, b)
    assert not torch.allclose(first[0], other[0])
