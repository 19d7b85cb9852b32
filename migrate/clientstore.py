"""The writer of the client store: ``install-client`` executes an install plan, and its rollback.

The same guarantees as ``apply`` (:mod:`migrate.writer`), through the same
means: the node's lock, the directories held open, a fingerprint compared
under the lock, every file staged and published by :mod:`migrate.fsops`, a
typed journal written before the first change (:mod:`migrate.install_record`,
``install.json`` beside the migration's journal), and a failure fed back into
the state: an install that fails is undone before the command exits.

Before a client file is replaced, its previous bytes are kept in the state
directory (``client.pem.previous``..., mode 0400, root), so that rollback
restores the previous client store exactly: bytes, modes, owners.

Every file-system call goes through :mod:`migrate.fsops`, :mod:`migrate.journal`
and :mod:`migrate.scan` (this module calls no ``os`` function itself), so the
fault matrix (:mod:`migrate.testing.faults`) counts and fails each of them.
"""

from __future__ import annotations

import contextlib
import hashlib
from datetime import UTC, datetime

import attrs

from . import checks, facts, fsops, journal, logs, policy
from .actions import RemoveFile, RemoveTemp, ReplaceFile, RestoreFile
from .checks import Finding
from .clientcert import read_plan
from .dirs import Dir, Held
from .errors import ApplyError, JournalError, MigrateError, PlanError, PrivilegeError, RollbackError
from .install import InstallPlan, InstallReport, InstallRequest, make_install_plan
from .install_record import APPLIED, APPLYING, ROLLING_BACK, InstallEntry, InstallJournal
from .model import FileState, Layout, Snapshot
from .scan import read_capped, scan
from .writing import Outcome, cause_hint, holding, move_aside, place, refuse_blockers, require_root, rollback_failure

log = logs.get_logger(__name__)

PREVIOUS_NAMES = tuple(policy.previous_name(rule.name) for rule in policy.CLIENT_FILES)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# --- install ------------------------------------------------------------------


def install(layout: Layout, request: InstallRequest) -> InstallReport:
    """Install the client identity ``request`` names, exactly as its plan says, and prove the result."""
    peer = Layout.for_node(request.peer) if request.peer else None
    with journal.reading(layout):
        plan = read_plan(layout, request, peer=peer)
    refuse_blockers(
        plan.findings, after="; the node was not changed", hint="run install-client --plan-only to see every finding"
    )
    if not plan.actions:
        if plan.state == checks.CLIENT_INSTALLED:
            _tidy(layout)
        return _proved(layout, plan, "already-installed", request.warn_days)
    require_root("install-client")
    failure = ApplyError("install-client could not take the node's lock", id="install-failed")
    with holding(layout, failure) as (held, state):
        try:
            snap = scan(layout, held=held)
            if snap.fingerprint != plan.fingerprint:
                raise PlanError(
                    "the node changed while install-client was starting",
                    id="node-changed",
                    hint="run install-client again; it never acts on a node it did not plan",
                )
            try:
                _execute(held, state, layout, snap, plan)
                report = _proved(layout, plan, "installed", request.warn_days, held)
            except Exception as exc:
                raise _failed(held, state, layout, exc) from exc
            if not report.ok:
                blocker = checks.blockers(report.findings)[0]
                raise _failed(
                    held, state, layout, ApplyError(f"the installed client store does not verify: {blocker.message}")
                )
            return report
        finally:
            with contextlib.suppress(OSError):  # debris of a run that failed before its journal: not a change
                if not fsops.lexists(state, policy.INSTALL_JOURNAL_NAME):
                    clear_install_state(state)
                    if not fsops.lexists(state, policy.JOURNAL_NAME):
                        journal.remove_state(held, layout)


def _tidy(layout: Layout) -> None:
    """Remove the staging copies a rollback cut short left beside the install journal (not a change to the node)."""
    try:
        require_root("install-client")
    except PrivilegeError:  # reporting "already installed" needs no root; tidying does
        return
    with holding(layout, ApplyError("install-client could not take the node's lock", id="install-failed")) as (
        _,
        state,
    ):
        clear_install_staging(state)


def _proved(layout: Layout, plan: InstallPlan, result: str, warn_days: int, held: Held | None = None) -> InstallReport:
    """The report, with the X15.5 verification of what is on disk now and a re-plan that must find nothing to do."""
    analysis = facts.analyse(scan(layout, held=held))
    findings = checks.verify(analysis)
    replan = make_install_plan(analysis, plan.candidate, warn_days=warn_days)
    if replan.actions:
        findings += (
            Finding(
                "work-remaining",
                checks.BLOCKER,
                None,
                f"planning the install again still finds {len(replan.actions)} action(s) to take",
                "run install-client --plan-only to see them",
            ),
        )
    return InstallReport(plan=plan, result=result, findings=plan.findings + findings)


def _save(state: Dir, rec: InstallJournal) -> None:
    fsops.replace_file(state, policy.INSTALL_JOURNAL_NAME, rec.to_bytes(), mode=policy.STATE_FILE_MODE)


def _in_place(current: FileState, action: ReplaceFile) -> bool:
    return (
        current.kind == "file"
        and current.sha256 == action.sha256
        and (
            current.mode,
            current.uid,
            current.gid,
        )
        == (action.mode, action.uid, action.gid)
    )


def _execute(held: Held, state: Dir, layout: Layout, snap: Snapshot, plan: InstallPlan) -> None:
    """Carry out ``plan`` through the held directories: journal first, each previous file kept before it is replaced."""
    from . import __version__

    clear_install_staging(state)
    for temp in snap.temps:  # a staging file beside a client file, from the run this one resumes
        fsops.remove_file(*place(held, layout, temp.path))
    rec = snap.install_record
    if rec is None:
        rec = InstallJournal(
            tool=f"expressway-migrate {__version__}",
            state=APPLYING,
            started=_now(),
            fingerprint=plan.fingerprint,
            entries=tuple(InstallEntry(a) for a in plan.actions),
        )
    else:
        rec = attrs.evolve(rec, state=APPLYING, finished=None)
    _save(state, rec)
    by_path = {file_state.path: file_state for file_state in snap.files.values()}
    for action in plan.actions:
        current = by_path[action.path]
        d, name = place(held, layout, action.path)
        if action.previous is not None:
            _keep_previous(state, name, current, action)
        if not _in_place(current, action):
            fsops.replace_file(d, name, plan.contents[action.path], mode=action.mode, uid=action.uid, gid=action.gid)
        rec = rec.mark_done([action])
        _save(state, rec)
    _save(state, attrs.evolve(rec, state=APPLIED, finished=_now()))


def _keep_previous(state: Dir, name: str, current: FileState, action: ReplaceFile) -> None:
    """Make sure the state directory holds the previous bytes of ``name`` before it is replaced."""
    assert action.previous is not None
    backup = _read_backup(state, name, current.path)
    if backup is not None and _sha(backup) == action.previous.sha256:
        return
    if current.data is None or current.sha256 != action.previous.sha256:
        raise JournalError(
            f"the copy of the previous {name} is missing and the file no longer holds it",
            path=current.path,
            hint="run rollback, or restore the client store from a backup",
        )
    fsops.replace_file(state, policy.previous_name(name), current.data, mode=policy.PREVIOUS_FILE_MODE)


def _read_backup(state: Dir, name: str, display: str) -> bytes | None:
    """The previous bytes of ``name`` kept in the state directory, if they are there and can be trusted."""
    found = read_capped(policy.previous_name(name), policy.MAX_PEM_BYTES, display, dir_fd=state.fd)
    if found.data is None or policy.state_file_problem(found.kind, found.mode, found.uid, 0) is not None:
        return None
    return found.data


def _failed(held: Held, state: Dir, layout: Layout, exc: Exception) -> ApplyError:
    """Return the client store to what it was after a failed install; the error to raise."""
    reason = exc.message if isinstance(exc, MigrateError) else f"{type(exc).__name__}: {exc}"
    log.error("install_failed", reason=reason)
    try:
        started = fsops.lexists(state, policy.INSTALL_JOURNAL_NAME)
    except OSError:
        started = True
    if not started:
        return ApplyError(
            f"install-client failed ({reason}); the node was not changed",
            id="install-failed",
            hint=cause_hint(exc) + ", then run install-client again",
        )
    try:
        _rollback_locked(held, state, layout, force=False)
    except Exception as undo:  # the journal stays: rollback or install-client can finish later
        why = undo.message if isinstance(undo, MigrateError) else f"{type(undo).__name__}: {undo}"
        log.error("undo_failed", reason=why)
        return ApplyError(
            f"install-client failed ({reason}) and so did the undo ({why}): the install is interrupted",
            id="install-failed",
            hint=cause_hint(exc) + ", then run rollback (or install-client with the same files) again",
        )
    return ApplyError(
        f"install-client failed ({reason}); the client store was returned to its previous state",
        id="install-failed",
        hint=cause_hint(exc) + ", then run install-client again",
    )


def clear_install_staging(state: Dir) -> None:
    """Remove the staging copies of the install journal and of the previous files that a killed run left."""
    fsops.remove_staging(state, policy.INSTALL_JOURNAL_NAME, *PREVIOUS_NAMES)


def clear_install_state(state: Dir) -> None:
    """Remove the install's files from the state directory: staging copies, previous files, the journal last."""
    clear_install_staging(state)
    for name in PREVIOUS_NAMES:
        fsops.remove_file(state, name)
    fsops.remove_file(state, policy.INSTALL_JOURNAL_NAME)


# --- rollback -----------------------------------------------------------------


def rollback(layout: Layout, snap: Snapshot, *, force: bool = False) -> Outcome:
    """Restore the client store an install replaced (``writer.rollback`` calls this when there is an install journal)."""
    if snap.install_record is None:
        raise JournalError(
            f"the install journal cannot be trusted: {snap.install_problem or 'it cannot be read'}",
            id="install-journal-invalid",
            path=snap.install_journal.path if snap.install_journal else None,
            hint=checks.INSTALL_WAY_OUT,
        )
    require_root("rollback")
    failure = RollbackError("rollback could not take the node's lock", id="rollback-failed")
    with holding(layout, failure) as (held, state), rollback_failure():
        if not fsops.lexists(state, policy.INSTALL_JOURNAL_NAME):  # another run finished it meanwhile
            return Outcome(command="rollback", node=str(layout.root), result="nothing-to-do")
        return _rollback_locked(held, state, layout, force=force)


def _rollback_locked(held: Held, state: Dir, layout: Layout, *, force: bool) -> Outcome:
    snap = scan(layout, held=held)
    rec = snap.install_record
    if rec is None:
        raise JournalError(
            f"the install journal cannot be trusted: {snap.install_problem or 'it cannot be read'}",
            id="install-journal-invalid",
            path=snap.install_journal.path if snap.install_journal else None,
            hint=checks.INSTALL_WAY_OUT,
        )
    steps, conflicts = _undo_steps(snap, rec)
    if conflicts and not force:
        raise RollbackError(
            f"changed since the install, so rollback would lose them: {', '.join(c.path for c in conflicts)}",
            id="rollback-conflict",
            hint="keep them elsewhere, or run rollback --force, which first moves them to a new directory it names",
        )
    if rec.state != ROLLING_BACK:
        _save(state, attrs.evolve(rec, state=ROLLING_BACK))
    displaced = move_aside(held, layout, conflicts) if conflicts else None
    by_path = {file_state.path: file_state for file_state in snap.files.values()}
    for step in steps:
        d, name = place(held, layout, step.path)
        if isinstance(step, RestoreFile):
            current = by_path[step.path]
            previous = step.previous
            data = current.data if current.sha256 == previous.sha256 else _read_backup(state, name, current.path)
            if data is None or _sha(data) != previous.sha256:
                raise JournalError(
                    f"the saved copy of the previous {name} is missing or damaged",
                    path=current.path,
                    hint="restore the client store from a backup",
                )
            fsops.replace_file(d, name, data, mode=previous.mode, uid=previous.uid, gid=previous.gid)
        else:
            fsops.remove_file(d, name)
    clear_install_state(state)
    if not fsops.lexists(state, policy.JOURNAL_NAME):  # no migration journal left to keep: the state goes too
        journal.remove_state(held, layout)
    return Outcome(
        command="rollback", node=str(layout.root), result="rolled-back", actions=tuple(steps), displaced=displaced
    )


def _undo_steps(snap: Snapshot, rec: InstallJournal) -> tuple[list, list[FileState]]:
    """The reverses the client store still needs (staging files first), and the files changed since (conflicts)."""
    by_path = {file_state.path: file_state for file_state in snap.files.values()}
    steps: list[RemoveTemp | RemoveFile | RestoreFile] = [RemoveTemp(path=temp.path) for temp in snap.temps]
    conflicts = []
    for reverse in rec.undo():
        current = by_path[reverse.path]  # a client file of this layout: the journal was validated
        if isinstance(reverse, RemoveFile):
            if not current.exists:
                continue
            if current.kind == "file" and current.sha256 == reverse.sha256:
                steps.append(reverse)
            else:
                conflicts.append(current)
            continue
        previous = reverse.previous
        if current.kind == "file" and current.sha256 == previous.sha256:
            if (current.mode, current.uid, current.gid) != (previous.mode, previous.uid, previous.gid):
                steps.append(reverse)
        elif not current.exists or (current.kind == "file" and current.sha256 == reverse.sha256):
            steps.append(reverse)
        else:
            conflicts.append(current)
    return steps, conflicts
