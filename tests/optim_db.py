"""The optimizers under test, as data. One entry drives every generic test.

Each case names a descend class with keyword arguments and its independent reference:
either a torch.optim class taking the same arguments, or a transcription of the equations.
`converge` gives an lr that solves the quadratic and Rosenbrock tests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import transcriptions as tr

import descend


@dataclass(frozen=True)
class Case:
    id: str
    cls: type
    kwargs: dict[str, Any] = field(default_factory=dict)
    torch_cls: type | None = None          # reference: torch.optim with the same kwargs
    transcription: Any = None              # reference: tr.<fn> with these kwargs
    transcription_kwargs: dict[str, Any] = field(default_factory=dict)

    def make(self, params, **overrides):
        return self.cls(params, **{**self.kwargs, **overrides})


T = torch.optim
CASES = [
    Case("sgd", descend.SGD, dict(lr=0.05), T.SGD),
    Case("sgd-wd-maximize", descend.SGD, dict(lr=0.05, weight_decay=0.1, maximize=True), T.SGD),
    Case("sgd-momentum", descend.SGD, dict(lr=0.05, momentum=0.9), T.SGD),
    Case("sgd-dampening", descend.SGD, dict(lr=0.05, momentum=0.8, dampening=0.3,
                                            weight_decay=0.01), T.SGD),
    Case("sgd-nesterov", descend.SGD, dict(lr=0.05, momentum=0.9, nesterov=True), T.SGD),
    Case("nesterov", descend.Nesterov, dict(lr=0.05, momentum=0.9), T.SGD,
         ),
    Case("momentum-ema", descend.Momentum, dict(lr=0.1, momentum=0.9),
         transcription=tr.ema_momentum, transcription_kwargs=dict(lr=0.1, momentum=0.9)),
    Case("momentum-ema-nesterov-wd", descend.Momentum,
         dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05),
         transcription=tr.ema_momentum,
         transcription_kwargs=dict(lr=0.1, momentum=0.8, nesterov=True, weight_decay=0.05)),
    Case("adagrad", descend.Adagrad, dict(lr=0.1), T.Adagrad),
    Case("adagrad-options", descend.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.01,
                                                  initial_accumulator_value=0.1, eps=1e-6,
                                                  maximize=True), T.Adagrad),
    Case("rmsprop", descend.RMSprop, dict(lr=0.01), T.RMSprop),
    Case("rmsprop-centered-momentum", descend.RMSprop,
         dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01), T.RMSprop),
    Case("rmsprop-momentum", descend.RMSprop, dict(lr=0.01, momentum=0.9, eps=1e-6), T.RMSprop),
    Case("rmsprop-eps-inside", descend.RMSprop, dict(lr=0.01, eps=1e-8, eps_inside_sqrt=True),
         transcription=tr.rmsprop_eps_inside,
         transcription_kwargs=dict(lr=0.01, alpha=0.99, eps=1e-8)),
    Case("rmsprop-eps-inside-centered", descend.RMSprop,
         dict(lr=0.01, alpha=0.9, eps=1e-4, eps_inside_sqrt=True, centered=True, momentum=0.3),
         transcription=tr.rmsprop_eps_inside,
         transcription_kwargs=dict(lr=0.01, alpha=0.9, eps=1e-4, centered=True, momentum=0.3)),
    Case("adam", descend.Adam, dict(lr=0.05), T.Adam),
    Case("adam-amsgrad-wd", descend.Adam, dict(lr=0.05, betas=(0.8, 0.99), eps=1e-6,
                                               weight_decay=0.1, amsgrad=True), T.Adam),
    Case("adam-maximize", descend.Adam, dict(lr=0.05, maximize=True), T.Adam),
    Case("adam-no-bias-correction", descend.Adam, dict(lr=0.05, bias_correction=False),
         transcription=tr.adam_no_bias_correction,
         transcription_kwargs=dict(lr=0.05, betas=(0.9, 0.999), eps=1e-8)),
    Case("adamw", descend.AdamW, dict(lr=0.05), T.AdamW),
    Case("adamw-amsgrad", descend.AdamW, dict(lr=0.05, weight_decay=0.3, amsgrad=True), T.AdamW),
    Case("lion", descend.Lion, dict(lr=0.01, weight_decay=0.1),
         transcription=tr.lion,
         transcription_kwargs=dict(lr=0.01, betas=(0.9, 0.99), weight_decay=0.1)),
]

# One representative per class, for the tests that need not see every option.
BY_CLASS = {c.cls: c for c in reversed(CASES)}
REPRESENTATIVES = list(BY_CLASS.values())

# An lr (and steps) with which each class solves the convergence problems.
CONVERGE = {
    descend.SGD: dict(lr=0.1, momentum=0.9),
    descend.Nesterov: dict(lr=0.1),
    descend.Momentum: dict(lr=0.2),
    descend.Adagrad: dict(lr=0.5),
    descend.RMSprop: dict(lr=0.01),
    descend.Adam: dict(lr=0.05),
    descend.AdamW: dict(lr=0.05, weight_decay=0.0),
    descend.Lion: dict(lr=0.01),
}
ROSENBROCK = {
    descend.SGD: dict(lr=1e-3, momentum=0.9),
    descend.Nesterov: dict(lr=1e-3, momentum=0.9),
    descend.Momentum: dict(lr=1e-2, momentum=0.9),
    descend.Adagrad: dict(lr=0.3),
    descend.RMSprop: dict(lr=1e-3),
    descend.Adam: dict(lr=2e-2),
    descend.AdamW: dict(lr=2e-2, weight_decay=0.0),
    descend.Lion: dict(lr=1e-3),
}
