"""What the benchmarks compare: each algorithm descend has, and the implementations of that
same algorithm elsewhere (torch.optim's for-loop, foreach and fused variants, a reference
package where one is installed, or a hand-written foreach version where none exists).
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

import descend

T = torch.optim
Factory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]

VOCAB, WIDTH = 8192, 512


def _gpt(blocks: int = 4) -> list[tuple[int, ...]]:
    """A small GPT's parameters: token embedding, per block two norms, qkv, attention
    projection and the MLP's two matrices, a final norm and an untied output head."""
    block = [(WIDTH,), (3 * WIDTH, WIDTH), (WIDTH, WIDTH), (WIDTH,), (4 * WIDTH, WIDTH),
             (WIDTH, 4 * WIDTH)]
    return [(VOCAB, WIDTH), *block * blocks, (WIDTH,), (VOCAB, WIDTH)]


SHAPES = {
    "SMALL": [(128, 784), (128,), (10, 128), (10,)],          # MLP 784-128-10
    "MANY": [(1024,)] * 1000,                                  # 1000 tensors of 1K
    "LARGE": [(1000, 500)] * 100,                              # 50M in 100 tensors
    "TRANSFORMER": _gpt(),                                     # 21M in 27 tensors
}


def hidden_matrices(shape: tuple[int, ...]) -> bool:
    """Muon's share of a model: 2-D, and not the embedding or the head (VOCAB rows)."""
    return len(shape) == 2 and shape[0] != VOCAB


@dataclass(frozen=True)
class Algorithm:
    name: str
    descend: Callable[[list[torch.Tensor], str], torch.optim.Optimizer]
    state: int                               # state tensors per parameter (fp32 traffic)
    others: dict[str, Factory] = field(default_factory=dict)
    note: str = ""
    accepts: Callable[[tuple[int, ...]], bool] | None = None  # the shapes it takes
    sizes: tuple[str, ...] | None = None                       # the sets it runs on

    def shapes(self, size: str) -> list[tuple[int, ...]]:
        if self.sizes is not None and size not in self.sizes:
            return []
        return [s for s in SHAPES[size] if self.accepts is None or self.accepts(s)]

    def bytes_per_param(self) -> int:
        """Minimal traffic: parameter and state read and written, gradient read (fp32)."""
        return 4 * (2 * (1 + self.state) + 1)


def _torch_variants(make: Callable[..., torch.optim.Optimizer],
                    variants=("forloop", "foreach", "fused")) -> dict[str, Factory]:
    flags = {"forloop": {"foreach": False}, "foreach": {"foreach": True},
             "fused": {"fused": True}}
    return {f"torch-{v}": (lambda p, v=v: make(p, **flags[v])) for v in variants}


class HandForeach(torch.optim.Optimizer):
    """A hand-written foreach optimizer: lists of parameters, gradients and one state."""

    key = ""

    def lists(self, group):
        params = [p for p in group["params"] if p.grad is not None]
        for p in params:
            if self.key not in self.state[p]:
                self.state[p][self.key] = torch.zeros_like(p)
        return params, [p.grad for p in params], [self.state[p][self.key] for p in params]


class ForeachLion(HandForeach):
    """Lion (Chen et al. 2023, Alg. 2) written with in-place foreach kernels, the way a
    careful hand implementation would: the baseline where no Lion package is installed."""

    key = "exp_avg"

    def __init__(self, params, lr=1e-4, betas=(0.9, 0.99), weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=betas, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params, grads, exp_avgs = self.lists(group)
            beta1, beta2 = group["betas"]
            if group["weight_decay"]:
                torch._foreach_mul_(params, 1 - group["lr"] * group["weight_decay"])
            update = torch._foreach_lerp(exp_avgs, grads, 1 - beta1)
            torch._foreach_sign_(update)
            torch._foreach_add_(params, update, alpha=-group["lr"])
            torch._foreach_lerp_(exp_avgs, grads, 1 - beta2)


class ForeachRMSpropEpsInside(HandForeach):
    """RMSprop with eps inside the root (Keras's form), in-place foreach: torch has none."""

    key = "square_avg"

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            params, grads, sq = self.lists(group)
            torch._foreach_mul_(sq, group["alpha"])
            torch._foreach_addcmul_(sq, grads, grads, 1 - group["alpha"])
            denom = torch._foreach_add(sq, group["eps"])
            torch._foreach_sqrt_(denom)
            torch._foreach_addcdiv_(params, grads, denom, -group["lr"])


def _lion_packages() -> dict[str, Factory]:
    found: dict[str, Factory] = {"hand-foreach": lambda p: ForeachLion(p, lr=1e-4)}
    if importlib.util.find_spec("lion_pytorch"):
        from lion_pytorch import Lion
        found["lion-pytorch"] = lambda p: Lion(p, lr=1e-4)
    if importlib.util.find_spec("pytorch_optimizer"):
        from pytorch_optimizer import Lion as POLion
        found["pytorch-optimizer"] = lambda p: POLion(p, lr=1e-4)
    return found


def _package(module: str, make: Callable[[object], Factory]) -> dict[str, Factory]:
    """`make(module)` -> {name: factory}, or nothing where the package is not installed."""
    if not importlib.util.find_spec(module):
        return {}
    return make(importlib.import_module(module))


def _trained(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    opt.train()  # the schedulefree package's optimizers start in eval mode
    return opt


def _schedulefree(cls: str, **kwargs) -> dict[str, Factory]:
    return _package("schedulefree", lambda sf: {
        f"schedulefree-{v}": (lambda p, v=v: _trained(getattr(sf, cls)(
            p, foreach=v == "foreach", **kwargs))) for v in ("forloop", "foreach")})


class WithClosure:
    """A closure-driven optimizer stepping on a fixed ill-conditioned quadratic,
    0.5 sum a x^2 + b x (a in [1, 100]), whose gradient is written without autograd: the
    same objective for every contender, cheap next to the optimizer's own work."""

    def __init__(self, opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        self.opt, self.params = opt, params
        gen = torch.Generator().manual_seed(1)
        self.a = [1 + 99 * torch.rand(p.shape, generator=gen) for p in params]
        self.b = [torch.randn(p.shape, generator=gen) for p in params]

    def closure(self) -> torch.Tensor:
        loss = torch.zeros(())
        with torch.no_grad():
            for p, a, b in zip(self.params, self.a, self.b):
                p.grad = torch.addcmul(b, a, p)
                loss += (0.5 * p.grad + 0.5 * b).mul(p).sum()
        return loss

    def step(self) -> None:
        self.opt.step(self.closure)


LBFGS_ARGS = dict(lr=0.5, max_iter=3, history_size=3)
class TorchMuonAdamW:
    """torch.optim.Muon on the hidden matrices and torch's fused AdamW on the rest: what a
    torch user writes for "Muon for hidden matrices, AdamW for the others"."""

    def __init__(self, params: list[torch.Tensor]) -> None:
        hidden = [p for p in params if hidden_matrices(tuple(p.shape))]
        rest = [p for p in params if not hidden_matrices(tuple(p.shape))]
        self.opts = [T.Muon(hidden, lr=0.02), T.AdamW(rest, lr=3e-4, fused=True)]

    def step(self) -> None:
        for opt in self.opts:
            opt.step()


def _muon_adamw(params: list[torch.Tensor], backend: str) -> torch.optim.Optimizer:
    hidden = [p for p in params if hidden_matrices(tuple(p.shape))]
    rest = [p for p in params if not hidden_matrices(tuple(p.shape))]
    return descend.MuonAdamW([{"params": hidden, "use_muon": True},
                              {"params": rest, "use_muon": False}], lr=0.02, adamw_lr=3e-4,
                             backend=backend)


def _reference(name: str, make: Callable[..., torch.optim.Optimizer],
               forloop: bool = True) -> dict[str, Factory]:
    """pytorch-optimizer's implementation (its default, foreach where it has one), and its
    for-loop variant."""
    if not importlib.util.find_spec("pytorch_optimizer"):
        return {}
    import pytorch_optimizer as po

    found = {name: lambda p: make(po, p)}
    if forloop:
        found[name + "-forloop"] = lambda p: make(po, p, foreach=False)
    return found


ALGORITHMS = [
    Algorithm("sgd-momentum", lambda p, b: descend.SGD(p, lr=1e-3, momentum=0.9, backend=b),
              1, _torch_variants(lambda p, **k: T.SGD(p, lr=1e-3, momentum=0.9, **k))),
    Algorithm("nesterov", lambda p, b: descend.Nesterov(p, lr=1e-3, backend=b), 1,
              _torch_variants(lambda p, **k: T.SGD(p, lr=1e-3, momentum=0.9, nesterov=True,
                                                   **k))),
    Algorithm("momentum-ema", lambda p, b: descend.Momentum(p, lr=1e-3, backend=b), 1,
              _torch_variants(lambda p, **k: T.SGD(p, lr=1e-3, momentum=0.9, dampening=0.9,
                                                   **k)),
              "torch: SGD(momentum=0.9, dampening=0.9), the same recursion from step 2"),
    Algorithm("adagrad", lambda p, b: descend.Adagrad(p, lr=1e-3, backend=b), 1,
              _torch_variants(lambda p, **k: T.Adagrad(p, lr=1e-3, **k))),
    Algorithm("rmsprop", lambda p, b: descend.RMSprop(p, lr=1e-3, backend=b), 1,
              _torch_variants(lambda p, **k: T.RMSprop(p, lr=1e-3, **k),
                              ("forloop", "foreach"))),
    Algorithm("rmsprop-centered", lambda p, b: descend.RMSprop(p, lr=1e-3, centered=True,
                                                               backend=b), 2,
              _torch_variants(lambda p, **k: T.RMSprop(p, lr=1e-3, centered=True, **k),
                              ("forloop", "foreach"))),
    Algorithm("rmsprop-eps-inside", lambda p, b: descend.RMSprop(p, lr=1e-3,
                                                                 eps_inside_sqrt=True,
                                                                 backend=b), 1,
              {"hand-foreach": lambda p: ForeachRMSpropEpsInside(p, lr=1e-3)},
              "torch has no eps-inside RMSprop: a hand foreach version"),
    Algorithm("adam", lambda p, b: descend.Adam(p, lr=1e-3, backend=b), 2,
              _torch_variants(lambda p, **k: T.Adam(p, lr=1e-3, **k))),
    Algorithm("adamw", lambda p, b: descend.AdamW(p, lr=1e-3, backend=b), 2,
              _torch_variants(lambda p, **k: T.AdamW(p, lr=1e-3, **k))),
    Algorithm("amsgrad", lambda p, b: descend.Adam(p, lr=1e-3, amsgrad=True, backend=b), 3,
              _torch_variants(lambda p, **k: T.Adam(p, lr=1e-3, amsgrad=True, **k))),
    Algorithm("lion", lambda p, b: descend.Lion(p, lr=1e-4, backend=b), 1, _lion_packages()),
    # torch has no fused kernels for these: its for-loop and foreach variants.
    Algorithm("nadam", lambda p, b: descend.NAdam(p, lr=1e-3, backend=b), 2,
              _torch_variants(lambda p, **k: T.NAdam(p, lr=1e-3, **k), ("forloop", "foreach"))),
    Algorithm("radam", lambda p, b: descend.RAdam(p, lr=1e-3, backend=b), 2,
              _torch_variants(lambda p, **k: T.RAdam(p, lr=1e-3, **k), ("forloop", "foreach"))),
    Algorithm("adamax", lambda p, b: descend.Adamax(p, lr=1e-3, backend=b), 2,
              _torch_variants(lambda p, **k: T.Adamax(p, lr=1e-3, **k),
                              ("forloop", "foreach"))),
    Algorithm("adadelta", lambda p, b: descend.Adadelta(p, backend=b), 2,
              _torch_variants(lambda p, **k: T.Adadelta(p, **k), ("forloop", "foreach"))),
    Algorithm("asgd", lambda p, b: descend.ASGD(p, lr=1e-3, t0=0, backend=b), 1,
              _torch_variants(lambda p, **k: T.ASGD(p, lr=1e-3, t0=0, **k),
                              ("forloop", "foreach")),
              "t0=0: averaging on, as it is after t0 steps in a long run"),
    Algorithm("rprop", lambda p, b: descend.Rprop(p, lr=1e-3, backend=b), 2,
              _torch_variants(lambda p, **k: T.Rprop(p, lr=1e-3, **k), ("forloop", "foreach"))),
    Algorithm("schedulefree-sgd", lambda p, b: descend.ScheduleFreeSGD(p, lr=1e-3, backend=b),
              1, _schedulefree("SGDScheduleFree", lr=1e-3)),
    Algorithm("schedulefree-adamw", lambda p, b: descend.ScheduleFreeAdamW(p, lr=1e-3,
                                                                           backend=b),
              2, _schedulefree("AdamWScheduleFree", lr=1e-3)),
    Algorithm("ademamix", lambda p, b: descend.AdEMAMix(p, lr=1e-3, backend=b), 3,
              _package("pytorch_optimizer", lambda po: {
                  f"pytorch-optimizer-{v}": (lambda p, v=v: po.AdEMAMix(
                      p, lr=1e-3, foreach=v == "foreach")) for v in ("forloop", "foreach")})),
    Algorithm("prodigy", lambda p, b: descend.Prodigy(p, backend=b), 4,
              _package("prodigyopt", lambda po: {"prodigyopt": lambda p: po.Prodigy(p)}),
              "a group reduction: descend runs it as torch operations on each tensor"),
    Algorithm("lbfgs", lambda p, b: WithClosure(descend.LBFGS(p, backend=b, **LBFGS_ARGS), p),
              8, {"torch": lambda p: WithClosure(T.LBFGS(p, **LBFGS_ARGS), p)},
              "closure-driven: 3 iterations per step on a fixed quadratic"),
    # Rules that reduce over a tensor: one tensor at a time on every backend.
    Algorithm("adafactor", lambda p, b: descend.Adafactor(p, backend=b), 0,
              _torch_variants(lambda p, **k: T.Adafactor(p, **k), ("forloop", "foreach")),
              "state is O(m + n) per matrix; bandwidth counts parameter and gradient"),
    Algorithm("muon", lambda p, b: descend.Muon(p, lr=0.02, backend=b), 1,
              {"torch-forloop": lambda p: T.Muon(p, lr=0.02)},
              "the 2-D parameters (on TRANSFORMER the hidden matrices, not the embedding or "
              "the head); Newton-Schulz in bfloat16 as torch", accepts=hidden_matrices),
    Algorithm("muon-adamw", _muon_adamw, 2, {"torch-muon+adamw": TorchMuonAdamW},
              "descend.MuonAdamW against torch's Muon on the hidden matrices plus torch's "
              "fused AdamW on embeddings, head and norms", sizes=("TRANSFORMER",)),
    Algorithm("lamb", lambda p, b: descend.LAMB(p, lr=1e-3, backend=b), 2,
              _reference("pytorch-optimizer", lambda po, p, **k: po.Lamb(p, lr=1e-3, **k))),
    Algorithm("lars", lambda p, b: descend.LARS(p, lr=1e-3, backend=b), 1,
              _reference("pytorch-optimizer", lambda po, p, **k: po.LARS(p, lr=1e-3, **k))),
    Algorithm("soap", lambda p, b: descend.SOAP(p, max_precondition_dim=2048, backend=b), 2,
              _reference("pytorch-optimizer", lambda po, p: po.SOAP(p, max_precondition_dim=2048),
                         forloop=False),
              "max_precondition_dim=2048 (TRANSFORMER's 8192-row embedding and head get the "
              "identity on that side); steady steps, the eigendecomposition of the first "
              "step is in the warm-up; not run on LARGE (about 10 s per step there)",
              sizes=("SMALL", "MANY", "TRANSFORMER")),
]
BY_NAME = {a.name: a for a in ALGORITHMS}


def make_params(shapes: list[tuple[int, ...]], seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = []
    for s in shapes:
        p = torch.randn(s, generator=gen).requires_grad_()
        p.grad = torch.randn(s, generator=gen) * 1e-2
        params.append(p)
    return params


def clone(params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = p.grad.clone()
        out.append(q)
    return out
