"""Run a grid of specs: skip what is finished, hand the rest to an executor, and write each
run's records as it comes back.

Executors (`pool.InProcess`, `pool.LocalPool`, `cluster.DaskCluster`) only train: they map
specs to records. This process is the only writer of the run folder, whichever process or
machine trained a run, so records reach the folder exactly once.

Every run executes with one torch thread, so the numbers do not depend on where it ran.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from .records import finished, write_run
from .spec import RunSpec
from .tasks import Task, get_task
from .train import train

Progress = Callable[[str, int, int, float], None]  # run id, step, total steps, loss
TaskKey = tuple[str, tuple[tuple[str, Any], ...]]
Records = list[dict[str, Any]]


class Display(Protocol):
    """What executors report to: a progress display (see `console.ProgressDisplay`)."""

    def skip(self, n: int) -> None: ...
    def start(self, spec: RunSpec) -> None: ...
    def update(self, run_id: str, step: int, total: int, loss: float) -> None: ...
    def done(self, run_id: str) -> None: ...


class Executor(Protocol):
    """Maps specs to their records, in any order, each exactly once."""

    def run(self, specs: Sequence[RunSpec], show: Display) -> Iterator[tuple[RunSpec, Records]]:
        ...

    def close(self) -> None: ...


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def task_key(spec: RunSpec) -> TaskKey:
    return spec.task, spec.task_options


_TASKS: dict[TaskKey, Task] = {}  # per process: a worker loads each task's data once


def load_task(key: TaskKey) -> Task:
    if key not in _TASKS:
        task = get_task(key[0], **dict(key[1]))
        with one_thread():
            task.splits  # noqa: B018 (loads the data now)
        _TASKS[key] = task
    return _TASKS[key]


def run_spec(spec: RunSpec, task: Task, progress: Progress | None = None) -> Records:
    """Train one spec; its records as the file holds them: spec, evals, summary."""
    records: Records = [{"kind": "spec", **spec.to_json()}]
    report = None if progress is None else (
        lambda step, total, loss: progress(spec.run_id, step, total, loss))
    with one_thread():
        summary = train(spec, task, records.append, report)
    records.append({"kind": "summary", **summary})
    return records


def pending(specs: Sequence[RunSpec], run_dir: Path) -> list[RunSpec]:
    """The specs whose runs have not finished (no file, an empty or cut file, or no
    summary line); each spec once."""
    seen: set[str] = set()
    todo = []
    for spec in specs:
        if spec.run_id not in seen and finished(run_dir, spec) is None:
            todo.append(spec)
        seen.add(spec.run_id)
    return todo


class _Quiet:
    def skip(self, n: int) -> None:
        pass

    def start(self, spec: RunSpec) -> None:
        pass

    def update(self, run_id: str, step: int, total: int, loss: float) -> None:
        pass

    def done(self, run_id: str) -> None:
        pass


def execute(specs: Sequence[RunSpec], run_dir: Path, executor: Executor | None = None,
            show: Display | None = None) -> int:
    """Run the unfinished specs and write their records; return how many ran. The caller
    holds the run folder (`lock.folder_lock`)."""
    from .pool import InProcess

    todo = pending(specs, run_dir)
    show = show or _Quiet()
    show.skip(len({s.run_id for s in specs}) - len(todo))
    if not todo:
        return 0
    executor = executor or InProcess()
    for spec, records in executor.run(todo, show):
        write_run(run_dir, spec, records)
        show.done(spec.run_id)
    return len(todo)
