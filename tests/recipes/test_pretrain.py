"""pretrain on its tiny config: outputs, aggregation, layer-wise pretraining, resume, bad input."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import pytest
import torch

from seqae.cli import find_recipe, load_recipe, run_recipe
from seqae.config import ConfigError
from seqae.training import MetricLogger, RunFolderError
from tests.recipes.resume_checks import Interrupted, interrupt_at_call

TINY = "pretrain_tiny"
recipe = load_recipe(find_recipe("pretrain"))
NO_LOG = MetricLogger(".", enabled=False)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("pretrain") / "run"
    metrics = run_recipe("pretrain", config=TINY, overrides=[f"output_dir={out}"])
    return out, metrics


@pytest.fixture(scope="module")
def data():
    return recipe.load_data({"data": {"val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}})


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    assert (out / "config.yaml").read_text().startswith("# seqae run pretrain")
    assert (out / "figures" / "accuracy.png").stat().st_size > 1000
    assert any((out / "tb").iterdir())
    assert json.loads((out / "metrics.json").read_text()) == metrics
    assert metrics["seeds"] == [0, 1]
    assert [p.name for p in sorted((out / "parts").iterdir())] == ["seed_0.json", "seed_1.json"]


def test_metrics_aggregate_the_per_seed_results(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    seeds = [json.loads((out / "parts" / f"seed_{s}.json").read_text()) for s in (0, 1)]
    assert set(metrics["test_accuracy"]) == set(metrics["gain"]) == {"3", "10"}
    for n in ("3", "10"):
        for init in ("random", "pretrained"):
            s = metrics["test_accuracy"][n][init]
            assert s["per_seed"] == [r["budgets"][n][init]["test_accuracy"] for r in seeds]
            assert all(0.0 <= a <= 1.0 for a in s["per_seed"])
            assert s["mean"] == pytest.approx(statistics.fmean(s["per_seed"]))
            assert s["std"] == pytest.approx(statistics.stdev(s["per_seed"]))
        g = metrics["gain"][n]
        pre, rnd = (metrics["test_accuracy"][n][i]["per_seed"] for i in ("pretrained", "random"))
        assert g["per_seed"] == pytest.approx([p - r for p, r in zip(pre, rnd, strict=True)])
        assert g["mean"] == pytest.approx(
            metrics["test_accuracy"][n]["pretrained"]["mean"]
            - metrics["test_accuracy"][n]["random"]["mean"]
        )
        assert g["seeds_better"] + g["seeds_worse"] <= 2
    assert metrics["n_train_unlabelled"] == 1259
    assert len(metrics["pretrain_final_loss"]) == 2  # one per hidden layer


def test_resume_reads_back_finished_seeds(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    path = out / "parts" / "seed_1.json"
    before = path.stat().st_mtime_ns
    again = run_recipe("pretrain", config=TINY, overrides=[f"output_dir={out}", "resume=true"])
    assert path.stat().st_mtime_ns == before
    assert again["test_accuracy"] == metrics["test_accuracy"]


def test_interrupted_then_resumed_run_matches_uninterrupted(
    tiny_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop the run after its first seed, then resume=true: the uninterrupted run's numbers."""
    _, uninterrupted = tiny_run
    resume_seeds = interrupt_at_call(monkeypatch, recipe, "run_seed", call=2)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        run_recipe("pretrain", config=TINY, overrides=[f"output_dir={out}"])
    assert [p.name for p in (out / "parts").iterdir()] == ["seed_0.json"]
    assert not (out / "metrics.json").exists()
    resume_seeds()
    resumed = run_recipe("pretrain", config=TINY, overrides=[f"output_dir={out}", "resume=true"])
    timing = ("seconds",)
    assert {k: v for k, v in resumed.items() if k not in timing} == {
        k: v for k, v in uninterrupted.items() if k not in timing
    }


def test_a_finished_run_is_extended_with_more_seeds(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """num_seeds may grow on resume: the finished seeds are reused, the new one is run."""
    out, first = tiny_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    more = run_recipe(
        "pretrain", config=TINY, overrides=[f"output_dir={copy}", "resume=true", "num_seeds=3"]
    )
    assert more["seeds"] == [0, 1, 2]
    for n in ("3", "10"):
        for init in ("random", "pretrained"):
            per_seed = more["test_accuracy"][n][init]["per_seed"]
            assert per_seed[:2] == first["test_accuracy"][n][init]["per_seed"]
    assert (copy / "parts" / "seed_2.json").is_file()


def test_pretraining_trains_hidden_layers_in_place_and_leaves_the_output_layer(data) -> None:
    torch.manual_seed(0)
    model_cfg = {"hidden": [32, 16], "activation": "relu", "dropout": 0.0}
    clf = recipe.build_classifier(model_cfg)
    blocks = list(clf.layers)
    before = {k: v.clone() for k, v in clf.state_dict().items()}
    pre_cfg = {"epochs": 1, "batch_size": 64, "lr": 1e-3, "noise": 0.2, "noise_kind": "masking"}
    x = data.x_train[:512]

    one = recipe.pretrain_layers(clf, x, pre_cfg, activation="relu", seed=0, logger=NO_LOG, tag="t")
    assert list(clf.layers) == blocks  # the same modules, trained in place
    after = clf.state_dict()
    for i in range(2):
        assert not torch.equal(after[f"layers.{i}.0.weight"], before[f"layers.{i}.0.weight"])
    torch.testing.assert_close(after["layers.2.0.weight"], before["layers.2.0.weight"])
    torch.testing.assert_close(after["layers.2.0.bias"], before["layers.2.0.bias"])

    torch.manual_seed(0)
    longer = recipe.build_classifier(model_cfg)
    six = recipe.pretrain_layers(
        longer, x, {**pre_cfg, "epochs": 6}, activation="relu", seed=0, logger=NO_LOG, tag="t"
    )
    assert len(one) == len(six) == 2
    assert six[0] < one[0]  # the first layer's reconstruction loss goes down with training


def test_finetune_keeps_the_best_validation_weights(data) -> None:
    torch.manual_seed(0)
    clf = recipe.build_classifier({"hidden": [32], "activation": "relu", "dropout": 0.0})
    idx = recipe.sample_per_class(data.y_train, 5, generator=torch.Generator().manual_seed(0))
    vidx = recipe.sample_per_class(data.y_val, 5, generator=torch.Generator().manual_seed(0))
    # 50 labels and a high learning rate: the validation loss turns up after a few dozen epochs
    ft = {"max_epochs": 60, "batch_size": 16, "lr": 0.05, "weight_decay": 0.0, "patience": 10}
    fit = recipe.finetune(
        clf,
        data.x_train[idx],
        data.y_train[idx],
        data.x_val[vidx],
        data.y_val[vidx],
        ft,
        seed=0,
        logger=NO_LOG,
        tag="t",
    )
    val_loss = torch.nn.functional.cross_entropy(clf(data.x_val[vidx]), data.y_val[vidx]).item()
    assert val_loss == pytest.approx(fit["best_val_loss"], rel=1e-6)
    assert fit["best_epoch"] < fit["epochs_run"] - 1  # the last epoch was not the best
    assert fit["epochs_run"] == fit["best_epoch"] + 1 + 10  # stopped when patience ran out
    assert not clf.training


def test_sample_per_class_is_balanced_seeded_and_without_repeats(data) -> None:
    def draw(seed: int) -> torch.Tensor:
        return recipe.sample_per_class(
            data.y_train, 7, generator=torch.Generator().manual_seed(seed)
        )

    a = draw(0)
    assert len(a) == 70 and len(a.unique()) == 70
    assert torch.equal(torch.bincount(data.y_train[a], minlength=10), torch.full((10,), 7))
    assert torch.equal(a, draw(0))
    assert not torch.equal(a, draw(1))


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("labels_per_class=[]", "non-empty list"),
        ("labels_per_class=[0]", "positive integer"),
        ("labels_per_class=[5,5]", "must not repeat"),
        ("labels_per_class=[10,500]", r"labels_per_class=500 is more than the smallest class"),
        ("val_per_class=0", "val_per_class must be a positive integer"),
        ("val_per_class=50", r"val_per_class=50 is more than the smallest class of the validation"),
        ("num_seeds=0", "num_seeds must be at least 1"),
        ("model.hidden=[]", "at least one positive hidden-layer size"),
        ("pretrain.noise=1.0", "< 1 for masking noise"),
        ("finetune.patience=0", "finetune.patience must be at least 1"),
    ],
)
def test_impossible_settings_stop_before_training(
    tmp_path: Path, override: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        run_recipe("pretrain", config=TINY, overrides=[override, f"output_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())  # the run folder was not claimed


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (torch.rand(10, 63), torch.zeros(10, dtype=torch.long), "shape"),
        (torch.rand(0, 64), torch.zeros(0, dtype=torch.long), "empty"),
        (torch.rand(10, 64), torch.zeros(9, dtype=torch.long), "shape"),
        (torch.rand(10, 64) + 1, torch.zeros(10, dtype=torch.long), r"\[0, 1\]"),
        (torch.rand(10, 64), torch.full((10,), 10), r"0\.\.9"),
    ],
)
def test_bad_datasets_are_rejected(x: torch.Tensor, y: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        recipe.check_labelled_images(x, y, name="train")


def test_resume_refuses_results_run_with_other_settings(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    with pytest.raises(RunFolderError, match=r"another config \(pretrain\.noise 0\.2 -> 0\.3\)"):
        run_recipe(
            "pretrain",
            config=TINY,
            overrides=[f"output_dir={out}", "resume=true", "pretrain.noise=0.3"],
        )
