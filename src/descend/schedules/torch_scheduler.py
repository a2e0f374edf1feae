"""Drive any torch optimizer with descend schedules, as a torch LR scheduler."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from .base import Schedule, evaluate, is_scheduled
from .plateau import controllers

Schedules = Mapping[str, Any]


class ScheduledHyperparameters(torch.optim.lr_scheduler.LRScheduler):
    """A `torch.optim.lr_scheduler.LRScheduler` that sets hyperparameters from schedules.

    ::

        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        sched = ScheduledHyperparameters(opt, {"lr": warmup_cosine(0.1, 500, 10_000),
                                               "momentum": linear(0.85, 0.95, 10_000)})
        ...  # after each opt.step(): sched.step()

    Args:
        optimizer: any torch optimizer.
        schedules: a Schedule (for ``lr``), a mapping ``{hyperparameter: schedule}`` applied
            to every param group, or a list of such mappings, one per group. A value for
            ``betas`` is a pair whose entries are schedules or numbers.
        last_epoch: as for torch schedulers; -1 starts fresh.

    Values are absolute (the schedule gives the lr, not a multiplier of the group's initial
    lr). The value at scheduler step ``k`` is ``schedule(k)``. `state_dict` holds the step
    and the state of any `ReduceOnPlateau` inside, not the schedules themselves: rebuild the
    scheduler with the same schedules, then load.
    """

    def __init__(self, optimizer: torch.optim.Optimizer,
                 schedules: Schedule | Schedules | Sequence[Schedules],
                 last_epoch: int = -1) -> None:
        n = len(optimizer.param_groups)
        if isinstance(schedules, Schedule):
            schedules = {"lr": schedules}
        if isinstance(schedules, Mapping):
            schedules = [schedules] * n
        schedules = [dict(s) for s in schedules]
        if len(schedules) != n:
            raise ValueError(f"schedules: got {len(schedules)} mappings for {n} param groups")
        for group, mapping in zip(optimizer.param_groups, schedules):
            for name, value in mapping.items():
                if name not in group:
                    raise ValueError(f"schedules: the optimizer has no hyperparameter {name!r}"
                                     f" (it has: {', '.join(k for k in group if k != 'params')})")
                if not is_scheduled(value):
                    raise TypeError(f"schedules[{name!r}] must be a Schedule (or a tuple "
                                    f"holding one), got {value!r}")
        self.schedules = schedules
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [evaluate(s["lr"], self.last_epoch) if "lr" in s else group["lr"]
                for group, s in zip(self.optimizer.param_groups, self.schedules)]

    def step(self, epoch: int | None = None) -> None:
        super().step(epoch)
        for group, mapping in zip(self.optimizer.param_groups, self.schedules):
            for name, value in mapping.items():
                if name != "lr":
                    group[name] = evaluate(value, self.last_epoch)

    def _controllers(self) -> list:
        return [c for mapping in self.schedules for value in mapping.values()
                for c in controllers(value)]

    def state_dict(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items()
                 if k not in ("optimizer", "schedules")}
        state["controllers"] = [c.state_dict() for c in self._controllers()]
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        for controller, saved in zip(self._controllers(), state.pop("controllers", [])):
            controller.load_state_dict(saved)
        self.__dict__.update(state)


class AttachedScheduler(torch.optim.lr_scheduler.LRScheduler):
    """A torch LR scheduler that changes nothing, for frameworks that insist on one while
    the schedule is attached to a descend optimizer.

    A descend optimizer whose ``lr`` is a schedule sets the lr itself; a torch scheduler
    would write its own value into the group at every ``scheduler.step()``, and descend
    honours written values. The transformers Trainer builds a linear-decay scheduler unless
    it is given one: pass ``optimizers=(opt, AttachedScheduler(opt))``. `get_last_lr`
    reports the lr each group will use next, for logging.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, last_epoch: int = -1) -> None:
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float]:
        return [group["lr"] for group in self.optimizer.param_groups]

    def step(self, epoch: int | None = None) -> None:
        self.last_epoch += 1
        self._last_lr = self.get_lr()
