"""Logging through structlog, loaded only when a record is emitted.

Modules log as they would with structlog (``log = logs.get_logger(__name__)``,
then ``log.info("file_created", path=...)``), but importing structlog costs
more than a whole ``plan`` does, and most commands emit nothing at the
default level.  So a record below the threshold the command line sets is
dropped here, and structlog is imported, and configured by the command line's
``setup``, only for the first record that passes.

Until :func:`configure` is called (a library caller, a test) every record is
handed to structlog, with whatever configuration its caller gave it.
"""

from __future__ import annotations

from collections.abc import Callable

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40  # the standard library's numbers, without importing logging

_threshold = 0
_setup: Callable | None = None


def configure(level: int, setup: Callable | None = None) -> None:
    """Drop records below ``level`` unseen; call ``setup(structlog)`` once, when structlog is first needed."""
    global _threshold, _setup
    _threshold, _setup = level, setup


def reset() -> None:
    """Forget :func:`configure`: every record goes to structlog, configured as its caller left it."""
    configure(0, None)


def _structlog():
    global _setup
    import structlog

    setup, _setup = _setup, None
    if setup is not None:
        setup(structlog)
    return structlog


class Logger:
    """A logger by name, with the methods of structlog's bound logger that this package uses."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def _emit(self, level: int, method: str, event: str, kw: dict) -> None:
        if level < _threshold:
            return
        getattr(_structlog().get_logger(self.name), method)(event, **kw)

    def debug(self, event: str, **kw) -> None:
        self._emit(DEBUG, "debug", event, kw)

    def info(self, event: str, **kw) -> None:
        self._emit(INFO, "info", event, kw)

    def warning(self, event: str, **kw) -> None:
        self._emit(WARNING, "warning", event, kw)

    def error(self, event: str, **kw) -> None:
        self._emit(ERROR, "error", event, kw)


def get_logger(name: str) -> Logger:
    return Logger(name)
