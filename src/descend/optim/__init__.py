"""Drop-in `torch.optim.Optimizer` classes built from descend's rules."""

from .base import RuleOptimizer
from .classes import SGD, Adagrad, Adam, AdamW, Lion, Momentum, Nesterov, RMSprop
from .layerwise import LAMB, LARS
from .matrix import SOAP, Adafactor, Muon, MuonAdamW, is_hidden_matrix, muon_param_groups

__all__ = ["LAMB", "LARS", "SGD", "SOAP", "Adafactor", "Adagrad", "Adam", "AdamW", "Lion",
           "Momentum", "Muon", "MuonAdamW", "Nesterov", "RMSprop", "RuleOptimizer",
           "is_hidden_matrix", "muon_param_groups"]
