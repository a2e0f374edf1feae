"""Optimizer-step benchmarks: descend's backends against torch.optim, in one run.

    python benchmarks/bench.py [--quick] [--out benchmarks/results.json]

Reports medians over repeats (with the interquartile range), ratios to the fastest
torch.optim implementation of the same or nearest algorithm, and the share of a measured
in-place bandwidth (STREAM-like ``a += s * b``) that each elementwise rule reaches, counting
the minimal traffic of the rule: parameter and state read and written, gradient read.
Writes JSON and regenerates docs/performance.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

import descend

ROOT = Path(__file__).resolve().parents[1]

SHAPES = {
    "SMALL": [(128, 784), (128,), (10, 128), (10,)],          # MLP 784-128-10
    "MANY": [(1024,)] * 1000,                                  # 1000 tensors of 1K
    "LARGE": [(1000, 500)] * 100,                              # 50M in 100 tensors
}

T = torch.optim
# name -> (descend factory, number of state tensors, torch baseline key)
DESCEND: dict[str, tuple[Callable, int, str]] = {
    "sgd-momentum": (lambda p, b: descend.SGD(p, lr=1e-3, momentum=0.9, backend=b), 1,
                     "sgd-momentum"),
    "nesterov": (lambda p, b: descend.Nesterov(p, lr=1e-3, backend=b), 1, "nesterov"),
    "momentum-ema": (lambda p, b: descend.Momentum(p, lr=1e-3, backend=b), 1, "sgd-momentum"),
    "adagrad": (lambda p, b: descend.Adagrad(p, lr=1e-3, backend=b), 1, "adagrad"),
    "rmsprop": (lambda p, b: descend.RMSprop(p, lr=1e-3, backend=b), 1, "rmsprop"),
    "rmsprop-centered": (lambda p, b: descend.RMSprop(p, lr=1e-3, centered=True, backend=b), 2,
                         "rmsprop-centered"),
    "rmsprop-eps-inside": (lambda p, b: descend.RMSprop(p, lr=1e-3, eps_inside_sqrt=True,
                                                        backend=b), 1, "rmsprop"),
    "adam": (lambda p, b: descend.Adam(p, lr=1e-3, backend=b), 2, "adam"),
    "adamw": (lambda p, b: descend.AdamW(p, lr=1e-3, backend=b), 2, "adamw"),
    "amsgrad": (lambda p, b: descend.Adam(p, lr=1e-3, amsgrad=True, backend=b), 3, "amsgrad"),
    "lion": (lambda p, b: descend.Lion(p, lr=1e-4, backend=b), 1, "sgd-momentum"),
}
TORCH: dict[str, tuple[Callable, tuple[str, ...]]] = {
    "sgd-momentum": (lambda p, **k: T.SGD(p, lr=1e-3, momentum=0.9, **k),
                     ("forloop", "foreach", "fused")),
    "nesterov": (lambda p, **k: T.SGD(p, lr=1e-3, momentum=0.9, nesterov=True, **k),
                 ("forloop", "foreach", "fused")),
    "adagrad": (lambda p, **k: T.Adagrad(p, lr=1e-3, **k), ("forloop", "foreach", "fused")),
    "rmsprop": (lambda p, **k: T.RMSprop(p, lr=1e-3, **k), ("forloop", "foreach")),
    "rmsprop-centered": (lambda p, **k: T.RMSprop(p, lr=1e-3, centered=True, **k),
                         ("forloop", "foreach")),
    "adam": (lambda p, **k: T.Adam(p, lr=1e-3, **k), ("forloop", "foreach", "fused")),
    "adamw": (lambda p, **k: T.AdamW(p, lr=1e-3, **k), ("forloop", "foreach", "fused")),
    "amsgrad": (lambda p, **k: T.Adam(p, lr=1e-3, amsgrad=True, **k),
                ("forloop", "foreach", "fused")),
}
BACKENDS = ("reference", "foreach", "flat", "compiled")
IMPL_KWARGS = {"forloop": {"foreach": False}, "foreach": {"foreach": True},
               "fused": {"fused": True}}


def make_params(shapes: list[tuple[int, ...]]) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = []
    for s in shapes:
        p = torch.randn(s, generator=gen).requires_grad_()
        p.grad = torch.randn(s, generator=gen) * 1e-2
        params.append(p)
    return params


def clone(params: list[torch.Tensor]) -> list[torch.Tensor]:
    out = []
    for p in params:
        q = p.detach().clone().requires_grad_()
        q.grad = p.grad.clone()
        out.append(q)
    return out


def time_steps(step: Callable[[], None], reps: int, warmup: int) -> dict[str, float]:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    q = statistics.quantiles(times, n=4) if len(times) > 1 else [times[0]] * 3
    return {"median_ms": 1e3 * statistics.median(times), "q1_ms": 1e3 * q[0],
            "q3_ms": 1e3 * q[2]}


def bandwidth(n: int, reps: int) -> float:
    """GB/s of the in-place ``a += s * b`` (reads a and b, writes a: 12 bytes/element)."""
    a, b = torch.randn(n), torch.randn(n)
    t = time_steps(lambda: a.add_(b, alpha=1e-3), reps, 2)
    return 12 * n / (t["median_ms"] / 1e3) / 1e9


def release(opt: torch.optim.Optimizer) -> None:
    """Free a descend optimizer's buffers now: remove its gradient hooks and drop compiled
    graphs (which keep their example inputs alive). On LARGE, keeping them across the
    44 configurations exhausted the machine's memory. Compiled kernels stay in inductor's
    on-disk cache, so recompiling later is cheap."""
    backend = opt._backend
    for sub in (backend, getattr(backend, "flat", None), getattr(backend, "compiled", None)):
        if sub is not None and hasattr(sub, "close"):
            sub.close()
    torch._dynamo.reset()
    gc.collect()


def bench_shape(name: str, shapes: list, reps: int, warmup: int,
                only: set[str] | None) -> list[dict]:
    base = make_params(shapes)
    numel = sum(p.numel() for p in base)
    rows = []
    for key, (factory, n_state, _) in DESCEND.items():
        if only and key not in only:
            continue
        for backend in BACKENDS:
            params = clone(base)
            opt = factory(params, backend)
            first = time.perf_counter()
            opt.step()
            first = time.perf_counter() - first
            row = {"shape": name, "optimizer": key, "impl": f"descend-{backend}",
                   "numel": numel, "tensors": len(shapes),
                   "bytes_per_param": 4 * (2 * (1 + n_state) + 1),
                   **time_steps(opt.step, reps, warmup)}
            if backend == "compiled":
                row["first_step_s"] = first
            rows.append(row)
            release(opt)
            del opt, params
    for key, (factory, impls) in TORCH.items():
        if only and key not in only and not any(DESCEND[d][2] == key for d in only):
            continue
        for impl in impls:
            params = clone(base)
            opt = factory(params, **IMPL_KWARGS[impl])
            rows.append({"shape": name, "optimizer": key, "impl": f"torch-{impl}",
                         "numel": numel, "tensors": len(shapes),
                         **time_steps(opt.step, reps, warmup)})
            del opt, params
            gc.collect()
    return rows


def mlp_training_step(reps: int) -> list[dict]:
    """Forward + backward + step of the 784-128-10 MLP at batch 64."""
    gen = torch.Generator().manual_seed(0)
    x, y = torch.randn(64, 784, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    rows = []
    impls = {"torch-fused": lambda p: T.Adam(p, lr=1e-3, fused=True),
             "torch-foreach": lambda p: T.Adam(p, lr=1e-3, foreach=True),
             "descend-flat": lambda p: descend.Adam(p, lr=1e-3, backend="flat"),
             "descend-compiled": lambda p: descend.Adam(p, lr=1e-3, backend="compiled")}
    for impl, make in impls.items():
        torch.manual_seed(0)
        model = torch.nn.Sequential(torch.nn.Linear(784, 128), torch.nn.ReLU(),
                                    torch.nn.Linear(128, 10))
        opt = make(model.parameters())

        def step(model: torch.nn.Module = model, opt: torch.optim.Optimizer = opt) -> None:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

        rows.append({"shape": "MLP-train-step", "optimizer": "adam", "impl": impl,
                     **time_steps(step, reps, 20)})
    return rows


def summarise(rows: list[dict], gbps: dict[int, float]) -> list[dict]:
    """Per (threads, shape, descend optimizer, backend): ratio to the fastest torch
    implementation of the baseline algorithm, and % of the measured bandwidth."""
    out = []
    for r in rows:
        if not r["impl"].startswith("descend") or r["shape"] == "MLP-train-step":
            continue
        base = DESCEND[r["optimizer"]][2]
        torch_rows = [t for t in rows if t["impl"].startswith("torch")
                      and t["optimizer"] == base and t["shape"] == r["shape"]
                      and t["threads"] == r["threads"]]
        fastest = min(torch_rows, key=lambda t: t["median_ms"])
        fused = next((t for t in torch_rows if t["impl"] == "torch-fused"), None)
        seconds = r["median_ms"] / 1e3
        out.append({**r, "baseline": base, "fastest_torch": fastest["impl"],
                    "ratio_fastest": r["median_ms"] / fastest["median_ms"],
                    "ratio_fused": r["median_ms"] / fused["median_ms"] if fused else None,
                    "bandwidth_pct": 100 * r["bytes_per_param"] * r["numel"] / seconds / 1e9
                    / gbps[r["threads"]]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats (a smoke run)")
    parser.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    parser.add_argument("--shapes", default="SMALL,MANY,LARGE", help="shapes to run")
    parser.add_argument("--only", default="", help="comma-separated descend optimizers")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results.json"))
    parser.add_argument("--no-docs", action="store_true", help="leave docs/performance.md")
    args = parser.parse_args()
    reps = {"SMALL": 200, "MANY": 50, "LARGE": 9}
    if args.quick:
        reps = {k: max(3, v // 10) for k, v in reps.items()}
    only = set(filter(None, args.only.split(","))) or None
    rows, gbps = [], {}
    for threads in map(int, args.threads.split(",")):
        torch.set_num_threads(threads)
        gbps[threads] = bandwidth(64 * 2**20, 7)
        print(f"[{threads} thread(s)] in-place bandwidth {gbps[threads]:.1f} GB/s", flush=True)
        for shape in args.shapes.split(","):
            for row in bench_shape(shape, SHAPES[shape], reps[shape], 2, only):
                row["threads"] = threads
                rows.append(row)
                print(f"  {shape:<6} {row['optimizer']:<19} {row['impl']:<17} "
                      f"{row['median_ms']:9.3f} ms", flush=True)
        if not args.quick or threads == 1:
            for row in mlp_training_step(100 if args.quick else 500):
                row["threads"] = threads
                rows.append(row)
                print(f"  MLP step {row['impl']:<17} {row['median_ms']:.3f} ms", flush=True)
    result = {"torch": torch.__version__, "machine": platform.processor() or platform.machine(),
              "cpus": torch.get_num_threads(), "bandwidth_gbps": gbps, "rows": rows,
              "summary": summarise(rows, gbps), "quick": args.quick,
              "command": "make bench"}
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    from report import write_markdown

    target = ROOT / "docs" / "performance.md" if not args.no_docs else Path(args.out + ".md")
    write_markdown(result, target)
    print(target.read_text())
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
