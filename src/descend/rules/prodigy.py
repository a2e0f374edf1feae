"""Prodigy: Adam whose step size is estimated from the distance travelled."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .base import Context, Rule, State


def scale_by_prodigy(momentum: bool = True, decouple: bool = False, slice_p: int = 1) -> Rule:
    """Prodigy (Mishchenko & Defazio, 2023, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner", Algorithm 4, Adam form), as the `prodigyopt` package computes it.

    With d_k the current estimate of the distance to the solution, lambda_k = d_k lr b_k
    (b_k Adam's bias correction sqrt(1 - beta2^(k+1)) / (1 - beta1^(k+1)), or 1 by default),
    and p_0 the parameters at the first step, over all parameters of the group::

        r_k = beta3 r_{k-1} + (d_k / d0) lambda_k <g_k, p_0 - p_k>          (d_numerator)
        s_k = beta3 s_{k-1} + (d_k / d0) lambda_k g_k                       (per coordinate)
        m_k = beta1 m_{k-1} + (1 - beta1) d_k g_k
        v_k = beta2 v_{k-1} + (1 - beta2) d_k^2 g_k^2
        d_hat = d_coef r_k / sum |s_k|
        d_{k+1} = min(max(d_max, d_hat), growth_rate d_k),  d_max = max(d_max, d_hat)
                  (and d_{k+1} >= d_hat while d_k is still d0)
        u_k = -lambda_k [ m_k / (sqrt(v_k) + d_{k+1} eps) + lambda p_k ]   (decoupled decay)

    beta3 = ``beta3`` or sqrt(beta2) when None; ``safeguard_warmup`` uses d_k in place of
    lambda_k in s (keeps lr out of the denominator of d_hat). Without momentum (beta1 = 0)
    the numerator is d_{k+1} g_k. The learning rate is inside lambda_k, in the step and in
    the estimate, as in the package: this rule returns the parameter's update u_k.

    d_hat needs sums over every parameter of the group, so this rule declares
    ``reduction="group"``; its estimate ``d``, ``d_max`` and ``d_numerator`` are carried
    scalars of the group (in the param group, as the package keeps them, so they travel in
    the state dict; ``d`` is the value to log). With ``slice_p`` > 1 the statistics use every
    slice_p-th coordinate of each tensor (the package's memory-saving approximation).

    Differences from the package: d is estimated per param group (the package shares one d
    across all groups and refuses groups with different non-zero lrs); ``p0`` is always kept
    (the package stores a 0-D zero for an all-zero parameter, the same maths); with no
    progress at all (sum |s| = 0, e.g. all gradients zero, or lr = 0) the step leaves the
    parameters alone as the package does, but still counts. No FSDP all-reduce
    (``fsdp_in_use``): under sharding each rank estimates d from its own shard.
    State: ``s``, ``p0`` (flattened, sliced), ``exp_avg`` (with momentum), ``exp_avg_sq``.
    """

    def prepare(ctx: Context) -> dict[str, Any]:
        beta1, beta2 = ctx.betas
        k = ctx.step - 1
        scalars: dict[str, Any] = {
            "prodigy_bias_correction": (((1 - beta2 ** (k + 1)) ** 0.5) / (1 - beta1 ** (k + 1))
                                        if ctx.use_bias_correction else 1),
            "prodigy_beta3": ctx.beta3 if ctx.beta3 is not None else math.sqrt(beta2),
        }
        if ctx.step == 1:  # the estimate starts at d0
            scalars.update(d=ctx.d0, d_max=ctx.d0, d_numerator=0.0)
        return scalars

    def update(g: Any, state: State, p: Any, ctx: Context) -> tuple[Any, State]:
        # The moments and s are updated in place, in the package's order of operations
        # (a group rule may: see `descend.rules.base`); the other temporaries live one
        # tensor at a time. Fresh parameter-sized temporaries cost a pass over memory each.
        beta1, beta2 = ctx.betas
        beta3, lr, d0 = ctx.prodigy_beta3, ctx.lr, ctx.d0
        d, d_max = ctx.d, ctx.d_max
        dlr = d * lr * ctx.prodigy_bias_correction
        grads, params = g.tensors, p.tensors
        exp_avg_sq, s, p0 = (state[key].tensors for key in ("exp_avg_sq", "s", "p0"))
        exp_avg = state["exp_avg"].tensors if momentum else []
        delta_numerator, d_denom = 0.0, 0.0
        if lr > 0.0:
            sliced = [t.reshape(-1)[::slice_p] for t in grads]
            dots = [torch.dot(gi, p0i - pi.reshape(-1)[::slice_p])
                    for gi, p0i, pi in zip(sliced, p0, params)]
            for dot in torch.stack(dots).tolist():
                delta_numerator += (d / d0) * dlr * dot
            if momentum:
                torch._foreach_mul_(exp_avg, beta1)
                torch._foreach_add_(exp_avg, grads, alpha=d * (1 - beta1))
            torch._foreach_mul_(exp_avg_sq, beta2)
            torch._foreach_addcmul_(exp_avg_sq, grads, grads, value=d * d * (1 - beta2))
            torch._foreach_mul_(s, beta3)
            torch._foreach_add_(s, sliced,
                                alpha=(d / d0) * d if ctx.safeguard_warmup else (d / d0) * dlr)
            for total in torch.stack([si.abs().sum() for si in s]).tolist():
                d_denom += total
        if d_denom == 0:  # no progress to measure: the package leaves the parameters alone
            return type(g)([torch.zeros_like(x) for x in params]), {}
        d_numerator = ctx.d_numerator * beta3 + delta_numerator
        d_hat = ctx.d_coef * d_numerator / d_denom
        if d == d0:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * ctx.growth_rate)
        updates = []
        for i, pi in enumerate(params):
            u = exp_avg_sq[i].sqrt().add_(d * ctx.eps)
            torch.div(exp_avg[i] if momentum else grads[i], u, out=u)
            u.mul_(-dlr if momentum else -dlr * d)
            if decouple:
                u.add_(pi, alpha=-ctx.weight_decay * dlr)
            updates.append(u)
        return type(g)(updates), {"d": d, "d_max": d_max, "d_numerator": d_numerator}

    def init(p: Tensor) -> State:
        flat = p.detach().flatten()[::slice_p]
        state = {"s": torch.zeros_like(flat), "p0": flat.clone(),
                 "exp_avg_sq": torch.zeros_like(p)}
        if momentum:
            state["exp_avg"] = torch.zeros_like(p)
        return state

    keys = ("s", "p0", "exp_avg", "exp_avg_sq") if momentum else ("s", "p0", "exp_avg_sq")
    return Rule("scale_by_prodigy", update, init=init, prepare=prepare, state=keys,
                carry=(("d", 0.0), ("d_max", 0.0), ("d_numerator", 0.0)),
                provides=("prodigy_bias_correction", "prodigy_beta3"), reduction="group")
