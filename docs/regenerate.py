"""Regenerate every measured table and picture of README.md and docs/guide.md.

    python docs/regenerate.py                      # all of it (about half an hour on 2 cores)
    python docs/regenerate.py --only guide         # or: readme
    python docs/regenerate.py --small --out /tmp/docs   # test-sized, into another folder

Each measured block sits between ``<!-- measured:NAME:start -->`` and
``<!-- measured:NAME:end -->`` markers and is replaced whole by what its section measures,
with the `descend` command that measured it written above the numbers. The commands run
through descend's own command line (in this process); their run folders stay in
runs/docs (or OUT/runs/docs), so a section can be redrawn with `descend report`. With
--out, README.md and docs/guide.md are copied into OUT and the copies are filled in, so
the repository's files are left alone.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Context:
    root: Path   # where README.md, docs/guide.md and docs/img are written
    runs: Path   # run folders of the commands
    small: bool

    def img(self, name: str) -> Path:
        path = self.root / "docs" / "img" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path


def descend(*argv: str) -> dict[str, Any]:
    """Run a descend command in this process with --json; its JSON output."""
    from descend.lab.cli import main

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main([*argv, "--json"])
    if code != 0:
        raise SystemExit(f"regenerate: `descend {shlex.join(argv)}` failed (exit {code})")
    return json.loads(buffer.getvalue())


def shown(*argv: str, drop: tuple[str, ...] = ("--out",)) -> str:
    """The command as the reader would type it (without the run folder flag)."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
            continue
        if a in drop:
            skip = True
            continue
        out.append(a)
    return "descend " + shlex.join(out)


def code(*lines: str) -> str:
    return "```bash\n" + "\n".join(lines) + "\n```"


def table(headers: list[str], rows: list[list[str]]) -> str:
    return "\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers),
                      *("| " + " | ".join(r) + " |" for r in rows)])


def pct(mean: float, std: float) -> str:
    return "—" if not math.isfinite(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}%"


def copy(src: str | Path, dest: Path) -> str:
    shutil.copyfile(src, dest)
    return dest.name


def rel(ctx: Context, path: Path, doc: str) -> str:
    """A picture's link from the document that shows it."""
    base = ctx.root if doc == "readme" else ctx.root / "docs"
    return str(path.relative_to(base))


# -- the guide ---------------------------------------------------------------------------


def guide_parabola(ctx: Context) -> str:
    steps = "10" if ctx.small else "20"
    argv = ("paths", "--surface", "parabola", "--optimizers",
            "sgd:lr=0.1,sgd:lr=0.45,sgd:lr=0.9,sgd:lr=1.05", "--steps", steps,
            "--regime", "full", "--out", str(ctx.runs / "guide-parabola"))
    out = descend(*argv)
    png = ctx.img("guide/parabola.png")
    copy(ctx.runs / "guide-parabola" / "paths.png", png)
    rows = []
    for p in out["paths"]:
        lr = p["lr"]
        rows.append([f"{lr:g}", f"{1 - 2 * lr:+.2f}",
                     "never" if p["steps_to_tolerance"] is None else str(p["steps_to_tolerance"]),
                     f"{p['final_distance']:.3g}",
                     f"at step {p['diverged_at']}" if p["diverged"] else "no"])
    return "\n\n".join([
        code(shown(*argv)),
        f"![gradient descent on x²]({rel(ctx, png, 'guide')})",
        table(["lr", "x is multiplied by 1 − 2·lr", "steps to within 1e-3 of 0",
               f"distance to 0 after {steps} steps", "diverged"], rows)])


def guide_regimes(ctx: Context) -> str:
    argv = ("compare", "--task", "digits-logreg", "--optimizers", "sgd", "--regime",
            "full,sgd,minibatch", "--epochs", "1" if ctx.small else "10", "--seeds",
            "2" if ctx.small else "3", "--out", str(ctx.runs / "guide-regimes"))
    out = descend(*argv)
    folder = ctx.runs / "guide-regimes"
    epochs = ctx.img("guide/regimes-epochs.png")
    seconds = ctx.img("guide/regimes-time.png")
    copy(folder / "loss_epochs.png", epochs)
    copy(folder / "loss_time.png", seconds)
    rows = [[r["label"], f"{r['planned_steps']:,} × {r['batch_size']:,}",
             pct(r["final_mean"], r["final_std"]), f"{r['step_time_ms']:.3g}"]
            for r in out["rows"]]
    return "\n\n".join([
        code(shown(*argv)),
        f"![training loss against epochs]({rel(ctx, epochs, 'guide')})",
        f"![training loss against CPU time]({rel(ctx, seconds, 'guide')})",
        table(["regime", "steps × batch", "final test accuracy (mean ± std over seeds)",
               "CPU ms per optimizer step"], rows),
        *(f"*{n}*" for n in out.get("noise", []))])


def guide_valley(ctx: Context) -> str:
    argv = ("paths", "--surface", "ill-conditioned", "--optimizers",
            "sgd,momentum,nesterov,rmsprop,adam", "--tune-lr", "--steps",
            "30" if ctx.small else "150", "--animate", "--out", str(ctx.runs / "guide-valley"))
    out = descend(*argv)
    png, gif = ctx.img("guide/valley.png"), ctx.img("guide/valley.gif")
    copy(ctx.runs / "guide-valley" / "paths.png", png)
    copy(ctx.runs / "guide-valley" / "paths.gif", gif)
    rows = [[p["optimizer"], f"{p['lr']:g}",
             "never" if p["steps_to_tolerance"] is None else str(p["steps_to_tolerance"]),
             f"{p['final_distance']:.3g}"] for p in out["paths"]]
    return "\n\n".join([
        code(shown(*argv)),
        f"![paths in a valley]({rel(ctx, png, 'guide')})",
        f"[animated]({rel(ctx, gif, 'guide')}). Each optimizer's lr is its best (lowest final "
        "loss) of the same 7 values, 1/30x to 30x of its lab default.",
        table(["optimizer", "tuned lr", "steps to within 1e-3 of the minimum",
               "final distance"], rows)])


def _curves_and_table(ctx: Context, name: str, argv: tuple[str, ...], plots: dict[str, str],
                      label: str) -> str:
    out = descend(*argv)
    folder = ctx.runs / name
    pictures = []
    for src, title in plots.items():
        dest = ctx.img(f"guide/{name.removeprefix('guide-')}-{src}")
        copy(folder / src, dest)
        pictures.append(f"![{title}]({rel(ctx, dest, 'guide')})")
    rows = [[r["label"], f"{r['lr']:g}", "never" if not math.isfinite(r["steps_to_target"])
             else f"{r['steps_to_target']:.0f}", pct(r["final_mean"], r["final_std"]),
             pct(r["best_mean"], r["best_std"])] for r in out["rows"]]
    target = f"{100 * out['target']:.2f}%" if out["metric"] == "acc" else f"{out['target']:.4g}"
    return "\n\n".join([
        code(shown(*argv)), *pictures,
        table([label, "lr", f"steps to {target} validation accuracy",
               "final test accuracy", "best validation accuracy"], rows),
        *(f"*{n}*" for n in out.get("noise", []))])


def guide_bias(ctx: Context) -> str:
    argv = ("compare", "--task", "digits-mlp", "--optimizers",
            "adam,adam:bias_correction=false,adam:lr=0.01,adam:lr=0.01:bias_correction=false",
            "--epochs", "2" if ctx.small else "20", "--seeds", "2" if ctx.small else "3",
            "--out", str(ctx.runs / "guide-bias"))
    return _curves_and_table(ctx, "guide-bias", argv,
                             {"loss_steps.png": "training loss with and without bias correction"},
                             "optimizer")


def guide_schedules(ctx: Context) -> str:
    argv = ("compare", "--task", "digits-mlp", "--optimizers", "sgd", "--schedule",
            "constant,inverse-time,exponential,step:every=5,plateau:patience=2", "--epochs",
            "2" if ctx.small else "20", "--seeds", "2" if ctx.small else "3", "--out",
            str(ctx.runs / "guide-schedules"))
    return _curves_and_table(ctx, "guide-schedules", argv,
                             {"lr.png": "learning rate used", "val_loss.png": "validation loss"},
                             "schedule")


def guide_table(ctx: Context) -> str:
    if ctx.small:
        argv = ("compare", "--task", "digits-logreg", "--optimizers", "sgd,adam", "--tune-lr",
                "--tune-points", "2", "--epochs", "1", "--seeds", "2")
    else:
        argv = ("compare", "--task", "mnist1d-mlp", "--optimizers",
                "sgd,momentum,nesterov,adagrad,rmsprop,adam,adamw", "--tune-lr",
                "--tune-points", "5", "--epochs", "30", "--seeds", "3")
    argv = (*argv, "--out", str(ctx.runs / "guide-table"))
    out = descend(*argv)
    tuned = [r for r in out["rows"] if r["lr_source"] == "tuned"]
    rows = [[r["optimizer"].split(":")[0], f"{r['lr']:.3g}", pct(r["final_mean"], r["final_std"]),
             "never" if not math.isfinite(r["steps_to_target"]) else f"{r['steps_to_target']:.0f}",
             f"{r['oscillation']:.2f}", f"{r['step_time_ms']:.3g}",
             f"{r['state_bytes_per_param']:.0f}", f"{r['diverged']}/{r['seeds']}"]
            for r in tuned]
    lines = [f"- {line}" for line in out["lines"] if " tuned" in line.split(" — ")[0]]
    return "\n\n".join([
        code(shown(*argv)),
        table(["optimizer (tuned lr)", "lr", "final test accuracy", "steps to target",
               "oscillation", "CPU ms/step", "state bytes/param", "diverged"], rows),
        "Derived strengths and weaknesses of the tuned rows (from the full table, which also "
        "has each optimizer at its default lr):", "\n".join(lines),
        *(f"*{n}*" for n in out.get("noise", []))])


# -- the README --------------------------------------------------------------------------


def readme_mnist1d(ctx: Context) -> str:
    extra = ("--steps", "60", "--seeds", "2") if ctx.small else ("--seeds", "3")
    cells, commands = {}, []
    for task in ("mnist1d-mlp", "mnist1d-cnn"):
        argv = ("compare", "--task", task, "--optimizers", "adam:lr=1e-2,adam", *extra,
                "--out", str(ctx.runs / f"readme-{task}"))
        commands.append(shown(*argv))
        out = descend(*argv)
        cells[task] = {r["optimizer"]: pct(r["final_mean"], r["final_std"]) for r in out["rows"]}
    long = ("compare", "--task", "mnist1d-cnn", "--optimizers", "adam:lr=1e-2",
            "--steps", "80" if ctx.small else "6000", *extra[-2:],
            "--out", str(ctx.runs / "readme-mnist1d-cnn-long"))
    paper_steps = descend(*long)["rows"][0]
    rows = [["`mnist1d-mlp` (40-100-100-10)", cells["mnist1d-mlp"]["adam:lr=0.01"],
             cells["mnist1d-mlp"]["adam"], "about 68%"],
            ["`mnist1d-cnn` (3 conv layers)", cells["mnist1d-cnn"]["adam:lr=0.01"],
             cells["mnist1d-cnn"]["adam"], "about 94%"]]
    return "\n\n".join([
        "Test accuracy, mean ± std over seeds 0, 1, 2, written by `python docs/regenerate.py` "
        "from these commands:", code(*commands),
        table(["task", "Adam lr=1e-2 (the paper's lr)", "Adam lr=1e-3",
               "published (Greydanus, 2020)"], rows),
        f"With the paper's budget of 6,000 steps (`{shown(*long)}`) the CNN reached "
        f"{pct(paper_steps['final_mean'], paper_steps['final_std'])}."])


def readme_suite(ctx: Context) -> str:
    name = "test" if ctx.small else "quick"
    argv = ("compare", "--suite", name, "--out", str(ctx.runs / f"suite-{name}"))
    began = time.perf_counter()
    out = descend(*argv)
    wall = time.perf_counter() - began
    profile = ctx.img("suite-profile.png")
    copy(ctx.runs / f"suite-{name}" / "profile.png", profile)
    curves = ctx.img("suite-curves.png")
    copy(ctx.runs / f"suite-{name}" / "curves.png", curves)
    scores, workloads = out["scores"], out["workloads"]
    measure = out["measure"]
    order = sorted(out["suite"]["optimizers"], key=lambda o: -scores[measure].get(o, 0.0))
    headers = ["optimizer", "score (CPU time)", "score (steps)",
               *[f"`{w['workload']}`" for w in workloads]]
    rows = []
    for opt in order:
        cells = []
        for w in workloads:
            row = next((r for r in w["rows"] if r["optimizer"] == opt), None)
            if row is None:
                cells.append("—")
            elif not row["reached"]:
                cells.append(f"never ({row['reached_seeds']}/{len(row['runs'])})")
            else:
                cells.append(f"{row['cpu']:.2f} s / {row['steps']:.0f}")
        rows.append([opt, f"{scores[measure].get(opt, 0.0):.3f}",
                     f"{scores['steps'].get(opt, 0.0):.3f}", *cells])
    targets = [f"`{w['workload']}`: {_target(w)} within {w['budget_steps']:,} steps"
               for w in workloads]
    notes = [f"- `{w['workload']}`: {n}" for w in workloads for n in w["notes"]]
    minutes = f"{wall / 60:.1f} minutes" if wall >= 60 else f"{wall:.0f} s"
    return "\n\n".join([
        code("descend compare --suite" if name == "quick" else shown(*argv)),
        f"Measured by `python docs/regenerate.py`: the whole suite, {out['runs']} runs, took "
        f"{minutes} of wall time here, {out['cpu_seconds'] / 60:.1f} minutes of training "
        f"CPU time. {out['machine']}",
        "Cells: median over seeds of the CPU seconds of the training thread and of the steps "
        "to reach the workload's validation target (\"never (k/n)\": only k of n seeds "
        "reached it within the budget). Scores: the area under each performance profile "
        "up to 4x the fastest, divided by 3 (1 = fastest everywhere).",
        table(headers, rows),
        "Targets: " + "; ".join(targets) + ".",
        *(["Within seed noise:", "\n".join(notes)] if notes else []),
        f"![performance profiles]({rel(ctx, profile, 'readme')})",
        f"![validation curves]({rel(ctx, curves, 'readme')})"])


def _target(w: dict[str, Any]) -> str:
    if w["metric"] == "val_acc":
        return f"validation accuracy ≥ {100 * w['target']:.2f}%"
    if w["metric"] == "distance":
        return f"‖θ − θ*‖ ≤ {w['target']:.3g}"
    return f"validation loss ≤ {w['target']:.4g}"


def readme_paths(ctx: Context) -> str:
    argv = ("paths", "--surface", "rosenbrock", "--optimizers",
            "sgd,momentum,heavyball,rmsprop,adam", "--tune-lr", "--steps",
            "50" if ctx.small else "500", "--out", str(ctx.runs / "readme-rosenbrock"))
    out = descend(*argv)
    png = ctx.img("paths-rosenbrock.png")
    copy(ctx.runs / "readme-rosenbrock" / "paths.png", png)
    noisy = ("paths", "--surface", "ill-conditioned", "--optimizers",
             "sgd:lr=0.5,momentum:lr=0.3,rmsprop:lr=0.3,adam:lr=0.3", "--noise", "2",
             "--regime", "minibatch", "--batch-size", "4", "--steps",
             "20" if ctx.small else "100", "--animate", "--out", str(ctx.runs / "readme-ill"))
    descend(*noisy)
    png2, gif = ctx.img("paths-ill-conditioned.png"), ctx.img("paths-ill-conditioned.gif")
    copy(ctx.runs / "readme-ill" / "paths.png", png2)
    copy(ctx.runs / "readme-ill" / "paths.gif", gif)
    rows = [[p["optimizer"], f"{p['lr']:g}",
             f"diverged at step {p['diverged_at']}" if p["diverged"] else
             f"{p['final_distance']:.3g}"] for p in out["paths"]]
    return "\n\n".join([
        code(shown(*argv).replace(" --optimizers", " \\\n    --optimizers")),
        f"![paths on Rosenbrock]({rel(ctx, png, 'readme')})",
        "With the same 7-point lr budget for everyone (each optimizer's lab default × 1/30 … "
        "30), each optimizer's best lr and where it ended:",
        table(["optimizer", "best lr of its grid", "final distance to (1, 1)"], rows),
        code(shown(*noisy).replace(" --noise", " \\\n    --noise")),
        f"![paths on an ill-conditioned quadratic, with mini-batch noise]"
        f"({rel(ctx, png2, 'readme')})",
        f"([animated]({rel(ctx, gif, 'readme')}))"])


def readme_lr_find(ctx: Context) -> str:
    argv = ("lr-find", "--task", "digits-mlp", "--optimizer", "sgd", "--out",
            str(ctx.runs / "readme-lr-find"))
    if ctx.small:
        argv = (*argv, "--steps", "30")
    out = descend(*argv)
    png = ctx.img("lr-find.png")
    copy(ctx.runs / "readme-lr-find" / "lr_find.png", png)
    s = out["suggestions"]
    # The printed command peaks at the suggestion; check that against larger peaks.
    valley = s["valley"]
    peaks = {f"{k}x": float(f"{valley * k:.3g}") for k in (1, 3, 10)}
    check = ("compare", "--task", "digits-mlp", "--optimizers",
             ",".join(f"sgd:lr={lr:g}" for lr in peaks.values()), "--schedule", "onecycle",
             "--seeds", "2" if ctx.small else "3", *(("--epochs", "2") if ctx.small else ()),
             "--out", str(ctx.runs / "readme-lr-find-check"))
    rows = {r["optimizer"]: r for r in descend(*check)["rows"]}
    cells = []
    for k, lr in peaks.items():
        r = rows[f"sgd:lr={lr:g}"]
        cells.append([k, f"{lr:g}", pct(r["final_mean"], r["final_std"]),
                      f"{r['diverged']}/{r['seeds']}"])
    return "\n\n".join([
        code(shown(*argv)),
        f"![lr range test]({rel(ctx, png, 'readme')})",
        f"*The suggestions: steepest {s['steepest']:.3g}, minimum/10 {s['minimum/10']:.3g}, "
        f"valley {s['valley']:.3g} (the middle of the shaded steep descent). The printed "
        f"command: `descend compare --task digits-mlp {' '.join(out['compare_args'])}`. "
        "One-cycle peaks at 1x (what it prints), 3x and 10x the valley suggestion:*",
        code(shown(*check)),
        table(["peak", "lr", "final test accuracy", "diverged seeds"], cells)])


def readme_report(ctx: Context) -> str:
    """The default `descend compare` and a screenshot of its report in chromium."""
    argv = ("compare", "--out", str(ctx.runs / "readme-demo"))
    if ctx.small:
        argv = (*argv, "--epochs", "2", "--seeds", "2", "--optimizers", "sgd,adam")
    descend(*argv)
    png = ctx.img("report.png")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print("regenerate: chromium is missing (make browser): docs/img/report.png kept",
              file=sys.stderr)
        return f"![report]({rel(ctx, png, 'readme')})" if png.exists() else ""
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    f"--user-data-dir={ctx.runs / 'chromium'}", "--window-size=1100,1500",
                    "--hide-scrollbars", f"--screenshot={png}",
                    (ctx.runs / "readme-demo" / "report.html").as_uri()],
                   capture_output=True, timeout=180, check=True)
    return f"![report]({rel(ctx, png, 'readme')})"


SECTIONS: dict[str, tuple[str, Callable[[Context], str]]] = {
    "guide-parabola": ("guide", guide_parabola),
    "guide-regimes": ("guide", guide_regimes),
    "guide-valley": ("guide", guide_valley),
    "guide-bias": ("guide", guide_bias),
    "guide-schedules": ("guide", guide_schedules),
    "guide-table": ("guide", guide_table),
    "readme-report": ("readme", readme_report),
    "readme-mnist1d": ("readme", readme_mnist1d),
    "readme-paths": ("readme", readme_paths),
    "readme-lr-find": ("readme", readme_lr_find),
    "readme-suite": ("readme", readme_suite),
}
DOCUMENTS = {"readme": "README.md", "guide": "docs/guide.md"}


def fill(text: str, name: str, body: str, where: str) -> str:
    pattern = re.compile(rf"(<!-- measured:{re.escape(name)}:start -->\n).*?"
                         rf"(<!-- measured:{re.escape(name)}:end -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"regenerate: {where} has no <!-- measured:{name}:start/end --> "
                         "markers")
    return pattern.sub(lambda m: m.group(1) + body.strip() + "\n" + m.group(2), text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--only", choices=sorted(DOCUMENTS), help="one document")
    p.add_argument("--sections", default=None,
                   help=f"comma-separated sections (default all): {', '.join(SECTIONS)}")
    p.add_argument("--small", action="store_true",
                   help="test-sized commands (seconds each); use with --out")
    p.add_argument("--out", default=None,
                   help="write copies of README.md and docs/guide.md, and their pictures, "
                   "into this folder instead of the repository")
    args = p.parse_args(argv)
    root = Path(args.out).resolve() if args.out else ROOT
    if args.small and not args.out:
        p.error("--small writes test-sized numbers: give --out, so that the repository's "
                "documents keep the real ones")
    for path in DOCUMENTS.values():
        if root != ROOT:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(ROOT / path, root / path)
    ctx = Context(root, root / "runs" / "docs", args.small)
    ctx.runs.mkdir(parents=True, exist_ok=True)
    chosen = [n for n, (doc, _) in SECTIONS.items() if args.only in (None, doc)]
    if args.sections:
        wanted = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = set(wanted) - set(SECTIONS)
        if unknown:
            p.error(f"unknown sections {sorted(unknown)}; known: {', '.join(SECTIONS)}")
        chosen = [n for n in chosen if n in wanted]
    texts = {doc: (root / path).read_text() for doc, path in DOCUMENTS.items()}
    began = time.perf_counter()
    for i, name in enumerate(chosen, start=1):
        doc, make = SECTIONS[name]
        print(f"[{i}/{len(chosen)}] {name} ({time.perf_counter() - began:.0f} s so far)",
              file=sys.stderr, flush=True)
        texts[doc] = fill(texts[doc], name, make(ctx), DOCUMENTS[doc])
        # Written after every section: an interrupted regeneration keeps what it measured.
        (root / DOCUMENTS[doc]).write_text(texts[doc])
    print(f"regenerated {len(chosen)} sections in {time.perf_counter() - began:.0f} s",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
