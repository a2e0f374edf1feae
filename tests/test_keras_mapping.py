"""docs/keras.md, checked: every Keras-to-descend translation and every difference it states.

Keras is not a dependency, so its side is transcribed here from the equations of Keras 3's
sources (keras/src/optimizers/{sgd,rmsprop,adam,adagrad,base_optimizer}.py,
optimizers/schedules/learning_rate_schedule.py, callbacks/reduce_lr_on_plateau.py and
callbacks/learning_rate_scheduler.py): deliberately naive float64 torch, one function per
rule, sharing nothing with descend. Each update takes (params, grads, state, t, lr) with t
Keras's ``optimizer.iterations`` (0 at the first update) and changes params in place.
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import pytest
import torch
from problems import loss_fn, make_params

import descend
import descend.schedules as S
from descend.rules import (
    add_fixed_decay,
    chain,
    heavy_ball,
    scale_by_adagrad,
    scale_by_learning_rate,
    scale_by_rms,
)

SHAPES = [(1,), (7,), (4, 5)]
STEPS = 20
RTOL = 1e-12
DOC = Path(__file__).resolve().parents[1] / "docs" / "keras.md"


# -- Keras 3's update rules, from their equations -----------------------------------------


def _decay(p, lr, weight_decay):
    # base_optimizer._apply_weight_decay, before the update: p <- p - p * wd * lr
    if weight_decay is not None:
        p -= p * weight_decay * lr


def keras_sgd(params, grads, state, t, lr, momentum=0.0, nesterov=False, weight_decay=None):
    # v <- mu v - lr g ; p <- p + v   (Nesterov: p <- p + mu v - lr g) ; no momentum: p -= lr g
    for i, (p, g) in enumerate(zip(params, grads)):
        _decay(p, lr, weight_decay)
        if momentum:
            v = momentum * state.get(i, torch.zeros_like(p)) - lr * g
            state[i] = v
            p += momentum * v - lr * g if nesterov else v
        else:
            p -= lr * g


def keras_rmsprop(params, grads, state, t, lr, rho=0.9, momentum=0.0, epsilon=1e-7,
                  centered=False, weight_decay=None):
    # v <- rho v + (1 - rho) g^2 ; inc = lr g / sqrt(v [- a^2] + eps) ; mom <- mu mom + inc
    for i, (p, g) in enumerate(zip(params, grads)):
        _decay(p, lr, weight_decay)
        zero = torch.zeros_like(p)
        st = state.setdefault(i, {"v": zero, "a": zero, "mom": zero})
        st["v"] = rho * st["v"] + (1 - rho) * g * g
        if centered:
            st["a"] = rho * st["a"] + (1 - rho) * g
            denominator = st["v"] - st["a"] ** 2 + epsilon
        else:
            denominator = st["v"] + epsilon
        increment = lr * g / torch.sqrt(denominator)
        if momentum > 0:
            st["mom"] = momentum * st["mom"] + increment
            p -= st["mom"]
        else:
            p -= increment


def keras_adam(params, grads, state, t, lr, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
               amsgrad=False, weight_decay=None):
    # alpha = lr sqrt(1 - b2^k) / (1 - b1^k), k = t + 1 ; p -= alpha m / (sqrt(v) + eps_hat)
    k = t + 1
    alpha = lr * math.sqrt(1 - beta_2**k) / (1 - beta_1**k)
    for i, (p, g) in enumerate(zip(params, grads)):
        _decay(p, lr, weight_decay)
        zero = torch.zeros_like(p)
        st = state.setdefault(i, {"m": zero, "v": zero, "v_hat": zero})
        st["m"] = st["m"] + (g - st["m"]) * (1 - beta_1)
        st["v"] = st["v"] + (g * g - st["v"]) * (1 - beta_2)
        v = st["v"]
        if amsgrad:
            st["v_hat"] = torch.maximum(st["v_hat"], v)
            v = st["v_hat"]
        p -= st["m"] * alpha / (torch.sqrt(v) + epsilon)


def keras_adagrad(params, grads, state, t, lr, initial_accumulator_value=0.1, epsilon=1e-7,
                  weight_decay=None):
    # s <- s + g^2, s_0 = 0.1 ; p -= lr g / sqrt(s + eps)
    for i, (p, g) in enumerate(zip(params, grads)):
        _decay(p, lr, weight_decay)
        s = state.get(i, torch.full_like(p, initial_accumulator_value)) + g * g
        state[i] = s
        p -= lr * g / torch.sqrt(s + epsilon)


# Keras 3's schedules, as functions of the step (optimizer.iterations).

def keras_exponential_decay(step, initial, decay_steps, decay_rate, staircase=False):
    p = step / decay_steps
    return initial * decay_rate ** (math.floor(p) if staircase else p)


def keras_inverse_time_decay(step, initial, decay_steps, decay_rate, staircase=False):
    p = step / decay_steps
    return initial / (1 + decay_rate * (math.floor(p) if staircase else p))


def keras_piecewise_constant(step, boundaries, values):
    # values[0] while step <= boundaries[0]; values[i] while boundaries[i-1] < step <= ...[i]
    for boundary, value in zip(boundaries, values):
        if step <= boundary:
            return value
    return values[-1]


def keras_cosine_decay(step, initial, decay_steps, alpha=0.0, warmup_target=None,
                       warmup_steps=0):
    def decay(s, peak):
        cosine = 0.5 * (1 + math.cos(math.pi * s / decay_steps))
        return peak * ((1 - alpha) * cosine + alpha)

    if warmup_target is None:
        return decay(min(step, decay_steps), initial)
    step = min(step, decay_steps + warmup_steps)
    if step < warmup_steps:
        return initial + (warmup_target - initial) * step / warmup_steps
    return decay(step - warmup_steps, warmup_target)


class KerasReduceLROnPlateau:
    """callbacks/reduce_lr_on_plateau.py, `on_epoch_end`, on a float learning rate."""

    def __init__(self, lr, factor=0.1, patience=10, mode="min", min_delta=1e-4, cooldown=0,
                 min_lr=0.0):
        self.lr, self.factor, self.patience = lr, factor, patience
        self.cooldown, self.min_lr = cooldown, min_lr
        # MonitorCallback: min_delta is absolute; an improvement beats the best by more.
        self.better = ((lambda a, b: a + min_delta < b) if mode == "min"
                       else (lambda a, b: a - min_delta > b))
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, current):
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.best is None or self.better(current, self.best):
            self.best, self.wait = current, 0
        elif self.cooldown_counter <= 0:
            self.wait += 1
            if self.wait >= self.patience and self.lr > self.min_lr:
                self.lr = max(self.lr * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
        return self.lr


# -- running both sides ---------------------------------------------------------------------


def _grads(params, loss=loss_fn):
    leaves = [p.detach().clone().requires_grad_() for p in params]
    loss(leaves).backward()
    return [p.grad for p in leaves]


def run_keras(update, lr, steps=STEPS, loss=loss_fn, shapes=SHAPES, **hyper):
    """Keras's trajectory from make_params; `lr` a number or a function of the step."""
    params = [p.detach().clone() for p in make_params(shapes=shapes)]
    state = {}
    for t in range(steps):
        update(params, _grads(params, loss), state, t, lr(t) if callable(lr) else lr, **hyper)
    return params


def run_descend(make, steps=STEPS, loss=loss_fn, shapes=SHAPES):
    params = make_params(shapes=shapes)
    opt = make(params)
    for _ in range(steps):
        for p in params:
            p.grad = None
        loss(params).backward()
        opt.step()
    return [p.detach() for p in params]


def relative_gap(ours, keras):
    return max(((a - b).abs() / b.abs().clamp_min(1e-300)).max().item()
               for a, b in zip(ours, keras))


def assert_same(ours, keras):
    for a, b in zip(ours, keras):
        torch.testing.assert_close(a, b, rtol=RTOL, atol=0)


def doc_block(marker, **names):
    """Run the one python block of docs/keras.md that contains `marker`, with `names`
    defined, and return its namespace: what the page shows is what is tested."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    (source,) = [b for b in blocks if marker in b]
    exec(compile(source, str(DOC), "exec"), names)
    return names


EpsilonHat = doc_block("class EpsilonHat")["EpsilonHat"]

# A schedule that moves at every step and jumps, for the claims that hinge on a changing lr.
DROP = S.join([S.linear(0.01, 0.05, 8), 0.005], [10])


def drop(t):
    return 0.01 + (0.05 - 0.01) * min(t, 8) / 8 if t < 10 else 0.005


# -- the optimizers table --------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"momentum": 0.9}, {"momentum": 0.9, "nesterov": True}],
                         ids=["plain", "momentum", "nesterov"])
def test_sgd_at_a_constant_lr_equals_keras(kwargs):
    keras = run_keras(keras_sgd, 0.01, **kwargs)
    assert_same(run_descend(lambda p: descend.SGD(p, lr=0.01, **kwargs)), keras)


def test_nesterov_shortcut_equals_keras_nesterov():
    keras = run_keras(keras_sgd, 0.01, momentum=0.9, nesterov=True)
    assert_same(run_descend(lambda p: descend.Nesterov(p, lr=0.01)), keras)


def test_descend_momentum_class_is_not_keras_momentum():
    keras = run_keras(keras_sgd, 0.01, momentum=0.9)
    assert relative_gap(run_descend(lambda p: descend.Momentum(p, lr=0.01)), keras) > 1e-2


@pytest.mark.parametrize("kwargs", [{}, {"centered": True}, {"momentum": 0.9},
                                    {"momentum": 0.9, "centered": True}],
                         ids=["plain", "centered", "momentum", "centered-momentum"])
def test_rmsprop_with_eps_inside_sqrt_equals_keras(kwargs):
    keras = run_keras(keras_rmsprop, 1e-3, **kwargs)
    ours = run_descend(lambda p: descend.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7,
                                                 eps_inside_sqrt=True, **kwargs))
    assert_same(ours, keras)


def test_rmsprop_with_torch_eps_placement_is_not_keras():
    keras = run_keras(keras_rmsprop, 1e-3)
    ours = run_descend(lambda p: descend.RMSprop(p, lr=1e-3, alpha=0.9, eps=1e-7))
    assert relative_gap(ours, keras) > 1e-10


@pytest.mark.parametrize("amsgrad", [False, True])
def test_adam_with_epsilon_hat_schedule_equals_keras(amsgrad):
    keras = run_keras(keras_adam, 1e-3, amsgrad=amsgrad)
    ours = run_descend(lambda p: descend.Adam(p, lr=1e-3, betas=(0.9, 0.999),
                                              eps=EpsilonHat(1e-7), amsgrad=amsgrad))
    assert_same(ours, keras)


def test_adam_with_epsilon_hat_equals_keras_under_an_lr_schedule():
    keras = run_keras(keras_adam, drop)
    assert_same(run_descend(lambda p: descend.Adam(p, lr=DROP, eps=EpsilonHat(1e-7))), keras)


def test_adagrad_with_epsilon_folded_into_the_accumulator_equals_keras():
    keras = run_keras(keras_adagrad, 1e-3)
    ours = run_descend(lambda p: descend.Adagrad(p, lr=1e-3, initial_accumulator_value=0.1 + 1e-7,
                                                 eps=1e-20))
    assert_same(ours, keras)


def test_adagrad_with_descends_default_eps_is_off_by_at_most_3e_10():
    keras = run_keras(keras_adagrad, 1e-3, steps=1)
    ours = run_descend(lambda p: descend.Adagrad(p, lr=1e-3, initial_accumulator_value=0.1 + 1e-7),
                       steps=1)
    start = [p.detach() for p in make_params(shapes=SHAPES)]
    # the relative gap of the step itself, not of the parameter
    gaps = [((a - b).abs() / (b - s).abs()).max().item() for a, b, s in zip(ours, keras, start)]
    assert 0 < max(gaps) <= 1e-10 / math.sqrt(0.1) * (1 + 1e-6)
    assert 1e-10 / math.sqrt(0.1) == pytest.approx(3.2e-10, rel=0.02)


# -- momentum and a changing learning rate -------------------------------------------------


@pytest.mark.parametrize("nesterov", [False, True])
def test_sgd_momentum_differs_from_keras_when_the_lr_changes(nesterov):
    keras = run_keras(keras_sgd, drop, momentum=0.9, nesterov=nesterov)
    ours = run_descend(lambda p: descend.SGD(p, lr=DROP, momentum=0.9, nesterov=nesterov))
    assert relative_gap(ours, keras) > 1e-3


@pytest.mark.parametrize("nesterov", [False, True])
def test_keras_sgd_chain_equals_keras_under_a_schedule(nesterov):
    keras = run_keras(keras_sgd, drop, momentum=0.9, nesterov=nesterov)
    rule = chain(scale_by_learning_rate(), heavy_ball(nesterov))
    assert_same(run_descend(lambda p: descend.RuleOptimizer(p, rule, lr=DROP, momentum=0.9)),
                keras)


def test_the_doc_blocks_build_the_chains_tested_here():
    page = doc_block("keras_sgd = chain(", params=make_params(shapes=SHAPES), schedule=DROP)
    assert page["keras_sgd"].name == chain(scale_by_learning_rate(), heavy_ball()).name
    assert page["keras_rmsprop"].name == chain(scale_by_rms(eps_inside_sqrt=True),
                                               scale_by_learning_rate(), heavy_ball()).name
    page = doc_block("add_fixed_decay()", params=make_params(shapes=SHAPES), schedule=DROP)
    assert page["rule"].name == chain(scale_by_adagrad(0.1 + 1e-7), scale_by_learning_rate(),
                                      add_fixed_decay()).name
    assert page["opt"].defaults["weight_decay"] == 1e-4 * 1e-3


def test_rmsprop_momentum_differs_from_keras_when_the_lr_changes_and_the_chain_does_not():
    keras = run_keras(keras_rmsprop, drop, momentum=0.9)
    ours = run_descend(lambda p: descend.RMSprop(p, lr=DROP, alpha=0.9, eps=1e-7,
                                                 eps_inside_sqrt=True, momentum=0.9))
    assert relative_gap(ours, keras) > 1e-3
    rule = chain(scale_by_rms(eps_inside_sqrt=True), scale_by_learning_rate(), heavy_ball())
    exact = run_descend(lambda p: descend.RuleOptimizer(p, rule, lr=DROP, alpha=0.9, eps=1e-7,
                                                        momentum=0.9))
    assert_same(exact, keras)


def test_after_a_tenfold_lr_cut_keras_steps_are_1_plus_9_times_0_9_to_the_k_plus_1():
    """Steady gradient, mu = 0.9, 200 steps at 0.1 (the velocity saturates), then 0.01."""
    weights = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)

    def linear(params):
        return (params[0] * weights).sum()

    def lr(t):
        return 0.1 if t < 200 else 0.01

    cut, after = 200, 20
    keras_params, keras_state, keras_path = [torch.zeros(3, dtype=torch.float64)], {}, []
    params = [torch.zeros(3, dtype=torch.float64, requires_grad=True)]
    opt = descend.SGD(params, lr=S.join([0.1, 0.01], [cut]), momentum=0.9)
    ours_path = []
    for t in range(cut + after):
        keras_sgd(keras_params, _grads(keras_params, linear), keras_state, t, lr(t),
                  momentum=0.9)
        params[0].grad = weights.clone()
        opt.step()
        if t + 1 >= cut:
            keras_path.append(keras_params[0].clone())
            ours_path.append(params[0].detach().clone())
    for k in range(after):
        keras_step = keras_path[k + 1] - keras_path[k]
        our_step = ours_path[k + 1] - ours_path[k]
        ratio = keras_step / our_step
        torch.testing.assert_close(ratio, torch.full_like(ratio, 1 + 9 * 0.9 ** (k + 1)),
                                   rtol=1e-6, atol=0)
    assert pytest.approx(9.1) == 1 + 9 * 0.9
    # all the excess, in steps of the new rate
    assert sum(9 * 0.9 ** (k + 1) for k in range(10_000)) == pytest.approx(81)


def test_during_a_warmup_keras_momentum_steps_lag_behind():
    weights = torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)

    def linear(params):
        return (params[0] * weights).sum()

    def warmup(t):
        return 0.01 + (0.1 - 0.01) * min(t, 20) / 20

    keras_params, keras_state = [torch.zeros(3, dtype=torch.float64)], {}
    params = [torch.zeros(3, dtype=torch.float64, requires_grad=True)]
    opt = descend.SGD(params, lr=S.linear(0.01, 0.1, 20), momentum=0.9)
    for t in range(20):
        keras_before, before = keras_params[0].clone(), params[0].detach().clone()
        keras_sgd(keras_params, [weights], keras_state, t, warmup(t), momentum=0.9)
        params[0].grad = weights.clone()
        opt.step()
        ratio = (keras_params[0] - keras_before) / (params[0].detach() - before)
        if t == 0:
            torch.testing.assert_close(ratio, torch.ones(3, dtype=torch.float64))
        else:
            assert (ratio < 1).all(), t


# -- Adam's epsilon --------------------------------------------------------------------------


def test_adam_with_a_plain_eps_steps_larger_by_the_stated_factor():
    """Steady gradients of size 1, 1e-3 and 1e-12: descend.Adam(eps=1e-7) against Keras,
    step by step, against (sqrt(v_t) + eps) / (sqrt(v_t) + eps sqrt(1 - b2^t))."""
    g = torch.tensor([1.0, 1e-3, 1e-12], dtype=torch.float64)
    eps, beta_2, checks = 1e-7, 0.999, (1, 10, 100, 1000)
    params = [torch.zeros(3, dtype=torch.float64, requires_grad=True)]
    opt = descend.Adam(params, lr=1e-3, eps=eps)
    keras_params, keras_state = [torch.zeros(3, dtype=torch.float64)], {}
    measured = {}
    for t in range(1, max(checks) + 1):
        before, keras_before = params[0].detach().clone(), keras_params[0].clone()
        params[0].grad = g.clone()
        opt.step()
        keras_adam(keras_params, [g], keras_state, t - 1, 1e-3)
        if t in checks:
            ratio = (params[0].detach() - before) / (keras_params[0] - keras_before)
            c = math.sqrt(1 - beta_2**t)
            sqrt_v = c * g  # a steady gradient: v_t = (1 - b2^t) g^2
            torch.testing.assert_close(ratio, (sqrt_v + eps) / (sqrt_v + eps * c),
                                       rtol=1e-9, atol=0)
            measured[t] = ratio
    # the bound 1 / sqrt(1 - b2^t), reached where the gradient is far below eps
    for t, bound in {1: 31.6, 10: 10.0, 100: 3.24, 1000: 1.26}.items():
        assert 1 / math.sqrt(1 - beta_2**t) == pytest.approx(bound, abs=0.005 * bound)
        assert measured[t][2].item() == pytest.approx(1 / math.sqrt(1 - beta_2**t), rel=1e-4)
        assert (measured[t] >= 1).all()
    # at step 1, a steady |g|: 1 + 30.6 eps / |g|
    c1 = math.sqrt(1 - beta_2)
    assert (1 - c1) / c1 == pytest.approx(30.6, abs=0.05)
    assert measured[1][0].item() - 1 == pytest.approx(3.06e-6, rel=1e-2)
    assert measured[1][1].item() - 1 == pytest.approx(3.06e-3, rel=1e-2)


# -- weight decay ----------------------------------------------------------------------------


def test_keras_adam_weight_decay_is_adamw_with_epsilon_hat():
    keras = run_keras(keras_adam, drop, weight_decay=0.004)
    ours = run_descend(lambda p: descend.AdamW(p, lr=DROP, weight_decay=0.004,
                                               eps=EpsilonHat(1e-7)))
    assert_same(ours, keras)


def test_keras_sgd_weight_decay_without_momentum_is_torchs_l2():
    keras = run_keras(keras_sgd, drop, weight_decay=0.1)
    assert_same(run_descend(lambda p: descend.SGD(p, lr=DROP, weight_decay=0.1)), keras)


def test_keras_sgd_weight_decay_with_momentum_needs_the_fixed_decay_chain():
    keras = run_keras(keras_sgd, drop, momentum=0.9, weight_decay=0.1)
    coupled = run_descend(lambda p: descend.SGD(p, lr=DROP, momentum=0.9, weight_decay=0.1))
    assert relative_gap(coupled, keras) > 1e-3
    rule = chain(scale_by_learning_rate(), heavy_ball(), add_fixed_decay())
    ours = run_descend(lambda p: descend.RuleOptimizer(p, rule, lr=DROP, momentum=0.9,
                                                       weight_decay=0.1 * DROP))
    assert_same(ours, keras)


def test_keras_rmsprop_weight_decay_by_the_fixed_decay_chain():
    keras = run_keras(keras_rmsprop, drop, momentum=0.9, weight_decay=0.1)
    rule = chain(scale_by_rms(eps_inside_sqrt=True), scale_by_learning_rate(), heavy_ball(),
                 add_fixed_decay())
    ours = run_descend(lambda p: descend.RuleOptimizer(p, rule, lr=DROP, alpha=0.9, eps=1e-7,
                                                       momentum=0.9, weight_decay=0.1 * DROP))
    assert_same(ours, keras)


def test_keras_adagrad_weight_decay_as_the_doc_spells_it():
    keras = run_keras(keras_adagrad, 1e-3, weight_decay=1e-4)
    rule = chain(scale_by_adagrad(0.1 + 1e-7), scale_by_learning_rate(), add_fixed_decay())
    ours = run_descend(lambda p: descend.RuleOptimizer(p, rule, lr=1e-3, eps=1e-20,
                                                       weight_decay=1e-4 * 1e-3))
    assert_same(ours, keras)


def test_excluding_a_parameter_from_keras_weight_decay_is_a_group_without_it():
    # loss_fn is a sum of one term per parameter, so each parameter's path is its own
    decayed = run_keras(keras_adam, 1e-3, weight_decay=0.004)
    excluded = run_keras(keras_adam, 1e-3)
    keras = [excluded[0], *decayed[1:]]
    ours = run_descend(lambda p: descend.AdamW([{"params": p[:1], "weight_decay": 0.0},
                                                {"params": p[1:]}],
                                               lr=1e-3, weight_decay=0.004,
                                               eps=EpsilonHat(1e-7)))
    assert_same(ours, keras)


# -- defaults --------------------------------------------------------------------------------


def test_descend_defaults_are_the_ones_the_table_lists():
    p = make_params(shapes=[(2,)])
    expected = {
        descend.SGD: {"lr": 1e-3, "momentum": 0.0},
        descend.RMSprop: {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "eps_inside_sqrt": False},
        descend.Adam: {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        descend.Adagrad: {"lr": 1e-2, "eps": 1e-10, "initial_accumulator_value": 0.0},
        descend.AdamW: {"lr": 1e-3, "weight_decay": 1e-2},
    }
    for cls, values in expected.items():
        defaults = cls(p).defaults
        assert {k: defaults[k] for k in values} == values, cls.__name__


# -- schedules -------------------------------------------------------------------------------


SCHEDULES = [
    ("exponential", S.exponential_decay(0.1, 0.96, 1000),
     lambda t: keras_exponential_decay(t, 0.1, 1000, 0.96)),
    ("exponential-staircase", S.exponential_decay(0.1, 0.96, 1000, staircase=True),
     lambda t: keras_exponential_decay(t, 0.1, 1000, 0.96, staircase=True)),
    ("inverse-time", S.inverse_time_decay(0.1, 0.5, 1000),
     lambda t: keras_inverse_time_decay(t, 0.1, 1000, 0.5)),
    ("inverse-time-staircase", S.inverse_time_decay(0.1, 0.5, 1000, staircase=True),
     lambda t: keras_inverse_time_decay(t, 0.1, 1000, 0.5, staircase=True)),
    ("piecewise", S.join([0.1, 0.01, 0.001], [1001, 2001]),
     lambda t: keras_piecewise_constant(t, [1000, 2000], [0.1, 0.01, 0.001])),
    ("cosine", S.cosine(0.1, 1000, floor=0.1 * 0.01),
     lambda t: keras_cosine_decay(t, 0.1, 1000, alpha=0.01)),
    ("cosine-warmup", S.warmup_cosine(0.1, warmup_steps=100, total_steps=1000,
                                      floor=0.1 * 0.01, start=0.0),
     lambda t: keras_cosine_decay(t, 0.0, 900, alpha=0.01, warmup_target=0.1,
                                  warmup_steps=100)),
    ("cosine-warmup-from-nonzero", S.warmup_cosine(0.1, 100, 1000, floor=0.1 * 0.01,
                                                   start=0.02),
     lambda t: keras_cosine_decay(t, 0.02, 900, alpha=0.01, warmup_target=0.1,
                                  warmup_steps=100)),
    ("legacy-decay", S.inverse_time_decay(0.01, 1e-6),
     lambda t: 0.01 / (1 + 1e-6 * t)),  # optimizer_v2's lr / (1 + decay * iterations)
]
PROBES = [0, 1, 7, 50, 99, 100, 101, 500, 999, 1000, 1001, 1500, 2000, 2001, 2500, 5000]


@pytest.mark.parametrize(("name", "ours", "keras"), SCHEDULES, ids=[s[0] for s in SCHEDULES])
def test_schedule_gives_keras_values(name, ours, keras):
    for t in PROBES:
        assert ours(t) == pytest.approx(keras(t), rel=1e-12, abs=0), t


def test_piecewise_constant_switches_one_step_after_its_keras_boundary():
    ours = S.join([0.1, 0.01, 0.001], [1001, 2001])
    assert [ours(t) for t in (1000, 1001, 2000, 2001)] == [0.1, 0.01, 0.01, 0.001]
    assert keras_piecewise_constant(1000, [1000, 2000], [0.1, 0.01, 0.001]) == 0.1


def test_an_optimizer_uses_the_keras_value_at_keras_iterations():
    """The lr of the (t+1)-th update is the schedule at t, as Keras's at `iterations` = t."""
    name, schedule, keras = SCHEDULES[1]
    params = make_params(shapes=[(3,)])
    opt = descend.SGD(params, lr=schedule)
    for t in range(0, 3001):
        if t in (0, 1, 999, 1000, 1001, 2000, 3000):
            assert opt.param_groups[0]["lr"] == pytest.approx(keras(t), rel=1e-12), t
        params[0].grad = torch.zeros_like(params[0])
        opt.step()


# -- callbacks -------------------------------------------------------------------------------


def _epoch_lrs(schedule, epochs, steps_per_epoch):
    """The lr a descend optimizer uses at the first and the last step of each epoch."""
    params = make_params(shapes=[(2,)])
    opt = descend.SGD(params, lr=schedule)
    lrs = []
    for _ in range(epochs):
        seen = []
        for _ in range(steps_per_epoch):
            seen.append(opt.param_groups[0]["lr"])
            params[0].grad = torch.zeros_like(params[0])
            opt.step()
        assert len(set(seen)) == 1
        lrs.append(seen[0])
    return lrs


def _learning_rate_scheduler(fn, epochs, lr):
    """LearningRateScheduler: on_epoch_begin sets lr = fn(epoch, lr)."""
    lrs = []
    for epoch in range(epochs):
        lr = fn(epoch, lr)
        lrs.append(lr)
    return lrs


def test_step_decay_callback_is_per_epoch_step_decay():
    keras = _learning_rate_scheduler(lambda epoch, lr: 0.1 * 0.5 ** (epoch // 10), 35, 0.1)
    ours = _epoch_lrs(S.per_epoch(S.step_decay(0.1, 0.5, 10), steps_per_epoch=4), 35, 4)
    assert ours == pytest.approx(keras, rel=1e-12)


def test_tutorial_step_decay_with_one_plus_epoch_drops_at_9_19_29():
    keras = _learning_rate_scheduler(
        lambda epoch, lr: 0.1 * math.pow(0.5, math.floor((1 + epoch) / 10.0)), 35, 0.1)
    ours = _epoch_lrs(S.per_epoch(S.join([0.1, S.step_decay(0.05, 0.5, 10)], [9]), 3), 35, 3)
    assert ours == pytest.approx(keras, rel=1e-12)
    assert [e for e in range(1, 35) if keras[e] < keras[e - 1]] == [9, 19, 29]


def test_keras_docs_scheduler_in_terms_of_lr_has_the_stated_closed_form():
    lr0 = 0.01
    keras = _learning_rate_scheduler(lambda epoch, lr: lr if epoch < 10 else lr * math.exp(-0.1),
                                     30, lr0)
    schedule = S.join([lr0, S.exponential_decay(lr0 * math.exp(-0.1), math.exp(-0.1))], [10])
    assert _epoch_lrs(S.per_epoch(schedule, 2), 30, 2) == pytest.approx(keras, rel=1e-12)


def _metrics(seed, n=150):
    """A noisy, slowly improving validation loss with plateaus (and exact repeats)."""
    rng = random.Random(seed)
    level, out = 2.0, []
    for _ in range(n):
        if rng.random() < 0.15:
            level *= rng.uniform(0.9, 1.0)
        out.append(round(level + rng.uniform(0, 0.05), rng.choice([2, 6])))
    return out


def _plateau_lrs(lr, metrics):
    params = make_params(shapes=[(2,)])
    opt = descend.SGD(params, lr=lr)
    lrs = []
    for metric in metrics:
        params[0].grad = torch.zeros_like(params[0])
        opt.step()
        opt.report(metric)
        lrs.append(opt.param_groups[0]["lr"])
    return lrs


@pytest.mark.parametrize(("patience", "cooldown", "min_lr", "mode"),
                         [(10, 0, 0.0, "min"), (3, 0, 0.0, "min"), (3, 1, 0.0, "min"),
                          (2, 3, 0.0, "min"), (1, 0, 1e-4, "min"), (0, 2, 0.0, "min"),
                          (4, 2, 1e-5, "max")])
def test_reduce_on_plateau_with_the_stated_arguments_reduces_when_keras_does(
        patience, cooldown, min_lr, mode):
    reductions = 0
    for seed in range(4):
        metrics = _metrics(seed)
        if mode == "max":  # an accuracy: higher is better
            metrics = [1 - m / 4 for m in metrics]
        callback = KerasReduceLROnPlateau(0.1, factor=0.5, patience=patience, mode=mode,
                                          min_delta=1e-4, cooldown=cooldown, min_lr=min_lr)
        keras = [callback.on_epoch_end(m) for m in metrics]
        lr = S.reduce_on_plateau(0.1, factor=0.5, patience=max(patience - 1, 0),
                                 threshold=1e-4, threshold_mode="abs",
                                 cooldown=max(cooldown - 1, 0), min_value=min_lr, eps=0.0,
                                 mode=mode)
        ours = []
        for metric in metrics:  # the controller alone; opt.report(metric) feeds it the same
            lr.report(metric)
            ours.append(lr(0))
        assert ours == pytest.approx(keras, rel=1e-12)
        reductions += sum(b < a for a, b in zip([0.1] + keras, keras))
    assert reductions >= 8  # the metrics did exercise the rules


def test_reduce_on_plateau_doc_spelling_of_keras_defaults():
    metrics = [1.0] + [1.0] * 30
    keras = KerasReduceLROnPlateau(1e-3)
    keras_lrs = [keras.on_epoch_end(m) for m in metrics]
    ours = _plateau_lrs(S.reduce_on_plateau(1e-3, factor=0.1, patience=9, threshold=1e-4,
                                            threshold_mode="abs", eps=0.0), metrics)
    assert ours == pytest.approx(keras_lrs, rel=1e-12)
    # the first epoch sets the best; Keras cuts after 10 bad epochs (index 10)...
    assert keras_lrs.index(1e-3 * 0.1) == 10
    # ...and descend's defaults one epoch later
    defaults = _plateau_lrs(S.reduce_on_plateau(1e-3), metrics)
    assert defaults.index(pytest.approx(1e-4)) == 11


def test_relative_threshold_is_stricter_above_1_and_looser_below():
    def improved(best, metric, mode):
        ctrl = S.reduce_on_plateau(1.0, threshold=1e-4, threshold_mode=mode)
        ctrl.best = best
        return ctrl.improved(metric)

    # an improvement of 5e-4 at a loss of 10: Keras (absolute) counts it, relative does not
    assert improved(10.0, 10.0 - 5e-4, "abs") and not improved(10.0, 10.0 - 5e-4, "rel")
    # an improvement of 5e-5 at a loss of 0.1: relative counts it, Keras does not
    assert improved(0.1, 0.1 - 5e-5, "rel") and not improved(0.1, 0.1 - 5e-5, "abs")


def test_keras_skips_no_reduction_that_descends_default_eps_would():
    # From 1e-8 a 10x cut is 9e-9, below descend's default eps=1e-8; Keras makes it.
    metrics = [1.0] * 4
    keras = KerasReduceLROnPlateau(1e-8, patience=1)
    keras_lrs = [keras.on_epoch_end(m) for m in metrics]
    assert keras_lrs[1] == pytest.approx(1e-9)
    assert _plateau_lrs(S.reduce_on_plateau(1e-8, patience=0, threshold_mode="abs"),
                        metrics)[1] == pytest.approx(1e-8)
    assert _plateau_lrs(S.reduce_on_plateau(1e-8, patience=0, threshold_mode="abs", eps=0.0),
                        metrics) == pytest.approx(keras_lrs)
