"""The torch.optim.Optimizer contract: groups, closures, hooks, schedulers, policies."""

from __future__ import annotations

import pytest
import torch
from problems import backward, clone_params, loss_fn, make_params, train

import descend
from descend.rules import add_decayed_weights, chain, scale_by_adam, scale_by_learning_rate


def test_per_group_hyperparameters_match_separate_optimizers():
    backbone, head = make_params(shapes=[(3, 4)]), make_params(shapes=[(4,)], seed=1)
    opt = descend.Adam([{"params": backbone, "lr": 1e-4}, {"params": head}], lr=1e-2)
    b2, h2 = clone_params(backbone), clone_params(head)
    ref_b, ref_h = descend.Adam(b2, lr=1e-4), descend.Adam(h2, lr=1e-2)
    for _ in range(5):
        backward(backbone + head), backward(b2 + h2)
        opt.step(), ref_b.step(), ref_h.step()
    assert torch.equal(backbone[0], b2[0]) and torch.equal(head[0], h2[0])
    assert [g["lr"] for g in opt.param_groups] == [1e-4, 1e-2]


def test_add_param_group_takes_defaults_and_is_validated():
    opt = descend.SGD(make_params(shapes=[(2,)]), lr=0.1, momentum=0.9)
    extra = make_params(shapes=[(3,)], seed=2)
    opt.add_param_group({"params": extra, "lr": 0.01})
    assert opt.param_groups[1]["momentum"] == 0.9 and opt.param_groups[1]["lr"] == 0.01
    with pytest.raises(ValueError, match="lr must be >= 0"):
        opt.add_param_group({"params": make_params(shapes=[(1,)]), "lr": -1.0})
    assert len(opt.param_groups) == 2


def test_closure_is_called_with_grad_and_its_loss_returned():
    params = make_params()
    opt = descend.SGD(params, lr=0.1)

    def closure():
        assert torch.is_grad_enabled()
        opt.zero_grad()
        loss = loss_fn(params)
        loss.backward()
        return loss

    before = loss_fn(params).item()
    loss = opt.step(closure)
    assert loss.item() == pytest.approx(before)
    assert loss_fn(params).item() < before


def test_step_hooks_run_around_each_step():
    params = make_params()
    opt = descend.Adam(params)
    calls = []
    opt.register_step_pre_hook(lambda o, a, k: calls.append("pre"))
    opt.register_step_post_hook(lambda o, a, k: calls.append("post"))
    train(opt, params, 2)
    assert calls == ["pre", "post", "pre", "post"]


def test_zero_grad_sets_to_none_by_default():
    params = make_params()
    opt = descend.SGD(params, lr=0.1)
    backward(params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)


def test_parameters_without_gradient_are_left_alone():
    params = make_params()
    opt = descend.Adam(params)
    backward(params)
    params[1].grad = None
    before = params[1].detach().clone()
    opt.step()
    assert torch.equal(params[1], before) and params[1] not in opt.state


def test_user_chain_runs_as_an_optimizer_and_equals_adamw():
    params, ref = make_params(), make_params()
    rule = chain(scale_by_adam(), add_decayed_weights(), scale_by_learning_rate())
    opt = descend.RuleOptimizer(params, rule, lr=0.05, betas=(0.9, 0.999), eps=1e-8,
                                weight_decay=0.1)
    ref_opt = torch.optim.AdamW(ref, lr=0.05, weight_decay=0.1)
    for _ in range(10):
        backward(params), backward(ref)
        opt.step(), ref_opt.step()
    for p, r in zip(params, ref):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


def test_missing_hyperparameter_names_the_key():
    opt = descend.RuleOptimizer(make_params(), chain(scale_by_adam(), scale_by_learning_rate()),
                                lr=0.1)
    backward(opt.param_groups[0]["params"])
    with pytest.raises(KeyError, match="'betas'"):
        opt.step()


# -- every torch scheduler drives a descend optimizer exactly as it drives torch's --------

S = torch.optim.lr_scheduler


def _schedulers():
    return {
        "LambdaLR": lambda o: S.LambdaLR(o, lambda e: 0.9**e),
        "MultiplicativeLR": lambda o: S.MultiplicativeLR(o, lambda e: 0.95),
        "StepLR": lambda o: S.StepLR(o, step_size=3, gamma=0.5),
        "MultiStepLR": lambda o: S.MultiStepLR(o, milestones=[2, 5], gamma=0.1),
        "ConstantLR": lambda o: S.ConstantLR(o, factor=0.5, total_iters=4),
        "LinearLR": lambda o: S.LinearLR(o, start_factor=0.1, total_iters=5),
        "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.9),
        "SequentialLR": lambda o: S.SequentialLR(
            o, [S.LinearLR(o, 0.1, total_iters=3), S.ExponentialLR(o, 0.9)], milestones=[3]),
        "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=8),
        "ChainedScheduler": lambda o: S.ChainedScheduler(
            [S.ConstantLR(o, 0.5, total_iters=3), S.ExponentialLR(o, 0.9)]),
        "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.01, max_lr=0.1, step_size_up=3),
        "CosineAnnealingWarmRestarts": lambda o: S.CosineAnnealingWarmRestarts(o, T_0=4),
        "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=12),
        "PolynomialLR": lambda o: S.PolynomialLR(o, total_iters=8, power=2.0),
        "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, patience=1, factor=0.5),
        "SWALR": lambda o: torch.optim.swa_utils.SWALR(o, swa_lr=0.01, anneal_epochs=4),
    }


@pytest.mark.parametrize("name", list(_schedulers()))
@pytest.mark.parametrize("pair", [(descend.SGD, torch.optim.SGD, dict(momentum=0.9)),
                                  (descend.Adam, torch.optim.Adam, {})],
                         ids=["SGD", "Adam"])
def test_every_torch_scheduler_drives_a_descend_optimizer(name, pair):
    ours_cls, torch_cls, kwargs = pair
    make = _schedulers()[name]
    params, ref = make_params(), make_params()
    opt, ref_opt = ours_cls(params, lr=0.1, **kwargs), torch_cls(ref, lr=0.1, **kwargs)
    sched, ref_sched = make(opt), make(ref_opt)
    lrs, ref_lrs = [], []
    for _ in range(12):
        backward(params), backward(ref)
        opt.step(), ref_opt.step()
        if name == "ReduceLROnPlateau":
            sched.step(1.0), ref_sched.step(1.0)
        else:
            sched.step(), ref_sched.step()
        lrs.append(opt.param_groups[0]["lr"])
        ref_lrs.append(ref_opt.param_groups[0]["lr"])
    assert lrs == ref_lrs
    assert len(set(lrs)) > 1
    for p, r in zip(params, ref):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


# -- non-finite gradients ---------------------------------------------------------------


def _poisoned(policy):
    params = make_params(torch.float32)
    opt = descend.Adam(params, nonfinite=policy)
    train(opt, params, 3)
    snapshot = [p.detach().clone() for p in params]
    state = [{k: v.clone() if torch.is_tensor(v) else v for k, v in opt.state[p].items()}
             for p in params]
    backward(params)
    params[2].grad[1, 1] = float("nan")
    return opt, params, snapshot, state


def test_nonfinite_ignore_applies_the_step_like_torch():
    opt, params, _, _ = _poisoned("ignore")
    opt.step()
    assert torch.isnan(params[2]).any()


def test_nonfinite_skip_leaves_everything_and_counts():
    opt, params, snapshot, state = _poisoned("skip")
    opt.step()
    assert opt.skipped_steps == 1
    for p, s, st in zip(params, snapshot, state):
        assert torch.equal(p, s)
        assert opt.state[p]["step"] == st["step"]
        assert torch.equal(opt.state[p]["exp_avg"], st["exp_avg"])
    restored = descend.Adam(clone_params(params), nonfinite="skip")
    restored.load_state_dict(opt.state_dict())
    assert restored.skipped_steps == 1


def test_nonfinite_raise_names_the_parameter_and_changes_nothing():
    opt, params, snapshot, _ = _poisoned("raise")
    with pytest.raises(FloatingPointError, match="parameter 2 of group 0"):
        opt.step()
    assert all(torch.equal(p, s) for p, s in zip(params, snapshot))


# -- bad input (bad hyperparameters of each class are in optim_db's table) ------------------


def test_a_parameter_given_twice_is_refused():
    p = make_params(shapes=[(3,)])[0]
    with pytest.raises(ValueError, match="appears twice"):
        descend.SGD([p, p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        descend.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)


def test_non_leaf_integer_and_sparse_parameters_are_refused():
    leaf = torch.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match="non-leaf"):
        descend.Adam([leaf * 2])
    with pytest.raises(TypeError, match="dtype torch.int64; allowed dtypes"):
        descend.Adam([torch.ones(3, dtype=torch.int64)])
    with pytest.raises(TypeError, match="sparse tensor"):
        descend.Adam([torch.eye(3).to_sparse()])


def test_sparse_gradients_are_refused_with_a_hint():
    emb = torch.nn.Embedding(10, 3, sparse=True)
    opt = descend.Adam(emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    before = emb.weight.detach().clone()
    with pytest.raises(TypeError, match="sparse gradient.*sparse=False.*torch.optim.SparseAdam"):
        opt.step()
    assert torch.equal(emb.weight, before)


def test_chain_refuses_clashing_state_and_non_rules():
    with pytest.raises(ValueError, match="'exp_avg' is kept by both"):
        chain(scale_by_adam(), scale_by_adam())
    with pytest.raises(TypeError, match="chain\\(\\) takes Rule objects"):
        chain(scale_by_adam(), lambda g: g)


def test_rule_optimizer_needs_a_rule_and_an_lr():
    with pytest.raises(TypeError, match="pass a rule"):
        descend.RuleOptimizer(make_params(), lr=0.1)
    with pytest.raises(TypeError, match="lr is required"):
        descend.RuleOptimizer(make_params(), scale_by_learning_rate())
