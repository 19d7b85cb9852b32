"""What the two writers share: :mod:`migrate.writer` (the migration) and :mod:`migrate.clientstore` (an install).

The outcome they return, the root they require, the node held under its lock
while they write, where a path the plan or a journal names lives, and the
words of a failure (what to do about its errno).
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator
from datetime import UTC, datetime

import attrs

from . import checks, fsops, journal, logs, policy
from .checks import Finding
from .dirs import Dir, Held
from .errors import BlockedError, MigrateError, PlanError, PrivilegeError, RollbackError
from .model import Layout

log = logs.get_logger(__name__)


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
            "format_version": policy.FORMAT_VERSION,
            "command": self.command,
            "node": self.node,
            "ok": self.ok,
            "result": self.result,
            "actions": [a.as_dict() for a in self.actions],
            "findings": [f.as_dict() for f in self.findings],
            "displaced": self.displaced,
        }


def require_root(command: str) -> None:
    if os.geteuid() != 0:
        raise PrivilegeError(
            f"{command} must run as root: it sets the owners of the client files",
            hint="run it with sudo, or as root (precheck and plan work unprivileged)",
        )


@contextlib.contextmanager
def holding(layout: Layout, failure: MigrateError) -> Iterator[tuple[Held, Dir]]:
    """:func:`journal.locked`; a file-system error while taking the directories or the lock becomes ``failure``."""
    with contextlib.ExitStack() as stack:
        try:
            held, state = stack.enter_context(journal.locked(layout))
        except OSError as exc:
            raise unchanged(failure, exc) from exc
        yield held, state


def unchanged(failure: MigrateError, exc: OSError) -> MigrateError:
    failure.message = f"{failure.message} ({os.strerror(exc.errno or errno.EIO)}); the node was not changed"
    failure.hint = cause_hint(exc, "check that the file system is writable and has free space") + ", then run it again"
    return failure


CAUSE_HINTS = {
    errno.EROFS: "the file system is mounted read-only: remount it read-write",
    errno.ENOSPC: "the file system is full: free some space",
    errno.EDQUOT: "the disk quota is used up: free some space",
    errno.EACCES: policy.ROOT_REFUSED_HINT,
    errno.EPERM: policy.ROOT_REFUSED_HINT,
    errno.EIO: "the disk reported an I/O error: check the system log (dmesg) first",
}


def cause_hint(exc: BaseException | None, default: str = "fix the cause") -> str:
    """What to do about ``exc``: specific to its errno where one is known, else ``default``."""
    while exc is not None and not isinstance(exc, OSError):
        exc = exc.__cause__ or exc.__context__
    return CAUSE_HINTS.get(exc.errno or 0, default) if isinstance(exc, OSError) else default


def refuse_blockers(
    findings: tuple[Finding, ...], *, after: str = "", hint: str = "run precheck to see every finding"
) -> None:
    """Refuse a plan with blockers: the first one's id, path and hint (``hint`` when it has none), its message
    and ``after``."""
    found = checks.blockers(findings)
    if found:
        first = found[0]
        more = f" (and {len(found) - 1} more blocker(s))" if len(found) > 1 else ""
        raise BlockedError(
            f"{first.message}{more}{after}",
            id=first.id,
            path=first.path,
            hint=first.hint or hint,
            findings=found,
        )


def place(held: Held, layout: Layout, display: str) -> tuple[Dir, str]:
    """The held directory and the name of a path the plan or the journal names (a display path of this node)."""
    path = os.fspath(layout.resolve(display))
    head, _, name = path.rpartition("/")
    d = held.get(head or "/")
    if d is None or not name or name in (".", ".."):
        raise PlanError(
            f"{display} is not in a directory the migration holds", id="node-changed", hint="run plan again"
        )
    return d, name


@contextlib.contextmanager
def rollback_failure() -> Iterator[None]:
    """A file-system error during rollback becomes ``rollback-failed``; the journal stays for the next run."""
    try:
        yield
    except OSError as exc:
        log.error("rollback_failed", reason=f"{type(exc).__name__}: {exc}")
        raise RollbackError(
            f"rollback failed ({os.strerror(exc.errno or errno.EIO)}: {exc.filename}); the node is mid-rollback",
            id="rollback-failed",
            hint=cause_hint(exc) + ", then run rollback (or apply) again: the journal records what is left to do",
        ) from exc


def move_aside(held: Held, layout: Layout, conflicts: list) -> str:
    """``rollback --force``: move the files changed since the change (``conflicts``, file states of this node) into a
    new directory beside the state directory, with a name nobody can predict; its display path."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    parent = journal.parent_of_state(held, layout)
    prefix = policy.DISPLACED_PREFIX.rsplit("/", 1)[-1]
    name, aside = fsops.make_fresh_dir(parent, f"{prefix}{stamp}-")
    try:
        for conflict in conflicts:
            fsops.move_into(*place(held, layout, conflict.path), aside)
    finally:
        journal.close_dir(aside)
    return layout.rel(f"{parent.path.rstrip('/')}/{name}")
