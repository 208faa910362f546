"""The vc recipe on its tiny config: corpus build, training, outputs, resume, evaluation, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from seqae.audio.convert import VoiceConverter
from seqae.audio.models import AutoVC, load_vc_model
from seqae.cli import find_config, find_recipe, load_recipe, run_recipe
from seqae.config import ConfigError, apply_overrides, load_config
from seqae.training import CheckpointManager, RunFolderError, RunSession
from tests.recipes.precision_checks import assert_bf16_is_a_rounding
from tests.recipes.resume_checks import Interrupted, comparable

TINY = "vc_tiny"


def _run(out: Path, corpus: Path, *overrides: str) -> dict:
    return run_recipe(
        "vc", config=TINY, overrides=[f"output_dir={out}", f"data.corpus={corpus}", *overrides]
    )


def interrupt_after_checkpoint(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Make the run stop with :class:`Interrupted` right after it checkpoints ``step``, as a
    run killed there would (``monkeypatch.undo()`` ends it)."""
    real_save = RunSession.save

    def save(self: RunSession, at: int, **kwargs) -> Path:
        path = real_save(self, at, **kwargs)
        if at == step:
            raise Interrupted(f"after the checkpoint of step {at}")
        return path

    monkeypatch.setattr(RunSession, "save", save)


def resolved_config(recipe: str, config: str, *overrides: str) -> dict:
    """A recipe's config with ``overrides``, as ``seqae run`` resolves it, and validated."""
    module = load_recipe(find_recipe(recipe))
    cfg = apply_overrides(
        load_config(find_config(recipe, config)),
        list(overrides),
        nullable=getattr(module, "NULLABLE_KEYS", ()),
    )
    module.validate(cfg)
    return cfg


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, corpus: Path) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vc") / "run"
    return out, _run(out, corpus)


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    for name in (
        "config.yaml",
        "metrics.json",
        "eval_table.md",
        "model/config.json",
        "model/model.safetensors",
    ):
        assert (out / name).is_file(), name
    for fig in ("embeddings", "conversion_mels"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    assert len(list((out / "samples").glob("*.converted.wav"))) >= 2
    assert CheckpointManager(out / "checkpoints").latest_path is not None
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["train"] == pytest.approx(metrics["train"])
    assert on_disk["eval"]["unseen"]["converted"] == pytest.approx(
        metrics["eval"]["unseen"]["converted"]
    )
    assert metrics["train"]["steps"] == 12 and metrics["train"]["train_speakers"] == 4


def test_evaluation_table_is_complete_and_sane(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    ev = metrics["eval"]
    for group in ("seen", "unseen"):
        for system in ("converted", "ceiling", "floor"):
            row = ev[group][system]
            assert row["n"] == 4
            assert -1 <= row["sim_target"] <= 1 and 0 <= row["closer"] <= 1
            assert row["wer"] >= 0 and row["mcd"] >= 0
            assert row["wer_se"] >= 0 and row["wer_low"] <= row["wer"] <= row["wer_high"]
        # the unconverted source is itself: similarity 1 to the source, never closer to target
        assert ev[group]["floor"]["sim_source"] == pytest.approx(1.0, abs=1e-5)
        assert ev[group]["floor"]["closer"] == 0.0
        # Griffin-Lim resynthesis of the target's own speech sounds like the target
        assert ev[group]["ceiling"]["sim_target"] > ev[group]["floor"]["sim_target"]
        assert ev[group]["ceiling"]["closer"] == 1.0
        assert ev[group]["ceiling"]["mcd"] < ev[group]["floor"]["mcd"]
    probe = ev["probe"]
    assert probe["speaker_embedding"]["n_classes"] == 4
    table = (out / "eval_table.md").read_text()
    assert "| unseen | ceiling |" in table and "Speaker probe" in table
    # WER per kind of source voice, for converted and floor, adding up to the group's pairs
    assert ev["exclude_related"] is True and "except voices of the target's own speaker" in table
    assert ev["match_stats"] == "mean_std" and ev["spread_weight"] == 0.5
    assert "log-mel statistics (mean_std, spread weight 0.5)" in table
    for group in ("seen", "unseen"):
        by_kind = ev[group]["wer_by_source_kind"]
        assert set(by_kind) <= {"espeak-ng", "flite", "perturbed"}
        assert sum(v["n"] for v in by_kind.values()) == ev[group]["converted"]["n"]
        assert all(v["converted"] >= 0 and v["floor"] >= 0 for v in by_kind.values())
    assert "WER by source kind (converted / floor)" in table
    # the unseen voices converted to each other: vc_tiny's pair_voices, awb <-> rms (two men)
    assert ev["pair_voices"] == ["flite_awb", "flite_rms"] and "unseen_cross_sex" not in ev
    row = ev["unseen_same_sex"]["converted"]
    assert row["n"] == 2 * 2  # two directions, two held-out sentences each
    for key in ("sim_target", "sim_source", "closer"):
        assert row[f"{key}_low"] <= row[key] <= row[f"{key}_high"] and row[f"{key}_se"] >= 0
    same = ev["unseen_same_sex"]
    assert same["floor"]["closer"] == 0.0 and same["ceiling"]["closer"] == 1.0
    assert "| unseen -> unseen, same sex | converted | 4 |" in table
    rows = json.loads((out / "eval_pairs.json").read_text())
    same_sex = {(r["source"], r["target"]) for r in rows if r["group"] == "unseen_same_sex"}
    assert same_sex == {("flite_awb", "flite_rms"), ("flite_rms", "flite_awb")}
    # slt's perturbed copy is a variant of the target's own voice: never a source for slt
    assert not [
        r for r in rows if r["target"] == "flite_slt" and r["source"].startswith("pert_flite_slt")
    ]


def test_each_reference_count_converts_the_same_sources(tiny_run: tuple[Path, dict]) -> None:
    """vc_tiny evaluates with 1 and with 2 references; the second is compared pair for pair."""
    out, metrics = tiny_run
    by_count = metrics["eval_by_references"]
    assert set(by_count) == {"1", "2"}
    assert by_count["1"] == metrics["eval"] and metrics["eval"]["n_references"] == 1
    assert by_count["2"]["n_references"] == 2 and "probe" not in by_count["2"]
    rows = json.loads((out / "eval_pairs.json").read_text())

    def conversions(count: int) -> list[tuple]:
        return [
            (r["target"], r["source"], r["sentence"], r["references"][0])
            for r in rows
            if r["n_references"] == count and r["system"] == "converted"
        ]

    assert conversions(1) == conversions(2) and len(conversions(1)) == 8 + 4  # + awb <-> rms
    assert {len(r["references"]) for r in rows if r["n_references"] == 2} == {2}
    against = by_count["2"]["against_first"]
    for group in ("seen", "unseen", "unseen_same_sex"):
        assert against[group]["n"] == 4
        assert against[group]["wer_a"] == pytest.approx(metrics["eval"][group]["converted"]["wer"])
        assert against[group]["wer_b"] == pytest.approx(by_count["2"][group]["converted"]["wer"])
    table = (out / "eval_table.md").read_text()
    assert "One-shot conversion, 2 reference(s)" in table
    assert "(A: 1 reference(s); B: 2 reference(s))" in table


def test_trained_model_converts_a_file(tiny_run: tuple[Path, dict], corpus: Path, tmp_path) -> None:
    out, _ = tiny_run
    model = load_vc_model(out / "model")
    assert model.model_type == "adain_vc"
    # the normalisation statistics were fitted on the corpus, not left at 0 / 1
    assert model.normalizer.mean.abs().sum() > 0 and not torch.allclose(
        model.normalizer.std, torch.ones_like(model.normalizer.std)
    )
    src = corpus / "wav" / "espeak_us_m1" / "espeak_us_m1_111.wav"
    ref = corpus / "wav" / "flite_awb" / "flite_awb_112.wav"
    converted = VoiceConverter.from_pretrained(out / "model").convert_file(
        src, [ref], tmp_path / "o.wav"
    )
    assert converted.is_file() and converted.stat().st_size > 1000


def test_interrupted_then_resumed_run_equals_the_uninterrupted_one(
    tiny_run: tuple[Path, dict],
    corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    # killed after its step-6 checkpoint (of 12), then resumed in the same folder: the same
    # weights and training summary as the straight run, because batches and warps depend only
    # on (seed, step) and the session restores the RNG, the optimizer and the LR schedule. The
    # evaluation is left out (it only reads the weights): it is the slow part of a tiny run.
    straight, straight_metrics = tiny_run
    out = tmp_path / "run"
    interrupt_after_checkpoint(monkeypatch, step=6)
    with pytest.raises(Interrupted):
        _run(out, corpus, "resume=true", "eval.enabled=false")  # resume=true: starts fresh
    monkeypatch.undo()
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    assert [p.name for p in CheckpointManager(out / "checkpoints").checkpoints()] == [
        "step_00000006.pt"
    ]
    capsys.readouterr()
    metrics = _run(out, corpus, "resume=true", "eval.enabled=false")
    assert "vc: resumed from step_00000006.pt (step 6)" in capsys.readouterr().out
    assert "eval" not in metrics
    assert comparable(metrics["train"]) == comparable(straight_metrics["train"])
    a, b = load_vc_model(out / "model"), load_vc_model(straight / "model")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=name)


def test_resume_reuses_a_finished_evaluation_and_refuses_another_config(
    tiny_run: tuple[Path, dict], corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "copy"
    shutil.copytree(tiny_run[0], out)
    checkpoints = sorted(p.name for p in (out / "checkpoints").iterdir())

    def no_evaluation(*args, **kwargs):
        raise AssertionError("a finished evaluation was computed again")

    monkeypatch.setattr(VoiceConverter, "from_pretrained", no_evaluation)
    metrics = _run(out, corpus, "resume=true")
    # nothing trained (the run was done) and nothing evaluated: the stored evaluation is read
    assert comparable(metrics) == comparable(tiny_run[1])
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == checkpoints
    # the folder belongs to this run: a fresh run is refused, so is a resume with another config
    with pytest.raises(RunFolderError, match="already holds a run"):
        _run(out, corpus)
    with pytest.raises(RunFolderError, match=r"another config \(train.steps 12 -> 14\)"):
        _run(out, corpus, "resume=true", "train.steps=14")


@pytest.mark.parametrize("name", ["vq_vc", "autovc"])
def test_other_model_variants_train(name: str, corpus: Path, tmp_path: Path) -> None:
    metrics = _run(
        tmp_path / name, corpus, f"model.name={name}", "eval.enabled=false", "train.steps=4"
    )
    assert metrics["train"]["steps"] == 4
    assert load_vc_model(tmp_path / name / "model").model_type == name


def test_bf16_precision_trains_in_bf16(corpus: Path, tmp_path: Path) -> None:
    # the same seed and batches in float32 and in bf16 autocast: bf16 rounding must show in the
    # weights (so the setting reaches the training step), and stay a rounding, not a divergence
    runs, val = {}, {}
    for precision in ("fp32", "bf16"):
        metrics = _run(
            tmp_path / precision,
            corpus,
            f"train.precision={precision}",
            "eval.enabled=false",
            "train.steps=4",
        )
        assert metrics["train"]["precision"] == precision
        runs[precision] = load_vc_model(tmp_path / precision / "model").state_dict()
        val[precision] = metrics["train"]["final_val_rec"]
    assert_bf16_is_a_rounding(runs, val)


def test_autovc_code_loss_pass_runs_in_the_training_precision(
    corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # AutoVC encodes its reconstruction a second time for the content-code loss; under bf16
    # that pass must be autocast like the first (in float32 it was the slowest part of a step)
    calls: list[bool] = []
    encode = AutoVC.encode_content

    def spy(self: AutoVC, *args, **kwargs):
        if self.training:
            calls.append(torch.is_autocast_enabled("cpu"))
        return encode(self, *args, **kwargs)

    monkeypatch.setattr(AutoVC, "encode_content", spy)
    _run(
        tmp_path / "autovc",
        corpus,
        "model.name=autovc",
        "train.precision=bf16",
        "eval.enabled=false",
        "train.steps=3",
    )
    assert len(calls) == 6  # three steps, each the model's pass and the code-loss pass
    assert all(calls)


def test_adversary_trains_with_the_model(corpus: Path, tmp_path: Path) -> None:
    metrics = _run(
        tmp_path / "adv", corpus, "adversary.weight=0.1", "eval.enabled=false", "train.steps=4"
    )
    assert metrics["train"]["steps"] == 4
    ckpt = CheckpointManager.read(CheckpointManager(tmp_path / "adv" / "checkpoints").latest_path)
    assert any(k.startswith("adversary.") for k in ckpt["model"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.name=wavenet", "model.name must be one of"),
        ("data.build_preset=huge", "data.build_preset must be one of"),
        ("train.kl_weight=-1", "train.kl_weight must be >= 0"),
        ("data.segment_frames=4", "data.segment_frames must be >= 16"),
        ("augment.content_warp=[1.2,0.8]", "augment.content_warp must be null or"),
        ("augment.speaker_warp=[0.9]", "augment.speaker_warp must be null or"),
        ("augment.speaker_warp_prob=1.5", "augment.speaker_warp_prob must be in"),
        ("eval.match_stats=median", "eval.match_stats must be one of"),
        ("eval.spread_weight=2", r"eval.spread_weight must be a number in \[0, 1\]"),
        ("eval.n_references=[0]", "eval.n_references must be a count >= 1 or a list"),
        ("eval.n_references=[1,1]", "eval.n_references must be a count >= 1 or a list"),
        ("eval.n_references=[]", "eval.n_references must be a count >= 1 or a list"),
        ("train.speaker_noise=-0.1", "train.speaker_noise must be >= 0"),
        ("train.speaker_loss_weight=-1", "train.speaker_loss_weight must be >= 0"),
        ("train.precision=fp16", "train.precision must be one of auto, fp32, bf16"),
    ],
)
def test_bad_settings_are_refused_before_training(
    override: str, message: str, corpus: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        _run(tmp_path / "bad", corpus, override)
    assert not (tmp_path / "bad").exists()


def test_pair_voices_must_be_unseen_voices_of_the_corpus(corpus: Path, tmp_path: Path) -> None:
    for voices in ("[flite_kal16,flite_awb]", "[nobody]"):
        with pytest.raises(ConfigError, match="eval.pair_voices: .* are not unseen voices"):
            _run(tmp_path / "bad", corpus, f"eval.pair_voices={voices}")
        assert not (tmp_path / "bad").exists()  # refused before the run folder is made


def _train_step_inputs(batch: int) -> tuple:
    """The vc recipe module, a tiny AdaIN-VC and a batch of crops (32 frames) and references
    (40 frames) with their lengths, for TrainStep tests."""
    from seqae.cli import find_recipe, load_recipe
    from tests.audio.test_convert import tiny_adain

    g = torch.Generator().manual_seed(0)
    x, ref = torch.randn(batch, 80, 32, generator=g), torch.randn(batch, 80, 40, generator=g)
    lengths, ref_lengths = torch.full((batch,), 32), torch.full((batch,), 40)
    return load_recipe(find_recipe("vc")), tiny_adain(), x, lengths, ref, ref_lengths


def test_speaker_loss_is_ge2e_on_the_crop_and_its_reference() -> None:
    from seqae.audio.speaker_loss import GE2ELoss

    vc, model, x, lengths, ref, ref_lengths = _train_step_inputs(6)
    speakers = torch.tensor([0, 1, 2, 0, 3, 4])
    ge2e = GE2ELoss()
    step = vc.TrainStep(model, None, speaker_loss=ge2e).eval()
    *_, verification = step(x, lengths, ref, ref_lengths, x, speakers)
    expected = ge2e(
        model.encode_speaker(x, lengths), model.encode_speaker(ref, ref_lengths), speakers
    )
    torch.testing.assert_close(verification, expected)
    verification.backward()
    assert model.speaker_encoder.head[-1].weight.grad.abs().sum() > 0
    assert ge2e.scale.grad is not None
    assert step(x, lengths, ref, ref_lengths)[-1] is None  # no crop given: no speaker loss
    assert vc.TrainStep(model, None)(x, lengths, ref, ref_lengths, x, speakers)[-1] is None


def test_unknown_config_key_is_refused(corpus: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown config key 'train.stepz'"):
        _run(tmp_path / "bad", corpus, "train.stepz=3")


@pytest.mark.parametrize("config", ["vc", "vc_tiny", "vc_gpu"])
def test_feature_settings_can_be_overridden(config: str) -> None:
    from seqae.audio.features import FeatureConfig

    cfg = resolved_config("vc", config, "features.n_mels=64", "features.f_max=7600")
    assert FeatureConfig.from_dict(cfg["features"]) == FeatureConfig(n_mels=64, f_max=7600.0)
    # the listed settings are FeatureConfig's defaults
    assert FeatureConfig.from_dict(resolved_config("vc", config)["features"]) == FeatureConfig()
    with pytest.raises(ConfigError, match="unknown config key 'features.n_mel'"):
        resolved_config("vc", config, "features.n_mel=64")
    with pytest.raises(ConfigError, match="features: win_length 2048 must be <= n_fft 1024"):
        resolved_config("vc", config, "features.win_length=2048")


def test_documented_nulls_are_accepted() -> None:
    cfg = resolved_config(
        "vc",
        "vc",
        "train.max_minutes=null",
        "eval.source_kinds=null",
        "augment.content_warp=null",
        "augment.speaker_warp=null",
        "data.sources=null",
    )
    assert cfg["train"]["max_minutes"] is None and cfg["eval"]["source_kinds"] is None
    assert cfg["data"]["sources"] is None  # every source, the foreign voices too
    assert cfg["augment"]["content_warp"] is None and cfg["augment"]["speaker_warp"] is None


def test_corpus_without_speakers_is_refused(tmp_path: Path) -> None:
    from seqae.audio.dataset import SpeechDataError

    root = tmp_path / "empty_corpus"
    (root / "wav").mkdir(parents=True)
    with pytest.raises(SpeechDataError, match="no speakers found"):
        _run(tmp_path / "out", root)


def test_evaluation_can_restrict_the_sources(tiny_run: tuple[Path, dict], corpus: Path) -> None:
    from seqae.audio.dataset import SpeechCorpus, SpeechDataError
    from seqae.audio.evaluate import evaluate_conversion

    out, _ = tiny_run
    converter = VoiceConverter.from_pretrained(out / "model")
    speech = SpeechCorpus(corpus)
    result = evaluate_conversion(
        converter,
        speech,
        seen_targets=["flite_kal16"],
        unseen_targets=[],
        pairs_per_target=2,
        probe=False,
        source_kinds=["perturbed"],
    )
    assert {r["source"] for r in result["pairs"]} == {"pert_flite_slt_x093"}
    assert result["summary"]["source_kinds"] == ["perturbed"]
    with pytest.raises(SpeechDataError, match="no training speaker has a source"):
        evaluate_conversion(
            converter,
            speech,
            seen_targets=["flite_kal16"],
            unseen_targets=[],
            source_kinds=["opera"],
        )


def test_a_voice_left_out_of_training_is_evaluated_as_a_new_one(
    tiny_run: tuple[Path, dict], corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The saved model records the voices it was trained on. Evaluation converts only from
    those, and takes a corpus voice the model never heard (here one left out of its training,
    as data.sources leaves voices out) as a new voice to convert between."""
    from seqae.audio.dataset import SpeechCorpus
    from seqae.audio.evaluate import evaluate_conversion, heard_voices
    from seqae.audio.vc_base import load_vc_model
    from seqae.cli import main

    out, _ = tiny_run
    speech = SpeechCorpus(corpus)
    model = load_vc_model(out / "model")
    assert model.training_speakers == speech.speakers_with_role("train")  # all four
    heard = ["flite_kal16", "flite_slt", "pert_flite_slt_x093"]  # as if trained without espeak
    model.training_speakers = heard
    narrowed = model.save_pretrained(tmp_path / "model")
    assert heard_voices(load_vc_model(narrowed), speech) == heard
    result = evaluate_conversion(
        VoiceConverter.from_pretrained(narrowed),
        speech,
        seen_targets=["flite_slt"],
        unseen_targets=[],
        pairs_per_target=1,
        probe=False,
        pair_voices=["espeak_us_m1", "flite_awb"],
    )
    by_group: dict[str, set[str]] = {}
    for row in result["pairs"]:
        by_group.setdefault(row["group"], set()).add(row["source"])
    assert by_group["seen"] <= {"flite_kal16"}  # slt's own variant is excluded as related
    assert by_group["unseen_same_sex"] == {"espeak_us_m1", "flite_awb"}
    argv = ["vc-eval", "--model", str(narrowed), "--corpus", str(corpus), "--no-probe"]
    argv += ["--seen", "flite_slt", "--out", str(tmp_path / "ev")]
    assert main([*argv, "--pair-voices", "flite_awb", "flite_slt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--pair-voices: flite_slt are training voices of the model" in err[0]
    assert not (tmp_path / "ev").exists()


def test_several_reference_counts_score_as_separate_evaluations(
    tiny_run: tuple[Path, dict], corpus: Path
) -> None:
    # one pass over the pairs with counts [1, 2] must give, row for row, what two separate
    # evaluations give; the ceiling and floor are only scored once in it
    from seqae.audio.dataset import SpeechCorpus
    from seqae.audio.evaluate import evaluate_conversion, evaluate_reference_counts

    out, _ = tiny_run
    converter = VoiceConverter.from_pretrained(out / "model")
    speech = SpeechCorpus(corpus)
    kwargs = {
        "seen_targets": ["flite_kal16"],
        "unseen_targets": ["flite_awb"],
        "pairs_per_target": 2,
        "seed": 3,
    }
    both = evaluate_reference_counts(converter, speech, counts=[1, 2], probe=True, **kwargs)
    assert list(both) == [1, 2]
    for count in (1, 2):
        alone = evaluate_conversion(
            converter, speech, n_references=count, probe=count == 1, **kwargs
        )
        assert len(both[count]["pairs"]) == len(alone["pairs"]) == 12
        assert both[count]["pairs"] == alone["pairs"]
        assert both[count]["summary"] == alone["summary"]
    assert "probe" in both[1]["summary"] and "probe" not in both[2]["summary"]
    for bad in ([], [1, 1], [0, 1], [1.5], [True]):
        with pytest.raises(ValueError, match="counts must be distinct reference counts"):
            evaluate_reference_counts(converter, speech, counts=bad, **kwargs)


def test_vc_eval_with_two_reference_counts(
    tiny_run: tuple[Path, dict], corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from seqae.cli import main

    out, _ = tiny_run
    args = ["vc-eval", "--model", str(out / "model"), "--corpus", str(corpus), "--no-probe"]
    args += ["--seen", "flite_kal16", "--unseen", "flite_awb", "--pairs", "2"]
    args += ["--pair-voices", "flite_awb", "fest_fi_lj"]  # a man and a woman, both unseen
    assert main([*args, "--references", "1", "2", "--out", str(tmp_path / "ev")]) == 0
    data = json.loads((tmp_path / "ev" / "eval.json").read_text())
    assert set(data["by_references"]) == {"1", "2"}
    assert data["summary"] == data["by_references"]["1"]
    against = data["by_references"]["2"]["against_first"]
    assert against["seen"]["n"] == 2 and against["unseen"]["n"] == 2
    assert against["unseen_cross_sex"]["n"] == 4 and "unseen_same_sex" not in against
    counts = [(r["n_references"], len(r["references"])) for r in data["pairs"]]
    # (2 seen + 2 unseen + 4 between awb and fest_fi_lj) x 3 systems x 2 counts
    assert sorted(set(counts)) == [(1, 1), (2, 2)] and len(counts) == 48
    table = (tmp_path / "ev" / "eval_table.md").read_text()
    assert "1 reference(s)" in table and "2 reference(s)" in table
    # each count's rows are read back alone by vc-compare --references
    assert (
        main(["vc-compare", str(tmp_path / "ev"), str(tmp_path / "ev"), "--references", "2"]) == 0
    )
    assert main([*args, "--references", "1", "1"]) == 2
    assert "--references must be distinct counts >= 1" in capsys.readouterr().err


def test_speaker_noise_perturbs_training_embeddings_only() -> None:
    vc, model, x, lengths, ref, ref_lengths = _train_step_inputs(16)
    clean = vc.TrainStep(model, None).train()
    noisy = vc.TrainStep(model, None, speaker_noise=0.5).train()
    model.bottleneck.eval()  # the content code's own sampling off: only the speaker noise differs
    _, _, s_clean, _ = clean(x, lengths, ref, ref_lengths)
    torch.manual_seed(1)
    recon, _, s_noisy, _ = noisy(x, lengths, ref, ref_lengths)
    # noise of 0.5 batch standard deviations per dimension
    ratio = ((s_noisy - s_clean).std(dim=0) / s_clean.std(dim=0)).mean()
    assert 0.35 < ratio < 0.65, ratio
    # the decoder saw the noisy embedding, and gradients still reach the speaker encoder
    content = model.encode_content(x, lengths).z
    torch.testing.assert_close(recon, model.decode(content, s_noisy, length=32))
    recon.abs().mean().backward()
    assert model.speaker_encoder.head[-1].weight.grad.abs().sum() > 0
    # evaluation mode: no noise
    _, _, s_eval, _ = noisy.eval()(x, lengths, ref, ref_lengths)
    torch.testing.assert_close(s_eval, model.encode_speaker(ref, ref_lengths))
