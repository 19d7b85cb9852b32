"""The install journal as a typed record: what ``install-client`` did, validated before anything obeys it.

An install keeps its own journal beside the migration's
(``persistent/.cert-migration/install.json``), so that the two coexist: the
migration's journal says how to return to X15.4, the install's how to return
to the client store the install replaced.  ``rollback`` undoes the newest
operation first: an install journal, when there is one, else the migration's.

Its bytes are input like any other: :func:`load` checks every field against
the node's layout, the policy and the node as it is now before an action is
built from it, and refuses the whole journal otherwise:

* every path is a client file of this layout, each at most once;
* every mode (the new one and the previous one) grants no bit the policy's
  mode for that file does not, and for a key no group or other bit its
  counterpart (``privkey.pem``) lacks now;
* every owner is the counterpart's owner as it is now, or root;
* it holds digests, never contents: the previous bytes are files beside it.

Pure: bytes, a layout and the scanned files in, an :class:`InstallJournal` (or the reason) out.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from . import policy
from .actions import Previous, RemoveFile, ReplaceFile, RestoreFile
from .model import FileState, Layout
from .record import INSTALL_FORMAT_VERSION, Invalid, _fields, _int, _is_digest, _text, _timestamp, managed_paths

FORMAT_VERSION = INSTALL_FORMAT_VERSION
OPERATION = "install-client"
# applying: the install did not finish; applied: it did; rolling-back: a rollback of it did not finish.
APPLYING, APPLIED, ROLLING_BACK = "applying", "applied", "rolling-back"
STATES = (APPLYING, APPLIED, ROLLING_BACK)

JsonObject = dict[str, Any]


@attrs.frozen
class InstallEntry:
    """One replacement of a client file and whether it is known to be done."""

    action: ReplaceFile
    done: bool = False

    def as_dict(self) -> dict[str, object]:
        return {**self.action.as_dict(), "done": self.done}


@attrs.frozen
class InstallJournal:
    """An install's record: its state, the fingerprint it planned on, and its entries."""

    tool: str
    state: str
    started: str
    fingerprint: str
    entries: tuple[InstallEntry, ...] = ()
    finished: str | None = None

    @property
    def applied(self) -> bool:
        return self.state == APPLIED

    @property
    def actions(self) -> tuple[ReplaceFile, ...]:
        return tuple(e.action for e in self.entries)

    def as_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "format_version": FORMAT_VERSION,
            "operation": OPERATION,
            "tool": self.tool,
            "state": self.state,
            "started": self.started,
            "fingerprint": self.fingerprint,
            "actions": [e.as_dict() for e in self.entries],
        }
        if self.finished is not None:
            doc["finished"] = self.finished
        return doc

    def to_bytes(self) -> bytes:
        data = json.dumps(self.as_dict(), indent=1, sort_keys=True).encode() + b"\n"
        if len(data) > policy.MAX_JOURNAL_BYTES:  # pragma: no cover - three entries of bounded size
            raise ValueError(f"an install journal of {len(data)} bytes is over the limit")
        return data

    def mark_done(self, actions: Iterable[ReplaceFile]) -> InstallJournal:
        done = set(actions)
        return attrs.evolve(
            self, entries=tuple(InstallEntry(e.action, True) if e.action in done else e for e in self.entries)
        )

    def undo(self) -> tuple[RestoreFile | RemoveFile, ...]:
        """The reverses of every entry, newest first (done or not: each names the bytes it expects)."""
        return tuple(e.action.reverse() for e in reversed(self.entries))


def load(data: bytes | None, layout: Layout, files: Mapping[str, FileState]) -> InstallJournal:
    """The install journal in ``data``, validated against ``layout`` and the scanned ``files``; :class:`Invalid` otherwise."""
    if data is None:
        raise Invalid("it cannot be read")
    if len(data) > policy.MAX_JOURNAL_BYTES:
        raise Invalid(f"it is over {policy.MAX_JOURNAL_BYTES} bytes, larger than any journal this tool writes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise Invalid("it is not JSON") from None
    _fields(
        doc,
        "the install journal",
        required={"format_version", "operation", "tool", "state", "started", "fingerprint", "actions"},
        optional={"finished"},
    )
    if doc["format_version"] != FORMAT_VERSION or type(doc["format_version"]) is not int:
        raise Invalid(f"its format version is not {FORMAT_VERSION} (written by another version of the tool?)")
    if doc["operation"] != OPERATION:
        raise Invalid("it is not the journal of an install")
    if doc["state"] not in STATES:
        raise Invalid("its state is none of applying, applied, rolling-back")
    fingerprint = doc["fingerprint"]
    if not (isinstance(fingerprint, str) and fingerprint.startswith("sha256:") and _is_digest(fingerprint[7:])):
        raise Invalid("its fingerprint is not a sha256 digest")
    if not isinstance(doc["actions"], list) or not doc["actions"]:
        raise Invalid("its actions are not a list of at least one action")
    entries = tuple(_entry(item, layout, files) for item in doc["actions"])
    if len({e.action.path for e in entries}) != len(entries):
        raise Invalid("it names the same file twice")
    return InstallJournal(
        tool=_text(doc, "tool", 200),
        state=doc["state"],
        started=_timestamp(doc, "started"),
        fingerprint=fingerprint,
        entries=entries,
        finished=_timestamp(doc, "finished") if "finished" in doc else None,
    )


def allowed(rule: policy.FileRule, counterpart: FileState | None, mode: int, uid: int, gid: int) -> str | None:
    """Why a client file may not be given ``mode`` and this owner (None when it may): the policy, and its counterpart now."""
    if mode & ~rule.mode:
        return "a mode wider than the policy's"
    if rule.secret and counterpart is not None and counterpart.mode is not None and mode & 0o077 & ~counterpart.mode:
        return "a key's mode granting a bit its counterpart does not"
    owners = {(0, 0)}
    if counterpart is not None and counterpart.uid is not None and counterpart.gid is not None:
        owners.add((counterpart.uid, counterpart.gid))
    if (uid, gid) not in owners:
        return "an owner that is neither root nor its counterpart's"
    return None


def _mode(doc: JsonObject) -> int:
    mode = doc["mode"]
    if not (isinstance(mode, str) and len(mode) == 4 and all(c in "01234567" for c in mode)):
        raise Invalid("a mode is not four octal digits")
    return int(mode, 8)


def _entry(item: object, layout: Layout, files: Mapping[str, FileState]) -> InstallEntry:
    if not isinstance(item, dict) or item.get("action") != ReplaceFile.kind:
        raise Invalid("an action is not a replace-file action")
    _fields(
        item,
        "a replace-file action",
        required={"action", "path", "mode", "uid", "gid", "sha256", "previous", "done"},
    )
    path = item["path"]
    if not isinstance(path, str) or path not in managed_paths(layout):
        raise Invalid("a replace-file action names a path that is not a client file of this node")
    rule = policy.RULES[path.rsplit("/", 1)[-1]]
    assert rule.counterpart is not None  # a client file (managed_paths)
    counterpart = files.get(rule.counterpart)
    mode, uid, gid = _mode(item), _int(item, "uid", 0, 2**32 - 2), _int(item, "gid", 0, 2**32 - 2)
    problem = allowed(rule, counterpart, mode, uid, gid)
    if problem is not None:
        raise Invalid(f"a replace-file action gives {problem}")
    sha256 = item["sha256"]
    if not _is_digest(sha256):
        raise Invalid("a replace-file action's sha256 is not a sha256 digest")
    previous = None
    if item["previous"] is not None:
        before = item["previous"]
        _fields(before, "a previous file record", required={"sha256", "mode", "uid", "gid"})
        if not _is_digest(before["sha256"]):
            raise Invalid("a previous file record's sha256 is not a sha256 digest")
        previous = Previous(
            sha256=before["sha256"],
            mode=_mode(before),
            uid=_int(before, "uid", 0, 2**32 - 2),
            gid=_int(before, "gid", 0, 2**32 - 2),
        )
        problem = allowed(rule, counterpart, previous.mode, previous.uid, previous.gid)
        if problem is not None:
            raise Invalid(f"a previous file record gives {problem}")
    if type(item["done"]) is not bool:
        raise Invalid("an action's done flag is not true or false")
    action = ReplaceFile(path=path, mode=mode, uid=uid, gid=gid, sha256=sha256, previous=previous)
    return InstallEntry(action, item["done"])
