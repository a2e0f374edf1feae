"""The reference backend: a plain loop over tensors, one rule application each.

It is slow on purpose and obviously right: every faster backend is tested against it.
Complex parameters are optimized through their real views (real and imaginary parts as
independent coordinates), as torch.optim does.
"""

from __future__ import annotations

from collections.abc import MutableMapping, Sequence
from typing import Any

from torch import Tensor

from ..rules.base import Rule, State
from .common import apply_rule, context, ensure_state, hyperparameters, real_view


def step(rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
         params: Sequence[Tensor] | None = None) -> None:
    """Apply `rule` once to every parameter of `group` that has a gradient (or to
    `params`, a subset that all have one)."""
    if params is None:
        params = [p for p in group["params"] if p.grad is not None]
    hyper = hyperparameters(group)
    maximize = hyper.get("maximize", False)
    for p in params:
        state = states[p]
        ensure_state(rule, state, p)
        state["step"] += 1
        ctx = context(rule, hyper, state["step"])
        apply_rule(rule, real_view(p), real_view(p.grad), {k: state[k] for k in rule.state},
                   ctx, maximize)
