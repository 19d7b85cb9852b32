"""The file-system primitives of the writer: atomic, never following a link, never exposing a key.

Only :mod:`migrate.writer` calls these.  Every write stages a file beside its
target, created with ``O_CREAT|O_EXCL|O_NOFOLLOW`` and the final restrictive
mode from the start, owned as it must be before a byte is written, and
fsync'd; then it is published (a new file with ``os.link``, which fails
rather than replace a name that appeared meanwhile; a replacement with
``os.replace``), and the directory is fsync'd.

pyfakefs fakes none of ``os.fchown``/``os.lchown``: they are never used here
(``os.chown`` on a descriptor does the same job and is faked).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from . import logs, policy

log = logs.get_logger(__name__)

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


def fsync_dir(path: Path) -> None:
    """Make the directory entries of ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _stage(path: Path, data: bytes, mode: int, uid: int | None, gid: int | None) -> Path:
    """Write ``data`` to the staging name of ``path``, with its final mode and owner from the start."""
    temp = policy.staging_path(path)
    fd = os.open(temp, _CREATE, mode & 0o700)  # owner bits only until the owner is right
    try:
        if uid is not None:
            os.chown(fd, uid, gid)
        os.chmod(fd, mode)
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _unlink_quietly(temp)
        raise
    os.close(fd)
    return temp


def create_file(path: Path, data: bytes, *, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Publish a new file at ``path``; fail with ``FileExistsError`` if the name is taken."""
    temp = _stage(path, data, mode, uid, gid)
    try:
        os.link(temp, path, follow_symlinks=False)
    except BaseException:
        _unlink_quietly(temp)
        raise
    os.unlink(temp)
    fsync_dir(path.parent)
    log.info("file_created", path=str(path), mode=f"{mode:04o}", uid=uid, gid=gid)


def replace_file(path: Path, data: bytes, *, mode: int, uid: int | None = None, gid: int | None = None) -> None:
    """Atomically replace (or create) ``path`` with ``data``."""
    temp = _stage(path, data, mode, uid, gid)
    try:
        os.replace(temp, path)
    except BaseException:
        _unlink_quietly(temp)
        raise
    fsync_dir(path.parent)
    log.info("file_replaced", path=str(path), mode=f"{mode:04o}", uid=uid, gid=gid)


def remove_file(path: Path) -> bool:
    """Remove ``path`` (the link itself, never its target); False if it was already gone."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    fsync_dir(path.parent)
    log.info("file_removed", path=str(path))
    return True


def move_aside(path: Path, directory: Path) -> Path:
    """Rename ``path`` into ``directory`` (created 0700 if needed); returns the new path."""
    try:
        os.mkdir(directory, 0o700)
    except FileExistsError:
        pass
    target = directory / path.name
    os.rename(path, target)
    fsync_dir(directory)
    fsync_dir(path.parent)
    log.info("file_moved_aside", path=str(path), to=str(target))
    return target


def make_dir(path: Path, mode: int = 0o700) -> bool:
    """Create ``path``; False if it was there already.  Refuses a link in its place."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        if not stat.S_ISDIR(os.lstat(path).st_mode):  # a file, or a link even to a directory
            raise
        return False
    try:
        os.chmod(path, mode)
        fsync_dir(path.parent)
    except Exception:
        remove_dir(path)
        raise
    return True


def remove_dir(path: Path) -> bool:
    """Remove the empty directory ``path``; False if it is gone or not empty."""
    try:
        os.rmdir(path)
    except OSError:  # gone, or not empty
        return False
    fsync_dir(path.parent)
    return True


def lexists(path: Path) -> bool:
    """Whether ``path`` names anything (a link is not followed); an error other than ENOENT is raised."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return False
    return True


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
