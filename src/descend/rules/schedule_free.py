"""Schedule-free learning (Defazio et al., 2024, "The Road Less Scheduled").

Schedule-free methods replace the learning-rate schedule by an average. Three sequences:

    z_{k+1} = z_k - gamma_k d_k                  the base method's iterate (SGD or AdamW)
    x_{k+1} = (1 - c_{k+1}) x_k + c_{k+1} z_{k+1}    a weighted average of the z's
    y_{k+1} = (1 - beta) z_{k+1} + beta x_{k+1}      where the gradient is taken

with the averaging weight c_{k+1} = w_{k+1} / sum_{i<=k+1} w_i, where
w_k = k^r * gamma_max^weight_lr_power, gamma_k the lr after the linear warmup and
gamma_max the largest gamma so far. The gradient is evaluated at y, the model is evaluated
at x. The parameters hold y while training, so only z is stored: x is recovered from y and
z (``x = (y - (1 - beta) z) / beta``), which is what the mode switch below does. Eliminating
x from the three lines gives the in-place form the `schedulefree` package runs::

    y_{k+1} = y_k + c_{k+1} (z_k - y_k) + gamma_k (beta (1 - c_{k+1}) - 1) d_k
    z_{k+1} = z_k - gamma_k d_k
"""

from __future__ import annotations

from torch import Tensor

from .base import Context, Rule, State
from .init import zeros
from .ops import add, addcmul


def schedule_free(from_betas: bool = False, decay_at_z: bool = False) -> Rule:
    """The schedule-free step, in the `schedulefree` package's in-place form (above).

    Takes the base method's direction d (the gradient for SGD, Adam's normalised gradient
    for AdamW, with weight decay ``lambda y`` already added) and returns the parameter's
    update, learning rate included: the last rule of a schedule-free recipe. Reads ``lr``,
    ``warmup_steps``, ``r`` and ``weight_lr_power`` from the param group, and beta from
    ``momentum`` (SGD) or ``betas[0]`` (``from_betas``, AdamW). With ``decay_at_z`` the
    weight decay ``lambda z`` is added here instead (the package's reference AdamW option).

    Per step, in `prepare` (k = step - 1, as the package counts)::

        gamma_k = lr * min(1, (k + 1) / warmup_steps)
        gamma_max = max(gamma_max, gamma_k)                     (carried; starts at -1)
        w = (k + 1)^r * gamma_max^weight_lr_power
        weight_sum = weight_sum + w                             (carried; starts at 0)
        c_{k+1} = w / weight_sum        (0 when weight_sum is 0, as the package)

    ``lr_max`` and ``weight_sum`` are carried scalars (saved in the state, resumed exactly);
    ``scheduled_lr`` and ``ckp1`` are the per-step gamma_k and c_{k+1}. State: ``z``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        k = ctx.step - 1
        warmup = ctx.warmup_steps
        lr = ctx.lr * ((k + 1) / warmup if k < warmup else 1.0)
        lr_max = max(lr, ctx.lr_max)
        weight = ((k + 1) ** ctx.r) * (lr_max ** ctx.weight_lr_power)
        weight_sum = ctx.weight_sum + weight
        ckp1 = weight / weight_sum if weight_sum != 0 else 0.0
        return {"scheduled_lr": lr, "ckp1": ckp1, "lr_max": lr_max, "weight_sum": weight_sum}

    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        z = state["z"]
        if decay_at_z:
            d = add(d, z, ctx.weight_decay)
        beta = ctx.betas[0] if from_betas else ctx.momentum
        lr, c = ctx.scheduled_lr, ctx.ckp1
        u = add((z - p) * c, d, lr * (beta * (1 - c) - 1))
        return u, {"z": add(z, d, -lr)}

    def init(p: Tensor) -> State:
        return {"z": p.clone()}

    name = "schedule_free_decay_at_z" if decay_at_z else "schedule_free"
    return Rule(name, update, init=init, prepare=prepare, state=("z",),
                carry=(("lr_max", -1.0), ("weight_sum", 0.0)),
                provides=("scheduled_lr", "ckp1"))


def scale_by_adam_second_moment() -> Rule:
    """Adam's denominator alone, as schedule-free AdamW uses it::

        v_t = beta2 v_{t-1} + (1 - beta2) g_t^2
        d_t = g_t / (sqrt(v_t / (1 - beta2^t)) + eps)

    No first moment: in schedule-free AdamW the interpolation between x and z does the work
    of momentum. The bias correction divides v before the root, as the `schedulefree`
    package computes it. Reads ``betas`` (the second) and ``eps``. State: ``exp_avg_sq``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        return {"bias_correction2": 1 - ctx.betas[1] ** ctx.step}

    def update(g: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        beta2 = ctx.betas[1]
        v = addcmul(state["exp_avg_sq"] * beta2, g, g, 1 - beta2)
        return g / ((v / ctx.bias_correction2).sqrt() + ctx.eps), {"exp_avg_sq": v}

    return Rule("scale_by_adam_second_moment", update, init=zeros("exp_avg_sq"),
                prepare=prepare, state=("exp_avg_sq",), provides=("bias_correction2",),
                low_precision=(("exp_avg_sq", "nonnegative"),))


def to_eval_point(y: Tensor, z: Tensor, beta: float) -> Tensor:
    """x = (y - (1 - beta) z) / beta, written as the package's ``lerp(y, z, 1 - 1/beta)``."""
    return y.lerp(z, 1 - 1 / beta)


def to_train_point(x: Tensor, z: Tensor, beta: float) -> Tensor:
    """y = (1 - beta) z + beta x, written as the package's ``lerp(x, z, 1 - beta)``."""
    return x.lerp(z, 1 - beta)
