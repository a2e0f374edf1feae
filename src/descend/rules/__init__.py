"""The maths of descend, written once: small pure update rules and `chain`.

See `descend.rules.base` for the contract every rule follows.
"""

from .adaptive import scale_by_adagrad, scale_by_adam, scale_by_lion, scale_by_rms
from .ademamix import scale_by_ademamix
from .base import Context, Rule, State, chain
from .basic import (
    add_decayed_weights,
    add_fixed_decay,
    scale_by_inverse_time,
    scale_by_learning_rate,
)
from .lbfgs import lbfgs
from .momentum import ema_momentum, heavy_ball
from .prodigy import scale_by_prodigy
from .schedule_free import scale_by_adam_second_moment, schedule_free
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
    "add_fixed_decay",
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
    "lbfgs",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adam_second_moment",
    "scale_by_ademamix",
    "scale_by_inverse_time",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_prodigy",
    "scale_by_rms",
    "schedule_free",
]
