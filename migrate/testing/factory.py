"""Whole X15.4 nodes built from a few parameters, with real certificates from :mod:`.pki`.

The test-suite states DOMAIN.md's scenarios in one line each::

    ca = make_ca("Example Public CA2", public=True)
    node = build_node(tmp_path, NodeSpec(role="edge", identity=issue(ca, "edge.example.com", eku=["serverAuth"])))

A :class:`NodeSpec` gives the configuration text (:func:`config_text`) and the
store's files with the modes and owners of :mod:`migrate.policy`
(:func:`node_tree`); :func:`build_node` writes them through
:func:`tree.write_tree`, so it works on the real file system and under
pyfakefs alike.

The certificate makers (:func:`make_ca`, :func:`issue`, :func:`make_crl`,
:class:`CA`, :class:`Identity`, :data:`KEY_TYPES` and the rest of
:mod:`.pki`'s public names) live in :mod:`migrate.testing.pki` and are
re-exported here, so ``from migrate.testing.factory import issue, make_ca``
keeps working.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Mapping, Sequence

import attrs

from .. import policy
from .pki import (
    CA,
    CA_VALIDITY,
    EKU_OIDS,
    KEY_FORMATS,
    KEY_TYPES,
    LEAF_VALIDITY,
    POOL_SIZE,
    Identity,
    csr_pem,
    issue,
    make_ca,
    make_crl,
)
from .tree import Entry, Tree, write_tree

__all__ = [
    "CA",
    "CA_VALIDITY",
    "CLIENT_CHOICES",
    "CONFIG_MODE",
    "CONFIG_OWNER",
    "DEFAULT_UIDS",
    "EKU_OIDS",
    "KEY_FORMATS",
    "KEY_TYPES",
    "LEAF_VALIDITY",
    "POOL_SIZE",
    "ROLES",
    "SSH_CHOICES",
    "Identity",
    "NodeSpec",
    "build_node",
    "config_text",
    "issue",
    "make_ca",
    "make_crl",
    "node_tree",
    "write_tree",
]

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


def one_of(choices: Sequence[str]) -> Callable[[object, attrs.Attribute, object], None]:
    """An attrs validator whose error names the parameter and lists the valid values."""

    def check(instance: object, attribute: attrs.Attribute, value: object) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name} must be one of {', '.join(map(repr, choices))}, not {value!r}")

    return check


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

    role: str = attrs.field(default="core", validator=one_of(ROLES))
    identity: Identity | None = None
    trusted: Sequence[CA] = attrs.field(default=(), converter=tuple)
    ssh: str = attrs.field(default="same", validator=one_of(SSH_CHOICES))
    settings: Mapping[str, str] = attrs.field(factory=dict, converter=_str_mapping)
    config_extra: bytes = b""
    client: str = attrs.field(default="absent", validator=one_of(CLIENT_CHOICES))
    uids: Mapping[str, int] = attrs.field(factory=lambda: dict(DEFAULT_UIDS), converter=_str_mapping)
    chown: bool = True
    key_format: str = attrs.field(default="pkcs8", validator=one_of(KEY_FORMATS))

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
    add(f"{certs}/generated_csr/csr.pem", 0o644, "_nobody", csr_pem(identity))
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
