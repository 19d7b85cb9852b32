"""``faster_pyfakefs``: pyfakefs made about three times as fast for this tool's calls, with the same answers.

A rehearsal spends nearly all its time in pyfakefs: it resolves a path from
the root several times for each call, through helpers that ask which
operating system is emulated each time, and its file wrappers look every
attribute up twice.  :func:`faster_pyfakefs` remembers what depends on the
path string alone, and answers the calls the tool makes most (root's ``open``,
``stat`` and ``replace`` by plain names in directories it holds open) as
pyfakefs would, from the directory it holds; everything else is pyfakefs's
own.  ``tests/test_faster_pyfakefs.py`` holds every case equal to pyfakefs's
answer.  Re-exported by :mod:`migrate.testing.rehearsal`, where users import
it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

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
# The pyfakefs releases whose internals this was written against (6.3) and whose minor releases keep them:
# from 6.3 up to, not including, 7.0.  Another release gets only the path memo; the tests compare every
# answer with pyfakefs's own, so a minor release that changed them would fail there.
_KNOWN_PYFAKEFS = ((6, 3), (7, 0))

_MEMO_MARK = "_expressway_migrate_memoized"  # set on a filesystem object while its path arithmetic is remembered
_installed: list = []  # pyfakefs's methods replaced: (class, name, its own)


@contextlib.contextmanager
def faster_pyfakefs(filesystem) -> Iterator[None]:
    """Make pyfakefs cheaper on ``filesystem`` for the duration, with the same answers; undo it after.

    pyfakefs normalises and splits the same path string again at every step of
    every call, through helpers that ask which operating system is emulated
    each time; ``open`` alone resolves its path from the root about eight
    times, and its file wrappers look every attribute up twice.  A rehearsal
    spends most of its time there.  So, for the duration:

    - the path arithmetic (:data:`_PURE_PATH_FUNCTIONS`) is remembered per
      path string (and working directory): those functions depend on nothing
      else, never on what is on the fake disk.  Only ``str`` and ``bytes``
      paths are remembered, a list is handed out as a copy, and an exception
      is never remembered.  The memo lives on this one filesystem object (its
      instance attributes shadow the class's methods); nested uses keep the
      outer one;
    - root's ``open`` (to read, or to create a file exclusively), ``stat``,
      ``replace`` and ``unlink`` by plain names relative to directories it
      holds open (how the scanner reads a node, and the writer stages,
      publishes and removes each file) look the names up in those
      directories once and do what pyfakefs does for them
      (:func:`_opening_held`, :func:`_statting_held`, :func:`_replacing_held`,
      :func:`_unlinking_held`); every other call is pyfakefs's own;
    - the file wrappers' attribute lookup makes the same test as pyfakefs's
      (is the name the wrapper class's, or the instance's own), with the
      class's answer remembered per name.

    The last two replace methods of pyfakefs's classes (for every fake file
    system while the block lasts), so they are made only on the releases they
    were written against (:data:`_KNOWN_PYFAKEFS`).  Remembering path
    resolution until a directory changes was measured too, and bought
    nothing: nearly every call that resolves a new path follows one that
    changed the tree.  ``tests/test_faster_pyfakefs.py`` holds the answers equal
    with and without, case by case, and ``TestFasterAsPlain`` the crash
    rehearsal's points and judgements.
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

    if FakeFileWrapper.__getattribute__ is object.__getattribute__:  # the lookup this stands in for
        for owner in (FakeBinaryFileWrapper, FakeTextFileWrapper):
            if "__getattribute__" in owner.__dict__:
                _installed.append((owner, "__getattribute__", owner.__dict__["__getattribute__"]))
                owner.__getattribute__ = __getattribute__  # type: ignore[method-assign]

    from pyfakefs.fake_os import FakeOsModule

    replaced = []
    for name, taking in (
        ("open", _opening_held),
        ("stat", _statting_held),
        ("replace", _replacing_held),
        ("unlink", _unlinking_held),
    ):
        original = FakeOsModule.__dict__[name]
        replaced.append((original, taking(original)))
        _installed.append((FakeOsModule, name, original))
        setattr(FakeOsModule, name, replaced[-1][1])
    # pyfakefs asks whether ``self.open`` takes ``dir_fd`` by looking the bound method up in a set it fills the
    # first time it is asked, and keeps.  Whenever it is asked meanwhile, the set gets pyfakefs's function and
    # its replacement alike, so that it answers for both during and after.
    supports = FakeOsModule.__dict__["supports_dir_fd"]

    def supports_dir_fd(self):
        found = supports.fget(self)
        for original, replacement in replaced:
            pair = (original.__get__(self, type(self)), replacement.__get__(self, type(self)))
            if pair[0] in found or pair[1] in found:
                found.update(pair)
        return found

    _installed.append((FakeOsModule, "supports_dir_fd", supports))
    FakeOsModule.supports_dir_fd = property(supports_dir_fd)  # type: ignore[method-assign, assignment]


def _remove_class_patches() -> None:
    while _installed:
        owner, name, original = _installed.pop()
        setattr(owner, name, original)


def _attached_path(directory, root) -> str | None:
    """The path of ``directory`` (as pyfakefs's ``FakeFile.path`` gives it) if it is where that path leads: each of
    its ancestors up to ``root`` holds it under its name.  ``None`` otherwise."""
    names = []
    while directory is not root:
        parent = directory.parent_dir() if directory.parent_dir else None
        if parent is None or parent.entries.get(directory.name) is not directory:
            return None
        names.append(directory.name)
        directory = parent
    return "/" + "/".join(reversed(names))


def _joined(directory_path: str, name: str) -> str:
    """``os.path.join(directory_path, name)`` for an absolute directory path and a plain name."""
    return directory_path + name if directory_path == "/" else f"{directory_path}/{name}"


# Flags under which ``open`` may create, truncate or write.  ``O_TMPFILE`` includes ``O_DIRECTORY``'s bit; only its
# own bit is taken here, so that a plain ``O_DIRECTORY`` open is not taken for one that makes a file.
_TMPFILE_BIT = getattr(os, "O_TMPFILE", 0) & ~getattr(os, "O_DIRECTORY", 0)
_CHANGING_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_EXCL | _TMPFILE_BIT


def _held_directory(fake_os, path, dir_fd, method: Callable | None):
    """The directory held open as ``dir_fd`` and its path, when pyfakefs's answer for its entry ``path`` is that
    directory's alone.

    That is: root, on an emulated Linux with no module skipped, asking about a plain name (no slash, not ``.``
    or ``..``) in a directory which is still where its path leads (pyfakefs joins the directory's path and the
    name and resolves that from the root: the same objects, then), and ``method`` taking ``dir_fd`` as
    pyfakefs sees it.  ``None`` otherwise.
    """
    from pyfakefs.fake_file import FakeDirectory
    from pyfakefs.helpers import is_root

    fs = fake_os.filesystem
    if (
        type(path) is not str
        or "/" in path
        or path in ("", ".", "..")
        or fake_os.use_original
        or not is_root()
        or fs.is_windows_fs
        or fs.is_macos
        or not fs.is_case_sensitive
        or (fs.has_patcher and fs.patcher.skip_names)
        or (method is not None and method not in fake_os.supports_dir_fd)
    ):
        return None
    try:
        directory = fs.get_open_file(dir_fd).get_object()
    except OSError:
        return None
    where = _attached_path(directory, fs.root) if type(directory) is FakeDirectory else None
    return None if where is None else (directory, where)


def _held_entry(fake_os, method: Callable | None, path, dir_fd):
    """The directory held open as ``dir_fd``, its path (:func:`_held_directory`) and its entry ``path``, which
    exists; else ``None``."""
    held = _held_directory(fake_os, path, dir_fd, method)
    found = None if held is None else held[0].entries.get(path)
    return None if found is None else (*held, found)


def _opening_held(original: Callable) -> Callable:
    """pyfakefs's ``os.open``, with two cases taken straight: root reading a name in a directory it holds open, and
    root creating a new file there exclusively.

    That is how the scanner opens every file and directory it reads (``open(name, O_RDONLY | O_NOFOLLOW | ...,
    dir_fd=fd)``) and how the writer stages every file it writes (``O_WRONLY | O_CREAT | O_EXCL``); pyfakefs
    resolves the joined path from the root about eight times to do either.  Here the name is looked up once
    (:func:`_held_directory`), and what pyfakefs's ``open`` does for that case is done, in its order, with its
    own classes:

    - an existing directory gets a ``FakeDirWrapper``;
    - an existing regular file is marked ``opened_as`` the joined path and gets a read-only binary raw
      ``FakeBinaryFileWrapper``;
    - a new file is made as ``create_file_internally`` makes it (a ``FakeFile`` of mode 0666 less the umask,
      added to the directory, its initial contents empty), marked ``opened_as`` and given a writable wrapper;

    and a file then has its permission bits set to ``mode`` and its ``st_ctime`` touched (pyfakefs's ``open``
    calls ``chmod`` on the file it opened).  Anything else (a link, a special file, a name that exists under
    ``O_EXCL``, truncating or appending, ``O_DIRECTORY`` on a file, and whatever :func:`_held_directory`
    leaves out) is pyfakefs's ``open`` itself, errors included.
    """
    import stat as stat_module

    from pyfakefs.fake_file import FakeBinaryFileWrapper, FakeDirectory, FakeDirWrapper, FakeFile
    from pyfakefs.helpers import PERM_ALL, PERM_DEF_FILE, _OpenModes, now

    reading = _OpenModes(
        must_exist=True, can_read=True, can_write=False, truncate=False, append=False, must_not_exist=False
    )
    directory_flag = getattr(os, "O_DIRECTORY", 0)
    creating = os.O_CREAT | os.O_EXCL
    not_creating = _CHANGING_FLAGS & ~(creating | os.O_WRONLY | os.O_RDWR) | directory_flag

    def open(self, path, flags, mode=None, *, dir_fd=None):  # noqa: A001 - it stands in for os.open
        if dir_fd is None:
            return original(self, path, flags, mode, dir_fd=dir_fd)
        fs = self.filesystem
        if flags & creating == creating and not flags & not_creating and flags & (os.O_WRONLY | os.O_RDWR):
            held_directory = _held_directory(self, path, dir_fd, self.open)
            if held_directory is None or path in held_directory[0].entries:
                return original(self, path, flags, mode, dir_fd=dir_fd)
            directory, joined = held_directory[0], _joined(held_directory[1], path)
            if joined == fs.devnull:
                return original(self, path, flags, mode, dir_fd=dir_fd)
            made = FakeFile(path, (stat_module.S_IFREG | PERM_DEF_FILE) & ~fs.umask, filesystem=fs)
            directory.add_entry(made)
            made.set_initial_contents("")
            made.opened_as = joined
            modes = _OpenModes(
                must_exist=False,
                can_read=not flags & os.O_WRONLY,
                can_write=True,
                truncate=False,
                append=False,
                must_not_exist=True,
            )
            return _wrapped(self, made, joined, modes, True, mode)
        held = None if flags & _CHANGING_FLAGS else _held_entry(self, self.open, path, dir_fd)
        if held is None:
            return original(self, path, flags, mode, dir_fd=dir_fd)
        directory, where, found = held
        joined = _joined(where, path)
        kind = stat_module.S_IFMT(found.st_mode)
        if joined == fs.devnull:
            return original(self, path, flags, mode, dir_fd=dir_fd)
        if kind == stat_module.S_IFDIR and type(found) is FakeDirectory:
            wrapper = FakeDirWrapper(found, joined, fs)
            wrapper.filedes = fs.add_open_file(wrapper)
            return wrapper.filedes
        if kind != stat_module.S_IFREG or flags & directory_flag:
            return original(self, path, flags, mode, dir_fd=dir_fd)
        found.opened_as = joined
        return _wrapped(self, found, joined, reading, False, mode)

    def _wrapped(fake_os, file_object, joined: str, modes, writable: bool, mode: int | None) -> int:
        """The descriptor of a raw binary wrapper of ``file_object``, as ``FakeFileOpen`` makes it; then ``chmod``
        to ``mode`` (by default 0777 less the umask, as pyfakefs's ``open`` has it)."""
        fs = fake_os.filesystem
        if mode is None:
            mode = 0o777 & ~fake_os._umask()
        opened = FakeBinaryFileWrapper(
            file_object,
            joined,
            open_modes=modes,
            allow_update=writable,
            delete_on_close=False,
            filesystem=fs,
            newline=None,
            binary=True,
            closefd=True,
            encoding=None,
            errors=None,
            buffering=-1,
            raw_io=True,
            opened_as_fd=False,
        )
        opened.filedes = fs.add_open_file(opened)
        file_object.st_mode = (file_object.st_mode & ~PERM_ALL) | (mode & PERM_ALL)
        file_object.st_ctime = now()
        return opened.filedes

    return open


def _statting_held(original: Callable) -> Callable:
    """pyfakefs's ``os.stat``, with one case taken straight: root's ``stat`` of a name in a directory it holds open.

    pyfakefs answers a copy of the entry's ``stat_result``; so does this, for a name :func:`_held_entry` finds,
    unless it is a link to follow.  Anything else is pyfakefs's ``stat`` itself, errors included.
    """
    import stat as stat_module

    def stat(self, path, *, dir_fd=None, follow_symlinks=True):
        held = None if dir_fd is None else _held_entry(self, self.stat, path, dir_fd)
        if held is None or (follow_symlinks and stat_module.S_ISLNK(held[2].st_mode)):
            return original(self, path, dir_fd=dir_fd, follow_symlinks=follow_symlinks)
        return held[2].stat_result.copy()

    return stat


def _replacing_held(original: Callable) -> Callable:
    """pyfakefs's ``os.replace``, with one case taken straight: root replacing a file by a file, by plain names in
    directories it holds open on one device (how the writer publishes every file it writes).

    What pyfakefs's ``replace`` does for that case is done, in its order: the file replaced (if any) is
    removed from its directory, then the file moves (``_do_rename``: out of the old directory, renamed, into
    the new one).  Anything else (a link, a directory, the same file under two names, one name for both,
    two devices, and whatever :func:`_held_directory` leaves out) is pyfakefs's ``replace`` itself.
    """
    import stat as stat_module

    def replace(self, src, dst, *, src_dir_fd=None, dst_dir_fd=None):
        if src_dir_fd is None or dst_dir_fd is None:
            return original(self, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        held = _held_entry(self, None, src, src_dir_fd)
        held_into = _held_directory(self, dst, dst_dir_fd, None)
        if held is None or held_into is None:
            return original(self, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        source_dir, _, moving = held
        into = held_into[0]
        replaced = into.entries.get(dst)
        if (
            not stat_module.S_ISREG(moving.st_mode)
            or (replaced is not None and (replaced is moving or not stat_module.S_ISREG(replaced.st_mode)))
            or (source_dir is into and src == dst)
            or source_dir.st_dev != into.st_dev
        ):
            return original(self, src, dst, src_dir_fd=src_dir_fd, dst_dir_fd=dst_dir_fd)
        if replaced is not None:
            into.remove_entry(dst)
        self.filesystem._do_rename(source_dir, src, into, dst)
        return None

    return replace


def _unlinking_held(original: Callable) -> Callable:
    """pyfakefs's ``os.unlink``, with one case taken straight: root removing a regular file by its plain name in a
    directory it holds open (how the writer removes its staging files, and rollback what it undoes).

    pyfakefs's ``unlink`` of a regular file comes down to removing the entry from its directory
    (``remove_entry``); so does this.  Anything else (a link, a directory, a missing name, and whatever
    :func:`_held_directory` leaves out) is pyfakefs's ``unlink`` itself, errors included.
    """
    import stat as stat_module

    def unlink(self, path, *, dir_fd=None):
        held = None if dir_fd is None else _held_entry(self, self.unlink, path, dir_fd)
        if held is None or not stat_module.S_ISREG(held[2].st_mode):
            return original(self, path, dir_fd=dir_fd)
        held[0].remove_entry(path)
        return None

    return unlink
