"""The fake file system a rehearsal runs in: pyfakefs, as (fake) root, with the calls it does not fake closed off.

:func:`fake_filesystem` makes a fresh one; :func:`active_fake_os` finds the
one a pyfakefs test has active (or says there is none: the real disk);
:func:`as_root` runs as root in it; :func:`write_fake_tree` writes a node's
tree into it, FIFOs, sockets and devices included (pyfakefs made cheaper for
the tool's calls: :mod:`migrate.testing._faster`).  All of them are
re-exported by :mod:`migrate.testing.rehearsal`, where users import them.
"""

from __future__ import annotations

import contextlib
import posixpath
from collections.abc import Callable, Iterator


def _refuse_real_call(name: str) -> Callable:
    def refuse(*args, **kwargs):
        raise RuntimeError(f"os.{name} is not faked by pyfakefs; a rehearsal must not reach the real disk")

    return refuse


# The modules whose ``os`` must be pyfakefs's for a rehearsal to stay off the real disk.
def _modules() -> tuple[str, ...]:
    from .faults import PATCHED_MODULES

    return (*PATCHED_MODULES, "migrate.testing.tree", "migrate.testing.rehearsal")


def active_fake_os():
    """pyfakefs's ``os`` module if every module of the cycle uses it, else None (the real disk)."""
    import importlib

    try:
        from pyfakefs.fake_os import FakeOsModule
    except ImportError:  # pragma: no cover - pyfakefs is a dependency
        return None
    found = []
    for name in _modules():
        module_os = importlib.import_module(name).__dict__.get("os")
        if module_os is None:  # a module without os reaches the disk only through those that have it
            continue
        module_os = getattr(module_os, "_real", module_os)  # under migrate.testing.faults.inject
        if not isinstance(module_os, FakeOsModule):
            return None
        found.append(module_os)
    return found[0]


@contextlib.contextmanager
def as_root(fake_os) -> Iterator[None]:
    """Run as (fake) root, with pyfakefs's unfaked calls closed off; put everything back afterwards."""
    from pyfakefs.helpers import get_gid, get_uid, set_gid, set_uid

    patched = {"geteuid": lambda: 0, **{name: _refuse_real_call(name) for name in ("fchown", "lchown", "lchmod")}}
    saved = {name: fake_os.__dict__[name] for name in patched if name in fake_os.__dict__}
    uid, gid = get_uid(), get_gid()
    for name, value in patched.items():
        setattr(fake_os, name, value)
    set_uid(0)
    set_gid(0)
    try:
        yield
    finally:
        set_uid(uid)
        set_gid(gid)
        for name in patched:
            if name in saved:
                setattr(fake_os, name, saved[name])
            else:
                delattr(fake_os, name)


@contextlib.contextmanager
def fake_filesystem() -> Iterator[object]:
    """A fresh in-memory file system, as root, with pyfakefs's unfaked calls closed off."""
    from pyfakefs.fake_filesystem_unittest import Patcher

    # Import what the cycle uses before the file system is replaced.
    from .. import certs, clientcert, clientstore, writer  # noqa: F401
    from . import faults, rehearsal, tree  # noqa: F401

    with Patcher() as patcher, as_root(patcher.fake_modules["os"]):
        yield patcher.fs


_SPECIAL_KINDS = {"fifo": 0o010000, "socket": 0o140000, "device": 0o020000}  # S_IFIFO, S_IFSOCK, S_IFCHR


def write_fake_tree(tree: dict, root: str) -> None:
    """Write ``tree`` at ``root`` in the active fake file system, FIFOs, sockets and devices included.

    pyfakefs keeps those as entries of their kind, which the migration never opens.
    """
    from .tree import WRITABLE_KINDS, write_tree

    special = {rel: entry for rel, entry in tree.items() if entry.kind not in WRITABLE_KINDS}
    write_tree({rel: entry for rel, entry in tree.items() if rel not in special}, root)
    if not special:
        return
    fs = active_fake_os().filesystem  # the fake file system's own API makes them
    for rel, entry in special.items():
        kind_bits = _SPECIAL_KINDS.get(entry.kind)
        if kind_bits is not None:
            fake = fs.create_file(posixpath.join(root, rel), st_mode=kind_bits | entry.mode)
            fake.st_uid, fake.st_gid = entry.uid, entry.gid
