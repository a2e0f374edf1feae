"""The maths of descend, written once: small pure update rules and `chain`.

See `descend.rules.base` for the contract every rule follows.
"""

from .adaptive import scale_by_adagrad, scale_by_adam, scale_by_lion, scale_by_rms
from .base import Context, Rule, State, chain, per_tensor
from .basic import (
    add_decayed_weights,
    scale_by_inverse_time,
    scale_by_learning_rate,
)
from .factored import scale_by_adafactor
from .momentum import ema_momentum, heavy_ball
from .orthogonal import muon_lr_ratio, newton_schulz, scale_by_muon
from .soap import scale_by_soap
from .trust import (
    clip_by_global_norm,
    scale_by_lamb_moments,
    scale_by_lamb_trust_ratio,
    scale_by_lars_trust_ratio,
)

__all__ = [
    "Context",
    "Rule",
    "State",
    "add_decayed_weights",
    "chain",
    "clip_by_global_norm",
    "ema_momentum",
    "heavy_ball",
    "muon_lr_ratio",
    "newton_schulz",
    "per_tensor",
    "scale_by_adafactor",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_inverse_time",
    "scale_by_lamb_moments",
    "scale_by_lamb_trust_ratio",
    "scale_by_lars_trust_ratio",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_rms",
    "scale_by_soap",
]
