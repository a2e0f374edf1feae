"""The report of a suite, computed from its records and `suite.json` only.

`descend report RUN_DIR` on a suite folder calls `build_suite_report` again: nothing is
trained, and a suite extended with more optimizers (the same command with a longer
--optimizers list: finished runs are skipped) is scored again from all its records.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import machine, scoring
from .records import Run, read_json, read_runs, write_json_atomic, write_text_atomic
from .registry import split_spec
from .scoring import Row
from .suite import SELF_TUNING
from .workloads import get_workload

MEASURE_TEXT = {"cpu": "CPU seconds of the training thread", "steps": "optimizer steps",
                "wall": "wall-clock seconds"}


@dataclass
class WorkloadResult:
    workload: str
    metric: str
    higher_is_better: bool
    target: float
    how: str
    budget_steps: int
    batch_size: int
    validation: str
    why: str
    rows: list[Row]
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.__dict__.items() if k != "rows"},
                "rows": [r.to_json() for r in self.rows]}


@dataclass
class SuiteAnalysis:
    suite: dict[str, Any]
    measure: str
    workloads: list[WorkloadResult]
    scores: dict[str, dict[str, float]]  # measure -> optimizer -> score
    machine: str
    command: str
    runs: int = 0            # runs of the suite: trials and rows
    cpu_seconds: float = 0.0  # their training, in CPU seconds of the training threads

    @property
    def optimizers(self) -> list[str]:
        return list(self.suite["optimizers"])

    def table(self) -> dict[str, list[Row]]:
        return {w.workload: w.rows for w in self.workloads}

    def ranking(self) -> list[str]:
        score = self.scores[self.measure]
        return sorted(self.optimizers, key=lambda o: (-score.get(o, 0.0),
                                                      self.optimizers.index(o)))

    def to_json(self) -> dict[str, Any]:
        return {"suite": self.suite, "measure": self.measure, "scores": self.scores,
                "machine": self.machine, "command": self.command, "runs": self.runs,
                "cpu_seconds": self.cpu_seconds,
                "workloads": [w.to_json() for w in self.workloads]}


def _base(spec_text: str) -> str:
    return split_spec(spec_text, "optimizer")[0]


def analyse(plan: dict[str, Any], runs: Sequence[Run]) -> SuiteAnalysis:
    suite = plan["suite"]
    by_id = {r.spec.run_id: r for r in runs if r.finished}
    ids = plan.get("run_ids", {})
    tune_ids, main_ids = set(ids.get("tune", [])), set(ids.get("main", []))
    results = []
    for name in suite["workloads"]:
        w = get_workload(name)
        budget = w.budget(suite["size"])
        target = plan["targets"][name]
        rows = []
        for opt in suite["optimizers"]:
            mains = [r for rid, r in by_id.items() if rid in main_ids and r.spec.task == name
                     and _base(r.spec.optimizer) == opt]
            trials = [r for rid, r in by_id.items() if rid in tune_ids
                      and r.spec.task == name and _base(r.spec.optimizer) == opt]
            if not mains:
                continue
            mains.sort(key=lambda r: r.spec.seed)
            times = [scoring.run_time(r, w.metric, target["value"], w.higher_is_better,
                                      budget.steps) for r in mains]
            rows.append(Row(name, opt, mains[0].spec.optimizer, mains[0].spec.schedule,
                            len(trials), times, budget.steps))
        measure = plan.get("measure", "cpu")
        rows.sort(key=lambda r: (r.time(measure), r.steps))
        results.append(WorkloadResult(
            name, w.metric, w.higher_is_better, target["value"], target.get("how", ""),
            budget.steps, budget.batch_size, plan.get("validation", {}).get(name, ""), w.why,
            rows, scoring.noise_notes(rows, measure, w.higher_is_better)))
    table = {r.workload: r.rows for r in results if r.rows}
    scores = {m: scoring.score(table, m) for m in scoring.MEASURES}
    mine = [r for rid, r in by_id.items() if rid in tune_ids | main_ids]
    cpu = sum(r.summary.get("cpu_time", r.summary.get("train_time", 0.0)) for r in mine)
    return SuiteAnalysis(suite, plan.get("measure", "cpu"), results, scores,
                         machine.sentence(plan.get("machine", {}), plan.get("sessions", [])),
                         plan.get("command", ""), len(mine), cpu)


# -- text ----------------------------------------------------------------------------------


def _num(v: float, digits: int = 3) -> str:
    if not math.isfinite(v):
        return "—"
    return f"{v:.{digits}g}"


def metric_value(w: WorkloadResult, mean: float, ci: float) -> str:
    if not math.isfinite(mean):
        return "—"
    ci_text = f" ± {_num(ci, 2)}" if math.isfinite(ci) else ""
    if w.metric == "val_acc":
        ci_text = f" ± {100 * ci:.2f}" if math.isfinite(ci) else ""
        return f"{100 * mean:.2f}{ci_text}%"
    text = f"{mean:.4g}{ci_text}"
    if w.workload == "pydoc-gpt" and math.isfinite(mean):
        text += f" (ppl {math.exp(mean):.2f})"
    return text


def target_text(w: WorkloadResult) -> str:
    if w.metric == "val_acc":
        return f"validation accuracy ≥ {100 * w.target:.2f}%"
    if w.metric == "distance":
        return f"‖θ − θ*‖ ≤ {w.target:.4g}"
    extra = f" (perplexity {math.exp(w.target):.2f})" if w.workload == "pydoc-gpt" else ""
    return f"validation loss ≤ {w.target:.4g}{extra}"


def _time_cell(row: Row, measure: str) -> str:
    if not row.reached:
        return f"never ({row.reached_seeds}/{len(row.runs)} seeds)"
    lo, hi = row.span(measure)
    fmt = (lambda v: f"{v:.0f}") if measure == "steps" else (lambda v: f"{v:.2f}")
    never = " (some seeds never)" if row.reached_seeds < len(row.runs) else ""
    return f"{fmt(getattr(row, measure))} [{fmt(lo)}–{fmt(hi)}]{never}"


WORKLOAD_HEADERS = ["optimizer", "configuration", "tuning runs", "reached", "steps to target",
                    "CPU s to target", "wall s to target", "final metric (95% CI)",
                    "CPU ms/step"]


def workload_rows(w: WorkloadResult) -> list[list[str]]:
    out = []
    for r in w.rows:
        config = r.config if r.schedule == "constant" else f"{r.config} [{r.schedule}]"
        out.append([r.optimizer, config, str(r.trials), f"{r.reached_seeds}/{len(r.runs)}",
                    _time_cell(r, "steps"), _time_cell(r, "cpu"), _time_cell(r, "wall"),
                    metric_value(w, r.final_mean, r.final_ci), _num(r.cpu_ms_per_step)])
    return out


def summary_headers(a: SuiteAnalysis) -> list[str]:
    return ["optimizer", f"score ({MEASURE_TEXT[a.measure].split(' of')[0]})",
            "score (steps)", "workloads reached", "tuning runs per workload"]


def summary_rows(a: SuiteAnalysis) -> list[list[str]]:
    out = []
    for opt in a.ranking():
        rows = [r for w in a.workloads for r in w.rows if r.optimizer == opt]
        reached = sum(r.reached for r in rows)
        trials = sorted({r.trials for r in rows})
        out.append([opt, f"{a.scores[a.measure].get(opt, 0.0):.3f}",
                    f"{a.scores['steps'].get(opt, 0.0):.3f}", f"{reached}/{len(a.workloads)}",
                    ", ".join(map(str, trials)) or "—"])
    return out


def cost(a: SuiteAnalysis) -> str:
    return (f"The suite is {_count(a.runs, 'run')} (tuning trials and rows), "
            f"{a.cpu_seconds / 60:.1f} CPU minutes of training in all.")


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def protocol(a: SuiteAnalysis) -> list[str]:
    s = a.suite
    tuned = [o for o in s["optimizers"] if o not in SELF_TUNING]
    untuned = [o for o in s["optimizers"] if o not in tuned]
    lines = [
        f"Suite {s['name']!r}: {_count(len(s['workloads']), 'workload')} at size "
        f"{s['size']!r}, {_count(len(s['optimizers']), 'optimizer')}, "
        f"{_count(s['seeds'], 'seed')} per row.",
        f"Tuning, the same budget for every optimizer and workload: {s['trials']} Optuna "
        "trials (quasi-random: Sobol points, seeded) over the lr on a log scale from 1/30x "
        f"to 30x of the lab default, schedule {s['schedule']} over the budget, one run each "
        "on seed 0; the trial that reached the target in the fewest steps (or came "
        f"closest) is run again on seeds {', '.join(map(str, range(1, s['seeds'] + 1)))} "
        f"(never the tuning seed): those runs are the rows. Tuned: {', '.join(tuned) or 'none'}."
        + (f" Self-tuning, run with their defaults and a constant lr, no trials: "
           f"{', '.join(untuned)}." if untuned else ""),
        f"Time to target: the first evaluation at which the validation metric reaches the "
        f"workload's target, in steps and in {MEASURE_TEXT['cpu']} (evaluations excluded); "
        "wall-clock seconds beside them. Median over seeds; a seed that never reaches the "
        "target (or diverges) counts as the budget's limit, and a row reaches the target "
        "when more than half of its seeds do. Ranges in brackets: min–max over seeds.",
        f"Score: the area under the performance profile (the fraction of workloads on "
        f"which an optimizer's time is within tau times the fastest's) from tau = 1 to "
        f"{scoring.TAU_MAX:g}, divided by {scoring.TAU_MAX - 1:g}: 1 = fastest everywhere, "
        f"0 = never within {scoring.TAU_MAX:g}x of the fastest (AlgoPerf's score). Ranked "
        f"by {MEASURE_TEXT[a.measure]}.",
    ]
    return lines


# -- plots -------------------------------------------------------------------------------


def _margins(fig: Any, *, top: float, bottom: float, left: float, right: float = 0.15,
             **spacing: float) -> None:
    """Margins in inches, so that titles and labels keep their room at any figure size."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, top=1 - top / h,
                        bottom=bottom / h, **spacing)




def _profile_plot(a: SuiteAnalysis, path: Path) -> Path:
    from . import plotstyle
    from .report import pyplot

    plt = pyplot()
    measures = [a.measure] + (["steps"] if a.measure != "steps" else [])
    fig, axes = plt.subplots(1, len(measures), figsize=(6.2 * len(measures), 4.6),
                             squeeze=False)
    _margins(fig, top=0.75, bottom=0.6, left=0.65, wspace=0.2)
    table = {k: v for k, v in a.table().items() if v}
    for ax, measure in zip(axes[0], measures):
        ratios = [r for rows in table.values() for r in scoring.ratios(rows, measure).values()
                  if math.isfinite(r)]
        top = max([1.1 * scoring.TAU_MAX, *(1.05 * r for r in ratios)])
        taus = sorted({1.0, top, *[r for r in ratios if r <= top]})
        dense = [1.0]
        for t in taus[1:]:  # a step function: points just before each jump
            dense += [t * (1 - 1e-9), t]
        prof = scoring.profiles(table, measure, dense)
        order = a.ranking()
        series = {o: prof.get(o, [0.0] * len(dense)) for o in order}
        same = plotstyle.coinciding(series)
        for i, o in enumerate(order):
            st = plotstyle.style(i, len(dense), len(order), markers=6)
            label = f"{o}: {a.scores[measure].get(o, 0.0):.2f}"
            label += f" (= {same[o]})" if o in same else ""
            ax.plot(dense, series[o], label=label, drawstyle="steps-post", lw=1.6, **st)
        ax.axvline(scoring.TAU_MAX, color="0.5", lw=0.8, ls=":")
        ax.set_xscale("log")
        ax.set_xlim(1, top)
        plotstyle.readable_log(ax, "x")
        ax.set_ylim(-0.03, 1.03)
        ax.set_xlabel(f"τ: time within τ × the fastest ({MEASURE_TEXT[measure]})")
        ax.set_ylabel("fraction of workloads")
        ax.set_title(f"by {MEASURE_TEXT[measure]}", fontsize=10)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, title="optimizer: score", title_fontsize=7, loc="lower right")
    fig.suptitle(f"Performance profiles, suite {a.suite['name']!r} "
                 f"({_count(len(table), 'workload')}, "
                 f"score = area up to τ = {scoring.TAU_MAX:g})", fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _curves_plot(a: SuiteAnalysis, runs: Sequence[Run], path: Path) -> Path:
    from . import plotstyle
    from .analysis import mean_curve
    from .report import pyplot

    plt = pyplot()
    n = len(a.workloads)
    cols = min(n, 2)
    rows_n = math.ceil(n / cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(max(8.0, 6.4 * cols), 3.6 * rows_n + 0.6),
                             squeeze=False)
    _margins(fig, top=0.8, bottom=0.55, left=0.75, wspace=0.25, hspace=0.45)
    by_id = {r.spec.run_id: r for r in runs}
    index = {o: i for i, o in enumerate(dict.fromkeys(r.optimizer for w in a.workloads
                                                      for r in w.rows))}
    for ax, w in zip(axes.ravel(), a.workloads):
        series = {}
        for r in w.rows:
            group = [by_id[rid] for rid in _row_run_ids(r, runs, w.workload) if rid in by_id]
            steps, mean, _ = mean_curve(group, w.metric)
            series[r.optimizer] = (steps, mean)
        same = plotstyle.coinciding({k: v[1] for k, v in series.items()})
        for opt, (steps, mean) in sorted(series.items(), key=lambda kv: index[kv[0]]):
            values = [100 * v for v in mean] if w.metric == "val_acc" else mean
            # One optimizer keeps its colour, dashes and marker in every panel.
            ax.plot(steps, values, lw=1.4, label=plotstyle.legend_label(opt, same),
                    **plotstyle.style(index[opt], len(steps), len(index)))
        target = 100 * w.target if w.metric == "val_acc" else w.target
        ax.axhline(target, color="k", lw=1, ls="--", label="target")
        finite = [v for _, mean in series.values() for v in mean if math.isfinite(v) and v > 0]
        if w.metric == "val_acc":
            ax.set_ylim(max(0, target - 40), 100)
        elif finite and max(finite) / min(finite + [target]) > 20:  # spans decades
            ax.set_yscale("log")
            plotstyle.readable_log(ax, "y")
        else:
            top = max(finite + [target]) if finite else 1.0
            ax.set_ylim(min(finite + [target]) * 0.95 if finite else 0, top * 1.02)
        ax.set_xlim(0, w.budget_steps)
        ax.set_xlabel("step")
        ax.set_ylabel({"val_acc": "validation accuracy (%)", "val_loss": "validation loss",
                       "distance": "‖θ − θ*‖"}[w.metric])
        ax.set_title(f"{w.workload} (mean over seeds)", fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.suptitle("Validation metric of each row against steps; dashed: the target",
                 fontsize=11)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _row_run_ids(row: Row, runs: Sequence[Run], workload: str) -> list[str]:
    seeds = {t.seed for t in row.runs}
    return [r.spec.run_id for r in runs if r.spec.task == workload and r.spec.role == "main"
            and r.spec.optimizer == row.config and r.spec.schedule == row.schedule
            and r.spec.seed in seeds and r.finished]


# -- documents ---------------------------------------------------------------------------


def render_markdown(a: SuiteAnalysis, plots: list[tuple[str, Path]]) -> str:
    from .report import md_table

    out = [f"# descend suite {a.suite['name']!r} — report", ""]
    if a.command:
        out += [f"`{a.command}`", ""]
    out += [a.machine + " " + cost(a), "", *protocol(a), "", "## Score across workloads", ""]
    out += md_table(summary_headers(a), summary_rows(a))
    for w in a.workloads:
        out += ["", f"## {w.workload}", "", f"Why it is here: {w.why}.", "",
                f"Target: {target_text(w)}; budget {w.budget_steps:,} steps at batch "
                f"{w.batch_size}. {w.how}", "", f"Validation: {w.validation}.", ""]
        out += md_table(WORKLOAD_HEADERS, workload_rows(w))
        out += [""] + [f"- {n}" for n in w.notes]
    out += ["", "## Plots", ""]
    for title, path in plots:
        out += [f"### {title}", "", f"![{title}]({path.name})", ""]
    return "\n".join(out)


def render_html(a: SuiteAnalysis, plots: list[tuple[str, Path]]) -> str:
    from .report import CSS, figure, html_table

    e = html.escape

    title = f"descend suite {a.suite['name']!r} — report"
    parts = ["<!doctype html><html><head><meta charset='utf-8'>", f"<title>{e(title)}</title>",
             f"<style>{CSS}</style></head><body>", f"<h1>{e(title)}</h1>"]
    if a.command:
        parts.append(f"<p><code>{e(a.command)}</code></p>")
    parts += [f"<p>{e(a.machine)} {e(cost(a))}</p>", "<ul class='defs'>",
              *[f"<li>{e(line)}</li>" for line in protocol(a)], "</ul>",
              "<h2>Score across workloads</h2>",
              html_table("comparison", summary_headers(a), summary_rows(a))]
    images = {title: path for title, path in plots}
    if "Performance profiles" in images:
        parts.append(figure("Performance profiles", images["Performance profiles"]))
    for w in a.workloads:
        parts += [f"<h2>{e(w.workload)}</h2>", f"<p>Why it is here: {e(w.why)}.</p>",
                  f"<p>Target: {e(target_text(w))}; budget {w.budget_steps:,} steps at batch "
                  f"{w.batch_size}. {e(w.how)}</p>", f"<p>Validation: {e(w.validation)}.</p>",
                  html_table(f"workload-{w.workload}", WORKLOAD_HEADERS, workload_rows(w))]
        if w.notes:
            parts += ["<ul>", *[f"<li>{e(n)}</li>" for n in w.notes], "</ul>"]
    for title, path in plots:
        if title != "Performance profiles":
            parts.append(figure(title, path))
    parts.append("</body></html>")
    return "\n".join(parts)


def build_suite_report(run_dir: str | Path) -> tuple[SuiteAnalysis, Path]:
    """Score the suite in `run_dir` from its records and write report.html, report.md,
    summary.json and the plots. The caller holds the folder."""
    run_dir = Path(run_dir)
    plan = read_json(run_dir / "suite.json")
    runs = list(read_runs(run_dir))
    a = analyse(plan, runs)
    if not any(w.rows for w in a.workloads):
        from .errors import LabError

        raise LabError(f"{run_dir}: no finished row of the suite yet; run the suite command "
                       "again to finish it")
    plots = [("Performance profiles", _profile_plot(a, run_dir / "profile.png")),
             ("Validation curves", _curves_plot(a, runs, run_dir / "curves.png"))]
    write_text_atomic(run_dir / "report.md", render_markdown(a, plots))
    path = write_text_atomic(run_dir / "report.html", render_html(a, plots))
    write_json_atomic(run_dir / "summary.json", a.to_json())
    return a, path
