"""`compare`: the lab's main job, as a Python function (the CLI is a thin layer over it)."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import machine
from .analysis import Comparison
from .console import ProgressDisplay
from .lock import folder_lock
from .records import finished, read_json, write_json_atomic
from .report import build_report, warm_up
from .runner import execute, one_thread, pending, task_key
from .spec import Execution, Grid, best_lrs, split_options
from .tasks import DEFAULT_TASK, Task, get_task


@dataclass
class CompareResult:
    """What `compare` wrote, and the comparison it computed from it."""

    out: Path  # the run folder
    report: Path  # report.html (report.md, summary.json and the PNGs lie beside it)
    comparison: Comparison
    runs: int  # runs in the grid (lr trials included)
    ran: int  # of which trained by this call; the others were finished in `out` already
    # Wall seconds of each phase: validate (the grid's specs), prepare (data, the budget's
    # schedules, the folder), start (workers), train, stop (workers), report
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {**self.comparison.to_json(), "out": str(self.out), "report": str(self.report),
                "runs": self.runs, "ran": self.ran, "timings": self.timings}


def compare(task: str | Task = DEFAULT_TASK, optimizers: Sequence[str] | None = None, *,
            progress: bool = True, console: Any = None, **options: Any) -> CompareResult:
    """Train `task` under every optimizer x schedule x seed x regime and compare them.

    `task` is a built-in task name or your own `Task` (see `Task.from_tensors`). `options`
    are the fields of `Grid` (what to train: schedules, seeds, regimes, epochs, tune_lr,
    target, tune_trials, ...) and of `Execution` (where: out, jobs, cluster); the CLI's
    flags are generated from the same fields. Runs already finished in `out` are skipped,
    so calling again after an interruption resumes the grid. Returns what was written.

    With ``tune_trials=N``, an Optuna study of N trials over these optimizers (lr on a log
    scale, first seed, validation loss) runs first, in ``out/tune``; its best configuration
    joins the comparison as one more row, and its plots join the report.
    """
    clock = Clock()
    grid_options, where = split_options(options)
    if optimizers is not None:
        grid_options["optimizers"] = optimizers
    own = isinstance(task, Task)
    grid = Grid(task=task.name if own else task, **grid_options)
    clock.lap("validate")
    return run_grid(grid, Execution(**where), task if own else None, progress=progress,
                    console=console, clock=clock)


class Clock:
    """Wall time of the phases of a compare, for `CompareResult.timings`."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(self.laps.get(name, 0.0) + now - self.last, 3)
        self.last = now


def run_grid(grid: Grid, where: Execution, task: Task | None = None, *,
             progress: bool = True, console: Any = None, clock: Clock | None = None
             ) -> CompareResult:
    """Validate everything, then hold the run folder, train what is missing and report."""
    clock = clock or Clock()
    own = task is not None
    task = task or get_task(grid.task, **dict(grid.task_options))
    with one_thread():
        task.splits  # noqa: B018 (a missing or corrupt data folder fails here, before any write)
    grid.check(task)
    out = Path(where.out or Path("runs") / grid.task)
    cluster = None
    if where.cluster:
        if own:
            raise ValueError("a cluster runs registered tasks only (it rebuilds them by name "
                             "on its workers); run your own Task locally")
        from .cluster import DaskCluster

        cluster = DaskCluster(where.cluster)  # unreachable: fails here, before any write
    try:
        with folder_lock(out) as out:
            if grid.tune_trials:
                grid = _study_first(grid, task, out, progress)
            return _train_and_report(grid, where, task, own, out, cluster, progress, console,
                                     clock)
    finally:
        if cluster is not None:
            cluster.close()


def _study_first(grid: Grid, task: Task, out: Path, progress: bool) -> Grid:
    from .tune import Space, TuneSettings
    from .tune import tune as run_study

    best = run_study(TuneSettings(task=grid.task, space=Space(optimizers=list(grid.optimizers)),
                                  trials=grid.tune_trials, epochs=grid.epochs,
                                  batch_size=grid.batch_size, seed=grid.seeds[0],
                                  out=str(out / "tune"), data_dir=grid.data_dir),
                     progress=progress, task=task)
    if best["optimizer"] in grid.optimizers:
        return grid
    return dataclasses.replace(grid, optimizers=(*grid.optimizers, best["optimizer"]))


def _train_and_report(grid: Grid, where: Execution, task: Task, own: bool, out: Path,
                      cluster: Any, progress: bool, console: Any, clock: Clock
                      ) -> CompareResult:
    from .pool import LocalPool, default_jobs, make_executor

    tune = grid.tune_specs(task)
    known = tune + grid.main_specs(task, {})
    todo = len(pending(known, out)) + (len(grid.main_specs(task, {})) if grid.tune_lr else 0)
    if cluster is not None:
        executor = cluster
    else:
        jobs = where.jobs or default_jobs()
        # Started before the progress display's thread: workers are forked from here.
        executor = make_executor(jobs, {task_key(known[0]): task}, todo, own_task=own)
    ran = 0
    clock.lap("prepare")
    old = read_json(out / "grid.json") if (out / "grid.json").exists() else {}
    about = {**machine.describe(getattr(executor, "jobs", 1)),
             **({"parallel_runs": "a Dask cluster's"} if cluster is not None else {})}
    try:
        if todo and hasattr(executor, "start"):
            executor.start()
            if isinstance(executor, LocalPool):  # this process only waits while they train
                warm_up()
        clock.lap("start")
        with machine.LoadSampler() as load, \
                ProgressDisplay(grid.planned_runs(), progress, console) as show:
            ran += execute(tune, out, executor, show)
            tuned = best_lrs(grid, task, lambda s: finished(out, s)) if grid.tune_lr else {}
            main = grid.main_specs(task, tuned)
            ids = [s.run_id for s in tune + main]
            # Load measured in earlier sessions of the same grid (an interrupted command
            # run again) still describes some of its runs.
            sessions = old.get("sessions", []) if old.get("run_ids") == ids else []
            state = {**grid.to_json(), "run_ids": ids, "machine": about,
                     "tuned_lrs": {" ".join(k): v for k, v in tuned.items()},
                     "sessions": sessions}
            write_json_atomic(out / "grid.json", state)
            ran += execute(main, out, executor, show)
        if ran:
            state["sessions"] = [*sessions, {**load.summary(), "runs_trained": ran}]
            write_json_atomic(out / "grid.json", state)
        clock.lap("train")
    finally:
        if cluster is None:
            executor.close()
    clock.lap("stop")
    cmp, html = build_report(out, grid.target)
    clock.lap("report")
    return CompareResult(out=out, report=html, comparison=cmp, runs=grid.planned_runs(),
                         ran=ran, timings=clock.laps)
