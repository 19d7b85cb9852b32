"""PEM material, parsed: bytes in, certificates and key facts out.

Nothing here touches the file system, prints or logs: callers read the bytes
and decide what a finding means.  The parser is strict on purpose: the
appliance writes bare PEM (RFC 7468 blocks and nothing else), so any other
byte in a managed file is reported rather than skipped.

The files are hostile input (``ca.pem`` is written by a less-privileged
account), so the PEM parser runs in linear time on any bytes: every regex is
possessive or atomic where a run could be given back, header lines are split
by hand, and each block is searched only up to its own END line.

Private keys are loaded only to learn their public half: :class:`KeyInfo`
holds no private material, and no error message quotes a key's bytes.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import hashlib
import re
import warnings
from collections.abc import Callable, Iterator, Sequence

import attrs
from cryptography import exceptions as crypto_exceptions
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa, x448, x25519
from cryptography.x509.oid import NameOID

from . import policy
from .errors import CertError
from .model import CertInfo, KeyInfo, describe, key_matches, key_supported  # noqa: F401 - the facts, re-exported

# --- Tables -------------------------------------------------------------------

CERTIFICATE = "CERTIFICATE"
ENCRYPTED_PRIVATE_KEY = "ENCRYPTED PRIVATE KEY"
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

_DER_HINT = (
    "convert it to PEM: `openssl x509 -inform der -in FILE -out FILE.pem` for a certificate, "
    "`openssl pkey -inform der -in FILE -out FILE.pem` for a key"
)
_STRICT_HINT = (
    "the appliance writes bare PEM: remove every line outside the -----BEGIN/-----END blocks "
    "(RFC 7468 explanatory text, such as openssl's 'Bag Attributes' or 'subject=' lines, is refused here)"
)
_MALFORMED_HINT = "re-export the file with openssl (`openssl x509` or `openssl pkey`) to get well-formed PEM"
_ENCRYPTED_HINT = "the appliance needs an unencrypted key: decrypt it with `openssl pkey -in FILE -out FILE.dec`"

# --- PEM blocks -----------------------------------------------------------------

_WHITESPACE = b" \t\r\n\v\f"
# RFC 7468 label: printable ASCII but '-', words joined by one space or hyphen.
# Atomic, so a failed match never gives the label back byte by byte; nothing
# is lost: inside a label every '-' is followed by a word byte, so no shorter
# label could be followed by "-----".
_LABEL = rb"(?>[\x21-\x2c\x2e-\x7e]+(?:[ -][\x21-\x2c\x2e-\x7e]+)*)"
_BEGIN = re.compile(rb"-----BEGIN (" + _LABEL + rb")-----[ \t]*+(?:\r\n|\n|\r|\Z)")
_END = re.compile(rb"-----END (" + _LABEL + rb")-----")
# RFC 1421 header name: printable ASCII but ':' (the name ends at the first
# ':'), tested with bytes.translate rather than a regex; see _header.
_HEADER_NAME = bytes(range(0x21, 0x7F))
_BASE64 = re.compile(rb"[A-Za-z0-9+/]*+={0,2}")


@attrs.frozen
class PemBlock:
    """One ``-----BEGIN label-----`` ... ``-----END label-----`` block, decoded."""

    label: str
    der: bytes = attrs.field(repr=lambda der: f"<{len(der)} bytes>")
    # RFC 1421 headers (legacy OpenSSL encryption: Proc-Type, DEK-Info), in order.
    headers: tuple[tuple[str, str], ...] = ()

    @property
    def encrypted(self) -> bool:
        """Whether the block is an encrypted key, PKCS#8 or legacy OpenSSL."""
        if self.label == ENCRYPTED_PRIVATE_KEY:
            return True
        return any(name.lower() == "proc-type" and "ENCRYPTED" in value.upper() for name, value in self.headers)


def _line_of(data: bytes, offset: int) -> int:
    """The 1-based line number of ``offset`` in ``data``."""
    return data.count(b"\n", 0, offset) + 1


def _malformed(message: str) -> CertError:
    return CertError(message, hint=_MALFORMED_HINT, id="pem-malformed")


def _skip_whitespace(data: bytes, pos: int) -> int:
    """The first offset at or after ``pos`` that is not whitespace."""
    while pos < len(data) and data[pos] in _WHITESPACE:
        pos += 1
    return pos


def _no_armour(data: bytes) -> CertError:
    """The error for data with no PEM armour at all: DER or garbage."""
    if data[:1] == b"\x30":
        return CertError(
            "the file is binary DER, not PEM (no -----BEGIN line; it starts with an ASN.1 SEQUENCE)",
            hint=_DER_HINT,
            id="not-pem-der",
        )
    return CertError(
        "the file holds no PEM block (no -----BEGIN line)",
        hint="expected a PEM certificate or key; check that the right file was installed",
        id="not-pem",
    )


def _header(text: bytes) -> tuple[str, str] | None:
    """The name and value of one RFC 1421 header line (``Name: value``, no CR or LF), or None.

    The name is one or more printable ASCII bytes up to the first ``:``; the
    value is the rest without surrounding spaces and tabs.  No regex: a
    partition, a translate and a strip, each one pass over the line.
    """
    name, colon, value = text.partition(b":")
    if not colon or not name or name.translate(None, _HEADER_NAME):
        return None
    return name.decode("ascii"), value.strip(b" \t").decode("ascii", "replace")


def _split_headers(lines: list[bytes], place: Callable[[], str]) -> tuple[tuple[tuple[str, str], ...], list[bytes]]:
    """RFC 1421 headers at the top of a block body, and the base64 lines after them."""
    first = next((i for i, text in enumerate(lines) if text.strip(_WHITESPACE)), None)
    if first is None or b":" not in lines[first]:
        return (), lines
    # Each header's value as its parts: continuation lines are joined once, at
    # the end (joining them one by one would copy the value at every line).
    headers: list[tuple[str, list[str]]] = []
    for i in range(first, len(lines)):
        text = lines[i]
        if not text.strip(_WHITESPACE):
            return tuple((name, " ".join(parts)) for name, parts in headers), lines[i + 1 :]
        if text[:1] in (b" ", b"\t") and headers:
            headers[-1][1].append(text.strip(_WHITESPACE).decode("ascii", "replace"))
            continue
        header = _header(text)
        if header is None:
            break
        headers.append((header[0], [header[1]]))
    raise _malformed(f"{place()} has headers not followed by a blank line")


def _decode_body(body: bytes, place: Callable[[], str]) -> tuple[bytes, tuple[tuple[str, str], ...]]:
    """The DER bytes and headers of one block body (the text between its armour lines).

    ``place`` names the block for a message; it is called only on error, as
    counting lines costs a pass over the file.
    """
    if b":" in body:  # RFC 1421 headers can only be there if a colon is (base64 has none)
        headers, lines = _split_headers(body.splitlines(), place)
        text = b"".join(lines).translate(None, _WHITESPACE)
    else:
        headers, text = (), body.translate(None, _WHITESPACE)
    if not text:
        raise _malformed(f"{place()} is empty")
    try:
        return binascii.a2b_base64(text, strict_mode=True), headers
    except binascii.Error:
        pass
    if _BASE64.fullmatch(text) is None:
        raise _malformed(f"{place()} holds characters that are not base64")
    raise _malformed(f"{place()} is not valid base64 (bad length or padding)")


def _read_block(data: bytes, pos: int) -> tuple[PemBlock, int]:
    """The block whose BEGIN line starts at ``pos``, and the offset just after its END line."""
    begin = _BEGIN.match(data, pos)
    if begin is None:
        raise _malformed(f"the -----BEGIN line at line {_line_of(data, pos)} is not a valid PEM armour line")
    label = begin[1].decode("ascii")

    def place() -> str:
        return f"the {label} block at line {_line_of(data, pos)}"

    end_at = data.find(b"-----END ", begin.end())
    # Searched only up to this block's END line, so the searches of all blocks
    # together read the file once, whatever the file holds after it.
    if end_at < 0 or data.find(b"-----BEGIN ", begin.end(), end_at) >= 0:
        raise _malformed(f"{place()} has no -----END line")
    end = _END.match(data, end_at)
    if end is None:
        raise _malformed(f"the -----END line at line {_line_of(data, end_at)} is not a valid PEM armour line")
    if end[1] != begin[1]:
        raise _malformed(f"{place()} ends with -----END {end[1].decode('ascii')}-----")
    der, headers = _decode_body(data[begin.end() : end_at], place)
    return PemBlock(label=label, der=der, headers=headers), end.end()


def pem_blocks(data: bytes) -> tuple[PemBlock, ...]:
    """Every PEM block of ``data``, in order; anything else in the file is an error.

    Works on bytes throughout: the file need not be UTF-8.  Accepts LF, CRLF
    and CR line endings, and RFC 1421 headers inside a block.
    """
    if not data.strip(_WHITESPACE):
        raise CertError("the file is empty", hint="install the PEM file again", id="file-empty")
    if b"-----BEGIN " not in data:
        raise _no_armour(data)
    blocks: list[PemBlock] = []
    pos = _skip_whitespace(data, 0)
    while pos < len(data):
        if not data.startswith(b"-----BEGIN ", pos):
            where = "before the first block" if not blocks else "after a block"
            raise CertError(
                f"the file has text outside its PEM blocks at line {_line_of(data, pos)} ({where})",
                hint=_STRICT_HINT,
                id="pem-trailing-data",
            )
        block, pos = _read_block(data, pos)
        blocks.append(block)
        pos = _skip_whitespace(data, pos)
    return tuple(blocks)


def _armour(label: str, der: bytes) -> bytes:
    """``der`` as a bare PEM block (64-column base64, no headers)."""
    text = base64.b64encode(der)
    body = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    head = label.encode("ascii")
    return b"-----BEGIN " + head + b"-----\n" + body + b"-----END " + head + b"-----\n"


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
    pem = _armour(block.label, block.der)
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
