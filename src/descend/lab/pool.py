"""Local executors: runs in this process, or in a pool of worker processes.

The pool's workers start once per grid, with the task data already loaded (on Linux they
are forked from this process after it loaded the data and built an optimizer, so they
start in milliseconds without importing torch again), and take runs one at a time over a
pipe. Workers only train: they send records back and this process writes them.

Workers never outlive this process, however it ends:
- on Linux the kernel kills them when it dies (``prctl(PR_SET_PDEATHSIG, SIGKILL)``);
- elsewhere, and as a second guard, each watches its parent's PID twice a second;
- one that finds its pipe closed exits, and none starts a run once its parent is gone.
Ctrl-C reaches the whole process group: workers ignore it and this process kills them at
once, keeping every run already written. No `multiprocessing.Manager` and no
`multiprocessing.Queue`: those start helper processes (a manager, a resource tracker)
that outlived a killed parent.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from .errors import LabError
from .runner import Display, Records, TaskKey, load_task, run_spec, task_key
from .spec import RunSpec
from .tasks import Task

PR_SET_PDEATHSIG = 1


class RunFailed(RuntimeError):
    """A run raised in a worker: a bug, not a bad input, so the message carries the
    worker's whole traceback and the CLI lets it show."""


def _describe(spec: RunSpec) -> str:
    return f"{spec.label} seed {spec.seed} ({spec.task}, run {spec.run_id})"


class InProcess:
    """Runs specs one after another in this process (``--jobs 1``, or a user's `Task`
    where workers cannot be forked)."""

    def __init__(self, tasks: Mapping[TaskKey, Task] | None = None) -> None:
        self.tasks = dict(tasks or {})

    def run(self, specs: Sequence[RunSpec], show: Display) -> Iterator[tuple[RunSpec, Records]]:
        for spec in specs:
            show.start(spec)
            task = self.tasks.get(task_key(spec)) or load_task(task_key(spec))
            yield spec, run_spec(spec, task, show.update)

    def close(self) -> None:
        pass

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def start_method() -> str:
    """fork on Linux from a single-threaded process (instant, inherits torch and the
    data); spawn elsewhere, or when threads are running (forking them is unsafe)."""
    if sys.platform.startswith("linux") and threading.active_count() == 1:
        return "fork"
    return "spawn"


class _Worker:
    def __init__(self, process: Any, conn: Connection) -> None:
        self.process = process
        self.conn = conn
        self.spec: RunSpec | None = None


class LocalPool:
    """`jobs` worker processes, started on first use and reused for every run."""

    def __init__(self, jobs: int, tasks: Mapping[TaskKey, Task]) -> None:
        self.jobs = jobs
        self.tasks = dict(tasks)
        self.method = start_method()
        self.workers: list[_Worker] = []

    def start(self) -> None:
        if self.workers:
            return
        ctx = mp.get_context(self.method)
        forked = self.method == "fork"
        # Forked workers get the tasks themselves (data included); spawned ones load them.
        payload: Any = self.tasks if forked else list(self.tasks)
        for i in range(self.jobs):
            ours, theirs = ctx.Pipe(duplex=True)
            # A forked child also inherits our ends of every pipe: it closes them, so that
            # each pipe's only far end is in this process.
            inherited = ([w.conn.fileno() for w in self.workers] + [ours.fileno()]
                         if forked else [])
            process = ctx.Process(target=_worker_main, name=f"descend-worker-{i}",
                                  args=(theirs, os.getpid(), payload, inherited), daemon=True)
            process.start()
            theirs.close()
            self.workers.append(_Worker(process, ours))

    def run(self, specs: Sequence[RunSpec], show: Display) -> Iterator[tuple[RunSpec, Records]]:
        self.start()
        queue = deque(specs)
        try:
            while queue or any(w.spec for w in self.workers):
                for w in self.workers:
                    if w.spec is None and queue:
                        w.spec = queue.popleft()
                        try:
                            w.conn.send(("run", w.spec.to_json()))
                        except OSError:
                            raise self._died(w) from None
                        show.start(w.spec)
                busy = {w.conn: w for w in self.workers if w.spec is not None}
                for conn in wait(list(busy), timeout=1.0):
                    w = busy[conn]
                    try:
                        message = conn.recv()
                    except (EOFError, OSError):
                        raise self._died(w) from None
                    kind = message[0]
                    if kind == "progress":
                        show.update(*message[1:])
                    elif kind == "done":
                        spec, w.spec = w.spec, None
                        yield spec, message[2]
                    elif kind == "error":
                        raise RunFailed(f"{_describe(w.spec)} failed in worker process "
                                        f"{w.process.pid}:\n{message[2]}")
        except BaseException:
            self.kill()
            raise

    @staticmethod
    def _died(w: _Worker) -> LabError:
        w.process.join(timeout=1.0)
        return LabError(f"worker process {w.process.pid} died (exit code {w.process.exitcode}) "
                        f"while training {_describe(w.spec)}; finished runs are kept, run the "
                        "same command again to resume")

    def kill(self) -> None:
        """Stop every worker now; their runs in flight are lost, nothing else is."""
        for w in self.workers:
            with contextlib.suppress(OSError, ValueError):
                w.process.kill()
        for w in self.workers:
            w.process.join(timeout=2.0)
            w.conn.close()
        self.workers = []

    def close(self) -> None:
        for w in self.workers:
            with contextlib.suppress(OSError, ValueError):
                w.conn.send(("stop",))
        # Idle workers exit at once on "stop"; nothing to flush, so never wait long.
        deadline = time.monotonic() + 1.0
        for w in self.workers:
            w.process.join(timeout=max(0.0, deadline - time.monotonic()))
        self.kill()

    def __enter__(self) -> LocalPool:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


# -- inside a worker -----------------------------------------------------------------------


def die_with_parent(parent: int) -> None:
    """Make this process end when `parent` does, however it ends."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the line above took effect
        os._exit(0)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=watch, name="descend-parent-watch", daemon=True).start()


def _worker_main(conn: Connection, parent: int, tasks: Any, inherited: list[int]) -> None:
    for fd in inherited:
        with contextlib.suppress(OSError):
            os.close(fd)
    # Ctrl-C goes to the whole process group; the parent decides and kills us.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent)
    import torch

    torch.set_num_threads(1)
    loaded: dict[TaskKey, Task] = tasks if isinstance(tasks, dict) else {
        key: load_task(key) for key in tasks}
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)
        if message[0] != "run" or os.getppid() != parent:
            os._exit(0)
        spec = RunSpec.from_json(message[1])

        def progress(run_id: str, step: int, total: int, loss: float) -> None:
            conn.send(("progress", run_id, step, total, loss))

        try:
            key = task_key(spec)
            records = run_spec(spec, loaded.get(key) or load_task(key), progress)
            conn.send(("done", spec.run_id, records))
        except (BrokenPipeError, ConnectionResetError, EOFError):
            os._exit(0)
        except Exception:
            try:
                conn.send(("error", spec.run_id, traceback.format_exc()))
            except OSError:
                os._exit(0)


def make_executor(jobs: int, tasks: Mapping[TaskKey, Task], runs: int, *,
                  own_task: bool = False) -> InProcess | LocalPool:
    """In this process for one job or one run, else a pool of min(jobs, runs) workers.
    A user's own `Task` object cannot be rebuilt by a spawned worker: it runs here then."""
    workers = min(jobs, runs)
    if workers <= 1 or (own_task and start_method() != "fork"):
        return InProcess(tasks)
    return LocalPool(workers, tasks)


def default_jobs() -> int:
    """One worker per core this process may use."""
    from .machine import usable_cores

    return max(1, usable_cores())
