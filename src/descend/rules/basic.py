"""Rules with no state of their own: learning-rate scaling and weight decay."""

from __future__ import annotations

from torch import Tensor

from .base import Context, Rule, State


def scale_by_learning_rate() -> Rule:
    """u = -lr * d.

    The last rule of every recipe: it turns a descent direction into the update that the
    backend adds to the parameter, ``p <- p + u``. Reads ``lr`` from the param group, so
    schedulers (descend's or torch's) that rewrite ``group["lr"]`` take effect at once.
    """

    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        return d * -ctx.lr, {}

    return Rule("scale_by_learning_rate", update)


def add_decayed_weights() -> Rule:
    """d' = d + lambda * p, with lambda = ``weight_decay`` of the param group.

    Where it sits in a chain decides what kind of weight decay it is:
    - at the head, before any adaptive scaling, it is *coupled* L2 regularisation: the
      decay joins the gradient and is rescaled with it (``weight_decay`` of torch's
      SGD/Adam/RMSprop/Adagrad, Keras's kernel regulariser);
    - after the adaptive scaling and just before the learning rate, it is *decoupled* weight
      decay (Loshchilov & Hutter, 2019, "Decoupled Weight Decay Regularization"):
      ``p <- p - lr * (d + lambda p)``, which equals torch's AdamW ``p <- p (1 - lr lambda)``
      followed by the adaptive step.
    One rule, two positions: the maths is written once.
    """

    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        return d + p * ctx.weight_decay, {}

    return Rule("add_decayed_weights", update)


def scale_by_inverse_time() -> Rule:
    """d' = d / (1 + (t - 1) * k), with k = ``lr_decay`` of the param group.

    Adagrad's built-in learning-rate decay, as torch.optim.Adagrad defines it: at step t the
    effective rate is ``lr / (1 + (t - 1) lr_decay)``.
    """

    def prepare(ctx: Context) -> dict[str, float]:
        return {"inverse_time_factor": 1.0 / (1.0 + (ctx.step - 1) * ctx.lr_decay)}

    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        return d * ctx.inverse_time_factor, {}

    return Rule("scale_by_inverse_time", update, prepare=prepare,
                provides=("inverse_time_factor",))
