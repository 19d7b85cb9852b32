"""expressway-migrate: take a Cisco Expressway node's certificate store from X15.4 to X15.5.

Read-only scan, pure plan, one writer::

    layout = Layout.for_node("/tandberg")
    analysis = analyse(scan(layout))
    plan = make_plan(analysis)       # the dry run
    outcome = apply(layout)          # executes exactly that plan, then proves it

Names are imported lazily, so that ``--help`` and plain commands start fast.
"""

from __future__ import annotations

import contextlib
import importlib

__version__ = "0.2.0.dev0"

_EXPORTS = {
    "Analysis": "model",
    "ApplyError": "errors",
    "BlockedError": "errors",
    "Finding": "model",
    "Layout": "scan",
    "MigrateError": "errors",
    "Outcome": "writer",
    "Plan": "plan",
    "Rehearsal": "testing.rehearsal",
    "Snapshot": "scan",
    "analyse": "facts",
    "apply": "writer",
    "make_plan": "plan",
    "node_state": "checks",
    "precheck": "checks",
    "rehearse": "testing.rehearsal",
    "rollback": "writer",
    "scan": "scan",
    "verify": "checks",
}

# ``scan`` is both a module and its function: bind the function eagerly (the module is light).
# On a broken install the import is left to fail where it is used, so that the command line
# (``migrate.cli``, which imports this package first) still reports it as one line.
with contextlib.suppress(Exception):  # a broken install: reported where the name is used
    from .scan import Layout, Snapshot, scan  # noqa: F401 - bound here, listed in __all__

__all__ = sorted([*_EXPORTS, "__version__"])


# Modules of the test kit that moved to ``migrate.testing``, still reachable as ``from migrate import faults``.
_MOVED = {"faults": "testing.faults", "factory": "testing.factory", "tree": "testing.tree", "samples": "testing.samples"}


def __getattr__(name: str):
    if name in _MOVED:
        return importlib.import_module(f"migrate.{_MOVED[name]}")
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'migrate' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"migrate.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
