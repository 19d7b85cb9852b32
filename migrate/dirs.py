"""The node's directories, held open: every file the migration reads or writes is named relative to one.

A path string is resolved again at every call, so a directory swapped for a
link between two calls redirects the second; ``O_NOFOLLOW`` guards only the
last component.  A descriptor is not resolved again.  :func:`open_node` opens
the node root, then each directory below it one component at a time with
``O_DIRECTORY|O_NOFOLLOW`` relative to its parent, and later calls pass
``dir_fd=`` (the scanner to read, the writer to write).

What is held is recorded as it was opened (:class:`Dir`); whether it may be
trusted is the checks' decision (:func:`migrate.policy.directory_problem`),
made on those same records, so that what was judged is what is written to.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat

import attrs

from . import policy

DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


@attrs.define(eq=False)
class Dir:
    """One open directory: its descriptor, where it was opened, and what it was then."""

    fd: int
    path: str  # absolute, for messages and logs only: never used to reach the disk again
    parent: Dir | None
    name: str | None  # its entry in ``parent``
    dev_ino: tuple[int, int]
    mode: int
    uid: int
    gid: int
    nlink: int

    def attached(self) -> bool:
        """Whether this directory is still the one its parent's entry names (not moved, not swapped)."""
        if self.parent is None or self.name is None:
            return True
        try:
            st = os.stat(self.name, dir_fd=self.parent.fd, follow_symlinks=False)
        except OSError:
            return False
        return stat.S_ISDIR(st.st_mode) and (st.st_dev, st.st_ino) == self.dev_ino

    def problem(self, euid: int) -> str | None:
        """Why this directory is not safe to write under (see :func:`policy.directory_problem`)."""
        return policy.directory_problem(self.mode, self.uid, euid)


def _record(fd: int, path: str, parent: Dir | None, name: str | None) -> Dir:
    st = os.fstat(fd)
    return Dir(
        fd=fd,
        path=path,
        parent=parent,
        name=name,
        dev_ino=(st.st_dev, st.st_ino),
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        nlink=st.st_nlink,
    )


def _open(name: str, flags: int, path: str, parent: Dir | None) -> Dir:
    fd = os.open(name, flags) if parent is None else os.open(name, flags, dir_fd=parent.fd)
    try:
        return _record(fd, path, parent, None if parent is None else name)
    except BaseException:
        os.close(fd)
        raise


def open_root(path: str) -> Dir:
    """Open the node root as the user named it (links in the user's own path are followed)."""
    return _open(path, DIR_FLAGS & ~os.O_NOFOLLOW, path, None)


def open_child(parent: Dir, name: str) -> Dir:
    """Open the directory ``name`` of ``parent``; a link there fails (``ELOOP``/``ENOTDIR``), never followed."""
    return _open(name, DIR_FLAGS, f"{parent.path.rstrip('/')}/{name}", parent)


def open_absolute(path: str) -> Dir:
    """Open a directory named by an absolute path outside the node root (``--cert-dir``), refusing a final link."""
    return _open(path, DIR_FLAGS, path, None)


@attrs.define
class Held:
    """The directories of one node, held open for a command; close them with :meth:`close`."""

    root: Dir
    by_path: dict[str, Dir] = attrs.field(factory=dict)  # absolute path -> Dir, the root included

    def get(self, path: str) -> Dir | None:
        return self.by_path.get(path)

    def add(self, d: Dir) -> Dir:
        self.by_path[d.path] = d
        return d

    def drop(self, path: str) -> None:
        d = self.by_path.pop(path, None)
        if d is not None and d is not self.root:
            with contextlib.suppress(OSError):  # a read-only descriptor: closing it loses nothing
                os.close(d.fd)

    def close(self) -> None:
        for d in list(self.by_path.values()):
            with contextlib.suppress(OSError):
                os.close(d.fd)
        self.by_path.clear()


Step = tuple[str, "os.stat_result | None", "Dir | None", "str | None"]


def walk(held: Held, target: str) -> tuple[list[Step], Dir | None]:
    """Open the directories from the held root down to ``target`` (absolute), one component at a time.

    Returns, for each component below the root, ``(path, lstat, Dir, error)``:
    the ``Dir`` when it was opened (its record says what it is); else the
    ``lstat`` of what stands there instead (a link, a file), or ``None`` when
    nothing does; ``error`` when even that could not be learnt.  The walk stops
    at the first component that is not a plain directory.  Also returns the
    ``Dir`` of ``target`` when it was reached.  A ``target`` outside the root
    is opened directly (a link at its last component is refused).
    """
    root = held.root.path.rstrip("/") or "/"
    if target in (held.root.path, root):
        return [], held.root
    steps: list[Step] = []
    if not target.startswith(root.rstrip("/") + "/"):
        d = held.get(target)
        if d is None:
            try:
                d = held.add(open_absolute(target))
            except OSError as exc:
                st, error = _what_is_there(exc, lambda: os.lstat(target))
                steps.append((target, st, None, error))
                return steps, None
        steps.append((target, None, d, None))
        return steps, d
    parent = held.root
    path = root.rstrip("/")
    for part in target[len(path) + 1 :].split("/"):
        path = f"{path}/{part}"
        d = held.get(path)
        if d is None:
            try:
                d = held.add(open_child(parent, part))
            except OSError as exc:
                there = _what_is_there(exc, functools.partial(os.stat, part, dir_fd=parent.fd, follow_symlinks=False))
                steps.append((path, there[0], None, there[1]))
                return steps, None
        steps.append((path, None, d, None))
        parent = d
    return steps, parent


def _what_is_there(exc: OSError, lstat) -> tuple[os.stat_result | None, str | None]:
    """After a failed open: the lstat of what stands there (a link, a file...), None when nothing does; or the error."""
    if exc.errno == errno.ENOENT:
        return None, None
    if exc.errno not in (errno.ELOOP, errno.ENOTDIR, errno.EACCES, errno.EPERM):
        return None, os.strerror(exc.errno or errno.EIO)
    try:
        return lstat(), None
    except FileNotFoundError:
        return None, None
    except OSError as again:
        return None, os.strerror(again.errno or errno.EIO)


def open_node(root: str) -> Held:
    """Hold the node root open (raises the ``OSError`` of ``open`` when it cannot be opened)."""
    r = open_root(root)
    held = Held(root=r)
    held.add(r)
    return held
