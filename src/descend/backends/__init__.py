"""How a rule runs: execution backends. They decide HOW, never WHAT is computed.

- ``reference``: a plain loop over tensors, the ground truth (`reference.py`).
- ``foreach``: the same rule on lists of tensors, one multi-tensor kernel per operation.
- ``flat``: one contiguous buffer per (group, dtype, device); parameters and gradients
  become views into it; the rule runs once per buffer.
- ``compiled``: the flat layout, with the rule compiled by torch.compile into one kernel.
- ``auto``: ``compiled`` for elementwise rules on large models (at least `COMPILE_MIN`
  parameters in a group) where torch.compile works; ``flat`` for other elementwise rules
  (on small models, where a compile of several seconds cannot pay off, the eager flat path
  measured faster than ``reference`` and ``foreach``: see docs/performance.md);
  ``reference`` for rules that reduce over a tensor.

Every backend is tested against the reference loop. A backend object belongs to one
optimizer: ``step(rule, group, states, group_index)`` applies `rule` to the parameters of
one group that have gradients; ``zero_grad()`` zeroes the flat gradient buffers and
``owned()`` names the parameters held in them (flat layouts).
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from torch import Tensor

from ..rules.base import Rule, State
from . import reference
from .common import advance, apply_rule, context, hyperparameters, real_view
from .flat import FlatBackend, compile_available
from .tensorlist import TensorList

# Below this many parameters in a group, compiling (seconds, once) rarely pays off.
COMPILE_MIN = 1 << 20


class ReferenceBackend:
    name = "reference"

    def step(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
             group_index: int = 0) -> None:
        reference.step(rule, group, states)

    def zero_grad(self) -> None:
        pass

    def owned(self) -> set[int]:
        return set()


class ForeachBackend(ReferenceBackend):
    """The rule applied to `TensorList`s: one `torch._foreach_*` kernel per operation for
    all parameters that share a step count, dtype and device."""

    name = "foreach"

    def step(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
             group_index: int = 0) -> None:
        if not rule.elementwise:
            reference.step(rule, group, states)
            return
        params = [p for p in group["params"] if p.grad is not None]
        hyper = hyperparameters(group)
        maximize = hyper.get("maximize", False)
        for (step, _, _), ps in advance(rule, params, states).items():
            state = {k: TensorList(states[p][k] for p in ps) for k in rule.state}
            apply_rule(rule, TensorList(real_view(p) for p in ps),
                       TensorList(real_view(p.grad) for p in ps), state,
                       context(rule, hyper, step), maximize)


class AutoBackend(ReferenceBackend):
    """Picks, per group and rule, the fastest backend that is correct for it."""

    name = "auto"

    def __init__(self) -> None:
        self.flat = FlatBackend(compiled=False)
        self.compiled = FlatBackend(compiled=True)
        self._can_compile: bool | None = None

    def choose(self, rule: Rule, group: dict[str, Any]) -> ReferenceBackend | FlatBackend:
        if not rule.elementwise:
            return _REFERENCE
        size = sum(p.numel() for p in group["params"])
        if size >= COMPILE_MIN:
            if self._can_compile is None:
                self._can_compile = compile_available()
            if self._can_compile:
                return self.compiled
        return self.flat

    def step(self, rule: Rule, group: dict[str, Any], states: MutableMapping[Tensor, State],
             group_index: int = 0) -> None:
        self.choose(rule, group).step(rule, group, states, group_index)

    def zero_grad(self) -> None:
        self.flat.zero_grad()
        self.compiled.zero_grad()

    def owned(self) -> set[int]:
        flat, compiled = self.flat.owned(), self.compiled.owned()
        return flat | compiled if flat and compiled else flat or compiled


_REFERENCE = ReferenceBackend()
BACKENDS = {
    "auto": AutoBackend,
    "reference": ReferenceBackend,
    "foreach": ForeachBackend,
    "flat": lambda: FlatBackend(compiled=False),
    "compiled": lambda: FlatBackend(compiled=True),
}


def make_backend(name: str) -> Any:
    try:
        return BACKENDS[name]()
    except KeyError:
        allowed = ", ".join(repr(n) for n in BACKENDS)
        raise ValueError(f"unknown backend {name!r}; allowed: {allowed}") from None


__all__ = ["AutoBackend", "FlatBackend", "ForeachBackend", "ReferenceBackend", "TensorList",
           "make_backend"]
