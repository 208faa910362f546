"""YAML configs with ``key=value`` command-line overrides.

A recipe's YAML file is its own schema: an override may only set a key the file already has
(plus a few keys the recipe allows explicitly, such as ``output_dir`` or ``resume``), and the
new value must have the default's type. Typos and type slips therefore fail at start-up with a
message that lists what is valid, not three hours into a run.

    cfg = load_config("recipes/configs/vae_mnist.yaml")
    cfg = apply_overrides(cfg, parse_overrides(["optim.lr=3e-4", "model.latent_dim=16"]),
                          extra_keys=("output_dir", "resume"))
    save_config(cfg, run_dir / "config.yaml")

Values are parsed with YAML rules (``3`` is an int, ``1e-3`` a float, ``[1,2]`` a list,
``null`` None, ``foo`` a string). Unlike plain PyYAML, exponent floats without a dot
(``1e-3``, ``5E4``) are floats, both in files and in overrides.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "ConfigError",
    "load_config",
    "load_run_config",
    "parse_overrides",
    "apply_overrides",
    "check_config",
    "save_config",
    "config_keys",
]


class ConfigError(ValueError):
    """A config file or override is invalid; the message says which and why."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that also reads ``1e-3`` as a float (YAML 1.2 behaviour)."""


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_Loader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def _yaml_load(text: str) -> Any:
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def _yaml_problem(exc: yaml.YAMLError) -> str:
    """PyYAML's several-line message as one line: where (line, column) and what is wrong."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or ["error"])[0]
    context = getattr(exc, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return " ".join(f"{where}{problem}{f' ({context})' if context else ''}".split())


BASE_KEY = "base"


def load_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a YAML config file whose top level is a mapping, resolving ``base:`` overlays.

    A config may name another config in ``base:`` (a name in the same folder, without
    ``.yaml``, or a path relative to it) and then state only what differs. An overlay may only
    set keys its base has, with the types the base gives them (the rules of
    :func:`apply_overrides`); a mapping is merged key by key. Bases may themselves have bases.

    Raises:
        ConfigError: The file is missing, empty, not valid YAML, or not a mapping; or an
            overlay names a missing base, forms a cycle, or sets a key its base lacks.
    """
    return _load_config(Path(path), seen=())


def load_run_config(folder: str | os.PathLike[str], *, option: str, recipe: str) -> dict[str, Any]:
    """The resolved config (``config.yaml``) of another run's folder, for a recipe option
    that builds on that run (``warm_start.from_run``, ``teacher.from_run``).

    Args:
        folder: The other run's output folder.
        option: The config key naming it, for the message.
        recipe: The recipe that wrote it, for the message.

    Raises:
        ConfigError: One line, naming ``option`` and ``folder``, when its config is missing or
            unreadable.
    """
    try:
        return load_config(Path(folder) / "config.yaml")
    except (OSError, ConfigError) as exc:
        raise ConfigError(
            f"{option}: {folder} is not a readable {recipe} run folder ({exc})"
        ) from None


def _load_config(path: Path, *, seen: tuple[Path, ...]) -> dict[str, Any]:
    data = _read_mapping(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str) or not base:
        raise ConfigError(f"config file {path}: base must name a config, got {base!r}")
    base_path = path.parent / (base if base.endswith((".yaml", ".yml")) else f"{base}.yaml")
    if base_path.resolve() in seen or base_path.resolve() == path.resolve():
        raise ConfigError(f"config file {path}: base {base!r} forms a cycle")
    if not base_path.is_file():
        raise ConfigError(f"config file {path}: its base {base!r} ({base_path}) does not exist")
    parent = _load_config(base_path, seen=(*seen, path.resolve()))
    # an overlay may turn a setting off: null where its base gives a value (a recipe's run
    # then checks the result against its default config and NULLABLE_KEYS)
    rules = _Rules(
        root=parent, nullable=tuple(_null_keys(data)), label="", schema=f"{base_path.name}'s"
    )
    try:
        return _merged(parent, data, rules)
    except ConfigError as exc:
        raise ConfigError(f"config file {path} (an overlay of {base_path.name}): {exc}") from None


def _null_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of ``cfg`` whose value is null."""
    keys: list[str] = []
    for key, value in cfg.items():
        if value is None:
            keys.append(f"{prefix}{key}")
        elif isinstance(value, Mapping):
            keys.extend(_null_keys(value, f"{prefix}{key}."))
    return keys


def _read_mapping(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}") from exc
    try:
        data = _yaml_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {_yaml_problem(exc)}") from None
    if data is None:
        raise ConfigError(f"config file {path} is empty; it must contain a YAML mapping")
    if not isinstance(data, dict):
        raise ConfigError(
            f"config file {path} must contain a YAML mapping at the top level, "
            f"got a {type(data).__name__}"
        )
    return data


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """Parse ``["a.b=3", "lr=1e-3", "name=foo", "sizes=[1,2]"]`` into ``{dotted_key: value}``.

    Values are YAML scalars/flow collections; ``key=`` gives None. Later duplicates win.
    """
    return _parse_overrides(items)[0]


def _parse_overrides(items: Iterable[str]) -> tuple[dict[str, Any], frozenset[str]]:
    """:func:`parse_overrides`, and the keys written ``key=`` (no value, as against ``null``)."""
    parsed: dict[str, Any] = {}
    empty: set[str] = set()
    for item in items:
        if not isinstance(item, str) or "=" not in item:
            raise ConfigError(f"override {item!r} must look like key=value (e.g. optim.lr=1e-3)")
        key, _, raw = item.partition("=")
        key = key.strip()
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override {item!r} has an empty key or key segment")
        try:
            parsed[key] = _yaml_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"override {item!r}: value is not valid YAML ({_yaml_problem(exc)})"
            ) from None
        if raw.strip():
            empty.discard(key)
        else:
            empty.add(key)
    return parsed, frozenset(empty)


def config_keys(cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    """Every dotted key of ``cfg``, mappings and leaves alike, in file order."""
    keys: list[str] = []
    for key, value in cfg.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        if isinstance(value, Mapping):
            keys.extend(config_keys(value, dotted + "."))
    return keys


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


#: What a value must be to replace a default of each type, in words (bool before int).
_EXPECTED = (
    (bool, "true or false"),
    (int, "an integer"),
    (float, "a number"),
    (str, "a string"),
    (list, "a list"),
    (Mapping, "a mapping"),
)


def _expected(default: Any) -> str:
    """What a value must be to replace ``default``, in words."""
    words = (text for kind, text in _EXPECTED if isinstance(default, kind))
    return next(words, f"a {type(default).__name__}")


@dataclass(frozen=True)
class _Rules:
    """How values are checked against a schema, and how a refusal is worded.

    Attributes:
        root: The schema (listed in an unknown key's message).
        allowed: Keys that may be set though the schema lacks them.
        nullable: Keys that may be null though the schema gives them a value.
        empty: Keys written ``key=`` on the command line (said to be empty, not null).
        label: What a value is called in messages (``"override "`` or nothing).
        schema: Whose value the expected type comes from (``"the config's"``).
    """

    root: Mapping[str, Any]
    allowed: tuple[str, ...] = ()
    nullable: tuple[str, ...] = ()
    empty: frozenset[str] = frozenset()
    label: str = "override "
    schema: str = "the config's"


def _coerce(key: str, default: Any, value: Any, rules: _Rules) -> Any:
    """Check ``value`` against the type of ``default``; return the value to store."""
    if default is None or (value is None and key in rules.nullable):  # a null default: anything
        return value
    if value is None:
        if key in rules.empty:
            raise ConfigError(
                f"{rules.label}{key}= is empty (null), but {rules.schema} value {default!r} has "
                f"type {_type_name(default)}; give a value"
            )
        raise ConfigError(
            f"{key} cannot be null; expected {_expected(default)} ({rules.schema} value is "
            f"{default!r})"
        )
    if isinstance(default, bool) or isinstance(value, bool):
        if isinstance(default, bool) and isinstance(value, bool):
            return value
    elif isinstance(default, float) and isinstance(value, int | float):
        return float(value)
    elif isinstance(default, int) and isinstance(value, int | float):
        if isinstance(value, float) and not value.is_integer():
            raise ConfigError(
                f"{rules.label}{key}={value!r} must be a whole number ({rules.schema} value is "
                f"{default!r})"
            )
        return int(value)
    elif isinstance(default, list) and isinstance(value, list):
        return _coerce_list(key, default, value, rules)
    elif (
        isinstance(default, Mapping)
        and isinstance(value, Mapping)  # merged key by key by the caller
        or type(default) is type(value)  # str for str, list for list, ...
    ):
        return value
    hint = " (quote it, e.g. key='123', to pass a string)" if isinstance(default, str) else ""
    raise ConfigError(
        f"{rules.label}{key}={value!r} has type {_type_name(value)}, but {rules.schema} value "
        f"{default!r} has type {_type_name(default)}{hint}"
    )


def _coerce_list(key: str, default: list[Any], value: list[Any], rules: _Rules) -> list[Any]:
    """A list keeps the element type of its default when the default has one (all ints, all
    floats, all strings): ``model.hidden=[32,abc]`` is refused, ``[32, 64]`` kept."""
    kinds = {type(v) for v in default}
    if len(kinds) != 1 or not default:
        return value
    (kind,) = kinds
    if kind not in (int, float, str):
        return value
    out = []
    for item in value:
        try:
            out.append(_coerce(f"{key}[]", kind(), item, rules) if item is not None else item)
        except ConfigError:
            raise ConfigError(
                f"{rules.label}{key}={value!r}: element {item!r} has type {_type_name(item)}, "
                f"but {rules.schema} list {default!r} holds {kind.__name__} values"
            ) from None
    return out


def _unknown_key_error(key: str, cfg: Mapping[str, Any], extra_keys: Sequence[str]) -> ConfigError:
    valid = config_keys(cfg) + [k for k in extra_keys if k not in cfg]
    close = difflib.get_close_matches(key, valid, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return ConfigError(f"unknown config key {key!r}.{hint} Valid keys: {', '.join(valid)}")


def apply_overrides(
    cfg: Mapping[str, Any],
    overrides: Mapping[str, Any] | Iterable[str],
    *,
    extra_keys: Iterable[str] = (),
    nullable: Iterable[str] = (),
) -> dict[str, Any]:
    """Return a copy of ``cfg`` with ``overrides`` applied; ``cfg`` itself is not changed.

    Args:
        cfg: The loaded config (its keys and value types are the schema).
        overrides: ``{dotted_key: value}`` from :func:`parse_overrides`, or the raw
            ``key=value`` strings.
        extra_keys: Dotted keys that may be set even though the config lacks them (e.g.
            ``("output_dir", "resume")``). Keys under them (``extra.anything``) are allowed
            too. Where the config lacks such a key its value is not type-checked; where the
            config has it, the usual checks apply.
        nullable: Dotted keys that may be set to ``null`` although the config gives them a
            value (a recipe's ``NULLABLE_KEYS``: ``train.max_minutes=null`` lifts a budget).

    Raises:
        ConfigError: A key is not in the config (the message lists the valid keys) or a
            value's type differs from the config's: an int key takes whole numbers only, a
            float key ints and floats, a list keeps its elements' type, ``null`` only a key
            whose default is null or that ``nullable`` names; a mapping override is merged key
            by key with the same checks.
    """
    empty: frozenset[str] = frozenset()
    if not isinstance(overrides, Mapping):
        overrides, empty = _parse_overrides(overrides)
    rules = _Rules(root=cfg, allowed=tuple(extra_keys), nullable=tuple(nullable), empty=empty)
    return _merged(cfg, overrides, rules)


def check_config(
    cfg: Mapping[str, Any],
    schema: Mapping[str, Any],
    *,
    extra_keys: Iterable[str] = (),
    nullable: Iterable[str] = (),
    schema_name: str = "the default config",
) -> dict[str, Any]:
    """Check a whole config (a file a user gives a recipe) against the recipe's default config,
    with the rules of :func:`apply_overrides`, and return it with the same coercions (an int
    for a float key is stored as a float).

    Args:
        cfg: The loaded config (overlays resolved).
        schema: The recipe's default config: its keys and value types.
        extra_keys: Keys ``cfg`` may have though ``schema`` lacks them (see
            :func:`apply_overrides`).
        nullable: Keys that may be null though ``schema`` gives them a value.
        schema_name: What the schema is called in messages (e.g. ``"vae_digits.yaml"``).

    Raises:
        ConfigError: One line: a key ``schema`` lacks, a value of another type, a null where
            none is allowed, or a key (a whole section too) of ``schema`` that ``cfg`` lacks.
    """
    rules = _Rules(
        root=schema,
        allowed=tuple(extra_keys),
        nullable=tuple(nullable),
        label="",
        schema=f"{schema_name}'s",
    )
    result = _merged(schema, cfg, rules)
    missing = _missing_keys(schema, cfg)
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise ConfigError(
            f"missing key{'s' if len(missing) > 1 else ''} {', '.join(missing[:5])}{more}, "
            f"which {schema_name} has; add {'them' if len(missing) > 1 else 'it'}, or start "
            f"the file with `base: <a config>` to state only what differs"
        )
    return result


def _missing_keys(schema: Mapping[str, Any], cfg: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of ``schema`` that ``cfg`` lacks (a missing section is one key)."""
    missing: list[str] = []
    for key, default in schema.items():
        if key not in cfg:
            missing.append(f"{prefix}{key}")
        elif isinstance(default, Mapping) and isinstance(cfg[key], Mapping):
            missing.extend(_missing_keys(default, cfg[key], f"{prefix}{key}."))
    return missing


def _merged(base: Mapping[str, Any], values: Mapping[str, Any], rules: _Rules) -> dict[str, Any]:
    """A copy of ``base`` with each (dotted) key of ``values`` set by :func:`_set`'s checks."""
    result = copy.deepcopy(dict(base))
    for key, value in values.items():
        _set(result, str(key), value, rules)
    return result


def _is_extra(dotted: str, allowed: Sequence[str]) -> bool:
    return any(dotted == k or dotted.startswith(k + ".") for k in allowed)


def _set(target: dict[str, Any], dotted: str, value: Any, rules: _Rules) -> None:
    *parents, leaf = dotted.split(".")
    node: Any = target
    for depth, part in enumerate([*parents, leaf]):
        if not isinstance(node, dict):
            raise ConfigError(
                f"cannot set {dotted!r}: {'.'.join(parents[:depth])!r} has type "
                f"{_type_name(node)}, not a mapping"
            )
        if part not in node:
            if not _is_extra(dotted, rules.allowed):
                raise _unknown_key_error(dotted, rules.root, rules.allowed)
            if depth == len(parents):
                node[part] = copy.deepcopy(value)  # an allowed extra key: not type-checked
                return
            node[part] = {}
        elif depth == len(parents):
            current = node[part]
            checked = _coerce(dotted, current, value, rules)
            if isinstance(current, Mapping) and isinstance(checked, Mapping):
                for sub_key, sub_value in checked.items():
                    _set(target, f"{dotted}.{sub_key}", sub_value, rules)
            else:
                node[part] = copy.deepcopy(checked)
            return
        node = node[part]


def save_config(
    cfg: Mapping[str, Any], path: str | os.PathLike[str], *, header: str | None = None
) -> Path:
    """Write ``cfg`` as YAML to ``path`` atomically, keys in their original order.

    Args:
        cfg: The config (plain YAML-representable values).
        path: Destination file.
        header: Optional comment written first (each line prefixed with ``# ``), e.g. the
            command that runs the recipe.

    Writes unconditionally; guard with ``if ctx.is_main`` under torchrun.
    """
    from seqae.files import atomic_write_text

    try:
        body = yaml.safe_dump(dict(cfg), sort_keys=False, allow_unicode=True)
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"config cannot be written as YAML ({exc}); use plain numbers, strings, lists and "
            "mappings (e.g. str(path) for a Path)"
        ) from exc
    if header:
        body = "".join(f"# {line}\n" for line in header.splitlines()) + body
    return atomic_write_text(path, body)
