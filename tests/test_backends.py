"""Every backend against the reference loop, for parameters and state."""

from __future__ import annotations

import io

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optim_db import BY_CLASS, CASES, REPRESENTATIVES
from problems import clone_params, loss_fn, train

import descend
import descend.schedules as S

# Backends that never wait for torch.compile. "fused" compiles rules torch has no kernel
# for, so it is tested with the compiled path below.
EAGER = ["foreach", "native", "auto"]


def _shapes():
    dims = st.integers(1, 5)
    return st.lists(st.one_of(st.tuples(dims), st.tuples(dims, dims),
                              st.tuples(dims, dims, dims)), min_size=1, max_size=5)


def _params(shapes, dtype, seed):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=torch.float64).to(dtype).requires_grad_()
            for s in shapes]


def _run(case, params, backend, steps, groups=1, overrides=None):
    if groups == 2 and len(params) > 1 and BY_CLASS[case.cls].param_groups:
        spec = [{"params": params[:1], "lr": case.kwargs.get("lr", 1e-3) / 3},
                {"params": params[1:]}]
    else:
        spec = params
    opt = case.make(spec, backend=backend, **(overrides or {}))
    train(opt, params, steps, case.closure)
    return opt


def _exact(backend):
    """Backends that run descend's own maths through torch's operators, as the reference
    does, agree with it bit for bit; kernels (torch's fused ones, native C, compiled)
    order their floating-point operations differently and agree to rounding."""
    return backend == "foreach"


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shapes=_shapes(), dtype=st.sampled_from([torch.float32, torch.float64]),
       groups=st.sampled_from([1, 2]), case=st.sampled_from(CASES),
       backend=st.sampled_from(EAGER), seed=st.integers(0, 1000))
def test_eager_backends_match_the_reference(shapes, dtype, groups, case, backend, seed):
    """Bit for bit where descend's own maths runs through torch's operators; to rounding
    where a kernel runs it (native C, torch's fused kernel for recipes it implements)."""
    if BY_CLASS[case.cls].matrices_only:
        shapes = [(s[0], s[-1]) for s in shapes]
    ref = _params(shapes, dtype, seed)
    fast = clone_params(ref)
    ref_opt = _run(case, ref, "reference", 6, groups)
    opt = _run(case, fast, backend, 6, groups)
    overridden = not _exact(backend)
    tol = {torch.float64: 1e-12, torch.float32: 1e-5}[dtype]
    for p, q in zip(ref, fast):
        pairs = [(p, q)] + [(v, opt.state[q][k]) for k, v in ref_opt.state[p].items()
                            if torch.is_tensor(v)]
        for a, b in pairs:
            if overridden:
                torch.testing.assert_close(b, a, rtol=tol, atol=tol)
            else:
                assert torch.equal(a, b)
        assert opt.state[q]["step"] == ref_opt.state[p]["step"]


@pytest.mark.parametrize("backend", ["reference", "foreach", "fused", "auto"])
def test_state_dicts_are_interchangeable_between_backends(backend):
    case = next(c for c in CASES if c.id == "adam-amsgrad-wd")
    straight = _params([(3, 4), (5,)], torch.float32, 0)
    _run(case, straight, "reference", 10)
    first = _params([(3, 4), (5,)], torch.float32, 0)
    opt = _run(case, first, "auto", 4)
    buffer = io.BytesIO()
    torch.save({"p": [p.detach().clone() for p in first], "o": opt.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    second = [p.clone().requires_grad_() for p in saved["p"]]
    opt2 = case.make(second, backend=backend)
    opt2.load_state_dict(saved["o"])
    for _ in range(6):
        opt2.zero_grad()
        loss_fn(second).backward()
        opt2.step()
    # The first four steps ran torch's fused Adam kernel (auto backend): equal to rounding.
    for p, q in zip(straight, second):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", EAGER)
@pytest.mark.parametrize("case_id", ["rmsprop-centered-momentum", "adam-amsgrad-wd"])
def test_replaced_and_missing_gradients(backend, case_id):
    case = next(c for c in CASES if c.id == case_id)
    ref, fast = _params([(4, 3), (6,), (2,)], torch.float64, 1), None
    fast = clone_params(ref)
    ref_opt, opt = case.make(ref, backend="reference"), case.make(fast, backend=backend)
    for step in range(8):
        for params, o in ((ref, ref_opt), (fast, opt)):
            if step % 3 == 0:
                for p in params:
                    p.grad = None          # user code resets .grad itself
            else:
                o.zero_grad(set_to_none=step % 2 == 0)
            loss_fn(params).backward()
            if step == 4:
                params[1].grad = torch.ones_like(params[1])   # a tool assigns a gradient
            if step == 5:
                params[2].grad = None                         # no gradient this step
            o.step()
    for p, q in zip(ref, fast):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12)
    assert opt.state[fast[2]]["step"] == ref_opt.state[ref[2]]["step"] == 7


@pytest.mark.parametrize("backend", ["reference", "foreach", "fused", "auto"])
def test_parameters_and_gradients_stay_where_the_user_put_them(backend):
    """No backend changes where a parameter or gradient lives (the first round's flat
    layout did, `p.data = view`, which broke ZeRO's buckets and FSDP's shards)."""
    params = _params([(3, 3), (4,)], torch.float32, 2)
    storage = [p.data_ptr() for p in params]
    opt = descend.Adam(params, backend=backend)
    loss_fn(params).backward()
    grads = [p.grad.data_ptr() for p in params]
    opt.step()
    assert [p.data_ptr() for p in params] == storage
    assert [p.grad.data_ptr() for p in params] == grads
    assert all(type(p) is torch.Tensor for p in params)
    opt.zero_grad()
    assert all(p.grad is None for p in params)  # torch's default, set_to_none=True


@pytest.mark.parametrize("backend", EAGER)
def test_replaced_data_and_state_tensors_are_used(backend):
    """A replaced ``p.data`` (same shape) or state tensor is what the next step computes
    on: nothing is cached across steps but the plan."""
    ref = _params([(5,), (2, 3)], torch.float64, 3)
    fast = clone_params(ref)
    opts = [descend.Adam(ref, lr=0.1, backend="reference"),
            descend.Adam(fast, lr=0.1, backend=backend)]
    for step in range(6):
        for params, o in zip((ref, fast), opts):
            o.zero_grad()
            loss_fn(params).backward()
            if step == 2:
                params[0].data = params[0].data.clone() * 0.5
            if step == 3:
                o.state[params[1]]["exp_avg"] = o.state[params[1]]["exp_avg"].clone() * 2
            o.step()
    for p, q in zip(ref, fast):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", EAGER)
def test_a_cast_after_state_exists_converts_the_state(backend):
    """``model.half()`` / ``model.to(float64)`` after some steps: the state follows the
    parameters, as freshly made state would (torch raises a dtype error instead)."""
    model = torch.nn.Linear(4, 3)
    opt = descend.Adam(model.parameters(), lr=0.01, backend=backend)
    x = torch.randn(8, 4)
    for _ in range(2):
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()
    model.to(torch.float64)
    opt.zero_grad()
    model(x.double()).square().mean().backward()
    opt.step()
    assert all(v.dtype == torch.float64 for s in opt.state.values()
               for v in s.values() if torch.is_tensor(v))
    assert opt.state[model.weight]["step"] == 3


def test_frozen_and_complex_parameters_fall_back_correctly():
    ref = [torch.randn(3, requires_grad=True), torch.randn(2, dtype=torch.complex64,
                                                            requires_grad=True)]
    frozen = torch.randn(2)
    fast = clone_params(ref)
    ref_opt = descend.RMSprop([*ref, frozen.clone()], backend="reference", lr=0.1)
    opt = descend.RMSprop([*fast, frozen.clone()], backend="foreach", lr=0.1)
    for params, o in ((ref, ref_opt), (fast, opt)):
        for _ in range(3):
            o.zero_grad()
            (params[0].sum() ** 2 + params[1].abs().sum()).backward()
            o.step()
    assert all(torch.equal(p, q) for p, q in zip(ref, fast))


# -- the compiled path (slow: each recipe compiles once, several seconds on this CPU) -------


@pytest.mark.slow
@pytest.mark.parametrize("case", REPRESENTATIVES, ids=[c.id for c in REPRESENTATIVES])
def test_compiled_backend_matches_the_reference(case):
    shapes = [(8, 5), (5, 3), (3, 4)] if BY_CLASS[case.cls].matrices_only else [(8, 5), (5,),
                                                                               (3, 2, 2)]
    ref = _params(shapes, torch.float64, 3)
    fast = clone_params(ref)
    ref_opt = _run(case, ref, "reference", 8)
    opt = _run(case, fast, "compiled", 8)
    for p, q in zip(ref, fast):
        torch.testing.assert_close(q, p, rtol=1e-12, atol=1e-12)
        for key, value in ref_opt.state[p].items():
            if torch.is_tensor(value):
                torch.testing.assert_close(opt.state[q][key], value, rtol=1e-11, atol=1e-12)


@pytest.mark.slow
def test_a_schedule_never_recompiles():
    """1000 steps while lr and beta1 change at every step: one compiled graph."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    params = _params([(16, 8), (8,)], torch.float32, 4)
    opt = descend.Adam(params, lr=S.warmup_cosine(1e-2, 50, 1000),
                       betas=(S.linear(0.8, 0.95, 1000), 0.999), backend="compiled")
    for _ in range(1000):
        opt.zero_grad()
        (params[0].square().sum() + params[1].sum()).backward()
        opt.step()
    assert counters["stats"]["unique_graphs"] == 1
    assert not counters["graph_break"]
    assert counters["recompiles"] == {} or sum(counters["recompiles"].values()) == 0


def test_tensorlist_comparisons_where_clamp_and_abs_match_the_tensor_methods():
    """The operations Rprop and Adamax use, on the foreach path, equal the per-tensor ones
    bit for bit (the foreach backend is compared with the reference exactly)."""
    from descend.backends import TensorList

    gen = torch.Generator().manual_seed(0)
    xs = [torch.randn(s, generator=gen, dtype=torch.float64) for s in [(3,), (2, 4)]]
    ys = [torch.randn(x.shape, generator=gen, dtype=torch.float64) for x in xs]
    xs[0][1] = 0.0
    a, b = TensorList(xs), TensorList(ys)
    expected = {
        "gt": [x > 0 for x in xs], "lt": [x < y for x, y in zip(xs, ys)],
        "ge": [x >= 0 for x in xs], "le": [x <= y for x, y in zip(xs, ys)],
        "where": [x.where(x > 0, y) for x, y in zip(xs, ys)],
        "where0": [x.where(x >= 0, 0.0) for x in xs],
        "clamp": [x.clamp(-0.5, 0.7) for x in xs], "clamp_min": [x.clamp(min=0.1) for x in xs],
        "abs": [x.abs() for x in xs],
        "minimum": [x.minimum(y) for x, y in zip(xs, ys)],
    }
    got = {
        "gt": a > 0, "lt": a < b, "ge": a >= 0, "le": a <= b,
        "where": a.where(a > 0, b), "where0": a.where(a >= 0, 0.0),
        "clamp": a.clamp(-0.5, 0.7), "clamp_min": a.clamp(min=0.1), "abs": a.abs(),
        "minimum": a.minimum(b),
    }
    for name, values in expected.items():
        for x, y in zip(got[name], values):
            assert torch.equal(x, y), name
