"""The reader of ``install-client``: the identity to install, parsed and verified, and its plan (the dry run).

Reads the files the administrator names (``--cert``, ``--key``, ``--chain``:
outside the node, so a link in their path is followed, as for
``assess --public-ca``), with a size cap; parses them with
:mod:`migrate.certs`; verifies the chain to the node's own ``ca.pem`` (and,
with ``--peer``, to the peer's) with ``cryptography.x509.verification``; and
hands the facts to the pure planner (:func:`migrate.install.make_install_plan`).
Never writes; the node is read while holding its lock shared.

The verification uses a client verifier (``PolicyBuilder().build_client_verifier()``)
whose extension policies accept any EKU: the EKU rule is judged by the planner
(so that ``--server-copy`` can be judged at all), except against the peer, where
``clientAuth`` is required, as the SSH tunnels require it whatever the checking mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from . import certs, facts, policy
from .errors import CertError, MigrateError
from .install import Candidate, InstallPlan, InstallReport, InstallRequest, PeerTrust, make_install_plan
from .journal import reading
from .model import Analysis, CertInfo, Layout
from .pem import armour, pem_blocks
from .scan import read_capped, scan


def read_input(path: str, what: str, *, private: bool = False) -> bytes:
    """The bytes of a file the administrator named (``--cert`` and the rest); ``install-input-unreadable`` otherwise.

    Read once, with a cap, never from a FIFO or device.  A ``private`` file
    (``--key``) must also be no link and, as read, a regular file owned by root
    (or the invoking user) that no other account can read or write, by its
    mode or its ACL: else ``install-key-unsafe``.  Another account that could
    replace or read the key would hold the node's client identity.
    """
    import os
    from pathlib import Path

    if private:  # the links of the directories' path are followed; the file's own name is opened O_NOFOLLOW
        where, name = os.path.split(path)
        state = read_capped(Path(os.path.realpath(where or "."), name), policy.MAX_PEM_BYTES, path, with_acl=True)
        if state.kind == "symlink":
            raise _key_unsafe(path, "a symbolic link")
    else:
        state = read_capped(Path(os.path.realpath(path)), policy.MAX_PEM_BYTES, path)
    if private and state.data is not None:
        problem = _private_file_problem(state, os.geteuid())
        if problem is not None:
            raise _key_unsafe(path, problem)
    if state.data is None:
        why = state.error or {"missing": "no such file", "too-large": f"over {policy.MAX_PEM_BYTES} bytes"}.get(
            state.kind, f"a {state.kind}, not a regular file"
        )
        raise MigrateError(
            f"cannot read the {what} ({why})",
            id="install-input-unreadable",
            path=path,
            hint=f"pass a readable PEM file as the {what}",
        )
    return state.data


def _private_file_problem(state, euid: int) -> str | None:
    """Why a key file, as read, is not the invoking administrator's alone; None when it is."""
    from .acl import USER

    if state.uid not in (0, euid):
        return f"owned by uid {state.uid}, not by root (nor by the user running the tool)"
    if state.mode is not None and state.mode & 0o077:
        return f"readable or writable by others (mode {state.mode:04o})"
    if state.acl is not None:
        if state.acl.error is not None:
            return f"under an ACL that cannot be read ({state.acl.error})"
        mask = state.acl.mask if state.acl.mask is not None else 0o7
        others = [e for e in state.acl.entries if e.named and e.perm & mask and not (e.tag == USER and e.id in (0, euid))]
        named = [e.who for e in others]
        if named:
            return f"readable or writable by {', '.join(named)} through its ACL"
    return None


def _key_unsafe(path: str, problem: str) -> MigrateError:
    return MigrateError(
        f"the private key {path} is {problem}: another account could have put it there, or can read it",
        id="install-key-unsafe",
        path=path,
        hint="keep the key in a regular file of root's that no one else can read or write "
        "(chown root FILE; chmod 0400 FILE; setfacl -b FILE), and pass that file itself, not a link",
    )


def names_of(cert: CertInfo) -> tuple[str, ...]:
    """The certificate's common names, then its DNS and IP subject alternative names."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    parsed = certs.x509_certificate(cert.der)
    out = [str(attr.value) for attr in parsed.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        san = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        san = None
    if san is not None:
        out += san.get_values_for_type(x509.DNSName)
        out += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dict.fromkeys(out))


def verify_chain(
    chain: Sequence[CertInfo], anchors: Sequence[CertInfo], now: datetime, *, client_auth: bool
) -> tuple[tuple[bytes, ...] | None, str | None]:
    """The verified path (DER, leaf first) of ``chain`` to ``anchors`` at ``now``, or why there is none.

    With ``client_auth``, the leaf (and each CA's EKU, where it has one) must allow ``clientAuth``.
    """
    from cryptography import x509
    from cryptography.x509 import verification as v

    if not anchors:
        return None, "the trusted CA list (ca.pem) is empty or cannot be read"

    def validator(_policy, _cert, ext) -> None:
        if client_auth and ext is not None and not policy.eku_allows({o.dotted_string for o in ext}, policy.CLIENT_AUTH):
            raise ValueError("no clientAuth EKU")

    eku = (x509.ExtendedKeyUsage, v.Criticality.AGNOSTIC, validator)
    verifier = (
        v.PolicyBuilder()
        .store(v.Store([certs.x509_certificate(a.der) for a in anchors]))
        .time(now)
        .extension_policies(
            ca_policy=v.ExtensionPolicy.webpki_defaults_ca().may_be_present(*eku),
            ee_policy=v.ExtensionPolicy.webpki_defaults_ee().may_be_present(*eku),
        )
        .build_client_verifier()
    )
    try:
        verified = verifier.verify(
            certs.x509_certificate(chain[0].der), [certs.x509_certificate(c.der) for c in chain[1:]]
        )
    except v.VerificationError as exc:
        return None, str(exc).split(" (encountered processing")[0].removeprefix("validation failed: ")
    from cryptography.hazmat.primitives.serialization import Encoding

    return tuple(c.public_bytes(Encoding.DER) for c in verified.chain), None


def _anchors(analysis: Analysis) -> tuple[CertInfo, ...]:
    ca = analysis.material.get(policy.CA_FILE)
    return ca.certs if ca is not None and ca.error is None else ()


def _parsed(load, data: bytes, path: str):
    """``load(data)``, a :class:`CertError` carrying ``path`` (the administrator's file) when it fails."""
    try:
        return load(data)
    except CertError as exc:
        raise CertError(exc.message, id=exc.id, path=path, hint=exc.hint) from None


def _peer(layout: Layout, chain: Sequence[CertInfo], now: datetime) -> PeerTrust:
    with reading(layout):
        analysis = facts.analyse(scan(layout, now=now))
    _, problem = verify_chain(chain, _anchors(analysis), now, client_auth=True)
    return PeerTrust(node=str(layout.root), trusted=problem is None, reason=problem)


def read_candidate(analysis: Analysis, request: InstallRequest, *, peer: Layout | None = None) -> Candidate:
    """The identity ``request`` names, as facts about the node ``analysis`` describes."""
    snap = analysis.snapshot
    now = snap.now
    files, material = snap.files, analysis.material
    cert_name, key_name, ssh_name = policy.store_files("server")
    server = material.get(cert_name)
    required = names_of(server.certs[0]) if server is not None and server.error is None and server.certs else ()
    bundle = None
    if request.server_copy:
        cert_path, key_path = files[cert_name].path, files[key_name].path
        chain_given = server.certs if server is not None and server.error is None else ()
        key = material.get(key_name)
        if not chain_given or key is None or key.key is None or files[key_name].data is None:
            raise MigrateError(
                "--server-copy needs a readable server certificate and key",
                id="install-input-unreadable",
                path=cert_path,
                hint="run precheck to see what is wrong with the server store",
            )
        key_info, key_pem = key.key, files[key_name].data or b""
        cert_pem = files[cert_name].data or b""
        bundle = files[ssh_name].data
    else:
        assert request.cert is not None  # the command line requires --cert or --server-copy
        cert_path = request.cert
        chain_given = _parsed(certs.load_certificates, read_input(request.cert, "certificate"), cert_path)
        if request.chain is not None:
            chain_given += _parsed(certs.load_ca_bundle, read_input(request.chain, "chain"), request.chain)
        if request.key is not None:
            key_path, key_data = request.key, read_input(request.key, "private key", private=True)
        else:  # a request made with --reuse-key: the node's own key
            key_path, key_data = files[key_name].path, files[key_name].data or b""
        key_info = _parsed(certs.load_private_key, key_data, key_path)
        key_pem = b"".join(armour(block.label, block.der) for block in pem_blocks(key_data))
        cert_pem = b""
    leaf = chain_given[0]
    path, problem = verify_chain(chain_given, _anchors(analysis), now, client_auth=False)
    if not request.server_copy:
        given = {c.der: c for c in chain_given[1:]}
        ordered = [given[der] for der in (path or ())[1:] if der in given] if path else list(given.values())
        chain = (leaf, *ordered)
        cert_pem = b"".join(armour("CERTIFICATE", c.der) for c in chain)
    else:
        chain = tuple(chain_given)
    return Candidate(
        cert_path=cert_path,
        key_path=key_path,
        chain_path=request.chain,
        certs=tuple(chain),
        key=key_info,
        names=names_of(leaf),
        required_names=required,
        trust_problem=problem,
        cert_pem=cert_pem,
        key_pem=key_pem,
        bundle_pem=bundle,
        server_copy=request.server_copy,
        peer=None if peer is None else _peer(peer, chain, now),
    )


def read_plan(layout: Layout, request: InstallRequest, *, peer: Layout | None = None, held=None) -> InstallPlan:
    """Scan the node (through ``held`` when a writer holds it), read the identity, and plan its install."""
    analysis = facts.analyse(scan(layout, held=held))
    candidate = read_candidate(analysis, request, peer=peer)
    return make_install_plan(analysis, candidate, warn_days=request.warn_days)


def plan_install(layout: Layout, request: InstallRequest) -> InstallReport:
    """``install-client --plan-only``: the plan, read under the node's shared lock; nothing is written."""
    peer = Layout.for_node(request.peer) if request.peer else None
    with reading(layout):
        plan = read_plan(layout, request, peer=peer)
    return InstallReport(plan=plan, result="planned" if plan.ready else "refused", findings=plan.findings)
