"""The flat backend: one contiguous buffer per (param group, dtype, device).

Parameters, gradients and every state tensor of a bucket live in one flat buffer each.
Parameters and gradients become views into them (so memory is not doubled), and the whole
rule runs once over each buffer: a handful of large kernels instead of a handful per
tensor. With ``compiled=True`` the rule's maths is compiled by torch.compile into one fused
kernel per bucket; per-step scalars (lr, betas, bias corrections, ...) enter as 0-D tensors,
so a schedule never triggers a recompile.

Gradients. Backward accumulates into the flat gradient buffer, because each `p.grad` is a
view of it; `zero_grad` zeroes the buffer in one pass (it does not set `.grad` to None). A
post-accumulate-grad hook records which parameters received a gradient since the last
`zero_grad`: a parameter that received none is skipped, as torch skips a None gradient.
If user code replaces `.grad` (``p.grad = None`` then backward, or assigns a tensor), the
step copies it into the buffer: correct, only slower.

The flat path needs an elementwise rule (`Rule.elementwise`) and real floating-point
parameters whose step counts agree; otherwise that bucket runs on the reference loop.
Without compiling, a recipe that one of torch's fused kernels implements exactly (Adam,
AdamW, SGD, Adagrad: `Rule.fused`) runs that kernel once over the flat buffer.
"""

from __future__ import annotations

import itertools
import types
import warnings
from collections.abc import MutableMapping, Sequence
from numbers import Number
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule, State
from . import fused, reference
from .common import apply_rule, context, ensure_state, hyperparameters
from .tensorlist import TensorList


class Bucket:
    """Flat storage for the parameters of one (group, dtype, device).

    The hot path checks that nothing moved with one list comprehension of data pointers
    per buffer against pointers computed once, instead of a per-parameter method call.
    """

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
        self.ids = [id(p) for p in self.params]
        self.shapes = [p.shape for p in self.params]
        self.offsets = []
        total = 0
        for p in self.params:
            self.offsets.append(total)
            total += p.numel()
        first = self.params[0]
        # Gradients present now were accumulated before the hooks existed.
        self.received = {i for i, p in enumerate(self.params) if p.grad is not None}
        with torch.no_grad():
            self.param = torch.empty(total, dtype=first.dtype, device=first.device)
            self.grad = torch.zeros_like(self.param)
            for i, p in enumerate(self.params):
                view = self.view(self.param, i)
                view.copy_(p)
                p.data = view
                if p.grad is not None:
                    self.view(self.grad, i).copy_(p.grad)
                p.grad = self.view(self.grad, i)
        self.param_ptrs = self.pointers(self.param)
        self.grad_ptrs = self.pointers(self.grad)
        self.state: dict[str, Tensor] = {}
        self.state_ptrs: dict[str, list[int]] = {}
        self.states_of: Any = None       # the optimizer's state mapping we synced with
        self.state_dicts: list[State] = []
        self.hooks = [p.register_post_accumulate_grad_hook(self._mark(i))
                      for i, p in enumerate(self.params)]

    def _mark(self, i: int) -> Any:
        def hook(p: Tensor) -> None:
            self.received.add(i)
        return hook

    def pointers(self, flat: Tensor) -> list[int]:
        base, size = flat.data_ptr(), flat.element_size()
        return [base + off * size for off in self.offsets]

    def view(self, flat: Tensor, i: int) -> Tensor:
        n = self.shapes[i].numel()
        return flat[self.offsets[i]:self.offsets[i] + n].view(self.shapes[i])

    def intact(self, params: Sequence[Tensor]) -> bool:
        """Still the same parameters, still views of the buffer (not moved or cast)."""
        return ([id(p) for p in params] == self.ids
                and [p.data_ptr() for p in params] == self.param_ptrs)

    def close(self) -> None:
        for handle in self.hooks:
            handle.remove()

    def gradients(self) -> list[bool]:
        """Which parameters have a gradient for this step. Gradients that user code put
        outside the buffer are copied in, and `.grad` points at the buffer again."""
        ptrs = [0 if p.grad is None else p.grad.data_ptr() for p in self.params]
        if ptrs == self.grad_ptrs:
            if len(self.received) == len(self.params):
                return [True] * len(self.params)
            return [i in self.received for i in range(len(self.params))]
        have = []
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if ptrs[i] == self.grad_ptrs[i] and p.grad.shape == self.shapes[i]:
                    have.append(i in self.received)
                    continue
                view = self.view(self.grad, i)
                if p.grad is None:
                    view.zero_()
                    have.append(False)
                else:
                    view.copy_(p.grad)
                    have.append(True)
                p.grad = view
        return have

    def zero_grad(self) -> None:
        with torch.no_grad():
            self.grad.zero_()
            if [0 if p.grad is None else p.grad.data_ptr() for p in self.params] != \
                    self.grad_ptrs:
                for i, p in enumerate(self.params):
                    p.grad = self.view(self.grad, i)
        self.received.clear()

    def sync_state(self, rule: Rule, states: MutableMapping[Tensor, State]) -> None:
        """Make every state tensor of the rule a view of a flat buffer: after creation, a
        `load_state_dict` (which replaces the optimizer's state mapping), or a rule gaining
        state (momentum switched on)."""
        if states is self.states_of and all(k in self.state for k in rule.state):
            return
        for p in self.params:
            ensure_state(rule, states[p], p)
        self.state_dicts = [states[p] for p in self.params]
        for key in rule.state:
            flat = self.state.get(key)
            if (flat is None or states is not self.states_of or
                    [d[key].data_ptr() for d in self.state_dicts] != self.state_ptrs[key]):
                flat = torch.cat([d[key].reshape(-1).to(self.param.dtype)
                                  for d in self.state_dicts])
                self.state[key] = flat
                self.state_ptrs[key] = self.pointers(flat)
                for i, d in enumerate(self.state_dicts):
                    d[key] = self.view(flat, i)
        self.states_of = states


class Scalars:
    """Per-step scalars as persistent 0-D tensors, refilled only when a value changes.

    torch.compile then treats them as inputs rather than constants, so a new lr or beta
    never recompiles; reusing the tensors keeps the per-step cost to a few `fill_` calls.
    """

    def __init__(self, like: Tensor) -> None:
        self.dtype = torch.float64 if like.dtype == torch.float64 else torch.float32
        self.device = like.device
        self.values: dict[tuple, float] = {}
        self.tensors: dict[tuple, Tensor] = {}

    def _tensor(self, key: tuple, value: float) -> Tensor:
        t = self.tensors.get(key)
        if t is None:
            t = self.tensors[key] = torch.tensor(value, dtype=self.dtype, device=self.device)
            self.values[key] = value
        elif self.values[key] != value:
            t.fill_(value)
            self.values[key] = value
        return t

    def convert(self, ctx: Context) -> Context:
        out = {}
        for name, value in ctx.items():
            if isinstance(value, tuple):
                out[name] = tuple(self._one((name, i), v) for i, v in enumerate(value))
            else:
                out[name] = self._one((name,), value)
        return Context(out)

    def _one(self, key: tuple, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, Number):
            return value
        return self._tensor(key, float(value))


_serial = itertools.count()


def _fresh_apply(name: str) -> Any:
    """`apply_rule` under a code object of its own. Dynamo caches compiled graphs per code
    object, at most `cache_size_limit` (8) of them: sharing one code object across every
    recipe, dtype and buffer size would silently fall back to eager past the eighth."""
    tag = "".join(c if c.isalnum() else "_" for c in name)[:60]
    code = apply_rule.__code__.replace(co_name=f"descend_{tag}_{next(_serial)}")
    return types.FunctionType(code, apply_rule.__globals__, code.co_name)


# The eager flat path runs over chunks of this many elements: temporaries of a whole 50M
# buffer are fresh mmaps whose page faults cost more than the maths (measured: 1.7 s per
# Adam step on 50M parameters, against 0.2 s for torch's foreach).
CHUNK = 1 << 16


def _chunks(flat: Tensor) -> TensorList:
    return TensorList(flat.split(CHUNK))


class FlatBackend:
    """See the module docstring. One instance per optimizer."""

    def __init__(self, compiled: bool = False) -> None:
        self.compiled = compiled
        self.name = "compiled" if compiled else "flat"
        self.buckets: dict[tuple, Bucket] = {}
        self.kernels: dict[tuple, Any] = {}
        self.scalars: dict[tuple, Scalars] = {}
        self.step_tensors: dict[tuple, Tensor] = {}
        self._owned: set[int] = set()  # ids of parameters held in buckets
        self._members: dict[int, tuple[tuple[int, ...], dict, list[Tensor]]] = {}

    def _split(self, group: dict[str, Any], gi: int) -> tuple[dict, list[Tensor]]:
        """The group's parameters by (group, dtype, device) bucket, and those that stay
        out of buckets (complex, frozen), cached while the group's parameters are the same."""
        ids = tuple(map(id, group["params"]))
        cached = self._members.get(gi)
        if cached is not None and cached[0] == ids:
            return cached[1], cached[2]
        members: dict[tuple, list[Tensor]] = {}
        others = []
        for p in group["params"]:
            # Frozen parameters never get gradients (nor hooks): they stay out of buckets.
            if p.is_floating_point() and p.requires_grad:
                members.setdefault((gi, p.dtype, p.device), []).append(p)
            else:
                others.append(p)
        self._members[gi] = (ids, members, others)
        return members, others

    def _bucket(self, key: tuple, params: list[Tensor]) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is None or not bucket.intact(params):
            if bucket is not None:
                bucket.close()
            bucket = self.buckets[key] = Bucket(params)
            self.scalars.pop(key, None)
            self._owned = {i for b in self.buckets.values() for i in b.ids}
        return bucket

    def _kernel(self, rule: Rule, bucket: Bucket, maximize: bool) -> Any:
        if not self.compiled:
            return apply_rule
        key = (id(rule), bucket.param.dtype, bucket.param.device, maximize)
        kernel = self.kernels.get(key)
        if kernel is None:
            kernel = self.kernels[key] = torch.compile(_fresh_apply(rule.name), fullgraph=True)
        return kernel

    def step(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
             group_index: int = 0) -> None:
        if not rule.elementwise:
            reference.step(rule, group, states)
            return
        members, others = self._split(group, group_index)
        hyper = hyperparameters(group)
        maximize = bool(hyper.get("maximize", False))
        for key, ps in members.items():
            bucket = self._bucket(key, ps)
            have = bucket.gradients()
            if not any(have):
                continue
            if not all(have) or (bucket.states_of is not states and
                                 len({states.get(p, {}).get("step", 0) for p in ps}) > 1):
                # Like torch, a parameter without a gradient is not stepped (and gets no
                # state); the others go through the reference loop this time.
                reference.step(rule, group, states, [p for p, h in zip(ps, have) if h])
                bucket.states_of = None
                continue
            bucket.sync_state(rule, states)
            step = bucket.state_dicts[0]["step"] + 1
            for d in bucket.state_dicts:
                d["step"] = step
            ctx = context(rule, hyper, step)
            if self.compiled:
                if key not in self.scalars:
                    self.scalars[key] = Scalars(bucket.param)
                ctx = self.scalars[key].convert(ctx)
            with torch.no_grad():
                if self.compiled:
                    self._kernel(rule, bucket, maximize)(
                        rule, bucket.param, bucket.grad,
                        {k: bucket.state[k] for k in rule.state}, ctx, maximize)
                elif fused.supports(rule.fused, bucket.param):
                    step_t = self.step_tensors.get(key)
                    if step_t is None:
                        step_t = self.step_tensors[key] = torch.zeros(
                            (), dtype=torch.float32, device=bucket.param.device)
                    step_t.fill_(step)
                    fused.run(rule.fused, bucket.param, bucket.grad, bucket.state, ctx,
                              step_t, maximize)
                else:
                    apply_rule(rule, _chunks(bucket.param), _chunks(bucket.grad),
                           {k: _chunks(bucket.state[k]) for k in rule.state}, ctx, maximize)
        leftovers = [p for p in others if p.grad is not None]
        if leftovers:
            reference.step(rule, group, states, leftovers)

    def owned(self) -> set[int]:
        return self._owned

    def zero_grad(self) -> None:
        for bucket in self.buckets.values():
            bucket.zero_grad()

    def close(self) -> None:
        for bucket in self.buckets.values():
            bucket.close()
        self.buckets.clear()
        self._owned = set()


def compile_available() -> bool:
    """Whether torch.compile can build kernels here (it needs a C++ compiler on CPU)."""
    try:
        fn = torch.compile(lambda x: x * 2 + 1, fullgraph=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool((fn(torch.ones(3)) == 3).all())
    except Exception:
        return False
