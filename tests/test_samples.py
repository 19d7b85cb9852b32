"""Tests for migrate.testing.samples and the bundled sample nodes in sample_fs/."""

from __future__ import annotations

import ast
import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from migrate import policy
from migrate.errors import NodeError
from migrate.testing import samples

CERTS = policy.CERT_DIR
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----.*?-----END \1-----\n", re.S)


def _on_disk(node_dir: Path) -> set[str]:
    """Every file and directory under node_dir, by a walk independent of migrate.testing.tree."""
    found = set()
    for dirpath, dirnames, filenames in os.walk(node_dir):
        for name in dirnames + filenames:
            found.add(Path(dirpath, name).relative_to(node_dir).as_posix())
    return found


def _read(name: str, rel: str) -> bytes:
    return (samples.sample_dir() / name / rel).read_bytes()


def _pub(obj) -> bytes:
    return obj.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _ekus(cert: x509.Certificate) -> set[str]:
    return {oid.dotted_string for oid in cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value}


def _cn(name: x509.Name) -> str:
    return name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value


class TestManifest:
    def test_names(self):
        """The bundled samples are core and edge."""
        assert samples.sample_names() == ("core", "edge")

    @pytest.mark.parametrize("name", ["core", "edge"])
    def test_covers_every_entry_and_nothing_else(self, name):
        """The manifest lists exactly the files and directories of each sample node."""
        manifest = samples.load_manifest()
        assert set(manifest["nodes"][name]) == _on_disk(samples.sample_dir() / name)

    @pytest.mark.parametrize("name", ["core", "edge"])
    def test_managed_files_follow_policy(self, name):
        """Each managed file present has the policy mode and owner, and its group is named like its owner."""
        entries = samples.load_manifest()["nodes"][name]
        for rule in policy.FILES:
            rel = f"{CERTS}/{rule.name}"
            if rel in entries:
                assert entries[rel] == {"mode": f"{rule.mode:04o}", "owner": rule.owner, "group": rule.owner}
        assert not any(f"{CERTS}/{rule.name}" in entries for rule in policy.CLIENT_FILES)
        assert entries[f"{CERTS}/multidomaincerts"]["mode"] == "0700"
        assert entries[f"{CERTS}/generated_csr"]["owner"] == "_nobody"

    def test_owner_table(self):
        """The manifest maps the appliance owner names to their numbers."""
        assert samples.load_manifest()["owners"] == {"root": 0, "_nobody": 65534, "_pfwd": 1001}


class TestSampleTree:
    @pytest.mark.parametrize("name", ["core", "edge"])
    def test_applies_manifest_modes_and_owners(self, name):
        """sample_tree puts the manifest's modes and owners on entries whatever the disk says."""
        tree = samples.sample_tree(name)
        privkey = tree[f"{CERTS}/privkey.pem"]
        assert (privkey.mode, privkey.uid, privkey.gid) == (0o440, 0, 0)
        ssh = tree[f"{CERTS}/server-ssh.pem"]
        assert (ssh.mode, ssh.uid, ssh.gid) == (0o600, 1001, 1001)
        assert (tree[f"{CERTS}/ca.pem"].uid, tree[f"{CERTS}/ca.pem"].gid) == (65534, 65534)
        assert tree[f"{CERTS}/multidomaincerts"].mode == 0o700
        assert tree[f"{CERTS}/server.pem"].data == _read(name, f"{CERTS}/server.pem")

    def test_unknown_name(self):
        """An unknown sample name raises NodeError sample-unknown."""
        with pytest.raises(NodeError) as info:
            samples.sample_tree("gateway")
        assert info.value.id == "sample-unknown"

    def _fake_samples(self, tmp_path, monkeypatch, entries: dict) -> Path:
        base = tmp_path / "sample_fs"
        (base / "n" / "d").mkdir(parents=True)
        (base / "n" / "d" / "f").write_bytes(b"x")
        manifest = {"format_version": 1, "owners": {"root": 0}, "nodes": {"n": entries}}
        (base / "manifest.json").write_text(json.dumps(manifest))
        monkeypatch.setattr(samples, "_candidates", lambda: (tmp_path / "absent", base))
        return base

    def test_incomplete_manifest(self, tmp_path, monkeypatch):
        """An entry on disk the manifest lacks raises NodeError sample-manifest-incomplete."""
        self._fake_samples(tmp_path, monkeypatch, {"d": {"mode": "0755", "owner": "root", "group": "root"}})
        with pytest.raises(NodeError) as info:
            samples.sample_tree("n")
        assert info.value.id == "sample-manifest-incomplete"
        assert "d/f" in str(info.value)

    def test_stale_manifest(self, tmp_path, monkeypatch):
        """A manifest entry with nothing on disk raises NodeError sample-manifest-stale."""
        meta = {"mode": "0644", "owner": "root", "group": "root"}
        self._fake_samples(tmp_path, monkeypatch, {"d": meta, "d/f": meta, "d/gone": meta})
        with pytest.raises(NodeError) as info:
            samples.sample_tree("n")
        assert info.value.id == "sample-manifest-stale"

    def test_first_candidate_with_manifest_wins(self, tmp_path, monkeypatch):
        """sample_dir skips a candidate without manifest.json and loads the next one."""
        meta = {"mode": "0640", "owner": "root", "group": "root"}
        base = self._fake_samples(tmp_path, monkeypatch, {"d": meta, "d/f": meta})
        (tmp_path / "absent").mkdir()
        assert samples.sample_dir() == base
        assert samples.sample_tree("n")["d/f"].mode == 0o640

    def test_missing_samples(self, tmp_path, monkeypatch):
        """Without any sample directory, NodeError sample-missing is raised with a hint."""
        monkeypatch.setattr(samples, "_candidates", lambda: (tmp_path / "a", tmp_path / "b"))
        with pytest.raises(NodeError) as info:
            samples.sample_dir()
        assert info.value.id == "sample-missing" and info.value.hint

    def test_wrong_format_version(self, tmp_path, monkeypatch):
        """A manifest of another format version raises NodeError sample-manifest-invalid."""
        base = self._fake_samples(tmp_path, monkeypatch, {})
        (base / "manifest.json").write_text(json.dumps({"format_version": 2, "owners": {}, "nodes": {}}))
        with pytest.raises(NodeError) as info:
            samples.load_manifest()
        assert info.value.id == "sample-manifest-invalid"

    def test_module_imports_nothing_heavy(self):
        """samples.py imports only the standard library and errors at module level."""
        module = ast.parse(Path(samples.__file__).read_text())
        imported = set()
        for node in module.body:
            if isinstance(node, ast.Import):
                imported |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                imported.add("." * node.level + (node.module or ""))
        assert imported == {"__future__", "json", "pathlib", "typing", "..errors"}


def _split(data: bytes) -> list[tuple[str, bytes]]:
    return [(m.group(1).decode(), m.group(0)) for m in _PEM_BLOCK.finditer(data)]


class TestSampleCertificates:
    @pytest.mark.parametrize(
        "name, cn, issuer, ekus",
        [
            ("core", "core.example.com", "Example Internal CA1", {policy.SERVER_AUTH, policy.CLIENT_AUTH}),
            ("edge", "edge.example.com", "Example Public CA2", {policy.SERVER_AUTH}),
        ],
    )
    def test_server_identity(self, name, cn, issuer, ekus):
        """server.pem is an RSA-4096 leaf with the expected name and EKUs, then its issuing CA; privkey.pem matches it."""
        leaf, ca = x509.load_pem_x509_certificates(_read(name, f"{CERTS}/server.pem"))
        assert _cn(leaf.subject) == cn and _cn(leaf.issuer) == issuer == _cn(ca.subject)
        leaf.verify_directly_issued_by(ca)
        assert isinstance(leaf.public_key(), rsa.RSAPublicKey) and leaf.public_key().key_size == 4096
        assert _ekus(leaf) == ekus
        key = serialization.load_pem_private_key(_read(name, f"{CERTS}/privkey.pem"), None)
        assert _pub(key) == _pub(leaf)

    @pytest.mark.parametrize("name", ["core", "edge"])
    def test_ssh_bundle_holds_server_identity(self, name):
        """server-ssh.pem holds the server's private key and its leaf certificate."""
        blocks = _split(_read(name, f"{CERTS}/server-ssh.pem"))
        assert [kind for kind, _ in blocks] == ["PRIVATE KEY", "CERTIFICATE"]
        leaf = x509.load_pem_x509_certificates(_read(name, f"{CERTS}/server.pem"))[0]
        assert x509.load_pem_x509_certificate(blocks[1][1]) == leaf
        assert _pub(serialization.load_pem_private_key(blocks[0][1], None)) == _pub(leaf)

    @pytest.mark.parametrize("name", ["core", "edge"])
    def test_trust_and_validity(self, name):
        """ca.pem trusts CA1 and CA2; the leaf is valid 2026-2036 and the CAs until 2046."""
        cas = x509.load_pem_x509_certificates(_read(name, f"{CERTS}/ca.pem"))
        assert [_cn(ca.subject) for ca in cas] == ["Example Internal CA1", "Example Public CA2"]
        leaf = x509.load_pem_x509_certificates(_read(name, f"{CERTS}/server.pem"))[0]
        assert leaf.not_valid_before_utc == datetime(2026, 1, 1, tzinfo=UTC)
        assert leaf.not_valid_after_utc == datetime(2036, 1, 1, tzinfo=UTC)
        assert all(ca.not_valid_after_utc == datetime(2046, 1, 1, tzinfo=UTC) for ca in cas)

    def test_distinct_keys(self):
        """The two sample nodes and the two CAs each have their own key."""
        keys = {_pub(x509.load_pem_x509_certificates(_read(n, f"{CERTS}/server.pem"))[0]) for n in ("core", "edge")}
        keys |= {_pub(ca) for ca in x509.load_pem_x509_certificates(_read("core", f"{CERTS}/ca.pem"))}
        assert len(keys) == 4


class TestSampleConfig:
    @pytest.mark.parametrize("name, retired", [("core", False), ("edge", True)])
    def test_retired_switch(self, name, retired):
        """The Edge configuration holds EnableServerEkuUpload: On; the Core's does not."""
        lines = _read(name, policy.CONFIG_FILE).splitlines()
        line = b"*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: On"
        assert (line in lines) is retired
        assert not any(b"ExtendedKeyUsage Checking" in line for line in lines)

    @pytest.mark.parametrize("name, zone", [("core", b"TraversalClient"), ("edge", b"TraversalServer")])
    def test_realistic(self, name, zone):
        """Each configuration is 30-60 LF-terminated lines with a traversal zone and quoted and bare values."""
        data = _read(name, policy.CONFIG_FILE)
        assert b"\r" not in data and data.endswith(b"\n")
        lines = data.splitlines()
        assert 30 <= len(lines) <= 60
        assert all(line.startswith(b"*c xConfiguration ") for line in lines)
        assert b'*c xConfiguration Zones Zone 1 Type: "' + zone + b'"' in lines
        assert any(line.endswith(b'"') for line in lines) and any(not line.endswith(b'"') for line in lines)
