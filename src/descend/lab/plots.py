"""Plots computed from data (schedules, saved records); PNG files via matplotlib's Agg."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from descend.schedules import Schedule  # noqa: E402


def _curve(schedule: Schedule | Sequence[float], n_steps: int) -> Sequence[float]:
    return schedule.values(n_steps) if isinstance(schedule, Schedule) else schedule[:n_steps]


def plot_schedules(schedules: Mapping[str, Schedule | Sequence[float]], n_steps: int,
                   path: str | Path, *,
                   title: str = "Learning-rate schedules", log: bool = False,
                   ncols: int = 1) -> Path:
    """Draw one or several schedules over ``n_steps`` steps into a PNG.

    A value may also be a recorded curve (a list of floats), e.g. the lr a metric-driven
    controller actually produced. With ``ncols > 1`` each schedule gets its own panel;
    otherwise all share one axis.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(schedules)
    if ncols > 1:
        nrows = -(-len(names) // ncols)
        fig, axes = plt.subplots(nrows, ncols, figsize=(3.2 * ncols, 2.2 * nrows),
                                 squeeze=False, constrained_layout=True)
        flat = axes.ravel()
        for ax, name in zip(flat, names):
            ax.plot(_curve(schedules[name], n_steps), color="C0", lw=1.6)
            ax.set_title(name, fontsize=9)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
            if log:
                ax.set_yscale("log")
        for ax in flat[len(names):]:
            ax.axis("off")
        fig.suptitle(title)
    else:
        fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
        for name in names:
            ax.plot(_curve(schedules[name], n_steps), label=name, lw=1.6)
        ax.set_xlabel("step")
        ax.set_ylabel("value")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        if log:
            ax.set_yscale("log")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
