"""Findings about a scanned node: the precheck, the X15.5 verification, the node's state.

Pure functions of a :class:`~migrate.model.Analysis` (a snapshot whose files
:func:`migrate.facts.analyse` parsed once into facts): no I/O, no
cryptography.  Each finding has a stable kebab-case
id; the ids are part of the JSON contract (API.md).

The rooms, one job each: ``_files`` (each file and
directory), ``_stores`` (each identity store), ``_config`` (the configuration
and the tool's own state), ``_precheck``, ``_verify`` and ``_state``.
"""

from __future__ import annotations

from ..model import BLOCKER, INFO, SEVERITIES, WARNING, Analysis, Finding, Material, blockers
from ._config import JOURNAL_WAY_OUT
from ._files import directory_findings
from ._install import INSTALL_WAY_OUT
from ._precheck import precheck
from ._state import CLIENT_INSTALLED, INSTALL_INTERRUPTED, INTERRUPTED, MIXED, X154, X155, node_state
from ._stores import client_store_established
from ._verify import verify

__all__ = [
    "BLOCKER",
    "CLIENT_INSTALLED",
    "INFO",
    "INSTALL_INTERRUPTED",
    "INSTALL_WAY_OUT",
    "INTERRUPTED",
    "JOURNAL_WAY_OUT",
    "MIXED",
    "SEVERITIES",
    "WARNING",
    "X154",
    "X155",
    "Analysis",
    "Finding",
    "Material",
    "blockers",
    "client_store_established",
    "directory_findings",
    "node_state",
    "precheck",
    "verify",
]
