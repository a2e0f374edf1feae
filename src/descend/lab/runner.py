"""Run a grid of specs: skip what is finished, spread the rest over processes, show progress.

Every run executes with one torch thread, in a worker process or in this one, so the
numbers do not depend on `jobs`.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import registry
from .records import RunWriter, read_run, run_path
from .spec import REGIMES, RunSpec
from .tasks import Task, get_task
from .train import train


@dataclass(frozen=True)
class Grid:
    """optimizer x schedule x seed x regime, on one task, plus optional lr tuning.

    With `tune_lr`, every (optimizer, schedule, regime) first runs on the first seed at
    each lr of a log grid: `lr_grid` (absolute values, the same for every optimizer) or,
    when empty, `tune_points` values spread over x1/30 .. x30 of the optimizer's default
    lr. The lr with the lowest final *validation* loss wins (never the test set), and the
    main runs are made both at that lr and at the default.
    """

    task: str
    optimizers: tuple[str, ...] = registry.DEFAULT_OPTIMIZERS
    schedules: tuple[str, ...] = ("constant",)
    seeds: tuple[int, ...] = (0, 1, 2)
    regimes: tuple[str, ...] = ("minibatch",)
    batch_size: int | None = None
    epochs: int | None = None
    steps: int | None = None
    evals: int = 50
    tune_lr: bool = False
    lr_grid: tuple[float, ...] = ()
    tune_points: int = 7
    task_options: tuple[tuple[str, Any], ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizers",
                           tuple(registry.canonical_optimizer(o) for o in self.optimizers))
        object.__setattr__(self, "schedules",
                           tuple(registry.canonical_schedule(s) for s in self.schedules))
        for regime in self.regimes:
            if regime not in REGIMES:
                raise ValueError(f"unknown regime {regime!r}; available: {', '.join(REGIMES)}")
        if not self.optimizers or not self.seeds or not self.schedules or not self.regimes:
            raise ValueError("a grid needs at least one optimizer, schedule, seed and regime")
        if self.tune_lr and not self.lr_grid and self.tune_points < 2:
            raise ValueError(f"tune_points must be >= 2, got {self.tune_points}")
        if any(not (lr > 0 and math.isfinite(lr)) for lr in self.lr_grid):
            raise ValueError(f"lr_grid values must be finite and > 0, got {self.lr_grid}")

    def _spec(self, task: Task, optimizer: str, schedule: str, seed: int, regime: str,
              **extra: Any) -> RunSpec:
        given = "lr" in registry.split_spec(optimizer, "optimizer")[1]
        extra.setdefault("lr_source", "given" if given else "default")
        return RunSpec(task=self.task, optimizer=optimizer, schedule=schedule, seed=seed,
                       regime=regime, batch_size=self.batch_size or task.batch_size,
                       epochs=None if self.steps else (self.epochs or task.epochs),
                       steps=self.steps, evals=self.evals, task_options=self.task_options,
                       **extra)

    def lrs_to_try(self, optimizer: str) -> list[float]:
        if self.lr_grid:
            return list(self.lr_grid)
        base = registry.optimizer_lr(optimizer)
        k = self.tune_points
        return [float(f"{base * 10 ** (-1.5 + 3 * i / (k - 1)):.3g}") for i in range(k)]

    def tune_specs(self, task: Task) -> list[RunSpec]:
        if not self.tune_lr:
            return []
        return [self._spec(task, registry.with_lr(o, lr), s, self.seeds[0], r, role="tune",
                           lr_source="tuned")
                for o in self.optimizers for s in self.schedules for r in self.regimes
                for lr in self.lrs_to_try(o)]

    def main_specs(self, task: Task, tuned: dict[tuple[str, str, str], float]
                   ) -> list[RunSpec]:
        specs = []
        for o in self.optimizers:
            for s in self.schedules:
                for r in self.regimes:
                    for seed in self.seeds:
                        specs.append(self._spec(task, o, s, seed, r))
                        if (o, s, r) in tuned:
                            specs.append(self._spec(task, registry.with_lr(o, tuned[o, s, r]),
                                                    s, seed, r, lr_source="tuned"))
        return specs

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def best_lrs(grid: Grid, task: Task, run_dir: Path) -> dict[tuple[str, str, str], float]:
    """The tuned lr of each (optimizer, schedule, regime): lowest final validation loss."""
    best: dict[tuple[str, str, str], tuple[float, float]] = {}
    for o in grid.optimizers:
        for s in grid.schedules:
            for r in grid.regimes:
                for lr in grid.lrs_to_try(o):
                    spec = grid._spec(task, registry.with_lr(o, lr), s, grid.seeds[0], r,
                                      role="tune", lr_source="tuned")
                    run = read_run(run_path(run_dir, spec))
                    if run.summary is None or run.summary["diverged"] or not run.evals:
                        continue
                    val = run.evals[-1]["val_loss"]
                    if math.isfinite(val) and ((o, s, r) not in best or val < best[o, s, r][0]):
                        best[o, s, r] = (val, lr)
    return {key: lr for key, (_, lr) in best.items()}


# -- execution -----------------------------------------------------------------------------

ProgressFn = Callable[[str, int, int, float], None]
_TASK_CACHE: dict[tuple[str, tuple], Task] = {}


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_one(spec: RunSpec, run_dir: Path, task: Task | None = None,
            progress: ProgressFn | None = None) -> None:
    """Execute one spec, writing its records file."""
    if task is None:
        key = (spec.task, spec.task_options)
        if key not in _TASK_CACHE:
            _TASK_CACHE[key] = get_task(spec.task, **dict(spec.task_options))
        task = _TASK_CACHE[key]
    writer = RunWriter(run_path(run_dir, spec), spec)
    try:
        with one_thread():
            summary = train(spec, task, writer.write,
                            None if progress is None else
                            lambda s, t, loss: progress(spec.run_id, s, t, loss))
        writer.finish(summary)
    finally:
        writer.close()


def _worker(spec_json: dict[str, Any], run_dir: str, messages: Any) -> str:
    spec = RunSpec.from_json(spec_json)

    def progress(run_id: str, step: int, total: int, loss: float) -> None:
        messages.put((run_id, step, total, loss))

    run_one(spec, Path(run_dir), progress=progress)
    return spec.run_id


def pending(specs: Sequence[RunSpec], run_dir: Path) -> list[RunSpec]:
    """The specs whose runs have not finished (no file, or no summary line)."""
    todo = []
    for spec in specs:
        path = run_path(run_dir, spec)
        if not path.exists() or not read_run(path).finished:
            todo.append(spec)
    return todo


def execute(specs: Sequence[RunSpec], run_dir: Path, *, jobs: int = 1,
            task: Task | None = None, show: Any = None) -> int:
    """Run the unfinished specs; return how many ran. `show` is a progress display with
    ``start(spec)``, ``update(run_id, step, total, loss)`` and ``done(run_id)``."""
    todo = pending(specs, run_dir)
    if not todo:
        return 0

    def on_progress(run_id: str, step: int, total: int, loss: float) -> None:
        if show is not None:
            show.update(run_id, step, total, loss)

    if jobs <= 1 or task is not None or len(todo) == 1:
        for spec in todo:
            if show is not None:
                show.start(spec)
            run_one(spec, run_dir, task, on_progress)
            if show is not None:
                show.done(spec.run_id)
        return len(todo)

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        messages = manager.Queue()
        stop = threading.Event()

        def pump() -> None:
            while not stop.is_set():
                try:
                    on_progress(*messages.get(timeout=0.1))
                except queue.Empty:
                    continue
                except (EOFError, OSError):
                    return

        thread = threading.Thread(target=pump, daemon=True)
        thread.start()
        try:
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
                futures = {}
                for spec in todo:
                    futures[pool.submit(_worker, spec.to_json(), str(run_dir), messages)] = spec
                    if show is not None:
                        show.start(spec)
                remaining = set(futures)
                while remaining:
                    finished, remaining = wait(remaining, return_when=FIRST_COMPLETED)
                    for future in finished:
                        future.result()
                        if show is not None:
                            show.done(futures[future].run_id)
        finally:
            stop.set()
            thread.join()
    return len(todo)


def default_jobs() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)

