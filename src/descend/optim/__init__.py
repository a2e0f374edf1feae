"""Drop-in `torch.optim.Optimizer` classes built from descend's rules."""

from .base import (
    RuleOptimizer,
)
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
from .layerwise import (
    LAMB,
    LARS,
)
from .matrix import (
    SOAP,
    Adafactor,
    Muon,
    MuonAdamW,
    is_hidden_matrix,
    muon_param_groups,
)
from .torch_family import (
    ASGD,
    Adadelta,
    Adamax,
    NAdam,
    RAdam,
    Rprop,
)

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
    "RuleOptimizer",
    "SGD",
    "SOAP",
    "ScheduleFreeAdamW",
    "ScheduleFreeSGD",
    "is_hidden_matrix",
    "muon_param_groups",
]
