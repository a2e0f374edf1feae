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
    # A multiplication by the reciprocal, as the native kernels do, so both give the same
    # codes bit for bit.
    inverse = 1 / torch.where(absmax > 0, absmax, torch.ones_like(absmax))
    normalized = (blocked * inverse[:, None]).abs().reshape(-1)[: flat.numel()]
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


# -- storage formats of optimizer state --------------------------------------------------------

STATE_DTYPES = (None, "float32", "bfloat16", "int8")
LOW_PARAMS = (torch.float16, torch.bfloat16)


def absmax_key(key: str) -> str:
    return f"{key}.absmax"


def target_format(state_dtype: str | None, sign: str | None, param: Tensor) -> str:
    """How one state key of `param` is stored: "param" (the parameter's dtype, as torch
    keeps it), "float32", "bfloat16", or "int8" (block codes; `sign` says which layout).
    Keys a rule does not declare low-precision (`sign` None) follow the parameter, but never
    below float32 when the state is meant to be float32 or wider."""
    if state_dtype is None or not param.is_floating_point():
        return "param"
    if sign is None or state_dtype == "float32":
        return "float32" if param.dtype in LOW_PARAMS else "param"
    if state_dtype == "int8":
        return "int8" if quantizable(param) else "float32"
    return state_dtype


def param_format(param: Tensor) -> str:
    """The format name of the parameter's own dtype, for low-precision parameters."""
    return "bfloat16" if param.dtype == torch.bfloat16 else "float16"


def stored_format(state: dict, key: str, param: Tensor) -> str:
    value = state[key]
    if value.dtype == torch.uint8 and absmax_key(key) in state:
        return "int8"
    if value.dtype == param.dtype or (param.is_complex() and value.dtype == param.real.dtype):
        return "param"
    return "bfloat16" if value.dtype == torch.bfloat16 else "float32" \
        if value.dtype == torch.float32 else "param"


def read(state: dict, key: str, sign: str | None) -> Tensor:
    """A state value as a floating-point tensor (decoded from 8-bit codes)."""
    value = state[key]
    if value.dtype == torch.uint8 and absmax_key(key) in state:
        return decode(value, state[absmax_key(key)], sign or "signed").to(value.device)
    return value


def write(state: dict, key: str, value: Tensor, fmt: str, sign: str | None,
          param: Tensor, rounding: int | None = None) -> None:
    """Store `value` in `state[key]` in format `fmt` (see `target_format`), in place where the
    storage already has that format. `rounding` is a stochastic-rounding key for bfloat16."""
    if fmt == "int8":
        code, absmax = encode(value, sign or "signed")
        current = state.get(key)
        if current is not None and current.dtype == torch.uint8 and current.shape == code.shape:
            current.copy_(code)
            state[absmax_key(key)].copy_(absmax)
        else:
            state[key], state[absmax_key(key)] = code.to(value.device), absmax.to(value.device)
        return
    state.pop(absmax_key(key), None)
    dtype = param.real.dtype if param.is_complex() and fmt == "param" else (
        param.dtype if fmt == "param" else getattr(torch, fmt))
    if dtype == torch.bfloat16 and rounding is not None:
        stored = round_bfloat16(value.float(), rounding)
    else:
        stored = value.to(dtype)
    current = state.get(key)
    if current is not None and current.dtype == dtype and current.shape == stored.shape \
            and current is not value:
        current.copy_(stored)
    else:
        state[key] = stored


def convert(state: dict, key: str, fmt: str, sign: str | None, param: Tensor) -> None:
    """Change how `state[key]` is stored, keeping its value (to the new format's precision)."""
    if stored_format(state, key, param) != fmt:
        write(state, key, read(state, key, sign).float(), fmt, sign, param)


PARAM_SLOT = 31  # the stochastic-rounding slot of the parameter itself (states use 0, 1, ...)


def round_to(x: Tensor, dtype: torch.dtype, key: int | None) -> Tensor:
    """`x` in `dtype`: stochastically rounded to bfloat16 with a key, to nearest otherwise."""
    if dtype == torch.bfloat16 and key is not None:
        return round_bfloat16(x, key)
    return x.to(dtype)


class Rounding:
    """The low-precision settings of one bucket at one step: which stores round
    stochastically, and the hash keys that make their noise reproducible."""

    __slots__ = ("seed", "step", "positions", "group", "stochastic", "params")

    def __init__(self, group: dict, gi: int, positions: list[int], step: int) -> None:
        # None (the default): bfloat16 state rounds stochastically (to nearest, an EMA with
        # beta2 = 0.999 would lose every increment below half a bfloat16 step, and the
        # second moment would stall), bfloat16 parameters to nearest, as torch's do.
        wanted = group.get("stochastic_rounding")
        self.stochastic = wanted is None or bool(wanted)
        self.params = bool(wanted)
        self.seed = int(group.get("rounding_seed", 0))
        self.group, self.positions, self.step = gi, positions, step

    @classmethod
    def of(cls, group: dict, gi: int, bucket) -> Rounding:
        positions = bucket.index if bucket.index is not None else range(len(bucket.params))
        return cls(group, gi, list(positions), bucket.step)

    def upcast(self, formats: tuple[str, ...], dtype: torch.dtype) -> bool:
        """Whether the maths runs on float32 copies of low-precision parameters."""
        return dtype in LOW_PARAMS and (self.stochastic or any(
            f in ("float32", "int8") for f in formats))

    def key(self, index: int, slot: int) -> int | None:
        """The noise key of the bucket's `index`-th tensor, state slot `slot` (or the
        parameter, `PARAM_SLOT`), at this step; None when rounding is to nearest."""
        if not self.stochastic:
            return None
        tensor = ((self.group << 20) + self.positions[index]) * 32 + slot
        return noise_key(self.seed, self.step, tensor)
