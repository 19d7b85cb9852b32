"""The findings about each identity store: its key, its certificate and its SSH bundle agree; the client store."""

from __future__ import annotations

import attrs

from .. import policy
from ..model import BLOCKER, INFO, Analysis, FileState, Finding, key_matches


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


_SERVER = policy.store_files("server")
_CLIENT = policy.store_files("client")
_SERVER_STORE = _Store(
    "server identity",
    *_SERVER,
    "key-mismatch",
    "ssh-identity-mismatch",
    f"install the key that belongs to {_SERVER[0]} (or the certificate that belongs to the key)",
    f"regenerate {_SERVER[2]} from {_SERVER[1]} and {_SERVER[0]}, or reinstall the server certificate",
)
_CLIENT_STORE = _Store(
    "client store",
    *_CLIENT,
    "client-key-mismatch",
    "client-ssh-identity-mismatch",
    "reinstall the client certificate and its key",
    "reinstall the client certificate so that the SSH identity is regenerated",
)


def _identity_findings(analysis: Analysis, store: _Store = _SERVER_STORE) -> list[Finding]:
    """The store's key matches its certificate, and its SSH bundle holds that same identity."""
    m, files = analysis.material, analysis.snapshot.files
    usable = {name: m.get(name) is not None and m[name].error is None for name in (store.cert, store.key, store.ssh)}
    if not usable[store.cert]:
        return []
    cert = m[store.cert].leaf
    key = m[store.key].key if usable[store.key] else None
    # Parsed without an error, a certificate file holds a certificate and a key file its key (migrate.certs).
    assert cert is not None and (key is not None or not usable[store.key])
    out = []
    if key is not None and not key_matches(key, cert):
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
        # Parsed without an error, an SSH bundle holds a key and a certificate (migrate.certs.load_bundle).
        assert ssh.key is not None and ssh.leaf is not None
        same_key = key_matches(ssh.key, cert)
        if key is not None:
            same_key = same_key and ssh.key.public_key_der == key.public_key_der
        same_cert = ssh.leaf.der == cert.der
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
        assert rule.counterpart is not None  # every client file has one (policy.FILES)
        if snap.files[rule.counterpart].exists and snap.files[rule.name].kind != "file":
            return False
    return not analysis.setting(policy.RETIRED_SETTING)


def _client_store_findings(analysis: Analysis) -> list[Finding]:
    snap = analysis.snapshot
    established = client_store_established(analysis)
    out = []
    for rule in policy.CLIENT_FILES:
        assert rule.counterpart is not None  # every client file has one (policy.FILES)
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


def _client_policy_findings(rule: policy.FileRule, state: FileState, source: FileState) -> list[Finding]:
    """A client file's mode must be the policy's, its owner its counterpart's.

    A key's copy may not let anyone read it who cannot read the original: the
    policy mode narrowed by the counterpart's (``privkey.pem`` 0400 or 0000
    makes 0440 too wide for ``clientprivkey.pem``).
    """
    out = []
    source_mode = source.mode if source.mode is not None else rule.mode
    expected = policy.client_mode(rule, source_mode)
    wider = rule.secret and state.mode is not None and bool(state.mode & 0o077 & ~source_mode)
    if state.mode not in (rule.mode, expected) or wider:
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
