"""`RuleOptimizer`: turns a rule (or a recipe) into a drop-in `torch.optim.Optimizer`.

Everything torch users rely on comes from `torch.optim.Optimizer` itself: param groups with
per-group hyperparameters, `add_param_group`, `zero_grad`, `state_dict` /
`load_state_dict`, step pre/post hooks, and every `torch.optim.lr_scheduler` class. This
class adds validation, the non-finite-gradient policy, and the dispatch of each param
group to an execution backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor

from ..backends import make_backend
from ..rules.base import Rule
from ..schedules import Reduction, controllers, evaluate, is_scheduled
from .checks import NONFINITE_POLICIES, check_choice, check_hyperparameters

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                    torch.complex64, torch.complex128)


class RuleOptimizer(torch.optim.Optimizer):
    """A `torch.optim.Optimizer` that applies a descend `Rule` to every parameter.

    Use a subclass (`descend.SGD`, `descend.Adam`, ...) or pass your own chain::

        rule = chain(scale_by_adam(), add_decayed_weights(), scale_by_learning_rate())
        opt = RuleOptimizer(model.parameters(), rule, lr=1e-3, betas=(0.9, 0.999),
                            eps=1e-8, weight_decay=0.1)

    Args:
        params: tensors, named tensors, or param-group dicts, as for any torch optimizer.
            Per-group values override the defaults, e.g. a smaller lr for a pretrained
            backbone: ``[{"params": backbone, "lr": 1e-5}, {"params": head}]``.
        rule: the rule to run; subclasses leave it None and define `recipe` instead.
        nonfinite: what a step does when some gradient holds NaN or inf.
            ``"ignore"`` (torch's behaviour) applies the step anyway; ``"skip"`` leaves
            parameters and state untouched and counts the step in `skipped_steps`;
            ``"raise"`` raises `FloatingPointError` naming the parameter, also before
            touching anything.
        backend: how the rule runs: ``"auto"`` (default), ``"reference"``, ``"foreach"``,
            ``"flat"`` or ``"compiled"`` (see `descend.backends`). The flat layouts turn
            parameters and gradients into views of one buffer per group, and `zero_grad`
            then zeroes gradients instead of setting them to None.
        **defaults: the hyperparameters the rule reads (``lr`` and whatever else).

    Any hyperparameter may be a schedule (`descend.schedules`) instead of a number, in the
    defaults or in a param group: ``Adam(params, lr=warmup_cosine(1e-3, 500, 10_000),
    betas=(linear(0.85, 0.95, 10_000), 0.999))``. Before each step the optimizer evaluates
    it at `steps_done` (the number of steps applied so far) and writes the value into the
    group, so loggers and torch tools see the lr in use. A value written by hand into a
    scheduled hyperparameter is overwritten at the next step. `report(metric)` feeds every
    `ReduceOnPlateau` controller among the schedules.
    """

    def __init__(self, params: ParamsT, rule: Rule | None = None, *,
                 nonfinite: str = "ignore", backend: str = "auto", **defaults: Any) -> None:
        owner = type(self).__name__
        if rule is None and type(self).recipe is RuleOptimizer.recipe:
            raise TypeError(f"{owner}: pass a rule, or subclass and define recipe(group)")
        if rule is not None and not isinstance(rule, Rule):
            raise TypeError(f"{owner}: rule must be a descend Rule, got {type(rule).__name__}")
        if "lr" not in defaults:
            raise TypeError(f"{owner}: the hyperparameter lr is required")
        defaults.setdefault("maximize", False)
        check_choice(owner, "nonfinite", nonfinite, NONFINITE_POLICIES)
        self._rule = rule
        self.nonfinite = nonfinite
        self.backend = backend
        self._backend = make_backend(backend)
        self.skipped_steps = 0
        self.steps_done = 0
        super().__init__(params, defaults)

    # -- structure ---------------------------------------------------------------------

    def recipe(self, group: dict[str, Any]) -> Rule:
        """The rule to run for `group`. Subclasses build it from the group's structural
        options (momentum on/off, AMSGrad, ...); recipes are cached, so this is cheap."""
        assert self._rule is not None
        return self._rule

    def check_group(self, group: dict[str, Any]) -> None:
        """Cross-field checks for one param group (subclasses extend)."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        owner = type(self).__name__
        merged = {**self.defaults, **param_group}
        schedules = {k: v for k, v in merged.items() if is_scheduled(v)}
        current = {k: evaluate(v, self.steps_done) for k, v in schedules.items()}
        merged.update(current)
        check_hyperparameters(owner, merged)
        self.check_group(merged)
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        seen: set[int] = set()
        for i, p in enumerate(tensors):
            where = f"parameter {i} of group {len(self.param_groups)}"
            if isinstance(p, Tensor):
                if id(p) in seen:
                    raise ValueError(f"{owner}: {where} appears twice in the group; "
                                     "give each parameter once")
                seen.add(id(p))
                _check_param_tensor(owner, where, p)
        super().add_param_group({**param_group, **current, "params": params,
                                 "schedules": schedules})

    # -- stepping ----------------------------------------------------------------------

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss (for line-search style
                use and torch compatibility). It runs with gradients enabled.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        # Every check runs over all groups before anything is written, so a refused or
        # skipped step changes nothing.
        self._check_sparse()
        if self.nonfinite != "ignore" and not self._all_finite():
            return loss
        for gi, group in enumerate(self.param_groups):
            for name, schedule in group["schedules"].items():
                group[name] = evaluate(schedule, self.steps_done)
            self._backend.step(self.recipe(group), group, self.state, gi)
        self.steps_done += 1
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset gradients. Parameters held in a flat buffer get their gradients zeroed in
        one pass (they stay views of the buffer); the others follow torch: set to None,
        or zeroed with ``set_to_none=False``."""
        self._backend.zero_grad()
        flat = self._backend.owned()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None or id(p) in flat:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_()
                    p.grad.requires_grad_(False)
                    p.grad.zero_()

    def report(self, metric: float) -> list[Reduction]:
        """Feed a validation metric to every `ReduceOnPlateau` among the schedules; returns
        the reductions it caused (each controller is fed once, even if shared by groups)."""
        seen: dict[int, Any] = {}
        for group in self.param_groups:
            for schedule in group["schedules"].values():
                for controller in controllers(schedule):
                    seen.setdefault(id(controller), controller)
        reductions = [c.report(metric, self.steps_done) for c in seen.values()]
        return [r for r in reductions if r is not None]

    def _check_sparse(self) -> None:
        for gi, group in enumerate(self.param_groups):
            if any(p.grad is not None and p.grad.is_sparse for p in group["params"]):
                pi = next(i for i, p in enumerate(group["params"])
                          if p.grad is not None and p.grad.is_sparse)
                raise TypeError(
                    f"{type(self).__name__}: parameter {pi} of group {gi} has a sparse "
                    "gradient, which descend does not support; use dense gradients "
                    "(e.g. nn.Embedding(..., sparse=False))"
                )

    def _all_finite(self) -> bool:
        grads = [p.grad for group in self.param_groups for p in group["params"]
                 if p.grad is not None]
        if not grads:
            return True
        finite = torch.stack([torch.isfinite(g).all() for g in grads])
        if bool(finite.all()):
            return True
        if self.nonfinite == "raise":
            gi, pi = next((gi, pi) for gi, group in enumerate(self.param_groups)
                          for pi, p in enumerate(group["params"])
                          if p.grad is not None and not bool(torch.isfinite(p.grad).all()))
            raise FloatingPointError(
                f"{type(self).__name__}: the gradient of parameter {pi} of group {gi} holds "
                "NaN or inf; nothing was updated (nonfinite='raise'; use 'skip' to skip "
                "such steps, or 'ignore' to apply them)"
            )
        self.skipped_steps += 1
        return False

    # -- serialisation -----------------------------------------------------------------

    # Schedules are code, not data: the state dict keeps the step count and the state of
    # any metric controller, and a resumed optimizer is built with the same schedules.
    # That keeps `torch.load(..., weights_only=True)` working.

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        for group in sd["param_groups"]:
            group.pop("schedules", None)
        sd["descend"] = {
            "skipped_steps": self.skipped_steps,
            "steps_done": self.steps_done,
            "controllers": [[c.state_dict() for s in g["schedules"].values()
                             for c in controllers(s)] for g in self.param_groups],
        }
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        extra = state_dict.pop("descend", {})
        schedules = [group["schedules"] for group in self.param_groups]
        super().load_state_dict(state_dict)
        for group, mine in zip(self.param_groups, schedules):
            group["schedules"] = mine
        self.skipped_steps = int(extra.get("skipped_steps", 0))
        self.steps_done = int(extra.get("steps_done", 0))
        for group, saved in zip(self.param_groups, extra.get("controllers", [])):
            found = [c for s in group["schedules"].values() for c in controllers(s)]
            for controller, state in zip(found, saved):
                controller.load_state_dict(state)


def _check_param_tensor(owner: str, where: str, p: Tensor) -> None:
    if p.is_sparse:
        raise TypeError(f"{owner}: {where} is a sparse tensor; descend optimizes dense tensors")
    if p.dtype not in SUPPORTED_DTYPES:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES)
        raise TypeError(f"{owner}: {where} has dtype {p.dtype}; allowed dtypes: {allowed}")
