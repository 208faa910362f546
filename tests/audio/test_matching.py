"""Spectral statistics matching (seqae.audio.matching) and its use in VoiceConverter."""

from __future__ import annotations

import argparse
import math

import pytest
import torch
from torch import Tensor

from seqae.audio.convert import VoiceConverter, add_parser
from seqae.audio.features import log_mel
from seqae.audio.matching import (
    DEFAULT_SPREAD_WEIGHT,
    MelStatistics,
    active_frames,
    match_statistics,
    mel_statistics,
)
from tests.audio.test_convert import harmonic, tiny_adain

FLOOR = math.log(1e-5)


def speech_like(frames: int, *, n_mels: int = 80, seed: int = 0, level: float = -2.0) -> Tensor:
    """A log-mel with a sloped envelope, per-bin spread and frame-to-frame variation."""
    g = torch.Generator().manual_seed(seed)
    envelope = torch.linspace(level, level - 4.0, n_mels)[:, None]
    return envelope + 0.8 * torch.randn(n_mels, frames, generator=g)


def stats_of(mel: Tensor) -> tuple[Tensor, Tensor]:
    return mel.mean(1), mel.std(1, correction=0)


def test_active_frames_drop_silence_and_keep_speech() -> None:
    speech = speech_like(50)
    silence = torch.full((80, 30), FLOOR)
    quiet = speech - 60.0 * math.log(10) / 20  # 60 dB down: below the 40 dB floor
    mask = active_frames(torch.cat([silence, speech, quiet], dim=1))
    assert mask.tolist() == [False] * 30 + [True] * 50 + [False] * 50
    # 20 dB down counts as speech at the default floor, not at a 10 dB one (a steady vowel:
    # its frames' energies are within 1 dB of each other).
    vowel = torch.linspace(-2.0, -6.0, 80)[:, None] + 0.1 * torch.sin(torch.arange(50.0))
    softer = torch.cat([vowel, vowel - 20.0 * math.log(10) / 20], dim=1)
    assert active_frames(softer).all()
    assert active_frames(softer, floor_db=10.0).tolist() == [True] * 50 + [False] * 50
    assert active_frames(torch.full((80, 5), FLOOR)).all()  # all equal: all active, never empty


def test_statistics_ignore_pauses_and_pool_references() -> None:
    speech = speech_like(60)
    padded = torch.cat([torch.full((80, 40), FLOOR), speech, torch.full((80, 25), FLOOR)], dim=1)
    a, b = mel_statistics(speech), mel_statistics(padded)
    torch.testing.assert_close(a.mean, b.mean)
    torch.testing.assert_close(a.std, b.std)
    assert a.frames == b.frames == 60
    mean, std = stats_of(speech)
    torch.testing.assert_close(a.mean, mean)
    torch.testing.assert_close(a.std, std)
    # Several references: the frames of all of them, pooled (not the mean of their means).
    other = speech_like(20, seed=1, level=0.0)
    pooled = mel_statistics([speech, other])
    mean, std = stats_of(torch.cat([speech, other], dim=1))
    assert pooled.frames == 80
    torch.testing.assert_close(pooled.mean, mean)
    torch.testing.assert_close(pooled.std, std)


def test_match_gives_the_target_statistics() -> None:
    x = speech_like(70, seed=2, level=-1.0) * 1.3
    ref = speech_like(90, seed=3, level=-3.0)
    target = mel_statistics(ref)

    y = match_statistics(x, target, mode="mean_std", spread_weight=1.0)
    mean, std = stats_of(y)
    torch.testing.assert_close(mean, target.mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, target.std, atol=1e-4, rtol=1e-4)
    # Per bin an increasing affine map: the frame-to-frame shape of every bin is kept.
    corr = torch.stack([torch.corrcoef(torch.stack([x[k], y[k]]))[0, 1] for k in range(80)])
    assert (corr > 0.9999).all()

    y = match_statistics(x, target, mode="mean")
    mean, std = stats_of(y)
    torch.testing.assert_close(mean, target.mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, stats_of(x)[1], atol=1e-4, rtol=1e-4)  # spread unchanged

    assert match_statistics(x, target, mode="none") is x


def test_pauses_are_carried_along_not_counted() -> None:
    """Silence in the output follows the same per-bin map but does not bias its statistics."""
    speech = speech_like(60, seed=4)
    x = torch.cat([torch.full((80, 30), FLOOR), speech], dim=1)
    target = mel_statistics(speech_like(80, seed=5, level=-4.0))
    y = match_statistics(x, target, spread_weight=1.0)
    mean, std = stats_of(y[:, 30:])
    torch.testing.assert_close(mean, target.mean, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(std, target.std, atol=1e-4, rtol=1e-4)
    assert (y[:, :30] < y[:, 30:].min(dim=1, keepdim=True).values).all()  # still far below


def test_std_ratio_is_bounded() -> None:
    x = speech_like(50, seed=6)
    flat = MelStatistics(mean=torch.zeros(80), std=torch.full((80,), 1e-6), frames=50)
    y = match_statistics(x, flat, max_scale=4.0, spread_weight=1.0)
    torch.testing.assert_close(stats_of(y)[1], stats_of(x)[1] / 4.0, atol=1e-4, rtol=1e-4)
    wide = MelStatistics(mean=torch.zeros(80), std=torch.full((80,), 1e3), frames=50)
    y = match_statistics(x, wide, max_scale=2.0, spread_weight=1.0)
    torch.testing.assert_close(stats_of(y)[1], stats_of(x)[1] * 2.0, atol=1e-4, rtol=1e-4)
    # the bound applies to the ratio, before the spread weight
    y = match_statistics(x, wide, max_scale=4.0, spread_weight=0.5)
    torch.testing.assert_close(stats_of(y)[1], stats_of(x)[1] * 2.0, atol=1e-4, rtol=1e-4)


def test_spread_weight_moves_the_spread_part_way_on_a_log_scale() -> None:
    x = speech_like(70, seed=2, level=-1.0) * 1.3
    target = mel_statistics(speech_like(90, seed=3, level=-3.0) * 0.6)
    own = stats_of(x)[1]
    assert DEFAULT_SPREAD_WEIGHT == 0.5
    for w in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = match_statistics(x, target, mode="mean_std", spread_weight=w)
        mean, std = stats_of(y)
        torch.testing.assert_close(mean, target.mean, atol=1e-4, rtol=1e-4)  # level: always
        expected = own ** (1.0 - w) * target.std**w  # geometric interpolation of the spreads
        torch.testing.assert_close(std, expected, atol=1e-4, rtol=1e-4)
    # 0 is mean-only matching, and the default is half-way
    torch.testing.assert_close(
        match_statistics(x, target, spread_weight=0.0), match_statistics(x, target, mode="mean")
    )
    torch.testing.assert_close(
        match_statistics(x, target), match_statistics(x, target, spread_weight=0.5)
    )
    # the weight only concerns the spread: mean-only matching ignores it
    torch.testing.assert_close(
        match_statistics(x, target, mode="mean", spread_weight=1.0),
        match_statistics(x, target, mode="mean"),
    )
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match=r"spread_weight must be in \[0, 1\]"):
            match_statistics(x, target, spread_weight=bad)


def test_bad_arguments_are_named() -> None:
    x = speech_like(10)
    target = mel_statistics(speech_like(10, seed=1))
    with pytest.raises(ValueError, match="unknown statistics matching mode 'median'"):
        match_statistics(x, target, mode="median")
    with pytest.raises(ValueError, match="for 40 mel bins, the log-mel has 80"):
        match_statistics(x, mel_statistics(speech_like(10, n_mels=40)))
    with pytest.raises(ValueError, match=r"expected a log-mel \(n_mels, frames\)"):
        match_statistics(x[None], target)
    with pytest.raises(ValueError, match="log-mel 2 has 40 mel bins"):
        mel_statistics([x, speech_like(10, n_mels=40)])
    with pytest.raises(ValueError, match="at least one"):
        mel_statistics([])
    with pytest.raises(ValueError, match="floor_db must be > 0"):
        active_frames(x, floor_db=0.0)
    with pytest.raises(ValueError, match="unknown statistics matching mode"):
        VoiceConverter(tiny_adain(), device="cpu", match_stats="both")
    with pytest.raises(ValueError, match=r"spread_weight must be in \[0, 1\], got 2.0"):
        VoiceConverter(tiny_adain(), device="cpu", spread_weight=2.0)


# ---------------------------------------------------------------------------------------------
# in the converter
# ---------------------------------------------------------------------------------------------
def test_converter_output_takes_the_references_statistics() -> None:
    model = tiny_adain()
    plain = VoiceConverter(model, device="cpu", chunk_seconds=4.0, match_stats="none")
    matched = VoiceConverter(model, device="cpu", chunk_seconds=4.0, spread_weight=1.0)
    half = VoiceConverter(model, device="cpu", chunk_seconds=4.0)  # default mean_std, weight 0.5
    assert half.match_stats == "mean_std" and half.spread_weight == DEFAULT_SPREAD_WEIGHT
    src = harmonic(12.0)  # long: converted in chunks, matched once over the whole output
    refs = [harmonic(1.5, f0=210.0, am=3.0, seed=1), harmonic(1.2, f0=190.0, seed=2)]
    mel, ref_mels = matched.features(src), matched.reference_features(refs)
    raw = model.normalizer.inverse
    target = mel_statistics([log_mel(r) for r in refs])
    torch.testing.assert_close(matched.reference_statistics(ref_mels).mean, target.mean)

    # Over the speech frames of the model's own output, the matched output has the references'
    # statistics.
    before = raw(plain.convert_mel(mel, ref_mels))
    speech = active_frames(before)
    assert 0 < speech.sum() < speech.numel()
    mean, std = stats_of(raw(matched.convert_mel(mel, ref_mels))[:, speech])
    torch.testing.assert_close(mean, target.mean, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(std, target.std, atol=1e-3, rtol=1e-3)
    # The untrained model's own output is far from those statistics: the step did the work.
    assert (mel_statistics(before).mean - target.mean).abs().max() > 1.0
    # The default moves the spread half-way (geometric mean of the model's and the references').
    own_std = stats_of(before[:, speech])[1]
    mean, std = stats_of(raw(half.convert_mel(mel, ref_mels))[:, speech])
    torch.testing.assert_close(mean, target.mean, atol=1e-3, rtol=1e-3)
    ratio = (target.std.clamp_min(1e-3) / own_std.clamp_min(1e-3)).clamp(0.25, 4.0)
    torch.testing.assert_close(std, own_std * ratio.sqrt(), atol=1e-3, rtol=1e-3)

    # Precomputed speaker and statistics give the same output; a speaker alone is refused.
    speaker, stats = matched.speaker_embedding(ref_mels), matched.reference_statistics(ref_mels)
    torch.testing.assert_close(
        matched.convert_mel(mel, speaker=speaker, statistics=stats),
        matched.convert_mel(mel, ref_mels),
    )
    with pytest.raises(ValueError, match="match_stats='mean_std' needs the references' statist"):
        matched.convert_mel(mel, speaker=speaker)
    torch.testing.assert_close(
        plain.convert_mel(mel, speaker=speaker), plain.convert_mel(mel, ref_mels)
    )


def test_cli_match_stats_option() -> None:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    base = ["convert", "--model", "m", "--source", "s.wav", "--target", "r.wav", "--out", "o.wav"]
    assert parser.parse_args(base).match_stats == "mean_std"
    assert parser.parse_args([*base, "--match-stats", "none"]).match_stats == "none"
    with pytest.raises(SystemExit):
        parser.parse_args([*base, "--match-stats", "median"])
    assert parser.parse_args(base).spread_weight == DEFAULT_SPREAD_WEIGHT
    assert parser.parse_args([*base, "--spread-weight", "1"]).spread_weight == 1.0
    for bad in ("1.5", "-1", "half"):
        with pytest.raises(SystemExit):
            parser.parse_args([*base, "--spread-weight", bad])
