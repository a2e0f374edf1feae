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

    def copy_(self, other: TensorList) -> TensorList:
        torch._foreach_copy_(self.tensors, other.tensors)
        return self

    def add_(self, other: TensorList) -> TensorList:
        torch._foreach_add_(self.tensors, other.tensors)
        return self
