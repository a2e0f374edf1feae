"""The one place the lab prints to people: tables and progress bars (rich), on one console.

Machines get JSON instead (``--json``), printed by the CLI.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .spec import RunSpec


def terminal() -> Any:
    """The console the lab prints through. Off a terminal (CI logs, pipes) rich would wrap
    at 80 columns; the tables need more."""
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 180)


def print_table(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], *,
                notes: Sequence[str] = (), console: Any = None, show_header: bool = True,
                left: Sequence[str] = ()) -> None:
    """A table; the first column and those named in `left` are left-aligned. Cells are
    plain text (a label like "adam [cosine]" is not rich markup)."""
    from rich.markup import escape
    from rich.table import Table

    console = console or terminal()
    table = Table(title=title, title_style="bold", show_header=show_header)
    for i, h in enumerate(headers):
        table.add_column(h, justify="left" if i == 0 or h in left else "right",
                         style="bold" if i == 0 and not show_header else None)
    for row in rows:
        table.add_row(*(escape(str(c)) for c in row))
    console.print(table)
    for note in notes:
        console.print(escape(note))


def print_comparison(cmp: Any, console: Any = None) -> None:
    from .report import headers, table_rows

    print_table("descend compare", headers(cmp), table_rows(cmp),
                notes=[*(f"  {n}" for n in cmp.noise), *(f"  • {line}" for line in cmp.lines)],
                console=console)


def print_suite(analysis: Any, console: Any = None) -> None:
    """A suite's score table, then each workload's table with its noise notes."""
    from .suitereport import (
        WORKLOAD_HEADERS,
        cost,
        summary_headers,
        summary_rows,
        target_text,
        workload_rows,
    )

    console = console or terminal()
    for w in analysis.workloads:
        print_table(f"{w.workload}: {target_text(w)} within {w.budget_steps:,} steps",
                    WORKLOAD_HEADERS, workload_rows(w), console=console,
                    notes=[f"  {n}" for n in w.notes])
    print_table(f"descend suite {analysis.suite['name']!r} — score across workloads",
                summary_headers(analysis), summary_rows(analysis), console=console,
                notes=[f"  {analysis.machine} {cost(analysis)}"])


class ProgressDisplay:
    """Progress bars: one for the whole grid, one per run in flight with its loss."""

    def __init__(self, total: int, enabled: bool = True, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        # On stderr: a command's output (its tables, or --json) stays clean on stdout.
        self.progress = Progress(TextColumn("{task.description:<42}"), BarColumn(),
                                 MofNCompleteColumn(), TextColumn("{task.fields[loss]}"),
                                 TimeElapsedColumn(), console=console or terminal_err(),
                                 disable=not enabled)
        self.overall = self.progress.add_task("all runs", total=total, loss="")
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> ProgressDisplay:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def skip(self, n: int) -> None:
        """Runs already finished in the folder count as done."""
        self.progress.advance(self.overall, n)

    def start(self, spec: RunSpec) -> None:
        tag = " (lr trial)" if spec.role == "tune" else ""
        self.tasks[spec.run_id] = self.progress.add_task(
            f"{spec.label} seed {spec.seed}{tag}"[:42], total=None, loss="")

    def update(self, run_id: str, step: int, total: int, loss: float) -> None:
        if run_id in self.tasks:
            self.progress.update(self.tasks[run_id], completed=step, total=total,
                                 loss=f"loss {loss:.4g}")

    def done(self, run_id: str) -> None:
        task = self.tasks.pop(run_id, None)
        if task is not None:
            self.progress.remove_task(task)
        self.progress.advance(self.overall)


class TrialBar:
    """One bar for an Optuna study: finished trials, and the best value so far."""

    def __init__(self, total: int, enabled: bool, done: int, console: Any = None) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        self.progress = Progress(TextColumn("trials"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[best]}"), disable=not enabled,
                                 console=console or terminal_err())
        self.task = self.progress.add_task("trials", total=total, completed=done, best="")

    def __enter__(self) -> TrialBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def callback(self, study: Any, trial: Any) -> None:
        from optuna.trial import TrialState

        if trial.state in (TrialState.COMPLETE, TrialState.PRUNED):
            self.progress.advance(self.task)
        try:
            best = f"best val loss {study.best_value:.4g}"
        except ValueError:
            best = ""
        self.progress.update(self.task, best=best)


class StepBar:
    """One progress bar for a command made of counted steps (paths to run, frames to
    draw): `update(what, done, total)` shows what is being done, and how far along."""

    def __init__(self, enabled: bool = True, console: Any = None) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        self.progress = Progress(TextColumn("{task.description:<34}"), BarColumn(),
                                 MofNCompleteColumn(), TimeElapsedColumn(),
                                 console=console or terminal_err(), disable=not enabled,
                                 transient=True)
        self.task = self.progress.add_task("", total=None)

    def __enter__(self) -> StepBar:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, what: str, done: int, total: int) -> None:
        self.progress.update(self.task, description=what[:34], completed=done, total=total)


def terminal_err() -> Any:
    """Progress goes to stderr, so that a command's output (a table, JSON) stays clean."""
    from rich.console import Console

    return Console(stderr=True)
