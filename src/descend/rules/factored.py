"""Adafactor: a second moment stored as row and column factors (Shazeer & Stern, 2018)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Context, Rule, State
from .ops import add_, lerp_into


def _norm(x: Tensor) -> float:
    # torch.linalg.vector_norm directly: Tensor.norm goes through Python (torch.functional),
    # several microseconds per call, which shows on many small tensors.
    return torch.linalg.vector_norm(x).item()


def _mean_square(g: Tensor, dim: int) -> Tensor:
    """mean(g^2) over `dim`, kept, as torch computes it: a norm squared, without g^2."""
    return torch.linalg.vector_norm(g, dim=dim, keepdim=True).square_().div_(g.size(dim))


def _init(p: Tensor) -> State:
    if p.dim() > 1:
        # Factored over the last two dimensions; leading ones are batch dimensions.
        return {"row_var": p.new_zeros((*p.shape[:-1], 1)),
                "col_var": p.new_zeros((*p.shape[:-2], 1, p.shape[-1]))}
    return {"variance": torch.zeros_like(p, memory_format=torch.preserve_format)}


def scale_by_adafactor(weight_decay: bool = False) -> Rule:
    r"""Adafactor's step (Shazeer & Stern, 2018, Algorithms 4 and 5), as torch.optim.Adafactor.

        beta2_t = 1 - t^tau                                        (tau = ``beta2_decay``)
        rho_t   = min(lr, 1 / sqrt(t))                              (relative step size)
        alpha_t = max(eps2, RMS(theta_{t-1})) rho_t
        matrices (factored over the last two dimensions, G of shape (..., m, n)):
            R_t = beta2_t R_{t-1} + (1 - beta2_t) mean_n(G^2)        ``row_var``, (..., m, 1)
            C_t = beta2_t C_{t-1} + (1 - beta2_t) mean_m(G^2)        ``col_var``, (..., 1, n)
            V_t = R_t C_t / max(mean_m(R_t), eps1)
        vectors and scalars:
            V_t = beta2_t V_{t-1} + (1 - beta2_t) G^2                ``variance``
        U_t = G / max(sqrt(V_t), eps1)
        u_t = -alpha_t U_t / max(1, RMS(U_t) / d) - lr lambda theta_{t-1}   (clipping; decay)

    eps = (eps1, eps2) and d come from the param group; eps1 = None is the machine epsilon
    of the parameter's dtype. Like torch, and unlike the paper: the factors are means, not
    sums (the same estimate, better scaled); eps1 guards the estimate and the division
    instead of being added to G^2; and ``lr`` caps the relative step rho_t (the paper's
    constant 0.01) and scales the weight decay. No first moment (the paper's beta1 = 0).

    This rule returns the update itself: the relative step alpha_t plays the part of the
    learning rate, and the decoupled weight decay (lambda = ``weight_decay``, with
    ``weight_decay=True``) is added in the memory of the step, where torch decays the
    parameter in place (a separate rule would make a new tensor of the parameter's size,
    which on the per-tensor path costs several in-place passes). It reduces over the tensor
    (the RMS norms, the row and column means).
    Differences from torch: eps1 = None takes each parameter's own dtype (torch takes the
    first parameter's for the whole group), and V_t divides R_t before the outer product
    (one pass over an (m, n) matrix fewer; equal up to rounding).
    """

    def prepare(ctx: Context) -> dict[str, float]:
        t = float(ctx.step)
        return {"adafactor_one_minus_beta2": t ** ctx.beta2_decay,
                "adafactor_rho": min(ctx.lr, 1 / t ** 0.5)}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        eps1, eps2 = ctx.eps
        if eps1 is None:
            eps1 = torch.finfo(p.dtype).eps
        w = ctx.adafactor_one_minus_beta2
        alpha = max(eps2, _norm(p) / math.sqrt(p.numel())) * ctx.adafactor_rho
        if g.dim() > 1:
            row = lerp_into(state["row_var"], _mean_square(g, -1), w)
            col = lerp_into(state["col_var"], _mean_square(g, -2), w)
            new_state = {"row_var": row, "col_var": col}
            v = ((row / row.mean(dim=-2, keepdim=True).clamp(min=eps1)) @ col).clamp_(
                min=eps1 * eps1)
        else:
            variance = lerp_into(state["variance"], g * g, w)
            new_state = {"variance": variance}
            v = variance.clamp(min=eps1 * eps1)
        u = v.rsqrt_().mul_(g)
        clip = max(1.0, _norm(u) / (math.sqrt(u.numel()) * ctx.d))
        u = u.mul_(-alpha / clip)
        if weight_decay:
            u = add_(u, p, -ctx.lr * ctx.weight_decay)
        return u, new_state

    name = "scale_by_adafactor_decayed" if weight_decay else "scale_by_adafactor"
    return Rule(name, update, init=_init, prepare=prepare,
                state=("row_var", "col_var", "variance"),
                provides=("adafactor_one_minus_beta2", "adafactor_rho"), reduction="tensor")
