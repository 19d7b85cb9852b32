"""``csr``: a PKCS#10 request for a node's client identity, for a private CA to sign.

The request copies the subject and the subject alternative names of the
node's current server certificate (the traversal peer verifies those names),
asks for ``serverAuth`` and ``clientAuth`` (:data:`migrate.policy.CSR_EKUS`)
and a key usage that matches the key (:data:`migrate.policy.CSR_KEY_USAGE`).

The key is new by default (``rsa:4096`` or ``ec:p256``), written next to the
request before it, created exclusively (``O_CREAT|O_EXCL|O_NOFOLLOW``) with
mode 0400, in a directory held open and checked first (:mod:`migrate.outputs`:
another account must not be able to swap it): never over an existing file,
never printed, never logged.
``--reuse-key`` signs with the node's ``privkey.pem`` instead, read only.
The node is read under its shared lock and never written.
"""

from __future__ import annotations

import shlex

import attrs

from . import certs, facts, logs, outputs, policy
from .errors import CertError, MigrateError
from .journal import reading
from .model import Layout
from .pem import armour
from .scan import scan

log = logs.get_logger(__name__)

_EXISTS_HINT = "choose another --out (the key goes next to it, with the suffix .key), or move the file away"


@attrs.frozen
class CsrResult:
    """What ``csr`` requested and where it wrote it; its document is ``as_dict()``."""

    node: str
    csr: str
    key: str | None  # the new key's path; None with --reuse-key
    key_source: str  # "new" or "node"
    key_type: str
    subject: str
    names: tuple[str, ...]
    key_usage: tuple[str, ...]
    source: str  # the certificate the subject and names come from
    sha256: str  # of the request's DER

    def as_dict(self) -> dict[str, object]:
        return {
            "format_version": policy.FORMAT_VERSION,
            "command": "csr",
            "node": self.node,
            "ok": True,
            "csr": self.csr,
            "key": self.key,
            "key_source": self.key_source,
            "key_type": self.key_type,
            "subject": self.subject,
            "names": list(self.names),
            "eku": [policy.EKU_NAMES[oid] for oid in policy.CSR_EKUS],
            "key_usage": list(self.key_usage),
            "source": self.source,
            "sha256": self.sha256,
            "inspect": policy.CSR_INSPECT.format(file=shlex.quote(self.csr)),
        }


def _new_key(kind: str):
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    algorithm, bits, _ = policy.CSR_KEY_TYPES[kind]
    if algorithm == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return ec.generate_private_key(ec.SECP256R1())


def _node_key(data: bytes | None, path: str):
    """The node's private key, for ``--reuse-key``: refused when it cannot be used (encrypted, unsupported)."""
    from cryptography.hazmat.primitives import serialization

    from .model import key_supported

    if data is None:
        raise MigrateError(
            "the node's private key cannot be read", id="node-unreadable", path=path, hint="run precheck to see why"
        )
    try:
        info = certs.load_private_key(data)
    except CertError as exc:
        raise CertError(exc.message, id=exc.id, path=path, hint=exc.hint) from None
    if not key_supported(info):
        raise CertError(
            f"the node's key is {info.algorithm} ({info.bits} bits): Expressway uses RSA of {policy.MIN_RSA_BITS} "
            "bits or more, or ECDSA on P-256, P-384 or P-521",
            id="key-unsupported",
            path=path,
            hint="make the request with a new key: csr --new-key rsa:4096 (or ec:p256)",
        )
    [block] = certs.pem_blocks(data)
    key = serialization.load_pem_private_key(armour(block.label, block.der), password=None)
    kind = f"ec:{info.curve}" if info.curve else f"{info.algorithm}:{info.bits}"
    return key, kind


def _key_usage(algorithm: str):
    from cryptography import x509

    wanted = set(policy.CSR_KEY_USAGE[algorithm])
    fields = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment", "key_agreement")
    flags = {name: name in wanted for name in fields}
    return x509.KeyUsage(**flags, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False)


def _default_out(cn: str) -> str:
    safe = "".join(c if c.isalnum() or c in ".-" else "_" for c in cn) or "node"
    return f"{safe}-client{policy.CSR_SUFFIX}"


def key_path_for(out: str) -> str:
    """Where the new key goes: next to the request, its suffix replaced (``core-client.key``)."""
    base = out[: -len(policy.CSR_SUFFIX)] if out.endswith(policy.CSR_SUFFIX) else out
    return base + policy.CSR_KEY_SUFFIX


def request(
    layout: Layout, *, new_key: str = policy.CSR_DEFAULT_KEY, reuse_key: bool = False, out: str | None = None
) -> CsrResult:
    """Write a request for the node's client identity (and its new key); what was requested."""
    # os is imported here, not at module level: this module is first imported by a command, which may run inside
    # a test's pyfakefs, and a module-level os would keep the fake one afterwards (as commands.py notes).
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    with reading(layout):
        analysis = facts.analyse(scan(layout))
    cert_name, key_name, _ = policy.store_files("server")
    files, material = analysis.snapshot.files, analysis.material.get(cert_name)
    if material is None or material.error is not None or not material.certs:
        why = material.error.message if material is not None and material.error else files[cert_name].kind
        raise MigrateError(
            f"the node's server certificate cannot be read ({why}): the request copies its subject and names",
            id="csr-no-certificate",
            path=files[cert_name].path,
            hint="run precheck to see what is wrong with it",
        )
    leaf = certs.x509_certificate(material.certs[0].der)
    try:
        san = list(leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        san = [x509.DNSName(str(a.value)) for a in leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    common = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    out = out or _default_out(str(common[0].value) if common else "")
    key_out = None if reuse_key else key_path_for(out)
    where, name = outputs.split(out)
    with outputs.directory(where) as held:  # checked before a key is made; both files are created in it
        key_entry = None if key_out is None else os.path.basename(key_out)
        for entry in (name, key_entry):
            if entry is not None and _exists(entry, held.fd):
                raise MigrateError(
                    f"{os.path.join(where, entry)} exists: csr never writes over a file",
                    id="output-exists",
                    path=os.path.join(where, entry),
                    hint=_EXISTS_HINT,
                )
        if reuse_key:
            key, key_type = _node_key(files[key_name].data, files[key_name].path)
        else:
            key, key_type = _new_key(new_key), new_key
        algorithm = "rsa" if isinstance(key, rsa.RSAPrivateKey) else "ec"
        digest = (
            hashes.SHA384()
            if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384
            else hashes.SHA256()
        )
        usage = _key_usage(algorithm)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(leaf.subject)
            .add_extension(x509.SubjectAlternativeName(san), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(usage, critical=True)
            .sign(key, digest)
        )
        try:
            if key_entry is not None:  # the key first: a request without its key is of no use
                pem = key.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
                )
                held.create(key_entry, pem, policy.CSR_KEY_MODE, hint_exists=_EXISTS_HINT)
            held.create(name, csr.public_bytes(serialization.Encoding.PEM), policy.CSR_FILE_MODE, hint_exists=_EXISTS_HINT)
        except MigrateError:
            held.discard()  # never a key left behind without its request
            raise
    names = tuple(str(getattr(n, "value", n)) for n in san)
    import hashlib

    return CsrResult(
        node=str(layout.root),
        csr=out,
        key=key_out,
        key_source="node" if reuse_key else "new",
        key_type=key_type,
        subject=leaf.subject.rfc4514_string(),
        names=names,
        key_usage=policy.CSR_KEY_USAGE[algorithm],
        source=files[cert_name].path,
        sha256=hashlib.sha256(csr.public_bytes(serialization.Encoding.DER)).hexdigest(),
    )


def _exists(name: str, dir_fd: int) -> bool:
    """Whether any entry (a link included) stands at ``name`` in the held directory."""
    import os

    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True
