"""Generic tests, driven by the matrix in optim_db: every optimizer goes through each."""

from __future__ import annotations

import io

import pytest
import torch
from optim_db import CASES, CONVERGE, REPRESENTATIVES, ROSENBROCK
from problems import backward, clone_params, make_params, quadratic, rosenbrock, train

STEPS = 25


def ids(cases):
    return [c.id for c in cases]


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_parity_with_reference_float64(case):
    params = make_params()
    ref_params = clone_params(params)
    opt = case.make(params)
    if case.torch_cls is not None:
        torch_kwargs = dict(case.kwargs)
        if case.cls.__name__ == "Nesterov":
            torch_kwargs.setdefault("nesterov", True)
            torch_kwargs.setdefault("momentum", 0.9)
        ref = case.torch_cls(ref_params, foreach=False, **torch_kwargs)
    ref_state: dict = {}
    for t in range(1, STEPS + 1):
        backward(params)
        opt.step()
        backward(ref_params)
        if case.torch_cls is not None:
            ref.step()
        else:
            with torch.no_grad():
                case.transcription([p.detach() for p in ref_params],
                                   [p.grad for p in ref_params], ref_state, t,
                                   **case.transcription_kwargs)
        for p, r in zip(params, ref_params):
            torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12, msg=f"step {t}")
    if case.torch_cls is not None:
        for p, r in zip(params, ref_params):
            for key, value in ref.state[r].items():
                if key == "step":
                    assert opt.state[p]["step"] == int(value)
                elif value is not None:
                    torch.testing.assert_close(opt.state[p][key], value, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_cls], ids=ids(
    [c for c in CASES if c.torch_cls]))
def test_state_names_are_torchs(case):
    params = make_params()
    ref_params = clone_params(params)
    opt = case.make(params)
    kwargs = dict(case.kwargs)
    if case.cls.__name__ == "Nesterov":
        kwargs.update(nesterov=True, momentum=0.9)
    ref = case.torch_cls(ref_params, **kwargs)
    backward(params), backward(ref_params)
    opt.step(), ref.step()
    ours = set(opt.state[params[0]])
    theirs = {k for k, v in ref.state[ref_params[0]].items() if v is not None}
    assert ours - theirs <= {"step"}
    assert theirs <= ours


def _roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_bitwise_resume_after_state_dict_roundtrip(case):
    params = make_params(torch.float32)
    opt = case.make(params)
    train(opt, params, 7)
    saved = _roundtrip({"params": [p.detach().clone() for p in params],
                        "optim": opt.state_dict()})
    train(opt, params, 8)

    resumed = [p.clone().requires_grad_() for p in saved["params"]]
    opt2 = case.make(resumed)
    opt2.load_state_dict(saved["optim"])
    train(opt2, resumed, 8)
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
        for key, value in opt.state[p].items():
            other = opt2.state[q][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other


@pytest.mark.parametrize("case", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_same_seed_same_numbers(case):
    runs = []
    for _ in range(2):
        params = make_params(torch.float32, seed=3)
        train(case.make(params), params, 10)
        runs.append(params)
    for p, q in zip(*runs):
        assert torch.equal(p, q)


@pytest.mark.parametrize("cls", list(CONVERGE), ids=lambda c: c.__name__)
def test_converges_on_a_quadratic(cls):
    x = torch.linspace(-2, 2, 10, dtype=torch.float64).requires_grad_()
    kwargs = CONVERGE[cls]
    opt = cls([x], **kwargs)
    for _ in range(500):
        opt.zero_grad()
        quadratic(x).backward()
        opt.step()
    # Lion moves every coordinate by exactly lr each step: it can only settle within ~lr.
    tol = 3 * kwargs["lr"] * x.numel() ** 0.5 if cls.__name__ == "Lion" else 1e-4
    assert x.detach().norm() < tol


@pytest.mark.parametrize("cls", list(ROSENBROCK), ids=lambda c: c.__name__)
def test_converges_on_rosenbrock(cls):
    x = torch.tensor([-1.2, 1.0], dtype=torch.float64, requires_grad=True)
    opt = cls([x], **ROSENBROCK[cls])
    start = rosenbrock(x).item()
    for _ in range(4000):
        opt.zero_grad()
        rosenbrock(x).backward()
        opt.step()
    assert rosenbrock(x).item() < 1e-3 * start
    assert (x.detach() - 1).norm() < 0.1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize("case", REPRESENTATIVES, ids=ids(REPRESENTATIVES))
def test_low_precision_tracks_float64(case, dtype):
    params = make_params(dtype)
    ref = make_params(torch.float64)
    opt, ref_opt = case.make(params), case.make(ref)
    assert all(p.dtype == dtype for p in params)
    for _ in range(5):
        backward(params), backward(ref)
        opt.step(), ref_opt.step()
    for p, r in zip(params, ref):
        assert p.dtype == dtype
        assert opt.state[p].get("exp_avg", p).dtype == dtype
        tol = {torch.float16: 5e-2, torch.bfloat16: 2e-1, torch.float32: 1e-4}[dtype]
        torch.testing.assert_close(p.double(), r.detach(), rtol=tol, atol=tol)


@pytest.mark.parametrize("case", [c for c in CASES if c.torch_cls and "maximize" not in c.id
                                  and c.cls.__name__ != "Nesterov"],
                         ids=ids([c for c in CASES if c.torch_cls and "maximize" not in c.id
                                  and c.cls.__name__ != "Nesterov"]))
def test_complex_parameters_match_torch(case):
    gen = torch.Generator().manual_seed(1)
    z = torch.randn(6, dtype=torch.complex128, generator=gen).requires_grad_()
    w = z.detach().clone().requires_grad_()
    opt, ref = case.make([z]), case.torch_cls([w], foreach=False, **case.kwargs)
    for _ in range(10):
        for x, o in ((z, opt), (w, ref)):
            o.zero_grad()
            (x.abs() ** 2 + (x * (1 + 2j)).real).sum().backward()
            o.step()
    torch.testing.assert_close(z, w, rtol=1e-10, atol=1e-12)
