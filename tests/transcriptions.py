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


def muon(params, grads, state, t, *, lr, momentum=0.95, nesterov=True, weight_decay=0.0,
         ns_coefficients=(3.4445, -4.7750, 2.0315), ns_steps=5, eps=1e-7, maximize=False):
    # Keller Jordan's Muon (2024) in float64: EMA momentum, Nesterov look-ahead, quintic
    # Newton-Schulz on the wide orientation, lr scaled by sqrt(max(1, rows / cols)).
    a, b, c = ns_coefficients
    for i, (p, g) in enumerate(zip(params, grads)):
        g = -g if maximize else g
        buf = state.setdefault(i, torch.zeros_like(p))
        buf = momentum * buf + (1 - momentum) * g
        state[i] = buf
        m = (1 - momentum) * g + momentum * buf if nesterov else buf
        x = m.T if m.shape[0] > m.shape[1] else m
        x = x / max(float(torch.sqrt((x * x).sum())), eps)
        for _ in range(ns_steps):
            A = x @ x.T
            x = a * x + (b * A + c * A @ A) @ x
        o = x.T if m.shape[0] > m.shape[1] else x
        scale = max(1.0, p.shape[0] / p.shape[1]) ** 0.5
        p -= lr * weight_decay * p + lr * scale * o


def lamb(params, grads, state, t, *, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0,
         clamp=10.0):
    # You et al. 2020, Algorithm 2 (LAMB), with phi(z) = min(z, clamp) and eps added to
    # ||r + lambda x|| (the implementations' guard; the paper has none).
    b1, b2 = betas
    for i, (p, g) in enumerate(zip(params, grads)):
        st = state.setdefault(i, {"m": torch.zeros_like(p), "v": torch.zeros_like(p)})
        st["m"] = b1 * st["m"] + (1 - b1) * g
        st["v"] = b2 * st["v"] + (1 - b2) * g * g
        m_hat = st["m"] / (1 - b1**t)
        v_hat = st["v"] / (1 - b2**t)
        r = m_hat / (torch.sqrt(v_hat) + eps) + weight_decay * p
        phi = min(float(torch.sqrt((p * p).sum())), clamp)
        r_norm = float(torch.sqrt((r * r).sum()))
        ratio = phi / (r_norm + eps) if phi > 0 and r_norm > 0 else 1.0
        p -= lr * ratio * r


def soap(params, grads, state, t, *, lr, betas=(0.95, 0.95), eps=1e-8, weight_decay=0.0,
         precondition_frequency=10):
    # Vyas et al. 2024, Algorithm 3 for matrices (Q_L^T G Q_R with explicit products) and
    # Adam for vectors; Algorithm 4 (one power iteration, QR) every f steps, with the
    # authors' ordering of eigenvectors by estimated eigenvalue (V's entries follow them).
    # The first step only builds L, R and their eigenbases; s = t - 1 counts Adam's steps.
    b1, b2 = betas
    s = t - 1

    def eigvecs(m):
        return torch.flip(torch.linalg.eigh(m)[1], dims=[1])

    def refresh(m, q, v, axis):
        power = m @ q
        order = torch.argsort((q * power).sum(0), descending=True)
        return torch.linalg.qr(power[:, order].float())[0].double(), v.index_select(axis, order)

    for i, (p, g) in enumerate(zip(params, grads)):
        matrix = p.dim() == 2
        if t == 1:
            st = state[i] = {"m": torch.zeros_like(p), "v": torch.zeros_like(p)}
            if matrix:
                st["L"] = (1 - b2) * g @ g.T
                st["R"] = (1 - b2) * g.T @ g
                st["QL"], st["QR"] = eigvecs(st["L"]), eigvecs(st["R"])
            continue
        st = state[i]
        QL, QR = (st["QL"], st["QR"]) if matrix else (None, None)

        def rot(x, QL=QL, QR=QR):
            return QL.T @ x @ QR if QL is not None else x

        def back(x, QL=QL, QR=QR):
            return QL @ x @ QR.T if QL is not None else x

        st["m"] = b1 * st["m"] + (1 - b1) * g
        st["v"] = b2 * st["v"] + (1 - b2) * rot(g) ** 2
        n = back(rot(st["m"]) / (torch.sqrt(st["v"]) + eps))
        p -= lr * (1 - b2**s) ** 0.5 / (1 - b1**s) * n
        p *= 1 - lr * weight_decay
        if matrix:
            st["L"] = b2 * st["L"] + (1 - b2) * g @ g.T
            st["R"] = b2 * st["R"] + (1 - b2) * g.T @ g
            if s % precondition_frequency == 0:
                st["QL"], st["v"] = refresh(st["L"], st["QL"], st["v"], 0)
                st["QR"], st["v"] = refresh(st["R"], st["QR"], st["v"], 1)
