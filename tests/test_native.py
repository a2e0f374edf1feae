"""Native kernels (descend.backends.native): every elementwise rule compiles, agrees with
the reference loop to rounding, and every case a kernel cannot take falls back correctly."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from optim_db import CASES
from problems import clone_params, loss_fn, make_params, train

import descend
from descend.backends import native
from descend.backends.common import context
from descend.rules import Rule, chain, scale_by_learning_rate

pytestmark = pytest.mark.skipif(not native.available(), reason="no C compiler")


def _native_kernels(opt):
    return [k for k in opt._executor.native.values() if k is not None]


def _elementwise(case):
    opt = case.make(make_params(shapes=case.shapes))
    return all(opt.recipe(group).elementwise for group in opt.param_groups)


ELEMENTWISE = [case for case in CASES if _elementwise(case)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["fp32", "fp64"])
@pytest.mark.parametrize("case", ELEMENTWISE, ids=[c.id for c in ELEMENTWISE])
def test_every_elementwise_case_runs_natively_and_matches_the_reference(case, dtype):
    ref = make_params(dtype)
    fast = clone_params(ref)
    train(case.make(ref, backend="reference"), ref, 8)
    opt = case.make(fast, backend="native")
    train(opt, fast, 8)
    assert _native_kernels(opt), "the rule fell back instead of compiling"
    tol = {torch.float32: 2e-5, torch.float64: 1e-13}[dtype]
    for p, q in zip(ref, fast):
        torch.testing.assert_close(q, p, rtol=tol, atol=tol)


def test_the_generated_loop_reads_and_writes_each_tensor_once():
    rule = descend.recipes.adam(weight_decay=True, decoupled=True)
    ctx = context(rule, dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.1,
                             maximize=False), 3)
    source = native.emit_c(native.Traced(rule, ctx, False), torch.float32)
    loop = source[source.index("for (int64_t i"):]
    for name in ("p", "g", "s0", "s1"):
        assert loop.count(f"= {name}[i];") == 1
    for name in ("p", "s0", "s1"):
        assert loop.count(f"{name}[i] = ") == 1
    assert "g[i] = " not in loop  # the gradient is read only


def test_non_contiguous_storage_falls_back_and_stays_correct():
    ref = [torch.randn(4, 6, dtype=torch.float64).requires_grad_()]
    fast = clone_params(ref)
    opts = [descend.RMSprop(ref, lr=0.1, momentum=0.5, backend="reference"),
            descend.RMSprop(fast, lr=0.1, momentum=0.5, backend="native")]
    for step in range(5):
        for params, opt in zip((ref, fast), opts):
            if step == 2:
                params[0].data = params[0].data.t().contiguous().t()  # same values, strided
            opt.zero_grad()
            loss_fn(params).backward()
            opt.step()
    torch.testing.assert_close(fast[0], ref[0], rtol=1e-13, atol=1e-13)
    assert not fast[0].is_contiguous()


def test_a_rule_the_kernel_cannot_express_runs_on_foreach():
    def update(d, state, p, ctx):
        # A Python branch on a hyperparameter: fine eagerly, not in a traced kernel.
        return (d * 2 if ctx.lr > 0.05 else d), {}

    rule = chain(Rule("clip", update), scale_by_learning_rate())
    params = make_params()
    ref = clone_params(params)
    opt = descend.RuleOptimizer(params, rule, lr=0.1, backend="native")
    ref_opt = descend.RuleOptimizer(ref, rule, lr=0.1, backend="reference")
    train(opt, params, 3), train(ref_opt, ref, 3)
    assert not _native_kernels(opt)
    assert all(torch.equal(p, q) for p, q in zip(params, ref))


def test_without_a_c_compiler_auto_runs_on_foreach(tmp_path):
    code = (
        "import torch, descend\n"
        "p = [torch.randn(5, requires_grad=True)]\n"
        "opt = descend.RMSprop(p, lr=0.1)\n"
        "for _ in range(3):\n"
        "    p[0].grad = torch.ones(5); opt.step()\n"
        "print(sum(k is not None for k in opt._executor.native.values()))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"CC": str(tmp_path / "no-such-compiler"), "PATH": "/nonexistent",
                               "DESCEND_CACHE_DIR": str(tmp_path)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"


def test_kernels_are_cached_on_disk_and_compiled_once(tmp_path, monkeypatch):
    monkeypatch.setenv("DESCEND_CACHE_DIR", str(tmp_path))
    rule = descend.recipes.lion(weight_decay=True)
    ctx = context(rule, dict(lr=1e-3, betas=(0.9, 0.99), weight_decay=0.1, maximize=False), 2)
    source = native.emit_c(native.Traced(rule, ctx, False), torch.float64) + "\n// test\n"
    native._libraries.clear()
    native.load(source)
    files = list((tmp_path / "kernels").glob("*.so"))
    native._libraries.clear()
    native.load(source)
    assert list((tmp_path / "kernels").glob("*.so")) == files and len(files) == 1


def test_a_non_numeric_value_the_maths_reads_is_fixed_in_the_kernel_and_rebuilt():
    def update(d, state, p, ctx):
        return (d * 2 if ctx.double else d), {}  # a Python branch on a flag

    rule = chain(Rule("maybe_double", update), scale_by_learning_rate())
    params = make_params()
    ref = clone_params(params)
    opt = descend.RuleOptimizer(params, rule, lr=0.1, double=True, backend="native")
    ref_opt = descend.RuleOptimizer(ref, rule, lr=0.1, double=True, backend="reference")
    for step in range(4):
        for o in (opt, ref_opt):
            o.param_groups[0]["double"] = step % 2 == 0
        train(opt, params, 1), train(ref_opt, ref, 1)
    assert _native_kernels(opt)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-13)


def test_a_list_hyperparameter_is_read_at_every_step():
    """Found while adding torch's algorithms: a list (not tuple) of betas was frozen into the
    kernel, so a later change of its values was ignored."""
    rule = descend.recipes.adam()
    kwargs = dict(lr=0.05, betas=[0.9, 0.999], eps=1e-8, weight_decay=0.0, amsgrad=False)
    params = make_params()
    ref = clone_params(params)
    opt = descend.RuleOptimizer(params, rule, backend="native", **kwargs)
    ref_opt = descend.RuleOptimizer(ref, rule, backend="reference", **kwargs)
    train(opt, params, 2), train(ref_opt, ref, 2)
    for o in (opt, ref_opt):
        o.param_groups[0]["betas"] = [0.5, 0.9]
    train(opt, params, 3), train(ref_opt, ref, 3)
    for p, q in zip(params, ref):
        torch.testing.assert_close(p, q, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("options", [{}, {"state_dtype": "int8"},
                                     {"state_dtype": "bfloat16", "stochastic_rounding": True}],
                         ids=["float32", "int8", "bfloat16-stochastic"])
def test_threads_split_the_work_without_changing_a_bit(options):
    """Above PARALLEL_MIN elements the kernel cuts the bucket into one span per thread, on
    256-element boundaries within each tensor: odd sizes, tensors straddling a cut, 8-bit
    blocks and stochastic rounding all give the same bits for any thread count."""
    shapes = [(1000, 301), (7,), (513, 257), (300, 3)]
    assert sum(torch.Size(s).numel() for s in shapes) > native.PARALLEL_MIN
    results = []
    threads = torch.get_num_threads()
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            params = make_params(torch.float32, shapes=shapes)
            opt = descend.AdamW(params, backend="native", rounding_seed=1, **options)
            train(opt, params, 3)
            results.append([p.detach().clone() for p in params] +
                           [v for s in opt.state.values() for v in s.values()
                            if torch.is_tensor(v)])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        assert all(torch.equal(a, b) for a, b in zip(results[0], other))
