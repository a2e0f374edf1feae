"""SOAP: Adam in the eigenbasis of Shampoo's preconditioner (Vyas et al., 2024)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import chain as concat

import torch
from torch import Tensor

from .base import Context, Rule, State
from .ops import add_, lerp_into, mul_, over, stored


def merge_small_dims(shape: Sequence[int], max_dim: int) -> list[int]:
    """Merge neighbouring dimensions while their product stays within `max_dim`, as
    pytorch-optimizer's ``merge_small_dims`` ([1, 2, 512, 1, 2048, 1, 3, 4] with 1024 gives
    [1024, 2048, 12])."""
    merged: list[int] = []
    product = 1
    for dim in shape:
        product *= dim
        if product > max_dim:
            merged.append(product // dim)
            product = dim
    merged.append(product)
    return merged


class Layout:
    """How SOAP sees one parameter: the shape it preconditions, which of its dimensions get
    a Kronecker factor (a d x d matrix; the others, larger than ``max_precondition_dim``,
    get the identity), and where each factor lies in the flat ``GG`` and ``Q`` state."""

    def __init__(self, shape: torch.Size, merge_dims: bool, max_dim: int,
                 precondition_1d: bool, channels_last: bool) -> None:
        shape = self.shape = tuple(shape)
        self.permute = merge_dims and channels_last and len(shape) == 4
        self.permuted = (shape[0], shape[3], shape[1], shape[2]) if self.permute else shape
        merged = (merge_small_dims(self.permuted, max_dim)
                  if merge_dims and len(shape) > 1 else [])
        # A tensor that would merge into one dimension keeps its shape (pytorch-optimizer
        # reshapes it to [1] and fails).
        self.merge = len(merged) > 1
        self.permute = self.permute and self.merge
        if len(shape) == 1:
            dims: list[int | None] = [shape[0] if precondition_1d and shape[0] <= max_dim
                                      else None]
        else:
            self.merged = tuple(merged) if self.merge else shape
            dims = [d if d <= max_dim else None for d in self.merged]
        self.dims = dims
        self.size = sum(d * d for d in dims if d is not None)

    def view(self, x: Tensor) -> Tensor:
        """The tensor in the shape SOAP preconditions."""
        if not self.merge:
            return x
        if self.permute:
            x = x.permute(0, 3, 1, 2)
        return x.reshape(self.merged)

    def unview(self, x: Tensor) -> Tensor:
        if not self.merge:
            return x
        if self.permute:
            return x.reshape(self.permuted).permute(0, 2, 3, 1)
        return x.reshape(self.shape)

    def factors(self, flat: Tensor, column_major: bool = False) -> list[Tensor | None]:
        """The d x d matrices stored in a flat ``GG`` (row by row) or ``Q`` (column by
        column: LAPACK's layout, in which eigh and QR return them) tensor, as views."""
        out: list[Tensor | None] = []
        offset = 0
        for d in self.dims:
            if d is None:
                out.append(None)
                continue
            block = flat[offset:offset + d * d].view(d, d)
            out.append(block.T if column_major else block)
            offset += d * d
        return out


def _project(x: Tensor, layout: Layout, qs: list[Tensor | None], back: bool = False) -> Tensor:
    """Q_1^T ... Q_k^T applied to each dimension of x (``back``: Q_1 ... Q_k)."""
    x = layout.view(x)
    for q in qs:
        if q is None:
            x = x.permute([*range(1, x.dim()), 0])
        else:
            x = torch.tensordot(x, q, dims=[[0], [1 if back else 0]])
    return layout.unview(x)


def _eigenbasis(m: Tensor) -> Tensor:
    """Eigenvectors of a symmetric factor, by decreasing eigenvalue (``torch.linalg.eigh``
    with the 1e-30 identity shift of the authors' code, in at least float32)."""
    work = m if m.dtype in (torch.float32, torch.float64) else m.float()
    _, q = torch.linalg.eigh(work + 1e-30 * torch.eye(m.shape[0], device=m.device,
                                                      dtype=work.dtype))
    return torch.flip(q, dims=[1]).to(m.dtype)


def scale_by_soap(merge_dims: bool = False, max_precondition_dim: int = 10000,
                  precondition_1d: bool = False, channels_last: bool = False,
                  normalize_gradient: bool = False, correct_bias: bool = True,
                  weight_decay: bool = False) -> Rule:
    r"""SOAP (Vyas et al., 2024, "SOAP: Improving and Stabilizing Shampoo using Adam",
    Algorithm 3), as the authors' first implementation and pytorch-optimizer's SOAP compute it.

    For a matrix G (m x n); a tensor gets one factor per dimension (``merge_dims`` first
    merges small dimensions; a dimension larger than ``max_precondition_dim`` and, unless
    ``precondition_1d``, a vector get none: there SOAP is Adam)::

        step 1:  L = (1 - beta_s) G G^T,  R = (1 - beta_s) G^T G
                 Q_L, Q_R = eigenvectors of L, R (by decreasing eigenvalue); no update
        step t > 1, s = t - 1:
            G'  = Q_L^T G Q_R                                   (rotate into the eigenbasis)
            M   = beta1 M + (1 - beta1) G                       ``exp_avg`` (original basis)
            V   = beta2 V + (1 - beta2) G'^2                    ``exp_avg_sq`` (rotated basis)
            N   = Q_L [ (Q_L^T M Q_R) / (sqrt(V) + eps) ] Q_R^T
            N  <- N / (RMS(N) + eps)                            (``normalize_gradient``)
            theta <- (theta - lr sqrt(1 - beta2^s) / (1 - beta1^s) N) (1 - lr lambda)
            L   = beta_s L + (1 - beta_s) G G^T,  R likewise    ``GG``
            every f steps (s % f == 0), one power iteration and QR (Algorithm 4):
                P = L Q_L;  order the columns by the estimated eigenvalues diag(Q_L^T P),
                decreasing, and permute V's rows alike;  Q_L = QR(P).Q;  Q_R likewise ``Q``

    beta_s = ``shampoo_beta`` (None: beta2), f = ``precondition_frequency``, and lr, betas,
    eps and lambda = ``weight_decay`` come from the param group. The first step only builds
    the preconditioner, so that a gradient never meets a basis it helped to make (the
    authors' choice). Without ``correct_bias`` the step is lr N.

    State: ``exp_avg``, ``exp_avg_sq`` (the parameter's shape), and ``GG`` and ``Q``: the
    Kronecker factors L, R, ... and their eigenbases, each d x d matrix flattened and
    concatenated in dimension order (`Layout.factors` reads them back) so that every state
    entry is one tensor (``Q`` column by column). This rule returns the update itself (it
    applies lr and the decay).

    As pytorch-optimizer, the QR step runs in float32 whatever the dtype (a float64
    parameter's basis is then orthogonal to float32 precision; it is an estimate from one
    power iteration in any case). Difference from pytorch-optimizer: eigh runs in float32
    for bfloat16 and float16 factors (pytorch-optimizer retries in float64 after eigh
    refuses them).
    """

    def prepare(ctx: Context) -> dict[str, float]:
        s = ctx.step - 1
        step_size = ctx.lr
        if correct_bias and s > 0:
            beta1, beta2 = ctx.betas
            step_size *= math.sqrt(1.0 - beta2**s) / (1.0 - beta1**s)
        return {"soap_step_size": step_size}

    layouts: dict[torch.Size, Layout] = {}

    def layout(p: Tensor) -> Layout:
        lay = layouts.get(p.shape)
        if lay is None:
            lay = layouts[p.shape] = Layout(p.shape, merge_dims, max_precondition_dim,
                                            precondition_1d, channels_last)
        return lay

    def init(p: Tensor) -> State:
        size = layout(p).size
        return {"exp_avg": torch.zeros_like(p), "exp_avg_sq": torch.zeros_like(p),
                "GG": p.new_zeros(size), "Q": p.new_zeros(size)}

    def accumulate(g: Tensor, lay: Layout, gg: Tensor, beta: float) -> Tensor:
        """L_i = beta L_i + (1 - beta) G_(i) G_(i)^T for every preconditioned dimension i,
        into the stored factors where allowed, else into a new flat tensor (they tile it)."""
        new = gg if stored(gg) else torch.empty_like(gg)
        g = lay.view(g) if g.dim() > 1 else g
        for i, (old, factor) in enumerate(zip(lay.factors(gg), lay.factors(new))):
            if factor is None:
                continue
            if g.dim() == 1:
                outer = g.unsqueeze(1) @ g.unsqueeze(0)
            else:
                others = [*concat(range(i), range(i + 1, g.dim()))]
                outer = torch.tensordot(g, g, dims=[others, others])
            torch.lerp(old, outer.to(factor.dtype), 1.0 - beta, out=factor)
        return new

    def refresh(lay: Layout, gg: Tensor, q: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        """One power iteration and QR per factor; V's entries follow their eigenvectors."""
        q = q if stored(q) else q.clone()
        v = lay.view(v)
        for i, (m, o) in enumerate(zip(lay.factors(gg), lay.factors(q, True))):
            if m is None:
                continue
            product = m @ o
            order = torch.argsort((o * product).sum(dim=0), descending=True)
            v = v.index_select(i, order)
            power = product.index_select(1, order)
            # QR in float32 whatever the dtype, as pytorch-optimizer (torch's QR refuses
            # bfloat16); the basis is a one-power-iteration estimate in any case.
            o.copy_(torch.linalg.qr(power.float())[0])
        return q, lay.unview(v)

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta1, beta2 = ctx.betas
        beta_s = ctx.shampoo_beta if ctx.shampoo_beta is not None else beta2
        lay = layout(p)
        if "Q" in ctx.fresh:
            gg = accumulate(g, lay, state["GG"], beta_s)
            q = state["Q"] if stored(state["Q"]) else state["Q"].clone()
            for target, m in zip(lay.factors(q, True), lay.factors(gg)):
                if m is not None:
                    target.copy_(_eigenbasis(m))
            return torch.zeros_like(p), {"GG": gg, "Q": q}
        # Column-major views, as pytorch-optimizer keeps LAPACK's results: the same
        # layout takes the same BLAS path, so float64 results agree to the last bit (in a
        # direction where G' is zero, SOAP divides rounding noise by eps, which amplifies
        # any difference in the order of the sums a billionfold).
        qs = lay.factors(state["Q"], True)
        g_rot = _project(g, lay, qs)
        m = lerp_into(state["exp_avg"], g, 1.0 - beta1)
        v = lerp_into(state["exp_avg_sq"], g_rot.square(), 1.0 - beta2)
        n = _project(over(_project(m, lay, qs), v.sqrt().add_(ctx.eps)), lay, qs, back=True)
        scale = -ctx.soap_step_size
        if normalize_gradient:
            scale /= float(torch.mean(n.square()).sqrt_().add_(ctx.eps))
        # (theta + u)(1 - c) - theta = u (1 - c) - c theta: the step, then the decay, as
        # the authors' code decays the parameter after stepping.
        c = ctx.lr * ctx.weight_decay if weight_decay else 0.0
        u = mul_(n, scale * (1.0 - c) if c else scale)
        if c:
            u = add_(u, p, -c)
        new_state = {"exp_avg": m, "exp_avg_sq": v,
                     "GG": accumulate(g, lay, state["GG"], beta_s)}
        s = ctx.step - 1
        if s % ctx.precondition_frequency == 0 and lay.size:
            new_state["Q"], new_state["exp_avg_sq"] = refresh(lay, new_state["GG"],
                                                              state["Q"], v)
        return u, new_state

    return Rule("scale_by_soap", update, init=init, prepare=prepare,
                state=("exp_avg", "exp_avg_sq", "GG", "Q"), provides=("soap_step_size",),
                reduction="tensor")
