"""Drop-in `torch.optim.Optimizer` classes built from descend's rules."""

from .base import RuleOptimizer
from .classes import SGD, Adagrad, Adam, AdamW, Lion, Momentum, Nesterov, RMSprop

__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "Lion", "Momentum", "Nesterov", "RMSprop",
           "RuleOptimizer"]
