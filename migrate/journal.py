"""The migration's own state in ``NODE/persistent/.cert-migration/``: journal, configuration copy and lock.

The journal (:mod:`migrate.record`) is written before the first change to
the node and records what was done; rollback reverses it.  The lock is an
``flock`` on a file beside it: the kernel drops it when its holder dies, so a
killed run never leaves a lock that blocks forever.  A writer holds it
exclusively; a command that only answers (precheck, plan, verify, status)
holds it shared while it reads, so it never answers about a node that another
run is changing underneath it.

Everything here works through directories held open (:mod:`migrate.dirs`).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl  # at module level, so that pyfakefs patches it in rehearsals
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime

from . import dirs, fsops, logs, policy, record
from .dirs import Dir, Held
from .errors import LockError, NodeError
from .scan import Layout, Snapshot

log = logs.get_logger(__name__)

APPLYING, APPLIED = record.APPLYING, record.APPLIED
STATE_NAME = policy.STATE_DIR.rsplit("/", 1)[-1]


def new(snapshot: Snapshot, fingerprint: str, config_after: str | None) -> record.Journal:
    """A journal for a migration about to start on ``snapshot``."""
    from . import __version__

    cfg = snapshot.config
    return record.Journal(
        tool=f"expressway-migrate {__version__}",
        state=APPLYING,
        started=_now(),
        fingerprint=fingerprint,
        config=None if config_after is None or cfg.sha256 is None else record.ConfigRecord(cfg.sha256, config_after),
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def finished(journal: record.Journal) -> record.Journal:
    import attrs

    return attrs.evolve(journal, state=APPLIED, finished=_now())


def save(state: Dir, journal: record.Journal) -> None:
    """Write the journal atomically (private to root)."""
    fsops.replace_file(state, policy.JOURNAL_NAME, journal.to_bytes(), mode=policy.STATE_FILE_MODE)


def parent_of_state(held: Held, layout: Layout) -> Dir:
    """The held directory the state directory lives in (``persistent/``); the scan opened it."""
    d = held.get(os.fspath(layout.state_dir.parent))
    if d is None:
        raise NodeError(
            f"{layout.state_dir.parent} cannot be reached",
            id="directory-missing",
            hint="run precheck to see why",
        )
    return d


def acquire(held: Held, layout: Layout) -> tuple[int, Dir]:
    """Take the node's lock; its descriptor (close it to release) and the held state directory.

    Raises :class:`LockError` at once if another run holds it, or the
    ``OSError`` of a failed file-system call, after removing what this call made.
    """
    parent = parent_of_state(held, layout)
    for _ in range(10):
        created, fd, state = False, None, None
        try:
            created = fsops.make_dir(parent, STATE_NAME, policy.STATE_DIR_MODE)
            state = dirs.open_child(parent, STATE_NAME)
            problem = state.problem(os.geteuid())
            if problem is not None:
                raise NodeError(
                    f"the state directory {layout.rel(layout.state_dir)} cannot be trusted: {problem}",
                    id="unsafe-directory",
                    path=layout.rel(layout.state_dir),
                    hint="this tool never made it so: find out who did, then remove it",
                )
            fd = _lock_fd(state, layout)
        except BaseException:
            if fd is not None:
                os.close(fd)
            if state is not None:
                with contextlib.suppress(OSError):
                    os.close(state.fd)
            if created:  # nobody else can be using a directory this call made and failed in
                with contextlib.suppress(OSError):
                    fsops.remove_dir(parent, STATE_NAME)
            raise
        if fd is _LOST:  # the holder before us removed the state directory as it finished: again
            os.close(state.fd)
            continue
        held.drop(os.fspath(layout.state_dir))
        held.add(state)
        log.debug("lock_taken", path=str(layout.lock))
        return fd, state
    raise LockError(  # pragma: no cover - needs ten lost races in a row
        "could not take the node's lock", path=layout.rel(layout.lock), hint="run the command again"
    )


_LOST = -1


def _lock_fd(state: Dir, layout: Layout) -> int:
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(policy.LOCK_NAME, flags, policy.STATE_FILE_MODE, dir_fd=state.fd)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = _read_holder(fd)
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _held(layout, holder) from None
        raise
    try:
        same = (
            state.attached()
            and os.stat(policy.LOCK_NAME, dir_fd=state.fd, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        )
    except FileNotFoundError:
        same = False
    if not same:
        os.close(fd)
        return _LOST
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _held(layout: Layout, holder: str) -> LockError:
    return LockError(
        f"another expressway-migrate run{holder} holds this node's lock: it is migrating, rolling back or reading it",
        path=layout.rel(layout.lock),
        hint="wait for it to finish, then run the command again",
    )


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[tuple[Held, Dir]]:
    """Hold the node's directories and its migration lock for the ``with`` block; the held directories and the
    state directory (see :func:`acquire`)."""
    from .scan import hold

    held = hold(layout)
    try:
        fd, state = acquire(held, layout)
        try:
            yield held, state
        finally:
            with contextlib.suppress(OSError):  # the descriptor is released even when close reports an error
                os.close(fd)
    finally:
        held.close()


@contextlib.contextmanager
def reading(layout: Layout) -> Iterator[None]:
    """Hold the node's lock shared while a command reads the node to answer about it.

    Nothing is created: without a lock file no run holds the lock (one that
    starts meanwhile is noticed at the end).  Raises :class:`LockError` when a
    writer holds it.
    """
    fd = _open_lock_readonly(layout)
    try:
        if fd is not None:
            _share(fd, layout)
        yield
        if fd is None:  # a writer that started while we read would have made the lock file
            late = _open_lock_readonly(layout)
            if late is not None:
                try:
                    _share(late, layout)
                finally:
                    os.close(late)
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)


def _share(fd: int, layout: Layout) -> None:
    """Take the lock on ``fd`` shared, at once; :class:`LockError` while a writer holds it.

    Any other failure (an I/O error) is ``node-unreadable``: nothing was read or changed.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _held(layout, _read_holder(fd)) from None
        raise NodeError(
            f"the node's lock cannot be taken ({os.strerror(exc.errno or errno.EIO)}); nothing was changed",
            id="node-unreadable",
            path=layout.rel(layout.lock),
            hint="check the file system and the system log (dmesg), then run the command again",
        ) from None


def _open_lock_readonly(layout: Layout) -> int | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        # The mode is ignored by the kernel without O_CREAT; pyfakefs applies it to an existing file.
        return os.open(layout.lock, flags, stat.S_IMODE(os.lstat(layout.lock).st_mode))
    except OSError:  # none, or not ours to read (an unprivileged precheck): nothing to wait for here
        return None


# Every file of the state directory a run stages: the migration's journal and configuration copy, an install's
# journal and the previous client files it keeps.  A killed run may leave a staging copy of any of them.
STAGED_STATE_FILES = (
    policy.JOURNAL_NAME,
    policy.CONFIG_BACKUP_NAME,
    policy.INSTALL_JOURNAL_NAME,
    *(policy.previous_name(rule.name) for rule in policy.CLIENT_FILES),
)


def clear_staging(state: Dir) -> None:
    """Remove the staging copies of the state directory's files that a killed run left behind: the migration's,
    and those of an install killed before its journal existed (its staging copy is all it left)."""
    fsops.remove_staging(state, *STAGED_STATE_FILES)


def remove_state(held: Held, layout: Layout) -> None:
    """Remove the state directory's files and the directory itself; the journal goes last but the lock."""
    state = held.get(os.fspath(layout.state_dir))
    if state is None:
        return
    clear_staging(state)
    fsops.remove_file(state, policy.CONFIG_BACKUP_NAME)
    fsops.remove_file(state, policy.JOURNAL_NAME)
    fsops.remove_file(state, policy.LOCK_NAME)
    fsops.remove_dir(parent_of_state(held, layout), STATE_NAME)
    held.drop(os.fspath(layout.state_dir))


def close_dir(d: Dir) -> None:
    """Close a directory this run opened (a read-only descriptor: closing it loses nothing)."""
    with contextlib.suppress(OSError):
        os.close(d.fd)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
