"""Stopping a recipe run part-way, for the interrupted-then-resumed tests of multi-part recipes."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from seqae import cli


class Interrupted(Exception):
    """Raised in place of a recipe function's call: the run stopped there."""


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
