"""csr: the request a private CA signs for a node's client identity, and its new key (pyfakefs and a real directory)."""

from __future__ import annotations

import json
import os

import attrs
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID
from install_support import CERTS, cas, condition2
from support import plant

from migrate import csr  # noqa: F401 - loaded before pyfakefs starts
from migrate.testing.factory import NodeSpec, issue, node_tree
from migrate.testing.tree import diff_trees, read_tree


@pytest.fixture(params=["fake", "real"])
def base(request, tmp_path) -> str:
    if request.param == "fake":
        request.getfixturevalue("fs")
        os.makedirs("/w")
        return "/w"
    return str(tmp_path)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _server(tree) -> x509.Certificate:
    return x509.load_pem_x509_certificates(tree[f"{CERTS}/server.pem"].data)[0]


class TestRequest:
    @pytest.mark.parametrize(("kind", "usage"), [("rsa:4096", True), ("ec:p256", False)])
    def test_request_copies_names_asks_both_ekus_and_matches_the_new_key(self, run, base, kind, usage):
        """The CSR has the server certificate's subject and SANs, serverAuth+clientAuth, the key usage of the key type, and
        the new key's public half; the key is PKCS#8, unencrypted, mode 0400, and never shown."""
        tree = condition2("core")
        plant(tree, f"{base}/core")
        before = read_tree(f"{base}/core")
        code, out, err = run("csr", f"{base}/core", "--new-key", kind, "--out", f"{base}/c.csr", "--format", "json", "-vv")
        assert code == 0, err
        doc = json.loads(out)
        request = x509.load_pem_x509_csr(_read(f"{base}/c.csr"))
        assert request.is_signature_valid
        server = _server(tree)
        assert request.subject == server.subject
        san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert request.extensions.get_extension_for_class(x509.SubjectAlternativeName).value == san
        eku = request.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        ku = request.extensions.get_extension_for_class(x509.KeyUsage)
        assert ku.critical and ku.value.digital_signature and ku.value.key_encipherment is usage
        key_pem = _read(f"{base}/c.key")
        assert key_pem.startswith(b"-----BEGIN PRIVATE KEY-----")
        key = serialization.load_pem_private_key(key_pem, password=None)
        spki = serialization.PublicFormat.SubjectPublicKeyInfo
        der = serialization.Encoding.DER
        assert key.public_key().public_bytes(der, spki) == request.public_key().public_bytes(der, spki)
        assert os.stat(f"{base}/c.key").st_mode & 0o7777 == 0o400
        assert os.stat(f"{base}/c.csr").st_mode & 0o7777 == 0o644
        body = key_pem.splitlines()[1].decode()
        assert body not in out and body not in err and "PRIVATE KEY" not in out + err
        assert doc["key"] == f"{base}/c.key" and doc["eku"] == ["serverAuth", "clientAuth"]
        assert doc["inspect"] == f"openssl req -in {base}/c.csr -noout -text"
        assert diff_trees(before, read_tree(f"{base}/core")) == []  # the node is only read

    def test_reuse_key_signs_with_the_node_key_and_writes_no_key(self, run, base):
        """--reuse-key: the request carries privkey.pem's public key; no key file is written; text and markdown render."""
        tree = condition2("core")
        plant(tree, f"{base}/core")
        code, out, err = run("csr", f"{base}/core", "--reuse-key", "--out", f"{base}/r.csr")
        assert code == 0 and "inspect it with: openssl req -in" in out, err
        request = x509.load_pem_x509_csr(_read(f"{base}/r.csr"))
        assert request.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ) == _server(tree).public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        assert sorted(os.listdir(base)) == ["core", "r.csr"]
        code, out, _ = run("csr", f"{base}/core", "--reuse-key", "--out", f"{base}/m.csr", "--format", "markdown")
        assert code == 0 and out.startswith("## `csr`") and "```sh" in out


def _node_with_key(base: str, key_type: str | None = None, password: bytes | None = None) -> str:
    identity = issue(cas()[1], "core.example.com", key_type=key_type or "ec256")
    tree = node_tree(NodeSpec(role="core", identity=identity, client="migrated", ssh="absent"))
    if password is not None:
        rel = f"{CERTS}/privkey.pem"
        tree[rel] = attrs.evolve(tree[rel], data=identity.key_pem(password=password))
    plant(tree, f"{base}/core")
    return f"{base}/core"


class TestRefusals:
    @pytest.mark.parametrize(
        ("setup", "wanted"),
        [
            ({"password": b"secret"}, "key-encrypted"),
            ({"key_type": "dsa2048"}, "key-unsupported"),
            ({"key_type": "ed25519"}, "key-unsupported"),
        ],
    )
    def test_reuse_key_refuses_a_key_it_cannot_use(self, run, fs, setup, wanted):
        """--reuse-key with an encrypted, DSA or Ed25519 privkey.pem: one line error[id], nothing written."""
        core = _node_with_key("/w", **setup)
        before = read_tree("/w")
        code, out, err = run("csr", core, "--reuse-key", "--out", "/w/x.csr")
        assert code == 1 and out == "" and err.startswith(f"error[{wanted}]:") and err.count("\n") == 1, err
        assert diff_trees(before, read_tree("/w")) == []

    @pytest.mark.parametrize("taken", ["x.csr", "x.key"])
    def test_an_existing_request_or_key_is_never_overwritten(self, run, fs, taken):
        """With the request's or the key's name taken: output-exists, the file keeps its bytes, nothing else is written."""
        plant(condition2("core"), "/w/core")
        with open(f"/w/{taken}", "wb") as f:
            f.write(b"mine")
        before = read_tree("/w")
        code, _, err = run("csr", "/w/core", "--out", "/w/x.csr")
        assert code == 1 and err.startswith("error[output-exists]:"), err
        assert diff_trees(before, read_tree("/w")) == []

    def test_missing_node_and_unwritable_output(self, run, fs):
        """No node: node-missing; an --out in a directory that does not exist: output-unwritable, and no key left behind."""
        code, _, err = run("csr", "/nowhere")
        assert code == 1 and err.startswith("error[node-missing]:"), err
        plant(condition2("core"), "/w/core")
        before = read_tree("/w")
        code, _, err = run("csr", "/w/core", "--out", "/w/missing/x.csr")
        assert code == 1 and err.startswith("error[output-unwritable]:") and "Traceback" not in err, err
        assert diff_trees(before, read_tree("/w")) == []

    def test_new_key_and_reuse_key_together_is_a_usage_error(self, run, fs):
        """--new-key and --reuse-key exclude each other: exit 2."""
        plant(condition2("core"), "/w/core")
        assert run("csr", "/w/core", "--reuse-key", "--new-key", "ec:p256")[0] == 2
