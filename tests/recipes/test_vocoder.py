"""The vocoder recipe on its tiny config: training, outputs, resume, evaluation, errors; and the
vc recipe's ``eval.vocoder``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seqae.audio.neural_vocoder import ISTFTVocoder, load_vocoder
from seqae.cli import run_recipe
from seqae.config import ConfigError
from seqae.training import CheckpointManager
from tests.recipes.precision_checks import assert_bf16_is_a_rounding
from tests.recipes.resume_checks import Interrupted, comparable
from tests.recipes.test_vc import interrupt_after_checkpoint, resolved_config

TINY = "vocoder_tiny"


def _run(out: Path, corpus: Path, *overrides: str) -> dict:
    return run_recipe(
        "vocoder", config=TINY, overrides=[f"output_dir={out}", f"data.corpus={corpus}", *overrides]
    )


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vocoder") / "run"
    return out, _run(out, corpus)


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    for name in ("config.yaml", "metrics.json", "eval_table.md", "model/config.json"):
        assert (out / name).is_file(), name
    assert (out / "figures" / "vocoder_mels.png").stat().st_size > 1000
    assert len(list((out / "samples").glob("*_trained.wav"))) == 1
    assert len(list((out / "samples").glob("*_griffin_lim.wav"))) == 1
    assert any((out / "tb").iterdir())
    assert CheckpointManager(out / "checkpoints").latest_path is not None
    on_disk = json.loads((out / "metrics.json").read_text())["eval"]
    assert on_disk["unseen"]["trained"] == pytest.approx(metrics["eval"]["unseen"]["trained"])
    vocoder = load_vocoder(out / "model")
    assert isinstance(vocoder, ISTFTVocoder)
    assert sum(p.numel() for p in vocoder.parameters()) == metrics["train"]["parameters"]
    assert metrics["train"]["steps"] == 8
    # the per-bin statistics were fitted on the corpus
    assert vocoder.normalizer.mean.abs().sum() > 0


def test_evaluation_scores_the_original_and_both_vocoders(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    ev = metrics["eval"]
    assert set(ev) == {"seen", "unseen"}  # flite_kal16 is a training voice, flite_awb unseen
    for role in ev.values():
        assert list(role) == ["original", "griffin_lim", "trained"]
        # the original against itself: identical log-mel, similarity 1
        assert role["original"]["mel_l1"] == 0.0
        assert role["original"]["similarity"] == pytest.approx(1.0, abs=1e-5)
        for system in ("griffin_lim", "trained"):
            s = role[system]
            assert s["n"] == 1 and s["mel_l1"] > 0 and s["wer"] >= 0 and s["wer_se"] >= 0
            assert -1 <= s["similarity"] < 1
    assert "| unseen | trained | 1 |" in (out / "eval_table.md").read_text()
    rows = json.loads((out / "eval_rows.json").read_text())
    assert len(rows) == 2 * 3  # two utterances, three systems
    assert {(r["group"], r["system"]) for r in rows} == {
        (g, s) for g in ("seen", "unseen") for s in ("original", "griffin_lim", "trained")
    }


def test_interrupted_then_resumed_run_equals_the_uninterrupted_one(
    tiny_run: tuple[Path, dict],
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    # killed after its step-4 checkpoint (of 8), then resumed in the same folder: the same
    # weights (normaliser statistics included) and training summary as the straight run; the
    # evaluation, which only reads the weights, is left out
    straight, straight_metrics = tiny_run
    out = tmp_path / "run"
    interrupt_after_checkpoint(monkeypatch, step=4)
    with pytest.raises(Interrupted):
        _run(out, corpus, "eval.enabled=false")
    monkeypatch.undo()
    capsys.readouterr()
    metrics = _run(out, corpus, "resume=true", "eval.enabled=false")
    assert "vocoder: resumed from step_00000004.pt (step 4)" in capsys.readouterr().out
    assert metrics["train"]["steps"] == 8 and "eval" not in metrics
    assert comparable(metrics["train"]) == comparable(straight_metrics["train"])
    a, b = load_vocoder(out / "model"), load_vocoder(straight / "model")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_bf16_precision_trains_in_bf16(corpus: Path, tmp_path: Path) -> None:
    # the same seed and crops in float32 and in bf16 autocast: the bf16 rounding must show in the
    # weights (so the setting reaches the training step), and stay a rounding, not a divergence
    weights, val = {}, {}
    for precision in ("fp32", "bf16"):
        metrics = _run(
            tmp_path / precision, corpus, f"train.precision={precision}", "eval.enabled=false"
        )
        assert metrics["train"]["precision"] == precision
        weights[precision] = load_vocoder(tmp_path / precision / "model").state_dict()
        val[precision] = metrics["train"]["final_val"]["loss"]
    assert_bf16_is_a_rounding(weights, val)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.segment_frames=4", "data.segment_frames must be >= 8"),
        ("train.lr=0", "train.lr must be positive"),
        ("train.warmup_steps=8", r"train.warmup_steps must be in \[0, steps\)"),
        ("eval.utterances_per_voice=0", "eval.utterances_per_voice must be at least 1"),
        ("train.precision=fp16", "train.precision must be one of auto, fp32, bf16, got 'fp16'"),
    ],
)
def test_bad_settings_are_refused_before_training(
    override: str, message: str, corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        _run(tmp_path / "r", corpus, override)
    assert not (tmp_path / "r").exists()


def test_unknown_evaluation_voice_is_named_before_training(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"eval.voices \['nobody'\] are not in the corpus"):
        _run(tmp_path / "r", corpus, "eval.voices=[flite_awb,nobody]")
    assert not (tmp_path / "r").exists()  # the folder is not taken: the corrected run may use it


@pytest.mark.parametrize("config", ["vocoder", "vocoder_tiny"])
def test_feature_settings_can_be_overridden(config: str) -> None:
    from seqae.audio.features import FeatureConfig

    cfg = resolved_config("vocoder", config, "features.n_mels=64")
    assert FeatureConfig.from_dict(cfg["features"]) == FeatureConfig(n_mels=64)
    assert FeatureConfig.from_dict(resolved_config("vocoder", config)["features"]) == (
        FeatureConfig()
    )
    with pytest.raises(ConfigError, match="unknown config key 'features.n_mel'"):
        resolved_config("vocoder", config, "features.n_mel=64")
    assert (
        resolved_config("vocoder", config, "train.max_minutes=null")["train"]["max_minutes"] is None
    )


def test_vc_recipe_evaluates_with_a_trained_vocoder(
    tiny_run: tuple[Path, dict], corpus: Path, tmp_path: Path
) -> None:
    vc = lambda out, *o: run_recipe(  # noqa: E731
        "vc", config="vc_tiny", overrides=[f"output_dir={out}", f"data.corpus={corpus}", *o]
    )
    vocoder = tiny_run[0] / "model"
    # no conversions between the unseen voices: the vocoder is what this test is about
    metrics = vc(tmp_path / "vc", f"eval.vocoder={vocoder}", "eval.pair_voices=[]")
    ceiling = metrics["eval"]["seen"]["ceiling"]
    assert ceiling["n"] == 4 and ceiling["mcd"] > 0
    # refused before anything trains: a folder that is not a vocoder, by name, and a vocoder
    # made for other feature settings, naming the settings that differ
    vc_model = tmp_path / "vc" / "model"
    with pytest.raises(ConfigError, match=f"eval.vocoder: {vc_model} is not a vocoder"):
        vc(tmp_path / "other", f"eval.vocoder={vc_model}")
    with pytest.raises(ConfigError, match=r"uses other feature settings \(n_mels: 64 vs 80\)"):
        vc(tmp_path / "other", f"eval.vocoder={vocoder}", "features.n_mels=64")
    assert not (tmp_path / "other").exists()
