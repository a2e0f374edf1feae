"""8-bit block codes and stochastic rounding (descend.backends.precision)."""

from __future__ import annotations

import pytest
import torch

from descend.backends import precision as P


def _spread(shape, layout, seed=0):
    """Values over six orders of magnitude within every block, as Adam's moments have."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=gen) * torch.logspace(-6, 0, shape[-1])
    return x.abs() if layout == "nonnegative" else x


@pytest.mark.parametrize("layout", ["signed", "nonnegative"])
def test_round_trip_within_the_stated_relative_error(layout):
    x = _spread((64, 300), layout)
    code, absmax = P.encode(x, layout)
    assert code.dtype == torch.uint8 and code.shape == x.shape
    assert absmax.dtype == torch.float32 and absmax.numel() == P.blocks(x.numel())
    y = P.decode(code, absmax, layout)
    floor = P.smallest(layout) * absmax.repeat_interleave(P.BLOCK)[: x.numel()].view(x.shape)
    kept = x.abs() >= floor
    rel = (y - x).abs()[kept] / x.abs()[kept]
    assert rel.max() <= P.relative_error_bound(layout)
    assert (y[x.abs() < floor / 2] == 0).all()  # below the range: zero, never garbage
    assert (torch.sign(y[kept]) == torch.sign(x[kept])).all()


@pytest.mark.parametrize("layout", ["signed", "nonnegative"])
def test_each_block_keeps_its_largest_value_exactly_and_zero_blocks_stay_zero(layout):
    x = _spread((4, 256), layout)
    x[2] = 0
    code, absmax = P.encode(x, layout)
    y = P.decode(code, absmax, layout)
    assert absmax[2] == 0 and (y[2] == 0).all()
    for row in (0, 1, 3):
        i = x[row].abs().argmax()
        assert y[row, i] == x[row, i]


def test_the_second_moments_small_entries_survive():
    """Why codes with an exponent: a linear 8-bit code would zero every entry below 1/255 of
    its block's largest, and Adam would then divide those coordinates' steps by eps."""
    v = torch.logspace(-9, 0, 256) ** 2  # eighteen orders of magnitude in one block
    code, absmax = P.encode(v, "nonnegative")
    y = P.decode(code, absmax, "nonnegative")
    assert (y[v >= 1e-9] > 0).all()
    assert ((y.sqrt() - v.sqrt()).abs() / v.sqrt())[v >= 1e-9].max() < 1 / 32


def test_stochastic_rounding_is_unbiased_and_reproducible():
    x = torch.full((20000,), 1.0 + 2**-10)  # 1/8 of the way between two bfloat16 values
    key = P.noise_key(seed=7, step=3, tensor=0)
    a, b = P.round_bfloat16(x, key), P.round_bfloat16(x, key)
    assert torch.equal(a, b)
    assert set(a.float().unique().tolist()) == {1.0, 1.0078125}
    assert (a.float() > 1).float().mean() == pytest.approx(1 / 8, abs=0.01)
    assert not torch.equal(a, P.round_bfloat16(x, P.noise_key(seed=7, step=4, tensor=0)))
    assert torch.equal(P.round_bfloat16(x, None), x.to(torch.bfloat16))


def test_stochastic_rounding_keeps_exact_values_and_non_finite_ones():
    x = torch.tensor([1.0, -2.5, 0.0, float("inf"), float("-inf"), float("nan"), 3e38])
    y = P.round_bfloat16(x, P.noise_key(1, 1, 1)).float()
    assert y[:3].tolist() == [1.0, -2.5, 0.0]
    assert y[3] == float("inf") and y[4] == float("-inf") and y[5].isnan()
    assert torch.isfinite(y[6]) or y[6] == float("inf")
