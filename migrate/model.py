"""The value types every layer shares: where a node keeps its files, what was read, what was found.

Pure: the reader (:mod:`migrate.scan`) builds a :class:`Snapshot`; the checks,
the planner and the writer take it as a value.  Nothing here touches the disk.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
from collections.abc import Iterable, Mapping
from datetime import datetime
from pathlib import Path, PurePath
from typing import TYPE_CHECKING

import attrs

from . import policy, xconfig
from .acl import Acl
from .errors import CertError

if TYPE_CHECKING:
    from .install_record import InstallJournal
    from .record import Journal


@attrs.frozen
class Layout:
    """Where a node keeps what the migration reads and writes."""

    root: Path
    cert_dir: Path
    config: Path

    @classmethod
    def for_node(
        cls, root: str | PurePath, *, cert_dir: str | PurePath | None = None, config: str | PurePath | None = None
    ) -> Layout:
        """The layout of the node at ``root``; ``cert_dir``/``config`` override the defaults (relative to the cwd)."""
        top = Path(posixpath.abspath(root))
        certs = Path(posixpath.abspath(cert_dir)) if cert_dir else top / policy.CERT_DIR
        conf = Path(posixpath.abspath(config)) if config else top / policy.CONFIG_FILE
        return cls(root=top, cert_dir=certs, config=conf)

    @property
    def state_dir(self) -> Path:
        return self.root / policy.STATE_DIR

    @property
    def journal(self) -> Path:
        return self.state_dir / policy.JOURNAL_NAME

    @property
    def config_backup(self) -> Path:
        return self.state_dir / policy.CONFIG_BACKUP_NAME

    @property
    def lock(self) -> Path:
        return self.state_dir / policy.LOCK_NAME

    def cert(self, name: str) -> Path:
        return self.cert_dir / name

    def rel(self, path: str | PurePath) -> str:
        """``path`` relative to the node root when inside it, else as given (both absolute and normalised)."""
        return rel_path(str(self.root), str(path))

    def resolve(self, rel: str) -> Path:
        """The inverse of :meth:`rel`."""
        path = Path(rel)
        return path if path.is_absolute() else self.root / path


def rel_path(root: str, path: str) -> str:
    """``path`` relative to ``root`` when inside it, else as given: :meth:`Layout.rel` on strings."""
    # String work, not pathlib: the scan asks this for every file of every node of a fleet.
    if path == root:
        return "."
    prefix = root if root.endswith("/") else root + "/"
    return path.removeprefix(prefix)


@attrs.frozen
class FileState:
    """What one path held when it was scanned.

    ``kind`` is ``missing``, ``file``, ``dir``, ``symlink``, ``fifo``,
    ``socket``, ``device``, ``other``, ``unreadable`` or ``too-large``.  Only a
    regular file within the size cap has ``data``; it is never shown in a repr.
    """

    path: str
    kind: str
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    nlink: int = 0
    size: int = 0
    data: bytes | None = attrs.field(default=None, repr=False)
    error: str | None = None
    # Links that are this file's own staging name: a run killed between publishing it and removing that name.
    staged_links: int = 0
    inode: tuple[int, int] | None = attrs.field(default=None, eq=False, repr=False)  # (st_dev, st_ino)
    acl: Acl | None = None  # the access ACL, read for the secret files only (None: they have none)

    @property
    def sha256(self) -> str | None:
        return hashlib.sha256(self.data).hexdigest() if self.data is not None else None

    @property
    def exists(self) -> bool:
        return self.kind != "missing"

    @property
    def readable(self) -> bool:
        return self.data is not None

    def identity(self) -> dict[str, object]:
        """The parts of the state that matter to a plan: for the fingerprint."""
        return {
            "path": self.path,
            "kind": self.kind,
            "mode": self.mode,
            "uid": self.uid,
            "gid": self.gid,
            "nlink": self.nlink if self.kind == "file" else None,  # a directory's grows with its subdirectories
            "sha256": self.sha256,
            # Only when there is one: a node without ACLs keeps the fingerprint it had before ACLs were read.
            **({"acl": self.acl.identity()} if self.acl is not None else {}),
        }


@attrs.frozen
class Snapshot:
    """Everything the migration read from a node, at one moment."""

    layout: Layout
    files: Mapping[str, FileState]  # by policy file name
    config: FileState
    dirs: tuple[FileState, ...]  # the directories on the way to the managed files
    state_dir: FileState  # the tool's own directory; taking the lock creates it, so no part of the fingerprint
    temps: tuple[FileState, ...]  # staging files left by an interrupted run
    journal: FileState
    config_backup: FileState
    euid: int
    now: datetime
    # The default ACLs of the directories keys and the tool's state are created in, by display path; only those set.
    default_acls: Mapping[str, Acl] = attrs.field(factory=dict)
    root_dir: FileState | None = None  # the node root itself, as it was opened
    install_journal: FileState | None = None  # an install's journal (install-client), None when none was read

    # The journal, validated once when the snapshot is made: (the record, None) or (None, why not).
    _journal_read: tuple[Journal | None, str | None] = attrs.field(init=False, eq=False, repr=False)

    @_journal_read.default
    def _read_journal(self) -> tuple[Journal | None, str | None]:
        from . import record

        j = self.journal
        if not j.exists:
            return None, None
        if j.kind == "too-large":
            return None, f"it is over {policy.MAX_JOURNAL_BYTES} bytes, larger than any journal this tool writes"
        if j.kind == "unreadable":
            return None, f"it cannot be read ({j.error})"
        problem = policy.state_file_problem(j.kind, j.mode, j.uid, self.euid)
        if problem is None and self.config_backup.exists:
            backup = self.config_backup
            found = policy.state_file_problem(backup.kind, backup.mode, backup.uid, self.euid)
            problem = None if found is None else f"the configuration copy beside it: {found}"
        if problem is not None:
            return None, problem
        try:
            return record.load(j.data, self.layout), None
        except record.Invalid as exc:
            return None, str(exc)

    _install_read: tuple[InstallJournal | None, str | None] = attrs.field(init=False, eq=False, repr=False)

    @_install_read.default
    def _read_install_journal(self) -> tuple[InstallJournal | None, str | None]:
        from . import install_record, record

        j = self.install_journal
        if j is None or not j.exists:
            return None, None
        if j.kind == "too-large":
            return None, f"it is over {policy.MAX_JOURNAL_BYTES} bytes, larger than any journal this tool writes"
        if j.kind == "unreadable":
            return None, f"it cannot be read ({j.error})"
        problem = policy.state_file_problem(j.kind, j.mode, j.uid, self.euid)
        if problem is not None:
            return None, problem
        try:
            return install_record.load(j.data, self.layout, self.files), None
        except record.Invalid as exc:
            return None, str(exc)

    @property
    def install_exists(self) -> bool:
        """Whether the node has an install journal (trusted or not)."""
        return self.install_journal is not None and self.install_journal.exists

    @property
    def install_problem(self) -> str | None:
        """Why the install journal cannot be trusted; None when it can or is absent."""
        return self._install_read[1]

    @property
    def install_record(self) -> InstallJournal | None:
        """The install journal, validated (:mod:`migrate.install_record`); None when absent or not to be trusted."""
        return self._install_read[0]

    @property
    def journal_problem(self) -> str | None:
        """Why the journal (with the configuration copy beside it) cannot be trusted; None when it can or is absent."""
        return self._journal_read[1]

    @property
    def journal_record(self) -> Journal | None:
        """The journal as a validated :class:`migrate.record.Journal`; None when absent or not to be trusted."""
        return self._journal_read[0]

    @property
    def fingerprint(self) -> str:
        """A digest of everything a plan depends on: bytes, kinds, modes, owners."""
        parts: dict[str, object] = {
            "files": [self.files[name].identity() for name in sorted(self.files)],
            "config": self.config.identity(),
            "dirs": [d.identity() for d in self.dirs],
            "temps": [t.identity() for t in self.temps],
            "journal": self.journal.identity(),
            "config_backup": self.config_backup.identity(),
        }
        if self.install_exists:  # only when there is one: a node without keeps the fingerprint it had
            assert self.install_journal is not None
            parts["install_journal"] = self.install_journal.identity()
        if self.default_acls:  # only when there are some, as for a file's ACL
            parts["default_acls"] = {path: acl.identity() for path, acl in sorted(self.default_acls.items())}
        blob = json.dumps(parts, sort_keys=True, separators=(",", ":")).encode()
        return "sha256:" + hashlib.sha256(blob).hexdigest()


BLOCKER, WARNING, INFO = "blocker", "warning", "info"
SEVERITIES = (BLOCKER, WARNING, INFO)


@attrs.frozen
class Finding:
    """One thing a check found: id, severity, the path it is about, message and hint."""

    id: str
    severity: str
    path: str | None
    message: str
    hint: str = ""

    def as_dict(self) -> dict[str, str | None]:
        return {"id": self.id, "severity": self.severity, "path": self.path, "message": self.message, "hint": self.hint}


def blockers(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(f for f in findings if f.severity == BLOCKER)


# --- Facts about certificates and keys, as the reader parsed them -------------------

@attrs.frozen
class CertInfo:
    """What the migration needs to know about one X.509 certificate."""

    subject: str  # RFC 4514
    issuer: str  # RFC 4514
    serial: int
    not_before: datetime  # aware, UTC
    not_after: datetime  # aware, UTC
    # Dotted OIDs; None: the certificate has no EKU extension (unrestricted, RFC 5280).
    eku: frozenset[str] | None
    is_ca: bool
    self_signed: bool  # subject and issuer are the same name
    public_key_der: bytes = attrs.field(repr=False)  # SubjectPublicKeyInfo
    sha256: str  # hex fingerprint of der
    der: bytes = attrs.field(repr=False)
    subject_short: str = ""  # CN=... when the subject has a common name, else the RFC 4514 name
    issuer_short: str = ""

    def allows(self, oid: str) -> bool:
        """Whether the certificate may be used for the EKU ``oid``."""
        return policy.eku_allows(self.eku, oid)

    def eku_names(self) -> tuple[str, ...]:
        """The EKU as names (serverAuth, clientAuth, ...), unknown OIDs dotted; () when absent."""
        if self.eku is None:
            return ()
        known = tuple(name for oid, name in policy.EKU_NAMES_ALL.items() if oid in self.eku)
        unknown = tuple(sorted(oid for oid in self.eku if oid not in policy.EKU_NAMES_ALL))
        return known + unknown


def describe(cert: CertInfo) -> str:
    """A short human form: subject, issuer, expiry date and EKU."""
    eku = "none (unrestricted)" if cert.eku is None else "+".join(cert.eku_names()) or "empty"
    return f"{cert.subject_short}, issued by {cert.issuer_short}, expires {cert.not_after:%Y-%m-%d}, EKU {eku}"


@attrs.frozen
class KeyInfo:
    """The public facts of a private key: never any private material."""

    algorithm: str  # "rsa", "ec", "ed25519", "ed448", "dsa", ...
    bits: int
    curve: str | None  # ec only, cryptography's name ("secp256r1")
    public_key_der: bytes = attrs.field(repr=False)  # SubjectPublicKeyInfo of the public half
    format: str  # "pkcs8", "pkcs1", "sec1", "openssl-dsa", "openssh"


def key_supported(info: KeyInfo) -> bool:
    """Whether Expressway uses a key like ``info``: RSA of 2048 bits or more, or EC on P-256/384/521."""
    if info.algorithm not in policy.SUPPORTED_KEY_ALGORITHMS:
        return False
    if info.algorithm == "rsa":
        return info.bits >= policy.MIN_RSA_BITS
    return info.curve in policy.SUPPORTED_EC_CURVES


def key_matches(key: KeyInfo, cert: CertInfo) -> bool:
    """Whether ``key`` is the private half of ``cert``'s public key."""
    return key.public_key_der == cert.public_key_der


# --- A snapshot with its files parsed ---------------------------------------------


@attrs.frozen
class Material:
    """What one managed file holds, parsed: certificates and/or a key, or the error."""

    certs: tuple[CertInfo, ...] = ()
    key: KeyInfo | None = None
    error: CertError | None = None
    # Why the certificates are not one chain from the leaf up (names and signatures); None when they are.
    chain_problem: str | None = None

    @property
    def leaf(self) -> CertInfo | None:
        return self.certs[0] if self.certs else None


@attrs.frozen
class Analysis:
    """A snapshot with its PEM files parsed and its configuration read."""

    snapshot: Snapshot
    material: dict[str, Material]  # file name -> Material, for readable files
    settings: tuple[xconfig.Setting, ...]
    config_error: str | None = None

    def setting(self, name: str) -> tuple[xconfig.Setting, ...]:
        return xconfig.find(self.settings, name)
