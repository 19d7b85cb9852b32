"""Certificates and key facts, loaded: PEM bytes in, :class:`CertInfo` and :class:`KeyInfo` out.

Nothing here touches the file system, prints or logs: callers read the bytes
and decide what a finding means.  The PEM armour is parsed by
:mod:`migrate.pem` (strict, and linear-time on hostile input); this module
loads what the blocks hold with ``cryptography``.  :class:`PemBlock` and
:func:`pem_blocks` are re-exported here, so callers need one import.

Private keys are loaded only to learn their public half: :class:`KeyInfo`
holds no private material, and no error message quotes a key's bytes.

A DSA key is only ever something to refuse, and ``cryptography`` deprecates
DSA (51.0) on the way to removing it: DSA keys and certificates are recognised
from their algorithm identifier and read from their DER here, never handed to
``cryptography``, so the refusal (and the key match beside it) neither warns
nor stops working when the library drops DSA.
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
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x448, x25519
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


def _cert_spki(cert: x509.Certificate, der: bytes) -> bytes:
    """The SubjectPublicKeyInfo of a certificate: its own bytes for DSA, cryptography's re-encoding for the rest."""
    if cert.public_key_algorithm_oid.dotted_string == _DSA_DOTTED:  # read without loading the key: no DSA API
        return _tbs_spki(der)
    return _spki(cert.public_key())


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
            public_key_der=_cert_spki(cert, der),
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
        except (ValueError, TypeError, crypto_exceptions.InvalidSignature, crypto_exceptions.UnsupportedAlgorithm):
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
    """Algorithm, size and curve of a public key (DSA is never loaded: see :func:`_dsa_key`)."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa", public_key.key_size, None
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec", public_key.curve.key_size, public_key.curve.name
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
        dsa = _dsa_key(block)
        if dsa is not None:
            return dsa
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


# --- DSA, from its DER -------------------------------------------------------------
# Tags and the content bytes of DSA's algorithm identifier (1.2.840.10040.4.1, RFC 3279).
_INTEGER, _BIT_STRING, _OCTET_STRING, _OID, _SEQUENCE = 0x02, 0x03, 0x04, 0x06, 0x30
_DSA_OID, _DSA_DOTTED = bytes.fromhex("2a8648ce380401"), "1.2.840.10040.4.1"
_SSH_DSS = b"ssh-dss"


def _element(data: bytes, at: int) -> tuple[int, int, int]:
    """The DER element at ``at`` of ``data``: its tag, where its contents start and where it ends (ValueError if cut)."""
    if at + 2 > len(data) or data[at] & 0x1F == 0x1F:  # no room, or a multi-byte tag (none here has one)
        raise ValueError("not DER")
    tag, first, start = data[at], data[at + 1], at + 2
    size = first
    if first & 0x80:
        count = first & 0x7F
        if not 0 < count <= 4 or start + count > len(data):
            raise ValueError("not DER")
        size, start = int.from_bytes(data[start : start + count], "big"), start + count
    if start + size > len(data):
        raise ValueError("not DER")
    return tag, start, start + size


def _element_items(body: bytes) -> list[tuple[int, bytes, bytes]]:
    """The elements of a DER body, in order: each as its tag, its whole encoding and its contents."""
    items, at = [], 0
    while at < len(body):
        tag, start, end = _element(body, at)
        items.append((tag, body[at:end], body[start:end]))
        at = end
    return items


def _sequence(data: bytes) -> list[tuple[int, bytes, bytes]]:
    """The items of the one SEQUENCE ``data`` holds (ValueError if it holds anything else)."""
    [(tag, _, contents)] = _element_items(data)  # none or several: ValueError
    if tag != _SEQUENCE:
        raise ValueError("not a SEQUENCE")
    return _element_items(contents)


def _integers(items: Sequence[tuple[int, bytes, bytes]]) -> list[int]:
    if any(tag != _INTEGER for tag, _, _ in items):
        raise ValueError("not an INTEGER")
    return [int.from_bytes(contents, "big", signed=True) for _, _, contents in items]


def _tbs_spki(der: bytes) -> bytes:
    """The SubjectPublicKeyInfo element of a certificate's DER (RFC 5280 TBSCertificate, its 6th or 7th field)."""
    try:
        tbs = _sequence(_sequence(der)[0][1])
        return tbs[6 if tbs and tbs[0][0] == 0xA0 else 5][1]
    except IndexError:  # fewer fields than a certificate has: cert-unparsable, as cryptography's ValueError is
        raise ValueError("not a certificate") from None


def _der(tag: int, contents: bytes) -> bytes:
    size, count = len(contents), (len(contents).bit_length() + 7) // 8
    length = bytes([size]) if size < 0x80 else bytes([0x80 | count]) + size.to_bytes(count, "big")
    return bytes([tag]) + length + contents


def _der_integer(value: int) -> bytes:
    return _der(_INTEGER, value.to_bytes(value.bit_length() // 8 + 1, "big", signed=True))


def _ssh_strings(data: bytes, count: int) -> tuple[list[bytes], bytes]:
    """The first ``count`` SSH wire strings of ``data`` (RFC 4251) and what follows them."""
    out = []
    for _ in range(count):
        if len(data) < 4 or len(data) < 4 + int.from_bytes(data[:4], "big"):
            raise ValueError("cut short")
        size = int.from_bytes(data[:4], "big")
        out.append(data[4 : 4 + size])
        data = data[4 + size :]
    return out, data


def _check_dsa(p: int, q: int, g: int, y: int | None, x: int) -> None:
    """ValueError unless ``p, q, g`` are sized as DSA's are and ``x`` is the private half of ``y`` (when given).

    The sizes bound the one exponentiation (a hostile file could hold a
    number of millions of bits): FIPS 186 stops at 3072 and 256 bits,
    OpenSSL at 10,000 bits for ``p``.
    """
    if not (2 < p.bit_length() <= 10_000 and 0 < x < q < p and q.bit_length() <= 512 and 1 < g < p):
        raise ValueError("not a DSA key")
    if y is not None and pow(g, x, p) != y:
        raise ValueError("not a DSA key")


def _dsa_numbers(block: PemBlock) -> tuple[int, int, int, int] | None:
    """``p, q, g, y`` of a DSA key block, or None when the block holds another algorithm's key."""
    if block.label == "DSA PRIVATE KEY":  # OpenSSL's own: SEQUENCE {0, p, q, g, y, x}
        _, p, q, g, y, x = _integers(_sequence(block.der))
        _check_dsa(p, q, g, y, x)
        return p, q, g, y
    if block.label == "PRIVATE KEY":  # PKCS#8: SEQUENCE {version, AlgorithmIdentifier, OCTET STRING {x}, ...}
        items = _sequence(block.der)
        algorithm = _sequence(items[1][1])
        if algorithm[0][:1] != (_OID,) or algorithm[0][2] != _DSA_OID:
            return None
        p, q, g = _integers(_sequence(algorithm[1][1]))
        if items[2][0] != _OCTET_STRING:
            raise ValueError("no private key")
        [x] = _integers(_element_items(items[2][2]))
        _check_dsa(p, q, g, None, x)
        return p, q, g, pow(g, x, p)
    if block.label == OPENSSH_PRIVATE_KEY:  # openssh-key-v1: cipher, kdf, options, count, public key blobs
        magic = b"openssh-key-v1\x00"
        if not block.der.startswith(magic):
            return None
        (_, _, _), rest = _ssh_strings(block.der[len(magic) :], 3)  # cipher, kdf, kdf options: none for a plain key
        count, ([public, private], rest) = rest[:4], _ssh_strings(rest[4:], 2)  # one public blob, the private section
        [kind], numbers = _ssh_strings(public, 1)
        if kind != _SSH_DSS:
            return None
        # The private section: two equal check words, the key's type, p, q, g, y and x, a comment, padding.
        check, ((kind, *fields), _) = private[:8], _ssh_strings(private[8:], 7)
        if count != b"\0\0\0\1" or rest or len(check) != 8 or check[:4] != check[4:] or kind != _SSH_DSS:
            raise ValueError("not an OpenSSH DSA key")
        if _ssh_strings(numbers, 4)[0] != fields[:4]:
            raise ValueError("not an OpenSSH DSA key")
        p, q, g, y, x = (int.from_bytes(number, "big", signed=True) for number in fields[:5])
        _check_dsa(p, q, g, y, x)
        return p, q, g, y
    return None


def _dsa_key(block: PemBlock) -> KeyInfo | None:
    """The :class:`KeyInfo` of a DSA key block, read from its DER; None for any other algorithm's key.

    The SubjectPublicKeyInfo is encoded as RFC 3279 and a DSA certificate's
    are, so that :func:`~migrate.model.key_matches` pairs a DSA key with its
    certificate (and the only finding is that Expressway does not use DSA).
    """
    try:
        numbers = _dsa_numbers(block)
    except IndexError:  # a structure with fewer fields than its kind has
        raise ValueError("not a DSA key") from None
    if numbers is None:
        return None
    p, q, g, y = numbers
    parameters = _der(_SEQUENCE, _der_integer(p) + _der_integer(q) + _der_integer(g))
    algorithm = _der(_SEQUENCE, _der(_OID, _DSA_OID) + parameters)
    spki = _der(_SEQUENCE, algorithm + _der(_BIT_STRING, b"\x00" + _der_integer(y)))
    return KeyInfo(algorithm="dsa", bits=p.bit_length(), curve=None, public_key_der=spki, format=KEY_FORMATS[block.label])


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
