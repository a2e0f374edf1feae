"""Validation of hyperparameters, one table for every optimizer.

Each check names the argument and what is allowed, so a typo fails at construction with a
message a user can act on, never as a NaN a thousand steps later.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from numbers import Real
from typing import Any

from torch import Tensor


def _number(owner: str, name: str, value: Any) -> float:
    if isinstance(value, Tensor) and name.split("[")[0] in TENSOR_VALUES:
        # torch accepts a tensor lr; its value is read at every step.
        if value.numel() != 1 or value.is_complex() or not value.dtype.is_floating_point:
            raise TypeError(f"{owner}: a tensor {name} must hold one real floating-point "
                            f"value, got shape {tuple(value.shape)} and dtype {value.dtype}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{owner}: {name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{owner}: {name} must be finite, got {value!r}")
    return value


# torch accepts tensors for these hyperparameters (and no others).
TENSOR_VALUES = ("lr", "betas")


def non_negative(owner: str, name: str, value: Any) -> None:
    if _number(owner, name, value) < 0:
        raise ValueError(f"{owner}: {name} must be >= 0, got {value!r}")


def positive(owner: str, name: str, value: Any) -> None:
    if _number(owner, name, value) <= 0:
        raise ValueError(f"{owner}: {name} must be > 0, got {value!r}")


def unit_interval(owner: str, name: str, value: Any) -> None:
    """0 <= value < 1: a decay rate that forgets (1 would never move, >1 diverges)."""
    v = _number(owner, name, value)
    if not 0.0 <= v < 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1), got {value!r}")


def closed_unit_interval(owner: str, name: str, value: Any) -> None:
    v = _number(owner, name, value)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{owner}: {name} must be in [0, 1], got {value!r}")


def _items(owner: str, name: str, value: Any, parts: tuple[str, ...]) -> Sequence[Any]:
    """`value` as a tuple or list of len(parts) items, else a TypeError naming the parts."""
    if not isinstance(value, (tuple, list)) or len(value) != len(parts):
        kind = {2: "a pair", 3: "a triple"}[len(parts)]
        raise TypeError(f"{owner}: {name} must be {kind} ({', '.join(parts)}), got {value!r}")
    return value


def beta_pair(owner: str, name: str, value: Any) -> None:
    for i, beta in enumerate(_items(owner, name, value, ("beta1", "beta2"))):
        unit_interval(owner, f"{name}[{i}]", beta)


def _pair(owner: str, name: str, value: Any, parts: tuple[str, str]) -> tuple[float, float]:
    first, second = _items(owner, name, value, parts)
    return _number(owner, f"{name}[0]", first), _number(owner, f"{name}[1]", second)


def eta_pair(owner: str, name: str, value: Any) -> None:
    """Rprop's (eta_minus, eta_plus): shrink on a sign flip, grow otherwise."""
    minus, plus = _pair(owner, name, value, ("eta_minus", "eta_plus"))
    if not 0.0 < minus < 1.0 < plus:
        raise ValueError(f"{owner}: {name} must satisfy 0 < {name}[0] < 1 < {name}[1], "
                         f"got {value!r}")


def bounds_pair(owner: str, name: str, value: Any) -> None:
    """A (min, max) pair with 0 <= min <= max, such as Rprop's step_sizes."""
    low, high = _pair(owner, name, value, ("min", "max"))
    if not 0.0 <= low <= high:
        raise ValueError(f"{owner}: {name} must satisfy 0 <= {name}[0] <= {name}[1], "
                         f"got {value!r}")


def beta_triple(owner: str, name: str, value: Any) -> None:
    for i, beta in enumerate(_items(owner, name, value, ("beta1", "beta2", "beta3"))):
        unit_interval(owner, f"{name}[{i}]", beta)


def non_negative_int(owner: str, name: str, value: Any) -> None:
    if _integer(owner, name, value) < 0:
        raise ValueError(f"{owner}: {name} must be an integer >= 0, got {value!r}")


def positive_int(owner: str, name: str, value: Any) -> None:
    if _integer(owner, name, value) < 1:
        raise ValueError(f"{owner}: {name} must be an integer >= 1, got {value!r}")


def optional_positive(owner: str, name: str, value: Any) -> None:
    if value is not None:
        positive(owner, name, value)


def positive_or_inf(owner: str, name: str, value: Any) -> None:
    """> 0, infinity included (Prodigy's unbounded growth_rate)."""
    if value == math.inf:
        return
    positive(owner, name, value)


def optional_unit_interval(owner: str, name: str, value: Any) -> None:
    if value is not None:
        unit_interval(owner, name, value)


def boolean(owner: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be True or False, got {value!r}")


def optional_boolean(owner: str, name: str, value: Any) -> None:
    if value is not None and not isinstance(value, bool):
        raise TypeError(f"{owner}: {name} must be None, True or False, got {value!r}")


def state_dtype(owner: str, name: str, value: Any) -> None:
    allowed = (None, "float32", "bfloat16", "int8")
    if value not in allowed:
        raise ValueError(f"{owner}: {name} must be None, 'float32', 'bfloat16' or 'int8', "
                         f"got {value!r}")


def seed(owner: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**63:
        raise ValueError(f"{owner}: {name} must be an integer >= 0, got {value!r}")


def non_positive(owner: str, name: str, value: Any) -> None:
    if _number(owner, name, value) > 0:
        raise ValueError(f"{owner}: {name} must be <= 0, got {value!r}")


def at_least_one(owner: str, name: str, value: Any) -> None:
    if _number(owner, name, value) < 1:
        raise ValueError(f"{owner}: {name} must be >= 1, got {value!r}")


def _integer(owner: str, name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}: {name} must be an integer, got {value!r}")
    return value


def ns_steps(owner: str, name: str, value: Any) -> None:
    """Newton-Schulz iterations: torch refuses 100 or more."""
    if not 0 <= _integer(owner, name, value) < 100:
        raise ValueError(f"{owner}: {name} must be an integer in [0, 100), got {value!r}")


def coefficient_triple(owner: str, name: str, value: Any) -> None:
    for i, c in enumerate(_items(owner, name, value, ("a", "b", "c"))):
        _number(owner, f"{name}[{i}]", c)


def choice(*allowed: Any) -> Callable[[str, str, Any], None]:
    def check(owner: str, name: str, value: Any) -> None:
        check_choice(owner, name, value, allowed)
    return check


def eps_pair(owner: str, name: str, value: Any) -> None:
    """Adafactor's (eps1, eps2): eps1 None (the dtype's machine epsilon) or >= 0, eps2 >= 0."""
    _items(owner, name, value, ("eps1", "eps2"))
    if value[0] is not None:
        non_negative(owner, f"{name}[0]", value[0])
    non_negative(owner, f"{name}[1]", value[1])


Check = Callable[[str, str, Any], None]

# Hyperparameter name -> its check. Names follow torch.optim, so one table serves all.
CHECKS: dict[str, Check] = {
    "lr": non_negative,
    "state_dtype": state_dtype,
    "stochastic_rounding": optional_boolean,
    "rounding_seed": seed,
    "momentum": unit_interval,
    "dampening": closed_unit_interval,
    "alpha": unit_interval,
    "betas": beta_pair,
    "eps": positive,
    "weight_decay": non_negative,
    "lr_decay": non_negative,
    "initial_accumulator_value": non_negative,
    "nesterov": boolean,
    "amsgrad": boolean,
    "centered": boolean,
    "maximize": boolean,
    "bias_correction": boolean,
    "eps_inside_sqrt": boolean,
    "decoupled_weight_decay": boolean,
    "momentum_decay": non_negative,
    "rho": closed_unit_interval,
    "lambd": non_negative,
    "t0": non_negative,
    "etas": eta_pair,
    "step_sizes": bounds_pair,
    "warmup_steps": non_negative_int,
    "r": non_negative,
    "weight_lr_power": non_negative,
    "train_mode": boolean,
    "decay_at_z": boolean,
    "t_alpha_beta3": optional_positive,
    "weight_decouple": boolean,
    "fixed_decay": boolean,
    "decouple": boolean,
    "use_bias_correction": boolean,
    "safeguard_warmup": boolean,
    "d0": positive,
    "d_coef": positive,
    "slice_p": positive_int,
    "max_iter": positive_int,
    "max_eval": positive_int,
    "tolerance_grad": non_negative,
    "tolerance_change": non_negative,
    "history_size": positive_int,
    # Adafactor
    "beta2_decay": non_positive,
    # Muon
    "ns_coefficients": coefficient_triple,
    "ns_steps": ns_steps,
    "adjust_lr_fn": choice(None, "original", "match_rms_adamw"),
    "ns_dtype": choice("bfloat16", "float32", "float64"),
    "use_muon": boolean,
    # LAMB and LARS
    "grad_averaging": boolean,
    "adam": boolean,
    "pre_norm": boolean,
    "max_grad_norm": non_negative,
    "clamp": positive,
    "debias": choice("step", "moments", "none"),
    "trust_coefficient": non_negative,
    # SOAP
    "shampoo_beta": optional_unit_interval,
    "precondition_frequency": positive_int,
    "max_precondition_dim": positive_int,
    "merge_dims": boolean,
    "precondition_1d": boolean,
    "correct_bias": boolean,
    "normalize_gradient": boolean,
    "data_format": choice("channels_first", "channels_last"),
}


def check_hyperparameters(owner: str, group: dict[str, Any],
                          overrides: Mapping[str, Check] | None = None) -> None:
    """Check every value of `group` that has a check; `overrides` are a class's own checks
    for a name that means something else there (ASGD's ``alpha`` is an exponent, RMSprop's
    a decay rate)."""
    table = {**CHECKS, **overrides} if overrides else CHECKS
    for name, value in group.items():
        check = table.get(name)
        if check is not None:
            check(owner, name, value)


NONFINITE_POLICIES = ("ignore", "skip", "raise")


def check_choice(owner: str, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(
            f"{owner}: {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        )
