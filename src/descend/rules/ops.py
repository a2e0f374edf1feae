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

from typing import Any

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
