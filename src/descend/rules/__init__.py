"""The maths of descend, written once: small pure update rules and `chain`.

See `descend.rules.base` for the contract every rule follows.
"""

from .adaptive import scale_by_adagrad, scale_by_adam, scale_by_lion, scale_by_rms
from .base import Context, Rule, State, chain
from .basic import add_decayed_weights, scale_by_inverse_time, scale_by_learning_rate
from .momentum import ema_momentum, heavy_ball
from .torch_family import (
    polyak_average,
    scale_by_adadelta,
    scale_by_adamax,
    scale_by_asgd,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rprop,
)

__all__ = [
    "Context",
    "Rule",
    "State",
    "add_decayed_weights",
    "chain",
    "ema_momentum",
    "heavy_ball",
    "polyak_average",
    "scale_by_adadelta",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adamax",
    "scale_by_asgd",
    "scale_by_inverse_time",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_nadam",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
]
