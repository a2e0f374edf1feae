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
        direction = lambda_k [ m_k / (sqrt(v_k) + d_{k+1} eps) + lambda p_k ]   (decoupled)

    beta3 = ``beta3`` or sqrt(beta2) when None; ``safeguard_warmup`` uses d_k in place of
    lambda_k in s (keeps lr out of the denominator of d_hat). Without momentum (beta1 = 0)
    the numerator is d_{k+1} g_k. The learning rate is applied after this rule, so lr scales
    the step as d does, and it also enters the estimate, as in the package.

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
        beta1, beta2 = ctx.betas
        beta3, lr, d0 = ctx.prodigy_beta3, ctx.lr, ctx.d0
        d, d_max = ctx.d, ctx.d_max
        dlr = d * lr * ctx.prodigy_bias_correction
        grads, params = g.tensors, p.tensors
        new: dict[str, list[Tensor]] = {key: list(state[key].tensors) for key in keys}
        delta_numerator, d_denom = 0.0, 0.0
        if lr > 0.0:
            s_gain = (d / d0) * d if ctx.safeguard_warmup else (d / d0) * dlr
            for i, (gi, pi) in enumerate(zip(grads, params)):
                sliced = gi.flatten()[::slice_p]
                dot = torch.dot(sliced, new["p0"][i] - pi.flatten()[::slice_p])
                delta_numerator += (d / d0) * dlr * dot.item()
                if momentum:
                    new["exp_avg"][i] = new["exp_avg"][i].mul(beta1).add(gi, alpha=d * (1 - beta1))
                new["exp_avg_sq"][i] = new["exp_avg_sq"][i].mul(beta2).addcmul(
                    gi, gi, value=d * d * (1 - beta2))
                new["s"][i] = new["s"][i].mul(beta3).add(sliced, alpha=s_gain)
                d_denom += new["s"][i].abs().sum().item()
        changed = {key: type(g)(value) for key, value in new.items() if key != "p0"}
        if d_denom == 0:  # no progress to measure: the package leaves the parameters alone
            return type(g)([torch.zeros_like(x) for x in params]), changed
        d_numerator = ctx.d_numerator * beta3 + delta_numerator
        d_hat = ctx.d_coef * d_numerator / d_denom
        if d == d0:
            d = max(d, d_hat)
        d_max = max(d_max, d_hat)
        d = min(d_max, d * ctx.growth_rate)
        dbc = ctx.d * ctx.prodigy_bias_correction  # lambda_k / lr: lr is applied after this rule
        out = []
        for i, (gi, pi) in enumerate(zip(grads, params)):
            denom = new["exp_avg_sq"][i].sqrt() + d * ctx.eps
            step = (new["exp_avg"][i] * dbc / denom if momentum
                    else gi * (dbc * d) / denom)
            if decouple:
                step = step + pi * (ctx.weight_decay * dbc)
            out.append(step)
        changed.update(d=d, d_max=d_max, d_numerator=d_numerator)
        return type(g)(out), changed

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
