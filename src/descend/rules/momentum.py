"""Momentum, in its two common forms.

Heavy-ball momentum (Polyak, 1964; torch.optim.SGD) accumulates gradients,

    b_t = mu b_{t-1} + (1 - tau) g_t,

so for a constant gradient the buffer grows to g (1 - tau) / (1 - mu): with mu = 0.9 the
step is ten times that of plain SGD at the same lr.

The exponential-moving-average form (the classic tutorials; Adam's first moment) averages
them,

    v_t = beta v_{t-1} + (1 - beta) g_t,

so for a constant gradient v converges to g and a learning rate tuned for plain SGD keeps
its meaning. With tau = 0 the two are equal up to a learning-rate factor of 1 / (1 - mu).
"""

from __future__ import annotations

from torch import Tensor

from .base import Context, Rule, State
from .init import zeros
from .ops import add, scale_add_into


def heavy_ball(nesterov: bool = False, copy_first: bool = True) -> Rule:
    """Heavy-ball momentum with dampening, as torch.optim.SGD computes it.

        b = g                                      (when the buffer is created: torch copies g)
        b_t = mu b_{t-1} + (1 - tau) g_t           (afterwards)
        d_t = b_t                                  (classical)
        d_t = g_t + mu b_t                         (Nesterov, Sutskever et al. 2013 form)

    With ``copy_first=False`` the buffer starts at zero and the first step is
    b_1 = (1 - tau) g_1, as LARS implementations (pytorch-optimizer's) compute it.

    mu = ``momentum`` and tau = ``dampening`` (0 when the group has none, as in RMSprop)
    come from the param group. State: ``momentum_buffer``.

    "When the buffer is created" is not "at step 1": torch copies g whenever the buffer does
    not exist yet, which is also the case when momentum is switched on mid-run, and is not
    the case after loading a state dict that holds a buffer (torch's SGD saves no step).
    """

    def prepare(ctx: Context) -> dict[str, float]:
        # The gain of a fresh buffer is 1, not (1 - tau): b_0 = 0 then makes b = g exactly,
        # torch's copy-on-creation, without a branch in the tensor maths.
        tau = ctx.get("dampening", 0.0)
        fresh = copy_first and "momentum_buffer" in ctx.fresh
        return {"heavy_ball_gain": 1.0 if fresh else 1.0 - tau}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        mu = ctx.momentum
        b = scale_add_into(state["momentum_buffer"], mu, g, ctx.heavy_ball_gain)
        d = add(g, b, mu) if nesterov else b
        return d, {"momentum_buffer": b}

    name = "heavy_ball_nesterov" if nesterov else "heavy_ball"
    name += "" if copy_first else "_from_zero"
    return Rule(name, update, init=zeros("momentum_buffer"), prepare=prepare,
                state=("momentum_buffer",), provides=("heavy_ball_gain",),
                low_precision=(("momentum_buffer", "signed"),))


def ema_momentum(nesterov: bool = False) -> Rule:
    """Momentum as an exponential moving average of gradients.

        v_t = beta v_{t-1} + (1 - beta) g_t,   v_0 = 0
        d_t = v_t                               (classical)
        d_t = beta v_t + (1 - beta) g_t         (Nesterov: look one average ahead, as NAdam
                                                 does without its bias correction)

    beta = ``momentum`` of the param group. No bias correction: the first steps are short
    by a factor (1 - beta^t), as in the tutorials' formula. State: ``momentum_buffer``.
    """

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta = ctx.momentum
        v = state["momentum_buffer"].lerp(g, 1 - beta)
        d = v.lerp(g, 1 - beta) if nesterov else v
        return d, {"momentum_buffer": v}

    name = "ema_momentum_nesterov" if nesterov else "ema_momentum"
    return Rule(name, update, init=zeros("momentum_buffer"), state=("momentum_buffer",),
                low_precision=(("momentum_buffer", "signed"),))
