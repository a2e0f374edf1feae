"""descend: gradient-descent optimizers and learning-rate schedules for PyTorch.

Every optimizer is a short chain of pure update rules (`descend.rules`), run by an
execution backend (`descend.backends`) behind a drop-in `torch.optim.Optimizer`
(`descend.optim`).
"""

from . import recipes, rules
from .optim import (
    LAMB,
    LARS,
    SGD,
    SOAP,
    Adafactor,
    Adagrad,
    Adam,
    AdamW,
    Lion,
    Momentum,
    Muon,
    MuonAdamW,
    Nesterov,
    RMSprop,
    RuleOptimizer,
    is_hidden_matrix,
    muon_param_groups,
)
from .rules import Rule, chain

__version__ = "0.1.0"

__all__ = [
    "LAMB",
    "LARS",
    "SGD",
    "SOAP",
    "Adafactor",
    "Adagrad",
    "Adam",
    "AdamW",
    "Lion",
    "Momentum",
    "Muon",
    "MuonAdamW",
    "Nesterov",
    "RMSprop",
    "Rule",
    "RuleOptimizer",
    "chain",
    "is_hidden_matrix",
    "muon_param_groups",
    "recipes",
    "rules",
]
