"""Turn a benchmark JSON into docs/performance.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _cell(ms: float, q1: float, q3: float) -> str:
    return f"{ms:.3g} ({q1:.3g}–{q3:.3g})"


def write_markdown(result: dict, path: Path) -> None:
    lines = ["# Performance", "",
             f"Made by `{result['command']}` (`benchmarks/bench.py`) with torch "
             f"{result['torch']} on this project's 2-core CPU machine"
             + (" (quick run: few repeats)" if result.get("quick") else "") + ".",
             "Times are medians of `optimizer.step()` in ms, with the interquartile range; "
             "ratios compare with the fastest torch.optim implementation (for-loop, foreach "
             "or fused) of the same or nearest algorithm, measured in the same run. "
             "Bandwidth is the share of the measured in-place `a += s*b` rate that the "
             "rule's minimal traffic (parameter and state read and written, gradient read) "
             "reaches.", ""]
    for threads, gbps in result["bandwidth_gbps"].items():
        lines.append(f"- in-place bandwidth, {threads} thread(s): {gbps:.1f} GB/s")
    lines.append("")
    summary = result["summary"]
    for threads in sorted({r["threads"] for r in summary}):
        for shape in ("LARGE", "MANY", "SMALL"):
            rows = [r for r in summary if r["threads"] == threads and r["shape"] == shape]
            if not rows:
                continue
            lines += [f"## {shape}, {threads} thread(s)", "",
                      "| optimizer | backend | ms (IQR) | fastest torch | × fastest torch | "
                      "× torch fused | % bandwidth |", "|---|---|---|---|---|---|---|"]
            for r in rows:
                torch_row = next(t for t in result["rows"] if t["impl"] == r["fastest_torch"]
                                 and t["optimizer"] == r["baseline"]
                                 and t["shape"] == shape and t["threads"] == threads)
                fused = "—" if r["ratio_fused"] is None else f"{r['ratio_fused']:.2f}"
                lines.append(
                    f"| {r['optimizer']} | {r['impl'].removeprefix('descend-')} | "
                    f"{_cell(r['median_ms'], r['q1_ms'], r['q3_ms'])} | "
                    f"{r['fastest_torch'].removeprefix('torch-')} ({r['baseline']}) "
                    f"{torch_row['median_ms']:.3g} | {r['ratio_fastest']:.2f} | {fused} | "
                    f"{r['bandwidth_pct']:.0f}% |")
            lines.append("")
    mlp = [r for r in result["rows"] if r["shape"] == "MLP-train-step"]
    if mlp:
        lines += ["## MLP 784-128-10 training step (forward + backward + Adam step), batch 64",
                  "", "| threads | implementation | ms (IQR) | × torch fused |",
                  "|---|---|---|---|"]
        for threads in sorted({r["threads"] for r in mlp}):
            rows = [r for r in mlp if r["threads"] == threads]
            fused = next(r for r in rows if r["impl"] == "torch-fused")["median_ms"]
            for r in rows:
                lines.append(f"| {threads} | {r['impl']} | "
                             f"{_cell(r['median_ms'], r['q1_ms'], r['q3_ms'])} | "
                             f"{r['median_ms'] / fused:.2f} |")
        lines.append("")
    compiles = [r for r in result["rows"] if "first_step_s" in r and r["threads"] == 1]
    if compiles:
        lines += ["## First compiled step (compile time included), 1 thread", "",
                  "| optimizer | shape | seconds |", "|---|---|---|"]
        lines += [f"| {r['optimizer']} | {r['shape']} | {r['first_step_s']:.1f} |"
                  for r in compiles]
        lines.append("")
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    write_markdown(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
