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
from .torch_family import ASGD, Adadelta, Adamax, NAdam, RAdam, Rprop

__all__ = ["ASGD", "LBFGS", "SGD", "AdEMAMix", "Adadelta", "Adagrad", "Adam", "Adamax",
           "AdamW", "Lion", "Momentum", "NAdam", "Nesterov", "Prodigy", "RAdam", "RMSprop",
           "Rprop", "RuleOptimizer", "ScheduleFreeAdamW", "ScheduleFreeSGD"]
