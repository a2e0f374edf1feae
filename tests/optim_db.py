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

import pytorch_optimizer as po
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


def transcribed(fn: Callable, **kwargs: Any) -> Callable[[list[torch.Tensor]], Stepper]:
    return lambda params: Transcribed(fn, params, **kwargs)


def cases(cls: type, rows: list[tuple], reference: Callable | None = None) -> list[Case]:
    """Cases from ``(id, kwargs)`` rows against `reference` (a `torch_ref`), or from
    ``(id, kwargs, stepper factory)`` rows with a reference of their own."""
    out = []
    for row in rows:
        if len(row) == 3:
            out.append(Case(row[0], cls, row[1], row[2]))
        else:
            out.append(Case(row[0], cls, row[1], reference(row[1]), torch_state=True))
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
    matrices_only: bool = False                        # 2-D parameters only (Muon)

    @property
    def name(self) -> str:
        return self.cls.__name__


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
                (dict(ns_coefficients=(1.0, 2.0)), TypeError, "ns_coefficients must be three"),
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
