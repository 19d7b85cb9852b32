"""The plan: a pure function from what was read to what ``apply`` will do.

``make_plan(analysis) -> Plan`` does no I/O.  The plan *is* the dry run: the
writer executes exactly its actions, in order, and nothing else.  Each action
knows the action that undoes it (Alembic's ``reverse()``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import attrs

from . import checks, policy, xconfig
from .actions import (  # noqa: F401 - re-exported: the plan's vocabulary
    CONFIG_ACTIONS,
    Action,
    AddSetting,
    CompleteJournal,
    CreateFile,
    RemoveFile,
    RemoveTemp,
    RestoreConfig,
    RetireSetting,
)
from .checks import Analysis, Finding
from .errors import PlanError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

FORMAT_VERSION = policy.FORMAT_VERSION  # one version for every document


@attrs.frozen
class Plan:
    """The findings and the ordered actions for one node at one moment."""

    node: str
    fingerprint: str
    state: str
    migrated_by_tool: bool
    findings: tuple[Finding, ...]
    actions: tuple[Action, ...] = ()

    @property
    def ready(self) -> bool:
        return not checks.blockers(self.findings)

    @property
    def config_actions(self) -> tuple[RetireSetting | AddSetting, ...]:
        return tuple(a for a in self.actions if isinstance(a, CONFIG_ACTIONS))

    def as_dict(self) -> dict[str, object]:
        return {
            "format_version": FORMAT_VERSION,
            "command": "plan",
            "node": self.node,
            "ready": self.ready,
            "state": self.state,
            "migrated_by_tool": self.migrated_by_tool,
            "fingerprint": self.fingerprint,
            "findings": [f.as_dict() for f in self.findings],
            "actions": [a.as_dict() for a in self.actions],
        }

    def precheck_dict(self) -> dict[str, object]:
        """The precheck document: the plan's without the fingerprint and the actions."""
        doc = self.as_dict()
        del doc["fingerprint"], doc["actions"]
        return {**doc, "command": "precheck"}


def make_plan(analysis: Analysis, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> Plan:
    """The plan for the analysed node: no actions while any blocker stands."""
    snap = analysis.snapshot
    findings = checks.precheck(analysis, warn_days=warn_days)
    state, by_tool = checks.node_state(analysis)
    actions: tuple[Action, ...] = ()
    if not checks.blockers(findings):
        actions = tuple(_temp_actions(analysis) + _file_actions(analysis) + _config_actions(analysis))
        found = snap.journal_record
        if not actions and found is not None and not found.applied:
            actions = (CompleteJournal(),)
    return Plan(
        node=str(snap.layout.root),
        fingerprint=snap.fingerprint,
        state=state,
        migrated_by_tool=by_tool,
        findings=findings,
        actions=actions,
    )


def _temp_actions(analysis: Analysis) -> list[Action]:
    # Without a journal a staging file is a blocker (stale-temp-file); with one it is ours.
    return [RemoveTemp(path=temp.path) for temp in analysis.snapshot.temps]


def _file_actions(analysis: Analysis) -> list[Action]:
    snap = analysis.snapshot
    out: list[Action] = []
    for rule in policy.CLIENT_FILES:
        assert rule.counterpart is not None  # every client file has one (policy.FILES)
        source, target = snap.files[rule.counterpart], snap.files[rule.name]
        if source.data is None or target.exists:
            continue  # absent counterpart: nothing to copy; present target: checked by precheck
        sha256 = source.sha256
        # A file the scan read whole was stat'ed first (scan.read_capped): its mode and owner are known.
        assert source.mode is not None and source.uid is not None and source.gid is not None and sha256 is not None
        out.append(
            CreateFile(
                path=target.path,
                source=source.path,
                mode=policy.client_mode(rule, source.mode),
                uid=source.uid,
                gid=source.gid,
                sha256=sha256,
            )
        )
    return out


def _config_actions(analysis: Analysis) -> list[Action]:
    snap = analysis.snapshot
    if snap.config.data is None:
        return []
    out: list[Action] = [
        RetireSetting(path=snap.config.path, setting=s.name, old_value=_shown(s.value), line=s.line_no)
        for s in analysis.setting(policy.RETIRED_SETTING)
    ]
    if not analysis.setting(policy.CHECKING_SETTING):
        out.append(AddSetting(path=snap.config.path, setting=policy.CHECKING_SETTING, value=policy.CHECKING_DEFAULT))
    return out


def _shown(value: str) -> str:
    """A retired value as the plan (and the journal) shows it: cut at :data:`policy.MAX_SHOWN_VALUE` characters."""
    if len(value) <= policy.MAX_SHOWN_VALUE:
        return value
    return value[: policy.MAX_SHOWN_VALUE] + "\u2026"


def edited_config(data: bytes, actions: Iterable[Action]) -> bytes:
    """The configuration bytes after the plan's configuration actions."""
    remove = [a.line for a in actions if isinstance(a, RetireSetting)]
    append = [xconfig.setting_line(a.setting, a.value) for a in actions if isinstance(a, AddSetting)]
    return xconfig.edit(data, remove_lines=remove, append=append)


def load_saved_plan(data: bytes, source: str) -> dict[str, Any]:
    """A plan file written by ``plan --out``: its JSON, checked for shape."""
    try:
        saved = json.loads(data)
    except (ValueError, RecursionError):
        raise PlanError(
            f"{source} is not a plan file (not JSON)", id="plan-invalid", hint="write one with plan --out"
        ) from None
    if (
        not isinstance(saved, dict)
        or saved.get("format_version") != FORMAT_VERSION
        or "fingerprint" not in saved
        or not isinstance(saved.get("node"), str)
    ):
        raise PlanError(
            f"{source} is not a plan file of format version {FORMAT_VERSION}",
            id="plan-invalid",
            hint="write one with plan --out, with this version of the tool",
        )
    return saved


def check_saved_plan(saved: Mapping[str, object], current: Plan) -> None:
    """Refuse a saved plan unless it is this node's, and the node is exactly as it was when the plan was made."""
    if saved.get("node") != current.node:
        raise PlanError(
            f"the plan was made for another node ({str(saved.get('node'))[:200]!r}), not {current.node}",
            id="plan-other-node",
            hint=f"pass the plan made for this node, or make one: plan {current.node} --out FILE",
        )
    if saved["fingerprint"] != current.fingerprint:
        raise PlanError(
            "the node changed since the plan was made",
            id="plan-stale",
            hint="run plan again and review the new plan",
        )
    if saved.get("actions") != current.as_dict()["actions"]:
        raise PlanError(
            "the saved plan's actions differ from what this version of the tool would do on the same node",
            id="plan-mismatch",
            hint="run plan again with this version of the tool",
        )
