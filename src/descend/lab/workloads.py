"""Workloads: a task, a step budget per size, a validation metric and its target.

A workload is what a benchmark suite (`suite.py`) times optimizers on, in the manner of
MLCommons AlgoPerf (Dahl et al., 2023): a fixed model, data and budget, and a validation
target that a well-tuned optimizer reaches within the budget. "Time to target" is then
the measure, and an optimizer that never reaches it is charged the whole budget.

Targets are not invented: `targets.py` sets them from tuned reference runs and writes
them, with how they were obtained, to ``targets.json`` beside this module. A size
without a declared target cannot be benchmarked until its targets are set (see
`benchmarks/set_targets.py`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from .errors import LabError
from .spec import RunSpec
from .tasks import SIZES, Task, get_task

TARGETS_FILE = Path(__file__).with_name("targets.json")


@dataclass(frozen=True)
class Budget:
    """What one run of a workload may spend at one size."""

    steps: int
    batch_size: int
    evals: int


@dataclass(frozen=True)
class Workload:
    """A task with its budgets, its validation metric and the reason it is in the suite.

    `metric` is a key of the runs' evaluation records (``val_loss``, ``val_acc``, or
    ``distance``, the distance to a known optimum); `sized` says whether the task itself
    (its model and data) changes with the size, or only the budget does.
    """

    name: str
    metric: str
    higher_is_better: bool
    budgets: Mapping[str, Budget]
    why: str
    sized: bool = False

    def budget(self, size: str) -> Budget:
        if size not in self.budgets:
            raise ValueError(f"workload {self.name!r} has no size {size!r}; available: "
                             f"{', '.join(self.budgets)}")
        return self.budgets[size]

    def task_options(self, size: str) -> tuple[tuple[str, Any], ...]:
        return (("size", size),) if self.sized else ()

    def task(self, size: str) -> Task:
        return get_task(self.name, **dict(self.task_options(size)))

    def spec(self, size: str, optimizer: str, schedule: str, seed: int, *, role: str = "main",
             lr_source: str = "tuned", fraction: float = 1.0) -> RunSpec:
        """A run of this workload; `fraction` < 1 shortens the budget (target setting)."""
        b = self.budget(size)
        steps = self.budget_steps(size, fraction)
        return RunSpec(task=self.name, optimizer=optimizer, schedule=schedule, seed=seed,
                       regime="minibatch", batch_size=b.batch_size, epochs=None, steps=steps,
                       evals=max(2, round(b.evals * fraction)), role=role, lr_source=lr_source,
                       task_options=self.task_options(size))

    def budget_steps(self, size: str, fraction: float = 1.0) -> int:
        return max(1, round(self.budget(size).steps * fraction))

    def target(self, size: str) -> Target | None:
        entry = load_targets().get(self.name, {}).get(size)
        return None if entry is None else Target.from_json(self.name, size, entry)

    def metric_name(self) -> str:
        return {"val_loss": "validation loss", "val_acc": "validation accuracy",
                "distance": "distance to the optimum"}[self.metric]


@dataclass(frozen=True)
class Target:
    """A declared validation target, and how it was set."""

    workload: str
    size: str
    value: float
    how: str
    reference: dict[str, Any]

    @classmethod
    def from_json(cls, workload: str, size: str, data: Mapping[str, Any]) -> Target:
        return cls(workload, size, float(data["target"]), str(data.get("how", "")),
                   dict(data.get("reference", {})))


def validation_text(workload: Workload, task: Task) -> str:
    """The validation set's size and what one unit of the metric means, for reports."""
    data = task.splits
    n = len(data.x_val)
    if workload.metric == "val_acc":
        return (f"{n:,} validation examples: one example is {100 / n:.2f} points of "
                "accuracy, so smaller differences cannot be measured")
    if workload.metric == "distance":
        return ("the distance ‖θ − θ*‖ to the least-squares optimum of the training set, "
                "computed exactly from the parameters (no sampling error); "
                f"{n:,} validation examples are reported beside it")
    if data.x_val.dim() == 2 and not data.x_val.is_floating_point():
        tokens = data.x_val.numel()
        return (f"{n:,} validation windows of {data.x_val.shape[1]} bytes ({tokens:,} "
                "predicted bytes), loss averaged over all of them")
    return f"{n:,} validation examples, loss averaged over all of them"


def _sizes(test: tuple[int, int, int], quick: tuple[int, int, int],
           default: tuple[int, int, int], large: tuple[int, int, int]) -> dict[str, Budget]:
    return dict(zip(SIZES, (Budget(*test), Budget(*quick), Budget(*default), Budget(*large))))


# Budgets are (steps, batch size, evaluations). "default" is about two minutes or less
# per run on one core of this project's machine; "quick" a few seconds (the quick suite);
# "test" the size of the tests.
WORKLOADS: dict[str, Workload] = {w.name: w for w in (
    Workload("pydoc-gpt", "val_loss", False,
             _sizes((400, 16, 8), (500, 32, 10), (2500, 32, 25), (6000, 32, 30)),
             "attention models train much faster with adaptive methods than with SGD "
             "(Zhang et al. 2020; Kunstner et al. 2023)", sized=True),
    Workload("mnist1d-cnn", "val_acc", True,
             _sizes((300, 100, 6), (1200, 100, 12), (6000, 100, 30), (24000, 100, 40)),
             "a small CNN on a dataset built to separate architectures and optimizers "
             "(Greydanus 2020)"),
    Workload("mnist1d-mlp", "val_acc", True,
             _sizes((300, 100, 6), (1500, 100, 12), (6000, 100, 30), (24000, 100, 40)),
             "the MLP baseline of MNIST-1D"),
    Workload("digits-mlp", "val_acc", True,
             _sizes((200, 64, 5), (600, 64, 12), (2000, 64, 20), (8000, 64, 40)),
             "a small MLP on real handwritten digits: most optimizers do well"),
    Workload("linreg", "distance", False,
             _sizes((200, 32, 5), (500, 32, 10), (2000, 32, 20), (8000, 32, 40)),
             "convex, ill-conditioned (condition number about 100), with a known optimum"),
    Workload("digits-autoencoder", "val_loss", False,
             _sizes((500, 64, 5), (3000, 64, 12), (20000, 64, 25), (60000, 64, 40)),
             "a deep logistic autoencoder: SGD and momentum sit on its plateau "
             "(Hinton & Salakhutdinov 2006; Martens 2010), adaptive methods leave it"),
)}


def get_workload(name: str) -> Workload:
    try:
        return WORKLOADS[name]
    except KeyError:
        raise ValueError(f"unknown workload {name!r}; available: {', '.join(WORKLOADS)}"
                         ) from None


@cache
def _read_targets(path: Path, mtime: float) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise LabError(f"{path} is corrupt: {e}") from None


def load_targets(path: Path = TARGETS_FILE) -> dict[str, Any]:
    """The declared targets: {workload: {size: {"target", "how", "reference"}}}."""
    if not path.exists():
        return {}
    return _read_targets(path, path.stat().st_mtime)
