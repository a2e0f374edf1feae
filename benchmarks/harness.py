"""Interleaved timing: every implementation measured in the same rounds, in random order.

A shared 2-core machine drifts: a sequential timing of A then B measures the machine as
much as A and B. Here each round runs every contender once (in a fresh random order), and
the comparison is the median over rounds of the per-round ratio, so a slow stretch slows
both sides of a ratio. CPU time of the calling thread (`time.thread_time`) is reported next
to wall time; with one torch thread it is all the work, and it does not count time the
process spent descheduled.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Timings:
    """Per-round seconds per call, CPU and wall, for each contender."""

    cpu: dict[str, list[float]] = field(default_factory=dict)
    wall: dict[str, list[float]] = field(default_factory=dict)

    def median(self, name: str, kind: str = "cpu") -> float:
        return statistics.median(getattr(self, kind)[name])

    def ratio(self, name: str, baseline: str, kind: str = "cpu") -> dict[str, float]:
        """Median and interquartile range of the per-round ratio name / baseline."""
        series = getattr(self, kind)
        ratios = [a / b for a, b in zip(series[name], series[baseline])]
        return summary(ratios)


def summary(values: list[float]) -> dict[str, float]:
    if len(values) == 1:
        return {"median": values[0], "q1": values[0], "q3": values[0]}
    q1, _, q3 = statistics.quantiles(values, n=4)
    return {"median": statistics.median(values), "q1": q1, "q3": q3}


def interleave(contenders: dict[str, Callable[[], object]], rounds: int, inner: int = 1,
               warmup: int = 2, seed: int = 0) -> Timings:
    """Run every contender `inner` times per round for `rounds` rounds, in a random order
    each round, after `warmup` untimed calls each."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    rng = random.Random(seed)
    names = list(contenders)
    out = Timings({n: [] for n in names}, {n: [] for n in names})
    for _ in range(rounds):
        rng.shuffle(names)
        for name in names:
            fn = contenders[name]
            c0, w0 = time.thread_time(), time.perf_counter()
            for _ in range(inner):
                fn()
            c1, w1 = time.thread_time(), time.perf_counter()
            out.cpu[name].append((c1 - c0) / inner)
            out.wall[name].append((w1 - w0) / inner)
    return out
