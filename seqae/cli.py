"""The ``seqae`` command.

    seqae list                                   recipes, their configs, registered components
    seqae run RECIPE [--config NAME] [k=v ...]   run a recipe (also under torchrun)

A recipe is a script ``recipes/NAME.py`` with a ``main(cfg: dict)`` function; its configs are
``recipes/configs/*.yaml``, the default being ``NAME.yaml``. ``key=value`` overrides use dotted
keys (``train.lr=3e-4``); a key the config does not have is rejected with the list of valid keys.
A ``--config`` file is checked against the recipe's default config by the same rules.
Plugins add subcommands by registering a ``cli`` component: a function ``add_parser(subparsers)``
that adds a parser whose ``func`` default takes the parsed arguments.

Under torchrun the same command runs on every process:

    torchrun --nproc_per_node=2 -m seqae.cli run vae_digits
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

from seqae.errors import UsageError

__all__ = [
    "main",
    "recipes_dir",
    "find_recipe",
    "find_config",
    "load_recipe",
    "recipe_config",
    "run_recipe",
    "int_at_least",
]

#: Keys every recipe run takes though its config need not list them (see RunSession).
RUN_KEYS = ("overwrite",)


def recipes_dir() -> Path:
    """Where recipes live: ``$SEQAE_RECIPES_DIR``, else the installed ``seqae.recipes`` (the
    source tree's ``recipes/`` folder in an editable install, a copy in a wheel)."""
    env = os.environ.get("SEQAE_RECIPES_DIR")
    if env:
        return Path(env)
    spec = importlib.util.find_spec("seqae.recipes")
    if spec is not None and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(__file__).resolve().parent.parent / "recipes"


def available_recipes() -> dict[str, Path]:
    """Recipe name -> script path."""
    root = recipes_dir()
    if not root.is_dir():
        return {}
    return {p.stem: p for p in sorted(root.glob("*.py")) if not p.name.startswith("_")}


def available_configs(recipe: str | None = None) -> list[str]:
    """Config names (``recipes/configs/*.yaml`` stems), those of one recipe when given."""
    root = recipes_dir() / "configs"
    names = sorted(p.stem for p in root.glob("*.yaml")) if root.is_dir() else []
    if recipe is not None:
        names = [n for n in names if n == recipe or n.startswith(recipe + "_")]
    return names


def find_recipe(name: str) -> Path:
    """A recipe by name (``recipes/NAME.py``) or by path to a script."""
    path = Path(name)
    if path.suffix == ".py" and path.is_file():
        return path
    recipes = available_recipes()
    if name not in recipes:
        raise UsageError(
            f"unknown recipe {name!r}; available recipes: "
            f"{', '.join(recipes) or '(none found in ' + str(recipes_dir()) + ')'}"
        )
    return recipes[name]


def find_config(recipe: str, config: str | None) -> Path:
    """The YAML config: ``--config`` as a path or a name in ``recipes/configs``, else ``RECIPE.yaml``."""
    name = config or Path(recipe).stem
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise UsageError(f"config file {path} not found")
        return path
    candidate = recipes_dir() / "configs" / f"{name}.yaml"
    if not candidate.is_file():
        raise UsageError(
            f"no config named {name!r}; configs for {Path(recipe).stem}: "
            f"{', '.join(available_configs(Path(recipe).stem)) or '(none)'}"
        )
    return candidate


def load_recipe(path: Path) -> ModuleType:
    """Import a recipe script as a module (it is not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"seqae_recipe_{path.stem}", path)
    if spec is None or spec.loader is None:
        raise UsageError(f"cannot import recipe {path}")
    module = importlib.util.module_from_spec(spec)
    # Registered before running it, as the import system does: dataclasses and pickling look
    # a module up by name while it executes.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    if not callable(getattr(module, "main", None)):
        raise UsageError(f"recipe {path} has no main(cfg) function")
    return module


def recipe_config(
    recipe: str, *, config: str | None = None, overrides: Sequence[str] = ()
) -> tuple[ModuleType, dict[str, Any]]:
    """A recipe's module and the config ``seqae run`` gives its ``main``.

    The config file (``--config``, else the recipe's default ``recipes/configs/RECIPE.yaml``)
    is checked against the default config with the rules of the ``key=value`` overrides (same
    keys, same types, null only where the default is null or the recipe's ``NULLABLE_KEYS``
    names the key); then the overrides are applied.

    Args:
        recipe: A recipe name or the path to a recipe script.
        config: ``--config``: a config name or a YAML path; None for the default.
        overrides: ``key=value`` strings.

    Raises:
        UsageError: The recipe or config cannot be found.
        ConfigError: One line naming the file or the override, the key and what was expected.
    """
    from seqae.config import ConfigError, apply_overrides, check_config, load_config

    script = find_recipe(recipe)
    cfg_path = find_config(str(script), config)
    module = load_recipe(script)
    nullable = tuple(getattr(module, "NULLABLE_KEYS", ()))
    cfg = load_config(cfg_path)
    default = recipes_dir() / "configs" / f"{script.stem}.yaml"
    if default.is_file() and default.resolve() != cfg_path.resolve():
        try:
            cfg = check_config(
                cfg,
                load_config(default),
                extra_keys=RUN_KEYS,
                nullable=nullable,
                schema_name=f"the default config {default.name}",
            )
        except ConfigError as exc:
            raise ConfigError(f"config file {cfg_path}: {exc}") from None
    cfg = apply_overrides(cfg, list(overrides), extra_keys=RUN_KEYS, nullable=nullable)
    return module, cfg


def run_recipe(recipe: str, *, config: str | None = None, overrides: Sequence[str] = ()) -> Any:
    """Load a recipe and its config (:func:`recipe_config`), apply ``key=value`` overrides,
    and call ``main(cfg)``.

    Under torchrun the process group the recipe started is destroyed when it returns (after
    a barrier), so every rank exits cleanly.
    """
    module, cfg = recipe_config(recipe, config=config, overrides=overrides)
    from seqae.training.distributed import cleanup

    result = module.main(cfg)
    # Only after a normal finish: a rank that failed exits with its error, and tearing the
    # group down there could wait forever on ranks still inside a collective. The barrier
    # first: without it a rank that destroys its group early still aborted now and then (1 in
    # 40 two-process runs under load, against 0 in 60 with it). Ranks that return while
    # rank 0 evaluates alone wait here, within the process group's timeout.
    cleanup(wait=True)
    return result


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type for a plugin command's flags: an integer of at least ``minimum``
    (``--threads``, ``--pairs``, ``--beam``, ...).

    Args:
        minimum: The smallest value accepted.
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{text!r}: must be an integer >= {minimum}")
        return value

    return parse


def _cmd_list(args: argparse.Namespace) -> int:
    from seqae import registry

    print("recipes (seqae run NAME [--config CONFIG] [key=value ...]):")
    for name in available_recipes():
        print(f"  {name:<24} configs: {', '.join(available_configs(name)) or '(none)'}")
    print("components:")
    for kind, names in registry.names().items():
        print(f"  {kind:<12} {', '.join(names)}")
    print(f"plugins: {', '.join(registry.REGISTRY.plugins)}")
    for name, reason in registry.REGISTRY.unavailable.items():
        print(f"  {name}: not loaded: {reason}")
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    run_recipe(args.recipe, config=args.config, overrides=args.overrides)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from seqae import registry

    parser = argparse.ArgumentParser(prog="seqae", description="Autoencoder recipes and tools.")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="list recipes, configs and registered components")
    p_list.set_defaults(func=_cmd_list)

    p_run = sub.add_parser("run", help="run a recipe")
    p_run.add_argument("recipe", help="recipe name (see `seqae list`) or path to a recipe script")
    p_run.add_argument(
        "--config", default=None, help="config name in recipes/configs or a YAML path"
    )
    p_run.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, dotted keys"
    )
    p_run.set_defaults(func=_cmd_run)

    # `seqae data NAME`: each plugin adds the builder of its embedded dataset
    builders = registry.names("data_builder")
    if builders:
        p_data = sub.add_parser("data", help="build an embedded dataset (offline)")
        data_sub = p_data.add_subparsers(dest="data_command", required=True)
        for name in builders:
            registry.get("data_builder", name)(data_sub)

    for name in registry.names("cli"):
        registry.get("cli", name)(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``seqae`` command; a user's mistake exits 2 with one line on stderr."""
    from seqae.errors import EXIT_USAGE, user_errors

    try:
        return _main(argv)
    except user_errors() as exc:
        message = str(exc).strip() or type(exc).__name__
        print(f"seqae: error: {message}", file=sys.stderr)
        return EXIT_USAGE


def _main(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    # key=value overrides may follow options (`run r --config c a=1`), which argparse's
    # positional matching cannot take after an option: collect those leftovers here.
    args, extra = parser.parse_known_args(argv)
    if extra:
        if getattr(args, "command", None) != "run":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        bad = [e for e in extra if "=" not in e or e.startswith("-")]
        if bad:  # name only those: the key=value overrides beside them are fine
            raise UsageError(
                f"run: unrecognized arguments: {' '.join(bad)}; "
                "seqae run takes --config NAME and overrides that look like key=value "
                "(e.g. train.lr=1e-3)"
            )
        args.overrides = [*args.overrides, *extra]
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
