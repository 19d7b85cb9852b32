"""Read a node, never write it: ``scan(layout) -> Snapshot``.

The scanner is the only reader of the node.  It never follows a symlink at a
managed name, never opens a FIFO or device (no hang), and reads every file
with a size cap (no huge allocation).  Everything later stages need is in the
:class:`Snapshot`, a value: the planner and the checks do no I/O.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import attrs

from . import acl, dirs, policy
from .acl import Acl
from .errors import NodeError
from .model import FileState, Layout, Snapshot
from .model import rel_path as _rel

__all__ = ["FileState", "Layout", "Snapshot", "file_kind", "hold", "read_capped", "scan"]

if TYPE_CHECKING:
    from typing import TypedDict

    class _Stat(TypedDict, total=False):
        """The fields of a :class:`FileState` that an ``lstat`` gives."""

        mode: int
        uid: int
        gid: int
        nlink: int
        size: int
        inode: tuple[int, int]


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


def read_capped(
    path: str | os.PathLike, cap: int, display: str, *, dir_fd: int | None = None, with_acl: bool = False
) -> FileState:
    """Read one file without following a symlink, opening a FIFO, or reading past ``cap``.

    With ``dir_fd``, ``path`` is a name in that open directory (:mod:`migrate.dirs`).  With ``with_acl``,
    the access ACL of a file read whole is read too, through the same descriptor: the ACL of the very
    inode whose bytes were read, with no second open.
    """
    try:
        st = os.lstat(path) if dir_fd is None else os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return FileState(display, "missing")
    except NotADirectoryError:
        return FileState(display, "missing", error="a parent is not a directory")
    except OSError as exc:
        return FileState(display, "unreadable", error=os.strerror(exc.errno or errno.EIO))
    common: _Stat = {
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "nlink": st.st_nlink,
        "size": st.st_size,
        "inode": (st.st_dev, st.st_ino),
    }
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
        found = _acl_of(fd) if with_acl and len(data) <= cap else None
    except OSError as exc:
        return FileState(display, "unreadable", error=os.strerror(exc.errno or errno.EIO), **common)
    finally:
        with contextlib.suppress(OSError):  # closing a descriptor that was only read loses nothing
            os.close(fd)
    if len(data) > cap:
        return FileState(display, "too-large", **common)
    return FileState(display, "file", data=data, acl=found, **common)


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


def check_node(layout: Layout) -> None:
    """Raise the :class:`NodeError` that every command gives for a node root that is missing, not a directory,
    not a node, or unreadable; return if a scan can start."""
    _open_node(layout).close()


def _open_node(layout: Layout) -> dirs.Held:
    try:
        root_st = os.stat(layout.root)
        if not stat.S_ISDIR(root_st.st_mode):
            raise NodeError(
                f"{layout.root} is not a directory", id="node-not-directory", hint="pass the node root, e.g. /tandberg"
            )
        _require_a_node(layout)
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


def _require_a_node(layout: Layout) -> None:
    """A directory that holds neither the certificate store nor the configuration is not a node: one error, not a
    finding for each file it lacks."""
    if os.path.lexists(layout.cert_dir) or os.path.lexists(layout.config):
        return
    shown = [layout.rel(p) for p in (layout.cert_dir, layout.config)]
    raise NodeError(
        f"{layout.root} is not an Expressway node root: it holds neither {shown[0]} nor {shown[1]}",
        id="node-not-a-node",
        hint="pass the node root, the directory holding persistent/certs (on an appliance /tandberg),"
        " or --cert-dir and --config",
    )


def _dir_state(path: str, display: str, st: os.stat_result | None, d: dirs.Dir | None, error: str | None) -> FileState:
    """The state of one directory on the way: from the opened descriptor, or from what stands there instead."""
    if d is not None:
        return FileState(display, "dir", mode=d.mode, uid=d.uid, gid=d.gid, nlink=d.nlink, inode=d.dev_ino)
    if error is not None:
        return FileState(display, "unreadable", error=error)
    if st is None:
        return FileState(display, "missing")
    kind = file_kind(st.st_mode)
    common: _Stat = {
        "mode": stat.S_IMODE(st.st_mode),
        "uid": st.st_uid,
        "gid": st.st_gid,
        "nlink": st.st_nlink,
        "inode": (st.st_dev, st.st_ino),
    }
    if kind == "dir":  # a directory that could not be opened (permissions)
        return FileState(display, "unreadable", error="it cannot be opened", **common)
    return FileState(display, kind, **common)


def _scan(layout: Layout, held: dirs.Held, now: datetime | None) -> Snapshot:
    root, cert_dir, config = os.fspath(layout.root), os.fspath(layout.cert_dir), os.fspath(layout.config)
    config_dir, config_name = config.rsplit("/", 1)
    config_dir = config_dir or "/"
    seen: dict[str, FileState] = {}

    def reach(target: str) -> dirs.Dir | None:
        """Walk to ``target``, noting the state of each directory on the way; its ``Dir`` when reached."""
        steps, d = dirs.walk(held, target)
        for path, st, step_dir, error in steps:
            seen.setdefault(path, _dir_state(path, _rel(root, path), st, step_dir, error))
        return d

    reached = {target: reach(target) for target in _dirs_to_check(layout)}
    cert = reached.get(cert_dir) if cert_dir != root else held.root
    cfg_dir = reached.get(config_dir) if config_dir != root else held.root
    files = {}
    for rule in policy.FILES:
        path = f"{cert_dir}/{rule.name}"
        if cert is None:
            files[rule.name] = FileState(_rel(root, path), "missing", error="its directory cannot be reached")
        else:
            display = _rel(root, path)
            files[rule.name] = read_capped(
                rule.name, policy.MAX_PEM_BYTES, display, dir_fd=cert.fd, with_acl=rule.secret
            )
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
    state = reach(state_dir_path)
    state_dir = seen.get(state_dir_path) or FileState(_rel(root, state_dir_path), "missing")
    if state is not None:
        journal = read_capped(policy.JOURNAL_NAME, policy.MAX_JOURNAL_BYTES, _rel(root, journal_path), dir_fd=state.fd)
        config_backup = _lstat_state(policy.CONFIG_BACKUP_NAME, _rel(root, backup_path), dir_fd=state.fd)
        install_path = _rel(root, f"{state_dir_path}/{policy.INSTALL_JOURNAL_NAME}")
        install = read_capped(policy.INSTALL_JOURNAL_NAME, policy.MAX_JOURNAL_BYTES, install_path, dir_fd=state.fd)
    else:  # never read through a state directory that is a link (or worse): precheck reports it
        journal = FileState(_rel(root, journal_path), "missing")
        config_backup = FileState(_rel(root, backup_path), "missing")
        install = FileState(_rel(root, f"{state_dir_path}/{policy.INSTALL_JOURNAL_NAME}"), "missing")
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
        now=now or datetime.now(UTC),
        default_acls=_default_acls(root, cert, cfg_dir),
        root_dir=FileState(".", "dir", mode=r.mode, uid=r.uid, gid=r.gid, nlink=r.nlink, inode=r.dev_ino),
        install_journal=install,
    )


def _acl_of(path: int | str, *, default: bool = False, dir_fd: int | None = None) -> Acl | None:
    """The ACL of ``path`` (a descriptor, or a name in ``dir_fd``), None without one; an error reading it is an unreadable ACL."""
    try:
        return read_acl(path, default=default, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):  # gone since it was scanned: its own state says so
        return None
    except OSError as exc:
        return Acl(error=f"it cannot be read ({os.strerror(exc.errno or errno.EIO)})")


def _default_acls(root: str, *held: dirs.Dir | None) -> dict[str, Acl]:
    """The default ACLs of the held certificate directory and configuration directory (the state directory's parent)."""
    out: dict[str, Acl] = {}
    for d in held:
        if d is None:
            continue
        display = _rel(root, d.path)
        if display not in out:
            found = _acl_of(d.fd, default=True)
            if found is not None:
                out[display] = found
    return out


def _dirs_to_check(layout: Layout) -> list[str]:
    """The directories between the node root and the managed files (and the state directory's parent), root excluded."""
    root = os.fspath(layout.root)
    out: list[str] = []
    targets = [
        os.fspath(layout.cert_dir),
        os.path.dirname(os.fspath(layout.config)),
        os.fspath(layout.state_dir.parent),
    ]
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


# --- POSIX ACLs (their bytes are parsed by migrate.acl) --------------------------


def read_acl(path: int | str | os.PathLike, *, default: bool = False, dir_fd: int | None = None) -> Acl | None:
    """The access ACL (``default=True``: the default ACL) of ``path``, never following a symlink.

    ``path`` may be an open descriptor (a held directory: one call, no path
    resolved again).  None when there is none (ENODATA) or the file system has no ACLs
    (ENOTSUP/EOPNOTSUPP); any other ``OSError`` is raised.  With ``dir_fd``,
    ``path`` is relative to that directory: ``os.getxattr`` takes no
    ``dir_fd``, so a regular file or directory is opened (``O_NOFOLLOW``,
    ``O_NONBLOCK``) and asked through its descriptor; a symlink has no ACL
    (None), and a FIFO, socket or device is never opened (``EINVAL``).
    """
    name = acl.DEFAULT if default else acl.ACCESS
    blob: bytes | None
    try:
        if isinstance(path, int):
            blob = os.getxattr(path, name)
        elif dir_fd is None:
            blob = os.getxattr(path, name, follow_symlinks=False)
        else:
            blob = _getxattr_at(dir_fd, path, name)
    except OSError as exc:
        if exc.errno in acl.NO_ACL:
            return None
        raise
    return None if blob is None else acl.parse(blob)


def _getxattr_at(dir_fd: int, path: str | os.PathLike, name: str) -> bytes | None:
    st = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        return None
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        raise OSError(errno.EINVAL, "not a regular file or directory: its ACL is not read", os.fspath(path))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)
    # The mode is ignored without O_CREAT; pyfakefs applies it to an existing file, so pass the file's own.
    fd = os.open(path, flags, stat.S_IMODE(st.st_mode), dir_fd=dir_fd)
    try:
        fst = os.fstat(fd)
        if (fst.st_dev, fst.st_ino) != (st.st_dev, st.st_ino):
            raise OSError(errno.EAGAIN, "the file changed while its ACL was read", os.fspath(path))
        return os.getxattr(fd, name)
    finally:
        os.close(fd)
