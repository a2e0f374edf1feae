"""Learning-rate (and any hyperparameter) schedules: pure functions of the step.

Use one with a descend optimizer by passing it as the hyperparameter
(``descend.Adam(params, lr=warmup_cosine(1e-3, 500, 10_000))``), or with any torch
optimizer through `ScheduledHyperparameters`.
"""

from .base import (
    Schedule,
    as_schedule,
    clamp,
    constant,
    evaluate,
    is_scheduled,
    join,
    multiply,
    per_epoch,
)
from .curves import (
    cosine,
    cosine_restarts,
    cyclic,
    exponential_decay,
    exponential_warmup,
    inverse_time_decay,
    linear,
    linear_warmup,
    multi_step,
    one_cycle,
    polynomial,
    step_decay,
    warmup_cosine,
    warmup_stable_decay,
)
from .plateau import ReduceOnPlateau, Reduction, controllers, reduce_on_plateau
from .torch_scheduler import AttachedScheduler, ScheduledHyperparameters

__all__ = [
    "AttachedScheduler",
    "ReduceOnPlateau",
    "Reduction",
    "Schedule",
    "ScheduledHyperparameters",
    "as_schedule",
    "clamp",
    "constant",
    "controllers",
    "cosine",
    "cosine_restarts",
    "cyclic",
    "evaluate",
    "exponential_decay",
    "exponential_warmup",
    "inverse_time_decay",
    "is_scheduled",
    "join",
    "linear",
    "linear_warmup",
    "multi_step",
    "multiply",
    "one_cycle",
    "per_epoch",
    "polynomial",
    "reduce_on_plateau",
    "step_decay",
    "warmup_cosine",
    "warmup_stable_decay",
]
