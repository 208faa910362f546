"""Fault injection, small: crashes and a SIGKILL at random moments, then resume; damaged files.

The wide version is ``scripts/fault_injection.py`` (its figures are in the issue notes)."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "fault_injection.py"


@pytest.fixture(scope="module")
def faults():  # noqa: ANN201 - the script as a module
    spec = importlib.util.spec_from_file_location("fault_injection", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def reference(faults, tmp_path_factory) -> Path:
    return faults.reference_run(tmp_path_factory.mktemp("faults"), steps=60, every=7)


def test_crashes_at_random_steps_resume_to_the_uninterrupted_result(faults, reference, tmp_path):
    tally = faults.crash_trials(
        tmp_path, reference, trials=6, steps=60, every=7, rng=random.Random(1)
    )
    assert tally.tried == 6 and tally.lost == []


def test_a_sigkilled_run_resumes_to_the_uninterrupted_result(faults, reference, tmp_path):
    tally = faults.kill_trials(
        tmp_path, reference, trials=1, steps=60, every=7, rng=random.Random(2)
    )
    assert tally.tried == 1 and tally.lost == []


def test_damaged_files_are_noticed_or_harmless(faults, reference, tmp_path):
    tally = faults.damage_trials(
        tmp_path, reference, trials=25, steps=60, every=7, rng=random.Random(3)
    )
    assert tally.tried == 50 and tally.lost == []
