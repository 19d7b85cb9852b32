"""Every bad input of the precheck list, through the command line: one clear error line, exit 1, an untouched node.

Each row builds a healthy X15.4 node on the real disk, breaks it one way, runs
``apply``, and asserts on stderr (one ``error[id]: … -- hint: …`` line, no
traceback) and on the tree itself: byte for byte, mode and owner as before, and
no state directory.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from migrate import policy
from migrate.cli import main
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca
from migrate.testing.tree import diff_trees, read_tree

CERTS = policy.CERT_DIR
ERROR_LINE = re.compile(r"^error\[(?P<id>[a-z0-9-]+)\]: .+ -- hint: .+$")


def _write(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _replace_keep_stat(path: Path, data: bytes) -> None:
    st = os.stat(path)
    _write(path, data)
    os.chmod(path, st.st_mode & 0o7777)
    os.chown(path, st.st_uid, st.st_gid)


def _garbage(root: Path) -> None:
    _replace_keep_stat(root / CERTS / "server.pem", b"this is not a certificate\n")


def _der(root: Path) -> None:
    _replace_keep_stat(root / CERTS / "server.pem", b"\x30\x82\x01\x0a" + b"\x00" * 64)


def _empty_key(root: Path) -> None:
    _replace_keep_stat(root / CERTS / "privkey.pem", b"")


def _trailing_garbage(root: Path) -> None:
    path = root / CERTS / "server.pem"
    _replace_keep_stat(path, path.read_bytes() + b"garbage after the chain\n")


def _unrelated_certs(root: Path) -> None:
    path = root / CERTS / "server.pem"
    other = issue(make_ca("Unrelated CA"), "other.example.com")
    leaf = path.read_bytes().split(b"-----END CERTIFICATE-----")[0] + b"-----END CERTIFICATE-----\n"
    _replace_keep_stat(path, leaf + other.cert_pem)


def _encrypted_key(root: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    path = root / CERTS / "privkey.pem"
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    _replace_keep_stat(path, data)


def _other_key(root: Path) -> None:
    other = issue(make_ca("Other CA"), "core.example.com")
    _replace_keep_stat(root / CERTS / "privkey.pem", other.key_pem())


def _key_world_readable(root: Path) -> None:
    os.chmod(root / CERTS / "privkey.pem", 0o444)


def _symlink_client(root: Path) -> None:
    os.symlink("/etc/passwd", root / CERTS / "client.pem")


def _directory_server(root: Path) -> None:
    os.unlink(root / CERTS / "server.pem")
    os.mkdir(root / CERTS / "server.pem")


def _fifo_key(root: Path) -> None:
    os.unlink(root / CERTS / "privkey.pem")
    os.mkfifo(root / CERTS / "privkey.pem", 0o440)


def _missing_server(root: Path) -> None:
    os.unlink(root / CERTS / "server.pem")


def _huge_server(root: Path) -> None:
    with open(root / CERTS / "server.pem", "r+b") as f:
        f.truncate(64 << 20)  # sparse: costs no disk


def _conflicting_client(root: Path) -> None:
    _write(root / CERTS / "client.pem", issue(make_ca("Client CA"), "core.example.com").cert_pem)


def _hardlinked_key(root: Path) -> None:
    os.link(root / CERTS / "privkey.pem", root / "privkey-copy.pem")


def _missing_config(root: Path) -> None:
    os.unlink(root / policy.CONFIG_FILE)


def _symlinked_certs(root: Path) -> None:
    os.rename(root / CERTS, root / "persistent" / "certs-real")
    os.symlink("certs-real", root / CERTS)


NOW = datetime.now(UTC)
EXPIRED = issue(
    make_ca("Old CA"), "core.example.com", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1)
)
SSH_OTHER = NodeSpec(ssh="other")

# (id, spec, how to break the node)
CASES = [
    ("not-pem", NodeSpec(), _garbage),
    ("not-pem-der", NodeSpec(), _der),
    ("file-empty", NodeSpec(), _empty_key),
    ("pem-trailing-data", NodeSpec(), _trailing_garbage),
    ("several-certificates", NodeSpec(), _unrelated_certs),
    ("key-encrypted", NodeSpec(), _encrypted_key),
    ("key-mismatch", NodeSpec(), _other_key),
    ("ssh-identity-mismatch", SSH_OTHER, None),
    ("cert-expired", NodeSpec(identity=EXPIRED), None),
    ("key-exposed", NodeSpec(), _key_world_readable),
    ("file-not-regular", NodeSpec(), _symlink_client),
    ("file-not-regular", NodeSpec(), _directory_server),
    ("file-not-regular", NodeSpec(), _fifo_key),
    ("file-missing", NodeSpec(), _missing_server),
    ("file-too-large", NodeSpec(), _huge_server),
    ("client-store-conflict", NodeSpec(), _conflicting_client),
    ("key-hardlinked", NodeSpec(), _hardlinked_key),
    ("config-missing", NodeSpec(), _missing_config),
    ("directory-not-safe", NodeSpec(), _symlinked_certs),
]


class TestBadInputRefused:
    @pytest.mark.parametrize(
        ("finding", "spec", "breaker"), CASES, ids=[f"{c[0]}-{c[2].__name__ if c[2] else 'spec'}" for c in CASES]
    )
    def test_apply_refuses_with_one_line(self, tmp_path, capsys, finding, spec, breaker):
        """apply on the broken node exits 1 with one error line naming the finding, and the node is untouched."""
        root = build_node(tmp_path / "node", spec)
        if breaker is not None:
            breaker(root)
        before = read_tree(root, max_file_bytes=128 << 20)
        code = main(["apply", str(root)])
        out, err = capsys.readouterr()
        assert code == 1
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        match = ERROR_LINE.match(lines[0])
        assert match is not None and match["id"] == finding, lines[0]
        assert "Traceback" not in err and "PRIVATE KEY-----" not in out + err
        assert diff_trees(before, read_tree(root, max_file_bytes=128 << 20)) == []
        assert not os.path.lexists(root / policy.STATE_DIR)

    @pytest.mark.parametrize(("finding", "spec", "breaker"), CASES[:8])
    def test_precheck_reports_the_finding(self, tmp_path, capsys, finding, spec, breaker):
        """precheck exits 1 and lists the finding as a blocker, with a hint."""
        import json

        root = build_node(tmp_path / "node", spec)
        if breaker is not None:
            breaker(root)
        code = main(["precheck", str(root), "--format", "json"])
        doc = json.loads(capsys.readouterr().out)
        assert code == 1 and doc["ready"] is False
        found = [f for f in doc["findings"] if f["id"] == finding]
        assert found and found[0]["severity"] == "blocker" and found[0]["hint"]

    def test_not_root_is_refused(self, tmp_path, capsys, monkeypatch):
        """apply as an ordinary user exits 1 with error[not-root], and creates nothing."""
        root = build_node(tmp_path / "node", NodeSpec())
        before = read_tree(root)
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        assert main(["apply", str(root)]) == 1
        err = capsys.readouterr().err
        assert ERROR_LINE.match(err.strip())["id"] == "not-root"
        assert diff_trees(before, read_tree(root)) == []
        assert not os.path.lexists(root / policy.STATE_DIR)


class TestElsewhere:
    def test_cert_dir_and_config_elsewhere(self, tmp_path, capsys):
        """--cert-dir and --config point at a store and a configuration outside the node root; apply migrates them."""
        built = build_node(tmp_path / "built", NodeSpec(settings={policy.RETIRED_SETTING: "On"}))
        node = tmp_path / "node"
        os.makedirs(node / "persistent")
        os.rename(built / CERTS, tmp_path / "store")
        os.rename(built / policy.CONFIG_FILE, tmp_path / "xconf.txt")
        args = ["--cert-dir", str(tmp_path / "store"), "--config", str(tmp_path / "xconf.txt")]
        assert main(["apply", str(node), *args]) == 0
        capsys.readouterr()
        store = tmp_path / "store"
        assert (store / "client.pem").read_bytes() == (store / "server.pem").read_bytes()
        assert oct(os.stat(store / "clientprivkey.pem").st_mode & 0o777) == oct(0o440)
        config = (tmp_path / "xconf.txt").read_bytes()
        assert b"EnableServerEkuUpload" not in config
        assert config.endswith(b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On\n")
        assert main(["verify", str(node), *args]) == 0
        assert main(["rollback", str(node), *args]) == 0
        assert not (store / "client.pem").exists()
        assert b"EnableServerEkuUpload: On" in (tmp_path / "xconf.txt").read_bytes()
