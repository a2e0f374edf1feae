"""Drop-in `torch.optim.Optimizer` classes built from descend's rules."""

from .base import RuleOptimizer
from .classes import (
    LBFGS,
    SGD,
    Adagrad,
    Adam,
    AdamW,
    AdEMAMix,
    Lion,
    Momentum,
    Nesterov,
    Prodigy,
    RMSprop,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
)

__all__ = ["LBFGS", "SGD", "AdEMAMix", "Adagrad", "Adam", "AdamW", "Lion", "Momentum",
           "Nesterov", "Prodigy", "RMSprop", "RuleOptimizer", "ScheduleFreeAdamW",
           "ScheduleFreeSGD"]
