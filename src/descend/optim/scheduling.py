"""Schedules attached to an optimizer's hyperparameters, and where their state lives.

The schedule objects are code: they stay in a list beside the param groups, never in them,
so that every state dict of the optimizer is plain data (ZeroRedundancyOptimizer builds its
consolidated state dict from the param groups directly, and `torch.load(weights_only=True)`
refuses arbitrary objects). Everything a schedule needs to resume is plain data kept in
the group, where torch's tooling carries it:

- ``schedule_step``: the group's clock, the number of steps its schedules have driven;
- ``scheduled``: the values the schedules wrote for the next step (a different value in the
  group at step time was written by someone else, and is honoured for that step);
- ``plateau``: the state of each `ReduceOnPlateau` controller among the group's schedules.

Before each step the group is reconciled with what was last written here. If it holds that
exactly, nothing happens. If it holds an *older* copy of it, a wrapper synced stale values
into it (ZeroRedundancyOptimizer copies its own groups into the local optimizer's before
every step, undoing a `report` or `set_hyperparameter` made in between): the latest values
are put back, except where someone wrote a value of their own. Anything else is a restore
(a state dict loaded by torch's tooling): the controllers are reloaded from the group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..schedules import controllers, evaluate, is_scheduled

_UNSET = object()
_HISTORY = 4  # written records remembered per group, to recognise stale copies of them


class Schedules:
    """The schedules of each param group of one optimizer (aligned with `param_groups`)."""

    def __init__(self) -> None:
        self.by_group: list[dict[str, Any]] = []
        self._written: list[list[dict[str, Any]]] = []

    @staticmethod
    def split(merged: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in merged.items() if is_scheduled(v)}

    def add(self, group: dict[str, Any], schedules: dict[str, Any]) -> None:
        self.by_group.append(dict(schedules))
        self._written.append([])
        self.write(len(self.by_group) - 1, group)

    def controllers(self, gi: int) -> list[Any]:
        return [c for s in self.by_group[gi].values() for c in controllers(s)]

    def write(self, gi: int, group: dict[str, Any]) -> None:
        """Write the schedules' values at the group's clock into the group."""
        clock = group["schedule_step"]
        current = {k: evaluate(v, clock) for k, v in self.by_group[gi].items()}
        group.update(current)
        record = {"schedule_step": clock, "scheduled": current}
        found = self.controllers(gi)
        if found:
            record["plateau"] = [c.state_dict() for c in found]
        group.update(record)
        self._written[gi] = (self._written[gi] + [record])[-_HISTORY:]

    def sync(self, gi: int, group: dict[str, Any]) -> None:
        """Reconcile the group with what was last written here (see the module docstring)."""
        written = self._written[gi]
        scheduled = group.get("scheduled")
        if written and scheduled is written[-1]["scheduled"]:
            return
        stale = next((r for r in written[:-1] if r["scheduled"] is scheduled), None)
        if stale is not None:
            latest = written[-1]
            for name, value in latest["scheduled"].items():
                if group.get(name, _UNSET) == stale["scheduled"].get(name, _UNSET):
                    group[name] = value
            group.update(latest)
            return
        for controller, state in zip(self.controllers(gi), group.get("plateau") or ()):
            controller.load_state_dict(state)
        # Values that differ from what the saved schedules wrote were written by hand before
        # the save, and stay for one step; a state dict without ``scheduled`` (torch's, or
        # descend 0.1's) says nothing of the kind.
        overrides = {} if scheduled is None else {
            k: group[k] for k in self.by_group[gi] if scheduled.get(k, _UNSET) != group[k]}
        self.write(gi, group)
        group.update(overrides)

    def advance(self, gi: int, group: dict[str, Any]) -> None:
        """After a step: count it, unless a written value replaced a scheduled one (the
        schedule then resumes where it was), and write the values for the next step."""
        schedules = self.by_group[gi]
        if not schedules:
            group["schedule_step"] += 1
            return
        scheduled = group["scheduled"]
        if all(scheduled.get(k, _UNSET) == group[k] for k in schedules):
            group["schedule_step"] += 1
        self.write(gi, group)

    def replace(self, gi: int, group: dict[str, Any], name: str, value: Any,
                check: Callable[[dict[str, Any]], None]) -> None:
        check({**group, name: evaluate(value, group["schedule_step"])})
        self.by_group[gi].pop(name, None)
        if is_scheduled(value):
            self.by_group[gi][name] = value
        else:
            group[name] = value
        self.write(gi, group)

    def report(self, groups: list[dict[str, Any]], metric: float) -> list[Any]:
        seen: dict[int, tuple[Any, dict[str, Any]]] = {}
        for gi, group in enumerate(groups):
            self.sync(gi, group)
            for controller in self.controllers(gi):
                seen.setdefault(id(controller), (controller, group))
        reductions = [c.report(metric, group["schedule_step"]) for c, group in seen.values()]
        for gi, group in enumerate(groups):
            if self.by_group[gi]:
                self.write(gi, group)
        return [r for r in reductions if r is not None]
