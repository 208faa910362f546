"""Every Python snippet in the README runs as written, and the commands it names exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")
PYTHON_BLOCKS = re.findall(r"```python\n(.*?)```", README, flags=re.S)


def test_the_readme_has_python_snippets() -> None:
    assert PYTHON_BLOCKS, "README.md lost its Python examples"


@pytest.mark.parametrize("index", range(len(PYTHON_BLOCKS)))
def test_python_snippet_runs_as_written(index: int, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # snippets may write files: keep them out of the repository
    code = compile(PYTHON_BLOCKS[index], f"README.md python block {index}", "exec")
    exec(code, {"__name__": f"readme_block_{index}"})


def test_recipe_configs_named_in_the_readme_exist() -> None:
    from seqae.cli import available_configs, available_recipes

    recipes, configs = set(available_recipes()), set(available_configs())
    for recipe in re.findall(r"seqae run (\w+)", README):
        assert recipe in recipes, recipe
    for config in re.findall(r"--config (\w+)", README):
        assert config in configs, config
