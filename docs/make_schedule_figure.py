"""Draw docs/img/schedules.png: every schedule of the README's table, one panel each.

Run: .venv/bin/python docs/make_schedule_figure.py
"""

from pathlib import Path

import descend.schedules as S
from descend.lab.plots import plot_schedules

N = 1000
plateau = S.reduce_on_plateau(S.linear_warmup(0.1, 100), factor=0.1, patience=0)
# A scripted validation loss, reported every 50 steps, that stalls twice; the panel shows
# the lr the controller actually produced.
plateau_lrs = []
for step in range(N):
    plateau_lrs.append(plateau(step))
    if step % 50 == 49:
        plateau.report(1.0 if step in (399, 749) else 1.0 - step / N, step + 1)

SCHEDULES = {
    "exponential_decay(0.1, 0.997)": S.exponential_decay(0.1, 0.997),
    "inverse_time_decay(0.1, 0.01)": S.inverse_time_decay(0.1, 0.01),
    "step_decay(0.1, 0.5, 200)": S.step_decay(0.1, 0.5, 200),
    "multi_step(0.1, [300, 600, 800])": S.multi_step(0.1, [300, 600, 800]),
    "polynomial(0.1, 0, 1000, power=2)": S.polynomial(0.1, 0.0, N, power=2.0),
    "cosine(0.1, 1000)": S.cosine(0.1, N),
    "cosine_restarts(0.1, 100, 2)": S.cosine_restarts(0.1, 100, period_mult=2),
    "warmup_cosine(0.1, 100, 1000)": S.warmup_cosine(0.1, 100, N),
    "warmup_stable_decay(0.1, 100, 1000, 200)": S.warmup_stable_decay(0.1, 100, N, 200),
    "one_cycle(0.1, 1000)": S.one_cycle(0.1, N),
    "cyclic(0.01, 0.1, 100, 'triangular2')": S.cyclic(0.01, 0.1, 100, mode="triangular2"),
    "reduce_on_plateau(linear_warmup(0.1, 100))": plateau_lrs,
}

if __name__ == "__main__":
    out = plot_schedules(SCHEDULES, N, Path(__file__).parent / "img" / "schedules.png",
                         ncols=3)
    print(out)
