"""expressway-migrate: take a Cisco Expressway node's certificate store from X15.4 to X15.5.

Read-only scan, pure plan, one writer::

    layout = Layout.for_node("/tandberg")
    analysis = analyse(scan(layout))
    plan = make_plan(analysis)       # the dry run
    outcome = apply(layout)          # executes exactly that plan, then proves it

Names are imported lazily, so that ``--help`` and plain commands start fast.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "Analysis": "checks",
    "ApplyError": "errors",
    "BlockedError": "errors",
    "Finding": "checks",
    "MigrateError": "errors",
    "Outcome": "writer",
    "Plan": "plan",
    "Rehearsal": "rehearsal",
    "analyse": "checks",
    "apply": "writer",
    "make_plan": "plan",
    "node_state": "checks",
    "precheck": "checks",
    "rehearse": "rehearsal",
    "rollback": "writer",
    "verify": "checks",
}

# ``scan`` is both a module and its function: bind the function eagerly (the module is light).
from .scan import Layout, Snapshot, scan  # noqa: E402

__all__ = sorted([*_EXPORTS, "Layout", "Snapshot", "__version__", "scan"])


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'migrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"migrate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
