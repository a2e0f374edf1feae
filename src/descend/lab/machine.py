"""What a measurement ran on: the machine, its threads, and its load while runs trained.

Reports state these next to every time they show: CPU time of a training thread hardly
moves when other processes share the machine, wall-clock time does.
"""

from __future__ import annotations

import math
import os
import platform
import socket
import statistics
import threading
import time
from pathlib import Path
from typing import Any


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def usable_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return math.nan


def describe(jobs: int) -> dict[str, Any]:
    import torch

    return {"host": socket.gethostname(), "cpu": cpu_model(), "cores": os.cpu_count(),
            "usable_cores": usable_cores(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "torch_threads_per_run": 1, "parallel_runs": jobs}


class LoadSampler:
    """Samples the 1-minute load average every `every` seconds in a daemon thread (start
    it after forking workers: a fork copies only the forking thread)."""

    def __init__(self, every: float = 2.0) -> None:
        self.every = every
        self.samples: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="descend-load", daemon=True)
        self.started = self.ended = math.nan

    def _run(self) -> None:
        while not self._stop.is_set():
            value = load_average()
            if math.isfinite(value):
                self.samples.append(value)
            self._stop.wait(self.every)

    def __enter__(self) -> LoadSampler:
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)
        self.ended = time.time()

    def summary(self) -> dict[str, Any]:
        s = self.samples
        return {"started": self.started, "ended": self.ended,
                "wall_seconds": self.ended - self.started,
                "load_min": min(s) if s else math.nan,
                "load_median": statistics.median(s) if s else math.nan,
                "load_max": max(s) if s else math.nan, "samples": len(s)}


def _runs(n: Any) -> str:
    return "1 run" if n == 1 else f"{n} runs"


def sentence(machine: dict[str, Any], sessions: list[dict[str, Any]]) -> str:
    """One paragraph for a report: machine, threads, parallel runs, load during runs."""
    text = (f"Machine: {machine.get('cpu', '?')}, {machine.get('usable_cores', '?')} usable "
            f"cores ({machine.get('host', '?')}; {machine.get('platform', '?')}; torch "
            f"{machine.get('torch', '?')}). Each run trains with "
            f"{machine.get('torch_threads_per_run', 1)} torch thread; "
            f"{_runs(machine.get('parallel_runs', '?'))} in parallel.")
    loads = [s for s in sessions if s.get("samples")]
    if loads:
        lo = min(s["load_min"] for s in loads)
        hi = max(s["load_max"] for s in loads)
        med = statistics.median(s["load_median"] for s in loads)
        wall = sum(s.get("wall_seconds", 0) for s in sessions)
        text += (f" Load average (1 min) while training: median {med:.2f}, range "
                 f"{lo:.2f}-{hi:.2f}, over {wall:.0f} s in {len(sessions)} session(s).")
        cores = machine.get("usable_cores") or 1
        if hi > cores + 0.5:
            text += (f" The load exceeded the {cores} cores at times: other work shared "
                     "the machine, which slows wall-clock time more than CPU time.")
    return text
