"""The one writer: ``apply`` executes a plan, ``rollback`` replays the journal backwards.

Both take the node's lock, scan again under it, and refuse if the node is not
what the plan (or the journal) says.  A failure during ``apply`` is fed back
into the state: the journal written before the first change drives the undo,
so the node is returned to X15.4 before the command exits.
"""

from __future__ import annotations

import contextlib

import attrs

from . import checks, facts, fsops, journal, logs, policy, record
from .actions import CONFIG_ACTIONS, CreateFile, RemoveFile, RemoveTemp, RestoreConfig
from .checks import Finding
from .dirs import Dir, Held
from .errors import ApplyError, JournalError, MigrateError, PlanError, RollbackError
from .plan import Plan, check_saved_plan, edited_config, make_plan
from .scan import Layout, Snapshot, read_capped, scan
from .writing import (  # noqa: F401 - Outcome is part of this module's face (migrate.Outcome)
    Outcome,
    cause_hint,
    holding,
    move_aside,
    place,
    refuse_blockers,
    require_root,
    rollback_failure,
)

log = logs.get_logger(__name__)


def _analyse(layout: Layout, warn_days: int) -> tuple[checks.Analysis, Plan]:
    analysis = facts.analyse(scan(layout))
    return analysis, make_plan(analysis, warn_days=warn_days)


# --- apply --------------------------------------------------------------------


def apply(layout: Layout, *, saved_plan: dict | None = None, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> Outcome:
    """Migrate the node, exactly as its plan says, and prove the result."""
    # The plan and an answer about the node are read under the shared lock: never from a node that
    # another run is changing (released before the exclusive lock is taken below).
    with journal.reading(layout):
        _, plan = _analyse(layout, warn_days)
        if saved_plan is not None:
            check_saved_plan(saved_plan, plan)
        refuse_blockers(plan.findings)
        if not plan.actions:
            return _proved(layout, "apply", "already-migrated", (), acted_with=plan.findings)
    require_root("apply")
    with holding(layout, ApplyError("apply could not take the node's lock", id="apply-failed")) as (held, state):
        try:
            # Planned once: under the lock the node is scanned again, through the directories now held, and
            # must be what was planned (the fingerprint covers every byte, mode and owner the plan read).
            snap = scan(layout, held=held)
            if snap.fingerprint != plan.fingerprint:
                if saved_plan is None:  # another run may have finished the same migration meanwhile
                    locked_plan = make_plan(facts.analyse(snap), warn_days=warn_days)
                    if locked_plan.ready and not locked_plan.actions:
                        return _proved(layout, "apply", "already-migrated", (), held, acted_with=locked_plan.findings)
                raise PlanError(
                    "the node changed while apply was starting",
                    id="node-changed",
                    hint="run plan again; apply refuses to act on a node it did not plan",
                )
            try:
                _execute(held, state, layout, snap, plan)
                outcome = _proved(layout, "apply", "migrated", plan.actions, held, acted_with=plan.findings)
            except Exception as exc:
                raise _failed(held, state, layout, exc) from exc
            if not outcome.ok:
                failure = ApplyError("the migrated node does not verify: " + outcome.findings[0].message)
                raise _failed(held, state, layout, failure)
            return outcome
        finally:
            with contextlib.suppress(OSError):  # what is left is tool state without a journal: rollback clears it
                if not fsops.lexists(state, policy.JOURNAL_NAME):
                    journal.remove_state(held, layout)


def _proved(
    layout: Layout, command: str, result: str, actions, held: Held | None = None, acted_with: tuple = ()
) -> Outcome:
    """The outcome: the plan's findings it acted with (warnings, notes), then the X15.5 verification of the disk."""
    analysis = facts.analyse(scan(layout, held=held))
    findings = tuple(f for f in acted_with if f.severity != checks.BLOCKER) + checks.verify(analysis)
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


def _failed(held: Held, state: Dir, layout: Layout, exc: Exception) -> ApplyError:
    """Return the node to X15.4 after a failed apply; the error to raise."""
    reason = exc.message if isinstance(exc, MigrateError) else f"{type(exc).__name__}: {exc}"
    log.error("apply_failed", reason=reason)
    try:
        started = fsops.lexists(state, policy.JOURNAL_NAME)
    except OSError:
        started = True  # cannot tell: try the undo, which reports if it cannot run
    if not started:  # it failed before its first change to the node
        return ApplyError(
            f"apply failed ({reason}); the node was not changed",
            hint=cause_hint(exc) + ", then run apply again",
        )
    try:
        _rollback_locked(held, state, layout, force=False)
    except Exception as undo:  # the journal stays: rollback or apply can finish later
        why = undo.message if isinstance(undo, MigrateError) else f"{type(undo).__name__}: {undo}"
        log.error("undo_failed", reason=why)
        return ApplyError(
            f"apply failed ({reason}) and so did the undo ({why}): the node is mid-migration",
            hint=cause_hint(exc) + ", then run rollback (or apply) again: the journal records what was done",
        )
    return ApplyError(
        f"apply failed ({reason}); the node was returned to its previous state",
        hint=cause_hint(exc) + ", then run apply again",
    )


def _load_journal(snap: Snapshot) -> record.Journal:
    """The node's journal, validated; :class:`JournalError` with the reason (nothing is touched)."""
    problem = snap.journal_problem
    found = snap.journal_record if problem is None else None
    if found is None:
        raise JournalError(
            f"the migration journal cannot be trusted: {problem or 'it cannot be read'}",
            path=snap.journal.path,
            hint=checks.JOURNAL_WAY_OUT,
        )
    return found


def _execute(held: Held, state: Dir, layout: Layout, snap: Snapshot, plan: Plan) -> None:
    """Carry out ``plan`` on the node ``snap`` describes, through the held directories, journal first."""
    journal.clear_staging(state)
    config_actions = plan.config_actions
    old_config = snap.config.data if config_actions else None
    # The plan edits the configuration only when the scan read it (plan._config_actions), and it planned on ``snap``.
    assert old_config is not None or not config_actions
    new_config = edited_config(old_config, config_actions) if old_config is not None else None
    if snap.journal.exists:
        rec = _load_journal(snap)
        if new_config is not None:
            rec = _resume_config_record(state, snap, rec, new_config)
    else:
        if old_config is not None:  # a copy left by a run that died before its journal is stale: replace it
            fsops.replace_file(state, policy.CONFIG_BACKUP_NAME, old_config, mode=policy.STATE_FILE_MODE)
        rec = journal.new(snap, plan.fingerprint, _sha(new_config) if new_config is not None else None)
    rec = rec.with_entries(a for a in plan.actions if isinstance(a, (CreateFile, *CONFIG_ACTIONS)))
    journal.save(state, rec)
    config_done = False
    for action in plan.actions:
        if isinstance(action, RemoveTemp):  # our own debris, not a change to the node: nothing to undo
            fsops.remove_file(*place(held, layout, action.path))
        elif isinstance(action, CreateFile):
            data = _source_bytes(snap, action)
            d, name = place(held, layout, action.path)
            fsops.create_file(d, name, data, mode=action.mode, uid=action.uid, gid=action.gid)
            rec = rec.mark_done([action])
            journal.save(state, rec)
        elif isinstance(action, CONFIG_ACTIONS) and not config_done:  # every one of them, in one atomic replace
            cfg = snap.config
            # There are configuration actions, so the configuration was read whole (above): its mode is known.
            assert new_config is not None and cfg.mode is not None
            d, name = place(held, layout, cfg.path)
            fsops.replace_file(d, name, new_config, mode=cfg.mode, uid=cfg.uid, gid=cfg.gid)
            rec = rec.mark_done(config_actions)
            journal.save(state, rec)
            config_done = True
    journal.save(state, journal.finished(rec))


def _source_bytes(snap: Snapshot, action: CreateFile) -> bytes:
    for file_state in snap.files.values():
        if file_state.path == action.source and file_state.sha256 == action.sha256 and file_state.data is not None:
            return file_state.data
    raise PlanError(f"the source of {action.path} changed", id="node-changed", hint="run plan again")


def _resume_config_record(state: Dir, snap: Snapshot, rec: record.Journal, new_config: bytes) -> record.Journal:
    """Before a resumed run edits the configuration, make sure the journal can undo it."""
    before = snap.config.sha256
    assert before is not None and snap.config.data is not None  # the plan has configuration actions
    if rec.config is None:
        fsops.replace_file(state, policy.CONFIG_BACKUP_NAME, snap.config.data, mode=policy.STATE_FILE_MODE)
        return attrs.evolve(rec, config=record.ConfigRecord(before, _sha(new_config)))
    if rec.config.sha256_before != before:
        raise JournalError(
            "the configuration changed since the interrupted migration started",
            path=snap.config.path,
            hint="run rollback first, then apply",
        )
    if not snap.config_backup.exists:
        fsops.create_file(state, policy.CONFIG_BACKUP_NAME, snap.config.data, mode=policy.STATE_FILE_MODE)
    return attrs.evolve(rec, config=record.ConfigRecord(before, _sha(new_config)))


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


# --- rollback -----------------------------------------------------------------


def rollback(layout: Layout, *, force: bool = False) -> Outcome:
    """Return a node migrated by this tool to its exact X15.4 state."""
    with journal.reading(layout):  # what it decides from this scan must not be a run half-way through
        snap = scan(layout)
    unsafe = checks.directory_findings(snap)
    if unsafe:
        raise RollbackError(unsafe[0].message, id=unsafe[0].id, path=unsafe[0].path, hint=unsafe[0].hint)
    if snap.install_exists:  # the newest operation first: an install of a client identity (install-client)
        from . import clientstore

        return clientstore.rollback(layout, snap, force=force)
    if not snap.journal.exists:
        node_state, _ = checks.node_state(facts.analyse(snap))
        # A state directory without a journal was left by a run that died before its first change (an apply on
        # X15.4, an install-client on X15.5): clearing it is all there is to roll back.
        if node_state == checks.X154 or (node_state == checks.X155 and snap.state_dir.kind == "dir"):
            if snap.state_dir.kind == "dir":
                from .clientstore import clear_install_state

                require_root("rollback")
                failure = RollbackError("rollback could not take the node's lock", id="rollback-failed")
                with holding(layout, failure) as (held, state), rollback_failure():
                    if not fsops.lexists(state, policy.JOURNAL_NAME) and not fsops.lexists(
                        state, policy.INSTALL_JOURNAL_NAME
                    ):
                        clear_install_state(state)
                        journal.remove_state(held, layout)
            return Outcome(command="rollback", node=str(layout.root), result="nothing-to-do")
        raise RollbackError(
            "the node was not migrated by this tool: there is no migration journal to roll back",
            id="not-migrated-by-tool",
            path=snap.journal.path,
            hint="restore the node from its backup, or undo the X15.5 changes by hand",
        )
    _load_journal(snap)
    require_root("rollback")
    failure = RollbackError("rollback could not take the node's lock", id="rollback-failed")
    with holding(layout, failure) as (held, state), rollback_failure():
        if not fsops.lexists(state, policy.JOURNAL_NAME):  # another run finished the rollback meanwhile
            journal.remove_state(held, layout)
            return Outcome(command="rollback", node=str(layout.root), result="nothing-to-do")
        return _rollback_locked(held, state, layout, force=force)


def _rollback_locked(held: Held, state: Dir, layout: Layout, *, force: bool) -> Outcome:
    snap = scan(layout, held=held)
    rec = _load_journal(snap)
    steps, conflicts = _undo_steps(snap, rec)
    displaced = None
    if conflicts and not force:
        paths = ", ".join(c.path for c in conflicts)
        raise RollbackError(
            f"changed since the migration, so rollback would lose them: {paths}",
            id="rollback-conflict",
            hint="keep them elsewhere, or run rollback --force, which first moves them to a new directory it names",
        )
    if conflicts:
        displaced = move_aside(held, layout, conflicts)
    for step in steps:
        if isinstance(step, RestoreConfig):
            assert rec.config is not None  # a restore is planned only for a journal with a configuration record
            backup = read_capped(
                policy.CONFIG_BACKUP_NAME, policy.MAX_CONFIG_BYTES, snap.config_backup.path, dir_fd=state.fd
            )
            if backup.data is None or _sha(backup.data) != rec.config.sha256_before:
                raise JournalError(
                    "the saved copy of the configuration is missing or damaged",
                    path=snap.config_backup.path,
                    hint="restore the configuration from a backup",
                )
            # The mode and owner are the file's own, as it is now (never the journal's); a missing one gets root's.
            cfg = snap.config
            mode = cfg.mode if cfg.mode is not None else policy.CONFIG_FALLBACK_MODE
            d, name = place(held, layout, cfg.path)
            fsops.replace_file(d, name, backup.data, mode=mode, uid=cfg.uid or 0, gid=cfg.gid or 0)
        else:
            fsops.remove_file(*place(held, layout, step.path))
    journal.remove_state(held, layout)
    return Outcome(
        command="rollback", node=str(layout.root), result="rolled-back", actions=tuple(steps), displaced=displaced
    )


def _undo_steps(snap: Snapshot, rec: record.Journal) -> tuple[list, list]:
    """The reverses of the journal's entries that the node still needs, and what changed since (conflicts)."""
    by_path = {file_state.path: file_state for file_state in snap.files.values()}
    steps: list = [RemoveTemp(path=temp.path) for temp in snap.temps]
    conflicts = []
    for reverse in rec.undo():
        if isinstance(reverse, RemoveFile):
            current = by_path[reverse.path]  # a client file of this layout: the journal was validated
            if not current.exists:
                continue
            if current.kind == "file" and current.sha256 == reverse.sha256:
                steps.append(reverse)
            else:
                conflicts.append(current)
        elif rec.config is not None:  # RestoreConfig
            now = snap.config.sha256
            if now == rec.config.sha256_after and now != rec.config.sha256_before:
                steps.append(reverse)
            elif now != rec.config.sha256_before:
                if snap.config.exists:
                    conflicts.append(snap.config)
                steps.append(reverse)
    return steps, conflicts
