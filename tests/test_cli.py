"""The seqae command: list, run, and its errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seqae.cli import main


def _seqae(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "seqae.cli", *args], capture_output=True, text=True
    )


def test_list_shows_recipes_configs_and_components(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "vae_digits" in out and "vae_digits_tiny" in out
    for name in ("gaussian", "vq", "binary", "onehot", "identity", "mlp", "conv1d", "autoencoder"):
        assert name in out


def test_unknown_recipe_lists_available() -> None:
    proc = _seqae("run", "no_such_recipe")
    assert proc.returncode != 0
    assert "unknown recipe 'no_such_recipe'" in proc.stderr and "vae_digits" in proc.stderr


def test_unknown_config_lists_configs() -> None:
    proc = _seqae("run", "vae_digits", "--config", "nope")
    assert proc.returncode != 0 and "vae_digits_tiny" in proc.stderr


def test_unknown_override_key_lists_valid_keys() -> None:
    proc = _seqae("run", "vae_digits", "--config", "vae_digits_tiny", "model.latent=3")
    assert proc.returncode != 0
    assert "model.latent" in proc.stderr and "model.latent_dim" in proc.stderr


def test_stray_argument_is_an_error() -> None:
    proc = _seqae("run", "vae_digits", "--config", "vae_digits_tiny", "--bogus")
    assert proc.returncode != 0 and "unrecognized arguments: --bogus" in proc.stderr


def test_recipe_module_can_define_dataclasses(tmp_path) -> None:
    from seqae.cli import load_recipe

    script = tmp_path / "dc_recipe.py"
    script.write_text(
        "from __future__ import annotations\n"
        "from dataclasses import dataclass\n\n"
        "@dataclass\nclass Point:\n    x: int\n\n"
        "def main(cfg):\n    return Point(cfg['x'])\n"
    )
    assert load_recipe(script).main({"x": 3}).x == 3
