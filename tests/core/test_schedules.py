"""Tests for seqae.core.schedules: values at key steps, validation, and build_schedule."""

from __future__ import annotations

import dataclasses
import math
import pickle

import pytest

from seqae import registry
from seqae.core import schedules as S
from seqae.core.plugin import register as register_core
from seqae.registry import Registry

BUILTINS = (
    S.ConstantSchedule,
    S.LinearSchedule,
    S.CosineSchedule,
    S.CyclicalSchedule,
    S.ExponentialSchedule,
    S.WarmupCosineSchedule,
)


def test_constant() -> None:
    s = S.ConstantSchedule(value=0.3)
    assert [s(t) for t in (0, 1, 10**9)] == [0.3, 0.3, 0.3]
    assert S.ConstantSchedule()(5) == 1.0


def test_linear_with_delay() -> None:
    s = S.LinearSchedule(start=0.0, end=1.0, steps=100, delay=50)
    expected = {0: 0.0, 49: 0.0, 50: 0.0, 75: 0.25, 100: 0.5, 150: 1.0, 10_000: 1.0}
    for step, value in expected.items():
        assert s(step) == pytest.approx(value), step


def test_linear_decreasing() -> None:
    s = S.LinearSchedule(start=2.0, end=1.0, steps=4)
    assert [s(t) for t in range(6)] == pytest.approx([2.0, 1.75, 1.5, 1.25, 1.0, 1.0])


def test_cosine() -> None:
    s = S.CosineSchedule(start=1.0, end=3.0, steps=10, delay=2)
    assert s(0) == s(2) == 1.0
    assert s(7) == pytest.approx(2.0)  # halfway
    assert s(4) == pytest.approx(1.0 + 2.0 * (1 - math.cos(math.pi * 0.2)) / 2)
    assert s(12) == s(100) == pytest.approx(3.0)


def test_cyclical_fu_et_al() -> None:
    s = S.CyclicalSchedule(period=100, ratio=0.5)
    expected = {0: 0.0, 25: 0.5, 49: 0.98, 50: 1.0, 99: 1.0, 100: 0.0, 125: 0.5, 250: 1.0}
    for step, value in expected.items():
        assert s(step) == pytest.approx(value), step


def test_cyclical_range_ratio_and_cycles() -> None:
    s = S.CyclicalSchedule(period=10, ratio=1.0, start=0.5, end=1.5, n_cycles=2)
    assert (
        s(0) == 0.5 and s(5) == pytest.approx(1.0) and s(10) == 0.5 and s(19) == pytest.approx(1.4)
    )
    assert s(20) == s(25) == s(1000) == 1.5  # held after 2 cycles


def test_exponential_gumbel_temperature() -> None:
    s = S.ExponentialSchedule(start=1.0, end=0.5, rate=0.01)
    assert s(0) == 1.0
    assert s(10) == pytest.approx(math.exp(-0.1))
    assert s(100) == pytest.approx(0.5)  # exp(-1) = 0.37 < floor
    assert s(10**6) == 0.5
    stepped = S.ExponentialSchedule(start=2.0, end=0.1, rate=0.01, every=50)
    assert stepped(49) == 2.0
    assert stepped(50) == stepped(99) == pytest.approx(2.0 * math.exp(-0.5))


@pytest.mark.parametrize(
    ("cls", "kwargs", "match"),
    [
        (S.LinearSchedule, {"steps": 0}, "steps"),
        (S.LinearSchedule, {"steps": 2.5}, "steps"),
        (S.LinearSchedule, {"delay": -1}, "delay"),
        (S.CosineSchedule, {"steps": -3}, "steps"),
        (S.CyclicalSchedule, {"period": 0}, "period"),
        (S.CyclicalSchedule, {"ratio": 0.0}, "ratio"),
        (S.CyclicalSchedule, {"ratio": 1.5}, "ratio"),
        (S.CyclicalSchedule, {"n_cycles": 0}, "n_cycles"),
        (S.ExponentialSchedule, {"start": 0.0}, "start"),
        (S.ExponentialSchedule, {"start": 1.0, "end": 2.0}, "end"),
        (S.ExponentialSchedule, {"rate": -0.1}, "rate"),
        (S.ExponentialSchedule, {"every": 0}, "every"),
    ],
)
def test_validation(cls: type, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        cls(**kwargs)


def test_negative_step_rejected() -> None:
    with pytest.raises(ValueError, match="step"):
        S.LinearSchedule(steps=10)(-1)


def test_keyword_only() -> None:
    with pytest.raises(TypeError):
        S.LinearSchedule(0.0, 1.0, 10)  # type: ignore[misc]


def test_build_schedule_number_and_mapping() -> None:
    assert S.build_schedule(0.25) == S.ConstantSchedule(value=0.25)
    assert S.build_schedule(2) == S.ConstantSchedule(value=2.0)
    s = S.build_schedule({"name": "linear", "start": 0.0, "end": 1.0, "steps": 1000})
    assert s == S.LinearSchedule(start=0.0, end=1.0, steps=1000)
    assert s(500) == pytest.approx(0.5)
    for cls in BUILTINS:
        assert registry.get("schedule", cls.name) is cls
        assert isinstance(S.build_schedule({"name": cls.name}), cls)
        assert isinstance(S.build_schedule({"name": cls.name}), S.Schedule)


def test_build_schedule_passes_schedules_through() -> None:
    s = S.CyclicalSchedule(period=4)
    assert S.build_schedule(s) is s

    def custom(step: int) -> float:
        return 0.5 * step

    assert S.build_schedule(custom) is custom


def test_build_schedule_errors() -> None:
    listed = "constant, cosine, cyclical, exponential, linear, warmup_cosine"
    with pytest.raises(
        ValueError, match=f"unknown schedule 'sigmoid'; registered schedules: {listed}"
    ):
        S.build_schedule({"name": "sigmoid"})
    with pytest.raises(ValueError, match=f"needs a 'name' string, got None; .*: {listed}"):
        S.build_schedule({"steps": 10})
    with pytest.raises(ValueError, match="needs a 'name' string, got 3"):
        S.build_schedule({"name": 3})
    with pytest.raises(ValueError, match="unknown argument.*rate"):
        S.build_schedule({"name": "linear", "rate": 0.1})
    with pytest.raises(ValueError, match="ratio"):
        S.build_schedule({"name": "cyclical", "ratio": 2.0})
    with pytest.raises(ValueError, match="bool"):
        S.build_schedule(True)
    with pytest.raises(ValueError, match="cannot build"):
        S.build_schedule("linear")  # type: ignore[arg-type]


def test_schedules_are_frozen_and_picklable() -> None:
    s = S.ExponentialSchedule(start=1.0, end=0.5, rate=0.1)
    with pytest.raises(AttributeError):
        s.rate = 0.2  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(s)) == s
    assert "rate=0.1" in repr(s)


def test_warmup_cosine_learning_rate_factor() -> None:
    s = S.WarmupCosineSchedule(warmup=4, steps=14, floor=0.1)
    assert [s(i) for i in range(4)] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert s(4) == pytest.approx(1.0)
    assert s(9) == pytest.approx(0.1 + 0.9 * 0.5)  # half way down the cosine
    assert s(14) == pytest.approx(0.1) and s(1000) == pytest.approx(0.1)
    assert S.WarmupCosineSchedule(warmup=0, steps=10)(0) == 1.0
    assert S.build_schedule({"name": "warmup_cosine", "warmup": 4, "steps": 14, "floor": 0.1}) == s
    with pytest.raises(ValueError, match="warmup must be < steps=10"):
        S.WarmupCosineSchedule(warmup=10, steps=10)
    with pytest.raises(ValueError, match=r"floor must be in \[0, 1\]"):
        S.WarmupCosineSchedule(steps=10, floor=1.5)


@pytest.fixture
def fresh_registry(monkeypatch: pytest.MonkeyPatch) -> Registry:
    """A new global registry holding only the core plugin's components, dropped after the test."""
    reg = Registry(autoload=False)
    register_core(reg)
    monkeypatch.setattr(registry, "REGISTRY", reg)
    return reg


class MySched:
    """A plugin's schedule that is not a dataclass: ``base * step``."""

    def __init__(self, *, base: float = 1.0) -> None:
        self.base = base

    def __call__(self, step: int) -> float:
        return self.base * step


def test_build_schedule_finds_a_schedule_registered_by_a_plugin(fresh_registry: Registry) -> None:
    with pytest.raises(ValueError, match="unknown schedule 'my_sched'"):
        S.build_schedule({"name": "my_sched", "base": 0.5})
    registry.register("schedule", "my_sched", MySched)
    assert "my_sched" in registry.names("schedule")  # what `seqae list` prints
    s = S.build_schedule({"name": "my_sched", "base": 0.5})
    assert isinstance(s, MySched) and s(4) == 2.0
    with pytest.raises(ValueError, match="cannot build schedule 'my_sched'.*unexpected keyword"):
        S.build_schedule({"name": "my_sched", "slope": 0.5})


def test_build_schedule_finds_a_registered_dataclass_schedule(fresh_registry: Registry) -> None:
    @dataclasses.dataclass(frozen=True, kw_only=True)
    class Step:
        at: int = 10

        def __call__(self, step: int) -> float:
            return float(step >= self.at)

    registry.register("schedule", "step_up", Step)
    assert S.build_schedule({"name": "step_up", "at": 3})(3) == 1.0
    with pytest.raises(ValueError, match="unknown argument.*height.*accepted: at"):
        S.build_schedule({"name": "step_up", "height": 2})


def test_build_schedule_unknown_name_suggests_the_closest(fresh_registry: Registry) -> None:
    registry.register("schedule", "my_sched", MySched)
    with pytest.raises(
        ValueError, match="unknown schedule 'my_shed' \\(did you mean 'my_sched'\\?\\)"
    ):
        S.build_schedule({"name": "my_shed"})
    with pytest.raises(ValueError, match="did you mean 'cosine'"):
        S.build_schedule({"name": "cosin"})


def test_build_schedule_refuses_a_factory_that_builds_no_callable(
    fresh_registry: Registry,
) -> None:
    registry.register("schedule", "number", lambda: 3.0)
    with pytest.raises(ValueError, match="schedule 'number' built a float, which is not callable"):
        S.build_schedule({"name": "number"})
