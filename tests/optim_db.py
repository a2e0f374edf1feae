"""The optimizers under test, as data: one `OptimizerInfo` per class drives every generic
test (torch's `common_optimizers.py` is the model).

An entry holds the class's parity cases (each with an independent reference: torch.optim
with the same arguments, a reference package, or a direct transcription of the equations),
the hyperparameters that solve the convergence problems, the bad inputs and the errors they
must raise, and what the class supports. Adding an optimizer is one entry here; a test file
of its own only for behaviour specific to it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import prodigyopt
import pytorch_optimizer as po
import schedulefree as sf
import torch
import transcriptions as tr
from problems import SHAPES

import descend

T = torch.optim
Stepper = Any  # anything with .step() that updates the parameters it was built on


@dataclass(frozen=True)
class Case:
    """One configuration of a class, and how to build its reference on other parameters."""

    id: str
    cls: type
    kwargs: dict[str, Any]
    reference: Callable[[list[torch.Tensor]], Stepper]
    torch_state: bool = False     # the reference is torch.optim: compare state names/values
    rtol: float = 1e-10           # relative tolerance of the float64 parity test
    steps: int = 30
    shapes: tuple = tuple(SHAPES)
    closure: bool = False         # step() needs a closure (both ours and the reference)

    def make(self, params, **overrides):
        return self.cls(params, **{**self.kwargs, **overrides})


def torch_ref(torch_cls: type, **extra: Any) -> Callable[[Case], Callable]:
    """A torch.optim reference taking the case's own kwargs (plus `extra`), for-loop."""
    return lambda kwargs: (lambda params: torch_cls(params, foreach=False, **kwargs, **extra))


class Transcribed:
    """A transcription of the equations (`transcriptions.py`) as an optimizer-like stepper."""

    def __init__(self, fn: Callable, params: list[torch.Tensor], **kwargs: Any) -> None:
        self.fn, self.params, self.kwargs, self.state, self.t = fn, params, kwargs, {}, 0

    @torch.no_grad()
    def step(self) -> None:
        self.t += 1
        self.fn([p.detach() for p in self.params], [p.grad for p in self.params], self.state,
                self.t, **self.kwargs)


def float64_scalars(torch_cls: type) -> type:
    """`torch_cls` stepping under a float64 default dtype.

    torch.optim keeps running scalars (NAdam's ``mu_product``, ASGD's ``eta`` and ``mu``) in
    0-D tensors of the default dtype, created and rounded inside ``step``: with the usual
    float32 default they carry float32 rounding (about 1e-7 relative) into every step,
    whatever the parameters' dtype. descend keeps them as float64 numbers, so the float64
    parity tests compare with torch computing them in float64 too."""

    class Float64Scalars(torch_cls):
        def step(self, closure=None):
            previous = torch.get_default_dtype()
            torch.set_default_dtype(torch.float64)
            try:
                return super().step(closure)
            finally:
                torch.set_default_dtype(previous)

    Float64Scalars.__name__ = Float64Scalars.__qualname__ = torch_cls.__name__
    return Float64Scalars


def transcribed(fn: Callable, **kwargs: Any) -> Callable[[list[torch.Tensor]], Stepper]:
    return lambda params: Transcribed(fn, params, **kwargs)


def package(make: Callable, *args: Any, train: bool = False, **kwargs: Any) -> Callable:
    """A reference package's optimizer; ``train=True`` switches it to train mode first
    (the schedulefree package's classes start in eval mode)."""
    def factory(params):
        opt = make(params, *args, **kwargs)
        if train:
            opt.train()
        return opt
    return factory


def cases(cls: type, rows: list[tuple], reference: Callable | None = None,
          closure: bool = False) -> list[Case]:
    """Cases from ``(id, kwargs)`` rows against `reference` (a `torch_ref`), or from
    ``(id, kwargs, stepper factory)`` rows with a reference of their own. ``closure``: the
    class steps only with a closure (L-BFGS)."""
    out = []
    for row in rows:
        if len(row) == 3:
            out.append(Case(row[0], cls, row[1], row[2], closure=closure))
        else:
            out.append(Case(row[0], cls, row[1], reference(row[1]), torch_state=True,
                            closure=closure))
    return out


@dataclass(frozen=True)
class OptimizerInfo:
    cls: type
    cases: list[Case]                                  # the first one represents the class
    converge: dict[str, Any]                           # solves the quadratic
    rosenbrock: dict[str, Any] | None                  # solves Rosenbrock in 4000 steps
    errors: list[tuple[dict[str, Any], type, str]] = field(default_factory=list)
    converge_tol: float = 1e-4                         # on |x| after 500 steps
    low_precision: bool = True                         # float16/bfloat16 track float64
    complex: bool = True                               # complex parameters, as torch does
    param_groups: bool = True                          # takes several param groups
    matrices_only: bool = False                        # 2-D parameters only (Muon)

    @property
    def name(self) -> str:
        return self.cls.__name__

    @property
    def closure(self) -> bool:
        return self.cases[0].closure


LR = (dict(lr=-0.1), ValueError, "lr must be >= 0")
LR_NAN = (dict(lr=float("nan")), ValueError, "lr must be finite")
BETAS = [(dict(betas=(0.9, 1.0)), ValueError, r"betas\[1\] must be in \[0, 1\)"),
         (dict(betas=(-0.1, 0.9)), ValueError, r"betas\[0\] must be in \[0, 1\)"),
         (dict(betas=0.9), TypeError, "betas must be a pair")]
EPS = (dict(eps=0.0), ValueError, "eps must be > 0")
WD = (dict(weight_decay=-1e-4), ValueError, "weight_decay must be >= 0")

INFOS = [
    OptimizerInfo(descend.SGD, cases(descend.SGD, [
        ("sgd", dict(lr=0.05)),
        ("sgd-wd-maximize", dict(lr=0.05, weight_decay=0.1, maximize=True)),
        ("sgd-momentum", dict(lr=0.05, momentum=0.9)),
        ("sgd-dampening", dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.01)),
        ("sgd-nesterov", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ], torch_ref(T.SGD)),
        converge=dict(lr=0.1, momentum=0.9), rosenbrock=dict(lr=1e-3, momentum=0.9),
        errors=[LR, LR_NAN, WD,
                (dict(lr="0.1"), TypeError, "lr must be a real number"),
                (dict(lr=float("inf")), ValueError, "lr must be finite"),
                (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
                (dict(momentum=-0.5), ValueError, r"momentum must be in \[0, 1\)"),
                (dict(nesterov=True), ValueError, "nesterov=True needs momentum > 0"),
                (dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError,
                 "dampening = 0")]),
    OptimizerInfo(descend.Nesterov, cases(descend.Nesterov, [
        ("nesterov", dict(lr=0.05, momentum=0.9)),
    ], torch_ref(T.SGD, nesterov=True)),
        converge=dict(lr=0.1), rosenbrock=dict(lr=1e-3, momentum=0.9)),
    OptimizerInfo(descend.Momentum, cases(descend.Momentum, [
        ("momentum-ema", dict(lr=0.1, momentum=0.9),
         transcribed(tr.ema_momentum, lr=0.1, momentum=0.9)),
        ("momentum-ema-nesterov-wd", dict(lr=0.1, momentum=0.8, nesterov=True,
                                          weight_decay=0.05),
         transcribed(tr.ema_momentum, lr=0.1, momentum=0.8, nesterov=True,
                     weight_decay=0.05)),
    ]), converge=dict(lr=0.2), rosenbrock=dict(lr=1e-2, momentum=0.9), complex=False,
        errors=[LR, (dict(momentum=1.5), ValueError, r"momentum must be in \[0, 1\)")]),
    OptimizerInfo(descend.Adagrad, cases(descend.Adagrad, [
        ("adagrad", dict(lr=0.1)),
        ("adagrad-options", dict(lr=0.1, lr_decay=0.05, weight_decay=0.01,
                                 initial_accumulator_value=0.1, eps=1e-6, maximize=True)),
    ], torch_ref(T.Adagrad)),
        converge=dict(lr=0.5), rosenbrock=dict(lr=0.3),
        errors=[LR, WD, (dict(lr_decay=-1), ValueError, "lr_decay must be >= 0"),
                (dict(initial_accumulator_value=-1), ValueError,
                 "initial_accumulator_value must be >= 0")]),
    OptimizerInfo(descend.RMSprop, cases(descend.RMSprop, [
        ("rmsprop", dict(lr=0.01)),
        ("rmsprop-centered-momentum", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5,
                                           weight_decay=0.01)),
        ("rmsprop-momentum", dict(lr=0.01, momentum=0.9, eps=1e-6)),
        ("rmsprop-eps-inside", dict(lr=0.01, eps=1e-8, eps_inside_sqrt=True),
         transcribed(tr.rmsprop_eps_inside, lr=0.01, alpha=0.99, eps=1e-8)),
        ("rmsprop-eps-inside-centered", dict(lr=0.01, alpha=0.9, eps=1e-4,
                                             eps_inside_sqrt=True, centered=True,
                                             momentum=0.3),
         transcribed(tr.rmsprop_eps_inside, lr=0.01, alpha=0.9, eps=1e-4, centered=True,
                     momentum=0.3)),
    ], torch_ref(T.RMSprop)),
        converge=dict(lr=0.01), rosenbrock=dict(lr=1e-3),
        errors=[LR, (dict(alpha=1.0), ValueError, r"alpha must be in \[0, 1\)"),
                (dict(eps=0), ValueError, "eps must be > 0")]),
    OptimizerInfo(descend.Adam, cases(descend.Adam, [
        ("adam", dict(lr=0.05)),
        ("adam-amsgrad-wd", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                                 amsgrad=True)),
        ("adam-maximize", dict(lr=0.05, maximize=True)),
        ("adam-decoupled", dict(lr=0.05, weight_decay=0.2, decoupled_weight_decay=True)),
        ("adam-no-bias-correction", dict(lr=0.05, bias_correction=False),
         transcribed(tr.adam_no_bias_correction, lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
    ], torch_ref(T.Adam)),
        converge=dict(lr=0.05), rosenbrock=dict(lr=2e-2),
        errors=[LR, *BETAS, EPS, (dict(amsgrad=1), TypeError, "amsgrad must be True or False"),
                (dict(nonfinite="warn"), ValueError, "nonfinite must be one of"),
                (dict(backend="cuda-magic"), ValueError, "unknown backend 'cuda-magic'")]),
    OptimizerInfo(descend.AdamW, cases(descend.AdamW, [
        ("adamw", dict(lr=0.05)),
        ("adamw-amsgrad", dict(lr=0.05, weight_decay=0.3, amsgrad=True)),
    ], torch_ref(T.AdamW)),
        converge=dict(lr=0.05, weight_decay=0.0), rosenbrock=dict(lr=2e-2, weight_decay=0.0),
        errors=[(dict(eps=-1e-8), ValueError, "eps must be > 0"), WD]),
    OptimizerInfo(descend.Lion, cases(descend.Lion, [
        ("lion", dict(lr=0.01, weight_decay=0.1),
         transcribed(tr.lion, lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)),
    ]), converge=dict(lr=0.01), rosenbrock=dict(lr=1e-3), complex=False,
        # Lion moves every coordinate by exactly lr per step: it settles within ~lr.
        converge_tol=3 * 0.01 * 10**0.5,
        errors=[(dict(betas=(0.9, 1.2)), ValueError, r"betas\[1\] must be in \[0, 1\)")]),
]

# torch.optim's other elementwise algorithms (descend.optim.torch_family).
INFOS += [
    OptimizerInfo(descend.NAdam, cases(descend.NAdam, [
        ("nadam", dict(lr=0.05)),
        ("nadam-options", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1,
                               momentum_decay=0.01)),
        ("nadam-decoupled-maximize", dict(lr=0.05, weight_decay=0.2, momentum_decay=0.0,
                                          decoupled_weight_decay=True, maximize=True)),
    ], torch_ref(float64_scalars(T.NAdam))),
        converge=dict(lr=0.05), rosenbrock=dict(lr=2e-2),
        errors=[LR, *BETAS, EPS, WD,
                (dict(momentum_decay=-1e-3), ValueError, "momentum_decay must be >= 0"),
                (dict(decoupled_weight_decay=None), TypeError,
                 "decoupled_weight_decay must be True or False")]),
    OptimizerInfo(descend.RAdam, cases(descend.RAdam, [
        ("radam", dict(lr=0.05)),
        ("radam-options", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
        # beta2 < 0.6: rho_inf < 5, the variance is never tractable: SGD with momentum.
        ("radam-untractable", dict(lr=0.05, betas=(0.9, 0.5))),
        ("radam-decoupled-maximize", dict(lr=0.05, weight_decay=0.2,
                                          decoupled_weight_decay=True, maximize=True)),
    ], torch_ref(T.RAdam)),
        # Rosenbrock: the first (unrectified) steps are SGD with momentum, lr-sized steps
        # along a gradient of ~200: a larger lr throws x out of the valley at once.
        converge=dict(lr=0.05), rosenbrock=dict(lr=5e-3, betas=(0.9, 0.99)),
        errors=[LR, *BETAS, EPS, WD]),
    OptimizerInfo(descend.Adamax, cases(descend.Adamax, [
        ("adamax", dict(lr=0.05)),
        ("adamax-options", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-4, weight_decay=0.1,
                                maximize=True)),
    ], torch_ref(T.Adamax)),
        converge=dict(lr=0.05), rosenbrock=dict(lr=2e-2),
        errors=[LR, *BETAS, EPS, WD]),
    OptimizerInfo(descend.Adadelta, cases(descend.Adadelta, [
        ("adadelta", dict()),
        ("adadelta-options", dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.1,
                                  maximize=True)),
    ], torch_ref(T.Adadelta)),
        # Rosenbrock: None. Adadelta's step, the ratio of two running RMS values, does not
        # follow the valley to within 0.1 of the minimum in 4000 steps for any lr in
        # 0.03-1, rho in 0.9-0.999, eps in 1e-6-1e-3 (the closest ends 0.10 away).
        converge=dict(lr=1.0, rho=0.99, eps=1e-4), rosenbrock=None,
        errors=[LR, EPS, WD, (dict(rho=1.5), ValueError, r"rho must be in \[0, 1\]"),
                (dict(rho=-0.1), ValueError, r"rho must be in \[0, 1\]")]),
    OptimizerInfo(descend.ASGD, cases(descend.ASGD, [
        ("asgd", dict(lr=0.05)),
        # t0 = 5.5: the averaging starts inside the run, with weights 1/1.5, 1/2.5, ...
        ("asgd-averaging", dict(lr=0.05, lambd=1e-2, alpha=1.0, t0=5.5, weight_decay=0.1)),
        ("asgd-maximize", dict(lr=0.05, lambd=0.0, alpha=0.5, t0=0, maximize=True)),
    ], torch_ref(float64_scalars(T.ASGD))),
        # Rosenbrock: plain SGD steps, so lr just under 2 / (largest curvature ~1000).
        converge=dict(lr=0.1), rosenbrock=dict(lr=1.8e-3),
        errors=[LR, WD, (dict(lambd=-1e-4), ValueError, "lambd must be >= 0"),
                (dict(alpha=-0.75), ValueError, "alpha must be >= 0"),
                (dict(t0=-1), ValueError, "t0 must be >= 0"),
                (dict(t0=float("nan")), ValueError, "t0 must be finite")]),
    OptimizerInfo(descend.Rprop, cases(descend.Rprop, [
        ("rprop", dict(lr=0.05)),
        ("rprop-options", dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-3, 0.2),
                               maximize=True)),
    ], torch_ref(T.Rprop)),
        converge=dict(lr=0.1), rosenbrock=dict(lr=1e-3),
        errors=[LR, (dict(etas=(0.5, 0.9)), ValueError,
                     r"etas must satisfy 0 < etas\[0\] < 1 < etas\[1\]"),
                (dict(etas=(0.0, 1.2)), ValueError, r"0 < etas\[0\] < 1"),
                (dict(etas=0.5), TypeError, r"etas must be a pair \(eta_minus, eta_plus\)"),
                (dict(step_sizes=(1.0, 0.1)), ValueError,
                 r"step_sizes must satisfy 0 <= step_sizes\[0\] <= step_sizes\[1\]"),
                (dict(step_sizes=(-1e-6, 50)), ValueError, "0 <= step_sizes"),
                (dict(step_sizes=(1e-6, float("inf"))), ValueError,
                 r"step_sizes\[1\] must be finite")]),
]

SF_OPTIONS = dict(weight_decay=0.1, warmup_steps=5, r=1.0, weight_lr_power=1.5)
INFOS += [
    OptimizerInfo(descend.ScheduleFreeSGD, cases(descend.ScheduleFreeSGD, [
        ("schedulefree-sgd", dict(lr=0.1), package(sf.SGDScheduleFree, lr=0.1, train=True)),
        ("schedulefree-sgd-options", dict(lr=0.1, momentum=0.8, **SF_OPTIONS),
         package(sf.SGDScheduleFree, lr=0.1, momentum=0.8, foreach=False, train=True,
                 **SF_OPTIONS)),
        ("schedulefree-sgd-reference", dict(lr=0.05, momentum=0.95, **SF_OPTIONS),
         package(sf.SGDScheduleFreeReference, lr=0.05, momentum=0.95, **SF_OPTIONS)),
    ]), converge=dict(lr=0.2), rosenbrock=dict(lr=1e-3, momentum=0.95), complex=False,
        errors=[LR, WD, (dict(momentum=0.0), ValueError, "momentum must be > 0"),
                (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
                (dict(warmup_steps=2.5), TypeError, "warmup_steps must be an integer"),
                (dict(warmup_steps=-1), ValueError, "warmup_steps must be an integer >= 0"),
                (dict(r=-1.0), ValueError, "r must be >= 0"),
                (dict(weight_lr_power=float("nan")), ValueError,
                 "weight_lr_power must be finite")]),
    OptimizerInfo(descend.ScheduleFreeAdamW, cases(descend.ScheduleFreeAdamW, [
        ("schedulefree-adamw", dict(lr=0.05), package(sf.AdamWScheduleFree, lr=0.05,
                                                      train=True)),
        ("schedulefree-adamw-options", dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6,
                                            **SF_OPTIONS),
         package(sf.AdamWScheduleFree, lr=0.05, betas=(0.8, 0.99), eps=1e-6, foreach=False,
                 train=True, **SF_OPTIONS)),
        ("schedulefree-adamw-reference", dict(lr=0.05, betas=(0.95, 0.98), **SF_OPTIONS),
         package(sf.AdamWScheduleFreeReference, lr=0.05, betas=(0.95, 0.98), train=True,
                 **SF_OPTIONS)),
        ("schedulefree-adamw-decay-at-z", dict(lr=0.05, weight_decay=0.2, decay_at_z=True),
         package(sf.AdamWScheduleFreeReference, lr=0.05, weight_decay=0.2, decay_at_z=True,
                 train=True)),
    ]), converge=dict(lr=0.1), rosenbrock=dict(lr=5e-2, warmup_steps=100), complex=False,
        errors=[LR, *BETAS, EPS, WD,
                (dict(betas=(0.0, 0.999)), ValueError, r"betas\[0\] must be > 0"),
                (dict(decay_at_z=1), TypeError, "decay_at_z must be True or False")]),
    OptimizerInfo(descend.AdEMAMix, cases(descend.AdEMAMix, [
        ("ademamix", dict(lr=0.05), package(po.AdEMAMix, lr=0.05, foreach=False)),
        ("ademamix-warmup-decoupled", dict(lr=0.05, betas=(0.8, 0.99, 0.999), alpha=3.0,
                                           t_alpha_beta3=20, eps=1e-6, weight_decay=0.1,
                                           weight_decouple=True),
         package(po.AdEMAMix, lr=0.05, betas=(0.8, 0.99, 0.999), alpha=3.0, t_alpha_beta3=20,
                 eps=1e-6, weight_decay=0.1, weight_decouple=True, foreach=False)),
        ("ademamix-l2-warmup", dict(lr=0.05, weight_decay=0.1, t_alpha_beta3=10),
         package(po.AdEMAMix, lr=0.05, weight_decay=0.1, t_alpha_beta3=10)),
        ("ademamix-fixed-decay-maximize", dict(lr=0.05, weight_decay=0.01, weight_decouple=True,
                                               fixed_decay=True, maximize=True),
         package(po.AdEMAMix, lr=0.05, weight_decay=0.01, weight_decouple=True,
                 fixed_decay=True, maximize=True)),
    ]),  # beta3 = 0.9999 remembers ~10^4 steps, longer than these problems: a shorter one
        converge=dict(lr=0.05, betas=(0.9, 0.999, 0.99)),
        rosenbrock=dict(lr=2e-2, betas=(0.9, 0.999, 0.99)), complex=False,
        errors=[LR, EPS, WD,
                (dict(betas=(0.9, 0.999)), TypeError, "betas must be a triple"),
                (dict(betas=(0.9, 0.999, 1.0)), ValueError, r"betas\[2\] must be in \[0, 1\)"),
                (dict(alpha=-1.0), ValueError, "alpha must be >= 0"),
                (dict(t_alpha_beta3=0), ValueError, "t_alpha_beta3 must be > 0"),
                (dict(t_alpha_beta3=10, betas=(0.0, 0.999, 0.9999)), ValueError,
                 r"betas\[0\] must be > 0 when t_alpha_beta3"),
                (dict(weight_decouple="yes"), TypeError, "weight_decouple must be True")]),
]

PRODIGY_OPTIONS = dict(lr=0.5, betas=(0.8, 0.99), beta3=0.95, eps=1e-6, weight_decay=0.1,
                       use_bias_correction=True, safeguard_warmup=True, d0=1e-4, d_coef=0.8,
                       growth_rate=1.05)
INFOS += [
    OptimizerInfo(descend.Prodigy, cases(descend.Prodigy, [
        ("prodigy", dict(), package(prodigyopt.Prodigy)),
        ("prodigy-options", PRODIGY_OPTIONS, package(prodigyopt.Prodigy, **PRODIGY_OPTIONS)),
        ("prodigy-l2-sliced", dict(weight_decay=0.1, decouple=False, slice_p=3),
         package(prodigyopt.Prodigy, weight_decay=0.1, decouple=False, slice_p=3)),
        # Without momentum and at lr 1 the estimate of d grows so fast that rounding
        # differences grow to 1e-2 in 30 steps (in both implementations): a calmer setting.
        ("prodigy-no-momentum", dict(lr=0.5, betas=(0.0, 0.999), weight_decay=0.05, d0=1e-3),
         package(prodigyopt.Prodigy, lr=0.5, betas=(0.0, 0.999), weight_decay=0.05,
                 d0=1e-3)),
    ]), converge=dict(), rosenbrock=dict(), complex=False,
        # float16: d0^2 (1 - beta2) g^2 ~ 1e-15 underflows, and sqrt(v) + d eps is 0, a NaN
        # (prodigyopt the same: it declares no fp16 support).
        low_precision=False,
        errors=[LR, *BETAS, EPS, WD,
                (dict(d0=0.0), ValueError, "d0 must be > 0"),
                (dict(d_coef=-1.0), ValueError, "d_coef must be > 0"),
                (dict(growth_rate=0.0), ValueError, "growth_rate must be > 0"),
                (dict(beta3=1.0), ValueError, r"beta3 must be in \[0, 1\)"),
                (dict(slice_p=0), ValueError, "slice_p must be an integer >= 1"),
                (dict(decouple=None), TypeError, "decouple must be True or False"),
                (dict(safeguard_warmup=1), TypeError, "safeguard_warmup must be True")]),
]

LBFGS_OPTIONS = dict(lr=0.5, max_iter=5, max_eval=7, history_size=3, tolerance_grad=1e-5,
                     tolerance_change=1e-6, line_search_fn="strong_wolfe")
INFOS += [
    OptimizerInfo(descend.LBFGS, cases(descend.LBFGS, [
        ("lbfgs", dict()),
        ("lbfgs-strong-wolfe", dict(line_search_fn="strong_wolfe")),
        ("lbfgs-short-history", dict(lr=0.1, max_iter=3, history_size=2)),
        ("lbfgs-options", LBFGS_OPTIONS),
    ], lambda kwargs: lambda params: T.LBFGS(params, **kwargs), closure=True),
        converge=dict(), rosenbrock=dict(line_search_fn="strong_wolfe"), param_groups=False,
        # float16: <y, s> and 1 / <y, s> overflow within a few iterations, torch's LBFGS
        # reaches NaN at the same step.
        low_precision=False,
        errors=[LR, (dict(max_iter=0), ValueError, "max_iter must be an integer >= 1"),
                (dict(max_iter=2.5), TypeError, "max_iter must be an integer"),
                (dict(max_eval=0), ValueError, "max_eval must be an integer >= 1"),
                (dict(history_size=-3), ValueError, "history_size must be an integer >= 1"),
                (dict(tolerance_grad=-1e-7), ValueError, "tolerance_grad must be >= 0"),
                (dict(tolerance_change=float("nan")), ValueError,
                 "tolerance_change must be finite"),
                (dict(line_search_fn="armijo"), ValueError,
                 "line_search_fn must be None or 'strong_wolfe'")]),
]


def reference(factory: Callable, **kwargs: Any) -> Callable[[list[torch.Tensor]], Stepper]:
    """A reference package's optimizer with its own keyword names."""
    return lambda params: factory(params, **kwargs)


class Lamb2(po.Lamb):
    clamp = 2.0  # pytorch-optimizer's trust-ratio bound is a class attribute


MATRICES = ((4, 5), (7, 3), (6, 6))
TENSORS = ((2, 3, 2, 4), (2, 2, 4))
# Factors with at most one zero eigenvalue at the first step (see the SOAP docstring: within
# a repeated eigenvalue's eigenspace the basis eigh returns depends on rounding, and SOAP's
# update depends on the basis); eps = 1e-3 keeps rounding noise / eps small.
FULL_RANK = ((4, 4), (4, 5), (3, 3), (7,))

INFOS += [
    OptimizerInfo(descend.Adafactor, cases(descend.Adafactor, [
        ("adafactor", dict(lr=0.01)),
        ("adafactor-options", dict(lr=0.05, beta2_decay=-0.5, eps=(1e-20, 1e-2), d=2.0,
                                   weight_decay=0.1, maximize=True)),
        ("adafactor-eps1", dict(lr=0.02, eps=(1e-3, 1e-3), d=1.5)),
    ], torch_ref(T.Adafactor)),
        # The relative step is RMS(x) / sqrt(t): x shrinks ever more slowly near the optimum,
        # and after 4000 steps Rosenbrock's loss is down ~570-fold, not the 1000-fold asked.
        converge=dict(lr=1.0, eps=(None, 1e-8)), rosenbrock=None, complex=False,
        converge_tol=5e-3,
        errors=[LR, WD, (dict(beta2_decay=0.1), ValueError, "beta2_decay must be <= 0"),
                (dict(d=0.5), ValueError, "d must be >= 1"),
                (dict(eps=1e-3), TypeError, r"eps must be a pair \(eps1, eps2\)"),
                (dict(eps=(None, -1.0)), ValueError, r"eps\[1\] must be >= 0"),
                (dict(eps=(-1.0, 1e-3)), ValueError, r"eps\[0\] must be >= 0")]),
    OptimizerInfo(descend.Muon, [
        *[Case(c.id, c.cls, c.kwargs, c.reference, c.torch_state, shapes=MATRICES)
          for c in cases(descend.Muon, [
              ("muon", dict(lr=0.02)),
              ("muon-options", dict(lr=0.02, weight_decay=0.05, momentum=0.8, nesterov=False,
                                    ns_steps=3, adjust_lr_fn="match_rms_adamw", eps=1e-5,
                                    ns_coefficients=(3.0, -3.2, 1.2))),
              ("muon-original-no-momentum", dict(lr=0.05, weight_decay=0.0, momentum=0.0,
                                                 adjust_lr_fn="original")),
          ], lambda kw: (lambda params: T.Muon(params, **kw)))],  # for-loop only
        Case("muon-float64", descend.Muon, dict(lr=0.02, ns_dtype="float64", maximize=True),
             transcribed(tr.muon, lr=0.02, weight_decay=0.1, maximize=True), shapes=MATRICES),
        # Newton-Schulz in float32 against the float64 transcription, over a few steps (the
        # test loss's sines amplify a float32 difference step after step).
        Case("muon-float32", descend.Muon, dict(lr=0.02, ns_dtype="float32"),
             transcribed(tr.muon, lr=0.02, weight_decay=0.1), shapes=MATRICES,
             rtol=1e-5, steps=5),
    ], converge=dict(lr=0.02, weight_decay=0.0, ns_dtype="float32"),
        rosenbrock=dict(lr=2e-3, weight_decay=0.0, ns_dtype="float32"), complex=False,
        matrices_only=True,
        # Orthogonalized steps have every singular value near 1: Muon settles within ~lr.
        converge_tol=3 * 0.02 * 10**0.5,
        errors=[LR, WD, (dict(ns_steps=100), ValueError, r"ns_steps must be an integer in"),
                (dict(ns_steps=2.5), TypeError, "ns_steps must be an integer"),
                (dict(ns_coefficients=(1.0, 2.0)), TypeError, "ns_coefficients must be a triple"),
                (dict(adjust_lr_fn="rms"), ValueError, "adjust_lr_fn must be one of"),
                (dict(ns_dtype="float16"), ValueError, "ns_dtype must be one of"),
                (dict(eps=0.0), ValueError, "eps must be > 0"),
                (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\)")]),
    OptimizerInfo(descend.LAMB, cases(descend.LAMB, [
        ("lamb", dict(lr=0.01), reference(po.Lamb, lr=0.01)),
        ("lamb-forloop-decay-maximize",
         dict(lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-8, maximize=True),
         reference(po.Lamb, lr=0.01, weight_decay=0.1, betas=(0.8, 0.99), eps=1e-8,
                   maximize=True, foreach=False)),
        ("lamb-coupled", dict(lr=0.01, weight_decay=0.1, weight_decouple=False,
                              grad_averaging=False),
         reference(po.Lamb, lr=0.01, weight_decay=0.1, weight_decouple=False,
                   grad_averaging=False)),
        ("lamb-fixed-adam-no-debias", dict(lr=0.01, weight_decay=0.01, fixed_decay=True,
                                           adam=True, debias="none"),
         reference(po.Lamb, lr=0.01, weight_decay=0.01, fixed_decay=True, adam=True,
                   adam_debias=True)),
        ("lamb-clamp", dict(lr=0.05, weight_decay=0.05, clamp=2.0),
         reference(Lamb2, lr=0.05, weight_decay=0.05)),
        ("lamb-paper", dict(lr=0.01, weight_decay=0.1, weight_decouple=False,
                            debias="moments"),
         transcribed(tr.lamb, lr=0.01, weight_decay=0.1)),
    ]) + [
        # pytorch-optimizer computes the global norm in float32, whatever the dtype.
        Case("lamb-pre-norm", descend.LAMB, dict(lr=0.01, pre_norm=True, max_grad_norm=2.0),
             reference(po.Lamb, lr=0.01, pre_norm=True, max_grad_norm=2.0), rtol=1e-5),
    ], converge=dict(lr=0.05), complex=False,
        # Steps of lr ||x||: a small clamp keeps them short enough to settle in the valley.
        rosenbrock=dict(lr=0.02, clamp=0.2),
        errors=[LR, *BETAS, WD, (dict(eps=-1.0), ValueError, "eps must be > 0"),
                (dict(debias="paper"), ValueError, "debias must be one of"),
                (dict(clamp=0.0), ValueError, "clamp must be > 0"),
                (dict(max_grad_norm=-1.0), ValueError, "max_grad_norm must be >= 0"),
                (dict(pre_norm=1), TypeError, "pre_norm must be True or False")]),
    OptimizerInfo(descend.LARS, cases(descend.LARS, [
        ("lars", dict(lr=0.1), reference(po.LARS, lr=0.1)),
        ("lars-options", dict(lr=0.1, weight_decay=0.01, momentum=0.8, dampening=0.2,
                              trust_coefficient=0.02, nesterov=True, maximize=True),
         reference(po.LARS, lr=0.1, weight_decay=0.01, momentum=0.8, dampening=0.2,
                   trust_coefficient=0.02, nesterov=True, maximize=True)),
        ("lars-forloop-no-momentum", dict(lr=0.1, momentum=0.0, weight_decay=0.1),
         reference(po.LARS, lr=0.1, momentum=0.0, weight_decay=0.1, foreach=False)),
    ]), converge=dict(lr=0.1), rosenbrock=dict(lr=1e-3), complex=False,
        errors=[LR, WD, (dict(trust_coefficient=-1e-3), ValueError,
                         "trust_coefficient must be >= 0"),
                (dict(momentum=1.0), ValueError, r"momentum must be in \[0, 1\)"),
                (dict(dampening=2.0), ValueError, r"dampening must be in \[0, 1\]")]),
    OptimizerInfo(descend.SOAP, cases(descend.SOAP, [
        ("soap", dict(lr=0.01), reference(po.SOAP, lr=0.01)),
        ("soap-options", dict(lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.8, weight_decay=0.1,
                              precondition_frequency=4, max_precondition_dim=4,
                              precondition_1d=True, correct_bias=False,
                              normalize_gradient=True, eps=1e-6, maximize=True),
         reference(po.SOAP, lr=0.01, betas=(0.9, 0.99), shampoo_beta=0.8, weight_decay=0.1,
                   precondition_frequency=4, max_precondition_dim=4, precondition_1d=True,
                   correct_bias=False, normalize_gradient=True, eps=1e-6, maximize=True)),
    ]) + [
        Case("soap-merge-channels-last", descend.SOAP,
             dict(lr=0.01, merge_dims=True, max_precondition_dim=6,
                  data_format="channels_last", precondition_frequency=5),
             reference(po.SOAP, lr=0.01, merge_dims=True, max_precondition_dim=6,
                       data_format="channels_last", precondition_frequency=5),
             shapes=TENSORS),
        Case("soap-paper", descend.SOAP,
             dict(lr=0.01, weight_decay=0.1, precondition_frequency=3, betas=(0.9, 0.95),
                  eps=1e-3),
             transcribed(tr.soap, lr=0.01, weight_decay=0.1, precondition_frequency=3,
                         betas=(0.9, 0.95), eps=1e-3), shapes=FULL_RANK),
    ], converge=dict(lr=0.05, weight_decay=0.0, betas=(0.9, 0.99)),
        rosenbrock=dict(lr=0.003, weight_decay=0.0), complex=False,
        # At the second step G_2 = G_1, and G' is zero off the diagonal up to rounding noise,
        # which SOAP divides by about eps (see its docstring): in float32 or float16 that
        # noise drives a step of the order of lr, so low precision does not track float64.
        low_precision=False,
        errors=[LR, *BETAS, WD, (dict(shampoo_beta=1.0), ValueError,
                                 r"shampoo_beta must be in \[0, 1\)"),
                (dict(precondition_frequency=0), ValueError,
                 "precondition_frequency must be an integer >= 1"),
                (dict(max_precondition_dim=10.5), TypeError,
                 "max_precondition_dim must be an integer"),
                (dict(data_format="nhwc"), ValueError, "data_format must be one of")]),
]

BY_CLASS = {info.cls: info for info in INFOS}
CASES = [case for info in INFOS for case in info.cases]
REPRESENTATIVES = [info.cases[0] for info in INFOS]
TORCH_CASES = [case for case in CASES if case.torch_state]
ERRORS = [(info.cls, kwargs, exc, message) for info in INFOS
          for kwargs, exc, message in info.errors]
