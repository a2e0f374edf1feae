"""Reports drawn from saved records: PNG plots, report.md, a self-contained report.html,
summary.json, and the terminal table. `descend report RUN_DIR` redraws them without
training."""

from __future__ import annotations

import base64
import html
import math
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .analysis import Comparison, compare_runs, group_runs, mean_curve
from .records import Run, read_json, read_runs, write_json_atomic, write_text_atomic


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend, imported on first use (it takes most of a
    second, which `descend --help` and a run that writes no plot should not pay)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def warm_up() -> threading.Thread:
    """Import matplotlib in the background while runs train in worker processes (about
    half a second off the report). Start it after forking workers; the command line exits
    without waiting for it on Ctrl-C (see `cli.main`)."""
    thread = threading.Thread(target=pyplot, name="descend-import-matplotlib", daemon=True)
    thread.start()
    return thread


# Fixed margins instead of constrained layout: the figures have one axes each, and the
# layout solver took half of every savefig.
MARGINS = dict(left=0.13, right=0.98, bottom=0.12, top=0.92)


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float) and math.isinf(value):
        return "never"
    return f"{value:.{digits}g}"


def metric_text(cmp: Comparison, mean: float, std: float) -> str:
    if cmp.metric == "acc":
        return "—" if math.isnan(mean) else f"{100 * mean:.2f} ± {100 * std:.2f}%"
    return f"{fmt(mean, 4)} ± {fmt(std, 2)}"


COLUMNS = ("configuration", "lr", "steps to target", "{clock} s to target", "final test {m}",
           "best val {m}", "spread", "oscillation", "{clock} ms/step", "state B/param",
           "diverged")
CLOCK = {"cpu": "CPU", "wall": "wall"}


def table_rows(cmp: Comparison) -> list[list[str]]:
    out = []
    for r in cmp.rows:
        spread = (f"{100 * r.final_std:.2f}%" if cmp.metric == "acc" else fmt(r.final_std))
        row = [r.label, f"{r.lr:g}", fmt(r.steps_to_target, 6),
               fmt(r.seconds_to_target, 3), metric_text(cmp, r.final_mean, r.final_std),
               metric_text(cmp, r.best_mean, r.best_std), spread, fmt(r.oscillation, 2),
               fmt(r.step_time_ms, 3), fmt(r.state_bytes_per_param, 3),
               f"{r.diverged}/{r.seeds}"]
        if cmp.mixed_regimes:  # rows ran different budgets: say which
            row.insert(1, f"{r.planned_steps:,} × {r.batch_size:,}")
        out.append(row)
    return out


def headers(cmp: Comparison) -> list[str]:
    name = "acc" if cmp.metric == "acc" else "loss"
    out = [c.format(m=name, clock=CLOCK.get(cmp.clock, cmp.clock)) for c in COLUMNS]
    if cmp.mixed_regimes:
        out.insert(1, "steps × batch")
    return out


# -- plots -----------------------------------------------------------------------------------


def _band(ax: Any, x: Sequence[float], mean: Sequence[float], std: Sequence[float],
          label: str, style: dict[str, Any]) -> None:
    ax.plot(x, mean, label=label, lw=1.6, **style)
    lo = [m - s for m, s in zip(mean, std)]
    hi = [m + s for m, s in zip(mean, std)]
    ax.fill_between(x, lo, hi, color=style["color"], alpha=0.15, lw=0)


def _curves_plot(groups: dict[str, list[Run]], key: str, path: Path, *, ylabel: str,
                 xaxis: str = "step", log: bool = False, title: str = "") -> Path:
    """Mean ± std over seeds of `key`, one line per row. Lines that coincide (the lr of two
    optimizers with the same lr) stay visible: each has its own dashes and staggered
    markers, and the legend names the row it equals."""
    from . import plotstyle

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    fig.subplots_adjust(**MARGINS)
    curves = {}
    for label, runs in sorted(groups.items()):
        steps, mean, std = mean_curve(runs, key)
        if not steps:
            continue
        if xaxis in ("cpu", "time"):
            clock = xaxis if all(xaxis in e for r in runs for e in r.evals) else "time"
            _, x, _ = mean_curve(runs, clock)
        elif xaxis == "epoch":
            _, x, _ = mean_curve(runs, "epoch")
        else:
            x = steps
        curves[label] = (x, mean, std)
    same = plotstyle.coinciding({k: v[1] for k, v in curves.items()})
    for i, (label, (x, mean, std)) in enumerate(curves.items()):
        _band(ax, x, mean, std, plotstyle.legend_label(label, same),
              plotstyle.style(i, len(x), len(curves)))
    ax.set_xlabel({"cpu": "training time (CPU s of the training thread)",
                   "time": "training time (wall-clock s)",
                   "epoch": "epochs (passes over the training data)"}.get(xaxis, "step"))
    ax.set_ylabel(ylabel)
    ax.set_title(title or f"{ylabel} (mean ± std over seeds)")
    if log:
        ax.set_yscale("log")
        plotstyle.readable_log(ax, "y")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _sensitivity_plot(cmp: Comparison, path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    fig.subplots_adjust(**MARGINS)
    for i, (label, trials) in enumerate(sorted(cmp.tuning.items())):
        lrs = [t[0] for t in trials]
        vals = [t[1] if not t[2] else math.nan for t in trials]
        ax.plot(lrs, vals, "o-", label=label, color=f"C{i % 10}")
        for lr, _, diverged in trials:
            if diverged:
                ax.axvline(lr, color=f"C{i % 10}", ls=":", alpha=0.5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("final validation loss")
    ax.set_title("lr sensitivity (tuning runs, first seed; dotted: diverged)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_plots(runs: Sequence[Run], cmp: Comparison, out: Path) -> list[tuple[str, Path]]:
    groups = group_runs(runs, "main")
    clock = "cpu" if cmp.clock == "cpu" else "time"
    plots = [
        ("Training loss against steps", _curves_plot(
            groups, "train_loss", out / "loss_steps.png", ylabel="training loss", log=True)),
        (f"Training loss against training time ({CLOCK.get(cmp.clock, cmp.clock)} seconds)",
         _curves_plot(groups, "train_loss", out / "loss_time.png", ylabel="training loss",
                      log=True, xaxis=clock)),
        *([("Training loss against epochs (regimes take different numbers of steps per "
            "pass over the data)", _curves_plot(
                groups, "train_loss", out / "loss_epochs.png", ylabel="training loss",
                log=True, xaxis="epoch"))] if cmp.mixed_regimes else []),
        ("Validation loss", _curves_plot(groups, "val_loss", out / "val_loss.png",
                                         ylabel="validation loss", log=True)),
    ]
    if cmp.metric == "acc":
        plots.append(("Validation accuracy", _curves_plot(
            groups, "val_acc", out / "val_acc.png", ylabel="validation accuracy")))
    if any("distance" in r.evals[0] for rs in groups.values() for r in rs if r.evals):
        plots.append(("Distance to the optimum", _curves_plot(
            groups, "distance", out / "distance.png", ylabel="‖θ − θ*‖", log=True)))
    plots.append(("Learning rate used", _curves_plot(
        groups, "lr", out / "lr.png", ylabel="learning rate", log=True,
        title="learning rate actually used (equal curves: '= row' in the legend)")))
    if cmp.tuning:
        plots.append(("Learning-rate sensitivity", _sensitivity_plot(
            cmp, out / "lr_sensitivity.png")))
    for name, title in (("optimization_history", "Optuna: optimization history"),
                        ("parallel_coordinate", "Optuna: parallel coordinates"),
                        ("param_importances", "Optuna: parameter importances")):
        if (out / "tune" / f"{name}.png").exists():  # written by compare --tune
            plots.append((title, out / "tune" / f"{name}.png"))
    return plots


# -- documents -------------------------------------------------------------------------------


def _definitions(cmp: Comparison) -> list[str]:
    metric = "accuracy" if cmp.metric == "acc" else "loss"
    target = (f"{100 * cmp.target:.2f}%" if cmp.metric == "acc" else fmt(cmp.target, 4))
    how = "given" if cmp.target_given else (
        "90% of the way from the initial validation metric to the best row's final one")
    return [
        f"Metric: {metric} ({'higher' if cmp.higher_is_better else 'lower'} is better); "
        f"target = {target} ({how}).",
        "Steps / seconds to target: first evaluation where the seed-mean validation metric "
        "reaches the target; seconds are "
        + ("CPU seconds of the training thread" if cmp.clock == "cpu" else
           "wall-clock seconds") + " (evaluations excluded).",
        "Final: test metric at the end; best: best validation metric; mean ± std over "
        "seeds that did not diverge. Spread: std of the final test metric over seeds.",
        "Oscillation: total variation of the training loss over evaluations / net "
        "decrease − 1 (0 = monotone).",
        "ms/step: median " + ("CPU" if cmp.clock == "cpu" else "wall-clock")
        + " time of optimizer.step(); state: optimizer state bytes per parameter.",
        "Within seed noise: 95% intervals (Student's t over seeds) of the final test metric "
        "overlap.",
    ]


def _context(runs: Sequence[Run], grid: dict[str, Any] | None, cmp: Comparison) -> list[str]:
    from . import machine

    main = [r for r in runs if r.finished and r.spec.role == "main"]
    spec = main[0].spec
    summary = main[0].summary
    seeds = sorted({r.spec.seed for r in main})
    regimes: dict[str, dict[str, Any]] = {}
    for r in main:
        regimes.setdefault(r.spec.regime, r.summary)
    budgets = "; ".join(
        f"{regime}: batch {s['batch_size']:,}, {s['planned_steps']:,} steps "
        f"({s['steps_per_epoch']:,} per epoch)" for regime, s in regimes.items())
    lines = [f"Task: {spec.task}; {summary['n_params']:,} parameters; {budgets}; "
             f"seeds {seeds}."]
    if "n_val" in summary:
        n_val = summary["n_val"]
        unit = (f"; one example is {100 / n_val:.2f} points of accuracy, so smaller "
                "differences cannot be measured on it" if cmp.metric == "acc" else "")
        lines.append(f"Data: {summary['n_train']:,} training, {n_val:,} validation, "
                     f"{summary['n_test']:,} test examples{unit}.")
    if grid and grid.get("machine"):
        lines.append(machine.sentence(grid["machine"], grid.get("sessions", [])))
    if grid and grid.get("tune_lr"):
        budget = (f"lr grid {list(grid['lr_grid'])}" if grid.get("lr_grid") else
                  f"{grid['tune_points']} log-spaced lrs from 1/30x to 30x of each default")
        lines.append(f"Learning rates tuned with the same budget for every optimizer: "
                     f"{budget}, one run each on seed {seeds[0]}, selected by final "
                     "validation loss (never test). Rows marked 'tuned' use that lr; the "
                     "others use the default lr.")
    else:
        lines.append("Learning rates: each optimizer's lab default unless given (no tuning).")
    return lines


def render_markdown(cmp: Comparison, plots: list[tuple[str, Path]], context: list[str]) -> str:
    out = ["# descend compare — report", "", *context, "", "## Comparison", ""]
    out += md_table(headers(cmp), table_rows(cmp))
    out += ["", *[f"**{n}**" for n in cmp.noise], ""] if cmp.noise else []
    out += ["", *[f"- {d}" for d in _definitions(cmp)], "", "## Strengths and weaknesses", ""]
    out += [f"- {line}" for line in cmp.lines] or ["- (one configuration only)"]
    out += ["", "## Plots", ""]
    for title, path in plots:
        link = f"tune/{path.name}" if path.parent.name == "tune" else path.name
        out += [f"### {title}", "", f"![{title}]({link})", ""]
    return "\n".join(out)


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}table{border-collapse:collapse;font-size:13px;margin:1rem 0}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:right}th{background:#f3f3f3}
td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
.defs{color:#555;font-size:13px}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}
"""


def md_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """A markdown table's lines."""
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in rows])


def html_table(id_: str, headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    e = html.escape
    return (f"<table id='{id_}'><thead><tr>" + "".join(f"<th>{e(h)}</th>" for h in headers)
            + "</tr></thead><tbody>" + "".join(
                "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in rows)
            + "</tbody></table>")


def figure(title: str, path: Path) -> str:
    """A PNG embedded in the page, with its title."""
    data = base64.b64encode(path.read_bytes()).decode()
    return (f"<figure><figcaption>{html.escape(title)}</figcaption><img alt='"
            f"{html.escape(title)}' src='data:image/png;base64,{data}'></figure>")


def render_html(cmp: Comparison, plots: list[tuple[str, Path]], context: list[str]) -> str:
    e = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'>",
             "<title>descend compare — report</title>", f"<style>{CSS}</style></head><body>",
             "<h1>descend compare — report</h1>", *[f"<p>{e(c)}</p>" for c in context],
             "<h2>Comparison</h2>", html_table("comparison", headers(cmp), table_rows(cmp))]
    parts += [f"<p><b>{e(n)}</b></p>" for n in cmp.noise]
    parts.append("<ul class='defs'>")
    parts += [f"<li>{e(d)}</li>" for d in _definitions(cmp)]
    parts.append("</ul><h2>Strengths and weaknesses</h2><ul>")
    parts += [f"<li>{e(line)}</li>" for line in cmp.lines]
    parts.append("</ul><h2>Plots</h2><div class='grid'>")
    parts += [figure(title, path) for title, path in plots]
    parts.append("</div></body></html>")
    return "\n".join(parts)


def build_report(run_dir: str | Path, target: float | None = None) -> tuple[Comparison, Path]:
    """Recompute the comparison from `run_dir`'s records and write every report file.
    The caller holds the folder (`lock.folder_lock`)."""
    run_dir = Path(run_dir)
    runs = list(read_runs(run_dir))
    grid_path = run_dir / "grid.json"
    grid = read_json(grid_path) if grid_path.exists() else None
    if grid and grid.get("run_ids"):
        # A run directory may hold runs of earlier grids; report the latest grid's.
        wanted = set(grid["run_ids"])
        runs = [r for r in runs if r.spec.run_id in wanted]
        target = grid.get("target") if target is None else target
    cmp = compare_runs(runs, target, (grid or {}).get("clock", "cpu"))
    plots = draw_plots(runs, cmp, run_dir)
    context = _context(runs, grid, cmp)
    write_text_atomic(run_dir / "report.md", render_markdown(cmp, plots, context))
    html_path = write_text_atomic(run_dir / "report.html", render_html(cmp, plots, context))
    write_json_atomic(run_dir / "summary.json", cmp.to_json())
    return cmp, html_path


__all__ = ["build_report", "pyplot", "warm_up"]
