"""Accuracy with optimizer state below float32: `descend compare` runs, state in float32,
bfloat16 and 8-bit codes, several seeds; writes the table into docs/precision.md and the
README.

    python benchmarks/precision_accuracy.py [--tasks mnist1d-cnn,...] [--seeds 3]

Besides the policy's int8 (tensors of at least 4096 elements and two dimensions in 8-bit
codes, the others in float32, as bitsandbytes does), an experiment row puts every tensor's
moments in 8-bit codes, to show what the policy protects. Rows whose mean differs from
float32's by less than the combined seed spread are marked "within seed noise".
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

from report import replace_between, write_markdown

from descend.backends import precision
from descend.lab.compare import compare
from descend.lab.registry import canonical_optimizer
from descend.lab.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {"float32": "", "bfloat16": ":state_dtype=bfloat16",
            "bfloat16, rounded to nearest": ":state_dtype=bfloat16:stochastic_rounding=false",
            "int8": ":state_dtype=int8"}
# Each task's float32 baseline and its compare options. The transformer runs AdamW at about
# the lr its tuned reference runs chose (src/descend/lab/targets.json) under warmup-cosine,
# for 1000 steps (the task's default size; its suite budget there is 2500).
BASE: dict[str, tuple[str, dict]] = {
    "mnist1d-cnn": ("adamw:lr=0.01", {}),
    "mnist1d-mlp": ("adamw:lr=0.01", {}),
    "pydoc-gpt": ("adamw:lr=0.008", {"steps": 1000, "schedules": ("warmup-cosine",)}),
}


def run(task: str, base: str, options: dict, seeds: int, out: Path,
        everywhere: bool) -> dict[str, tuple]:
    optimizers = [base + suffix for suffix in VARIANTS.values()]
    policy = precision.quantizable
    if everywhere:  # the experiment: no tensor kept in float32 by size or shape
        optimizers = [base + VARIANTS["int8"]]
        precision.quantizable = lambda param: True
    try:
        result = compare(task, optimizers, seeds=list(range(seeds)), out=out, progress=False,
                         **options)
    finally:
        precision.quantizable = policy
    rows = {row.optimizer: row for row in result.comparison.rows}  # ranked, not in order
    return {spec: (rows[canonical_optimizer(spec)].final_mean,
                   rows[canonical_optimizer(spec)].final_std,
                   rows[canonical_optimizer(spec)].state_bytes_per_param)
            for spec in optimizers}


def table(results: dict) -> str:
    lines = ["| task | state | final test metric (mean ± sd) | state B/param | vs float32 |",
             "|---|---|---|---|---|"]
    for task, rows in results.items():
        accuracy = get_task(task).classification
        # Accuracy in percent (higher is better), a loss in nats per byte (lower is better).
        show = (lambda v: f"{v:.2%}") if accuracy else (lambda v: f"{v:.4f}")
        ref = rows["float32"]
        for name, (mean, sd, nbytes) in rows.items():
            if name == "float32":
                verdict = "—"
            else:
                noise = math.hypot(sd, ref[1])
                diff = f"{mean - ref[0]:+.2%}" if accuracy else f"{mean - ref[0]:+.4f}"
                verdict = ("within seed noise" if abs(mean - ref[0]) <= noise else
                           f"{diff} (noise {show(noise)})")
            metric = "accuracy" if accuracy else "loss"
            lines.append(f"| {task} | {name} | {metric} {show(mean)} ± {show(sd)} | "
                         f"{nbytes:.2f} | {verdict} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="mnist1d-cnn", help="comma-separated lab tasks")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="runs/precision")
    args = parser.parse_args()
    results: dict[str, dict] = {}
    for task in args.tasks.split(","):
        base, options = BASE.get(task, ("adamw", {}))
        rows = run(task, base, options, args.seeds, Path(args.out) / task, everywhere=False)
        named = {name: rows[base + suffix] for name, suffix in VARIANTS.items()}
        everywhere = run(task, base, options, args.seeds,
                         Path(args.out) / f"{task}-int8-everywhere", everywhere=True)
        named["int8, every tensor (experiment)"] = next(iter(everywhere.values()))
        results[task] = named
        print(task, {k: f"{v[0]:.4f}±{v[1]:.4f}" for k, v in named.items()}, flush=True)
    text = table(results)
    command = f"python benchmarks/precision_accuracy.py --tasks {args.tasks} --seeds {args.seeds}"
    block = f"*Made by `{command}`.*\n\n{text}\n"
    replace_between(ROOT / "docs" / "precision.md", "accuracy", block)
    replace_between(ROOT / "README.md", "precision", block)
    results = ROOT / "benchmarks" / "results.json"
    if results.exists():  # docs/performance.md shows this table beside the speed
        write_markdown(json.loads(results.read_text()), ROOT / "docs" / "performance.md")
    print(text)


if __name__ == "__main__":
    main()
