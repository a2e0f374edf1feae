"""Optimizer state below float32: 8-bit block codes and bfloat16 with stochastic rounding.

**8-bit codes.** A state tensor is cut into blocks of `BLOCK` elements (in the parameter's
element order); each block keeps its largest magnitude (`absmax`, float32) and every
element an 8-bit code of its value divided by that absmax (Dettmers et al., 2022, "8-bit
Optimizers via Block-wise Quantization"). The code is a small floating-point number, so its
precision is relative, as in Dettmers' dynamic-tree quantization: Adam's second moment
spans many orders of magnitude within a block, and a linear code would round its small
entries to zero (the update then divides by eps and explodes). Two layouts:

- ``signed`` (first moments, momentum buffers): a sign bit, 4 exponent bits and 3 mantissa
  bits: magnitudes from 2^-14 of the block's absmax to 1, within 1/16 relative error;
- ``nonnegative`` (second moments, accumulators): 5 exponent bits and 3 mantissa bits:
  from 2^-30 of the block's absmax to 1, within 1/16 (so square roots within 1/32).

Values below the smallest code become 0. Encoding rounds to nearest (ties to even) on the
float32 bit pattern, so it is exact integer arithmetic: the torch implementation here and
the C implementation in `descend.backends.native` produce the same codes bit for bit.

**bfloat16 with stochastic rounding** (Gupta et al., 2015): a float32 value is stored as
bfloat16 by adding 16 random bits below the kept ones and truncating, so the stored value
is unbiased: many small updates add up instead of being rounded away. The random bits are a
hash of (seed, step, tensor, element), not a random generator: the same run gives the same
bits on every backend, on resume, in any order.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BLOCK = 256
# Tensors smaller than this, or 1-D ones (biases, norms), keep float32 state: their memory
# does not matter and their statistics are the most sensitive (bitsandbytes does the same).
MIN_QUANTIZED = 4096

LAYOUTS = {"signed": (4, 3), "nonnegative": (5, 3)}  # exponent bits, mantissa bits


def quantizable(param: Tensor) -> bool:
    return param.dim() >= 2 and param.numel() >= MIN_QUANTIZED


def blocks(numel: int) -> int:
    return -(-numel // BLOCK)


def _pad(flat: Tensor) -> Tensor:
    rest = (-flat.numel()) % BLOCK
    return torch.cat([flat, flat.new_zeros(rest)]) if rest else flat


def encode(x: Tensor, layout: str) -> tuple[Tensor, Tensor]:
    """8-bit codes (uint8, x's shape) and block absmax (float32, one per block) of x."""
    exp_bits, man_bits = LAYOUTS[layout]
    flat = x.detach().reshape(-1).float()
    blocked = _pad(flat).view(-1, BLOCK)
    absmax = blocked.abs().amax(dim=1)
    scale = torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    normalized = (blocked / scale[:, None]).abs().reshape(-1)[: flat.numel()]
    bits = normalized.view(torch.int32).to(torch.int64)
    shift = 23 - man_bits
    half = (1 << (shift - 1)) - 1
    rounded = bits + half + ((bits >> shift) & 1)  # round to nearest, ties to even
    bias = 127 - (1 << exp_bits) + 1
    exponent = (rounded >> 23) - bias
    mantissa = (rounded >> shift) & ((1 << man_bits) - 1)
    code = torch.where(exponent > 0, (exponent << man_bits) | mantissa, 0)
    if layout == "signed":
        code = code | torch.where(flat < 0, 0x80, 0)
    return code.to(torch.uint8).view(x.shape), absmax


def decode(code: Tensor, absmax: Tensor, layout: str) -> Tensor:
    """float32 values of 8-bit codes (the inverse of `encode`, up to its rounding)."""
    exp_bits, man_bits = LAYOUTS[layout]
    c = code.reshape(-1).to(torch.int32)
    magnitude = c & 0x7F if layout == "signed" else c
    bias = 127 - (1 << exp_bits) + 1
    shift = 23 - man_bits
    bits = ((magnitude >> man_bits) + bias) << 23 | (magnitude & ((1 << man_bits) - 1)) << shift
    value = torch.where(magnitude > 0, bits, 0).view(torch.float32)
    if layout == "signed":
        value = torch.where(c & 0x80 != 0, -value, value)
    scale = absmax.repeat_interleave(BLOCK)[: value.numel()]
    return (value * scale).view(code.shape)


# -- stochastic rounding to bfloat16 ----------------------------------------------------------

MASK32 = 0xFFFFFFFF


def _mix(h: Tensor) -> Tensor:
    """A 32-bit integer finaliser (lowbias32): consecutive inputs give unrelated outputs."""
    h = h ^ (h >> 16)
    h = (h * 0x7FEB352D) & MASK32
    h = h ^ (h >> 15)
    h = (h * 0x846CA68B) & MASK32
    return h ^ (h >> 16)


def noise_key(seed: int, step: int, tensor: int) -> int:
    """The part of the hash that is the same for every element of a tensor at a step."""
    h = (seed * 0x9E3779B1 + step * 0x85EBCA77 + tensor * 0xC2B2AE3D) & MASK32
    return int(_mix(torch.tensor(h, dtype=torch.int64)).item())


def round_bfloat16(x: Tensor, key: int | None) -> Tensor:
    """bfloat16 of float32 `x`: to nearest without a key, stochastically with one."""
    if key is None:
        return x.to(torch.bfloat16)
    flat = x.detach().reshape(-1).float()
    index = torch.arange(flat.numel(), dtype=torch.int64, device=flat.device)
    noise = _mix((index + key) & MASK32) & 0xFFFF
    bits = flat.view(torch.int32).to(torch.int64) & MASK32
    finite = torch.isfinite(flat)
    # Adding the noise below bit 16, then truncating, rounds up with probability equal to
    # the discarded fraction. The carry into the exponent is the correct rounding too.
    kept = torch.where(finite, (bits + noise) & 0xFFFF0000, bits & 0xFFFF0000)
    as_int32 = torch.where(kept >= 2**31, kept - 2**32, kept).to(torch.int32)
    return as_int32.view(torch.float32).to(torch.bfloat16).view(x.shape)


def relative_error_bound(layout: str) -> float:
    """Largest relative error of `encode` then `decode` for values within the range."""
    return 2.0 ** -(LAYOUTS[layout][1] + 1)


def smallest(layout: str) -> float:
    """The smallest nonzero magnitude (relative to the block's absmax) a code keeps."""
    return math.ldexp(1.0, -(1 << LAYOUTS[layout][0]) + 2)
