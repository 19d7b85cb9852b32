"""The precheck: every finding about a node that is about to be migrated."""

from __future__ import annotations

import attrs

from .. import policy
from ..model import WARNING, Analysis, Finding
from ._config import _config_findings, _state_findings
from ._files import _default_acl_findings, _file_findings, _key_acl_findings, directory_findings
from ._install import install_findings
from ._stores import _client_store_findings, _identity_findings, client_store_established

_CLIENT_CERT = policy.store_files("client")[0]


def precheck(analysis: Analysis, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> tuple[Finding, ...]:
    """Every finding about a node that is about to be migrated."""
    snap = analysis.snapshot
    found: list[Finding] = []
    found += directory_findings(snap)
    for rule in policy.FILES:
        found += _file_findings(analysis, rule, warn_days)
    found = _as_the_store_is(analysis, found)
    found += _key_acl_findings(snap)
    found += _default_acl_findings(snap)
    found += _identity_findings(analysis)
    found += _client_store_findings(analysis)
    found += _config_findings(analysis)
    found += _state_findings(snap)
    found += install_findings(snap)
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


def _as_the_store_is(analysis: Analysis, found: list[Finding]) -> list[Finding]:
    """``cert-no-client-eku`` said of the node as it is.

    On X15.4 the upgrade is to come: the server certificate will be copied into the
    client store.  On X15.5 the client store is there: when its certificate allows
    clientAuth (DOMAIN.md condition 2.1, the recommended setup) a server-only
    server.pem is what X15.5 is for, and nothing is said; when it is a copy without
    clientAuth the warning speaks of that copy, not of an upgrade.
    """
    if not client_store_established(analysis):
        return found
    client = analysis.material.get(_CLIENT_CERT)
    leaf = client.leaf if client is not None and client.error is None else None
    out = []
    for finding in found:
        if finding.id != "cert-no-client-eku":
            out.append(finding)
        elif leaf is None or not leaf.allows(policy.CLIENT_AUTH):
            head = finding.message.split(": ", 1)[0]
            out.append(
                attrs.evolve(
                    finding,
                    message=f"{head}: {policy.NO_CLIENT_AUTH_CONSEQUENCE_X155}",
                    hint=policy.NO_CLIENT_AUTH_FIX_X155,
                )
            )
    return out
