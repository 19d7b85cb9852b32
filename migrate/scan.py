"""Read a node, never write it: ``scan(layout) -> Snapshot``.

The scanner is the only reader of the node.  It never follows a symlink at a
managed name, never opens a FIFO or device (no hang), and reads every file
with a size cap (no huge allocation).  Everything later stages need is in the
:class:`Snapshot`, a value: the planner and the checks do no I/O.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import attrs

from . import policy
from .errors import NodeError

_KINDS = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
    (stat.S_ISCHR, "device"),
    (stat.S_ISBLK, "device"),
)


def file_kind(st_mode: int) -> str:
    """The kind of file an ``st_mode`` describes: ``file``, ``dir``, ``symlink``, ``fifo``, ..."""
    for test, name in _KINDS:
        if test(st_mode):
            return name
    return "other"


@attrs.frozen
class Layout:
    """Where a node keeps what the migration reads and writes."""

    root: Path
    cert_dir: Path
    config: Path

    @classmethod
    def for_node(cls, root: str | os.PathLike, *, cert_dir=None, config=None) -> Layout:
        """The layout of the node at ``root``; ``cert_dir``/``config`` override the defaults."""
        root = Path(os.path.abspath(root))
        cert_dir = Path(os.path.abspath(cert_dir)) if cert_dir else root / policy.CERT_DIR
        config = Path(os.path.abspath(config)) if config else root / policy.CONFIG_FILE
        return cls(root=root, cert_dir=cert_dir, config=config)

    @property
    def state_dir(self) -> Path:
        return self.root / policy.STATE_DIR

    @property
    def journal(self) -> Path:
        return self.state_dir / policy.JOURNAL_NAME

    @property
    def config_backup(self) -> Path:
        return self.state_dir / policy.CONFIG_BACKUP_NAME

    @property
    def lock(self) -> Path:
        return self.state_dir / policy.LOCK_NAME

    def cert(self, name: str) -> Path:
        return self.cert_dir / name

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the node root when inside it, else as given (both absolute and normalised)."""
        return _rel(os.fspath(self.root), os.fspath(path))

    def resolve(self, rel: str) -> Path:
        """The inverse of :meth:`rel`."""
        path = Path(rel)
        return path if path.is_absolute() else self.root / path


def _rel(root: str, path: str) -> str:
    # String work, not pathlib: the scan asks this for every file of every node of a fleet.
    if path == root:
        return "."
    prefix = root if root.endswith("/") else root + "/"
    return path.removeprefix(prefix)


def _staging(path: str) -> str:
    """:func:`policy.staging_path` of a path given as a string."""
    head, _, name = path.rpartition("/")
    return f"{head}/{policy.staging_name(name)}"


@attrs.frozen
class FileState:
    """What one path held when it was scanned.

    ``kind`` is ``missing``, ``file``, ``dir``, ``symlink``, ``fifo``,
    ``socket``, ``device``, ``other``, ``unreadable`` or ``too-large``.  Only a
    regular file within the size cap has ``data``; it is never shown in a repr.
    """

    path: str
    kind: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    nlink: int = 0
    size: int = 0
    data: bytes | None = attrs.field(default=None, repr=False)
    error: str | None = None
    # Links that are this file's own staging name: a run killed between publishing it and removing that name.
    staged_links: int = 0
    inode: tuple[int, int] | None = attrs.field(default=None, eq=False, repr=False)  # (st_dev, st_ino)

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None

    @property
    def exists(self) -> bool:
        return self.kind != "missing"

    @property
    def readable(self) -> bool:
        return self.data is not None

    def identity(self) -> dict:
        """The parts of the state that matter to a plan: for the fingerprint."""
        return {
            "path": self.path,
            "kind": self.kind,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "nlink": self.nlink if self.kind == "file" else None,  # a directory's grows with its subdirectories
            "sha256": self.sha256,
        }


def read_capped(path: str | os.PathLike, cap: int, display: str) -> FileState:
    """Read one file without following a symlink, opening a FIFO, or reading past ``cap``."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return FileState(display, "missing")
    except NotADirectoryError:
        return FileState(display, "missing", error="a parent is not a directory")
    except OSError as exc:
        return FileState(display, "unreadable", error=os.strerror(exc.errno or errno.EIO))
    common = dict(
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        nlink=st.st_nlink,
        size=st.st_size,
        inode=(st.st_dev, st.st_ino),
    )
    kind = file_kind(st.st_mode)
    if kind != "file":
        return FileState(display, kind, **common)
    if st.st_size > cap:
        return FileState(display, "too-large", **common)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        # The mode argument is ignored by the kernel without O_CREAT; pyfakefs applies it to
        # an existing file, so pass the file's own mode to leave it unchanged there too.
        fd = os.open(path, flags, stat.S_IMODE(st.st_mode))
    except OSError as exc:
        return FileState(display, "unreadable", error=os.strerror(exc.errno or errno.EIO), **common)
    try:
        fst = os.fstat(fd)
        if not stat.S_ISREG(fst.st_mode) or (fst.st_ino, fst.st_dev) != (st.st_ino, st.st_dev):
            return FileState(display, "unreadable", error="the file changed while it was read", **common)
        chunks, left = [], cap + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 16))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        data = b"".join(chunks)
    except OSError as exc:
        return FileState(display, "unreadable", error=os.strerror(exc.errno or errno.EIO), **common)
    finally:
        with contextlib.suppress(OSError):  # closing a descriptor that was only read loses nothing
            os.close(fd)
    if len(data) > cap:
        return FileState(display, "too-large", **common)
    return FileState(display, "file", data=data, **common)


def _lstat_state(path: str, display: str) -> FileState:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return FileState(display, "missing")
    except OSError as exc:
        return FileState(display, "unreadable", error=os.strerror(exc.errno or errno.EIO))
    return FileState(
        display,
        file_kind(st.st_mode),
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        nlink=st.st_nlink,
        inode=(st.st_dev, st.st_ino),
    )


@attrs.frozen
class Snapshot:
    """Everything the migration read from a node, at one moment."""

    layout: Layout
    files: Mapping[str, FileState]  # by policy file name
    config: FileState
    dirs: tuple[FileState, ...]  # the directories on the way to the managed files
    state_dir: FileState  # the tool's own directory; taking the lock creates it, so no part of the fingerprint
    temps: tuple[FileState, ...]  # staging files left by an interrupted run
    journal: FileState
    config_backup: FileState
    euid: int
    now: datetime

    @property
    def journal_data(self) -> dict | None:
        """The parsed journal, or None when there is none or it is unreadable."""
        if self.journal.data is None:
            return None
        try:
            data = json.loads(self.journal.data)
        except (ValueError, RecursionError):  # RecursionError: absurdly deep nesting
            return None
        return data if isinstance(data, dict) else None

    @property
    def fingerprint(self) -> str:
        """A digest of everything a plan depends on: bytes, kinds, modes, owners."""
        parts = {
            "files": [self.files[name].identity() for name in sorted(self.files)],
            "config": self.config.identity(),
            "dirs": [d.identity() for d in self.dirs],
            "temps": [t.identity() for t in self.temps],
            "journal": self.journal.identity(),
            "config_backup": self.config_backup.identity(),
        }
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


def scan(layout: Layout, *, now: datetime | None = None) -> Snapshot:
    """Read the node described by ``layout``; raise :class:`NodeError` if there is no node."""
    try:
        root_st = os.stat(layout.root)
    except (FileNotFoundError, NotADirectoryError):
        raise NodeError(
            f"no node at {layout.root}", id="node-missing", hint="pass the node root, e.g. /tandberg"
        ) from None
    except OSError as exc:
        raise NodeError(
            f"the node root {layout.root} cannot be read ({os.strerror(exc.errno or errno.EIO)})",
            id="node-unreadable",
            hint="check the file system and the permissions on the path, then run the command again",
        ) from None
    if not stat.S_ISDIR(root_st.st_mode):
        raise NodeError(
            f"{layout.root} is not a directory", id="node-not-directory", hint="pass the node root, e.g. /tandberg"
        )
    root, cert_dir, config = os.fspath(layout.root), os.fspath(layout.cert_dir), os.fspath(layout.config)
    dirs = [_lstat_state(path, _rel(root, path)) for path in _dirs_to_check(layout)]
    files = {}
    for rule in policy.FILES:
        path = f"{cert_dir}/{rule.name}"
        files[rule.name] = read_capped(path, policy.MAX_PEM_BYTES, _rel(root, path))
    temps = []
    for name, path in [(rule.name, f"{cert_dir}/{rule.name}") for rule in policy.CLIENT_FILES] + [(None, config)]:
        staged = _staging(path)
        temp = _lstat_state(staged, _rel(root, staged))
        if not temp.exists:
            continue
        temps.append(temp)
        published = files.get(name)
        if published is not None and published.kind == "file" and published.inode == temp.inode:
            files[name] = attrs.evolve(published, staged_links=1)
    state_dir_path, journal_path, backup_path = map(os.fspath, (layout.state_dir, layout.journal, layout.config_backup))
    state_dir = _lstat_state(state_dir_path, _rel(root, state_dir_path))
    if state_dir.kind == "dir":
        journal = read_capped(journal_path, policy.MAX_CONFIG_BYTES, _rel(root, journal_path))
        config_backup = _lstat_state(backup_path, _rel(root, backup_path))
    else:  # never read through a state directory that is a link (or worse): precheck reports it
        journal = FileState(_rel(root, journal_path), "missing")
        config_backup = FileState(_rel(root, backup_path), "missing")
    return Snapshot(
        layout=layout,
        files=files,
        config=read_capped(config, policy.MAX_CONFIG_BYTES, _rel(root, config)),
        dirs=tuple(dirs),
        state_dir=state_dir,
        temps=tuple(temps),
        journal=journal,
        config_backup=config_backup,
        euid=os.geteuid(),
        now=now or datetime.now(timezone.utc),
    )


def _dirs_to_check(layout: Layout) -> list[str]:
    """The directories between the node root and the managed files, root excluded."""
    root = os.fspath(layout.root)
    out: list[str] = []
    for target in (os.fspath(layout.cert_dir), os.path.dirname(os.fspath(layout.config))):
        rel = _rel(root, target)
        if rel == ".":  # the root itself
            continue
        if rel == target:  # outside the root: only the directory itself
            if target not in out:
                out.append(target)
            continue
        path = root.rstrip("/")
        for part in rel.split("/"):
            path = f"{path}/{part}"
            if path not in out:
                out.append(path)
    return out
