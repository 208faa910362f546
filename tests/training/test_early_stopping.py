"""EarlyStopping: patience, modes, min_delta, NaN, and resuming from a checkpoint."""

from __future__ import annotations

import math

import pytest
import torch

from seqae.training import EarlyStopping


def test_min_mode_stops_after_patience_bad_steps() -> None:
    stopper = EarlyStopping(patience=2)
    decisions = [stopper.step(v) for v in [3.0, 2.0, 2.5, 1.5, 1.6, 1.7]]
    assert decisions == [False, False, False, False, False, True]
    assert stopper.best == 1.5 and stopper.should_stop


def test_max_mode_and_min_delta() -> None:
    stopper = EarlyStopping(patience=1, min_delta=0.1, mode="max")
    assert stopper.step(0.5) is False and stopper.improved
    assert stopper.step(0.55) is True  # +0.05 is within min_delta: not an improvement
    assert stopper.best == 0.5 and not stopper.improved


def test_nan_never_improves_and_tensor_values_work() -> None:
    stopper = EarlyStopping(patience=2)
    assert not stopper.step(torch.tensor(float("nan")))
    assert stopper.best is None and stopper.num_bad == 1
    stopper.step(torch.tensor(1.0))
    assert stopper.best == 1.0 and stopper.improved


def test_state_dict_resumes_the_same_decisions(tmp_path) -> None:
    values = [5.0, 4.0, 4.5, 4.2, 3.9, 4.0, 4.1, 4.3, 4.4]
    straight = EarlyStopping(patience=3, min_delta=0.05)
    expected = [straight.step(v) for v in values]

    first = EarlyStopping(patience=3, min_delta=0.05)
    got = [first.step(v) for v in values[:5]]
    torch.save({"es": first.state_dict()}, tmp_path / "s.pt")
    second = EarlyStopping(patience=3, min_delta=0.05)
    second.load_state_dict(torch.load(tmp_path / "s.pt", weights_only=True)["es"])
    got += [second.step(v) for v in values[5:]]
    assert got == expected and second.best == straight.best


def test_load_state_dict_rejects_other_mode() -> None:
    state = EarlyStopping(patience=1, mode="max").state_dict()
    with pytest.raises(ValueError, match="mode='max'"):
        EarlyStopping(patience=1).load_state_dict(state)


@pytest.mark.parametrize(
    "kwargs", [{"patience": 0}, {"patience": 1, "min_delta": -1}, {"patience": 1, "mode": "avg"}]
)
def test_invalid_arguments(kwargs) -> None:
    with pytest.raises(ValueError):
        EarlyStopping(**kwargs)


def test_repr_mentions_best() -> None:
    stopper = EarlyStopping(patience=1)
    stopper.step(2.0)
    assert "best=2.0" in repr(stopper)
    assert not math.isnan(stopper.best)
