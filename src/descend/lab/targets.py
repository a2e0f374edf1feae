"""Setting the workloads' validation targets from tuned reference runs.

AlgoPerf sets each workload's target from the best of several well-tuned standard
optimizers, and sizes the budget so that they reach it with room to spare. descend does
the same, in a form a laptop can run (`python benchmarks/set_targets.py --size quick`):

1. for each reference optimizer (AdamW and Nesterov momentum, two of AlgoPerf's
   target-setting algorithms), `trials` quasi-random Optuna trials over the lr (log
   scale, 1/30x to 30x of the lab default, warmup-cosine schedule), each a run of 75% of
   the workload's step budget on seed 0, scored by its final validation metric;
2. the better of the two winners runs again on seeds 100, 101, 102 (seeds the suite
   never uses), for the same 75% of the budget;
3. the target is the median of their final validation metrics, to 4 significant digits.

So a well-tuned standard optimizer reaches the target in about three quarters of the
budget, and the suite measures who gets there sooner. Each entry of ``targets.json``
records all of this: the configuration, the per-seed values, the machine and the date.
"""

from __future__ import annotations

import datetime
import math
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .records import Run, write_json_atomic
from .workloads import TARGETS_FILE, WORKLOADS, get_workload

REFERENCES = ("adamw", "nesterov")
FRACTION = 0.75
SEEDS = (100, 101, 102)


def _final(run: Run, metric: str, higher: bool) -> float:
    value = run.evals[-1].get(metric, math.nan) if run.evals else math.nan
    if run.summary and run.summary.get("diverged") or not math.isfinite(value):
        return math.inf
    return -value if higher else value  # lower is better


def set_targets(workloads: Sequence[str], size: str, *, trials: int = 8,
                out: str | Path | None = None, jobs: int | None = None,
                progress: bool = True, path: Path = TARGETS_FILE,
                schedule: str = "warmup-cosine") -> dict[str, Any]:
    """Run the procedure for `workloads` at `size`, write their entries into `path`
    (merged with the others) and return them. Records go to `out` (default
    runs/targets-SIZE), so an interrupted run resumes."""
    from . import machine
    from .console import ProgressDisplay
    from .lock import folder_lock
    from .pool import default_jobs, make_executor
    from .records import finished, read_json
    from .runner import execute, load_task
    from .suite import ask, make_studies, tell

    chosen = [get_workload(w) for w in workloads]
    for w in chosen:
        w.budget(size)
    jobs = jobs or default_jobs()
    keys = [(w.name, w.task_options(size)) for w in chosen]
    tasks = {key: load_task(key) for key in keys}
    studies = make_studies([w.name for w in chosen], REFERENCES, f"targets:{size}")
    planned = len(chosen) * (len(REFERENCES) * trials + len(SEEDS))
    out = Path(out or Path("runs") / f"targets-{size}")
    entries: dict[str, Any] = {}
    with folder_lock(out) as out:
        executor = make_executor(jobs, tasks, planned)
        try:
            if hasattr(executor, "start"):
                executor.start()
            with ProgressDisplay(planned, progress) as show:
                for _ in range(trials):
                    batch = [ask(s, size, schedule, FRACTION) for s in studies]
                    execute(batch, out, executor, show)
                    for s in studies:
                        tell(s, out, lambda run, w=s.workload: _final(
                            run, w.metric, w.higher_is_better))
                seeds = []
                for w in chosen:
                    mine = [s for s in studies if s.workload is w]
                    best = min(mine, key=lambda s: min(s.scores)).best()
                    seeds += [w.spec(size, best.optimizer, best.schedule, seed,
                                     fraction=FRACTION) for seed in SEEDS]
                execute(seeds, out, executor, show)
        finally:
            executor.close()
        about = machine.describe(jobs)
        for w in chosen:
            runs = [finished(out, spec) for spec in seeds if spec.task == w.name]
            values = [r.evals[-1][w.metric] for r in runs]
            target = float(f"{statistics.median(values):.4g}")
            ref = runs[0].spec
            steps = w.budget_steps(size, FRACTION)
            tried = {s.optimizer: {t.optimizer: v for (_, t), v in zip(s.trials, s.scores)}
                     for s in studies if s.workload is w}
            entries[w.name] = {
                "target": target,
                "how": (f"Set from tuned reference runs: {trials} quasi-random Optuna trials "
                        "each for "
                        f"{' and '.join(REFERENCES)} ({schedule}, lr log-uniform over 1/30x-30x "
                        f"of the default) at 75% of the budget ({steps} steps); the winner, "
                        f"{ref.optimizer} [{ref.schedule}], was run on seeds "
                        f"{', '.join(map(str, SEEDS))} and the target is the median of their "
                        f"final {w.metric_name()} ({', '.join(f'{v:.4g}' for v in values)})."),
                "reference": {"optimizer": ref.optimizer, "schedule": ref.schedule,
                              "steps": steps, "budget_steps": w.budget_steps(size),
                              "seeds": list(SEEDS), "values": values, "trials": tried,
                              "date": datetime.date.today().isoformat(),
                              "machine": about, "records": str(out),
                              "command": f"python benchmarks/set_targets.py --size {size} "
                                         f"--workloads {','.join(workloads)} --trials {trials}"},
            }
    current = read_json(path) if path.exists() else {}
    for name, entry in entries.items():
        current.setdefault(name, {})[size] = entry
    ordered = {name: current[name] for name in [*WORKLOADS, *current] if name in current}
    write_json_atomic(path, ordered, indent=1)
    return entries
