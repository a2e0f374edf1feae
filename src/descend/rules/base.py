"""The rule abstraction: an update rule is a pair of pure functions, composed by `chain`.

A rule turns an incoming direction (at the head of a chain, the gradient) into an outgoing
one, keeping whatever state it needs:

    init(p)                   -> state        the rule's state tensors for parameter p
    update(d, state, p, ctx)  -> (d', state') pure maths, no in-place writes
    prepare(ctx)              -> scalars      per-step scalars, computed once per step in Python

`ctx` holds the param group's hyperparameters at this step (``ctx.lr``, ``ctx.betas``, ...),
the step count ``ctx.step`` (1 at the first update), the rule's scalar state (``carry``,
below) and the scalars every rule's `prepare` returned. Hyperparameters are read from `ctx`,
not baked into the rule, because they live in param groups where schedulers (ours and
torch's) change them between steps. Only structural options (AMSGrad on/off, Nesterov
on/off) are arguments of a rule's constructor.

What a rule may keep, and what it must declare so that every backend runs it correctly:

- ``state``: named tensors of any shape (``exp_avg``; Adafactor's row and column factors; a
  preconditioner). Created by `init` from the parameter, which may create a subset of the
  declared keys for a given parameter (Adafactor: factors for a matrix, one variance for a
  vector); `update` returns new values. A rule that reduces over a tensor may instead
  write its own state where it is stored, through `descend.rules.ops`' ``*_into`` helpers
  (which keep the pure form under autograd and tracing), and return the same tensors.
- ``carry``: named *scalar* state carried across steps, with its initial value (NAdam's
  running product ``mu_product``, ASGD's ``eta``, schedule-free's ``weight_sum``). `prepare`
  reads the previous value from ``ctx`` and returns the new one under the same name; it is
  stored per parameter in the optimizer's state, next to ``step``, so it resumes from a
  state dict exactly. An initial value of None means "not known before the first step":
  `prepare` then sees None and supplies the first value itself (ASGD's ``eta`` starts at
  the group's lr). A ``"group"`` rule's carried scalars belong to the group (Prodigy's
  step-size estimate ``d``): they live in the param group under their names (where torch's
  tooling carries hyperparameters, and where users log them), and besides `prepare`,
  `update` may return their new values in its state dict, since they can depend on sums
  over the group's tensors.
- ``low_precision``: the state keys that may be stored below float32 (``state_dtype`` of
  the optimizer: bfloat16, or 8-bit block codes), each with its sign, ``"signed"`` or
  ``"nonnegative"`` (second moments, accumulators: their 8-bit codes spend the sign bit on
  range). Moments tolerate a few percent of relative error; copies of the parameter
  (Polyak averages, Schedule-Free's iterates) and step sizes do not, so a key not listed
  here is always kept in the parameter's dtype. Elementwise and per-tensor rules only: a
  group rule declares none.
- ``provides``: the names of the per-step scalars `prepare` returns. `chain` refuses two
  rules that provide the same name, as it refuses clashing state keys.
- ``reduction``: ``"none"`` when every output element depends only on the same element of
  the inputs (elementwise rules run on any backend, over lists of tensors or in compiled
  kernels); ``"tensor"`` when the maths reduces over one parameter (a norm, a trust ratio,
  Newton-Schulz on a matrix): backends apply it one tensor at a time; ``"group"`` when it
  reduces over all parameters of a group (Prodigy's d): `update` then receives
  `TensorList`s holding every parameter of the group that has a gradient, on every
  backend. No backend ever takes a reduction over a concatenation of tensors. A group
  rule runs the same way on every backend, never traced or copied, so it may update its
  own state tensors in place (with ``torch._foreach_*_`` kernels, as torch.optim does);
  this saves a parameter-sized temporary and a copy per state tensor, the bulk of its
  time on large models.
- ``closure``: the rule re-evaluates the objective within a step (L-BFGS's line search).
  It runs on the whole group like a ``"group"`` rule (which it must declare), and the
  optimizer refuses ``step()`` without a closure. Its ``ctx`` also holds ``loss``, the
  closure's value at this step, and ``evaluate(point) -> (loss, grads)``: the loss and
  the gradients (a `TensorList`, valid until the next call) with the parameters set to
  `point`, one tensor per parameter; the parameters are put back afterwards, so the rule
  stays pure and its returned update is applied as any other. Its state is the whole
  group's, one dict (in the state of the group's first parameter, where
  torch.optim.LBFGS keeps its own): `update` receives that dict as ``state``, reads what
  it needs and returns the entries to set (tensors, lists of tensors, numbers).

Executing a rule (looping over tensors, writing state back, fusing) is the job of
`descend.backends`; nothing here knows how it will be run. So that every backend can run
the same code, elementwise rules use tensor *methods* and operators (``v.maximum(w)``,
``m.lerp(g, w)``, ``d.sqrt()``), not ``torch.*`` functions: the foreach backend passes lists
of tensors that implement exactly those. Where torch.optim uses a fused operation
(``v.mul_(beta).addcmul_(g, g, value=1 - beta)``), the rule uses it too, through
`descend.rules.ops` (``addcmul(v * beta, g, g, 1 - beta)``): one rounding instead of three,
which keeps float16 and bfloat16 results within rounding of torch's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

State = dict[str, Tensor]
InitFn = Callable[[Tensor], State]
UpdateFn = Callable[[Tensor, State, Tensor, "Context"], tuple[Tensor, State]]
PrepareFn = Callable[["Context"], Mapping[str, Any]]

REDUCTIONS = ("none", "tensor", "group")


class MissingHyperparameter(AttributeError, KeyError):
    """A rule asked for a hyperparameter its param group does not define."""

    def __str__(self) -> str:
        return str(self.args[0])


class Context:
    """Hyperparameters and per-step scalars of one param group at one step.

    Read as attributes, so that rules read like the maths (``d * ctx.lr``). A missing name
    raises `MissingHyperparameter` (both an AttributeError and a KeyError) naming it and
    what the group has. A plain object rather than a dict, so that torch.compile traces
    attribute reads without graph breaks.

    Besides the hyperparameters it holds ``step`` (1 at a parameter's first update) and
    ``fresh``: the state keys created at this step (a buffer that did not exist before, as
    torch's ``momentum_buffer is None``).
    """

    def __init__(self, values: Mapping[str, Any] = (), **more: Any) -> None:
        self.__dict__.update(values, **more)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise MissingHyperparameter(
            f"this rule needs the hyperparameter {name!r}, which the param group does not "
            f"define (it has: {', '.join(sorted(self.__dict__))})")

    def get(self, name: str, default: Any = None) -> Any:
        return self.__dict__.get(name, default)

    def update(self, values: Mapping[str, Any]) -> None:
        self.__dict__.update(values)

    def items(self) -> Any:
        return self.__dict__.items()

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def __repr__(self) -> str:
        return f"Context({self.__dict__!r})"


def _no_state(p: Tensor) -> State:
    return {}


@dataclass(frozen=True)
class Rule:
    """One step of maths in an optimizer (see the module docstring for the contract).

    Attributes:
        name: short identifier, shown in errors and reprs.
        update: ``(d, state, p, ctx) -> (d', new_state)``; returns new tensors for every state
            key it changes and must not write into its inputs (but a group rule may update
            its state tensors in place, and a tensor rule its own state through the
            ``*_into`` helpers of `descend.rules.ops`; see the module docstring).
        init: ``p -> state``, the rule's fresh state tensors for parameter `p`.
        prepare: ``ctx -> {name: scalar}``, per-step scalars (bias corrections, a decayed lr)
            and the new values of the rule's `carry`, computed once per step in Python.
        state: the state keys `init` creates; public API, kept stable across versions.
        carry: ``((name, initial value), ...)``: scalar state carried across steps.
        provides: the per-step scalar names `prepare` returns (besides `carry`).
        reduction: ``"none"`` (elementwise), ``"tensor"`` or ``"group"``.
        closure: the rule needs the optimizer's closure (``ctx.evaluate``, ``ctx.loss``);
            it must reduce over the group.
        fused: set by a recipe that computes exactly what one of torch's hand-written
            fused kernels computes (`descend.backends.fused.FusedKernel`); backends may then
            run that kernel instead of the generic maths.
    """

    name: str
    update: UpdateFn
    init: InitFn = _no_state
    prepare: PrepareFn | None = None
    state: tuple[str, ...] = ()
    carry: tuple[tuple[str, float | None], ...] = ()
    low_precision: tuple[tuple[str, str], ...] = ()
    provides: tuple[str, ...] = ()
    reduction: str = "none"
    closure: bool = False
    parts: tuple[Rule, ...] = field(default=(), repr=False, compare=False)
    fused: Any = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.reduction not in REDUCTIONS:
            raise ValueError(f"rule {self.name!r}: reduction must be one of "
                             f"{', '.join(map(repr, REDUCTIONS))}, got {self.reduction!r}")
        for key, sign in self.low_precision:
            if key not in self.state or sign not in ("signed", "nonnegative"):
                raise ValueError(f"rule {self.name!r}: low_precision entry ({key!r}, {sign!r}) "
                                 "must name one of its state keys and 'signed' or "
                                 "'nonnegative'")
        if self.low_precision and self.reduction == "group":
            # Group rules see their state whole and the executor hands it over as stored.
            # (Prodigy, the one that could use it, is also the one that must not: 8-bit
            # moments sent its d estimate from 0.37 to 47 in 20 steps of a quadratic.)
            raise ValueError(f"rule {self.name!r}: a group rule keeps its state in the "
                             "parameter's dtype; declare no low_precision")
        if self.closure and self.reduction != "group":
            raise ValueError(f"rule {self.name!r}: a closure-driven rule runs on the whole "
                             "group; declare reduction='group'")
        if (self.carry or self.provides) and self.prepare is None:
            raise ValueError(f"rule {self.name!r} declares carry or provides but has no "
                             "prepare function to compute them")

    @property
    def elementwise(self) -> bool:
        return self.reduction == "none"

    @property
    def carry_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.carry)

    def __repr__(self) -> str:
        return f"Rule({self.name})"


def per_tensor(update: UpdateFn) -> UpdateFn:
    """Lift the update of a rule that reduces over one tensor to lists of tensors.

    A chain that also reduces over a whole group (LAMB with its global gradient clipping)
    hands every part `TensorList`s; a tensor rule written with this decorator then applies
    its maths to each tensor of the list, with its own state, and returns lists.
    """

    def lifted(d: Any, state: State, p: Any, ctx: Context) -> tuple[Any, State]:
        if isinstance(d, Tensor):
            return update(d, state, p, ctx)
        columns = {k: list(v) for k, v in state.items()}
        results = [update(d_i, {k: v[i] for k, v in columns.items()}, p_i, ctx)
                   for i, (d_i, p_i) in enumerate(zip(d, p))]
        lists = type(d)
        new_state = {k: lists([r[1][k] for r in results]) for k in results[0][1]} \
            if results else {}
        return lists([r[0] for r in results]), new_state

    return lifted


def _widest(reductions: Iterable[str]) -> str:
    # A loop rather than max(key=...): torch.compile traces recipes, and dynamo cannot
    # trace max with a key function without a graph break.
    widest = 0
    for reduction in reductions:
        widest = max(widest, REDUCTIONS.index(reduction))
    return REDUCTIONS[widest]


def chain(*rules: Rule | None) -> Rule:
    """Compose rules left to right: the output direction of one is the input of the next.

    ``None`` entries are dropped, so recipes can write ``add_weight_decay() if wd else None``.
    Nested chains are flattened. The parts must keep distinct state keys and carry names
    and provide distinct per-step scalars: state is one flat, readable dict per parameter
    (``exp_avg``, ``momentum_buffer``), not a positional tuple, and the per-step scalars
    share one namespace. The chain reduces as widely as its widest part.
    """
    parts: list[Rule] = []
    for rule in rules:
        if rule is None:
            continue
        if not isinstance(rule, Rule):
            raise TypeError(f"chain() takes Rule objects, got {type(rule).__name__}")
        parts.extend(rule.parts or (rule,))
    _check_distinct(parts)
    if len(parts) == 1:
        return parts[0]

    def init(p: Tensor) -> State:
        state: State = {}
        for rule in parts:
            state.update(rule.init(p))
        return state

    preparers = [rule.prepare for rule in parts if rule.prepare is not None]

    def prepare(ctx: Context) -> dict[str, Any]:
        scalars: dict[str, Any] = {}
        for fn in preparers:
            scalars.update(fn(ctx))
        return scalars

    def update(d: Tensor, state: State, p: Tensor, ctx: Context) -> tuple[Tensor, State]:
        new_state: State = {}
        for rule in parts:
            d, changed = rule.update(d, state, p, ctx)
            new_state.update(changed)
        return d, new_state

    reduction = _widest(rule.reduction for rule in parts)
    return Rule(
        name=" -> ".join(rule.name for rule in parts),
        update=update,
        init=init,
        prepare=prepare if preparers else None,
        state=tuple(key for rule in parts for key in rule.state),
        carry=tuple(item for rule in parts for item in rule.carry),
        # one group part (LAMB's global clipping) makes the whole chain a group rule
        low_precision=() if reduction == "group" else
        tuple(item for rule in parts for item in rule.low_precision),
        provides=tuple(name for rule in parts for name in rule.provides),
        reduction=reduction,
        closure=any(rule.closure for rule in parts),
        parts=tuple(parts),
    )


def _check_distinct(parts: Iterable[Rule]) -> None:
    """State keys, carry names and per-step scalar names: each owned by one rule."""
    owner: dict[str, tuple[str, str]] = {}
    for rule in parts:
        names = ([(k, "state key") for k in rule.state]
                 + [(k, "carried scalar") for k in rule.carry_names]
                 + [(k, "per-step scalar") for k in rule.provides])
        for name, kind in names:
            if name in owner:
                other_rule, other_kind = owner[name]
                what = kind if kind == other_kind else f"{other_kind} / {kind}"
                raise ValueError(
                    f"{what} {name!r} is kept by both {other_rule!r} and {rule.name!r}; "
                    "a chain's rules must keep distinct state and per-step scalars"
                )
            owner[name] = (rule.name, kind)
