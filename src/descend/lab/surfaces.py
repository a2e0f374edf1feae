"""Loss surfaces for watching optimizers descend: the function, its known minima, a view box.

Gradients come from autograd, so a user's own callable works the same way as the built-ins.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import Tensor

Fn = Callable[[Tensor], Tensor]


@dataclass(frozen=True)
class Surface:
    """A function of a 1-D or 2-D point.

    Attributes:
        name: registry name.
        fn: maps a tensor of shape (..., dim) to values of shape (...).
        dim: 1 or 2.
        box: the view, ((xmin, xmax),) or ((xmin, xmax), (ymin, ymax)).
        start: the classic start point.
        minima: known local or global minima (each a tuple of coordinates).
        formula: how the caption writes it.
        log_levels: draw contours on a log scale (for surfaces with a deep narrow valley).
    """

    name: str
    fn: Fn
    dim: int
    box: tuple[tuple[float, float], ...]
    start: tuple[float, ...]
    minima: tuple[tuple[float, ...], ...] = ()
    formula: str = ""
    log_levels: bool = False
    notes: str = field(default="", compare=False)

    def __call__(self, x: Tensor) -> Tensor:
        return self.fn(x)

    def value(self, point: Sequence[float]) -> float:
        return float(self.fn(torch.as_tensor(point, dtype=torch.float64)))

    def gradient(self, point: Sequence[float] | Tensor) -> Tensor:
        x = torch.as_tensor(point, dtype=torch.float64).clone().requires_grad_()
        (g,) = torch.autograd.grad(self.fn(x), x)
        return g

    @property
    def min_value(self) -> float:
        return min((self.value(m) for m in self.minima), default=-math.inf)

    def distance_to_minimum(self, point: Sequence[float]) -> float:
        if not self.minima:
            return math.nan
        p = np.asarray(point, dtype=float)
        return float(min(np.linalg.norm(p - np.asarray(m)) for m in self.minima))

    @classmethod
    def from_callable(cls, fn: Fn, *, box: Sequence[Sequence[float]],
                      start: Sequence[float], minima: Sequence[Sequence[float]] = (),
                      name: str = "custom", formula: str = "") -> Surface:
        """Your own surface: `fn` maps (..., dim) tensors to values; dim is len(start)."""
        dim = len(start)
        if dim not in (1, 2) or len(box) != dim:
            raise ValueError(f"a surface is 1-D or 2-D with one (lo, hi) range per axis; got "
                             f"start={tuple(start)} and box={tuple(map(tuple, box))}")
        probe = fn(torch.zeros(3, dim, dtype=torch.float64))
        if probe.shape != (3,):
            raise ValueError(f"fn must map a (..., {dim}) tensor to (...) values; a (3, {dim})"
                             f" input gave shape {tuple(probe.shape)}")
        return cls(name, fn, dim, tuple(tuple(map(float, b)) for b in box),
                   tuple(map(float, start)), tuple(tuple(map(float, m)) for m in minima),
                   formula or name)


def _x(p: Tensor) -> Tensor:
    return p[..., 0]


def _y(p: Tensor) -> Tensor:
    return p[..., 1]


def _roots_minima(coeffs_grad: Sequence[float], coeffs_hess: Sequence[float]
                  ) -> tuple[tuple[float], ...]:
    """Real roots of a polynomial gradient where the second derivative is positive."""
    roots = [r.real for r in np.roots(coeffs_grad) if abs(r.imag) < 1e-12]
    return tuple((float(r),) for r in sorted(roots) if np.polyval(coeffs_hess, r) > 0)


def _newton_minima(f: Fn, lo: float, hi: float, n: int = 400) -> tuple[tuple[float], ...]:
    """Local minima of a smooth 1-D function in [lo, hi], located by Newton's method from
    each sign change of the derivative on a grid."""
    xs = torch.linspace(lo, hi, n, dtype=torch.float64, requires_grad=True)
    (d,) = torch.autograd.grad(f(xs[:, None]).sum(), xs)
    found = []
    for i in range(n - 1):
        if d[i] < 0 <= d[i + 1]:
            x = torch.tensor([float(xs[i].detach() + xs[i + 1].detach()) / 2], dtype=torch.float64)
            for _ in range(50):
                x = x.detach().requires_grad_()
                (g,) = torch.autograd.grad(f(x[None]).sum(), x, create_graph=True)
                (h,) = torch.autograd.grad(g.sum(), x)
                x = x - g / h
            found.append((float(x.detach()),))
    return tuple(found)


def _bumpy(p: Tensor) -> Tensor:
    return _x(p) ** 2 / 8 + torch.sin(3 * _x(p))


HIMMELBLAU_MINIMA = ((3.0, 2.0), (-2.805118086952745, 3.131312518250573),
                     (-3.779310253377747, -3.283185991286170),
                     (3.584428340330492, -1.848126526964404))

SURFACES: dict[str, Surface] = {s.name: s for s in [
    Surface("parabola", lambda p: _x(p) ** 2, 1, ((-5.0, 5.0),), (4.0,), ((0.0,),),
            "f(x) = x²"),
    Surface("double-well", lambda p: _x(p) ** 4 - 3 * _x(p) ** 2 + _x(p), 1, ((-2.2, 2.2),),
            (2.0,), _roots_minima([4, 0, -6, 1], [12, 0, -6]), "f(x) = x⁴ − 3x² + x",
            notes="two minima; the one at x ≈ −1.30 is global"),
    Surface("bumpy", _bumpy, 1, ((-6.0, 6.0),), (5.5,), _newton_minima(_bumpy, -6, 6),
            "f(x) = x²/8 + sin(3x)", notes="many local minima"),
    Surface("quadratic", lambda p: _x(p) ** 2 + _y(p) ** 2, 2, ((-5.0, 5.0), (-5.0, 5.0)),
            (-4.0, 3.0), ((0.0, 0.0),), "f(x, y) = x² + y²"),
    Surface("ill-conditioned", lambda p: _x(p) ** 2 / 20 + _y(p) ** 2, 2,
            ((-10.0, 10.0), (-4.0, 4.0)), (-9.0, 3.0), ((0.0, 0.0),),
            "f(x, y) = x²/20 + y²", notes="condition number 20"),
    Surface("rosenbrock", lambda p: (1 - _x(p)) ** 2 + 100 * (_y(p) - _x(p) ** 2) ** 2, 2,
            ((-2.0, 2.0), (-1.0, 3.0)), (-1.5, 2.0), ((1.0, 1.0),),
            "f(x, y) = (1 − x)² + 100 (y − x²)²", log_levels=True),
    Surface("beale", lambda p: (1.5 - _x(p) + _x(p) * _y(p)) ** 2
            + (2.25 - _x(p) + _x(p) * _y(p) ** 2) ** 2
            + (2.625 - _x(p) + _x(p) * _y(p) ** 3) ** 2, 2,
            ((-4.5, 4.5), (-4.5, 4.5)), (1.0, 1.5), ((3.0, 0.5),),
            "Beale", log_levels=True),
    Surface("himmelblau", lambda p: (_x(p) ** 2 + _y(p) - 11) ** 2
            + (_x(p) + _y(p) ** 2 - 7) ** 2, 2, ((-5.0, 5.0), (-5.0, 5.0)), (0.0, 0.0),
            HIMMELBLAU_MINIMA, "f(x, y) = (x² + y − 11)² + (x + y² − 7)²", log_levels=True),
    Surface("rastrigin", lambda p: 20 + _x(p) ** 2 + _y(p) ** 2
            - 10 * (torch.cos(2 * math.pi * _x(p)) + torch.cos(2 * math.pi * _y(p))), 2,
            ((-5.12, 5.12), (-5.12, 5.12)), (3.2, -2.3), ((0.0, 0.0),),
            "Rastrigin, A = 10", notes="a local minimum near every integer point"),
    Surface("saddle", lambda p: _x(p) ** 2 - _y(p) ** 2, 2, ((-3.0, 3.0), (-3.0, 3.0)),
            (-2.5, 0.01), (), "f(x, y) = x² − y²", notes="no minimum: a saddle at 0"),
]}


def get_surface(name: str) -> Surface:
    try:
        return SURFACES[name]
    except KeyError:
        raise ValueError(f"unknown surface {name!r}; available: {', '.join(SURFACES)}") from None
