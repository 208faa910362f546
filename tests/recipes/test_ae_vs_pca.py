"""ae_vs_pca on its tiny config: outputs, PCA correctness, best weights kept, resume between code
sizes, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from sklearn.decomposition import PCA as SkPCA

from seqae.cli import find_recipe, load_recipe, run_recipe
from seqae.config import ConfigError
from seqae.core import Autoencoder
from seqae.data.digits import load_digits_splits
from seqae.training import RunFolderError
from tests.recipes.resume_checks import Interrupted, comparable, interrupt_after_first_part

TINY = "ae_vs_pca_tiny"
recipe = load_recipe(find_recipe("ae_vs_pca"))


def _run(out: Path, *overrides: str) -> dict:
    return run_recipe("ae_vs_pca", config=TINY, overrides=[f"output_dir={out}", *overrides])


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ae_vs_pca") / "run"
    return out, _run(out)  # one thread, like the tests' own runs (tests/conftest.py)


def _splits():
    return load_digits_splits(val_fraction=0.1, test_fraction=0.2, seed=0)


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    assert (out / "config.yaml").read_text().startswith("# seqae run ae_vs_pca")
    for fig in ("mse_vs_code_size", "reconstructions"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == metrics
    assert set(on_disk["ae_mse"]) == set(on_disk["pca_mse"]) == {"2", "8"}
    for k in ("2", "8"):
        assert 0 < on_disk["ae_mse"][k] < 0.25  # below predicting 0.5 everywhere
        assert on_disk["ratio"][k] == pytest.approx(on_disk["ae_mse"][k] / on_disk["pca_mse"][k])
    assert on_disk["ratio_at_8"] == pytest.approx(on_disk["ratio"]["8"])
    assert on_disk["target_met"] == (on_disk["ratio_at_8"] <= 0.5)
    # more PCA components explain more variance and reconstruct better
    assert on_disk["pca_mse"]["8"] < on_disk["pca_mse"]["2"]
    assert on_disk["n_train"] + on_disk["n_val"] + on_disk["n_test"] == 1797


def test_pca_numbers_match_an_independent_sklearn_fit(tiny_run: tuple[Path, dict]) -> None:
    _, metrics = tiny_run
    data = _splits()
    x_train, x_test = data.train.tensors()[0].numpy(), data.test.tensors()[0].numpy()
    for k in (2, 8):
        sk = SkPCA(n_components=k).fit(x_train)
        mse = ((sk.inverse_transform(sk.transform(x_test)) - x_test) ** 2).mean()
        assert metrics["pca_mse"][str(k)] == pytest.approx(float(mse), rel=1e-5)
        assert metrics["pca_explained_variance_ratio"][str(k)] == pytest.approx(
            float(sk.explained_variance_ratio_.sum()), rel=1e-6
        )


def test_svd_and_sklearn_pca_give_the_same_reconstructions() -> None:
    data = _splits()
    x_train, x_test = data.train.tensors()[0], data.test.tensors()[0]
    a = recipe.fit_pca(x_train, k=5, method="svd")
    b = recipe.fit_pca(x_train, k=5, method="sklearn")
    torch.testing.assert_close(a.reconstruct(x_test), b.reconstruct(x_test), atol=1e-5, rtol=0)
    # orthonormal components; reconstruction is a projection (applying it twice changes nothing)
    torch.testing.assert_close(a.components @ a.components.T, torch.eye(5), atol=1e-5, rtol=0)
    once = a.reconstruct(x_test)
    torch.testing.assert_close(a.reconstruct(once), once, atol=1e-5, rtol=0)


def test_saved_models_hold_the_best_validation_weights(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    x_val = _splits().val.tensors()[0]
    for k in (2, 8):
        model = Autoencoder.from_pretrained(out / "parts" / f"code_{k}")
        assert model.encode(x_val[:3]).z.shape == (3, k)
        val_mse = ((model.reconstruct(x_val) - x_val) ** 2).mean().item()
        assert val_mse == pytest.approx(metrics["ae_val_mse"][str(k)], rel=1e-5)
        summary = json.loads((out / "parts" / f"code_{k}.json").read_text())
        assert summary["best_epoch"] < summary["epochs_run"]


def test_best_weights_are_restored_after_early_stopping() -> None:
    """With a learning rate that wrecks the model after a while, training must hand back the
    best epoch's weights, not the last ones."""
    torch.manual_seed(0)
    data = _splits()
    x_train, x_val = data.train.tensors()[0][:256], data.val.tensors()[0]
    model = recipe.build_model(
        4, {"hidden": [16], "activation": "relu", "noise": 0.0, "noise_kind": "gaussian"}
    )
    cfg = {
        "lr": 0.3,
        "weight_decay": 0.0,
        "epochs": 8,
        "batch_size": 32,
        "patience": 8,
        "min_delta": 0.0,
        "log_every": 1000,
        "compile": False,
    }
    logger = recipe.MetricLogger(".", enabled=False)
    summary = recipe.train_autoencoder(
        model, x_train, x_val, cfg, loss_kind="mse", seed=0, logger=logger, tag="t"
    )
    assert summary["best_epoch"] < summary["epochs_run"] - 1  # the last epoch was not the best
    assert recipe.mse_per_pixel(model.reconstruct, x_val) == pytest.approx(
        summary["best_val_mse"], rel=1e-6
    )


def test_resume_reuses_finished_code_sizes(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    summary = out / "parts" / "code_2.json"
    before = summary.stat().st_mtime_ns
    again = _run(out, "resume=true")
    assert summary.stat().st_mtime_ns == before  # not retrained
    assert comparable(again) == comparable(metrics)


def test_interrupted_then_resumed_run_matches_uninterrupted(
    tiny_run: tuple[Path, dict], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, full = tiny_run
    out = tmp_path / "run"
    interrupt_after_first_part(monkeypatch)
    with pytest.raises(Interrupted, match="code_2"):
        _run(out)
    monkeypatch.undo()
    assert (out / "parts" / "code_2.json").is_file()
    assert not (out / "parts" / "code_8.json").exists() and not (out / "metrics.json").exists()
    assert json.loads((out / "run.json").read_text())["status"] == "interrupted"
    weights = out / "parts" / "code_2" / "model.safetensors"
    written = weights.stat().st_mtime_ns

    with pytest.raises(RunFolderError, match="already holds a run"):
        _run(out)  # without resume=true the folder is not taken over
    resumed = _run(out, "resume=true")
    assert weights.stat().st_mtime_ns == written  # code size 2 was not trained again
    assert comparable(resumed) == comparable(full)
    assert json.loads((out / "metrics.json").read_text()) == resumed


def test_resume_may_add_code_sizes(tiny_run: tuple[Path, dict], tmp_path: Path) -> None:
    _, full = tiny_run
    out = tmp_path / "run"
    _run(out, "code_sizes=[8]")
    extended = _run(out, "resume=true")  # the tiny config's code sizes, 2 and 8
    assert comparable(extended) == comparable(full)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("code_sizes=[]", "non-empty list"),
        ("code_sizes=[0]", r"integer in 1\.\.63"),
        ("code_sizes=[64]", r"integer in 1\.\.63"),
        ("code_sizes=[2,100]", r"integer in 1\.\.63"),
        ("code_sizes=[4,4]", "must not repeat"),
        ("model.hidden=[]", "at least one positive hidden size"),
        ("model.loss=l1", "'bce' or 'mse'"),
        ("model.noise=-0.1", "model.noise must be >= 0"),
        ("pca.method=qr", "'svd' or 'sklearn'"),
        ("train.epochs=0", "train.epochs must be at least 1"),
    ],
)
def test_impossible_settings_stop_before_training(
    tmp_path: Path, override: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        _run(tmp_path, override)
    assert not (tmp_path / "config.yaml").exists()
    assert not (tmp_path / "parts").exists()


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.rand(10, 63), r"shape"),
        (torch.rand(10, 8, 8), r"shape"),
        (torch.rand(0, 64), r"empty"),
        (torch.rand(5, 64) * 16, r"\[0, 1\]"),
    ],
)
def test_bad_datasets_are_rejected(x: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        recipe.check_images(x, name="train images")
    with pytest.raises(ValueError, match=match):
        recipe.fit_pca(x, k=2)


def test_resume_refuses_models_built_with_other_settings(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    with pytest.raises(RunFolderError, match=r"another config \(model\.hidden \[32\] -> \[48\]\)"):
        _run(out, "resume=true", "model.hidden=[48]")
