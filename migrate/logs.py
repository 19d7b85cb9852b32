"""Logging through structlog, loaded only when a record is emitted.

Modules log as they would with structlog (``log = logs.get_logger(__name__)``,
then ``log.info("file_created", path=...)``), but importing structlog costs
more than a whole ``plan`` does, and most commands emit nothing at the
default level.  So a record below the threshold the command line sets is
dropped here, and structlog is imported, and configured by the command line's
``setup``, only for the first record that passes.

Until :func:`configure` is called, the package is a quiet library: a record
goes to the standard library's :mod:`logging`, under the module's name
(``migrate.writer``...), where a :class:`logging.NullHandler` on ``migrate``
keeps it silent until the caller configures logging (``logging.basicConfig``,
or structlog's standard-library integration).  Nothing is ever written to
stdout.  ``configure(level)`` with no ``setup`` hands records at or above
``level`` to structlog as its caller set it up.

Within :func:`warnings_as_records` (the command line runs every command in
it), a Python warning that the filters let through, a dependency's
deprecation say, is a ``python_warning`` record like any other: JSON logs
stay JSON lines, and nothing reaches stderr raw.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

DEBUG, INFO, WARNING, ERROR = 10, 20, 30, 40  # the standard library's numbers, without importing logging

_threshold = 0
_setup: Callable | None = None
_configured = False
_quiet: object = None  # the NullHandler on ``migrate``, once the first unconfigured record is emitted


def configure(level: int, setup: Callable | None = None) -> None:
    """Drop records below ``level`` unseen; call ``setup(structlog)`` once, when structlog is first needed."""
    global _threshold, _setup, _configured
    _threshold, _setup, _configured = level, setup, True


def reset() -> None:
    """Forget :func:`configure`: the package is a quiet library again (records go to :mod:`logging`)."""
    global _threshold, _setup, _configured
    _threshold, _setup, _configured = 0, None, False


def _stdlib(name: str, level: int, event: str, kw: dict) -> None:
    """An unconfigured record: to :mod:`logging`, silent unless the caller configured it."""
    global _quiet
    import logging

    if _quiet is None:
        _quiet = logging.NullHandler()
        logging.getLogger(__name__.partition(".")[0]).addHandler(_quiet)
    logger = logging.getLogger(name)
    if logger.isEnabledFor(level):
        fields = " ".join(f"{key}={value}" for key, value in kw.items())
        logger.log(level, "%s", f"{event} {fields}".rstrip(), extra={"event": event, "fields": kw})


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
        if not _configured:
            _stdlib(self.name, level, event, kw)
            return
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


@contextlib.contextmanager
def warnings_as_records() -> Iterator[None]:
    """Show each Python warning as a ``python_warning`` record (level warning) instead of text on stderr.

    Only how a warning is shown changes: the filters decide, as before,
    whether it is shown at all, once, or raised as an error.  The record
    names the warning's class, its message and where it was raised, never
    the source line.
    """
    import warnings

    shown = warnings.showwarning

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        _warnings.warning("python_warning", category=category.__name__, message=str(message), origin=f"{filename}:{lineno}")

    warnings.showwarning = show
    try:
        yield
    finally:
        warnings.showwarning = shown


_warnings = Logger("py.warnings")  # the standard library's name for them (logging.captureWarnings)
