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


def _main_one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """main() in this process: exit status 2 and one line on stderr."""
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("seqae: error: "), lines
    return lines[0]


@pytest.mark.parametrize(
    ("recipe", "text", "message"),
    [
        ("summary_ae", "base: {configs}/summary_ae\noutput_dir: null\n",
         "output_dir cannot be null; expected a string"),
        ("summary_ae", "base: {configs}/summary_ae\ntrain:\n  steps: null\n",
         "train.steps cannot be null; expected an integer"),
        ("summary_ppo", "base: {configs}/summary_ppo\nppo:\n  lr: null\n",
         "ppo.lr cannot be null; expected a number"),
        ("summary_ae", "{full}", "missing key eval, which the default config summary_ae.yaml"),
        ("summary_ae", "{full}eval:\n  split: test\n", "missing keys eval.max_words, "),
        ("summary_ae", "{full}eval: {{}}\nbogus: 1\n", "unknown config key 'bogus'"),
    ],
)  # fmt: skip
def test_a_config_file_is_checked_like_overrides(
    recipe: str, text: str, message: str, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seqae.cli import recipes_dir

    configs = recipes_dir() / "configs"
    # the default config up to its eval section: a full config without `eval:`
    full = (configs / "summary_ae.yaml").read_text().split("\neval:")[0] + "\n"
    path = tmp_path / "mine.yaml"
    path.write_text(text.format(configs=configs, full=full))
    out = tmp_path / "run"
    argv = ["run", recipe, "--config", str(path), f"output_dir={out}"]
    line = _main_one_line_exit_2(argv, capsys)
    assert f"config file {path}: " in line and message in line
    assert not out.exists()


def test_a_config_file_value_of_the_wrong_type_is_refused(
    tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    from seqae.cli import recipes_dir

    text = (recipes_dir() / "configs" / "summary_ae.yaml").read_text()
    assert "\n  steps: 1500" in text
    path = tmp_path / "mine.yaml"
    path.write_text(text.replace("\n  steps: 1500", "\n  steps: abc", 1))
    line = _main_one_line_exit_2(["run", "summary_ae", "--config", str(path)], capsys)
    assert "train.steps='abc' has type str, but the default config summary_ae.yaml's" in line


def test_an_invalid_yaml_config_is_one_line(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("seed: 0\ntrain:\n  steps: [1, 2\n  lr: 3\n")
    line = _main_one_line_exit_2(["run", "summary_ae", "--config", str(path)], capsys)
    assert f"config file {path} is not valid YAML: line 4, column 5: expected ','" in line


def test_a_stray_word_is_named_alone(tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "summary_ae", "--config", "summary_ae_tiny", f"output_dir={tmp_path}", "train"]
    line = _main_one_line_exit_2(argv, capsys)
    assert "unrecognized arguments: train;" in line and "key=value" in line
    assert "output_dir" not in line


def test_a_null_override_says_the_key_cannot_be_null(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["run", "summary_ae", "--config", "summary_ae_tiny", "train.steps=null"]
    line = _main_one_line_exit_2(argv, capsys)
    assert "train.steps cannot be null; expected an integer" in line


def _shipped_configs() -> list[tuple[str, str]]:
    import re

    from seqae.cli import available_configs, recipes_dir

    pairs = []
    for name in available_configs():
        first = (recipes_dir() / "configs" / f"{name}.yaml").read_text().splitlines()[0]
        match = re.fullmatch(r"# seqae run (\w+)(?: --config \w+)?", first)
        assert match, f"{name}.yaml: first line {first!r}"
        pairs.append((match.group(1), name))
    return pairs


@pytest.mark.parametrize(("recipe", "config"), _shipped_configs())
def test_every_shipped_config_loads_as_seqae_run_loads_it(recipe: str, config: str) -> None:
    from seqae.cli import recipe_config, recipes_dir
    from seqae.config import config_keys, load_config

    _, cfg = recipe_config(recipe, config=config)  # what `seqae run` hands main()
    default = load_config(recipes_dir() / "configs" / f"{recipe}.yaml")
    assert "base" not in cfg and set(config_keys(default)) <= set(config_keys(cfg))
