"""What to run, built in one place: run specs, grids of them, and the lr sweep.

A `RunSpec` is one training run: frozen, JSON-serialisable, hashed into a stable run id.
A `Grid` is what `descend compare` asks for; its fields are the command's options (the CLI
is generated from them, see `option`), and it expands into run specs. `lr_sweep` is the
one learning-rate sweep that compare, paths and tune share.
"""

from __future__ import annotations

import hashlib
import json
import math
import numbers
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .records import Run
    from .tasks import Task

REGIMES = ("full", "sgd", "minibatch")


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    `regime` decides how much data makes each gradient: "full" (the whole training set:
    full-batch gradient descent), "sgd" (one example) or "minibatch" (`batch_size`
    examples). The budget is `epochs` passes over the data, or exactly `steps` steps.
    `role` is "main" for compared runs and "tune" for lr-search trials; `lr_source` says
    where the lr came from ("default", "given", or "tuned").
    """

    task: str
    optimizer: str
    schedule: str = "constant"
    seed: int = 0
    regime: str = "minibatch"
    batch_size: int = 64
    epochs: int | None = 20
    steps: int | None = None
    evals: int = 50
    role: str = "main"
    lr_source: str = "default"
    task_options: tuple[tuple[str, Any], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["task_options"] = [list(kv) for kv in self.task_options]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        data["task_options"] = tuple(tuple(kv) for kv in data.get("task_options", ()))
        return cls(**data)

    @property
    def run_id(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def batch(self, n_train: int) -> int:
        return {"full": n_train, "sgd": 1}.get(self.regime, min(self.batch_size, n_train))

    def budget(self, n_train: int) -> tuple[int, int]:
        """(steps per epoch, total steps)."""
        per_epoch = math.ceil(n_train / self.batch(n_train))
        total = self.steps if self.steps is not None else per_epoch * (self.epochs or 1)
        return per_epoch, total

    @property
    def label(self) -> str:
        """How the report names this configuration (seeds are averaged over)."""
        parts = [self.optimizer]
        if self.schedule != "constant":
            parts.append(f"[{self.schedule}]")
        if self.regime != "minibatch":
            parts.append(f"({self.regime})")
        if self.lr_source == "tuned":
            parts.append("tuned")
        return " ".join(parts)


# -- the lr sweep --------------------------------------------------------------------------

SWEEP_DECADES = 1.5  # the sweep covers default x 10^-1.5 .. x 10^1.5, about 1/30x .. 30x
SWEEP_TEXT = "1/30x to 30x (10^-1.5 to 10^1.5)"


def sweep_factors(points: int = 7) -> list[float]:
    """`points` log-spaced factors from 10^-1.5 to 10^1.5 (7 points: half-decade steps)."""
    if points < 2:
        raise ValueError(f"an lr sweep needs at least 2 points, got {points}")
    return [10 ** (SWEEP_DECADES * (-1 + 2 * i / (points - 1))) for i in range(points)]


def lr_sweep(base: float, points: int = 7) -> list[float]:
    """The learning rates to try around `base`, rounded to 3 significant digits (so they
    print as typed and hash into the same run ids). With 2 points: the range's ends."""
    return [float(f"{base * f:.3g}") for f in sweep_factors(points)]


# -- spellings on the command line ---------------------------------------------------------


def parse_csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def parse_floats(text: str) -> list[float]:
    try:
        return [float(t) for t in parse_csv(text)]
    except ValueError:
        raise ValueError(f"expected comma-separated numbers, got {text!r}") from None


def parse_seeds(text: str) -> list[int]:
    """'3' means seeds 0, 1, 2; '0,5,7' lists them."""
    try:
        values = [int(t) for t in parse_csv(text)]
    except ValueError:
        raise ValueError(f"expected a count or a list of seeds, got {text!r}") from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise ValueError(f"the number of seeds must be >= 1, got {text!r}")
        return list(range(values[0]))
    return values


def _parse_whole(text: str, minimum: int) -> int:
    try:
        value = int(text)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise ValueError(f"expected a whole number >= {minimum}, got {text!r}")
    return value


def parse_positive(text: str) -> int:
    return _parse_whole(text, 1)


def parse_count(text: str) -> int:
    return _parse_whole(text, 0)


def parse_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"expected a finite number, got {text!r}")
    return value


@dataclass(frozen=True)
class Option:
    """How a spec field is written on the command line (the CLI is generated from these)."""

    help: str
    flag: str | None = None  # default: --field-name
    parse: Callable[[str], Any] | None = None
    metavar: str | None = None
    choices: Sequence[str] | None = None
    default_text: str | None = None  # the default as the help shows it, when not the value
    const: Any = None  # the value of the flag given without one (an optional value)


def option(help: str, **kwargs: Any) -> dict[str, Any]:
    return {"option": Option(help, **kwargs)}


def flag_of(cls: type, name: str) -> str:
    meta = next(f.metadata.get("option") for f in fields(cls) if f.name == name)
    return (meta.flag if meta and meta.flag else "--" + name.replace("_", "-"))


def _tuple(value: Any, what: str) -> tuple:
    if isinstance(value, str):
        return tuple(parse_csv(value))
    if isinstance(value, Iterable):
        return tuple(value)
    raise ValueError(f"{what} must be a list, got {value!r}")


def _whole(cls: type, name: str, value: Any, low: int) -> None:
    if value is not None and (not isinstance(value, numbers.Integral) or isinstance(value, bool)
                              or value < low):
        raise ValueError(f"{name} ({flag_of(cls, name)}) must be a whole number >= {low}, "
                         f"got {value!r}")


def _unique(cls: type, name: str, values: tuple) -> None:
    if not values:
        raise ValueError(f"{name} ({flag_of(cls, name)}) needs at least one value")
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        raise ValueError(f"{name} ({flag_of(cls, name)}) lists {', '.join(repeated)} more "
                         "than once")


# -- a grid --------------------------------------------------------------------------------


def _names(what: str) -> str:
    from . import registry
    from .tasks import TASKS

    return ", ".join({"tasks": TASKS, "optimizers": registry.OPTIMIZERS,
                      "schedules": registry.SCHEDULES}[what])


def _default_optimizers() -> tuple[str, ...]:
    from .registry import DEFAULT_OPTIMIZERS

    return DEFAULT_OPTIMIZERS


@dataclass(frozen=True)
class Grid:
    """optimizer x schedule x seed x regime, on one task, plus optional lr tuning.

    With `tune_lr`, every (optimizer, schedule, regime) first runs on the first seed at
    each lr of a log grid: `lr_grid` (absolute values, the same for every optimizer) or,
    when empty, `tune_points` values of `lr_sweep` around the optimizer's default lr. The
    lr with the lowest final *validation* loss wins (never the test set), and the main
    runs are made both at that lr and at the default.
    """

    task: str = field(default="digits-mlp", metadata=option(
        f"what to train; one of: {_names('tasks')}"))
    optimizers: tuple[str, ...] = field(default_factory=_default_optimizers, metadata=option(
        "comma-separated optimizer specs NAME[:key=value...], e.g. adam:lr=3e-4:betas=0.9/0.99;"
        f" names: {_names('optimizers')}", parse=parse_csv))
    schedules: tuple[str, ...] = field(default=("constant",), metadata=option(
        f"comma-separated lr schedules, each NAME[:key=value...]; names: {_names('schedules')}",
        flag="--schedule", parse=parse_csv))
    regimes: tuple[str, ...] = field(default=("minibatch",), metadata=option(
        f"how much data makes each gradient, comma-separated: {', '.join(REGIMES)} (full = "
        "full-batch GD, sgd = one example per step)", flag="--regime", parse=parse_csv))
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata=option(
        "a count (3 = seeds 0,1,2) or a comma-separated list", parse=parse_seeds,
        default_text="3"))
    batch_size: int | None = field(default=None, metadata=option(
        "mini-batch size for the minibatch regime", parse=parse_positive,
        default_text="the task's"))
    epochs: int | None = field(default=None, metadata=option(
        "passes over the training data per run", parse=parse_positive,
        default_text="the task's"))
    steps: int | None = field(default=None, metadata=option(
        "optimizer steps per run, instead of --epochs", parse=parse_positive))
    evals: int = field(default=50, metadata=option(
        "evaluations per run on train/val/test", parse=parse_positive))
    tune_lr: bool = field(default=False, metadata=option(
        "first tune each optimizer's lr with the same budget (on the first seed, selected on "
        "validation loss), then run both tuned and default lrs"))
    lr_grid: tuple[float, ...] = field(default=(), metadata=option(
        "absolute lrs to try when tuning, the same for every optimizer", parse=parse_floats,
        default_text=f"--tune-points values from {SWEEP_TEXT} of each default"))
    tune_points: int = field(default=7, metadata=option(
        "number of log-spaced lrs per optimizer when tuning", parse=parse_positive))
    target: float | None = field(default=None, metadata=option(
        "validation metric to reach for 'steps to target' (accuracy as a fraction, or a "
        "loss)", parse=parse_number, default_text="derived from the best run"))
    tune_trials: int = field(default=0, metadata=option(
        "first run an Optuna study of N trials over these optimizers (see 'descend tune'); "
        "its best configuration joins the comparison and its plots join the report",
        flag="--tune", parse=parse_count, metavar="N", default_text="no study"))
    data_dir: str | None = field(default=None, metadata=option(
        "folder of IDX files for the mnist-* and fashion-* tasks"))
    clock: str = field(default="cpu", metadata=option(
        "what 'seconds to target' measures: cpu (CPU time of the training thread, which "
        "other work on the machine hardly changes) or wall (wall-clock); with --suite, "
        "also steps: what the performance profiles and the score rank by",
        flag="--time", choices=("cpu", "wall", "steps")))

    def __post_init__(self) -> None:
        from . import registry

        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        # The task name is checked where the task is made (`get_task`): a user's own Task
        # has a name of its own.
        put("optimizers", tuple(registry.canonical_optimizer(o)
                                for o in _tuple(self.optimizers, "optimizers")))
        put("schedules", tuple(registry.canonical_schedule(s)
                               for s in _tuple(self.schedules, "schedules")))
        put("regimes", _tuple(self.regimes, "regimes"))
        put("seeds", _tuple(self.seeds, "seeds"))
        put("lr_grid", _tuple(self.lr_grid, "lr_grid"))
        for regime in self.regimes:
            if regime not in REGIMES:
                raise ValueError(f"unknown regime {regime!r}; available: {', '.join(REGIMES)}")
        for name in ("optimizers", "schedules", "regimes", "seeds"):
            _unique(Grid, name, getattr(self, name))
        for seed in self.seeds:
            _whole(Grid, "seeds", seed, 0)
        put("seeds", tuple(int(seed) for seed in self.seeds))  # numpy integers too
        for name in ("batch_size", "epochs", "steps", "evals", "tune_points", "tune_trials"):
            _whole(Grid, name, getattr(self, name), 0 if name == "tune_trials" else 1)
            if getattr(self, name) is not None:
                put(name, int(getattr(self, name)))
        if self.epochs is not None and self.steps is not None:
            raise ValueError("give epochs (--epochs) or steps (--steps), not both")
        if self.tune_lr and not self.lr_grid and self.tune_points < 2:
            raise ValueError(f"tune_points (--tune-points) must be >= 2, got {self.tune_points}")
        if any(isinstance(lr, bool) or not isinstance(lr, (int, float)) or not
               (lr > 0 and math.isfinite(lr)) for lr in self.lr_grid):
            raise ValueError(f"lr_grid (--lr-grid) values must be finite numbers > 0, got "
                             f"{', '.join(map(str, self.lr_grid))}")
        if self.clock not in ("cpu", "wall"):
            raise ValueError(f"clock (--time) must be cpu or wall, got {self.clock!r} (steps "
                             "to target have a column of their own)")
        if self.target is not None and (isinstance(self.target, bool) or not isinstance(
                self.target, (int, float)) or not math.isfinite(self.target)):
            raise ValueError(f"target (--target) must be a finite number, got {self.target!r}")

    @property
    def task_options(self) -> tuple[tuple[str, Any], ...]:
        return (("data_dir", str(self.data_dir)),) if self.data_dir else ()

    def spec(self, task: Task, optimizer: str, schedule: str, seed: int, regime: str,
             **extra: Any) -> RunSpec:
        from . import registry

        given = "lr" in registry.split_spec(optimizer, "optimizer")[1]
        extra.setdefault("lr_source", "given" if given else "default")
        return RunSpec(task=self.task, optimizer=optimizer, schedule=schedule, seed=seed,
                       regime=regime, batch_size=self.batch_size or task.batch_size,
                       epochs=None if self.steps else (self.epochs or task.epochs),
                       steps=self.steps, evals=self.evals, task_options=self.task_options,
                       **extra)

    def lrs_to_try(self, optimizer: str) -> list[float]:
        from . import registry

        if self.lr_grid:
            return list(self.lr_grid)
        return lr_sweep(registry.optimizer_lr(optimizer), self.tune_points)

    def tune_specs(self, task: Task) -> list[RunSpec]:
        from . import registry

        if not self.tune_lr:
            return []
        return [self.spec(task, registry.with_lr(o, lr), s, self.seeds[0], r, role="tune",
                          lr_source="tuned")
                for o in self.optimizers for s in self.schedules for r in self.regimes
                for lr in self.lrs_to_try(o)]

    def main_specs(self, task: Task, tuned: Mapping[tuple[str, str, str], float]
                   ) -> list[RunSpec]:
        from . import registry

        specs = []
        for o in self.optimizers:
            for s in self.schedules:
                for r in self.regimes:
                    for seed in self.seeds:
                        specs.append(self.spec(task, o, s, seed, r))
                        if (o, s, r) in tuned:
                            specs.append(self.spec(task, registry.with_lr(o, tuned[o, s, r]),
                                                   s, seed, r, lr_source="tuned"))
        return specs

    def planned_runs(self) -> int:
        """How many runs the grid makes (lr trials included)."""
        per = len(self.schedules) * len(self.regimes)
        trials = (sum(len(self.lrs_to_try(o)) for o in self.optimizers) * per
                  if self.tune_lr else 0)
        main = len(self.optimizers) * per * len(self.seeds) * (2 if self.tune_lr else 1)
        return trials + main

    def check(self, task: Task) -> None:
        """Build every schedule of the grid over its real budget, so that a spec that cannot
        run fails now, before anything is written."""
        from . import registry

        n = len(task.splits.x_train)
        for spec in self.main_specs(task, {}) + self.tune_specs(task):
            per_epoch, total = spec.budget(n)
            registry.build_schedule(spec.schedule, registry.optimizer_lr(spec.optimizer),
                                    total, per_epoch)

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["task_options"] = [list(kv) for kv in self.task_options]
        return json.loads(json.dumps(data))


def best_lrs(grid: Grid, task: Task, lookup: Callable[[RunSpec], Run | None]
             ) -> dict[tuple[str, str, str], float]:
    """The tuned lr of each (optimizer, schedule, regime): the lowest final validation loss
    among its finished, non-diverged lr trials (`lookup` gives a spec's finished run)."""
    from . import registry

    best: dict[tuple[str, str, str], tuple[float, float]] = {}
    for o in grid.optimizers:
        for s in grid.schedules:
            for r in grid.regimes:
                for lr in grid.lrs_to_try(o):
                    run = lookup(grid.spec(task, registry.with_lr(o, lr), s, grid.seeds[0], r,
                                           role="tune", lr_source="tuned"))
                    if run is None or run.summary["diverged"] or not run.evals:
                        continue
                    val = run.evals[-1]["val_loss"]
                    if math.isfinite(val) and ((o, s, r) not in best or val < best[o, s, r][0]):
                        best[o, s, r] = (val, lr)
    return {key: lr for key, (_, lr) in best.items()}


@dataclass(frozen=True)
class Execution:
    """Where and how a grid runs (not part of what it computes: any choice here gives the
    same records)."""

    out: str | None = field(default=None, metadata=option(
        "run folder for records and report", default_text="runs/TASK"))
    jobs: int | None = field(default=None, metadata=option(
        "parallel runs on this machine (1 runs them in this process)", parse=parse_positive,
        default_text="the number of CPU cores"))
    cluster: str | None = field(default=None, metadata=option(
        "run the grid on a Dask cluster: the scheduler's address, e.g. tcp://host:8786 "
        "(see docs/cluster.md); this process stays the only writer of the run folder",
        metavar="ADDRESS"))

    def __post_init__(self) -> None:
        _whole(Execution, "jobs", self.jobs, 1)
        if self.jobs is not None and self.cluster:
            raise ValueError("give jobs (--jobs) or a cluster (--cluster), not both: a "
                             "cluster's workers decide how many runs go at once")


def split_options(options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments of `compare` into (Grid fields, Execution fields); an unknown
    name is an error that lists the known ones."""
    grid_names = [f.name for f in fields(Grid)]
    exec_names = [f.name for f in fields(Execution)]
    unknown = set(options) - set(grid_names) - set(exec_names)
    if unknown:
        raise ValueError(f"unknown option {sorted(unknown)[0]!r}; the options are: "
                         f"{', '.join([*grid_names, *exec_names])}")
    return ({k: v for k, v in options.items() if k in grid_names},
            {k: v for k, v in options.items() if k in exec_names})
