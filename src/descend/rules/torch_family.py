"""The rest of torch.optim's elementwise algorithms: NAdam, RAdam, Adamax, Adadelta, ASGD
(its step size and its iterate averaging) and Rprop.

Each rule computes torch 2.13's single-tensor formula (``torch/optim/<name>.py``, the
for-loop path), quirks included, to rounding in float64. Where torch decides something per
step with a Python ``if`` (RAdam's rectification, ASGD's first averaging step) the rule
turns it into per-step scalars computed in `prepare`, so that the tensor maths has no branch
and runs unchanged on every backend (a native kernel cannot branch on a traced value).
Running scalars that torch keeps as 0-D tensors in the state (NAdam's ``mu_product``,
ASGD's ``eta`` and ``mu``) are `carry` here, under torch's names, so state dicts load
across the two libraries.
"""

from __future__ import annotations

import math

from torch import Tensor

from .base import Context, Rule, State
from .init import zeros
from .ops import addcmul


def scale_by_nadam() -> Rule:
    """NAdam (Dozat, 2016, "Incorporating Nesterov Momentum into Adam"), as
    torch.optim.NAdam computes it, with its momentum schedule (Sutskever et al., 2013)::

        mu_t = beta1 (1 - 0.5 * 0.96^(t psi))            psi = momentum_decay
        P_t = P_{t-1} mu_t,  P_0 = 1                      (mu_product, carried)
        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        d_t = [ (1 - mu_t) / (1 - P_t) g_t + mu_{t+1} / (1 - P_t mu_{t+1}) m_t ]
              / (sqrt(v_t / (1 - beta2^t)) + eps)

    The running product P_t is a carried scalar, updated once per step in `prepare` (O(1)
    per step), saved as ``mu_product`` like torch's. torch keeps it in a 0-D tensor of the
    default dtype, so with float32 as the default (the usual case) torch's product is
    rounded to float32 at every step while descend's is a float64 number: the two differ
    by about 1e-7 relative in the step's coefficients. The paper's momentum schedule
    multiplies beta1 by (1 - 0.5 * 0.96^(t/250)); torch's ``momentum_decay`` = 4e-3 is
    1/250. optax's ``nadam`` uses a constant beta1 (no schedule) and no mu_product.
    State: ``exp_avg``, ``exp_avg_sq``, ``mu_product`` (carried).
    """

    def prepare(ctx: Context) -> dict[str, float]:
        beta1, beta2 = ctx.betas
        step, psi = ctx.step, ctx.momentum_decay
        mu = beta1 * (1.0 - 0.5 * (0.96 ** (step * psi)))
        mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((step + 1) * psi)))
        mu_product = ctx.mu_product * mu
        return {
            "mu_product": mu_product,
            "nadam_grad_coef": (1.0 - mu) / (1.0 - mu_product),
            "nadam_momentum_coef": mu_next / (1.0 - mu_product * mu_next),
            "nadam_inv_bias_correction2_sqrt": 1 / math.sqrt(1 - beta2**step),
        }

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        m = state["exp_avg"].lerp(g, 1 - beta1)
        v = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
        denom = v.sqrt() * ctx.nadam_inv_bias_correction2_sqrt + ctx.eps
        d = (g * ctx.nadam_grad_coef + m * ctx.nadam_momentum_coef) / denom
        return d, {"exp_avg": m, "exp_avg_sq": v}

    return Rule("scale_by_nadam", update, init=zeros("exp_avg", "exp_avg_sq"),
                prepare=prepare, state=("exp_avg", "exp_avg_sq"),
                carry=(("mu_product", 1.0),),
                provides=("nadam_grad_coef", "nadam_momentum_coef",
                          "nadam_inv_bias_correction2_sqrt"),
                low_precision=(("exp_avg", "signed"), ("exp_avg_sq", "nonnegative")))


def scale_by_radam() -> Rule:
    """RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond",
    Algorithm 2), as torch.optim.RAdam::

        m_t = beta1 m_{t-1} + (1 - beta1) g_t,   m_hat = m_t / (1 - beta1^t)
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        d_t = m_hat r_t sqrt(1 - beta2^t) / (sqrt(v_t) + eps)     if rho_t > 5
        d_t = m_hat                                               otherwise (SGD with
                                                                   momentum, no scaling)

    Whether the variance is tractable (rho_t > 5) depends only on the step and beta2, so it
    is decided once per step in `prepare`: the tensor maths is
    ``m_hat a / (sqrt(v) + eps) + m_hat b`` with (a, b) = (r_t sqrt(1 - beta2^t), 0) or
    (0, 1), no branch. The paper's threshold is rho_t > 4; torch (and this rule) use 5, as the
    authors' code does. eps is added to sqrt(v_t) before the bias correction, as torch does
    (optax's ``radam`` adds it after). State: ``exp_avg``, ``exp_avg_sq``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        beta1, beta2 = ctx.betas
        step = ctx.step
        bias_correction2 = 1 - beta2**step
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * step * (beta2**step) / bias_correction2
        if rho_t > 5.0:
            rect = ((rho_t - 4) * (rho_t - 2) * rho_inf
                    / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
            adaptive, plain = rect * bias_correction2**0.5, 0.0
        else:
            adaptive, plain = 0.0, 1.0
        return {"radam_inv_bias_correction1": 1 / (1 - beta1**step),
                "radam_adaptive": adaptive, "radam_plain": plain}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        m = state["exp_avg"].lerp(g, 1 - beta1)
        v = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
        m_hat = m * ctx.radam_inv_bias_correction1
        d = m_hat * ctx.radam_adaptive / (v.sqrt() + ctx.eps) + m_hat * ctx.radam_plain
        return d, {"exp_avg": m, "exp_avg_sq": v}

    return Rule("scale_by_radam", update, init=zeros("exp_avg", "exp_avg_sq"),
                prepare=prepare, state=("exp_avg", "exp_avg_sq"),
                provides=("radam_inv_bias_correction1", "radam_adaptive", "radam_plain"),
                low_precision=(("exp_avg", "signed"), ("exp_avg_sq", "nonnegative")))


def scale_by_adamax() -> Rule:
    """Adamax (Kingma & Ba, 2015, Algorithm 2: Adam with the infinity norm), as
    torch.optim.Adamax::

        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        u_t = max(beta2 u_{t-1}, |g_t| + eps)
        d_t = m_t / ((1 - beta1^t) u_t)

    eps sits inside the max, as in torch (the paper has none; optax's ``adamax`` adds eps
    to u_t after the max instead). For complex parameters |g| is taken per real and
    imaginary part, as torch does. State: ``exp_avg``, ``exp_inf``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        return {"adamax_inv_bias_correction1": 1 / (1 - ctx.betas[0] ** ctx.step)}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        m = state["exp_avg"].lerp(g, 1 - beta1)
        u = (state["exp_inf"] * beta2).maximum(g.abs() + ctx.eps)
        return m / u * ctx.adamax_inv_bias_correction1, {"exp_avg": m, "exp_inf": u}

    return Rule("scale_by_adamax", update, init=zeros("exp_avg", "exp_inf"), prepare=prepare,
                state=("exp_avg", "exp_inf"), provides=("adamax_inv_bias_correction1",),
                low_precision=(("exp_avg", "signed"), ("exp_inf", "nonnegative")))


def scale_by_adadelta() -> Rule:
    """Adadelta (Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method", Algorithm 1),
    as torch.optim.Adadelta::

        s_t = rho s_{t-1} + (1 - rho) g_t^2                       (square_avg)
        d_t = sqrt(a_{t-1} + eps) / sqrt(s_t + eps) g_t
        a_t = rho a_{t-1} + (1 - rho) d_t^2                       (acc_delta)

    The paper applies d_t as it is (lr = 1, torch's default); torch and this rule scale it
    by lr afterwards, and a_t accumulates the unscaled d_t. optax's ``adadelta`` is the
    same. State: ``square_avg``, ``acc_delta``.
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        rho, eps = ctx.rho, ctx.eps
        s = addcmul(state["square_avg"] * rho, g, g, 1 - rho)
        a = state["acc_delta"]
        d = (a + eps).sqrt() / (s + eps).sqrt() * g
        return d, {"square_avg": s, "acc_delta": addcmul(a * rho, d, d, 1 - rho)}

    return Rule("scale_by_adadelta", update, init=zeros("square_avg", "acc_delta"),
                state=("square_avg", "acc_delta"),
                low_precision=(("square_avg", "nonnegative"), ("acc_delta", "nonnegative")))


def scale_by_asgd() -> Rule:
    """The step of averaged SGD as torch.optim.ASGD takes it (Bottou's schedule; Polyak &
    Juditsky, 1992, average the iterates, see `polyak_average`)::

        u_t = -eta_{t-1} (d_t + lambda p_{t-1})                   lambda = lambd
        eta_t = lr / (1 + lambda lr t)^alpha,   eta_0 = lr        (carried)

    The output is the update itself (eta is the step size: no learning-rate rule follows).
    As in torch, eta is carried from the previous step: step t uses the eta computed at
    step t - 1 from the lr of that step, and the first step uses the lr the state was
    created with. ``eta`` is a carried scalar under torch's name; its initial value is
    None, "not known yet", and `prepare` takes the group's lr at the first step, as torch
    does when it creates the state. torch rounds eta to the default dtype (float32
    usually) in its state; descend keeps a float64 number.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        eta = ctx.lr if ctx.eta is None else ctx.eta
        lr, lambd = ctx.lr, ctx.lambd
        return {"asgd_eta": eta, "eta": lr / ((1 + lambd * lr * ctx.step) ** ctx.alpha)}

    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        return (d + p * ctx.lambd) * -ctx.asgd_eta, {}

    return Rule("scale_by_asgd", update, prepare=prepare, carry=(("eta", None),),
                provides=("asgd_eta",))


def polyak_average() -> Rule:
    """Averages of the iterates (Polyak & Juditsky, 1992), as torch.optim.ASGD keeps them::

        ax_t = ax_{t-1} + mu_{t-1} (p_t - ax_{t-1})                (p_t: after the update)
        mu_t = 1 / max(1, t - t0),   mu_0 = 1                      (carried)

    The last rule of a chain: its input is the final update u_t, which it passes on
    unchanged, and p_t = p_{t-1} + u_t. While mu = 1 (for an integer t0, up to step
    t0 + 2, since mu lags a step) ax is the iterate itself (torch copies it; here
    ``ax.lerp(p_t, 1)``, which is p_t exactly); after that ax is the running mean of the
    iterates from p_{t0+2} on. As in torch, the average is state
    only: the parameters are the plain iterates, and a user evaluates with ``ax``
    (``opt.state[p]["ax"]``). State: ``ax``; carried: ``mu``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        return {"polyak_mu": ctx.mu, "mu": 1 / max(1, ctx.step - ctx.t0)}

    def update(u: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        return u, {"ax": state["ax"].lerp(p + u, ctx.polyak_mu)}

    return Rule("polyak_average", update, init=zeros("ax"), prepare=prepare, state=("ax",),
                carry=(("mu", 1.0),), provides=("polyak_mu",))


def scale_by_rprop() -> Rule:
    """Rprop (Riedmiller & Braun, 1993), the variant torch.optim.Rprop implements (without
    weight backtracking, "Rprop-")::

        s = sign(g_t g_{t-1})
        delta_t = clamp(delta_{t-1} eta_plus, min, max)     if s > 0
                  clamp(delta_{t-1} eta_minus, min, max)    if s < 0
                  clamp(delta_{t-1}, min, max)              if s = 0
        g_t = 0                                             if s < 0 (torch: skip the step
                                                             where the sign flipped)
        u_t = -sign(g_t) delta_t,   g_{t-1} <- g_t,   delta_0 = lr

    (eta_minus, eta_plus) = ``etas``, (min, max) = ``step_sizes``. The output is the update
    itself: the step sizes are the learning rates, and lr only sets their initial value
    when the state is created (a later change of lr, by a scheduler, does not move them,
    as in torch). The per-coordinate case split is ``where``; the initial step size comes
    from `prepare` (lr while the state is fresh, else 0, added to the stored zeros), since
    a rule's `init` does not see the hyperparameters. Rprop is a full-batch method: with
    minibatch noise the signs flip at random. State: ``prev``, ``step_size``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        return {"rprop_initial_step_size": ctx.lr if "step_size" in ctx.fresh else 0.0}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        eta_minus, eta_plus = ctx.etas
        low, high = ctx.step_sizes
        delta = state["step_size"] + ctx.rprop_initial_step_size
        s = (g * state["prev"]).sign()
        delta = (delta * eta_plus).where(s > 0, (delta * eta_minus).where(s < 0, delta))
        delta = delta.clamp(low, high)
        g = g.where(s >= 0, 0.0)
        return g.sign() * delta * -1.0, {"prev": g, "step_size": delta}

    return Rule("scale_by_rprop", update, init=zeros("prev", "step_size"), prepare=prepare,
                state=("prev", "step_size"), provides=("rprop_initial_step_size",),
                low_precision=(("prev", "signed"),))
