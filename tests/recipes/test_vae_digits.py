"""The main job, vae_digits, on its tiny config: outputs, resume, torchrun, bad settings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from seqae.cli import run_recipe
from seqae.config import ConfigError
from seqae.core import Autoencoder
from seqae.training import CheckpointManager, RunFolderError

TINY = "vae_digits_tiny"
REPO = Path(__file__).resolve().parents[2]


def _final_state(run_dir: Path) -> dict[str, torch.Tensor]:
    path = CheckpointManager(run_dir / "checkpoints").latest_path
    assert path is not None, f"no checkpoint in {run_dir}"
    return CheckpointManager.read(path)["model"]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("vae") / "run"
    metrics = run_recipe("vae_digits", config=TINY, overrides=[f"output_dir={out}"])
    return out, metrics


def test_tiny_run_writes_every_output(tiny_run: tuple[Path, dict]) -> None:
    out, metrics = tiny_run
    for name in ("config.yaml", "metrics.json", "model/config.json", "model/model.safetensors"):
        assert (out / name).is_file(), name
    for fig in ("reconstructions", "samples", "interpolation", "latent_space"):
        assert (out / "figures" / f"{fig}.png").stat().st_size > 1000, fig
    assert any((out / "tb").iterdir())
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == pytest.approx(metrics)
    for key in ("test_mse", "test_nll", "test_neg_elbo"):
        assert torch.isfinite(torch.tensor(on_disk[key])), key
    # data in [0, 1]: a trained model's pixel MSE is well below that of predicting 0.5 everywhere
    assert 0 < on_disk["test_mse"] < 0.25
    # importance sampling tightens the bound: NLL_k <= -ELBO (up to Monte-Carlo noise)
    assert on_disk["test_nll"] <= on_disk["test_neg_elbo"] + 1.0


def test_saved_model_reloads_and_reconstructs(tiny_run: tuple[Path, dict]) -> None:
    out, _ = tiny_run
    model = Autoencoder.from_pretrained(out / "model")
    x = torch.rand(5, 64)
    assert model.reconstruct(x).shape == (5, 64)
    state = load_file(str(out / "model" / "model.safetensors"))
    assert state.keys() == model.state_dict().keys()


def test_interrupted_then_resumed_run_matches_uninterrupted(tmp_path: Path) -> None:
    full, part = tmp_path / "full", tmp_path / "part"
    run_recipe("vae_digits", config=TINY, overrides=[f"output_dir={full}", "train.epochs=3"])
    run_recipe("vae_digits", config=TINY, overrides=[f"output_dir={part}", "train.epochs=2"])
    run_recipe(
        "vae_digits", config=TINY, overrides=[f"output_dir={part}", "train.epochs=3", "resume=true"]
    )
    a, b = _final_state(full), _final_state(part)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_unknown_key_is_rejected_with_valid_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.lrr(.|\n)*train\.lr"):
        run_recipe("vae_digits", config=TINY, overrides=["train.lrr=0.1", f"output_dir={tmp_path}"])
    assert not (tmp_path / "metrics.json").exists()


def test_impossible_setting_stops_before_training(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="latent_dim must be in 1..64"):
        run_recipe(
            "vae_digits", config=TINY, overrides=["model.latent_dim=100", f"output_dir={tmp_path}"]
        )
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [
            torchrun,
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "seqae.cli",
            "run",
            "vae_digits",
            "--config",
            TINY,
            f"output_dir={out}",
            "train.epochs=2",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2
    # each rank sees half of the data: 2 epochs of ceil(1259 / 2 / 64) = 10 steps
    assert metrics["steps"] == 20


def test_a_folder_holding_another_run_is_never_continued_under_a_new_config(
    tiny_run: tuple[Path, dict], tmp_path: Path
) -> None:
    """The reported case: a finished run, then the same folder with another lr, then that again
    with resume=true. Neither may touch the first run or report its result as the new one's."""
    out = tmp_path / "run"
    shutil.copytree(tiny_run[0], out)
    before = (out / "metrics.json").read_text()
    with pytest.raises(RunFolderError, match="already holds a run; resume=true continues it"):
        run_recipe("vae_digits", config=TINY, overrides=[f"output_dir={out}", "train.lr=3e-3"])
    with pytest.raises(RunFolderError, match=r"another config \(train\.lr 0\.001 -> 0\.003\)"):
        run_recipe(
            "vae_digits",
            config=TINY,
            overrides=[f"output_dir={out}", "train.lr=3e-3", "resume=true"],
        )
    assert (out / "metrics.json").read_text() == before
    fresh = run_recipe(
        "vae_digits",
        config=TINY,
        overrides=[f"output_dir={out}", "train.lr=3e-3", "overwrite=true"],
    )
    assert fresh["test_mse"] != json.loads(before)["test_mse"]


def test_resume_falls_back_from_a_damaged_latest_checkpoint(tmp_path: Path, capsys) -> None:
    out = tmp_path / "run"
    run_recipe("vae_digits", config=TINY, overrides=[f"output_dir={out}", "train.epochs=2"])
    latest = CheckpointManager(out / "checkpoints").latest_path
    latest.write_bytes(latest.read_bytes()[:200])
    capsys.readouterr()
    run_recipe(
        "vae_digits", config=TINY, overrides=[f"output_dir={out}", "train.epochs=3", "resume=true"]
    )
    printed = capsys.readouterr().out
    assert f"{latest.name} is corrupt or truncated" in printed
    assert "resumed from step_00000020.pt" in printed  # the older, intact checkpoint
