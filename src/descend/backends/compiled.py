"""Rules compiled by torch.compile into one kernel per bucket of tensors.

The compiled function is the plain rule maths applied to each tensor of a bucket (the
user's own tensors, passed as lists); inductor fuses each tensor's chain of operations into
one loop. Per-step scalars (lr, betas, bias corrections, ...) enter as persistent 0-D
tensors, so a schedule never triggers a recompile.
"""

from __future__ import annotations

import itertools
import types
import warnings
from numbers import Number
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule
from .common import apply_rule


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


def _apply_each(rule: Rule, params: list[Tensor], grads: list[Tensor],
                state: dict[str, list[Tensor]], ctx: Context, maximize: bool) -> None:
    # A loop over tensors rather than one TensorList: dynamo cannot trace a list object's
    # operators when a 0-D tensor scalar is the other operand.
    for i in range(len(params)):
        apply_rule(rule, params[i], grads[i], {k: v[i] for k, v in state.items()}, ctx,
                   maximize)


_serial = itertools.count()


def _fresh_code(name: str) -> Any:
    """`_apply_each` under a code object of its own. Dynamo caches compiled graphs per code
    object, at most `cache_size_limit` (8) of them: sharing one code object across every
    recipe, dtype and bucket would silently fall back to eager past the eighth."""
    tag = "".join(c if c.isalnum() else "_" for c in name)[:60]
    code = _apply_each.__code__.replace(co_name=f"descend_{tag}_{next(_serial)}")
    return types.FunctionType(code, _apply_each.__globals__, code.co_name)


class CompiledKernels:
    """The compiled kernels and scalar tensors of one optimizer, per bucket signature."""

    def __init__(self) -> None:
        self.kernels: dict[tuple, Any] = {}
        self.scalars: dict[tuple, Scalars] = {}

    def run(self, rule: Rule, params: list[Tensor], grads: list[Tensor],
            state: dict[str, list[Tensor]], ctx: Context, maximize: bool) -> None:
        first = params[0]
        key = (id(rule), first.dtype, first.device, len(params), maximize)
        kernel = self.kernels.get(key)
        if kernel is None:
            # In float16/bfloat16 inductor would compute in float32 and round once; emulating
            # eager's rounding after every operation keeps results within rounding of
            # torch's default (for-loop) implementation and of descend's other backends.
            low = first.dtype in (torch.float16, torch.bfloat16)
            kernel = self.kernels[key] = torch.compile(
                _fresh_code(rule.name), fullgraph=True,
                options={"emulate_precision_casts": True} if low else None)
            self.scalars[key] = Scalars(first)
        kernel(rule, params, grads, state, self.scalars[key].convert(ctx), maximize)

    def clear(self) -> None:
        self.kernels.clear()
        self.scalars.clear()


_available: bool | None = None


def compile_available() -> bool:
    """Whether torch.compile can build kernels here (it needs a C++ compiler on CPU)."""
    global _available
    if _available is None:
        try:
            fn = torch.compile(lambda x: x * 2 + 1, fullgraph=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _available = bool((fn(torch.ones(3)) == 3).all())
        except Exception:
            _available = False
    return _available
