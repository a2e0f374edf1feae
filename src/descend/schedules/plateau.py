"""Metric-driven decay: a controller whose factor multiplies a pure schedule.

Only reacting to a validation metric needs state. Keeping that state in a small controller
that *multiplies* an ordinary schedule lets metric-driven decay compose with anything:
warmup then reduce-on-plateau is ``reduce_on_plateau(linear_warmup(1e-3, 500))``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .base import Schedule, as_schedule, finite, need, walk


@dataclass(frozen=True)
class Reduction:
    """One reduction the controller made."""

    step: float
    old: float
    new: float
    metric: float


MODES = ("min", "max")
THRESHOLD_MODES = ("rel", "abs")


class ReduceOnPlateau(Schedule):
    """``v(t) = base(t) * scale``, where `scale` drops by `factor` when the metric stalls.

    Call `report(metric)` after each evaluation. The rules are torch's ReduceLROnPlateau:

    - the metric improves when it beats the best so far by `threshold`: relatively
      (``metric < best * (1 - threshold)`` in mode "min") or absolutely
      (``metric < best - threshold``); mode "max" mirrors both;
    - after more than `patience` reports without improvement the scale is multiplied by
      `factor`, then `cooldown` reports pass before counting bad reports again;
    - a reduction never takes the value below `min_value` (the base schedule itself may),
      and a reduction smaller than `eps` (absolute, as torch's) is not made.

    Each reduction is recorded in `reductions` (step, old value, new value, metric), and
    `state_dict` / `load_state_dict` make the controller resume exactly.
    """

    def __init__(self, base: Schedule | float = 1.0, *, mode: str = "min", factor: float = 0.1,
                 patience: int = 10, threshold: float = 1e-4, threshold_mode: str = "rel",
                 cooldown: int = 0, min_value: float = 0.0, eps: float = 1e-8) -> None:
        need(mode in MODES, f"mode must be 'min' or 'max', got {mode!r}")
        need(threshold_mode in THRESHOLD_MODES,
             f"threshold_mode must be 'rel' or 'abs', got {threshold_mode!r}")
        factor = finite("factor", factor)
        need(0 < factor < 1, f"factor must be in (0, 1), got {factor!r}")
        need(isinstance(patience, int) and patience >= 0,
             f"patience must be an integer >= 0, got {patience!r}")
        need(isinstance(cooldown, int) and cooldown >= 0,
             f"cooldown must be an integer >= 0, got {cooldown!r}")
        threshold = finite("threshold", threshold)
        need(threshold >= 0, f"threshold must be >= 0, got {threshold!r}")
        min_value = finite("min_value", min_value)
        need(min_value >= 0, f"min_value must be >= 0, got {min_value!r}")
        self.base = as_schedule(base, "base")
        self.mode, self.factor, self.patience = mode, factor, patience
        self.threshold, self.threshold_mode = threshold, threshold_mode
        self.cooldown, self.min_value = cooldown, min_value
        self.eps = finite("eps", eps)
        self.scale = 1.0
        self.best = math.inf if mode == "min" else -math.inf
        self.bad_reports = 0
        self.cooldown_left = 0
        self.last_step = 0.0
        self.reductions: list[Reduction] = []

    def __repr__(self) -> str:
        return (f"ReduceOnPlateau({self.base!r}, mode={self.mode!r}, factor={self.factor}, "
                f"patience={self.patience}, scale={self.scale})")

    def children(self) -> tuple[Schedule, ...]:
        return (self.base,)

    def value(self, step: float) -> float:
        # Recorded here, not in __call__: composites (``0.1 * ctrl``, `join`) evaluate their
        # parts through `value`, and `report` needs the step the controller is driving.
        self.last_step = step
        return self.base.value(step) * self.scale

    def improved(self, metric: float) -> bool:
        rel = self.threshold_mode == "rel"
        if self.mode == "min":
            bar = self.best * (1 - self.threshold) if rel else self.best - self.threshold
            return metric < bar
        bar = self.best * (1 + self.threshold) if rel else self.best + self.threshold
        return metric > bar

    def report(self, metric: float, step: float | None = None) -> Reduction | None:
        """Feed one evaluation of the metric; returns the reduction it caused, if any.

        `step` defaults to the step at which the schedule was last evaluated (by the
        optimizer it drives). A NaN metric counts as no improvement.
        """
        metric = float(metric)
        step = self.last_step if step is None else step
        if self.improved(metric):
            self.best = metric
            self.bad_reports = 0
        else:
            self.bad_reports += 1
        if self.cooldown_left > 0:
            self.cooldown_left -= 1
            self.bad_reports = 0
        if self.bad_reports <= self.patience:
            return None
        self.bad_reports = 0
        self.cooldown_left = self.cooldown
        base = self.base.value(step)
        old = base * self.scale
        new = max(old * self.factor, self.min_value)
        if old - new <= self.eps:
            return None
        self.scale = new / base
        reduction = Reduction(step, old, new, metric)
        self.reductions.append(reduction)
        return reduction

    _STATE = ("scale", "best", "bad_reports", "cooldown_left", "last_step")

    def state_dict(self) -> dict[str, Any]:
        state = {key: getattr(self, key) for key in self._STATE}
        state["reductions"] = [asdict(r) for r in self.reductions]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in self._STATE:
            setattr(self, key, state[key])
        self.reductions = [Reduction(**r) for r in state.get("reductions", [])]


def reduce_on_plateau(base: Schedule | float = 1.0, **options: Any) -> ReduceOnPlateau:
    """``reduce_on_plateau(linear_warmup(1e-3, 500), factor=0.1, patience=5)``; see
    `ReduceOnPlateau` for the options."""
    return ReduceOnPlateau(base, **options)


def controllers(schedule: Any) -> list[ReduceOnPlateau]:
    """The stateful controllers inside a (possibly composite, possibly tuple) schedule."""
    if isinstance(schedule, tuple):
        return [c for s in schedule for c in controllers(s)]
    if not isinstance(schedule, Schedule):
        return []
    return [node for node in walk(schedule) if isinstance(node, ReduceOnPlateau)]
