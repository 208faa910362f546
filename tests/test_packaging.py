"""Packaging: one extra per plugin, a clear message without it, and the recipes in the wheel."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import tomllib
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from seqae.extras import EXTRAS, MissingExtraError, missing_modules, require_extra
from seqae.registry import Registry

REPO = Path(__file__).resolve().parents[1]


def test_every_plugin_extra_is_declared_and_all_names_them() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    for extra, modules in EXTRAS.items():
        assert extra in extras, extra
        names = " ".join(extras[extra]).lower().replace("-", "_")
        for module in modules:
            assert module.replace("-", "_") in names, (extra, module)
    assert extras["all"] == ["seqae[audio,text,tree,demo]"]
    # the core installs without any plugin's dependencies
    core = " ".join(project["dependencies"])
    for module in ("torchaudio", "soundfile", "transformers", "gymnasium", "gradio"):
        assert module not in core, module


def test_a_missing_extra_names_the_extra_to_install(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "soundfile", None)  # as if soundfile were not installed
    assert missing_modules("audio") == ("soundfile",)
    with pytest.raises(
        MissingExtraError,
        match=r"the audio plugin needs seqae's 'audio' extra "
        r"\(soundfile not installed\): pip install 'seqae\[audio\]'",
    ):
        require_extra("audio", feature="the audio plugin")
    require_extra("tree", feature="the tree plugin")  # nothing to miss


def test_importing_the_audio_plugin_without_its_extra_says_which_to_install() -> None:
    code = "import sys; sys.modules['soundfile'] = None\nimport seqae.audio\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "pip install 'seqae[audio]'" in proc.stderr.splitlines()[-1]


def test_the_registry_leaves_out_a_plugin_without_its_extra(tmp_path, monkeypatch) -> None:
    (tmp_path / "needs_extra_plugin.py").write_text(
        textwrap.dedent(
            """
            from seqae.extras import MissingExtraError
            raise MissingExtraError("the demo needs seqae's 'demo' extra", extra="demo",
                                    missing=("gradio",))
            def register(registry):
                pass
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    reg = Registry(autoload=False)
    reg.load_plugins(
        [
            EntryPoint("core", "seqae.core.plugin:register", "seqae.plugins"),
            EntryPoint("needy", "needs_extra_plugin:register", "seqae.plugins"),
        ]
    )
    assert reg.plugins == ["core"] and "vq" in reg.names("bottleneck")
    assert reg.unavailable == {"needy": "the demo needs seqae's 'demo' extra"}


@pytest.mark.slow
def test_the_built_wheel_lists_and_runs_a_tiny_recipe(tmp_path) -> None:
    """A non-editable install of the wheel (no source tree on the path) runs `seqae list` and
    a tiny recipe: the recipes and their configs ship inside the package."""
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "-w", str(wheels), str(REPO)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("seqae-*.whl")
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
         "--target", str(site), str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-2000:]
    # the dependencies come from this environment; seqae itself only from the wheel
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "SEQAE_RECIPES_DIR")}
    env["PYTHONPATH"] = str(site)
    work = tmp_path / "elsewhere"
    work.mkdir()

    def seqae(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "seqae.cli", *args],
            capture_output=True, text=True, env=env, cwd=work,
        )  # fmt: skip

    where = subprocess.run(
        [sys.executable, "-c", "import seqae, seqae.cli; print(seqae.__file__); "
         "print(seqae.cli.recipes_dir())"],
        capture_output=True, text=True, env=env, cwd=work,
    )  # fmt: skip
    module_file, recipes = where.stdout.split()
    assert Path(module_file).is_relative_to(site) and Path(recipes).is_relative_to(site)
    listed = seqae("list")
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "vae_digits" in listed.stdout and "vae_digits_tiny" in listed.stdout
    ran = seqae("run", "vae_digits", "--config", "vae_digits_tiny", "output_dir=out")
    assert ran.returncode == 0, ran.stderr[-3000:]
    metrics = json.loads((work / "out" / "metrics.json").read_text())
    assert 0 < metrics["test_mse"] < 0.25
    assert sysconfig.get_paths()["purelib"]  # the dependencies' environment is this one


def test_the_core_works_without_any_plugin_dependency() -> None:
    """As after `pip install seqae` with no extra: the core imports, `seqae list` works and
    names the plugins it left out."""
    code = textwrap.dedent(
        """
        import sys
        from seqae.extras import EXTRAS
        for modules in EXTRAS.values():
            for name in modules:
                sys.modules[name] = None  # as if not installed
        import seqae.core, seqae.training, seqae.metrics, seqae.data, seqae.codes
        from seqae.cli import main
        sys.exit(main(["list"]))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "vae_digits" in proc.stdout and "autoencoder" in proc.stdout
    assert "audio: not loaded: the audio plugin needs seqae's 'audio' extra" in proc.stdout
    assert "adain_vc" not in proc.stdout
