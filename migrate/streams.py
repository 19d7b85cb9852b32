"""The standard streams, written so that no failure of theirs becomes a traceback.

The command line writes its report and its error lines through these: a full
disk, an I/O error or a closed pipe on stdout raises where the report is
written, not at exit; stderr that cannot be written is given up silently
(there is nowhere left to say anything).  Nothing here imports the rest of the
tool, so an error line can be printed even when a module of it cannot be loaded.
"""

from __future__ import annotations

import sys


class PlainError:
    """The one line and JSON object of a :class:`~migrate.errors.MigrateError`, for when errors.py cannot be loaded.

    Keep in step with ``MigrateError.one_line`` and ``as_dict``.
    """

    def __init__(self, id: str, message: str, hint: str) -> None:
        self.id, self.message, self.hint, self.path = id, message, hint, None

    def one_line(self) -> str:
        return f"error[{self.id}]: {self.message} -- hint: {self.hint}"

    def as_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "message": self.message, "path": self.path, "hint": self.hint}


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout and flush it: a full disk, an I/O error or a closed pipe raise here, not at exit."""
    out = sys.stdout
    if out is None:  # the process started without a descriptor 1
        import errno

        raise OSError(errno.EBADF, "stdout is closed")
    out.write(text)
    out.flush()


def silence_stdout() -> None:
    """After a failed write, point stdout's descriptor at /dev/null: the flush at exit cannot fail again."""
    import os

    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # captured, replaced or closed: no descriptor to point elsewhere
        return
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd)
    except OSError:
        pass
    finally:
        os.close(null)


def print_stderr(text: str) -> None:
    """``text`` on stderr; when stderr itself cannot be written there is nowhere left to say anything."""
    err = sys.stderr
    if err is None:
        return
    try:
        err.write(text if text.endswith("\n") else text + "\n")
        err.flush()
    except (OSError, ValueError):
        pass


def json_record(id: str, message: str, hint: str, path: str | None = None, **extra: object) -> str:
    """One error as one JSON line, in the shape of the log records ``--log-format json`` writes."""
    import json
    from datetime import UTC, datetime

    record: dict[str, object] = {
        "level": "error",
        "event": "error",
        "id": id,
        "message": message,
        "path": path,
        "hint": hint,
    }
    record.update(extra)
    record["timestamp"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return json.dumps(record)
