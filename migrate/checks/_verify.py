"""The X15.5 verification: every way a node falls short of the invariants the migration leaves."""

from __future__ import annotations

from collections.abc import Iterable

from .. import policy
from ..model import BLOCKER, Analysis, Finding
from ._install import install_findings
from ._precheck import precheck
from ._stores import _client_policy_findings


def verify(analysis: Analysis) -> tuple[Finding, ...]:
    """Every way the node falls short of the X15.5 invariants; empty when they hold."""
    snap = analysis.snapshot
    out: list[Finding] = [f for f in precheck(analysis) if f.severity == BLOCKER]
    for rule in policy.CLIENT_FILES:
        assert rule.counterpart is not None  # every client file has one (policy.FILES)
        state, source = snap.files[rule.name], snap.files[rule.counterpart]
        if not source.exists:
            continue
        if state.kind != "file":
            if state.kind == "missing":
                out.append(Finding("client-file-missing", BLOCKER, state.path, f"{rule.name} is missing", "run apply"))
            continue
        out += _client_policy_findings(rule, state, source)
    if analysis.setting(policy.RETIRED_SETTING):
        out.append(
            Finding(
                "retired-setting-present",
                BLOCKER,
                snap.config.path,
                "EnableServerEkuUpload is still set; X15.5 retired it",
                "run apply",
            )
        )
    if snap.config.data is not None and not analysis.setting(policy.CHECKING_SETTING):
        out.append(
            Finding(
                "checking-mode-unstated",
                BLOCKER,
                snap.config.path,
                "the EKU Checking Mode is not stated in the configuration",
                "run apply",
            )
        )
    found = snap.journal_record
    if found is not None and not found.applied:
        out.append(
            Finding(
                "migration-interrupted",
                BLOCKER,
                snap.journal.path,
                "a migration was interrupted",
                "run apply again, or rollback",
            )
        )
    out += install_findings(snap, verifying=True)
    return tuple(_unique(out))


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out
