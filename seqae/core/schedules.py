"""Step-indexed schedules for loss weights and temperatures.

A schedule is a small callable ``schedule(step) -> float`` with ``step`` the 0-based global
training step. Recipes use them for the weight of a named loss term (KL warm-up, cyclical KL
annealing) and for the Gumbel-softmax temperature; nothing here reads a config, but
:func:`build_schedule` turns a config entry into a schedule:

    >>> kl_weight = build_schedule({"name": "linear", "start": 0.0, "end": 1.0, "steps": 1000})
    >>> kl_weight(500)
    0.5
    >>> build_schedule(0.1)(123)  # a plain number is a constant
    0.1

Every schedule is a frozen dataclass: it validates its arguments, prints its settings, compares
by value and pickles.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

from seqae.config import ConfigError

__all__ = [
    "Schedule",
    "ConstantSchedule",
    "LinearSchedule",
    "CosineSchedule",
    "CyclicalSchedule",
    "ExponentialSchedule",
    "WarmupCosineSchedule",
    "build_schedule",
]


@runtime_checkable
class Schedule(Protocol):
    """Anything that maps a training step to a float."""

    def __call__(self, step: int) -> float: ...


def _check_step(step: int) -> None:
    if step < 0:
        raise ValueError(f"step must be >= 0, got {step}")


def _check_positive_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_non_negative_int(name: str, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class ConstantSchedule:
    """The same value at every step.

    Args:
        value: The value.
    """

    name: ClassVar[str] = "constant"
    value: float = 1.0

    def __call__(self, step: int) -> float:
        _check_step(step)
        return float(self.value)


@dataclass(frozen=True, kw_only=True)
class LinearSchedule:
    """``start`` for ``delay`` steps, then linear to ``end`` over ``steps`` steps, then ``end``.

    The KL warm-up of Bowman et al. 2016 (arXiv 1511.06349, Sec. 3.1): the KL weight grows
    from 0 to 1 so the decoder learns to use the latent before the KL term can collapse it.

    Args:
        start: Value before and at the beginning of the ramp.
        end: Value at the end of the ramp and after.
        steps: Length of the ramp, > 0.
        delay: Steps to hold ``start`` before the ramp begins.
    """

    name: ClassVar[str] = "linear"
    start: float = 0.0
    end: float = 1.0
    steps: int = 10_000
    delay: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("steps", self.steps)
        _check_non_negative_int("delay", self.delay)

    def __call__(self, step: int) -> float:
        _check_step(step)
        frac = min(max(step - self.delay, 0) / self.steps, 1.0)
        return float(self.start + frac * (self.end - self.start))


@dataclass(frozen=True, kw_only=True)
class CosineSchedule:
    """Like :class:`LinearSchedule` but along a half cosine, flat at both ends:
    ``start + (end - start) * (1 - cos(pi * frac)) / 2`` (the shape of SGDR's annealing,
    Loshchilov & Hutter 2017, arXiv 1608.03983, eq. 5).

    Args:
        start: Value before and at the beginning of the ramp.
        end: Value at the end of the ramp and after.
        steps: Length of the ramp, > 0.
        delay: Steps to hold ``start`` before the ramp begins.
    """

    name: ClassVar[str] = "cosine"
    start: float = 0.0
    end: float = 1.0
    steps: int = 10_000
    delay: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("steps", self.steps)
        _check_non_negative_int("delay", self.delay)

    def __call__(self, step: int) -> float:
        _check_step(step)
        frac = min(max(step - self.delay, 0) / self.steps, 1.0)
        return float(self.start + (self.end - self.start) * 0.5 * (1.0 - math.cos(math.pi * frac)))


@dataclass(frozen=True, kw_only=True)
class CyclicalSchedule:
    """Cyclical annealing (Fu et al. 2019, arXiv 1903.10145, eq. 6): training is split into
    cycles of ``period`` steps; in each, the value rises linearly from ``start`` to ``end``
    during the first ``ratio * period`` steps and then holds at ``end``.

    Args:
        period: Steps per cycle, > 0 (the paper's T / M).
        ratio: Fraction of a cycle spent increasing (the paper's R), in ``(0, 1]``; the paper
            uses 0.5.
        start: Value at the start of every cycle.
        end: Value reached after ``ratio * period`` steps of each cycle.
        n_cycles: If set, hold ``end`` for good after this many cycles (the paper anneals for
            M cycles over the whole run); ``None`` cycles forever.
    """

    name: ClassVar[str] = "cyclical"
    period: int = 10_000
    ratio: float = 0.5
    start: float = 0.0
    end: float = 1.0
    n_cycles: int | None = None

    def __post_init__(self) -> None:
        _check_positive_int("period", self.period)
        if not 0.0 < self.ratio <= 1.0:
            raise ValueError(f"ratio must be in (0, 1], got {self.ratio}")
        if self.n_cycles is not None:
            _check_positive_int("n_cycles", self.n_cycles)

    def __call__(self, step: int) -> float:
        _check_step(step)
        if self.n_cycles is not None and step >= self.n_cycles * self.period:
            return float(self.end)
        tau = (step % self.period) / self.period
        frac = min(tau / self.ratio, 1.0)
        return float(self.start + frac * (self.end - self.start))


@dataclass(frozen=True, kw_only=True)
class ExponentialSchedule:
    """Exponential decay with a floor: ``max(end, start * exp(-rate * step))``.

    The Gumbel-softmax temperature schedule of Jang et al. 2017 (arXiv 1611.01144, Sec. 4.1:
    ``tau = max(0.5, exp(-r t))``, updated every N steps).

    Args:
        start: Value at step 0, > 0.
        end: Floor, in ``[0, start]``.
        rate: Decay rate per step, >= 0.
        every: Update the value only every this many steps (the paper's N = 500); 1 decays
            at every step.
    """

    name: ClassVar[str] = "exponential"
    start: float = 1.0
    end: float = 0.5
    rate: float = 1e-4
    every: int = 1

    def __post_init__(self) -> None:
        if self.start <= 0.0:
            raise ValueError(f"start must be > 0, got {self.start}")
        if not 0.0 <= self.end <= self.start:
            raise ValueError(f"end must be in [0, start={self.start}], got {self.end}")
        if self.rate < 0.0:
            raise ValueError(f"rate must be >= 0, got {self.rate}")
        _check_positive_int("every", self.every)

    def __call__(self, step: int) -> float:
        _check_step(step)
        held = (step // self.every) * self.every
        return float(max(self.end, self.start * math.exp(-self.rate * held)))


@dataclass(frozen=True, kw_only=True)
class WarmupCosineSchedule:
    """A learning-rate multiplier: linear warm-up, then a half cosine down to a floor.

    ``(step + 1) / warmup`` for ``step < warmup``, then
    ``floor + (1 - floor) * (1 + cos(pi * frac)) / 2`` with ``frac`` going from 0 at ``warmup``
    to 1 at ``steps`` (and staying there). Meant for ``torch.optim.lr_scheduler.LambdaLR``.

    Args:
        warmup: Warm-up steps, >= 0 (0: start at the full rate).
        steps: Total training steps, > ``warmup``.
        floor: Multiplier at the end, in ``[0, 1]``.
    """

    name: ClassVar[str] = "warmup_cosine"
    warmup: int = 0
    steps: int = 10_000
    floor: float = 0.0

    def __post_init__(self) -> None:
        _check_non_negative_int("warmup", self.warmup)
        _check_positive_int("steps", self.steps)
        if self.warmup >= self.steps:
            raise ValueError(f"warmup must be < steps={self.steps}, got {self.warmup}")
        if not 0.0 <= self.floor <= 1.0:
            raise ValueError(f"floor must be in [0, 1], got {self.floor}")

    def __call__(self, step: int) -> float:
        _check_step(step)
        if step < self.warmup:
            return (step + 1) / self.warmup
        frac = min(1.0, (step - self.warmup) / (self.steps - self.warmup))
        return float(self.floor + (1 - self.floor) * 0.5 * (1 + math.cos(math.pi * frac)))


def _registered(name: Any) -> Any:
    """The schedule factory registered as ``name`` (registry kind ``"schedule"``).

    The registry is imported here, not at module level: looking a name up loads the plugins,
    and the core plugin imports this module.

    Raises:
        ConfigError: ``name`` is missing, not a string, or not registered (the message names the
            closest registered schedule and lists them all).
    """
    from seqae import registry

    if not isinstance(name, str):
        raise ConfigError(
            f"a schedule spec needs a 'name' string, got {name!r}; registered schedules: "
            f"{', '.join(registry.names('schedule'))}"
        )
    try:
        return registry.get("schedule", name)
    except registry.UnknownComponentError as err:
        raise ConfigError(str(err)) from err


def build_schedule(spec: Mapping[str, Any] | float | Schedule) -> Schedule:
    """Build a schedule from a config entry.

    Names are looked up in :mod:`seqae.registry` (kind ``"schedule"``), so a schedule that a
    plugin registers works in a config exactly like the built-in ones.

    Args:
        spec: A number (a :class:`ConstantSchedule` of that value); a mapping with a ``"name"``
            key (a registered schedule: ``seqae list`` shows them) and the schedule's keyword
            arguments, e.g. ``{"name": "cyclical", "period": 5000, "ratio": 0.5}``; or an
            existing schedule, returned unchanged.

    Raises:
        ConfigError (a ValueError): Unknown name (with the closest registered one, if any), unknown or invalid
            arguments, or a spec of another type.
    """
    if isinstance(spec, bool):
        raise ConfigError("a schedule spec cannot be a bool")
    if isinstance(spec, int | float):
        return ConstantSchedule(value=float(spec))
    if isinstance(spec, Mapping):
        kwargs = dict(spec)
        name = kwargs.pop("name", None)
        factory = _registered(name)
        if isinstance(factory, type) and dataclasses.is_dataclass(factory):
            allowed = {f.name for f in dataclasses.fields(factory)}
            unknown = sorted(set(kwargs) - allowed)
            if unknown:
                raise ConfigError(
                    f"unknown argument(s) {', '.join(unknown)} for schedule {name!r}; "
                    f"accepted: {', '.join(sorted(allowed))}"
                )
            return factory(**kwargs)
        try:
            schedule = factory(**kwargs)
        except TypeError as err:
            raise ConfigError(f"cannot build schedule {name!r} with {kwargs}: {err}") from err
        if not callable(schedule):
            raise ConfigError(
                f"schedule {name!r} built a {type(schedule).__name__}, which is not callable; "
                "a schedule maps a step to a float"
            )
        return schedule
    if callable(spec):
        return spec
    raise ConfigError(
        f"cannot build a schedule from {spec!r}; expected a number, a mapping with a 'name', "
        "or a callable"
    )
