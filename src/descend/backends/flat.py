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
"""

from __future__ import annotations

import warnings
from collections.abc import MutableMapping, Sequence
from numbers import Number
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule, State
from . import reference
from .common import context, ensure_state, hyperparameters


class Bucket:
    """Flat storage for the parameters of one (group, dtype, device)."""

    def __init__(self, params: Sequence[Tensor]) -> None:
        self.params = list(params)
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
        self.state: dict[str, Tensor] = {}
        self.hooks = [p.register_post_accumulate_grad_hook(self._mark(i))
                      for i, p in enumerate(self.params)]

    def _mark(self, i: int) -> Any:
        def hook(p: Tensor) -> None:
            self.received.add(i)
        return hook

    def view(self, flat: Tensor, i: int) -> Tensor:
        n = self.shapes[i].numel()
        return flat[self.offsets[i]:self.offsets[i] + n].view(self.shapes[i])

    def _is_view(self, t: Tensor | None, flat: Tensor, i: int) -> bool:
        return (t is not None and t.data_ptr() == flat.data_ptr()
                + self.offsets[i] * flat.element_size() and t.shape == self.shapes[i])

    def intact(self, params: Sequence[Tensor]) -> bool:
        """Still the same parameters, still views of the buffer (not moved or cast)."""
        return (len(params) == len(self.params)
                and all(p is q for p, q in zip(params, self.params))
                and all(self._is_view(p, self.param, i) for i, p in enumerate(self.params)))

    def close(self) -> None:
        for handle in self.hooks:
            handle.remove()

    def gradients(self) -> list[bool]:
        """Which parameters have a gradient for this step; gradients that user code put
        outside the buffer are copied in (and `.grad` points at the buffer again)."""
        have = []
        with torch.no_grad():
            for i, p in enumerate(self.params):
                if self._is_view(p.grad, self.grad, i):
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
            for i, p in enumerate(self.params):
                if not self._is_view(p.grad, self.grad, i):
                    p.grad = self.view(self.grad, i)
        self.received.clear()

    def sync_state(self, rule: Rule, states: MutableMapping[Tensor, State]) -> None:
        """Make every state tensor of the rule a view of a flat buffer: after creation, a
        `load_state_dict`, or a rule gaining state (momentum switched on)."""
        for p in self.params:
            ensure_state(rule, states[p], p)
        for key in rule.state:
            flat = self.state.get(key)
            if flat is not None and all(self._is_view(states[p][key], flat, i)
                                        for i, p in enumerate(self.params)):
                continue
            flat = torch.cat([states[p][key].reshape(-1).to(self.param.dtype)
                              for p in self.params])
            self.state[key] = flat
            for i, p in enumerate(self.params):
                states[p][key] = self.view(flat, i)


def _scalar_tensors(ctx: Context, like: Tensor) -> Context:
    """Numbers become 0-D tensors: torch.compile then treats them as inputs, not constants,
    and a new lr or beta does not recompile."""
    dtype = torch.float64 if like.dtype == torch.float64 else torch.float32

    def convert(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, Number):
            return value
        return torch.tensor(value, dtype=dtype, device=like.device)

    return Context({k: tuple(map(convert, v)) if isinstance(v, tuple) else convert(v)
                    for k, v in ctx.items()})


def _apply(rule: Rule, param: Tensor, grad: Tensor, state: dict[str, Tensor], ctx: Context,
           maximize: bool) -> None:
    g = -grad if maximize else grad
    update, new_state = rule.update(g, state, param, ctx)
    for key, value in new_state.items():
        state[key].copy_(value)
    param.add_(update)


class FlatBackend:
    """See the module docstring. One instance per optimizer."""

    def __init__(self, compiled: bool = False) -> None:
        self.compiled = compiled
        self.name = "compiled" if compiled else "flat"
        self.buckets: dict[tuple, Bucket] = {}
        self.kernels: dict[tuple, Any] = {}

    def _bucket(self, key: tuple, params: list[Tensor]) -> Bucket:
        bucket = self.buckets.get(key)
        if bucket is None or not bucket.intact(params):
            if bucket is not None:
                bucket.close()
            bucket = self.buckets[key] = Bucket(params)
        return bucket

    def _kernel(self, rule: Rule, bucket: Bucket, maximize: bool) -> Any:
        if not self.compiled:
            return _apply
        key = (id(rule), bucket.param.dtype, bucket.param.device, maximize)
        kernel = self.kernels.get(key)
        if kernel is None:
            kernel = self.kernels[key] = torch.compile(_apply, fullgraph=True)
        return kernel

    def step(self, rule: Rule, group: dict[str, Any], params: Sequence[Tensor],
             states: MutableMapping[Tensor, State], group_index: int = 0) -> None:
        if not rule.elementwise:
            reference.step(rule, group, params, states)
            return
        members: dict[tuple, list[Tensor]] = {}
        for p in group["params"]:
            # Frozen parameters never get gradients (nor hooks): they stay out of buckets.
            if p.is_floating_point() and p.requires_grad:
                members.setdefault((group_index, p.dtype, p.device), []).append(p)
        in_buckets = {id(p) for ps in members.values() for p in ps}
        leftovers = [p for p in params if id(p) not in in_buckets]
        hyper = hyperparameters(group)
        maximize = bool(hyper.get("maximize", False))
        for key, ps in members.items():
            bucket = self._bucket(key, ps)
            have = bucket.gradients()
            stepped = [p for p, h in zip(ps, have) if h]
            if not stepped:
                continue
            steps = {states.get(p, {}).get("step", 0) for p in ps}  # no defaultdict entries
            if len(stepped) < len(ps) or len(steps) > 1:
                # Like torch, a parameter without a gradient is not stepped (and gets no
                # state); the others go through the reference loop this time.
                reference.step(rule, group, stepped, states)
                continue
            bucket.sync_state(rule, states)
            step = steps.pop() + 1
            for p in ps:
                states[p]["step"] = step
            ctx = context(rule, hyper, step)
            if self.compiled:
                ctx = _scalar_tensors(ctx, bucket.param)
            kernel = self._kernel(rule, bucket, maximize)
            with torch.no_grad():
                kernel(rule, bucket.param, bucket.grad,
                       {k: bucket.state[k] for k in rule.state}, ctx, maximize)
        if leftovers:
            reference.step(rule, group, leftovers, states)

    def zero_grad(self) -> None:
        for bucket in self.buckets.values():
            bucket.zero_grad()

    def close(self) -> None:
        for bucket in self.buckets.values():
            bucket.close()
        self.buckets.clear()


def compile_available() -> bool:
    """Whether torch.compile can build kernels here (it needs a C++ compiler on CPU)."""
    try:
        fn = torch.compile(lambda x: x * 2 + 1, fullgraph=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return bool((fn(torch.ones(3)) == 3).all())
    except Exception:
        return False
