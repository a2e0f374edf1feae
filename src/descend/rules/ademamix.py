"""AdEMAMix: Adam with a mixture of a fast and a slow momentum."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Context, Rule, State
from .init import zeros
from .ops import add, addcmul


def scale_by_ademamix() -> Rule:
    """AdEMAMix (Pagliardini, Ablin & Grangier, 2024, "The AdEMAMix Optimizer: Better,
    Faster, Older", Algorithm 1)::

        m1_t = beta1 m1_{t-1} + (1 - beta1) g_t                 fast EMA
        m2_t = beta3_t m2_{t-1} + (1 - beta3_t) g_t             slow EMA (beta3 ~ 0.9999)
        v_t  = beta2 v_{t-1} + (1 - beta2) g_t^2
        d_t  = (m1_t / (1 - beta1^t) + alpha_t m2_t) / (sqrt(v_t) / sqrt(1 - beta2^t) + eps)

    The slow momentum is not bias-corrected (the paper: its early values are small on
    purpose, and alpha and beta3 warm up instead). With T = ``t_alpha_beta3`` (None: no
    warmup), the paper's schedulers, as pytorch-optimizer computes them::

        alpha_t = min(t alpha / T, alpha)
        beta3_t = min(exp(ln(beta1) ln(beta3) / ((1 - t/T) ln(beta3) + (t/T) ln(beta1))), beta3)

    beta3's schedule makes the half-life of the slow EMA grow linearly from beta1's to
    beta3's. Reads ``betas = (beta1, beta2, beta3)``, ``alpha``, ``t_alpha_beta3`` and
    ``eps``. State: ``exp_avg``, ``exp_avg_sq``, ``exp_avg_slow`` (pytorch-optimizer's names).
    """

    def prepare(ctx: Context) -> dict[str, float]:
        beta1, beta2, beta3 = ctx.betas
        t, alpha, horizon = ctx.step, ctx.alpha, ctx.t_alpha_beta3
        if horizon is None:
            alpha_t, beta3_t = alpha, beta3
        else:
            alpha_t = min(t * alpha / horizon, alpha)
            log1, log3 = math.log(beta1), math.log(beta3)
            mix = (1.0 - t / horizon) * log3 + (t / horizon) * log1
            beta3_t = min(math.exp(log1 * log3 / mix), beta3)
        return {"ademamix_bias_correction1": 1.0 - beta1**t,
                "ademamix_bias_correction2_sqrt": math.sqrt(1.0 - beta2**t),
                "alpha_t": alpha_t, "beta3_t": beta3_t}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2, _ = ctx.betas
        m1 = state["exp_avg"].lerp(g, 1 - beta1)
        v = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
        m2 = state["exp_avg_slow"].lerp(g, 1 - ctx.beta3_t)
        denom = v.sqrt() / ctx.ademamix_bias_correction2_sqrt + ctx.eps
        mixed = add(m1 / ctx.ademamix_bias_correction1, m2, ctx.alpha_t)
        return mixed / denom, {"exp_avg": m1, "exp_avg_sq": v, "exp_avg_slow": m2}

    keys = ("exp_avg", "exp_avg_sq", "exp_avg_slow")
    return Rule("scale_by_ademamix", update, init=zeros(*keys), prepare=prepare, state=keys,
                provides=("ademamix_bias_correction1", "ademamix_bias_correction2_sqrt",
                          "alpha_t", "beta3_t"),
                low_precision=tuple((k, "nonnegative" if k == "exp_avg_sq" else "signed")
                                    for k in keys))
