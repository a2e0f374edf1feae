"""How a rule runs: execution backends. They decide HOW, never WHAT is computed.

A backend is a function ``step(rule, group, params, states)`` that applies `rule` to every
parameter of one param group that has a gradient, updating parameters and state in place.
"""

from __future__ import annotations

from collections.abc import Callable

from . import reference

Backend = Callable[..., None]

BACKENDS: dict[str, Backend] = {
    "reference": reference.step,
}

# "auto" picks the best backend available for the rule; until faster executors land,
# that is the reference loop.
AUTO = "reference"


def get_backend(name: str) -> Backend:
    if name == "auto":
        name = AUTO
    try:
        return BACKENDS[name]
    except KeyError:
        allowed = ", ".join(repr(n) for n in ["auto", *BACKENDS])
        raise ValueError(f"unknown backend {name!r}; allowed: {allowed}") from None
