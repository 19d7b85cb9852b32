"""The one writer: ``apply`` executes a plan, ``rollback`` replays the journal backwards.

Both take the node's lock, scan again under it, and refuse if the node is not
what the plan (or the journal) says.  A failure during ``apply`` is fed back
into the state: the journal written before the first change drives the undo,
so the node is returned to X15.4 before the command exits.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import datetime, timezone

import attrs

from . import checks, fsops, journal, logs, policy
from .checks import Finding
from .errors import ApplyError, BlockedError, JournalError, MigrateError, PlanError, PrivilegeError, RollbackError
from .plan import (
    CONFIG_ACTIONS,
    CompleteJournal,
    CreateFile,
    Plan,
    RemoveFile,
    RemoveTemp,
    RestoreConfig,
    check_saved_plan,
    edited_config,
    make_plan,
)
from .scan import Layout, Snapshot, read_capped, scan

log = logs.get_logger(__name__)

FORMAT_VERSION = 1


@attrs.frozen
class Outcome:
    """What ``apply`` or ``rollback`` did, and the state it proved afterwards."""

    command: str
    node: str
    result: str  # migrated, already-migrated, rolled-back, nothing-to-do
    actions: tuple = ()
    findings: tuple[Finding, ...] = ()
    displaced: str | None = None

    @property
    def ok(self) -> bool:
        return not checks.blockers(self.findings)

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "command": self.command,
            "node": self.node,
            "ok": self.ok,
            "result": self.result,
            "actions": [a.as_dict() for a in self.actions],
            "findings": [f.as_dict() for f in self.findings],
            "displaced": self.displaced,
        }


def _analyse(layout: Layout, warn_days: int) -> tuple[checks.Analysis, Plan]:
    analysis = checks.analyse(scan(layout))
    return analysis, make_plan(analysis, warn_days=warn_days)


def _require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{command} must run as root: it sets the owners of the client files",
            hint="run it with sudo, or as root (precheck and plan work unprivileged)",
        )


@contextlib.contextmanager
def _locked(layout: Layout, failure: MigrateError) -> Iterator[None]:
    """Hold the node's lock; a file-system error while taking it becomes ``failure`` (the node is unchanged)."""
    try:
        fd = journal.acquire(layout)
    except OSError as exc:
        failure.message = f"{failure.message} ({os.strerror(exc.errno or errno.EIO)}); the node was not changed"
        failure.hint = (
            _cause_hint(exc, "check that the file system is writable and has free space") + ", then run it again"
        )
        raise failure from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):  # the descriptor is released even when close reports an error
            os.close(fd)


_CAUSE_HINTS = {
    errno.EROFS: "the file system is mounted read-only: remount it read-write",
    errno.ENOSPC: "the file system is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: policy.ROOT_REFUSED_HINT,
    errno.EPERM: policy.ROOT_REFUSED_HINT,
    errno.EIO: "the disk reported an I/O error: check the system log (dmesg) first",
}


def _cause_hint(exc: BaseException, default: str = "fix the cause") -> str:
    """What to do about ``exc``: specific to its errno where one is known, else ``default``."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return _CAUSE_HINTS.get(exc.errno, default) if isinstance(exc, OSError) else default


def _refuse_blockers(plan: Plan) -> None:
    found = checks.blockers(plan.findings)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more blocker(s))" if len(found) > 1 else ""
        raise BlockedError(
            f"{first.message}{more}",
            id=first.id,
            path=first.path,
            hint=first.hint or "run precheck to see every finding",
            findings=found,
        )


# --- apply --------------------------------------------------------------------


def apply(layout: Layout, *, saved_plan: dict | None = None, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> Outcome:
    """Migrate the node, exactly as its plan says, and prove the result."""
    _, plan = _analyse(layout, warn_days)
    if saved_plan is not None:
        check_saved_plan(saved_plan, plan)
    _refuse_blockers(plan)
    if not plan.actions:
        return _proved(layout, "apply", "already-migrated", ())
    _require_root("apply")
    with _locked(layout, ApplyError("apply could not take the node's lock", id="apply-failed")):
        try:
            analysis, locked_plan = _analyse(layout, warn_days)
            if locked_plan.fingerprint != plan.fingerprint:
                if saved_plan is None and locked_plan.ready and not locked_plan.actions:
                    return _proved(layout, "apply", "already-migrated", ())
                raise PlanError(
                    "the node changed while apply was starting",
                    id="node-changed",
                    hint="run plan again; apply refuses to act on a node it did not plan",
                )
            try:
                _execute(layout, analysis.snapshot, locked_plan)
                outcome = _proved(layout, "apply", "migrated", locked_plan.actions)
            except Exception as exc:
                raise _failed(layout, exc) from exc
            if not outcome.ok:
                raise _failed(layout, ApplyError("the migrated node does not verify: " + outcome.findings[0].message))
            return outcome
        finally:
            with contextlib.suppress(OSError):  # what is left is tool state without a journal: rollback clears it
                if not fsops.lexists(layout.journal):
                    journal.remove_state(layout)


def _proved(layout: Layout, command: str, result: str, actions) -> Outcome:
    """The outcome, with the X15.5 verification of what is on disk now."""
    analysis = checks.analyse(scan(layout))
    findings = checks.verify(analysis)
    replan = make_plan(analysis)
    if replan.actions:
        findings += (
            Finding(
                "work-remaining",
                checks.BLOCKER,
                None,
                f"planning again still finds {len(replan.actions)} action(s) to take",
                "run plan to see them",
            ),
        )
    return Outcome(command=command, node=str(layout.root), result=result, actions=tuple(actions), findings=findings)


def _failed(layout: Layout, exc: Exception) -> ApplyError:
    """Return the node to X15.4 after a failed apply; the error to raise."""
    reason = exc.message if isinstance(exc, MigrateError) else f"{type(exc).__name__}: {exc}"
    log.error("apply_failed", reason=reason)
    try:
        started = fsops.lexists(layout.journal)
    except OSError:
        started = True  # cannot tell: try the undo, which reports if it cannot run
    if not started:  # it failed before its first change to the node
        return ApplyError(
            f"apply failed ({reason}); the node was not changed",
            hint=_cause_hint(exc) + ", then run apply again",
        )
    try:
        _rollback_locked(layout, force=False)
    except Exception as undo:  # the journal stays: rollback or apply can finish later
        log.error("undo_failed", reason=f"{type(undo).__name__}: {undo}")
        return ApplyError(
            f"apply failed ({reason}) and so did the undo ({type(undo).__name__}: {undo}): the node is mid-migration",
            hint=_cause_hint(exc) + ", then run rollback (or apply) again: the journal records what was done",
        )
    return ApplyError(
        f"apply failed ({reason}); the node was returned to its previous state",
        hint=_cause_hint(exc) + ", then run apply again",
    )


def _execute(layout: Layout, snap: Snapshot, plan: Plan) -> None:
    """Carry out ``plan`` on the node ``snap`` describes, journal first."""
    journal.clear_staging(layout)
    config_actions = plan.config_actions
    new_config = edited_config(snap.config.data, config_actions) if config_actions else None
    if snap.journal.exists:
        record = journal.load(snap)
        if config_actions:
            _resume_config_record(layout, snap, record, new_config)
    else:
        if new_config is not None:  # a copy left by a run that died before its journal is stale: replace it
            fsops.replace_file(layout.config_backup, snap.config.data, mode=0o600)
        record = journal.new(snap, plan.fingerprint, _sha(new_config) if new_config is not None else None)
    work = [a for a in plan.actions if not isinstance(a, CompleteJournal)]
    entries = [dict(a.as_dict(), done=False) for a in work]
    record["actions"] += entries
    journal.save(layout, record)
    for action, entry in zip(work, entries, strict=True):
        if entry["done"]:  # a configuration action, done with the first one
            continue
        if isinstance(action, RemoveTemp):
            fsops.remove_file(layout.resolve(action.path))
        elif isinstance(action, CreateFile):
            data = _source_bytes(snap, action)
            fsops.create_file(layout.resolve(action.path), data, mode=action.mode, uid=action.uid, gid=action.gid)
        else:  # every configuration action, in one atomic replace
            cfg = snap.config
            fsops.replace_file(layout.config, new_config, mode=cfg.mode, uid=cfg.uid, gid=cfg.gid)
            for other, other_entry in zip(work, entries, strict=True):
                if isinstance(other, CONFIG_ACTIONS):
                    other_entry["done"] = True
        entry["done"] = True
        journal.save(layout, record)
    record["state"] = journal.APPLIED
    record["finished"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    journal.save(layout, record)


def _source_bytes(snap: Snapshot, action: CreateFile) -> bytes:
    for state in snap.files.values():
        if state.path == action.source and state.sha256 == action.sha256:
            return state.data
    raise PlanError(f"the source of {action.path} changed", id="node-changed", hint="run plan again")


def _resume_config_record(layout: Layout, snap: Snapshot, record: dict, new_config: bytes) -> None:
    """Before a resumed run edits the configuration, make sure the journal can undo it."""
    cfg = record.get("config")
    if cfg is None:
        record["config"] = journal.new(snap, record["fingerprint"], _sha(new_config))["config"]
        fsops.replace_file(layout.config_backup, snap.config.data, mode=0o600)
        return
    if cfg["sha256_before"] != snap.config.sha256:
        raise JournalError(
            "the configuration changed since the interrupted migration started",
            path=snap.config.path,
            hint="run rollback first, then apply",
        )
    if not snap.config_backup.exists:
        fsops.create_file(layout.config_backup, snap.config.data, mode=0o600)
    cfg["sha256_after"] = _sha(new_config)


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- rollback -----------------------------------------------------------------


def rollback(layout: Layout, *, force: bool = False) -> Outcome:
    """Return a node migrated by this tool to its exact X15.4 state."""
    snap = scan(layout)
    unsafe = checks.directory_findings(snap)
    if unsafe:
        raise RollbackError(unsafe[0].message, id=unsafe[0].id, path=unsafe[0].path, hint=unsafe[0].hint)
    if not snap.journal.exists:
        state, _ = checks.node_state(checks.analyse(snap))
        if state == checks.X154:
            if snap.state_dir.kind == "dir":  # left by a run that died before its first change
                _require_root("rollback")
                with _locked(layout, RollbackError("rollback could not take the node's lock", id="rollback-failed")):
                    with _rollback_failure():
                        if not fsops.lexists(layout.journal):
                            journal.remove_state(layout)
            return Outcome(command="rollback", node=str(layout.root), result="nothing-to-do")
        raise RollbackError(
            "the node was not migrated by this tool: there is no migration journal to roll back",
            id="not-migrated-by-tool",
            path=snap.journal.path,
            hint="restore the node from its backup, or undo the X15.5 changes by hand",
        )
    journal.load(snap)
    _require_root("rollback")
    with _locked(layout, RollbackError("rollback could not take the node's lock", id="rollback-failed")):
        with _rollback_failure():
            if not fsops.lexists(layout.journal):  # another run finished the rollback meanwhile
                journal.remove_state(layout)
                return Outcome(command="rollback", node=str(layout.root), result="nothing-to-do")
            return _rollback_locked(layout, force=force)


@contextlib.contextmanager
def _rollback_failure() -> Iterator[None]:
    """A file-system error during rollback becomes ``rollback-failed``; the journal stays for the next run."""
    try:
        yield
    except OSError as exc:
        log.error("rollback_failed", reason=f"{type(exc).__name__}: {exc}")
        raise RollbackError(
            f"rollback failed ({os.strerror(exc.errno or errno.EIO)}: {exc.filename}); the node is mid-rollback",
            id="rollback-failed",
            hint=_cause_hint(exc) + ", then run rollback (or apply) again: the journal records what is left to do",
        ) from exc


def _rollback_locked(layout: Layout, *, force: bool) -> Outcome:
    snap = scan(layout)
    record = journal.load(snap)
    steps, conflicts = _undo_steps(layout, snap, record)
    displaced = None
    if conflicts and not force:
        paths = ", ".join(c.path for c in conflicts)
        raise RollbackError(
            f"changed since the migration, so rollback would lose them: {paths}",
            id="rollback-conflict",
            hint="keep them elsewhere, or run rollback --force, which first moves them to a directory it names",
        )
    if conflicts:
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        directory = layout.root / f"{policy.DISPLACED_PREFIX}{stamp}"
        for state in conflicts:
            fsops.move_aside(layout.resolve(state.path), directory)
        displaced = layout.rel(directory)
    for step in steps:
        if isinstance(step, RestoreConfig):
            cfg = record["config"]
            backup = read_capped(layout.config_backup, policy.MAX_CONFIG_BYTES, snap.config_backup.path)
            if backup.data is None or _sha(backup.data) != cfg["sha256_before"]:
                raise JournalError(
                    "the saved copy of the configuration is missing or damaged",
                    path=snap.config_backup.path,
                    hint="restore the configuration from a backup",
                )
            fsops.replace_file(layout.config, backup.data, mode=int(cfg["mode"], 8), uid=cfg["uid"], gid=cfg["gid"])
        else:
            fsops.remove_file(layout.resolve(step.path))
    journal.remove_state(layout)
    fsops.fsync_dir(layout.state_dir.parent)
    return Outcome(
        command="rollback", node=str(layout.root), result="rolled-back", actions=tuple(steps), displaced=displaced
    )


def _undo_steps(layout: Layout, snap: Snapshot, record: dict) -> tuple[list, list]:
    """The reverse of what the journal records, and what changed since (conflicts)."""
    by_path = {state.path: state for state in snap.files.values()}
    steps: list = [RemoveTemp(path=temp.path) for temp in snap.temps]
    conflicts = []
    for entry in reversed(journal.created_files(record)):
        state = by_path.get(entry["path"]) or read_capped(
            layout.resolve(entry["path"]), policy.MAX_PEM_BYTES, entry["path"]
        )
        if not state.exists:
            continue
        if state.kind == "file" and state.sha256 == entry["sha256"]:
            steps.append(RemoveFile(path=entry["path"], sha256=entry["sha256"]))
        else:
            conflicts.append(state)
    cfg = record.get("config")
    if cfg is not None:
        current = snap.config.sha256
        if current == cfg["sha256_after"] and current != cfg["sha256_before"]:
            steps.append(RestoreConfig(path=cfg["path"]))
        elif current != cfg["sha256_before"]:
            if snap.config.exists:
                conflicts.append(snap.config)
            steps.append(RestoreConfig(path=cfg["path"]))
    return steps, conflicts
