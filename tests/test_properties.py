"""Property-based tests: random valid and invalid nodes, and a fault at any file-system call.

Nodes are drawn as parameters (:class:`Node`: role, key type and format, EKU
set or none, validity, SSH bundle, client store, settings and raw
configuration lines with CRLF, BOM and non-UTF-8 bytes, modes, owners, extra
files, damage) and built with ``factory.node_tree``.  What is proved:

- ``TestPrecheck``: the precheck refuses exactly the nodes that break a rule
  (an independent oracle, :func:`blocking_reasons`, says which and why);
- ``TestWithoutFaults``: a refused node is left byte for byte as it was; any
  other is migrated (exact client copies, the configuration edited line for
  line), a second apply changes nothing, and rollback restores the exact tree;
- ``TestFaults``: whatever call of ``apply`` meets whatever fault (``eio``,
  ``enospc``, ``eacces``, ``power-cut``), and then whatever call of the
  recovering ``apply`` or ``rollback`` meets a second one, the node ends
  exactly X15.4, exactly X15.5, or where ``apply`` reaches exactly the migrated
  tree and ``rollback`` exactly the original (``support.check_recovers``); and
  before every call of every run, no file holds a key someone could not read
  before (``support.exposed_keys``, read with ``read_tree``: :class:`Watch`);
- ``TestKeyReaders``: the same "no new reader of a key" with a stricter judge
  (:func:`new_key_readers`), which also asks whether the group could read the
  key before.

Each example runs in its own pyfakefs file system (``with Patcher():`` in the
test body): hypothesis refuses function-scoped fixtures such as ``fs``, whose
single file system all examples would share; a fresh one per example needs no
cleanup (a power cut leaks descriptors and leaves half-written trees, and both
vanish with the Patcher).

Cost: pyfakefs is slow (``read_tree`` of a node about 7 ms, a clean ``apply``
about 60 ms: some 270 calls, about 60 of which may change the disk).  So the
watcher reads a root only before a call that follows a call that changed that
root (the tree cannot have changed otherwise), the clean run that counts the
fault points is not watched (every faulted run is, from its first call), and
certificates are made once per session.  A fault example still costs some 10
plain ones, so each test runs a fraction of the profile's ``max_examples``
(:func:`_scaled`).  Profiles live in ``tests/conftest.py``: ``ci`` (the
default: deterministic, under 20 s for this file on two cores), ``dev`` and
``nightly`` (about half an hour).  The nightly run::

    HYPOTHESIS_PROFILE=nightly .venv/bin/python -m pytest tests/test_properties.py
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import attrs
import pytest
import structlog.testing
from hypothesis import event, example, given, note, settings
from hypothesis import strategies as st
from pyfakefs.fake_filesystem_unittest import Patcher
from support import (
    ADDED_BY_APPLY,
    CERTS,
    CHECKING_LINE,
    CLIENT_FILES,
    CONFIG,
    EDGE_UIDS,
    KEY_MODES,
    RETIRED,
    STAGING_SUFFIX,
    check_recovers,
    exposed_keys,
    other_cert,
    plant,
    verify_ids,
    without_journal_bytes,
)

from migrate import checks, facts, policy, writer
from migrate.errors import MigrateError, RollbackError
from migrate.plan import make_plan
from migrate.scan import Layout, scan
from migrate.testing import faults
from migrate.testing.factory import DEFAULT_UIDS, NodeSpec, issue, make_ca, node_tree
from migrate.testing.tree import Entry, Tree, diff_trees, read_tree

CHECKING = policy.CHECKING_SETTING
FAULTS = ("eio", "enospc", "eacces", "power-cut")

# --- How many examples ------------------------------------------------------------


def _scaled(fraction: float) -> settings:
    """The loaded profile with ``fraction`` of its examples (at least one): for the costly properties."""
    return settings(max_examples=max(1, round(settings.default.max_examples * fraction)))


# --- Certificates, built once per session ------------------------------------------

SUPPORTED_KEYS = ("ec256", "ec384", "rsa2048")  # rsa2048 comes from the factory's pool: no new RSA key per example
UNSUPPORTED_KEYS = ("ed25519", "dsa2048")  # Expressway does not use them: the node must be refused
KEY_FORMATS_OF = {
    "ec256": ("pkcs8", "sec1"),
    "ec384": ("pkcs8", "sec1"),
    "rsa2048": ("pkcs8", "pkcs1"),
    "ed25519": ("pkcs8",),
    "dsa2048": ("pkcs8",),
}
EKUS = (("serverAuth", "clientAuth"), ("serverAuth",), ("clientAuth",), None)  # None: no EKU extension
VALIDITIES = ("valid", "expiring", "not-yet-valid")  # warnings at most
SECRET_FILES = ("privkey.pem", "server-ssh.pem", "clientprivkey.pem", "client-ssh.pem")
SERVER_FILES = ("ca.pem", "server.pem", "privkey.pem", "server-ssh.pem")
CLIENT_OF = {source: client for client, (source, _) in CLIENT_FILES.items()}


@functools.cache
def _ca(public: bool):
    return make_ca("Example Public CA2" if public else "Example Internal CA", public=public)


@functools.cache
def _identity(role: str, key_type: str, eku: tuple[str, ...] | None, validity: str, public: bool):
    """One leaf per combination, for the whole session: certificates are the slow part of a node."""
    now = datetime.now(UTC).replace(microsecond=0)
    bounds = {
        "valid": (None, None),
        "expiring": (now - timedelta(days=300), now + timedelta(days=10)),
        "not-yet-valid": (now + timedelta(days=1), now + timedelta(days=366)),
        "expired": (now - timedelta(days=400), now - timedelta(days=1)),
    }[validity]
    return issue(
        _ca(public),
        f"{role}.example.com",
        eku=eku,
        key_type=key_type,
        not_before=bounds[0],
        not_after=bounds[1],
    )


@functools.cache
def _encrypted_key(role: str, key_type: str, eku, validity: str, public: bool) -> bytes:
    return _identity(role, key_type, eku, validity, public).key_pem("pkcs8", password=b"not-on-the-node")


# --- The node, as parameters --------------------------------------------------------

# Invalid changes to an X15.4 node; each must make the precheck refuse it.
DAMAGES = {
    "stale-temp-file": "stale-temp-file",
    "foreign-client-cert": "client-store-conflict",
    "missing-server-cert": "file-missing",
    "missing-private-key": "file-missing",
    "missing-ca": "file-missing",
    "symlinked-private-key": "file-not-regular",
    "garbage-private-key": None,  # some blocker; the id depends on how the bytes fail to parse
    "encrypted-private-key": "key-encrypted",
    "missing-config": "config-missing",
    "symlinked-config": "config-not-regular",
}


def _damaged_file(damage: str) -> str:
    return "privkey.pem" if "private-key" in damage else CONFIG if "config" in damage else damage


STALE_TEMP = f"{CERTS}/.clientprivkey.pem{STAGING_SUFFIX}"
REAL_KEY = f"{CERTS}/privkey.real"
REAL_CONFIG = "persistent/xconfiguration.real"
BOM = b"\xef\xbb\xbf"
GARBAGE_KEY = b"-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n"
RESERVED_NAMES = {rule.name for rule in policy.FILES} | set(policy.OTHER_FILES) | {"privkey.real"}


def _octal(rows: tuple) -> str:
    """``rows`` with their mode in octal: ``(name, mode)`` or ``(name, content, mode, uid, gid)``."""
    shown = []
    for row in rows:
        at = 1 if len(row) == 2 else 2
        shown.append((*row[:at], f"0o{row[at]:03o}", *row[at + 1 :]))
    return repr(tuple(shown))


@attrs.frozen
class Node:
    """A node drawn by hypothesis: what :func:`build` turns into a tree (its repr is the shrunk example)."""

    role: str
    key_type: str
    key_format: str
    eku: tuple[str, ...] | None
    validity: str
    public_ca: bool
    ssh: str
    client: str
    uids: tuple[tuple[str, int], ...]
    retired: str | None  # EnableServerEkuUpload among the settings (None: absent)
    checking: str | None  # the EKU Checking Mode among the settings (None: absent)
    extra_lines: tuple[bytes, ...]  # after the settings, joined with LF
    final_newline: bool
    crlf: bool
    bom: bool  # a UTF-8 byte order mark starts the configuration
    modes: tuple[tuple[str, int], ...] = attrs.field(repr=_octal)  # managed file -> mode
    owners: tuple[tuple[str, int, int], ...]  # managed file -> uid, gid
    extra_files: tuple[tuple[str, str, int, int, int], ...] = attrs.field(repr=_octal)  # name, content, mode, uid, gid
    damage: tuple[str, ...]

    def _repr_pretty_(self, printer, cycle) -> None:
        """How hypothesis shows a falsifying node: one field a line, modes in octal."""
        fields = [
            f"{a.name}={a.repr(getattr(self, a.name)) if callable(a.repr) else repr(getattr(self, a.name))}"
            for a in attrs.fields(type(self))
        ]
        printer.text("Node(\n    " + ",\n    ".join(fields) + ",\n)")

    def settings_values(self, name: str) -> list[str]:
        """The values of every line setting ``name``, as the factory writes them (settings, then extra lines)."""
        ours = {RETIRED: self.retired, CHECKING: self.checking}[name]
        if name == CHECKING and ours is None and self.client == "migrated":
            ours = "On"  # the factory states the X15.5 default on a migrated node
        values = [] if ours is None else [ours]
        marker = name.replace(" ", "").lower().encode()
        for line in self.extra_lines:
            head, _, value = line.partition(b": ") if b": " in line else line.partition(b":\t")
            if marker in head.replace(b" ", b"").replace(b"\t", b"").lower():
                values.append(value.decode())
        return values


ON_OFF = ("On", "Off", '"On"', '"Off"', "on", "OFF")
INVALID_VALUES = ("Maybe", '""', "1")
OWNER_IDS = (0, 65534, 1001, 4001, 4242)
SPELLINGS = (  # how a setting line may be written: prefix, keyword, separator
    (b"*c xConfiguration ", b": "),
    (b"*C XCONFIGURATION ", b": "),
    (b"  *c\txConfiguration  ", b" :\t"),
)


def _is_on(value: str) -> bool | None:
    text = value.strip().strip('"').strip().casefold()
    return {"on": True, "off": False}.get(text)


def _setting_line(name: str, value: str, spelling: int, lower: bool) -> bytes:
    prefix, sep = SPELLINGS[spelling]
    words = name.lower() if lower else name
    return prefix + words.encode() + sep + value.encode()


def _garbage_lines() -> st.SearchStrategy[bytes]:
    """Lines that are not settings: any bytes (not UTF-8, lone CR...) without LF or the setting keyword."""
    return (
        st.binary(max_size=24)
        .map(lambda b: b.replace(b"\n", b" "))
        .filter(lambda b: b"xconfiguration" not in b.lower() and b"enableserverekuupload" not in b.lower())
    )


@st.composite
def nodes(draw, valid: bool | None = None, x154: bool = False) -> Node:
    """A node: ``valid=True`` a ready one, ``False`` anything, ``None`` either; ``x154=True`` no client store yet."""
    if valid is None:
        valid = draw(st.booleans(), label="valid")
    role = draw(st.sampled_from(("core", "edge")))
    key_type = draw(st.sampled_from(SUPPORTED_KEYS if valid else SUPPORTED_KEYS + UNSUPPORTED_KEYS))
    key_format = draw(st.sampled_from(KEY_FORMATS_OF[key_type]))
    eku = draw(st.sampled_from(EKUS))
    validity = draw(st.sampled_from(VALIDITIES if valid else (*VALIDITIES, "expired")))
    ssh = draw(st.sampled_from(("same", "absent") if valid else ("same", "absent", "other")))
    retired = draw(st.none() | st.sampled_from(ON_OFF + INVALID_VALUES))
    retired_lines = st.builds(
        _setting_line,
        st.just(RETIRED),
        st.sampled_from(ON_OFF + INVALID_VALUES),
        st.integers(0, len(SPELLINGS) - 1),
        st.booleans(),
    )
    extra_kinds = [_garbage_lines(), retired_lines]
    # A migrated client store without the retired setting is X15.5 already; with it, half-migrated.
    if valid:
        half = retired is not None and not x154 and draw(st.booleans(), label="half-migrated")
        client = "migrated" if half else "absent"
    else:
        client = draw(st.sampled_from(("absent", "migrated")))
    if valid:  # every Checking Mode line says the same, On or Off
        family = draw(st.sampled_from(("On", "Off")))
        values = tuple(v for v in ON_OFF if _is_on(v) is (family == "On"))
        checking = draw(st.sampled_from(values)) if client == "migrated" else draw(st.none() | st.sampled_from(values))
    else:
        values = ON_OFF + INVALID_VALUES
        checking = draw(st.none() | st.sampled_from(values))
    extra_kinds.append(
        st.builds(
            _setting_line, st.just(CHECKING), st.sampled_from(values), st.integers(0, len(SPELLINGS) - 1), st.booleans()
        )
    )
    extra_lines = tuple(draw(st.lists(st.one_of(extra_kinds), max_size=5)))
    final_newline = draw(st.booleans()) if extra_lines else True
    crlf = draw(st.booleans())
    bom = draw(st.booleans())
    uids = draw(st.sampled_from((DEFAULT_UIDS, EDGE_UIDS)))

    present = [name for name in SERVER_FILES if name != "server-ssh.pem" or ssh != "absent"]
    if client == "migrated":
        present += [name for name, (source, _) in CLIENT_FILES.items() if source in present]
    loose = not valid or client == "absent"  # a half-migrated node's client files must already be right
    adjustable = [name for name in present if loose or name not in CLIENT_FILES]
    any_mode = st.integers(0, 0o777)
    modes = []
    for name in draw(st.lists(st.sampled_from(adjustable), unique=True, max_size=len(adjustable)), label="modes of"):
        mode = draw(any_mode)
        if valid and name in SECRET_FILES:
            mode &= ~0o004  # a world-readable key is a blocker
        modes.append((name, mode))
    owner = st.sampled_from(OWNER_IDS)
    owners = tuple(
        (name, draw(owner), draw(owner))
        for name in draw(
            st.lists(st.sampled_from(adjustable), unique=True, max_size=len(adjustable)), label="owners of"
        )
    )
    names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12).filter(
        lambda n: n not in (".", "..") and n not in RESERVED_NAMES and not n.endswith(STAGING_SUFFIX)
    )
    extra_files = tuple(
        draw(
            st.lists(
                st.tuples(
                    names,
                    st.sampled_from(("text", "key-copy")),
                    any_mode,
                    st.sampled_from(OWNER_IDS),
                    st.sampled_from(OWNER_IDS),
                ),
                max_size=3,
                unique_by=lambda f: f[0],
            )
        )
    )
    damage: tuple[str, ...] = ()
    if not valid and client == "absent":
        # at most one damage per file: two to the private key would undo each other
        damage = tuple(draw(st.lists(st.sampled_from(sorted(DAMAGES)), max_size=2, unique_by=_damaged_file)))
    return Node(
        role=role,
        key_type=key_type,
        key_format=key_format,
        eku=eku,
        validity=validity,
        public_ca=draw(st.booleans()),
        ssh=ssh,
        client=client,
        uids=tuple(sorted(uids.items())),
        retired=retired,
        checking=checking,
        extra_lines=extra_lines,
        final_newline=final_newline,
        crlf=crlf,
        bom=bom,
        modes=tuple(modes),
        owners=owners,
        extra_files=extra_files,
        damage=damage,
    )


# The simplest ready X15.4 node, what hypothesis shrinks towards: for explicit examples.
PLAIN = Node(
    role="core",
    key_type="ec256",
    key_format="pkcs8",
    eku=("serverAuth", "clientAuth"),
    validity="valid",
    public_ca=False,
    ssh="same",
    client="absent",
    uids=tuple(sorted(DEFAULT_UIDS.items())),
    retired=None,
    checking=None,
    extra_lines=(),
    final_newline=True,
    crlf=False,
    bom=False,
    modes=(),
    owners=(),
    extra_files=(),
    damage=(),
)


def build(node: Node) -> Tree:
    """The tree of ``node``: ``factory.node_tree`` of its spec, then its modes, owners, files and damage."""
    key = (node.role, node.key_type, node.eku, node.validity, node.public_ca)
    identity = _identity(*key)
    settings_ = {name: value for name, value in ((RETIRED, node.retired), (CHECKING, node.checking)) if value}
    extra = b"\n".join(node.extra_lines) + (b"\n" if node.extra_lines and node.final_newline else b"")
    spec = NodeSpec(
        role=node.role,
        identity=identity,
        ssh=node.ssh,
        settings=settings_,
        config_extra=extra,
        client=node.client,
        uids=dict(node.uids),
        key_format=node.key_format,
    )
    tree = node_tree(spec)
    config = tree[CONFIG].data
    if node.crlf:
        config = config.replace(b"\n", b"\r\n")
    if node.bom:
        config = BOM + config
    tree[CONFIG] = attrs.evolve(tree[CONFIG], data=config)
    for name, mode in node.modes:
        tree[f"{CERTS}/{name}"] = attrs.evolve(tree[f"{CERTS}/{name}"], mode=mode)
    owned = {name for name, _, _ in node.owners}
    for name, uid, gid in node.owners:
        tree[f"{CERTS}/{name}"] = attrs.evolve(tree[f"{CERTS}/{name}"], uid=uid, gid=gid)
        client = CLIENT_OF.get(name)
        if node.client == "migrated" and client and client not in owned:
            # a client file mirrors its counterpart's owner unless it was given its own
            tree[f"{CERTS}/{client}"] = attrs.evolve(tree[f"{CERTS}/{client}"], uid=uid, gid=gid)
    key_bytes = tree[f"{CERTS}/privkey.pem"].data
    for name, content, mode, uid, gid in node.extra_files:
        data = key_bytes if content == "key-copy" else f"an operator's file: {name}\n".encode()
        tree[f"{CERTS}/{name}"] = Entry(kind="file", mode=mode, uid=uid, gid=gid, data=data)
    nobody = dict(node.uids)["_nobody"]
    for damage in node.damage:
        if damage == "stale-temp-file":
            tree[STALE_TEMP] = Entry(kind="file", mode=0o600, uid=0, gid=0, data=key_bytes)
        elif damage == "foreign-client-cert":
            tree[f"{CERTS}/client.pem"] = Entry(kind="file", mode=0o644, uid=nobody, gid=nobody, data=other_cert())
        elif damage.startswith("missing-"):
            name = {"server-cert": "server.pem", "private-key": "privkey.pem", "ca": "ca.pem", "config": None}
            rel = name[damage.removeprefix("missing-")]
            tree.pop(f"{CERTS}/{rel}" if rel else CONFIG)
        elif damage == "symlinked-private-key":
            tree[REAL_KEY] = Entry(kind="file", mode=0o440, uid=0, gid=0, data=key_bytes)
            tree[f"{CERTS}/privkey.pem"] = Entry(kind="symlink", mode=0o777, uid=0, gid=0, target="privkey.real")
        elif damage == "symlinked-config":
            tree[REAL_CONFIG] = tree[CONFIG]
            tree[CONFIG] = Entry(kind="symlink", mode=0o777, uid=0, gid=0, target="xconfiguration.real")
        elif damage == "garbage-private-key":
            tree[f"{CERTS}/privkey.pem"] = attrs.evolve(tree[f"{CERTS}/privkey.pem"], data=GARBAGE_KEY)
        elif damage == "encrypted-private-key":
            tree[f"{CERTS}/privkey.pem"] = attrs.evolve(tree[f"{CERTS}/privkey.pem"], data=_encrypted_key(*key))
    return tree


def blocking_reasons(node: Node) -> list[str | None]:
    """Why DOMAIN.md and the policy must refuse ``node``: finding ids (None: some blocker), [] if ready."""
    reasons: list[str | None] = [DAMAGES[d] for d in node.damage]
    gone = {"missing-private-key", "symlinked-private-key"} & set(node.damage)
    if node.key_type in UNSUPPORTED_KEYS:
        reasons.append("key-unsupported")
    if node.validity == "expired":
        reasons.append("cert-expired")
    if node.ssh == "other":
        reasons.append("ssh-identity-mismatch")
    for name, mode in node.modes:
        if name in SECRET_FILES and mode & 0o004 and not (name == "privkey.pem" and gone):
            reasons.append("key-exposed")
    checking = {_is_on(v) for v in node.settings_values(CHECKING)}
    if len(checking) > 1:
        reasons.append("checking-mode-conflict")
    elif checking == {None}:
        reasons.append("checking-mode-invalid")
    if node.client == "migrated" and node.settings_values(RETIRED):  # half-migrated: its copies must be right
        uids = dict(node.uids)
        modes, owners = dict(node.modes), {name: (uid, gid) for name, uid, gid in node.owners}
        for name, (source, policy_mode) in CLIENT_FILES.items():
            if name == "client-ssh.pem" and node.ssh == "absent":
                continue
            mode, source_mode = modes.get(name, policy_mode), modes.get(source, policy.RULES[source].mode)
            if mode != policy_mode or (name in SECRET_FILES and mode & 0o077 & ~source_mode):
                reasons.append("client-file-mode")  # a key's copy grants no group or other bit its original lacks
            default = uids[policy.RULES[source].owner]
            if name in owners and owners[name] != owners.get(source, (default, default)):
                reasons.append("client-file-owner")
    return reasons


def expected_config(original: bytes, node: Node) -> bytes:
    """The configuration after apply: every line but the retired ones, and the Checking Mode if it was unstated."""
    kept = [line for line in _lf_lines(original) if b"enableserverekuupload" not in line.lower()]
    if node.settings_values(CHECKING):
        return b"".join(kept)
    eol = b"\r\n" if node.crlf else b"\n"
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += eol
    return b"".join(kept) + CHECKING_LINE + eol


def _lf_lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` with their endings; only LF ends a line."""
    parts = data.split(b"\n")
    out = [part + b"\n" for part in parts[:-1]]
    return out + ([parts[-1]] if parts[-1] else [])


# --- The file system and the watcher ------------------------------------------------


@contextlib.contextmanager
def fake_world():
    """A fresh pyfakefs file system for one example, the product's log lines captured (not printed)."""
    with Patcher(), structlog.testing.capture_logs():
        yield


# Calls that never change the tree: after one of them the watcher need not read the tree again.
# (``open`` that creates or truncates counts as a write: ``Call.writes``.)
READ_ONLY_CALLS = frozenset(
    {"lstat", "stat", "fstat", "open", "read", "close", "fsync", "flock", "listdir", "scandir", "readlink", "lseek"}
)


def newly_exposed(original: Tree) -> Callable[[Tree], list[str]]:
    """The judge ``support.exposed_keys`` against ``original``, less what was exposed before the migration."""
    before = set(exposed_keys(original, original))
    return lambda tree: [line for line in exposed_keys(tree, original) if line not in before]


_KEY_BLOCK = re.compile(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.*?(?:-----END [A-Z ]*PRIVATE KEY-----|\Z)", re.DOTALL)


def _readers(entry: Entry) -> set[tuple]:
    """Who may read a file by its owner, group and other bits (root aside); an owner can always chmod it to read."""
    readers = {("uid", entry.uid)}
    if entry.mode & 0o040:
        readers.add(("gid", entry.gid))
    if entry.mode & 0o004:
        readers.add(("other",))
    return readers - {("uid", 0), ("gid", 0)}


def new_key_readers(original: Tree) -> Callable[[Tree], list[str]]:
    """A stricter judge than ``exposed_keys``: nobody may read a private key (even half of one) who could not before.

    ``exposed_keys`` accepts any file whose mode is within its name's policy
    mode and whose owner or group is that of the X15.4 file; it does not ask
    whether that group could read the key before.
    """
    before: dict[bytes, set] = {}
    for entry in original.values():
        if entry.kind == "file":
            for block in _KEY_BLOCK.findall(entry.data):
                before.setdefault(block, set()).update(_readers(entry))

    def judge(tree: Tree) -> list[str]:
        found = []
        for rel, entry in tree.items():
            if entry.kind != "file":
                continue
            for block in _KEY_BLOCK.findall(entry.data):
                allowed = set().union(*(readers for key, readers in before.items() if key.startswith(block)))
                gained = _readers(entry) - allowed
                if gained:
                    who = ", ".join(" ".join(map(str, r)) for r in sorted(gained))
                    found.append(f"{rel} {entry.mode:04o} {entry.uid}:{entry.gid} lets {who} read a private key")
        return found

    return judge


class Watch:
    """An ``observe`` hook: judge a node's tree before every call that may find it changed.

    The tree changes only by a call that writes, and only under the root that
    call acted on; so before each call the watcher reads (``read_tree``) the
    root the previous call changed, if any, which is the same as reading every
    root before every call.  A violation is recorded, not raised: the product
    would turn an ``AssertionError`` raised inside its own call into an
    ``ApplyError``; :meth:`done` fails the test.
    """

    def __init__(self, roots: list[str], judge: Callable[[Tree], list[str]]) -> None:
        self.roots = roots
        self.judge_tree = judge
        self.changed: str | None = None
        self.violations: list[str] = []

    def __call__(self, call: faults.Call) -> None:
        if self.changed is not None:
            self.judge(self.changed, f"before {call}")
        self.changed = None
        if call.writes or call.name not in READ_ONLY_CALLS:
            self.changed = next((r for r in self.roots if call.target.startswith(f"{r}/")), None)
            if self.changed is None and call.target not in self.roots:
                self.violations.append(f"{call} acted outside the node roots {self.roots}")

    def judge(self, root: str, when: str) -> None:
        try:
            found = self.judge_tree(read_tree(root)) if os.path.isdir(root) else []
        except Exception as exc:  # noqa: BLE001 - a tree that cannot be read is a finding, not a crash
            found = [f"the tree could not be read: {type(exc).__name__}: {exc}"]
        self.violations += [f"{when}: {root}: {line}" for line in found]

    def done(self) -> None:
        """Judge the trees the run left, and fail if any point exposed a key."""
        for root in self.roots:
            self.judge(root, "at the end")
        assert self.violations == [], "a key was exposed:\n" + "\n".join(self.violations)


def _same(a: Tree, b: Tree) -> bool:
    return diff_trees(without_journal_bytes(a), without_journal_bytes(b)) == []


def fault_points(calls: list[faults.Call]) -> st.SearchStrategy[int]:
    """A call number: half the time one of the calls that write (where a fault leaves a node half-changed)."""
    writes = [call.number for call in calls if call.writes]
    return st.one_of(st.sampled_from(writes), st.integers(1, len(calls))) if writes else st.integers(1, len(calls))


def count_calls(command: Callable[[Layout], object], tree: Tree, root: str) -> list[faults.Call]:
    """The calls ``command`` makes on ``tree`` planted at ``root``, with no fault (the fault points)."""
    layout = plant(tree, root)
    return faults.count_calls(lambda: command(layout))


def run_faulted(
    command: Callable[[Layout], object], tree: Tree, root: str, original: Tree, at: int, fault: str
) -> BaseException | None:
    """Run ``command`` on ``tree`` at ``root``, ``fault`` at call ``at``, watched throughout; what it raised."""
    layout = plant(tree, root)
    watch = Watch([root], newly_exposed(original))
    raised: BaseException | None = None
    with faults.inject(at=at, fault=fault, observe=watch) as injector:
        try:
            command(layout)
        except (faults.PowerCut, MigrateError) as exc:  # anything else escapes: a failure of the property
            raised = exc
    note(f"{fault} at {injector.tripped} of {command.__name__}: raised {type(raised).__name__}: {raised}")
    watch.done()
    assert injector.tripped is not None, f"call {at} was never reached: the calls differ from the clean run's"
    if fault == "power-cut":
        assert isinstance(raised, faults.PowerCut), f"a power cut must end the run, not {raised!r}"
    else:
        assert not isinstance(raised, faults.PowerCut)
    return raised


def judge_outcome(after: Tree, original: Tree, migrated: Tree, scratch: str) -> str:
    """Exactly X15.4, exactly X15.5, or recoverable both ways (and watched while it recovers): which one."""
    if diff_trees(original, after) == []:
        return "x15.4"
    if _same(migrated, after):
        return "x15.5"
    watch = Watch([f"{scratch}-apply", f"{scratch}-rollback"], newly_exposed(original))
    with faults.inject(observe=watch):
        check_recovers(after, original, migrated, scratch, "recovery from the state the fault left")
    watch.done()
    return "recoverable"


@attrs.frozen
class CleanRun:
    """A ready X15.4 node: its tree as planted, the tree a clean apply makes of it, and that apply's calls."""

    tree: Tree
    original: Tree
    migrated: Tree
    calls: list

    @classmethod
    def of(cls, node: Node) -> CleanRun:
        tree = build(node)
        original = read_tree(plant(tree, "/n/original").root)
        assert _blocker_ids(Layout.for_node("/n/original")) == [], "the strategy drew a node that is not ready"
        calls = count_calls(writer.apply, tree, "/n/clean")
        migrated = read_tree("/n/clean")
        assert newly_exposed(original)(migrated) == []
        return cls(tree=tree, original=original, migrated=migrated, calls=calls)


# --- The properties -------------------------------------------------------------------


def _blocker_ids(layout: Layout) -> list[str]:
    return [f.id for f in checks.blockers(checks.precheck(facts.analyse(scan(layout))))]


ROOT = "/srv/node"


class TestPrecheck:
    @_scaled(0.2)
    @given(node=nodes())
    def test_refuses_exactly_the_nodes_that_break_a_rule(self, node):
        """The precheck finds a blocker exactly when the node breaks a rule of DOMAIN.md or the policy, and names it."""
        reasons = blocking_reasons(node)
        with fake_world():
            found = _blocker_ids(plant(build(node), ROOT))
        note(f"expected {reasons}, found {found}")
        event("refused" if found else "ready")
        assert bool(found) == bool(reasons)
        if len(reasons) == 1 and reasons[0] is not None:
            assert reasons[0] in found


class TestWithoutFaults:
    @_scaled(0.2)
    @given(node=nodes())
    def test_blocked_node_is_refused_else_migrated_and_rolled_back_exactly(self, node):
        """A node with a blocker is refused untouched; any other is migrated (or already X15.5) and rolls back exactly."""
        with fake_world():
            layout = plant(build(node), ROOT)
            original = read_tree(ROOT)
            analysis = facts.analyse(scan(layout))
            blockers = [f.id for f in checks.blockers(checks.precheck(analysis))]
            event("refused" if blockers else "ready")
            if blockers:
                with pytest.raises(MigrateError) as refused:
                    writer.apply(layout)
                assert refused.value.id in blockers
                assert diff_trees(original, read_tree(ROOT)) == []
                return
            if not make_plan(analysis).actions:  # X15.5 already, without a journal
                event("already X15.5")
                assert writer.apply(layout).result == "already-migrated"
                assert diff_trees(original, read_tree(ROOT)) == []
                with pytest.raises(RollbackError):
                    writer.rollback(layout)
                assert diff_trees(original, read_tree(ROOT)) == []
                return
            outcome = writer.apply(layout)
            assert outcome.result == "migrated"
            assert verify_ids(ROOT) == []
            migrated = read_tree(ROOT)
            changes = set(diff_trees(original, migrated))
            assert changes <= {f"added {rel}" for rel in ADDED_BY_APPLY} | {f"changed bytes {CONFIG}"}
            assert migrated[CONFIG].data == expected_config(original[CONFIG].data, node)
            for name, (source, mode) in CLIENT_FILES.items():
                server = original.get(f"{CERTS}/{source}")
                client = migrated.get(f"{CERTS}/{name}")
                if server is None:
                    assert client is None
                else:
                    # a key's copy grants no bit its original lacks (privkey.pem 0400 -> clientprivkey.pem 0400)
                    expected_mode = mode & server.mode if name in KEY_MODES else mode
                    assert (client.data, client.mode, client.uid, client.gid) == (
                        server.data,
                        expected_mode,
                        server.uid,
                        server.gid,
                    ), name
            assert writer.apply(layout).result == "already-migrated"
            assert _same(migrated, read_tree(ROOT))
            writer.rollback(layout)
            assert diff_trees(original, read_tree(ROOT)) == []


@pytest.mark.slow
class TestKeyReaders:
    @_scaled(0.05)
    @given(node=nodes(valid=True))
    # privkey.pem 0400 root:4242 keeps group 4242 from the key; found by the nightly run, kept here for CI
    @example(node=attrs.evolve(PLAIN, modes=(("privkey.pem", 0o400),), owners=(("privkey.pem", 0, 4242),)))
    def test_nobody_gains_read_access_to_a_private_key_during_apply_or_rollback(self, node):
        """At no call of apply or rollback can a user or group read a private key that its modes kept from them before."""
        with fake_world():
            tree = build(node)
            layout = plant(tree, ROOT)
            judge = new_key_readers(read_tree(ROOT))
            writer.apply(layout)  # the end states first, unwatched: a failing example then shrinks fast
            assert judge(read_tree(ROOT)) == []
            writer.rollback(layout)
            watch = Watch(["/n/watched"], judge)
            layout = plant(tree, "/n/watched")
            with faults.inject(observe=watch):
                writer.apply(layout)
                writer.rollback(layout)
            watch.done()


# The fault properties start from X15.4 nodes (``x154=True``): "rollback reaches the original" has no meaning
# for a half-migrated node, which rollback refuses even untouched (not-migrated-by-tool), and which a power
# cut just after apply's mkdir leaves with an empty state directory that rollback then refuses to clear.
@pytest.mark.slow
class TestFaults:
    @_scaled(0.08)
    @given(node=nodes(valid=True, x154=True), fault=st.sampled_from(FAULTS), data=st.data())
    def test_fault_at_any_call_of_apply_leaves_x154_x155_or_recoverable_and_no_key_exposed(self, node, fault, data):
        """Whatever call of apply meets whatever fault, the node ends X15.4, X15.5 or recoverable both ways, no key exposed."""
        with fake_world():
            clean = CleanRun.of(node)
            at = data.draw(fault_points(clean.calls), label="fault at call")
            raised = run_faulted(writer.apply, clean.tree, "/n/faulted", clean.original, at, fault)
            after = read_tree("/n/faulted")
            ended = judge_outcome(after, clean.original, clean.migrated, "/n/scratch")
            note(f"the node ended {ended}")
            event(f"{fault}: the node ended {ended}")
            if fault != "power-cut":  # an error is reported, and apply undoes what it did before it returns
                assert ended == ("x15.5" if raised is None else "x15.4"), diff_trees(clean.original, after)

    @_scaled(0.05)
    @given(
        node=nodes(valid=True, x154=True),
        command=st.sampled_from(("apply", "rollback")),
        fault=st.sampled_from(FAULTS),
        data=st.data(),
    )
    def test_second_fault_during_recovery_still_leaves_x154_x155_or_recoverable(self, node, command, fault, data):
        """After apply (cut short or not), a fault at any call of the next apply or rollback still leaves it recoverable."""
        with fake_world():
            clean = CleanRun.of(node)
            at = data.draw(st.none() | fault_points(clean.calls), label="power cut at call (None: apply finished)")
            if at is None:
                cut = clean.migrated
            else:
                run_faulted(writer.apply, clean.tree, "/n/cut", clean.original, at, "power-cut")
                cut = read_tree("/n/cut")
            recover = writer.apply if command == "apply" else writer.rollback
            calls = count_calls(recover, cut, "/n/count")
            second = data.draw(fault_points(calls), label=f"{fault} at call of the recovering {command}")
            run_faulted(recover, cut, "/n/faulted", clean.original, second, fault)
            ended = judge_outcome(read_tree("/n/faulted"), clean.original, clean.migrated, "/n/scratch")
            note(f"the node ended {ended}")
            event(f"{fault} in the recovering {command}: the node ended {ended}")
