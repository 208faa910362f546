"""onehot_classify on its tiny config: outputs, restart selection, resume, bad settings; and
the pieces of its objective on inputs with known answers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

import seqae
from seqae.cli import find_recipe, load_recipe, run_recipe
from seqae.config import ConfigError
from seqae.core.classifier import OneHotClassifier
from seqae.metrics.clustering import clustering_accuracy
from seqae.training import RunFolderError
from tests.recipes.resume_checks import Interrupted, interrupt_at_call

TINY = "onehot_classify_tiny"


@pytest.fixture(scope="module")
def recipe() -> ModuleType:
    return load_recipe(find_recipe("onehot_classify"))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("onehot") / "run"
    metrics = run_recipe("onehot_classify", config=TINY, overrides=[f"output_dir={out}"])
    return out, metrics


def _results(metrics: dict[str, Any]) -> dict[str, Any]:
    """Everything but the wall-clock time."""
    return {k: v for k, v in metrics.items() if k != "train_seconds"}


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    assert (out / "config.yaml").is_file()
    for fig in ("clusters", "confusion", "seeds"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    for seed in (0, 1):
        for restart in (0, 1):
            part = out / "parts" / f"seed{seed}_restart{restart}"
            assert (
                json.loads(part.with_suffix(".json").read_text())["val_loss"]
                == (metrics["seeds"][seed]["val_losses"][restart])
            )
            assert isinstance(OneHotClassifier.from_pretrained(part), OneHotClassifier)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk["onehot_acc"] == pytest.approx(metrics["onehot_acc"])
    assert on_disk["kmeans_acc"] == pytest.approx(metrics["kmeans_acc"])


def test_saved_model_loads_with_load_pretrained_and_gives_the_reported_accuracy(
    tiny_run: tuple[Path, dict], recipe: ModuleType
) -> None:
    out, metrics = tiny_run
    model = seqae.load_pretrained(out / "model")
    assert isinstance(model, OneHotClassifier)
    assert json.loads((out / "model" / "config.json").read_text())["model_type"] == (
        "onehot_classifier"
    )
    data = recipe.load_data(
        {
            "data": {"val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0},
            "model": {"num_categories": 10},
            "objective": {"neighbors": 5},
        }
    )
    # model/ holds the first seed's kept restart: its test accuracy is the one reported
    accuracy = clustering_accuracy(data["y_test"], model.classify(data["x_test"]))
    assert accuracy == metrics["onehot_acc_per_seed"][0]


def test_resume_reuses_finished_restarts(tiny_run: tuple[Path, dict], capsys) -> None:
    out, first = tiny_run
    again = run_recipe(
        "onehot_classify", config=TINY, overrides=[f"output_dir={out}", "resume=true"]
    )
    assert "seed1_restart1: reused from an earlier session" in capsys.readouterr().out
    assert _results(again) == _results(first)


def test_a_fresh_run_into_a_used_folder_is_refused(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    with pytest.raises(RunFolderError, match="already holds a run"):
        run_recipe("onehot_classify", config=TINY, overrides=[f"output_dir={out}"])


def test_interrupted_then_resumed_run_matches_uninterrupted(
    tiny_run: tuple[Path, dict], recipe: ModuleType, tmp_path: Path, monkeypatch
) -> None:
    """Stop the run after its first two parts (seed 0's restarts), then resume=true: the
    result is the uninterrupted run's."""
    _, uninterrupted = tiny_run
    resume_training = interrupt_at_call(monkeypatch, recipe, "train_one", call=3)
    out = tmp_path / "run"
    with pytest.raises(Interrupted):
        run_recipe("onehot_classify", config=TINY, overrides=[f"output_dir={out}"])
    assert sorted(p.name for p in (out / "parts").glob("*.json")) == [
        "seed0_restart0.json",
        "seed0_restart1.json",
    ]
    assert not (out / "metrics.json").exists()
    resume_training()
    resumed = run_recipe(
        "onehot_classify", config=TINY, overrides=[f"output_dir={out}", "resume=true"]
    )
    assert _results(resumed) == _results(uninterrupted)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("model.num_categories=1", "num_categories must be at least 2"),
        ("model.style_dim=64", r"style_dim must be in 0\.\.63"),
        ("train.restarts=0", "train.restarts must be at least 1"),
        ("train.seeds=[1,1]", "distinct seeds"),
        ("objective.neighbors=5000", "needs more than 5000 training images"),
        ("model.num_categories=2000", "cannot fill model.num_categories=2000"),
        ("objective.augment.scale=1.5", r"scale in \[0, 1\)"),
    ],
)
def test_impossible_setting_stops_before_training(
    tmp_path: Path, override: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        run_recipe("onehot_classify", config=TINY, overrides=[override, f"output_dir={tmp_path}"])
    assert not any(tmp_path.iterdir())  # the run folder was not claimed


def test_wrong_shape_or_empty_images_are_refused(recipe: ModuleType) -> None:
    good = {f"x_{s}": torch.rand(30, 64) for s in ("train", "val", "test")}
    with pytest.raises(ValueError, match=r"train images.*64"):
        recipe.check_data({**good, "x_train": torch.rand(30, 32)}, num_categories=3, neighbors=2)
    with pytest.raises(ValueError, match="test images"):
        recipe.check_data({**good, "x_test": torch.rand(0, 64)}, num_categories=3, neighbors=2)
    recipe.check_data(good, num_categories=3, neighbors=2)  # fine


def test_clustering_loss_known_values(recipe: ModuleType) -> None:
    k = 4
    q = torch.eye(k).repeat(3, 1)  # confident, every category equally used
    loss, consistency, entropy = recipe.clustering_loss(q, q, entropy_weight=2.0)
    assert consistency.item() == pytest.approx(0.0, abs=1e-6)
    assert entropy.item() == pytest.approx(math.log(k))
    assert loss.item() == pytest.approx(-2.0 * math.log(k))
    # disagreeing pairs are penalised: <q_a, q_b> = 0 -> -log(1e-8)
    _, bad, _ = recipe.clustering_loss(q, q.roll(1, dims=1), entropy_weight=2.0)
    assert bad.item() == pytest.approx(-math.log(1e-8))


def test_augment_keeps_shape_and_zero_warp_is_identity(recipe: ModuleType) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 64)
    none = {"shift": 0.0, "rotate": 0.0, "scale": 0.0}
    torch.testing.assert_close(recipe.augment(x, none, gen), x, atol=1e-6, rtol=0)
    moved = recipe.augment(x, {"shift": 1.0, "rotate": 15.0, "scale": 0.1}, gen)
    assert moved.shape == (5, 64) and not torch.allclose(moved, x)
    # a whole-pixel shift moves the image by one column
    img = torch.zeros(1, 8, 8)
    img[0, 3, 3] = 1.0
    theta_shift = {"shift": 1.0, "rotate": 0.0, "scale": 0.0}
    out = recipe.augment(img.view(1, 64), theta_shift, torch.Generator().manual_seed(1)).view(8, 8)
    assert out.sum().item() == pytest.approx(1.0, abs=1e-5)  # mass moves, is not lost


def test_objective_separates_well_separated_groups(recipe: ModuleType) -> None:
    """Three groups of noisy copies of three images: the one-hot code must find them."""
    gen = torch.Generator().manual_seed(0)
    protos = torch.zeros(3, 64)
    protos[0, :20], protos[1, 22:42], protos[2, 44:] = 1.0, 1.0, 1.0
    y = torch.arange(3).repeat_interleave(40)
    x = (protos[y] + 0.05 * torch.randn(120, 64, generator=gen)).clamp(0, 1)
    data = {"x_train": x, "x_val": x[::4], "y_val": y[::4]}
    cfg = {
        "model": {"hidden": [32, 16], "num_categories": 3, "style_dim": 0, "hard": True},
        "objective": {
            "neighbors": 3,
            "entropy_weight": 2.0,
            "reconstruction_weight": 0.01,
            "augment": {"shift": 0.0, "rotate": 0.0, "scale": 0.0},
        },
        "train": {
            "epochs": 30,
            "batch_size": 40,
            "lr": 3e-3,
            "temperature": {"start": 1.0, "end": 0.5, "rate": 1e-2, "every": 1},
            "log_every": 1000,
            "compile": False,
        },
    }
    from seqae.training import MetricLogger

    neighbors = recipe.nearest_neighbors(x, 3)
    assert (y[neighbors] == y[:, None]).all()  # the mined neighbours share the group
    model, info = recipe.train_one(
        cfg,
        data,
        neighbors,
        seed=0,
        device=torch.device("cpu"),
        logger=MetricLogger(".", enabled=False),
        tag="t",
    )
    assert clustering_accuracy(y, model.classify(x)) == 1.0
    assert info["val_loss"] < 0
    assert model.prototypes().shape == (3, 64)
