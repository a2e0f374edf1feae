"""`descend tune`: an Optuna study over optimizers, their hyperparameters and schedules.

Trials are the lab's training runs; each reports its validation loss at every evaluation,
so a pruner (median, or successive halving) stops bad trials early. Storage is a SQLite
file in the run directory by default; pass ``--storage postgresql://...`` and start as many
workers as you like, on as many machines, with the same ``--study`` name. Workers send
heartbeats: a killed worker's trial is marked failed by the others and retried once with
the same parameters, so a kill loses only that trial's work.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import socket
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from . import registry
from .errors import LabError
from .lock import folder_lock
from .records import write_json_atomic, write_text_atomic
from .runner import one_thread
from .spec import (
    SWEEP_TEXT,
    RunSpec,
    lr_sweep,
    option,
    parse_count,
    parse_csv,
    parse_number,
    parse_positive,
)
from .tasks import Task, get_task
from .train import train

Range = tuple[float, float]


def _check_range(value: Any, name: str) -> Range:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a range [LOW, HIGH] of two numbers, got {value!r}"
                         ) from None
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise ValueError(f"{name}: LOW must be below HIGH (finite numbers), got {low:g}:{high:g}")
    return low, high


def _log_scale(v: float) -> bool:
    return v > 0


def _unit(v: float) -> bool:
    return 0 <= v < 1


# What each searched hyperparameter may take: (check, in words).
LIMITS = {"lr": (_log_scale, "> 0 (searched on a log scale)"),
          "weight_decay": (_log_scale, "> 0 (searched on a log scale)"),
          "momentum": (_unit, "in [0, 1)"), "beta1": (_unit, "in [0, 1)"),
          "beta2": (_unit, "in [0, 1)"), "warmup": (_unit, "in [0, 1)")}


def lr_range(optimizer: str) -> Range:
    """The lr range a study searches by default: the ends of the lab's lr sweep."""
    low, high = lr_sweep(registry.optimizer_lr(optimizer), 2)
    return low, high


def _range_flag(text: str) -> Range:
    """A range on the command line: 'LOW:HIGH' (argparse names the flag)."""
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"must be written LOW:HIGH (two numbers), got {text!r}") from None
    return low, high


def _range(help: str) -> dict[str, Any]:
    return option(help, parse=_range_flag, metavar="LOW:HIGH")


@dataclass
class Space:
    """What a study searches. Log scales for lr and weight decay; a range left as None is
    not searched (the optimizer's value is used). `warmup` is the warmup fraction of the
    schedules that have one (warmup-cosine, wsd). The `descend tune` flags are generated
    from these fields (and those of `TuneSettings`)."""

    optimizers: list[str] = field(default_factory=lambda: ["adam", "sgd"], metadata=option(
        "optimizer specs to choose from, comma-separated", parse=parse_csv))
    schedules: list[str] = field(default_factory=lambda: ["constant"], metadata=option(
        "schedule specs to choose from, comma-separated", parse=parse_csv))
    lr: Range | None = field(default=None, metadata=option(
        "lr range, log scale", parse=_range_flag, metavar="LOW:HIGH",
        default_text=f"{SWEEP_TEXT} of each optimizer's default"))
    momentum: Range | None = field(default=None, metadata=_range(
        "momentum range (optimizers that have it)"))
    beta1: Range | None = field(default=None, metadata=_range("beta1 range (Adam family, Lion)"))
    beta2: Range | None = field(default=None, metadata=_range("beta2 range (Adam family, Lion)"))
    weight_decay: Range | None = field(default=None, metadata=_range(
        "weight decay range, log scale"))
    warmup: Range | None = field(default=None, metadata=_range(
        "warmup fraction range for warmup-cosine and wsd"))

    def __post_init__(self) -> None:
        for o in self.optimizers:
            registry.canonical_optimizer(o)
        for s in self.schedules:
            registry.canonical_schedule(s)
        if not self.optimizers or not self.schedules:
            raise ValueError("the space needs at least one optimizer and one schedule")
        for name, (check, words) in LIMITS.items():
            r = getattr(self, name)
            if r is None:
                continue
            r = _check_range(r, name)
            setattr(self, name, r)
            if not (check(r[0]) and check(r[1])):
                raise ValueError(f"{name} range {r[0]:g}:{r[1]:g}: values must be {words}")

    @classmethod
    def from_file(cls, path: str | Path) -> Space:
        """A TOML or YAML file with the same keys, ranges as [low, high] lists."""
        path = Path(path)
        try:
            text = path.read_text()
        except OSError as e:
            raise LabError(f"space file {str(path)!r}: {e.strerror}") from None
        try:
            if path.suffix in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = tomllib.loads(text)
        except Exception as e:  # yaml's and toml's own parse errors
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise LabError(f"space file {str(path)!r} is not valid "
                           f"{'YAML' if path.suffix in ('.yaml', '.yml') else 'TOML'}: {first}"
                           ) from None
        if not isinstance(data, dict):
            raise LabError(f"space file {str(path)!r} must hold keys such as optimizers, lr")
        data = data.get("space", data)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        for k, v in data.items():
            if k not in ("optimizers", "schedules"):
                data[k] = _check_range(v, f"{path}: {k}")
            elif not isinstance(v, list) or not all(isinstance(x, str) for x in v):
                raise ValueError(f"{path}: {k} must be a list of names, got {v!r}")
        return cls(**data)

    def sample(self, trial: Any) -> tuple[str, str, dict[str, Any]]:
        """(optimizer spec, schedule spec, the sampled values) for one trial."""
        name = trial.suggest_categorical("optimizer", self.optimizers)
        base, fixed = registry.split_spec(name, "optimizer")
        takes = registry._hyperparameters(registry.OPTIMIZERS[base].cls)
        options = dict(fixed)
        options["lr"] = trial.suggest_float(f"lr[{name}]" if self.lr is None else "lr",
                                            *(self.lr or lr_range(name)), log=True)
        if self.momentum and "momentum" in takes:
            options["momentum"] = trial.suggest_float("momentum", *self.momentum)
        if "betas" in takes and (self.beta1 or self.beta2):
            b1 = trial.suggest_float("beta1", *self.beta1) if self.beta1 else 0.9
            b2 = trial.suggest_float("beta2", *self.beta2) if self.beta2 else 0.999
            options["betas"] = (b1, b2)
        if self.weight_decay and "weight_decay" in takes:
            options["weight_decay"] = trial.suggest_float("weight_decay", *self.weight_decay,
                                                          log=True)
        schedule = trial.suggest_categorical("schedule", self.schedules)
        sname, soptions = registry.split_spec(schedule, "schedule")
        if self.warmup and "warmup" in registry.SCHEDULES[sname].options:
            soptions["warmup"] = trial.suggest_float("warmup", *self.warmup)
        return (registry.join_spec(base, options), registry.join_spec(sname, soptions),
                dict(trial.params))


PRUNERS = ("median", "halving", "none")


@dataclass
class TuneSettings:
    """A study: what it trains, how long, where it is stored."""

    task: str = field(default="digits-mlp", metadata=option("task to train"))
    space: Space = field(default_factory=Space)
    trials: int = field(default=20, metadata=option(
        "finished (complete or pruned) trials the study needs", parse=parse_positive))
    epochs: int | None = field(default=None, metadata=option(
        "epochs per trial", parse=parse_positive, default_text="the task's"))
    batch_size: int | None = field(default=None, metadata=option(
        "mini-batch size", parse=parse_positive, default_text="the task's"))
    evals: int = field(default=10, metadata=option(
        "evaluations per trial, the pruner's checkpoints", parse=parse_positive))
    seed: int = field(default=0, metadata=option(
        "seed of the sampler and of every trial", parse=parse_count, default_text="0"))
    pruner: str = field(default="median", metadata=option(
        "median, halving (successive halving) or none", choices=PRUNERS))
    storage: str | None = field(default=None, metadata=option(
        "database URL, e.g. postgresql://USER:PASS@HOST/DB", default_text="sqlite in --out"))
    study: str | None = field(default=None, metadata=option(
        "study name, to resume it or to join it from other workers",
        default_text="descend-TASK"))
    heartbeat: float = field(default=10.0, metadata=option(
        "seconds between worker heartbeats; a trial silent for 3 heartbeats is failed and "
        "retried", parse=parse_number))
    out: str | None = field(default=None, metadata=option(
        "output folder (one writer: each worker of a shared study needs its own)",
        default_text="runs/tune/TASK"))
    data_dir: str | None = field(default=None, metadata=option(
        "IDX folder for mnist-*/fashion-* tasks"))

    def __post_init__(self) -> None:
        if not (isinstance(self.heartbeat, (int, float)) and self.heartbeat > 0):
            raise ValueError(f"heartbeat (--heartbeat) must be a number of seconds > 0, got "
                             f"{self.heartbeat!r}")
        if self.pruner not in PRUNERS:
            raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {self.pruner!r}")


def _pruner(name: str) -> Any:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    if name == "halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ValueError(f"pruner must be one of {', '.join(PRUNERS)}, got {name!r}")


def database_url(url: str) -> str:
    """Users write ``postgresql://...``; SQLAlchemy 2.1 reads that as psycopg 3. Use
    whichever PostgreSQL driver is installed (descend's `postgres` extra brings psycopg2)."""
    import importlib.util

    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            rest = url[len(prefix):]
            if importlib.util.find_spec("psycopg") is not None:
                return "postgresql+psycopg://" + rest
            return "postgresql+psycopg2://" + rest
    return url


def open_storage(url: str, heartbeat: float) -> Any:
    """An Optuna RDB storage with heartbeats, or a clear error naming the database."""
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    shown = url.split("@")[-1] if "@" in url else url
    url = database_url(url)
    try:
        return RDBStorage(
            url, heartbeat_interval=max(1, int(heartbeat)),
            grace_period=max(2, int(3 * heartbeat)),
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            engine_kwargs={"pool_pre_ping": True} if url.startswith("postgres") else
            {"connect_args": {"timeout": 60}})
    except (ModuleNotFoundError, ImportError) as e:
        raise LabError(f"cannot use database {shown!r}: its driver is missing ({e}); "
                           "for PostgreSQL: pip install 'descend[postgres]'") from None
    except Exception as e:  # sqlalchemy's OperationalError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise LabError(f"cannot reach database {shown!r}: {first}") from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(settings: TuneSettings, task: Task) -> Any:
    import optuna

    def objective(trial: Any) -> float:
        optimizer, schedule, _ = settings.space.sample(trial)
        twin = _finished_twin(trial)
        if twin is not None:  # the same configuration finished before: reuse, never re-run
            trial.set_user_attr("same_as_trial", twin.number)
            for key in ("optimizer_spec", "schedule_spec", "seed", "diverged", "steps"):
                if key in twin.user_attrs:
                    trial.set_user_attr(key, twin.user_attrs[key])
            if twin.state == optuna.trial.TrialState.PRUNED:
                raise optuna.TrialPruned(f"same configuration as trial {twin.number}, pruned")
            return twin.value
        spec = RunSpec(task=settings.task, optimizer=optimizer, schedule=schedule,
                       seed=settings.seed, batch_size=settings.batch_size or task.batch_size,
                       epochs=settings.epochs or task.epochs, evals=settings.evals,
                       role="tune", lr_source="tuned")
        trial.set_user_attr("optimizer_spec", optimizer)
        trial.set_user_attr("schedule_spec", schedule)
        trial.set_user_attr("seed", settings.seed)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")

        def on_eval(record: dict[str, Any]) -> None:
            value = record["val_loss"]
            if record["step"] and math.isfinite(value):
                trial.report(value, record["step"])
                if trial.should_prune():
                    raise optuna.TrialPruned(f"pruned at step {record['step']}")

        with one_thread():
            summary = train(spec, task, on_eval)
        trial.set_user_attr("diverged", summary["diverged"])
        trial.set_user_attr("steps", summary["steps"])
        if summary["diverged"]:
            return math.inf
        return float(summary["final_val_loss"])

    return objective


def _finished_twin(trial: Any) -> Any:
    """A finished (complete or pruned) trial of the study with exactly these parameters."""
    from optuna.trial import TrialState

    for other in trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,
                                                                 TrialState.PRUNED)):
        if other.number != trial.number and other.params == trial.params:
            return other
    return None


def _sampler_seed(settings: TuneSettings, study: Any, shared: bool) -> int:
    """The study's own seed for a new study of one worker, so that it is reproducible; a
    different stream for a resumed study or another worker: a sampler restarted with
    the same seed replays the same first suggestions, the configurations already run."""
    trials = len(study.get_trials(deepcopy=False))
    if trials == 0 and not shared:
        return settings.seed
    text = f"{settings.seed}:{trials}:{socket.gethostname()}:{os.getpid()}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Heartbeats, stale-trial retries and MaxTrialsCallback are Optuna features descend
    uses on purpose; their ExperimentalWarnings tell users nothing they can act on."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def tune(settings: TuneSettings, progress: bool = True, task: Task | None = None
         ) -> dict[str, Any]:
    """Run (or join, or resume) a study; returns the best configuration. Pass `task` to
    tune on your own `Task` (then `settings.task` is only its name).

    The output folder is held for the whole study (`lock.folder_lock`): a second worker
    joining a study kept in a database uses an --out of its own."""
    _pruner(settings.pruner)  # a bad name fails before anything is written
    if task is None:
        options = {"data_dir": settings.data_dir} if settings.data_dir else {}
        task = get_task(settings.task, **options)
    with one_thread():
        task.splits  # noqa: B018 (a missing data folder fails here, before any write)
    out = Path(settings.out or Path("runs") / "tune" / settings.task)
    with _quiet_optuna():
        storage = open_storage(settings.storage, settings.heartbeat) if settings.storage \
            else None
        with folder_lock(out) as out:
            if storage is None:
                storage = open_storage(f"sqlite:///{(out / 'study.db').resolve()}",
                                       settings.heartbeat)
            return _run_study(settings, task, out, storage, progress)


def _run_study(settings: TuneSettings, task: Task, out: Path, storage: Any, progress: bool
               ) -> dict[str, Any]:
    import optuna
    import optuna.samplers
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from .console import TrialBar

    name = settings.study or f"descend-{settings.task}"
    study = optuna.create_study(
        study_name=name, storage=storage, direction="minimize", load_if_exists=True,
        pruner=_pruner(settings.pruner))
    study.sampler = optuna.samplers.TPESampler(
        seed=_sampler_seed(settings, study, shared=settings.storage is not None))
    study.set_user_attr("task", settings.task)
    study.set_user_attr("budget", {"trials": settings.trials, "epochs": settings.epochs
                                   or task.epochs, "evals": settings.evals,
                                   "seed": settings.seed, "pruner": settings.pruner})
    study.set_user_attr("space", _jsonable(asdict(settings.space)))
    done = (TrialState.COMPLETE, TrialState.PRUNED)
    # Trials of workers that died (no heartbeat for a grace period) are failed now, and
    # their retries enqueued, even when the study already has all its trials.
    optuna.storages.fail_stale_trials(study)
    objective = _objective(settings, task)
    bar = TrialBar(settings.trials, progress, len(study.get_trials(states=done)))
    with bar:
        if settings.trials > len(study.get_trials(deepcopy=False, states=done)):
            study.optimize(objective, n_trials=None,
                           callbacks=[MaxTrialsCallback(settings.trials, states=done),
                                      bar.callback], catch=(RuntimeError, LabError))
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:  # retries of failed trials: run them rather than leave them queued
            study.optimize(objective, n_trials=len(waiting), callbacks=[bar.callback],
                           catch=(RuntimeError, LabError))
    return finish(study, out)


def finish(study: Any, out: Path) -> dict[str, Any]:
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if math.isfinite(t.value)]
    if not complete:
        raise LabError(f"study {study.study_name!r} has no completed trial yet")
    best = min(complete, key=lambda t: t.value)
    config = {"task": study.user_attrs.get("task"), "study": study.study_name,
              "optimizer": best.user_attrs["optimizer_spec"],
              "schedule": best.user_attrs["schedule_spec"], "value": best.value,
              "metric": "final validation loss", "trial": best.number,
              "params": best.params, "seed": best.user_attrs.get("seed"),
              "budget": study.user_attrs.get("budget"),
              "trials": _counts(study)}
    write_json_atomic(out / "best.json", config)
    write_text_atomic(out / "best.toml", _toml(config))
    plots(study, out)
    return config


def _counts(study: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] = counts.get(t.state.name.lower(), 0) + 1
    return counts


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=list))


def _toml(config: dict[str, Any]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, bool):
            return str(v).lower()
        return repr(v) if isinstance(v, (int, float)) else json.dumps(str(v))

    lines = [f"{k} = {fmt(v)}" for k, v in config.items() if not isinstance(v, dict)]
    for k, v in config.items():
        if isinstance(v, dict):
            lines += ["", f"[{k}]"] + [f"{json.dumps(str(kk))} = {fmt(vv)}"
                                       for kk, vv in v.items()]
    return "\n".join(lines) + "\n"


def load_config(path: str | Path) -> dict[str, Any]:
    """A best-configuration file written by `tune` (JSON or TOML): its optimizer spec and
    schedule spec plug straight into `compare` (``descend compare --config FILE``)."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise ValueError(f"config file {path} does not exist") from None
    try:
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise ValueError(f"{path} is not a valid config file: {e}") from None
    for key in ("optimizer", "schedule"):
        if key not in data:
            raise ValueError(f"{path} has no {key!r} entry; is it a descend tune result?")
    return data


def plots(study: Any, out: Path) -> list[Path]:
    """Optuna's optimization history, parallel coordinates and parameter importances."""
    import matplotlib

    matplotlib.use("Agg")
    import warnings

    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    made = []
    for name, fn in (("optimization_history", ovm.plot_optimization_history),
                     ("parallel_coordinate", ovm.plot_parallel_coordinate),
                     ("param_importances", ovm.plot_param_importances)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ax = fn(study)
            fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
            fig.set_size_inches(8, 5)
            fig.tight_layout()
            fig.savefig(out / f"{name}.png", dpi=100)
            plt.close(fig)
            made.append(out / f"{name}.png")
        except Exception:  # too few trials for a plot (importances need 2+ params)
            continue
    return made
