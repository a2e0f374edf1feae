"""descend: gradient-descent optimizers and learning-rate schedules for PyTorch.

Every optimizer is a short chain of pure update rules (`descend.rules`), run by an
execution backend (`descend.backends`) behind a drop-in `torch.optim.Optimizer`
(`descend.optim`).
"""

from . import recipes, rules
from .optim import (
    ASGD,
    LBFGS,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    AdEMAMix,
    Lion,
    Momentum,
    NAdam,
    Nesterov,
    Prodigy,
    RAdam,
    RMSprop,
    Rprop,
    RuleOptimizer,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
)
from .rules import Rule, chain

__version__ = "0.1.0"

__all__ = [
    "ASGD",
    "LBFGS",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "Adamax",
    "AdamW",
    "AdEMAMix",
    "Lion",
    "Momentum",
    "NAdam",
    "Nesterov",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "Rprop",
    "Rule",
    "RuleOptimizer",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "chain",
    "recipes",
    "rules",
]
