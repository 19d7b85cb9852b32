"""Tests for migrate.checks: precheck, verify and node_state on real-looking nodes in pyfakefs."""

from __future__ import annotations

import base64
import os
import re
import shutil
import stat
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from support import empty_journal

from migrate import checks, facts, policy
from migrate.scan import Layout, scan
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca
from migrate.testing.samples import sample_tree
from migrate.testing.tree import write_tree

NODE = Path("/n")
CERTS = policy.CERT_DIR
CONFIG = policy.CONFIG_FILE
STATE_DIR = policy.STATE_DIR
JOURNAL = f"{STATE_DIR}/{policy.JOURNAL_NAME}"
RETIRED = policy.RETIRED_SETTING
CHECKING = policy.CHECKING_SETTING
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(scope="module")
def pki():
    """A private CA and a few EC P-256 identities, made once for the module."""
    ca = make_ca("Checks Test CA")
    return SimpleNamespace(
        ca=ca,
        ident=issue(ca, "core.example.com"),
        other=issue(ca, "core.example.com"),
        third=issue(ca, "third.example.com"),
        stranger=issue(make_ca("Unrelated CA"), "stranger.example.com"),
    )


# --- Helpers ---------------------------------------------------------------------------------------


def cert(name: str) -> Path:
    return NODE / CERTS / name


def rel(name: str) -> str:
    return f"{CERTS}/{name}"


def write(path: Path, data: bytes) -> None:
    """Replace the bytes of an existing file, keeping its mode and owner."""
    with open(path, "wb") as f:
        f.write(data)


def append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def setting(name: str, value: str) -> bytes:
    return f"*c xConfiguration {name}: {value}\n".encode()


def replace_with(fs, path: Path, **create) -> None:
    """Remove what is at ``path`` and create a fake file there with ``create`` (st_mode, st_size, contents...)."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        os.remove(path)
    fs.create_file(path, **create)


def armour(label: str, der: bytes) -> bytes:
    text = base64.b64encode(der)
    body = b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))
    return f"-----BEGIN {label}-----\n".encode() + body + f"-----END {label}-----\n".encode()


def der_of(pem: bytes) -> bytes:
    body = b"".join(line for line in pem.splitlines() if not line.startswith(b"-----"))
    return base64.b64decode(body)


def first_cert(pem: bytes) -> bytes:
    return pem[: pem.index(b"-----END CERTIFICATE-----\n") + len(b"-----END CERTIFICATE-----\n")]


def scan_os():
    """The ``os`` module migrate.scan uses (pyfakefs's fake one under the ``fs`` fixture)."""
    return sys.modules["migrate.scan"].os


def refuse_open(monkeypatch, target: Path) -> None:
    """Make migrate.scan's os.open fail with EACCES for ``target`` only (root cannot be refused for real)."""
    real_os = scan_os()
    real_open = real_os.open

    def fake_open(path, flags, *args, **kw):
        # The scan opens a managed file by its name, relative to its held directory (dir_fd).
        if os.fspath(path) == os.fspath(target) or (os.fspath(path) == target.name and "dir_fd" in kw):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(real_os, "open", fake_open)


def analysis():
    return facts.analyse(scan(Layout.for_node(NODE)))


def precheck(**kw):
    return checks.precheck(analysis(), **kw)


def _key_fragments(pki) -> list[bytes]:
    """Pieces of every private key the tests write: base64 lines of their PEM bodies and of their DER."""
    out = []
    for ident in (pki.ident, pki.other, pki.third, pki.stranger):
        pem = ident.key_pem()
        out += [line for line in pem.splitlines() if line and not line.startswith(b"-----")]
        out.append(base64.b64encode(der_of(pem))[8:40])
        out.append(der_of(pem)[8:40].hex().encode())
    return out


_KEY_ARMOUR = re.compile(r"-----(BEGIN|END) [A-Z ]*PRIVATE KEY-----|PRIVATE KEY-----")


def assert_no_key_material(findings, pki) -> None:
    """No finding quotes key material: no PEM armour, no base64 or hex of a key's bytes."""
    fragments = [frag.decode() for frag in _key_fragments(pki)]
    for f in findings:
        for text in (f.message, f.hint):
            assert not _KEY_ARMOUR.search(text), (f.id, text)
            for frag in fragments:
                assert frag[:24] not in text, (f.id, "key bytes in text")


# --- The table: one bad node per finding id ------------------------------------------------------------


@attrs.frozen
class Row:
    id: str
    severity: str
    path: str | None
    spec: object = None  # pki -> dict of NodeSpec arguments
    mutate: object = None  # (fs, pki, monkeypatch) -> None


def _spec(**kw):
    return lambda pki: kw


def _with_ident(attr: str, **kw):
    return lambda pki: {"identity": getattr(pki, attr), **kw}


def _expired(pki):
    return {
        "identity": issue(
            pki.ca, "core.example.com", not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1)
        )
    }


def _expiring(pki):
    return {"identity": issue(pki.ca, "core.example.com", not_after=NOW + timedelta(days=10))}


def _not_yet_valid(pki):
    return {"identity": issue(pki.ca, "core.example.com", not_before=NOW + timedelta(days=2))}


def _eku(eku):
    return lambda pki: {"identity": issue(pki.ca, "core.example.com", eku=eku)}


def _key_type(key_type):
    return lambda pki: {"identity": issue(pki.ca, "core.example.com", key_type=key_type)}


def _rsa1024_key(fs, pki, mp):
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    write(
        cert("privkey.pem"),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


def _write(name, data_of):
    return lambda fs, pki, mp: write(cert(name), data_of(pki))


def _acl(path_of, attribute: str):
    """Set an ACL (binary xattr form) that lets uid 65534 read: a named user entry under an r-- mask."""
    import struct

    entries = [(0x01, 6, 0xFFFFFFFF), (0x02, 4, 65534), (0x04, 4, 0xFFFFFFFF), (0x10, 4, 0xFFFFFFFF), (0x20, 0, 0xFFFFFFFF)]
    blob = struct.pack("<I", 2) + b"".join(struct.pack("<HHI", *entry) for entry in entries)
    return lambda fs, pki, mp: os.setxattr(path_of(), attribute, blob)


def _refuse_dir(monkeypatch, name: str) -> None:
    """Make the scanner's opening of the directory ``name`` fail with EACCES (root cannot be refused for real)."""
    from migrate import dirs

    real_open = dirs.os.open

    def fake_open(path, flags, *args, **kw):
        if os.fspath(path) == name and "dir_fd" in kw:
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kw)

    monkeypatch.setattr(dirs.os, "open", fake_open)


def _write_config(data: bytes):
    return lambda fs, pki, mp: write(NODE / CONFIG, data)


def _append_config(data: bytes):
    return lambda fs, pki, mp: append(NODE / CONFIG, data)


def _chmod(name, mode):
    return lambda fs, pki, mp: os.chmod(cert(name), mode)


def _remove(name):
    return lambda fs, pki, mp: os.remove(cert(name))


def _symlink_at(name):
    def mutate(fs, pki, mp):
        os.remove(cert(name))
        os.symlink(NODE / CERTS / "mtls_ca.pem", cert(name))  # a readable PEM file

    return mutate


def _dir_at(name):
    def mutate(fs, pki, mp):
        os.remove(cert(name))
        os.mkdir(cert(name))

    return mutate


def _special_at(path_of, file_type, mode=0o644):
    return lambda fs, pki, mp: replace_with(fs, path_of(), st_mode=file_type | mode)


def _symlinked_dir(rel_dir):
    def mutate(fs, pki, mp):
        os.makedirs(NODE / STATE_DIR, exist_ok=True)
        os.rename(NODE / rel_dir, "/elsewhere")
        os.symlink("/elsewhere", NODE / rel_dir)

    return mutate


def _hardlink(name):
    return lambda fs, pki, mp: os.link(cert(name), NODE / "persistent" / f"{name}.copy")


def _journal(data: bytes):
    def mutate(fs, pki, mp):
        fs.create_file(NODE / JOURNAL, contents=data, st_mode=stat.S_IFREG | 0o600)  # as the tool writes it

    return mutate


def _staging(path_of):
    return lambda fs, pki, mp: fs.create_file(_staging_path(path_of()), contents=b"half written")


def _staging_path(path: Path) -> Path:
    """A staging name of ``path`` as an earlier version of the tool wrote it (still recognised)."""
    return path.with_name(f".{path.name}{policy.TEMP_SUFFIX}")


def _not_root(fs, pki, mp):
    mp.setattr(scan_os(), "geteuid", lambda: 1000)


def _client_store(cert_of, key_of, ssh_of):
    """Replace the three client files of a migrated node (modes and owners kept)."""

    def mutate(fs, pki, mp):
        write(cert("client.pem"), cert_of(pki))
        write(cert("clientprivkey.pem"), key_of(pki))
        write(cert("client-ssh.pem"), ssh_of(pki))

    return mutate


MIGRATED = _spec(client="migrated")

ROWS = [
    # layout
    Row("directory-missing", "blocker", CERTS, mutate=lambda fs, pki, mp: shutil.rmtree(NODE / CERTS)),
    Row("directory-not-safe", "blocker", CERTS, mutate=_symlinked_dir(CERTS)),
    Row("directory-not-safe", "blocker", "persistent", mutate=_symlinked_dir("persistent")),
    Row("directory-not-safe", "blocker", STATE_DIR, mutate=_symlinked_dir(STATE_DIR)),
    Row("file-missing", "blocker", rel("ca.pem"), mutate=_remove("ca.pem")),
    Row("file-missing", "blocker", rel("server.pem"), mutate=_remove("server.pem")),
    Row("file-missing", "blocker", rel("privkey.pem"), mutate=_remove("privkey.pem")),
    Row("ssh-bundle-absent", "info", rel("server-ssh.pem"), spec=_spec(ssh="absent")),
    Row("file-not-regular", "blocker", rel("server.pem"), mutate=_symlink_at("server.pem")),
    Row("file-not-regular", "blocker", rel("privkey.pem"), mutate=_dir_at("privkey.pem")),
    Row("file-not-regular", "blocker", rel("ca.pem"), mutate=_special_at(lambda: cert("ca.pem"), stat.S_IFIFO)),
    Row(
        "file-not-regular",
        "blocker",
        rel("server-ssh.pem"),
        mutate=_special_at(lambda: cert("server-ssh.pem"), stat.S_IFCHR, 0o600),
    ),
    Row(
        "file-not-regular",
        "blocker",
        rel("client.pem"),
        mutate=lambda fs, pki, mp: os.symlink("server.pem", cert("client.pem")),
    ),
    Row(
        "file-unreadable", "blocker", rel("server.pem"), mutate=lambda fs, pki, mp: refuse_open(mp, cert("server.pem"))
    ),
    Row(
        "file-unreadable",
        "blocker",
        rel("privkey.pem"),
        mutate=lambda fs, pki, mp: refuse_open(mp, cert("privkey.pem")),
    ),
    Row(
        "file-too-large",
        "blocker",
        rel("server.pem"),
        mutate=lambda fs, pki, mp: replace_with(fs, cert("server.pem"), st_size=policy.MAX_PEM_BYTES + 1),
    ),
    Row(
        "file-too-large",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: pki.ident.key_pem() + b"\n" * policy.MAX_PEM_BYTES),
    ),
    # PEM errors (certs.py), at the file that holds them
    Row("file-empty", "blocker", rel("server.pem"), mutate=_write("server.pem", lambda pki: b"")),
    Row("file-empty", "blocker", rel("privkey.pem"), mutate=_write("privkey.pem", lambda pki: b" \n\r\n\t")),
    Row(
        "not-pem",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: b"garbage, not a certificate\n"),
    ),
    Row("not-pem", "blocker", rel("ca.pem"), mutate=_write("ca.pem", lambda pki: b"\x00\x01\x02 binary junk \xff\xfe")),
    Row(
        "not-pem-der", "blocker", rel("server.pem"), mutate=_write("server.pem", lambda pki: der_of(pki.ident.cert_pem))
    ),
    Row(
        "not-pem-der",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: der_of(pki.ident.key_pem())),
    ),
    Row(
        "pem-malformed",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: pki.ident.cert_pem.replace(b"-----END CERTIFICATE-----\n", b"")),
    ),
    Row(
        "pem-trailing-data",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: pki.ident.chain_pem + b"trailing garbage\n"),
    ),
    Row(
        "pem-trailing-data",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: b"Bag Attributes\n" + pki.ident.key_pem()),
    ),
    Row(
        "unexpected-pem-block",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: pki.ident.cert_pem + pki.ident.key_pem()),
    ),
    Row(
        "unexpected-pem-block",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: pki.ident.key_pem() + pki.ident.cert_pem),
    ),
    Row(
        "no-certificate",
        "blocker",
        rel("server-ssh.pem"),
        mutate=_write("server-ssh.pem", lambda pki: pki.ident.key_pem()),
    ),
    Row(
        "cert-unparsable",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: armour("CERTIFICATE", b"\x30\x03\x02\x01\x00")),
    ),
    Row(
        "several-keys",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: pki.ident.key_pem() + pki.other.key_pem()),
    ),
    Row(
        "no-private-key",
        "blocker",
        rel("server-ssh.pem"),
        mutate=_write("server-ssh.pem", lambda pki: pki.ident.cert_pem),
    ),
    Row(
        "key-encrypted",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: pki.ident.key_pem(password=b"secret")),
    ),
    Row(
        "key-encrypted",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: pki.ident.key_pem("sec1", password=b"secret")),
    ),
    Row(
        "key-unparsable",
        "blocker",
        rel("privkey.pem"),
        mutate=_write("privkey.pem", lambda pki: armour("PRIVATE KEY", der_of(pki.ident.key_pem())[:-7])),
    ),
    # keys and identities
    Row("key-unsupported", "blocker", rel("privkey.pem"), spec=_key_type("dsa2048")),
    Row("key-unsupported", "blocker", rel("privkey.pem"), spec=_key_type("ed25519")),
    Row("key-unsupported", "blocker", rel("server-ssh.pem"), spec=_key_type("ed25519")),
    Row("key-unsupported", "blocker", rel("privkey.pem"), mutate=_rsa1024_key),
    Row(
        "several-certificates",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: pki.ident.cert_pem + pki.stranger.cert_pem),
    ),
    Row(
        "several-certificates",
        "blocker",
        rel("server.pem"),
        mutate=_write("server.pem", lambda pki: pki.ident.ca.cert_pem + pki.ident.cert_pem),
    ),
    Row("key-mismatch", "blocker", rel("privkey.pem"), mutate=_write("privkey.pem", lambda pki: pki.other.key_pem())),
    Row("ssh-identity-mismatch", "blocker", rel("server-ssh.pem"), spec=_spec(ssh="other")),
    Row(
        "ssh-identity-mismatch",
        "blocker",
        rel("server-ssh.pem"),
        mutate=_write("server-ssh.pem", lambda pki: pki.ident.key_pem() + pki.other.cert_pem),
    ),
    # validity and EKU
    Row("cert-expired", "blocker", rel("server.pem"), spec=_expired),
    Row("cert-expiring", "warning", rel("server.pem"), spec=_expiring),
    Row("cert-not-yet-valid", "warning", rel("server.pem"), spec=_not_yet_valid),
    Row("cert-no-client-eku", "warning", rel("server.pem"), spec=_eku(("serverAuth",))),
    Row("cert-no-server-eku", "warning", rel("server.pem"), spec=_eku(("clientAuth",))),
    # modes and owners
    Row("key-exposed", "blocker", rel("privkey.pem"), mutate=_chmod("privkey.pem", 0o644)),
    Row("key-exposed", "blocker", rel("server-ssh.pem"), mutate=_chmod("server-ssh.pem", 0o604)),
    Row("mode-loose", "warning", rel("privkey.pem"), mutate=_chmod("privkey.pem", 0o640)),
    Row("mode-loose", "warning", rel("server.pem"), mutate=_chmod("server.pem", 0o666)),
    Row("mode-loose", "warning", rel("server-ssh.pem"), mutate=_chmod("server-ssh.pem", 0o660)),
    Row("mode-loose", "warning", CONFIG, mutate=lambda fs, pki, mp: os.chmod(NODE / CONFIG, 0o646)),
    Row("key-hardlinked", "blocker", rel("privkey.pem"), mutate=_hardlink("privkey.pem")),
    Row("key-hardlinked", "blocker", rel("server-ssh.pem"), mutate=_hardlink("server-ssh.pem")),
    Row(
        "owner-unexpected",
        "warning",
        rel("privkey.pem"),
        mutate=lambda fs, pki, mp: os.chown(cert("privkey.pem"), 1000, 0),
    ),
    # the client store
    Row(
        "client-store-conflict",
        "blocker",
        rel("client.pem"),
        mutate=lambda fs, pki, mp: fs.create_file(cert("client.pem"), contents=pki.other.chain_pem),
    ),
    Row(
        "client-store-conflict",
        "blocker",
        rel("clientprivkey.pem"),
        spec=MIGRATED,
        mutate=lambda fs, pki, mp: (
            write(cert("clientprivkey.pem"), pki.other.key_pem()),
            append(NODE / CONFIG, setting(RETIRED, "Off")),
        ),
    ),
    Row(
        "client-store-own-identity",
        "info",
        rel("client.pem"),
        spec=MIGRATED,
        mutate=_client_store(lambda p: p.third.chain_pem, lambda p: p.third.key_pem(), lambda p: p.third.bundle_pem()),
    ),
    Row(
        "client-store-own-identity",
        "info",
        rel("client-ssh.pem"),
        spec=MIGRATED,
        mutate=_client_store(lambda p: p.third.chain_pem, lambda p: p.third.key_pem(), lambda p: p.third.bundle_pem()),
    ),
    Row(
        "client-key-mismatch",
        "blocker",
        rel("clientprivkey.pem"),
        spec=MIGRATED,
        mutate=_client_store(lambda p: p.third.chain_pem, lambda p: p.other.key_pem(), lambda p: p.third.bundle_pem()),
    ),
    Row(
        "client-ssh-identity-mismatch",
        "blocker",
        rel("client-ssh.pem"),
        spec=MIGRATED,
        mutate=_client_store(lambda p: p.third.chain_pem, lambda p: p.third.key_pem(), lambda p: p.other.bundle_pem()),
    ),
    # the configuration
    Row("config-missing", "blocker", CONFIG, mutate=lambda fs, pki, mp: os.remove(NODE / CONFIG)),
    Row("config-not-regular", "blocker", CONFIG, mutate=_special_at(lambda: NODE / CONFIG, stat.S_IFIFO)),
    Row(
        "config-not-regular",
        "blocker",
        CONFIG,
        mutate=lambda fs, pki, mp: (os.rename(NODE / CONFIG, "/real.txt"), os.symlink("/real.txt", NODE / CONFIG)),
    ),
    Row("config-unreadable", "blocker", CONFIG, mutate=lambda fs, pki, mp: refuse_open(mp, NODE / CONFIG)),
    Row(
        "config-too-large",
        "blocker",
        CONFIG,
        mutate=lambda fs, pki, mp: replace_with(fs, NODE / CONFIG, st_size=9 << 20),
    ),
    Row("server-eku-upload-on", "warning", CONFIG, spec=_spec(settings={RETIRED: "On"})),
    Row("server-eku-upload-on", "warning", CONFIG, spec=_spec(settings={RETIRED: '"on"'})),
    Row("retired-setting-present", "info", CONFIG, spec=_spec(settings={RETIRED: "Off"})),
    Row(
        "retired-setting-conflict",
        "warning",
        CONFIG,
        spec=_spec(settings={RETIRED: "On"}),
        mutate=_append_config(setting(RETIRED, '"Off"')),
    ),
    Row("checking-mode-off", "info", CONFIG, spec=_spec(settings={CHECKING: "Off"})),
    Row("checking-mode-invalid", "blocker", CONFIG, spec=_spec(settings={CHECKING: '"Maybe"'})),
    Row("checking-mode-invalid", "blocker", CONFIG, spec=_spec(settings={CHECKING: ""})),
    Row(
        "checking-mode-conflict",
        "blocker",
        CONFIG,
        spec=_spec(settings={CHECKING: "On"}),
        mutate=_append_config(setting(CHECKING, '"Off"')),
    ),
    # the tool's own state
    Row("unsafe-directory", "blocker", ".", mutate=lambda fs, pki, mp: os.chmod(NODE, 0o777)),
    Row("unsafe-directory", "blocker", "persistent", mutate=lambda fs, pki, mp: os.chmod(NODE / "persistent", 0o775)),
    Row("unsafe-directory", "blocker", CERTS, mutate=lambda fs, pki, mp: os.chown(NODE / CERTS, 4242, 0)),
    Row("directory-unreadable", "blocker", CERTS, mutate=lambda fs, pki, mp: _refuse_dir(mp, CERTS.rsplit("/")[-1])),
    Row("key-acl", "blocker", rel("privkey.pem"), mutate=_acl(lambda: cert("privkey.pem"), "system.posix_acl_access")),
    Row("directory-default-acl", "blocker", CERTS, mutate=_acl(lambda: NODE / CERTS, "system.posix_acl_default")),
    Row("config-empty", "blocker", CONFIG, mutate=_write_config(b"\n")),
    Row(
        "retired-setting-repeated",
        "blocker",
        CONFIG,
        mutate=_append_config(b"".join(setting(RETIRED, "On") + b"\n" for _ in range(policy.MAX_RETIRED_LINES + 1))),
    ),
    Row("journal-invalid", "blocker", JOURNAL, mutate=_journal(b"\x00\x01 not a journal")),
    Row("journal-invalid", "blocker", JOURNAL, mutate=_journal(b"[1, 2, 3]")),
    Row("journal-invalid", "blocker", JOURNAL, mutate=lambda fs, pki, mp: os.makedirs(NODE / JOURNAL)),
    Row(
        "stale-temp-file",
        "blocker",
        f"{CERTS}/.client.pem{policy.TEMP_SUFFIX}",
        mutate=_staging(lambda: cert("client.pem")),
    ),
    Row(
        "stale-temp-file",
        "blocker",
        f"persistent/.xconfiguration.txt{policy.TEMP_SUFFIX}",
        mutate=_staging(lambda: NODE / CONFIG),
    ),
    Row(
        "migration-interrupted",
        "warning",
        JOURNAL,
        mutate=_journal(empty_journal("applying")),
    ),
    Row("not-root", "warning", None, mutate=_not_root),
]


def _row_id(row: Row) -> str:
    where = (row.path or "none").rsplit("/", 1)[-1]
    return f"{row.id}@{where}"


def _build(fs, pki, monkeypatch, spec=None, mutate=None):
    kwargs = {"identity": pki.ident}
    if spec is not None:
        kwargs.update(spec(pki))
    build_node(NODE, NodeSpec(**kwargs))
    if mutate is not None:
        mutate(fs, pki, monkeypatch)


class TestPrecheck:
    @pytest.mark.parametrize("row", ROWS, ids=[_row_id(r) for r in ROWS])
    def test_finding(self, fs, pki, monkeypatch, row):
        """The bad node yields the finding with its id, severity and path (relative to NODE), a message and a hint, and no key material."""
        _build(fs, pki, monkeypatch, row.spec, row.mutate)
        findings = precheck()
        assert_no_key_material(findings, pki)
        matching = [f for f in findings if f.id == row.id and f.path == row.path]
        assert matching, f"no {row.id} at {row.path}; got {[(f.id, f.path) for f in findings]}"
        finding = matching[0]
        assert finding.severity == row.severity
        assert finding.message.strip()
        assert finding.hint.strip(), f"{row.id} has no hint"

    def test_every_precheck_id_is_covered(self):
        """The table covers every finding id API.md lists for precheck."""
        listed = {
            "directory-missing", "directory-not-safe", "file-missing", "ssh-bundle-absent", "file-not-regular",
            "file-unreadable", "file-too-large", "file-empty", "not-pem", "not-pem-der", "pem-malformed",
            "pem-trailing-data", "unexpected-pem-block", "no-certificate", "cert-unparsable", "several-keys",
            "no-private-key", "key-encrypted", "key-unparsable", "key-unsupported", "several-certificates",
            "key-mismatch", "ssh-identity-mismatch", "cert-expired", "cert-expiring", "cert-not-yet-valid",
            "cert-no-client-eku", "cert-no-server-eku", "key-exposed", "mode-loose", "key-hardlinked",
            "owner-unexpected", "client-store-conflict", "client-store-own-identity", "client-key-mismatch",
            "client-ssh-identity-mismatch", "config-missing", "config-not-regular", "config-unreadable",
            "config-too-large", "retired-setting-conflict", "server-eku-upload-on", "retired-setting-present",
            "checking-mode-conflict", "checking-mode-invalid", "checking-mode-off", "journal-invalid",
            "stale-temp-file", "migration-interrupted", "not-root", "unsafe-directory", "directory-unreadable",
            "key-acl", "directory-default-acl", "config-empty", "retired-setting-repeated",
        }  # fmt: skip
        assert listed == {row.id for row in ROWS}

    @pytest.mark.parametrize(
        "spec, mutate",
        [
            pytest.param(None, None, id="default-x15.4"),
            pytest.param(_spec(client="migrated"), None, id="migrated"),
            pytest.param(_key_type("rsa2048"), None, id="rsa2048-pkcs8"),
            pytest.param(lambda pki: {**_key_type("rsa2048")(pki), "key_format": "pkcs1"}, None, id="pkcs1-key"),
            pytest.param(_spec(key_format="sec1"), None, id="sec1-key"),
            pytest.param(_key_type("ec384"), None, id="ec384"),
            pytest.param(None, _write("server.pem", lambda pki: pki.ident.cert_pem), id="leaf-only"),
            pytest.param(
                None, _write("server.pem", lambda pki: pki.ident.chain_pem.replace(b"\n", b"\r\n")), id="crlf-pem"
            ),
            pytest.param(
                None, _write("ca.pem", lambda pki: pki.stranger.ca.cert_pem + pki.ca.cert_pem), id="two-trusted-cas"
            ),
            pytest.param(None, _chmod("privkey.pem", 0o400), id="key-tighter-than-policy"),
            pytest.param(_spec(settings={CHECKING: '"On"'}), None, id="checking-stated"),
            pytest.param(
                None,
                _journal(empty_journal("applied")),
                id="applied-journal",
            ),
            pytest.param(
                None,
                lambda fs, pki, mp: fs.create_file(NODE / "persistent/certs/.other.cert-migration.tmp"),
                id="unrelated-dot-file",
            ),
        ],
    )
    def test_accepted(self, fs, pki, monkeypatch, spec, mutate):
        """Sound variants (leaf+CA chain, PKCS#1/SEC1 keys, a tighter key mode, ...) give no blocker and no warning."""
        _build(fs, pki, monkeypatch, spec, mutate)
        findings = precheck()
        assert [(f.id, f.severity) for f in findings if f.severity != "info"] == []

    def test_retired_duplicates_same_value(self, fs, pki, monkeypatch):
        """Two EnableServerEkuUpload lines that both say On are one server-eku-upload-on warning and no conflict."""
        _build(fs, pki, monkeypatch, _spec(settings={RETIRED: "On"}), _append_config(setting(RETIRED, '"on"')))
        found = [(f.id, f.severity) for f in precheck()]
        assert found == [("server-eku-upload-on", "warning")]

    def test_no_eku_extension_is_unrestricted(self, fs, pki, monkeypatch):
        """A server certificate without an EKU extension gets no EKU warning: it is good for both uses."""
        _build(fs, pki, monkeypatch, _eku(None))
        ids = {f.id for f in precheck()}
        assert not ids & {"cert-no-client-eku", "cert-no-server-eku"}
        assert not checks.blockers(precheck())

    def test_server_only_eku_warns_once(self, fs, pki, monkeypatch):
        """A serverAuth-only server.pem is one warning at server.pem, whose message says what breaks."""
        _build(fs, pki, monkeypatch, _eku(("serverAuth",)))
        found = [f for f in precheck() if f.id == "cert-no-client-eku"]
        assert [f.path for f in found] == [rel("server.pem")]
        assert "clientAuth" in found[0].message and "private CA" in found[0].hint

    @pytest.mark.parametrize(
        "days_left, warn_days, expected",
        [
            pytest.param(10, 30, True, id="within-default"),
            pytest.param(40, 30, False, id="beyond-default"),
            pytest.param(40, 60, True, id="wider-window"),
            pytest.param(10, 5, False, id="narrower-window"),
        ],
    )
    def test_expiring_window(self, fs, pki, monkeypatch, days_left, warn_days, expected):
        """cert-expiring follows warn_days."""
        ident = issue(pki.ca, "core.example.com", not_after=NOW + timedelta(days=days_left))
        _build(fs, pki, monkeypatch, lambda p: {"identity": ident})
        ids = {f.id for f in precheck(warn_days=warn_days)}
        assert ("cert-expiring" in ids) is expected
        assert "cert-expired" not in ids

    def test_copied_client_files_not_reported_twice(self, fs, pki, monkeypatch):
        """On a migrated node an expiring certificate is reported at server.pem, not again at client.pem."""
        ident = issue(pki.ca, "core.example.com", not_after=NOW + timedelta(days=5))
        _build(fs, pki, monkeypatch, lambda p: {"identity": ident, "client": "migrated"})
        paths = [f.path for f in precheck() if f.id == "cert-expiring"]
        assert rel("server.pem") in paths and rel("client.pem") not in paths

    def test_error_findings_name_no_key_bytes(self, fs, pki, monkeypatch):
        """A key that fails to parse is reported without any of its bytes."""
        der = der_of(pki.ident.key_pem())
        _build(
            fs, pki, monkeypatch, mutate=_write("privkey.pem", lambda p: armour("PRIVATE KEY", der[:40] + b"\x00" * 8))
        )
        findings = precheck()
        assert "key-unparsable" in {f.id for f in findings}
        text = " ".join(f.message + f.hint for f in findings)
        assert base64.b64encode(der[:40])[:20].decode() not in text
        assert der[:40].hex()[:20] not in text

    def test_deeply_nested_journal_is_invalid(self, fs, pki, monkeypatch):
        """A journal nested too deeply for the JSON parser is journal-invalid, not a crash of precheck."""
        _build(fs, pki, monkeypatch, mutate=_journal(b"[" * 100_000))
        found = [(f.id, f.severity, f.path) for f in precheck() if f.id == "journal-invalid"]
        assert found == [("journal-invalid", "blocker", JOURNAL)]

    def test_stale_temp_is_ours_with_journal(self, fs, pki, monkeypatch):
        """A staging file beside a journal is the tool's own leftover: no stale-temp-file blocker."""
        _build(
            fs,
            pki,
            monkeypatch,
            mutate=lambda fs, p, mp: (
                _staging(lambda: cert("client.pem"))(fs, p, mp),
                _journal(empty_journal("applying"))(fs, p, mp),
            ),
        )
        ids = {f.id: f.severity for f in precheck()}
        assert "stale-temp-file" not in ids
        assert ids.get("migration-interrupted") == "warning"

    def test_finding_dict(self, fs, pki, monkeypatch):
        """Finding.as_dict has exactly id, severity, path, message and hint."""
        _build(fs, pki, monkeypatch, _spec(ssh="absent"))
        (finding,) = precheck()
        assert finding.as_dict() == {
            "id": "ssh-bundle-absent",
            "severity": "info",
            "path": rel("server-ssh.pem"),
            "message": finding.message,
            "hint": finding.hint,
        }


# --- Samples -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def samples():
    """The bundled sample trees, read from the real disk before pyfakefs starts."""
    return {name: sample_tree(name) for name in ("core", "edge")}


class TestSamples:
    @pytest.mark.parametrize(
        "name, warnings",
        [
            pytest.param("core", set(), id="core"),
            pytest.param("edge", {"cert-no-client-eku", "server-eku-upload-on"}, id="edge"),
        ],
    )
    def test_sample_precheck(self, fs, samples, name, warnings):
        """The bundled samples precheck with no blocker; the Edge warns of its server-only certificate and EKU upload switch."""
        write_tree(samples[name], NODE)
        findings = precheck()
        assert checks.blockers(findings) == ()
        assert {f.id for f in findings if f.severity == "warning"} == warnings
        state = checks.node_state(analysis())
        assert state == ("x15.4", False)


# --- Verify ---------------------------------------------------------------------------------------


def _drop_checking_line(fs, pki, mp):
    path = NODE / CONFIG
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    write(path, b"".join(line for line in lines if b"Checking Mode" not in line))


VERIFY_ROWS = [
    pytest.param(_chmod("client.pem", 0o600), "client-file-mode", rel("client.pem"), id="client-pem-mode"),
    pytest.param(
        _chmod("clientprivkey.pem", 0o400), "client-file-mode", rel("clientprivkey.pem"), id="client-key-mode"
    ),
    pytest.param(_chmod("client-ssh.pem", 0o640), "client-file-mode", rel("client-ssh.pem"), id="client-ssh-mode"),
    pytest.param(
        lambda fs, pki, mp: os.chown(cert("client.pem"), 0, 0),
        "client-file-owner",
        rel("client.pem"),
        id="client-pem-owner",
    ),
    pytest.param(
        lambda fs, pki, mp: os.chown(cert("clientprivkey.pem"), 0, 5),
        "client-file-owner",
        rel("clientprivkey.pem"),
        id="client-key-group",
    ),
    pytest.param(
        lambda fs, pki, mp: os.chown(cert("client-ssh.pem"), 65534, 1001),
        "client-file-owner",
        rel("client-ssh.pem"),
        id="client-ssh-owner",
    ),
    pytest.param(_remove("client.pem"), "client-file-missing", rel("client.pem"), id="client-pem-missing"),
    pytest.param(_remove("client-ssh.pem"), "client-file-missing", rel("client-ssh.pem"), id="client-ssh-missing"),
    pytest.param(_append_config(setting(RETIRED, "Off")), "retired-setting-present", CONFIG, id="retired-left"),
    pytest.param(_drop_checking_line, "checking-mode-unstated", CONFIG, id="checking-unstated"),
    pytest.param(
        _journal(empty_journal("applying")),
        "migration-interrupted",
        JOURNAL,
        id="interrupted",
    ),
    pytest.param(_chmod("privkey.pem", 0o644), "key-exposed", rel("privkey.pem"), id="precheck-blocker"),
]


class TestVerify:
    @pytest.mark.parametrize(
        "spec", [pytest.param(None, id="with-ssh"), pytest.param(_spec(ssh="absent"), id="without-ssh")]
    )
    def test_migrated_node_verifies(self, fs, pki, monkeypatch, spec):
        """A node as the migration leaves it (factory client="migrated") has no verify finding."""
        _build(fs, pki, monkeypatch, lambda p: {**(spec(p) if spec else {}), "client": "migrated"})
        assert checks.verify(analysis()) == ()

    @pytest.mark.parametrize("mutate, finding_id, path", VERIFY_ROWS)
    def test_broken_invariant(self, fs, pki, monkeypatch, mutate, finding_id, path):
        """Each broken X15.5 invariant is a verify blocker at the right path."""
        _build(fs, pki, monkeypatch, MIGRATED, mutate)
        found = [f for f in checks.verify(analysis()) if f.id == finding_id]
        assert [(f.path, f.severity) for f in found] == [(path, "blocker")]
        assert found[0].message and found[0].hint

    def test_x154_node_fails_verify(self, fs, pki, monkeypatch):
        """An unmigrated X15.4 node misses all three client files and the Checking Mode line."""
        _build(fs, pki, monkeypatch)
        ids = [(f.id, f.path) for f in checks.verify(analysis())]
        assert ids == [
            ("client-file-missing", rel("client.pem")),
            ("client-file-missing", rel("clientprivkey.pem")),
            ("client-file-missing", rel("client-ssh.pem")),
            ("checking-mode-unstated", CONFIG),
        ]

    def test_no_duplicates(self, fs, pki, monkeypatch):
        """verify reports each finding once, even when precheck already reported it."""
        _build(fs, pki, monkeypatch, MIGRATED, _chmod("privkey.pem", 0o644))
        found = checks.verify(analysis())
        assert len(found) == len(set(found))


# --- node_state -----------------------------------------------------------------------------------


class TestNodeState:
    @pytest.mark.parametrize(
        "spec, mutate, expected",
        [
            pytest.param(None, None, ("x15.4", False), id="x15.4"),
            pytest.param(_spec(ssh="absent"), None, ("x15.4", False), id="x15.4-no-ssh"),
            pytest.param(MIGRATED, None, ("x15.5", False), id="x15.5"),
            pytest.param(lambda p: {"client": "migrated", "ssh": "absent"}, None, ("x15.5", False), id="x15.5-no-ssh"),
            pytest.param(
                None,
                lambda fs, pki, mp: shutil.copy(cert("server.pem"), cert("client.pem")),
                ("mixed", False),
                id="one-client-file",
            ),
            pytest.param(MIGRATED, _remove("client-ssh.pem"), ("mixed", False), id="client-ssh-missing"),
            pytest.param(MIGRATED, _append_config(setting(RETIRED, "On")), ("mixed", False), id="retired-left"),
            pytest.param(
                MIGRATED,
                _journal(empty_journal("applied")),
                ("x15.5", True),
                id="migrated-by-tool",
            ),
            pytest.param(
                None,
                _journal(empty_journal("applying")),
                ("interrupted", True),
                id="interrupted",
            ),
            pytest.param(None, _journal(b"garbage"), ("interrupted", True), id="unreadable-journal"),
        ],
    )
    def test_state(self, fs, pki, monkeypatch, spec, mutate, expected):
        """node_state tells X15.4, X15.5, mixed and interrupted apart, and whether this tool migrated the node."""
        _build(fs, pki, monkeypatch, spec, mutate)
        assert checks.node_state(analysis()) == expected
