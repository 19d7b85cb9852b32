"""Forked children that report back: how the crash rehearsal judges each stop on its own copy of the fake disk.

A child made with :func:`_fork` inherits the parent's whole memory, pyfakefs's
file system included, so what it writes stays in its copy.  It runs one piece
of work, sends the result (or the exception) down a pipe with :mod:`pickle`,
and ends with ``_exit``, never running its parent's cleanup
(:func:`_end_child`); the parent waits for it and gets the result, or the
exception raised again (:func:`_receive`).

Private to :mod:`migrate.testing`: it uses :mod:`posix` directly (never
patched by pyfakefs: fork, pipes and ``_exit`` are the real process's).
"""

from __future__ import annotations

import contextlib
import pickle
import posix  # never patched: fork, pipes and _exit are the real process's
import sys
from collections.abc import Callable
from typing import NoReturn


def _can_fork() -> bool:
    """Whether the crash rehearsal may fork: POSIX, and no other thread that a child could inherit a lock from."""
    import threading

    return hasattr(posix, "fork") and threading.active_count() == 1


def _fork() -> int:
    """``fork``, with the standard streams flushed first so that no buffered output is written twice."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return posix.fork()


def _in_child(work: Callable[[], object]):
    """``work()`` run in a forked child, on the child's copy of the fake disk; its result, or its exception, here."""
    return _receive(*_start_child(work))


def _start_child(work: Callable[[], object]) -> tuple[int, int]:
    """Fork a child that runs ``work()`` on its own copy of the fake disk; the pipe to :func:`_receive` from, and its pid."""
    reader, report = posix.pipe()
    pid = _fork()
    if pid == 0:
        posix.close(reader)
        _end_child(report, work)
    posix.close(report)
    return reader, pid


def _end_child(report: int, work: Callable[[], object]) -> NoReturn:
    """In a forked child: run ``work``, send its result (or its exception) down ``report``, and end the process.

    The child never returns into its parent's code: whatever happens, it ends
    here, without running the parent's cleanup (``os._exit``).
    """
    code = 1
    try:
        try:
            message = pickle.dumps(("ok", work()))
        except BaseException as exc:  # noqa: B036 - every failure is the parent's to raise
            message = _pickled_failure(exc)
        view = memoryview(message)
        while view:
            view = view[posix.write(report, view) :]
        posix.close(report)
        code = 0
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        posix._exit(code)


def _pickled_failure(exc: BaseException) -> bytes:
    """``exc`` to raise again in the parent: itself when it survives pickling, else a RuntimeError with its traceback."""
    import traceback

    try:
        message = pickle.dumps(("raise", exc))
        pickle.loads(message)
        return message
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return pickle.dumps(("raise", RuntimeError(f"the crash rehearsal failed in a forked child:\n{text}")))


def _receive(reader: int, pid: int):
    """What the child ``pid`` sent down ``reader`` (after it ended): its result, or its exception raised here."""
    chunks = []
    try:
        while chunk := posix.read(reader, 1 << 16):
            chunks.append(chunk)
    finally:
        posix.close(reader)
        _, status = posix.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError(f"a child of the crash rehearsal ended without a report (wait status {status})")
    kind, value = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's, through our own pipe
    if kind == "raise":
        raise value
    return value
