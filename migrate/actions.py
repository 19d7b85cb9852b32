"""The actions of a plan, as values: what ``apply`` does, and what undoes it.

Each action has a stable JSON form (``as_dict``, part of the plan document
and of the journal) and, where it changes the node, the action that undoes
it (``reverse()``, Alembic's model).  Pure: no I/O.
"""

from __future__ import annotations

import attrs


@attrs.frozen
class CreateFile:
    """Publish a copy of ``source`` at ``path`` with the policy mode and the source's owner."""

    path: str
    source: str
    mode: int
    uid: int
    gid: int
    sha256: str
    kind = "create-file"

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.kind,
            "path": self.path,
            "source": self.source,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "sha256": self.sha256,
        }

    def reverse(self) -> RemoveFile:
        return RemoveFile(path=self.path, sha256=self.sha256)


@attrs.frozen
class RemoveFile:
    """Remove ``path``, which must still hold the bytes the migration wrote (``sha256``)."""

    path: str
    sha256: str
    kind = "remove-file"

    def as_dict(self) -> dict[str, object]:
        return {"action": self.kind, "path": self.path, "sha256": self.sha256}


@attrs.frozen
class RemoveTemp:
    """Remove a staging file left by an interrupted run of this tool."""

    path: str
    kind = "remove-temp"

    def as_dict(self) -> dict[str, object]:
        return {"action": self.kind, "path": self.path}


@attrs.frozen
class RetireSetting:
    """Delete one line that sets the retired ``EnableServerEkuUpload`` switch."""

    path: str
    setting: str
    old_value: str
    line: int
    kind = "retire-setting"

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.kind,
            "path": self.path,
            "setting": self.setting,
            "old_value": self.old_value,
            "line": self.line,
        }

    def reverse(self) -> RestoreConfig:
        return RestoreConfig(path=self.path)


@attrs.frozen
class AddSetting:
    """State a setting at the end of the configuration."""

    path: str
    setting: str
    value: str
    kind = "add-setting"

    def as_dict(self) -> dict[str, object]:
        return {"action": self.kind, "path": self.path, "setting": self.setting, "value": self.value}

    def reverse(self) -> RestoreConfig:
        return RestoreConfig(path=self.path)


@attrs.frozen
class RestoreConfig:
    """Put back the configuration saved before the migration changed it."""

    path: str
    kind = "restore-config"

    def as_dict(self) -> dict[str, object]:
        return {"action": self.kind, "path": self.path}


@attrs.frozen
class CompleteJournal:
    """Record that an interrupted migration has nothing left to do."""

    kind = "complete-journal"

    def as_dict(self) -> dict[str, object]:
        return {"action": self.kind}


@attrs.frozen
class Previous:
    """What a client file held before an install replaced it: digest, mode and owner.

    Its bytes are kept in the state directory (:func:`migrate.policy.previous_name`), never in the journal.
    """

    sha256: str
    mode: int
    uid: int
    gid: int

    def as_dict(self) -> dict[str, object]:
        return {"sha256": self.sha256, "mode": f"{self.mode:04o}", "uid": self.uid, "gid": self.gid}


@attrs.frozen
class ReplaceFile:
    """Publish new bytes at the client file ``path`` (``sha256``), with ``mode`` and owner, replacing ``previous``.

    ``previous`` is None when nothing was there.  Its reverse puts back the
    previous bytes, mode and owner (or removes the file).
    """

    path: str
    mode: int
    uid: int
    gid: int
    sha256: str
    previous: Previous | None
    kind = "replace-file"

    def as_dict(self) -> dict[str, object]:
        return {
            "action": self.kind,
            "path": self.path,
            "mode": f"{self.mode:04o}",
            "uid": self.uid,
            "gid": self.gid,
            "sha256": self.sha256,
            "previous": None if self.previous is None else self.previous.as_dict(),
        }

    def reverse(self) -> RestoreFile | RemoveFile:
        if self.previous is None:
            return RemoveFile(path=self.path, sha256=self.sha256)
        return RestoreFile(path=self.path, sha256=self.sha256, previous=self.previous)


@attrs.frozen
class RestoreFile:
    """Put back at ``path`` the bytes, mode and owner it held before an install, if it still holds the install's (``sha256``)."""

    path: str
    sha256: str
    previous: Previous
    kind = "restore-file"

    def as_dict(self) -> dict[str, object]:
        return {"action": self.kind, "path": self.path, "sha256": self.sha256, "previous": self.previous.as_dict()}


Action = CreateFile | RemoveTemp | RetireSetting | AddSetting | CompleteJournal
CONFIG_ACTIONS = (RetireSetting, AddSetting)
