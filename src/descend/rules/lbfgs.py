"""L-BFGS: a quasi-Newton method driven by a closure."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.optim.lbfgs import _strong_wolfe

from .base import Context, Rule


def _flat(tensors: list[Tensor]) -> Tensor:
    return torch.cat([t.reshape(-1) for t in tensors])


def _views(flat: Tensor, like: list[Tensor]) -> list[Tensor]:
    out, offset = [], 0
    for t in like:
        out.append(flat[offset:offset + t.numel()].view_as(t))
        offset += t.numel()
    return out


def lbfgs(line_search: bool = False) -> Rule:
    """L-BFGS (Nocedal, 1980; Liu & Nocedal, 1989, "On the limited memory BFGS method for
    large scale optimization"), exactly as torch.optim.LBFGS runs it (a port of minFunc).

    Over the concatenation of the group's parameters x, with gradient g, one step runs up
    to ``max_iter`` iterations (and ``max_eval`` evaluations of the closure)::

        s_i = x_{i+1} - x_i,  y_i = g_{i+1} - g_i,  rho_i = 1 / <y_i, s_i>
                              (kept for the last ``history_size`` pairs with <y, s> > 1e-10)
        d = -H g              (two-loop recursion; H_0 = <y, s> / <y, y> of the newest pair)
        t = lr  (first iteration ever: min(1, 1 / |g|_1) lr)
        t = strong-Wolfe line search along d from t  (``line_search_fn="strong_wolfe"``)
        x <- x + t d

    stopping early when max |g| <= ``tolerance_grad``, when the directional derivative
    <g, d> > -``tolerance_change``, or when the step (max |t d|) or the change in loss fall
    below ``tolerance_change``. Without a line search the closure is evaluated after every
    move except the last; with it, the line search evaluates as it needs. The line search
    is torch's own (`torch.optim.lbfgs._strong_wolfe`), so the two agree step for step.

    The rule is closure-driven (``closure=True``): it evaluates the objective through
    ``ctx.evaluate(point)``, tracks its own iterate, and returns the total move as its
    update. The maths works on flat vectors as torch's does, so that inner products round
    the same way. State (torch's names and layout, in the group's first parameter's state):
    ``d``, ``t``, ``old_dirs``, ``old_stps``, ``ro``, ``H_diag``, ``prev_flat_grad``,
    ``prev_loss``, ``al``, ``func_evals``, ``n_iter``.
    """

    def update(g: Any, state: dict[str, Any], p: Any, ctx: Context) -> tuple[Any, dict]:
        lr, max_iter, max_eval = ctx.lr, ctx.max_iter, ctx.max_eval
        tolerance_grad, tolerance_change = ctx.tolerance_grad, ctx.tolerance_change
        history_size = ctx.history_size
        params = list(p.tensors)
        x = params  # the iterate; new tensors replace these, the parameters stay as they are
        new: dict[str, Any] = {"func_evals": state.get("func_evals", 0) + 1,
                               "n_iter": state.get("n_iter", 0)}
        loss = ctx.loss
        current_evals = 1
        flat_grad = _flat(g.tensors)
        if flat_grad.abs().max() <= tolerance_grad:
            return type(g)([torch.zeros_like(t) for t in params]), new

        if state.get("prev_flat_grad") is not None and (
                state["prev_flat_grad"].numel() != flat_grad.numel()):
            raise ValueError(
                "LBFGS: the parameters with a gradient are not those of the previous step, so "
                "its history no longer lines up; give every parameter a gradient at every "
                "step (torch.optim.LBFGS counts a missing gradient as zeros)")
        d, t = state.get("d"), state.get("t")
        old_dirs, old_stps = list(state.get("old_dirs") or ()), list(state.get("old_stps") or ())
        ro, H_diag = list(state.get("ro") or ()), state.get("H_diag")
        prev_flat_grad, prev_loss = state.get("prev_flat_grad"), state.get("prev_loss")
        al = state.get("al")

        def move(x: list[Tensor], t: Any, d: Tensor) -> list[Tensor]:
            return [xi.add(di, alpha=t) for xi, di in zip(x, _views(d, x))]

        n_iter = 0
        while n_iter < max_iter:
            n_iter += 1
            new["n_iter"] += 1
            if new["n_iter"] == 1:
                d = flat_grad.neg()
                old_dirs, old_stps, ro = [], [], []
                H_diag = 1
            else:
                y = flat_grad.sub(prev_flat_grad)
                s = d.mul(t)
                ys = y.dot(s)
                if ys > 1e-10:
                    if len(old_dirs) == history_size:
                        old_dirs.pop(0)
                        old_stps.pop(0)
                        ro.pop(0)
                    old_dirs.append(y)
                    old_stps.append(s)
                    ro.append(1.0 / ys)
                    H_diag = ys / y.dot(y)
                num_old = len(old_dirs)
                al = list(al) if al is not None else [None] * history_size
                q = flat_grad.neg()
                for i in range(num_old - 1, -1, -1):
                    al[i] = old_stps[i].dot(q) * ro[i]
                    q.add_(old_dirs[i], alpha=-al[i])
                d = r = torch.mul(q, H_diag)
                for i in range(num_old):
                    be_i = old_dirs[i].dot(r) * ro[i]
                    r.add_(old_stps[i], alpha=al[i] - be_i)

            prev_flat_grad = flat_grad.clone(memory_format=torch.contiguous_format)
            prev_loss = loss
            t = min(1.0, 1.0 / flat_grad.abs().sum()) * lr if new["n_iter"] == 1 else lr
            gtd = flat_grad.dot(d)
            if gtd > -tolerance_change:
                break

            ls_func_evals = 0
            if line_search:
                def obj_func(x0: Any, t: Any, d: Tensor, x: list[Tensor] = x) -> Any:
                    value, grads = ctx.evaluate(move(x, t, d))
                    return value, _flat(grads.tensors)

                loss, flat_grad, t, ls_func_evals = _strong_wolfe(
                    obj_func, None, t, d, loss, flat_grad, gtd,
                    max_ls=max_eval - current_evals)
                x = move(x, t, d)
                opt_cond = flat_grad.abs().max() <= tolerance_grad
            else:
                x = move(x, t, d)
                if n_iter != max_iter:
                    loss, grads = ctx.evaluate(x)
                    flat_grad = _flat(grads.tensors)
                    opt_cond = flat_grad.abs().max() <= tolerance_grad
                    ls_func_evals = 1
            current_evals += ls_func_evals
            new["func_evals"] += ls_func_evals

            if n_iter == max_iter or current_evals >= max_eval or opt_cond:
                break
            if d.mul(t).abs().max() <= tolerance_change:
                break
            if abs(loss - prev_loss) < tolerance_change:
                break

        new.update(d=d, t=t, old_dirs=old_dirs, old_stps=old_stps, ro=ro, H_diag=H_diag,
                   prev_flat_grad=prev_flat_grad, prev_loss=prev_loss)
        if al is not None:
            new["al"] = al
        return type(g)([xi - pi for xi, pi in zip(x, params)]), new

    name = "lbfgs_strong_wolfe" if line_search else "lbfgs"
    return Rule(name, update, reduction="group", closure=True)
