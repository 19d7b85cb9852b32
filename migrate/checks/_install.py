"""The findings about an install's own state (``install-client``'s journal), for precheck and verify."""

from __future__ import annotations

from ..model import BLOCKER, WARNING, Finding, Snapshot

INSTALL_WAY_OUT = (
    "rollback and install-client never act on a journal they cannot trust, and nothing was changed: compare the "
    "client store with its backup and restore what differs, then remove the install journal"
)


def install_findings(snap: Snapshot, *, verifying: bool = False) -> list[Finding]:
    """An install journal that cannot be trusted (blocker); an install or its rollback that did not finish."""
    if not snap.install_exists:
        return []
    assert snap.install_journal is not None
    path = snap.install_journal.path
    found = snap.install_record
    if found is None:
        return [
            Finding(
                "install-journal-invalid",
                BLOCKER,
                path,
                f"the install journal cannot be trusted: {snap.install_problem or 'it cannot be read'}",
                INSTALL_WAY_OUT,
            )
        ]
    if found.applied:
        return []
    message = "an install of a client identity (or its rollback) did not finish"
    hint = "run install-client again with the same files, or rollback"
    if verifying:
        return [Finding("install-interrupted", BLOCKER, path, message, hint)]
    return [Finding("install-interrupted", WARNING, path, message, hint)]
