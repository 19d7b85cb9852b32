"""A whole directory tree as a value: read it, write it, compare two.

Tests compare a node before and after a run bit for bit (bytes, modes,
owners, the set of paths); a rehearsal reads a real node and writes it into
a pyfakefs file system.  Both need the same code to behave the same on the
real file system and under pyfakefs, so this module only calls what pyfakefs
fakes: ``os.lstat``, ``os.listdir``, ``os.scandir``, ``os.readlink``, ``open``, ``os.mkdir``,
``os.makedirs``, ``os.symlink``, ``os.chmod`` and ``os.chown(...,
follow_symlinks=False)``.  Never ``os.lchown``/``os.fchown`` (not faked:
they would reach the real disk), never ``os.open`` (on a fake file it resets
the mode), never ``os.mkfifo`` (not faked).

Reading never follows a symlink and never opens anything but a regular file.
It is a test and rehearsal tool, not the hardened reader of the migration
(``scan.read_capped``): a file swapped for a FIFO between ``lstat`` and
``open`` is not guarded against.  It can be bounded as a whole
(``max_total_bytes``, ``max_entries``): the whole tree is listed and sized
with ``lstat`` before any file is read, so a tree past a cap (sparse files
included) is refused at the cost of its listing, not of its bytes.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import TYPE_CHECKING

import attrs

from ..scan import file_kind

if TYPE_CHECKING:
    from typing import TypedDict

    class _Common(TypedDict):
        """The fields of an :class:`Entry` that every kind has."""

        kind: str
        mode: int
        uid: int
        gid: int

KINDS = ("file", "dir", "symlink", "fifo", "socket", "device", "other")
# Kinds write_tree can create.
WRITABLE_KINDS = ("file", "dir", "symlink")


def _data_repr(data: bytes | None) -> str:
    # Files may hold private keys: show a size and a digest, never the bytes.
    if data is None:
        return "None"
    return f"<{len(data)} bytes sha256:{hashlib.sha256(data).hexdigest()[:12]}>"


@attrs.frozen
class Entry:
    """One path of a tree: its kind, permission bits, owner, and contents.

    ``data`` is set for files only, ``target`` for symlinks only.  The repr
    shows a file's size and digest, not its bytes (they may be a key).
    """

    kind: str
    mode: int = attrs.field(repr=oct)
    uid: int
    gid: int
    data: bytes | None = attrs.field(default=None, repr=_data_repr)
    target: str | None = None

    def __attrs_post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown entry kind {self.kind!r}; expected one of {', '.join(KINDS)}")
        if not isinstance(self.mode, int) or not 0 <= self.mode <= 0o7777:
            raise ValueError(f"mode must be permission bits (0..0o7777), got {self.mode!r}")
        for name in ("uid", "gid"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a non-negative int, got {value!r}")
        if (self.kind == "file") != isinstance(self.data, bytes):
            raise ValueError("data (bytes) is required for a file and only for a file")
        if (self.kind == "symlink") != isinstance(self.target, str):
            raise ValueError("target (str) is required for a symlink and only for a symlink")


Tree = dict[str, Entry]


class TreeTooLarge(ValueError):
    """A tree past a cap of :func:`read_tree`: one file, all files together, or the number of entries.

    Raised before the file that would pass the cap is read.  ``cap`` names the
    argument (``max_file_bytes``, ``max_total_bytes``, ``max_entries``) and
    ``limit`` its value.
    """

    def __init__(self, message: str, *, cap: str, limit: int) -> None:
        super().__init__(message)
        self.cap = cap
        self.limit = limit


def read_tree(
    root: str | os.PathLike,
    *,
    max_file_bytes: int = 64 << 20,
    max_total_bytes: int | None = None,
    max_entries: int | None = None,
) -> Tree:
    """Read every path under ``root`` (root itself excluded) into a :data:`Tree`.

    Symlinks are recorded, not followed; FIFOs, sockets and devices are
    recorded by kind and never opened.  ``root`` must be a directory, not a
    symlink.  The tree is listed and sized (``lstat``) before any file is
    read: a file larger than ``max_file_bytes``, files larger than
    ``max_total_bytes`` together (their sizes as listed: a sparse file counts
    in full), or more than ``max_entries`` paths raise :class:`TreeTooLarge`
    (a :class:`ValueError`) without reading a file.  ``None`` sets no bound.
    A file that grows past a cap while it is read raises it too.
    """
    root = os.fspath(root)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(f"not a directory (symlinks are not followed): {root}")
    listed = _list_tree(root, max_file_bytes, max_total_bytes, max_entries)
    tree: Tree = {}
    budget = max_total_bytes
    for rel, path, st in listed:
        cap, cap_name, limit = max_file_bytes, "max_file_bytes", max_file_bytes
        # budget starts at max_total_bytes: it is set exactly when that is.
        if budget is not None and max_total_bytes is not None and budget < cap:
            cap, cap_name, limit = budget, "max_total_bytes", max_total_bytes
        entry = _read_entry(path, st, cap, cap_name, limit)
        tree[rel] = entry
        if budget is not None and entry.data is not None:
            budget -= len(entry.data)
    return tree


def _list_tree(
    root: str, max_file_bytes: int, max_total_bytes: int | None, max_entries: int | None
) -> list[tuple[str, str, os.stat_result]]:
    """Every path under ``root`` with its ``lstat``, parents first; every cap checked on the sizes listed."""
    listed: list[tuple[str, str, os.stat_result]] = []
    total = 0
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        abs_dir = os.path.join(root, rel_dir) if rel_dir else root
        for name in _names(abs_dir, None if max_entries is None else max_entries - len(listed)):
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = os.path.join(abs_dir, name)
            st = os.lstat(path)
            listed.append((rel, path, st))
            if stat.S_ISDIR(st.st_mode):
                pending.append(rel)
            elif stat.S_ISREG(st.st_mode):
                if st.st_size > max_file_bytes:
                    raise TreeTooLarge(
                        f"{path} holds {st.st_size} bytes, more than max_file_bytes={max_file_bytes}",
                        cap="max_file_bytes",
                        limit=max_file_bytes,
                    )
                total += st.st_size
                if max_total_bytes is not None and total > max_total_bytes:
                    raise TreeTooLarge(
                        f"the files under {root} hold more than max_total_bytes={max_total_bytes} bytes"
                        f" ({total} with {path}, by their sizes, before reading)",
                        cap="max_total_bytes",
                        limit=max_total_bytes,
                    )
        if max_entries is not None and len(listed) > max_entries:
            raise TreeTooLarge(
                f"{root} holds more than max_entries={max_entries} paths",
                cap="max_entries",
                limit=max_entries,
            )
    return listed


def _names(path: str, room: int | None) -> list[str]:
    """The names in the directory ``path``, sorted; at most ``room + 1`` of them when ``room`` is set.

    With a bound the directory is read lazily (``os.scandir``), so a directory
    of a million names costs ``room + 1`` of them, not a list of a million.
    """
    if room is None:
        return sorted(os.listdir(path))
    names = []
    with os.scandir(path) as entries:
        for entry in entries:
            names.append(entry.name)
            if len(names) > room:
                break
    return sorted(names)


def _read_entry(path: str, st: os.stat_result, max_bytes: int, cap_name: str, limit: int) -> Entry:
    """The entry ``st`` describes; a file's bytes are read up to ``max_bytes`` (the cap ``cap_name=limit``)."""
    kind = file_kind(st.st_mode)
    common: _Common = {"kind": kind, "mode": stat.S_IMODE(st.st_mode), "uid": st.st_uid, "gid": st.st_gid}
    if kind == "symlink":
        return Entry(**common, target=os.readlink(path))
    if kind != "file":
        return Entry(**common)
    with open(path, "rb") as f:
        fst = os.fstat(f.fileno())
        if not stat.S_ISREG(fst.st_mode) or fst.st_ino != st.st_ino:
            raise OSError(f"{path} changed while it was read")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise TreeTooLarge(f"{path} grew past {cap_name}={limit} while it was read", cap=cap_name, limit=limit)
    return Entry(**common, data=data)


def _parts(rel: str) -> tuple[str, ...]:
    return tuple(rel.split("/"))


def _check_tree(tree: Tree) -> None:
    """Refuse what write_tree cannot write faithfully, before writing anything."""
    for rel, entry in tree.items():
        if not isinstance(rel, str) or not isinstance(entry, Entry):
            raise TypeError(f"a Tree maps str paths to Entry values, got {rel!r}: {type(entry).__name__}")
        parts = _parts(rel)
        if rel.startswith("/") or any(part in ("", ".", "..") for part in parts):
            raise ValueError(f"tree path must be relative, normalised and POSIX: {rel!r}")
        if len(parts) > 1:
            parent = "/".join(parts[:-1])
            if parent not in tree or tree[parent].kind != "dir":
                raise ValueError(f"{rel!r}: its parent {parent!r} is not a directory of the tree")
        if entry.kind not in WRITABLE_KINDS:
            raise NotImplementedError(f"{rel!r}: write_tree does not create a {entry.kind}")


def write_tree(tree: Tree, root: str | os.PathLike, *, owners: bool = True) -> None:
    """Write ``tree`` under ``root``, creating ``root`` (and its parents) if missing.

    No entry may exist yet (:class:`FileExistsError`): the tree is written,
    not merged.  Directories are created parents first, then files with their
    exact bytes, then symlinks.  Owners are set next (``os.chown`` with
    ``follow_symlinks=False``) when ``owners`` is true, and modes last,
    children before parents, so that a 0500 directory does not block its own
    contents and ``chown`` cannot clear a setuid/setgid bit afterwards.
    FIFOs, sockets and devices raise :class:`NotImplementedError` before
    anything is written.
    """
    _check_tree(tree)
    root = os.fspath(root)
    os.makedirs(root, exist_ok=True)
    order = sorted(tree, key=_parts)  # a parent sorts before its children

    def path_of(rel: str) -> str:
        return os.path.join(root, *_parts(rel))

    for rel in order:
        entry = tree[rel]
        path = path_of(rel)
        if entry.kind == "dir":
            os.mkdir(path)
        elif entry.kind == "file":
            assert entry.data is not None  # an Entry of a file has its data (Entry.__attrs_post_init__)
            with open(path, "xb") as f:
                f.write(entry.data)
        else:
            assert entry.target is not None  # the rest are symlinks (_check_tree), which have a target
            os.symlink(entry.target, path)
    if owners:
        for rel in order:
            entry = tree[rel]
            os.chown(path_of(rel), entry.uid, entry.gid, follow_symlinks=False)
    for rel in reversed(order):
        entry = tree[rel]
        if entry.kind != "symlink":  # Linux has no symlink modes: they are always 0777
            os.chmod(path_of(rel), entry.mode)


def diff_trees(before: Tree, after: Tree) -> list[str]:
    """The differences from ``before`` to ``after`` as human lines; ``[]`` when identical.

    One line per difference, by path: ``added P``, ``removed P``,
    ``kind file -> symlink P``, ``changed bytes P``, ``target a -> b P``,
    ``mode 0644 -> 0600 P``, ``owner 0:0 -> 65534:65534 P`` (uid:gid).
    """
    lines: list[str] = []
    for rel in sorted(before.keys() | after.keys(), key=_parts):
        old, new = before.get(rel), after.get(rel)
        if old is None:
            lines.append(f"added {rel}")
            continue
        if new is None:
            lines.append(f"removed {rel}")
            continue
        if old.kind != new.kind:
            lines.append(f"kind {old.kind} -> {new.kind} {rel}")
        else:
            if old.data != new.data:
                lines.append(f"changed bytes {rel}")
            if old.target != new.target:
                lines.append(f"target {old.target} -> {new.target} {rel}")
        if old.mode != new.mode:
            lines.append(f"mode {old.mode:04o} -> {new.mode:04o} {rel}")
        if (old.uid, old.gid) != (new.uid, new.gid):
            lines.append(f"owner {old.uid}:{old.gid} -> {new.uid}:{new.gid} {rel}")
    return lines
