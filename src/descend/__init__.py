"""descend: gradient-descent optimizers and learning-rate schedules for PyTorch.

Every optimizer is a short chain of pure update rules (`descend.rules`), run by an
execution backend (`descend.backends`) behind a drop-in `torch.optim.Optimizer`
(`descend.optim`).
"""

from . import recipes, rules
from .optim import (
    ASGD,
    LAMB,
    LARS,
    LBFGS,
    SGD,
    SOAP,
    Adadelta,
    Adafactor,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    AdEMAMix,
    Lion,
    Momentum,
    Muon,
    MuonAdamW,
    NAdam,
    Nesterov,
    Prodigy,
    RAdam,
    RMSprop,
    Rprop,
    RuleOptimizer,
    ScheduleFreeAdamW,
    ScheduleFreeSGD,
    is_hidden_matrix,
    muon_param_groups,
)
from .rules import Rule, chain

__version__ = "0.1.0"

__all__ = [
    "ASGD",
    "AdEMAMix",
    "Adadelta",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "LAMB",
    "LARS",
    "LBFGS",
    "Lion",
    "Momentum",
    "Muon",
    "MuonAdamW",
    "NAdam",
    "Nesterov",
    "Prodigy",
    "RAdam",
    "RMSprop",
    "Rprop",
    "Rule",
    "RuleOptimizer",
    "SGD",
    "SOAP",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "chain",
    "is_hidden_matrix",
    "muon_param_groups",
    "recipes",
    "rules",
]
