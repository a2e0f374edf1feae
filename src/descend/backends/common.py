"""Bookkeeping shared by the backends: state creation, per-step contexts, applying a rule."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule, State


def real_view(t: Tensor) -> Tensor:
    return torch.view_as_real(t) if t.is_complex() else t


def ensure_state(rule: Rule, state: State, p: Tensor) -> frozenset[str]:
    """Create the state `rule` keeps for `p` where missing, and return the tensor keys
    created now (``ctx.fresh``). Missing means absent or None (torch saves
    ``momentum_buffer: None`` for SGD without momentum): the first step, a state dict from
    another optimizer, or a rule that a hyperparameter change switched on (momentum set by
    a cyclic scheduler)."""
    step = state.get("step")
    if step is None:
        state["step"] = 0
    elif isinstance(step, Tensor):  # restored by a tool that bypassed load_state_dict (ZeRO)
        state["step"] = int(step.item())
    for name, initial in rule.carry if rule.reduction != "group" else ():
        value = state.get(name)
        if value is None:
            state[name] = initial
        elif isinstance(value, Tensor):
            state[name] = float(value.item())
    missing = [key for key in rule.state if state.get(key) is None]
    if not missing:
        return frozenset()
    # A rule may keep a subset of its declared keys for a given parameter (Adafactor:
    # row and column factors for a matrix, one variance for a vector): what `init` does not
    # create for `p` stays absent.
    created = rule.init(real_view(p))
    missing = [key for key in missing if key in created]
    for key in missing:
        state[key] = created[key]
    return frozenset(missing)


def apply_rule(rule: Rule, param: Any, grad: Any, state: dict[str, Any], ctx: Context,
               maximize: bool) -> None:
    """The one place a rule's result is written: ``p <- p + update`` and the new state
    copied into the stored tensors. `param`, `grad` and the state are tensors (reference,
    compiled) or `TensorList`s (foreach, group rules). A group rule may also return new
    values of its carried scalars (computed from sums over the group); they go into `ctx`,
    from where the executor stores them in the param group."""
    g = -grad if maximize else grad
    update, new_state = rule.update(g, state, param, ctx)
    for key, value in new_state.items():
        if key in state:
            if value is not state[key]:  # else the rule wrote it in place (rules.ops *_into)
                state[key].copy_(value)
        elif rule.reduction == "group" and key in rule.carry_names:
            ctx.update({key: value})
        else:
            raise KeyError(f"rule {rule.name!r} returned {key!r}, which is neither one of its "
                           "state keys nor (for a group rule) a carried scalar")
    param.add_(update)


_checked: set[int] = set()


def context(rule: Rule, group: Mapping[str, Any], step: int,
            fresh: frozenset[str] = frozenset(), carry: Mapping[str, Any] = ()) -> Context:
    """The context of one step: the group's values (hyperparameters, and bookkeeping that no
    rule reads), ``step``, ``fresh``, the carried scalars' previous values, then whatever
    `prepare` computes from them (new carried values included). A tensor hyperparameter
    (torch's tensor ``lr``) is read as a number at this step."""
    ctx = Context(group, step=step, fresh=fresh)
    values = ctx.__dict__
    for key, value in values.items():
        if type(value) is Tensor:
            values[key] = value.item()
    if carry:
        values.update(carry)
    if rule.prepare is not None:
        scalars = rule.prepare(ctx)
        if id(rule) not in _checked:
            _check_declared(rule, scalars)
            _checked.add(id(rule))
        values.update(scalars)
    return ctx


def _check_declared(rule: Rule, scalars: Mapping[str, Any]) -> None:
    undeclared = set(scalars) - set(rule.provides) - set(rule.carry_names)
    if undeclared:
        raise ValueError(f"rule {rule.name!r}: prepare returned {sorted(undeclared)}, which it "
                         "does not declare in `provides` or `carry`")
