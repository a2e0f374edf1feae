"""Drop-in `torch.optim.Optimizer` classes built from descend's rules."""

from .base import RuleOptimizer
from .classes import SGD, Adagrad, Adam, AdamW, Lion, Momentum, Nesterov, RMSprop
from .torch_family import ASGD, Adadelta, Adamax, NAdam, RAdam, Rprop

__all__ = ["ASGD", "SGD", "Adadelta", "Adagrad", "Adam", "Adamax", "AdamW", "Lion", "Momentum",
           "NAdam", "Nesterov", "RAdam", "RMSprop", "Rprop", "RuleOptimizer"]
