"""torch's hand-written fused kernels, as overrides for the recipes they implement exactly.

A recipe that computes exactly what one of torch's fused kernels computes says so with
`Rule.fused` (see `descend.recipes`); the eager flat backend then runs that kernel once
over the whole flat buffer instead of the rule's generic maths. Each override is tested
against the reference loop (agreement to rounding, not bitwise: the kernels order their
floating-point operations differently).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context


@dataclass(frozen=True)
class FusedKernel:
    """Which torch kernel implements a recipe: "adam", "adamw", "sgd" or "adagrad"."""

    name: str
    options: tuple[tuple[str, Any], ...] = field(default=())

    def option(self, key: str, default: Any = None) -> Any:
        return dict(self.options).get(key, default)


ALL_FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
# torch 2.13's fused CPU SGD kernel in float16/bfloat16 disagrees with torch's own for-loop
# SGD by whole units after five steps (while Adam, AdamW and Adagrad agree to rounding):
# descend uses it only where it is right.
DTYPES = {"adam": ALL_FLOATS, "adamw": ALL_FLOATS, "adagrad": ALL_FLOATS,
          "sgd": (torch.float32, torch.float64)}


def supports(kernel: FusedKernel | None, param: Tensor) -> bool:
    return (kernel is not None and param.dtype in DTYPES[kernel.name]
            and param.device.type in ("cpu", "cuda"))


def run(kernel: FusedKernel, param: Tensor, grad: Tensor, state: dict[str, Tensor],
        ctx: Context, step: Tensor, maximize: bool) -> None:
    """One step over flat tensors. `step` is a float32 0-D tensor holding the step count
    of this update (already incremented, as torch's kernels expect)."""
    if kernel.name in ("adam", "adamw"):
        beta1, beta2 = ctx.betas
        amsgrad = kernel.option("amsgrad", False)
        fn = torch._fused_adam_ if kernel.name == "adam" else torch._fused_adamw_
        fn([param], [grad], [state["exp_avg"]], [state["exp_avg_sq"]],
           [state["max_exp_avg_sq"]] if amsgrad else [], [step], lr=ctx.lr, beta1=beta1,
           beta2=beta2, weight_decay=ctx.get("weight_decay", 0.0), eps=ctx.eps,
           amsgrad=amsgrad, maximize=maximize)
    elif kernel.name == "sgd":
        momentum = ctx.get("momentum", 0.0)
        torch._fused_sgd_([param], [grad], [state["momentum_buffer"]] if momentum else [],
                          weight_decay=ctx.get("weight_decay", 0.0), momentum=momentum,
                          lr=ctx.lr, dampening=ctx.get("dampening", 0.0),
                          nesterov=bool(ctx.get("nesterov", False)), maximize=maximize,
                          is_first_step=ctx.step == 1)
    elif kernel.name == "adagrad":
        torch._fused_adagrad_([param], [grad], [state["sum"]], [step], lr=ctx.lr,
                              lr_decay=ctx.get("lr_decay", 0.0),
                              weight_decay=ctx.get("weight_decay", 0.0), eps=ctx.eps,
                              maximize=maximize)
    else:
        raise ValueError(f"unknown fused kernel {kernel.name!r}")
