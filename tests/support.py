"""What the writer tests expect of a node, written out here rather than taken from migrate.policy.

Shared by the writer, fault, kill and property tests: the scenarios, the
configuration apply must write, and the judges of a tree (its state, exposed
keys, the same tree modulo journal times).
"""

from __future__ import annotations

import functools
import json
import re

import attrs
import pytest

from migrate import checks, facts, writer
from migrate.scan import Layout, scan
from migrate.testing.factory import NodeSpec, issue, make_ca, node_tree
from migrate.testing.tree import Tree, diff_trees, read_tree, write_tree

# A test that makes or loads a DSA key through cryptography on purpose: cryptography deprecates DSA
# (51.0), and this one warning is expected there; any other warning still fails the test.
DSA_ON_PURPOSE = pytest.mark.filterwarnings("ignore:DSA is deprecated:cryptography.utils.CryptographyDeprecationWarning")

CERTS = "persistent/certs"
CONFIG = "persistent/xconfiguration.txt"
STATE = "persistent/.cert-migration"
JOURNAL = f"{STATE}/journal.json"
BACKUP = f"{STATE}/xconfiguration.orig"
LOCK = f"{STATE}/lock"
STAGING_SUFFIX = ".cert-migration.tmp"
RETIRED = "XCP TLS Certificate CVS EnableServerEkuUpload"
CHECKING_LINE = b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On"

# client file -> (counterpart, policy mode)
# The keys of plan's JSON document (API.md): precheck's, plus the fingerprint and the actions.
PLAN_KEYS = frozenset(
    {"format_version", "command", "node", "ready", "state", "migrated_by_tool", "fingerprint", "findings", "actions"}
)

CLIENT_FILES = {
    "client.pem": ("server.pem", 0o644),
    "clientprivkey.pem": ("privkey.pem", 0o440),
    "client-ssh.pem": ("server-ssh.pem", 0o600),
}
# Files of the certificate store that hold a private key, with their policy modes.
KEY_MODES = {"privkey.pem": 0o440, "clientprivkey.pem": 0o440, "server-ssh.pem": 0o600, "client-ssh.pem": 0o600}
NOBODY, PFWD = 65534, 1001
EDGE_UIDS = {"root": 0, "_nobody": 4001, "_pfwd": 4002}

# What a clean apply adds to an X15.4 node (besides changing the configuration's bytes).
ADDED_BY_APPLY = {STATE, JOURNAL, BACKUP, LOCK, *(f"{CERTS}/{name}" for name in CLIENT_FILES)}

SCENARIOS = ("core", "edge", "edge-crlf")

# A configuration tail with the retired setting a second time, bytes that are not UTF-8, and a
# last line without a newline.
MESSY_TAIL = (
    b"# operator note: caf\xe9 \xff\xfe (not UTF-8)\n"
    b'*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: "On"\n'
    b'*c xConfiguration Zz Operator Note: "last line, no newline"'
)


@functools.cache
def scenario(name: str) -> Tree:
    """The X15.4 node tree of a named scenario, built once per test session."""
    if name == "core":
        return node_tree(NodeSpec(role="core"))
    if name == "edge":
        public = make_ca("Example Public CA2", public=True)
        identity = issue(public, "edge.example.com", eku=["serverAuth"])
        return node_tree(NodeSpec(role="edge", identity=identity, settings={RETIRED: "On"}, uids=EDGE_UIDS))
    if name == "edge-crlf":
        public = make_ca("Example Public CA2", public=True)
        identity = issue(public, "edge.example.com", eku=["serverAuth"])
        tree = node_tree(NodeSpec(role="edge", identity=identity, settings={RETIRED: "On"}, config_extra=MESSY_TAIL))
        config = tree[CONFIG]
        tree[CONFIG] = attrs.evolve(config, data=config.data.replace(b"\n", b"\r\n"))
        return tree
    if name == "ssh-other":
        return node_tree(NodeSpec(role="core", ssh="other"))
    if name == "migrated":
        return node_tree(NodeSpec(role="core", client="migrated"))
    raise ValueError(name)


@functools.cache
def other_cert() -> bytes:
    """A certificate the migration never wrote: what an administrator might put in its place."""
    return issue(make_ca("Admin CA"), "admin.example.com").cert_pem


def _lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` with their endings; only LF ends a line."""
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", data)


def expected_config(data: bytes) -> bytes:
    """The configuration apply must write: no retired line, the checking line appended with the file's ending."""
    first = _lines(data)[0]
    eol = b"\r\n" if first.endswith(b"\r\n") else b"\n"
    kept = [line for line in _lines(data) if b"EnableServerEkuUpload" not in line]
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += eol
    return b"".join(kept) + CHECKING_LINE + eol


def plant(tree: Tree, root) -> Layout:
    """Write ``tree`` at ``root`` and return the node's layout."""
    write_tree(tree, root)
    return Layout.for_node(root)


def state_of(root) -> str:
    """The node state (x15.4, x15.5, interrupted, mixed) as checks reads it."""
    return checks.node_state(facts.analyse(scan(Layout.for_node(root))))[0]


def verify_ids(root) -> list[str]:
    """The ids of what X15.5 verification finds wrong on the node ([] = migrated)."""
    return [f.id for f in checks.verify(facts.analyse(scan(Layout.for_node(root))))]


def without_journal_bytes(tree: Tree) -> Tree:
    """``tree`` with the bytes of the journal (timestamps) and of the lock (a pid) blanked; modes and owners stay compared."""
    out = dict(tree)
    for rel in (JOURNAL, LOCK):
        if rel in out:
            out[rel] = attrs.evolve(out[rel], data=b"")
    return out


def without_journal_times(tree: Tree) -> Tree:
    """``tree`` with the journal's start and finish times removed, everything else of it kept."""
    out = dict(tree)
    if JOURNAL in out:
        record = json.loads(out[JOURNAL].data)
        record.pop("started", None)
        record.pop("finished", None)
        out[JOURNAL] = attrs.evolve(out[JOURNAL], data=json.dumps(record, sort_keys=True).encode())
    return out


def tree_key(tree: Tree) -> frozenset:
    """A hashable value equal for equal trees."""
    return frozenset((rel, attrs.astuple(entry)) for rel, entry in tree.items())


def exposed_keys(tree: Tree, original: Tree) -> list[str]:
    """Files anywhere in ``tree`` holding key material that someone who could not read the key before could read now.

    A file holding a private key may have no permission bit beyond the policy
    mode of the name it has (or is being staged for; 0600 elsewhere), no group
    or other bit that the X15.4 file holding that key lacks, and must belong
    to root or to the owner of that X15.4 file.
    """
    exposed = []
    for rel, entry in tree.items():
        if entry.kind != "file" or b"PRIVATE KEY" not in entry.data:
            continue
        name = rel.rpartition("/")[2]
        if name.startswith(".") and name.endswith(STAGING_SUFFIX):  # .NAME[.TOKEN].cert-migration.tmp
            name = name[1 : -len(STAGING_SUFFIX)]
            base, _, token = name.rpartition(".")
            if base and re.fullmatch(r"[0-9a-f]{16}", token):
                name = base
        source = original.get(f"{CERTS}/{CLIENT_FILES.get(name, (name,))[0]}")
        owners = {(0, 0)} | ({(source.uid, source.gid)} if source is not None else set())
        allowed = KEY_MODES.get(name, 0o600)
        if source is not None:  # a copy grants no group or other bit that the original does not
            allowed &= source.mode | 0o700
        if entry.mode & ~allowed or entry.uid not in {uid for uid, _ in owners}:
            exposed.append(f"{rel} {entry.mode:04o} uid {entry.uid}")
        elif entry.mode & 0o070 and entry.gid not in {gid for _, gid in owners}:
            exposed.append(f"{rel} {entry.mode:04o} gid {entry.gid}")
    return exposed


def check_recovers(after: Tree, original: Tree, migrated: Tree, scratch: str, label: str) -> None:
    """From the tree ``after``, apply reaches exactly ``migrated`` and rollback exactly ``original``.

    Each recovery runs on its own copy under ``scratch`` (a path that does not exist yet).
    """
    resume = f"{scratch}-apply"
    write_tree(after, resume)
    writer.apply(Layout.for_node(resume))
    assert verify_ids(resume) == [], label
    assert diff_trees(without_journal_bytes(migrated), without_journal_bytes(read_tree(resume))) == [], label
    undo = f"{scratch}-rollback"
    write_tree(after, undo)
    writer.rollback(Layout.for_node(undo))
    assert diff_trees(original, read_tree(undo)) == [], label


def clean_migration(tree: Tree, root) -> Tree:
    """The tree a clean apply gives for ``tree`` (written at ``root``)."""
    writer.apply(plant(tree, root))
    return read_tree(root)


def empty_journal(state: str) -> bytes:
    """A well-formed journal with no actions in ``state`` (``applying`` or ``applied``), as this tool writes one."""
    from migrate import record

    doc = record.Journal(
        tool="expressway-migrate test", state=state, started="2026-01-01T00:00:00+00:00", fingerprint="sha256:" + "0" * 64
    ).as_dict()
    return json.dumps(doc).encode()
