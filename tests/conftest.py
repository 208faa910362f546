"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    """The test models are tiny: one intra-op thread is fastest, and it avoids OpenMP
    spin-waiting when the 2-core machine is busy, which made steps up to ~100x slower.
    Results do not depend on the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
