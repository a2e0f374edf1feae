"""Small deterministic problems shared by the optimizer tests."""

from __future__ import annotations

import torch

SHAPES = [(1,), (7,), (4, 5), (2, 3, 4)]


def make_params(dtype=torch.float64, seed=0, shapes=SHAPES):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
            for s in shapes]


def clone_params(params):
    return [p.detach().clone().requires_grad_() for p in params]


def loss_fn(params):
    """Non-convex and anisotropic, so gradients differ per coordinate and per step."""
    total = 0.0
    for i, p in enumerate(params):
        scale = torch.linspace(0.5, 3.0, p.numel(), dtype=p.dtype).reshape(p.shape) * (i + 1)
        total = total + (0.5 * scale * p * p + 0.3 * torch.sin(3 * p)).sum()
    return total


def backward(params):
    for p in params:
        p.grad = None
    loss = loss_fn(params)
    loss.backward()
    return loss


def step(opt, params, closure=False, loss=None):
    """One step on `loss` (default: loss_fn): backward, then ``opt.step()``; or, for a
    closure-driven optimizer (``closure=True``), ``opt.step(closure)``."""
    loss = loss or loss_fn

    def evaluate():
        for p in params:
            p.grad = None
        value = loss(params)
        value.backward()
        return value

    if closure:
        return opt.step(evaluate)
    evaluate()
    return opt.step()


def train(opt, params, steps, closure=False):
    for _ in range(steps):
        step(opt, params, closure)


def quadratic(x):
    return 0.5 * (torch.arange(1, x.numel() + 1, dtype=x.dtype).reshape(x.shape) * x**2).sum()


def rosenbrock(x):
    x = x.reshape(-1)
    return (1 - x[0]) ** 2 + 100 * (x[1] - x[0] ** 2) ** 2
