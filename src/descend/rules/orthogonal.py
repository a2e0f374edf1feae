"""Muon: momentum orthogonalized by a Newton-Schulz iteration (Jordan et al., 2024)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Context, Rule, State
from .init import zeros
from .ops import add_, lerp_into, mul_, reusable

NS_DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32, "float64": torch.float64}


def newton_schulz(g: Tensor, coefficients: tuple[float, float, float], steps: int,
                  eps: float, dtype: torch.dtype = torch.bfloat16) -> Tensor:
    """The zeroth power (orthogonalization) of a matrix by a quintic Newton-Schulz iteration.

        X_0 = G / max(||G||_F, eps)                     (on the wide side: G^T if m > n)
        A_k = X_k X_k^T
        X_{k+1} = a X_k + (b A_k + c A_k^2) X_k         k = 0 .. steps - 1

    With Keller Jordan's coefficients (a, b, c) = (3.4445, -4.7750, 2.0315) five steps map
    every singular value of X_0 into roughly [0.7, 1.2]: an approximate U V^T of the SVD
    G = U S V^T, which is all Muon needs. Computed in `dtype` (torch: bfloat16) with torch's
    own sequence of operations (``addmm``), so that bfloat16 results equal torch's bit for
    bit; the result is in `dtype` (a new tensor).
    """
    a, b, c = coefficients
    x = g.to(dtype, copy=True)
    wide = g.size(0) > g.size(1)
    if wide:
        x = x.T
    x.div_(x.norm().clamp(min=eps))
    for _ in range(steps):
        gram = x @ x.T
        poly = torch.addmm(gram, gram, gram, beta=b, alpha=c)
        x = torch.addmm(x, poly, x, beta=a)
    return x.T if wide else x


def muon_lr_ratio(adjust_lr_fn: str | None, shape: tuple[int, ...]) -> float:
    """The factor s(A, B) torch.optim.Muon multiplies the lr by for an A x B matrix:

        "original" (default; Keller Jordan):    s = sqrt(max(1, A / B))
        "match_rms_adamw" (Liu et al., 2025):   s = 0.2 sqrt(max(A, B))

    An orthogonal A x B matrix has RMS 1 / sqrt(max(A, B)); "original" keeps tall matrices'
    updates from shrinking, "match_rms_adamw" gives every update AdamW's typical RMS of 0.2,
    so that Muon can reuse an lr and weight decay tuned for AdamW ("Muon is Scalable for LLM
    Training").
    """
    rows, cols = shape[:2]
    if adjust_lr_fn is None or adjust_lr_fn == "original":
        return math.sqrt(max(1, rows / cols))
    if adjust_lr_fn == "match_rms_adamw":
        return 0.2 * math.sqrt(max(rows, cols))
    return 1.0


def scale_by_muon(nesterov: bool = True, weight_decay: bool = False) -> Rule:
    """Muon's step (Jordan et al., 2024), as torch.optim.Muon computes it.

        B_t = mu B_{t-1} + (1 - mu) G_t                  ``momentum_buffer`` (B_0 = 0)
        M_t = (1 - mu) G_t + mu B_t   (nesterov)   or   B_t
        O_t = NS_k(M_t)                                   (`newton_schulz`)
        u_t = -lr (s(A, B) O_t + lambda theta_{t-1})      (`muon_lr_ratio`; decay if asked)

    mu = ``momentum``; k = ``ns_steps``, (a, b, c) = ``ns_coefficients``, ``eps`` and the
    dtype of the iteration, ``ns_dtype`` ("bfloat16" as torch; "float32" or "float64" for
    an orthogonalization that does not round to 8 bits), ``adjust_lr_fn``, ``lr`` and
    lambda = ``weight_decay`` come from the param group. The buffer is an exponential
    moving average, as in torch's code and Keller Jordan's; torch's docstring writes
    B_t = mu B_{t-1} + G_t, which differs by a factor (1 - mu) that the orthogonalization
    removes (O_t does not depend on the scale of M_t). State: ``momentum_buffer``.
    Matrices only: reduces over the whole tensor.

    The rule returns the update itself: the shape factor, the learning rate and the
    decoupled weight decay are applied in the memory of O_t (converted back to the
    parameter's dtype), where torch applies them to the parameter in place. Separate rules
    would each make a new tensor of the parameter's size, and on the per-tensor path a fresh
    allocation costs several in-place passes (its pages are touched for the first time).
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        mu = ctx.momentum
        dtype = NS_DTYPES[ctx.ns_dtype]
        b = lerp_into(state["momentum_buffer"], g, 1 - mu)
        m = g.lerp(b, mu) if nesterov else b
        o = newton_schulz(m, ctx.ns_coefficients, ctx.ns_steps, ctx.eps, dtype)
        step = -ctx.lr * muon_lr_ratio(ctx.adjust_lr_fn, tuple(p.shape))
        # The update goes into M_t's memory once Newton-Schulz has its own copy (torch
        # writes into the parameter instead); O_t joins in its own dtype, converted on the
        # fly, as in torch's param.add_(O_t, alpha).
        memory = m if nesterov and reusable(m) else None
        if weight_decay:
            u = add_(torch.mul(p, -ctx.lr * ctx.weight_decay, out=memory)
                     if memory is not None else p * (-ctx.lr * ctx.weight_decay), o, step)
        elif memory is not None:
            u = memory.copy_(o).mul_(step)
        else:
            u = mul_(o.to(g.dtype, copy=True), step)
        return u, {"momentum_buffer": b}

    name = "scale_by_muon_nesterov" if nesterov else "scale_by_muon"
    return Rule(name + ("_decayed" if weight_decay else ""), update,
                init=zeros("momentum_buffer"), state=("momentum_buffer",), reduction="tensor",
                low_precision=(("momentum_buffer", "signed"),))
