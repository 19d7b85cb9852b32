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

from . import dirs, policy
from .acl import Acl, read_acl
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
    acl: Acl | None = None  # the access ACL, read for the secret files only (None: they have none)

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
            # Only when there is one: a node without ACLs keeps the fingerprint it had before ACLs were read.
            **({"acl": self.acl.identity()} if self.acl is not None else {}),
        }


def read_capped(path: str | os.PathLike, cap: int, display: str, *, dir_fd: int | None = None) -> FileState:
    """Read one file without following a symlink, opening a FIFO, or reading past ``cap``.

    With ``dir_fd``, ``path`` is a name in that open directory (:mod:`migrate.dirs`).
    """
    try:
        st = os.lstat(path) if dir_fd is None else os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
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
        mode = stat.S_IMODE(st.st_mode)
        fd = os.open(path, flags, mode) if dir_fd is None else os.open(path, flags, mode, dir_fd=dir_fd)
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


def _lstat_state(path: str, display: str, *, dir_fd: int | None = None) -> FileState:
    try:
        st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
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
    # The default ACLs of the directories keys and the tool's state are created in, by display path; only those set.
    default_acls: Mapping[str, Acl] = attrs.field(factory=dict)
    root_dir: FileState | None = None  # the node root itself, as it was opened

    @property
    def journal_problem(self) -> str | None:
        """Why the journal (with the configuration copy beside it) cannot be trusted; None when it can or is absent."""
        from . import record

        j = self.journal
        if not j.exists:
            return None
        if j.kind == "too-large":
            return f"it is over {policy.MAX_JOURNAL_BYTES} bytes, larger than any journal this tool writes"
        if j.kind == "unreadable":
            return f"it cannot be read ({j.error})"
        problem = policy.state_file_problem(j.kind, j.mode, j.uid, self.euid)
        if problem is None and self.config_backup.exists:
            backup = self.config_backup
            found = policy.state_file_problem(backup.kind, backup.mode, backup.uid, self.euid)
            problem = None if found is None else f"the configuration copy beside it: {found}"
        if problem is not None:
            return problem
        try:
            record.load(j.data, self.layout)
        except record.Invalid as exc:
            return str(exc)
        return None

    @property
    def journal_record(self):
        """The journal as a validated :class:`migrate.record.Journal`; None when absent or not to be trusted."""
        from . import record

        if not self.journal.exists or self.journal_problem is not None:
            return None
        return record.load(self.journal.data, self.layout)

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
        if self.default_acls:  # only when there are some, as for a file's ACL
            parts["default_acls"] = {path: acl.identity() for path, acl in sorted(self.default_acls.items())}
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


def scan(layout: Layout, *, now: datetime | None = None, held: dirs.Held | None = None) -> Snapshot:
    """Read the node described by ``layout``; raise :class:`NodeError` if there is no node.

    Every file is read relative to a directory held open from the node root
    down (:mod:`migrate.dirs`), so a link anywhere on the way is seen, never
    followed.  The writer passes the directories it holds (``held``), so that
    what it scans is what it writes to; otherwise the scan opens its own and
    closes them before it returns.
    """
    if held is not None:
        return _scan(layout, held, now)
    held = _open_node(layout)
    try:
        return _scan(layout, held, now)
    finally:
        held.close()


def _open_node(layout: Layout) -> dirs.Held:
    try:
        root_st = os.stat(layout.root)
        if not stat.S_ISDIR(root_st.st_mode):
            raise NodeError(
                f"{layout.root} is not a directory", id="node-not-directory", hint="pass the node root, e.g. /tandberg"
            )
        return dirs.open_node(os.fspath(layout.root))
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


def _dir_state(
    path: str, display: str, st: os.stat_result | None, d: dirs.Dir | None, error: str | None
) -> FileState:
    """The state of one directory on the way: from the opened descriptor, or from what stands there instead."""
    if d is not None:
        return FileState(display, "dir", mode=d.mode, uid=d.uid, gid=d.gid, nlink=d.nlink, inode=d.dev_ino)
    if error is not None:
        return FileState(display, "unreadable", error=error)
    if st is None:
        return FileState(display, "missing")
    kind = file_kind(st.st_mode)
    common = dict(mode=stat.S_IMODE(st.st_mode), uid=st.st_uid, gid=st.st_gid, nlink=st.st_nlink)
    if kind == "dir":  # a directory that could not be opened (permissions)
        return FileState(display, "unreadable", error="it cannot be opened", inode=(st.st_dev, st.st_ino), **common)
    return FileState(display, kind, inode=(st.st_dev, st.st_ino), **common)


def _scan(layout: Layout, held: dirs.Held, now: datetime | None) -> Snapshot:
    root, cert_dir, config = os.fspath(layout.root), os.fspath(layout.cert_dir), os.fspath(layout.config)
    config_dir, config_name = config.rsplit("/", 1)
    config_dir = config_dir or "/"
    seen: dict[str, FileState] = {}
    reached: dict[str, dirs.Dir | None] = {}
    for target in _dirs_to_check(layout):
        steps, d = dirs.walk(held, target)
        for path, st, step_dir, error in steps:
            if path not in seen:
                seen[path] = _dir_state(path, _rel(root, path), st, step_dir, error)
        reached[target] = d
    cert = reached.get(cert_dir) if cert_dir != root else held.root
    cfg_dir = reached.get(config_dir) if config_dir != root else held.root
    files = {}
    for rule in policy.FILES:
        path = f"{cert_dir}/{rule.name}"
        if cert is None:
            files[rule.name] = FileState(_rel(root, path), "missing", error="its directory cannot be reached")
        else:
            files[rule.name] = read_capped(rule.name, policy.MAX_PEM_BYTES, _rel(root, path), dir_fd=cert.fd)
    _read_key_acls(files, cert)
    temps = []
    staged_in = [(cert, cert_dir, rule.name) for rule in policy.CLIENT_FILES] + [(cfg_dir, config_dir, config_name)]
    listings: dict[int, list[str]] = {}
    for d, dir_path, name in staged_in:
        if d is None:
            continue
        if d.fd not in listings:
            try:
                listings[d.fd] = sorted(os.listdir(d.fd))
            except OSError:
                listings[d.fd] = []
        for entry in listings[d.fd]:
            if not policy.is_staging_name(entry, name):
                continue
            staged = f"{dir_path.rstrip('/')}/{entry}"
            temp = _lstat_state(entry, _rel(root, staged), dir_fd=d.fd)
            if not temp.exists:
                continue
            temps.append(temp)
            published = files.get(name)
            if published is not None and published.kind == "file" and published.inode == temp.inode:
                files[name] = attrs.evolve(published, staged_links=published.staged_links + 1)
    state_dir_path, journal_path, backup_path = map(os.fspath, (layout.state_dir, layout.journal, layout.config_backup))
    steps, state = dirs.walk(held, state_dir_path)
    for path, st, step_dir, error in steps:
        if path not in seen:
            seen[path] = _dir_state(path, _rel(root, path), st, step_dir, error)
    state_dir = seen.get(state_dir_path) or FileState(_rel(root, state_dir_path), "missing")
    if state is not None:
        journal = read_capped(policy.JOURNAL_NAME, policy.MAX_JOURNAL_BYTES, _rel(root, journal_path), dir_fd=state.fd)
        config_backup = _lstat_state(policy.CONFIG_BACKUP_NAME, _rel(root, backup_path), dir_fd=state.fd)
    else:  # never read through a state directory that is a link (or worse): precheck reports it
        journal = FileState(_rel(root, journal_path), "missing")
        config_backup = FileState(_rel(root, backup_path), "missing")
    if cfg_dir is None:
        config_state = FileState(_rel(root, config), "missing", error="its directory cannot be reached")
    else:
        config_state = read_capped(config_name, policy.MAX_CONFIG_BYTES, _rel(root, config), dir_fd=cfg_dir.fd)
    r = held.root
    return Snapshot(
        layout=layout,
        files=files,
        config=config_state,
        dirs=tuple(seen[path] for path in _dirs_to_check(layout) if path in seen),
        state_dir=state_dir,
        temps=tuple(temps),
        journal=journal,
        config_backup=config_backup,
        euid=os.geteuid(),
        now=now or datetime.now(timezone.utc),
        default_acls=_default_acls(root, cert, cfg_dir),
        root_dir=FileState(".", "dir", mode=r.mode, uid=r.uid, gid=r.gid, nlink=r.nlink, inode=r.dev_ino),
    )


def _acl_of(path: int | str, *, default: bool = False, dir_fd: int | None = None) -> Acl | None:
    """The ACL of ``path`` (a descriptor, or a name in ``dir_fd``), None without one; an error reading it is an unreadable ACL."""
    try:
        return read_acl(path, default=default, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):  # gone since it was scanned: its own state says so
        return None
    except OSError as exc:
        return Acl(error=f"it cannot be read ({os.strerror(exc.errno or errno.EIO)})")


def _read_key_acls(files: dict[str, FileState], cert: dirs.Dir | None) -> None:
    """Add to each secret file of ``files`` the access ACL it has in the held certificate directory ``cert``."""
    if cert is None:
        return
    for rule in policy.FILES:
        state = files[rule.name]
        if rule.secret and state.kind == "file":
            found = _acl_of(rule.name, dir_fd=cert.fd)
            if found is not None:
                files[rule.name] = attrs.evolve(state, acl=found)


def _default_acls(root: str, *held: dirs.Dir | None) -> dict[str, Acl]:
    """The default ACLs of the held certificate directory and configuration directory (the state directory's parent)."""
    out: dict[str, Acl] = {}
    for d in held:
        display = _rel(root, d.path) if d is not None else None
        if d is not None and display not in out:
            found = _acl_of(d.fd, default=True)
            if found is not None:
                out[display] = found
    return out


def _dirs_to_check(layout: Layout) -> list[str]:
    """The directories between the node root and the managed files (and the state directory's parent), root excluded."""
    root = os.fspath(layout.root)
    out: list[str] = []
    targets = [os.fspath(layout.cert_dir), os.path.dirname(os.fspath(layout.config)), os.fspath(layout.state_dir.parent)]
    for target in targets:
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


def hold(layout: Layout) -> dirs.Held:
    """Open the node root and every directory on the way to what the migration touches, for a writer to hold."""
    held = _open_node(layout)
    try:
        for target in _dirs_to_check(layout) + [os.fspath(layout.state_dir)]:
            dirs.walk(held, target)
    except BaseException:
        held.close()
        raise
    return held
