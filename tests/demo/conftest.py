"""Fixtures of the demo's tests: the tiny runs folder, built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from demo_runs import build_tiny_runs

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # the tests never let gradio reach the network


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs folder with one tiny model of every kind (see :mod:`demo_runs`)."""
    return build_tiny_runs(tmp_path_factory.mktemp("demo") / "runs")
