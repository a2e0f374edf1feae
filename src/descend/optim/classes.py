"""The public optimizers. Each is a recipe plus torch-style hyperparameters and defaults.

Where torch has the algorithm, the class takes torch's argument names and defaults and
computes torch's formula (tested to ~1e-10 in float64). Every class also takes the
keyword-only `Options`: torch's ``maximize``, ``foreach``, ``fused``, ``capturable`` and
``differentiable``, and descend's ``nonfinite`` and ``backend`` (see `RuleOptimizer`).
"""

from __future__ import annotations

from typing import Any, TypedDict

from typing_extensions import Unpack

from .. import recipes
from ..rules.base import Rule
from .base import ParamsT, RuleOptimizer


class Options(TypedDict, total=False):
    """Keyword-only options every optimizer takes (see `RuleOptimizer`)."""

    maximize: bool
    foreach: bool | None
    fused: bool | None
    capturable: bool
    differentiable: bool
    nonfinite: str
    backend: str
    state_dtype: str | None
    stochastic_rounding: bool
    rounding_seed: int | None


class SGD(RuleOptimizer):
    r"""Stochastic gradient descent, optionally with heavy-ball or Nesterov momentum.

    Identical to `torch.optim.SGD`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        b = g when the buffer is created,                (if momentum mu > 0; torch's copy)
        b_t = mu b_{t-1} + (1 - tau) g_t after
        d_t = b_t,  or  g_t + mu b_t with nesterov
        p_t = p_{t-1} - lr d_t

    The same class serves full-batch gradient descent, SGD and mini-batch SGD: the regime is
    how much data made the gradient, not a different rule. Momentum here is heavy-ball
    (accumulating, Polyak 1964; Nesterov as in Sutskever et al. 2013); for the
    exponential-moving-average form of the tutorials use `Momentum`. State:
    ``momentum_buffer`` (with momentum).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, **options)

    def check_group(self, group: dict[str, Any]) -> None:
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError(f"{type(self).__name__}: nesterov=True needs momentum > 0 and "
                             f"dampening = 0, got momentum={group['momentum']!r}, "
                             f"dampening={group['dampening']!r}")

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.sgd(momentum=group["momentum"] != 0, nesterov=group["nesterov"],
                           weight_decay=group["weight_decay"] != 0)


class Nesterov(SGD):
    """`SGD` with Nesterov momentum switched on (momentum=0.9 by default).

    The equations are SGD's with ``nesterov=True``: ``d_t = g_t + mu b_t``. A class of its
    own so that the lab and the CLI can name it.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, momentum: float = 0.9,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = True,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, momentum=momentum, dampening=dampening,
                         weight_decay=weight_decay, nesterov=nesterov, **options)


class Momentum(RuleOptimizer):
    """Gradient descent with momentum in its exponential-moving-average form::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        v_t = beta v_{t-1} + (1 - beta) g_t,  v_0 = 0
        d_t = v_t,  or  beta v_t + (1 - beta) g_t with nesterov
        p_t = p_{t-1} - lr d_t

    This is the form the classic tutorials (and Andrew Ng's course) write, with beta =
    ``momentum``. It differs from torch's heavy-ball SGD by the factor (1 - beta) on the
    gradient: for a constant gradient v_t tends to g, so the step stays lr * g and an lr
    tuned for plain SGD keeps its meaning, while heavy-ball's grows to lr * g / (1 - mu).
    torch.optim has no equivalent; SGD(momentum=mu, dampening=mu) matches it from the
    second step on (torch copies g into the buffer at the first step). State:
    ``momentum_buffer``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, momentum: float = 0.9,
                 weight_decay: float = 0.0, nesterov: bool = False,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         nesterov=nesterov, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.momentum(nesterov=group["nesterov"],
                                weight_decay=group["weight_decay"] != 0)


class Adagrad(RuleOptimizer):
    """AdaGrad (Duchi, Hazan & Singer, 2011), identical to `torch.optim.Adagrad`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        s_t = s_{t-1} + g_t^2,  s_0 = initial_accumulator_value
        lr_t = lr / (1 + (t - 1) lr_decay)
        p_t = p_{t-1} - lr_t g_t / (sqrt(s_t) + eps)

    eps sits outside the square root (torch and Keras both). State: ``sum``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                         initial_accumulator_value=initial_accumulator_value, eps=eps,
                         **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.adagrad(initial_accumulator_value=float(group["initial_accumulator_value"]),
                               lr_decay=group["lr_decay"] != 0,
                               weight_decay=group["weight_decay"] != 0)


class RMSprop(RuleOptimizer):
    """RMSProp (Hinton, 2012), torch's formulation by default::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        s_t = alpha s_{t-1} + (1 - alpha) g_t^2
        S_t = s_t - m_t^2 with m_t = alpha m_{t-1} + (1 - alpha) g_t  (centered), else s_t
        r_t = sqrt(S_t) + eps        (default, as torch.optim.RMSprop)
        r_t = sqrt(S_t + eps)        (eps_inside_sqrt=True, as Keras and many textbooks)
        b_t = mu b_{t-1} + g_t / r_t and d_t = b_t  (momentum mu > 0), else d_t = g_t / r_t
        p_t = p_{t-1} - lr d_t

    With the defaults it equals `torch.optim.RMSprop` (tested in float64). Note the two eps
    placements are not interchangeable at the same eps: inside the root, eps acts like eps^2
    outside. State: ``square_avg``, ``grad_avg`` (centered), ``momentum_buffer`` (momentum).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-2, alpha: float = 0.99,
                 eps: float = 1e-8, weight_decay: float = 0.0, momentum: float = 0.0,
                 centered: bool = False, eps_inside_sqrt: bool = False,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                         momentum=momentum, centered=centered, eps_inside_sqrt=eps_inside_sqrt,
                         **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.rmsprop(centered=group["centered"],
                               eps_inside_sqrt=group["eps_inside_sqrt"],
                               momentum=group["momentum"] != 0,
                               weight_decay=group["weight_decay"] != 0)


class Adam(RuleOptimizer):
    """Adam (Kingma & Ba, 2015, Algorithm 1), identical to `torch.optim.Adam`::

        g_t = grad + lambda p_{t-1}                      (coupled L2, if weight_decay > 0)
        m_t = beta1 m_{t-1} + (1 - beta1) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        vmax_t = max(vmax_{t-1}, v_t), used for v_t      (amsgrad; Reddi et al., 2018)
        p_t = p_{t-1} - lr (m_t / (1 - beta1^t)) / (sqrt(v_t / (1 - beta2^t)) + eps)

    eps is added after the bias correction (the paper; torch). Keras adds its "epsilon hat"
    to sqrt(v_t) before correcting, which matters only at tiny v. ``weight_decay`` here is
    coupled L2, which Adam's scaling weakens for parameters with large gradients; prefer
    `AdamW`, or ``decoupled_weight_decay=True`` (torch's switch, which makes this AdamW).
    ``bias_correction=False`` drops both corrections (not in torch), to show what
    they are for: the first steps then shrink by about (1 - beta1) / sqrt(1 - beta2).
    State: ``exp_avg``, ``exp_avg_sq``, ``max_exp_avg_sq`` (amsgrad), ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, amsgrad: bool = False, *,
                 decoupled_weight_decay: bool = False, bias_correction: bool = True,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                         eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                         decoupled_weight_decay=decoupled_weight_decay,
                         bias_correction=bias_correction, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.adam(amsgrad=group["amsgrad"], bias_correction=group["bias_correction"],
                            weight_decay=group["weight_decay"] != 0,
                            decoupled=group["decoupled_weight_decay"])


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019), identical to `torch.optim.AdamW`::

        m_t, v_t, bias corrections as in `Adam` (on the raw gradient)
        p_t = p_{t-1} - lr [ m_hat_t / (sqrt(v_hat_t) + eps) + lambda p_{t-1} ]

    The weight decay is decoupled: it is applied to the parameter directly, scaled by lr
    (torch's convention: the effective decay per step is lr * lambda; the paper's schedule
    multiplier eta_t is the lr schedule). Default weight_decay = 1e-2 as torch. This is
    `Adam` with ``decoupled_weight_decay=True``, as in torch.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 bias_correction: bool = True, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, decoupled_weight_decay=True,
                         bias_correction=bias_correction, **options)


class Lion(RuleOptimizer):
    """Lion (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms")::

        d_t = sign(beta1 m_{t-1} + (1 - beta1) g_t)
        m_t = beta2 m_{t-1} + (1 - beta2) g_t
        p_t = p_{t-1} - lr (d_t + lambda p_{t-1})       (decoupled weight decay)

    Not in torch.optim; tested against a transcription of the paper's Algorithm 2. Every
    coordinate moves by lr each step, so use an lr 3-10x below AdamW's. State: ``exp_avg``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-4,
                 betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                         weight_decay=weight_decay, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.lion(weight_decay=group["weight_decay"] != 0)
