"""How a rule runs: execution backends. They decide HOW, never WHAT is computed.

Every backend computes on the user's own tensors: parameters, gradients and state stay
where they are, owned by whoever made them (the model, DDP's gradient buckets, ZeRO's
parameter buckets, FSDP's shards). A group's parameters are split into buckets that share
one per-step context (`descend.backends.plan`); a bucket then runs as

- ``reference``: a plain loop over tensors, one rule application each: the ground truth;
- ``foreach``: the same rule on lists of tensors (`TensorList`), one multi-tensor
  (``torch._foreach_*``) kernel per operation;
- ``fused``: torch's hand-written fused kernel where the recipe is exactly one (Adam, AdamW,
  SGD, Adagrad in float32/float64), else a kernel compiled by torch.compile;
- ``compiled``: the rule compiled by torch.compile into one kernel per bucket;
- ``auto`` (default): torch's fused kernel where the recipe is exactly one, else foreach.

Whatever the backend: rules that reduce over a tensor run one tensor at a time; rules that
reduce over a group see the whole group; tensor subclasses other than DTensor run through
their own operators, one tensor at a time; DTensor parameters of elementwise rules run on
their local shards; and while torch.compile traces a step, the plain per-tensor maths runs
(no eager-only kernels enter the graph). Every backend is tested against the reference.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule, State
from . import fused
from .common import apply_rule, context, hyperparameters, real_view
from .compiled import CompiledKernels, compile_available
from .plan import Bucket, Planner
from .tensorlist import TensorList

BACKENDS = ("auto", "reference", "foreach", "fused", "compiled")


class Executor:
    """Runs an optimizer's rules on one backend. One instance per optimizer."""

    def __init__(self, name: str = "auto") -> None:
        if name not in BACKENDS:
            allowed = ", ".join(repr(n) for n in BACKENDS)
            raise ValueError(f"unknown backend {name!r}; allowed: {allowed}")
        self.name = name
        self.planner = Planner()
        self.compiled = CompiledKernels()
        self._steps: dict[torch.device, Tensor] = {}

    def __repr__(self) -> str:
        return f"Executor({self.name!r})"

    def forget(self) -> None:
        """Drop cached plans and kernels (after the optimizer's state was replaced)."""
        self.planner.forget()

    def check(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
              group_index: int, owner: str) -> None:
        """Raise, before anything is written, if this group's step cannot run."""
        self.planner.check(rule, group, states, group_index, owner)

    def step(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
             group_index: int = 0) -> None:
        """Apply `rule` once to every parameter of `group` that has a gradient."""
        hyper = hyperparameters(group)
        maximize = bool(hyper.get("maximize", False))
        buckets, grads = self.planner.advance(rule, group, states, group_index)
        for bucket in buckets:
            ctx = context(rule, hyper, bucket.step, bucket.fresh, bucket.carry)
            self._run(rule, bucket, bucket.grads(grads), ctx, maximize)
            if rule.carry:
                bucket.store_carry({name: ctx.get(name) for name in rule.carry_names})

    def _run(self, rule: Rule, bucket: Bucket, grads: list[Tensor], ctx: Context,
             maximize: bool) -> None:
        keys = rule.state
        if bucket.kind == "group":
            apply_rule(rule, TensorList(map(real_view, bucket.params)),
                       TensorList(map(real_view, grads)),
                       {k: TensorList(v) for k, v in bucket.state_lists(keys).items()},
                       ctx, maximize)
            return
        views = None
        if rule.elementwise and not torch.compiler.is_compiling():
            views = _views(bucket, grads, keys)
        if views is None or self.name == "reference":
            params, grads, states = views or (
                list(map(real_view, bucket.params)), list(map(real_view, grads)),
                bucket.state_lists(keys))
            for i in range(len(params)):
                apply_rule(rule, params[i], grads[i], {k: v[i] for k, v in states.items()},
                           ctx, maximize)
            return
        params, grads, states = views
        if self.name in ("auto", "fused") and fused.supports(rule.fused, params[0].dtype,
                                                             params[0].device):
            fused.run(rule.fused, params, grads, states, ctx, self._step_tensor(
                params[0].device, bucket.step), maximize)
        elif self.name in ("fused", "compiled"):
            if not compile_available():
                raise RuntimeError(
                    f"backend {self.name!r} needs torch.compile, which cannot build kernels "
                    "here (on CPU it needs a C++ compiler); use backend='foreach' or 'auto'")
            self.compiled.run(rule, params, grads, states, ctx, maximize)
        else:
            apply_rule(rule, TensorList(params), TensorList(grads),
                       {k: TensorList(v) for k, v in states.items()}, ctx, maximize)

    def _step_tensor(self, device: torch.device, step: int) -> Tensor:
        t = self._steps.get(device)
        if t is None:
            t = self._steps[device] = torch.zeros((), dtype=torch.float32, device=device)
        t.fill_(step)
        return t


def _views(bucket: Bucket, grads: list[Tensor], keys: tuple[str, ...]):
    """What an elementwise kernel computes on: the tensors themselves, their real views
    (complex), or their local shards (DTensor, when gradient and state are sharded like
    the parameter). None where the bucket can only run through the tensors' own operators."""
    states = bucket.state_lists(keys)
    if bucket.kind == "plain":
        return bucket.params, grads, states
    if bucket.kind == "complex":
        return (list(map(real_view, bucket.params)), list(map(real_view, grads)), states)
    if bucket.kind == "local":
        tensors = [bucket.params, grads, *states.values()]
        layout = (bucket.params[0].device_mesh, bucket.params[0].placements)
        for i, p in enumerate(bucket.params):
            for ts in tensors[1:]:
                t = ts[i]
                if type(t) is not type(p) or (t.device_mesh, t.placements) != (
                        p.device_mesh, p.placements):
                    return None
            if (p.device_mesh, p.placements) != layout:
                return None
        local = [[t._local_tensor for t in ts] for ts in tensors]
        return local[0], local[1], dict(zip(states, local[2:]))
    return None


def make_backend(name: str) -> Executor:
    return Executor(name)


__all__ = ["BACKENDS", "Executor", "TensorList", "compile_available", "make_backend"]
