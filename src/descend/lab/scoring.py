"""Time to target, performance profiles and one score, computed from records only.

The method is AlgoPerf's (Dahl et al., 2023), scaled to a laptop:

- a run's **time to target** is the first evaluation at which its validation metric
  reaches the workload's target, in steps, in CPU seconds of the training thread, and in
  wall-clock seconds; a run that never reaches it (or diverges) is charged the budget's
  limit: its step budget, and its own time per step times that budget;
- a row (an optimizer on a workload) takes the **median over seeds** of those times, and
  reaches the target when more than half of its seeds do;
- the **performance profile** of an optimizer is rho(tau): the fraction of workloads on
  which its time is within tau times the fastest optimizer's (Dolan & Moré, 2002); a row
  that does not reach the target never counts;
- the **score** is the area under rho between tau = 1 and `TAU_MAX` = 4, divided by 3
  (AlgoPerf's normalisation): 1 means fastest on every workload, 0 never within 4x.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .analysis import seconds
from .records import Run

TAU_MAX = 4.0
MEASURES = ("cpu", "steps", "wall")  # what "time" means: CPU seconds (default), steps, wall


@dataclass
class RunTime:
    """One run's time to target ("never" runs carry the budget's limit)."""

    seed: int
    reached: bool
    diverged: bool
    steps: float
    cpu: float
    wall: float
    final: float  # the validation metric at the last evaluation
    cpu_per_step: float

    def get(self, measure: str) -> float:
        return {"steps": self.steps, "cpu": self.cpu, "wall": self.wall}[measure]


def reaches(value: float, target: float, higher_is_better: bool) -> bool:
    if not math.isfinite(value):
        return False
    return value >= target if higher_is_better else value <= target


def run_time(run: Run, metric: str, target: float, higher_is_better: bool,
             budget_steps: int) -> RunTime:
    evals = run.evals
    summary = run.summary or {}
    done = max((e["step"] for e in evals), default=0)
    cpu_total = seconds(evals[-1], "cpu") if evals else math.nan
    wall_total = evals[-1]["time"] if evals else math.nan
    per_step = cpu_total / done if done else math.nan
    wall_per_step = wall_total / done if done else math.nan
    final = evals[-1].get(metric, math.nan) if evals else math.nan
    diverged = bool(summary.get("diverged"))
    for e in evals:
        if e["step"] > 0 and reaches(e.get(metric, math.nan), target, higher_is_better):
            return RunTime(run.spec.seed, True, diverged, float(e["step"]),
                           seconds(e, "cpu"), e["time"], final, per_step)
    return RunTime(run.spec.seed, False, diverged, float(budget_steps),
                   per_step * budget_steps, wall_per_step * budget_steps,
                   math.nan if diverged else final, per_step)


# Two-sided 95% quantiles of Student's t for 1..30 degrees of freedom.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179,
        2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064,
        2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student's t; NaN for one
    value: one seed says nothing about the spread)."""
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    mean = math.fsum(values) / len(values)
    if len(values) < 2:
        return mean, math.nan
    df = len(values) - 1
    t = _T95[df - 1] if df <= len(_T95) else 1.96
    return mean, t * statistics.stdev(values) / math.sqrt(len(values))


@dataclass
class Row:
    """One optimizer on one workload."""

    workload: str
    optimizer: str  # the name (adam, sgd, ...)
    config: str     # the optimizer spec the seeds ran (the tuned one)
    schedule: str
    trials: int     # tuning runs spent (0: self-tuning, run as it comes)
    runs: list[RunTime]
    budget_steps: int
    reached_seeds: int = 0
    reached: bool = False
    steps: float = math.nan
    cpu: float = math.nan
    wall: float = math.nan
    final_mean: float = math.nan
    final_ci: float = math.nan
    cpu_ms_per_step: float = math.nan
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        n = len(self.runs)
        self.reached_seeds = sum(r.reached for r in self.runs)
        self.reached = n > 0 and self.reached_seeds > n / 2
        for measure in MEASURES:
            values = [r.get(measure) for r in self.runs]
            setattr(self, measure, statistics.median(values) if values else math.nan)
        self.final_mean, self.final_ci = mean_ci([r.final for r in self.runs])
        per_step = [r.cpu_per_step for r in self.runs if math.isfinite(r.cpu_per_step)]
        self.cpu_ms_per_step = 1e3 * statistics.median(per_step) if per_step else math.nan

    def time(self, measure: str) -> float:
        """The row's time to target, or inf when it does not reach the target."""
        return getattr(self, measure) if self.reached else math.inf

    def span(self, measure: str) -> tuple[float, float]:
        values = [r.get(measure) for r in self.runs]
        return (min(values), max(values)) if values else (math.nan, math.nan)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["runs"] = [asdict(r) for r in self.runs]
        return data


def ratios(rows: Sequence[Row], measure: str) -> dict[str, float]:
    """Each row's time divided by the fastest row's on the same workload (inf: never)."""
    best = min((r.time(measure) for r in rows), default=math.inf)
    return {r.optimizer: (r.time(measure) / best if math.isfinite(best) and best > 0 and
                          math.isfinite(r.time(measure)) else math.inf) for r in rows}


def profiles(table: Mapping[str, Sequence[Row]], measure: str, taus: Sequence[float]
             ) -> dict[str, list[float]]:
    """rho(tau) of every optimizer: the fraction of workloads within tau of the fastest.
    `table` maps workload -> its rows."""
    by_opt: dict[str, list[float]] = {}
    for rows in table.values():
        for opt, r in ratios(rows, measure).items():
            by_opt.setdefault(opt, []).append(r)
    n = len(table)
    return {opt: [sum(r <= tau for r in rs) / n for tau in taus] for opt, rs in by_opt.items()}


def score(table: Mapping[str, Sequence[Row]], measure: str, tau_max: float = TAU_MAX
          ) -> dict[str, float]:
    """(1 / (tau_max - 1)) * integral from 1 to tau_max of rho(tau) d tau, exactly: rho is
    a step function, so a workload with ratio r adds (tau_max - r) / (tau_max - 1) / W."""
    by_opt: dict[str, float] = {}
    n = len(table)
    for rows in table.values():
        for opt, r in ratios(rows, measure).items():
            share = max(0.0, tau_max - max(1.0, r)) / (tau_max - 1) if math.isfinite(r) else 0
            by_opt[opt] = by_opt.get(opt, 0.0) + share / n
    return by_opt


def noise_notes(rows: Sequence[Row], measure: str, higher_is_better: bool) -> list[str]:
    """Which rows the seeds cannot tell apart from the best: time-to-target ranges over
    seeds that overlap the fastest row's, and final-metric 95% intervals that overlap
    the best row's."""
    notes = []
    reached = [r for r in rows if r.reached]
    if len(reached) > 1:
        fastest = min(reached, key=lambda r: r.time(measure))
        lo, hi = fastest.span(measure)
        ties = [r.optimizer for r in reached if r is not fastest
                and r.span(measure)[0] <= hi and r.span(measure)[1] >= lo]
        if ties:
            notes.append(f"time to target: {', '.join(ties)} within seed noise of the fastest, "
                         f"{fastest.optimizer} (their ranges over seeds overlap)")
    finite = [r for r in rows if math.isfinite(r.final_mean)]
    if len(finite) > 1:
        pick = max if higher_is_better else min
        best = pick(finite, key=lambda r: r.final_mean)
        if math.isfinite(best.final_ci):
            ties = [r.optimizer for r in finite if r is not best and math.isfinite(r.final_ci)
                    and abs(r.final_mean - best.final_mean) <= r.final_ci + best.final_ci]
            if ties:
                notes.append(f"final metric: {', '.join(ties)} within seed noise of the best, "
                             f"{best.optimizer} (95% intervals overlap)")
    return notes
