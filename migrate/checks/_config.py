"""The findings about the configuration text and the tool's own state (journal, staging files)."""

from __future__ import annotations

from .. import policy, xconfig
from ..model import BLOCKER, INFO, WARNING, Analysis, Finding, Snapshot
from ._files import _unusable


def _config_findings(analysis: Analysis) -> list[Finding]:
    snap = analysis.snapshot
    state = snap.config
    path = state.path
    if state.kind == "missing":
        return [
            Finding(
                "config-missing",
                BLOCKER,
                path,
                "the configuration file is missing: the retired setting cannot be checked or removed",
                "save the node's configuration there (xconfiguration > FILE), or pass --config",
            )
        ]
    unusable = _unusable(
        state,
        "config",
        "the configuration",
        policy.MAX_CONFIG_BYTES,
        "check that --config names the xConfiguration text",
        snap.euid,
    )
    if unusable:
        return [unusable]
    assert state.data is not None  # present and usable: a regular file the scan read whole
    if not state.data.strip():
        return [
            Finding(
                "config-empty",
                BLOCKER,
                path,
                "the configuration file is empty: a node's configuration has hundreds of settings",
                "save the node's configuration there again (xconfiguration > FILE), or pass --config",
            )
        ]
    out = unplaced_findings(analysis, blocker=True)
    if state.mode is not None and state.mode & 0o002:
        out.append(
            Finding(
                "mode-loose",
                WARNING,
                path,
                f"the configuration is writable by every user (mode {state.mode:04o})",
                f"chmod o-w {path}",
            )
        )
    retired = analysis.setting(policy.RETIRED_SETTING)
    if len(retired) > policy.MAX_RETIRED_LINES:
        out.append(
            Finding(
                "retired-setting-repeated",
                BLOCKER,
                path,
                f"EnableServerEkuUpload is set on {len(retired)} lines, more than the {policy.MAX_RETIRED_LINES} "
                "the migration retires in one run",
                f"keep one line for '{policy.RETIRED_SETTING}' (xconfiguration prints it once)",
            )
        )
    values = {xconfig.is_on(s.value) for s in retired}
    if len(values) > 1:
        lines = ", ".join(str(s.line_no) for s in retired)
        out.append(
            Finding(
                "retired-setting-conflict",
                WARNING,
                path,
                f"EnableServerEkuUpload is set several times with different values (lines {lines})",
                "the migration retires every line; check which value the node really used",
            )
        )
    if True in values:
        out.append(
            Finding(
                "server-eku-upload-on",
                WARNING,
                path,
                "EnableServerEkuUpload is On: this node was allowed a server certificate without clientAuth, "
                "and X15.5 retires the switch; if server.pem lacks clientAuth, "
                f"{policy.NO_CLIENT_AUTH_CONSEQUENCE}",
                policy.NO_CLIENT_AUTH_FIX,
            )
        )
    elif retired:
        out.append(
            Finding(
                "retired-setting-present",
                INFO,
                path,
                "EnableServerEkuUpload is set; X15.5 retires it and the migration removes the line",
                "nothing to do: apply removes the line, rollback restores it",
            )
        )
    checking = analysis.setting(policy.CHECKING_SETTING)
    modes = {xconfig.is_on(s.value) for s in checking}
    if len(modes) > 1:
        out.append(
            Finding(
                "checking-mode-conflict",
                BLOCKER,
                path,
                "the EKU Checking Mode is set several times with different values",
                f"keep one line for '{policy.CHECKING_SETTING}'",
            )
        )
    elif None in modes:
        out.append(
            Finding(
                "checking-mode-invalid",
                BLOCKER,
                path,
                f"the EKU Checking Mode has a value that is neither On nor Off: {checking[0].value!r}",
                "set it to On or Off",
            )
        )
    elif False in modes:
        out.append(
            Finding(
                "checking-mode-off",
                INFO,
                path,
                "EKU Checking Mode is Off: inbound SIP TLS skips the clientAuth check (on an Edge it restores a traversal "
                "zone whose Core presents no clientAuth), but the SSH tunnels still require clientAuth, so MRA and WebRTC "
                "still need it",
                "for the tunnels, MRA and WebRTC give the Core a client certificate with clientAuth from a private CA",
            )
        )
    return out


def unplaced_findings(analysis: Analysis, *, blocker: bool) -> list[Finding]:
    """A finding for each line that names a setting the tool relies on but cannot be read as that setting.

    A blocker for precheck, plan and apply: a Checking Mode line the parser does not see would make apply
    add a second one (``On``) after it; a warning for ``assess``, which reads the rest.
    """
    state = analysis.snapshot.config
    if state.data is None:
        return []
    found = xconfig.unplaced(
        state.data, analysis.settings, exact=policy.RELIED_ON_SETTINGS, suffixes=policy.RELIED_ON_ZONE_SETTINGS
    )
    out = []
    hint = (
        "write it as the appliance prints it, '*c xConfiguration <name>: <value>' (a blank after the colon), "
        "or remove it"
    )
    for line_no, name in found:
        message = f"line {line_no} names '{name}' but is not a setting line the tool can read"
        if blocker:
            out.append(Finding("config-line-unparsed", BLOCKER, state.path, message, hint))
        else:
            out.append(Finding("config-line-unparsed", WARNING, state.path, message, hint))
    return out


JOURNAL_WAY_OUT = (
    "apply and rollback never act on a journal they cannot trust, and nothing was changed: compare the node "
    f"with its backup and restore what differs, then remove {policy.STATE_DIR}"
)


def _state_findings(snap: Snapshot) -> list[Finding]:
    out = []
    problem = snap.journal_problem
    record = snap.journal_record if problem is None else None
    if snap.journal.exists and record is None:
        out.append(
            Finding(
                "journal-invalid",
                BLOCKER,
                snap.journal.path,
                f"the migration journal cannot be trusted: {problem or 'it cannot be read'}",
                JOURNAL_WAY_OUT,
            )
        )
    elif record is None:
        # With an install journal (install-client), the staging files are the install's.
        for temp in () if snap.install_exists else snap.temps:
            out.append(
                Finding(
                    "stale-temp-file",
                    BLOCKER,
                    temp.path,
                    "a staging file of the migration exists but there is no journal",
                    f"remove {temp.path} after checking what it is",
                )
            )
    elif not record.applied:
        out.append(
            Finding(
                "migration-interrupted",
                WARNING,
                snap.journal.path,
                "a migration was interrupted: apply completes it, rollback undoes it",
                "run apply again, or rollback",
            )
        )
    return out
