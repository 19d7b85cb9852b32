"""The fake file system a rehearsal runs in: pyfakefs, as (fake) root, with the calls it does not fake closed off.

:func:`fake_filesystem` makes a fresh one; :func:`active_fake_os` finds the
one a pyfakefs test has active (or says there is none: the real disk);
:func:`as_root` runs as root in it; :func:`memoized_paths` makes its path
arithmetic cheaper for a while; :func:`write_fake_tree` writes a node's tree
into it, FIFOs, sockets and devices included.  All of them are
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


# pyfakefs's path arithmetic: functions of their argument alone (and of the working directory, for
# ``absnormpath``), given the emulated system's separators and case rules, which a rehearsal never changes.
_PURE_PATH_FUNCTIONS = (
    "absnormpath",
    "normcase",
    "normpath",
    "splitpath",
    "splitdrive",
    "isabs",
    "starts_with_sep",
    "starts_with_root_path",
    "ends_with_path_separator",
    "_path_components",
)
# The pyfakefs releases whose internals this was written against and measured on.
_KNOWN_PYFAKEFS = ((6, 3), (7, 0))

_MEMO_MARK = "_expressway_migrate_memoized"  # set on a filesystem object while its path arithmetic is remembered
_installed: list = []  # the wrappers' lookups replaced: (class, its own __getattribute__)


@contextlib.contextmanager
def memoized_paths(filesystem) -> Iterator[None]:
    """Make pyfakefs cheaper on ``filesystem`` for the duration, with the same answers; undo it after.

    pyfakefs normalises and splits the same path string again at every step of
    every call (``open`` alone resolves its path about eight times), through
    helpers that ask which operating system is emulated each time, and its
    file wrappers look every attribute up twice.  So, for the duration:

    - the path arithmetic (:data:`_PURE_PATH_FUNCTIONS`) is remembered per
      path string (and working directory): those functions depend on nothing
      else, never on what is on the fake disk.  Only ``str`` and ``bytes``
      paths are remembered, a list is handed out as a copy, and an exception
      is never remembered.  The memo lives on this one filesystem object (its
      instance attributes shadow the class's methods); nested uses keep the
      outer one;
    - the file wrappers' attribute lookup makes the same test as pyfakefs's
      (is the name the wrapper class's, or the instance's own), with the
      class's answer remembered per name.  This one replaces a method of
      pyfakefs's classes, so only on the releases it was written against
      (:data:`_KNOWN_PYFAKEFS`).

    Nothing that depends on the tree (which names exist, links, modes) is
    remembered: remembering path resolution until a directory changes was
    measured too, and bought nothing, as nearly every call that resolves a
    new path follows one that changed the tree.  ``tests/test_fakefs_memo.py``
    holds the answers equal with and without.
    """
    own = vars(filesystem)
    if own.get(_MEMO_MARK):  # already memoized by an outer block
        yield
        return
    saved = {name: own[name] for name in _PURE_PATH_FUNCTIONS if name in own}  # the object's own, kept
    for name in _PURE_PATH_FUNCTIONS:
        own[name] = _memoized(
            getattr(filesystem, name), filesystem if name == "absnormpath" else None, name == "_path_components"
        )
    own[_MEMO_MARK] = True
    patched = not _installed and _known_internals()
    if patched:
        _install_class_patches()
    try:
        yield
    finally:
        if patched:
            _remove_class_patches()
        for name in (*_PURE_PATH_FUNCTIONS, _MEMO_MARK):
            own.pop(name, None)
        own.update(saved)


def _known_internals() -> bool:
    """Whether the pyfakefs imported is a release :data:`_KNOWN_PYFAKEFS` names (its version read from the module, not the disk: that may be fake)."""
    import pyfakefs

    try:
        release = tuple(int(part) for part in str(pyfakefs.__version__).split(".")[:2])
    except (AttributeError, ValueError):
        return False
    return _KNOWN_PYFAKEFS[0] <= release < _KNOWN_PYFAKEFS[1]


def _memoized(function: Callable, cwd_of, copy: bool) -> Callable:
    """``function`` remembering its result for each ``str`` or ``bytes`` argument (and working directory, with ``cwd_of``)."""
    memo: dict = {}

    def remembered(path, *args):
        if args or type(path) not in (str, bytes):
            return function(path, *args)
        key = path if cwd_of is None else (cwd_of.cwd, path)
        try:
            found = memo[key]
        except KeyError:
            found = memo[key] = function(path)
        return list(found) if copy else found

    return remembered


def _install_class_patches() -> None:
    from pyfakefs.fake_file import FakeBinaryFileWrapper, FakeFileWrapper, FakeTextFileWrapper

    # pyfakefs's wrappers resolve each attribute through ``hasattr(FakeFileWrapper, name) or name in
    # self.__dict__``: the same test, with the class's answer remembered per name (classes do not change).
    on_class: dict[str, bool] = {}
    lookup = object.__getattribute__

    def __getattribute__(self, name):  # noqa: N807 - the special method it stands in for
        known = on_class.get(name)
        if known is None:
            known = on_class[name] = hasattr(FakeFileWrapper, name)
        if known or name in lookup(self, "__dict__"):
            return lookup(self, name)
        return self.__getattr__(name)

    if FakeFileWrapper.__getattribute__ is not object.__getattribute__:  # not the lookup this stands in for
        return
    for owner in (FakeBinaryFileWrapper, FakeTextFileWrapper):
        if "__getattribute__" in owner.__dict__:
            _installed.append((owner, owner.__dict__["__getattribute__"]))
            owner.__getattribute__ = __getattribute__  # type: ignore[method-assign]


def _remove_class_patches() -> None:
    while _installed:
        owner, original = _installed.pop()
        owner.__getattribute__ = original  # type: ignore[method-assign]


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
