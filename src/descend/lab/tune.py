"""`descend tune`: an Optuna study over optimizers, their hyperparameters and schedules.

Trials are the lab's training runs; each reports its validation loss at every evaluation,
so a pruner (median, or successive halving) stops bad trials early. Storage is a SQLite
file in the run directory by default; pass ``--storage postgresql://...`` and start as many
workers as you like, on as many machines, with the same ``--study`` name. Workers send
heartbeats: a killed worker's trial is marked failed by the others and retried once with
the same parameters, so a kill loses only that trial's work.
"""

from __future__ import annotations

import json
import math
import os
import socket
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from . import registry
from .records import write_json_atomic, write_text_atomic
from .spec import RunSpec
from .tasks import Task, get_task
from .train import train

Range = tuple[float, float]


def parse_range(text: str, name: str) -> Range:
    """'1e-4:1e-1' -> (1e-4, 0.1)."""
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError:
        raise ValueError(f"{name} must be written LOW:HIGH, got {text!r}") from None
    if not low < high:
        raise ValueError(f"{name}: LOW must be below HIGH, got {text!r}")
    return low, high


@dataclass
class Space:
    """What a study searches. Log scales for lr and weight decay; a range left as None is
    not searched (the optimizer's value is used). `warmup` is the warmup fraction of the
    schedules that have one (warmup-cosine, wsd)."""

    optimizers: list[str] = field(default_factory=lambda: ["adam", "sgd"])
    schedules: list[str] = field(default_factory=lambda: ["constant"])
    lr: Range | None = None
    momentum: Range | None = None
    beta1: Range | None = None
    beta2: Range | None = None
    weight_decay: Range | None = None
    warmup: Range | None = None

    def __post_init__(self) -> None:
        for o in self.optimizers:
            registry.canonical_optimizer(o)
        for s in self.schedules:
            registry.canonical_schedule(s)
        if not self.optimizers or not self.schedules:
            raise ValueError("the space needs at least one optimizer and one schedule")
        for name in ("lr", "weight_decay"):
            r = getattr(self, name)
            if r is not None and r[0] <= 0:
                raise ValueError(f"{name} is searched on a log scale: LOW must be > 0")

    @classmethod
    def from_file(cls, path: str | Path) -> Space:
        """A TOML or YAML file with the same keys, ranges as [low, high] lists."""
        path = Path(path)
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = tomllib.loads(text)
        data = data.get("space", data)
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(known)}")
        for k, v in data.items():
            if k not in ("optimizers", "schedules"):
                data[k] = tuple(float(x) for x in v)
        return cls(**data)

    def sample(self, trial: Any) -> tuple[str, str, dict[str, Any]]:
        """(optimizer spec, schedule spec, the sampled values) for one trial."""
        name = trial.suggest_categorical("optimizer", self.optimizers)
        base, fixed = registry.split_spec(name, "optimizer")
        takes = registry._hyperparameters(registry.OPTIMIZERS[base].cls)
        options = dict(fixed)
        lr_range = self.lr or (registry.optimizer_lr(name) / 30, registry.optimizer_lr(name) * 30)
        options["lr"] = trial.suggest_float(f"lr[{name}]" if self.lr is None else "lr",
                                            *lr_range, log=True)
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


@dataclass
class TuneSettings:
    task: str = "digits-mlp"
    space: Space = field(default_factory=Space)
    trials: int = 20
    epochs: int | None = None
    batch_size: int | None = None
    evals: int = 10
    seed: int = 0
    pruner: str = "median"
    storage: str | None = None
    study: str | None = None
    heartbeat: float = 10.0
    out: str | None = None
    data_dir: str | None = None


PRUNERS = ("median", "halving", "none")


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
        raise RuntimeError(f"cannot use database {shown!r}: its driver is missing ({e}); "
                           "for PostgreSQL: pip install 'descend[postgres]'") from None
    except Exception as e:  # sqlalchemy's OperationalError and friends
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise RuntimeError(f"cannot reach database {shown!r}: {first}") from None
    finally:
        optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(settings: TuneSettings, task: Task) -> Any:
    import optuna

    def objective(trial: Any) -> float:
        optimizer, schedule, _ = settings.space.sample(trial)
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

        summary = train(spec, task, on_eval)
        trial.set_user_attr("diverged", summary["diverged"])
        trial.set_user_attr("steps", summary["steps"])
        if summary["diverged"]:
            return math.inf
        return float(summary["final_val_loss"])

    return objective


def tune(settings: TuneSettings, progress: bool = True, task: Task | None = None
         ) -> dict[str, Any]:
    """Run (or join, or resume) a study; returns the best configuration. Pass `task` to
    tune on your own `Task` (then `settings.task` is only its name)."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if task is None:
        options = {"data_dir": settings.data_dir} if settings.data_dir else {}
        task = get_task(settings.task, **options)
    out = Path(settings.out or Path("runs") / "tune" / settings.task)
    out.mkdir(parents=True, exist_ok=True)
    url = settings.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    storage = open_storage(url, settings.heartbeat)
    name = settings.study or f"descend-{settings.task}"
    import optuna.samplers

    study = optuna.create_study(
        study_name=name, storage=storage, direction="minimize", load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=_pruner(settings.pruner))
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
    bar = _TrialBar(settings.trials, progress, len(study.get_trials(states=done)))
    with bar:
        if settings.trials > len(study.get_trials(deepcopy=False, states=done)):
            study.optimize(objective, n_trials=None,
                           callbacks=[MaxTrialsCallback(settings.trials, states=done),
                                      bar.callback], catch=(RuntimeError,))
        waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if waiting:  # retries of failed trials: run them rather than leave them queued
            study.optimize(objective, n_trials=len(waiting), callbacks=[bar.callback],
                           catch=(RuntimeError,))
    return finish(study, out)


def finish(study: Any, out: Path) -> dict[str, Any]:
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if math.isfinite(t.value)]
    if not complete:
        raise RuntimeError(f"study {study.study_name!r} has no completed trial yet")
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


class _TrialBar:
    def __init__(self, total: int, enabled: bool, done: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[best]}"), disable=not enabled)
        self.task = self.progress.add_task("trials", total=total, completed=done, best="")

    def __enter__(self) -> _TrialBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def callback(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.progress.advance(self.task)
        try:
            best = f"best val loss {study.best_value:.4g}"
        except ValueError:
            best = ""
        self.progress.update(self.task, best=best)
