"""Every shipped config: its first line is the command that runs it, it resolves (overlays
included), and its recipe's validate() accepts it, so no config fails at start-up."""

from __future__ import annotations

import re

import pytest

from seqae.cli import (
    available_configs,
    available_recipes,
    find_config,
    find_recipe,
    load_recipe,
    recipes_dir,
)
from seqae.config import load_config

CONFIGS = available_configs()


def _recipe_of(config: str) -> str:
    first = (recipes_dir() / "configs" / f"{config}.yaml").read_text().splitlines()[0]
    match = re.fullmatch(r"# seqae run (\w+)(?: --config (\w+))?", first)
    assert match, f"{config}.yaml: first line {first!r} is not the command that runs it"
    recipe, named = match.groups()
    assert (named or recipe) == config, f"{config}.yaml: its first line runs {named or recipe}"
    return recipe


def test_every_recipe_has_a_config() -> None:
    recipes = {_recipe_of(c) for c in CONFIGS}
    assert recipes == set(available_recipes())


@pytest.mark.parametrize("config", CONFIGS)
def test_config_resolves_and_validates(config: str) -> None:
    recipe = _recipe_of(config)
    cfg = load_config(find_config(str(find_recipe(recipe)), config))
    assert "base" not in cfg  # overlays are resolved
    module = load_recipe(find_recipe(recipe))
    if hasattr(module, "validate"):
        module.validate(cfg)
