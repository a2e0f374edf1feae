"""Optimizer paths on a loss surface: the same optimizer classes as real training.

Gradient noise model (documented in every caption): the gradient of the surface plus
Gaussian noise of standard deviation ``noise / sqrt(b)`` per coordinate, where `noise` is
the per-example noise level and `b` the batch: full-batch gradient descent has no noise
(b = infinity), SGD has b = 1, mini-batch has b = ``batch_size``. The noise is drawn from
a generator seeded with `seed`, the same sequence for every optimizer, so differences in
the picture come from the optimizers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from .registry import (
    OPTIMIZERS,
    build_optimizer,
    build_schedule,
    canonical_optimizer,
    optimizer_lr,
)
from .registry import with_lr as spec_with_lr
from .spec import lr_sweep, sweep_factors
from .surfaces import Surface, get_surface

OptimizerFactory = Callable[[list[torch.Tensor]], torch.optim.Optimizer]


@dataclass
class PathResult:
    label: str
    lr: float | None
    points: list[list[float]]
    losses: list[float]
    diverged: bool
    diverged_at: int | None
    steps_to_tolerance: int | None
    final_distance: float
    final_loss: float
    lr_trials: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class PathsResult:
    surface: Surface
    paths: list[PathResult]
    steps: int
    start: tuple[float, ...]
    noise: float
    regime: str
    batch_size: int
    noise_std: float
    seed: int
    clip: float | None
    tuned: bool
    lr_grid_factors: tuple[float, ...]
    schedule: str
    tolerance: float

    def caption(self) -> str:
        """Every choice that shapes the picture, written in the picture."""
        parts = [f"{self.surface.formula}; start {tuple(round(v, 3) for v in self.start)}; "
                 f"{self.steps} steps"]
        if self.noise_std:
            b = self.batch_size if self.regime == "minibatch" else 1
            parts.append(f"gradient noise N(0, {self.noise_std:.3g}²) per coordinate "
                         f"({self.regime}, noise {self.noise:g}/√{b}, seed {self.seed})")
        else:
            parts.append("exact gradients (full batch)")
        parts.append("no clipping" if self.clip is None else
                     f"gradients clipped to norm {self.clip:g}")
        if self.tuned:
            factors = ", ".join(f"{f:g}" for f in self.lr_grid_factors)
            parts.append(f"lr tuned per optimizer by lowest final loss over its default × "
                         f"[{factors}] (same budget for all)")
        else:
            parts.append("lrs as given (or each optimizer's lab default), not tuned")
        if self.schedule != "constant":
            parts.append(f"schedule {self.schedule}")
        return "; ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {"surface": self.surface.name, "formula": self.surface.formula,
                "minima": self.surface.minima, "start": self.start, "steps": self.steps,
                "noise": self.noise, "noise_std": self.noise_std, "regime": self.regime,
                "batch_size": self.batch_size, "seed": self.seed, "clip": self.clip,
                "tuned": self.tuned, "schedule": self.schedule, "tolerance": self.tolerance,
                "caption": self.caption(), "paths": [p.to_json() for p in self.paths]}


def noise_std(noise: float, regime: str, batch_size: int) -> float:
    if noise < 0 or not math.isfinite(noise):
        raise ValueError(f"noise must be a finite number >= 0, got {noise!r}")
    if regime == "full":
        return 0.0
    if regime == "sgd":
        return noise
    if regime == "minibatch":
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size!r}")
        return noise / math.sqrt(batch_size)
    raise ValueError(f"unknown regime {regime!r}; available: full, sgd, minibatch")


def descend_path(surface: Surface, make_optimizer: OptimizerFactory, *, steps: int,
                 start: Sequence[float], noise: float = 0.0, seed: int = 0,
                 clip: float | None = None, tolerance: float = 1e-3, label: str = "",
                 lr: float | None = None) -> PathResult:
    """Run one optimizer for `steps` steps from `start`; stop early on divergence.

    Divergence: a non-finite loss or point, or a point 1000 view-box widths from the box.
    """
    x = torch.tensor(list(start), dtype=torch.float64, requires_grad=True)
    opt = make_optimizer([x])
    gen = torch.Generator().manual_seed(seed)
    span = max(hi - lo for lo, hi in surface.box)
    center = torch.tensor([(lo + hi) / 2 for lo, hi in surface.box], dtype=torch.float64)
    points = [x.detach().tolist()]
    losses = [float(surface(x.detach()))]
    diverged_at = None
    for t in range(1, steps + 1):
        opt.zero_grad()
        loss = surface(x)
        loss.backward()
        if noise:
            x.grad.add_(noise * torch.randn(x.shape, generator=gen, dtype=x.dtype))
        if clip is not None:
            torch.nn.utils.clip_grad_norm_([x], clip)
        opt.step()
        point = x.detach()
        value = float(surface(point))
        if (not math.isfinite(value) or not torch.isfinite(point).all()
                or float((point - center).abs().max()) > 1000 * span):
            diverged_at = t
            break
        points.append(point.tolist())
        losses.append(value)
    reached = None
    if surface.minima:
        reached = next((i for i, p in enumerate(points)
                        if surface.distance_to_minimum(p) < tolerance), None)
    return PathResult(label=label, lr=lr, points=points, losses=losses,
                      diverged=diverged_at is not None, diverged_at=diverged_at,
                      steps_to_tolerance=reached,
                      final_distance=surface.distance_to_minimum(points[-1]),
                      final_loss=losses[-1])


TUNE_FACTORS = tuple(sweep_factors(7))  # the lab's one lr sweep: x1/30 .. x30


def paths(surface: str | Surface, optimizers: Sequence[str] | Mapping[str, Any] = (
          "sgd", "momentum", "rmsprop", "adam"), *, steps: int = 200,
          start: Sequence[float] | None = None, noise: float = 0.0, regime: str = "minibatch",
          batch_size: int = 16, seed: int = 0, clip: float | None = None,
          tune_lr: bool = False, schedule: str = "constant",
          tolerance: float = 1e-3,
          progress: Callable[[str, int, int], None] | None = None) -> PathsResult:
    """Run every optimizer on `surface` and return the paths.

    `optimizers` is a list of lab specs (``"adam:lr=0.1"``) or a mapping from label to a spec
    or to a factory ``params -> optimizer`` (a user's own recipe). Nothing is clipped unless
    `clip` is given. With `tune_lr`, each spec-named optimizer runs at its default lr times
    each of `TUNE_FACTORS` and keeps the lr with the lowest final loss (the same budget for
    every optimizer); factories are not tuned. `progress(what, done, total)` hears of
    every path run (lr trials included).
    """
    surf = get_surface(surface) if isinstance(surface, str) else surface
    start = tuple(map(float, start if start is not None else surf.start))
    if len(start) != surf.dim:
        raise ValueError(f"start must have {surf.dim} coordinate(s) for {surf.name}, "
                         f"got {start}")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be > 0, got {clip!r}")
    std = noise_std(noise, regime, batch_size)
    entries = dict(optimizers) if isinstance(optimizers, Mapping) else {o: o for o in optimizers}
    total = sum(1 if callable(w) or not tune_lr else len(TUNE_FACTORS) for w in entries.values())
    done = 0

    def tick(label: str) -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(f"paths: {label}", done, total)

    results = []
    for label, what in entries.items():
        common = dict(steps=steps, start=start, noise=std, seed=seed, clip=clip,
                      tolerance=tolerance, label=label)
        if callable(what):
            results.append(descend_path(surf, what, **common))
            tick(label)
            continue
        spec = canonical_optimizer(what)
        if OPTIMIZERS[spec.split(":")[0]].matrices:
            raise ValueError(f"optimizer {what!r} acts on weight matrices; a loss surface's "
                             "point is one vector, so there is no path to draw")

        def factory(params: list[torch.Tensor], spec: str = spec) -> torch.optim.Optimizer:
            sched = build_schedule(schedule, optimizer_lr(spec), steps, steps)
            return build_optimizer(spec, params, sched)

        if not tune_lr:
            results.append(descend_path(surf, factory, lr=optimizer_lr(spec), **common))
            tick(label)
            continue
        trials = []
        for lr in lr_sweep(optimizer_lr(spec), len(TUNE_FACTORS)):
            tried = spec_with_lr(spec, lr)
            result = descend_path(surf, lambda p, s=tried: factory(p, s), lr=lr, **common)
            trials.append((lr, math.inf if result.diverged else result.final_loss, result))
            tick(f"{label} lr={lr:g}")
        best = min(trials, key=lambda t: (t[1], t[0]))
        best[2].lr_trials = [(lr, loss) for lr, loss, _ in trials]
        results.append(best[2])
    return PathsResult(surf, results, steps, start, noise, regime, batch_size, std, seed,
                       clip, tune_lr, TUNE_FACTORS if tune_lr else (), schedule,
                       tolerance)


__all__ = ["PathResult", "PathsResult", "descend_path", "noise_std", "paths"]
