"""The errors a user can meet, each with a stable id and a hint.

Every error the command line reports is a :class:`MigrateError`: ``cli.main``
prints its one line and turns it into an exit code.  Nothing else in the
package prints or exits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .model import Finding


class MigrateError(Exception):
    """Base of every error meant for a user: a stable kebab-case id and a hint."""

    id: str = "migrate-error"

    def __init__(self, message: str, *, hint: str = "", path: str | None = None, id: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.path = path
        if id is not None:
            self.id = id

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message as one line: ``error[id]: message (path) -- hint: hint``."""
        where = f" ({self.path})" if self.path else ""
        hint = f" -- hint: {self.hint}" if self.hint else ""
        return f"error[{self.id}]: {self.message}{where}{hint}"

    def as_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "message": self.message, "path": self.path, "hint": self.hint}


class CertError(MigrateError):
    """A certificate, key or PEM file that cannot be used."""

    id = "cert-invalid"


class ConfigError(MigrateError):
    """The configuration text cannot be read or edited safely."""

    id = "config-invalid"


class NodeError(MigrateError):
    """The node root is unusable: missing, not a directory, unsafe layout."""

    id = "node-invalid"


class BlockedError(MigrateError):
    """Precheck found blockers: the command refuses to change the node."""

    id = "blocked"

    def __init__(
        self,
        message: str,
        *,
        findings: Iterable[Finding] = (),
        hint: str = "",
        path: str | None = None,
        id: str | None = None,
    ):
        super().__init__(message, hint=hint, path=path, id=id)
        self.findings = tuple(findings)


class PlanError(MigrateError):
    """A saved plan is unreadable, stale, or does not match the node."""

    id = "plan-stale"


class LockError(MigrateError):
    """Another run holds the node's migration lock."""

    id = "lock-held"


class PrivilegeError(MigrateError):
    """The command must run as root to set owners."""

    id = "not-root"


class ApplyError(MigrateError):
    """A write failed during apply; the node was returned to its previous state."""

    id = "apply-failed"


class RollbackError(MigrateError):
    """Rollback refused or failed."""

    id = "rollback-refused"


class JournalError(MigrateError):
    """The migration journal is unreadable or does not match the node."""

    id = "journal-invalid"
