"""descend.lab: train, compare and draw optimizers. A client of the library.

Needs the ``lab`` extra (``pip install descend[lab]``). The public functions are imported
lazily so that ``descend --help`` starts fast.
"""

from typing import Any

_EXPORTS = {
    "compare": ("descend.lab.compare", "compare"),
    "CompareResult": ("descend.lab.compare", "CompareResult"),
    "Grid": ("descend.lab.spec", "Grid"),
    "Task": ("descend.lab.tasks", "Task"),
    "get_task": ("descend.lab.tasks", "get_task"),
    "build_report": ("descend.lab.report", "build_report"),
    "plot_schedules": ("descend.lab.plots", "plot_schedules"),
    "paths": ("descend.lab.paths", "paths"),
    "Surface": ("descend.lab.surfaces", "Surface"),
}

__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'descend.lab' has no attribute {name!r}")
    import importlib

    module, attr = _EXPORTS[name]
    return getattr(importlib.import_module(module), attr)
