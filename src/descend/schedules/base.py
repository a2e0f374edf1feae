"""Schedules: pure, picklable functions of the step, and the combinators that join them.

A schedule maps the number of optimizer steps already taken (0 before the first step; a
float for fractional epochs) to a value. Being pure, a schedule is trivial to test, plot,
resume and compose. Every schedule is a small frozen dataclass, so it pickles and prints
as the expression that built it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from numbers import Real
from typing import Any


def check_step(step: float) -> float:
    if isinstance(step, bool) or not isinstance(step, Real):
        raise TypeError(f"step must be a number, got {step!r}")
    if not step >= 0:
        raise ValueError(f"step must be >= 0, got {step!r}")
    return step


class Schedule:
    """Base class: ``schedule(step) -> float``.

    Subclasses implement `value(step)`; `__call__` validates the step. Schedules multiply
    with numbers and with each other (``0.1 * cosine(...)``).
    """

    def value(self, step: float) -> float:
        raise NotImplementedError

    def __call__(self, step: float) -> float:
        return self.value(check_step(step))

    def values(self, n_steps: int, start: int = 0) -> list[float]:
        """The curve over steps ``start, ..., start + n_steps - 1``, for previews and plots."""
        return [self.value(t) for t in range(start, start + n_steps)]

    def children(self) -> tuple[Schedule, ...]:
        return ()

    def __mul__(self, other: Schedule | float) -> Schedule:
        return multiply(self, other)

    __rmul__ = __mul__


def as_schedule(value: Schedule | float, name: str = "value") -> Schedule:
    if isinstance(value, Schedule):
        return value
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a Schedule or a number, got {value!r}")
    return constant(float(value))


def walk(schedule: Schedule) -> Iterator[Schedule]:
    """Every node of a composite schedule, depth first."""
    yield schedule
    for child in schedule.children():
        yield from walk(child)


def is_scheduled(value: Any) -> bool:
    """True for a Schedule, or a tuple (like ``betas``) holding at least one."""
    if isinstance(value, Schedule):
        return True
    return isinstance(value, tuple) and any(isinstance(v, Schedule) for v in value)


def evaluate(value: Any, step: float) -> Any:
    """A hyperparameter's value at `step`: schedules are called, tuples element-wise."""
    if isinstance(value, Schedule):
        return value(step)
    if isinstance(value, tuple):
        return tuple(evaluate(v, step) for v in value)
    return value


# -- argument checks shared by the schedule constructors ----------------------------------


def need(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    return float(value)


def positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


def decay_factor(name: str, value: Any) -> float:
    v = finite(name, value)
    need(0.0 < v <= 1.0, f"{name} must be in (0, 1], got {value!r}")
    return v


class _Frozen:
    """Shared dataclass behaviour: a short repr of the constructor arguments."""

    def __repr__(self) -> str:
        args = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self))
        return f"{type(self).__name__}({args})"


@dataclass(frozen=True, repr=False)
class Constant(_Frozen, Schedule):
    """v(t) = value."""

    level: float

    def value(self, step: float) -> float:
        return self.level


def constant(value: float) -> Schedule:
    return Constant(finite("value", value))



# -- combinators ---------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class Join(_Frozen, Schedule):
    schedules: tuple[Schedule, ...]
    boundaries: tuple[float, ...]

    def value(self, step: float) -> float:
        start = 0.0
        for schedule, boundary in zip(self.schedules, self.boundaries):
            if step < boundary:
                return schedule.value(step - start)
            start = boundary
        return self.schedules[-1].value(step - start)

    def children(self) -> tuple[Schedule, ...]:
        return self.schedules


def join(schedules: Sequence[Schedule | float], boundaries: Sequence[float]) -> Schedule:
    """Piecewise in time: ``schedules[i]`` runs from ``boundaries[i-1]`` to ``boundaries[i]``.

    Each piece sees its own local step, starting at 0 at its boundary, so
    ``join([linear(0, 1, 100), cosine(1, 0, 900)], [100])`` is warmup then cosine.
    """
    parts = tuple(as_schedule(s, f"schedules[{i}]") for i, s in enumerate(schedules))
    bounds = tuple(finite(f"boundaries[{i}]", b) for i, b in enumerate(boundaries))
    need(len(parts) >= 1, "join needs at least one schedule")
    need(len(bounds) == len(parts) - 1,
         f"boundaries must have one entry fewer than schedules ({len(parts) - 1}), "
         f"got {len(bounds)}")
    need(all(b > 0 for b in bounds[:1]), f"boundaries must be > 0, got {list(bounds)}")
    need(all(a < b for a, b in zip(bounds, bounds[1:])),
         f"boundaries must be strictly increasing, got {list(bounds)}")
    return Join(parts, bounds)


@dataclass(frozen=True, repr=False)
class Multiply(_Frozen, Schedule):
    factors: tuple[Schedule, ...]

    def value(self, step: float) -> float:
        result = 1.0
        for factor in self.factors:
            result *= factor.value(step)
        return result

    def children(self) -> tuple[Schedule, ...]:
        return self.factors


def multiply(*factors: Schedule | float) -> Schedule:
    """The product of schedules and numbers, step by step."""
    need(len(factors) >= 1, "multiply needs at least one factor")
    return Multiply(tuple(as_schedule(f, f"factors[{i}]") for i, f in enumerate(factors)))


@dataclass(frozen=True, repr=False)
class Clamp(_Frozen, Schedule):
    schedule: Schedule
    low: float
    high: float

    def value(self, step: float) -> float:
        return min(max(self.schedule.value(step), self.low), self.high)

    def children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)


def clamp(schedule: Schedule, low: float = -math.inf, high: float = math.inf) -> Schedule:
    """Keep a schedule within ``[low, high]``."""
    need(not low > high, f"low must be <= high, got low={low!r}, high={high!r}")
    return Clamp(as_schedule(schedule, "schedule"), float(low), float(high))


@dataclass(frozen=True, repr=False)
class PerEpoch(_Frozen, Schedule):
    schedule: Schedule
    steps_per_epoch: int
    fractional: bool

    def value(self, step: float) -> float:
        epoch = step / self.steps_per_epoch if self.fractional else step // self.steps_per_epoch
        return self.schedule.value(epoch)

    def children(self) -> tuple[Schedule, ...]:
        return (self.schedule,)


def per_epoch(schedule: Schedule, steps_per_epoch: int, fractional: bool = False) -> Schedule:
    """Run a schedule written in epochs on an optimizer that counts steps.

    ``per_epoch(step_decay(0.1, 0.1, 10), steps_per_epoch=390)`` divides the lr by 10 every
    10 epochs. With ``fractional=True`` the schedule sees the fractional epoch
    ``step / steps_per_epoch`` (smooth curves); otherwise the completed epochs.
    """
    return PerEpoch(as_schedule(schedule, "schedule"),
                    positive_int("steps_per_epoch", steps_per_epoch), bool(fractional))
