"""`descend compare --suite NAME`: optimizers timed to target over a named set of workloads.

The protocol is AlgoPerf's external-tuning ruleset, scaled down (see `scoring` for the
measures):

1. every optimizer gets the same tuning budget on every workload: `trials` Optuna trials
   (quasi-random, seeded: see `make_studies`) over a declared search space, the lr on a
   log scale over 1/30x to 30x of the optimizer's lab default with a warmup-cosine
   schedule over the budget, each trial a full run on seed 0; self-tuning optimizers
   (Schedule-Free, Prodigy) get no trials and run with their defaults and a constant lr,
   as AlgoPerf's self-tuning ruleset asks;
2. the trial that reaches the workload's target in the fewest steps wins (a trial that
   does not reach it ranks by how close it came);
3. the winner runs again on `seeds` fresh seeds (1, 2, ...: never the tuning seed, so the
   selection does not flatter it); those runs are the row.

Every run is an ordinary lab run whose records land in the run folder, so an interrupted
suite resumes (trials are asked again from the same seeded sampler, and a trial whose run
is finished is told its recorded result instead of training) and the report is computed
from the records alone (`suitereport.py`).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from . import registry
from .errors import LabError
from .records import Run, finished, read_json, write_json_atomic
from .scoring import MEASURES, run_time
from .spec import RunSpec, option, parse_csv
from .workloads import WORKLOADS, Target, Workload, get_workload, validation_text

# Optimizers with no learning rate to tune (or one they set themselves): AlgoPerf's
# self-tuning ruleset runs them as they come.
SELF_TUNING = ("schedulefree-sgd", "schedulefree-adamw", "prodigy")


# "muon" is MuonAdamW: Muon on the hidden matrices, AdamW on the rest.
QUICK_OPTIMIZERS = ("sgd", "momentum", "adam", "adamw", "lion", "muon", "schedulefree-adamw")


@dataclass(frozen=True)
class Suite:
    """A named benchmark: workloads at one size, optimizers, and the tuning budget."""

    name: str
    workloads: tuple[str, ...]
    size: str
    optimizers: tuple[str, ...]
    trials: int
    seeds: int
    schedule: str = "warmup-cosine"
    description: str = ""
    seed: int = 0  # of the samplers

    def __post_init__(self) -> None:
        for w in self.workloads:
            get_workload(w).budget(self.size)
        for o in self.optimizers:
            if registry.split_spec(o, "optimizer")[1]:
                raise ValueError(f"a suite tunes each optimizer itself: give names without "
                                 f"options (got {o!r})")
            registry.canonical_optimizer(o)
        for name, values in (("workloads", self.workloads), ("optimizers", self.optimizers)):
            if not values:
                raise ValueError(f"a suite needs at least one of {name}")
            if len(set(values)) != len(values):
                raise ValueError(f"{name} lists a name more than once: {', '.join(values)}")
        if self.trials < 1:
            raise ValueError(f"a suite needs at least 1 tuning trial (--tune), got {self.trials}")
        if self.seeds < 1:
            raise ValueError(f"a suite needs at least 1 seed (--seeds), got {self.seeds}")
        registry.canonical_schedule(self.schedule)

    @property
    def main_seeds(self) -> list[int]:
        return list(range(1, self.seeds + 1))

    def tuned(self, optimizer: str) -> bool:
        return optimizer not in SELF_TUNING

    def planned_runs(self) -> int:
        per = sum((self.trials + self.seeds) if self.tuned(o) else self.seeds
                  for o in self.optimizers)
        return per * len(self.workloads)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("quick", ("pydoc-gpt", "digits-autoencoder", "mnist1d-cnn", "linreg"), "quick",
          QUICK_OPTIMIZERS, trials=5, seeds=3,
          description="four workloads at the quick size; about 10 minutes on 2 cores"),
    Suite("full", ("pydoc-gpt", "digits-autoencoder", "mnist1d-cnn", "mnist1d-mlp",
                   "digits-mlp", "linreg"), "default",
          (*QUICK_OPTIMIZERS[:-1], "nesterov", "nadam", "schedulefree-adamw", "prodigy"),
          trials=10, seeds=3,
          description="every workload at the default size; hours on 2 cores (set its targets "
                      "first: python benchmarks/set_targets.py --size default)"),
    Suite("test", ("pydoc-gpt", "linreg"), "test", ("sgd", "adamw", "schedulefree-adamw"),
          trials=2, seeds=2, description="the tests' size; seconds"),
)}

DEFAULT_SUITE = "quick"


def _names(kind: str) -> str:
    from .tasks import SIZES

    return ", ".join({"suites": list(SUITES), "sizes": SIZES, "workloads": list(WORKLOADS)}[kind])


@dataclass(frozen=True)
class SuiteChoice:
    """Which suite `descend compare --suite` runs (the flags are generated from these
    fields; with --suite, --optimizers, --seeds and --tune override the suite's own)."""

    suite: str | None = field(default=None, metadata=option(
        "run a benchmark suite; NAME is one of: " + "; ".join(
            f"{k} ({v.description})" for k, v in SUITES.items()), metavar="NAME",
        const=DEFAULT_SUITE, default_text=f"no suite; given without NAME: {DEFAULT_SUITE}"))
    size: str | None = field(default=None, metadata=option(
        f"the workloads' size: {_names('sizes')}", default_text="the suite's"))
    workloads: tuple[str, ...] | None = field(default=None, metadata=option(
        f"a subset of workloads; names: {_names('workloads')}", parse=parse_csv,
        default_text="the suite's"))


def get_suite(name: str, **overrides: Any) -> Suite:
    """A named suite, with any of its fields replaced (validated again)."""
    try:
        suite = SUITES[name]
    except KeyError:
        raise ValueError(f"unknown suite {name!r}; available: {', '.join(SUITES)}") from None
    overrides = {k: v for k, v in overrides.items() if v is not None}
    for key in ("workloads", "optimizers"):
        if key in overrides:
            overrides[key] = tuple(overrides[key])
    return replace(suite, **overrides) if overrides else suite


def targets_for(suite: Suite) -> dict[str, Target]:
    """Each workload's declared target at the suite's size; an error naming what is
    missing (and how to set it) before anything runs."""
    found, missing = {}, []
    for name in suite.workloads:
        target = get_workload(name).target(suite.size)
        if target is None:
            missing.append(name)
        else:
            found[name] = target
    if missing:
        raise LabError(f"no declared target for {', '.join(missing)} at size {suite.size!r}; "
                       f"set them first: python benchmarks/set_targets.py --size {suite.size} "
                       f"--workloads {','.join(missing)}")
    return found


# -- tuning ------------------------------------------------------------------------------


def objective(run: Run, workload: Workload, target: float, budget_steps: int) -> float:
    """What a trial scores (lower is better): the fraction of the budget it needed to reach
    the target; one that never did scores 1 + how far it stayed from it, measured as a
    share of the way from its first evaluation to the target; a diverged one scores 3."""
    rt = run_time(run, workload.metric, target, workload.higher_is_better, budget_steps)
    if rt.reached:
        return rt.steps / budget_steps
    values = [e.get(workload.metric, math.nan) for e in run.evals]
    values = [v for v in values if math.isfinite(v)]
    if rt.diverged or not values:
        return 3.0
    best = max(values) if workload.higher_is_better else min(values)
    span = abs(values[0] - target) or 1.0
    return 1.0 + min(1.0, abs(best - target) / span)


@dataclass
class Study:
    """The tuning of one optimizer on one workload."""

    workload: Workload
    optimizer: str
    study: Any
    trials: list[tuple[Any, RunSpec]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)

    def best(self) -> RunSpec:
        i = min(range(len(self.scores)), key=lambda k: (self.scores[k], k))
        return self.trials[i][1]


def make_studies(workloads: Sequence[str], optimizers: Sequence[str], seed: str
                 ) -> list[Study]:
    """One in-memory Optuna study per (workload, optimizer), seeded from `seed` and the
    pair. Its sampler is quasi-random (Optuna's QMCSampler: a scrambled Sobol sequence
    after a first random point), AlgoPerf's way of tuning its baselines: with five trials,
    a model-based sampler such as TPE has nothing to model yet, and independent random
    draws cluster (one suite draw put three of five AdamW lrs within a decade of each
    other, far from the good ones); Sobol points spread over the range."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    studies = []
    for w in workloads:
        for o in optimizers:
            digest = hashlib.sha256(f"{seed}:{w}:{o}".encode()).digest()
            with warnings.catch_warnings():  # "experimental since Optuna 3.0": used on purpose
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                sampler = optuna.samplers.QMCSampler(
                    qmc_type="sobol", scramble=True, seed=int.from_bytes(digest[:4], "big"),
                    warn_independent_sampling=False, warn_asynchronous_seeding=False)
            studies.append(Study(get_workload(w), o, optuna.create_study(
                direction="minimize", sampler=sampler)))
    return studies


def ask(s: Study, size: str, schedule: str, fraction: float = 1.0) -> RunSpec:
    """The next trial of `s` as a run spec (seed 0, role "tune")."""
    from .tune import Space

    space = Space(optimizers=[s.optimizer], schedules=[schedule])
    trial = s.study.ask()
    optimizer, schedule, _ = space.sample(trial)
    spec = s.workload.spec(size, optimizer, schedule, 0, role="tune", fraction=fraction)
    s.trials.append((trial, spec))
    return spec


def tell(s: Study, out: Path, score: Callable[[Run], float]) -> None:
    """Tell `s` the score of each trial whose run finished since the last call."""
    for trial, spec in s.trials[len(s.scores):]:
        run = finished(out, spec)
        if run is None:  # cannot happen once execute returned; a clear error if it does
            raise LabError(f"trial run {spec.run_id} of {s.optimizer} on {s.workload.name} "
                           "did not finish")
        value = score(run)
        s.study.tell(trial, value)
        s.scores.append(value)


def main_specs(suite: Suite, studies: Sequence[Study]) -> list[RunSpec]:
    """The seeds of every row: each study's best trial again, and the self-tuning ones."""
    specs = []
    best = {(s.workload.name, s.optimizer): s.best() for s in studies}
    for w in suite.workloads:
        workload = get_workload(w)
        for o in suite.optimizers:
            if suite.tuned(o) and (w, o) not in best:
                continue  # not tuned yet
            for seed in suite.main_seeds:
                if suite.tuned(o):
                    trial = best[w, o]
                    specs.append(workload.spec(suite.size, trial.optimizer, trial.schedule,
                                               seed, lr_source="tuned"))
                else:
                    specs.append(workload.spec(suite.size, registry.canonical_optimizer(o),
                                               "constant", seed, lr_source="default"))
    return specs


# -- running -----------------------------------------------------------------------------


@dataclass
class SuiteResult:
    out: Path
    report: Path
    result: Any  # suitereport.SuiteAnalysis
    runs: int
    ran: int

    def to_json(self) -> dict[str, Any]:
        return {**self.result.to_json(), "out": str(self.out), "report": str(self.report),
                "runs": self.runs, "ran": self.ran}


def run_suite(suite: Suite, *, out: str | Path | None = None, jobs: int | None = None,
              measure: str = "cpu", progress: bool = True, console: Any = None,
              command: str = "") -> SuiteResult:
    """Tune, run and score `suite`; write records and the report into `out`. `measure`
    ranks by CPU seconds of the training thread (default), steps, or wall-clock seconds;
    `command` is how the report says it was made."""
    from . import machine
    from .console import ProgressDisplay
    from .lock import folder_lock
    from .pool import LocalPool, default_jobs, make_executor
    from .report import warm_up
    from .runner import execute, load_task
    from .suitereport import build_suite_report

    if measure not in MEASURES:
        raise ValueError(f"time must be one of {', '.join(MEASURES)}, got {measure!r}")
    targets = targets_for(suite)
    tasks, validation = {}, {}
    for w in suite.workloads:
        workload = get_workload(w)
        key = (w, workload.task_options(suite.size))
        # Loaded now: data problems fail here, before any write.
        tasks[key] = task = load_task(key)
        validation[w] = validation_text(workload, task)
    out = Path(out or Path("runs") / f"suite-{suite.name}")
    jobs = jobs or default_jobs()
    studies = make_studies(suite.workloads, [o for o in suite.optimizers if suite.tuned(o)],
                           f"suite:{suite.seed}")
    with folder_lock(out) as out:
        plan_path = out / "suite.json"
        old = read_json(plan_path) if plan_path.exists() else {}
        sessions = list(old.get("sessions", []))
        plan = {"suite": suite.to_json(), "measure": measure, "command": command,
                "validation": validation,
                "targets": {w: {"value": t.value, "how": t.how, "reference": t.reference}
                            for w, t in targets.items()},
                "machine": machine.describe(jobs), "sessions": sessions}
        write_json_atomic(plan_path, plan)
        executor = make_executor(jobs, tasks, suite.planned_runs())
        ran = 0
        try:
            if hasattr(executor, "start"):
                executor.start()
                if isinstance(executor, LocalPool):
                    warm_up()
            with machine.LoadSampler() as load, \
                    ProgressDisplay(suite.planned_runs(), progress, console) as show:
                self_tuning = main_specs(suite, [])
                tune_ids: list[str] = []
                for round_ in range(suite.trials):
                    batch = [ask(s, suite.size, suite.schedule) for s in studies]
                    tune_ids += [s.run_id for s in batch]
                    # The untuned rows fill the first round, so the workers never wait.
                    batch += self_tuning if round_ == 0 else []
                    ran += execute(batch, out, executor, show)
                    for s in studies:
                        target = targets[s.workload.name].value
                        budget = s.workload.budget_steps(suite.size)
                        tell(s, out, lambda run, s=s, t=target, b=budget: objective(
                            run, s.workload, t, b))
                mains = main_specs(suite, studies)
                # The self-tuning rows ran in the first round (and count there).
                ran += execute([s for s in mains if s.lr_source == "tuned"], out, executor,
                               show)
            if ran:
                sessions.append({**load.summary(), "runs_trained": ran})
            plan.update(sessions=sessions, run_ids={"tune": tune_ids,
                                                    "main": [s.run_id for s in mains]})
            write_json_atomic(plan_path, plan)
        finally:
            executor.close()
        analysis, html = build_suite_report(out)
    return SuiteResult(out, html, analysis, suite.planned_runs(), ran)


def is_suite_folder(path: str | Path) -> bool:
    return (Path(path) / "suite.json").exists()


__all__ = ["DEFAULT_SUITE", "SELF_TUNING", "SUITES", "Suite", "SuiteResult", "WORKLOADS",
           "get_suite", "run_suite"]
