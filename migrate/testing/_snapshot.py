"""Read a tree straight from pyfakefs's own objects, without one ``os`` call.

:func:`~migrate.testing.tree.read_tree` works on any file system, through
``os.lstat``, ``os.listdir`` and ``open``; under pyfakefs each of those
resolves its path again (tens of microseconds a call).  The crash rehearsal
reads a node back after every stop, so it walks the fake directory objects
instead: :func:`fake_tree` gives the same :data:`~migrate.testing.tree.Tree`
as ``read_tree`` (a test holds them equal), and the hard-link count of every
file as well, which a ``Tree`` does not record.

Private to :mod:`migrate.testing`: it leans on pyfakefs's object model
(``FakeDirectory.entries``, ``FakeFile.st_mode``, ``byte_contents``), which
the pinned pyfakefs range keeps.
"""

from __future__ import annotations

import stat

from ..scan import file_kind
from .tree import Entry, Tree


def fake_tree(filesystem, root: str, *, links: dict[str, int] | None = None) -> Tree:
    """Every path under ``root`` (root excluded) in the fake ``filesystem``, as ``read_tree`` would read it.

    Symlinks are recorded, not followed (``root`` itself must be a directory,
    not a symlink).  With ``links``, the ``st_nlink`` of every regular file is
    stored there by its relative path.
    """
    top = filesystem.lresolve(root)
    if not stat.S_ISDIR(top.st_mode):
        raise NotADirectoryError(f"not a directory (symlinks are not followed): {root}")
    tree: Tree = {}
    pending = [("", top)]
    while pending:
        rel_dir, directory = pending.pop()
        for name, obj in directory.entries.items():
            rel = f"{rel_dir}/{name}" if rel_dir else name
            mode = obj.st_mode
            kind = file_kind(mode)
            common = {"kind": kind, "mode": stat.S_IMODE(mode), "uid": obj.st_uid, "gid": obj.st_gid}
            if kind == "dir":
                tree[rel] = Entry(**common)
                pending.append((rel, obj))
            elif kind == "file":
                tree[rel] = Entry(**common, data=obj.byte_contents or b"")
                if links is not None:
                    links[rel] = obj.st_nlink
            elif kind == "symlink":
                tree[rel] = Entry(**common, target=obj.contents)
            else:
                tree[rel] = Entry(**common)
    return tree


class FakeState:
    """The whole state of a pyfakefs file system at one moment, to put back later (:meth:`restore`), any number of times.

    Every object reachable from the root (and ``/dev/null``) is kept by identity
    with a copy of its attributes, of its ``stat_result``'s, of its entries (in
    their order: ``listdir`` gives that order) and of its extended attributes;
    and the file system's own: its counters (inodes, devices), its open files
    and free descriptors, and its mounts' usage; and each open file's own
    attributes and, for a binary one, the bytes it holds and its position (a
    write through one descriptor refreshes the others open on the same file).  :meth:`restore` gives every one
    of those objects back its attributes, in place, so that whoever holds one
    (an open descriptor, a held directory) holds it as it was; objects made
    since are left unreachable.  The crash rehearsal judges a stop by running
    ``rollback`` on the state it left, putting the state back, and running the
    command: the same as running each on a copy of its own.
    ``tests/test_faster_pyfakefs.py`` holds a restored file system equal to one
    that never left the state, object by object and in what it does next.
    """

    def __init__(self, filesystem) -> None:
        from pyfakefs.fake_file import FakeDirectory

        self._filesystem = filesystem
        self._own = dict(vars(filesystem))
        self._open_files = [None if files is None else list(files) for files in filesystem.open_files]
        self._free = list(filesystem._free_fd_heap)
        self._mounts = {point: dict(usage) for point, usage in filesystem.mount_points.items()}
        self._wrappers = [
            _wrapper_state(wrapper)
            for files in filesystem.open_files
            if files
            for wrapper in files
            if hasattr(wrapper, "__dict__")
        ]
        self._objects: list[tuple[object, dict, dict, dict | None, dict]] = []
        seen: set[int] = set()
        pending = [filesystem.root, filesystem.dev_null]
        while pending:
            obj = pending.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            entries = dict(obj._entries) if isinstance(obj, FakeDirectory) else None
            self._objects.append((obj, dict(vars(obj)), dict(vars(obj.stat_result)), entries, dict(obj.xattr)))
            if entries:
                pending.extend(entries.values())

    def restore(self) -> None:
        """Put every kept object and the file system itself back as they were when this was taken."""
        fs = self._filesystem
        for obj, own, stat_own, entries, xattr in self._objects:
            attributes = vars(obj)
            attributes.clear()
            attributes.update(own)
            stat_attributes = vars(own["stat_result"])
            stat_attributes.clear()
            stat_attributes.update(stat_own)
            own["xattr"].clear()
            own["xattr"].update(xattr)
            if entries is not None:
                own["_entries"].clear()
                own["_entries"].update(entries)
        attributes = vars(fs)
        attributes.clear()
        attributes.update(self._own)
        fs.open_files[:] = [None if files is None else list(files) for files in self._open_files]
        fs._free_fd_heap[:] = self._free
        for point, usage in self._mounts.items():
            fs.mount_points[point].clear()
            fs.mount_points[point].update(usage)
        for point in [point for point in fs.mount_points if point not in self._mounts]:
            del fs.mount_points[point]
        for wrapper, own, stream in self._wrappers:
            attributes = vars(wrapper)
            attributes.clear()
            attributes.update(own)
            if stream is not None:  # the bytes the descriptor sees, and where it is in them
                buffer, (data, position) = own["_io"], stream
                buffer.seek(0)
                buffer.truncate(0)
                buffer.write(data)
                buffer.seek(position)


def _wrapper_state(wrapper) -> tuple[object, dict, tuple[bytes, int] | None]:
    """An open file as it is now: its attributes, and for a binary one the bytes it holds and its position."""
    import io

    own = dict(vars(wrapper))
    buffer = own.get("_io")
    stream = (buffer.getvalue(), buffer.tell()) if isinstance(buffer, io.BytesIO) else None
    return wrapper, own, stream
