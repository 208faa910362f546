"""Helpers for the recipes' resume tests: stop a run part-way (between two parts, or at the n-th
call of a recipe function), and compare two runs' metrics without what differs between any two
runs of one config (seconds, paths)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from types import ModuleType
from typing import Any

import pytest

from seqae import cli
from seqae.training import RunSession


class Interrupted(Exception):
    """Raised where a run is made to stop, as a killed run would."""


def interrupt_after_first_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``RunSession.part`` raise :class:`Interrupted` right after the first part is done
    and stored, as a run killed between two parts would stop (``monkeypatch.undo()`` ends it)."""
    real_part = RunSession.part

    def part(
        self: RunSession, name: str, compute: Callable[[], Mapping[str, Any]], **kwargs: Any
    ) -> dict:
        real_part(self, name, compute, **kwargs)
        raise Interrupted(name)

    monkeypatch.setattr(RunSession, "part", part)


def comparable(value: Any, *, drop: Iterable[str] = ("train_seconds", "path")) -> Any:
    """``value`` (metrics, nested dicts and lists) without the keys ``drop`` names, at any depth."""
    drop = tuple(drop)
    if isinstance(value, Mapping):
        return {k: comparable(v, drop=drop) for k, v in value.items() if k not in drop}
    if isinstance(value, list):
        return [comparable(v, drop=drop) for v in value]
    return value


def interrupt_at_call(
    monkeypatch: pytest.MonkeyPatch, recipe: ModuleType, name: str, call: int
) -> Callable[[], None]:
    """Make ``run_recipe`` run this ``recipe`` module, whose function ``name`` raises
    :class:`Interrupted` at its ``call``-th call (counting from 1) instead of running.

    Returns a function that puts the real ``name`` back, for the resumed run.
    """
    monkeypatch.setattr(cli, "load_recipe", lambda path: recipe)
    original, calls = getattr(recipe, name), 0

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == call:
            raise Interrupted(f"{name} stopped at its call {call}")
        return original(*args, **kwargs)

    monkeypatch.setattr(recipe, name, interrupted)
    return lambda: monkeypatch.setattr(recipe, name, original)
