"""Tests for migrate.acl and the ACL checks: POSIX ACLs, not only mode bits, decide who can read a key.

The parser is tested on hand-built blobs; the checks on pyfakefs (xattr bytes
set with ``os.setxattr``) and on a real directory with the real ``setfacl``;
what a default ACL does to a new file only on a real file system, as user
65534 in a forked child.
"""

from __future__ import annotations

import errno
import json
import os
import shlex
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from support import CERTS, STATE, clean_migration, plant, scenario, verify_ids

from migrate import acl, checks, dirs, facts, fsops, policy, writer
from migrate.acl import GROUP, GROUP_OBJ, MASK, OTHER, USER, USER_OBJ, AclEntry
from migrate.errors import BlockedError, PlanError
from migrate.plan import load_saved_plan, make_plan
from migrate.scan import Layout, read_acl, scan
from migrate.testing.tree import diff_trees, read_tree

NOBODY = 65534
UNDEFINED = 0xFFFFFFFF  # the id the kernel stores in an entry that names nobody
R, W, X = 4, 2, 1
KEY = f"{CERTS}/privkey.pem"
CLIENT_KEY = f"{CERTS}/clientprivkey.pem"
SSH = f"{CERTS}/server-ssh.pem"
CONFIG_DIR = "persistent"
# What `setfacl -m u:65534:r` left on a 0644 file, read back from ext4 with os.getxattr.
KERNEL_BLOB = bytes.fromhex("0200000001000600ffffffff02000400feff000004000400ffffffff10000400ffffffff20000400ffffffff")


def blob(*entries: tuple[int, int, int | None], version: int = 2) -> bytes:
    """The xattr bytes of an ACL with ``entries`` (tag, perm, id or None), in the kernel's binary form."""
    head = struct.pack("<I", version)
    return head + b"".join(struct.pack("<HHI", t, p, UNDEFINED if i is None else i) for t, p, i in entries)


def base(mode: int) -> list[tuple[int, int, int | None]]:
    """The owner, owning-group and other entries of ``mode``."""
    return [(USER_OBJ, mode >> 6 & 7, None), (GROUP_OBJ, mode >> 3 & 7, None), (OTHER, mode & 7, None)]


def specs(entries) -> list[str]:
    return [e.spec for e in entries]


def setfacl_blob(mode: int, spec: str) -> bytes:
    """The blob ``setfacl -m SPEC`` makes of a file or directory of ``mode``: named entries, and a mask unless given."""
    named, mask = [], None
    for item in spec.split(","):
        kind, ident, perm = item.split(":")
        bits = sum(b for c, b in (("r", R), ("w", W), ("x", X)) if c in perm)
        if kind == "m":
            mask = bits
        else:
            named.append((USER if kind == "u" else GROUP, bits, int(ident)))
    if mask is None:  # setfacl recalculates it: the union of the group class
        mask = mode >> 3 & 7
        for _, bits, _ in named:
            mask |= bits
    user_obj, group_obj, other = base(mode)
    users = [e for e in named if e[0] == USER]
    groups = [e for e in named if e[0] == GROUP]
    return blob(user_obj, *users, group_obj, *groups, (MASK, mask, None), other)


# --- The parser: plain data ---------------------------------------------------------------------

PARSE_CASES = [
    # id, blob, named readers through the mask, named readers whatever the mask
    pytest.param(blob(*base(0o440)), [], [], id="owner-only"),
    pytest.param(KERNEL_BLOB, ["u:65534"], ["u:65534"], id="kernel-named-user"),
    pytest.param(
        blob((USER_OBJ, R, None), (USER, R, NOBODY), (GROUP_OBJ, R, None), (MASK, R, None), (OTHER, 0, None)),
        ["u:65534"],
        ["u:65534"],
        id="named-user-with-mask",
    ),
    pytest.param(
        blob((USER_OBJ, R, None), (USER, R, NOBODY), (GROUP_OBJ, R, None), (OTHER, 0, None)),
        ["u:65534"],
        ["u:65534"],
        id="named-user-without-mask",
    ),
    pytest.param(
        blob((USER_OBJ, R, None), (USER, R, NOBODY), (GROUP_OBJ, R, None), (MASK, 0, None), (OTHER, 0, None)),
        [],
        ["u:65534"],
        id="mask-hides-read",
    ),
    pytest.param(
        blob((USER_OBJ, R, None), (USER, R | W, NOBODY), (GROUP_OBJ, 0, None), (MASK, W | X, None), (OTHER, 0, None)),
        [],
        ["u:65534"],
        id="mask-without-read",
    ),
    pytest.param(
        blob((USER_OBJ, R, None), (USER, W | X, NOBODY), (GROUP_OBJ, 0, None), (MASK, 7, None), (OTHER, 0, None)),
        [],
        [],
        id="named-user-without-read",
    ),
    pytest.param(
        blob((USER_OBJ, R, None), (GROUP_OBJ, R, None), (GROUP, R, 4242), (MASK, R, None), (OTHER, 0, None)),
        ["g:4242"],
        ["g:4242"],
        id="named-group",
    ),
    pytest.param(
        blob((USER_OBJ, 6, None), (GROUP_OBJ, 7, None), (MASK, 7, None), (OTHER, 4, None)),
        [],
        [],
        id="owning-group-and-other-are-not-named",
    ),
    pytest.param(
        blob(
            (USER_OBJ, R, None),
            (USER, R, NOBODY),
            (USER, 0, 1000),
            (GROUP_OBJ, 0, None),
            (GROUP, R, 4242),
            (GROUP, 7, 5),
            (MASK, R | X, None),
            (OTHER, 0, None),
        ),
        ["u:65534", "g:4242", "g:5"],
        ["u:65534", "g:4242", "g:5"],
        id="several",
    ),
]

MALFORMED = [
    pytest.param(b"", id="empty"),
    pytest.param(b"\x02\x00\x00", id="short-header"),
    pytest.param(blob(*base(0o440), version=1), id="version-1"),
    pytest.param(blob(*base(0o440), version=3), id="version-3"),
    pytest.param(blob(*base(0o440))[:-3], id="truncated-entry"),
    pytest.param(blob(*base(0o440)) + b"\x00", id="trailing-byte"),
    pytest.param(blob((USER_OBJ, R, None), (0x40, R, None), (OTHER, 0, None)), id="unknown-tag"),
    pytest.param(blob((USER_OBJ, R, None), (USER, 8 | R, NOBODY), (MASK, R, None)), id="perm-out-of-range"),
    pytest.param(blob((USER, R, NOBODY), (MASK, R, None), (MASK, 0, None)), id="two-masks"),
    pytest.param(blob(*[(USER, R, i) for i in range(acl.MAX_ACL_BYTES // 8)]), id="over-the-cap"),
]


class TestParse:
    @pytest.mark.parametrize(("data", "masked", "unmasked"), PARSE_CASES)
    def test_named_readers(self, data, masked, unmasked):
        """The named users and groups that can read are those whose entry grants r through the mask (or at all, unmasked)."""
        parsed = acl.parse(data)
        assert parsed.error is None
        assert specs(parsed.readers()) == masked
        assert specs(parsed.readers(masked=False)) == unmasked

    @pytest.mark.parametrize("data", MALFORMED)
    def test_malformed_is_an_error_not_an_exception(self, data):
        """Bytes that are not a version-2 ACL give an Acl with an error, no entries and no readers."""
        parsed = acl.parse(data)
        assert parsed.error
        assert parsed.entries == ()
        assert parsed.readers() == () and parsed.readers(masked=False) == ()
        assert parsed.as_text().startswith("unparseable: ")

    def test_entries_in_getfacl_form(self):
        """The kernel's blob reads back as getfacl prints it, ids only on named entries."""
        parsed = acl.parse(KERNEL_BLOB)
        assert parsed.as_text() == "user::rw-,user:65534:r--,group::r--,mask::r--,other::r--"
        assert parsed.entries[1] == AclEntry(USER, R, NOBODY)
        assert parsed.entries[0].id is None and parsed.mask == R

    def test_largest_blob_parses_in_linear_time(self):
        """The largest ACL the kernel allows (8191 entries) parses, every entry kept, well within a second."""
        count = (acl.MAX_ACL_BYTES - 4) // 8
        data = blob(*[(GROUP, R, i) for i in range(count)])
        started = time.perf_counter()
        parsed = acl.parse(data)
        elapsed = time.perf_counter() - started
        assert parsed.error is None and len(parsed.readers()) == count
        assert elapsed < 1.0


# --- Fixtures: a node in pyfakefs or in a real directory ------------------------------------------


@pytest.fixture
def setfacl() -> str:
    """The real setfacl: required, never skipped (apt-get install acl)."""
    path = shutil.which("setfacl")
    assert path, "setfacl is missing: install the acl package (apt-get install acl)"
    return path


@pytest.fixture
def real_base():
    """A real directory that user 65534 can traverse (pytest's tmp_path parent is 0700), removed afterwards."""
    path = tempfile.mkdtemp(dir="/tmp", prefix="acl-test-")
    os.chmod(path, 0o755)
    yield Path(path)
    shutil.rmtree(path)


class Node:
    """A node root, and how to put an ACL on one of its paths: setfacl for real, the xattr bytes in pyfakefs."""

    def __init__(self, root: Path, setfacl: str | None):
        self.root = root
        self.setfacl = setfacl

    @property
    def layout(self) -> Layout:
        return Layout.for_node(self.root)

    def grant(self, rel: str, spec: str, *, default: bool = False) -> None:
        path = self.root / rel
        if self.setfacl is not None:
            subprocess.run([self.setfacl, *(["-d"] if default else []), "-m", spec, path], check=True)
        else:
            name = acl.DEFAULT if default else acl.ACCESS
            os.setxattr(path, name, setfacl_blob(os.lstat(path).st_mode & 0o777, spec))

    def findings(self, severity: str = checks.BLOCKER) -> list[checks.Finding]:
        return [f for f in checks.precheck(facts.analyse(scan(self.layout))) if f.severity == severity]


@pytest.fixture(params=["fake", "real"])
def node(request, real_base) -> Node:
    """The core scenario's X15.4 node: in pyfakefs, or in a real directory (ACLs set with setfacl)."""
    if request.param == "fake":
        request.getfixturevalue("fs")
        root, tool = Path("/srv/node"), None
    else:
        root, tool = real_base / "node", request.getfixturevalue("setfacl")
    plant(scenario("core"), root)
    return Node(root, tool)


@pytest.fixture
def real_node(real_base, setfacl) -> Node:
    """The core scenario's X15.4 node in a real directory that user 65534 can traverse."""
    root = real_base / "node"
    plant(scenario("core"), root)
    return Node(root, setfacl)


def ids(findings) -> list[str]:
    return [f.id for f in findings]


def only(findings, id: str) -> checks.Finding:
    found = [f for f in findings if f.id == id]
    assert len(found) == 1, ids(findings)
    return found[0]


def command_of(hint: str) -> list[str]:
    """The shell command a hint starts with (up to its first ``; ``)."""
    return shlex.split(hint.split("; ")[0])


def can_read_as(uid: int, path: Path) -> bool:
    """Whether user ``uid`` (no supplementary groups) can open ``path`` for reading: tried for real in a child."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 2
        try:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            try:
                with open(path, "rb") as f:
                    f.read(1)
                code = 0
            except PermissionError:
                code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 1), f"the child could not try to read {path} as uid {uid} (exit {code})"
    return code == 0


def access_acl_on_disk(path: Path) -> bytes | None:
    """The access ACL xattr of ``path`` as stored, None when there is none."""
    try:
        return os.getxattr(path, acl.ACCESS, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        return None


def default_acl_on_disk(path: Path) -> bytes | None:
    try:
        return os.getxattr(path, acl.DEFAULT, follow_symlinks=False)
    except OSError as exc:
        if exc.errno != errno.ENODATA:
            raise
        return None


# --- read_acl and clear_acls --------------------------------------------------------------------


class TestReadAcl:
    def test_none_without_an_acl(self, node):
        """A file and a directory without ACLs read as None, access and default alike."""
        assert read_acl(node.root / KEY) is None
        assert read_acl(node.root / CERTS, default=True) is None

    def test_reads_access_and_default_apart(self, node):
        """The access ACL of a file and the default ACL of a directory are read from their own attributes."""
        node.grant(KEY, "u:65534:r")
        node.grant(CERTS, "g:4242:r", default=True)
        assert specs(read_acl(node.root / KEY).readers()) == ["u:65534"]
        assert read_acl(node.root / KEY, default=True) is None
        assert specs(read_acl(node.root / CERTS, default=True).readers(masked=False)) == ["g:4242"]
        assert read_acl(node.root / CERTS) is None

    def test_relative_to_a_directory_descriptor(self, node):
        """With dir_fd the name is read relative to the held directory; a symlink there has no ACL."""
        node.grant(KEY, "u:65534:r")
        os.symlink("privkey.pem", node.root / CERTS / "link.pem")
        dir_fd = os.open(node.root / CERTS, os.O_RDONLY | os.O_DIRECTORY)
        try:
            assert specs(read_acl("privkey.pem", dir_fd=dir_fd).readers()) == ["u:65534"]
            assert read_acl("link.pem", dir_fd=dir_fd) is None
            assert read_acl("server.pem", dir_fd=dir_fd) is None
        finally:
            os.close(dir_fd)

    @pytest.mark.parametrize("code", [errno.ENOTSUP, errno.EOPNOTSUPP, errno.ENODATA])
    def test_no_acl_support_is_no_acl(self, tmp_path, monkeypatch, code):
        """A file system without ACLs (ENOTSUP/EOPNOTSUPP) reads as no ACL, like ENODATA."""
        target = tmp_path / "f"
        target.write_bytes(b"")

        def refuse(*args, **kwargs):
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "getxattr", refuse)
        assert read_acl(target) is None

    def test_other_errors_are_raised(self, tmp_path, monkeypatch):
        """An I/O error reading the attribute is raised, not taken to mean there is no ACL."""
        target = tmp_path / "f"
        target.write_bytes(b"")

        def fail(*args, **kwargs):
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        monkeypatch.setattr(os, "getxattr", fail)
        with pytest.raises(OSError) as caught:
            read_acl(target)
        assert caught.value.errno == errno.EIO


class TestClearAcls:
    def test_removes_a_files_access_acl(self, node):
        """clear_acls on a file's descriptor leaves it without an access ACL."""
        node.grant(KEY, "u:65534:r")
        fd = os.open(node.root / KEY, os.O_RDONLY)
        try:
            fsops.clear_acls(fd)
        finally:
            os.close(fd)
        assert access_acl_on_disk(node.root / KEY) is None

    def test_removes_a_directorys_access_and_default_acls(self, real_node):
        """clear_acls(directory=True) removes both ACLs of a directory; without it the default ACL stays."""
        path = real_node.root / CERTS
        real_node.grant(CERTS, "u:65534:rx")
        real_node.grant(CERTS, "u:65534:r", default=True)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fsops.clear_acls(fd)
            assert access_acl_on_disk(path) is None and default_acl_on_disk(path) is not None
            fsops.clear_acls(fd, directory=True)
        finally:
            os.close(fd)
        assert access_acl_on_disk(path) is None and default_acl_on_disk(path) is None

    def test_nothing_to_remove_is_fine(self, real_node):
        """A file and a directory without ACLs are left as they were, without an error."""
        before = read_tree(real_node.root)
        for rel, directory in ((KEY, False), (CERTS, True)):
            fd = os.open(real_node.root / rel, os.O_RDONLY)
            try:
                fsops.clear_acls(fd, directory=directory)
            finally:
                os.close(fd)
        assert diff_trees(before, read_tree(real_node.root)) == []

    def test_no_acl_support_is_ignored_other_errors_raised(self, tmp_path, monkeypatch):
        """EOPNOTSUPP from removexattr is ignored; EIO is raised."""
        codes = iter([errno.EOPNOTSUPP, errno.EIO])

        def fail(*args, **kwargs):
            code = next(codes)
            raise OSError(code, os.strerror(code))

        monkeypatch.setattr(os, "removexattr", fail)
        fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            with pytest.raises(OSError) as caught:
                fsops.clear_acls(fd, directory=True)
        finally:
            os.close(fd)
        assert caught.value.errno == errno.EIO


# --- Scan ---------------------------------------------------------------------------------------


class TestScan:
    def test_records_key_and_directory_acls_only(self, node):
        """The scan records the ACL of a key and the default ACLs of the two directories, not a certificate's ACL."""
        node.grant(KEY, "u:65534:r")
        node.grant(f"{CERTS}/server.pem", "u:65534:r")
        node.grant(CERTS, "g:4242:r", default=True)
        node.grant(CONFIG_DIR, "u:65534:r", default=True)
        snap = scan(node.layout)
        assert specs(snap.files["privkey.pem"].acl.readers()) == ["u:65534"]
        assert snap.files["server.pem"].acl is None and snap.files["server-ssh.pem"].acl is None
        assert sorted(snap.default_acls) == [CONFIG_DIR, CERTS]
        assert specs(snap.default_acls[CERTS].readers(masked=False)) == ["g:4242"]

    def test_reading_acls_changes_nothing(self, node):
        """Scanning a node whose keys and directories carry ACLs leaves every byte, mode, owner and ACL as it was."""
        node.grant(KEY, "u:65534:r")
        node.grant(SSH, "g:4242:r")
        node.grant(CERTS, "u:65534:r", default=True)
        before = read_tree(node.root)
        acls = [access_acl_on_disk(node.root / KEY), access_acl_on_disk(node.root / SSH)]
        scan(node.layout)
        assert diff_trees(before, read_tree(node.root)) == []
        assert [access_acl_on_disk(node.root / KEY), access_acl_on_disk(node.root / SSH)] == acls

    def test_one_getxattr_per_key_and_directory(self, real_node, monkeypatch):
        """The scan asks for an ACL once per secret file present (2 on this node) and once per directory (2): no more."""
        asked = []
        real_getxattr = os.getxattr

        def counting(path, attribute, *args, **kwargs):
            asked.append(attribute)
            return real_getxattr(path, attribute, *args, **kwargs)

        monkeypatch.setattr(os, "getxattr", counting)
        scan(real_node.layout)
        assert sorted(asked) == sorted([acl.ACCESS, acl.ACCESS, acl.DEFAULT, acl.DEFAULT])

    def test_an_acl_changes_the_fingerprint(self, node):
        """A key's ACL or a directory's default ACL appearing or changing, even granting no one, changes the fingerprint."""
        before = read_tree(node.root)
        prints = [scan(node.layout).fingerprint]
        for rel, spec, default in (
            (KEY, "u:65534:-", False),  # the mask stays r: the mode is unchanged, only the ACL is new
            (KEY, "u:1000:-", False),  # another entry, same mode
            (CERTS, "u:65534:-", True),
            (CERTS, "g:4242:-", True),
        ):
            node.grant(rel, spec, default=default)
            prints.append(scan(node.layout).fingerprint)
        assert diff_trees(before, read_tree(node.root)) == []
        assert len(set(prints)) == len(prints)

    def test_acl_added_between_plan_and_apply_is_refused(self, node):
        """A saved plan is refused (plan-stale) when a key got an ACL since, and the node is left as it was."""
        layout = node.layout
        saved = load_saved_plan(json.dumps(make_plan(facts.analyse(scan(layout))).as_dict()).encode(), "plan.json")
        before = read_tree(node.root)
        node.grant(KEY, "u:65534:-")  # grants nothing: not a blocker, and the mode is unchanged, but not the node planned
        assert diff_trees(before, read_tree(node.root)) == []
        with pytest.raises(PlanError):
            writer.apply(layout, saved_plan=saved)
        assert diff_trees(before, read_tree(node.root)) == []


# --- Checks: key-acl ----------------------------------------------------------------------------


class TestKeyAcl:
    def test_named_reader_blocks_precheck_and_apply(self, node, run):
        """privkey.pem readable by user 65534 through an ACL: precheck exits 1 with key-acl, and apply changes nothing."""
        node.grant(KEY, "u:65534:r")
        code, out, _ = run("precheck", node.root, "--format", "json")
        assert code == 1
        found = [f for f in json.loads(out)["findings"] if f["id"] == "key-acl"]
        assert [(f["severity"], f["path"]) for f in found] == [("blocker", KEY)]
        assert "user 65534" in found[0]["message"]
        assert found[0]["hint"].startswith(f"setfacl -x u:65534 {KEY}; ")
        before = read_tree(node.root)
        with pytest.raises(BlockedError):
            writer.apply(node.layout)
        assert diff_trees(before, read_tree(node.root)) == []

    def test_named_group_on_the_ssh_bundle(self, node):
        """A named group that can read server-ssh.pem is a key-acl blocker naming that group."""
        node.grant(SSH, "g:4242:r")
        finding = only(node.findings(), "key-acl")
        assert finding.path == SSH and "group 4242" in finding.message

    def test_copied_key_given_an_acl_fails_verify(self, node, run, capsys):
        """On a migrated node, clientprivkey.pem given an ACL afterwards makes verify fail with key-acl."""
        migrated = Node(node.root.with_name("migrated"), node.setfacl)
        clean_migration(scenario("core"), migrated.root)
        assert verify_ids(migrated.root) == []
        migrated.grant(CLIENT_KEY, "u:65534:r")
        assert "key-acl" in verify_ids(migrated.root)
        capsys.readouterr()  # apply's log records, printed by structlog's default configuration
        code, out, _ = run("verify", migrated.root, "--format", "json")
        assert code == 1
        assert [f["path"] for f in json.loads(out)["findings"] if f["id"] == "key-acl"] == [CLIENT_KEY]

    @pytest.mark.parametrize(
        "spec",
        [
            pytest.param("u:65534:r,m::-", id="mask-hides-it"),
            pytest.param("u:65534:w", id="write-only"),
            pytest.param("g:0:r", id="the-owning-group"),
            pytest.param("u:0:r", id="the-owner"),
        ],
    )
    def test_acl_granting_no_one_else_read_is_no_blocker(self, node, spec):
        """An ACL whose named entries give no one but the owner and owning group read is not a key-acl."""
        node.grant(KEY, spec)
        assert "key-acl" not in ids(node.findings())

    def test_unparseable_acl_on_a_key(self, fs):
        """Bytes in a key's ACL attribute that are not an ACL are a key-acl blocker that says so (pyfakefs only)."""
        root = Path("/srv/node")
        plant(scenario("core"), root)
        os.setxattr(root / KEY, acl.ACCESS, b"\x02\x00\x00\x00garbage")
        finding = only(checks.precheck(facts.analyse(scan(Layout.for_node(root)))), "key-acl")
        assert finding.severity == checks.BLOCKER and "cannot be parsed" in finding.message
        assert finding.hint.startswith(f"setfacl -b {KEY}; ")

    def test_the_hint_fixes_it(self, real_node):
        """Running the hint's setfacl command in the node root removes the key-acl blocker."""
        real_node.grant(KEY, "u:65534:r,g:4242:r")
        finding = only(real_node.findings(), "key-acl")
        assert "user 65534 and group 4242" in finding.message
        assert can_read_as(NOBODY, real_node.root / KEY)
        subprocess.run(command_of(finding.hint), cwd=real_node.root, check=True)
        assert "key-acl" not in ids(real_node.findings())
        assert not can_read_as(NOBODY, real_node.root / KEY)


# --- Checks: directory-default-acl --------------------------------------------------------------


class TestDirectoryDefaultAcl:
    def test_cert_dir_default_blocks_and_apply_creates_nothing(self, node, run):
        """A default ACL letting user 65534 read new files in persistent/certs blocks precheck and apply creates nothing."""
        node.grant(CERTS, "u:65534:r", default=True)
        code, out, _ = run("precheck", node.root, "--format", "json")
        assert code == 1
        found = [f for f in json.loads(out)["findings"] if f["id"] == "directory-default-acl"]
        assert [(f["severity"], f["path"]) for f in found] == [("blocker", CERTS)]
        assert "user 65534" in found[0]["message"] and found[0]["hint"] == f"setfacl -d -x u:65534 {CERTS}"
        before = read_tree(node.root)
        with pytest.raises(BlockedError):
            writer.apply(node.layout)
        assert diff_trees(before, read_tree(node.root)) == []
        assert not (node.root / STATE).exists()

    def test_config_dir_default_blocks(self, node):
        """A default ACL on the configuration's directory, where the state directory goes, is a blocker there."""
        node.grant(CONFIG_DIR, "g:4242:r", default=True)
        finding = only(node.findings(), "directory-default-acl")
        assert finding.path == CONFIG_DIR and "group 4242" in finding.message

    def test_the_mask_does_not_protect(self, node):
        """A default ACL whose mask hides the named entry still blocks: the new file's chmod switches it on."""
        node.grant(CERTS, "u:65534:r,m::-", default=True)
        assert only(node.findings(), "directory-default-acl").path == CERTS

    def test_the_mask_does_not_protect_for_real(self, real_node):
        """Under a default ACL u:65534:r with mask ---, a key created 0400 and then chmod 0440 is readable by 65534."""
        real_node.grant(CERTS, "u:65534:r,m::-", default=True)
        path = real_node.root / CERTS / "probe.pem"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o400)
        try:
            assert not can_read_as(NOBODY, path)
            os.chmod(fd, 0o440)
        finally:
            os.close(fd)
        assert can_read_as(NOBODY, path)

    def test_default_without_named_entries_is_fine(self, real_node):
        """A default ACL of only the owner, group and other entries is no blocker."""
        real_node.grant(CERTS, "o::-", default=True)
        assert default_acl_on_disk(real_node.root / CERTS) is not None
        assert "directory-default-acl" not in ids(real_node.findings())

    def test_unparseable_default_acl(self, fs):
        """Bytes in a directory's default ACL attribute that are not an ACL are a blocker naming the directory."""
        root = Path("/srv/node")
        plant(scenario("core"), root)
        os.setxattr(root / CERTS, acl.DEFAULT, blob(*base(0o755), version=7))
        finding = only(checks.precheck(facts.analyse(scan(Layout.for_node(root)))), "directory-default-acl")
        assert finding.path == CERTS and "cannot be parsed" in finding.message
        assert finding.hint == f"setfacl -k {CERTS}"

    def test_the_hint_fixes_it(self, real_node):
        """Running the hint's setfacl command removes the blocker, and apply then migrates the node."""
        real_node.grant(CERTS, "u:65534:r,g:4242:r", default=True)
        subprocess.run(command_of(only(real_node.findings(), "directory-default-acl").hint), cwd=real_node.root, check=True)
        assert "directory-default-acl" not in ids(real_node.findings())
        assert writer.apply(real_node.layout).result == "migrated"
        assert can_read_as(NOBODY, real_node.root / CERTS / "server.pem")  # the control: 65534 reaches the directory
        assert not can_read_as(NOBODY, real_node.root / CLIENT_KEY)


# --- The writer: what it creates carries no inherited ACL (wired by fsops, not by this module) --------


class TestWriterClearsInheritedAcls:
    def test_created_key_has_no_acl_and_nobody_cannot_read_it(self, real_node):
        """With the precheck bypassed, a 0440 key created under a default ACL u:65534:r has no ACL and 65534 cannot read it."""
        real_node.grant(CERTS, "u:65534:r", default=True)
        assert can_read_as(NOBODY, real_node.root / CERTS / "server.pem")  # the control: 65534 reaches the directory
        held = dirs.open_node(str(real_node.root))
        try:
            _, certs = dirs.walk(held, str(real_node.root / CERTS))
            fsops.create_file(certs, "clientprivkey.pem", (real_node.root / KEY).read_bytes(), mode=0o440, uid=0, gid=0)
        finally:
            held.close()
        path = real_node.root / CLIENT_KEY
        st = os.lstat(path)
        assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o440, 0, 0)
        assert access_acl_on_disk(path) is None
        assert not can_read_as(NOBODY, path)

    def test_state_directory_and_backup_carry_no_acl(self, real_node):
        """With the precheck bypassed, the state directory and a file in it inherit no ACL from persistent/'s default ACL."""
        real_node.grant(CONFIG_DIR, "u:65534:rwx", default=True)
        name = Path(STATE).name
        held = dirs.open_node(str(real_node.root))
        try:
            _, persistent = dirs.walk(held, str(real_node.root / CONFIG_DIR))
            assert fsops.make_dir(persistent, name, 0o700)
            state = held.add(dirs.open_child(persistent, name))
            fsops.replace_file(state, policy.CONFIG_BACKUP_NAME, b"*c xConfiguration A: B\n", mode=0o600)
        finally:
            held.close()
        path = real_node.root / STATE
        assert (os.lstat(path).st_mode & 0o7777) == 0o700
        assert access_acl_on_disk(path) is None and default_acl_on_disk(path) is None
        assert access_acl_on_disk(path / policy.CONFIG_BACKUP_NAME) is None
