"""Optimizer-step benchmarks: descend against the fastest implementation of each algorithm.

    python benchmarks/bench.py [--quick] [--sizes SMALL,MANY,LARGE] [--algorithms adam,...]
                               [--threads 1] [--no-fresh] [--out benchmarks/results.json]

Every comparison is interleaved (see `harness.py`): descend's default backend (`auto`) and
each other implementation of the same algorithm (torch.optim's for-loop, foreach and fused
variants, a reference package, or a hand-written foreach version) run in the same rounds in
random order; ratios are medians of per-round ratios of thread CPU time, with wall-time
ratios beside them. Also measured: the share of the measured memory bandwidth each
implementation reaches, descend's Python time per step, a whole MLP training step, and, in
fresh processes, the time to the first step and the first 100 LARGE steps and the resident
memory. Writes benchmarks/results.json and regenerates docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch
from contenders import ALGORITHMS, BY_NAME, SHAPES, clone, make_params
from harness import interleave, summary

import descend

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = {"SMALL": (60, 20), "MANY": (30, 2), "LARGE": (15, 1),  # rounds, steps per round
          "TRANSFORMER": (10, 1)}
# TRANSFORMER: the matrix rules (Muon, SOAP, Adafactor) must be no slower than torch's or
# the reference package's implementation.
TARGETS = {"SMALL": 0.5, "MANY": 0.2, "LARGE": 0.95, "TRANSFORMER": 1.0}


def log(message: str) -> None:
    print(message, flush=True)


def bandwidth(numel: int = 50_000_000) -> float:
    """GB/s of the in-place ``a += s * b`` (reads a and b, writes a: 12 bytes/element)."""
    a, b = torch.randn(numel), torch.randn(numel)
    t = interleave({"axpy": lambda: a.add_(b, alpha=1e-3)}, rounds=9, warmup=2)
    return 12 * numel / t.median("axpy", "wall") / 1e9


def step_ratios(size: str, algorithms: list, gbps: float, quick: bool) -> list[dict]:
    rounds, inner = ROUNDS[size]
    if quick:
        rounds = max(5, rounds // 5)
    rows = []
    for algo in algorithms:
        shapes = algo.shapes(size)
        if not shapes:
            continue
        base = make_params(shapes)
        numel = sum(p.numel() for p in base)
        opts = {"descend-auto": algo.descend(clone(base), "auto")}
        opts.update({name: make(clone(base)) for name, make in algo.others.items()})
        t = interleave({name: opt.step for name, opt in opts.items()}, rounds, inner)
        others = [n for n in opts if n != "descend-auto"]
        fastest = min(others, key=t.median)
        row = {"size": size, "algorithm": algo.name, "note": algo.note, "numel": numel,
               "fastest": fastest, "ms": {n: 1e3 * t.median(n) for n in opts},
               "ratio_cpu": t.ratio("descend-auto", fastest),
               "ratio_wall": t.ratio("descend-auto", fastest, "wall"),
               "bandwidth_pct": {n: 100 * algo.bytes_per_param() * numel / t.median(n, "wall")
                                 / 1e9 / gbps for n in ("descend-auto", fastest)},
               "target": TARGETS[size]}
        if "torch-fused" in opts and fastest != "torch-fused":
            row["ratio_fused_cpu"] = t.ratio("descend-auto", "torch-fused")
        rows.append(row)
        r = row["ratio_cpu"]
        log(f"  {size:<5} {algo.name:<19} descend {row['ms']['descend-auto']:9.3f} ms   "
            f"{fastest:<18} {row['ms'][fastest]:9.3f} ms   x{r['median']:.2f} "
            f"({r['q1']:.2f}-{r['q3']:.2f})")
        del opts
        gc.collect()
    return rows


def python_overhead(quick: bool) -> list[dict]:
    """descend's time per step above the kernel it calls: `opt.step()` on the torch-kernel
    route (backend="fused", so that both sides call the same kernel) against that kernel
    called directly on the same lists, for 1 to 1000 tiny parameters."""
    rows = []
    for n in (1, 10, 100, 1000):
        params = make_params([(1,)] * n)
        opt = descend.SGD(params, lr=1e-3, momentum=0.9, backend="fused")
        opt.step()
        grads = [p.grad for p in params]
        bufs = [opt.state[p]["momentum_buffer"] for p in params]
        detached = [p.detach() for p in params]

        def kernel(detached=detached, grads=grads, bufs=bufs):
            torch._fused_sgd_(detached, grads, bufs, weight_decay=0.0, momentum=0.9,
                              lr=1e-3, dampening=0.0, nesterov=False, maximize=False,
                              is_first_step=False)

        torch_opt = torch.optim.SGD(clone(params), lr=1e-3, momentum=0.9, fused=True)
        t = interleave({"descend": opt.step, "kernel": kernel, "torch-fused": torch_opt.step},
                       rounds=10 if quick else 40, inner=50 if n < 1000 else 5)
        extra = [1e6 * (a - b) for a, b in zip(t.cpu["descend"], t.cpu["kernel"])]
        torch_extra = [1e6 * (a - b) for a, b in zip(t.cpu["torch-fused"], t.cpu["kernel"])]
        rows.append({"tensors": n, "descend_us": summary(extra),
                     "torch_fused_us": summary(torch_extra),
                     "kernel_us": 1e6 * t.median("kernel")})
        log(f"  python per step, {n:>4} tensors: descend {rows[-1]['descend_us']['median']:7.1f}"
            f" us, torch fused {rows[-1]['torch_fused_us']['median']:7.1f} us above the kernel")
    return rows


def mlp_training_step(quick: bool) -> dict:
    """Forward + backward + Adam step of the 784-128-10 MLP at batch 64."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 784, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    steps = {}
    for name, make in {"descend-auto": lambda p: descend.Adam(p, lr=1e-3),
                       "torch-fused": lambda p: torch.optim.Adam(p, lr=1e-3, fused=True),
                       "torch-foreach": lambda p: torch.optim.Adam(p, lr=1e-3, foreach=True)
                       }.items():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 10))
        opt = make(model.parameters())

        def step(model=model, opt=opt):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        steps[name] = step
    t = interleave(steps, rounds=10 if quick else 40, inner=20)
    row = {"ms": {n: 1e3 * t.median(n) for n in steps},
           "ratio_cpu": t.ratio("descend-auto", "torch-fused"),
           "ratio_wall": t.ratio("descend-auto", "torch-fused", "wall"), "target": 0.85}
    log(f"  MLP training step: descend {row['ms']['descend-auto']:.3f} ms, torch fused "
        f"{row['ms']['torch-fused']:.3f} ms, x{row['ratio_cpu']['median']:.2f}")
    return row


def low_precision(gbps: float, quick: bool) -> list[dict]:
    """LARGE AdamW with its state (and parameters) below float32, against torch's fused
    float32 AdamW, and the 8-bit AdamW of torchao and bitsandbytes where they are installed.
    `bytes` is what one step must move per parameter (read and write of parameter and
    state, read of the gradient), `floor` the share of the measured bandwidth it reaches."""
    base = make_params(SHAPES["LARGE"])

    def bf16(params):
        out = []
        for p in params:
            q = p.detach().to(torch.bfloat16).requires_grad_()
            q.grad = p.grad.to(torch.bfloat16)
            out.append(q)
        return out

    scales = 2 * 2 * 4 / 256  # two moments' block scales, read and written
    contenders = {
        "torch fused, float32": (lambda: torch.optim.AdamW(clone(base), lr=1e-3, fused=True),
                                 28),
        "descend, float32": (lambda: descend.AdamW(clone(base), lr=1e-3), 28),
        "descend, bfloat16 state": (
            lambda: descend.AdamW(clone(base), lr=1e-3, state_dtype="bfloat16"), 20),
        "descend, int8 state": (
            lambda: descend.AdamW(clone(base), lr=1e-3, state_dtype="int8"), 16 + scales),
        "descend, bfloat16 parameters + int8 state": (
            lambda: descend.AdamW(bf16(base), lr=1e-3, state_dtype="int8",
                                  stochastic_rounding=True), 10 + scales),
    }
    try:
        from torchao.optim import AdamW8bit as TorchaoAdamW8bit
        contenders["torchao AdamW8bit"] = (lambda: TorchaoAdamW8bit(clone(base), lr=1e-3),
                                           16 + scales)
    except Exception as e:  # noqa: BLE001 - any failure means "does not run here"
        log(f"  torchao's AdamW8bit does not run here: {type(e).__name__}: {e}")
    try:
        import bitsandbytes as bnb
        contenders["bitsandbytes AdamW8bit"] = (lambda: bnb.optim.AdamW8bit(clone(base),
                                                                             lr=1e-3),
                                                16 + scales)
    except Exception as e:  # noqa: BLE001
        log(f"  bitsandbytes' AdamW8bit does not run here: {type(e).__name__}: {e}")
    opts = {name: make() for name, (make, _) in contenders.items()}
    t = interleave({name: opt.step for name, opt in opts.items()},
                   rounds=3 if quick else 10, inner=1)
    rows = []
    for name, (_, nbytes) in contenders.items():
        opt = opts[name]
        state = sum(v.numel() * v.element_size() for s in opt.state.values()
                    for v in (s.values() if isinstance(s, dict) else ())
                    if torch.is_tensor(v) and v.dim() > 0)
        numel = sum(p.numel() for p in base)
        seconds = t.median(name, "wall")
        rows.append({"name": name, "ms": 1e3 * t.median(name), "bytes": nbytes,
                     "state_bytes": state / numel,
                     "ratio_cpu": t.ratio(name, "torch fused, float32"),
                     "floor_pct": 100 * nbytes * numel / seconds / 1e9 / gbps})
        log(f"  low precision: {name:<44} {rows[-1]['ms']:8.1f} ms  "
            f"x{rows[-1]['ratio_cpu']['median']:.2f}  {rows[-1]['floor_pct']:.0f}% of the "
            f"floor for {nbytes:.1f} B/param, state {rows[-1]['state_bytes']:.2f} B/param")
    del opts
    gc.collect()
    return rows


# -- fresh processes: first steps and resident memory ------------------------------------

FRESH = [("adam", "descend-auto"), ("adam", "torch-fused"),
         ("rmsprop", "descend-auto"), ("rmsprop", "torch-forloop"),
         ("lion", "descend-auto"), ("lion", "hand-foreach")]


def fresh_child(algorithm: str, impl: str, steps: int) -> dict:
    """Run in a fresh process: LARGE parameters, `steps` steps, each timed; memory in MB."""
    torch.set_num_threads(1)
    algo = BY_NAME[algorithm]
    params = make_params(SHAPES["LARGE"])
    rss_params = _rss_mb()
    opt = algo.descend(params, "auto") if impl == "descend-auto" else algo.others[impl](params)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        opt.step()
        times.append(time.perf_counter() - t0)
    return {"first_step_s": times[0], "first_100_s": sum(times[:100]),
            "longest_step_s": max(times), "steady_rss_mb": _rss_mb(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "params_rss_mb": rss_params}


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def fresh_runs(repeats: int) -> list[dict]:
    results: dict[tuple, list[dict]] = {key: [] for key in FRESH}
    for r in range(repeats):
        for key in (FRESH if r % 2 == 0 else FRESH[::-1]):
            out = subprocess.run([sys.executable, __file__, "--fresh-child", *key],
                                 capture_output=True, text=True, check=True)
            results[key].append(json.loads(out.stdout.strip().splitlines()[-1]))
    rows = []
    for (algorithm, impl), runs in results.items():
        row = {"algorithm": algorithm, "impl": impl}
        for field in runs[0]:
            row[field] = sorted(run[field] for run in runs)[len(runs) // 2]
        rows.append(row)
        log(f"  fresh {algorithm:<8} {impl:<14} first step {row['first_step_s']:.3f} s, "
            f"100 steps {row['first_100_s']:.2f} s, steady RSS {row['steady_rss_mb']:.0f} MB")
    return rows


def _load() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="few rounds (a smoke run)")
    parser.add_argument("--sizes", default=",".join(ROUNDS), help="parameter sets to run")
    parser.add_argument("--algorithms", default="", help="comma-separated (default: all)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--no-fresh", action="store_true",
                        help="skip the fresh-process first-step and memory runs")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--fresh-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fresh_child:
        print(json.dumps(fresh_child(*args.fresh_child, steps=100)))
        return
    torch.set_num_threads(args.threads)
    names = [n for n in args.algorithms.split(",") if n]
    algorithms = [BY_NAME[n] for n in names] if names else ALGORITHMS
    gbps = bandwidth()
    log(f"in-place bandwidth, {args.threads} thread(s): {gbps:.1f} GB/s")
    result = {"command": "make bench" + (" (quick)" if args.quick else ""),
              "torch": torch.__version__, "python": platform.python_version(),
              "machine": platform.processor() or platform.machine(),
              "threads": args.threads, "bandwidth_gbps": gbps, "quick": args.quick,
              "load_before": _load(), "steps": []}
    for size in args.sizes.split(","):
        result["steps"] += step_ratios(size, algorithms, gbps, args.quick)
    if "LARGE" in args.sizes.split(",") and not names:
        result["low_precision"] = low_precision(gbps, args.quick)
    result["python_per_step"] = python_overhead(args.quick)
    result["mlp"] = mlp_training_step(args.quick)
    if not args.no_fresh:
        result["fresh"] = fresh_runs(1 if args.quick else 3)
    result["load_after"] = _load()
    Path(args.out).write_text(json.dumps(result, indent=1))
    log(f"wrote {args.out}")
    from report import update_readme, write_markdown

    # Only a full run speaks for the project; a partial or quick one writes beside --out.
    full = not args.quick and set(args.sizes.split(",")) == set(ROUNDS) and not names
    target = ROOT / "docs" / "performance.md" if full else Path(args.out).with_suffix(".md")
    write_markdown(result, target)
    log(f"wrote {target}")
    if full:
        update_readme(result, ROOT / "README.md")
        log("updated the README's table")


if __name__ == "__main__":
    main()
