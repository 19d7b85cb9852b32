"""The migration's own state in ``NODE/persistent/.cert-migration/``: journal and lock.

The journal is written before the first change to the node and records what
was done; rollback replays it backwards.  The lock is an ``flock`` on a file
beside it: the kernel drops it when its holder dies, so a killed run never
leaves a lock that blocks forever.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl  # at module level, so that pyfakefs patches it in rehearsals
import json
import os
from collections.abc import Iterator
from datetime import datetime, timezone

from . import fsops, logs, policy
from .errors import JournalError, LockError
from .scan import Layout, Snapshot

log = logs.get_logger(__name__)

FORMAT_VERSION = 1
APPLYING, APPLIED = "applying", "applied"


def new(snapshot: Snapshot, fingerprint: str, config_after: str | None) -> dict:
    """A journal for a migration about to start on ``snapshot``."""
    from . import __version__

    config = snapshot.config
    return {
        "format_version": FORMAT_VERSION,
        "tool": f"expressway-migrate {__version__}",
        "state": APPLYING,
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "fingerprint": fingerprint,
        "config": None
        if config_after is None
        else {
            "path": config.path,
            "sha256_before": config.sha256,
            "sha256_after": config_after,
            "mode": f"{config.mode:04o}",
            "uid": config.uid,
            "gid": config.gid,
        },
        "actions": [],
    }


def load(snapshot: Snapshot) -> dict:
    """The journal of ``snapshot``, checked for shape; :class:`JournalError` if unusable."""
    data = snapshot.journal_data
    if (
        data is None
        or data.get("format_version") != FORMAT_VERSION
        or data.get("state") not in (APPLYING, APPLIED)
        or not isinstance(data.get("actions"), list)
    ):
        raise JournalError(
            "the migration journal cannot be read",
            path=snapshot.journal.path,
            hint="restore the node from a backup; do not delete the journal by hand",
        )
    return data


def created_files(journal: dict) -> list[dict]:
    """The create-file actions the journal records, in the order they were planned."""
    return [a for a in journal["actions"] if a.get("action") == "create-file"]


def save(layout: Layout, journal: dict) -> None:
    """Write the journal atomically (private to root)."""
    data = json.dumps(journal, indent=2, sort_keys=True).encode() + b"\n"
    fsops.replace_file(layout.journal, data, mode=0o600)


def acquire(layout: Layout) -> int:
    """Take the node's migration lock and return its descriptor (close it to release).

    Raises :class:`LockError` at once if another run holds it, or the
    ``OSError`` of a failed file-system call, after removing what this call made.
    """
    created, fd = False, None
    try:
        created = fsops.make_dir(layout.state_dir, 0o700)
        fd = _lock_fd(layout)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except LockError:
        raise
    except Exception:
        if fd is not None:
            os.close(fd)
        if created:  # nobody else can be using a directory this call made and failed in
            fsops.remove_file(layout.lock)
            fsops.remove_dir(layout.state_dir)
        raise
    log.debug("lock_taken", path=str(layout.lock))
    return fd


def _lock_fd(layout: Layout) -> int:
    for _ in range(10):
        fd = os.open(layout.lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_holder(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise LockError(
                    f"another expressway-migrate run{holder} is migrating or rolling back this node",
                    path=layout.rel(layout.lock),
                    hint="wait for it to finish, then run the command again",
                ) from None
            raise
        # The holder before us may have removed the lock file as it finished: then lock the new one.
        try:
            same = os.stat(layout.lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)
        fsops.make_dir(layout.state_dir, 0o700)
    raise LockError(  # pragma: no cover - needs ten lost races in a row
        "could not take the node's lock", path=layout.rel(layout.lock), hint="run the command again"
    )


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[int]:
    """Hold the node's migration lock for the ``with`` block (see :func:`acquire`)."""
    fd = acquire(layout)
    try:
        yield fd
    finally:
        with contextlib.suppress(OSError):  # the descriptor is released even when close reports an error
            os.close(fd)


def clear_staging(layout: Layout) -> None:
    """Remove staging copies of the journal and the config copy that a killed run left behind."""
    fsops.remove_file(policy.staging_path(layout.journal))
    fsops.remove_file(policy.staging_path(layout.config_backup))


def remove_state(layout: Layout) -> None:
    """Remove the state directory's files and the directory itself; the journal goes last but the lock."""
    clear_staging(layout)
    fsops.remove_file(layout.config_backup)
    fsops.remove_file(layout.journal)
    fsops.remove_file(layout.lock)
    fsops.remove_dir(layout.state_dir)


def _read_holder(fd: int) -> str:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        pid = os.read(fd, 32).decode().strip()
    except (OSError, UnicodeDecodeError):
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
