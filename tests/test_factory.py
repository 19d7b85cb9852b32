"""Tests for migrate.testing.factory: certificates and whole nodes from parameters."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from support import DSA_ON_PURPOSE

from migrate import policy
from migrate.testing import factory
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca, node_tree
from migrate.testing.tree import read_tree

CERTS = policy.CERT_DIR
NOBODY, PFWD = 65534, 1001
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n", re.S)


def _blocks(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


def _pub(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ekus(cert: x509.Certificate):
    try:
        ext = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return None
    return {oid.dotted_string for oid in ext.value}


@pytest.fixture(scope="module")
def ca():
    return make_ca("Test CA")


class TestMakeCA:
    def test_self_signed_ca(self, ca):
        """A CA certificate is self-signed, marked CA, and named as asked."""
        cert = ca.certificate
        cert.verify_directly_issued_by(cert)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
        assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Test CA"
        assert ca.public is False

    def test_repr_hides_key(self, ca):
        """The repr of a CA names it but shows no key material."""
        key_pem = ca._key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        assert "Test CA" in repr(ca)
        assert "PRIVATE" not in repr(ca) and key_pem.decode() not in repr(ca) and "key=" not in repr(ca)

    def test_explicit_validity(self):
        """not_before and not_after are used as given."""
        start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2046, 1, 1, tzinfo=UTC)
        cert = make_ca("Long", not_before=start, not_after=end).certificate
        assert (cert.not_valid_before_utc, cert.not_valid_after_utc) == (start, end)

    def test_inverted_validity_refused(self):
        """A validity that ends before it starts is refused."""
        now = datetime.now(UTC)
        with pytest.raises(ValueError):
            make_ca("Bad", not_before=now, not_after=now - timedelta(days=1))


class TestIssue:
    @pytest.mark.parametrize(
        "eku, expected",
        [
            (("serverAuth", "clientAuth"), {policy.SERVER_AUTH, policy.CLIENT_AUTH}),
            (("serverAuth",), {policy.SERVER_AUTH}),
            (("clientAuth",), {policy.CLIENT_AUTH}),
            (("serverAuth", "1.3.6.1.5.5.7.3.4"), {policy.SERVER_AUTH, "1.3.6.1.5.5.7.3.4"}),
            (None, None),
        ],
    )
    def test_eku_variants(self, ca, eku, expected):
        """The EKU extension holds exactly the usages asked for; eku=None leaves it out altogether."""
        assert _ekus(issue(ca, "n.example.com", eku=eku).certificate) == expected

    def test_default_eku_is_both(self, ca):
        """By default a leaf carries serverAuth and clientAuth."""
        assert _ekus(issue(ca, "n.example.com").certificate) == {policy.SERVER_AUTH, policy.CLIENT_AUTH}

    @pytest.mark.parametrize("eku", [(), ("webAuth",), "serverAuth"])
    def test_bad_eku_refused(self, ca, eku):
        """An empty EKU list, an unknown name, or a bare string is refused."""
        with pytest.raises((ValueError, TypeError)):
            issue(ca, "n.example.com", eku=eku)

    def test_leaf_shape(self, ca):
        """A leaf is signed by its CA, not a CA itself, with the key usages and SAN DOMAIN.md expects."""
        cert = issue(ca, "core.example.com", san=["alt.example.com", "192.0.2.7"]).certificate
        cert.verify_directly_issued_by(ca.certificate)
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        assert usage.digital_signature and usage.key_encipherment and not usage.key_cert_sign
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == ["core.example.com", "alt.example.com"]
        assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.7"]

    def test_default_validity(self, ca):
        """A leaf is valid from about 30 days ago for about 365 days."""
        cert = issue(ca, "n.example.com").certificate
        now = datetime.now(UTC)
        assert abs(cert.not_valid_before_utc - (now - timedelta(days=30))) < timedelta(minutes=5)
        assert abs(cert.not_valid_after_utc - (now + timedelta(days=365))) < timedelta(minutes=5)

    @pytest.mark.parametrize(
        "key_type, cls",
        [
            ("ec256", ec.EllipticCurvePrivateKey),
            ("ec384", ec.EllipticCurvePrivateKey),
            ("ed25519", ed25519.Ed25519PrivateKey),
            ("rsa2048", rsa.RSAPrivateKey),
            ("rsa4096", rsa.RSAPrivateKey),
            pytest.param("dsa2048", "DSAPrivateKey", marks=DSA_ON_PURPOSE),
        ],
    )
    def test_key_types(self, ca, key_type, cls):
        """Each key type gives a key of that type whose PKCS#8 PEM matches the certificate."""
        ident = issue(ca, "n.example.com", key_type=key_type)
        key = serialization.load_pem_private_key(ident.key_pem(), None)
        if isinstance(cls, str):  # DSA's classes: named here, looked up under the test's warning filter
            from cryptography.hazmat.primitives.asymmetric import dsa

            cls = getattr(dsa, cls)
        assert isinstance(key, cls)
        assert _pub(key) == _pub(ident.certificate)
        if key_type.startswith("rsa"):
            assert key.key_size == int(key_type[3:])

    @pytest.mark.parametrize("ca_type", ["rsa2048", "ec384", "ed25519", pytest.param("dsa2048", marks=DSA_ON_PURPOSE)])
    def test_ca_key_types_sign(self, ca_type):
        """A CA of each signing key type issues leaves and CRLs that verify."""
        other = make_ca("Other CA", key_type=ca_type)
        issue(other, "n.example.com").certificate.verify_directly_issued_by(other.certificate)
        crl = x509.load_pem_x509_crl(factory.make_crl(other, revoked=[42]))
        assert crl.is_signature_valid(other.certificate.public_key())
        assert crl.get_revoked_certificate_by_serial_number(42) is not None

    def test_pkcs1_and_sec1(self, ca):
        """pkcs1 gives an RSA PRIVATE KEY, sec1 an EC PRIVATE KEY; each refuses the other key type."""
        rsa_ident = issue(ca, "r.example.com", key_type="rsa2048")
        ec_ident = issue(ca, "e.example.com")
        assert rsa_ident.key_pem("pkcs1").startswith(b"-----BEGIN RSA PRIVATE KEY-----")
        assert ec_ident.key_pem("sec1").startswith(b"-----BEGIN EC PRIVATE KEY-----")
        with pytest.raises(ValueError):
            ec_ident.key_pem("pkcs1")
        with pytest.raises(ValueError):
            rsa_ident.key_pem("sec1")
        with pytest.raises(ValueError):
            ec_ident.key_pem("der")

    @pytest.mark.parametrize("fmt, header", [("pkcs8", b"ENCRYPTED PRIVATE KEY"), ("sec1", b"EC PRIVATE KEY")])
    def test_encrypted_keys(self, ca, fmt, header):
        """With a password the key is encrypted: it loads with the password and not without."""
        ident = issue(ca, "n.example.com")
        pem = ident.key_pem(fmt, password=b"s3cret")
        assert pem.startswith(b"-----BEGIN " + header)
        assert _pub(serialization.load_pem_private_key(pem, b"s3cret")) == _pub(ident.certificate)
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(pem, None)

    def test_pooled_keys_differ_in_a_row(self, ca):
        """Identities issued one after the other never share a key, even from the RSA pool."""
        keys = [_pub(issue(ca, f"n{i}.example.com", key_type="rsa2048").certificate) for i in range(5)]
        assert all(a != b for a, b in zip(keys, keys[1:], strict=False))

    def test_leaf_never_shares_its_issuers_key(self):
        """A pooled leaf key is never its CA's key: CAs and leaves draw from separate pools."""
        rsa_ca = make_ca("RSA CA", key_type="rsa2048")
        for i in range(4):
            assert _pub(issue(rsa_ca, f"n{i}", key_type="rsa2048").certificate) != _pub(rsa_ca.certificate)

    def test_chain_and_bundle(self, ca):
        """chain_pem is leaf then CA; bundle_pem is key then leaf; cert_pem is the leaf only."""
        ident = issue(ca, "n.example.com")
        assert [name for name, _ in _blocks(ident.cert_pem)] == ["CERTIFICATE"]
        assert ident.chain_pem == ident.cert_pem + ca.cert_pem
        assert ident.bundle_pem() == ident.key_pem() + ident.cert_pem

    def test_repr_hides_key(self, ca):
        """The repr of an identity shows no key material."""
        ident = issue(ca, "n.example.com")
        assert "n.example.com" in repr(ident)
        assert "PRIVATE" not in repr(ident) and "key=" not in repr(ident)


def _expected_files(*, ssh=True, client=False) -> set[str]:
    files = {
        "persistent",
        CERTS,
        policy.CONFIG_FILE,
        *(f"{CERTS}/{name}" for name in policy.OTHER_FILES),
        f"{CERTS}/generated_csr/csr.pem",
        f"{CERTS}/saml/sp_metadata.xml",
        f"{CERTS}/multidomaincerts/domains.conf",
        f"{CERTS}/ca.pem",
        f"{CERTS}/server.pem",
        f"{CERTS}/privkey.pem",
    }
    if ssh:
        files.add(f"{CERTS}/server-ssh.pem")
    if client:
        files |= {f"{CERTS}/client.pem", f"{CERTS}/clientprivkey.pem"}
        if ssh:
            files.add(f"{CERTS}/client-ssh.pem")
    return files


# DOMAIN.md's table: path under the cert dir -> (mode, uid).
_DOMAIN_TABLE = {
    "ca.pem": (0o644, NOBODY),
    "server.pem": (0o644, NOBODY),
    "privkey.pem": (0o440, 0),
    "server-ssh.pem": (0o600, PFWD),
    "client-ca.crl": (0o644, NOBODY),
    "policy-services.crl": (0o644, NOBODY),
    "mtls_ca.pem": (0o644, NOBODY),
    "client-ca.crl.default": (0o644, 0),
    "policy-services.crl.default": (0o755, 0),  # the technote's listing: rwxr-xr-x
    "crl-update.conf": (0o644, 0),  # rw-r--r--
    "generated_csr": (0o755, NOBODY),
    "saml": (0o755, 0),
    "multidomaincerts": (0o700, 0),
    "client.pem": (0o644, NOBODY),
    "clientprivkey.pem": (0o440, 0),
    "client-ssh.pem": (0o600, PFWD),
}


def _config_lines(tree) -> list[bytes]:
    return tree[policy.CONFIG_FILE].data.splitlines()


class TestNodeSpec:
    @pytest.mark.parametrize(
        "kwargs",
        [
            dict(role="gateway"),
            dict(ssh="maybe"),
            dict(client="half"),
            dict(uids={"root": 0}),
            dict(settings={"SIP Mode": "On\n*c xConfiguration X: Y"}),
            dict(key_format="der"),
        ],
    )
    def test_bad_spec_refused(self, kwargs):
        """A spec with an unknown choice, missing owner names, or a multi-line setting is refused."""
        with pytest.raises(ValueError):
            NodeSpec(**kwargs)


class TestBuildNode:
    def test_layout_modes_owners_in_fake_fs(self, fs):
        """A default Core has the X15.4 file set with DOMAIN.md's modes, owners and mirrored groups."""
        root = build_node("/tandberg")
        tree = read_tree(root)
        assert set(tree) == _expected_files()
        for name, (mode, uid) in _DOMAIN_TABLE.items():
            rel = f"{CERTS}/{name}"
            if rel in tree:
                assert (tree[rel].mode, tree[rel].uid, tree[rel].gid) == (mode, uid, uid), rel
        for rule in policy.FILES:
            rel = f"{CERTS}/{rule.name}"
            if rel in tree:
                assert tree[rel].mode == rule.mode
        assert tree[policy.CONFIG_FILE].mode == 0o644

    def test_real_fs_owners(self, tmp_path):
        """On the real file system (as root) owners are set; chown=False leaves the writer's."""
        spec = NodeSpec(identity=issue(make_ca("CA"), "core.example.com"))
        build_node(tmp_path / "a", spec)
        assert os.stat(tmp_path / "a" / CERTS / "server-ssh.pem").st_uid == PFWD
        assert os.stat(tmp_path / "a" / CERTS / "ca.pem").st_gid == NOBODY
        build_node(tmp_path / "b", NodeSpec(identity=spec.identity, chown=False))
        assert os.stat(tmp_path / "b" / CERTS / "server-ssh.pem").st_uid == os.geteuid()
        assert os.stat(tmp_path / "b" / CERTS / "privkey.pem").st_mode & 0o7777 == 0o440

    def test_same_tree_real_and_fake(self, tmp_path):
        """The same node tree written on the real disk and in pyfakefs reads back identical."""
        from pyfakefs.fake_filesystem_unittest import Patcher

        tree = node_tree()
        factory.write_tree(tree, tmp_path)
        with Patcher():
            factory.write_tree(tree, "/tandberg")
            fake = read_tree("/tandberg")
        assert read_tree(tmp_path) == fake == tree

    def test_custom_uids(self, fs):
        """Owner names map through spec.uids, groups to the same numbers."""
        tree = read_tree(build_node("/n", NodeSpec(uids={"root": 0, "_nobody": 99, "_pfwd": 42})))
        assert (tree[f"{CERTS}/ca.pem"].uid, tree[f"{CERTS}/ca.pem"].gid) == (99, 99)
        assert tree[f"{CERTS}/server-ssh.pem"].uid == 42

    def test_identity_files(self, fs):
        """server.pem is leaf + issuer, privkey.pem its key, server-ssh.pem key + leaf, ca.pem the trusted CAs."""
        ca1, ca2 = make_ca("CA1"), make_ca("CA2", public=True)
        ident = issue(ca1, "core.example.com")
        tree = read_tree(build_node("/n", NodeSpec(identity=ident, trusted=[ca1, ca2])))
        certs = {
            name: tree[f"{CERTS}/{name}"].data for name in ("server.pem", "privkey.pem", "server-ssh.pem", "ca.pem")
        }
        assert certs["server.pem"] == ident.cert_pem + ca1.cert_pem
        assert certs["privkey.pem"] == ident.key_pem()
        assert certs["server-ssh.pem"] == ident.key_pem() + ident.cert_pem
        assert certs["ca.pem"] == ca1.cert_pem + ca2.cert_pem

    def test_default_trust_is_issuer(self, fs):
        """Without trusted CAs, ca.pem holds the identity's issuer."""
        ident = issue(make_ca("Only CA"), "core.example.com")
        tree = read_tree(build_node("/n", NodeSpec(identity=ident)))
        assert tree[f"{CERTS}/ca.pem"].data == ident.ca.cert_pem

    def test_default_identity_has_both_ekus(self, fs):
        """The default identity has both EKUs and the role's name, and its key matches."""
        tree = read_tree(build_node("/n", NodeSpec(role="edge")))
        leaf = x509.load_pem_x509_certificates(tree[f"{CERTS}/server.pem"].data)[0]
        key = serialization.load_pem_private_key(tree[f"{CERTS}/privkey.pem"].data, None)
        assert _ekus(leaf) == {policy.SERVER_AUTH, policy.CLIENT_AUTH}
        assert leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "edge.example.com"
        assert _pub(key) == _pub(leaf)

    def test_ssh_other_has_a_different_key(self, fs):
        """ssh="other" puts a different identity's key and certificate into server-ssh.pem."""
        tree = read_tree(build_node("/n", NodeSpec(ssh="other")))
        (kind_k, key_pem), (kind_c, cert_pem) = _blocks(tree[f"{CERTS}/server-ssh.pem"].data)
        assert (kind_k, kind_c) == ("PRIVATE KEY", "CERTIFICATE")
        server_key = serialization.load_pem_private_key(tree[f"{CERTS}/privkey.pem"].data, None)
        ssh_key = serialization.load_pem_private_key(key_pem, None)
        ssh_cert = x509.load_pem_x509_certificate(cert_pem)
        assert _pub(ssh_key) == _pub(ssh_cert)
        assert _pub(ssh_key) != _pub(server_key)

    def test_ssh_absent(self, fs):
        """ssh="absent" writes no server-ssh.pem."""
        assert set(read_tree(build_node("/n", NodeSpec(ssh="absent")))) == _expected_files(ssh=False)

    def test_key_format(self, fs):
        """key_format sets the PEM form of privkey.pem and of the SSH bundle's key."""
        ident = issue(make_ca("CA"), "core.example.com")
        tree = read_tree(build_node("/n", NodeSpec(identity=ident, key_format="sec1")))
        assert tree[f"{CERTS}/privkey.pem"].data.startswith(b"-----BEGIN EC PRIVATE KEY-----")
        assert tree[f"{CERTS}/server-ssh.pem"].data.startswith(b"-----BEGIN EC PRIVATE KEY-----")

    def test_client_migrated_copies(self, fs):
        """client="migrated" adds exact copies of the server files with the policy modes and the counterparts' owners."""
        tree = read_tree(build_node("/n", NodeSpec(client="migrated")))
        assert set(tree) == _expected_files(client=True)
        for rule in policy.CLIENT_FILES:
            copy, original = tree[f"{CERTS}/{rule.name}"], tree[f"{CERTS}/{rule.counterpart}"]
            assert copy.data == original.data
            assert (copy.uid, copy.gid) == (original.uid, original.gid)
            assert copy.mode == rule.mode
        lines = _config_lines(tree)
        assert b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On" in lines
        assert not any(b"EnableServerEkuUpload" in line for line in lines)

    def test_client_migrated_without_ssh(self, fs):
        """A migrated node without server-ssh.pem has no client-ssh.pem either."""
        tree = read_tree(build_node("/n", NodeSpec(client="migrated", ssh="absent")))
        assert set(tree) == _expected_files(ssh=False, client=True)

    def test_config_settings(self, fs):
        """Given settings are written, a default is replaced rather than repeated, and the rest is realistic."""
        spec = NodeSpec(
            role="edge",
            settings={policy.RETIRED_SETTING: "On", "sip mode": '"Off"', "Zones Zone 7 Name": '"New"'},
        )
        lines = _config_lines(read_tree(build_node("/n", spec)))
        assert b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On" in lines
        assert b'*c xConfiguration SIP Mode: "Off"' in lines
        assert b'*c xConfiguration Zones Zone 7 Name: "New"' in lines
        assert sum(line.startswith(b"*c xConfiguration SIP Mode:") for line in lines) == 1
        assert all(line.startswith(b"*c xConfiguration ") for line in lines)
        assert b'*c xConfiguration Zones Zone 1 Type: "TraversalServer"' in lines

    @pytest.mark.parametrize("role", ["core", "edge"])
    def test_default_config_has_no_retired_switch(self, fs, role):
        """Without being asked, neither role's configuration holds EnableServerEkuUpload or the checking mode."""
        data = read_tree(build_node("/n", NodeSpec(role=role)))[policy.CONFIG_FILE].data
        assert b"EnableServerEkuUpload" not in data
        assert b"ExtendedKeyUsage Checking" not in data
        assert (b"TraversalClient" in data) == (role == "core")
        assert len(data.splitlines()) >= 10

    def test_config_extra_appended_raw(self, fs):
        """config_extra follows the settings byte for byte."""
        extra = b'*c xConfiguration Odd Value: "caf\xe9"\r\n\x00tail'
        data = read_tree(build_node("/n", NodeSpec(config_extra=extra)))[policy.CONFIG_FILE].data
        assert data.endswith(b'"\n' + extra)

    def test_crls_signed_by_issuer(self, fs):
        """The CRL files are real CRLs signed by the identity's issuer."""
        ident = issue(make_ca("CRL CA"), "core.example.com")
        tree = read_tree(build_node("/n", NodeSpec(identity=ident)))
        for name in ("client-ca.crl", "policy-services.crl", "client-ca.crl.default"):
            crl = x509.load_pem_x509_crl(tree[f"{CERTS}/{name}"].data)
            assert crl.is_signature_valid(ident.ca.certificate.public_key())

    def test_existing_node_refused(self, fs):
        """Building over an existing node raises FileExistsError instead of mixing two nodes."""
        build_node("/n")
        with pytest.raises(FileExistsError):
            build_node("/n")

    def test_csr_matches_identity(self, fs):
        """The pending CSR in generated_csr/ names the node and is signed by its key."""
        ident = issue(make_ca("CA"), "core.example.com")
        tree = read_tree(build_node("/n", NodeSpec(identity=ident)))
        csr = x509.load_pem_x509_csr(tree[f"{CERTS}/generated_csr/csr.pem"].data)
        assert csr.is_signature_valid
        assert _pub(csr) == _pub(ident.certificate)
        assert ExtendedKeyUsageOID.CLIENT_AUTH in csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
