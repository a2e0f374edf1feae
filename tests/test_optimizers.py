"""Generic tests, driven only by the table in optim_db: every optimizer goes through each."""

from __future__ import annotations

import io

import pytest
import torch
from optim_db import BY_CLASS, CASES, ERRORS, INFOS, REPRESENTATIVES, TORCH_CASES
from problems import clone_params, make_params, quadratic, rosenbrock, step, train


def ids(cases):
    return [c.id for c in cases]


def _same_state(ours, theirs, rtol):
    """State values equal within `rtol`: tensors, numbers, and lists of them (L-BFGS)."""
    if isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            _same_state(a, b, rtol)
    elif theirs is None:
        assert ours is None
    elif not torch.is_tensor(theirs) or theirs.dim() == 0:
        assert float(ours) == pytest.approx(float(theirs), rel=rtol, abs=1e-12)
    else:
        torch.testing.assert_close(ours, theirs, rtol=rtol, atol=1e-12)


def _identical(a, b):
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(map(_identical, a, b))
    if torch.is_tensor(a):
        return torch.equal(a, b)
    return a == b


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_parity_with_reference_float64(case):
    """Every step, every parameter, within `case.rtol` of the independent reference."""
    params = make_params(shapes=case.shapes)
    ref_params = clone_params(params)
    opt = case.make(params)
    ref = case.reference(ref_params)
    for t in range(1, case.steps + 1):
        step(opt, params, case.closure)
        step(ref, ref_params, case.closure)
        for p, r in zip(params, ref_params):
            torch.testing.assert_close(p, r, rtol=case.rtol, atol=1e-12, msg=f"step {t}")
    if case.torch_state:
        for p, r in zip(params, ref_params):
            for key, value in ref.state[r].items():
                _same_state(opt.state[p][key], value, case.rtol)


@pytest.mark.parametrize("case", TORCH_CASES, ids=ids(TORCH_CASES))
def test_state_names_are_torchs(case):
    params = make_params(shapes=case.shapes)
    ref_params = clone_params(params)
    opt, ref = case.make(params), case.reference(ref_params)
    step(opt, params, case.closure), step(ref, ref_params, case.closure)
    ours = set(opt.state[params[0]])
    theirs = {k for k, v in ref.state[ref_params[0]].items() if v is not None}
    assert theirs <= ours, theirs - ours
    assert ours - theirs <= {"step"}


def _roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bitwise_resume_after_state_dict_roundtrip(case):
    params = make_params(torch.float32, shapes=case.shapes)
    opt = case.make(params)
    train(opt, params, 7, case.closure)
    saved = _roundtrip({"params": [p.detach().clone() for p in params],
                        "optim": opt.state_dict()})
    train(opt, params, 8, case.closure)

    resumed = [p.clone().requires_grad_() for p in saved["params"]]
    opt2 = case.make(resumed)
    opt2.load_state_dict(saved["optim"])
    train(opt2, resumed, 8, case.closure)
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
        for key, value in opt.state[p].items():
            assert _identical(value, opt2.state[q][key]), key


@pytest.mark.parametrize("case", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_same_seed_same_numbers(case):
    runs = []
    for _ in range(2):
        params = make_params(torch.float32, seed=3, shapes=case.shapes)
        train(case.make(params), params, 10, case.closure)
        runs.append(params)
    for p, q in zip(*runs):
        assert torch.equal(p, q)


@pytest.mark.parametrize("info", INFOS, ids=lambda i: i.name)
def test_converges_on_a_quadratic(info):
    x = torch.linspace(-2, 2, 10, dtype=torch.float64)
    x = x.reshape(2, 5) if info.matrices_only else x
    x.requires_grad_()
    opt = info.cls([x], **info.converge)
    for _ in range(500):
        step(opt, [x], info.closure, loss=lambda params: quadratic(params[0]))
    assert x.detach().norm() < info.converge_tol


@pytest.mark.parametrize("info", [i for i in INFOS if i.rosenbrock is not None],
                         ids=lambda i: i.name)
def test_converges_on_rosenbrock(info):
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64)
    x = x.reshape(1, 2) if info.matrices_only else x
    x.requires_grad_()
    opt = info.cls([x], **info.rosenbrock)
    start = rosenbrock(x).item()
    for _ in range(4000):
        step(opt, [x], info.closure, loss=lambda params: rosenbrock(params[0]))
    assert rosenbrock(x).item() < 1e-3 * start
    assert (x.detach().reshape(-1) - 1).norm() < 0.1


LOW = [c for c in REPRESENTATIVES if BY_CLASS[c.cls].low_precision]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("case", LOW, ids=ids(LOW))
def test_low_precision_tracks_float64(case, dtype):
    params = make_params(dtype, shapes=case.shapes)
    ref = make_params(torch.float64, shapes=case.shapes)
    opt, ref_opt = case.make(params), case.make(ref)
    assert all(p.dtype == dtype for p in params)
    for _ in range(5):
        step(opt, params, case.closure), step(ref_opt, ref, case.closure)
    for p, r in zip(params, ref):
        assert p.dtype == dtype
        tol = {torch.float16: 5e-2, torch.bfloat16: 2e-1, torch.float32: 1e-4}[dtype]
        torch.testing.assert_close(p.double(), r.detach(), rtol=tol, atol=tol)


COMPLEX = [c for c in TORCH_CASES if BY_CLASS[c.cls].complex and "maximize" not in c.id]


@pytest.mark.parametrize("case", COMPLEX, ids=ids(COMPLEX))
def test_complex_parameters_match_torch(case):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(6, dtype=torch.complex128, generator=gen).requires_grad_()
    w = z.detach().clone().requires_grad_()
    opt, ref = case.make([z]), case.reference([w])
    for _ in range(10):
        for x, o in ((z, opt), (w, ref)):
            step(o, [x], case.closure,
                 loss=lambda params: (params[0].abs() ** 2 + (params[0] * (1 + 2j)).real).sum())
    torch.testing.assert_close(z, w, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("cls,kwargs,exc,message", ERRORS,
                         ids=[f"{c.__name__}-{'-'.join(k)}" for c, k, _, _ in ERRORS])
def test_bad_hyperparameters_are_named(cls, kwargs, exc, message):
    with pytest.raises(exc, match=message):
        cls(make_params(), **kwargs)
