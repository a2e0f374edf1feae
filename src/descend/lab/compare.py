"""`compare`: the lab's main job, as a Python function (the CLI is a thin layer over it)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import Comparison
from .records import write_json_atomic
from .report import build_report
from .runner import Grid, best_lrs, default_jobs, execute
from .spec import RunSpec
from .tasks import DEFAULT_TASK, Task, get_task


class ProgressDisplay:
    """Rich progress bars: one for the whole grid, one per run in flight with its loss."""

    def __init__(self, total: int, enabled: bool = True, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description:<42}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                                 TimeElapsedColumn(), console=console, disable=not enabled)
        self.overall = self.progress.add_task("all runs", total=total, loss="")
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def start(self, spec: RunSpec) -> None:
        tag = " (lr trial)" if spec.role == "tune" else ""
        self.tasks[spec.run_id] = self.progress.add_task(
            f"{spec.label} seed {spec.seed}{tag}"[:42], total=None, loss="")

    def update(self, run_id: str, step: int, total: int, loss: float) -> None:
        if run_id in self.tasks:
            self.progress.update(self.tasks[run_id], completed=step, total=total,
                                 loss=f"loss {loss:.4g}")

    def done(self, run_id: str) -> None:
        task = self.tasks.pop(run_id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.overall)


def compare(task: str | Task = DEFAULT_TASK, optimizers: Sequence[str] | None = None, *,
            schedules: Sequence[str] = ("constant",), seeds: Sequence[int] = (0, 1, 2),
            regimes: Sequence[str] = ("minibatch",), batch_size: int | None = None,
            epochs: int | None = None, steps: int | None = None, evals: int = 50,
            tune_lr: bool = False, lr_grid: Sequence[float] = (), tune_points: int = 7,
            target: float | None = None, out: str | Path | None = None,
            jobs: int | None = None, data_dir: str | None = None, progress: bool = True,
            tune_trials: int = 0, console: Any = None) -> Comparison:
    """Train `task` under every optimizer x schedule x seed x regime and compare them.

    `task` is a built-in task name or your own `Task` (see `Task.from_tensors`). Runs
    already finished in `out` are skipped, so calling again after an interruption resumes
    the grid. Returns the comparison; the report files are written into `out`.

    With ``tune_trials=N``, an Optuna study of N trials over these optimizers (lr on a log
    scale, first seed, validation loss) runs first, in ``out/tune``; its best configuration
    joins the comparison as one more row, and its plots join the report.
    """
    own = isinstance(task, Task)
    name = task.name if own else task
    options = (("data_dir", str(data_dir)),) if data_dir else ()
    task_obj = task if own else get_task(name, **dict(options))
    run_dir = Path(out or Path("runs") / name)
    optimizers = list(optimizers or Grid.optimizers)
    if tune_trials:
        from .tune import Space, TuneSettings
        from .tune import tune as run_study

        best = run_study(TuneSettings(task=name, space=Space(optimizers=optimizers),
                                      trials=tune_trials, epochs=epochs, batch_size=batch_size,
                                      seed=seeds[0], out=str(run_dir / "tune"),
                                      data_dir=data_dir), progress=progress, task=task_obj)
        if best["optimizer"] not in optimizers:
            optimizers.append(best["optimizer"])
    grid = Grid(task=name, optimizers=tuple(optimizers),
                schedules=tuple(schedules), seeds=tuple(seeds), regimes=tuple(regimes),
                batch_size=batch_size, epochs=epochs, steps=steps, evals=evals,
                tune_lr=tune_lr, lr_grid=tuple(lr_grid), tune_points=tune_points,
                task_options=options)
    run_dir.mkdir(parents=True, exist_ok=True)
    jobs = default_jobs() if jobs is None else jobs
    local = task_obj if own else None

    tune = grid.tune_specs(task_obj)
    with ProgressDisplay(len(tune) + len(grid.main_specs(task_obj, {})) *
                         (2 if tune_lr else 1), progress, console) as show:
        execute(tune, run_dir, jobs=jobs, task=local, show=show)
        tuned = best_lrs(grid, task_obj, run_dir) if tune_lr else {}
        main = grid.main_specs(task_obj, tuned)
        write_json_atomic(run_dir / "grid.json", {
            **grid.to_json(), "target": target,
            "run_ids": [s.run_id for s in tune + main],
            "tuned_lrs": {" ".join(k): v for k, v in tuned.items()}})
        execute(main, run_dir, jobs=jobs, task=local, show=show)
    cmp, _ = build_report(run_dir, target)
    return cmp
