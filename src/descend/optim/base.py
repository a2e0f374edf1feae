"""`RuleOptimizer`: turns a rule (or a recipe) into a drop-in `torch.optim.Optimizer`.

Everything torch users rely on comes from `torch.optim.Optimizer` itself: param groups with
per-group hyperparameters, `add_param_group`, `zero_grad`, `state_dict` /
`load_state_dict`, step pre/post hooks, and every `torch.optim.lr_scheduler` class. This
class adds validation, torch's execution flags mapped onto backends, hyperparameter
schedules, the non-finite-gradient policy, and the dispatch of each param group to an
execution backend.

Where descend keeps its counters. torch's tooling (torch.distributed.checkpoint, ZeRO's
consolidation, FSDP's state-dict helpers) carries an optimizer's ``state`` and
``param_groups`` and nothing else, so everything descend needs to resume lives there: the
step count and carried scalars of each parameter in ``state`` (a group rule's carried
scalars, such as Prodigy's ``d``, in its param group); each group's schedule clock
(``schedule_step``), the values its schedules wrote (``scheduled``), its plateau controllers
(``plateau``) and its skipped-step count (``skipped_steps``) in ``param_groups``, as plain
data (see `descend.optim.scheduling`).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..backends import Executor
from ..rules.base import Rule
from ..schedules import Reduction, evaluate
from .checks import NONFINITE_POLICIES, Check, check_choice, check_hyperparameters
from .interop import export_state, import_state
from .scheduling import Schedules

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]] | Iterable[tuple[str, Tensor]]

SUPPORTED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64,
                    torch.complex64, torch.complex128)


def resolve_backend(owner: str, backend: str, foreach: bool | None, fused: bool | None,
                    capturable: bool, differentiable: bool) -> str:
    """Map torch's execution flags onto a descend backend, refusing what cannot be honoured.

    ``foreach=True`` is the foreach backend and ``foreach=False`` torch's for-loop, the
    reference backend; ``fused=True`` is the fused backend (torch's kernel where the recipe
    is exactly one, a compiled kernel otherwise) and ``fused=False`` keeps torch's kernels
    out (foreach); ``differentiable=True`` runs the reference maths with autograd recording
    the step. An explicit `backend` other than "auto" must agree with the flags.
    """
    if capturable:
        raise ValueError(
            f"{owner}: capturable=True is not supported: descend computes per-step scalars "
            "(bias corrections, schedules) on the host, so a CUDA graph would freeze them. "
            "Compile the step with torch.compile instead, or leave capturable=False")
    for name, value in (("foreach", foreach), ("fused", fused)):
        if value is not None and not isinstance(value, bool):
            raise TypeError(f"{owner}: {name} must be None, True or False, got {value!r}")
    if not isinstance(differentiable, bool):
        raise TypeError(f"{owner}: differentiable must be True or False, got {differentiable!r}")
    if foreach and fused:
        raise ValueError(f"{owner}: foreach=True and fused=True cannot be used together")
    wanted = None
    if differentiable:
        if foreach or fused:
            raise ValueError(f"{owner}: differentiable=True runs the reference maths under "
                             "autograd; it cannot be combined with foreach=True or fused=True")
        wanted = "reference"
    elif fused is not None:
        wanted = "fused" if fused else "foreach"
    elif foreach is not None:
        wanted = "foreach" if foreach else "reference"
    if wanted is None or backend == wanted:
        return backend
    if backend != "auto":
        raise ValueError(f"{owner}: backend={backend!r} contradicts foreach={foreach!r}, "
                         f"fused={fused!r}, differentiable={differentiable!r} (which ask for "
                         f"{wanted!r}); give one or the other")
    return wanted


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
            ``"fused"`` or ``"compiled"`` (see `descend.backends`). Every backend computes
            on the user's own tensors.
        foreach, fused, capturable, differentiable: torch's execution flags, accepted for
            drop-in use and mapped onto backends (see `resolve_backend`); kept in the param
            groups as torch keeps them.
        state_dtype: how the rule's moments are stored: None (default: in the parameter's
            dtype, as torch), ``"float32"``, ``"bfloat16"`` or ``"int8"`` (8-bit block
            codes; see `descend.backends.precision`). Only keys a rule declares
            `low_precision` go below float32; parameters under 4096 elements and 1-D ones
            keep float32 moments under ``"int8"``. Per group, like any hyperparameter;
            `set_hyperparameter("state_dtype", ...)` converts existing state.
        stochastic_rounding: how bfloat16 values are stored. None (default): bfloat16 state
            stochastically (rounded to nearest, a moment with beta2 = 0.999 loses every
            increment below half a bfloat16 step), bfloat16 parameters to nearest, as torch.
            True: both stochastically (the parameters' update is then computed in float32,
            and small updates are kept on average instead of lost). False: both to nearest.
            Reproducible from `rounding_seed` (default: derived from `torch.initial_seed()`,
            so the same seed gives the same numbers).
        **defaults: the hyperparameters the rule reads (``lr`` and whatever else). ``lr``
            may be a 0-D tensor, as in torch; its value is read at every step.

    Any hyperparameter may be a schedule (`descend.schedules`) instead of a number, in the
    defaults or in a param group: ``Adam(params, lr=warmup_cosine(1e-3, 500, 10_000),
    betas=(linear(0.85, 0.95, 10_000), 0.999))``. Each group keeps a schedule clock,
    ``group["schedule_step"]``: the number of steps its schedules have driven. After each
    step (and at construction) the optimizer writes the schedules' values at the clock into
    the group, so loggers and torch tools see the value the next step will use, exactly as
    after a torch ``scheduler.step()``. A value written into a scheduled hyperparameter
    between steps (a hand-written warmup, or torch.distributed.checkpoint setting lr to 0
    while it initialises state) is honoured by the next step, and that step does not
    advance the group's clock: the schedule resumes where it was. To change a schedule
    itself, use `set_hyperparameter`. `report(metric)` feeds every `ReduceOnPlateau`
    controller among the schedules.
    """

    #: Checks of this class's own that replace the shared table's for the same name
    #: (`descend.optim.checks.CHECKS`): ASGD's ``alpha`` is an exponent, AdEMAMix's
    #: ``betas`` a triple, Adafactor's ``eps`` a pair.
    checks: ClassVar[Mapping[str, Check]] = {}

    def __init__(self, params: ParamsT, rule: Rule | None = None, *,
                 nonfinite: str = "ignore", backend: str = "auto", foreach: bool | None = None,
                 fused: bool | None = None, capturable: bool = False,
                 differentiable: bool = False, state_dtype: str | None = None,
                 stochastic_rounding: bool | None = None, rounding_seed: int | None = None,
                 **defaults: Any) -> None:
        owner = type(self).__name__
        if rule is None and type(self).recipe is RuleOptimizer.recipe:
            raise TypeError(f"{owner}: pass a rule, or subclass and define recipe(group)")
        if rule is not None and not isinstance(rule, Rule):
            raise TypeError(f"{owner}: rule must be a descend Rule, got {type(rule).__name__}")
        if "lr" not in defaults:
            raise TypeError(f"{owner}: the hyperparameter lr is required")
        defaults.setdefault("maximize", False)
        check_choice(owner, "nonfinite", nonfinite, NONFINITE_POLICIES)
        self.backend = resolve_backend(owner, backend, foreach, fused, capturable,
                                       differentiable)
        defaults.update(foreach=foreach, fused=fused, capturable=capturable,
                        differentiable=differentiable, state_dtype=state_dtype,
                        stochastic_rounding=stochastic_rounding,
                        rounding_seed=torch.initial_seed() % 2**31 if rounding_seed is None
                        else rounding_seed)
        self._rule = rule
        self.nonfinite = nonfinite
        self._executor = Executor(self.backend)
        self._schedules = Schedules()
        super().__init__(params, defaults)
        self.state = StateMap(self.state)

    # -- structure ---------------------------------------------------------------------

    def recipe(self, group: dict[str, Any]) -> Rule:
        """The rule to run for `group`. Subclasses build it from the group's structural
        options (momentum on/off, AMSGrad, ...); recipes are cached, so this is cheap."""
        assert self._rule is not None
        return self._rule

    def check_group(self, group: dict[str, Any]) -> None:
        """Cross-field checks for one param group (subclasses extend)."""

    def check_param(self, group: dict[str, Any], where: str, p: Tensor) -> None:
        """Checks of one parameter of `group` (subclasses extend: Muon takes matrices only).
        `where` names it in messages: its position, and its name when it has one."""

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        owner = type(self).__name__
        merged = {**self.defaults, **param_group}
        clock = max((g["schedule_step"] for g in self.param_groups), default=0)
        schedules = Schedules.split(merged)
        current = {k: evaluate(v, clock) for k, v in schedules.items()}
        merged.update(current)
        check_hyperparameters(owner, merged, self.checks)
        self.check_group(merged)
        params = param_group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        tensors = [p[1] if isinstance(p, tuple) else p for p in params]
        seen: set[int] = set()
        for i, p in enumerate(tensors):
            where = f"parameter {i} of group {len(self.param_groups)}"
            if isinstance(params[i], tuple):
                where += f" ({params[i][0]!r})"
            if isinstance(p, Tensor):
                if id(p) in seen:
                    raise ValueError(f"{owner}: {where} appears twice in the group; "
                                     "give each parameter once")
                seen.add(id(p))
                _check_param_tensor(owner, where, p)
                self.check_param(merged, where, p)
        super().add_param_group({**param_group, **current, "params": params,
                                 "schedule_step": clock, "skipped_steps": 0})
        self._schedules.add(self.param_groups[-1], schedules)

    def set_hyperparameter(self, name: str, value: Any, groups: Iterable[int] | None = None,
                           restart: bool = False) -> None:
        """Change a hyperparameter for the rest of the run, scheduled or not.

        `value` is a number (which also removes a schedule) or a schedule, evaluated at the
        group's clock, or from 0 with ``restart=True``. `groups` are group indices (all by
        default). Writing ``group[name]`` directly changes only the next step when `name`
        is scheduled.
        """
        owner = type(self).__name__

        def check(group: dict[str, Any]) -> None:
            check_hyperparameters(owner, group, self.checks)
            self.check_group(group)

        indices = range(len(self.param_groups)) if groups is None else list(groups)
        for gi in indices:
            group = self.param_groups[gi]
            if name not in group:
                raise KeyError(f"{owner}: group {gi} has no hyperparameter {name!r}")
            if restart:
                group["schedule_step"] = 0
            self._schedules.replace(gi, group, name, value, check)

    def schedules(self, group: int = 0) -> dict[str, Any]:
        """The schedules attached to the hyperparameters of a param group, by name."""
        return dict(self._schedules.by_group[group])

    # -- stepping ----------------------------------------------------------------------

    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step.

        Args:
            closure: re-evaluates the model and returns the loss (for line-search style
                use and torch compatibility). It runs with gradients enabled.
        """
        groups = self.param_groups
        rules = [self.recipe(g) for g in groups]
        if closure is None and any(rule.closure for rule in rules):
            raise TypeError(
                f"{type(self).__name__}: step() needs a closure that re-evaluates the model "
                "and returns the loss, e.g. def closure(): opt.zero_grad(); "
                "loss = loss_fn(model(x), y); loss.backward(); return loss; then "
                "opt.step(closure). This algorithm evaluates it several times per step")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Every check runs over all groups before anything is written, so a refused or
        # skipped step changes nothing.
        prepared = self._executor.prepare(rules, groups, self.state, type(self).__name__)
        if self.nonfinite != "ignore" and not self._all_finite():
            for group in groups:
                group["skipped_steps"] += 1
            return loss
        schedules = self._schedules
        for gi, group in enumerate(groups):
            schedules.sync(gi, group)
        # torch._C._set_grad_enabled rather than the no_grad context manager: a few
        # microseconds per step, which is a third of descend's Python time on small models.
        previous = torch.is_grad_enabled()
        torch._C._set_grad_enabled(self.defaults["differentiable"])
        try:
            self._executor.run(prepared, self.state, closure, loss)
        finally:
            torch._C._set_grad_enabled(previous)
        for gi, group in enumerate(groups):
            schedules.advance(gi, group)
        return loss

    def _patch_step_function(self) -> None:
        # torch wraps `step` to run step hooks inside a profiler range; that costs about
        # 25 us per step even when nothing listens. The lean wrapper takes torch's path
        # only when a hook is registered or the profiler is on.
        self._zero_grad_profile_name = f"Optimizer.zero_grad#{type(self).__name__}.zero_grad"
        cls = type(self)
        if not getattr(cls.step, "hooked", None):
            cls.step = _lean_step_hooks(cls.step, self.profile_hook_step(cls.step))
            cls.step.hooked = True

    @property
    def needs_closure(self) -> bool:
        """Whether `step` must be given a closure (closure-driven rules such as L-BFGS)."""
        return any(self.recipe(group).closure for group in self.param_groups)

    @property
    def steps_done(self) -> int:
        """The schedule clock of the first group (steps taken, less skipped ones and steps
        that ran with a hand-written value; see the class docstring)."""
        return self.param_groups[0]["schedule_step"] if self.param_groups else 0

    @property
    def skipped_steps(self) -> int:
        """Steps skipped by ``nonfinite="skip"``."""
        return self.param_groups[0]["skipped_steps"] if self.param_groups else 0

    def report(self, metric: float) -> list[Reduction]:
        """Feed a validation metric to every `ReduceOnPlateau` among the schedules; returns
        the reductions it caused (each controller is fed once, even if shared by groups)."""
        return self._schedules.report(self.param_groups, metric)

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
        return False

    # -- serialisation -----------------------------------------------------------------

    # Schedules are code, not data: the state dict keeps each group's clock and the state
    # of its metric controllers (plain data in the groups), and a resumed optimizer is built
    # with the same schedules. That keeps `torch.load(..., weights_only=True)` working.

    def state_dict(self) -> dict[str, Any]:
        sd = super().state_dict()
        carry: dict[int, tuple[str, ...]] = {}  # by saved parameter index, torch's order
        for group in sd["param_groups"]:
            names = self.recipe(group).carry_names
            carry.update(dict.fromkeys(group["params"], names))
        sd["state"] = {k: export_state(v, carry.get(k, ())) for k, v in sd["state"].items()}
        return sd

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict saved by descend (any version, any backend) or by the
        torch.optim class of the same algorithm."""
        owner = type(self).__name__
        state_dict = dict(state_dict)
        legacy = state_dict.pop("descend", None)  # descend 0.1 kept its counters here
        mine = self.param_groups
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(mine):
            raise ValueError(f"{owner}: the state dict has {len(saved_groups)} param groups, "
                             f"this optimizer {len(mine)}")
        # Keys a torch.optim state dict lacks (descend's options) keep this optimizer's values.
        state_dict["param_groups"] = [
            {**{k: v for k, v in m.items() if k != "params"}, **s}
            for m, s in zip(mine, saved_groups)]
        # torch casts every saved tensor but `step` to its parameter's dtype. That would round
        # a carried scalar (NAdam's mu_product) to float32 for float32 parameters, and turn
        # 8-bit codes and their block scales into garbage: descend's tensors go in as saved
        # (moved to their parameter's device), carried scalars as the numbers they are.
        carried = {name for group in state_dict["param_groups"]
                   for name in self.recipe(group).carry_names}
        kept: dict[Any, dict[str, Tensor]] = {}
        state_dict["state"] = {
            k: {n: float(v.item()) if n in carried and isinstance(v, Tensor) else v
                for n, v in s.items()} if isinstance(s, dict) else s
            for k, s in state_dict["state"].items()}
        for k, s in state_dict["state"].items():
            if isinstance(s, dict):
                kept[k] = {n: v for n, v in s.items() if isinstance(v, Tensor) and n != "step"}
        ids = {saved_id: p for saved, group in zip(saved_groups, mine)
               for saved_id, p in zip(saved["params"], group["params"])}
        super().load_state_dict(state_dict)
        for saved_id, tensors in kept.items():
            p = ids.get(saved_id)
            if p is not None and p in self.state:
                self.state[p].update({n: v.to(p.device) for n, v in tensors.items()})
        for gi, group in enumerate(self.param_groups):
            group.pop("schedules", None)  # descend 0.1 kept schedule objects in groups
            if legacy is not None:
                group["schedule_step"] = int(legacy.get("steps_done", 0))
                group["skipped_steps"] = int(legacy.get("skipped_steps", 0))
                plateau = (legacy.get("controllers") or [])[gi:gi + 1]
                if plateau:
                    group["plateau"] = plateau[0]
            self._schedules.sync(gi, group)
            check_hyperparameters(owner, group, self.checks)
            self.check_group(group)
            carry = self.recipe(group).carry_names
            for p in group["params"]:
                if p in self.state:
                    self.state[p] = import_state(self.state[p], carry)
        self._executor.forget()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state.update(nonfinite=self.nonfinite, backend=self.backend, _rule=self._rule,
                     _schedules=self._schedules)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        # Also called by torch's load_state_dict, with only state and param_groups.
        for key in ("nonfinite", "backend", "_rule", "_schedules"):
            if key in state:
                setattr(self, key, state.pop(key))
        super().__setstate__(state)
        self._executor = Executor(self.backend)
        self.state = StateMap(self.state)


def _lean_step_hooks(step: Callable[..., Any], hooked: Callable[..., Any]) -> Callable[..., Any]:
    from torch.optim.optimizer import _global_optimizer_post_hooks, _global_optimizer_pre_hooks

    @functools.wraps(step)
    def wrapper(self: RuleOptimizer, *args: Any, **kwargs: Any) -> Any:
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _global_optimizer_pre_hooks or _global_optimizer_post_hooks
                or torch.autograd.profiler._is_profiler_enabled):
            return hooked(self, *args, **kwargs)
        return step(self, *args, **kwargs)

    return wrapper


class StateMap(defaultdict):
    """The optimizer's ``state`` mapping, which counts assignments to it.

    Backends cache which state dict belongs to which parameter; a tool that puts a new
    state dict in place (ZeRO's ``load_state_dict`` assigns ``optim.state[p]`` directly)
    bumps `version`, so the cache is rebuilt instead of computing on the old state.
    """

    def __init__(self, items: Any = ()) -> None:
        super().__init__(dict, items)
        self.version = 0

    def __reduce__(self) -> Any:
        return (type(self), (dict(self),))

    def __setitem__(self, key: Any, value: Any) -> None:
        self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: Any) -> None:
        self.version += 1
        super().__delitem__(key)

    def _bump(name: str) -> Any:  # noqa: N805 - builds methods below
        def method(self: StateMap, *args: Any, **kwargs: Any) -> Any:
            self.version += 1
            return getattr(super(), name)(*args, **kwargs)
        method.__name__ = name
        return method

    update = _bump("update")
    pop = _bump("pop")
    popitem = _bump("popitem")
    clear = _bump("clear")
    setdefault = _bump("setdefault")
    del _bump


def _check_param_tensor(owner: str, where: str, p: Tensor) -> None:
    if p.is_sparse:
        raise TypeError(f"{owner}: {where} is a sparse tensor; descend optimizes dense "
                        "tensors (torch.optim.SparseAdam takes sparse gradients)")
    if p.dtype not in SUPPORTED_DTYPES:
        allowed = ", ".join(str(d).removeprefix("torch.") for d in SUPPORTED_DTYPES)
        raise TypeError(f"{owner}: {where} has dtype {p.dtype}; allowed dtypes: {allowed}")
