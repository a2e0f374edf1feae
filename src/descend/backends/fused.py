"""torch's hand-written fused kernels, as overrides for the recipes they implement exactly.

A recipe that computes exactly what one of torch's fused kernels computes says so with
`Rule.fused` (see `descend.recipes`); the fused and auto backends then run that kernel on
the lists of the user's own tensors (as ``torch.optim.Adam(fused=True)`` does, without its
per-parameter Python bookkeeping). Each override is tested against the reference loop
(agreement to rounding, not bitwise: the kernels order their floating-point operations
differently).

The kernels are used for float32 and float64 only. In float16 and bfloat16 they compute in
float32 inside and round once, which is more accurate than, and different from, torch's
default (for-loop) implementation that rounds after every operation: with Adam's tiny
``(1 - beta2) g^2`` in float16 the two differ by far more than rounding. descend's default
must agree with torch's default, so low-precision parameters run descend's own maths.
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


DTYPES = (torch.float32, torch.float64)


def supports(kernel: FusedKernel | None, dtype: torch.dtype, device: torch.device) -> bool:
    return kernel is not None and dtype in DTYPES and device.type in ("cpu", "cuda")


def run(kernel: FusedKernel, params: list[Tensor], grads: list[Tensor],
        state: dict[str, list[Tensor]], ctx: Context, step: Tensor, maximize: bool) -> None:
    """One step over lists of tensors. `step` is a float32 0-D tensor holding the step count
    of this update (already incremented, as torch's kernels expect); it is passed once per
    tensor."""
    steps = [step] * len(params)
    if kernel.name in ("adam", "adamw"):
        beta1, beta2 = ctx.betas
        amsgrad = kernel.option("amsgrad", False)
        fn = torch._fused_adam_ if kernel.name == "adam" else torch._fused_adamw_
        fn(params, grads, state["exp_avg"], state["exp_avg_sq"],
           state["max_exp_avg_sq"] if amsgrad else [], steps, lr=ctx.lr, beta1=beta1,
           beta2=beta2, weight_decay=ctx.get("weight_decay", 0.0), eps=ctx.eps,
           amsgrad=amsgrad, maximize=maximize)
    elif kernel.name == "sgd":
        momentum = ctx.get("momentum", 0.0)
        torch._fused_sgd_(params, grads, state["momentum_buffer"] if momentum else [],
                          weight_decay=ctx.get("weight_decay", 0.0), momentum=momentum,
                          lr=ctx.lr, dampening=ctx.get("dampening", 0.0),
                          nesterov=bool(ctx.get("nesterov", False)), maximize=maximize,
                          is_first_step="momentum_buffer" in ctx.fresh)
    elif kernel.name == "adagrad":
        torch._fused_adagrad_(params, grads, state["sum"], steps, lr=ctx.lr,
                              lr_decay=ctx.get("lr_decay", 0.0),
                              weight_decay=ctx.get("weight_decay", 0.0), eps=ctx.eps,
                              maximize=maximize)
    else:
        raise ValueError(f"unknown fused kernel {kernel.name!r}")
