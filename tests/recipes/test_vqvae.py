"""The vqvae recipe on its tiny config, on digits and on shapes: outputs, resume, the run folder,
bad settings."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from seqae.cli import main as seqae_main
from seqae.cli import run_recipe
from seqae.config import ConfigError
from seqae.core import Autoencoder, VectorQuantizer
from seqae.data.images import ImageDataError
from seqae.metrics import codebook_usage, reconstruction_error
from seqae.training import CheckpointManager, RunFolderError
from tests.recipes.resume_checks import comparable

TINY = "vqvae_tiny"


def _run(out: Path, *overrides: str) -> dict:
    return run_recipe("vqvae", config=TINY, overrides=[f"output_dir={out}", *overrides])


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vqvae") / "digits"
    return out, _run(out)


@pytest.fixture(scope="module")
def shapes_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vqvae") / "shapes"
    return out, _run(out, "data.name=shapes", "model.likelihood=bernoulli")


@pytest.mark.parametrize("which", ["digits_run", "shapes_run"])
def test_tiny_run_writes_every_output(which: str, request: pytest.FixtureRequest) -> None:
    out, metrics = request.getfixturevalue(which)
    for name in ("config.yaml", "metrics.json", "model/config.json", "model/model.safetensors"):
        assert (out / name).is_file(), name
    for fig in ("reconstructions", "codebook_usage"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    assert CheckpointManager(out / "checkpoints").latest_path is not None
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    K = on_disk["codebook_size"]
    assert K == 16
    assert on_disk["test_codes_used"] + on_disk["test_dead_codes"] == K
    assert 1.0 <= on_disk["test_perplexity"] <= on_disk["test_codes_used"] + 1e-9
    assert on_disk["bits_per_sample"] == on_disk["codes_per_sample"] * math.log2(K)
    assert 0 < on_disk["test_mse"] < 0.25


def test_digits_uses_several_code_vectors_per_image(digits_run: tuple[Path, dict]) -> None:
    out, metrics = digits_run
    model = Autoencoder.from_pretrained(out / "model")
    assert isinstance(model.bottleneck, VectorQuantizer)
    out_codes = model.encode(torch.rand(3, 64)).info["indices"]
    assert out_codes.shape == (3, 2)  # model.num_codes = 2 in the tiny config
    assert metrics["codes_per_sample"] == 2 and metrics["dataset"] == "digits"
    # even three epochs beat predicting the mean image
    assert metrics["test_mse"] < metrics["mean_image_mse"]


def test_shapes_uses_a_spatial_code_map(shapes_run: tuple[Path, dict]) -> None:
    out, metrics = shapes_run
    model = Autoencoder.from_pretrained(out / "model")
    assert model.likelihood == "bernoulli"
    # 16x16 images, two stride-2 layers: a 4x4 map of codes
    assert model.encode(torch.rand(2, 1, 16, 16)).info["indices"].shape == (2, 4, 4)
    assert metrics["codes_per_sample"] == 16 and metrics["dataset"] == "shapes"


def test_metrics_match_the_saved_model(digits_run: tuple[Path, dict]) -> None:
    """metrics.json is what the saved model does on the test split (recomputed independently)."""
    from seqae.data import load_digits_splits

    out, metrics = digits_run
    model = Autoencoder.from_pretrained(out / "model")
    x_test = load_digits_splits(val_fraction=0.1, test_fraction=0.2, seed=0).test.tensors()[0]
    assert metrics["n_test"] == len(x_test)
    assert reconstruction_error(model, x_test).mean == pytest.approx(metrics["test_mse"], rel=1e-6)
    model.eval()
    usage = codebook_usage(model.encode(x_test).info["indices"], 16)
    assert usage.perplexity == pytest.approx(metrics["test_perplexity"], rel=1e-6)
    assert usage.used == metrics["test_codes_used"]


def test_interrupted_then_resumed_run_matches_uninterrupted(
    digits_run: tuple[Path, dict], tmp_path: Path
) -> None:
    full, full_metrics = digits_run  # 3 epochs in one go
    part = tmp_path / "part"
    _run(part, "train.epochs=2")
    resumed = _run(part, "train.epochs=3", "resume=true")
    a = CheckpointManager.read(CheckpointManager(full / "checkpoints").latest_path)["model"]
    b = CheckpointManager.read(CheckpointManager(part / "checkpoints").latest_path)["model"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert comparable(resumed) == comparable(full_metrics)
    assert resumed["train_seconds"] > 0


def test_a_used_folder_is_refused_without_resume_or_overwrite(
    digits_run: tuple[Path, dict],
) -> None:
    out, _ = digits_run
    before = (out / "metrics.json").read_text()
    with pytest.raises(RunFolderError, match="already holds a run"):
        _run(out)
    # resume=true under settings that change the result is refused, naming the keys
    with pytest.raises(RunFolderError, match=r"another config \(model\.code_dim 4 -> 8\)"):
        _run(out, "resume=true", "model.code_dim=8")
    assert (out / "metrics.json").read_text() == before


def test_npz_images(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x=(rng.random((40, 8, 8)) > 0.5).astype(np.float32))
    metrics = _run(tmp_path / "run", "data.name=npz", f"data.path={tmp_path / 'd.npz'}",
                   "train.epochs=1")  # fmt: skip
    assert metrics["n_test"] == 8 and metrics["codes_per_sample"] == 4  # 8x8 -> a 2x2 map


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.codebook_size=1"], "codebook_size must be >= 2"),
        (["model.num_codes=65"], "65 code vectors per sample exceed the 64 input values"),
        (["data.name=mnist"], "data.name must be one of digits, shapes, npz"),
        (["data.name=shapes", "data.shapes.resolution=18"], "side divisible by 4; got 18x18"),
        (["data.name=shapes", "data.shapes.n=2"], r"data.shapes.n must be in 3\.\."),
        (["data.test_fraction=0.95"], "must be < 1"),
        (["data.name=npz"], "needs data.path"),
        (["quantizer.decay=1.0"], r"decay must be in \[0, 1\)"),
    ],
)
def test_impossible_settings_stop_before_training(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        _run(tmp_path, *overrides)
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.zeros((10, 5), np.float32), r"expected 3 or 4 dimensions, got 2"),
        (np.zeros((0, 8, 8), np.float32), "is empty"),
        (np.zeros((10, 8, 6), np.float32), "expected square images"),
        (np.full((10, 8, 8), 2.0, np.float32), r"must be in \[0, 1\]"),
        (np.zeros((2, 8, 8), np.float32), "too few to split"),
        (np.full((10, 8, 8), np.nan, np.float32), "non-finite"),
    ],
)
def test_bad_npz_data_stops_before_training(
    tmp_path: Path, array: np.ndarray, message: str
) -> None:
    np.savez(tmp_path / "d.npz", x=array)
    with pytest.raises(ImageDataError, match=message):
        _run(tmp_path / "run", "data.name=npz", f"data.path={tmp_path / 'd.npz'}")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model.codebook_size=1"], "model.codebook_size must be >= 2"),
        (["data.name=npz", "data.path=missing.npz"], "missing.npz"),
    ],
)
def test_command_line_mistakes_give_one_line_and_status_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], overrides: list[str], message: str
) -> None:
    status = seqae_main(
        ["run", "vqvae", "--config", TINY, f"output_dir={tmp_path / 'r'}", *overrides]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("seqae: error: ") and message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_unknown_key_is_rejected_with_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"quantizer\.deacy(.|\n)*quantizer\.decay"):
        _run(tmp_path, "quantizer.deacy=0.5")


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [torchrun, "--standalone", "--nproc_per_node=2", "-m", "seqae.cli", "run", "vqvae",
         "--config", TINY, f"output_dir={out}", "train.epochs=2"],
        capture_output=True, text=True, env=env, cwd=Path(__file__).resolve().parents[2],
        timeout=240,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # each rank sees half of the 1259 training digits: 2 epochs of ceil(1259 / 2 / 64) = 10 steps
    assert metrics["steps"] == 20


@pytest.mark.parametrize(
    ("config", "x_shape", "codes"), [("vqvae", (2, 64), 4), ("vqvae_shapes", (2, 1, 32, 32), 64)]
)
def test_full_configs_are_valid(config: str, x_shape: tuple[int, ...], codes: int) -> None:
    """The full configs pass validation and build their model (training them is not a unit test)."""
    from seqae.cli import find_config, find_recipe, load_recipe
    from seqae.config import load_config
    from seqae.core.vqvae import build_vqvae

    vqvae = load_recipe(find_recipe("vqvae"))
    cfg = load_config(find_config("vqvae", config))
    vqvae.validate(cfg)
    model = build_vqvae(cfg["model"], cfg["quantizer"], torch.zeros(x_shape)).eval()
    indices = model.encode(torch.rand(x_shape)).info["indices"]
    assert math.prod(indices.shape[1:]) == codes
