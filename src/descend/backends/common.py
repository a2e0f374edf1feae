"""Bookkeeping shared by the backends: state creation, step counts, per-step contexts."""

from __future__ import annotations

from collections import defaultdict
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


def apply_rule(rule: Rule, param: Any, grad: Any, state: dict[str, Any], ctx: Context,
               maximize: bool) -> None:
    """The one place a rule's result is written: ``p <- p + update`` and the new state
    copied into the stored tensors. `param`, `grad` and the state are tensors (reference,
    flat, compiled) or `TensorList`s (foreach, chunked flat)."""
    g = -grad if maximize else grad
    update, new_state = rule.update(g, state, param, ctx)
    for key, value in new_state.items():
        state[key].copy_(value)
    param.add_(update)


def context(rule: Rule, hyper: dict[str, Any], step: int) -> Context:
    ctx = Context(hyper, step=step)
    if rule.prepare is not None:
        ctx.update(rule.prepare(ctx))
    return ctx


def advance(rule: Rule, params: Sequence[Tensor],
            states: MutableMapping[Tensor, State]) -> dict[tuple, list[Tensor]]:
    """Create missing state, count this step for every parameter, and bucket the
    parameters by (step, dtype, device): each bucket shares one context and can run as one
    multi-tensor or flat computation."""
    buckets: dict[tuple, list[Tensor]] = defaultdict(list)
    for p in params:
        state = states[p]
        ensure_state(rule, state, p)
        state["step"] += 1
        buckets[state["step"], real_view(p).dtype, p.device].append(p)
    return buckets
