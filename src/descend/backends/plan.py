"""How the parameters of a group split into buckets that share one computation.

A bucket is a set of parameters of one group that can run as one multi-tensor or fused
computation: same kind of storage, dtype and device, same step count and carried scalars
(so one per-step context serves all), and the same freshly created state. Buckets hold the
user's own tensors: nothing here changes where a parameter or gradient lives.

Planning costs a pass over the parameters with dictionary lookups, so a plan is cached per
group and reused while it provably still holds. The checks that run on every step are
cheap and do not touch tensor storage: the group holds the same parameter objects (by
identity), the optimizer's state mapping is the same object (``load_state_dict`` replaces
it) and nothing was assigned into it since (its ``version``, see
`descend.optim.base.StateMap`), every parameter has a gradient, and each gradient's dtype
is the bucket's (a model cast with ``.half()`` or ``.to(float64)`` re-plans and converts
the state). Everything a
kernel reads (gradients, state tensors, real views, DTensor shards) is fetched again at
every step, never cached, so a replaced ``.data``, ``.grad`` or state tensor is always
the one computed on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import MutableMapping, Sequence
from itertools import repeat
from operator import attrgetter, is_, methodcaller
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Rule, State
from .common import ensure_state

PLAIN_TYPES = (Tensor, torch.nn.Parameter)
_grad = attrgetter("grad")


def kind_of(p: Tensor) -> str:
    """How a kernel sees this parameter: ``plain`` tensors as they are, ``complex`` ones
    through their real views, ``local`` (DTensor) through their local shards; any other
    tensor subclass only through its own operators (``subclass``)."""
    if type(p) in PLAIN_TYPES:
        return "complex" if p.is_complex() else "plain"
    if _is_dtensor(p):
        return "local"
    return "subclass"


def _is_dtensor(p: Tensor) -> bool:
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # torch built without distributed
        return False
    return isinstance(p, DTensor)


class Bucket:
    """Parameters that share one context at this step. `params` and `states` are aligned
    lists; `index` gives their positions in the group (None: all of them, in order)."""

    __slots__ = ("params", "states", "index", "kind", "dtype", "device", "step", "fresh",
                 "carry", "route")

    def __init__(self, params: list[Tensor], states: list[State], index: list[int] | None,
                 kind: str, step: int, fresh: frozenset[str], carry: dict[str, Any]) -> None:
        self.params, self.states, self.index = params, states, index
        self.kind = kind
        self.dtype = params[0].dtype
        self.device = params[0].device
        self.step, self.fresh, self.carry = step, fresh, carry
        self.route: str | None = None  # how the executor runs it, decided on first use

    def grads(self, grads: list[Tensor]) -> list[Tensor]:
        return grads if self.index is None else [grads[i] for i in self.index]

    def state_lists(self, keys: Sequence[str]) -> dict[str, list[Tensor]]:
        """Each state key's tensors, aligned with `params`; None where a rule keeps a
        subset of its keys for a parameter (only rules that reduce over a tensor do)."""
        return {key: list(map(methodcaller("get", key), self.states)) for key in keys}

    def advance(self) -> None:
        """Count this step for every parameter of the bucket."""
        step = self.states[0]["step"] + 1
        self.step = step
        for s in self.states:
            s["step"] = step
        self.fresh = frozenset()

    def store_carry(self, values: dict[str, Any]) -> None:
        self.carry = values
        for s in self.states:
            s.update(values)


class Plan:
    __slots__ = ("rule", "states_of", "version", "params", "buckets")

    def __init__(self, rule: Rule, states_of: Any, params: list[Tensor],
                 buckets: list[Bucket]) -> None:
        self.rule, self.states_of, self.params, self.buckets = rule, states_of, params, buckets
        self.version = states_of.version

    def holds(self, rule: Rule, params: list[Tensor], states: Any) -> bool:
        return (rule is self.rule and states is self.states_of
                and states.version == self.version
                and len(params) == len(self.params) and all(map(is_, params, self.params)))


class Planner:
    """Per optimizer: the cached plan of each param group (see the module docstring)."""

    def __init__(self) -> None:
        self.plans: dict[int, Plan] = {}

    def forget(self) -> None:
        self.plans.clear()

    def prepare(self, rule: Rule, group: dict[str, Any], states: Any, gi: int,
                owner: str) -> tuple[Plan | None, list[Tensor | None]]:
        """Validate one group's step without changing anything: the cached plan and the
        gradients when the plan still holds (None otherwise), after refusing sparse
        gradients. Only groups that will be re-planned are scanned for those; a cached plan
        only ever holds parameters whose gradients were dense."""
        params = group["params"]
        plan = self.plans.get(gi)
        grads = list(map(_grad, params))
        if plan is not None and plan.holds(rule, params, states) and _matches(plan.buckets,
                                                                              grads):
            return plan, grads
        for pi, g in enumerate(grads):
            if g is not None and g.layout is not torch.strided:
                raise TypeError(
                    f"{owner}: parameter {pi} of group {gi} has a sparse gradient "
                    f"({g.layout}), which descend does not support; use dense gradients "
                    "(e.g. nn.Embedding(..., sparse=False))")
        return None, grads

    def advance(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
                gi: int, plan: Plan | None, grads: list[Tensor | None]) -> list[Bucket]:
        """Create missing state and count this step for every parameter that has a
        gradient; the buckets to run. `plan` and `grads` come from `prepare`."""
        if plan is None:
            return self._replan(rule, group["params"], grads, states, gi)
        for bucket in plan.buckets:
            bucket.advance()
        return plan.buckets

    def _replan(self, rule: Rule, params: list[Tensor], grads: list[Tensor | None],
                states: MutableMapping[Tensor, State], gi: int) -> list[Bucket]:
        members: dict[tuple, list[int]] = defaultdict(list)
        fresh_of: dict[int, frozenset[str]] = {}
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            state = states[p]
            fresh_of[i] = fresh = ensure_state(rule, state, p)
            _convert_state(rule, state, p)
            carry = tuple(state[name] for name in rule.carry_names)
            if rule.reduction == "group":
                key: tuple = ("group",)
            else:
                key = (kind_of(p), p.dtype, p.device, state["step"], carry, fresh)
            members[key].append(i)
        buckets = []
        for key, index in members.items():
            ps = [params[i] for i in index]
            ss = [states[p] for p in ps]
            for s in ss:
                s["step"] += 1
            whole = len(index) == len(params)
            fresh = frozenset().union(*(fresh_of[i] for i in index))
            carry = {name: ss[0][name] for name in rule.carry_names}
            buckets.append(Bucket(ps, ss, None if whole else index,
                                  "group" if key[0] == "group" else key[0],
                                  ss[0]["step"], fresh, carry))
        if (len(fresh_of) == len(params) and rule.reduction != "group"
                and hasattr(states, "version")):
            self.plans[gi] = Plan(rule, states, list(params), buckets)
        else:
            self.plans.pop(gi, None)
        return buckets


def _matches(buckets: list[Bucket], grads: list[Tensor | None]) -> bool:
    """Every parameter has a gradient, of its bucket's dtype. With one bucket, the dtype of
    the first gradient stands for all: a model cast (``model.half()``) casts every
    parameter, and a partial cast that slipped through fails in the kernel's dtype check."""
    if len(buckets) == 1 and buckets[0].index is None:
        return (not any(map(is_, grads, repeat(None)))
                and grads[0].dtype is buckets[0].dtype)
    for bucket in buckets:
        for i in bucket.index if bucket.index is not None else range(len(grads)):
            g = grads[i]
            if g is None or g.dtype is not bucket.dtype:
                return False
    return True


def _convert_state(rule: Rule, state: State, p: Tensor) -> None:
    """State made for a parameter that has since been cast or moved (``model.half()``,
    ``model.to("cuda")`` after some steps) follows it, as a freshly made state would: torch
    raises a dtype error there instead."""
    target = p if not p.is_complex() else torch.view_as_real(p)
    for key in rule.state:
        value = state.get(key)
        if value is None:  # a key the rule does not keep for this parameter
            continue
        # Every floating-point state follows, whatever its shape (Adafactor's factors,
        # SOAP's preconditioners), as torch's load_state_dict casts state to the parameter.
        if value.is_floating_point() and value.dtype != target.dtype:
            value = state[key] = value.to(target.dtype)
        if value.device != target.device:
            state[key] = value.to(target.device)
