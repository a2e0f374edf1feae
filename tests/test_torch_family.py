"""Behaviour specific to NAdam, RAdam, ASGD and Rprop (descend.optim.torch_family) that the
generic table-driven tests do not reach: carried scalars, step-only branches, schedulers
acting through carried state, the averaged iterate, and state from torch's float32 default."""

from __future__ import annotations

import io
import math

import pytest
import torch
from optim_db import float64_scalars
from problems import backward, clone_params, make_params, train

import descend
from descend.backends import native

T = torch.optim


def _step_both(params, opt, ref_params, ref, steps, after=None):
    for _ in range(steps):
        backward(params), backward(ref_params)
        opt.step(), ref.step()
        if after is not None:
            after()


def test_nadam_mu_product_is_a_running_product_carried_per_parameter():
    params = make_params()
    opt = descend.NAdam(params, lr=0.01, momentum_decay=0.02)
    train(opt, params, 40)
    beta1 = 0.9
    expected = math.prod(beta1 * (1 - 0.5 * 0.96 ** (t * 0.02)) for t in range(1, 41))
    for p in params:
        assert opt.state[p]["mu_product"] == pytest.approx(expected, rel=1e-14)
        assert isinstance(opt.state[p]["mu_product"], float)


def test_nadam_state_from_torchs_float32_default_continues_to_float32_rounding():
    """The usual case: torch saved mu_product as a float32 tensor. descend continues from
    its value in float64; torch continues rounding it to float32 at every step."""
    params, straight = make_params(), make_params()
    theirs = T.NAdam(params, lr=0.05)
    ref = T.NAdam(straight, lr=0.05, foreach=False)
    _step_both(params, theirs, straight, ref, 5)
    assert theirs.state[params[0]]["mu_product"].dtype == torch.float32
    ours = descend.NAdam(params, lr=0.05)
    ours.load_state_dict(theirs.state_dict())
    _step_both(params, ours, straight, ref, 10)
    for p, q in zip(params, straight):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-8)


def test_a_carried_scalar_survives_loading_into_float32_parameters():
    """torch's load_state_dict casts saved tensors to the parameter's dtype: carried
    scalars are taken out first, so mu_product stays exact for float32 parameters."""
    params = make_params(torch.float32)
    opt = descend.NAdam(params, lr=0.05)
    train(opt, params, 5)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    opt2 = descend.NAdam(clone_params(params), lr=0.05)
    opt2.load_state_dict(torch.load(buffer, weights_only=True))
    saved = opt.state[params[0]]["mu_product"]
    assert next(iter(opt2.state.values()))["mu_product"] == saved


@pytest.mark.skipif(not native.available(), reason="no C compiler")
def test_radam_switches_branch_without_a_new_kernel():
    """rho_t > 5 is decided per step in Python: the same native kernel serves both sides.
    (The first step, which creates the state, has a kernel entry of its own.)"""
    params = make_params(torch.float32)
    opt = descend.RAdam(params, lr=0.01)
    train(opt, params, 12)   # rho_t crosses 5 at step 6 with beta2 = 0.999
    kernels = [k for key, k in opt._executor.native.items() if k is not None and not key[3]]
    assert len(kernels) == 1


def test_radam_is_sgd_with_bias_corrected_momentum_while_untractable():
    params = make_params(shapes=[(6,)])
    x = params[0]
    start = x.detach().clone()
    opt = descend.RAdam(params, lr=0.1, betas=(0.9, 0.999))
    backward(params)
    g = x.grad.clone()
    opt.step()
    torch.testing.assert_close(x.detach(), start - 0.1 * g, rtol=1e-14, atol=1e-15)


def test_asgd_ax_is_the_mean_of_the_iterates_after_t0():
    params = make_params(shapes=[(5,)])
    x = params[0]
    t0 = 4
    opt = descend.ASGD(params, lr=0.05, t0=t0)
    iterates = []
    for _ in range(12):
        backward(params)
        opt.step()
        iterates.append(x.detach().clone())
    # mu_t = 1 / max(1, t - t0) is used at step t + 1: ax is p_t up to step t0 + 2, then
    # the running mean of the iterates from p_{t0 + 2} (iterates[t0 + 1]) on.
    assert opt.state[x]["mu"] == 1 / (12 - t0)
    expected = torch.stack(iterates[t0 + 1:]).mean(0)
    torch.testing.assert_close(opt.state[x]["ax"], expected, rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize("cls,kwargs", [(descend.ASGD, dict(lr=0.05, lambd=0.01, t0=2)),
                                        (descend.Rprop, dict(lr=0.05))],
                         ids=["asgd", "rprop"])
def test_an_lr_scheduler_acts_as_in_torch(cls, kwargs):
    """ASGD's eta takes a changed lr one step late (it is carried); Rprop's step sizes
    ignore it. torch's for-loop reference, under a StepLR."""
    params = make_params()
    ref_params = clone_params(params)
    opt = cls(params, **kwargs)
    ref = float64_scalars(getattr(T, cls.__name__))(ref_params, foreach=False, **kwargs)
    scheds = [T.lr_scheduler.StepLR(o, step_size=3, gamma=0.5) for o in (opt, ref)]
    _step_both(params, opt, ref_params, ref, 15,
               after=lambda: [s.step() for s in scheds])
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-10, atol=1e-12)
        for key in ("eta", "mu"):
            if key in ref.state[q]:
                assert opt.state[p][key] == pytest.approx(float(ref.state[q][key]), rel=1e-12)


def test_rprop_starts_a_parameter_added_later_at_the_current_lr():
    params = make_params(shapes=[(3,), (4,)])
    ref_params = clone_params(params)
    opt = descend.Rprop(params[:1], lr=0.05)
    ref = T.Rprop(ref_params[:1], lr=0.05, foreach=False)
    _step_both(params, opt, ref_params, ref, 3)
    for o in (opt, ref):
        o.param_groups[0]["lr"] = 0.2
    opt.add_param_group({"params": params[1:]})
    ref.add_param_group({"params": ref_params[1:]})
    _step_both(params, opt, ref_params, ref, 5)
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(opt.state[p]["step_size"], ref.state[q]["step_size"])


def test_asgd_alpha_is_an_exponent_not_a_decay_rate():
    descend.ASGD(make_params(), alpha=1.0)  # RMSprop would refuse alpha = 1
    with pytest.raises(ValueError, match=r"RMSprop: alpha must be in \[0, 1\)"):
        descend.RMSprop(make_params(), alpha=1.0)
