"""Helpers for the recipes' resume tests: stop a multi-part run between two parts, compare two
runs' metrics without what differs between any two runs of one config (seconds, paths), and run
a module-scoped fixture's recipe under the thread count the tests get."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest
import torch

from seqae.training import RunSession


class Interrupted(Exception):
    """Raised by :func:`interrupt_after_first_part`'s patched ``RunSession.part``."""


def interrupt_after_first_part(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``RunSession.part`` raise :class:`Interrupted` right after the first part is done
    and stored, as a run killed between two parts would stop (``monkeypatch.undo()`` ends it)."""
    real_part = RunSession.part

    def part(self: RunSession, name: str, compute: Callable[[], Mapping[str, Any]]) -> dict:
        real_part(self, name, compute)
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


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """One intra-op thread, as tests/conftest.py's autouse fixture gives every test function.

    A module-scoped fixture is set up before that fixture applies, so a run it makes would use
    torch's default thread count; where a recipe does not pin the count itself, float results
    can differ in the last bits from a run made inside a test (torch's SVD does), and a
    resumed-equals-uninterrupted comparison would fail for that reason alone.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
