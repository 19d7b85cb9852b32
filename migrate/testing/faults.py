"""Fail the migration's Nth file-system call, the way SQLite's test suite fails its Nth I/O.

While :func:`inject` is active, every ``os`` call that the migration's reader
and writer make (:data:`PATCHED_MODULES`) goes through one counter, in
pyfakefs and on the real disk alike.  Nothing is listed by hand: any call of
the ``os`` module counts, except the few that ask about the process rather
than the disk (:data:`PROCESS_CALLS`), and so does ``fcntl.flock``.  A
clean run counts the calls (:func:`count_calls`); run again with ``at=N`` and
a fault from :data:`FAULTS`, and call N:

- fails with ``EIO``, ``ENOSPC``, ``EACCES`` or ``EROFS`` (the call does not
  happen, except that a failed ``close`` still releases its descriptor, as on
  Linux); with ``persistent=True`` every later selected call fails too;
- is a ``power-cut``: :class:`PowerCut` is raised there and from every later
  call, so no cleanup reaches the disk; a ``write`` is torn first (half of
  its bytes land);
- is a ``sigkill``: the process kills itself with ``SIGKILL`` (a ``write`` is
  torn first).  For real processes only: it ends the Python process.

``where`` narrows which calls are counted (for example only those that write:
:attr:`Call.writes`); ``observe`` is called before every call, with the
disk as the call finds it, so a test can check an invariant at every point.
From ``observe``, :meth:`Injector.tear` lands what a power cut at that call
would (half of a write's bytes), and inside :meth:`Injector.pause` calls go
through uncounted: the crash rehearsal judges each stop that way.

Usage::

    calls = count_calls(lambda: writer.apply(layout_a))
    for n in range(1, len(calls) + 1):
        with inject(at=n, fault="power-cut"), contextlib.suppress(PowerCut):
            writer.apply(layout_n)
        ...  # judge the tree left at layout_n
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
from collections.abc import Callable, Iterator

import attrs

# The modules that touch the disk during a migration; each has its own ``os`` (and journal its ``fcntl``).
PATCHED_MODULES = ("migrate.scan", "migrate.dirs", "migrate.fsops", "migrate.journal", "migrate.writing")

# ``os`` calls that ask about the process, not the file system: never counted, never failed.
PROCESS_CALLS = frozenset(
    {
        "cpu_count",
        "fsdecode",
        "fsencode",
        "fspath",
        "get_terminal_size",
        "getegid",
        "getenv",
        "geteuid",
        "getgid",
        "getgroups",
        "getpid",
        "getppid",
        "getuid",
        "strerror",
        "urandom",
    }
)

ERRORS = {"eio": errno.EIO, "enospc": errno.ENOSPC, "eacces": errno.EACCES, "erofs": errno.EROFS}
FAULTS = (*ERRORS, "power-cut", "sigkill")

# Calls that change the disk whatever their arguments; ``open`` writes when its flags say so.
_WRITING_CALLS = frozenset(
    {
        "chmod",
        "chown",
        "ftruncate",
        "link",
        "mkdir",
        "mkfifo",
        "mknod",
        "remove",
        "rename",
        "replace",
        "rmdir",
        "symlink",
        "truncate",
        "unlink",
        "utime",
        "write",
    }
)
_OPEN_WRITES = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


class PowerCut(BaseException):
    """The power went off: not an ``Exception``, so no ``except Exception`` cleanup runs after it."""


@attrs.frozen
class Call:
    """One file-system call: its number among the counted calls, its name and what it acted on."""

    number: int
    name: str
    target: str
    writes: bool

    def __str__(self) -> str:
        return f"#{self.number} {self.name}({self.target})"

    def as_dict(self) -> dict:
        return {"number": self.number, "call": self.name, "target": self.target, "writes": self.writes}


@attrs.define
class Injector:
    """The counter and the fault of one :func:`inject` block."""

    at: int | None
    fault: str | None
    where: Callable[[Call], bool] | None
    persistent: bool
    observe: Callable[[Call], None] | None
    calls: list[Call] = attrs.field(factory=list)
    tripped: Call | None = None
    _fds: dict[int, str] = attrs.field(factory=dict)
    # Bookkeeping, not parameters: while ``paused``, calls are made as they come (not counted, observed or
    # failed); while ``observe`` runs, ``_observed`` holds the call, the function and its arguments.
    paused: bool = attrs.field(default=False, init=False)
    _observed: tuple | None = attrs.field(default=None, init=False, repr=False)

    def tear(self) -> bool:
        """While ``observe`` runs: make land what a power cut at the call observed lets land (half of a write's
        bytes, as :meth:`_trip` does); whether anything landed."""
        if self._observed is None:
            raise RuntimeError("tear() is for an observe callback, while it runs")
        return _tear(*self._observed)

    @contextlib.contextmanager
    def pause(self) -> Iterator[None]:
        """Let calls through untouched for the ``with`` block (a crash rehearsal judging a stop in place)."""
        was, self.paused = self.paused, True
        try:
            yield
        finally:
            self.paused = was

    def call(self, name: str, real: Callable, args: tuple, kwargs: dict):
        if self.paused:
            return real(*args, **kwargs)
        if self.tripped is not None and self.fault == "power-cut":
            raise PowerCut(f"the power is off (it went at {self.tripped})")
        target = self._target(name, args, kwargs)
        writes = name in _WRITING_CALLS or (name == "open" and _open_flags(args, kwargs) & _OPEN_WRITES != 0)
        if self.where is not None and not self.where(Call(0, name, target, writes)):  # not numbered yet
            return self._run(name, real, args, kwargs, target)
        call = Call(len(self.calls) + 1, name, target, writes)
        self.calls.append(call)
        if self.observe is not None:
            self._observed = (call, real, args)
            try:
                self.observe(call)
            finally:
                self._observed = None
        if self.at is not None and (call.number == self.at or (self.persistent and call.number > self.at)):
            if self.tripped is None:
                self.tripped = call
            self._trip(call, real, args)
        return self._run(name, real, args, kwargs, target)

    def _run(self, name: str, real: Callable, args: tuple, kwargs: dict, target: str):
        result = real(*args, **kwargs)
        if name == "open":
            self._fds[result] = target
        elif name == "close" and args:
            self._fds.pop(args[0], None)
        return result

    def _trip(self, call: Call, real: Callable, args: tuple) -> None:
        if self.fault in ERRORS:
            code = ERRORS[self.fault]
            if call.name == "close" and args:
                with contextlib.suppress(OSError):
                    real(*args)
            raise OSError(code, f"{os.strerror(code)} (injected at {call})", call.target)
        _tear(call, real, args)
        if self.fault == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        raise PowerCut(f"power cut at {call}")

    def _target(self, name: str, args: tuple, kwargs: dict) -> str:
        if not args:
            return ""
        first = args[0]
        if isinstance(first, int) and not isinstance(first, bool):
            return self._fds.get(first, f"fd {first}")
        try:
            text = self._in(os.fsdecode(first), kwargs.get("src_dir_fd", kwargs.get("dir_fd")))
        except TypeError:
            return type(first).__name__
        if name in ("link", "rename", "replace", "symlink") and len(args) > 1:
            return f"{text} -> {self._in(os.fsdecode(args[1]), kwargs.get('dst_dir_fd', kwargs.get('dir_fd')))}"
        return text

    def _in(self, name: str, dir_fd: int | None) -> str:
        """``name`` as a path: joined to the path of the directory descriptor it is relative to."""
        if dir_fd is None or name.startswith("/"):
            return name
        return f"{self._fds.get(dir_fd, f'fd {dir_fd}').rstrip('/')}/{name}"


def _tear(call: Call, real: Callable, args: tuple) -> bool:
    """What a power cut at ``call`` lets land: half the bytes of a ``write`` (a torn write); whether anything did."""
    if call.name == "write" and len(args) >= 2 and len(args[1]) > 1:
        real(args[0], bytes(args[1])[: len(args[1]) // 2])
        return True
    return False


def _open_flags(args: tuple, kwargs: dict) -> int:
    flags = args[1] if len(args) > 1 else kwargs.get("flags", 0)
    return flags if isinstance(flags, int) else 0


class _Proxy:
    """Stands for a module (``os``, ``fcntl``) inside a patched module: its calls go through the injector."""

    def __init__(self, real, injector: Injector, skip: frozenset[str]) -> None:
        self._real = real
        self._injector = injector
        self._skip = skip

    def __getattr__(self, name: str):
        value = getattr(self._real, name)
        if name in self._skip or name.startswith("_") or not callable(value) or isinstance(value, type):
            return value
        injector, real = self._injector, self._real

        def call(*args, **kwargs):  # the module's function as it is when called (a test may replace it meanwhile)
            return injector.call(name, getattr(real, name), args, kwargs)

        self.__dict__[name] = call  # made once per name: the next lookup finds it without coming here
        return call


@contextlib.contextmanager
def inject(
    at: int | None = None,
    fault: str | None = None,
    *,
    where: Callable[[Call], bool] | None = None,
    persistent: bool = False,
    observe: Callable[[Call], None] | None = None,
) -> Iterator[Injector]:
    """Count the migration's file-system calls for the ``with`` block; call ``at`` meets ``fault``."""
    if (at is None) != (fault is None):
        raise ValueError("give both at= and fault=, or neither")
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; expected one of {', '.join(FAULTS)}")
    if at is not None and at < 1:
        raise ValueError("calls are numbered from 1")
    injector = Injector(at=at, fault=fault, where=where, persistent=persistent, observe=observe)
    saved = []
    try:
        for name in PATCHED_MODULES:
            module = importlib.import_module(name)
            for attr, skip in (("os", PROCESS_CALLS), ("fcntl", frozenset())):
                real = module.__dict__.get(attr)
                if real is None:
                    continue
                saved.append((module, attr, real))
                setattr(module, attr, _Proxy(real, injector, skip))
        yield injector
    finally:
        for module, attr, real in reversed(saved):
            setattr(module, attr, real)


def count_calls(run: Callable[[], object], *, where: Callable[[Call], bool] | None = None) -> list[Call]:
    """Run ``run`` once without a fault; the calls it made (the fault points of a later matrix)."""
    with inject(where=where) as injector:
        run()
    return list(injector.calls)
