"""Tests for migrate.scan: the reader never follows a link, never opens a FIFO, caps sizes and changes nothing."""

from __future__ import annotations

import errno
import os
import stat
import sys
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest
from support import empty_journal

from migrate import policy
from migrate.errors import NodeError
from migrate.scan import FileState, Layout, read_capped, scan
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca, node_tree
from migrate.testing.tree import diff_trees, read_tree, write_tree

CERTS = policy.CERT_DIR
CONFIG = policy.CONFIG_FILE
CAP = policy.MAX_PEM_BYTES


@pytest.fixture(scope="module")
def ident():
    """One EC P-256 identity for every node of the module."""
    return issue(make_ca("Scan Test CA"), "core.example.com")


@pytest.fixture(params=["fake", "real"])
def place(request, tmp_path):
    """A directory to build a node in: in pyfakefs, or on the real disk."""
    if request.param == "fake":
        request.getfixturevalue("fs")
        return Path("/work-node")
    return tmp_path / "work-node"


def make_node(root: Path, ident, **spec) -> Path:
    """Build an X15.4 node at ``root`` (owners set only when we may)."""
    return build_node(root, NodeSpec(identity=ident, chown=os.geteuid() == 0, **spec))


def scan_os():
    """The ``os`` module migrate.scan uses (pyfakefs's fake one under the ``fs`` fixture)."""
    return sys.modules["migrate.scan"].os


def replace_with_symlink(path: Path, target: Path) -> None:
    os.remove(path)
    os.symlink(target, path)


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


class TestLayout:
    def test_default_paths(self):
        """A node's layout puts certificates, configuration and the tool's state under the root."""
        layout = Layout.for_node("/n")
        assert layout.root == Path("/n")
        assert layout.cert_dir == Path("/n/persistent/certs")
        assert layout.config == Path("/n/persistent/xconfiguration.txt")
        assert layout.state_dir == Path("/n/persistent/.cert-migration")
        assert layout.journal == Path("/n/persistent/.cert-migration/journal.json")
        assert layout.config_backup == Path("/n/persistent/.cert-migration/xconfiguration.orig")
        assert layout.lock == Path("/n/persistent/.cert-migration/lock")
        assert layout.cert("server.pem") == Path("/n/persistent/certs/server.pem")

    def test_relative_root_made_absolute(self, monkeypatch, tmp_path):
        """A relative node root is taken from the current directory."""
        monkeypatch.chdir(tmp_path)
        assert Layout.for_node("node").root == tmp_path / "node"

    @pytest.mark.parametrize(
        "path, expected",
        [
            pytest.param("/n/persistent/certs/server.pem", "persistent/certs/server.pem", id="inside"),
            pytest.param("/n/persistent/xconfiguration.txt", "persistent/xconfiguration.txt", id="config"),
            pytest.param("/elsewhere/certs/server.pem", "/elsewhere/certs/server.pem", id="outside"),
            pytest.param("/n2/persistent/certs/server.pem", "/n2/persistent/certs/server.pem", id="shared-prefix"),
        ],
    )
    def test_rel_and_resolve(self, path, expected):
        """rel is relative to the node when inside it and absolute otherwise; resolve inverts it."""
        layout = Layout.for_node("/n", cert_dir="/elsewhere/certs")
        assert layout.rel(path) == expected
        assert layout.resolve(expected) == Path(path)

    def test_cert_dir_and_config_outside(self):
        """--cert-dir and --config outside the node are kept absolute, and the state stays in the node."""
        layout = Layout.for_node("/n", cert_dir="/elsewhere/certs", config="/etc/xconf.txt")
        assert layout.cert("privkey.pem") == Path("/elsewhere/certs/privkey.pem")
        assert layout.rel(layout.cert("privkey.pem")) == "/elsewhere/certs/privkey.pem"
        assert layout.rel(layout.config) == "/etc/xconf.txt"
        assert layout.rel(layout.journal) == "persistent/.cert-migration/journal.json"


class TestReadCapped:
    def test_regular_file(self, fs):
        """A regular file within the cap is read whole, with its mode, owner, link count and size."""
        fs.create_file("/d/f", contents=b"hello\n", st_mode=stat.S_IFREG | 0o640)
        os.chown("/d/f", 12, 34)
        state = read_capped(Path("/d/f"), 100, "f")
        assert (state.path, state.kind, state.mode, state.uid, state.gid, state.nlink, state.size) == (
            "f", "file", 0o640, 12, 34, 1, 6,
        )  # fmt: skip
        assert state.data == b"hello\n" and state.readable and state.exists

    @pytest.mark.parametrize(
        "size, kind",
        [
            pytest.param(0, "file", id="empty"),
            pytest.param(100, "file", id="at-cap"),
            pytest.param(101, "too-large", id="cap-plus-one"),
        ],
    )
    def test_cap_boundary(self, fs, size, kind):
        """A file of exactly cap bytes is read; one byte more is too-large and has no data."""
        fs.create_file("/d/f", contents=b"x" * size)
        state = read_capped(Path("/d/f"), 100, "f")
        assert state.kind == kind
        assert state.data == (b"x" * size if kind == "file" else None)
        assert state.size == size

    def test_many_chunks(self, place):
        """A file longer than one read chunk (64 KiB) comes back byte for byte."""
        data = bytes(range(256)) * 1000 + b"tail"  # 256 004 bytes
        os.makedirs(place)
        write_file(place / "f", data)
        assert read_capped(place / "f", CAP, "f").data == data

    def test_large_file_never_read(self, fs):
        """A file over the cap is judged by its size alone: pyfakefs's unreadable large file is never read."""
        fs.create_file("/d/big", st_size=CAP + 1)
        state = read_capped(Path("/d/big"), CAP, "big")
        assert (state.kind, state.size, state.data) == ("too-large", CAP + 1, None)

    @pytest.mark.parametrize(
        "make, kind",
        [
            pytest.param(lambda fs: fs.create_dir("/d/x"), "dir", id="dir"),
            pytest.param(lambda fs: fs.create_symlink("/d/x", "/d/target"), "symlink", id="symlink"),
            pytest.param(lambda fs: fs.create_symlink("/d/x", "/d/nowhere"), "symlink", id="dangling-symlink"),
            pytest.param(lambda fs: fs.create_file("/d/x", st_mode=stat.S_IFIFO | 0o644), "fifo", id="fifo"),
            pytest.param(lambda fs: fs.create_file("/d/x", st_mode=stat.S_IFCHR | 0o600), "device", id="char-device"),
            pytest.param(lambda fs: fs.create_file("/d/x", st_mode=stat.S_IFBLK | 0o600), "device", id="block-device"),
            pytest.param(lambda fs: fs.create_file("/d/x", st_mode=stat.S_IFSOCK | 0o600), "socket", id="socket"),
        ],
    )
    def test_not_regular(self, fs, make, kind):
        """Anything but a regular file is reported by kind and never opened."""
        fs.create_file("/d/target", contents=b"-----BEGIN CERTIFICATE-----\n")
        make(fs)
        opened = []
        real_open = scan_os().open

        def spy(path, *a, **kw):
            opened.append(os.fspath(path))
            return real_open(path, *a, **kw)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(scan_os(), "open", spy)
            state = read_capped(Path("/d/x"), CAP, "x")
        assert (state.kind, state.data) == (kind, None)
        assert opened == []

    @pytest.mark.parametrize(
        "setup, error",
        [
            pytest.param(lambda fs: None, None, id="absent"),
            pytest.param(lambda fs: fs.create_file("/d"), "a parent is not a directory", id="parent-is-a-file"),
        ],
    )
    def test_missing(self, fs, setup, error):
        """A path that does not exist is missing; under a file it is missing with the reason."""
        setup(fs)
        state = read_capped(Path("/d/f"), CAP, "f")
        assert (state.kind, state.error, state.exists, state.data) == ("missing", error, False, None)

    def test_open_refused(self, fs, monkeypatch):
        """A file that cannot be opened is unreadable, with the system's reason and its lstat facts."""
        fs.create_file("/d/f", contents=b"secret", st_mode=stat.S_IFREG | 0o400)
        real_open = scan_os().open

        def refuse(path, *a, **kw):
            if os.fspath(path) == "/d/f":
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, *a, **kw)

        monkeypatch.setattr(scan_os(), "open", refuse)
        state = read_capped(Path("/d/f"), CAP, "f")
        assert (state.kind, state.data, state.mode, state.size) == ("unreadable", None, 0o400, 6)
        assert state.error == os.strerror(errno.EACCES)

    def test_lstat_refused(self, fs, monkeypatch):
        """A path whose lstat fails (a parent not searchable) is unreadable."""
        real_lstat = scan_os().lstat

        def refuse(path, *a, **kw):
            if os.fspath(path) == "/d/f":
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_lstat(path, *a, **kw)

        monkeypatch.setattr(scan_os(), "lstat", refuse)
        state = read_capped(Path("/d/f"), CAP, "f")
        assert (state.kind, state.error, state.data) == ("unreadable", os.strerror(errno.EACCES), None)

    def test_file_swapped_after_lstat(self, place, monkeypatch):
        """A file replaced between lstat and open (another inode) is unreadable, not read."""
        os.makedirs(place)
        write_file(place / "f", b"what lstat saw")
        write_file(place / "g", b"what open finds")
        swapped = scan_os().lstat(place / "g")
        real_lstat = scan_os().lstat
        monkeypatch.setattr(
            scan_os(), "lstat", lambda p, *a, **kw: swapped if Path(p) == place / "f" else real_lstat(p, *a, **kw)
        )
        # lstat now describes g while open opens f: the inodes differ.
        state = read_capped(place / "f", CAP, "f")
        assert (state.kind, state.data) == ("unreadable", None)
        assert "changed" in state.error

    def test_file_grown_after_lstat(self, place, monkeypatch):
        """A file that grew past the cap after lstat is too-large: reading stops at cap + 1 bytes."""
        os.makedirs(place)
        write_file(place / "f", b"y" * 5000)
        real_lstat = scan_os().lstat
        st = real_lstat(place / "f")
        small = os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 10, 0, 0, 0))
        monkeypatch.setattr(
            scan_os(), "lstat", lambda p, *a, **kw: small if Path(p) == place / "f" else real_lstat(p, *a, **kw)
        )
        read = []
        real_read = scan_os().read
        monkeypatch.setattr(scan_os(), "read", lambda fd, n: read.append(real_read(fd, n)) or read[-1])
        state = read_capped(place / "f", 100, "f")
        assert (state.kind, state.data) == ("too-large", None)
        assert sum(map(len, read)) == 101

    def test_repr_hides_data(self):
        """A FileState's repr never shows the bytes it holds (they may be a private key)."""
        state = FileState(
            "persistent/certs/privkey.pem", "file", mode=0o440, uid=0, gid=0, nlink=1, size=9, data=b"KEYSECRET"
        )
        assert "KEYSECRET" not in repr(state)

    def test_identity_ignores_directory_link_count(self):
        """The fingerprint identity of a directory leaves out its link count (it grows with subdirectories)."""
        a = FileState("persistent", "dir", mode=0o755, uid=0, gid=0, nlink=2)
        b = FileState("persistent", "dir", mode=0o755, uid=0, gid=0, nlink=3)
        assert a.identity() == b.identity()
        f1 = FileState("k", "file", mode=0o440, uid=0, gid=0, nlink=1, data=b"")
        f2 = FileState("k", "file", mode=0o440, uid=0, gid=0, nlink=2, data=b"")
        assert f1.identity() != f2.identity()


class TestScan:
    def test_x154_node(self, place, ident):
        """A fresh X15.4 node: every managed file read, client files missing, no tool state."""
        node = make_node(place, ident)
        now = datetime(2030, 1, 2, tzinfo=UTC)
        snap = scan(Layout.for_node(node), now=now)
        assert set(snap.files) == {rule.name for rule in policy.FILES}
        for name in ("ca.pem", "server.pem", "privkey.pem", "server-ssh.pem"):
            state = snap.files[name]
            assert (state.path, state.kind, state.mode) == (f"{CERTS}/{name}", "file", policy.RULES[name].mode)
            with open(node / CERTS / name, "rb") as f:
                assert state.data == f.read()
        for rule in policy.CLIENT_FILES:
            assert snap.files[rule.name].kind == "missing"
        assert (snap.config.path, snap.config.kind) == (CONFIG, "file")
        assert [(d.path, d.kind) for d in snap.dirs] == [("persistent", "dir"), (CERTS, "dir")]
        assert (snap.state_dir.kind, snap.journal.kind, snap.config_backup.kind, snap.temps) == (
            "missing", "missing", "missing", (),
        )  # fmt: skip
        assert snap.journal_record is None and snap.journal_problem is None
        assert snap.now == now
        assert snap.euid == os.geteuid()
        if os.geteuid() == 0:
            assert (snap.files["privkey.pem"].uid, snap.files["server-ssh.pem"].uid) == (0, 1001)

    def test_symlink_not_followed(self, place, ident):
        """A symlink at server.pem pointing to a readable certificate is reported as a symlink, with no data."""
        node = make_node(place, ident)
        replace_with_symlink(node / CERTS / "server.pem", node / CERTS / "mtls_ca.pem")
        state = scan(Layout.for_node(node)).files["server.pem"]
        assert (state.kind, state.data) == ("symlink", None)

    def test_config_symlink_not_followed(self, place, ident):
        """A symlink at the configuration is reported as such, not read through."""
        node = make_node(place, ident)
        os.rename(node / CONFIG, node / "real-config.txt")
        os.symlink(node / "real-config.txt", node / CONFIG)
        config = scan(Layout.for_node(node)).config
        assert (config.kind, config.data) == ("symlink", None)

    @pytest.mark.parametrize("where", [f"{CERTS}/server.pem", CONFIG, f"{CERTS}/client.pem"])
    def test_fifo_never_opened(self, tmp_path, ident, where):
        """A real FIFO at a managed name is reported as a FIFO, and scan returns at once instead of blocking in open."""
        node = make_node(tmp_path / "node", ident)
        fifo = node / where
        if fifo.exists():
            os.remove(fifo)
        os.mkfifo(fifo)
        result = {}
        worker = threading.Thread(target=lambda: result.update(snap=scan(Layout.for_node(node))), daemon=True)
        worker.start()
        worker.join(10)
        hung = worker.is_alive()
        if hung:  # release a reader blocked in open(), so the thread can end
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            os.close(fd)
            worker.join(5)
        assert not hung, "scan blocked on a FIFO"
        snap = result["snap"]
        state = snap.config if where == CONFIG else snap.files[Path(where).name]
        assert (state.kind, state.data) == ("fifo", None)

    @pytest.mark.parametrize(
        "where, cap",
        [
            pytest.param(f"{CERTS}/server.pem", policy.MAX_PEM_BYTES, id="server-pem"),
            pytest.param(CONFIG, policy.MAX_CONFIG_BYTES, id="config"),
        ],
    )
    def test_sparse_64mib_not_read(self, tmp_path, ident, monkeypatch, where, cap):
        """A 64 MiB (sparse) file is too-large from its size alone: the whole scan reads under 2 MiB."""
        node = make_node(tmp_path / "node", ident)
        with open(node / where, "wb") as f:
            f.truncate(64 << 20)
        counted = []
        real_read = scan_os().read

        def counting_read(fd, n):
            data = real_read(fd, n)
            counted.append(len(data))
            return data

        monkeypatch.setattr(scan_os(), "read", counting_read)
        snap = scan(Layout.for_node(node))
        state = snap.config if where == CONFIG else snap.files["server.pem"]
        assert (state.kind, state.size, state.data) == ("too-large", 64 << 20, None)
        assert 0 < sum(counted) < 2 << 20
        assert cap < 64 << 20

    def test_modes_unchanged_in_pyfakefs(self, fs, ident):
        """Scanning a fake node leaves every mode as it was (pyfakefs's os.open resets modes unless given one)."""
        node = make_node(Path("/n"), ident, client="migrated")
        odd = {
            f"{CERTS}/ca.pem": 0o600,
            f"{CERTS}/server.pem": 0o000,
            f"{CERTS}/privkey.pem": 0o400,
            f"{CERTS}/server-ssh.pem": 0o640,
            f"{CERTS}/client.pem": 0o2644,
            f"{CERTS}/clientprivkey.pem": 0o4440,
            CONFIG: 0o604,
        }
        for rel, mode in odd.items():
            os.chmod(node / rel, mode)
        fs.create_file(node / "persistent/.cert-migration/journal.json", contents=b"{}", st_mode=stat.S_IFREG | 0o600)
        before = read_tree(node)
        snap = scan(Layout.for_node(node))
        scan(Layout.for_node(node))
        assert diff_trees(before, read_tree(node)) == []
        assert {rel: stat.S_IMODE(os.lstat(node / rel).st_mode) for rel in odd} == odd
        assert snap.files["server.pem"].mode == 0o000 and snap.files["server.pem"].data is not None

    def test_scan_writes_nothing(self, place, ident):
        """Scanning changes nothing on disk: no state directory, no lock, no byte, mode or owner."""
        node = make_node(place, ident, settings={policy.RETIRED_SETTING: "On"})
        before = read_tree(node)
        scan(Layout.for_node(node))
        assert diff_trees(before, read_tree(node)) == []

    def test_unreadable_file(self, fs, ident, monkeypatch):
        """A managed file whose open is refused is unreadable; the other files are still read."""
        node = make_node(Path("/n"), ident)
        target = node / CERTS / "privkey.pem"
        real_open = scan_os().open

        def refuse(path, *a, **kw):
            if Path(path) == target or (os.fspath(path) == target.name and "dir_fd" in kw):  # read relative to its dir
                raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
            return real_open(path, *a, **kw)

        monkeypatch.setattr(scan_os(), "open", refuse)
        snap = scan(Layout.for_node(node))
        assert (snap.files["privkey.pem"].kind, snap.files["privkey.pem"].data) == ("unreadable", None)
        assert snap.files["server.pem"].kind == "file"

    @pytest.mark.parametrize(
        "make, error_id",
        [
            pytest.param(lambda fs: None, "node-missing", id="missing"),
            pytest.param(lambda fs: fs.create_file("/n"), "node-not-directory", id="a-file"),
        ],
    )
    def test_no_node(self, fs, make, error_id):
        """A node root that is missing or not a directory is a NodeError with a hint."""
        make(fs)
        with pytest.raises(NodeError) as info:
            scan(Layout.for_node("/n"))
        assert info.value.id == error_id
        assert info.value.hint

    def test_staging_files(self, fs, ident):
        """Staging files beside the client files and the configuration are listed; other dot files are not."""
        node = make_node(Path("/n"), ident)
        for rel in (
            f"{CERTS}/.client.pem{policy.TEMP_SUFFIX}",
            f"{CERTS}/.client-ssh.pem{policy.TEMP_SUFFIX}",
            f"persistent/.xconfiguration.txt{policy.TEMP_SUFFIX}",
            f"{CERTS}/.server.pem{policy.TEMP_SUFFIX}",
            f"{CERTS}/.hidden",
        ):
            fs.create_file(node / rel, contents=b"partial")
        snap = scan(Layout.for_node(node))
        assert [t.path for t in snap.temps] == [
            f"{CERTS}/.client.pem{policy.TEMP_SUFFIX}",
            f"{CERTS}/.client-ssh.pem{policy.TEMP_SUFFIX}",
            f"persistent/.xconfiguration.txt{policy.TEMP_SUFFIX}",
        ]

    def test_journal_read(self, fs, ident):
        """The journal is read and validated: a well-formed one is a record; garbage or a non-object is a reason."""
        node = make_node(Path("/n"), ident)
        fs.create_file(node / "persistent/.cert-migration/journal.json", contents=empty_journal("applying"))
        os.chmod(node / "persistent/.cert-migration/journal.json", 0o600)
        snap = scan(Layout.for_node(node))
        assert (snap.journal_problem, snap.journal_record.state) == (None, "applying")
        write_file(node / "persistent/.cert-migration/journal.json", b'["state"]')
        assert scan(Layout.for_node(node)).journal_problem == "the journal is not an object"
        write_file(node / "persistent/.cert-migration/journal.json", b"\xff{")
        again = scan(Layout.for_node(node))
        assert again.journal_record is None and again.journal_problem == "it is not JSON"

    def test_cert_dir_outside_node(self, fs, ident):
        """With --cert-dir and --config outside the node, paths are absolute and the outside directory is checked."""
        node = make_node(Path("/n"), ident)
        os.rename(node / CERTS, "/elsewhere")
        os.rename(node / CONFIG, "/etc-xconf.txt")
        layout = Layout.for_node(node, cert_dir="/elsewhere", config="/etc-xconf.txt")
        snap = scan(layout)
        assert (snap.files["server.pem"].path, snap.files["server.pem"].kind) == ("/elsewhere/server.pem", "file")
        assert (snap.config.path, snap.config.kind) == ("/etc-xconf.txt", "file")
        assert (snap.dirs[0].path, snap.dirs[0].kind) == ("/elsewhere", "dir")
        # The outside directories by their absolute paths; the state directory's parent inside the node.
        assert [(d.path, d.kind) for d in snap.dirs] == [("/elsewhere", "dir"), ("/", "dir"), ("persistent", "dir")]
        assert snap.journal.path == "persistent/.cert-migration/journal.json"

    def test_symlinked_cert_dir_reported(self, fs, ident):
        """A symlinked persistent/certs shows up as a symlink among the directories (for directory-not-safe)."""
        node = make_node(Path("/n"), ident)
        os.rename(node / CERTS, "/elsewhere")
        os.symlink("/elsewhere", node / CERTS)
        snap = scan(Layout.for_node(node))
        assert [(d.path, d.kind) for d in snap.dirs] == [("persistent", "dir"), (CERTS, "symlink")]

    def test_euid_from_os(self, fs, ident, monkeypatch):
        """Snapshot.euid is the effective uid the scan ran with."""
        make_node(Path("/n"), ident)
        monkeypatch.setattr(scan_os(), "geteuid", lambda: 4321)
        assert scan(Layout.for_node("/n")).euid == 4321


class TestFingerprint:
    def test_state_dir_appearing_keeps_it(self, place, ident):
        """Creating the state directory and its lock (as apply's lock does) leaves the fingerprint unchanged."""
        node = make_node(place, ident)
        layout = Layout.for_node(node)
        before = scan(layout).fingerprint
        os.mkdir(layout.state_dir, 0o700)
        write_file(layout.lock, b"")
        assert scan(layout).fingerprint == before

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(lambda node: os.chmod(node / CERTS / "privkey.pem", 0o400), id="key-mode"),
            pytest.param(lambda node: os.chown(node / CERTS / "server.pem", 4321, 4321), id="cert-owner"),
            pytest.param(
                lambda node: write_file(node / CONFIG, b"*c xConfiguration SIP Mode: On\n"), id="config-bytes"
            ),
            pytest.param(
                lambda node: os.link(node / CERTS / "privkey.pem", node / "persistent/key-link"), id="hard-link"
            ),
            pytest.param(
                lambda node: (
                    os.mkdir(node / policy.STATE_DIR),
                    write_file(node / policy.STATE_DIR / "journal.json", b"{}"),
                ),
                id="journal",
            ),
            pytest.param(lambda node: write_file(node / CERTS / "client.pem", b"x"), id="client-file"),
            pytest.param(lambda node: os.chmod(node / CERTS, 0o700), id="cert-dir-mode"),
        ],
    )
    def test_changes(self, fs, ident, change):
        """A change of bytes, mode, owner or links of what the plan reads changes the fingerprint."""
        node = make_node(Path("/n"), ident)
        before = scan(Layout.for_node(node)).fingerprint
        change(node)
        assert scan(Layout.for_node(node)).fingerprint != before

    def test_independent_of_root(self, fs, ident):
        """The same tree at two roots has the same fingerprint (paths are relative to the node)."""
        tree = node_tree(NodeSpec(identity=ident))
        write_tree(tree, "/a")
        write_tree(tree, "/b")
        assert scan(Layout.for_node("/a")).fingerprint == scan(Layout.for_node("/b")).fingerprint
