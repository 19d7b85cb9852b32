"""The findings about each managed file and each directory on the way: kind, size, mode, owner, ACL, contents."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from .. import acl, policy
from ..model import BLOCKER, INFO, WARNING, Analysis, FileState, Finding, Material, Snapshot, describe, key_supported

if TYPE_CHECKING:
    from collections.abc import Iterable

    from ..model import KeyInfo

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
    if state.kind == "missing" and _under_missing_directory(snap, path):
        return []  # one finding per cause: directory-missing names it
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
        if rule.store == "server" and rule.kind == "bundle":  # server-ssh.pem
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
    if material.key is not None and not key_supported(material.key):
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


def _under_missing_directory(snap: Snapshot, path: str) -> bool:
    return any(d.kind == "missing" and path.startswith(d.path.rstrip("/") + "/") for d in snap.dirs)


def _key_name(key: KeyInfo) -> str:
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
    assert state.mode is not None  # present and usable: a regular file the scan stat'ed
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


def _who(entries: Iterable[acl.AclEntry]) -> str:
    """``user 65534``, ``user 65534 and group 4242``: the named entries of an ACL in words."""
    names = [e.who for e in entries]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _leaf_findings(
    analysis: Analysis, rule: policy.FileRule, material: Material, warn_days: int
) -> list[Finding]:
    snap = analysis.snapshot
    path = snap.files[rule.name].path
    leaf = material.leaf
    out = []
    problem = material.chain_problem
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
    counterpart = rule.counterpart if rule.store == "client" else None  # a client file always has one (policy.FILES)
    if counterpart is not None and snap.files[rule.name].data == snap.files[counterpart].data:
        return out  # the copy of a server file: reported once, at the server file
    assert leaf is not None  # called only for a file with certificates
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
    if rule.store == "server" and rule.kind == "cert":  # server.pem
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
