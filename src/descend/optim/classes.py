"""The public optimizers. Each is a recipe plus torch-style hyperparameters and defaults.

Where torch has the algorithm, the class takes torch's argument names and defaults and
computes torch's formula (tested to ~1e-10 in float64). Every class also takes the
keyword-only `Options`: torch's ``maximize``, ``foreach``, ``fused``, ``capturable`` and
``differentiable``, and descend's ``nonfinite`` and ``backend`` (see `RuleOptimizer`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import torch
from typing_extensions import Unpack

from .. import recipes
from ..backends.common import real_view
from ..rules.base import Rule
from ..rules.schedule_free import to_eval_point, to_train_point
from .base import ParamsT, RuleOptimizer
from .checks import (
    beta_triple,
    non_negative,
    optional_unit_interval,
    positive_int,
    positive_or_inf,
)


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
    stochastic_rounding: bool | None
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

    eps sits outside the square root, as in torch; Keras 3 puts it inside, a difference of
    at most eps/sqrt(s) relative (docs/keras.md). State: ``sum``, ``step``.
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


class _ScheduleFree(RuleOptimizer):
    """The train/eval switch shared by the schedule-free optimizers.

    The parameters hold y (where gradients are taken) in train mode and x (the average the
    model should be evaluated at) in eval mode; the state holds z. Each group records its
    mode in ``group["train_mode"]``, so a state dict carries it and a resumed optimizer
    knows what its parameters hold.
    """

    def _beta(self, group: dict[str, Any]) -> float:
        raise NotImplementedError

    def check_group(self, group: dict[str, Any]) -> None:
        if not self._beta(group) > 0:
            name = "momentum" if "momentum" in group else "betas[0]"
            raise ValueError(f"{type(self).__name__}: {name} must be > 0 (x is recovered "
                             f"from y and z by dividing by it), got {self._beta(group)!r}")

    @torch.no_grad()
    def eval(self) -> None:
        """Switch the parameters to x, the averaged point to evaluate (and save) the model
        at: ``x = lerp(y, z, 1 - 1/beta)``. Does nothing in eval mode."""
        self._switch(False, to_eval_point)

    @torch.no_grad()
    def train(self) -> None:
        """Switch the parameters back to y, where gradients are taken:
        ``y = lerp(x, z, 1 - beta)``. Does nothing in train mode."""
        self._switch(True, to_train_point)

    def _switch(self, train: bool, point: Any) -> None:
        for group in self.param_groups:
            if group["train_mode"] == train:
                continue
            beta = self._beta(group)
            for p in group["params"]:
                z = self.state[p].get("z") if p in self.state else None
                if z is not None:
                    view = real_view(p)
                    view.copy_(point(view, z.to(view.device), beta))
            group["train_mode"] = train

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        for gi, group in enumerate(self.param_groups):
            if not group["train_mode"]:
                raise RuntimeError(
                    f"{type(self).__name__}: step() in eval mode (group {gi}): the parameters "
                    "hold the average x, not y. Call optimizer.train() before training steps "
                    "and optimizer.eval() before evaluating or saving the model")
        return super().step(closure)


class ScheduleFreeSGD(_ScheduleFree):
    """Schedule-free SGD (Defazio et al., 2024, "The Road Less Scheduled")::

        gamma_k = lr min(1, (k + 1) / warmup_steps)              (built-in linear warmup)
        g_k = grad f(y_k) + lambda y_k                           (L2 at y, if weight_decay)
        z_{k+1} = z_k - gamma_k g_k
        x_{k+1} = (1 - c_{k+1}) x_k + c_{k+1} z_{k+1},   c_{k+1} = w_{k+1} / sum_i w_i
        y_{k+1} = (1 - beta) z_{k+1} + beta x_{k+1},     beta = momentum
        w_k = k^r gamma_max^weight_lr_power                      (gamma_max: largest gamma_k)

    The same numbers as the `schedulefree` package's ``SGDScheduleFree`` and
    ``SGDScheduleFreeReference`` (tested in float64), with its arguments and defaults, run
    in the package's in-place form (`descend.rules.schedule_free`).

    **Train and eval modes.** The parameters hold y while training: call ``opt.eval()``
    before evaluating or saving the model (they then hold x, the point the theory is about)
    and ``opt.train()`` before the next training step; ``step()`` in eval mode raises. The
    mode is ``group["train_mode"]`` and travels in the state dict. Unlike the package's
    class, a new optimizer starts in train mode (its parameters are y = x = z then), so a
    loop that never calls ``train()`` trains; it must still call ``eval()`` to evaluate at x.

    **Schedules.** Warmup is built in (``warmup_steps``), and no decaying schedule is needed:
    the average x does what a decay would, which is the point of the method. A descend
    schedule on ``lr`` still works (it multiplies into gamma_k, and the averaging weights
    follow gamma_max), but decaying the lr to zero defeats the method. Other differences
    from the package: the gradient tensors are left as they are (the package adds the weight
    decay into ``p.grad`` in place); c and gamma are computed per parameter from its own
    step count (the package counts per group: the same when every parameter has a gradient
    at every step). State: ``z``, and the carried ``lr_max`` and ``weight_sum``.
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, momentum: float = 0.9,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, momentum=momentum, weight_decay=weight_decay,
                         warmup_steps=warmup_steps, r=r, weight_lr_power=weight_lr_power,
                         train_mode=True, **options)

    def _beta(self, group: dict[str, Any]) -> float:
        return group["momentum"]

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.schedule_free_sgd(weight_decay=group["weight_decay"] != 0)


class ScheduleFreeAdamW(_ScheduleFree):
    """Schedule-free AdamW (Defazio et al., 2024, "The Road Less Scheduled")::

        gamma_k = lr min(1, (k + 1) / warmup_steps)              (built-in linear warmup)
        v_k = beta2 v_{k-1} + (1 - beta2) g_k^2,  g_k = grad f(y_k)
        d_k = g_k / (sqrt(v_k / (1 - beta2^(k+1))) + eps) + lambda y_k
        z_{k+1} = z_k - gamma_k d_k
        x_{k+1} = (1 - c_{k+1}) x_k + c_{k+1} z_{k+1},   c_{k+1} = w_{k+1} / sum_i w_i
        y_{k+1} = (1 - beta1) z_{k+1} + beta1 x_{k+1}
        w_k = k^r gamma_max^weight_lr_power                      (gamma_max: largest gamma_k)

    The same numbers as the `schedulefree` package's ``AdamWScheduleFree`` and
    ``AdamWScheduleFreeReference`` (tested in float64), with its arguments and defaults.
    There is no first moment: the interpolation between x and z plays its part. The weight
    decay is taken at y, after Adam's scaling (so decoupled from it, and scaled by gamma);
    ``decay_at_z=True`` takes it at z, as the package's reference class offers.

    **Train and eval modes** and **schedules**: as for `ScheduleFreeSGD`. Call
    ``opt.eval()`` before evaluating or saving the model and ``opt.train()`` before training;
    warmup is built in and no decaying lr schedule is needed. Differences from the package:
    a new optimizer starts in train mode; ``p.grad`` is left as it is (the package divides it
    in place); c and gamma are computed per parameter from its own step count. State: ``z``,
    ``exp_avg_sq``, and the carried ``lr_max`` and ``weight_sum``.
    """

    def __init__(self, params: ParamsT, lr: float = 0.0025,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, warmup_steps: int = 0, r: float = 0.0,
                 weight_lr_power: float = 2.0, *, decay_at_z: bool = False,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                         eps=eps, weight_decay=weight_decay, warmup_steps=warmup_steps, r=r,
                         weight_lr_power=weight_lr_power, decay_at_z=decay_at_z,
                         train_mode=True, **options)

    def _beta(self, group: dict[str, Any]) -> float:
        return group["betas"][0]

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.schedule_free_adamw(weight_decay=group["weight_decay"] != 0,
                                           decay_at_z=group["decay_at_z"])


class AdEMAMix(RuleOptimizer):
    """AdEMAMix (Pagliardini, Ablin & Grangier, 2024, "The AdEMAMix Optimizer: Better,
    Faster, Older")::

        g_t = grad + lambda p_{t-1}                  (coupled L2, the default with weight_decay)
        m1_t = beta1 m1_{t-1} + (1 - beta1) g_t
        m2_t = beta3_t m2_{t-1} + (1 - beta3_t) g_t
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        p_t = p_{t-1} - lr (m1_t / (1 - beta1^t) + alpha_t m2_t) / (sqrt(v_t / (1 - beta2^t)) + eps)

    with alpha_t and beta3_t warmed up over ``t_alpha_beta3`` steps (None: constant; see
    `descend.rules.scale_by_ademamix`). ``weight_decouple=True`` decays as AdamW does,
    ``p (1 - lr lambda)`` (the paper's form), and with ``fixed_decay=True`` by
    ``p (1 - lambda)``, independent of lr.

    Arguments, names and defaults are pytorch-optimizer's ``AdEMAMix`` (tested against it in
    float64): coupled L2 by default, alpha = 5, one warmup horizon for alpha and beta3 (the
    paper's code has one for each, ``alpha_warmup`` and ``beta3_warmup``, which it sets equal).
    Not supported: pytorch-optimizer's ``cautious`` and ``stable_adamw`` group extras.
    State: ``exp_avg``, ``exp_avg_sq``, ``exp_avg_slow``, ``step``.
    """

    checks = {"betas": beta_triple, "alpha": non_negative}

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float, float] = (0.9, 0.999, 0.9999),
                 weight_decay: float = 0.0, weight_decouple: bool = False,
                 fixed_decay: bool = False, alpha: float = 5.0,
                 t_alpha_beta3: float | None = None, eps: float = 1e-8,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                         weight_decay=weight_decay, weight_decouple=weight_decouple,
                         fixed_decay=fixed_decay, alpha=alpha, t_alpha_beta3=t_alpha_beta3,
                         eps=eps, **options)

    def check_group(self, group: dict[str, Any]) -> None:
        if group["t_alpha_beta3"] is not None:
            for i in (0, 2):
                if not group["betas"][i] > 0:
                    raise ValueError(f"{type(self).__name__}: betas[{i}] must be > 0 when "
                                     f"t_alpha_beta3 is set (beta3's warmup takes its log), "
                                     f"got {group['betas'][i]!r}")

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.ademamix(weight_decay=group["weight_decay"] != 0,
                                decoupled=group["weight_decouple"],
                                fixed=group["fixed_decay"])


class Prodigy(RuleOptimizer):
    """Prodigy (Mishchenko & Defazio, 2023, "Prodigy: An Expeditiously Adaptive
    Parameter-Free Learner"): Adam whose step size d is estimated as it trains::

        lambda_k = d_k lr b_k       (b_k: Adam's bias correction with use_bias_correction)
        r_k = beta3 r_{k-1} + (d_k / d0) lambda_k <g_k, p_0 - p_k>
        s_k = beta3 s_{k-1} + (d_k / d0) lambda_k g_k
        d_{k+1} = min(max(d_max, d_coef r_k / |s_k|_1), growth_rate d_k)
        m_k = beta1 m_{k-1} + (1 - beta1) d_k g_k,  v_k = beta2 v_{k-1} + (1 - beta2) d_k^2 g_k^2
        p_{k+1} = p_k - lambda_k [ m_k / (sqrt(v_k) + d_{k+1} eps) + lambda p_k ]

    (details in `descend.rules.scale_by_prodigy`). Leave ``lr`` at 1: it multiplies the
    estimated step. The sums run over every parameter of the group, so the rule declares a
    group reduction; ``d``, ``d_max`` and ``d_numerator`` live in the param group as in the
    `prodigyopt` package (log ``opt.param_groups[0]["d"]``), and travel in the state dict.

    Arguments, names and defaults are prodigyopt's (tested against it in float64), except
    ``fsdp_in_use``, which descend does not offer (no all-reduce: under sharding each rank
    estimates d from its shard). One d per param group, where prodigyopt shares one across
    groups. ``decouple=True`` (default) decays as AdamW does, scaled by lambda_k; False adds
    lambda p to the gradient. A learning-rate schedule multiplies lr as usual (prodigyopt
    recommends cosine annealing with it; warmup comes from ``safeguard_warmup`` and
    ``growth_rate``). State: ``s``, ``p0``, ``exp_avg`` (beta1 > 0), ``exp_avg_sq``, ``step``.
    """

    checks = {"growth_rate": positive_or_inf, "beta3": optional_unit_interval}

    def __init__(self, params: ParamsT, lr: float = 1.0,
                 betas: tuple[float, float] = (0.9, 0.999), beta3: float | None = None,
                 eps: float = 1e-8, weight_decay: float = 0.0, decouple: bool = True,
                 use_bias_correction: bool = False, safeguard_warmup: bool = False,
                 d0: float = 1e-6, d_coef: float = 1.0, growth_rate: float = float("inf"),
                 slice_p: int = 1, **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=tuple(betas) if isinstance(betas, list) else betas,
                         beta3=beta3, eps=eps, weight_decay=weight_decay, decouple=decouple,
                         use_bias_correction=use_bias_correction,
                         safeguard_warmup=safeguard_warmup, d0=d0, d_coef=d_coef,
                         growth_rate=growth_rate, slice_p=slice_p, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.prodigy(momentum=group["betas"][0] > 0,
                               weight_decay=group["weight_decay"] != 0,
                               decouple=group["decouple"], slice_p=group["slice_p"])


class LBFGS(RuleOptimizer):
    """L-BFGS (Liu & Nocedal, 1989), identical to `torch.optim.LBFGS` (tested in float64)::

        d = -H g        H: the inverse-Hessian estimate from the last history_size pairs
                        (s, y) = (x_{i+1} - x_i, g_{i+1} - g_i), by the two-loop recursion
        x <- x + t d    t = lr, or found by a strong-Wolfe line search

    repeated up to ``max_iter`` times per `step` (see `descend.rules.lbfgs` for the stopping
    rules). The parameters of the group are treated as one vector. ``step(closure)`` needs
    the closure, which re-evaluates the model and returns the loss::

        def closure():
            opt.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            return loss
        opt.step(closure)

    As in torch: one param group only, the state of the whole group lives in the state of
    its first parameter (torch's layout, so state dicts load both ways), and it needs memory
    for 2 ``history_size`` copies of the parameters. Parameters without a gradient when the
    step starts sit it out (their missing gradients inside the step count as zeros, as in
    torch); if the set changes from one step to the next, the step raises, where torch
    would count the missing gradients as zeros. A learning-rate schedule changes ``lr``
    between steps as usual; a step itself runs many iterations at one lr. Differences:
    ``maximize`` is offered (torch's LBFGS has none), and the step's total move is added
    to the parameters at the end (torch moves them at every iteration; the two agree to
    rounding, exactly when the move is small).
    """

    def __init__(self, params: ParamsT, lr: float = 1.0, max_iter: int = 20,
                 max_eval: int | None = None, tolerance_grad: float = 1e-7,
                 tolerance_change: float = 1e-9, history_size: int = 100,
                 line_search_fn: str | None = None, **options: Unpack[Options]) -> None:
        if max_eval is None:
            positive_int(type(self).__name__, "max_iter", max_iter)
            max_eval = max_iter * 5 // 4
        super().__init__(params, lr=lr, max_iter=max_iter, max_eval=max_eval,
                         tolerance_grad=tolerance_grad, tolerance_change=tolerance_change,
                         history_size=history_size, line_search_fn=line_search_fn, **options)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        if self.param_groups:
            raise ValueError(f"{type(self).__name__} doesn't support per-parameter options "
                             "(parameter groups): it treats all parameters as one vector")
        super().add_param_group(param_group)

    def check_group(self, group: dict[str, Any]) -> None:
        if group["line_search_fn"] not in (None, "strong_wolfe"):
            raise ValueError(f"{type(self).__name__}: line_search_fn must be None or "
                             f"'strong_wolfe', got {group['line_search_fn']!r}")

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.lbfgs(line_search=group["line_search_fn"] == "strong_wolfe")
