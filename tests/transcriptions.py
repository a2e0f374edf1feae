"""Direct transcriptions of the published update equations, for optimizers torch lacks.

Deliberately naive: one Python function per algorithm, scalar hyperparameters, no shared
code with descend. Each takes (params, grads, state, step) for a list of float64 tensors,
updates params in place and returns nothing.
"""

from __future__ import annotations

import torch


def ema_momentum(params, grads, state, t, *, lr, momentum, weight_decay=0.0, nesterov=False):
    # v_t = beta v_{t-1} + (1 - beta) g_t ; theta -= lr v_t  (Nesterov: beta v_t + (1-beta) g_t)
    beta = momentum
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + weight_decay * p
        v = state.setdefault(i, torch.zeros_like(p))
        v = beta * v + (1 - beta) * g
        state[i] = v
        d = beta * v + (1 - beta) * g if nesterov else v
        p -= lr * d


def rmsprop_eps_inside(params, grads, state, t, *, lr, alpha, eps, centered=False,
                       weight_decay=0.0, momentum=0.0):
    # s_t = alpha s + (1 - alpha) g^2 ; theta -= lr g / sqrt(s_t (- m_t^2) + eps)
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + weight_decay * p
        st = state.setdefault(i, {"s": torch.zeros_like(p), "m": torch.zeros_like(p),
                                  "b": torch.zeros_like(p)})
        st["s"] = alpha * st["s"] + (1 - alpha) * g * g
        S = st["s"]
        if centered:
            st["m"] = alpha * st["m"] + (1 - alpha) * g
            S = S - st["m"] ** 2
        step = g / torch.sqrt(S + eps)
        if momentum:
            st["b"] = momentum * st["b"] + step
            step = st["b"]
        p -= lr * step


def adam_no_bias_correction(params, grads, state, t, *, lr, betas, eps, weight_decay=0.0,
                            amsgrad=False):
    # Kingma & Ba Algorithm 1 with the two bias-correction lines removed.
    b1, b2 = betas
    for i, (p, g) in enumerate(zip(params, grads)):
        g = g + weight_decay * p
        st = state.setdefault(i, {"m": torch.zeros_like(p), "v": torch.zeros_like(p),
                                  "vmax": torch.zeros_like(p)})
        st["m"] = b1 * st["m"] + (1 - b1) * g
        st["v"] = b2 * st["v"] + (1 - b2) * g * g
        v = st["v"]
        if amsgrad:
            st["vmax"] = torch.maximum(st["vmax"], v)
            v = st["vmax"]
        p -= lr * st["m"] / (torch.sqrt(v) + eps)


def lion(params, grads, state, t, *, lr, betas, weight_decay=0.0):
    # Chen et al. 2023, Algorithm 2.
    b1, b2 = betas
    for i, (p, g) in enumerate(zip(params, grads)):
        m = state.setdefault(i, torch.zeros_like(p))
        c = b1 * m + (1 - b1) * g
        p -= lr * (torch.sign(c) + weight_decay * p)
        state[i] = b2 * m + (1 - b2) * g
