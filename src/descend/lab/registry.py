"""Named optimizers and schedules for the lab, and the parser of their CLI spellings.

An optimizer is written ``name[:key=value[:key=value...]]``, e.g. ``adam:lr=3e-4`` or
``adamw:lr=1e-3:betas=0.9/0.95``; tuples use ``/``. A schedule is written the same way,
e.g. ``warmup-cosine:warmup=0.1`` or ``plateau:patience=2``.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

import descend
import descend.schedules as S


@dataclass(frozen=True)
class OptimizerEntry:
    cls: type
    fixed: dict[str, Any]
    lr: float
    text: str
    # Optimizers that route by parameter names or shapes (MuonAdamW) are built from the
    # model itself; on a surface's one point vector they would have no matrix to act on.
    matrices: bool = False
    # Hyperparameters that follow the lr's schedule in proportion to the lr (MuonAdamW's
    # adamw_lr), so that a schedule, and tuning the lr, move every group's lr together.
    scaled: tuple[str, ...] = ()


# The lab's default learning rates: torch's defaults for the adaptive methods (RMSprop at
# 1e-3, the value its authors and Keras use, since torch's 1e-2 is known to be too high),
# and the customary 0.1 (plain) / 0.01 (heavy-ball, whose steps grow by 1/(1-mu)) for the
# SGD family. `--tune-lr` replaces them with a tuned value under the same budget for all.
OPTIMIZERS: dict[str, OptimizerEntry] = {
    "sgd": OptimizerEntry(descend.SGD, {}, 0.1, "plain (mini-batch) gradient descent"),
    "momentum": OptimizerEntry(descend.Momentum, {"momentum": 0.9}, 0.1,
                               "EMA momentum v = 0.9 v + 0.1 g (tutorial form)"),
    "heavyball": OptimizerEntry(descend.SGD, {"momentum": 0.9}, 0.01,
                                "heavy-ball momentum v = 0.9 v + g (torch's SGD)"),
    "nesterov": OptimizerEntry(descend.Nesterov, {"momentum": 0.9}, 0.01,
                               "Nesterov momentum (torch's SGD nesterov=True)"),
    "adagrad": OptimizerEntry(descend.Adagrad, {}, 0.01, "AdaGrad"),
    "rmsprop": OptimizerEntry(descend.RMSprop, {}, 1e-3, "RMSProp (torch's form)"),
    "adam": OptimizerEntry(descend.Adam, {}, 1e-3, "Adam"),
    "amsgrad": OptimizerEntry(descend.Adam, {"amsgrad": True}, 1e-3, "Adam with AMSGrad"),
    "adamw": OptimizerEntry(descend.AdamW, {}, 1e-3, "AdamW, weight decay 0.01"),
    "lion": OptimizerEntry(descend.Lion, {}, 1e-4, "Lion"),
    "nadam": OptimizerEntry(descend.NAdam, {}, 2e-3, "NAdam (Adam with Nesterov momentum)"),
    "radam": OptimizerEntry(descend.RAdam, {}, 1e-3, "RAdam (rectified Adam)"),
    "adamax": OptimizerEntry(descend.Adamax, {}, 2e-3, "Adamax (Adam with the infinity norm)"),
    "adadelta": OptimizerEntry(descend.Adadelta, {}, 1.0, "Adadelta"),
    "asgd": OptimizerEntry(descend.ASGD, {}, 1e-2, "averaged SGD (Polyak-Juditsky)"),
    "rprop": OptimizerEntry(descend.Rprop, {}, 1e-2,
                            "Rprop (sign-based steps; meant for full batches)"),
    "lbfgs": OptimizerEntry(descend.LBFGS, {}, 1.0,
                            "L-BFGS with strong-Wolfe line search (full batches)"),
    "schedulefree-sgd": OptimizerEntry(descend.ScheduleFreeSGD, {}, 1.0,
                                       "Schedule-Free SGD (no lr schedule needed)"),
    "schedulefree-adamw": OptimizerEntry(descend.ScheduleFreeAdamW, {}, 2.5e-3,
                                         "Schedule-Free AdamW (no lr schedule needed)"),
    "ademamix": OptimizerEntry(descend.AdEMAMix, {}, 1e-3,
                               "AdEMAMix (Adam with a second, slow momentum)"),
    "prodigy": OptimizerEntry(descend.Prodigy, {}, 1.0, "Prodigy (learning-rate free)"),
    "adafactor": OptimizerEntry(descend.Adafactor, {}, 1e-2,
                                "Adafactor (factored second moment, torch's form)"),
    "lamb": OptimizerEntry(descend.LAMB, {}, 1e-3, "LAMB (Adam with layer-wise trust ratio)"),
    "lars": OptimizerEntry(descend.LARS, {}, 0.1,
                           "LARS (heavy-ball momentum with layer-wise trust ratio)"),
    "soap": OptimizerEntry(descend.SOAP, {}, 3e-3, "SOAP (Adam in Shampoo's eigenbasis)"),
    # The form Muon is trained in: Muon for hidden matrices, AdamW for the rest. lr 0.02
    # is Muon's reference value (Jordan et al.); the AdamW groups start at 1e-3 and follow
    # the lr's schedule in proportion (a warmup-cosine run decays both).
    "muon": OptimizerEntry(descend.MuonAdamW, {}, 0.02,
                           "Muon on hidden matrices, AdamW on the rest", matrices=True,
                           scaled=("adamw_lr",)),
}

DEFAULT_OPTIMIZERS = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")


def parse_value(text: str) -> Any:
    if "/" in text:
        return tuple(parse_value(part) for part in text.split("/"))
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "/".join(format_value(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value).lower() if isinstance(value, bool) else str(value)


def split_spec(text: str, what: str) -> tuple[str, dict[str, Any]]:
    name, *pairs = text.strip().split(":")
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{what} {text!r}: options are written key=value, got {pair!r}")
        options[key.strip()] = parse_value(value.strip())
    return name.strip().lower(), options


def join_spec(name: str, options: dict[str, Any]) -> str:
    return ":".join([name, *(f"{k}={format_value(v)}" for k, v in sorted(options.items()))])


# Options every optimizer takes besides its own hyperparameters (descend.optim.Options),
# with their defaults; torch's execution flags and the backend are not the lab's to vary.
SHARED_OPTIONS = {"maximize": False, "nonfinite": "ignore", "state_dtype": None,
                  "stochastic_rounding": None, "rounding_seed": None}
NOT_OPTIONS = ("self", "params", "backend", "options", "rule", "route")


def _defaults(cls: type) -> dict[str, Any]:
    sig = inspect.signature(cls.__init__)
    own = {k: p.default for k, p in sig.parameters.items()
           if k not in NOT_OPTIONS and p.kind is not p.VAR_KEYWORD}
    return {**own, **SHARED_OPTIONS}


def _hyperparameters(cls: type) -> list[str]:
    return list(_defaults(cls))


def hyperparameters(name: str) -> dict[str, Any]:
    """What optimizer `name` takes, with the lab's defaults (its lr and fixed options)."""
    entry = OPTIMIZERS[name]
    return {**_defaults(entry.cls), **entry.fixed, "lr": entry.lr}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _type_problem(key: str, value: Any, default: Any) -> str | None:
    """How `value` is mis-typed for a hyperparameter whose default is `default`, or None."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            return f"{key} is true or false, got {format_value(value)!r}"
    elif _is_number(default):
        if not _is_number(value):
            return f"{key} is a number, got {format_value(value)!r}"
    elif isinstance(default, tuple):
        example = "/".join(format_value(v) for v in default)
        if (not isinstance(value, tuple) or len(value) != len(default)
                or not all(_is_number(v) for v in value)):
            return (f"{key} is {len(default)} numbers joined by '/' (e.g. {key}={example}), "
                    f"got {format_value(value)!r}")
    elif isinstance(default, str) and not isinstance(value, str):
        return f"{key} is a word, got {format_value(value)!r}"
    return None


@functools.cache
def canonical_optimizer(text: str) -> str:
    """Validate an optimizer spec (names, value types, and values, by building it once on
    a dummy parameter) and return its canonical spelling."""
    name, options = split_spec(text, "optimizer")
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; available: {', '.join(OPTIMIZERS)}")
    takes = hyperparameters(name)
    for key, value in options.items():
        if key not in takes:
            raise ValueError(f"optimizer {name!r} has no hyperparameter {key!r}; "
                             f"it takes: {', '.join(_hyperparameters(OPTIMIZERS[name].cls))}")
        problem = _type_problem(key, value, takes[key])
        if problem:
            raise ValueError(f"optimizer {text!r}: {problem}")
    try:
        build_optimizer(join_spec(name, options), torch.nn.Linear(2, 2))
    except (TypeError, ValueError) as e:
        raise ValueError(f"optimizer {text!r}: {e}") from None
    return join_spec(name, options)


def optimizer_lr(text: str) -> float:
    name, options = split_spec(text, "optimizer")
    return float(options.get("lr", OPTIMIZERS[name].lr))


def with_lr(text: str, lr: float) -> str:
    name, options = split_spec(text, "optimizer")
    return join_spec(name, {**options, "lr": lr})


def build_optimizer(text: str, params: torch.nn.Module | Iterable[Tensor],
                    schedule: S.Schedule | None = None,
                    backend: str = "auto") -> descend.RuleOptimizer:
    """The optimizer for a spec over a model (or plain parameters); with `schedule`, its lr
    follows it."""
    name, options = split_spec(text, "optimizer")
    entry = OPTIMIZERS[name]
    kwargs = {**entry.fixed, "lr": entry.lr, **options}
    if schedule is not None:
        lr = float(kwargs["lr"])
        for key in entry.scaled:
            value = kwargs.get(key, _defaults(entry.cls).get(key))
            if isinstance(value, (int, float)) and lr > 0:
                kwargs[key] = (float(value) / lr) * schedule
        kwargs["lr"] = schedule
    if isinstance(params, torch.nn.Module) and not entry.matrices:
        params = params.parameters()
    elif not isinstance(params, torch.nn.Module) and entry.matrices:
        raise ValueError(f"optimizer {name!r} routes a model's parameters by name and shape; "
                         "it needs the model, not bare tensors")
    return entry.cls(params, backend=backend, **kwargs)


# -- schedules -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleEntry:
    build: Callable[..., S.Schedule]
    options: dict[str, Any]
    text: str
    # option -> (what is allowed, in words; the check)
    allowed: dict[str, tuple[str, Callable[[Any], bool]]] = field(default_factory=dict)


def _step(lr: float, total: int, spe: int, factor: float, every: float) -> S.Schedule:
    return S.per_epoch(S.step_decay(lr, factor, max(1, int(every))), spe)


def _fraction(low_open: bool = False, high_open: bool = False
              ) -> tuple[str, Callable[[Any], bool]]:
    text = f"a number in {'(' if low_open else '['}0, 1{')' if high_open else ']'}"
    return text, lambda v: ((v > 0) if low_open else (v >= 0)) and ((v < 1) if high_open
                                                                     else (v <= 1))


_WHOLE = ("a whole number >= 1", lambda v: isinstance(v, int) and v >= 1)
_COUNT = ("a whole number >= 0", lambda v: isinstance(v, int) and v >= 0)

SCHEDULES: dict[str, ScheduleEntry] = {
    "constant": ScheduleEntry(lambda lr, total, spe: S.constant(lr), {}, "the lr throughout"),
    "exponential": ScheduleEntry(
        lambda lr, total, spe, final=0.01: S.exponential_decay(lr, final ** (1 / total)),
        {"final": 0.01}, "time-based lr * rate^t, reaching final * lr at the end",
        {"final": _fraction(low_open=True)}),
    "inverse-time": ScheduleEntry(
        lambda lr, total, spe, final=0.1: S.inverse_time_decay(lr, (1 / final - 1) / total),
        {"final": 0.1}, "lr / (1 + k t), reaching final * lr at the end",
        {"final": _fraction(low_open=True)}),
    "step": ScheduleEntry(_step, {"factor": 0.1, "every": 10},
                          "lr * factor^(epoch // every)",
                          {"factor": _fraction(low_open=True), "every": _WHOLE}),
    "cosine": ScheduleEntry(lambda lr, total, spe, floor=0.0: S.cosine(lr, total, floor * lr),
                            {"floor": 0.0}, "cosine to floor * lr", {"floor": _fraction()}),
    "warmup-cosine": ScheduleEntry(
        lambda lr, total, spe, warmup=0.05: S.warmup_cosine(lr, int(warmup * total), total),
        {"warmup": 0.05}, "linear warmup over a fraction of the steps, then cosine",
        {"warmup": _fraction(high_open=True)}),
    "wsd": ScheduleEntry(
        lambda lr, total, spe, warmup=0.05, decay=0.2: S.warmup_stable_decay(
            lr, int(warmup * total), total, max(1, int(decay * total))),
        {"warmup": 0.05, "decay": 0.2}, "warmup, stable, decay over the last fraction",
        {"warmup": _fraction(high_open=True), "decay": _fraction(low_open=True)}),
    "onecycle": ScheduleEntry(lambda lr, total, spe: S.one_cycle(lr, total), {},
                              "1cycle with the lr as its peak"),
    "plateau": ScheduleEntry(
        lambda lr, total, spe, factor=0.1, patience=3: S.reduce_on_plateau(
            lr, factor=factor, patience=int(patience)),
        {"factor": 0.1, "patience": 3}, "divide by 1/factor when validation loss stalls",
        {"factor": _fraction(low_open=True, high_open=True), "patience": _COUNT}),
}


@functools.cache
def canonical_schedule(text: str) -> str:
    """Validate a schedule spec (names, and each option against what it allows) and
    return its canonical spelling."""
    name, options = split_spec(text, "schedule")
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r}; available: {', '.join(SCHEDULES)}")
    entry = SCHEDULES[name]
    for key, value in options.items():
        if key not in entry.options:
            raise ValueError(f"schedule {name!r} has no option {key!r}; "
                             f"it takes: {', '.join(entry.options) or 'none'}")
        allowed, check = entry.allowed.get(key, ("a number", lambda v: True))
        if not _is_number(value) or not math.isfinite(value) or not check(value):
            raise ValueError(f"schedule {text!r}: {key} must be {allowed}, "
                             f"got {format_value(value)!r}")
    if name == "wsd" and sum({**entry.options, **options}[k] for k in ("warmup", "decay")) > 1:
        raise ValueError(f"schedule {text!r}: warmup + decay must be at most 1 (fractions of "
                         "the run)")
    return join_spec(name, options)


def build_schedule(text: str, lr: float, total_steps: int, steps_per_epoch: int) -> S.Schedule:
    """The schedule for a spec, over `total_steps`; a spec that cannot make one (say, a
    warmup longer than a very short run) raises ValueError naming it."""
    name, options = split_spec(text, "schedule")
    entry = SCHEDULES[name]
    try:
        schedule = entry.build(lr, total_steps, steps_per_epoch, **{**entry.options, **options})
        finite = all(math.isfinite(v) for v in (schedule(0), schedule(total_steps)))
    except (ArithmeticError, TypeError, ValueError) as e:
        raise ValueError(f"schedule {text!r} cannot run {total_steps} steps at lr={lr:g}: "
                         f"{e}") from None
    if not finite:
        raise ValueError(f"schedule {text!r} is not finite for lr={lr:g}")
    return schedule
