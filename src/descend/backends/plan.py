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
from . import precision
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
                 "carry", "route", "formats", "low")

    def __init__(self, params: list[Tensor], states: list[State], index: list[int] | None,
                 kind: str, step: int, fresh: frozenset[str], carry: dict[str, Any]) -> None:
        self.params, self.states, self.index = params, states, index
        self.kind = kind
        self.dtype = params[0].dtype
        self.device = params[0].device
        self.step, self.fresh, self.carry = step, fresh, carry
        self.route: str | None = None  # how the executor runs it, decided on first use
        self.formats: tuple[str, ...] = ()  # how each state key is stored (precision.py)
        self.low = False  # some state stored below the parameter's precision

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
    __slots__ = ("rule", "states_of", "version", "params", "buckets", "precision")

    def __init__(self, rule: Rule, states_of: Any, params: list[Tensor],
                 buckets: list[Bucket], group: dict[str, Any]) -> None:
        self.rule, self.states_of, self.params, self.buckets = rule, states_of, params, buckets
        self.version = states_of.version
        self.precision = _precision(group)

    def holds(self, rule: Rule, group: dict[str, Any], states: Any) -> bool:
        params = group["params"]
        return (rule is self.rule and states is self.states_of
                and states.version == self.version and _precision(group) == self.precision
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
        if plan is not None and plan.holds(rule, group, states) and _matches(plan.buckets,
                                                                             grads):
            return plan, grads
        for pi, g in enumerate(grads):
            if g is not None and g.layout is not torch.strided:
                raise TypeError(
                    f"{owner}: parameter {pi} of group {gi} has a sparse gradient "
                    f"({g.layout}), which descend does not support (descend has no "
                    "SparseAdam); use dense gradients (e.g. nn.Embedding(..., "
                    "sparse=False)), or give the sparse parameters to torch.optim.SparseAdam "
                    "and the others to descend")
        return None, grads

    def advance(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
                gi: int, plan: Plan | None, grads: list[Tensor | None]) -> list[Bucket]:
        """Create missing state and count this step for every parameter that has a
        gradient; the buckets to run. `plan` and `grads` come from `prepare`."""
        if plan is None:
            return self._replan(rule, group, grads, states, gi)
        for bucket in plan.buckets:
            bucket.advance()
        return plan.buckets

    def _replan(self, rule: Rule, group: dict[str, Any], grads: list[Tensor | None],
                states: MutableMapping[Tensor, State], gi: int) -> list[Bucket]:
        params = group["params"]
        members: dict[tuple, list[int]] = defaultdict(list)
        fresh_of: dict[int, frozenset[str]] = {}
        for i, (p, g) in enumerate(zip(params, grads)):
            if g is None:
                continue
            state = states[p]
            fresh_of[i] = fresh = ensure_state(rule, state, p)
            formats = _convert_state(rule, state, p, group)
            if rule.reduction == "group":
                key: tuple = ("group", formats)
            else:
                carry = tuple(state[name] for name in rule.carry_names)
                key = (kind_of(p), p.dtype, p.device, state["step"], carry, fresh, formats)
            members[key].append(i)
        buckets = []
        for key, index in members.items():
            ps = [params[i] for i in index]
            ss = [states[p] for p in ps]
            for s in ss:
                s["step"] += 1
            whole = len(index) == len(params)
            fresh = frozenset().union(*(fresh_of[i] for i in index))
            carry = ({name: ss[0][name] for name in rule.carry_names}
                     if key[0] != "group" else {})  # a group rule's: in the group
            bucket = Bucket(ps, ss, None if whole else index,
                            "group" if key[0] == "group" else key[0],
                            ss[0]["step"], fresh, carry)
            bucket.formats = key[-1]
            bucket.low = any(f != "param" for f in bucket.formats)
            buckets.append(bucket)
        if len(fresh_of) == len(params) and hasattr(states, "version"):
            self.plans[gi] = Plan(rule, states, list(params), buckets, group)
        else:
            self.plans.pop(gi, None)
        return buckets


def _precision(group: dict[str, Any]) -> tuple:
    return group.get("state_dtype"), group.get("stochastic_rounding", False)


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


def _convert_state(rule: Rule, state: State, p: Tensor, group: dict[str, Any]) -> tuple:
    """Store every state key of `p` as the group asks (``state_dtype``), converting state
    made for another precision (a loaded state dict, a changed ``state_dtype``) or for a
    parameter that has since been cast or moved (``model.half()``, ``.to("cuda")`` after
    some steps: torch raises a dtype error there instead). Returns the formats."""
    target = p if not p.is_complex() else torch.view_as_real(p)
    signs = dict(rule.low_precision)
    state_dtype = group.get("state_dtype")
    formats = []
    for key in rule.state:
        value = state.get(key)
        if value is None:  # a key the rule does not keep for this parameter
            formats.append("param")
            continue
        if value.device != target.device:
            value = state[key] = value.to(target.device)
            if precision.absmax_key(key) in state:
                state[precision.absmax_key(key)] = state[precision.absmax_key(key)].to(
                    target.device)
        fmt = precision.target_format(state_dtype, signs.get(key), target)
        if fmt == "param" and value.shape != target.shape:
            # State of its own shape (Adafactor's factors, SOAP's preconditioners) follows
            # the parameter's dtype too, as torch's load_state_dict casts it.
            if value.is_floating_point() and value.dtype != target.dtype:
                state[key] = value.to(target.dtype)
            formats.append(fmt)
            continue
        if fmt == "param" and value.is_floating_point() and value.dtype != target.dtype \
                and precision.absmax_key(key) not in state:
            state[key] = value.to(target.dtype)
        else:
            precision.convert(state, key, fmt, signs.get(key), target)
        formats.append(fmt)
    return tuple(formats)
