"""Fused arithmetic for rules, with one rounding where the backend allows it.

torch.optim writes ``v.mul_(beta).addcmul_(g, g, value=1 - beta)``: the product and the
sum are rounded once, which matters in float16 and bfloat16 (separate roundings let Adam's
tiny ``(1 - beta2) g^2`` underflow differently, and the results drift apart by far more
than rounding). Rules call these helpers so that every backend gets the fused form it can
run: tensors and `TensorList`s take their fused methods when the coefficient is a number;
under torch.compile the coefficients are 0-D tensors (so that a schedule does not
recompile), and the operation is written out as arithmetic, which inductor fuses into one
rounding just the same. (torch 2.13's inductor mishandles a traced scalar passed as
``value=``: results drift by 1e-4 after a recompile.)
"""

from __future__ import annotations

from numbers import Number
from typing import Any

import torch
from torch import Tensor


def addcmul(x: Any, t1: Any, t2: Any, value: Any = 1.0) -> Any:
    """x + value * t1 * t2."""
    if isinstance(value, Tensor):
        return x + t1 * t2 * value
    return x.addcmul(t1, t2, value=value)


def addcdiv(x: Any, t1: Any, t2: Any, value: Any = 1.0) -> Any:
    """x + value * t1 / t2."""
    if isinstance(value, Tensor):
        return x + t1 / t2 * value
    return x.addcdiv(t1, t2, value=value)


def add(x: Any, y: Any, alpha: Any = 1.0) -> Any:
    """x + alpha * y."""
    if isinstance(alpha, Tensor):
        return x + y * alpha
    return x.add(y, alpha=alpha)


# -- the same, written into a temporary the rule has just made -----------------------------
#
# A rule must not write into its inputs, but it may reuse the memory of a tensor it has
# just computed itself: ``add_(m * beta1, g, 1 - beta1)`` saves one allocation of the
# parameter's size. On rules that run one tensor at a time, a fresh allocation (and its
# first touch) costs about twice an in-place pass. These helpers write in place only into
# plain tensors outside autograd's graph; traced values (`Sym`), `TensorList`s and tensors
# that require grad (``differentiable=True``) get the out-of-place form, with equal values.


def reusable(x: Any) -> bool:
    """Whether a temporary the rule made may be written in place (a plain tensor outside
    autograd's graph)."""
    return type(x) is Tensor and not x.requires_grad


def add_(x: Any, y: Any, alpha: Any = 1.0) -> Any:
    """x + alpha * y, in x's memory (x: a temporary of the rule); y a tensor or a number."""
    if reusable(x) and not isinstance(alpha, Tensor):
        return x.add_(y, alpha=alpha)
    if isinstance(y, Number):
        return x + y * alpha
    return add(x, y, alpha)


def addcmul_(x: Any, t1: Any, t2: Any, value: Any = 1.0) -> Any:
    """x + value * t1 * t2, in x's memory (x: a temporary of the rule)."""
    if reusable(x) and not isinstance(value, Tensor):
        return x.addcmul_(t1, t2, value=value)
    return addcmul(x, t1, t2, value)


def mul_(x: Any, y: Any) -> Any:
    """x * y, in x's memory (x: a temporary of the rule)."""
    if reusable(x):
        return x.mul_(y)
    return x * y


def over(x: Any, denominator: Any) -> Any:
    """x / denominator, in the denominator's memory (a temporary of the rule)."""
    if reusable(denominator) and reusable(x):
        return torch.div(x, denominator, out=denominator)
    return x / denominator


# -- state updated where it is stored ------------------------------------------------------
#
# A rule returns its new state and the backend copies it into the stored tensors: one new
# tensor and one copy per state tensor and step. Rules that run one tensor at a time (their
# state tensors are the optimizer's own) may instead write into them with these helpers and
# return them: the backend then skips the copy (`apply_rule` sees the same tensor). They
# write in place only outside autograd and tracing (``differentiable=True`` and
# torch.compile get the pure form, with equal values), and never into traced values or
# lists. The rule's state keys are its own, so no other rule of a chain reads them.


def stored(x: Any) -> bool:
    """Whether a state tensor the rule was given may be written where it is stored."""
    return (type(x) is Tensor and not torch.is_grad_enabled()
            and not torch.compiler.is_compiling())


def lerp_into(state: Any, end: Any, weight: Any) -> Any:
    """state + weight (end - state), written into the state tensor where allowed."""
    return state.lerp_(end, weight) if stored(state) else state.lerp(end, weight)


def scale_add_into(state: Any, beta: Any, y: Any, alpha: Any = 1.0) -> Any:
    """beta state + alpha y, written into the state tensor where allowed."""
    if stored(state) and not isinstance(alpha, Tensor):
        return state.mul_(beta).add_(y, alpha=alpha)
    return add(state * beta, y, alpha)


def scale_addcmul_into(state: Any, beta: Any, t1: Any, t2: Any, value: Any = 1.0) -> Any:
    """beta state + value t1 t2, written into the state tensor where allowed."""
    if stored(state) and not isinstance(value, Tensor):
        return state.mul_(beta).addcmul_(t1, t2, value=value)
    return addcmul(state * beta, t1, t2, value)
