"""The precheck: every finding about a node that is about to be migrated."""

from __future__ import annotations

from .. import policy
from ..model import WARNING, Analysis, Finding
from ._config import _config_findings, _state_findings
from ._files import _default_acl_findings, _file_findings, _key_acl_findings, directory_findings
from ._stores import _client_store_findings, _identity_findings


def precheck(analysis: Analysis, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> tuple[Finding, ...]:
    """Every finding about a node that is about to be migrated."""
    snap = analysis.snapshot
    found: list[Finding] = []
    found += directory_findings(snap)
    for rule in policy.FILES:
        found += _file_findings(analysis, rule, warn_days)
    found += _key_acl_findings(snap)
    found += _default_acl_findings(snap)
    found += _identity_findings(analysis)
    found += _client_store_findings(analysis)
    found += _config_findings(analysis)
    found += _state_findings(snap)
    if snap.euid != 0:
        found.append(
            Finding(
                "not-root",
                WARNING,
                None,
                "not running as root: apply and rollback need root to set the owners of the client files",
                "run apply and rollback as root (precheck and plan work unprivileged)",
            )
        )
    return tuple(found)
