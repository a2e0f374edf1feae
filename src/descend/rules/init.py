"""Helpers that build a rule's `init` function."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .base import State


def zeros(*keys: str) -> Callable[[Tensor], State]:
    """init(p) -> {key: zeros_like(p) for each key}."""

    def init(p: Tensor) -> State:
        return {key: torch.zeros_like(p, memory_format=torch.preserve_format) for key in keys}

    return init


def filled(key: str, value: float) -> Callable[[Tensor], State]:
    """init(p) -> {key: a tensor like p filled with `value`}."""

    def init(p: Tensor) -> State:
        return {key: torch.full_like(p, value, memory_format=torch.preserve_format)}

    return init
