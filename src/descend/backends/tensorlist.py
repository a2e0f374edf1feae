"""A list of tensors that does arithmetic with torch's multi-tensor (`_foreach_`) kernels.

Rules are written once with ordinary tensor arithmetic (``beta * v + (1 - beta) * g * g``,
``m.lerp(g, w)``, ``v.sqrt()``). Handing them TensorLists instead of tensors runs the same
code as one multi-tensor kernel per operation, over every parameter of a bucket.
"""

from __future__ import annotations

from collections.abc import Iterable
from numbers import Number
from typing import Any

import torch
from torch import Tensor


class TensorList:
    __slots__ = ("tensors",)

    def __init__(self, tensors: Iterable[Tensor]) -> None:
        self.tensors = list(tensors)

    def __len__(self) -> int:
        return len(self.tensors)

    def __iter__(self):
        return iter(self.tensors)

    def _binary(self, other: Any, op: Any) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(op(self.tensors, other.tensors))
        if isinstance(other, (Number, Tensor)):
            return TensorList(op(self.tensors, other))
        return NotImplemented

    def __add__(self, other: Any) -> TensorList:
        return self._binary(other, torch._foreach_add)

    __radd__ = __add__

    def __sub__(self, other: Any) -> TensorList:
        return self._binary(other, torch._foreach_sub)

    def __rsub__(self, other: Any) -> TensorList:
        return TensorList(torch._foreach_add(torch._foreach_neg(self.tensors), other))

    def __mul__(self, other: Any) -> TensorList:
        return self._binary(other, torch._foreach_mul)

    __rmul__ = __mul__

    def __truediv__(self, other: Any) -> TensorList:
        return self._binary(other, torch._foreach_div)

    def __rtruediv__(self, other: Any) -> TensorList:
        return TensorList(torch._foreach_mul(torch._foreach_reciprocal(self.tensors), other))

    def add(self, other: TensorList, alpha: float = 1.0) -> TensorList:
        return TensorList(torch._foreach_add(self.tensors, other.tensors, alpha=alpha))

    def mul(self, other: Any) -> TensorList:
        return self * other

    def addcmul(self, t1: TensorList, t2: TensorList, value: float = 1.0) -> TensorList:
        return TensorList(torch._foreach_addcmul(self.tensors, t1.tensors, t2.tensors, value))

    def addcdiv(self, t1: TensorList, t2: TensorList, value: float = 1.0) -> TensorList:
        return TensorList(torch._foreach_addcdiv(self.tensors, t1.tensors, t2.tensors, value))

    def __neg__(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.tensors))

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.tensors))

    def sign(self) -> TensorList:
        return TensorList(torch._foreach_sign(self.tensors))

    def lerp(self, end: TensorList, weight: float) -> TensorList:
        return TensorList(torch._foreach_lerp(self.tensors, end.tensors, weight))

    def maximum(self, other: TensorList) -> TensorList:
        return TensorList(torch._foreach_maximum(self.tensors, other.tensors))

    def minimum(self, other: TensorList) -> TensorList:
        return TensorList(torch._foreach_minimum(self.tensors, other.tensors))

    def abs(self) -> TensorList:
        return TensorList(torch._foreach_abs(self.tensors))

    def clamp(self, min: Any = None, max: Any = None) -> TensorList:  # noqa: A002 - torch's
        out = self.tensors
        if min is not None:
            out = torch._foreach_clamp_min(out, min)
        if max is not None:
            out = torch._foreach_clamp_max(out, max)
        return TensorList(out)

    # Comparisons and `where` have no multi-tensor kernels: they run tensor by tensor, with
    # the same operators the reference loop uses, so the results agree bit for bit.

    def _compare(self, other: Any, op: Any) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(map(op, self.tensors, other.tensors))
        return TensorList(op(t, other) for t in self.tensors)

    def __gt__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__gt__)

    def __lt__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__lt__)

    def __ge__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__ge__)

    def __le__(self, other: Any) -> TensorList:
        return self._compare(other, Tensor.__le__)

    def where(self, condition: TensorList, other: Any) -> TensorList:
        """Elementwise ``condition ? self : other``, as ``Tensor.where``."""
        if isinstance(other, TensorList):
            return TensorList(map(Tensor.where, self.tensors, condition.tensors, other.tensors))
        return TensorList(t.where(c, other) for t, c in zip(self.tensors, condition.tensors))

    def copy_(self, other: TensorList) -> TensorList:
        torch._foreach_copy_(self.tensors, other.tensors)
        return self

    def add_(self, other: TensorList) -> TensorList:
        torch._foreach_add_(self.tensors, other.tensors)
        return self
