"""The migration journal as a typed record: what ``apply`` did, validated before anything obeys it.

The journal lives in the node (``persistent/.cert-migration/journal.json``)
and is read back by ``apply`` (to resume) and ``rollback`` (to undo).  Its
bytes are input like any other: :func:`load` checks every field against the
node's layout and the policy before a single action is built from it, and a
journal that fails is refused whole, with the reason.

* Its entries are the plan's own action values (:mod:`migrate.actions`),
  each with a ``done`` flag; rollback is their ``reverse()``, newest first.
* Every path is exactly one the layout manages (a client file, its
  counterpart, the configuration): never absolute unless the layout itself
  puts that file outside the node, never ``..``, never anything else.
* It holds digests and ids, never contents: the configuration's copy is a
  file beside it (checked against ``sha256_before``), and its size is bounded
  by construction (:data:`migrate.policy.MAX_JOURNAL_BYTES`).
* It says nothing about modes or owners that rollback would restore: those
  come from the file as it is.
* A journal of format 1 (expressway-migrate 0.1.0) is read into this form,
  so that a node migrated by that version can still be rolled back.

Pure: bytes and a layout in, a :class:`Journal` (or the reason) out.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import attrs

from . import policy
from .actions import CONFIG_ACTIONS, AddSetting, CreateFile, RemoveFile, RestoreConfig, RetireSetting

if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TypeGuard

    from .model import Layout

# A JSON object as ``json.loads`` returns it: its values are checked one by one before they are used.
JsonObject = dict[str, Any]

FORMAT_VERSION = 2
INSTALL_FORMAT_VERSION = 1  # the install journal's (migrate.install_record), versioned apart from this one
MAX_VALUE = policy.MAX_SHOWN_VALUE + 1  # a retired setting's old value as the plan shows it: cut, with an ellipsis
APPLYING, APPLIED = "applying", "applied"

Recorded = CreateFile | RetireSetting | AddSetting


@attrs.frozen
class Entry:
    """One planned action and whether it is known to be done."""

    action: Recorded
    done: bool = False

    def as_dict(self) -> dict[str, object]:
        return {**self.action.as_dict(), "done": self.done}


@attrs.frozen
class ConfigRecord:
    """The configuration's digests before and after the migration edits it."""

    sha256_before: str
    sha256_after: str

    def as_dict(self) -> dict[str, str]:
        return {"sha256_before": self.sha256_before, "sha256_after": self.sha256_after}


@attrs.frozen
class Journal:
    """A migration's record: its state, the fingerprint it planned on, the configuration's digests, its entries."""

    tool: str
    state: str
    started: str
    fingerprint: str
    config: ConfigRecord | None = None
    entries: tuple[Entry, ...] = ()
    finished: str | None = None

    @property
    def applied(self) -> bool:
        return self.state == APPLIED

    def as_dict(self) -> dict[str, object]:
        doc: dict[str, object] = {
            "format_version": FORMAT_VERSION,
            "tool": self.tool,
            "state": self.state,
            "started": self.started,
            "fingerprint": self.fingerprint,
            "config": None if self.config is None else self.config.as_dict(),
            "actions": [e.as_dict() for e in self.entries],
        }
        if self.finished is not None:
            doc["finished"] = self.finished
        return doc

    def to_bytes(self) -> bytes:
        data = json.dumps(self.as_dict(), indent=1, sort_keys=True).encode() + b"\n"
        if len(data) > policy.MAX_JOURNAL_BYTES:  # pragma: no cover - bounded by construction (tests prove it)
            raise ValueError(f"a journal of {len(data)} bytes is over the limit of {policy.MAX_JOURNAL_BYTES}")
        return data

    def with_entries(self, actions: Iterable[Recorded]) -> Journal:
        """This journal with ``actions`` added as entries not done, except those it holds already."""
        known = {e.action for e in self.entries}
        new = tuple(Entry(a) for a in actions if a not in known)
        return attrs.evolve(self, entries=self.entries + new)

    def mark_done(self, actions: Iterable[Recorded]) -> Journal:
        done = set(actions)
        return attrs.evolve(
            self, entries=tuple(Entry(e.action, True) if e.action in done else e for e in self.entries)
        )

    def created(self) -> tuple[CreateFile, ...]:
        return tuple(e.action for e in self.entries if isinstance(e.action, CreateFile))

    def undo(self) -> tuple[RemoveFile | RestoreConfig, ...]:
        """The reverses of the entries, newest first; the configuration's restore once.

        Every entry is reversed, done or not: the one in flight when a run
        died may have landed before it was marked done.  Each reverse names the
        bytes it expects (``RemoveFile.sha256``, the configuration's
        ``sha256_after``), so reversing an entry that never ran does nothing.
        """
        out: list[RemoveFile | RestoreConfig] = []
        for entry in reversed(self.entries):
            reverse = entry.action.reverse()
            if reverse not in out:
                out.append(reverse)
        return tuple(out)


class Invalid(ValueError):
    """The journal cannot be trusted; the message says why (never quoting a path it names)."""


def managed_paths(layout: Layout) -> dict[str, str]:
    """The client files' display paths, each mapped to its counterpart's: all a journal may create."""
    out: dict[str, str] = {}
    for rule in policy.CLIENT_FILES:
        assert rule.counterpart is not None
        out[layout.rel(layout.cert(rule.name))] = layout.rel(layout.cert(rule.counterpart))
    return out


def load(data: bytes | None, layout: Layout) -> Journal:
    """The journal in ``data``, validated against ``layout``; :class:`Invalid` with the reason otherwise."""
    if data is None:
        raise Invalid("it cannot be read")
    if len(data) > policy.MAX_JOURNAL_BYTES:
        raise Invalid(f"it is over {policy.MAX_JOURNAL_BYTES} bytes, larger than any journal this tool writes")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        raise Invalid("it is not JSON") from None
    if isinstance(doc, dict) and doc.get("format_version") == 1 and type(doc["format_version"]) is int:
        doc = _from_version_1(doc, layout)
    _fields(
        doc,
        "the journal",
        required={"format_version", "tool", "state", "started", "fingerprint", "config", "actions"},
        optional={"finished"},
    )
    if doc["format_version"] != FORMAT_VERSION or type(doc["format_version"]) is not int:
        raise Invalid(f"its format version is not {FORMAT_VERSION} (written by another version of the tool?)")
    tool = _text(doc, "tool", 200)
    if doc["state"] not in (APPLYING, APPLIED):
        raise Invalid("its state is neither applying nor applied")
    started = _timestamp(doc, "started")
    finished = _timestamp(doc, "finished") if "finished" in doc else None
    fingerprint = doc["fingerprint"]
    if not (isinstance(fingerprint, str) and fingerprint.startswith("sha256:") and _is_digest(fingerprint[7:])):
        raise Invalid("its fingerprint is not a sha256 digest")
    config = None
    if doc["config"] is not None:
        _fields(doc["config"], "its configuration record", required={"sha256_before", "sha256_after"})
        config = ConfigRecord(_digest(doc["config"], "sha256_before"), _digest(doc["config"], "sha256_after"))
    if not isinstance(doc["actions"], list):
        raise Invalid("its actions are not a list")
    entries = tuple(_entry(item, layout) for item in doc["actions"])
    if len({e.action for e in entries}) != len(entries):
        raise Invalid("it records the same action twice")
    if any(isinstance(e.action, CONFIG_ACTIONS) for e in entries) != (config is not None):
        raise Invalid("its configuration actions and its configuration record disagree")
    return Journal(
        tool=tool,
        state=doc["state"],
        started=started,
        fingerprint=fingerprint,
        config=config,
        entries=entries,
        finished=finished,
    )


def _from_version_1(doc: JsonObject, layout: Layout) -> JsonObject:
    """A journal of format 1 (expressway-migrate 0.1.0) in the form of format 2, so that it can still be rolled back.

    Format 1 also kept the configuration's path, mode and owner (ignored now:
    they come from the file as it is), journalled the removal of staging
    files (nothing to undo), could repeat an entry on each resumed run, and
    kept a retired setting's old value whole (cut as the plan shows it).
    """
    out = dict(doc, format_version=FORMAT_VERSION)
    config = doc.get("config")
    if isinstance(config, dict):
        if config.get("path") != layout.rel(layout.config):
            raise Invalid("its configuration record names a file that is not this node's configuration")
        out["config"] = {k: config.get(k) for k in ("sha256_before", "sha256_after")}
    actions = doc.get("actions")
    if isinstance(actions, list):
        kept: list[object] = []
        for item in actions:
            if not isinstance(item, dict):
                kept.append(item)  # refused by the checks of format 2
                continue
            if item.get("action") == "remove-temp":
                continue
            value = item.get("old_value")
            if item.get("action") == RetireSetting.kind and isinstance(value, str) and len(value) > MAX_VALUE:
                item = dict(item, old_value=value[: policy.MAX_SHOWN_VALUE] + "\u2026")
            same = next((k for k in kept if isinstance(k, dict) and {**k, "done": 0} == {**item, "done": 0}), None)
            if same is not None:
                same["done"] = same.get("done") is True or item.get("done") is True
                continue
            kept.append(dict(item))
        out["actions"] = kept
    return out


def _fields(doc: object, what: str, *, required: set[str], optional: frozenset[str] | set[str] = frozenset()) -> None:
    if not isinstance(doc, dict):
        raise Invalid(f"{what} is not an object")
    keys = set(doc)
    if not required <= keys:
        raise Invalid(f"{what} lacks {', '.join(sorted(required - keys))}")
    extra = keys - required - optional
    if extra:
        raise Invalid(f"{what} has fields this tool never writes ({', '.join(sorted(_shown(k) for k in extra))})")


def _shown(text: str) -> str:
    return repr(text[:32])


def _text(doc: JsonObject, key: str, limit: int) -> str:
    value = doc[key]
    if not isinstance(value, str) or len(value) > limit:
        raise Invalid(f"its {key} is not a short text")
    return value


def _timestamp(doc: JsonObject, key: str) -> str:
    value = _text(doc, key, 40)
    try:
        datetime.fromisoformat(value)
    except ValueError:
        raise Invalid(f"its {key} time is not a date") from None
    return value


def _is_digest(text: object) -> TypeGuard[str]:
    return isinstance(text, str) and len(text) == 64 and all(c in "0123456789abcdef" for c in text)


def _digest(doc: JsonObject, key: str) -> str:
    value = doc[key]
    if not _is_digest(value):
        raise Invalid(f"its {key} is not a sha256 digest")
    return value


def _int(doc: JsonObject, key: str, low: int, high: int) -> int:
    value = doc[key]
    if type(value) is not int or not low <= value <= high:
        raise Invalid(f"an action's {key} is not a whole number from {low} to {high}")
    return value


def _entry(item: object, layout: Layout) -> Entry:
    if not isinstance(item, dict) or not isinstance(item.get("action"), str):
        raise Invalid("an action is not an object with an action name")
    kind = item["action"]
    config_path = layout.rel(layout.config)
    if kind == CreateFile.kind:
        _fields(
            item,
            "a create-file action",
            required={"action", "path", "source", "mode", "uid", "gid", "sha256", "done"},
        )
        managed = managed_paths(layout)
        path = item["path"]
        if not isinstance(path, str) or path not in managed:
            raise Invalid("a create-file action names a path that is not a client file of this node")
        if item["source"] != managed[path]:
            raise Invalid("a create-file action names a source that is not its counterpart")
        rule = policy.RULES[path.rsplit("/", 1)[-1]]
        mode = item["mode"]
        if not (isinstance(mode, str) and len(mode) == 4 and all(c in "01234567" for c in mode)):
            raise Invalid("a create-file action's mode is not four octal digits")
        if int(mode, 8) & ~rule.mode:
            raise Invalid("a create-file action's mode is wider than the policy's")
        action: Recorded = CreateFile(
            path=path,
            source=item["source"],
            mode=int(mode, 8),
            uid=_int(item, "uid", 0, 2**32 - 2),
            gid=_int(item, "gid", 0, 2**32 - 2),
            sha256=_digest(item, "sha256"),
        )
    elif kind == RetireSetting.kind:
        _fields(item, "a retire-setting action", required={"action", "path", "setting", "old_value", "line", "done"})
        if item["path"] != config_path:
            raise Invalid("a retire-setting action names a file that is not this node's configuration")
        if not isinstance(item["setting"], str) or _normal(item["setting"]) != _normal(policy.RETIRED_SETTING):
            raise Invalid("a retire-setting action names another setting")
        action = RetireSetting(
            path=config_path,
            setting=item["setting"],
            old_value=_text(item, "old_value", MAX_VALUE),
            line=_int(item, "line", 1, policy.MAX_CONFIG_BYTES),
        )
    elif kind == AddSetting.kind:
        _fields(item, "an add-setting action", required={"action", "path", "setting", "value", "done"})
        if item["path"] != config_path:
            raise Invalid("an add-setting action names a file that is not this node's configuration")
        if item["setting"] != policy.CHECKING_SETTING or item["value"] != policy.CHECKING_DEFAULT:
            raise Invalid("an add-setting action states a setting the migration never adds")
        action = AddSetting(path=config_path, setting=item["setting"], value=item["value"])
    else:
        raise Invalid(f"an action is of a kind this tool never journals ({_shown(kind)})")
    if type(item["done"]) is not bool:
        raise Invalid("an action's done flag is not true or false")
    return Entry(action, item["done"])


def _normal(name: str) -> str:
    return " ".join(name.split()).casefold()
