"""Schedules: closed forms, composition, resume, the plateau controller, torch interop."""

from __future__ import annotations

import io
import math
import pickle

import pytest
import torch
from problems import backward, make_params

import descend
import descend.schedules as S

# (schedule, {step: value}) with values written out from the formulas by hand.
CLOSED_FORMS = [
    (S.constant(0.3), {0: 0.3, 10**9: 0.3}),
    (S.linear(1.0, 0.0, 10), {0: 1.0, 5: 0.5, 10: 0.0, 50: 0.0}),
    (S.linear_warmup(0.1, 4), {0: 0.0, 1: 0.025, 4: 0.1, 9: 0.1}),
    (S.exponential_warmup(1.0, 3, start=1e-3), {0: 1e-3, 1: 1e-2, 2: 1e-1, 3: 1.0, 7: 1.0}),
    (S.exponential_decay(1.0, 0.5), {0: 1.0, 1: 0.5, 3: 0.125}),
    (S.exponential_decay(1.0, 0.5, decay_steps=2), {1: 0.5**0.5, 4: 0.25}),
    (S.exponential_decay(1.0, 0.5, decay_steps=2, staircase=True), {1: 1.0, 3: 0.5, 4: 0.25}),
    (S.exponential_decay(1.0, 0.5, floor=0.2), {2: 0.25, 3: 0.2, 100: 0.2}),
    (S.inverse_time_decay(1.0, 0.5), {0: 1.0, 2: 0.5, 6: 0.25}),
    (S.inverse_time_decay(1.0, 1.0, decay_steps=10, staircase=True), {9: 1.0, 10: 0.5}),
    (S.step_decay(0.1, 0.1, 10), {0: 0.1, 9: 0.1, 10: 0.01, 25: 0.1 * 0.01}),
    (S.multi_step(1.0, [3, 7], 0.5), {2: 1.0, 3: 0.5, 6: 0.5, 7: 0.25, 100: 0.25}),
    (S.polynomial(1.0, 0.0, 10, power=2.0), {0: 1.0, 5: 0.25, 10: 0.0, 20: 0.0}),
    (S.cosine(1.0, 10), {0: 1.0, 5: 0.5, 10: 0.0, 11: 0.0}),
    (S.cosine(1.0, 10, floor=0.2), {5: 0.6, 10: 0.2}),
    (S.cosine_restarts(1.0, 10), {0: 1.0, 5: 0.5, 10: 1.0, 15: 0.5}),
    (S.cosine_restarts(1.0, 10, period_mult=2.0), {10: 1.0, 20: 0.5, 30: 1.0, 70: 1.0}),
    (S.warmup_cosine(1.0, 10, 110), {0: 0.0, 5: 0.5, 10: 1.0, 60: 0.5, 110: 0.0}),
    (S.warmup_stable_decay(1.0, 10, 100, 20), {5: 0.5, 10: 1.0, 80: 1.0, 90: 0.5, 100: 0.0}),
    (S.warmup_stable_decay(1.0, 0, 100, 20, shape="sqrt"), {0: 1.0, 95: 1 - math.sqrt(0.75)}),
    (S.one_cycle(1.0, 100, pct_start=0.25, anneal="linear"),
     {0: 0.04, 24: 1.0, 99: 0.04 / 1e4}),
    (S.cyclic(0.1, 1.0, 5), {0: 0.1, 5: 1.0, 10: 0.1, 15: 1.0}),
    (S.cyclic(0.0, 1.0, 5, mode="triangular2"), {5: 1.0, 15: 0.5, 25: 0.25}),
    (S.cyclic(0.0, 1.0, 5, mode="exp_range", gamma=0.9), {5: 0.9**5}),
    (S.join([0.1, 0.01], [5]), {4: 0.1, 5: 0.01}),
    (S.multiply(S.linear(0.0, 1.0, 10), 0.5), {4: 0.2}),
    (0.5 * S.linear(0.0, 1.0, 10), {4: 0.2}),
    (S.clamp(S.linear(0.0, 1.0, 10), 0.2, 0.7), {0: 0.2, 5: 0.5, 9: 0.7}),
    (S.per_epoch(S.step_decay(1.0, 0.1, 2), steps_per_epoch=10), {19: 1.0, 20: 0.1}),
    (S.per_epoch(S.linear(0.0, 1.0, 2), steps_per_epoch=10, fractional=True), {5: 0.25}),
]


@pytest.mark.parametrize("schedule,expected", CLOSED_FORMS,
                         ids=[f"{i}-{type(s).__name__}" for i, (s, _) in enumerate(CLOSED_FORMS)])
def test_closed_form_values(schedule, expected):
    for step, value in expected.items():
        assert schedule(step) == pytest.approx(value, rel=1e-12, abs=1e-15), step


@pytest.mark.parametrize("schedule", [s for s, _ in CLOSED_FORMS],
                         ids=[f"{i}" for i in range(len(CLOSED_FORMS))])
def test_huge_steps_are_finite_and_schedules_pickle(schedule):
    for step in (10**6, 10**12, 10**15 + 0.5):
        assert math.isfinite(schedule(step))
    assert pickle.loads(pickle.dumps(schedule)).values(50) == schedule.values(50)


@pytest.mark.parametrize("schedule,boundaries", [
    (S.warmup_cosine(1.0, 100, 1000, floor=0.1), [100]),
    (S.warmup_stable_decay(1.0, 100, 1000, 200), [100, 800]),
    (S.one_cycle(1.0, 1000), [299]),
    (S.join([S.linear(0, 1, 10), S.exponential_decay(1.0, 0.9)], [10]), [10]),
])
def test_joins_are_continuous_at_their_boundaries(schedule, boundaries):
    for b in boundaries:
        assert schedule(b - 1e-7) == pytest.approx(schedule(b), abs=1e-5)
        assert schedule(b + 1e-7) == pytest.approx(schedule(b), abs=1e-5)


def test_cosine_restarts_matches_torch_with_period_multiplier():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(opt, T_0=3, T_mult=2, eta_min=0.1)
    ours = S.cosine_restarts(1.0, 3, period_mult=2, floor=0.1)
    for t in range(100):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), t
        opt.step(), ref.step()


@pytest.mark.parametrize("kwargs", [dict(), dict(anneal="linear"), dict(three_phase=True),
                                    dict(pct_start=0.1, div_factor=10, final_div_factor=100)])
def test_one_cycle_matches_torch(kwargs):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    anneal = {"anneal_strategy": kwargs.pop("anneal")} if "anneal" in kwargs else {}
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.5, total_steps=50,
                                              cycle_momentum=False, **kwargs, **anneal)
    ours = S.one_cycle(0.5, 50, **kwargs,
                       **({"anneal": anneal["anneal_strategy"]} if anneal else {}))
    for t in range(50):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), t
        opt.step(), ref.step()


@pytest.mark.parametrize("mode", ["triangular", "triangular2", "exp_range"])
def test_cyclic_matches_torch(mode):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    ref = torch.optim.lr_scheduler.CyclicLR(opt, 0.01, 0.1, step_size_up=4, step_size_down=6,
                                            mode=mode, gamma=0.97, cycle_momentum=False)
    ours = S.cyclic(0.01, 0.1, 4, 6, mode=mode, gamma=0.97)
    for t in range(60):
        assert ours(t) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12), t
        opt.step(), ref.step()


# -- the plateau controller ---------------------------------------------------------------

METRICS = [1.0, 0.9, 0.9, 0.9, 0.9, 0.85, 0.85, 0.85, 0.8499, 0.86, 0.9, 0.7, 0.7, 0.7, 0.7,
           0.7, 0.7, 0.7, 0.7, 0.7, 0.7]


@pytest.mark.parametrize("opts", [
    dict(patience=2),
    dict(patience=1, cooldown=2),
    dict(patience=0, factor=0.5, min_lr=0.02),
    dict(patience=1, threshold=0.05, threshold_mode="abs"),
    dict(patience=1, threshold=0.01, threshold_mode="rel"),
    dict(patience=1, mode="max"),
])
def test_plateau_controller_matches_torch_on_a_scripted_metric(opts):
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    ref = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, **opts)
    ours_opts = {("min_value" if k == "min_lr" else k): v for k, v in opts.items()}
    ctl = S.reduce_on_plateau(0.1, **ours_opts)
    expected, got = [], []
    for step, metric in enumerate(METRICS):
        ref.step(metric)
        ctl.report(metric, step)
        expected.append(opt.param_groups[0]["lr"])
        got.append(ctl(step + 1))
    assert got == pytest.approx(expected, rel=1e-12)
    assert len(ctl.reductions) == sum(a != b for a, b in zip([0.1, *expected], expected))
    for r in ctl.reductions:
        assert r.new == pytest.approx(max(r.old * ctl.factor, ctl.min_value))
        assert r.metric == METRICS[r.step]


def test_plateau_reports_each_reduction():
    ctl = S.reduce_on_plateau(1.0, patience=1, factor=0.5)
    for step, metric in enumerate([3.0, 2.0, 2.0, 2.0, 2.0, 2.0]):
        ctl.report(metric, step)
    assert [(r.step, r.old, r.new, r.metric) for r in ctl.reductions] == [
        (3, 1.0, 0.5, 2.0), (5, 0.5, 0.25, 2.0)]


def test_warmup_then_reduce_on_plateau_composes():
    sched = S.reduce_on_plateau(S.linear_warmup(1e-3, 10), factor=0.1, patience=0)
    params = make_params(shapes=[(3,)])
    opt = descend.Adam(params, lr=sched)
    lrs = []
    for step in range(20):
        backward(params)
        lrs.append(opt.param_groups[0]["lr"])  # the value this step will use
        opt.step()
        opt.report(100.0 - min(step, 14))  # improves until step 14, then stalls
    assert lrs[:11] == pytest.approx([1e-4 * t for t in range(11)])
    assert lrs[15] == pytest.approx(1e-3)
    assert lrs[16] == pytest.approx(1e-4) and lrs[17] == pytest.approx(1e-5)
    assert [r.step for r in sched.reductions] == [16, 17, 18, 19, 20]


# -- attached to a descend optimizer -------------------------------------------------------


def _roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _scheduled_run(opt, params, steps, lrs):
    for step in range(steps):
        backward(params)
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        if step % 3 == 2:
            opt.report(float(step % 2))


def test_attached_schedule_resumes_bitwise_with_its_controller():
    def build(params):
        sched = S.reduce_on_plateau(S.warmup_cosine(0.1, 5, 40), patience=0, factor=0.5)
        return descend.SGD(params, lr=sched, momentum=S.linear(0.5, 0.9, 30))

    params = make_params(torch.float32)
    opt = build(params)
    lrs: list[float] = []
    _scheduled_run(opt, params, 12, lrs)
    saved = _roundtrip({"p": [p.detach().clone() for p in params], "o": opt.state_dict()})
    _scheduled_run(opt, params, 20, lrs)

    resumed = [p.clone().requires_grad_() for p in saved["p"]]
    opt2 = build(resumed)
    opt2.load_state_dict(saved["o"])
    lrs2 = lrs[:12]
    _scheduled_run(opt2, resumed, 20, lrs2)
    assert lrs2 == lrs
    assert opt2.steps_done == opt.steps_done == 32
    assert all(torch.equal(p, q) for p, q in zip(params, resumed))
    assert len(lrs) == len(set(lrs)) or len(set(lrs)) > 10


def test_schedules_drive_momentum_and_betas_like_setting_them_by_hand():
    momentum = S.linear(0.5, 0.95, 10)
    beta1 = S.cosine(0.95, 10, floor=0.8)
    cases = [
        (descend.SGD, torch.optim.SGD, dict(lr=0.05, momentum=momentum), "momentum",
         lambda t: momentum(t)),
        (descend.Adam, torch.optim.Adam, dict(lr=0.05, betas=(beta1, 0.99)), "betas",
         lambda t: (beta1(t), 0.99)),
    ]
    for ours_cls, torch_cls, kwargs, name, value_at in cases:
        params, ref = make_params(), make_params()
        opt = ours_cls(params, **kwargs)
        ref_opt = torch_cls(ref, lr=0.05, **{name: value_at(0)})
        for t in range(12):
            ref_opt.param_groups[0][name] = value_at(t)
            backward(params), backward(ref)
            assert opt.param_groups[0][name] == value_at(t)  # what the next step uses
            opt.step(), ref_opt.step()
        for p, r in zip(params, ref):
            torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


def test_scheduled_hyperparameters_are_validated():
    with pytest.raises(ValueError, match="momentum must be in"):
        descend.SGD(make_params(), lr=0.1, momentum=S.constant(1.5))


# -- with torch optimizers -----------------------------------------------------------------


def test_torch_optimizer_driven_by_a_descend_schedule_equals_attached():
    lr = S.warmup_cosine(0.1, 5, 30)
    mom = S.linear(0.8, 0.95, 30)
    ours, ref = make_params(), make_params()
    opt = descend.SGD(ours, lr=lr, momentum=mom)
    torch_opt = torch.optim.SGD(ref, lr=0.0, momentum=0.9)
    sched = S.ScheduledHyperparameters(torch_opt, {"lr": lr, "momentum": mom})
    for _ in range(30):
        backward(ours), backward(ref)
        assert torch_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        opt.step(), torch_opt.step()
        sched.step()
        assert torch_opt.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for p, r in zip(ours, ref):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


def test_torch_scheduler_wrapper_resumes_exactly():
    def build(params):
        o = torch.optim.Adam(params, lr=1.0)
        return o, S.ScheduledHyperparameters(o, S.reduce_on_plateau(
            S.exponential_decay(0.1, 0.9), patience=0))

    params = make_params(torch.float32)
    opt, sched = build(params)
    lrs = []
    for t in range(8):
        backward(params), opt.step(), sched.step()
        sched.schedules[0]["lr"].report(float(t % 2), sched.last_epoch)
        lrs.append(opt.param_groups[0]["lr"])
    saved = _roundtrip({"o": opt.state_dict(), "s": sched.state_dict()})
    opt2, sched2 = build(make_params(torch.float32))
    opt2.load_state_dict(saved["o"])
    sched2.load_state_dict(saved["s"])
    for t in range(8, 16):
        for s in (sched, sched2):
            s.step()
            s.schedules[0]["lr"].report(float(t % 2), s.last_epoch)
        assert opt.param_groups[0]["lr"] == opt2.param_groups[0]["lr"]


def test_torch_scheduler_wrapper_refuses_unknown_hyperparameters():
    opt = torch.optim.SGD(make_params(), lr=0.1)
    with pytest.raises(ValueError, match="no hyperparameter 'betas'"):
        S.ScheduledHyperparameters(opt, {"betas": (S.constant(0.9), 0.99)})


# -- bad input ------------------------------------------------------------------------------

BAD = [
    (lambda: S.cosine(1.0, 10)(-1), ValueError, "step must be >= 0"),
    (lambda: S.exponential_decay(1.0, 1.5), ValueError, r"rate must be in \(0, 1\]"),
    (lambda: S.exponential_decay(1.0, 0.0), ValueError, r"rate must be in \(0, 1\]"),
    (lambda: S.step_decay(1.0, -0.1, 10), ValueError, r"factor must be in \(0, 1\]"),
    (lambda: S.warmup_cosine(1.0, 200, 100), ValueError, "warmup_steps must be an integer in"),
    (lambda: S.warmup_stable_decay(1.0, 50, 100, 60), ValueError, "warmup_steps \\+ decay_steps"),
    (lambda: S.join([0.1, 0.2, 0.3], [10, 5]), ValueError, "strictly increasing"),
    (lambda: S.multi_step(1.0, [5, 5]), ValueError, "strictly increasing"),
    (lambda: S.join([0.1, 0.2], []), ValueError, "one entry fewer"),
    (lambda: S.cyclic(0.1, 1.0, mode="sawtooth"), ValueError, "mode must be one of"),
    (lambda: S.reduce_on_plateau(1.0, mode="lowest"), ValueError, "mode must be 'min' or 'max'"),
    (lambda: S.reduce_on_plateau(1.0, threshold_mode="x"), ValueError, "threshold_mode"),
    (lambda: S.reduce_on_plateau(1.0, factor=1.0), ValueError, r"factor must be in \(0, 1\)"),
    (lambda: S.warmup_stable_decay(1.0, 10, 100, 10, shape="exp"), ValueError, "shape must be"),
    (lambda: S.linear(0.0, 1.0, 0), ValueError, "steps must be a positive integer"),
    (lambda: S.cosine(float("nan"), 10), ValueError, "init must be a finite number"),
    (lambda: S.per_epoch(S.constant(1.0), 0), ValueError, "steps_per_epoch must be a positive"),
]


@pytest.mark.parametrize("make,exc,message", BAD, ids=[m for _, _, m in BAD])
def test_bad_schedule_input_names_the_argument(make, exc, message):
    with pytest.raises(exc, match=message):
        make()
