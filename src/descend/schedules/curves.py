"""The schedules themselves: classic decays, warmups, cosine, cycles.

``t`` below is the step (optimizer steps already taken; 0 at the first step). Every
schedule holds its last value after its horizon rather than failing: a run that goes on
longer than planned keeps a sensible lr.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from .base import (
    Schedule,
    _Frozen,
    constant,
    decay_factor,
    finite,
    join,
    need,
    positive_int,
)


@dataclass(frozen=True, repr=False)
class Linear(_Frozen, Schedule):
    """v(t) = start + (end - start) * min(t, steps) / steps."""

    start: float
    end: float
    steps: int

    def value(self, step: float) -> float:
        frac = min(step, self.steps) / self.steps
        return self.start + (self.end - self.start) * frac


def linear(start: float, end: float, steps: int) -> Schedule:
    return Linear(finite("start", start), finite("end", end), positive_int("steps", steps))


def linear_warmup(peak: float, steps: int, start: float = 0.0) -> Schedule:
    """Linear warmup from `start` to `peak` over `steps` steps, then `peak`."""
    return linear(start, peak, steps)


@dataclass(frozen=True, repr=False)
class ExponentialWarmup(_Frozen, Schedule):
    """v(t) = start * (peak / start) ^ (min(t, steps) / steps): geometric interpolation."""

    peak: float
    steps: int
    start: float

    def value(self, step: float) -> float:
        return self.start * (self.peak / self.start) ** (min(step, self.steps) / self.steps)


def exponential_warmup(peak: float, steps: int, start: float | None = None) -> Schedule:
    """Warm up geometrically from `start` (default ``peak / 1000``) to `peak`.

    Each step multiplies the value by the same factor, so the lr spends equal time in each
    decade; `start` must be > 0.
    """
    peak = finite("peak", peak)
    start = peak / 1000 if start is None else finite("start", start)
    need(start > 0 and peak > 0, f"exponential_warmup needs start > 0 and peak > 0, got "
                                 f"start={start!r}, peak={peak!r}")
    return ExponentialWarmup(peak, positive_int("steps", steps), start)


@dataclass(frozen=True, repr=False)
class ExponentialDecay(_Frozen, Schedule):
    """v(t) = max(init * rate ^ (t / decay_steps), floor); staircase uses floor(t / decay_steps)."""

    init: float
    rate: float
    decay_steps: int
    staircase: bool
    floor: float

    def value(self, step: float) -> float:
        exponent = step / self.decay_steps
        if self.staircase:
            exponent = math.floor(exponent)
        try:
            decayed = self.init * self.rate**exponent
        except OverflowError:  # not reachable for rate <= 1; kept for clarity of intent
            decayed = 0.0
        return max(decayed, self.floor)


def exponential_decay(init: float, rate: float, decay_steps: int = 1, staircase: bool = False,
                      floor: float = 0.0) -> Schedule:
    """Time-based exponential decay, ``lr_t = lr_0 * rate^t`` (per `decay_steps` steps)."""
    return ExponentialDecay(finite("init", init), decay_factor("rate", rate),
                            positive_int("decay_steps", decay_steps), bool(staircase),
                            finite("floor", floor))


@dataclass(frozen=True, repr=False)
class InverseTimeDecay(_Frozen, Schedule):
    """v(t) = init / (1 + k * t / decay_steps); staircase uses floor(t / decay_steps)."""

    init: float
    k: float
    decay_steps: int
    staircase: bool

    def value(self, step: float) -> float:
        x = step / self.decay_steps
        if self.staircase:
            x = math.floor(x)
        return self.init / (1.0 + self.k * x)


def inverse_time_decay(init: float, k: float, decay_steps: int = 1,
                       staircase: bool = False) -> Schedule:
    """``lr_t = lr_0 / (1 + k t)``: the "time-based decay" of Keras's old SGD `decay`."""
    k = finite("k", k)
    need(k >= 0, f"k must be >= 0, got {k!r}")
    return InverseTimeDecay(finite("init", init), k, positive_int("decay_steps", decay_steps),
                            bool(staircase))


@dataclass(frozen=True, repr=False)
class MultiStep(_Frozen, Schedule):
    """v(t) = init * factor ^ (number of milestones <= t)."""

    init: float
    milestones: tuple[float, ...]
    factor: float

    def value(self, step: float) -> float:
        passed = sum(1 for m in self.milestones if step >= m)
        return self.init * self.factor**passed


def multi_step(init: float, milestones: Sequence[float], factor: float = 0.1) -> Schedule:
    """Multiply by `factor` at each milestone (torch's MultiStepLR)."""
    marks = tuple(finite(f"milestones[{i}]", m) for i, m in enumerate(milestones))
    need(all(m > 0 for m in marks), f"milestones must be > 0, got {list(marks)}")
    need(all(a < b for a, b in zip(marks, marks[1:])),
         f"milestones must be strictly increasing, got {list(marks)}")
    return MultiStep(finite("init", init), marks, decay_factor("factor", factor))


@dataclass(frozen=True, repr=False)
class StepDecay(_Frozen, Schedule):
    """v(t) = init * factor ^ floor(t / step_size)."""

    init: float
    factor: float
    step_size: int

    def value(self, step: float) -> float:
        return self.init * self.factor ** (step // self.step_size)


def step_decay(init: float, factor: float = 0.1, step_size: int = 10) -> Schedule:
    """``lr = lr_0 * factor^(t // step_size)``, e.g. divide by 10 every 10 epochs."""
    return StepDecay(finite("init", init), decay_factor("factor", factor),
                     positive_int("step_size", step_size))


@dataclass(frozen=True, repr=False)
class Polynomial(_Frozen, Schedule):
    """v(t) = end + (init - end) * (1 - min(t, steps) / steps) ^ power."""

    init: float
    end: float
    steps: int
    power: float

    def value(self, step: float) -> float:
        remaining = 1.0 - min(step, self.steps) / self.steps
        return self.end + (self.init - self.end) * remaining**self.power


def polynomial(init: float, end: float, steps: int, power: float = 1.0) -> Schedule:
    power = finite("power", power)
    need(power > 0, f"power must be > 0, got {power!r}")
    return Polynomial(finite("init", init), finite("end", end), positive_int("steps", steps),
                      power)


@dataclass(frozen=True, repr=False)
class SqrtDecay(_Frozen, Schedule):
    """v(t) = end + (init - end) * (1 - sqrt(min(t, steps) / steps)): WSD's "1-sqrt" decay."""

    init: float
    end: float
    steps: int

    def value(self, step: float) -> float:
        frac = min(step, self.steps) / self.steps
        return self.end + (self.init - self.end) * (1 - math.sqrt(frac))


@dataclass(frozen=True, repr=False)
class Cosine(_Frozen, Schedule):
    """v(t) = floor + (init - floor) * (1 + cos(pi * min(t, steps) / steps)) / 2."""

    init: float
    floor: float
    steps: int

    def value(self, step: float) -> float:
        frac = min(step, self.steps) / self.steps
        return self.floor + (self.init - self.floor) * 0.5 * (1.0 + math.cos(math.pi * frac))


def cosine(init: float, steps: int, floor: float = 0.0) -> Schedule:
    """Cosine annealing (Loshchilov & Hutter, 2017) from `init` to `floor` over `steps`."""
    return Cosine(finite("init", init), finite("floor", floor), positive_int("steps", steps))


@dataclass(frozen=True, repr=False)
class CosineRestarts(_Frozen, Schedule):
    """SGDR: cosine from init to floor over periods T_i = period * period_mult^i."""

    init: float
    floor: float
    period: int
    period_mult: float

    def _cycle(self, step: float) -> tuple[float, float]:
        """(position within the current cycle, its length), in closed form."""
        m, T = self.period_mult, self.period
        if m == 1.0:
            return step % T, float(T)
        i = math.floor(math.log1p(step * (m - 1) / T) / math.log(m))
        start = T * (m**i - 1) / (m - 1)
        # Guard the boundaries against rounding in log/pow.
        if start > step:
            i -= 1
        elif start + T * m**i <= step:
            i += 1
        start = T * (m**i - 1) / (m - 1)
        return step - start, T * m**i

    def value(self, step: float) -> float:
        pos, length = self._cycle(step)
        return self.floor + (self.init - self.floor) * 0.5 * (1 + math.cos(math.pi * pos / length))


def cosine_restarts(init: float, period: int, period_mult: float = 1.0,
                    floor: float = 0.0) -> Schedule:
    """Cosine with warm restarts (SGDR; torch's CosineAnnealingWarmRestarts with T_mult).

    The value jumps back to `init` at the start of each cycle; cycle i lasts
    ``period * period_mult**i`` steps.
    """
    mult = finite("period_mult", period_mult)
    need(mult >= 1, f"period_mult must be >= 1, got {period_mult!r}")
    return CosineRestarts(finite("init", init), finite("floor", floor),
                          positive_int("period", period), mult)


def _check_warmup(warmup_steps: int, total_steps: int) -> None:
    positive_int("total_steps", total_steps)
    need(isinstance(warmup_steps, int) and 0 <= warmup_steps < total_steps,
         f"warmup_steps must be an integer in [0, total_steps={total_steps}), "
         f"got {warmup_steps!r}")


def warmup_cosine(peak: float, warmup_steps: int, total_steps: int, floor: float = 0.0,
                  start: float = 0.0) -> Schedule:
    """Linear warmup from `start` to `peak`, then cosine to `floor` at `total_steps`."""
    _check_warmup(warmup_steps, total_steps)
    decay = cosine(peak, total_steps - warmup_steps, floor)
    if warmup_steps == 0:
        return decay
    return join([linear(start, peak, warmup_steps), decay], [warmup_steps])


def warmup_stable_decay(peak: float, warmup_steps: int, total_steps: int, decay_steps: int,
                        floor: float = 0.0, shape: str = "linear") -> Schedule:
    """Warmup-stable-decay (WSD; Hu et al. 2024, MiniCPM): linear warmup, a long plateau at
    `peak`, then a short decay to `floor` over the last `decay_steps` steps.

    `shape` of the decay: ``"linear"``, ``"cosine"`` or ``"sqrt"`` (1 - sqrt(x)).
    """
    _check_warmup(warmup_steps, total_steps)
    positive_int("decay_steps", decay_steps)
    need(warmup_steps + decay_steps <= total_steps,
         f"warmup_steps + decay_steps must be <= total_steps={total_steps}, got "
         f"{warmup_steps} + {decay_steps}")
    decays = {"linear": lambda: linear(peak, floor, decay_steps),
              "cosine": lambda: cosine(peak, decay_steps, floor),
              "sqrt": lambda: SqrtDecay(peak, floor, decay_steps)}
    need(shape in decays, f"shape must be one of {', '.join(map(repr, decays))}, "
                          f"got {shape!r}")
    stable_end = total_steps - decay_steps
    pieces: list[Schedule] = []
    bounds: list[int] = []
    if warmup_steps:
        pieces.append(linear(0.0, peak, warmup_steps))
        bounds.append(warmup_steps)
    if stable_end > warmup_steps:
        pieces.append(constant(peak))
        bounds.append(stable_end)
    pieces.append(decays[shape]())
    return join(pieces, bounds)


@dataclass(frozen=True, repr=False)
class Phases(_Frozen, Schedule):
    """Piecewise annealing between (end_step, start_value, end_value) phases, torch-style."""

    phases: tuple[tuple[float, float, float], ...]
    anneal: str

    def value(self, step: float) -> float:
        start_step = 0.0
        for i, (end_step, start, end) in enumerate(self.phases):
            if step <= end_step or i == len(self.phases) - 1:
                pct = min(max((step - start_step) / (end_step - start_step), 0.0), 1.0)
                if self.anneal == "cos":
                    return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
                return (end - start) * pct + start
            start_step = end_step
        raise AssertionError("unreachable")


def one_cycle(max_lr: float, total_steps: int, pct_start: float = 0.3,
              div_factor: float = 25.0, final_div_factor: float = 1e4, anneal: str = "cos",
              three_phase: bool = False) -> Schedule:
    """The 1cycle policy (Smith & Topin, 2018), with torch's OneCycleLR conventions.

    From ``max_lr / div_factor`` up to `max_lr` over the first `pct_start` of the steps,
    then down to ``max_lr / div_factor / final_div_factor``; `anneal` is ``"cos"`` or
    ``"linear"``. ``three_phase`` comes back to the initial value before the final descent.
    """
    positive_int("total_steps", total_steps)
    pct = finite("pct_start", pct_start)
    need(0 < pct < 1, f"pct_start must be in (0, 1), got {pct_start!r}")
    need(anneal in ("cos", "linear"), f"anneal must be 'cos' or 'linear', got {anneal!r}")
    max_lr = finite("max_lr", max_lr)
    initial = max_lr / finite("div_factor", div_factor)
    minimum = initial / finite("final_div_factor", final_div_factor)
    up_end = pct * total_steps - 1
    need(up_end > 0, f"pct_start * total_steps must exceed 1, got {pct} * {total_steps}")
    if three_phase:
        phases = ((up_end, initial, max_lr), (2 * pct * total_steps - 2, max_lr, initial),
                  (total_steps - 1, initial, minimum))
    else:
        phases = ((up_end, initial, max_lr), (total_steps - 1.0, max_lr, minimum))
    return Phases(tuple(phases), anneal)


@dataclass(frozen=True, repr=False)
class Cyclic(_Frozen, Schedule):
    """Cyclical learning rates (Smith, 2017), torch's CyclicLR formula."""

    base: float
    max: float
    step_size_up: int
    step_size_down: int
    mode: str
    gamma: float

    def value(self, step: float) -> float:
        total = self.step_size_up + self.step_size_down
        ratio = self.step_size_up / total
        cycle = math.floor(1 + step / total)
        x = 1.0 + step / total - cycle
        scale = x / ratio if x <= ratio else (x - 1) / (ratio - 1)
        if self.mode == "triangular":
            amplitude = 1.0
        elif self.mode == "triangular2":
            amplitude = math.ldexp(1.0, -(cycle - 1))  # 1 / 2^(cycle-1), underflows to 0
        else:  # exp_range: decays with the step count
            amplitude = self.gamma**step
        return self.base + (self.max - self.base) * scale * amplitude


CYCLIC_MODES = ("triangular", "triangular2", "exp_range")


def cyclic(base: float, max: float, step_size_up: int = 2000, step_size_down: int | None = None,
           mode: str = "triangular", gamma: float = 1.0) -> Schedule:
    """Triangular cycles between `base` and `max`: ``triangular`` (constant amplitude),
    ``triangular2`` (amplitude halves each cycle), ``exp_range`` (amplitude * gamma^t)."""
    need(mode in CYCLIC_MODES, f"mode must be one of {', '.join(map(repr, CYCLIC_MODES))}, "
                               f"got {mode!r}")
    up = positive_int("step_size_up", step_size_up)
    down = up if step_size_down is None else positive_int("step_size_down", step_size_down)
    return Cyclic(finite("base", base), finite("max", max), up, down, mode,
                  decay_factor("gamma", gamma))
