"""descend: gradient-descent optimizers and learning-rate schedules for PyTorch.

Every optimizer is a short chain of pure update rules (`descend.rules`), run by an
execution backend (`descend.backends`) behind a drop-in `torch.optim.Optimizer`
(`descend.optim`).
"""

from . import recipes, rules
from .optim import (
    ASGD,
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    Momentum,
    NAdam,
    Nesterov,
    RAdam,
    RMSprop,
    Rprop,
    RuleOptimizer,
)
from .rules import Rule, chain

__version__ = "0.1.0"

__all__ = [
    "ASGD",
    "SGD",
    "Adadelta",
    "Adagrad",
    "Adam",
    "Adamax",
    "AdamW",
    "Lion",
    "Momentum",
    "NAdam",
    "Nesterov",
    "RAdam",
    "RMSprop",
    "Rprop",
    "Rule",
    "RuleOptimizer",
    "chain",
    "recipes",
    "rules",
]
