"""Rules that see the whole group: carried scalars of the group (Prodigy's d) and
closure-driven rules (L-BFGS)."""

from __future__ import annotations

import io

import prodigyopt
import pytest
import torch
from problems import clone_params, loss_fn, make_params, step, train

import descend
from descend.rules import Rule


def test_group_scalars_live_in_the_group_and_match_prodigyopt():
    params = make_params()
    ref_params = clone_params(params)
    opt, ref = descend.Prodigy(params), prodigyopt.Prodigy(ref_params)
    for _ in range(5):
        step(opt, params), step(ref, ref_params)
    group, ref_group = opt.param_groups[0], ref.param_groups[0]
    for key in ("d", "d_max", "d_numerator"):
        assert group[key] == pytest.approx(ref_group[key], rel=1e-12)
        assert key not in opt.state[params[0]]
    assert group["d"] > group["d0"]


def test_each_group_estimates_its_own_d():
    params = make_params()
    alone = clone_params(params[:2])
    opt = descend.Prodigy([{"params": params[:2]}, {"params": params[2:], "d0": 1e-3}])
    train(opt, params, 5)
    first, second = opt.param_groups
    solo = descend.Prodigy(alone)
    train(solo, alone, 5)
    assert first["d"] == solo.param_groups[0]["d"]
    assert first["d"] != second["d"]


def test_a_parameter_without_gradient_does_not_hold_back_the_group_estimate():
    params = make_params()
    opt = descend.Prodigy(params)
    for i in range(6):
        for p in params:
            p.grad = None
        loss_fn(params[1:] if i % 2 else params).backward()
        opt.step()
    assert opt.state[params[0]]["step"] == 3 and opt.state[params[1]]["step"] == 6
    assert opt.param_groups[0]["d"] > 1e-6


def test_a_closure_rule_must_reduce_over_the_group():
    with pytest.raises(ValueError, match="closure-driven rule runs on the whole group"):
        Rule("bad", lambda d, s, p, ctx: (d, {}), closure=True)


def test_step_without_a_closure_is_refused_with_how_to_write_one():
    params = make_params()
    opt = descend.LBFGS(params)
    loss_fn(params).backward()
    before = [p.detach().clone() for p in params]
    with pytest.raises(TypeError, match=r"step\(\) needs a closure.*opt.step\(closure\)"):
        opt.step()
    assert all(torch.equal(p, b) for p, b in zip(params, before))


def test_evaluate_puts_the_parameters_back():
    seen = []

    def update(g, state, p, ctx):
        loss, grads = ctx.evaluate([t + 1 for t in p.tensors])
        seen.append((loss, [t.clone() for t in p.tensors]))
        return -0.5 * g, {}

    rule = Rule("probe", update, reduction="group", closure=True)
    params = make_params()
    start = [p.detach().clone() for p in params]
    opt = descend.RuleOptimizer(params, rule, lr=1.0)
    loss0 = step(opt, params, closure=True)
    shifted = [p + 1 for p in start]
    assert seen[0][0] == pytest.approx(loss_fn(shifted).item())
    assert all(torch.equal(a, b) for a, b in zip(seen[0][1], start))
    assert loss0.item() == pytest.approx(loss_fn(start).item())


def test_lbfgs_takes_one_param_group_like_torch():
    params = make_params()
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        descend.LBFGS([{"params": params[:1]}, {"params": params[1:]}])
    opt = descend.LBFGS(params[:1])
    with pytest.raises(ValueError, match="doesn't support per-parameter options"):
        opt.add_param_group({"params": params[1:]})


def test_lbfgs_maximize_minimizes_the_negated_loss():
    params = make_params()
    ref_params = clone_params(params)
    opt = descend.LBFGS(params, maximize=True, line_search_fn="strong_wolfe")
    ref = torch.optim.LBFGS(ref_params, line_search_fn="strong_wolfe")
    for _ in range(5):
        step(opt, params, True, loss=lambda ps: -loss_fn(ps))
        step(ref, ref_params, True)
    for p, r in zip(params, ref_params):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("direction", ["torch-to-descend", "descend-to-torch"])
def test_lbfgs_state_dicts_load_both_ways(direction):
    kwargs = dict(history_size=4, max_iter=3)
    params = make_params()
    first = (torch.optim.LBFGS(params, **kwargs) if direction == "torch-to-descend"
             else descend.LBFGS(params, **kwargs))
    train(first, params, 3, closure=True)
    buffer = io.BytesIO()
    torch.save(first.state_dict(), buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    second_params = clone_params(params)
    second = (descend.LBFGS(second_params, **kwargs) if direction == "torch-to-descend"
              else torch.optim.LBFGS(second_params, **kwargs))
    second.load_state_dict(saved)
    train(first, params, 3, closure=True)
    train(second, second_params, 3, closure=True)
    for p, q in zip(params, second_params):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)


def test_lbfgs_refuses_a_history_that_no_longer_lines_up():
    params = make_params()
    opt = descend.LBFGS(params, max_iter=2)
    train(opt, params, 2, closure=True)

    def closure():
        for p in params:
            p.grad = None
        loss = loss_fn(params[1:])
        loss.backward()
        return loss

    with pytest.raises(ValueError, match="give every parameter a gradient"):
        opt.step(closure)
