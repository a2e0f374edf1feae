"""Recipes: every optimizer as a short chain of rules, with no maths of its own.

A recipe takes only *structural* options (is there momentum? AMSGrad? where does weight
decay sit?) and returns a `Rule`. Numeric hyperparameters (lr, betas, eps, ...) are read
from the param group at each step, so schedulers can move them. Recipes are cached, so an
optimizer asks for its chain on every step at the cost of a dict lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import wraps
from typing import Any, TypeVar

from .backends.fused import FusedKernel
from .rules import (
    Rule,
    add_decayed_weights,
    add_fixed_decay,
    chain,
    clip_by_global_norm,
    ema_momentum,
    heavy_ball,
    polyak_average,
    scale_by_adadelta,
    scale_by_adafactor,
    scale_by_adagrad,
    scale_by_adam,
    scale_by_adam_second_moment,
    scale_by_adamax,
    scale_by_ademamix,
    scale_by_asgd,
    scale_by_inverse_time,
    scale_by_lamb_moments,
    scale_by_lamb_trust_ratio,
    scale_by_lars_trust_ratio,
    scale_by_learning_rate,
    scale_by_lion,
    scale_by_muon,
    scale_by_nadam,
    scale_by_prodigy,
    scale_by_radam,
    scale_by_rms,
    scale_by_rprop,
    scale_by_soap,
    schedule_free,
)
from .rules import lbfgs as lbfgs_rule

F = TypeVar("F", bound=Callable[..., Rule])


def cache(fn: F) -> F:
    """Memoize a recipe by its arguments. A plain dict rather than functools.cache: when
    torch.compile traces an optimizer's step, dynamo looks the rule up in the dict instead
    of warning about, and tracing through, an lru_cache wrapper."""
    table: dict[Any, Rule] = {}

    @wraps(fn)
    def recipe(*args: Any, **kwargs: Any) -> Rule:
        key = (args, tuple(kwargs.items()))  # a recipe is called with its keywords in one order
        rule = table.get(key)
        if rule is None:
            rule = table[key] = fn(*args, **kwargs)
        return rule

    return recipe  # type: ignore[return-value]


def _coupled(weight_decay: bool) -> Rule | None:
    return add_decayed_weights() if weight_decay else None


@cache
def sgd(momentum: bool = False, nesterov: bool = False, weight_decay: bool = False) -> Rule:
    """torch.optim.SGD: [L2] -> [heavy-ball momentum] -> lr."""
    rule = chain(
        _coupled(weight_decay),
        heavy_ball(nesterov) if momentum else None,
        scale_by_learning_rate(),
    )
    return replace(rule, fused=FusedKernel("sgd"))


@cache
def momentum(nesterov: bool = False, weight_decay: bool = False) -> Rule:
    """EMA momentum: [L2] -> v = beta v + (1 - beta) g -> lr."""
    return chain(_coupled(weight_decay), ema_momentum(nesterov), scale_by_learning_rate())


@cache
def adagrad(initial_accumulator_value: float = 0.0, lr_decay: bool = False,
            weight_decay: bool = False) -> Rule:
    """torch.optim.Adagrad: [L2] -> AdaGrad -> [inverse-time lr decay] -> lr."""
    rule = chain(
        _coupled(weight_decay),
        scale_by_adagrad(initial_accumulator_value),
        scale_by_inverse_time() if lr_decay else None,
        scale_by_learning_rate(),
    )
    return replace(rule, fused=FusedKernel("adagrad"))


@cache
def rmsprop(centered: bool = False, eps_inside_sqrt: bool = False, momentum: bool = False,
            weight_decay: bool = False) -> Rule:
    """torch.optim.RMSprop: [L2] -> RMS scaling -> [heavy-ball momentum, no dampening] -> lr."""
    return chain(
        _coupled(weight_decay),
        scale_by_rms(centered, eps_inside_sqrt),
        heavy_ball() if momentum else None,
        scale_by_learning_rate(),
    )


@cache
def adam(amsgrad: bool = False, bias_correction: bool = True, weight_decay: bool = False,
         decoupled: bool = False) -> Rule:
    """Adam with coupled L2 (torch.optim.Adam) or decoupled weight decay (AdamW)."""
    rule = chain(
        _coupled(weight_decay and not decoupled),
        scale_by_adam(amsgrad, bias_correction),
        add_decayed_weights() if weight_decay and decoupled else None,
        scale_by_learning_rate(),
    )
    if not bias_correction:  # torch's kernels always correct
        return rule
    kernel = FusedKernel("adamw" if decoupled else "adam", (("amsgrad", amsgrad),))
    return replace(rule, fused=kernel)


@cache
def lion(weight_decay: bool = False) -> Rule:
    """Lion: sign of an interpolated momentum, decoupled weight decay."""
    return chain(
        scale_by_lion(),
        add_decayed_weights() if weight_decay else None,
        scale_by_learning_rate(),
    )


def _decay(weight_decay: bool, decoupled: bool) -> tuple[Rule | None, Rule | None]:
    """(coupled L2 at the head, decoupled decay before the lr): torch's two placements."""
    return (_coupled(weight_decay and not decoupled),
            add_decayed_weights() if weight_decay and decoupled else None)


@cache
def nadam(weight_decay: bool = False, decoupled: bool = False) -> Rule:
    """torch.optim.NAdam: [L2] -> NAdam -> [decoupled decay] -> lr."""
    head, tail = _decay(weight_decay, decoupled)
    return chain(head, scale_by_nadam(), tail, scale_by_learning_rate())


@cache
def radam(weight_decay: bool = False, decoupled: bool = False) -> Rule:
    """torch.optim.RAdam: [L2] -> RAdam -> [decoupled decay] -> lr."""
    head, tail = _decay(weight_decay, decoupled)
    return chain(head, scale_by_radam(), tail, scale_by_learning_rate())


@cache
def adamax(weight_decay: bool = False) -> Rule:
    """torch.optim.Adamax: [L2] -> Adamax -> lr."""
    return chain(_coupled(weight_decay), scale_by_adamax(), scale_by_learning_rate())


@cache
def adadelta(weight_decay: bool = False) -> Rule:
    """torch.optim.Adadelta: [L2] -> Adadelta -> lr."""
    return chain(_coupled(weight_decay), scale_by_adadelta(), scale_by_learning_rate())


@cache
def asgd(weight_decay: bool = False) -> Rule:
    """torch.optim.ASGD: [L2] -> decayed step of size eta -> average of the iterates."""
    return chain(_coupled(weight_decay), scale_by_asgd(), polyak_average())


@cache
def rprop() -> Rule:
    """torch.optim.Rprop: sign-based steps with per-coordinate step sizes."""
    return scale_by_rprop()
@cache
def schedule_free_sgd(weight_decay: bool = False) -> Rule:
    """Schedule-free SGD: [L2 at y] -> schedule-free step (lr inside)."""
    return chain(_coupled(weight_decay), schedule_free())


@cache
def schedule_free_adamw(weight_decay: bool = False, decay_at_z: bool = False) -> Rule:
    """Schedule-free AdamW: Adam's denominator -> [decay at y] -> schedule-free step
    (decay at z inside it with ``decay_at_z``)."""
    return chain(
        scale_by_adam_second_moment(),
        add_decayed_weights() if weight_decay and not decay_at_z else None,
        schedule_free(from_betas=True, decay_at_z=weight_decay and decay_at_z),
    )


@cache
def ademamix(weight_decay: bool = False, decoupled: bool = False, fixed: bool = False) -> Rule:
    """AdEMAMix: [L2] -> AdEMAMix -> [decoupled decay] -> lr -> [fixed decay]."""
    return chain(
        _coupled(weight_decay and not decoupled),
        scale_by_ademamix(),
        add_decayed_weights() if weight_decay and decoupled and not fixed else None,
        scale_by_learning_rate(),
        add_fixed_decay() if weight_decay and decoupled and fixed else None,
    )


@cache
def prodigy(momentum: bool = True, weight_decay: bool = False, decouple: bool = True,
            slice_p: int = 1) -> Rule:
    """Prodigy: [L2] -> Adam with the estimated step size d lr (decoupled decay inside)."""
    return chain(
        _coupled(weight_decay and not decouple),
        scale_by_prodigy(momentum, decouple=weight_decay and decouple, slice_p=slice_p),
    )


@cache
def lbfgs(line_search: bool = False) -> Rule:
    """torch.optim.LBFGS: the closure-driven L-BFGS rule alone (lr and the line search
    are inside it)."""
    return lbfgs_rule(line_search)


# -- rules that reduce over a tensor (they run one tensor at a time on every backend) -----


@cache
def adafactor(weight_decay: bool = False) -> Rule:
    """torch.optim.Adafactor: factored second moment, clipped relative step, [decay]."""
    return scale_by_adafactor(weight_decay)


@cache
def muon(nesterov: bool = True, weight_decay: bool = False) -> Rule:
    """torch.optim.Muon: orthogonalized momentum, scaled by shape and lr, [decayed]."""
    return scale_by_muon(nesterov, weight_decay)


@cache
def lamb(weight_decay: bool = False, weight_decouple: bool = True, fixed_decay: bool = False,
         grad_averaging: bool = True, adam: bool = False, pre_norm: bool = False,
         debias: str = "step") -> Rule:
    """LAMB: [global clipping] -> Adam direction -> [coupled L2] -> trust-ratio step
    (lr, [first-moment correction], [decoupled decay])."""
    return chain(
        clip_by_global_norm() if pre_norm else None,
        scale_by_lamb_moments(grad_averaging, bias_correction=debias == "moments"),
        add_decayed_weights() if weight_decay and not weight_decouple else None,
        scale_by_lamb_trust_ratio(adam=adam, debias_step=debias == "step",
                                  decoupled=weight_decay and weight_decouple,
                                  fixed_decay=fixed_decay),
    )


@cache
def lars(momentum: bool = True, nesterov: bool = False) -> Rule:
    """LARS: layer-wise trust ratio (with L2) -> [heavy-ball momentum from zero] -> lr."""
    return chain(
        scale_by_lars_trust_ratio(),
        heavy_ball(nesterov, copy_first=False) if momentum else None,
        scale_by_learning_rate(),
    )


@cache
def soap(merge_dims: bool = False, max_precondition_dim: int = 10000,
         precondition_1d: bool = False, channels_last: bool = False,
         normalize_gradient: bool = False, correct_bias: bool = True,
         weight_decay: bool = False) -> Rule:
    """SOAP: Adam in the eigenbasis of Shampoo's factors (the rule applies lr and decay)."""
    return scale_by_soap(merge_dims, max_precondition_dim, precondition_1d, channels_last,
                         normalize_gradient, correct_bias, weight_decay)
