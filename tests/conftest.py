"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """The test models are tiny: one intra-op thread is fastest, and it avoids OpenMP
    spin-waiting when the 2-core machine is busy, which made steps up to ~100x slower.

    Session-wide, so that module- and session-scoped fixtures (shared trained models) run
    with the same thread count as the tests: some kernels (SVD, for one) differ in their last
    bits between one and two threads, and a test that compares a shared run with its own must
    see the same arithmetic."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _keep_one_thread():
    """A test that changes the thread count (a recipe under test may) does not leak it."""
    yield
    torch.set_num_threads(1)
