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
