"""Per-coordinate adaptive scaling: AdaGrad, RMSProp, Adam and Lion."""

from __future__ import annotations

import math

from torch import Tensor

from .base import Context, Rule, State
from .init import filled, zeros
from .ops import addcmul


def scale_by_adagrad(initial_accumulator_value: float = 0.0) -> Rule:
    """AdaGrad (Duchi, Hazan & Singer, 2011), diagonal form as torch.optim.Adagrad.

        s_t = s_{t-1} + g_t^2,      s_0 = initial_accumulator_value
        d_t = g_t / (sqrt(s_t) + eps)

    eps sits outside the square root, as in torch (Keras 3 puts it inside: see
    docs/keras.md). State: ``sum``.
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        s = addcmul(state["sum"], g, g)
        return g / (s.sqrt() + ctx.eps), {"sum": s}

    return Rule("scale_by_adagrad", update, init=filled("sum", initial_accumulator_value),
                state=("sum",), low_precision=(("sum", "nonnegative"),))


def scale_by_rms(centered: bool = False, eps_inside_sqrt: bool = False) -> Rule:
    """RMSProp (Hinton, Coursera lecture 6e, 2012) with torch's and the textbooks' options.

        s_t = alpha s_{t-1} + (1 - alpha) g_t^2
        m_t = alpha m_{t-1} + (1 - alpha) g_t            (centered only; Graves, 2013)
        S_t = s_t - m_t^2  if centered, else s_t
        d_t = g_t / (sqrt(S_t) + eps)                     (eps outside: torch)
        d_t = g_t / sqrt(S_t + eps)                       (eps inside: Keras, many textbooks)

    alpha = ``alpha`` and eps = ``eps`` come from the param group. Note that the two eps
    placements need very different eps for the same effect (eps inside acts like eps^2
    outside). State: ``square_avg`` and, when centered, ``grad_avg``.
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        alpha = ctx.alpha
        s = addcmul(state["square_avg"] * alpha, g, g, 1 - alpha)
        new_state = {"square_avg": s}
        if centered:
            m = state["grad_avg"].lerp(g, 1 - alpha)
            new_state["grad_avg"] = m
            s = addcmul(s, m, m, -1.0)
        rms = (s + ctx.eps).sqrt() if eps_inside_sqrt else s.sqrt() + ctx.eps
        return g / rms, new_state

    keys = ("square_avg", "grad_avg") if centered else ("square_avg",)
    signs = (("square_avg", "nonnegative"), ("grad_avg", "signed"))[:len(keys)]
    return Rule("scale_by_rms", update, init=zeros(*keys), state=keys, low_precision=signs)


def scale_by_adam(amsgrad: bool = False, bias_correction: bool = True) -> Rule:
    """Adam (Kingma & Ba, 2015, Algorithm 1), with AMSGrad (Reddi et al., 2018).

        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        vmax_t = max(vmax_{t-1}, v_t)                     (AMSGrad only; used in place of v_t)
        m_hat = m_t / (1 - beta1^t),   v_hat = v_t / (1 - beta2^t)
        d_t = m_hat / (sqrt(v_hat) + eps)

    eps is added after bias-correcting v, as in the paper's Algorithm 1 and torch.optim.Adam
    (Keras instead adds its "epsilon hat" to the uncorrected sqrt(v_t)). The bias corrections
    are per-step scalars computed once in Python (see `prepare`), applied as multiplications
    by their reciprocals, which keeps divisions out of the hot loop. With
    ``bias_correction=False`` they are 1: the first steps are then tiny, since m_1 is
    (1 - beta1) g_1, and the denominator is sqrt(1 - beta2) |g_1|, which shows what the
    correction is for. State: ``exp_avg``, ``exp_avg_sq`` and, with AMSGrad, ``max_exp_avg_sq``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        if not bias_correction:
            return {"inv_bias_correction1": 1.0, "inv_bias_correction2_sqrt": 1.0}
        beta1, beta2 = ctx.betas
        return {
            "inv_bias_correction1": 1 / (1 - beta1**ctx.step),
            "inv_bias_correction2_sqrt": 1 / math.sqrt(1 - beta2**ctx.step),
        }

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        m = state["exp_avg"].lerp(g, 1 - beta1)
        v = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
        new_state = {"exp_avg": m, "exp_avg_sq": v}
        if amsgrad:
            v = state["max_exp_avg_sq"].maximum(v)
            new_state["max_exp_avg_sq"] = v
        m_hat = m * ctx.inv_bias_correction1
        denom = v.sqrt() * ctx.inv_bias_correction2_sqrt + ctx.eps
        return m_hat / denom, new_state

    keys = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq") if amsgrad else ("exp_avg", "exp_avg_sq")
    return Rule("scale_by_adam", update, init=zeros(*keys), prepare=prepare, state=keys,
                provides=("inv_bias_correction1", "inv_bias_correction2_sqrt"),
                low_precision=(("exp_avg", "signed"), ("exp_avg_sq", "nonnegative"),
                               ("max_exp_avg_sq", "nonnegative"))[:len(keys)])


def scale_by_lion() -> Rule:
    """Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms"), Algorithm 2.

        c_t = beta1 m_{t-1} + (1 - beta1) g_t
        d_t = sign(c_t)
        m_t = beta2 m_{t-1} + (1 - beta2) g_t

    Every coordinate moves by exactly lr per step, so Lion wants an lr 3-10x smaller than
    AdamW's. State: ``exp_avg`` (the m above).
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        m = state["exp_avg"]
        d = m.lerp(g, 1 - beta1).sign()
        return d, {"exp_avg": m.lerp(g, 1 - beta2)}

    return Rule("scale_by_lion", update, init=zeros("exp_avg"), state=("exp_avg",),
                low_precision=(("exp_avg", "signed"),))
