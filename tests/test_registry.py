"""The registry: lookup errors, spec recording, and plugin discovery through entry points."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from seqae import registry
from seqae.registry import Registry, UnknownComponentError


def _write_plugin(
    root: Path, *, dist: str = "seqae_fakeplugin", module: str = "fake_seqae_plugin"
) -> None:
    """A minimal installed distribution: a module plus a dist-info declaring a seqae.plugins entry point."""
    (root / f"{module}.py").write_text(
        textwrap.dedent(
            """
            import torch
            from seqae.core.base import BottleneckOutput

            class Doubler(torch.nn.Module):
                def __init__(self, *, factor: float = 2.0):
                    super().__init__()
                    self.factor = factor

                def forward(self, h):
                    return BottleneckOutput(h * self.factor, h.new_zeros(()), {})

            def register(registry):
                registry.register("bottleneck", "doubler", Doubler)
            """
        )
    )
    info = root / f"{dist}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[seqae.plugins]\nfake = {module}:register\n")


def test_builtins_are_registered_through_the_entry_point() -> None:
    reg = Registry()
    assert set(reg.names("bottleneck")) >= {"identity", "gaussian", "vq", "binary", "onehot"}
    assert set(reg.names("encoder")) >= {"mlp", "conv1d", "conv2d"}
    assert "core" in reg.plugins


def test_entry_point_plugin_is_discovered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _write_plugin(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry()
    assert "fake" in reg.plugins or "doubler" in reg.names("bottleneck")
    bn = reg.build("bottleneck", {"name": "doubler", "factor": 3.0})
    out = bn(torch.ones(2, 4))
    assert torch.equal(out.z, torch.full((2, 4), 3.0))
    assert bn.seqae_spec == {"name": "doubler", "factor": 3.0}
    assert reg._origin[("bottleneck", "doubler")] == "fake"


def test_entry_point_plugin_is_listed_by_the_cli(tmp_path: Path) -> None:
    _write_plugin(tmp_path)
    env_path = f"{tmp_path}"
    out = subprocess.run(
        [sys.executable, "-m", "seqae.cli", "list"],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
        check=True,
    ).stdout
    assert "doubler" in out and "fake" in out


def test_unknown_name_lists_choices_and_suggests() -> None:
    with pytest.raises(
        UnknownComponentError, match=r"did you mean 'gaussian'.*registered bottlenecks: .*vq"
    ):
        registry.get("bottleneck", "gausian")
    with pytest.raises(UnknownComponentError, match="unknown component kind 'nope'"):
        registry.get("nope", "x")


def test_bad_spec_and_bad_kwargs_are_clear() -> None:
    with pytest.raises(ValueError, match="'name' key"):
        registry.build("bottleneck", {"latent_dim": 3})
    with pytest.raises(TypeError, match="cannot build bottleneck 'gaussian'"):
        registry.build("bottleneck", {"name": "gaussian", "latent_dim": 3, "no_such_arg": 1})


def test_shadowing_a_name_is_refused() -> None:
    reg = Registry(autoload=False)
    reg.register("bottleneck", "x", dict)
    reg.register("bottleneck", "x", dict)  # same object again is fine
    with pytest.raises(ValueError, match="already registered"):
        reg.register("bottleneck", "x", list)


def test_broken_plugin_names_itself(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    info = tmp_path / "brokenplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: brokenplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[seqae.plugins]\nbroken = no_such_module_xyz:register\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError, match="plugin 'broken'.*failed to import"):
        Registry().names()


def test_a_plugin_schedule_and_model_work_from_a_recipe_config(tmp_path: Path) -> None:
    """A third-party plugin's schedule is usable by name in a recipe's config, end to end."""
    (tmp_path / "sched_plugin.py").write_text(
        textwrap.dedent(
            """
            from dataclasses import dataclass

            @dataclass
            class Halfway:
                name = "halfway"
                start: float = 0.0
                end: float = 1.0
                steps: int = 10

                def __call__(self, step):
                    return self.start if step < self.steps // 2 else self.end

            def register(registry):
                registry.register("schedule", "halfway", Halfway)
            """
        )
    )
    info = tmp_path / "schedplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: schedplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[seqae.plugins]\nsched = sched_plugin:register\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-m", "seqae.cli", "run", "vae_digits", "--config", "vae_digits_tiny",
         f"output_dir={out}", "train.epochs=1", "train.beta.name=halfway"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "halfway" in (out / "config.yaml").read_text()
    # without the plugin the same config is refused in one line naming the choices
    env["PYTHONPATH"] = ""
    proc = subprocess.run(
        [sys.executable, "-m", "seqae.cli", "run", "vae_digits", "--config", "vae_digits_tiny",
         f"output_dir={tmp_path / 'other'}", "train.epochs=1", "train.beta.name=halfway"],
        capture_output=True, text=True, env=env,
    )  # fmt: skip
    assert proc.returncode == 2 and "unknown schedule 'halfway'" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
