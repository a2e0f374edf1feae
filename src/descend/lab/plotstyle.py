"""Lines that stay distinguishable when they overlap.

Two optimizers with the same learning rate draw the same lr curve; EMA momentum and
heavy-ball momentum trace the same path when their lrs differ by 1/(1 - beta). Colour
alone then shows only the line drawn last. Every series gets a colour, a dash pattern and
a marker placed at its own offset along the line, and a series equal to an earlier one is
named in the legend ("= adam"), so coinciding lines can be seen and read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

DASHES = ["-", (0, (5, 2)), (0, (1, 1.5)), (0, (6, 2, 1, 2)), (0, (3, 1, 1, 1, 1, 1)),
          (0, (8, 3))]
MARKERS = ["o", "s", "^", "D", "v", "P", "X", "<", ">", "*"]


def style(i: int, n_points: int, n_series: int = 1, markers: int = 8) -> dict[str, Any]:
    """Matplotlib keyword arguments for the i-th series of a plot: colour, dashes, and
    about `markers` markers, staggered so that coinciding series show every marker."""
    every = max(1, n_points // max(1, markers))
    offset = (i * every // max(1, n_series)) % every if n_points > 1 else 0
    return {"color": f"C{i % 10}", "linestyle": DASHES[i % len(DASHES)],
            "marker": MARKERS[i % len(MARKERS)], "markevery": (offset, every),
            "markersize": 4.5}


def coinciding(series: Mapping[Any, Any], rtol: float = 1e-9, atol: float = 0.0
               ) -> dict[Any, Any]:
    """label -> the earlier label whose series it equals (same shape, equal values to
    `rtol` and `atol`); series equal to no earlier one are absent."""
    same: dict[Any, Any] = {}
    seen: list[tuple[Any, np.ndarray]] = []
    for label, values in series.items():
        arr = np.asarray(values, dtype=float)
        for other, prev in seen:
            if prev.shape == arr.shape and np.allclose(arr, prev, rtol=rtol, atol=atol,
                                                        equal_nan=True):
                same[label] = same.get(other, other)
                break
        else:
            seen.append((label, arr))
    return same


def legend_label(label: str, same: Mapping[str, str]) -> str:
    return f"{label} (= {same[label]})" if label in same else label


def readable_log(ax: Any, axis: str = "y") -> None:
    """Tick labels a person reads at a glance on a log axis that spans less than two
    decades ("1.5", "2", "3" rather than "2 × 10⁰"); wider axes keep powers of ten."""
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullFormatter

    lo, hi = ax.get_ylim() if axis == "y" else ax.get_xlim()
    if not (lo > 0 and hi > 0) or hi / lo > 100:
        return
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)))
    target.set_major_formatter(FormatStrFormatter("%g"))
    target.set_minor_formatter(NullFormatter())
