"""Tests for migrate.certs and migrate.pem: PEM blocks, certificates, keys and chains, from bytes."""

from __future__ import annotations

import ast
import base64
import functools
import sys
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support import DSA_ON_PURPOSE

from migrate import certs, pem, policy
from migrate.certs import (
    ANY_EKU,
    KeyInfo,
    PemBlock,
    chain_problem,
    describe,
    key_matches,
    key_supported,
    load_bundle,
    load_ca_bundle,
    load_certificates,
    load_private_key,
    pem_blocks,
)
from migrate.errors import CertError

SERVER, CLIENT = policy.SERVER_AUTH, policy.CLIENT_AUTH
BOTH = (ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH)
SERVER_ONLY = (ExtendedKeyUsageOID.SERVER_AUTH,)
NOT_BEFORE = datetime(2025, 1, 1, tzinfo=UTC)
NOT_AFTER = datetime(2031, 1, 1, tzinfo=UTC)
PLAIN = serialization.NoEncryption()
PEM = serialization.Encoding.PEM


# --- Builders -------------------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.COMMON_NAME, cn), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Example")]
    )


def _cert(cn, key, *, issuer=None, issuer_key=None, eku=BOTH, ca=False, serial=1000) -> x509.Certificate:
    """A certificate for ``key`` named ``cn``, signed by ``issuer_key`` (itself when None)."""
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(issuer if issuer is not None else _name(cn))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(PEM)


def _pem_der(der: bytes) -> bytes:
    """``der`` armoured as a PEM certificate, byte for byte (no re-encoding by cryptography)."""
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return b"-----BEGIN CERTIFICATE-----\n" + b"\n".join(lines) + b"\n-----END CERTIFICATE-----\n"


def _key_pem(key, fmt=serialization.PrivateFormat.PKCS8, encryption=PLAIN) -> bytes:
    return key.private_bytes(PEM, fmt, encryption)


def _armour(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der)
    lines = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n".encode() + lines + f"-----END {label}-----\n".encode()


def _spki(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _dsa():
    """cryptography's DSA module, for a test that makes a DSA key on purpose (marked DSA_ON_PURPOSE)."""
    from cryptography.hazmat.primitives.asymmetric import dsa

    return dsa


@attrs.frozen
class DsaMaterial:
    """One DSA key in each format a node may hold it in, its certificate, and its public half as cryptography encodes it."""

    pkcs8: bytes
    traditional: bytes
    cert: bytes
    spki: bytes
    other_pkcs8: bytes  # another DSA key, same parameters
    openssh: bytes  # a key of its own: OpenSSH's DSA keys have 1024 bits
    openssh_spki: bytes


@functools.cache
def _dsa_material() -> DsaMaterial:
    """Made with cryptography, with its DSA deprecation silenced here only: what is tested is loading it."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "(SSH )?DSA", CryptographyDeprecationWarning)
        key = _dsa().generate_private_key(2048)
        other = key.parameters().generate_private_key()
        ssh = _dsa().generate_private_key(1024)
        return DsaMaterial(
            pkcs8=_key_pem(key),
            traditional=_key_pem(key, TRADITIONAL),
            cert=_pem(_cert("dsa.example.com", key)),
            spki=_spki(key),
            other_pkcs8=_key_pem(other),
            openssh=_key_pem(ssh, OPENSSH),
            openssh_spki=_spki(ssh),
        )


def _error_id(call, *args) -> str:
    with pytest.raises(CertError) as info:
        call(*args)
    return info.value.id


@attrs.frozen
class Pki:
    """A root, an intermediate and leaves, with their keys."""

    root_key: object
    root: x509.Certificate
    inter_key: object
    inter: x509.Certificate
    leaf_key: object
    leaf: x509.Certificate
    other_key: object
    other: x509.Certificate  # an unrelated self-signed CA
    server_only: x509.Certificate  # leaf_key, serverAuth only
    no_eku: x509.Certificate  # leaf_key, no EKU extension


@pytest.fixture(scope="module")
def pki() -> Pki:
    root_key = ec.generate_private_key(ec.SECP256R1())
    inter_key = ec.generate_private_key(ec.SECP256R1())
    leaf_key = rsa.generate_private_key(65537, 2048)
    other_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Example CA1", root_key, eku=None, ca=True, serial=1)
    inter = _cert(
        "Example Issuing CA", inter_key, issuer=root.subject, issuer_key=root_key, eku=None, ca=True, serial=2
    )

    def leaf_with(eku, serial):
        return _cert("core.example.com", leaf_key, issuer=inter.subject, issuer_key=inter_key, eku=eku, serial=serial)

    return Pki(
        root_key=root_key,
        root=root,
        inter_key=inter_key,
        inter=inter,
        leaf_key=leaf_key,
        leaf=leaf_with(BOTH, 3),
        other_key=other_key,
        other=_cert("Unrelated CA", other_key, eku=None, ca=True, serial=4),
        server_only=leaf_with(SERVER_ONLY, 5),
        no_eku=leaf_with(None, 6),
    )


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="session")
def rsa4096_pem() -> bytes:
    return _key_pem(rsa.generate_private_key(65537, 4096), serialization.PrivateFormat.TraditionalOpenSSL)


# --- PEM blocks -------------------------------------------------------------------


class TestPemBlocks:
    @pytest.mark.parametrize(
        ("data", "error"),
        [
            (b"", "file-empty"),
            (b" \r\n\t\n", "file-empty"),
            (b"\x30\x82\x01\x0a\x02\x82\x01\x01\x00\xff", "not-pem-der"),
            (b"hello, this is not a certificate\n", "not-pem"),
            (b"\xff\xfe\x00garbage", "not-pem"),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n", "pem-malformed"),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END PRIVATE KEY-----\n", "pem-malformed"),
            (b"-----BEGIN CERTIFICATE-----\nAA*A\n-----END CERTIFICATE-----\n", "pem-malformed"),
            (b"-----BEGIN CERTIFICATE-----\nAAAAA\n-----END CERTIFICATE-----\n", "pem-malformed"),
            (b"-----BEGIN CERTIFICATE-----\nAA\xffA\n-----END CERTIFICATE-----\n", "pem-malformed"),
            (b"-----BEGIN CERTIFICATE-----\n\n-----END CERTIFICATE-----\n", "pem-malformed"),
            (b"-----BEGIN CERTIFICATE-----AAAA\n-----END CERTIFICATE-----\n", "pem-malformed"),
            (
                b"-----BEGIN CERTIFICATE-----\nProc-Type: 4,ENCRYPTED\nAAAA\n-----END CERTIFICATE-----\n",
                "pem-malformed",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "pem-malformed",
            ),
            (b"subject=CN=x\n-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "pem-trailing-data"),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n\xff\xfe junk\n", "pem-trailing-data"),
            (
                b"-----BEGIN X-----\nAAAA\n-----END X-----\nbetween\n-----BEGIN Y-----\nAAAA\n-----END Y-----\n",
                "pem-trailing-data",
            ),
            (b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----junk\n", "pem-trailing-data"),
        ],
        ids=[
            "empty",
            "whitespace",
            "der",
            "text",
            "binary-garbage",
            "begin-without-end",
            "mismatched-labels",
            "bad-base64-char",
            "bad-base64-length",
            "non-ascii-in-body",
            "empty-body",
            "body-on-begin-line",
            "headers-without-blank-line",
            "nested-begin",
            "text-before",
            "binary-after",
            "text-between",
            "text-after-end-armour",
        ],
    )
    def test_refused(self, data, error):
        """Every kind of bad PEM file is refused with its own stable error id."""
        assert _error_id(pem_blocks, data) == error

    def test_der_hint_names_openssl(self):
        """A DER file's hint gives the openssl command that converts it to PEM."""
        with pytest.raises(CertError) as info:
            pem_blocks(b"\x30\x03\x02\x01\x01")
        assert "openssl x509 -inform der" in info.value.hint
        assert "openssl pkey" in info.value.hint

    def test_trailing_hint_says_strict(self):
        """The trailing-data hint says that explanatory text is refused on purpose."""
        with pytest.raises(CertError) as info:
            pem_blocks(b"-----BEGIN X-----\nAAAA\n-----END X-----\nBag Attributes\n")
        assert "explanatory text" in info.value.hint
        assert "line 4" in info.value.message

    def test_blocks_in_order(self):
        """Several blocks come back in file order with their labels and decoded bodies."""
        data = _armour("CERTIFICATE", b"\x01\x02") + b"\n\n" + _armour("EC PRIVATE KEY", b"\x03")
        assert pem_blocks(data) == (PemBlock("CERTIFICATE", b"\x01\x02"), PemBlock("EC PRIVATE KEY", b"\x03"))

    @pytest.mark.parametrize("newline", [b"\r\n", b"\r"], ids=["crlf", "cr"])
    def test_line_endings(self, newline, pki):
        """CRLF and CR line endings give the same blocks as LF."""
        data = _pem(pki.leaf) + _pem(pki.inter)
        assert pem_blocks(data.replace(b"\n", newline)) == pem_blocks(data)

    def test_surrounding_whitespace(self, pki):
        """Whitespace around and between blocks is not trailing data."""
        data = b"\n  \n" + _pem(pki.leaf) + b" \t\n\n" + _pem(pki.inter) + b"\n\n"
        assert [block.label for block in pem_blocks(data)] == ["CERTIFICATE", "CERTIFICATE"]

    def test_legacy_headers_recorded(self):
        """Proc-Type and DEK-Info headers of a legacy encrypted key are recorded and mark it encrypted."""
        key = rsa.generate_private_key(65537, 1024)
        data = _key_pem(
            key, serialization.PrivateFormat.TraditionalOpenSSL, serialization.BestAvailableEncryption(b"pw")
        )
        (block,) = pem_blocks(data.replace(b"\n", b"\r\n"))
        assert [name for name, _ in block.headers] == ["Proc-Type", "DEK-Info"]
        assert block.headers[0][1] == "4,ENCRYPTED"
        assert block.encrypted

    def test_header_continuation(self):
        """A header line that starts with a space continues the previous header."""
        data = b"-----BEGIN X-----\nComment: first\n second\n\nAAAA\n-----END X-----\n"
        assert pem_blocks(data)[0].headers == (("Comment", "first second"),)

    def test_repr_hides_body(self):
        """A block's repr gives the body's length, not its bytes."""
        assert (
            repr(PemBlock("PRIVATE KEY", b"\xde\xad\xbe\xef"))
            == "PemBlock(label='PRIVATE KEY', der=<4 bytes>, headers=())"
        )

    @pytest.mark.parametrize("name", ["PemBlock", "pem_blocks", "ENCRYPTED_PRIVATE_KEY"])
    def test_certs_reexports_the_parser(self, name):
        """The PEM parser lives in migrate.pem, and migrate.certs still gives its public names, the same objects."""
        assert getattr(certs, name) is getattr(pem, name)


# --- Certificates -------------------------------------------------------------------


class TestLoadCertificates:
    def test_fields(self, pki):
        """A certificate's names, serial, dates, flags, key and fingerprint are read."""
        (info,) = load_certificates(_pem(pki.leaf))
        der = pki.leaf.public_bytes(serialization.Encoding.DER)
        assert info.subject == "O=Example,CN=core.example.com"
        assert info.issuer == "O=Example,CN=Example Issuing CA"
        assert info.serial == 3
        assert info.not_before == NOT_BEFORE and info.not_before.tzinfo is not None
        assert info.not_after == NOT_AFTER and info.not_after.utcoffset() == timedelta(0)
        assert (info.is_ca, info.self_signed) == (False, False)
        assert info.public_key_der == _spki(pki.leaf_key)
        assert info.der == der
        assert info.sha256 == pki.leaf.fingerprint(hashes.SHA256()).hex()

    def test_negative_serial_loads_without_a_warning(self, pki):
        """A certificate with a negative serial (old roots in system stores) loads, and no warning escapes (warnings are errors here)."""
        der = pki.leaf.public_bytes(serialization.Encoding.DER)
        version_then_serial = b"\xa0\x03\x02\x01\x02\x02\x01\x03"  # v3, then serial 3
        assert der.count(version_then_serial) == 1
        negative = der.replace(version_then_serial, b"\xa0\x03\x02\x01\x02\x02\x01\xfd")  # serial -3
        (info,) = load_certificates(_pem_der(negative))
        assert info.serial == -3 and info.subject == "O=Example,CN=core.example.com"
        assert info.eku is not None  # the extensions were parsed too

    def test_root_flags(self, pki):
        """A self-signed CA certificate is flagged CA and self-signed."""
        (info,) = load_certificates(_pem(pki.root))
        assert (info.is_ca, info.self_signed) == (True, True)

    @pytest.mark.parametrize(
        ("which", "eku"),
        [("no_eku", None), ("server_only", frozenset({SERVER})), ("leaf", frozenset({SERVER, CLIENT}))],
    )
    def test_eku(self, pki, which, eku):
        """The EKU is None without the extension, else the set of dotted OIDs."""
        (info,) = load_certificates(_pem(getattr(pki, which)))
        assert info.eku == eku

    def test_chain_file_order(self, pki):
        """A chain file's certificates come back in file order."""
        infos = load_certificates(_pem(pki.leaf) + _pem(pki.inter) + _pem(pki.root))
        assert [info.serial for info in infos] == [3, 2, 1]

    def test_key_block_unexpected(self, pki, ec_key):
        """A key inside a certificate file is refused, naming its label."""
        with pytest.raises(CertError) as info:
            load_certificates(_pem(pki.leaf) + _key_pem(ec_key))
        assert info.value.id == "unexpected-pem-block"
        assert "PRIVATE KEY" in info.value.message

    def test_unparsable(self, pki):
        """A CERTIFICATE block that is not an X.509 certificate is cert-unparsable, with its number."""
        with pytest.raises(CertError) as info:
            load_certificates(_pem(pki.leaf) + _armour("CERTIFICATE", b"\x30\x03\x02\x01\x01"))
        assert info.value.id == "cert-unparsable"
        assert "certificate 2" in info.value.message

    def test_ca_bundle_any_order(self, pki):
        """A CA list loads whatever its order, and refuses other blocks like a certificate file."""
        infos = load_ca_bundle(_pem(pki.other) + _pem(pki.root) + _pem(pki.inter))
        assert [info.serial for info in infos] == [4, 1, 2]
        assert _error_id(load_ca_bundle, _pem(pki.root) + _key_pem(pki.root_key)) == "unexpected-pem-block"


class TestEku:
    @pytest.mark.parametrize(
        ("eku", "server", "client"),
        [
            (None, True, True),
            (frozenset({SERVER}), True, False),
            (frozenset({CLIENT}), False, True),
            (frozenset({SERVER, CLIENT}), True, True),
            (frozenset({ANY_EKU}), True, True),
            (frozenset(), False, False),
        ],
    )
    def test_allows(self, pki, eku, server, client):
        """A certificate allows a purpose without an EKU, with anyExtendedKeyUsage, or when it lists it."""
        info = attrs.evolve(load_certificates(_pem(pki.leaf))[0], eku=eku)
        assert (info.allows(SERVER), info.allows(CLIENT)) == (server, client)

    @pytest.mark.parametrize(
        ("eku", "names"),
        [
            (None, ()),
            (frozenset({CLIENT, SERVER}), ("serverAuth", "clientAuth")),
            (
                frozenset({"1.3.6.1.5.5.7.3.4", SERVER, "1.3.6.1.5.5.7.3.3"}),
                ("serverAuth", "1.3.6.1.5.5.7.3.3", "1.3.6.1.5.5.7.3.4"),
            ),
            (frozenset({ANY_EKU}), ("anyExtendedKeyUsage",)),
        ],
    )
    def test_eku_names(self, pki, eku, names):
        """EKU names list known purposes first, in policy order, then unknown OIDs dotted; none for no EKU."""
        info = attrs.evolve(load_certificates(_pem(pki.leaf))[0], eku=eku)
        assert info.eku_names() == names


class TestDescribe:
    @pytest.mark.parametrize(
        ("which", "text"),
        [
            (
                "leaf",
                "CN=core.example.com, issued by CN=Example Issuing CA, expires 2031-01-01, EKU serverAuth+clientAuth",
            ),
            ("server_only", "CN=core.example.com, issued by CN=Example Issuing CA, expires 2031-01-01, EKU serverAuth"),
            (
                "no_eku",
                "CN=core.example.com, issued by CN=Example Issuing CA, expires 2031-01-01, EKU none (unrestricted)",
            ),
        ],
    )
    def test_describe(self, pki, which, text):
        """The short form gives the common names, the expiry date and the EKU."""
        (info,) = load_certificates(_pem(getattr(pki, which)))
        assert describe(info) == text

    def test_no_common_name(self, ec_key):
        """A subject without a common name is shown whole."""
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "NoCN")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(ec_key.public_key())
            .serial_number(9)
            .not_valid_before(NOT_BEFORE)
            .not_valid_after(NOT_AFTER)
            .sign(ec_key, hashes.SHA256())
        )
        (info,) = load_certificates(_pem(cert))
        assert describe(info).startswith("O=NoCN, issued by O=NoCN, ")


class TestChainProblem:
    def test_single(self, pki):
        """A single certificate has no chain problem."""
        assert chain_problem(load_certificates(_pem(pki.leaf))) is None

    def test_empty(self):
        """No certificates have no chain problem."""
        assert chain_problem(()) is None

    @pytest.mark.parametrize("names", [("leaf", "inter"), ("leaf", "inter", "root"), ("inter", "root")])
    def test_good_chain(self, pki, names):
        """A leaf followed by its issuers, in order, has no problem."""
        data = b"".join(_pem(getattr(pki, name)) for name in names)
        assert chain_problem(load_certificates(data)) is None

    def test_unrelated(self, pki):
        """A leaf followed by an unrelated certificate is reported with both names."""
        problem = chain_problem(load_certificates(_pem(pki.leaf) + _pem(pki.other)))
        assert problem is not None
        assert problem.startswith(
            "certificate 2 (O=Example,CN=Unrelated CA) did not issue certificate 1 (O=Example,CN=core.example.com)"
        )

    def test_wrong_order(self, pki):
        """A chain with the root before the intermediate is reported at the first wrong link."""
        problem = chain_problem(load_certificates(_pem(pki.leaf) + _pem(pki.root) + _pem(pki.inter)))
        assert problem is not None
        assert problem.startswith("certificate 2 (O=Example,CN=Example CA1) did not issue certificate 1")

    def test_impostor_signature(self, pki):
        """An issuer with the right name but another key is caught by the signature check."""
        impostor = _cert(
            "Example Issuing CA", pki.other_key, issuer=pki.root.subject, issuer_key=pki.root_key, eku=None, ca=True
        )
        problem = chain_problem(load_certificates(_pem(pki.leaf) + _pem(impostor)))
        assert problem is not None
        assert "signature" in problem

    def test_later_link(self, pki):
        """A problem further up the chain names the certificates of that link."""
        problem = chain_problem(load_certificates(_pem(pki.leaf) + _pem(pki.inter) + _pem(pki.other)))
        assert problem is not None
        assert problem.startswith("certificate 3 (O=Example,CN=Unrelated CA) did not issue certificate 2")


# --- Keys ---------------------------------------------------------------------------

PKCS8 = serialization.PrivateFormat.PKCS8
TRADITIONAL = serialization.PrivateFormat.TraditionalOpenSSL
OPENSSH = serialization.PrivateFormat.OpenSSH


class TestLoadPrivateKey:
    @pytest.mark.parametrize(
        ("make", "fmt", "label", "expected"),
        [
            (
                lambda: rsa.generate_private_key(65537, 2048),
                TRADITIONAL,
                "RSA PRIVATE KEY",
                ("rsa", 2048, None, "pkcs1"),
            ),
            (lambda: rsa.generate_private_key(65537, 2048), PKCS8, "PRIVATE KEY", ("rsa", 2048, None, "pkcs8")),
            (
                lambda: ec.generate_private_key(ec.SECP256R1()),
                TRADITIONAL,
                "EC PRIVATE KEY",
                ("ec", 256, "secp256r1", "sec1"),
            ),
            (lambda: ec.generate_private_key(ec.SECP384R1()), PKCS8, "PRIVATE KEY", ("ec", 384, "secp384r1", "pkcs8")),
            (lambda: ec.generate_private_key(ec.SECP521R1()), PKCS8, "PRIVATE KEY", ("ec", 521, "secp521r1", "pkcs8")),
            (lambda: ed25519.Ed25519PrivateKey.generate(), PKCS8, "PRIVATE KEY", ("ed25519", 256, None, "pkcs8")),
            (lambda: ed448.Ed448PrivateKey.generate(), PKCS8, "PRIVATE KEY", ("ed448", 456, None, "pkcs8")),
            pytest.param(
                lambda: _dsa().generate_private_key(1024),
                TRADITIONAL,
                "DSA PRIVATE KEY",
                ("dsa", 1024, None, "openssl-dsa"),
                marks=DSA_ON_PURPOSE,
            ),
            (
                lambda: ed25519.Ed25519PrivateKey.generate(),
                OPENSSH,
                "OPENSSH PRIVATE KEY",
                ("ed25519", 256, None, "openssh"),
            ),
            (
                lambda: ec.generate_private_key(ec.SECP256R1()),
                OPENSSH,
                "OPENSSH PRIVATE KEY",
                ("ec", 256, "secp256r1", "openssh"),
            ),
        ],
        ids=[
            "rsa-pkcs1",
            "rsa-pkcs8",
            "ec-sec1",
            "p384-pkcs8",
            "p521-pkcs8",
            "ed25519",
            "ed448",
            "dsa",
            "ssh-ed25519",
            "ssh-ec",
        ],
    )
    def test_formats(self, make, fmt, label, expected):
        """Each key format and algorithm parses to its algorithm, size, curve, format and public half."""
        key = make()
        data = _key_pem(key, fmt)
        assert data.startswith(f"-----BEGIN {label}-----".encode())
        info = load_private_key(data)
        assert (info.algorithm, info.bits, info.curve, info.format) == expected
        assert info.public_key_der == _spki(key)

    @pytest.mark.parametrize(
        ("algorithm", "bits", "curve", "supported"),
        [
            ("rsa", 2048, None, True),
            ("rsa", 4096, None, True),
            ("rsa", 1024, None, False),
            ("ec", 256, "secp256r1", True),
            ("ec", 384, "secp384r1", True),
            ("ec", 521, "secp521r1", True),
            ("ec", 256, "secp256k1", False),
            ("ed25519", 256, None, False),
            ("ed448", 456, None, False),
            ("dsa", 2048, None, False),
        ],
    )
    def test_key_supported(self, algorithm, bits, curve, supported):
        """Only RSA of 2048 bits or more and EC on the NIST curves are supported."""
        assert key_supported(KeyInfo(algorithm, bits, curve, b"", "pkcs8")) is supported

    @pytest.mark.parametrize(
        ("make", "fmt", "algorithm"),
        [
            (ed25519.Ed25519PrivateKey.generate, PKCS8, "ed25519"),
            pytest.param(lambda: _dsa().generate_private_key(2048), TRADITIONAL, "dsa", marks=DSA_ON_PURPOSE),
        ],
        ids=["ed25519", "dsa"],
    )
    def test_parsed_but_unsupported(self, make, fmt, algorithm):
        """Ed25519 and DSA keys parse with their algorithm named, and key_supported says no."""
        info = load_private_key(_key_pem(make(), fmt))
        assert info.algorithm == algorithm
        assert algorithm not in certs.SUPPORTED_KEY_ALGORITHMS
        assert key_supported(info) is False

    @pytest.mark.parametrize("fmt", [PKCS8, TRADITIONAL], ids=["pkcs8", "legacy-proc-type"])
    def test_encrypted(self, fmt):
        """An encrypted PKCS#8 or legacy Proc-Type encrypted key is key-encrypted, with the decrypt hint."""
        key = rsa.generate_private_key(65537, 1024)
        with pytest.raises(CertError) as info:
            load_private_key(_key_pem(key, fmt, serialization.BestAvailableEncryption(b"secret")))
        assert info.value.id == "key-encrypted"
        assert "openssl pkey -in FILE -out FILE.dec" in info.value.hint

    def test_encrypted_openssh(self):
        """An OpenSSH key that names a cipher is key-encrypted, before any password is asked for."""
        body = b"openssh-key-v1\x00" + (10).to_bytes(4, "big") + b"aes256-ctr" + b"\x00" * 16
        assert _error_id(load_private_key, _armour("OPENSSH PRIVATE KEY", body)) == "key-encrypted"

    @pytest.mark.parametrize(
        ("label", "der"),
        [
            ("PRIVATE KEY", b"\x30\x03\x02\x01\x00"),
            ("RSA PRIVATE KEY", None),  # PKCS#8 body under a PKCS#1 label
            ("OPENSSH PRIVATE KEY", b"openssh-key-v1\x00junk"),
        ],
        ids=["garbage", "label-mismatch", "openssh-garbage"],
    )
    def test_unparsable(self, ec_key, label, der):
        """A key block whose body is not a key of its label is key-unparsable, quoting no key bytes."""
        body = der if der is not None else ec_key.private_bytes(serialization.Encoding.DER, PKCS8, PLAIN)
        with pytest.raises(CertError) as info:
            load_private_key(_armour(label, body))
        assert info.value.id == "key-unparsable"
        encoded = base64.b64encode(body).decode()[:12]
        assert encoded not in str(info.value) + info.value.hint
        assert info.value.__cause__ is None

    def test_certificate_unexpected(self, pki, ec_key):
        """A certificate inside a key file is refused, naming its label."""
        with pytest.raises(CertError) as info:
            load_private_key(_key_pem(ec_key) + _pem(pki.leaf))
        assert info.value.id == "unexpected-pem-block"
        assert "CERTIFICATE" in info.value.message

    def test_several_keys(self, ec_key, pki):
        """Two keys in a key file are several-keys."""
        assert _error_id(load_private_key, _key_pem(ec_key) + _key_pem(pki.root_key)) == "several-keys"

    def test_crlf(self, ec_key):
        """A key with CRLF line endings loads."""
        assert load_private_key(_key_pem(ec_key).replace(b"\n", b"\r\n")).public_key_der == _spki(ec_key)

    @pytest.mark.parametrize(
        ("loader", "data_fixture"),
        [("load_pem_private_key", "rsa4096_pem"), ("load_ssh_private_key", None)],
    )
    def test_rsa_validation_skipped(self, monkeypatch, request, loader, data_fixture):
        """The key is loaded with RSA validation skipped, so a 4096-bit key is cheap to read."""
        if data_fixture is None:
            data = _key_pem(rsa.generate_private_key(65537, 2048), OPENSSH)
        else:
            data = request.getfixturevalue(data_fixture)
        real = getattr(serialization, loader)
        calls = []

        def spy(*args, **kwargs):
            calls.append(kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(serialization, loader, spy)
        info = load_private_key(data)
        assert info.algorithm == "rsa"
        assert calls == [{"password": None, "unsafe_skip_rsa_key_validation": True}]

    def test_no_private_material(self, rsa4096_pem):
        """KeyInfo holds only public facts and its repr shows no key bytes."""
        info = load_private_key(rsa4096_pem)
        assert [field.name for field in attrs.fields(KeyInfo)] == [
            "algorithm",
            "bits",
            "curve",
            "public_key_der",
            "format",
        ]
        assert repr(info) == "KeyInfo(algorithm='rsa', bits=4096, curve=None, format='pkcs1')"


class TestLoadBundle:
    @pytest.mark.parametrize("key_first", [True, False], ids=["key-first", "cert-first"])
    def test_any_order(self, pki, key_first):
        """A bundle's key and certificates load whichever comes first."""
        key, chain = _key_pem(pki.leaf_key, TRADITIONAL), _pem(pki.leaf) + _pem(pki.inter)
        info, certs_ = load_bundle(key + chain if key_first else chain + key)
        assert info.public_key_der == _spki(pki.leaf_key)
        assert [cert.serial for cert in certs_] == [3, 2]
        assert key_matches(info, certs_[0])

    def test_interleaved(self, pki):
        """A key between two certificates keeps the certificates' order."""
        data = _pem(pki.leaf) + _key_pem(pki.leaf_key) + _pem(pki.inter)
        assert [cert.serial for cert in load_bundle(data)[1]] == [3, 2]

    @pytest.mark.parametrize(
        ("parts", "error"),
        [
            (("key",), "no-certificate"),
            (("leaf",), "no-private-key"),
            (("key", "other_key", "leaf"), "several-keys"),
            (("encrypted", "leaf"), "key-encrypted"),
            (("key", "leaf", "csr"), "unexpected-pem-block"),
            (("key", "bad_cert"), "cert-unparsable"),
        ],
    )
    def test_refused(self, pki, parts, error):
        """A bundle without exactly one usable key and at least one certificate is refused."""
        pieces = {
            "key": _key_pem(pki.leaf_key),
            "other_key": _key_pem(pki.other_key),
            "encrypted": _key_pem(pki.leaf_key, PKCS8, serialization.BestAvailableEncryption(b"pw")),
            "leaf": _pem(pki.leaf),
            "csr": _armour("CERTIFICATE REQUEST", b"\x30\x00"),
            "bad_cert": _armour("CERTIFICATE", b"\x30\x00"),
        }
        assert _error_id(load_bundle, b"".join(pieces[part] for part in parts)) == error


class TestDsaWithoutCryptographysDsa:
    """DSA keys and certificates are recognised from their DER, never loaded by cryptography's deprecated DSA API.

    These tests run under the suite's warnings-as-errors: any DSA deprecation
    warning from the product fails them.
    """

    @pytest.mark.parametrize(("field", "fmt"), [("pkcs8", "pkcs8"), ("traditional", "openssl-dsa"), ("openssh", "openssh")])
    def test_each_format(self, field, fmt):
        """A DSA key in PKCS#8, OpenSSL's own and OpenSSH form is a DSA key of its size, with cryptography's public half."""
        material = _dsa_material()
        info = load_private_key(getattr(material, field))
        bits, spki = (1024, material.openssh_spki) if field == "openssh" else (2048, material.spki)
        assert (info.algorithm, info.bits, info.curve, info.format) == ("dsa", bits, None, fmt)
        assert info.public_key_der == spki
        assert key_supported(info) is False

    def test_certificate_and_key_match(self):
        """A DSA certificate's public half is its own; its key matches it and another DSA key does not."""
        material = _dsa_material()
        (cert,) = load_certificates(material.cert)
        assert cert.public_key_der == material.spki
        assert key_matches(load_private_key(material.pkcs8), cert)
        assert not key_matches(load_private_key(material.other_pkcs8), cert)

    def test_bundle(self):
        """A DSA SSH bundle (key + certificate) loads with its key matching the certificate."""
        material = _dsa_material()
        key, (cert,) = load_bundle(material.traditional + material.cert)
        assert key.algorithm == "dsa" and key_matches(key, cert)

    def test_works_without_cryptographys_dsa_module(self, monkeypatch):
        """With cryptography's DSA module gone (as a release that drops DSA would have it), a DSA key still loads."""
        monkeypatch.setitem(sys.modules, "cryptography.hazmat.primitives.asymmetric.dsa", None)
        material = _dsa_material()
        assert load_private_key(material.pkcs8).algorithm == "dsa"
        assert load_private_key(material.openssh).algorithm == "dsa"

    def test_no_module_imports_dsa(self):
        """No module of the engine imports cryptography's DSA module; the test kit only in the one function that makes a DSA key."""
        package = Path(certs.__file__).parent
        found = []
        for path in sorted(package.rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                names = []
                if isinstance(node, ast.ImportFrom):
                    names = [f"{node.module}.{alias.name}" for alias in node.names]
                elif isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                if any(name.endswith("asymmetric.dsa") for name in names):
                    found.append(str(path.relative_to(package)))
        assert found == ["testing/pki.py"]
        assert Path(package, "testing/pki.py").read_text().count("asymmetric import dsa") == 1

    @pytest.mark.parametrize("label", ["DSA PRIVATE KEY", "PRIVATE KEY"])
    def test_huge_numbers_are_refused_before_any_arithmetic(self, label):
        """A DSA key whose numbers have 40,000 bits is key-unparsable (its one exponentiation would take hours)."""

        def tlv(tag: int, body: bytes) -> bytes:
            return bytes([tag, 0x82]) + len(body).to_bytes(2, "big") + body  # long form, two length bytes

        def integer(n: int) -> bytes:
            return tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))

        huge = (1 << 40_000) - 1
        ints = integer(huge) + integer(huge - 2) + integer(3)
        if label == "DSA PRIVATE KEY":
            der = tlv(0x30, integer(0) + ints + integer(5) + integer(huge - 4))
        else:
            dsa_oid = bytes.fromhex("06072a8648ce380401")  # 1.2.840.10040.4.1
            der = tlv(0x30, integer(0) + tlv(0x30, dsa_oid + tlv(0x30, ints)) + tlv(0x04, integer(huge - 4)))
        assert _error_id(load_private_key, _armour(label, der)) == "key-unparsable"

    @pytest.mark.parametrize("field", ["pkcs8", "traditional", "openssh"])
    def test_every_truncation_is_refused_cleanly(self, field):
        """Every cut of a DSA key's DER, and every byte flipped in its first 64, is a CertError, never another exception."""
        [block] = pem_blocks(getattr(_dsa_material(), field))
        der = block.der
        cuts = [der[:n] for n in range(0, len(der), 7)]
        flips = [der[:n] + bytes([der[n] ^ 0xFF]) + der[n + 1 :] for n in range(min(64, len(der)))]
        refused = 0
        for variant in cuts + flips:
            try:
                info = load_private_key(_armour(block.label, variant))
            except CertError:
                refused += 1
            else:  # a flip inside a number or a padding byte can leave a well-formed key: never a supported one
                assert info.algorithm == "dsa" and not key_supported(info)
        assert refused >= len(cuts) - 1  # every cut but the whole key


class TestKeyMatches:
    @pytest.mark.parametrize(
        ("key", "cert", "matches"),
        [
            ("leaf_key", "leaf", True),
            ("leaf_key", "server_only", True),
            ("root_key", "root", True),
            ("leaf_key", "inter", False),
            ("other_key", "root", False),
        ],
    )
    def test_key_matches(self, pki, key, cert, matches):
        """A key matches exactly the certificates that carry its public half."""
        info = load_private_key(_key_pem(getattr(pki, key)))
        (cert_info,) = load_certificates(_pem(getattr(pki, cert)))
        assert key_matches(info, cert_info) is matches
