"""Hostile and broken trees, through the command line: a clear refusal or an exact migration, never a hang.

The gaps ``test_bad_input`` leaves: a symlink at every managed name (pointing
inside the node or outside it), symlinked directories, sockets, devices, FIFOs
and directories where a file should be, hard links, huge and empty files, keys
in every PEM format (accepted) and of the algorithms Expressway does not use
(refused), configurations with CRLF, odd bytes and repeated or conflicting
retired lines, and file systems that refuse to be read or written.

A refusal is judged as in ``test_bad_input``: exit 1, exactly one
``error[id]: … -- hint: …`` line on stderr, no traceback, no key material, the
tree byte for byte as it was (modes and owners too), no state directory.  Every
test runs under an alarm, and the ones that put a FIFO, socket or device in the
node run the command in a child process with a timeout: a hang fails the test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import tracemalloc
from pathlib import Path

import attrs
import pytest

from migrate import policy
from migrate.cli import main
from migrate.testing import faults
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca
from migrate.testing.tree import diff_trees, read_tree

CERTS = policy.CERT_DIR
CONFIG = policy.CONFIG_FILE
STATE = policy.STATE_DIR
RETIRED = policy.RETIRED_SETTING
ERROR_LINE = re.compile(r"^error\[(?P<id>[a-z0-9-]+)\]: (?P<message>.+) -- hint: (?P<hint>.+)$")
CHECKING_LINE = b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On"
MAX_READ = 128 << 20  # read_tree's cap: above the 64 MiB files planted here
DEADLINE = 60  # seconds a whole test may take before it counts as hung
CHILD_TIMEOUT = 30  # seconds a child process may take
REPO = Path(__file__).resolve().parent.parent


class Hung(BaseException):
    """Raised by the alarm: not an ``Exception``, so ``cli.main`` cannot turn it into an error line."""


@pytest.fixture(autouse=True)
def _deadline():
    """Fail, rather than block, a test that runs past DEADLINE seconds (a FIFO opened for reading, say)."""

    def expired(signum, frame):
        raise Hung(f"the test ran for more than {DEADLINE} s: something hangs")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(DEADLINE)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@attrs.frozen
class Result:
    code: int
    out: str
    err: str


def _cli(capsys, *argv: str) -> Result:
    """Run the command line in this process."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return Result(code, out, err)


def _cli_child(*argv: str) -> Result:
    """Run ``python -m migrate`` in a child process; a child that outlives CHILD_TIMEOUT fails the test."""
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "migrate", *argv],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT,
            check=False,
            cwd=REPO,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"expressway-migrate {' '.join(argv)} hung for {CHILD_TIMEOUT} s")
    return Result(proc.returncode, proc.stdout, proc.stderr)


def _assert_refused(result: Result, finding: str, root: Path, before, *, state_dir_absent: bool = True):
    """The refusal contract: exit 1, one error line naming ``finding`` with a hint, nothing changed."""
    assert result.code == 1, result
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    match = ERROR_LINE.match(lines[0])
    assert match is not None, lines[0]
    assert match["id"] == finding, lines[0]
    assert "Traceback" not in result.out + result.err
    assert "PRIVATE KEY" not in result.out + result.err
    assert diff_trees(before, read_tree(root, max_file_bytes=MAX_READ)) == []
    if state_dir_absent:
        assert not os.path.lexists(root / STATE)
    return match


def _keep_stat(path: Path, like: Path) -> None:
    """Give ``path`` the mode and owner of ``like``."""
    st = os.stat(like, follow_symlinks=False)
    os.chown(path, st.st_uid, st.st_gid, follow_symlinks=False)
    os.chmod(path, stat.S_IMODE(st.st_mode))


def _replace_keep_stat(path: Path, data: bytes) -> None:
    st = os.stat(path)
    with open(path, "wb") as f:
        f.write(data)
    os.chown(path, st.st_uid, st.st_gid)
    os.chmod(path, stat.S_IMODE(st.st_mode))


def _node(tmp_path: Path, spec: NodeSpec | None = None) -> tuple[Path, Path]:
    """A healthy X15.4 node at tmp_path/node (``spec``, default a Core), and an empty directory outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    return build_node(tmp_path / "node", spec or NodeSpec()), outside


def _lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` with their endings; only LF ends a line."""
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", data)


RETIRED_WORD = RETIRED.rpartition(" ")[2].lower().encode()


def _retired(line: bytes) -> bool:
    """Whether ``line`` states the retired setting (in any case)."""
    return RETIRED_WORD in line.lower() and b"xconfiguration" in line.lower()


def _expected_config(original: bytes) -> bytes:
    """``original`` without its retired lines, every other byte kept, the checking line appended in its ending."""
    lines = _lines(original)
    eol = b"\r\n" if lines[0].endswith(b"\r\n") else b"\n"
    kept = [line for line in lines if not _retired(line)]
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += eol
    return b"".join(kept) + CHECKING_LINE + eol


# --- Symlinks -------------------------------------------------------------------

MANAGED = (*(f"{CERTS}/{rule.name}" for rule in policy.FILES), CONFIG, STATE)


def _finding_for(rel: str) -> str:
    if rel == STATE:
        return "directory-not-safe"
    return "config-not-regular" if rel == CONFIG else "file-not-regular"


def _plant_symlink(root: Path, outside: Path, rel: str, where: str) -> None:
    """Put a symlink at ``rel`` to a plausible copy of what belongs there, inside the node or outside it.

    A file that exists moves to the target; a client file the X15.4 node lacks
    becomes a copy of its counterpart (what the migration would write); the
    state directory becomes an empty 0700 directory (where apply would write).
    """
    path = root / rel
    name = path.name.lstrip(".")
    real = root / "persistent" / f"hostile-{name}" if where == "inside" else outside / name
    if rel == STATE:
        os.mkdir(real, 0o700)
    elif path.exists():
        os.rename(path, real)
    else:
        source = root / CERTS / policy.RULES[path.name].counterpart
        real.write_bytes(source.read_bytes())
        _keep_stat(real, source)
    target = os.path.relpath(real, path.parent) if where == "inside" else str(real)
    os.symlink(target, path)


def _move_and_link(root: Path, outside: Path, rel: str, where: str) -> None:
    """Move the directory ``rel`` away (inside the node or outside it) and leave a symlink to it."""
    path = root / rel
    real = path.with_name(f"{path.name}-real") if where == "inside" else outside / path.name
    os.rename(path, real)
    os.symlink(os.path.relpath(real, path.parent) if where == "inside" else str(real), path)


class TestSymlinks:
    @pytest.mark.parametrize("where", ["inside", "outside"])
    @pytest.mark.parametrize("rel", MANAGED, ids=[rel.rpartition("/")[2] for rel in MANAGED])
    def test_symlink_at_managed_name_is_refused(self, tmp_path, capsys, rel, where):
        """A symlink at any managed name, to a copy inside or outside the node, is refused and never written through."""
        root, outside = _node(tmp_path)
        _plant_symlink(root, outside, rel, where)
        before, before_outside = read_tree(root), read_tree(outside)
        result = _cli(capsys, "apply", str(root))
        _assert_refused(result, _finding_for(rel), root, before, state_dir_absent=rel != STATE)
        assert diff_trees(before_outside, read_tree(outside)) == []
        assert os.path.islink(root / rel)

    @pytest.mark.parametrize(
        ("rel", "where"),
        [("persistent", "inside"), ("persistent", "outside"), (CERTS, "outside")],
        ids=["persistent-inside", "persistent-outside", "certs-outside"],
    )
    def test_symlinked_directory_is_refused(self, tmp_path, capsys, rel, where):
        """A symlink in place of ``persistent`` (or of ``persistent/certs``, pointing outside) is refused."""
        root, outside = _node(tmp_path)
        _move_and_link(root, outside, rel, where)
        before, before_outside = read_tree(root), read_tree(outside)
        result = _cli(capsys, "apply", str(root))
        _assert_refused(result, "directory-not-safe", root, before)
        assert diff_trees(before_outside, read_tree(outside)) == []

    def test_rollback_refuses_symlinked_state_dir(self, tmp_path, capsys):
        """rollback of a migrated node whose state directory became a symlink refuses with directory-not-safe."""
        root, outside = _node(tmp_path)
        assert _cli(capsys, "apply", str(root)).code == 0
        os.rename(root / STATE, outside / "state")
        os.symlink(outside / "state", root / STATE)
        before, before_outside = read_tree(root), read_tree(outside)
        result = _cli(capsys, "rollback", str(root))
        _assert_refused(result, "directory-not-safe", root, before, state_dir_absent=False)
        assert diff_trees(before_outside, read_tree(outside)) == []


# --- Files that are not regular files --------------------------------------------


def _make_socket(path: Path, monkeypatch) -> None:
    # A UNIX socket path is limited to 108 bytes: bind a short relative name from its directory.
    monkeypatch.chdir(path.parent)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path.name)
    finally:
        sock.close()


# (kind, managed path, device numbers for a device)
SPECIAL = [
    ("socket", f"{CERTS}/privkey.pem", None),
    ("socket", CONFIG, None),
    ("device-null", f"{CERTS}/server.pem", (1, 3)),
    ("device-zero", f"{CERTS}/privkey.pem", (1, 5)),  # endless: a reader without a cap would eat memory
    ("fifo", CONFIG, None),
    ("fifo", f"{CERTS}/server-ssh.pem", None),
    ("fifo", f"{CERTS}/clientprivkey.pem", None),  # where apply would write
]


class TestNotRegular:
    @pytest.mark.parametrize(
        ("kind", "rel", "device"), SPECIAL, ids=[f"{k}-{r.rpartition('/')[2]}" for k, r, _ in SPECIAL]
    )
    def test_special_file_is_refused_without_hanging(self, tmp_path, monkeypatch, kind, rel, device):
        """A socket, device or FIFO at a managed name is refused by a child process that never opens it."""
        root, _ = _node(tmp_path)
        path = root / rel
        mode = stat.S_IMODE(os.stat(path).st_mode) if path.exists() else 0o600
        if path.exists():
            os.unlink(path)
        if kind == "socket":
            _make_socket(path, monkeypatch)
        elif kind == "fifo":
            os.mkfifo(path, mode)
        else:
            os.mknod(path, stat.S_IFCHR | mode, os.makedev(*device))
        before = read_tree(root)
        result = _cli_child("apply", str(root))
        _assert_refused(result, _finding_for(rel), root, before)

    @pytest.mark.parametrize("rel", [f"{CERTS}/privkey.pem", CONFIG], ids=["privkey.pem", "xconfiguration.txt"])
    def test_directory_at_file_name_is_refused(self, tmp_path, capsys, rel):
        """A directory where the key or the configuration should be is refused."""
        root, _ = _node(tmp_path)
        os.unlink(root / rel)
        os.mkdir(root / rel, 0o700)
        before = read_tree(root)
        _assert_refused(_cli(capsys, "apply", str(root)), _finding_for(rel), root, before)


# --- Hard links -------------------------------------------------------------------


class TestHardLinks:
    @pytest.mark.parametrize("where", ["inside", "outside"])
    def test_hardlinked_ssh_bundle_is_refused(self, tmp_path, capsys, where):
        """server-ssh.pem holds a private key: a second name for it, in the node or outside, is refused."""
        root, outside = _node(tmp_path)
        other = root / CERTS / "saml" / "ssh-copy.pem" if where == "inside" else outside / "ssh-copy.pem"
        os.link(root / CERTS / "server-ssh.pem", other)
        before = read_tree(root)
        _assert_refused(_cli(capsys, "apply", str(root)), "key-hardlinked", root, before)


# --- Huge and empty files -----------------------------------------------------------


def _huge_key(root: Path) -> None:
    with open(root / CERTS / "privkey.pem", "r+b") as f:
        f.truncate(64 << 20)  # sparse: costs no disk


def _huge_config(root: Path) -> None:
    filler = b"".join(b'*c xConfiguration Zones Zone %d Name: "zone %d"\n' % (n, n) for n in range(250_000))
    with open(root / CONFIG, "ab") as f:
        f.write(filler)
    assert os.stat(root / CONFIG).st_size > 10_000_000


HUGE = [
    ("privkey.pem-64MiB", _huge_key, "file-too-large"),
    ("xconfiguration.txt-10MB", _huge_config, "config-too-large"),
]


class TestHugeFiles:
    @pytest.mark.parametrize(("grow", "finding"), [c[1:] for c in HUGE], ids=[c[0] for c in HUGE])
    def test_huge_file_is_refused_in_bounded_memory(self, tmp_path, capsys, grow, finding):
        """A managed file far over its cap is refused, and apply's peak allocation stays under 16 MiB."""
        root, _ = _node(tmp_path)
        grow(root)
        before = read_tree(root, max_file_bytes=MAX_READ)
        tracemalloc.start()
        try:
            result = _cli(capsys, "apply", str(root))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        _assert_refused(result, finding, root, before)
        assert peak < 16 << 20, f"peak allocation {peak} bytes"


EMPTY = [f"{CERTS}/server.pem", f"{CERTS}/ca.pem", f"{CERTS}/server-ssh.pem", CONFIG]


class TestEmptyFiles:
    @pytest.mark.parametrize("rel", EMPTY, ids=[rel.rpartition("/")[2] for rel in EMPTY])
    def test_empty_file_is_refused(self, tmp_path, capsys, rel):
        """An empty managed file is refused: for a PEM file as file-empty, for the configuration as config-empty.

        An X15.4 configuration always states hundreds of settings; an empty one
        is a failed ``xconfiguration > FILE``, as unusable as a missing one.
        """
        root, _ = _node(tmp_path)
        _replace_keep_stat(root / rel, b"")
        before = read_tree(root)
        result = _cli(capsys, "apply", str(root))
        _assert_refused(result, "config-empty" if rel == CONFIG else "file-empty", root, before)


class TestTrailingGarbage:
    @pytest.mark.parametrize("name", ["privkey.pem", "server-ssh.pem"])
    def test_text_after_the_key_is_refused(self, tmp_path, capsys, name):
        """Bytes after the last PEM block of a key file are refused, and the message quotes none of the key."""
        root, _ = _node(tmp_path)
        path = root / CERTS / name
        _replace_keep_stat(path, path.read_bytes() + b"garbage after the key\n")
        before = read_tree(root)
        _assert_refused(_cli(capsys, "apply", str(root)), "pem-trailing-data", root, before)


# --- Key formats and algorithms ----------------------------------------------------

# (key format, key type, the PEM label privkey.pem must then carry)
ACCEPTED = [
    ("pkcs1", "rsa2048", b"-----BEGIN RSA PRIVATE KEY-----"),
    ("pkcs8", "rsa2048", b"-----BEGIN PRIVATE KEY-----"),
    ("pkcs8", "ec256", b"-----BEGIN PRIVATE KEY-----"),
    ("sec1", "ec256", b"-----BEGIN EC PRIVATE KEY-----"),
    ("sec1", "ec384", b"-----BEGIN EC PRIVATE KEY-----"),
]


class TestKeyFormats:
    @pytest.mark.parametrize(("key_format", "key_type", "label"), ACCEPTED, ids=[f"{f}-{t}" for f, t, _ in ACCEPTED])
    def test_key_format_is_migrated_and_rolled_back(self, tmp_path, capsys, key_format, key_type, label):
        """A PKCS#1, PKCS#8 or SEC1 key is migrated (the client key is its exact copy) and rolled back exactly."""
        identity = issue(make_ca("Example Internal CA"), "core.example.com", key_type=key_type)
        root, _ = _node(tmp_path, NodeSpec(identity=identity, key_format=key_format))
        certs = root / CERTS
        assert (certs / "privkey.pem").read_bytes().startswith(label)
        before = read_tree(root)
        applied = _cli(capsys, "apply", str(root))
        assert applied.code == 0, applied.err
        assert (certs / "clientprivkey.pem").read_bytes() == (certs / "privkey.pem").read_bytes()
        assert (certs / "client-ssh.pem").read_bytes() == (certs / "server-ssh.pem").read_bytes()
        assert (certs / "client.pem").read_bytes() == (certs / "server.pem").read_bytes()
        verified = _cli(capsys, "verify", str(root))
        assert verified.code == 0, verified.out
        rolled = _cli(capsys, "rollback", str(root))
        assert rolled.code == 0, rolled.err
        assert diff_trees(before, read_tree(root)) == []
        for result in (applied, verified, rolled):
            assert "PRIVATE KEY" not in result.out + result.err


class TestUnsupportedKeys:
    @pytest.mark.parametrize(("key_type", "algorithm"), [("dsa2048", "dsa"), ("ed25519", "ed25519")])
    def test_unsupported_algorithm_is_refused(self, tmp_path, capsys, key_type, algorithm):
        """A DSA or Ed25519 identity is refused as key-unsupported, and the message names the algorithm."""
        identity = issue(make_ca("Example Internal CA"), "core.example.com", key_type=key_type)
        root, _ = _node(tmp_path, NodeSpec(identity=identity))
        before = read_tree(root)
        match = _assert_refused(_cli(capsys, "apply", str(root)), "key-unsupported", root, before)
        assert algorithm in match["message"].lower()
        assert "privkey.pem" in match["message"]


# --- Configuration --------------------------------------------------------------------


def _to_crlf(root: Path) -> None:
    path = root / CONFIG
    _replace_keep_stat(path, path.read_bytes().replace(b"\n", b"\r\n"))


RETIRED_ON = {RETIRED: "On"}
ODD_BYTES = (
    b'# operator note: caf\xe9 \xff\xfe (not UTF-8)\n*c xConfiguration SystemUnit Contact Name: "J\xf6rg \x80"\n'
)
AGAIN_QUOTED = f'*c xConfiguration {RETIRED}: "On"\n'.encode()
AGAIN_OTHER_CASE = f"*C xconfiguration  {RETIRED.lower()}:\ton\n".encode()
NO_NEWLINE = b'*c xConfiguration Zz Operator Note: "last line, no newline"'

# (id, spec, change after building, how many retired lines the configuration holds)
LEGAL_CONFIGS = [
    ("crlf", NodeSpec(settings=RETIRED_ON), _to_crlf, 1),
    ("non-utf8", NodeSpec(settings=RETIRED_ON, config_extra=ODD_BYTES), None, 1),
    ("duplicate-on", NodeSpec(settings=RETIRED_ON, config_extra=AGAIN_QUOTED), None, 2),
    ("duplicate-on-other-case", NodeSpec(settings=RETIRED_ON, config_extra=AGAIN_OTHER_CASE), None, 2),
    (
        "crlf-non-utf8-duplicate-no-final-newline",
        NodeSpec(settings=RETIRED_ON, config_extra=ODD_BYTES + AGAIN_QUOTED + NO_NEWLINE),
        _to_crlf,
        2,
    ),
]


class TestConfiguration:
    @pytest.mark.parametrize(
        ("spec", "change", "retired"), [c[1:] for c in LEGAL_CONFIGS], ids=[c[0] for c in LEGAL_CONFIGS]
    )
    def test_legal_oddity_migrates_byte_exactly(self, tmp_path, capsys, spec, change, retired):
        """CRLF, non-UTF-8 bytes and repeated On lines migrate: only the retired lines go, and rollback is exact."""
        root, _ = _node(tmp_path, spec)
        if change is not None:
            change(root)
        original = (root / CONFIG).read_bytes()
        assert sum(map(_retired, _lines(original))) == retired
        before = read_tree(root)
        applied = _cli(capsys, "apply", str(root))
        assert applied.code == 0, applied.err
        assert (root / CONFIG).read_bytes() == _expected_config(original)
        assert _cli(capsys, "verify", str(root)).code == 0
        rolled = _cli(capsys, "rollback", str(root))
        assert rolled.code == 0, rolled.err
        assert diff_trees(before, read_tree(root)) == []

    def test_conflicting_values_warn_then_migrate(self, tmp_path, capsys):
        """EnableServerEkuUpload set On and Off is a retired-setting-conflict warning; apply retires both lines."""
        conflict = f"*c xConfiguration {RETIRED}: Off\n".encode()
        root, _ = _node(tmp_path, NodeSpec(settings=RETIRED_ON, config_extra=conflict))
        original = (root / CONFIG).read_bytes()
        numbers = [str(no) for no, line in enumerate(_lines(original), start=1) if _retired(line)]
        assert len(numbers) == 2
        before = read_tree(root)

        checked = _cli(capsys, "precheck", str(root), "--format", "json")
        doc = json.loads(checked.out)
        assert checked.code == 0 and doc["ready"] is True
        found = [f for f in doc["findings"] if f["id"] == "retired-setting-conflict"]
        assert len(found) == 1 and found[0]["severity"] == "warning" and found[0]["hint"]
        assert all(no in found[0]["message"] for no in numbers)
        assert diff_trees(before, read_tree(root)) == []

        applied = _cli(capsys, "apply", str(root), "--format", "json")
        doc = json.loads(applied.out)
        assert applied.code == 0 and doc["ok"] is True and doc["result"] == "migrated", applied.err
        retired = [a["old_value"] for a in doc["actions"] if a["action"] == "retire-setting"]
        assert sorted(retired) == ["Off", "On"]
        assert (root / CONFIG).read_bytes() == _expected_config(original)

        assert _cli(capsys, "rollback", str(root)).code == 0
        assert diff_trees(before, read_tree(root)) == []


# --- File systems that refuse -----------------------------------------------------------

UNREADABLE = [
    ("privkey.pem", "/privkey.pem", "file-unreadable"),
    ("xconfiguration.txt", "/xconfiguration.txt", "config-unreadable"),
]


def _eacces_on_open(suffix: str):
    return faults.inject(at=1, fault="eacces", where=lambda c: c.name == "open" and c.target.endswith(suffix))


class TestRefusingFileSystem:
    @pytest.mark.parametrize(("suffix", "finding"), [c[1:] for c in UNREADABLE], ids=[c[0] for c in UNREADABLE])
    def test_unreadable_file_is_refused(self, tmp_path, capsys, suffix, finding):
        """A managed file whose open fails with EACCES (as root) is refused with the reason, the node untouched."""
        root, _ = _node(tmp_path)
        before = read_tree(root)
        with _eacces_on_open(suffix) as injector:
            result = _cli(capsys, "apply", str(root))
        assert injector.tripped is not None
        match = _assert_refused(result, finding, root, before)
        assert "Permission denied" in match["message"]

    def test_unreadable_hint_fits_a_root_user(self, tmp_path, capsys):
        """When root itself is denied (NFS root squash, an LSM), the hint does not tell it to run as root."""
        assert os.geteuid() == 0
        root, _ = _node(tmp_path)
        before = read_tree(root)
        with _eacces_on_open("/privkey.pem"):
            result = _cli(capsys, "apply", str(root))
        match = _assert_refused(result, "file-unreadable", root, before)
        assert "run as root" not in match["hint"]

    def test_read_only_file_system_is_refused(self, tmp_path, capsys):
        """When every write fails with EROFS, apply exits 1 with apply-failed, says so, and leaves no trace."""
        root, _ = _node(tmp_path)
        before = read_tree(root)
        with faults.inject(at=1, fault="erofs", persistent=True, where=lambda c: c.writes) as injector:
            result = _cli(capsys, "apply", str(root))
        assert injector.tripped is not None
        match = _assert_refused(result, "apply-failed", root, before)
        assert "Read-only file system" in match["message"]
        assert "not changed" in match["message"]
