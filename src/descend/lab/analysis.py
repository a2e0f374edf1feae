"""The measured comparison, computed from saved records only.

Rows group the runs of one configuration (optimizer, schedule, regime, lr source) over
seeds. Definitions, also printed under the report's table:

- metric: accuracy for classification (higher is better), loss for regression (lower).
- target: given, or 90% of the way from the initial validation metric to the best final
  mean validation metric of any row: ``init + 0.9 (best - init)``.
- steps / seconds to target: the first evaluation at which the seed-mean validation
  metric reaches the target; seconds are CPU seconds of the training thread by default
  (``clock="wall"``: wall-clock), evaluations excluded.
- final / best: the test metric at the last evaluation, and the best validation metric
  seen, as mean +- std over the seeds that did not diverge.
- spread: std over seeds of the final test metric.
- oscillation: total variation of the full training loss over the evaluations, divided
  by its net decrease, minus 1 (0 for a monotone descent), averaged over seeds.
- within seed noise: rows whose final test metric's 95% interval over seeds overlaps the
  best row's (`noise` lines); the seeds cannot tell them apart.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .records import Run


@dataclass
class Row:
    label: str
    optimizer: str
    schedule: str
    regime: str
    lr_source: str
    lr: float
    seeds: int
    diverged: int
    steps_to_target: float
    seconds_to_target: float
    final_mean: float
    final_std: float
    best_mean: float
    best_std: float
    oscillation: float
    step_time_ms: float
    state_bytes_per_param: float
    distance_mean: float = math.nan
    batch_size: int = 0
    planned_steps: int = 0
    final_ci: float = math.nan
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Comparison:
    rows: list[Row]
    metric: str                 # "acc" or "loss"
    higher_is_better: bool
    target: float
    target_given: bool
    lines: list[str]
    tuning: dict[str, list[tuple[float, float, bool]]]  # label -> [(lr, val loss, diverged)]
    clock: str = "cpu"
    noise: list[str] = field(default_factory=list)
    mixed_regimes: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"metric": self.metric, "higher_is_better": self.higher_is_better,
                "target": self.target, "target_given": self.target_given,
                "clock": self.clock, "rows": [r.to_json() for r in self.rows],
                "lines": self.lines, "noise": self.noise,
                "tuning": {k: [list(t) for t in v] for k, v in self.tuning.items()}}


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return math.nan, math.nan
    mean = math.fsum(values) / len(values)
    # Population std in floats: statistics.pstdev is exact (fractions) and ~50x slower,
    # which the report's curves (one per evaluation, key and row) felt.
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / len(values))


def oscillation(losses: Sequence[float]) -> float:
    losses = [v for v in losses if math.isfinite(v)]
    if len(losses) < 2:
        return math.nan
    variation = sum(abs(b - a) for a, b in zip(losses, losses[1:]))
    net = losses[0] - losses[-1]
    if net <= 0:
        return math.inf
    return variation / net - 1.0


def mean_curve(runs: Sequence[Run], key: str) -> tuple[list[int], list[float], list[float]]:
    """Seed-mean and std of a recorded quantity at each evaluated step that every
    non-diverged seed reached."""
    alive = [r for r in runs if r.summary and not r.summary["diverged"]] or list(runs)
    if not alive:
        return [], [], []
    length = min(len(r.evals) for r in alive)
    steps = [e["step"] for e in alive[0].evals[:length]]
    means, stds = [], []
    for i in range(length):
        m, s = _mean_std([r.evals[i].get(key, math.nan) for r in alive])
        means.append(m)
        stds.append(s)
    return steps, means, stds


def label(spec: Any, mixed: bool) -> str:
    """The row label of a run; with several regimes in one comparison, mini-batch rows say
    so too (a spec's own label names only the other regimes)."""
    return spec.label + (" (minibatch)" if mixed and spec.regime == "minibatch" else "")


def mixed_regimes(runs: Iterable[Run]) -> bool:
    return len({r.spec.regime for r in runs if r.finished}) > 1


def group_runs(runs: Iterable[Run], role: str = "main") -> dict[str, list[Run]]:
    runs = [r for r in runs if r.finished and r.spec.role == role]
    mixed = mixed_regimes(runs)
    groups: dict[str, list[Run]] = defaultdict(list)
    for run in runs:
        groups[label(run.spec, mixed)].append(run)
    return dict(groups)


def seconds(record: dict[str, Any], clock: str) -> float:
    """Training seconds of an eval record: CPU of the training thread, or wall-clock
    (records from before CPU time was measured have wall-clock only)."""
    return record.get("cpu", record["time"]) if clock == "cpu" else record["time"]


def step_ms(summary: dict[str, Any], clock: str) -> float:
    return summary.get("step_cpu_ms", summary["step_time_ms"]) if clock == "cpu" \
        else summary["step_time_ms"]


def compare_runs(runs: Sequence[Run], target: float | None = None, clock: str = "cpu"
                 ) -> Comparison:
    from .scoring import mean_ci

    runs = list(runs)
    main = group_runs(runs, "main")
    if not main:
        raise ValueError("no finished runs to compare")
    classification = any(math.isfinite(e.get("val_acc", math.nan))
                         for group in main.values() for r in group for e in r.evals)
    metric = "acc" if classification else "loss"
    better = (lambda a, b: a > b) if classification else (lambda a, b: a < b)
    val_key, test_key = f"val_{metric}", f"test_{metric}"

    curves = {label: mean_curve(group, val_key) for label, group in main.items()}
    target_given = target is not None
    if target is None:
        inits = [c[1][0] for c in curves.values() if c[1]]
        finals = [c[1][-1] for c in curves.values() if c[1] and math.isfinite(c[1][-1])]
        init = statistics.fmean(inits) if inits else math.nan
        best = (max if classification else min)(finals) if finals else math.nan
        target = init + 0.9 * (best - init)

    rows = []
    for label, group in main.items():
        spec = group[0].spec
        alive = [r for r in group if not r.summary["diverged"]]
        steps, means, _ = curves[label]
        reached = next((i for i, v in enumerate(means)
                        if math.isfinite(v) and not better(target, v)), None)
        if reached is None:
            steps_to, secs_to = math.inf, math.inf
        else:
            steps_to = float(steps[reached])
            secs_to = statistics.fmean(seconds(r.evals[reached], clock) for r in (alive or group))
        finals = [r.evals[-1].get(test_key, math.nan) for r in alive]
        final_mean, final_std = _mean_std(finals)
        pick = max if classification else min
        best_mean, best_std = _mean_std([pick(r.series(val_key)) for r in alive])
        osc = [oscillation(r.series("train_loss")) for r in alive]
        dist_mean, _ = _mean_std([r.evals[-1].get("distance", math.nan) for r in alive])
        rows.append(Row(
            label=label, optimizer=spec.optimizer, schedule=spec.schedule, regime=spec.regime,
            lr_source=spec.lr_source, lr=group[0].summary["lr"], seeds=len(group),
            diverged=len(group) - len(alive), steps_to_target=steps_to,
            seconds_to_target=secs_to, final_mean=final_mean, final_std=final_std,
            best_mean=best_mean, best_std=best_std,
            oscillation=statistics.fmean(osc) if osc else math.nan,
            step_time_ms=statistics.median(step_ms(r.summary, clock) for r in group),
            state_bytes_per_param=group[0].summary["state_bytes_per_param"],
            distance_mean=dist_mean, batch_size=group[0].summary["batch_size"],
            planned_steps=group[0].summary["planned_steps"], final_ci=mean_ci(finals)[1]))
    rows.sort(key=lambda r: (r.steps_to_target, -r.final_mean if classification
                             else r.final_mean))
    tuning = tuning_results(runs)
    lines = verdicts(rows, classification, tuning)
    return Comparison(rows, metric, classification, target, target_given, lines, tuning,
                      clock, noise_lines(rows, classification), mixed_regimes(runs))


def noise_lines(rows: Sequence[Row], higher_is_better: bool) -> list[str]:
    """Rows the seeds cannot tell apart from the best final test metric (their 95%
    intervals over seeds overlap), and rows with too few seeds to tell at all."""
    finite = [r for r in rows if math.isfinite(r.final_mean)]
    if len(finite) < 2:
        return []
    best = (max if higher_is_better else min)(finite, key=lambda r: r.final_mean)
    if not math.isfinite(best.final_ci):
        return ["one seed per row: no measure of seed noise; differences may be noise "
                "(run --seeds 3 or more)"]
    ties = [r.label for r in finite if r is not best and math.isfinite(r.final_ci)
            and abs(r.final_mean - best.final_mean) <= r.final_ci + best.final_ci]
    if not ties:
        return [f"{best.label} has the best final test metric, outside the 95% intervals "
                "of every other row"]
    return [f"within seed noise of the best final test metric ({best.label}): "
            f"{', '.join(ties)} (95% intervals over seeds overlap)"]


def tuning_results(runs: Sequence[Run]) -> dict[str, list[tuple[float, float, bool]]]:
    results: dict[str, list[tuple[float, float, bool]]] = defaultdict(list)
    mixed = mixed_regimes(runs)
    for run in runs:
        if run.finished and run.spec.role == "tune":
            key = label(run.spec, mixed).replace(run.spec.optimizer,
                                                 run.spec.optimizer.split(":")[0])
            val = run.evals[-1]["val_loss"] if run.evals else math.nan
            results[key].append((run.summary["lr"], val, run.summary["diverged"]))
    return {k: sorted(v) for k, v in results.items()}


def verdicts(rows: Sequence[Row], classification: bool,
             tuning: dict[str, list[tuple[float, float, bool]]]) -> list[str]:
    """Strength / weakness lines derived from the numbers: a row's strengths are the
    columns where it is best, its weaknesses where it is worst (or where it diverged)."""
    if len(rows) < 2:
        return []
    alive = [r for r in rows if r.diverged < r.seeds]
    columns = [
        ("fastest to target", "slowest to target", lambda r: r.steps_to_target, False),
        ("best final metric", "worst final metric", lambda r: r.final_mean, classification),
        ("most stable across seeds", "least stable across seeds", lambda r: r.final_std,
         False),
        ("smoothest descent", "most oscillation", lambda r: r.oscillation, False),
        ("cheapest step", "most expensive step", lambda r: r.step_time_ms, False),
        ("least optimizer state", "most optimizer state", lambda r: r.state_bytes_per_param,
         False),
    ]
    strengths: dict[str, list[str]] = defaultdict(list)
    weaknesses: dict[str, list[str]] = defaultdict(list)
    for good, bad, key, high in columns:
        values = [(key(r), r) for r in alive if math.isfinite(key(r))]
        if len({v for v, _ in values}) < 2:
            continue
        best = (max if high else min)(v for v, _ in values)
        worst = (min if high else max)(v for v, _ in values)
        for v, r in values:
            if v == best:
                strengths[r.label].append(good)
            if v == worst:
                weaknesses[r.label].append(bad)
    for r in rows:
        if r in alive and not math.isfinite(r.steps_to_target):
            weaknesses[r.label].append("never reached the target")
        if r.diverged:
            weaknesses[r.label].append(f"diverged in {r.diverged}/{r.seeds} seeds at "
                                       f"lr={r.lr:g}")
    for label, trials in tuning.items():
        bad_lrs = [lr for lr, _, diverged in trials if diverged]
        if bad_lrs:
            weaknesses[label + " (tuning)"].append(f"diverged at lr >= {min(bad_lrs):g}")
    lines = []
    for label in [r.label for r in rows] + [k for k in weaknesses if k not in
                                            {r.label for r in rows}]:
        s, w = strengths.get(label, []), weaknesses.get(label, [])
        if s or w:
            parts = []
            if s:
                parts.append("strengths: " + ", ".join(dict.fromkeys(s)))
            if w:
                parts.append("weaknesses: " + ", ".join(dict.fromkeys(w)))
            lines.append(f"{label} — " + "; ".join(parts))
    return lines
