"""Run specifications: frozen, JSON-serialisable, and hashed into stable run ids."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

REGIMES = ("full", "sgd", "minibatch")


@dataclass(frozen=True)
class RunSpec:
    """One training run.

    `regime` decides how much data makes each gradient: "full" (the whole training set:
    full-batch gradient descent), "sgd" (one example) or "minibatch" (`batch_size`
    examples). The budget is `epochs` passes over the data, or exactly `steps` steps.
    `role` is "main" for compared runs and "tune" for lr-search trials; `lr_source` says
    where the lr came from ("default", "given", or "tuned").
    """

    task: str
    optimizer: str
    schedule: str = "constant"
    seed: int = 0
    regime: str = "minibatch"
    batch_size: int = 64
    epochs: int | None = 20
    steps: int | None = None
    evals: int = 50
    role: str = "main"
    lr_source: str = "default"
    task_options: tuple[tuple[str, Any], ...] = field(default=())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["task_options"] = [list(kv) for kv in self.task_options]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RunSpec:
        data = dict(data)
        data["task_options"] = tuple(tuple(kv) for kv in data.get("task_options", ()))
        return cls(**data)

    @property
    def run_id(self) -> str:
        text = json.dumps(self.to_json(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def batch(self, n_train: int) -> int:
        return {"full": n_train, "sgd": 1}.get(self.regime, min(self.batch_size, n_train))

    def budget(self, n_train: int) -> tuple[int, int]:
        """(steps per epoch, total steps)."""
        per_epoch = math.ceil(n_train / self.batch(n_train))
        total = self.steps if self.steps is not None else per_epoch * (self.epochs or 1)
        return per_epoch, total

    @property
    def label(self) -> str:
        """How the report names this configuration (seeds are averaged over)."""
        parts = [self.optimizer]
        if self.schedule != "constant":
            parts.append(f"[{self.schedule}]")
        if self.regime != "minibatch":
            parts.append(f"({self.regime})")
        if self.lr_source == "tuned":
            parts.append("tuned")
        return " ".join(parts)
