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


def _one_line_exit_2(proc: subprocess.CompletedProcess[str]) -> str:
    """A user's mistake: exit 2 and one line on stderr, no traceback."""
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqae: error: "), proc.stderr[-2000:]
    return lines[0]


def test_unknown_recipe_lists_available() -> None:
    proc = _seqae("run", "no_such_recipe")
    _one_line_exit_2(proc)
    assert "unknown recipe 'no_such_recipe'" in proc.stderr and "vae_digits" in proc.stderr


def test_unknown_config_lists_configs() -> None:
    proc = _seqae("run", "vae_digits", "--config", "nope")
    assert "vae_digits_tiny" in _one_line_exit_2(proc)


def test_unknown_override_key_lists_valid_keys() -> None:
    proc = _seqae("run", "vae_digits", "--config", "vae_digits_tiny", "model.latent=3")
    line = _one_line_exit_2(proc)
    assert "model.latent" in line and "model.latent_dim" in line


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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epochs=-3", "train.epochs must be at least 1, got -3"),
        ("train.lr=-1", "train.lr must be positive, got -1"),
        ("train.batch_size=0", "train.batch_size must be at least 1, got 0"),
        ("train.lr=", "train.lr= is empty (null)"),
        ("train.epochs=2.5", "train.epochs=2.5 must be a whole number"),
        ("model.hidden=[32,abc]", "element 'abc' has type str"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(override: str, message: str, tmp_path) -> None:
    proc = _seqae("run", "vae_digits", "--config", "vae_digits_tiny", override,
                  f"output_dir={tmp_path / 'run'}")  # fmt: skip
    assert message in _one_line_exit_2(proc)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_output_dir_that_is_a_file_is_one_line(tmp_path) -> None:
    target = tmp_path / "file.txt"
    target.write_text("keep")
    proc = _seqae("run", "vae_digits", "--config", "vae_digits_tiny", f"output_dir={target}")
    assert "is a file; expected a folder" in _one_line_exit_2(proc)
    assert target.read_text() == "keep"


def test_a_second_run_into_a_folder_in_use_is_refused(tmp_path) -> None:
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "seqae.cli", "run", "vae_digits", f"output_dir={out}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip  (the full config: minutes, killed below)
    try:
        for _ in range(600):  # the run holds its folder once run.json exists
            if (out / "run.json").exists() or first.poll() is not None:
                break
            import time

            time.sleep(0.05)
        assert first.poll() is None, first.communicate()[1][-2000:]
        second = _seqae("run", "vae_digits", f"output_dir={out}", "resume=true")
        assert "is in use by another run (pid" in _one_line_exit_2(second)
    finally:
        first.kill()
        first.wait()
