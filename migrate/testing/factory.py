"""Certificates and whole X15.4 nodes built from a few parameters.

The test-suite states DOMAIN.md's scenarios in one line each::

    ca = make_ca("Example Public CA2", public=True)
    node = build_node(tmp_path, NodeSpec(role="edge", identity=issue(ca, "edge.example.com", eku=["serverAuth"])))

Pure ``cryptography`` and plain file writes (through :func:`tree.write_tree`),
so it works on the real file system and under pyfakefs alike.

Key generation is slow for RSA and DSA (RSA-4096 takes about a second), so
those keys come round-robin from a small module-level pool per key type,
filled on demand: a test session generates each at most :data:`POOL_SIZE`
times.  CA keys and leaf keys come from separate pools, so a leaf never
shares its issuer's key, and two leaves issued one after the other always get
different keys.  EC and Ed25519 keys are cheap and always fresh.
"""

from __future__ import annotations

import ipaddress
import pathlib
import threading
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .. import policy
from .tree import Entry, Tree, write_tree

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
        return dsa.generate_private_key(key_size=2048)
    raise ValueError(f"unknown key type {key_type!r}; expected one of {', '.join(KEY_TYPES)}")


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


# --- Nodes --------------------------------------------------------------------

ROLES = ("core", "edge")
SSH_CHOICES = ("same", "absent", "other")
CLIENT_CHOICES = ("absent", "migrated")
DEFAULT_UIDS = {"root": 0, "_nobody": 65534, "_pfwd": 1001}

# Files and directories outside policy.FILES: (path under the node root, mode, owner).
_DIRS = (
    ("persistent", 0o755, "root"),
    (policy.CERT_DIR, 0o755, "root"),
    *((f"{policy.CERT_DIR}/{other.name}", other.mode, other.owner) for other in policy.OTHER_FILE_RULES if other.kind == "dir"),
)
CONFIG_MODE, CONFIG_OWNER = 0o644, "root"

_CRL_UPDATE_CONF = b"""\
# Automatic CRL updates (written by the web interface; do not edit by hand).
CRL_UPDATE_ENABLED=false
CRL_UPDATE_INTERVAL=3600
CRL_DISTRIBUTION_POINTS=""
"""

_MULTIDOMAIN_INDEX = b"""\
# Multi-domain (SNI) certificates, one domain per line: <domain> <directory>
# No additional domains are configured.
"""


def _settings_for(role: str, cn: str) -> list[tuple[str, str]]:
    """Realistic settings the migration does not own."""
    host, _, domain = cn.partition(".")
    domain = domain or "example.com"
    peer = f"{'edge' if role == 'core' else 'core'}.{domain}"
    common = [
        ("Administration HTTPS Mode", '"On"'),
        ("Administration SSH Mode", '"On"'),
        ("H323 Mode", '"Off"'),
        ("IP DNS Domain Name", f'"{domain}"'),
        ("IP DNS Hostname", f'"{host}"'),
        ("IP DNS Server 1 Address", '"192.0.2.53"'),
        ("IP DNS Server 2 Address", '"192.0.2.54"'),
        ("IP Ethernet 1 IP V4 Address", '"10.10.1.20"' if role == "core" else '"172.16.1.20"'),
        ("IP Ethernet 1 IP V4 SubnetMask", '"255.255.255.0"'),
        ("IP Gateway", '"10.10.1.1"' if role == "core" else '"172.16.1.1"'),
        ("Logging Level", "1"),
        ("NTP Server 1 Address", '"0.pool.ntp.org"'),
        ("NTP Server 2 Address", '"1.pool.ntp.org"'),
        ("SIP Domain 1 Name", f'"{domain}"'),
        ("SIP Mode", '"On"'),
        ("SIP TCP Mode", '"Off"'),
        ("SIP TLS Mode", '"On"'),
        ("SIP TLS Port", "5061"),
        ("SIP UDP Mode", '"Off"'),
        ("SNMP Mode", '"Off"'),
        ("SystemUnit Name", f'"{host}"'),
        ("TimeZone Name", '"Europe/London"'),
    ]
    if role == "core":
        role_settings = [
            ("EdgeConfigServer Enabled", '"On"'),
            ("Zones Zone 1 Name", '"UC Traversal to Edge"'),
            ("Zones Zone 1 Type", '"TraversalClient"'),
            ("Zones Zone 1 TraversalClient Authentication UserName", '"traversal"'),
            ("Zones Zone 1 TraversalClient Collaboration Edge", '"On"'),
            ("Zones Zone 1 TraversalClient Peer 1 Address", f'"{peer}"'),
            ("Zones Zone 1 TraversalClient SIP Port", "7001"),
            ("Zones Zone 1 TraversalClient SIP TLS Verify Mode", '"On"'),
            ("Zones Zone 1 TraversalClient SIP Transport", '"TLS"'),
            ("Zones Zone 2 Name", '"CUCM Neighbor"'),
            ("Zones Zone 2 Neighbor Peer 1 Address", f'"cucm.{domain}"'),
            ("Zones Zone 2 Neighbor SIP TLS Verify Mode", '"On"'),
            ("Zones Zone 2 Type", '"Neighbor"'),
        ]
    else:
        role_settings = [
            ("IP Ethernet 1 IP V4 StaticNAT Address", '"198.51.100.20"'),
            ("IP Ethernet 1 IP V4 StaticNAT Mode", '"On"'),
            ("Zones Zone 1 Name", '"UC Traversal from Core"'),
            ("Zones Zone 1 Type", '"TraversalServer"'),
            ("Zones Zone 1 TraversalServer Authentication UserName", '"traversal"'),
            ("Zones Zone 1 TraversalServer Collaboration Edge", '"On"'),
            ("Zones Zone 1 TraversalServer SIP Port", "7001"),
            ("Zones Zone 1 TraversalServer SIP TLS Verify Mode", '"On"'),
            ("Zones Zone 1 TraversalServer SIP TLS Verify Subject Name", f'"{peer}"'),
            ("Zones Zone 1 TraversalServer SIP Transport", '"TLS"'),
            ("Zones Zone 6 DNS SIP TLS Verify Mode", '"On"'),
            ("Zones Zone 6 Name", '"Webex via DNS"'),
            ("Zones Zone 6 Type", '"DNS"'),
        ]
    return common + role_settings


def _str_mapping(value: Mapping) -> dict:
    return dict(value)


@attrs.frozen
class NodeSpec:
    """An X15.4 node (or one just upgraded to X15.5, with ``client="migrated"``), as parameters.

    ``settings`` values are written verbatim after ``: `` (quote them
    yourself: ``'"On"'``); a name among the defaults (matched
    case-insensitively) replaces the default.  Every setting is written in
    name order, as ``xconfiguration`` prints them; ``config_extra`` follows
    the settings byte for byte.  ``key_format`` is the PEM form
    of ``privkey.pem`` and of the key in the SSH bundles.
    """

    role: str = attrs.field(default="core", validator=attrs.validators.in_(ROLES))
    identity: Identity | None = None
    trusted: Sequence[CA] = attrs.field(default=(), converter=tuple)
    ssh: str = attrs.field(default="same", validator=attrs.validators.in_(SSH_CHOICES))
    settings: Mapping[str, str] = attrs.field(factory=dict, converter=_str_mapping)
    config_extra: bytes = b""
    client: str = attrs.field(default="absent", validator=attrs.validators.in_(CLIENT_CHOICES))
    uids: Mapping[str, int] = attrs.field(factory=lambda: dict(DEFAULT_UIDS), converter=_str_mapping)
    chown: bool = True
    key_format: str = attrs.field(default="pkcs8", validator=attrs.validators.in_(KEY_FORMATS))

    def __attrs_post_init__(self) -> None:
        missing = sorted({"root", "_nobody", "_pfwd"} - set(self.uids))
        if missing:
            raise ValueError(f"uids lacks owner names {missing}")
        for name, value in self.settings.items():
            if any(c in name + value for c in "\r\n"):
                raise ValueError(f"setting {name!r} spans lines; use config_extra for raw bytes")


def config_text(spec: NodeSpec, cn: str) -> bytes:
    """The ``xconfiguration.txt`` that :func:`build_node` writes for ``spec``."""
    settings = dict(_settings_for(spec.role, cn))
    folded = {name.casefold(): name for name in settings}
    if spec.client == "migrated":
        extra = {policy.CHECKING_SETTING: "On"}
        extra.update(spec.settings)
    else:
        extra = dict(spec.settings)
    for name, value in extra.items():
        settings[folded.get(name.casefold(), name)] = value
    ordered = sorted(settings.items(), key=lambda item: item[0].casefold())
    lines = [f"*c xConfiguration {name}: {value}\n" for name, value in ordered]
    return "".join(lines).encode() + spec.config_extra


def _csr_pem(identity: Identity) -> bytes:
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


def _saml_metadata(cn: str) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="https://{cn}/">\n'
        '  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">\n'
        '    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"'
        f' Location="https://{cn}:8443/idp/sso" index="0"/>\n'
        "  </md:SPSSODescriptor>\n"
        "</md:EntityDescriptor>\n"
    ).encode()


def node_tree(spec: NodeSpec = NodeSpec()) -> Tree:
    """The tree :func:`build_node` writes for ``spec`` (paths relative to the node root).

    Owners are the numbers ``spec.uids`` gives the names of DOMAIN.md; each
    group is the same number as the owner.
    """
    identity = spec.identity
    if identity is None:
        identity = issue(make_ca("Example Internal CA"), f"{spec.role}.example.com")
    trusted = spec.trusted or (identity.ca,)
    uids = spec.uids
    tree: Tree = {}

    def add(rel: str, mode: int, owner: str, data: bytes | None = None) -> None:
        uid = uids[owner]
        kind = "dir" if data is None else "file"
        tree[rel] = Entry(kind=kind, mode=mode, uid=uid, gid=uid, data=data)

    for rel, mode, owner in _DIRS:
        add(rel, mode, owner)
    certs = policy.CERT_DIR
    cert_validity = identity.certificate
    crl = make_crl(
        identity.ca,
        last_update=cert_validity.not_valid_before_utc,
        next_update=cert_validity.not_valid_after_utc,
    )
    contents = {
        "ca.pem": b"".join(ca.cert_pem for ca in trusted),
        "server.pem": identity.chain_pem,
        "privkey.pem": identity.key_pem(spec.key_format),
    }
    if spec.ssh == "same":
        contents["server-ssh.pem"] = identity.bundle_pem(spec.key_format)
    elif spec.ssh == "other":
        other_identity = issue(identity.ca, identity.cn, key_type=identity.key_type)
        contents["server-ssh.pem"] = other_identity.bundle_pem(spec.key_format)
    if spec.client == "migrated":
        for rule in policy.CLIENT_FILES:
            if rule.counterpart in contents:
                contents[rule.name] = contents[rule.counterpart]
    for rule in policy.FILES:
        if rule.name in contents:
            add(f"{certs}/{rule.name}", rule.mode, rule.owner, contents[rule.name])
    other = {
        "client-ca.crl": crl,
        "policy-services.crl": crl,
        "mtls_ca.pem": identity.ca.cert_pem,
        "client-ca.crl.default": crl,
        "policy-services.crl.default": crl,
        "crl-update.conf": _CRL_UPDATE_CONF,
    }
    for other_rule in policy.OTHER_FILE_RULES:  # the directories are laid out above, with the rest of the tree
        if other_rule.kind == "file":
            add(f"{certs}/{other_rule.name}", other_rule.mode, other_rule.owner, other[other_rule.name])
    add(f"{certs}/generated_csr/csr.pem", 0o644, "_nobody", _csr_pem(identity))
    add(f"{certs}/saml/sp_metadata.xml", 0o644, "root", _saml_metadata(identity.cn))
    add(f"{certs}/multidomaincerts/domains.conf", 0o600, "root", _MULTIDOMAIN_INDEX)
    add(policy.CONFIG_FILE, CONFIG_MODE, CONFIG_OWNER, config_text(spec, identity.cn))
    return tree


def build_node(root, spec: NodeSpec = NodeSpec()) -> pathlib.Path:
    """Write the node ``spec`` describes under ``root`` (created if missing) and return it.

    The entries must not exist yet (:class:`FileExistsError`).  Owners are
    set only when ``spec.chown`` (on the real file system that needs root).
    """
    write_tree(node_tree(spec), root, owners=spec.chown)
    return pathlib.Path(root)
