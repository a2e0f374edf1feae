"""The learning-rate range test (Smith, 2017; popularised by fastai): sweep the lr over
`steps` mini-batches (100 by default), watch the loss, suggest an lr, and put everything
back.

The loss is smoothed twice. While sweeping, a causal exponential moving average decides
when the loss has diverged (the sweep stops). For the suggestions and the plot, the loss
is smoothed forwards and backwards (no lag): a causal average trails the raw loss by
beta / (1 - beta) steps, about half of a 100-step sweep at fastai's beta = 0.98, which
put every suggestion to the left of where the loss really falls.

Suggestion rules (all are reported; none is "the" answer):
- ``steepest``: the lr where the smoothed loss falls fastest against log(lr).
- ``minimum/10``: the lr of the lowest smoothed loss, divided by 10 (the loss is already
  turning there, so a tenth of it is a safe, still-fast rate).
- ``valley``: fastai's idea (the middle of the long descent), on the steep part only: the
  stretch around the steepest point where the loss falls at least half as fast, and the
  lr in its middle (geometric mean of its ends). fastai's own rule takes the longest
  decreasing subsequence of the loss, which on a long flat start that drifts down by
  noise is mostly that flat start, so it suggested lrs where nothing happens yet.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .tasks import _materialise


@dataclass
class LRFindResult:
    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    suggestions: dict[str, float]
    stopped_early: bool
    stop_reason: str
    settings: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def schedule_args(self, optimizer: str, schedule: str = "onecycle",
                      rule: str = "valley") -> list[str]:
        """Arguments for ``descend compare`` that train around the suggested lr: the
        schedule peaks at the suggestion (see `PEAK_WHY`)."""
        from .registry import canonical_optimizer, canonical_schedule, with_lr

        peak = self.suggestions.get(rule) or next(iter(self.suggestions.values()))
        return ["--optimizers", with_lr(canonical_optimizer(optimizer), float(f"{peak:.3g}")),
                "--schedule", canonical_schedule(schedule)]


# The schedules lr-find suggests, peaking at the suggested lr. Both spend most of the run
# below their peak (1cycle warms up from peak/25 and anneals to nearly 0; warmup-cosine
# decays to 0), so a peak at the middle of the steep descent is a conservative choice, and
# fastai's: fit_one_cycle(lr_max=suggestion).
PEAK_SCHEDULES = ("onecycle", "warmup-cosine")
PEAK_WHY = ("the schedule peaks at the suggestion itself (fastai's practice: "
            "fit_one_cycle(lr_max=suggestion)); it spends most of the run below it")


def lr_schedule(start: float, end: float, steps: int, mode: str) -> list[float]:
    if not (0 < start < end) or not math.isfinite(end):
        raise ValueError(f"need 0 < start < end, got start={start!r}, end={end!r}")
    if steps < 2:
        raise ValueError(f"steps must be >= 2, got {steps!r}")
    if mode == "exp":
        return [start * (end / start) ** (i / (steps - 1)) for i in range(steps)]
    if mode == "linear":
        return [start + (end - start) * i / (steps - 1) for i in range(steps)]
    raise ValueError(f"mode must be 'exp' or 'linear', got {mode!r}")


class EMA:
    """Exponential moving average with bias correction: avg_t / (1 - beta^t)."""

    def __init__(self, beta: float) -> None:
        self.beta, self.avg, self.t = beta, 0.0, 0

    def update(self, value: float) -> float:
        self.t += 1
        self.avg = self.beta * self.avg + (1 - self.beta) * value
        return self.avg / (1 - self.beta**self.t)


def smooth(losses: list[float], beta: float) -> list[float]:
    ema = EMA(beta)
    return [ema.update(v) for v in losses]


def zero_lag(losses: list[float], window: int) -> list[float]:
    """An exponential moving average run forwards, then backwards over the result: the
    lags cancel, so a fall in the loss stays at the lr where it happened. `window` is the
    average's reach in steps (beta = 1 - 1/window)."""
    beta = 1 - 1 / max(1, window)
    forward = smooth(losses, beta)
    return smooth(forward[::-1], beta)[::-1]


def smoothing_window(steps: int) -> int:
    """About 4% of the sweep, at least 2 steps: enough to quiet mini-batch noise, short
    enough to keep the shape of a descent that spans a tenth of the sweep."""
    return max(2, round(0.04 * steps))


def steep_stretch(lrs: list[float], values: np.ndarray) -> tuple[int, int, int]:
    """(start, steepest, end): the steepest point of the descent before the minimum, and
    the stretch around it where the loss falls at least half as fast."""
    logs = np.log(np.asarray(lrs))
    slope = np.gradient(values, logs)
    lowest = int(np.argmin(values))
    # Ignore the noisy first steps, as every implementation of this rule does.
    skip = min(len(values) // 10, 10)
    stop = max(skip + 1, lowest + 1)
    steepest = skip + int(np.argmin(slope[skip:stop]))
    half = 0.5 * slope[steepest]
    start = end = steepest
    while start > skip and slope[start - 1] <= half:
        start -= 1
    while end + 1 < stop and slope[end + 1] <= half:
        end += 1
    return start, steepest, end


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    values = np.asarray(smoothed)
    if len(values) < 3:
        return {}
    start, steepest, end = steep_stretch(lrs, values)
    lowest = int(np.argmin(values))
    return {"steepest": float(lrs[steepest]), "minimum/10": float(lrs[lowest] / 10),
            "valley": float(math.sqrt(lrs[start] * lrs[end]))}


def lr_find(model: nn.Module, loss_fn: Callable[[Tensor, Tensor], Tensor],
            data: tuple[Tensor, Tensor] | Iterable, optimizer: torch.optim.Optimizer, *,
            start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100,
            mode: str = "exp", batch_size: int = 64, beta: float = 0.98,
            diverge_factor: float = 4.0, seed: int = 0,
            progress: Callable[[str, int, int], None] | None = None) -> LRFindResult:
    """Run the range test on `model` with `optimizer` (any torch or descend optimizer),
    then restore the model's parameters and buffers, the optimizer's state and lrs, and
    torch's RNG state, bit for bit.

    The lr follows `mode` from `start_lr` to `end_lr` over `steps` mini-batches of
    `batch_size`, drawn with a generator seeded by `seed`. The sweep stops early once the
    smoothed loss exceeds `diverge_factor` times its minimum, or is not finite.
    """
    x, y = _materialise(*data, "data") if isinstance(data, tuple) else _materialise(data, None,
                                                                                     "data")
    lrs = lr_schedule(start_lr, end_lr, steps, mode)
    saved_model = copy.deepcopy(model.state_dict())
    saved_opt = copy.deepcopy(optimizer.state_dict())
    saved_rng = torch.get_rng_state()
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    smoothed: list[float] = []
    reason = "finished the sweep"
    used: list[float] = []
    ema = EMA(beta)
    lowest = math.inf
    try:
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        cursor = 0
        for lr in lrs:
            if cursor + batch_size > len(x):
                perm, cursor = torch.randperm(len(x), generator=gen), 0
            idx = perm[cursor:cursor + batch_size]
            cursor += batch_size
            for group in optimizer.param_groups:
                group["lr"] = lr
            optimizer.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            value = float(loss.detach())
            if not math.isfinite(value):
                reason = f"loss not finite at lr={lr:.3g}"
                break
            loss.backward()
            optimizer.step()
            used.append(lr)
            losses.append(value)
            if progress is not None:
                progress(f"lr-find: lr {lr:.2g}", len(used), steps)
            smoothed.append(ema.update(value))
            lowest = min(lowest, smoothed[-1])
            if smoothed[-1] > diverge_factor * lowest:
                reason = (f"smoothed loss above {diverge_factor:g}x its minimum at "
                          f"lr={lr:.3g}")
                break
    finally:
        model.load_state_dict(saved_model)
        optimizer.load_state_dict(saved_opt)
        torch.set_rng_state(saved_rng)
    # The causal average decided when to stop; the suggestions see the loss without lag.
    smoothed = zero_lag(losses, smoothing_window(steps)) if losses else []
    return LRFindResult(used, losses, smoothed, suggest(used, smoothed),
                        stopped_early=len(used) < steps, stop_reason=reason,
                        settings={"start_lr": start_lr, "end_lr": end_lr, "steps": steps,
                                  "mode": mode, "batch_size": batch_size, "beta": beta,
                                  "diverge_factor": diverge_factor, "seed": seed})


def plot(result: LRFindResult, path: str | Path, title: str = "learning-rate range test"
         ) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), constrained_layout=True)
    ax.plot(result.lrs, result.losses, color="0.6", lw=0.8, label="loss (each mini-batch)")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss (no lag)")
    values = np.asarray(result.smoothed)
    if len(values) >= 3:
        start, _, end = steep_stretch(result.lrs, values)
        ax.axvspan(result.lrs[start], result.lrs[end], color="C3", alpha=0.08,
                   label="steep descent (≥ half the steepest slope)")
    markers = {"steepest": ("C1", "v"), "minimum/10": ("C2", "s"), "valley": ("C3", "o")}
    for name, lr in result.suggestions.items():
        i = int(np.argmin(np.abs(np.log(result.lrs) - math.log(lr))))
        color, marker = markers.get(name, ("k", "x"))
        ax.plot([lr], [result.smoothed[i]], marker=marker, color=color, markersize=9,
                linestyle="none", label=f"{name}: {lr:.2g}")
    ax.set_xscale("log" if result.settings.get("mode", "exp") == "exp" else "linear")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"{title} ({result.stop_reason})", fontsize=10)
    # Every loss the sweep saw, raw ones included, up to where the run blew up.
    finite = [v for v in [*result.losses, *result.smoothed] if math.isfinite(v)]
    if finite:
        first = result.smoothed[0] if result.smoothed else max(finite)
        low = min(finite)
        high = min(max(finite), first + 0.5 * abs(first))  # not the blow-up's heights
        pad = 0.05 * (high - low or abs(high) or 1.0)
        ax.set_ylim(low - pad, high + pad)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


@dataclass
class LRFindReport:
    """What `find_lr` wrote: the sweep, the optimizer it swept, and the files."""

    result: LRFindResult
    task: str
    optimizer: str
    compare_args: list[str]
    plot: Path
    json: Path

    def to_json(self) -> dict[str, Any]:
        return {**{k: v for k, v in self.result.to_json().items()
                   if k not in ("lrs", "losses", "smoothed")},
                "task": self.task, "optimizer": self.optimizer,
                "compare_args": self.compare_args,
                "peak_why": PEAK_WHY, "plot": str(self.plot),
                "json": str(self.json)}


RULES = ("valley", "steepest", "minimum/10")


def find_lr(task: str = "digits-mlp", optimizer: str = "adam", *, start: float = 1e-7,
            end: float = 10.0, steps: int = 100, mode: str = "exp",
            batch_size: int | None = None, seed: int = 0, schedule: str = "onecycle",
            rule: str = "valley", out: str | Path | None = None,
            data_dir: str | None = None,
            progress: Callable[[str, int, int], None] | None = None) -> LRFindReport:
    """The range test on a lab task: builds the task's model and the optimizer spec, runs
    `lr_find`, and writes ``lr_find.png`` and ``lr_find.json`` into `out` (default
    runs/lr-find/TASK). Everything is validated before anything is written."""
    from .lock import folder_lock
    from .records import write_json_atomic
    from .registry import build_optimizer, canonical_optimizer, canonical_schedule
    from .runner import one_thread
    from .tasks import get_task

    spec = canonical_optimizer(optimizer)
    if canonical_schedule(schedule).split(":")[0] not in PEAK_SCHEDULES:
        raise ValueError(f"schedule must be onecycle or warmup-cosine, got {schedule!r}")
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    lr_schedule(start, end, steps, mode)
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    lab_task = get_task(task, **({"data_dir": data_dir} if data_dir else {}))
    with one_thread():
        data = lab_task.splits
    with folder_lock(Path(out or Path("runs") / "lr-find" / task)) as folder:
        torch.manual_seed(seed)
        model = lab_task.make_model()
        opt = build_optimizer(spec, model)
        result = lr_find(model, lab_task.loss, (data.x_train, data.y_train), opt,
                         start_lr=start, end_lr=end, steps=steps, mode=mode,
                         batch_size=batch_size or lab_task.batch_size, seed=seed,
                         progress=progress)
        png = plot(result, folder / "lr_find.png", title=f"{task}, {spec}")
        args = result.schedule_args(spec, schedule, rule) if result.suggestions else []
        report = LRFindReport(result, task, spec, args, png, folder / "lr_find.json")
        write_json_atomic(report.json, {**result.to_json(), **report.to_json()}, indent=1)
    return report
