"""descend: gradient-descent optimizers and learning-rate schedules for PyTorch.

Every optimizer is a short chain of pure update rules (`descend.rules`), run by an
execution backend (`descend.backends`) behind a drop-in `torch.optim.Optimizer`
(`descend.optim`).
"""

from . import optim, recipes, rules
from .optim import *  # noqa: F403 - every optimizer class, as listed in descend.optim
from .rules import Rule, chain

__version__ = "0.1.0"

__all__ = [*optim.__all__, "Rule", "chain", "recipes", "rules"]  # noqa: PLE0604
