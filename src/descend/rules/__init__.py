"""The maths of descend, written once: small pure update rules and `chain`.

See `descend.rules.base` for the contract every rule follows.
"""

from .adaptive import (
    scale_by_adagrad,
    scale_by_adam,
    scale_by_lion,
    scale_by_rms,
)
from .ademamix import (
    scale_by_ademamix,
)
from .base import (
    Context,
    Rule,
    State,
    chain,
    per_tensor,
)
from .basic import (
    add_decayed_weights,
    add_fixed_decay,
    scale_by_inverse_time,
    scale_by_learning_rate,
)
from .factored import (
    scale_by_adafactor,
)
from .lbfgs import (
    lbfgs,
)
from .momentum import (
    ema_momentum,
    heavy_ball,
)
from .orthogonal import (
    muon_lr_ratio,
    newton_schulz,
    scale_by_muon,
)
from .prodigy import (
    scale_by_prodigy,
)
from .schedule_free import (
    scale_by_adam_second_moment,
    schedule_free,
)
from .soap import (
    scale_by_soap,
)
from .torch_family import (
    polyak_average,
    scale_by_adadelta,
    scale_by_adamax,
    scale_by_asgd,
    scale_by_nadam,
    scale_by_radam,
    scale_by_rprop,
)
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
    "add_fixed_decay",
    "chain",
    "clip_by_global_norm",
    "ema_momentum",
    "heavy_ball",
    "lbfgs",
    "muon_lr_ratio",
    "newton_schulz",
    "per_tensor",
    "polyak_average",
    "scale_by_adadelta",
    "scale_by_adafactor",
    "scale_by_adagrad",
    "scale_by_adam",
    "scale_by_adam_second_moment",
    "scale_by_adamax",
    "scale_by_ademamix",
    "scale_by_asgd",
    "scale_by_inverse_time",
    "scale_by_lamb_moments",
    "scale_by_lamb_trust_ratio",
    "scale_by_lars_trust_ratio",
    "scale_by_learning_rate",
    "scale_by_lion",
    "scale_by_muon",
    "scale_by_nadam",
    "scale_by_prodigy",
    "scale_by_radam",
    "scale_by_rms",
    "scale_by_rprop",
    "scale_by_soap",
    "schedule_free",
]
