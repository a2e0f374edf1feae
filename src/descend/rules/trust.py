"""Layer-wise trust ratios for large-batch training: LARS (You et al., 2017) and LAMB
(You et al., 2020), and the global gradient clipping LAMB implementations offer."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import Context, Rule, State, per_tensor
from .init import zeros
from .ops import add, add_, mul_, over, scale_add_into, scale_addcmul_into


def clip_by_global_norm() -> Rule:
    """g' = g min(1, c / (||g|| + eps)), ||g|| the norm of all the group's gradients together.

    c = ``max_grad_norm`` (0 switches it off) and ``eps`` from the param group: the
    "pre-normalization" of NVIDIA's and pytorch-optimizer's LAMB (``pre_norm=True``). It
    reduces over the whole group. pytorch-optimizer takes the norm over every group of the
    optimizer, in float32, with the first group's c and eps; here each group is clipped by
    its own norm, in the parameters' dtype (the same with one group, up to float32 rounding).
    """

    def update(g: Any, state: State, p: Any, ctx: Context) -> tuple[Any, State]:
        if ctx.max_grad_norm == 0:
            return g, {}
        norm = math.sqrt(sum(float(torch.linalg.vector_norm(t)) ** 2 for t in g))
        return g * min(ctx.max_grad_norm / (norm + ctx.eps), 1.0), {}

    return Rule("clip_by_global_norm", update, reduction="group")


def scale_by_lamb_moments(grad_averaging: bool = True, bias_correction: bool = False) -> Rule:
    """LAMB's Adam direction (You et al., 2020, Algorithm 2), before the trust ratio.

        m_t = beta1 m_{t-1} + beta3 g_t        beta3 = 1 - beta1 (``grad_averaging``) or 1
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        r_t = m_t / (sqrt(v_t) + eps)                                  (pytorch-optimizer)
        r_t = m_hat_t / (sqrt(v_hat_t) + eps)   with ``bias_correction`` (the paper)

    pytorch-optimizer corrects neither moment here: it divides the step by 1 - beta1^t after
    the trust ratio instead (`scale_by_lamb_trust_ratio`), and never corrects v.
    State: ``exp_avg``, ``exp_avg_sq``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        if not bias_correction:
            return {"lamb_inv_bias_correction1": 1.0, "lamb_inv_bias_correction2_sqrt": 1.0}
        beta1, beta2 = ctx.betas
        return {"lamb_inv_bias_correction1": 1 / (1 - beta1**ctx.step),
                "lamb_inv_bias_correction2_sqrt": 1 / math.sqrt(1 - beta2**ctx.step)}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        m = scale_add_into(state["exp_avg"], beta1, g, 1 - beta1 if grad_averaging else 1.0)
        v = scale_addcmul_into(state["exp_avg_sq"], beta2, g, g, 1 - beta2)
        if bias_correction:
            denom = add_(mul_(v.sqrt(), ctx.lamb_inv_bias_correction2_sqrt), ctx.eps)
            r = mul_(over(m, denom), ctx.lamb_inv_bias_correction1)
        else:
            r = over(m, add_(v.sqrt(), ctx.eps))
        return r, {"exp_avg": m, "exp_avg_sq": v}

    return Rule("scale_by_lamb_moments", update, init=zeros("exp_avg", "exp_avg_sq"),
                prepare=prepare, state=("exp_avg", "exp_avg_sq"),
                low_precision=(("exp_avg", "signed"), ("exp_avg_sq", "nonnegative")),
                provides=("lamb_inv_bias_correction1", "lamb_inv_bias_correction2_sqrt"))


def scale_by_lamb_trust_ratio(adam: bool = False, debias_step: bool = True,
                              decoupled: bool = False, fixed_decay: bool = False) -> Rule:
    """LAMB's step with its layer-wise trust ratio (You et al., 2020, Algorithm 2).

        w = min(||theta||, clamp)
        q = w / (||r|| + eps)            (q = 1 when w = 0 or ||r|| = 0, or with ``adam``)
        u = -lr_t q r - c theta          lr_t = lr / (1 - beta1^t) (``debias_step``) or lr
                                         c = lr lambda, lambda (``fixed_decay``) or 0

    phi(z) = min(z, clamp) is the paper's scaling function phi with upper bound gamma_u =
    ``clamp`` (10, as pytorch-optimizer; the paper leaves phi open). ``eps`` of the param
    group guards the division, as in pytorch-optimizer (the paper has none). With
    decoupled weight decay (``decoupled=True``) the weights are measured after the decay
    of this step, theta (1 - c), as pytorch-optimizer measures them; with coupled decay
    lambda theta is already in r, as in the paper's r_t + lambda x_t. ``debias_step`` is
    pytorch-optimizer's correction of the first moment, applied to the step after the
    ratio, so that the ratio does not undo it (Adam's efficient form, Kingma & Ba, end of
    section 2). Reduces over the tensor.

    The rule returns the update itself: the learning rate and the decoupled decay are
    applied in the memory of one new tensor, as pytorch-optimizer applies them to the
    parameter in place (separate rules would each make a tensor of the parameter's size).
    """

    def prepare(ctx: Context) -> dict[str, float]:
        if not debias_step:
            return {"lamb_step_size": ctx.lr}
        return {"lamb_step_size": ctx.lr / (1 - ctx.betas[0] ** ctx.step)}

    @per_tensor
    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        c = 0.0
        if decoupled and ctx.weight_decay:
            c = ctx.weight_decay if fixed_decay else ctx.lr * ctx.weight_decay
        q = 1.0
        if not adam:
            w = min(float(torch.linalg.vector_norm(p)) * (1.0 - c), ctx.clamp)
            d_norm = float(torch.linalg.vector_norm(d))
            if w > 0 and d_norm != 0:
                q = w / (d_norm + ctx.eps)
        u = d * (-ctx.lamb_step_size * q)
        if c:
            u = add_(u, p, -c)
        return u, {}

    return Rule("scale_by_lamb_trust_ratio", update, prepare=prepare,
                provides=("lamb_step_size",), reduction="tensor")


def scale_by_lars_trust_ratio() -> Rule:
    """LARS's local learning rate (You, Gitman & Ginsburg, 2017, Algorithm 1).

        matrices and higher (ndim > 1):
            r = eta ||theta|| / (||g|| + lambda ||theta||)     (r = 1 when a norm is 0)
            d = r (g + lambda theta)
        scalars and vectors (biases, norms' gains): d = g, no weight decay

    eta = ``trust_coefficient``, lambda = ``weight_decay``. Leaving one-dimensional
    parameters out of both the adaptation and the decay is the common practice (Goyal et
    al. 2017; SimCLR's LARS) and pytorch-optimizer's. Reduces over the tensor.
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        if p.dim() <= 1:
            return g, {}
        # Norms as Python numbers: a handful of 0-D tensor operations cost more than the
        # maths on a small tensor (pytorch-optimizer keeps them as 0-D tensors, which in
        # float32 rounds the ratio to float32).
        param_norm = float(torch.linalg.vector_norm(p))
        denominator = float(torch.linalg.vector_norm(g)) + ctx.weight_decay * param_norm
        ratio = 1.0
        if param_norm > 0.0 and denominator > 0.0:
            ratio = ctx.trust_coefficient * param_norm / denominator
        return mul_(add(g, p, ctx.weight_decay), ratio), {}

    return Rule("scale_by_lars_trust_ratio", update, reduction="tensor")
