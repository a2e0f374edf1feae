"""The rest of torch.optim's elementwise optimizers: NAdam, RAdam, Adamax, Adadelta, ASGD and
Rprop, each with torch 2.13's argument names, order and defaults, computing torch's formula
(tested against torch's for-loop implementation to 1e-10 in float64).

torch.optim.SparseAdam has no counterpart: descend optimizes dense tensors, and refuses a
sparse gradient with a message that points to torch.optim.SparseAdam.
"""

from __future__ import annotations

from typing import Any, ClassVar

from typing_extensions import Unpack

from .. import recipes
from ..rules.base import Rule
from .base import ParamsT, RuleOptimizer
from .checks import Check, non_negative
from .classes import Options


def _pair(value: Any) -> Any:
    # Tuples, as torch's defaults: a list would reach the kernels as a constant.
    return tuple(value) if isinstance(value, list) else value


class NAdam(RuleOptimizer):
    """NAdam (Dozat, 2016, "Incorporating Nesterov Momentum into Adam"), identical to
    `torch.optim.NAdam`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        mu_t = beta1 (1 - 0.5 * 0.96^(t psi)),  P_t = P_{t-1} mu_t,  P_0 = 1
        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        d_t = [(1 - mu_t) / (1 - P_t) g_t + mu_{t+1} / (1 - P_t mu_{t+1}) m_t]
              / (sqrt(v_t / (1 - beta2^t)) + eps)
        p_t = p_{t-1} - lr d_t                            (- lr lambda p_{t-1} with
                                                           decoupled_weight_decay, instead
                                                           of the coupled L2)

    psi = ``momentum_decay`` (4e-3 = 1/250, the paper's schedule). The running product P_t
    is carried from step to step (O(1) per step) and saved as ``mu_product``, as torch
    saves it; torch keeps it in a 0-D tensor of the default dtype, so under the usual
    float32 default torch's product carries float32 rounding and descend's (float64) does
    not: the two agree to about 1e-7 relative in the step, exactly under a float64
    default. optax's ``nadam`` has no momentum schedule (mu_t = beta1).
    ``decoupled_weight_decay=True`` is torch's NAdamW. State: ``exp_avg``, ``exp_avg_sq``,
    ``mu_product``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum_decay: float = 4e-3,
                 decoupled_weight_decay: bool = False, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=_pair(betas), eps=eps, weight_decay=weight_decay,
                         momentum_decay=momentum_decay,
                         decoupled_weight_decay=decoupled_weight_decay, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.nadam(weight_decay=group["weight_decay"] != 0,
                             decoupled=group["decoupled_weight_decay"])


class RAdam(RuleOptimizer):
    """RAdam (Liu et al., 2020, "On the Variance of the Adaptive Learning Rate and Beyond"),
    identical to `torch.optim.RAdam`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        m_t = beta1 m_{t-1} + (1 - beta1) g_t,   m_hat_t = m_t / (1 - beta1^t)
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        rho_inf = 2 / (1 - beta2) - 1,   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
        r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
        d_t = m_hat_t r_t sqrt(1 - beta2^t) / (sqrt(v_t) + eps)   if rho_t > 5
        d_t = m_hat_t                                             otherwise
        p_t = p_{t-1} - lr d_t                 (- lr lambda p_{t-1} with decoupled decay)

    While the variance of the adaptive rate is intractable (rho_t <= 5: the first 5 steps
    at beta2 = 0.999, every step when beta2 < 0.6) the step is SGD with bias-corrected
    momentum. The threshold 5 is torch's and the authors' code's (the paper writes 4).
    eps is added to sqrt(v_t) before the bias correction (torch; optax adds it after).
    State: ``exp_avg``, ``exp_avg_sq``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled_weight_decay: bool = False,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=_pair(betas), eps=eps, weight_decay=weight_decay,
                         decoupled_weight_decay=decoupled_weight_decay, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.radam(weight_decay=group["weight_decay"] != 0,
                             decoupled=group["decoupled_weight_decay"])


class Adamax(RuleOptimizer):
    """Adamax (Kingma & Ba, 2015, section 7.1: Adam with the infinity norm), identical to
    `torch.optim.Adamax`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        u_t = max(beta2 u_{t-1}, |g_t| + eps)
        p_t = p_{t-1} - lr m_t / ((1 - beta1^t) u_t)

    eps sits inside the max (torch; the paper has no eps; optax adds it to u_t after the
    max). Complex parameters are two real parameters each, |g| taken per part, as in torch.
    State: ``exp_avg``, ``exp_inf``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 2e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=_pair(betas), eps=eps, weight_decay=weight_decay,
                         **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.adamax(weight_decay=group["weight_decay"] != 0)


class Adadelta(RuleOptimizer):
    """Adadelta (Zeiler, 2012, "ADADELTA: An Adaptive Learning Rate Method"), identical to
    `torch.optim.Adadelta`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        s_t = rho s_{t-1} + (1 - rho) g_t^2
        d_t = sqrt(a_{t-1} + eps) / sqrt(s_t + eps) g_t
        a_t = rho a_{t-1} + (1 - rho) d_t^2
        p_t = p_{t-1} - lr d_t

    The paper has no learning rate (lr = 1, the default here and in torch); a_t accumulates
    the unscaled d_t whatever the lr. The first steps are about sqrt(eps) long and grow as
    a_t fills, so Adadelta starts slowly. State: ``square_avg``, ``acc_delta``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, rho: float = 0.9, eps: float = 1e-6,
                 weight_decay: float = 0.0, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, rho=rho, eps=eps, weight_decay=weight_decay, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.adadelta(weight_decay=group["weight_decay"] != 0)


class ASGD(RuleOptimizer):
    """Averaged stochastic gradient descent (Polyak & Juditsky, 1992, "Acceleration of
    Stochastic Approximation by Averaging"; step sizes after Bottou), identical to
    `torch.optim.ASGD`::

        g_t = grad + lambda_wd p_{t-1}                   (coupled L2, if weight_decay > 0)
        p_t = p_{t-1} - eta_{t-1} (g_t + lambd p_{t-1})
        ax_t = ax_{t-1} + mu_{t-1} (p_t - ax_{t-1})
        eta_t = lr / (1 + lambd lr t)^alpha,   mu_t = 1 / max(1, t - t0)
        eta_0 = lr (at the first step),  mu_0 = 1

    The parameters follow the plain iterates; the average ax_t (for an integer t0, the
    running mean of the iterates from p_{t0+2} on, since mu lags a step; the iterate itself
    before) is kept in the state, as in torch:
    evaluate with ``opt.state[p]["ax"]``. eta and mu are carried from one step to the next
    under torch's names, so each step uses the values computed at the previous one (torch's
    order; eta from the lr of that step). torch rounds them to its default dtype (float32
    usually) in its state; descend keeps float64 numbers. ``alpha`` here is the exponent of
    the step-size decay (any alpha >= 0), not RMSprop's decay rate. State: ``ax``, ``eta``,
    ``mu``, ``step``.
    """

    checks: ClassVar[dict[str, Check]] = {"alpha": non_negative}

    def __init__(self, params: ParamsT, lr: float = 1e-2, lambd: float = 1e-4,
                 alpha: float = 0.75, t0: float = 1e6, weight_decay: float = 0.0,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, lambd=lambd, alpha=alpha, t0=t0,
                         weight_decay=weight_decay, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.asgd(weight_decay=group["weight_decay"] != 0)


class Rprop(RuleOptimizer):
    """Resilient backpropagation (Riedmiller & Braun, 1993), identical to
    `torch.optim.Rprop`::

        s = sign(g_t g_{t-1})
        delta_t = clamp(delta_{t-1} * (eta_plus if s > 0, eta_minus if s < 0, 1 if s = 0),
                        step_sizes[0], step_sizes[1]),     delta_0 = lr
        g_t = 0 where s < 0                  (no step, and no sign to compare next time)
        p_t = p_{t-1} - sign(g_t) delta_t

    (eta_minus, eta_plus) = ``etas``. Only the signs of the gradients matter, and each
    coordinate has its own step size, which lr only initialises: a scheduler's change of
    lr does not reach existing state (as in torch). Rprop is meant for full-batch training.
    This is torch's variant without weight backtracking ("Rprop-"). State: ``prev``,
    ``step_size``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2,
                 etas: tuple[float, float] = (0.5, 1.2),
                 step_sizes: tuple[float, float] = (1e-6, 50),
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, etas=_pair(etas), step_sizes=_pair(step_sizes),
                         **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.rprop()
