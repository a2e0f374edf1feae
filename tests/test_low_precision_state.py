"""Optimizer state below float32 (`state_dtype`) and stochastic rounding, on every
elementwise optimizer and backend."""

from __future__ import annotations

import io

import pytest
import torch
from optim_db import BY_CLASS, REPRESENTATIVES
from problems import make_params

import descend
from descend.backends import precision as P


def _declares_low_precision(case) -> bool:
    opt = case.make(make_params(shapes=case.shapes))
    return all(opt.recipe(group).low_precision for group in opt.param_groups)


LOW = [c for c in REPRESENTATIVES if _declares_low_precision(c)]


def _params(seed=0, dtype=torch.float32, matrices_only=False):
    """Large enough, and 2-D, to be quantized; plus a bias that keeps float32 moments (a
    second, small matrix for optimizers of matrices only)."""
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(96, 64, generator=gen).to(dtype).requires_grad_(),
            torch.randn(*((8, 8) if matrices_only else (64,)), generator=gen)
            .to(dtype).requires_grad_()]


def _loss(params):
    w, b = params
    target = torch.linspace(-1, 1, w.numel(), dtype=w.dtype).view(w.shape)
    return ((w - target).float() ** 2).sum() / 2 + (b.float() ** 4).sum() / 4


def _case_params(case, seed=0):
    return _params(seed, matrices_only=BY_CLASS[case.cls].matrices_only)


def _train(opt, params, steps):
    for _ in range(steps):
        opt.zero_grad()
        _loss(params).backward()
        opt.step()


def _roundtrip(obj):
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("case", LOW, ids=[c.id for c in LOW])
def test_low_precision_state_tracks_float32(case, state_dtype):
    exact, low = _case_params(case), _case_params(case)
    _train(case.make(exact), exact, 20)
    opt = case.make(low, state_dtype=state_dtype)
    _train(opt, low, 20)
    # Within a few percent of the distance travelled: bfloat16 keeps 8 significant bits, the
    # 8-bit codes 4 (1/16 relative error), which rules dividing one moment by another
    # (Adadelta, Adamax) compound.
    share = {"bfloat16": 0.1, "int8": 0.15}[state_dtype]
    for p, q, start in zip(exact, low, _case_params(case)):
        travelled = (p.detach() - start).abs().max()
        assert (p - q).abs().max() <= share * travelled + 1e-6
    weight, bias = opt.state[low[0]], opt.state[low[1]]
    for key, _ in opt.recipe(opt.param_groups[0]).low_precision:
        if state_dtype == "int8":
            assert weight[key].dtype == torch.uint8 and P.absmax_key(key) in weight
            assert bias[key].dtype == torch.float32  # small: kept in float32
        else:
            assert weight[key].dtype == bias[key].dtype == torch.bfloat16


def test_state_bytes_per_parameter():
    for state_dtype, limit in (("int8", 2.1), ("bfloat16", 4.1), (None, 8.0)):
        w = torch.randn(512, 512, requires_grad=True)
        opt = descend.AdamW([w], state_dtype=state_dtype)
        w.grad = torch.randn_like(w)
        opt.step()
        nbytes = sum(v.numel() * v.element_size() for v in opt.state[w].values()
                     if torch.is_tensor(v))
        assert nbytes / w.numel() <= limit


@pytest.mark.parametrize("state_dtype", ["bfloat16", "int8"])
@pytest.mark.parametrize("stochastic", [False, True])
def test_quantized_state_resumes_bitwise_through_weights_only(state_dtype, stochastic):
    def make(params):
        return descend.Adam(params, lr=0.05, state_dtype=state_dtype,
                            stochastic_rounding=stochastic, rounding_seed=3)

    params = _params()
    opt = make(params)
    _train(opt, params, 5)
    saved = _roundtrip({"p": [p.detach().clone() for p in params], "o": opt.state_dict()})
    _train(opt, params, 6)
    resumed = [p.clone().requires_grad_() for p in saved["p"]]
    opt2 = make(resumed)
    opt2.load_state_dict(saved["o"])
    _train(opt2, resumed, 6)
    for p, q in zip(params, resumed):
        assert torch.equal(p, q)
        for key, value in opt.state[p].items():
            other = opt2.state[q][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other


def test_stochastic_rounding_is_seeded_and_reproducible():
    runs = []
    for seed in (1, 1, 2):
        params = _params(dtype=torch.bfloat16)
        opt = descend.Adam(params, lr=1e-3, stochastic_rounding=True, rounding_seed=seed,
                           state_dtype="bfloat16")
        _train(opt, params, 5)
        runs.append(params)
    assert all(torch.equal(p, q) for p, q in zip(runs[0], runs[1]))
    assert not all(torch.equal(p, q) for p, q in zip(runs[0], runs[2]))


def test_stochastic_rounding_keeps_updates_smaller_than_bfloat16s_resolution():
    """With round-to-nearest a bfloat16 parameter ignores every update below half its
    spacing (at 1.0: 2^-8); stochastic rounding keeps them on average."""
    moved = {}
    for stochastic in (False, True):
        w = torch.ones(64, 64, dtype=torch.bfloat16, requires_grad=True)
        opt = descend.SGD([w], lr=1e-4, stochastic_rounding=stochastic, rounding_seed=0)
        for _ in range(100):
            w.grad = torch.ones_like(w)  # each step asks for -1e-4
            opt.step()
        moved[stochastic] = float(1 - w.detach().float().mean())
    assert moved[False] == 0.0
    assert moved[True] == pytest.approx(100 * 1e-4, rel=0.1)


@pytest.mark.parametrize("backend", ["reference", "foreach", "native", "auto"])
def test_every_backend_agrees_with_the_reference_on_quantized_state(backend):
    ref, fast = _params(), _params()
    ref_opt = descend.RMSprop(ref, lr=0.01, momentum=0.5, centered=True,
                              state_dtype="int8", backend="reference")
    opt = descend.RMSprop(fast, lr=0.01, momentum=0.5, centered=True, state_dtype="int8",
                          backend=backend)
    _train(ref_opt, ref, 10), _train(opt, fast, 10)
    for p, q in zip(ref, fast):
        torch.testing.assert_close(q, p, rtol=1e-4, atol=1e-5)
        for key in ("square_avg", "grad_avg", "momentum_buffer"):
            a = P.read(ref_opt.state[p], key, "signed")
            b = P.read(opt.state[q], key, "signed")
            torch.testing.assert_close(b.float(), a.float(), rtol=0.07, atol=1e-6)


def test_changing_state_dtype_converts_the_state_and_loading_converts_too():
    params = _params()
    opt = descend.Adam(params, lr=0.01)
    _train(opt, params, 3)
    before = opt.state[params[0]]["exp_avg"].clone()
    opt.set_hyperparameter("state_dtype", "int8")
    _train(opt, params, 1)
    assert opt.state[params[0]]["exp_avg"].dtype == torch.uint8
    saved = opt.state_dict()
    other = descend.Adam(_params(), lr=0.01, state_dtype="bfloat16")
    other.load_state_dict(saved)  # the saved group's state_dtype ("int8") comes with it
    assert other.param_groups[0]["state_dtype"] == "int8"
    other.set_hyperparameter("state_dtype", None)
    _train(other, other.param_groups[0]["params"], 1)
    assert other.state[other.param_groups[0]["params"][0]]["exp_avg"].dtype == torch.float32
    assert before.dtype == torch.float32


def test_bad_precision_options_are_named():
    with pytest.raises(ValueError, match="state_dtype must be None, 'float32', 'bfloat16'"):
        descend.Adam(_params(), state_dtype="fp4")
    with pytest.raises(TypeError, match="stochastic_rounding must be None, True or False"):
        descend.Adam(_params(), stochastic_rounding="yes")
    with pytest.raises(ValueError, match="rounding_seed must be an integer"):
        descend.Adam(_params(), rounding_seed=-1)


def test_a_group_rule_cannot_declare_low_precision_state():
    from descend.rules.base import Rule
    with pytest.raises(ValueError, match="group rule keeps its state"):
        Rule("g", lambda g, s, p, ctx: (g, {}), state=("m",), reduction="group",
             low_precision=(("m", "signed"),))


def test_optimizers_without_low_precision_state_keep_the_parameters_dtype():
    w = torch.randn(96, 64, requires_grad=True)
    for opt in (descend.Prodigy([w], state_dtype="int8"), descend.SOAP([w], state_dtype="int8"),
                descend.ASGD([w], state_dtype="bfloat16")):
        w.grad = torch.randn_like(w)
        opt.step()
        floats = [v for v in opt.state[w].values() if torch.is_tensor(v) and v.numel() > 1]
        assert floats and all(v.dtype == torch.float32 for v in floats), type(opt).__name__


def test_native_kernels_round_with_the_same_noise_and_codes_as_torch_ops():
    """Where the maths is exact (SGD, lr a power of two, gradient 1), the native kernel and
    the decoded torch path must store bit for bit the same bfloat16 parameters (the hash of
    the stochastic rounding) and 8-bit momentum codes."""
    results = []
    for backend in ("foreach", "native"):
        w = (torch.linspace(-3, 3, 96 * 64).view(96, 64)).to(torch.bfloat16).requires_grad_()
        opt = descend.SGD([w], lr=2.0**-12, momentum=0.5, stochastic_rounding=True,
                          rounding_seed=11, state_dtype="int8", backend=backend)
        for _ in range(4):
            w.grad = torch.ones_like(w)
            opt.step()
        results.append((w.detach().clone(), dict(opt.state[w])))
        if backend == "native":
            assert any(k is not None for k in opt._executor.native.values())
    (w_ref, s_ref), (w_nat, s_nat) = results
    assert torch.equal(w_ref, w_nat)
    assert torch.equal(s_ref["momentum_buffer"], s_nat["momentum_buffer"])
    assert torch.equal(s_ref["momentum_buffer.absmax"], s_nat["momentum_buffer.absmax"])
