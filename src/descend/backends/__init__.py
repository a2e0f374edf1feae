"""How a rule runs: execution backends. They decide HOW, never WHAT is computed.

Every backend computes on the user's own tensors: parameters, gradients and state stay
where they are, owned by whoever made them (the model, DDP's gradient buckets, ZeRO's
parameter buckets, FSDP's shards). A group's parameters are split into buckets that share
one per-step context (`descend.backends.plan`); a bucket then runs as

- ``reference``: a plain loop over tensors, one rule application each: the ground truth;
- ``foreach``: the same rule on lists of tensors (`TensorList`), one multi-tensor
  (``torch._foreach_*``) kernel per operation;
- ``native``: the rule compiled to one C loop per bucket by the system C compiler
  (`descend.backends.native`; float32/float64 on CPU), else foreach;
- ``fused``: torch's hand-written fused kernel where the recipe is exactly one (Adam, AdamW,
  SGD, Adagrad in float32/float64), else a kernel compiled by torch.compile;
- ``compiled``: the rule compiled by torch.compile into one kernel per bucket;
- ``auto`` (default): a native kernel on CPU (float32/float64), else torch's fused kernel
  where the recipe is exactly one (CUDA), else foreach. It never waits for torch.compile,
  and every choice it makes is a function of the setup, not of timing, so a run's numbers
  are the same every time.

Whatever the backend: rules that reduce over a tensor run one tensor at a time; rules that
reduce over a group see the whole group; tensor subclasses other than DTensor run through
their own operators, one tensor at a time; DTensor parameters of elementwise rules run on
their local shards; and while torch.compile traces a step, the plain per-tensor maths runs
(no eager-only kernels enter the graph). Every backend is tested against the reference.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule, State
from . import fused, native, precision
from .common import apply_rule, context, real_view
from .compiled import CompiledKernels, compile_available
from .plan import Bucket, Planner
from .tensorlist import TensorList

BACKENDS = ("auto", "reference", "foreach", "native", "fused", "compiled")


class Executor:
    """Runs an optimizer's rules on one backend. One instance per optimizer."""

    def __init__(self, name: str = "auto") -> None:
        if name not in BACKENDS:
            allowed = ", ".join(repr(n) for n in BACKENDS)
            raise ValueError(f"unknown backend {name!r}; allowed: {allowed}")
        self.name = name
        self.planner = Planner()
        self.compiled = CompiledKernels()
        self.native: dict[tuple, native.Kernel | None] = {}
        self._steps: dict[torch.device, Tensor] = {}

    def __repr__(self) -> str:
        return f"Executor({self.name!r})"

    def forget(self) -> None:
        """Drop cached plans and kernels (after the optimizer's state was replaced)."""
        self.planner.forget()

    def prepare(self, rules: list[Rule], groups: list[dict[str, Any]],
                states: MutableMapping[Tensor, State], owner: str) -> list[tuple]:
        """Validate a step over all groups before anything is written (a refused step
        changes nothing); the result goes to `run`."""
        return [(rule, group, gi, *self.planner.prepare(rule, group, states, gi, owner))
                for gi, (rule, group) in enumerate(zip(rules, groups))]

    def run(self, prepared: list[tuple], states: MutableMapping[Tensor, State],
            closure: Callable[[], Any] | None = None, loss: Any = None) -> None:
        """Apply each group's rule once to every parameter that has a gradient. `closure`
        and the `loss` it returned at this step go to rules that declare ``closure``."""
        for rule, group, gi, plan, grads in prepared:
            maximize = bool(group["maximize"])
            for bucket in self.planner.advance(rule, group, states, gi, plan, grads):
                # A group rule's carried scalars belong to the group: they live in it.
                carry = bucket.carry if bucket.kind != "group" else {
                    name: group.get(name, initial) for name, initial in rule.carry}
                ctx = context(rule, group, bucket.step, bucket.fresh, carry)
                if rule.closure:
                    ctx.update(_closure_context(bucket.params, closure, loss, maximize))
                    _run_closure(rule, bucket, bucket.grads(grads), ctx, maximize,
                                 states[group["params"][0]])
                else:
                    self._run(rule, bucket, bucket.grads(grads), ctx, maximize, group, gi)
                if rule.carry:
                    values = {name: ctx.get(name) for name in rule.carry_names}
                    if bucket.kind == "group":
                        group.update(values)
                    else:
                        bucket.store_carry(values)

    def _route(self, rule: Rule, bucket: Bucket) -> str:
        """How this bucket runs, decided once per plan: "group" (the whole group as lists),
        "each" (one tensor at a time), "native", "torch" (torch's fused kernel),
        "compiled" or "foreach"."""
        if bucket.kind == "group":
            return "group"
        if not rule.elementwise or bucket.kind == "subclass" or self.name == "reference":
            return "each"
        real = torch.view_as_real(bucket.params[0]) if bucket.kind == "complex" else \
            bucket.params[0]
        if self.name in ("auto", "native") and real.device.type == "cpu" and (
                real.dtype in (*native.DTYPES, torch.bfloat16) and native.available()):
            return "native"  # bfloat16 parameters: only with low-precision state (_storage)
        if self.name in ("auto", "fused") and fused.supports(rule.fused, real.dtype,
                                                             real.device):
            return "torch"
        if self.name in ("fused", "compiled"):
            if not compile_available():
                raise RuntimeError(
                    f"backend {self.name!r} needs torch.compile, which cannot build kernels "
                    "here (on CPU it needs a C++ compiler); use backend='foreach' or 'auto'")
            return "compiled"
        return "foreach"

    def _run(self, rule: Rule, bucket: Bucket, grads: list[Tensor], ctx: Context,
             maximize: bool, group: dict[str, Any], gi: int) -> None:
        route = bucket.route
        if route is None:
            route = bucket.route = self._route(rule, bucket)
        keys = rule.state
        if route == "group":
            apply_rule(rule, TensorList(map(real_view, bucket.params)),
                       TensorList(map(real_view, grads)),
                       {k: TensorList(v) for k, v in bucket.state_lists(keys).items()},
                       ctx, maximize)
            return
        views = None
        if rule.elementwise and not torch.compiler.is_compiling():
            views = _views(bucket, grads, keys)
        if views is None:  # only the tensors' own operators (a subclass, or while tracing)
            route = "each"
            views = (list(map(real_view, bucket.params)), list(map(real_view, grads)),
                     bucket.state_lists(keys))
        params, grads, states = views
        if bucket.low or (group.get("stochastic_rounding")
                          and params[0].dtype in precision.LOW_PARAMS):  # True, not None
            rounding = precision.Rounding.of(group, gi, bucket)
            if route == "native" and self._run_native(rule, bucket, params, grads, states,
                                                      ctx, maximize, rounding):
                return
            self._run_decoded(rule, bucket, "foreach" if route == "native" else route,
                              params, grads, ctx, maximize, rounding)
            return
        if route == "native" and self._run_native(rule, bucket, params, grads, states, ctx,
                                                  maximize):
            return
        self._compute(route, rule, bucket, params, grads, states, ctx, maximize)

    def _compute(self, route: str, rule: Rule, bucket: Bucket, params: list[Tensor],
                 grads: list[Tensor], states: dict[str, list[Tensor]], ctx: Context,
                 maximize: bool) -> None:
        if route == "torch":
            fused.run(rule.fused, params, grads, states, ctx,
                      self._step_tensor(params[0].device, bucket.step), maximize)
        elif route == "compiled":
            self.compiled.run(rule, params, grads, states, ctx, maximize)
        elif route in ("foreach", "native"):
            apply_rule(rule, TensorList(params), TensorList(grads),
                       {k: TensorList(v) for k, v in states.items()}, ctx, maximize)
        else:
            for i in range(len(params)):
                apply_rule(rule, params[i], grads[i], {k: v[i] for k, v in states.items()},
                           ctx, maximize)

    def _run_decoded(self, rule: Rule, bucket: Bucket, route: str, params: list[Tensor],
                     grads: list[Tensor], ctx: Context, maximize: bool,
                     rounding: precision.Rounding) -> None:
        """The rule on float copies of low-precision state (and of bfloat16/float16
        parameters when their state or rounding asks for float32 maths), written back in
        the stored formats: correct on every route, at the price of the copies."""
        signs = dict(rule.low_precision)
        upcast = rounding.upcast(bucket.formats, params[0].dtype)
        compute = torch.float32 if upcast else params[0].dtype
        work_params = [p.float() for p in params] if upcast else params
        work_grads = [g.float() for g in grads] if upcast else grads
        # With the maths in float32, state kept in the parameter's dtype is copied too.
        formats = [precision.param_format(params[0]) if fmt == "param" and upcast else fmt
                   for fmt in bucket.formats]
        states = {key: [precision.read(s, key, signs.get(key)).to(compute)
                        if fmt != "param" else s[key] for s in bucket.states]
                  for key, fmt in zip(rule.state, formats)}
        self._compute(route, rule, bucket, work_params, work_grads, states, ctx, maximize)
        for slot, (key, fmt) in enumerate(zip(rule.state, formats)):
            if fmt == "param":
                continue
            for i, s in enumerate(bucket.states):
                precision.write(s, key, states[key][i], fmt, signs.get(key), params[i],
                                rounding.key(i, slot) if fmt == "bfloat16" else None)
        if upcast:
            for i, (p, work) in enumerate(zip(params, work_params)):
                p.copy_(precision.round_to(work, p.dtype, rounding.key(i, precision.PARAM_SLOT)
                                           if rounding.params else None))

    def _run_native(self, rule: Rule, bucket: Bucket, params: list[Tensor],
                    grads: list[Tensor], states: dict[str, list[Tensor]], ctx: Context,
                    maximize: bool, rounding: precision.Rounding | None = None) -> bool:
        """Run the bucket's native kernel; False (nothing written) where it cannot run: a
        rule the kernel cannot express, or tensors it cannot take (sizes, layouts or dtypes
        that differ). Everything non-numeric the maths read is fixed in a traced kernel: the
        kernel is rebuilt when one of those values changes, and ``fresh`` (the first step may
        trace differently) is part of the key."""
        layout = _storage(rule, bucket, params[0].dtype, rounding)
        if layout is None:
            return False
        compute, storage, stochastic = layout
        key = (id(rule), compute, maximize, bucket.fresh, tuple(sorted(ctx.__dict__)),
               tuple(sorted(storage.items())), stochastic)
        kernel = self.native.get(key, False)
        if kernel is False or (kernel is not None and not kernel.valid_for(ctx)):
            try:
                kernel = native.Kernel(native.Traced(rule, ctx, maximize), compute, storage,
                                       stochastic)
            except native.Unsupported:
                kernel = None
            self.native[key] = kernel
        if kernel is None:
            return False
        scales, keys = [], []
        if rounding is not None:
            scales = [[s[precision.absmax_key(k)] for s in bucket.states]
                      for j, k in enumerate(rule.state)
                      if storage.get(f"s{j}", "").startswith("int8")]
            # Noise keys slot-major in slot order: the parameter, then the state slots
            # (gradients are never stored, so never rounded).
            slots = ([precision.PARAM_SLOT] if "p" in stochastic else []) + [
                j for j in range(len(rule.state)) if f"s{j}" in stochastic]
            keys = [rounding.key(i, slot) for slot in slots for i in range(len(params))]
        try:
            kernel([params, grads, *states.values()], ctx, scales, keys)
        except native.Unsupported:
            return False
        return True

    def _step_tensor(self, device: torch.device, step: int) -> Tensor:
        t = self._steps.get(device)
        if t is None:
            t = self._steps[device] = torch.zeros((), dtype=torch.float32, device=device)
        t.fill_(step)
        return t


def _storage(rule: Rule, bucket: Bucket, dtype: torch.dtype,
             rounding: precision.Rounding | None) -> tuple | None:
    """How a native kernel sees a bucket: its compute dtype, the slots stored in another
    format, and the bfloat16 slots rounded stochastically; None where it cannot run."""
    if rounding is None:
        return (dtype, {}, frozenset()) if dtype in native.DTYPES else None
    signs = dict(rule.low_precision)
    if dtype == torch.bfloat16:
        compute = torch.float32
        storage = {"p": "bfloat16", "g": "bfloat16"}
    elif dtype in native.DTYPES:
        compute, storage = dtype, {}
    else:
        return None
    stochastic = {"p"} if rounding.params and dtype == torch.bfloat16 else set()
    for j, (key, fmt) in enumerate(zip(rule.state, bucket.formats)):
        slot = f"s{j}"
        if fmt == "param":
            fmt = "bfloat16" if dtype == torch.bfloat16 else "T"
        if fmt == "int8":
            storage[slot] = f"int8-{signs.get(key, 'signed')}"
        elif fmt == "bfloat16":
            storage[slot] = "bfloat16"
            if rounding.stochastic:
                stochastic.add(slot)
        elif fmt == "float32" and compute == torch.float64:
            storage[slot] = "float"
    return compute, storage, frozenset(stochastic)


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


def _run_closure(rule: Rule, bucket: Bucket, grads: list[Tensor], ctx: Context,
                 maximize: bool, state: State) -> None:
    """A closure-driven rule: the whole group's state is one dict, that of the group's first
    parameter (where torch.optim.LBFGS keeps its own); the rule returns the entries to set."""
    params = TensorList(map(real_view, bucket.params))
    g = TensorList(map(real_view, grads))
    update, changed = rule.update(-g if maximize else g, state, params, ctx)
    state.update(changed)
    params.add_(update)


def _closure_context(params: list[Tensor], closure: Callable[[], Any] | None, loss: Any,
                     maximize: bool) -> dict[str, Any]:
    """``ctx.loss`` (the loss the closure returned at this step, as a float) and
    ``ctx.evaluate(point) -> (loss, grads)``: the loss and gradients with the parameters set
    to `point` (one tensor per parameter, real views for complex ones), computed by the
    closure with gradients enabled; the parameters are put back afterwards, so the rule
    stays a pure function. A missing gradient counts as zeros (torch.optim.LBFGS's
    convention); with ``maximize`` the loss and gradients are negated."""
    if closure is None:  # pragma: no cover - RuleOptimizer.step refuses this first
        raise RuntimeError("a closure-driven rule needs the closure")
    sign = -1.0 if maximize else 1.0
    views = [real_view(p) for p in params]
    start: list[Tensor] = []

    def evaluate(point: Any) -> tuple[float, TensorList]:
        if not start:
            start.extend(v.clone() for v in views)
        for view, value in zip(views, point):
            view.copy_(value)
        try:
            with torch.enable_grad():
                value = _number(closure())
            grads = [real_view(p.grad) if p.grad is not None else torch.zeros_like(v)
                     for p, v in zip(params, views)]
        finally:
            for view, value0 in zip(views, start):
                view.copy_(value0)
        return sign * value, TensorList(g.neg() if maximize else g for g in grads)

    return {"loss": sign * _number(loss), "evaluate": evaluate}


def _number(loss: Any) -> float:
    return float(loss.detach() if isinstance(loss, Tensor) else loss)


def make_backend(name: str) -> Executor:
    return Executor(name)


__all__ = ["BACKENDS", "Executor", "TensorList", "compile_available", "make_backend"]
