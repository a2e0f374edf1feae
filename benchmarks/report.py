"""Turn a benchmark JSON (benchmarks/bench.py) into docs/performance.md."""

from __future__ import annotations

import json
import sys
from pathlib import Path

PRECISION_DOC = Path(__file__).resolve().parents[1] / "docs" / "precision.md"


def _ratio(r: dict) -> str:
    return f"{r['median']:.2f} ({r['q1']:.2f}–{r['q3']:.2f})"


def _ms(x: float) -> str:
    return f"{x:.3g}"


def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    """A markdown table's lines."""
    return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
            *("| " + " | ".join(row) + " |" for row in rows)]


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# Performance", "",
        f"Made by `{result['command']}` (`benchmarks/bench.py`) with torch {result['torch']}, "
        f"Python {result['python']} on this project's 2-core CPU machine ({result['machine']}), "
        f"{result['threads']} torch thread(s). Load average before and after the run: "
        f"{' '.join(result['load_before'])} / {' '.join(result['load_after'])}.", "",
        "**Method.** Every comparison is interleaved: descend's default backend (`auto`) and "
        "every other implementation of the same algorithm run in the same rounds, in a "
        "random order each round; a ratio is the median over rounds of the per-round ratio "
        "of thread CPU time (interquartile range in brackets), with the same for wall time "
        "beside it. \"Fastest other\" is the fastest of torch.optim's for-loop, foreach and "
        "fused variants of the same algorithm, a reference package where one is installed, "
        "or a hand-written foreach version where nothing else exists. % bandwidth is the "
        "share of the measured in-place `a += s*b` rate "
        f"({result['bandwidth_gbps']:.1f} GB/s) that the algorithm's minimal traffic "
        "(parameter and state read and written, gradient read) reaches.", ""]
    for size in ("SMALL", "MANY", "LARGE", "TRANSFORMER"):
        rows = [r for r in result["steps"] if r["size"] == size]
        if not rows:
            continue
        lines += [f"## {size}: {max(r['numel'] for r in rows):,} parameters", "",
                  f"Target: descend ≤ {rows[0]['target']}× the fastest other implementation.",
                  ""]
        lines += _table(
            ["algorithm", "descend ms", "fastest other", "its ms", "× CPU", "× wall", "met",
             "% bandwidth (descend / other)"],
            [[r["algorithm"], _ms(r["ms"]["descend-auto"]), r["fastest"],
              _ms(r["ms"][r["fastest"]]), _ratio(r["ratio_cpu"]), _ratio(r["ratio_wall"]),
              "yes" if r["ratio_cpu"]["median"] <= r["target"] else "no",
              f"{r['bandwidth_pct']['descend-auto']:.0f}% / "
              f"{r['bandwidth_pct'][r['fastest']]:.0f}%"] for r in rows])
        notes = [f"- {r['algorithm']}: {r['note']}" for r in rows if r.get("note")]
        lines += ["", *notes, ""] if notes else [""]
    low = result.get("low_precision")
    if low:
        lines += ["## Optimizer state below float32, LARGE AdamW", "",
                  "Step time against torch's fused float32 AdamW (CPU-time ratio, "
                  "interleaved), the bytes a step must move per parameter, the share of the "
                  "measured bandwidth that reaches (100% = at the floor for those bytes), and "
                  "the optimizer state kept per parameter. Targets: int8 state ≤ 0.6× and "
                  "within 10% of its floor; bfloat16 parameters + int8 state ≤ 0.45×; state "
                  "≤ 2.1 B/param (int8), ≤ 4.1 (bfloat16).", ""]
        lines += _table(["implementation", "ms", "× torch fused fp32", "B/param moved",
                         "% of floor", "state B/param"],
                        [[r["name"], _ms(r["ms"]), _ratio(r["ratio_cpu"]), f"{r['bytes']:.1f}",
                          f"{r['floor_pct']:.0f}%", f"{r['state_bytes']:.2f}"] for r in low])
        lines.append("")
        accuracy = between(PRECISION_DOC, "accuracy")
        if accuracy:
            lines += ["Accuracy of training with that state, from "
                      "[precision.md](precision.md) (where it is explained):", "",
                      accuracy.strip(), ""]
    py = result.get("python_per_step")
    if isinstance(py, list):
        lines += ["## Python time per step", "",
                  "`opt.step()` of SGD with momentum on N one-element parameters in one group, "
                  "minus the same torch fused kernel called directly on the same lists "
                  "(µs, CPU). Target: descend ≤ 15 µs for a one-group optimizer.", ""]
        lines += _table(["tensors", "descend above the kernel", "torch fused above the kernel",
                         "kernel"],
                        [[str(r["tensors"]), _ratio(r["descend_us"]), _ratio(r["torch_fused_us"]),
                          f"{r['kernel_us']:.1f}"] for r in py])
        lines.append("")
    mlp = result.get("mlp")
    if mlp:
        lines += ["## MLP 784-128-10 training step (forward + backward + Adam step), batch 64",
                  ""]
        lines += _table(["implementation", "ms"], [[n, _ms(ms)] for n, ms in mlp["ms"].items()])
        lines += ["", f"descend / torch fused: {_ratio(mlp['ratio_cpu'])} CPU, "
                  f"{_ratio(mlp['ratio_wall'])} wall (target ≤ {mlp['target']}).", ""]
    fresh = result.get("fresh")
    if fresh:
        lines += ["## Fresh processes, LARGE", "",
                  "Median of runs in fresh processes (alternating order): the first step, "
                  "the first 100 steps and the longest single step (seconds, wall), and "
                  "resident memory (MB) after the parameters and gradients exist, after 100 "
                  "steps (steady), what the optimizer added (steady minus the first), and the "
                  "peak.", ""]
        lines += _table(["algorithm", "implementation", "first step", "first 100",
                         "longest step", "RSS params", "steady RSS", "added", "peak RSS"],
                        [[r["algorithm"], r["impl"], f"{r['first_step_s']:.3f}",
                          f"{r['first_100_s']:.2f}", f"{r['longest_step_s']:.3f}",
                          f"{r['params_rss_mb']:.0f}", f"{r['steady_rss_mb']:.0f}",
                          f"{r['steady_rss_mb'] - r['params_rss_mb']:.0f}",
                          f"{r['peak_rss_mb']:.0f}"] for r in fresh])
        lines.append("")
    path.write_text("\n".join(lines))


def readme_table(result: dict) -> str:
    """The README's summary: descend's CPU-time ratio per algorithm and size."""
    targets = {r["size"]: r["target"] for r in result["steps"]}
    sizes = [s for s in ("SMALL", "MANY", "LARGE", "TRANSFORMER") if s in targets]
    algorithms = list(dict.fromkeys(r["algorithm"] for r in result["steps"]))
    by = {(r["size"], r["algorithm"]): r for r in result["steps"]}
    lines = ["| algorithm | " + " | ".join(f"{s} (×{targets[s]})" for s in sizes) +
             " | compared with |",
             "|---|" + "---|" * len(sizes) + "---|"]
    for a in algorithms:
        cells = []
        for s in sizes:
            r = by.get((s, a))
            cells.append("—" if r is None else f"{r['ratio_cpu']['median']:.2f}")
        fastest = sorted({by[s, a]["fastest"] for s in sizes if (s, a) in by})
        lines.append(f"| {a} | " + " | ".join(cells) + f" | {', '.join(fastest)} |")
    mlp = result.get("mlp")
    if mlp:
        lines += ["", f"MLP 784-128-10 training step (forward, backward, Adam step) at batch "
                  f"64: {mlp['ratio_cpu']['median']:.2f}× torch's fused Adam."]
    return "\n".join(lines)


def between(path: Path, marker: str) -> str:
    """The text between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in `path`
    ("" when the file or the markers are missing)."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        return ""
    return text.split(start, 1)[1].split(end, 1)[0]


def replace_between(path: Path, marker: str, block: str) -> None:
    """Put `block` between ``<!-- marker:start -->`` and ``<!-- marker:end -->`` in `path`."""
    start, end = f"<!-- {marker}:start -->", f"<!-- {marker}:end -->"
    head, rest = path.read_text().split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{block}{end}{tail}")


def update_readme(result: dict, path: Path) -> None:
    """Replace the text between the README's bench markers with `readme_table`."""
    replace_between(path, "bench", readme_table(result) + "\n")


if __name__ == "__main__":
    write_markdown(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
