"""Native kernels: an elementwise rule compiled to one C loop over every tensor of a bucket.

torch's fused kernels exist for four recipes. For every other elementwise rule, the eager
paths run one kernel per operation (each a pass over memory with a fresh temporary), and
torch.compile takes seconds to minutes to build a kernel and then guards every call, while
compiling in the background would make a run's numbers depend on when the compile
finished. This module takes a third way:

1. **Trace** the rule once per (rule, dtype, step-independent inputs): `rule.update` runs on
   `Sym` placeholders instead of tensors, recording an expression graph over the parameter,
   the gradient, the state and the per-step scalars (hyperparameters and `prepare`'s
   results, passed by name).
2. **Emit C**: scalar sub-expressions once per call in double precision (as Python computes
   them), and one loop per tensor that loads each input once, evaluates the graph in the
   tensor's dtype (a scalar operand is cast to it, as ATen casts a Python scalar) and stores
   the parameter and every changed state once: the minimal memory traffic.
3. **Compile** with the system C compiler (about 0.3 s, no torch headers) into a shared
   library cached on disk by the hash of its source, and call it with ctypes (which drops
   the GIL) on the bucket's pointers.

The loop is IEEE-exact per operation (no fused multiply-add contraction, no fast-math), so
it agrees with the reference loop to rounding; it is the same code on every run, so a run's
numbers never depend on timing. Where a rule uses an operation this module does not know,
or a C compiler is missing, or the tensors are not contiguous float32/float64 CPU tensors,
the bucket runs on the foreach path instead.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from array import array
from collections.abc import Sequence
from itertools import repeat
from numbers import Number
from operator import attrgetter, is_
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..rules.base import Context, Rule

DTYPES = {torch.float32: ("float", "f"), torch.float64: ("double", "")}
_dtype = attrgetter("dtype")
_MISSING = object()


class Unsupported(Exception):
    """The rule uses something a native kernel cannot express."""


class Sym:
    """A node of the traced expression graph: an input, a constant or an operation.

    `scalar` nodes (per-step scalars and arithmetic on them) are computed once per call in
    double precision; the others once per element, in the tensors' dtype.
    """

    __slots__ = ("op", "args", "scalar", "name")

    def __init__(self, op: str, args: tuple = (), scalar: bool = False, name: str = "") -> None:
        self.op, self.args, self.scalar, self.name = op, args, scalar, name

    # -- building ----------------------------------------------------------------------

    @staticmethod
    def wrap(value: Any) -> Sym:
        if isinstance(value, Sym):
            return value
        if isinstance(value, bool) or not isinstance(value, Number):
            raise Unsupported(f"a {type(value).__name__} operand")
        return Sym("const", (float(value),), scalar=True)

    @staticmethod
    def apply(op: str, *args: Any) -> Sym:
        nodes = tuple(Sym.wrap(a) for a in args)
        return Sym(op, nodes, scalar=all(n.scalar for n in nodes))

    def __add__(self, o: Any) -> Sym:
        return Sym.apply("add", self, o)

    def __radd__(self, o: Any) -> Sym:
        return Sym.apply("add", o, self)

    def __sub__(self, o: Any) -> Sym:
        return Sym.apply("sub", self, o)

    def __rsub__(self, o: Any) -> Sym:
        return Sym.apply("sub", o, self)

    def __mul__(self, o: Any) -> Sym:
        return Sym.apply("mul", self, o)

    def __rmul__(self, o: Any) -> Sym:
        return Sym.apply("mul", o, self)

    def __truediv__(self, o: Any) -> Sym:
        return Sym.apply("div", self, o)

    def __rtruediv__(self, o: Any) -> Sym:
        return Sym.apply("div", o, self)

    def __neg__(self) -> Sym:
        return Sym.apply("neg", self)

    def __pow__(self, o: Any) -> Sym:
        return Sym.apply("pow", self, o)

    def __rpow__(self, o: Any) -> Sym:
        return Sym.apply("pow", o, self)

    def __abs__(self) -> Sym:
        return Sym.apply("abs", self)

    def __gt__(self, o: Any) -> Sym:
        return Sym.apply("gt", self, o)

    def __lt__(self, o: Any) -> Sym:
        return Sym.apply("lt", self, o)

    def __ge__(self, o: Any) -> Sym:
        return Sym.apply("ge", self, o)

    def __le__(self, o: Any) -> Sym:
        return Sym.apply("le", self, o)

    def __bool__(self) -> bool:
        raise Unsupported("a branch on a traced value")

    # -- the tensor methods rules use ------------------------------------------------------

    def add(self, other: Any, alpha: Any = 1.0) -> Sym:
        return self + Sym.wrap(alpha) * other if alpha != 1.0 else self + other

    def sub(self, other: Any, alpha: Any = 1.0) -> Sym:
        return self - Sym.wrap(alpha) * other if alpha != 1.0 else self - other

    def mul(self, other: Any) -> Sym:
        return self * other

    def div(self, other: Any) -> Sym:
        return self / other

    def addcmul(self, t1: Any, t2: Any, value: Any = 1.0) -> Sym:
        # ATen evaluates self + value * t1 * t2, left to right.
        return self + Sym.wrap(value) * t1 * t2

    def addcdiv(self, t1: Any, t2: Any, value: Any = 1.0) -> Sym:
        return self + Sym.wrap(value) * t1 / t2

    def lerp(self, end: Any, weight: Any) -> Sym:
        return Sym.apply("lerp", self, end, weight)

    def sqrt(self) -> Sym:
        return Sym.apply("sqrt", self)

    def rsqrt(self) -> Sym:
        return 1.0 / Sym.apply("sqrt", self)

    def exp(self) -> Sym:
        return Sym.apply("exp", self)

    def log(self) -> Sym:
        return Sym.apply("log", self)

    def abs(self) -> Sym:
        return Sym.apply("abs", self)

    def sign(self) -> Sym:
        return Sym.apply("sign", self)

    def neg(self) -> Sym:
        return -self

    def maximum(self, other: Any) -> Sym:
        return Sym.apply("maximum", self, other)

    def minimum(self, other: Any) -> Sym:
        return Sym.apply("minimum", self, other)

    def clamp(self, min: Any = None, max: Any = None) -> Sym:  # noqa: A002 - torch's names
        out = self
        if min is not None:
            out = Sym.apply("clamp_min", out, min)
        if max is not None:
            out = Sym.apply("clamp_max", out, max)
        return out

    def where(self, condition: Any, other: Any) -> Sym:
        return Sym.apply("where", condition, self, other)

    def __repr__(self) -> str:
        return f"Sym({self.op}{'*' if self.scalar else ''})"


def _scalar_names(ctx: Context) -> list[tuple[str, int | None]]:
    """The numeric entries of a context (a tuple contributes one entry per element)."""
    names: list[tuple[str, int | None]] = []
    for key, value in sorted(ctx.items()):
        if isinstance(value, bool):
            continue
        if isinstance(value, Number):
            names.append((key, None))
        elif isinstance(value, (tuple, list)) and value and all(
                isinstance(v, Number) and not isinstance(v, bool) for v in value):
            names.extend((key, i) for i in range(len(value)))
    return names


def scalar_values(ctx: Context, names: Sequence[tuple[str, int | None]]) -> list[float]:
    values = ctx.__dict__
    return [float(values[k] if i is None else values[k][i]) for k, i in names]


class Traced:
    """A rule traced for one state layout: its outputs and the scalar inputs it reads."""

    def __init__(self, rule: Rule, ctx: Context, maximize: bool) -> None:
        names = _scalar_names(ctx)
        sym_ctx = _Recording(ctx.__dict__)
        by_key: dict[str, Any] = {}
        for index, (key, i) in enumerate(names):
            node = Sym("scalar", (index,), scalar=True, name=f"{key}[{i}]" if i is not None
                       else key)
            if i is None:
                by_key[key] = node
            else:
                by_key.setdefault(key, [None] * len(ctx.__dict__[key]))[i] = node
        for key, value in by_key.items():
            setattr(sym_ctx, key, tuple(value) if isinstance(value, list) else value)
        self.state = rule.state
        param = Sym("in", ("p",))
        grad = Sym("in", ("g",))
        state = {k: Sym("in", (f"s{j}",)) for j, k in enumerate(rule.state)}
        g = -grad if maximize else grad
        try:
            update, new_state = rule.update(g, dict(state), param, sym_ctx)
        except Unsupported:
            raise
        except (TypeError, AttributeError, ValueError) as e:
            raise Unsupported(str(e)) from e
        if not isinstance(update, Sym) or update.scalar:
            raise Unsupported("the update is not an elementwise expression")
        self.outputs: list[tuple[str, Sym]] = [("p", param + update)]
        for j, key in enumerate(rule.state):
            value = new_state.get(key)
            if value is not None:
                if not isinstance(value, Sym) or value.scalar:
                    raise Unsupported(f"state {key!r} is not an elementwise expression")
                self.outputs.append((f"s{j}", value))
        self.slots = ["p", "g", *(f"s{j}" for j in range(len(rule.state)))]
        # Non-numeric values the maths read are fixed in the kernel: it is valid only while
        # they keep these values.
        self.fixed = {k: ctx.__dict__[k] for k in sym_ctx.read
                      if k in ctx.__dict__ and not isinstance(by_key.get(k), (Sym, tuple))}
        # Only the scalars the graph reads are passed, renumbered in order of first use.
        used: list[Sym] = []
        for node in _walk([out for _, out in self.outputs]):
            if node.op == "scalar" and node not in used:
                used.append(node)
        self.names = [names[node.args[0]] for node in used]
        for position, node in enumerate(used):
            node.args = (position,)


class _Recording(Context):
    """A context that records which of its entries were read."""

    def __init__(self, values: Any) -> None:
        super().__init__(values)
        object.__setattr__(self, "read", set())

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_") and name not in ("read", "get", "items", "update"):
            object.__getattribute__(self, "read").add(name)
        return object.__getattribute__(self, name)

    def get(self, name: str, default: Any = None) -> Any:
        self.read.add(name)
        return self.__dict__.get(name, default)


def _walk(roots: list[Sym]) -> list[Sym]:
    """Every node reachable from `roots`, each after its arguments."""
    order: list[Sym] = []
    seen: set[int] = set()

    def visit(node: Sym) -> None:
        if id(node) in seen:
            return
        seen.add(id(node))
        for arg in node.args:
            if isinstance(arg, Sym):
                visit(arg)
        order.append(node)

    for root in roots:
        visit(root)
    return order


# -- C source --------------------------------------------------------------------------------

_BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/", "gt": ">", "lt": "<", "ge": ">=",
           "le": "<="}


def emit_c(traced: Traced, dtype: torch.dtype, storage: dict[str, str] | None = None,
           stochastic: set[str] = frozenset()) -> str:
    """C source of `run(count, sizes, pointers, scalars, keys)` for `traced`, computing in
    `dtype`. `storage` gives the slots stored otherwise ("float", "bfloat16",
    "int8-signed", "int8-nonnegative"); `stochastic` the bfloat16 slots rounded
    stochastically (one hash key per tensor and slot)."""
    ctype, suffix = DTYPES[dtype]
    math = {"sqrt": f"sqrt{suffix}", "exp": f"exp{suffix}", "log": f"log{suffix}",
            "abs": f"fabs{suffix}", "pow": f"pow{suffix}"}
    order = _walk([out for _, out in traced.outputs])
    names: dict[int, str] = {}
    prologue: list[str] = []
    body: list[str] = []
    casts: dict[int, str] = {}

    def ref(node: Sym, as_element: bool) -> str:
        """A node's C name; a scalar used next to elements is cast to the element type."""
        name = names[id(node)]
        if node.scalar and as_element:
            if id(node) not in casts:
                casts[id(node)] = f"k{len(casts)}"
                prologue.append(f"  const {ctype} {casts[id(node)]} = ({ctype}){name};")
            return casts[id(node)]
        return name

    for i, node in enumerate(order):
        if node.op == "in":
            names[id(node)] = f"x_{node.args[0]}"
            continue
        if node.op == "const":
            names[id(node)] = repr(node.args[0]) if node.args[0] == node.args[0] else "NAN"
            if names[id(node)] in ("inf", "-inf"):
                names[id(node)] = names[id(node)].replace("inf", "INFINITY")
            continue
        if node.op == "scalar":
            names[id(node)] = f"c[{node.args[0]}]"
            continue
        element = not node.scalar
        t = "double" if node.scalar else ctype
        a = [ref(arg, element) for arg in node.args]
        fn = (lambda f: f.removesuffix(suffix)) if node.scalar else (lambda f: f)
        op = node.op
        if op in _BINARY:
            expr = f"({a[0]} {_BINARY[op]} {a[1]})"
        elif op == "neg":
            expr = f"(-{a[0]})"
        elif op in ("sqrt", "exp", "log", "abs"):
            expr = f"{fn(math[op])}({a[0]})"
        elif op == "pow":
            expr = f"{fn(math['pow'])}({a[0]}, {a[1]})"
        elif op == "sign":  # torch.sign: 1, -1, 0; NaN gives 0
            expr = f"(({a[0]} > 0) ? ({t})1 : (({a[0]} < 0) ? ({t})-1 : ({t})0))"
        elif op == "maximum":  # NaN propagates, as in torch.maximum
            expr = f"(({a[0]} != {a[0]} || {a[0]} >= {a[1]}) ? {a[0]} : {a[1]})"
        elif op == "minimum":
            expr = f"(({a[0]} != {a[0]} || {a[0]} <= {a[1]}) ? {a[0]} : {a[1]})"
        elif op == "clamp_min":
            expr = f"(({a[0]} < {a[1]}) ? {a[1]} : {a[0]})"
        elif op == "clamp_max":
            expr = f"(({a[0]} > {a[1]}) ? {a[1]} : {a[0]})"
        elif op == "where":
            expr = f"({a[0]} ? {a[1]} : {a[2]})"
        elif op == "lerp":  # ATen's formula: exact at both ends
            w = a[2]
            one = "1.0" if node.scalar else f"({t})1"
            expr = (f"((({fn(math['abs'])}({w})) < 0.5) ? ({a[0]} + {w} * ({a[1]} - {a[0]}))"
                    f" : ({a[1]} - ({a[1]} - {a[0]}) * ({one} - {w})))")
        else:  # pragma: no cover - every op built by Sym is listed above
            raise Unsupported(op)
        names[id(node)] = f"v{i}"
        line = f"{'    ' if element else '  '}const {t} v{i} = {expr};"
        (body if element else prologue).append(line)
    read = {n.args[0] for n in order if n.op == "in"}
    return _assemble(traced, ctype, prologue, body, read, ref, storage or {}, stochastic)


# How a slot's elements are stored, when not in the compute type: C pointer type, and the
# code that loads element i into `x_<slot>` and stores a value into it.
_STORAGE_TYPES = {"T": None, "float": "float", "bfloat16": "uint16_t", "int8-signed": "uint8_t",
                  "int8-nonnegative": "uint8_t"}

_HELPERS = """
#include <string.h>
static inline float bf16_load(uint16_t h) {
  uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f;
}
static inline uint16_t bf16_nearest(float f) {
  uint32_t b; memcpy(&b, &f, 4);
  if (f != f) return 0x7FC0u;
  return (uint16_t)((b + 0x7FFFu + ((b >> 16) & 1u)) >> 16);
}
static inline uint32_t mix32(uint32_t h) {
  h ^= h >> 16; h *= 0x7FEB352Du; h ^= h >> 15; h *= 0x846CA68Bu; return h ^ (h >> 16);
}
static inline uint16_t bf16_stochastic(float f, uint32_t i, uint32_t key) {
  uint32_t b; memcpy(&b, &f, 4);
  if (!isfinite(f)) return (uint16_t)(b >> 16);
  return (uint16_t)((b + (mix32(i + key) & 0xFFFFu)) >> 16);
}
"""


# The bucket's elements, all tensors end to end, are cut into one span per thread (torch's
# intra-op thread count, above PARALLEL_MIN elements). A cut falls on a multiple of 256
# within its tensor, so no 8-bit block is split, and elements keep their in-tensor index,
# which seeds stochastic rounding: the results are the same bits for any number of threads.
PARALLEL_MIN = 1 << 18

_JOBS = """
#include <pthread.h>
typedef struct {
  int64_t count; const int64_t* n; void** ptr; const double* c; const uint32_t* key;
  int64_t start, stop;
} job_t;
static inline int64_t cut(int64_t at, int64_t n) {
  return at <= 0 ? 0 : at >= n ? n : (at & ~(int64_t)255);
}
"""

_RUN = f"""
static void* worker(void* job) {{ span((const job_t*)job); return 0; }}
void run(int64_t count, const int64_t* n, void** ptr, const double* c, const uint32_t* key,
         int64_t threads) {{
  int64_t total = 0;
  for (int64_t t = 0; t < count; ++t) total += n[t];
  if (threads > 16) threads = 16;
  if (threads < 2 || total < {PARALLEL_MIN}) {{
    const job_t all = {{count, n, ptr, c, key, 0, total}};
    span(&all);
    return;
  }}
  job_t jobs[16]; pthread_t ids[16]; int started[16];
  for (int64_t k = 0; k < threads; ++k) {{
    jobs[k] = (job_t){{count, n, ptr, c, key, total * k / threads,
                      total * (k + 1) / threads}};
  }}
  for (int64_t k = 1; k < threads; ++k)
    started[k] = pthread_create(&ids[k], 0, worker, &jobs[k]) == 0;
  span(&jobs[0]);
  for (int64_t k = 1; k < threads; ++k) {{
    if (started[k]) pthread_join(ids[k], 0); else span(&jobs[k]);
  }}
}}
"""


def _codec(layout: str) -> str:
    """C encoder and decoder of an 8-bit layout, bit for bit those of `precision`.

    The exponent and mantissa fields of a code, shifted into place, are its magnitude's
    float32 bit pattern less a constant (``m << shift`` then ``+ bias << 23``), which keeps
    both directions to a handful of integer operations the compiler vectorizes."""
    from .precision import LAYOUTS

    exp_bits, man_bits = LAYOUTS[layout]
    shift, bias = 23 - man_bits, 127 - (1 << exp_bits) + 1
    half = (1 << (shift - 1)) - 1
    signed = layout == "signed"
    name = layout.replace("nonnegative", "u").replace("signed", "s")
    mag = "(c & 0x7Fu)" if signed else "(uint32_t)c"
    sign_in = "  b |= (uint32_t)(c & 0x80u) << 24;\n" if signed else ""
    sign_out = " | (x < 0 ? 0x80u : 0u)" if signed else ""
    return f"""
static inline float q8{name}_load(uint8_t c, float a) {{
  uint32_t m = {mag};
  uint32_t b = m ? (m << {shift}) + ({bias}u << 23) : 0u;
{sign_in}  float v; memcpy(&v, &b, 4); return v * a;
}}
static inline uint8_t q8{name}_store(float x, float inv) {{
  float q = x * inv;
  uint32_t b; memcpy(&b, &q, 4); b &= 0x7FFFFFFFu;
  uint32_t r = b + {half}u + ((b >> {shift}) & 1u);
  int32_t t = (int32_t)(r >> {shift}) - ({bias} << {man_bits});
  uint32_t code = t >= {1 << man_bits} ? (uint32_t)t : 0u;
  return (uint8_t)(code{sign_out});
}}
"""


def _assemble(traced: Traced, ctype: str, prologue: list[str], body: list[str], read: set,
              ref: Any, storage: dict[str, str], stochastic: set[str]) -> str:
    slots = traced.slots
    kinds = {slot: storage.get(slot, "T") for slot in slots}
    quantized = [s for s in slots if kinds[s].startswith("int8")]
    indent = "      " if quantized else "    "
    loads, stores, buffers, requantize = [], [], [], []
    for slot in slots:
        kind = kinds[slot]
        if slot not in read:
            continue
        if kind == "T":
            loads.append(f"{indent}const {ctype} x_{slot} = {slot}[i];")
            continue
        if kind == "float":
            expr = f"{slot}[i]"
        elif kind == "bfloat16":
            expr = f"bf16_load({slot}[i])"
        else:
            expr = f"q8{'s' if kind.endswith('signed') and 'non' not in kind else 'u'}" \
                   f"_load({slot}[i], a_{slot})"
        loads.append(f"{indent}const {ctype} x_{slot} = ({ctype}){expr};")
    keys = [slot for slot in slots if slot in stochastic]
    for slot, node in traced.outputs:
        kind, value = kinds[slot], ref(node, True)
        if kind in ("T", "float"):
            stores.append(f"{indent}{slot}[i] = {value};")
        elif kind == "bfloat16" and slot in stochastic:
            stores.append(f"{indent}{slot}[i] = bf16_stochastic((float){value}, "
                          f"(uint32_t)i, key_{slot});")
        elif kind == "bfloat16":
            stores.append(f"{indent}{slot}[i] = bf16_nearest((float){value});")
        else:
            code = "s" if "non" not in kind else "u"
            stores.append(f"{indent}o_{slot}[j] = (float){value};")
            buffers.append(f"    float o_{slot}[256];")
            # The block's largest magnitude as an unsigned maximum of bit patterns (the same
            # order as the floats for magnitudes, NaN above everything, as torch's amax),
            # taken in the main loop: a reduction the compiler vectorizes, and no extra pass.
            stores[-1] = (f"{indent}{{ const float o = (float){value}; o_{slot}[j] = o; "
                          f"uint32_t b; memcpy(&b, &o, 4); b &= 0x7FFFFFFFu; "
                          f"mb_{slot} = b > mb_{slot} ? b : mb_{slot}; }}")
            buffers.append(f"    uint32_t mb_{slot} = 0u;")
            requantize += [
                f"    float m_{slot}; memcpy(&m_{slot}, &mb_{slot}, 4);",
                f"    {slot}_a[b0 >> 8] = m_{slot};",
                f"    const float i_{slot} = 1.0f / (m_{slot} > 0 ? m_{slot} : 1.0f);",
                f"    for (int64_t j = 0; j < bn; ++j) {slot}[b0 + j] = "
                f"q8{code}_store(o_{slot}[j], i_{slot});"]
    pointer = {k: (ctype if k == "T" else _STORAGE_TYPES[k]) for k in set(kinds.values())}
    params = [f"{pointer[kinds[s]]}* restrict {s}" for s in slots]
    params += [f"float* restrict {s}_a" for s in quantized]
    params += ["const double* restrict c"] + [f"uint32_t key_{s}" for s in keys]
    args = [f"({pointer[kinds[s]]}*)ptr[{j} * count + t]" for j, s in enumerate(slots)]
    args += [f"(float*)ptr[{len(slots) + j} * count + t]" for j in range(len(quantized))]
    args += ["c"] + [f"key[{j} * count + t]" for j in range(len(keys))]
    if quantized:
        loop = [
            "  for (int64_t b0 = lo; b0 < hi; b0 += 256) {",
            "    const int64_t bn = hi - b0 < 256 ? hi - b0 : 256;",
            *[f"    const float a_{s} = {s}_a[b0 >> 8];" for s in quantized],
            *buffers,
            "    for (int64_t j = 0; j < bn; ++j) {",
            "      const int64_t i = b0 + j;",
            *loads, *[("  " + line) for line in body], *stores, "    }",
            *requantize, "  }"]
    else:
        loop = ["  for (int64_t i = lo; i < hi; ++i) {", *loads, *body, *stores, "  }"]
    codecs = [_codec("signed" if "non" not in k else "nonnegative")
              for k in sorted({kinds[s] for s in quantized})]
    lines = [
        "#include <math.h>", "#include <stdint.h>", _HELPERS, _JOBS, *codecs,
        f"static void one(int64_t lo, int64_t hi, {', '.join(params)}) {{",
        *prologue, *loop, "}", "",
        "static void span(const job_t* job) {",
        "  const int64_t count = job->count; void** ptr = job->ptr;",
        "  const double* c = job->c; const uint32_t* key = job->key;",
        "  int64_t base = 0;",
        "  for (int64_t t = 0; t < count && base < job->stop; ++t) {",
        "    const int64_t lo = cut(job->start - base, job->n[t]);",
        "    const int64_t hi = cut(job->stop - base, job->n[t]);",
        f"    if (lo < hi) one(lo, hi, {', '.join(args)});",
        "    base += job->n[t];",
        "  }", "}", _RUN]
    return "\n".join(lines)


# -- compiling and loading ------------------------------------------------------------------

FLAGS = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off",
         "-fPIC", "-shared", "-pthread"]
_lock = threading.Lock()
_libraries: dict[str, Any] = {}
_compiler: str | None | bool = False


def compiler() -> str | None:
    """The C compiler (``$CC``, cc or gcc), or None."""
    global _compiler
    if _compiler is False:
        named = os.environ.get("CC")
        _compiler = (shutil.which(named) if named else None) or shutil.which("cc") or \
            shutil.which("gcc")
    return _compiler  # type: ignore[return-value]


def cache_dir() -> Path:
    root = os.environ.get("DESCEND_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "descend")
    return Path(root) / "kernels"


def _machine() -> str:
    """What the compiled code depends on besides its source: -march=native targets this CPU."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        flags = ""
    return flags + "|" + " ".join(FLAGS)


def load(source: str) -> Any:
    """Compile `source` (once per machine and source, cached on disk) and load its `run`."""
    cc = compiler()
    if cc is None:
        raise Unsupported("no C compiler")
    key = hashlib.sha256((source + _machine() + cc).encode()).hexdigest()[:20]
    with _lock:
        lib = _libraries.get(key)
        if lib is not None:
            return lib
        directory = cache_dir()
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            directory = Path(tempfile.gettempdir()) / "descend-kernels"
            directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{key}.so"
        if not target.exists():
            # Compile into a private file and rename: processes compiling the same kernel
            # at once (lab workers) never load a half-written library.
            with tempfile.TemporaryDirectory(dir=directory) as tmp:
                src = Path(tmp) / "kernel.c"
                src.write_text(source)
                out = Path(tmp) / "kernel.so"
                try:
                    done = subprocess.run([cc, *FLAGS, str(src), "-o", str(out), "-lm"],
                                          capture_output=True, text=True)
                except OSError as e:
                    raise Unsupported(f"the C compiler could not run: {e}") from e
                if done.returncode != 0:
                    raise Unsupported(f"the C compiler failed: {done.stderr.strip()[:500]}")
                os.replace(out, target)
        try:
            run = ctypes.CDLL(str(target)).run
        except OSError as e:  # e.g. a cache on a filesystem mounted noexec
            raise Unsupported(f"the compiled kernel could not be loaded: {e}") from e
        run.argtypes = [ctypes.c_int64, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p,
                        ctypes.c_void_p, ctypes.c_int64]
        run.restype = None
        _libraries[key] = run
        return run


_SLOT_DTYPES = {"float": torch.float32, "bfloat16": torch.bfloat16,
                "int8-signed": torch.uint8, "int8-nonnegative": torch.uint8}


class Kernel:
    """A native kernel for one traced rule, compute dtype and storage layout, called on a
    bucket's tensors.

    `storage` maps slots stored in another dtype than the compute dtype to their format
    (see `emit_c`); an 8-bit slot comes with its block scales, passed after the slots.
    """

    def __init__(self, traced: Traced, dtype: torch.dtype,
                 storage: dict[str, str] | None = None,
                 stochastic: frozenset[str] = frozenset()) -> None:
        self.names = traced.names
        self.fixed = traced.fixed
        storage = storage or {}
        self.run = load(emit_c(traced, dtype, storage, stochastic))
        self.dtype = dtype
        self.dtypes = [_SLOT_DTYPES.get(storage.get(slot, "T"), dtype) for slot in traced.slots]
        self.quantized = [i for i, slot in enumerate(traced.slots)
                          if storage.get(slot, "").startswith("int8")]
        self.stochastic = [i for i, slot in enumerate(traced.slots) if slot in stochastic]
        self._sizes: list[int] = []
        self._sizes_array = array("q")
        self._states: list[Tensor] = []
        self._state_pointers = array("Q")

    def valid_for(self, ctx: Context) -> bool:
        values = ctx.__dict__
        return all(values.get(k, _MISSING) == v for k, v in self.fixed.items())

    def __call__(self, tensors: Sequence[Sequence[Tensor]], ctx: Context,
                 scales: Sequence[Sequence[Tensor]] = (), keys: Sequence[int] = ()) -> None:
        """`tensors`: per slot (p, g, s0, ...), the bucket's tensors in order; `scales`: the
        block scales of each 8-bit slot; `keys`: per stochastically rounded slot, one noise
        key per tensor (slot-major).

        A kernel reads and writes memory directly, so every tensor must hold exactly its
        parameter's elements, contiguously, in its slot's dtype. What can change between
        steps is checked at every step: the gradients (new tensors at every backward), the
        parameters' layout (``p.data = ...`` keeps the object); the state tensors and
        scales, which only descend creates, are checked in full (and their addresses taken)
        whenever one is replaced, and are not resized in place.
        """
        params, grads, *states = tensors
        sizes = list(map(Tensor.numel, grads))
        if (sizes != self._sizes or not all(map(Tensor.is_contiguous, grads))
                or not all(map(Tensor.is_contiguous, params))):
            self._check(tensors, scales, sizes)
        state_objects = [t for ts in (*states, *scales) for t in ts]
        if len(state_objects) != len(self._states) or not all(
                map(is_, state_objects, self._states)):
            self._check(tensors, scales, sizes)
            self._states = state_objects
            self._state_pointers = array("Q", list(map(Tensor.data_ptr, state_objects)))
        # One list then one array: array.extend over an iterator costs ten times more.
        pointers = array("Q", [*map(Tensor.data_ptr, params), *map(Tensor.data_ptr, grads)])
        pointers += self._state_pointers
        scalars = array("d", scalar_values(ctx, self.names) or [0.0])
        noise = array("I", keys or [0])
        self.run(len(params), self._sizes_array.buffer_info()[0], pointers.buffer_info()[0],
                 scalars.buffer_info()[0], noise.buffer_info()[0], torch.get_num_threads())

    def _check(self, tensors: Sequence[Sequence[Tensor]], scales: Sequence[Sequence[Tensor]],
               sizes: list[int]) -> None:
        for ts, dtype in zip(tensors, self.dtypes):
            if (list(map(Tensor.numel, ts)) != sizes or not all(map(Tensor.is_contiguous, ts))
                    or not all(map(is_, map(_dtype, ts), repeat(dtype)))):
                raise Unsupported("tensors of different sizes, layouts or dtypes")
        from .precision import blocks

        expected = [blocks(n) for n in sizes]
        if len(scales) != len(self.quantized) or any(
                list(map(Tensor.numel, ts)) != expected or not all(map(Tensor.is_contiguous, ts))
                or not all(t.dtype == torch.float32 for t in ts) for ts in scales):
            raise Unsupported("block scales that do not match their codes")
        self._sizes = sizes
        self._sizes_array = array("q", sizes)


def available() -> bool:
    return compiler() is not None
