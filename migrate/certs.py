"""Certificates and key facts, loaded: PEM bytes in, :class:`CertInfo` and :class:`KeyInfo` out.

Nothing here touches the file system, prints or logs: callers read the bytes
and decide what a finding means.  The PEM armour is parsed by
:mod:`migrate.pem` (strict, and linear-time on hostile input); this module
loads what the blocks hold with ``cryptography``.  :class:`PemBlock` and
:func:`pem_blocks` are re-exported here, so callers need one import.

Private keys are loaded only to learn their public half: :class:`KeyInfo`
holds no private material, and no error message quotes a key's bytes.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import warnings
from collections.abc import Iterator, Sequence

from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import NameOID

from . import policy
from .errors import CertError
from .model import CertInfo, KeyInfo, describe, key_matches, key_supported  # noqa: F401 - the facts, re-exported
from .pem import ENCRYPTED_PRIVATE_KEY, PemBlock, armour, pem_blocks  # the blocks, re-exported too

# --- Tables -------------------------------------------------------------------

CERTIFICATE = "CERTIFICATE"
OPENSSH_PRIVATE_KEY = "OPENSSH PRIVATE KEY"

# Private-key labels and the format each one names.
KEY_FORMATS = {
    "PRIVATE KEY": "pkcs8",
    "RSA PRIVATE KEY": "pkcs1",
    "EC PRIVATE KEY": "sec1",
    "DSA PRIVATE KEY": "openssl-dsa",
    OPENSSH_PRIVATE_KEY: "openssh",
    ENCRYPTED_PRIVATE_KEY: "pkcs8-encrypted",
}

ANY_EKU = policy.ANY_EKU
SUPPORTED_KEY_ALGORITHMS, MIN_RSA_BITS, SUPPORTED_EC_CURVES = (
    policy.SUPPORTED_KEY_ALGORITHMS,
    policy.MIN_RSA_BITS,
    policy.SUPPORTED_EC_CURVES,
)

_ENCRYPTED_HINT = "the appliance needs an unencrypted key: decrypt it with `openssl pkey -in FILE -out FILE.dec`"

# --- Certificates -----------------------------------------------------------------


@contextlib.contextmanager
def _quiet_serials() -> Iterator[None]:
    """Silence cryptography's warning about a negative serial number.

    Old roots in system trust stores have them; cryptography still reads them
    but warns when the serial is parsed, which is not the user's concern.
    """
    from cryptography.utils import CryptographyDeprecationWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        yield


@functools.lru_cache(maxsize=64)
def x509_certificate(der: bytes) -> x509.Certificate:
    """The cryptography certificate object of ``der`` (cached: chain checks reload it)."""
    with _quiet_serials():
        return x509.load_der_x509_certificate(der)


def _eku(cert: x509.Certificate) -> frozenset[str] | None:
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return frozenset(oid.dotted_string for oid in ext.value)


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        ext = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    except x509.ExtensionNotFound:
        return False
    return ext.value.ca


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@functools.lru_cache(maxsize=64)
def _cert_info(der: bytes) -> CertInfo:
    """The :class:`CertInfo` of one DER certificate; cryptography's errors pass through.

    Cached: a node holds its leaf twice (``server.pem`` and the SSH bundle)
    and its CA in the chain and in ``ca.pem``, and a fleet shares its CAs.
    """
    with _quiet_serials():  # cryptography parses lazily: any field may reach the serial
        cert = x509_certificate(der)
        return CertInfo(
            subject=cert.subject.rfc4514_string(),
            issuer=cert.issuer.rfc4514_string(),
            serial=cert.serial_number,
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            eku=_eku(cert),
            is_ca=_is_ca(cert),
            self_signed=cert.subject == cert.issuer,
            public_key_der=_spki(cert.public_key()),
            sha256=hashlib.sha256(der).hexdigest(),
            der=der,
            subject_short=_short(cert.subject),
            issuer_short=_short(cert.issuer),
        )


def _parse_certificate(block: PemBlock, number: int) -> CertInfo:
    """The :class:`CertInfo` of the ``number``-th certificate block, or ``cert-unparsable``."""
    try:
        return _cert_info(block.der)
    except (ValueError, crypto_exceptions.UnsupportedAlgorithm) as exc:
        raise CertError(
            f"certificate {number} cannot be parsed: {exc}",
            hint="the block is not a valid X.509 certificate; export it again from its CA",
            id="cert-unparsable",
        ) from exc


def _unexpected(block: PemBlock, wanted: str) -> CertError:
    return CertError(
        f"the file holds a {block.label} block where only {wanted} belong",
        hint="keep each kind of PEM material in its own file, as the appliance does",
        id="unexpected-pem-block",
    )


def _certificates(blocks: Sequence[PemBlock], wanted: str) -> tuple[CertInfo, ...]:
    """Every block parsed as a certificate; any other label is unexpected."""
    for block in blocks:
        if block.label != CERTIFICATE:
            raise _unexpected(block, wanted)
    if not blocks:
        raise CertError("the file holds no certificate", hint="install the certificate again", id="no-certificate")
    return tuple(_parse_certificate(block, number) for number, block in enumerate(blocks, 1))


def load_certificates(data: bytes) -> tuple[CertInfo, ...]:
    """The certificates of a certificate file (``server.pem``), in file order: leaf first."""
    return _certificates(pem_blocks(data), "certificates")


def load_ca_bundle(data: bytes) -> tuple[CertInfo, ...]:
    """The certificates of a trusted CA list (``ca.pem``), in file order; no order is required."""
    return _certificates(pem_blocks(data), "CA certificates")


def chain_problem(certs: Sequence[CertInfo]) -> str | None:
    """Why the certificates do not form a chain from the leaf up, or None if they do.

    The first certificate is the leaf; each following one must have issued the
    one before it: its subject is the issuer's name and its key verifies the
    signature.
    """
    for number in range(1, len(certs)):
        child, parent = certs[number - 1], certs[number]
        did_not = f"certificate {number + 1} ({parent.subject}) did not issue certificate {number} ({child.subject})"
        child_x509, parent_x509 = x509_certificate(child.der), x509_certificate(parent.der)
        if child_x509.issuer != parent_x509.subject:
            return f"{did_not}: certificate {number} names {child.issuer} as its issuer"
        try:
            child_x509.verify_directly_issued_by(parent_x509)
        except (ValueError, TypeError, crypto_exceptions.InvalidSignature):
            return f"{did_not}: the names match but the signature does not verify with its key"
    return None


def _short(name: x509.Name) -> str:
    """``CN=...`` of a name when it has a common name, else the whole RFC 4514 name."""
    common = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common:
        return name.rfc4514_string()
    value = common[0].value
    assert isinstance(value, str)  # only an X500UniqueIdentifier's value is bytes (cryptography's NameAttribute)
    return f"CN={value}"


# --- Private keys -----------------------------------------------------------------


def _key_shape(public_key) -> tuple[str, int, str | None]:
    """Algorithm, size and curve of a public key."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec", public_key.curve.key_size, public_key.curve.name
    if isinstance(public_key, dsa.DSAPublicKey):
        return "dsa", public_key.key_size, None
    fixed = {
        ed25519.Ed25519PublicKey: ("ed25519", 256),
        ed448.Ed448PublicKey: ("ed448", 456),
        x25519.X25519PublicKey: ("x25519", 256),
        x448.X448PublicKey: ("x448", 448),
    }
    for kind, (name, bits) in fixed.items():
        if isinstance(public_key, kind):
            return name, bits, None
    raise TypeError(type(public_key).__name__)


def _openssh_encrypted(der: bytes) -> bool:
    """Whether an openssh-key-v1 body names a cipher other than ``none`` (a garbled body: False)."""
    magic = b"openssh-key-v1\x00"
    start = len(magic) + 4
    if not der.startswith(magic) or len(der) < start:
        return False
    size = int.from_bytes(der[len(magic) : start], "big")
    cipher = der[start : start + size]
    readable = 0 < size == len(cipher) and all(0x21 <= byte <= 0x7E for byte in cipher)
    return readable and cipher != b"none"


def _load_private(block: PemBlock):
    """The cryptography private key of an unencrypted key block (RSA checks skipped: only the public half is used)."""
    pem = armour(block.label, block.der)
    if block.label == OPENSSH_PRIVATE_KEY:
        return serialization.load_ssh_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)
    return serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=True)


def _key_info(block: PemBlock) -> KeyInfo:
    """The :class:`KeyInfo` of one private-key block, or ``key-encrypted`` / ``key-unparsable``."""
    if block.encrypted or (block.label == OPENSSH_PRIVATE_KEY and _openssh_encrypted(block.der)):
        raise CertError(f"the private key ({block.label}) is encrypted", hint=_ENCRYPTED_HINT, id="key-encrypted")
    try:
        public_key = _load_private(block).public_key()
        algorithm, bits, curve = _key_shape(public_key)
    except (ValueError, TypeError, crypto_exceptions.UnsupportedAlgorithm):
        # The library's message is dropped: nothing derived from key bytes leaves here.
        raise CertError(
            f"the private key ({block.label}) cannot be parsed",
            hint="export the key again: `openssl pkey -in FILE -out FILE.pem` writes a plain PKCS#8 key",
            id="key-unparsable",
        ) from None
    return KeyInfo(
        algorithm=algorithm,
        bits=bits,
        curve=curve,
        public_key_der=_spki(public_key),
        format=KEY_FORMATS[block.label],
    )


def _one_key(keys: Sequence[PemBlock]) -> PemBlock:
    """The single key block, or ``no-private-key`` / ``several-keys``."""
    if not keys:
        raise CertError("the file holds no private key", hint="install the private key again", id="no-private-key")
    if len(keys) > 1:
        raise CertError(
            f"the file holds {len(keys)} private keys where one belongs",
            hint="keep only the key that matches the certificate",
            id="several-keys",
        )
    return keys[0]


def load_private_key(data: bytes) -> KeyInfo:
    """The public facts of a key file (``privkey.pem``): exactly one private key and nothing else."""
    blocks = pem_blocks(data)
    for block in blocks:
        if block.label not in KEY_FORMATS:
            raise _unexpected(block, "a private key")
    return _key_info(_one_key(blocks))


def load_bundle(data: bytes) -> tuple[KeyInfo, tuple[CertInfo, ...]]:
    """The key and certificates of an identity bundle (``server-ssh.pem``), blocks in any order."""
    blocks = pem_blocks(data)
    for block in blocks:
        if block.label != CERTIFICATE and block.label not in KEY_FORMATS:
            raise _unexpected(block, "a private key and certificates")
    key = _key_info(_one_key([block for block in blocks if block.label in KEY_FORMATS]))
    chain = _certificates([block for block in blocks if block.label == CERTIFICATE], "certificates")
    return key, chain
