"""Test PKI: CAs, identities, certificates with chosen EKUs, validity and keys; CRLs; CSRs.

The test-suite states DOMAIN.md's certificates in one line each::

    ca = make_ca("Example Public CA2", public=True)
    ident = issue(ca, "edge.example.com", eku=["serverAuth"], key_type="rsa2048")

Pure ``cryptography``, in memory: nothing here touches a file system.

Key generation is slow for RSA and DSA (RSA-4096 takes about a second), so
those keys come round-robin from a small module-level pool per key type,
filled on demand: a test session generates each at most :data:`POOL_SIZE`
times.  CA keys and leaf keys come from separate pools, so a leaf never
shares its issuer's key, and two leaves issued one after the other always get
different keys.  EC and Ed25519 keys are cheap and always fresh.
"""

from __future__ import annotations

import ipaddress
import threading
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import policy

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes as PrivateKey

KEY_TYPES = ("rsa2048", "rsa4096", "ec256", "ec384", "ed25519", "dsa2048")
KEY_FORMATS = ("pkcs8", "pkcs1", "sec1")
EKU_OIDS = {"serverAuth": policy.SERVER_AUTH, "clientAuth": policy.CLIENT_AUTH}

# RSA and DSA keys per pool (at least 3, so that leaves issued in a row differ).
POOL_SIZE = 3
_POOLED = ("rsa2048", "rsa4096", "dsa2048")
_pools: dict[tuple[str, str], list] = {}
_turns: dict[tuple[str, str], int] = {}
_pool_lock = threading.Lock()

LEAF_VALIDITY = (timedelta(days=30), timedelta(days=365))  # before / after now
CA_VALIDITY = (timedelta(days=30), timedelta(days=3650))


def _generate(key_type: str):
    if key_type == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if key_type == "rsa4096":
        return rsa.generate_private_key(public_exponent=65537, key_size=4096)
    if key_type == "ec256":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "ec384":
        return ec.generate_private_key(ec.SECP384R1())
    if key_type == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if key_type == "dsa2048":
        return _dsa2048()
    raise ValueError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


def _dsa2048():
    """A DSA key, made on purpose: a node holding one must be refused.

    cryptography deprecates DSA (51.0) on the way to removing it; this is the
    one place the kit touches it, with that one warning silenced, so that any
    other deprecation still fails a strict test run.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "DSA is deprecated", CryptographyDeprecationWarning)
        try:
            from cryptography.hazmat.primitives.asymmetric import dsa
        except ImportError:  # pragma: no cover - a cryptography without DSA
            raise ValueError("key type 'dsa2048' needs a cryptography release that still makes DSA keys") from None
        return dsa.generate_private_key(key_size=2048)


def _key(key_type: str, purpose: str):
    """A private key of ``key_type``: fresh if cheap, else the pool's next for ``purpose``."""
    if key_type not in KEY_TYPES:
        raise ValueError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")
    if key_type not in _POOLED:
        return _generate(key_type)
    slot = (key_type, purpose)
    with _pool_lock:
        pool = _pools.setdefault(slot, [])
        turn = _turns.get(slot, 0)
        _turns[slot] = turn + 1
        index = turn % max(POOL_SIZE, 3)
        if index == len(pool):
            pool.append(_generate(key_type))
        return pool[index]


def _hash_for(key):
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def _now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def _validity(not_before, not_after, default) -> tuple[datetime, datetime]:
    now = _now()
    not_before = not_before if not_before is not None else now - default[0]
    not_after = not_after if not_after is not None else now + default[1]
    if not_after <= not_before:
        raise ValueError(f"not_after ({not_after}) must be later than not_before ({not_before})")
    return not_before, not_after


def _signing_key(key: PrivateKey | None) -> PrivateKey:
    """The private key of a :class:`CA` or an :class:`Identity`."""
    assert key is not None  # make_ca and issue, the only makers of either, always set it
    return key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@attrs.frozen
class CA:
    """A certificate authority: its name, self-signed certificate, and (privately) its key.

    ``public`` says the CA stands for a public one (it names the
    organisation; the EKUs of what it issues are what :func:`issue` is told).
    The repr and equality never involve the key.
    """

    name: str
    cert_pem: bytes = attrs.field(repr=False)
    key_type: str = "ec256"
    public: bool = False
    _key: PrivateKey | None = attrs.field(default=None, repr=False, eq=False, alias="key")

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)


@attrs.frozen
class Identity:
    """A leaf certificate (``cert_pem``: the leaf only), its issuer, and (privately) its key."""

    cn: str
    cert_pem: bytes = attrs.field(repr=False)
    ca: CA
    key_type: str = "ec256"
    _key: PrivateKey | None = attrs.field(default=None, repr=False, eq=False, alias="key")

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def chain_pem(self) -> bytes:
        """The leaf, then the issuing CA's certificate."""
        return self.cert_pem + self.ca.cert_pem

    def key_pem(self, format: str = "pkcs8", password: bytes | None = None) -> bytes:
        """The private key as PEM: ``pkcs8`` (any key), ``pkcs1`` (RSA), ``sec1`` (EC).

        With ``password``, PKCS#8 is encrypted (``ENCRYPTED PRIVATE KEY``);
        PKCS#1 and SEC1 use the legacy OpenSSL PEM encryption (``DEK-Info``).
        """
        if format == "pkcs8":
            private_format = serialization.PrivateFormat.PKCS8
        elif format == "pkcs1":
            if not isinstance(self._key, rsa.RSAPrivateKey):
                raise ValueError(f"pkcs1 is an RSA key format; this key is {self.key_type}")
            private_format = serialization.PrivateFormat.TraditionalOpenSSL
        elif format == "sec1":
            if not isinstance(self._key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"sec1 is an EC key format; this key is {self.key_type}")
            private_format = serialization.PrivateFormat.TraditionalOpenSSL
        else:
            raise ValueError(f"unknown key format {format!r}; expected one of {', '.join(KEY_FORMATS)}")
        encryption = serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
        return _signing_key(self._key).private_bytes(serialization.Encoding.PEM, private_format, encryption)

    def bundle_pem(self, format: str = "pkcs8") -> bytes:
        """The private key, then the leaf certificate: the shape of ``server-ssh.pem``."""
        return self.key_pem(format) + self.cert_pem


def make_ca(
    name: str,
    *,
    key_type: str = "ec256",
    public: bool = False,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> CA:
    """A self-signed CA called ``name``; valid from 30 days ago for ten years unless told."""
    key = _key(key_type, "ca")
    not_before, not_after = _validity(not_before, not_after, CA_VALIDITY)
    org = "Example Public Trust" if public else "Example Internal PKI"
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .sign(key, _hash_for(key))
    )
    return CA(name=name, cert_pem=_pem(cert), key_type=key_type, public=public, key=key)


def _eku_oids(eku: Sequence[str]) -> list[x509.ObjectIdentifier]:
    if isinstance(eku, str):
        raise TypeError("eku is a sequence of names, e.g. ['serverAuth'], not one string")
    if not eku:
        raise ValueError("an EKU extension needs at least one usage; pass eku=None for no extension")
    oids = []
    for usage in eku:
        dotted = EKU_OIDS.get(usage, usage)
        if not all(part.isdigit() for part in dotted.split(".")):
            raise ValueError(f"unknown EKU {usage!r}; use serverAuth, clientAuth or a dotted OID")
        oids.append(x509.ObjectIdentifier(dotted))
    return oids


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def issue(
    ca: CA,
    cn: str,
    *,
    eku: Sequence[str] | None = ("serverAuth", "clientAuth"),
    key_type: str = "ec256",
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    san: Sequence[str] = (),
) -> Identity:
    """A leaf certificate for ``cn`` signed by ``ca``.

    ``eku`` names usages (``serverAuth``, ``clientAuth``, or dotted OIDs);
    ``None`` leaves the EKU extension out altogether (unrestricted).  The SAN
    holds ``cn`` and then ``san`` (IP addresses as IP entries, the rest DNS).
    Valid from 30 days ago for 365 days unless told.
    """
    ca_key = _signing_key(ca._key)
    key = _key(key_type, "leaf")
    not_before, not_after = _validity(not_before, not_after, LEAF_VALIDITY)
    names = list(dict.fromkeys([cn, *san]))
    ca_cert = ca.certificate
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=True,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(_eku_oids(eku)), critical=False)
    cert = builder.sign(ca_key, _hash_for(ca_key))
    return Identity(cn=cn, cert_pem=_pem(cert), ca=ca, key_type=key_type, key=key)


def make_crl(
    ca: CA,
    *,
    revoked: Sequence[int] = (),
    last_update: datetime | None = None,
    next_update: datetime | None = None,
) -> bytes:
    """A PEM CRL signed by ``ca`` revoking the given serial numbers (none by default)."""
    last_update = last_update or _now() - timedelta(days=1)
    next_update = next_update or last_update + timedelta(days=30)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.certificate.subject)
        .last_update(last_update)
        .next_update(next_update)
    )
    for serial in revoked:
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(last_update).build()
        )
    ca_key = _signing_key(ca._key)
    return builder.sign(ca_key, _hash_for(ca_key)).public_bytes(serialization.Encoding.PEM)


def csr_pem(identity: Identity) -> bytes:
    """A pending CSR for the node's name, signed with the server key (a renewal in progress)."""
    key = _signing_key(identity._key)
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, identity.cn)]))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(identity.cn)]), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(key, _hash_for(key))
    )
    return csr.public_bytes(serialization.Encoding.PEM)


def sign_csr(
    ca: CA,
    request_pem: bytes,
    *,
    eku: Sequence[str] | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
) -> bytes:
    """The certificate (PEM) ``ca`` issues for the PKCS#10 request ``request_pem``, as a private CA operator would.

    The subject, the subject alternative names and the public key are the
    request's; the EKU is the request's unless ``eku`` overrides it (``[]``
    for a certificate without the extension).  Valid from 30 days ago for 365
    days unless told.
    """
    request = x509.load_pem_x509_csr(request_pem)
    if not request.is_signature_valid:
        raise ValueError("the request's signature does not verify")
    ca_key = _signing_key(ca._key)
    not_before, not_after = _validity(not_before, not_after, LEAF_VALIDITY)
    builder = (
        x509.CertificateBuilder()
        .subject_name(request.subject)
        .issuer_name(ca.certificate.subject)
        .public_key(request.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(request.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
    )
    for ext in request.extensions:
        if isinstance(ext.value, x509.ExtendedKeyUsage) and eku is not None:
            continue
        builder = builder.add_extension(ext.value, critical=ext.critical)
    if eku:
        builder = builder.add_extension(x509.ExtendedKeyUsage(_eku_oids(eku)), critical=False)
    return _pem(builder.sign(ca_key, _hash_for(ca_key)))
