"""State-dict formats: descend's in-memory state and the saved form torch.optim shares.

In memory, a parameter's ``step`` and carried scalars (NAdam's ``mu_product``, ...) are
Python numbers: exact at any count, and cheap to read once per bucket. In a state dict they
are 0-D tensors, as torch.optim saves them, so that a state dict saved by descend loads into
the torch.optim class of the same algorithm and vice versa: ``step`` as a float32 tensor
(torch's format) while that is exact, i.e. up to 2**24 steps, as float64 beyond; carried
scalars as float64.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor

EXACT_FLOAT32 = 1 << 24


def export_state(state: dict[str, Any], carry: Iterable[str] | None = None) -> dict[str, Any]:
    """The saved form of one parameter's state: ``step`` and the carried scalars (`carry`;
    None: every number) as tensors. Other numbers stay numbers, as torch saves them
    (torch.optim.LBFGS's ``func_evals``, ``prev_loss``)."""
    out = dict(state)
    names = None if carry is None else {"step", *carry}
    for key, value in state.items():
        if isinstance(value, bool) or (names is not None and key not in names):
            continue
        if isinstance(value, int):
            dtype = torch.float32 if abs(value) <= EXACT_FLOAT32 else torch.float64
            out[key] = torch.tensor(value, dtype=dtype)
        elif isinstance(value, float):
            out[key] = torch.tensor(value, dtype=torch.float64)
    return out


def import_state(state: dict[str, Any], carry: Iterable[str]) -> dict[str, Any]:
    """The in-memory form of one parameter's loaded state: ``step`` an int, carried scalars
    floats (from tensors saved by descend or torch, or numbers saved by older descend)."""
    out = dict(state)
    step = out.get("step")
    if isinstance(step, Tensor):
        out["step"] = int(step.item())
    elif step is not None:
        out["step"] = int(step)
    for name in carry:
        value = out.get(name)
        if isinstance(value, Tensor):
            out[name] = float(value.item())
    return out
