"""Findings about a scanned node: the precheck, the X15.5 verification, the node's state.

Pure functions of a :class:`~migrate.scan.Snapshot`: no I/O.  Each finding
has a stable kebab-case id; the ids are part of the JSON contract.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import attrs

from . import acl, policy, xconfig
from .errors import CertError
from .scan import FileState, Snapshot

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

    def as_dict(self) -> dict:
        return {"id": self.id, "severity": self.severity, "path": self.path, "message": self.message, "hint": self.hint}


def blockers(findings: Iterable[Finding]) -> tuple[Finding, ...]:
    return tuple(f for f in findings if f.severity == BLOCKER)


# --- Parsing, once ------------------------------------------------------------


@attrs.frozen
class Material:
    """What one managed file holds, parsed: certificates and/or a key, or the error."""

    certs: tuple = ()
    key: object | None = None  # certs.KeyInfo
    error: CertError | None = None

    @property
    def leaf(self):
        return self.certs[0] if self.certs else None


@attrs.frozen
class Analysis:
    """A snapshot with its PEM files parsed and its configuration read."""

    snapshot: Snapshot
    material: dict  # file name -> Material, for readable files
    settings: tuple  # xconfig.Setting
    config_error: str | None = None

    def setting(self, name: str) -> tuple:
        return xconfig.find(self.settings, name)


def analyse(snapshot: Snapshot) -> Analysis:
    """Parse every readable managed file and the configuration of ``snapshot``."""
    from . import certs

    material = {}
    for rule in policy.FILES:
        state = snapshot.files[rule.name]
        if state.data is None:
            continue
        try:
            if rule.kind == "ca":
                material[rule.name] = Material(certs=certs.load_ca_bundle(state.data))
            elif rule.kind == "cert":
                material[rule.name] = Material(certs=certs.load_certificates(state.data))
            elif rule.kind == "key":
                material[rule.name] = Material(key=certs.load_private_key(state.data))
            else:
                key, chain = certs.load_bundle(state.data)
                material[rule.name] = Material(certs=chain, key=key)
        except CertError as exc:
            material[rule.name] = Material(error=exc)
    settings = xconfig.parse(snapshot.config.data) if snapshot.config.data is not None else ()
    return Analysis(snapshot=snapshot, material=material, settings=settings)


# --- Precheck -----------------------------------------------------------------


def precheck(analysis: Analysis, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> tuple[Finding, ...]:
    """Every finding about a node that is about to be migrated."""
    snap = analysis.snapshot
    found: list[Finding] = []
    found += directory_findings(snap)
    for rule in policy.FILES:
        found += _file_findings(analysis, rule, warn_days)
    found += _key_acl_findings(snap)
    found += _default_acl_findings(snap)
    found += _identity_findings(analysis)
    found += _client_store_findings(analysis)
    found += _config_findings(analysis)
    found += _state_findings(snap)
    if snap.euid != 0:
        found.append(
            Finding(
                "not-root",
                WARNING,
                None,
                "not running as root: apply and rollback need root to set the owners of the client files",
                "run apply and rollback as root (precheck and plan work unprivileged)",
            )
        )
    return tuple(found)


_NOT_REGULAR = {
    "symlink": "a symbolic link",
    "dir": "a directory",
    "fifo": "a FIFO",
    "socket": "a socket",
    "device": "a device node",
    "other": "not a regular file",
}


def directory_findings(snap: Snapshot) -> list[Finding]:
    """Blockers for the node root, the directories on the way to the managed files, and the state directory.

    Each must be a plain directory (never a link), owned by root and writable
    by nobody else (:func:`policy.directory_problem`): whoever can write a
    directory can swap what it holds while the tool runs.
    """
    out = []
    root = (snap.root_dir,) if snap.root_dir is not None else ()
    for state in root + snap.dirs + (snap.state_dir,):
        if state.kind == "dir":
            problem = policy.directory_problem(state.mode or 0, state.uid if state.uid is not None else -1, snap.euid)
            if problem is not None:
                where = "the node root" if state is snap.root_dir else state.path
                fix = "chown root" if "owned by" in problem else "chmod go-w"
                what = "its state" if state is snap.state_dir else "what it holds"
                out.append(
                    Finding(
                        "unsafe-directory",
                        BLOCKER,
                        state.path,
                        f"{where} cannot be trusted: {problem}; another user could swap {what} while the tool runs",
                        f"{fix} {state.path} (then check what is in it), or pass a safe path with "
                        "--cert-dir / --config",
                    )
                )
            continue
        if state.kind == "missing" and state is snap.state_dir:
            continue
        if state.kind == "unreadable":
            out.append(
                Finding(
                    "directory-unreadable",
                    BLOCKER,
                    state.path,
                    f"directory {state.path} cannot be opened ({state.error})",
                    _unreadable_hint(snap.euid),
                )
            )
            continue
        if state.kind == "missing":
            out.append(
                Finding(
                    "directory-missing",
                    BLOCKER,
                    state.path,
                    f"directory {state.path} does not exist",
                    "pass the node root (e.g. /tandberg), or --cert-dir / --config",
                )
            )
        else:
            what = _NOT_REGULAR.get(state.kind, state.kind)
            out.append(
                Finding(
                    "directory-not-safe",
                    BLOCKER,
                    state.path,
                    f"{state.path} is {what}, not a plain directory: the migration never follows links",
                    "replace the link with the real directory, or pass the real path with --cert-dir / --config",
                )
            )
    return out


def _file_findings(analysis: Analysis, rule: policy.FileRule, warn_days: int) -> list[Finding]:
    snap = analysis.snapshot
    state = snap.files[rule.name]
    path = state.path
    if state.kind == "missing":
        if rule.required:
            return [
                Finding(
                    "file-missing",
                    BLOCKER,
                    path,
                    f"{rule.name} is missing: the X15.4 store needs it",
                    "restore it from a backup or a diagnostic bundle before migrating",
                )
            ]
        if rule.name == "server-ssh.pem":
            return [
                Finding(
                    "ssh-bundle-absent",
                    INFO,
                    path,
                    "no SSH tunnel identity (server-ssh.pem): no client-ssh.pem will be created",
                    "nothing to do unless this node carries SSH tunnels (MRA): then restore server-ssh.pem first",
                )
            ]
        return []
    unusable = _unusable(state, "file", rule.name, policy.MAX_PEM_BYTES, "replace it with the real PEM file", snap.euid)
    if unusable:
        return [unusable]
    out = _mode_findings(rule, state)
    material = analysis.material.get(rule.name)
    if material is None:
        return out
    if material.error is not None:
        err = material.error
        out.append(Finding(err.id, BLOCKER, path, f"{rule.name}: {err.message}", err.hint))
        return out
    if material.key is not None:
        from .certs import key_supported

        if not key_supported(material.key):
            out.append(
                Finding(
                    "key-unsupported",
                    BLOCKER,
                    path,
                    f"{rule.name} holds {_key_name(material.key)}, which Expressway does not use",
                    "use an RSA (2048 bits or more) or ECDSA (P-256/P-384/P-521) key",
                )
            )
    if rule.kind in ("cert", "bundle") and material.certs:
        out += _leaf_findings(analysis, rule, material, warn_days)
    return out


_KEY_NAMES = {"rsa": "an RSA", "ec": "an ECDSA", "dsa": "a DSA", "ed25519": "an Ed25519", "ed448": "an Ed448"}


def _key_name(key) -> str:
    """``an RSA key of 1024 bits``, ``an Ed25519 key``: the key as a sentence names it."""
    name = _KEY_NAMES.get(key.algorithm, f"a {key.algorithm}")
    if key.algorithm in ("rsa", "dsa"):
        return f"{name} key of {key.bits} bits"
    if key.curve:
        return f"{name} key on {key.curve}"
    return f"{name} key"


def _unreadable_hint(euid: int) -> str:
    return "run as root" if euid != 0 else policy.ROOT_REFUSED_HINT


def _unusable(state: FileState, prefix: str, what: str, cap: int, large_hint: str, euid: int = 0) -> Finding | None:
    """The blocker for a present file that cannot be read as one: ``<prefix>-not-regular``, ``-unreadable``, ``-too-large``."""
    if state.kind in _NOT_REGULAR:
        return Finding(
            f"{prefix}-not-regular",
            BLOCKER,
            state.path,
            f"{what} is {_NOT_REGULAR[state.kind]}, not a regular file: the migration never follows or opens it",
            "replace it with the regular file it should be",
        )
    if state.kind == "unreadable":
        return Finding(
            f"{prefix}-unreadable", BLOCKER, state.path, f"{what} cannot be read: {state.error}", _unreadable_hint(euid)
        )
    if state.kind == "too-large":
        return Finding(
            f"{prefix}-too-large",
            BLOCKER,
            state.path,
            f"{what} is {state.size} bytes, over the limit of {cap} bytes",
            large_hint,
        )
    return None


def _mode_findings(rule: policy.FileRule, state: FileState) -> list[Finding]:
    out = []
    extra = state.mode & ~rule.mode
    if rule.secret and state.mode & 0o004:
        out.append(
            Finding(
                "key-exposed",
                BLOCKER,
                state.path,
                f"{rule.name} holds a private key and is readable by every user (mode {state.mode:04o})",
                f"chmod {rule.mode:04o} {state.path}, then treat the key as compromised and renew it",
            )
        )
    elif extra:
        out.append(
            Finding(
                "mode-loose",
                WARNING,
                state.path,
                f"{rule.name} has mode {state.mode:04o}, looser than the policy {rule.mode:04o}",
                f"chmod {rule.mode:04o} {state.path}",
            )
        )
    links = state.nlink - state.staged_links  # its own staging name is removed by the plan
    if rule.secret and links > 1:
        out.append(
            Finding(
                "key-hardlinked",
                BLOCKER,
                state.path,
                f"{rule.name} holds a private key and has {links} hard links: another name shares it",
                "find the other links (find / -samefile FILE) and remove them",
            )
        )
    if rule.owner == "root" and state.uid != 0:
        out.append(
            Finding(
                "owner-unexpected",
                WARNING,
                state.path,
                f"{rule.name} is owned by uid {state.uid}, not root",
                f"chown root {state.path}",
            )
        )
    return out


def _key_acl_findings(snap: Snapshot) -> list[Finding]:
    """Blockers for a secret file whose access ACL lets a named user or group read it, or cannot be parsed.

    The owner and the owning group are the mode checks' business: a named
    entry for either grants nothing the mode bits do not show.
    """
    out = []
    for rule in policy.FILES:
        state = snap.files[rule.name]
        if not rule.secret or state.acl is None:
            continue
        if state.acl.error is not None:
            out.append(
                Finding(
                    "key-acl",
                    BLOCKER,
                    state.path,
                    f"{rule.name} holds a private key and has an ACL that cannot be parsed ({state.acl.error}): "
                    "who can read the key is unknown",
                    f"setfacl -b {state.path}; then find out who could have read the key, and renew it if in doubt",
                )
            )
            continue
        readers = [
            e
            for e in state.acl.readers()
            if not (e.tag == acl.USER and e.id == state.uid) and not (e.tag == acl.GROUP and e.id == state.gid)
        ]
        if readers:
            out.append(
                Finding(
                    "key-acl",
                    BLOCKER,
                    state.path,
                    f"{rule.name} holds a private key and its ACL lets {_who(readers)} read it",
                    f"setfacl -x {','.join(e.spec for e in readers)} {state.path}; "
                    "then renew the key unless they were trusted with it",
                )
            )
    return out


def _default_acl_findings(snap: Snapshot) -> list[Finding]:
    """Blockers for a directory whose default ACL would let a named user or group read a key created in it.

    The mask does not protect: a new file's ``chmod`` sets its mask to the
    group bits (0440 gives r), and that switches the inherited entry on.
    """
    cert_dir = snap.layout.rel(snap.layout.cert_dir)
    out = []
    for path, found in snap.default_acls.items():
        if path == cert_dir:
            what, heirs = "the certificate directory", "the client key files the migration creates"
        else:
            what, heirs = "the configuration's directory", "the migration's state directory and configuration backup"
        if found.error is not None:
            out.append(
                Finding(
                    "directory-default-acl",
                    BLOCKER,
                    path,
                    f"{what} {path} has a default ACL that cannot be parsed ({found.error}): who could read "
                    f"{heirs} is unknown",
                    f"setfacl -k {path}",
                )
            )
            continue
        readers = found.readers(masked=False)
        if readers:
            out.append(
                Finding(
                    "directory-default-acl",
                    BLOCKER,
                    path,
                    f"{what} {path} has a default ACL that lets {_who(readers)} read every new file in it: "
                    f"{heirs} would inherit it",
                    f"setfacl -d -x {','.join(e.spec for e in readers)} {path}",
                )
            )
    return out


def _who(entries) -> str:
    """``user 65534``, ``user 65534 and group 4242``: the named entries of an ACL in words."""
    names = [e.who for e in entries]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _leaf_findings(analysis: Analysis, rule, material: Material, warn_days: int) -> list[Finding]:
    from .certs import chain_problem, describe

    snap = analysis.snapshot
    path = snap.files[rule.name].path
    leaf = material.leaf
    out = []
    problem = chain_problem(material.certs)
    if problem:
        out.append(
            Finding(
                "several-certificates",
                BLOCKER,
                path,
                f"{rule.name} holds certificates that are not one chain: {problem}",
                "keep the leaf certificate first, followed only by its issuing chain",
            )
        )
    if rule.store == "client" and snap.files[rule.name].data == snap.files[rule.counterpart].data:
        return out  # the copy of a server file: reported once, at the server file
    if leaf.not_after <= snap.now:
        out.append(
            Finding(
                "cert-expired",
                BLOCKER,
                path,
                f"{rule.name} expired on {leaf.not_after:%Y-%m-%d}: {describe(leaf)}",
                "renew the certificate before migrating; the client store would inherit it",
            )
        )
    elif leaf.not_after - snap.now <= timedelta(days=warn_days):
        out.append(
            Finding(
                "cert-expiring",
                WARNING,
                path,
                f"{rule.name} expires on {leaf.not_after:%Y-%m-%d}, within {warn_days} days",
                "renew it soon; after the upgrade renew the server and the client certificate",
            )
        )
    if leaf.not_before > snap.now:
        out.append(
            Finding(
                "cert-not-yet-valid",
                WARNING,
                path,
                f"{rule.name} is not valid before {leaf.not_before:%Y-%m-%d}",
                "check the node's clock and the certificate",
            )
        )
    if rule.name == "server.pem":
        if leaf.eku is not None and not leaf.allows(policy.CLIENT_AUTH):
            out.append(
                Finding(
                    "cert-no-client-eku",
                    WARNING,
                    path,
                    f"server.pem has no clientAuth EKU ({describe(leaf)}): {policy.NO_CLIENT_AUTH_CONSEQUENCE}",
                    policy.NO_CLIENT_AUTH_FIX,
                )
            )
        if leaf.eku is not None and not leaf.allows(policy.SERVER_AUTH):
            out.append(
                Finding(
                    "cert-no-server-eku",
                    WARNING,
                    path,
                    "server.pem has no serverAuth EKU: peers refuse it when this node accepts TLS",
                    "install a server certificate with the serverAuth EKU",
                )
            )
    return out


@attrs.frozen
class _Store:
    """One identity store, for the consistency checks: its files, finding ids and hints."""

    label: str
    cert: str
    key: str
    ssh: str
    key_id: str
    ssh_id: str
    key_hint: str
    ssh_hint: str


_SERVER_STORE = _Store(
    "server identity",
    "server.pem",
    "privkey.pem",
    "server-ssh.pem",
    "key-mismatch",
    "ssh-identity-mismatch",
    "install the key that belongs to server.pem (or the certificate that belongs to the key)",
    "regenerate server-ssh.pem from privkey.pem and server.pem, or reinstall the server certificate",
)
_CLIENT_STORE = _Store(
    "client store",
    "client.pem",
    "clientprivkey.pem",
    "client-ssh.pem",
    "client-key-mismatch",
    "client-ssh-identity-mismatch",
    "reinstall the client certificate and its key",
    "reinstall the client certificate so that the SSH identity is regenerated",
)


def _identity_findings(analysis: Analysis, store: _Store = _SERVER_STORE) -> list[Finding]:
    """The store's key matches its certificate, and its SSH bundle holds that same identity."""
    from .certs import key_matches

    m, files = analysis.material, analysis.snapshot.files
    usable = {name: m.get(name) is not None and m[name].error is None for name in (store.cert, store.key, store.ssh)}
    if not usable[store.cert]:
        return []
    cert = m[store.cert]
    out = []
    if usable[store.key] and not key_matches(m[store.key].key, cert.leaf):
        out.append(
            Finding(
                store.key_id,
                BLOCKER,
                files[store.key].path,
                f"{store.key} does not hold the private key of the certificate in {store.cert}",
                store.key_hint,
            )
        )
    if usable[store.ssh]:
        ssh = m[store.ssh]
        same_key = key_matches(ssh.key, cert.leaf)
        if usable[store.key]:
            same_key = same_key and ssh.key.public_key_der == m[store.key].key.public_key_der
        same_cert = ssh.leaf.der == cert.leaf.der
        if not (same_key and same_cert):
            what = "identity" if not (same_key or same_cert) else "key" if not same_key else "certificate"
            out.append(
                Finding(
                    store.ssh_id,
                    BLOCKER,
                    files[store.ssh].path,
                    f"{store.ssh} holds a different {what} from the {store.label} ({store.cert} + {store.key}); "
                    "the migration does not guess which identity the SSH tunnels should carry",
                    store.ssh_hint,
                )
            )
    return out


def client_store_established(analysis: Analysis) -> bool:
    """True when the node already runs X15.5: a complete client store and no retired setting."""
    snap = analysis.snapshot
    for rule in policy.CLIENT_FILES:
        if snap.files[rule.counterpart].exists and snap.files[rule.name].kind != "file":
            return False
    return not analysis.setting(policy.RETIRED_SETTING)


def _client_store_findings(analysis: Analysis) -> list[Finding]:
    snap = analysis.snapshot
    established = client_store_established(analysis)
    out = []
    for rule in policy.CLIENT_FILES:
        state, source = snap.files[rule.name], snap.files[rule.counterpart]
        if state.kind != "file" or source.data is None:
            continue
        if state.data == source.data:
            if not established:  # a copy the migration would keep as it is: it must already be right
                out += _client_policy_findings(rule, state, source)
            continue
        if established:
            out.append(
                Finding(
                    "client-store-own-identity",
                    INFO,
                    state.path,
                    f"{rule.name} differs from {rule.counterpart}: the client store has its own identity",
                    "nothing to do: the migration leaves the client store as it is",
                )
            )
        else:
            out.append(
                Finding(
                    "client-store-conflict",
                    BLOCKER,
                    state.path,
                    f"{rule.name} already exists and differs from {rule.counterpart}, which the migration would copy there",
                    f"move {state.path} out of the way if it is stale; the migration never overwrites or deletes it",
                )
            )
    if not established:
        return out
    out += _identity_findings(analysis, _CLIENT_STORE)
    return out


def _config_findings(analysis: Analysis) -> list[Finding]:
    snap = analysis.snapshot
    state = snap.config
    path = state.path
    if state.kind == "missing":
        return [
            Finding(
                "config-missing",
                BLOCKER,
                path,
                "the configuration file is missing: the retired setting cannot be checked or removed",
                "save the node's configuration there (xconfiguration > FILE), or pass --config",
            )
        ]
    unusable = _unusable(
        state,
        "config",
        "the configuration",
        policy.MAX_CONFIG_BYTES,
        "check that --config names the xConfiguration text",
        snap.euid,
    )
    if unusable:
        return [unusable]
    if not state.data.strip():
        return [
            Finding(
                "config-empty",
                BLOCKER,
                path,
                "the configuration file is empty: a node's configuration has hundreds of settings",
                "save the node's configuration there again (xconfiguration > FILE), or pass --config",
            )
        ]
    out = []
    if state.mode is not None and state.mode & 0o002:
        out.append(
            Finding(
                "mode-loose",
                WARNING,
                path,
                f"the configuration is writable by every user (mode {state.mode:04o})",
                f"chmod o-w {path}",
            )
        )
    retired = analysis.setting(policy.RETIRED_SETTING)
    if len(retired) > policy.MAX_RETIRED_LINES:
        out.append(
            Finding(
                "retired-setting-repeated",
                BLOCKER,
                path,
                f"EnableServerEkuUpload is set on {len(retired)} lines, more than the {policy.MAX_RETIRED_LINES} "
                "the migration retires in one run",
                "keep one line for 'XCP TLS Certificate CVS EnableServerEkuUpload' (xconfiguration prints it once)",
            )
        )
    values = {xconfig.is_on(s.value) for s in retired}
    if len(values) > 1:
        lines = ", ".join(str(s.line_no) for s in retired)
        out.append(
            Finding(
                "retired-setting-conflict",
                WARNING,
                path,
                f"EnableServerEkuUpload is set several times with different values (lines {lines})",
                "the migration retires every line; check which value the node really used",
            )
        )
    if True in values:
        out.append(
            Finding(
                "server-eku-upload-on",
                WARNING,
                path,
                "EnableServerEkuUpload is On: this node was allowed a server certificate without clientAuth, "
                "and X15.5 retires the switch; if server.pem lacks clientAuth, "
                f"{policy.NO_CLIENT_AUTH_CONSEQUENCE}",
                policy.NO_CLIENT_AUTH_FIX,
            )
        )
    elif retired:
        out.append(
            Finding(
                "retired-setting-present",
                INFO,
                path,
                "EnableServerEkuUpload is set; X15.5 retires it and the migration removes the line",
                "nothing to do: apply removes the line, rollback restores it",
            )
        )
    checking = analysis.setting(policy.CHECKING_SETTING)
    modes = {xconfig.is_on(s.value) for s in checking}
    if len(modes) > 1:
        out.append(
            Finding(
                "checking-mode-conflict",
                BLOCKER,
                path,
                "the EKU Checking Mode is set several times with different values",
                "keep one line for 'SIP TLS Certificate ExtendedKeyUsage Checking Mode'",
            )
        )
    elif None in modes:
        out.append(
            Finding(
                "checking-mode-invalid",
                BLOCKER,
                path,
                f"the EKU Checking Mode has a value that is neither On nor Off: {checking[0].value!r}",
                "set it to On or Off",
            )
        )
    elif False in modes:
        out.append(
            Finding(
                "checking-mode-off",
                INFO,
                path,
                "EKU Checking Mode is Off: inbound SIP TLS skips the clientAuth check, but the SSH tunnels still require clientAuth",
                "turning the check off is not a fix: give the Core a client certificate with clientAuth",
            )
        )
    return out


JOURNAL_WAY_OUT = (
    "apply and rollback never act on a journal they cannot trust, and nothing was changed: compare the node "
    f"with its backup and restore what differs, then remove {policy.STATE_DIR}"
)


def _state_findings(snap: Snapshot) -> list[Finding]:
    out = []
    problem = snap.journal_problem
    record = snap.journal_record if problem is None else None
    if snap.journal.exists and record is None:
        out.append(
            Finding(
                "journal-invalid",
                BLOCKER,
                snap.journal.path,
                f"the migration journal cannot be trusted: {problem or 'it cannot be read'}",
                JOURNAL_WAY_OUT,
            )
        )
    elif record is None:
        for temp in snap.temps:
            out.append(
                Finding(
                    "stale-temp-file",
                    BLOCKER,
                    temp.path,
                    "a staging file of the migration exists but there is no journal",
                    f"remove {temp.path} after checking what it is",
                )
            )
    elif not record.applied:
        out.append(
            Finding(
                "migration-interrupted",
                WARNING,
                snap.journal.path,
                "a migration was interrupted: apply completes it, rollback undoes it",
                "run apply again, or rollback",
            )
        )
    return out


# --- Verification -------------------------------------------------------------


def _client_policy_findings(rule: policy.FileRule, state: FileState, source: FileState) -> list[Finding]:
    """A client file's mode must be the policy's (or, for a key, no looser than its counterpart), its owner its counterpart's."""
    out = []
    expected = policy.client_mode(rule, source.mode if source.mode is not None else rule.mode)
    if state.mode not in (rule.mode, expected):
        out.append(
            Finding(
                "client-file-mode",
                BLOCKER,
                state.path,
                f"{rule.name} has mode {state.mode:04o}, the policy says {expected:04o}",
                f"chmod {expected:04o} {state.path}",
            )
        )
    if (state.uid, state.gid) != (source.uid, source.gid):
        out.append(
            Finding(
                "client-file-owner",
                BLOCKER,
                state.path,
                f"{rule.name} is owned by {state.uid}:{state.gid}, its counterpart {rule.counterpart} by "
                f"{source.uid}:{source.gid}",
                f"chown {source.uid}:{source.gid} {state.path}",
            )
        )
    return out


def verify(analysis: Analysis) -> tuple[Finding, ...]:
    """Every way the node falls short of the X15.5 invariants; empty when they hold."""
    snap = analysis.snapshot
    out: list[Finding] = [f for f in precheck(analysis) if f.severity == BLOCKER]
    for rule in policy.CLIENT_FILES:
        state, source = snap.files[rule.name], snap.files[rule.counterpart]
        if not source.exists:
            continue
        if state.kind != "file":
            if state.kind == "missing":
                out.append(Finding("client-file-missing", BLOCKER, state.path, f"{rule.name} is missing", "run apply"))
            continue
        out += _client_policy_findings(rule, state, source)
    if analysis.setting(policy.RETIRED_SETTING):
        out.append(
            Finding(
                "retired-setting-present",
                BLOCKER,
                snap.config.path,
                "EnableServerEkuUpload is still set; X15.5 retired it",
                "run apply",
            )
        )
    if snap.config.data is not None and not analysis.setting(policy.CHECKING_SETTING):
        out.append(
            Finding(
                "checking-mode-unstated",
                BLOCKER,
                snap.config.path,
                "the EKU Checking Mode is not stated in the configuration",
                "run apply",
            )
        )
    found = snap.journal_record
    if found is not None and not found.applied:
        out.append(
            Finding(
                "migration-interrupted",
                BLOCKER,
                snap.journal.path,
                "a migration was interrupted",
                "run apply again, or rollback",
            )
        )
    return tuple(_unique(out))


def _unique(findings: Iterable[Finding]) -> list[Finding]:
    seen, out = set(), []
    for f in findings:
        if f not in seen:
            seen.add(f)
            out.append(f)
    return out


# --- State --------------------------------------------------------------------

X154, X155, INTERRUPTED, MIXED = "x15.4", "x15.5", "interrupted", "mixed"


def node_state(analysis: Analysis) -> tuple[str, bool]:
    """The node's state and whether this tool migrated it (a journal exists)."""
    snap = analysis.snapshot
    if snap.journal.exists:
        found = snap.journal_record
        if found is None or not found.applied:
            return INTERRUPTED, True
        return X155, True
    if not any(snap.files[rule.name].exists for rule in policy.CLIENT_FILES):
        return X154, False
    if client_store_established(analysis):
        return X155, False
    return MIXED, False
