"""The schedule-free optimizers' train/eval switch: what only they have."""

from __future__ import annotations

import io

import pytest
import schedulefree as sf
import torch
from problems import backward, clone_params, make_params, train

import descend

PAIRS = [
    (lambda p: descend.ScheduleFreeSGD(p, lr=0.1, momentum=0.8, weight_decay=0.01),
     lambda p: sf.SGDScheduleFree(p, lr=0.1, momentum=0.8, weight_decay=0.01)),
    (lambda p: descend.ScheduleFreeAdamW(p, lr=0.05, warmup_steps=3, weight_decay=0.01),
     lambda p: sf.AdamWScheduleFree(p, lr=0.05, warmup_steps=3, weight_decay=0.01)),
]


def _close(ps, rs):
    for p, r in zip(ps, rs):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("make,make_ref", PAIRS)
def test_eval_and_train_switch_like_the_package(make, make_ref):
    params = make_params()
    ref_params = clone_params(params)
    opt, ref = make(params), make_ref(ref_params)
    ref.train()
    for _phase in range(3):
        for _ in range(6):
            backward(params), backward(ref_params)
            opt.step(), ref.step()
        _close(params, ref_params)
        opt.eval(), ref.eval()
        _close(params, ref_params)           # both hold x now
        assert all(not g["train_mode"] for g in opt.param_groups)
        opt.eval()                           # a second eval() changes nothing
        _close(params, ref_params)
        opt.train(), ref.train()
        _close(params, ref_params)           # back to y


def test_x_is_the_average_and_y_the_interpolation():
    params = make_params()
    opt = descend.ScheduleFreeSGD(params, lr=0.1, momentum=0.9)
    train(opt, params, 5)
    y = [p.detach().clone() for p in params]
    opt.eval()
    for p, yi in zip(params, y):
        z = opt.state[p]["z"]
        torch.testing.assert_close(0.9 * p + 0.1 * z, yi, rtol=1e-12, atol=1e-12)


def test_step_in_eval_mode_is_refused_and_changes_nothing():
    params = make_params()
    opt = descend.ScheduleFreeAdamW(params, lr=0.05)
    train(opt, params, 3)
    opt.eval()
    before = [p.detach().clone() for p in params]
    backward(params)
    with pytest.raises(RuntimeError, match=r"eval mode.*optimizer.train\(\)"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_a_new_optimizer_trains_without_train():
    params = make_params()
    opt = descend.ScheduleFreeSGD(params, lr=0.1)
    opt.train()                               # a no-op: it starts in train mode
    train(opt, params, 2)
    assert opt.state[params[0]]["step"] == 2


@pytest.mark.parametrize("make,make_ref", PAIRS)
def test_the_mode_travels_in_the_state_dict(make, make_ref):
    params = make_params(torch.float32)
    opt = make(params)
    train(opt, params, 5)
    opt.eval()                                # checkpoints are taken at x
    buffer = io.BytesIO()
    torch.save({"p": [p.detach().clone() for p in params], "o": opt.state_dict()}, buffer)
    opt.train()
    train(opt, params, 4)

    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    resumed = [p.clone().requires_grad_() for p in saved["p"]]
    opt2 = make(resumed)
    opt2.load_state_dict(saved["o"])
    assert all(not g["train_mode"] for g in opt2.param_groups)
    opt2.train()
    train(opt2, resumed, 4)
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
