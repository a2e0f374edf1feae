"""The reference backend: a plain loop over tensors, one rule application each.

It is slow on purpose and obviously right: every faster backend is tested against it.
Complex parameters are optimized through their real views (real and imaginary parts as
independent coordinates), as torch.optim does.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule, State

# Keys of a param group that are bookkeeping, not hyperparameters.
NOT_HYPERPARAMETERS = frozenset({"params", "param_names", "schedules"})


def hyperparameters(group: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in group.items() if k not in NOT_HYPERPARAMETERS}


def real_view(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def ensure_state(rule: Rule, state: State, p: Tensor) -> None:
    """Create the state `rule` keeps for `p` where missing (first step, or a rule that a
    hyperparameter change switched on, such as momentum set by a cyclic scheduler)."""
    if "step" not in state:
        state["step"] = 0
    if any(key not in state for key in rule.state):
        for key, value in rule.init(real_view(p)).items():
            state.setdefault(key, value)


def step(rule: Rule, group: dict[str, Any], params: Sequence[Tensor],
         states: MutableMapping[Tensor, State]) -> None:
    """Apply `rule` once to every parameter in `params` (all have a gradient)."""
    hyper = hyperparameters(group)
    maximize = hyper.get("maximize", False)
    for p in params:
        state = states[p]
        ensure_state(rule, state, p)
        state["step"] += 1
        ctx = Context(hyper, step=state["step"])
        if rule.prepare is not None:
            ctx.update(rule.prepare(ctx))
        g = real_view(p.grad)
        if maximize:
            g = -g
        pv = real_view(p)
        update, new_state = rule.update(g, {k: state[k] for k in rule.state}, pv, ctx)
        for key, value in new_state.items():
            state[key].copy_(value)
        pv.add_(update)
