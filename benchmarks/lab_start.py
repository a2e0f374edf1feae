"""How long the default `descend compare` takes from the shell, and where the time goes.

Runs the command N times (default 5) into fresh folders and reports medians:

    total     wall time of the whole command, as a user waits for it
    imports   a bare `python -c "import descend.lab.cli"` (interpreter and torch)
    validate  every optimizer and schedule spec checked (the first optimizer built imports
              torch._dynamo, which every process that builds an optimizer pays once)
    prepare   task data, every schedule over its budget, the run folder and its lock
    start     starting the worker pool
    train     the runs themselves, over all workers
    stop      handing the workers back
    report    plots, report.md/html, summary.json
    other     the rest: printing the table, interpreter exit
    cpu       CPU seconds (user + system) of the command and its workers: what a quiet
              machine has to spend, whatever else runs on it

Usage: python benchmarks/lab_start.py [--runs 5] [--against OTHER/src] [-- compare args]
The machine is shared: single timings are noise; read the medians, and the load average
printed beside them. With --against, each run is paired with a run of another checkout's
`src` (say, the code before a change), interleaved so that both see the same load.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def once(extra: list[str], src: str | None = None) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": src} if src else None
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import descend.lab.cli"], check=True, env=env)
    imports = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "descend.lab.cli", "compare", "--out",
                               f"{tmp}/run", "--json", *extra], capture_output=True,
                              text=True, check=True, env=env)
        total = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    laps = json.loads(done.stdout).get("timings", {})  # older versions do not report them
    row = {"total": total, "imports": imports, **laps, "cpu": cpu}
    row["other"] = total - imports - sum(laps.values())
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--against", default=None, metavar="SRC",
                   help="another checkout's src folder, run in turn with this one")
    p.add_argument("extra", nargs="*", help="more compare arguments (after --)")
    args = p.parse_args()
    rows, others = [], []
    for i in range(args.runs):
        load = os.getloadavg()[0]
        rows.append(once(args.extra))
        line = f"run {i + 1}: total {rows[-1]['total']:.2f} s"
        if args.against:
            others.append(once(args.extra, args.against))
            line += f", against {others[-1]['total']:.2f} s"
        print(f"{line} (load average before: {load:.2f})", flush=True)
    keys = ["total", "imports", "validate", "prepare", "start", "train", "stop", "report", "other",
            "cpu"]
    print(f"\nmedian of {len(rows)} runs of `descend compare` (default grid: digits-mlp, "
          f"7 optimizers x 3 seeds = 21 runs, --jobs = {os.cpu_count()} cores):")
    for key in keys:
        values = [r.get(key, 0.0) for r in rows]
        print(f"  {key:<8} {statistics.median(values):6.2f} s   "
              f"(min {min(values):.2f}, max {max(values):.2f})")
    if others:
        values = [r["total"] for r in others]
        cpus = [r["cpu"] for r in others]
        print(f"  against  {statistics.median(values):6.2f} s   "
              f"(min {min(values):.2f}, max {max(values):.2f}): total of {args.against}, "
              f"cpu {statistics.median(cpus):.2f} s")


if __name__ == "__main__":
    main()
