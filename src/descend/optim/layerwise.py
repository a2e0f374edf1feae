"""Layer-wise adaptive optimizers for large batches: LARS and LAMB.

Their trust ratios reduce over each parameter tensor, so they run one tensor at a time on
every backend (``reduction="tensor"``); LAMB's optional global clipping reduces over the
whole group.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import Unpack

from .. import recipes
from ..rules.base import Rule
from .base import ParamsT, RuleOptimizer
from .classes import Options


def _pair(betas: Any) -> Any:
    return tuple(betas) if isinstance(betas, list) else betas


class LAMB(RuleOptimizer):
    r"""LAMB (You et al., 2020, "Large Batch Optimization for Deep Learning: Training BERT
    in 76 minutes", Algorithm 2), with pytorch-optimizer's ``Lamb`` arguments and defaults::

        g_t = g_t min(1, c / (||g|| + eps))            (pre_norm; ||g|| over the group)
        m_t = beta1 m_{t-1} + beta3 g_t                 (beta3 = 1 - beta1 with grad_averaging)
        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        r_t = m_t / (sqrt(v_t) + eps)                   (debias="moments": bias-corrected m, v)
        r_t = r_t + lambda theta_{t-1}                  (coupled decay, weight_decouple=False)
        q_t = min(||theta||, clamp) / (||r_t|| + eps)   (trust ratio; 1 if a norm is 0;
                                                         1 always with adam=True)
        theta_t = theta - lr q_t r_t / (1 - beta1^t)    (debias="step"; "moments", "none": no /)
        theta_t = theta_t - lr lambda theta_{t-1}       (decoupled decay, the default; fixed_decay:
                                                         lambda theta_{t-1})

    Which formulation. The trust ratio is the paper's phi(||x||) / ||r + lambda x|| with
    phi(z) = min(z, clamp) (the paper's upper bound gamma_u; clamp = 10 as
    pytorch-optimizer) and eps in the denominator. By default this is
    pytorch-optimizer's LAMB exactly (tested against ``pytorch_optimizer.Lamb`` in
    float64): decoupled weight decay, measured in the trust ratio on the decayed weights;
    no correction of v, and the first moment's correction applied to the step after the
    trust ratio (``debias="step"``). The paper's algorithm corrects both moments before
    the ratio and adds lambda x inside it: ``debias="moments", weight_decouple=False``
    (NVIDIA's FusedLAMB, timm's Lamb; tested against a transcription of Algorithm 2).
    ``debias="none"`` is pytorch-optimizer's ``adam_debias=True``.

    Differences from pytorch-optimizer: ``pre_norm`` clips each group by its own norm,
    computed in the parameters' dtype (pytorch-optimizer: one float32 norm over all
    groups, with the first group's max_grad_norm and eps), and the gradients are not
    modified in place; ``clamp`` is a hyperparameter (a class attribute there); the
    rectified (RAdam) and AdaNorm variants pytorch-optimizer also offers (``rectify``,
    ``degenerated_to_sgd``, ``n_sma_threshold``, ``adanorm``) are not LAMB and are not
    provided; the diagnostics it keeps in the state (``weight_norm``, ``adam_norm``,
    ``trust_ratio``) are not kept. State: ``exp_avg``, ``exp_avg_sq``, ``step``.
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0,
                 weight_decouple: bool = True, fixed_decay: bool = False,
                 grad_averaging: bool = True, max_grad_norm: float = 1.0, adam: bool = False,
                 pre_norm: bool = False, eps: float = 1e-6, *, clamp: float = 10.0,
                 debias: str = "step", **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, betas=_pair(betas), weight_decay=weight_decay,
                         weight_decouple=weight_decouple, fixed_decay=fixed_decay,
                         grad_averaging=grad_averaging, max_grad_norm=max_grad_norm,
                         adam=adam, pre_norm=pre_norm, eps=eps, clamp=clamp, debias=debias,
                         **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.lamb(weight_decay=group["weight_decay"] != 0,
                            weight_decouple=group["weight_decouple"],
                            fixed_decay=group["fixed_decay"],
                            grad_averaging=group["grad_averaging"], adam=group["adam"],
                            pre_norm=group["pre_norm"], debias=group["debias"])


class LARS(RuleOptimizer):
    r"""LARS (You, Gitman & Ginsburg, 2017, "Large Batch Training of Convolutional Networks",
    Algorithm 1), with momentum, as pytorch-optimizer's ``LARS``::

        matrices and higher (ndim > 1):
            q_t = eta ||theta|| / (||g_t|| + lambda ||theta||)     (1 if a norm is 0)
            d_t = q_t (g_t + lambda theta)
        scalars and vectors:  d_t = g_t                         (no adaptation, no decay)
        b_t = mu b_{t-1} + (1 - tau) d_t,  b_0 = 0               (momentum mu > 0)
        d_t = b_t,  or  d_t + mu b_t with nesterov
        theta_t = theta - lr d_t

    eta = ``trust_coefficient`` (the paper's 0.001). Tested against
    ``pytorch_optimizer.LARS`` in float64. Differences from the paper: the global lr
    multiplies the step outside the momentum buffer (the paper puts gamma_t inside, v =
    m v + gamma_t lambda_l (g + beta w); the two agree for a constant lr), and one-dimensional
    parameters are left out of the adaptation and the decay (the common practice since Goyal
    et al. 2017, and pytorch-optimizer's). Unlike torch's SGD, the buffer starts at zero, so
    the first step is (1 - tau) d_1 (pytorch-optimizer's; torch copies d_1). State:
    ``momentum_buffer`` (with momentum).
    """

    def __init__(self, params: ParamsT, lr: float = 1e-3, weight_decay: float = 0.0,
                 momentum: float = 0.9, dampening: float = 0.0,
                 trust_coefficient: float = 1e-3, nesterov: bool = False,
                 **options: Unpack[Options]) -> None:
        super().__init__(params, lr=lr, weight_decay=weight_decay, momentum=momentum,
                         dampening=dampening, trust_coefficient=trust_coefficient,
                         nesterov=nesterov, **options)

    def recipe(self, group: dict[str, Any]) -> Rule:
        return recipes.lars(momentum=group["momentum"] != 0, nesterov=group["nesterov"])
