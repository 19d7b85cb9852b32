"""The file-system primitives of the writer: atomic, never following a link, never exposing a key.

Only :mod:`migrate.writer` and :mod:`migrate.journal` call these.  Every call
names a file relative to a directory held open (:class:`migrate.dirs.Dir`),
never by a path string, so a directory swapped for a link while the tool runs
cannot redirect a write; before a file is published the directory is checked
to be still where it was opened.

Every write stages a file beside its target under a name nobody can predict
(:func:`migrate.policy.staging_name` with a random token), created with
``O_CREAT|O_EXCL|O_NOFOLLOW`` and owner-only bits, its inherited POSIX ACLs
removed, then owned and given its final mode before a byte is written, and
fsync'd.  Then it is published (a new file with ``link``, which fails rather
than replace a name that appeared meanwhile; a replacement with ``replace``),
and the directory is fsync'd.

pyfakefs fakes none of ``os.fchown``/``os.lchown``: they are never used here
(``os.chown`` on a descriptor does the same job and is faked).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from . import acl, logs, policy
from .dirs import Dir, open_child
from .errors import PlanError

log = logs.get_logger(__name__)

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def _path(d: Dir, name: str) -> str:
    return f"{d.path.rstrip('/')}/{name}"


def fsync_dir(d: Dir) -> None:
    """Make the entries of the held directory ``d`` durable."""
    os.fsync(d.fd)


def require_attached(d: Dir) -> None:
    """Refuse to publish into ``d`` if it is no longer where it was opened (moved, or swapped for a link)."""
    if not d.attached():
        raise PlanError(
            f"{d.path} was moved or replaced while the command ran",
            id="node-changed",
            path=d.path,
            hint="find out who changed the node's directories; nothing was written through the new entry",
        )


def new_staging_name(name: str) -> str:
    """A staging name for ``name`` that nobody can predict."""
    import secrets

    return policy.staging_name(name, secrets.token_hex(policy.STAGING_TOKEN_HEX // 2))


def _stage(d: Dir, name: str, data: bytes, mode: int, uid: int | None, gid: int | None) -> str:
    """Write ``data`` to a new staging name of ``name`` in ``d``, with its final mode and owner from the start."""
    temp = new_staging_name(name)
    fd = os.open(temp, _CREATE, mode & 0o700, dir_fd=d.fd)  # owner bits only until the owner is right
    try:
        clear_acls(fd)  # a default ACL of the directory is inherited: no entry may outlive the chmod
        if uid is not None:
            os.chown(fd, uid, gid if gid is not None else -1)
        os.chmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(d, temp)
        raise
    os.close(fd)
    return temp


def create_file(d: Dir, name: str, data: bytes, *, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Publish a new file ``name`` in ``d``; fail with ``FileExistsError`` if the name is taken."""
    require_attached(d)
    temp = _stage(d, name, data, mode, uid, gid)
    try:
        require_attached(d)
        os.link(temp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd, follow_symlinks=False)
    except BaseException:
        _unlink_quietly(d, temp)
        raise
    os.unlink(temp, dir_fd=d.fd)
    fsync_dir(d)
    log.info("file_created", path=_path(d, name), mode=f"{mode:04o}", uid=uid, gid=gid)


def replace_file(d: Dir, name: str, data: bytes, *, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Atomically replace (or create) ``name`` in ``d`` with ``data``."""
    require_attached(d)
    temp = _stage(d, name, data, mode, uid, gid)
    try:
        require_attached(d)
        os.replace(temp, name, src_dir_fd=d.fd, dst_dir_fd=d.fd)
    except BaseException:
        _unlink_quietly(d, temp)
        raise
    fsync_dir(d)
    log.info("file_replaced", path=_path(d, name), mode=f"{mode:04o}", uid=uid, gid=gid)


def remove_file(d: Dir, name: str) -> bool:
    """Remove ``name`` from ``d`` (the link itself, never its target); False if it was already gone."""
    try:
        os.unlink(name, dir_fd=d.fd)
    except FileNotFoundError:
        return False
    fsync_dir(d)
    log.info("file_removed", path=_path(d, name))
    return True


def remove_staging(d: Dir, *names: str) -> None:
    """Remove every staging copy of each of ``names`` that a killed run left in ``d`` (one listing)."""
    for entry in sorted(os.listdir(d.fd)):
        if any(policy.is_staging_name(entry, name) for name in names):
            remove_file(d, entry)


def make_dir(parent: Dir, name: str, mode: int = 0o700) -> bool:
    """Create the directory ``name`` in ``parent``; False if a directory was there already.  Refuses a link there."""
    require_attached(parent)
    try:
        os.mkdir(name, mode, dir_fd=parent.fd)
    except FileExistsError:
        if not stat.S_ISDIR(os.stat(name, dir_fd=parent.fd, follow_symlinks=False).st_mode):
            raise  # a file, or a link even to a directory
        return False
    try:
        d = open_child(parent, name)
        try:
            clear_acls(d.fd, directory=True)  # inherited from the parent's default ACL: ours is private
            os.chmod(d.fd, mode)
        finally:
            os.close(d.fd)
        fsync_dir(parent)
    except Exception:
        remove_dir(parent, name)
        raise
    return True


def make_fresh_dir(parent: Dir, prefix: str, mode: int = 0o700) -> tuple[str, Dir]:
    """Create a new private directory in ``parent`` named ``prefix`` plus a random token; its name and ``Dir``.

    The name is new (``mkdir`` fails on any existing entry, a planted link
    included), so nothing is ever renamed into a directory someone else chose.
    """
    import secrets

    for _ in range(16):
        name = f"{prefix}{secrets.token_hex(8)}"
        if make_dir(parent, name, mode):
            return name, open_child(parent, name)
    raise FileExistsError(errno.EEXIST, "could not create a new directory", _path(parent, prefix))  # pragma: no cover


def move_into(src: Dir, name: str, dst: Dir) -> None:
    """Rename ``name`` from ``src`` into the fresh directory ``dst`` (same name), which cannot hold it already."""
    require_attached(dst)
    if lexists(dst, name):  # pragma: no cover - dst is new and private to root
        raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), _path(dst, name))
    os.rename(name, name, src_dir_fd=src.fd, dst_dir_fd=dst.fd)
    fsync_dir(dst)
    fsync_dir(src)
    log.info("file_moved_aside", path=_path(src, name), to=_path(dst, name))


def remove_dir(parent: Dir, name: str) -> bool:
    """Remove the empty directory ``name`` of ``parent``; False if it is gone or not empty."""
    try:
        os.rmdir(name, dir_fd=parent.fd)
    except OSError:  # gone, or not empty
        return False
    fsync_dir(parent)
    return True


def lexists(d: Dir, name: str) -> bool:
    """Whether ``name`` names anything in ``d`` (a link is not followed); an error other than ENOENT is raised."""
    try:
        os.stat(name, dir_fd=d.fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _unlink_quietly(d: Dir, name: str) -> None:
    with contextlib.suppress(OSError):  # cleaning up after an error that is reported anyway
        os.unlink(name, dir_fd=d.fd)


def clear_acls(fd: int, *, directory: bool = False) -> None:
    """Remove the access ACL of the open file ``fd`` (and, for a ``directory``, its default ACL).

    Call it on a file the moment it is created, before its ``chmod``: an ACL
    inherited from the directory's default ACL then never grants anything.
    Missing ACLs and file systems without them are not errors; any other
    ``OSError`` is raised.
    """
    for name in (acl.ACCESS, acl.DEFAULT) if directory else (acl.ACCESS,):
        try:
            os.removexattr(fd, name)
        except OSError as exc:
            if exc.errno not in acl.NO_ACL:
                raise
