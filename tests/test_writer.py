"""Tests for migrate.writer: apply and rollback, judged by the tree they leave (pyfakefs and a real directory)."""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import os
import re

import attrs
import pytest
from pyfakefs.fake_filesystem_unittest import Patcher

from migrate import checks, fsops, journal, writer
from migrate.errors import (
    ApplyError,
    BlockedError,
    LockError,
    PlanError,
    PrivilegeError,
    RollbackError,
)
from migrate.factory import NodeSpec, issue, make_ca, node_tree
from migrate.plan import load_saved_plan, make_plan
from migrate.scan import Layout, scan
from migrate.tree import Entry, Tree, diff_trees, read_tree, write_tree

# --- The node, as these tests expect it (written out here, not taken from migrate.policy) ---

CERTS = "persistent/certs"
CONFIG = "persistent/xconfiguration.txt"
STATE = "persistent/.cert-migration"
JOURNAL = f"{STATE}/journal.json"
BACKUP = f"{STATE}/xconfiguration.orig"
LOCK = f"{STATE}/lock"
STAGING_SUFFIX = ".cert-migration.tmp"
RETIRED = "XCP TLS Certificate CVS EnableServerEkuUpload"
CHECKING_LINE = b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On"

# client file -> (counterpart, policy mode)
CLIENT_FILES = {
    "client.pem": ("server.pem", 0o644),
    "clientprivkey.pem": ("privkey.pem", 0o440),
    "client-ssh.pem": ("server-ssh.pem", 0o600),
}
# Files of the certificate store that hold a private key, with their policy modes.
KEY_MODES = {"privkey.pem": 0o440, "clientprivkey.pem": 0o440, "server-ssh.pem": 0o600, "client-ssh.pem": 0o600}
NOBODY, PFWD = 65534, 1001
EDGE_UIDS = {"root": 0, "_nobody": 4001, "_pfwd": 4002}

# What a clean apply adds to an X15.4 node (besides changing the configuration's bytes).
ADDED_BY_APPLY = {STATE, JOURNAL, BACKUP, LOCK, *(f"{CERTS}/{name}" for name in CLIENT_FILES)}

SCENARIOS = ("core", "edge", "edge-crlf")

# A configuration tail with the retired setting a second time, bytes that are not UTF-8, and a
# last line without a newline.
MESSY_TAIL = (
    b"# operator note: caf\xe9 \xff\xfe (not UTF-8)\n"
    b'*c xConfiguration XCP TLS Certificate CVS EnableServerEkuUpload: "On"\n'
    b'*c xConfiguration Zz Operator Note: "last line, no newline"'
)


@functools.cache
def scenario(name: str) -> Tree:
    """The X15.4 node tree of a named scenario, built once per test session."""
    if name == "core":
        return node_tree(NodeSpec(role="core"))
    if name == "edge":
        public = make_ca("Example Public CA2", public=True)
        identity = issue(public, "edge.example.com", eku=["serverAuth"])
        return node_tree(NodeSpec(role="edge", identity=identity, settings={RETIRED: "On"}, uids=EDGE_UIDS))
    if name == "edge-crlf":
        public = make_ca("Example Public CA2", public=True)
        identity = issue(public, "edge.example.com", eku=["serverAuth"])
        tree = node_tree(NodeSpec(role="edge", identity=identity, settings={RETIRED: "On"}, config_extra=MESSY_TAIL))
        config = tree[CONFIG]
        tree[CONFIG] = attrs.evolve(config, data=config.data.replace(b"\n", b"\r\n"))
        return tree
    if name == "ssh-other":
        return node_tree(NodeSpec(role="core", ssh="other"))
    if name == "migrated":
        return node_tree(NodeSpec(role="core", client="migrated"))
    raise ValueError(name)


@functools.cache
def other_cert() -> bytes:
    """A certificate the migration never wrote: what an administrator might put in its place."""
    return issue(make_ca("Admin CA"), "admin.example.com").cert_pem


def _lines(data: bytes) -> list[bytes]:
    """The lines of ``data`` with their endings; only LF ends a line."""
    return re.findall(rb"[^\n]*\n|[^\n]+\Z", data)


def expected_config(data: bytes) -> bytes:
    """The configuration apply must write: no retired line, the checking line appended with the file's ending."""
    first = _lines(data)[0]
    eol = b"\r\n" if first.endswith(b"\r\n") else b"\n"
    kept = [line for line in _lines(data) if b"EnableServerEkuUpload" not in line]
    if kept and not kept[-1].endswith(b"\n"):
        kept[-1] += eol
    return b"".join(kept) + CHECKING_LINE + eol


def plant(tree: Tree, root) -> Layout:
    """Write ``tree`` at ``root`` and return the node's layout."""
    write_tree(tree, root)
    return Layout.for_node(root)


def state_of(root) -> str:
    """The node state (x15.4, x15.5, interrupted, mixed) as checks reads it."""
    return checks.node_state(checks.analyse(scan(Layout.for_node(root))))[0]


def verify_ids(root) -> list[str]:
    """The ids of what X15.5 verification finds wrong on the node ([] = migrated)."""
    return [f.id for f in checks.verify(checks.analyse(scan(Layout.for_node(root))))]


def without_journal_bytes(tree: Tree) -> Tree:
    """``tree`` with the journal's bytes blanked (they hold timestamps); its mode and owner stay compared."""
    out = dict(tree)
    if JOURNAL in out:
        out[JOURNAL] = attrs.evolve(out[JOURNAL], data=b"")
    return out


def without_journal_times(tree: Tree) -> Tree:
    """``tree`` with the journal's start and finish times removed, everything else of it kept."""
    out = dict(tree)
    if JOURNAL in out:
        record = json.loads(out[JOURNAL].data)
        record.pop("started", None)
        record.pop("finished", None)
        out[JOURNAL] = attrs.evolve(out[JOURNAL], data=json.dumps(record, sort_keys=True).encode())
    return out


def tree_key(tree: Tree) -> frozenset:
    """A hashable value equal for equal trees."""
    return frozenset((rel, attrs.astuple(entry)) for rel, entry in tree.items())


def loose_key_files(tree: Tree) -> list[str]:
    """Files of the certificate store holding key material whose mode is looser than ``0o640 & policy``."""
    loose = []
    for rel, entry in tree.items():
        folder, _, name = rel.rpartition("/")
        if folder != CERTS or entry.kind != "file":
            continue
        staged = name.startswith(".") and name.endswith(STAGING_SUFFIX)
        target = name[1 : -len(STAGING_SUFFIX)] if staged else name
        if target in KEY_MODES:
            allowed = KEY_MODES[target] & 0o640
        elif staged:  # the staging copy of a certificate: never looser than the certificate's own policy
            allowed = CLIENT_FILES.get(target, (None, 0o600))[1]
        else:
            continue
        if entry.mode & ~allowed:
            loose.append(f"{rel} {entry.mode:04o}")
    return loose


def clean_migration(tree: Tree, root) -> Tree:
    """The tree a clean apply gives for ``tree`` (written at ``root``)."""
    writer.apply(plant(tree, root))
    return read_tree(root)


# --- Fixtures -------------------------------------------------------------------


@pytest.fixture(params=["fake", "real"])
def root(request, tmp_path) -> str:
    """A node root not yet created: in pyfakefs, or in a real temporary directory (we run as root)."""
    if request.param == "fake":
        request.getfixturevalue("fs")
        return "/srv/node"
    return str(tmp_path / "node")


class Crash(BaseException):
    """A power cut: not an Exception, so no ``except Exception`` undoes anything after it."""


# Calls that change the disk: after a power cut none of them happens any more.
MUTATING_CALLS = (
    "link",
    "replace",
    "fsync",
    "unlink",
    "rename",
    "mkdir",
    "rmdir",
    "open",
    "write",
    "chmod",
    "chown",
    "ftruncate",
)


@contextlib.contextmanager
def faults(monkeypatch, counted: tuple[str, ...], *, at: int = 0, error=None, dead_after: tuple[str, ...] = ()):
    """Count the calls of ``migrate.fsops.os.<counted>``; call number ``at`` raises ``error()``.

    After that call, every call of ``dead_after`` raises ``error()`` too (the power is off).
    Yields a dict whose ``calls`` is the number of counted calls so far.
    """
    state = {"calls": 0, "tripped": False}
    originals = {name: getattr(fsops.os, name) for name in {*counted, *dead_after}}

    def wrap(name, real):
        def call(*args, **kwargs):
            if state["tripped"] and name in dead_after:
                raise error()
            if name in counted:
                state["calls"] += 1
                if state["calls"] == at:
                    state["tripped"] = True
                    raise error()
            return real(*args, **kwargs)

        return call

    with monkeypatch.context() as patch:
        for name, real in originals.items():
            patch.setattr(fsops.os, name, wrap(name, real))
        yield state


def count_calls(monkeypatch, tree: Tree, root: str, counted: tuple[str, ...]) -> int:
    """How many counted calls a clean apply of ``tree`` makes."""
    layout = plant(tree, root)
    with faults(monkeypatch, counted) as state:
        assert writer.apply(layout).result == "migrated"
    return state["calls"]


# --- apply ----------------------------------------------------------------------


class TestApply:
    @pytest.mark.parametrize("name", SCENARIOS)
    def test_client_files_are_exact_copies_with_policy_mode_and_counterpart_owner(self, root, name):
        """Each client file holds exactly its counterpart's bytes, with its policy mode and the counterpart's uid/gid."""
        layout = plant(scenario(name), root)
        before = read_tree(root)
        outcome = writer.apply(layout)
        after = read_tree(root)
        assert outcome.result == "migrated"
        for client, (counterpart, mode) in CLIENT_FILES.items():
            made, source = after[f"{CERTS}/{client}"], before[f"{CERTS}/{counterpart}"]
            assert made.kind == "file"
            assert made.data == source.data, client
            assert made.mode == mode, client
            assert (made.uid, made.gid) == (source.uid, source.gid), client

    def test_owners_are_the_counterparts_non_root_ids(self, root):
        """client.pem takes the _nobody ids and client-ssh.pem the _pfwd ids of their counterparts, not root's."""
        writer.apply(plant(scenario("core"), root))
        after = read_tree(root)
        assert (after[f"{CERTS}/client.pem"].uid, after[f"{CERTS}/client.pem"].gid) == (NOBODY, NOBODY)
        assert (after[f"{CERTS}/client-ssh.pem"].uid, after[f"{CERTS}/client-ssh.pem"].gid) == (PFWD, PFWD)
        assert (after[f"{CERTS}/clientprivkey.pem"].uid, after[f"{CERTS}/clientprivkey.pem"].gid) == (0, 0)
        writer.apply(plant(scenario("edge"), root + "-edge"))
        edge = read_tree(root + "-edge")
        assert edge[f"{CERTS}/client.pem"].uid == EDGE_UIDS["_nobody"]
        assert edge[f"{CERTS}/client-ssh.pem"].gid == EDGE_UIDS["_pfwd"]

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_changes_nothing_but_the_client_files_config_and_state(self, root, name):
        """Every X15.4 file keeps its bytes, mode and owner: apply adds the client store and its state and edits only the config."""
        layout = plant(scenario(name), root)
        before = read_tree(root)
        writer.apply(layout)
        after = read_tree(root)
        assert sorted(diff_trees(before, after)) == sorted(
            [f"added {rel}" for rel in ADDED_BY_APPLY] + [f"changed bytes {CONFIG}"]
        )

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_config_loses_retired_lines_and_gains_checking_mode(self, root, name):
        """The config loses every EnableServerEkuUpload line, gains the checking line with its own ending, and keeps every other byte."""
        layout = plant(scenario(name), root)
        original = read_tree(root)[CONFIG].data
        writer.apply(layout)
        config = read_tree(root)[CONFIG]
        assert config.data == expected_config(original)
        assert b"EnableServerEkuUpload" not in config.data
        assert config.data.count(CHECKING_LINE) == 1

    def test_messy_config_keeps_crlf_foreign_bytes_and_its_unterminated_last_line(self, root):
        """A CRLF config with two retired lines, non-UTF-8 bytes and no final newline is edited byte-exactly."""
        layout = plant(scenario("edge-crlf"), root)
        original = read_tree(root)[CONFIG].data
        assert original.count(b"EnableServerEkuUpload") == 2 and not original.endswith(b"\n")
        writer.apply(layout)
        data = read_tree(root)[CONFIG].data
        assert b"\xe9 \xff\xfe (not UTF-8)\r\n" in data
        assert data.endswith(
            b'*c xConfiguration Zz Operator Note: "last line, no newline"\r\n' + CHECKING_LINE + b"\r\n"
        )
        assert b"\n" not in data.replace(b"\r\n", b"")  # every line ends in CRLF, none in a bare LF
        assert data == expected_config(original)

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_leaves_an_applied_journal_a_private_backup_and_no_staging_file(self, root, name):
        """After apply the journal says applied, the config backup holds the original bytes (0600), and no staging file is left."""
        layout = plant(scenario(name), root)
        original = read_tree(root)[CONFIG]
        writer.apply(layout)
        after = read_tree(root)
        assert json.loads(after[JOURNAL].data)["state"] == "applied"
        assert after[JOURNAL].mode == 0o600
        assert after[STATE].kind == "dir" and after[STATE].mode == 0o700
        assert after[BACKUP].data == original.data and after[BACKUP].mode == 0o600
        assert [rel for rel in after if rel.endswith(STAGING_SUFFIX)] == []
        assert verify_ids(root) == []

    def test_second_apply_is_already_migrated_and_changes_nothing(self, root):
        """Applying to a migrated node reports already-migrated and leaves every byte, mode and owner as it was."""
        layout = plant(scenario("edge"), root)
        writer.apply(layout)
        migrated = read_tree(root)
        outcome = writer.apply(layout)
        assert outcome.result == "already-migrated"
        assert diff_trees(migrated, read_tree(root)) == []

    @pytest.mark.parametrize("name", SCENARIOS)
    def test_fake_and_real_file_systems_give_the_same_tree(self, tmp_path, name):
        """The same X15.4 tree migrated in pyfakefs and in a real directory gives identical trees (journal times aside)."""
        tree = scenario(name)
        real = clean_migration(tree, tmp_path / "node")
        with Patcher():
            fake = clean_migration(tree, "/srv/node")
        assert not os.path.lexists("/srv/node")  # the fake node really was fake
        assert diff_trees(without_journal_times(real), without_journal_times(fake)) == []
        assert real[JOURNAL].data != b""


# --- rollback -------------------------------------------------------------------


class TestRollback:
    @pytest.mark.parametrize("name", SCENARIOS)
    def test_rollback_after_apply_restores_the_exact_tree(self, root, name):
        """Rollback after apply gives back the X15.4 tree exactly, state directory included (gone)."""
        layout = plant(scenario(name), root)
        original = read_tree(root)
        writer.apply(layout)
        outcome = writer.rollback(layout)
        assert outcome.result == "rolled-back"
        assert diff_trees(original, read_tree(root)) == []

    def test_rollback_of_untouched_node_is_nothing_to_do(self, root):
        """Rollback on a node never migrated does nothing and says so."""
        layout = plant(scenario("core"), root)
        original = read_tree(root)
        assert writer.rollback(layout).result == "nothing-to-do"
        assert diff_trees(original, read_tree(root)) == []

    def test_rollback_of_node_not_migrated_by_the_tool_is_refused(self, root):
        """An X15.5 node without a journal is refused (not-migrated-by-tool) and left as it is."""
        layout = plant(scenario("migrated"), root)
        original = read_tree(root)
        with pytest.raises(RollbackError) as caught:
            writer.rollback(layout)
        assert caught.value.id == "not-migrated-by-tool"
        assert diff_trees(original, read_tree(root)) == []

    @pytest.mark.parametrize("changed", [f"{CERTS}/client.pem", CONFIG])
    def test_rollback_refuses_when_an_admin_changed_what_apply_wrote(self, root, changed):
        """client.pem replaced by other bytes, or a config edited since the migration, makes rollback refuse (rollback-conflict) and change nothing."""
        layout = plant(scenario("edge"), root)
        writer.apply(layout)
        _change_after_migration(root, changed)
        edited = read_tree(root)
        with pytest.raises(RollbackError) as caught:
            writer.rollback(layout)
        assert caught.value.id == "rollback-conflict"
        assert diff_trees(edited, read_tree(root)) == []

    @pytest.mark.parametrize("changed", [f"{CERTS}/client.pem", CONFIG])
    def test_forced_rollback_displaces_the_changed_file_and_restores_the_rest(self, root, changed):
        """With force, the changed file moves to the named displaced directory outside the store; the rest is exact X15.4."""
        layout = plant(scenario("edge"), root)
        original = read_tree(root)
        writer.apply(layout)
        _change_after_migration(root, changed)
        edited = read_tree(root)[changed]
        outcome = writer.rollback(layout, force=True)
        after = read_tree(root)
        displaced = outcome.displaced
        assert outcome.result == "rolled-back"
        assert displaced is not None and displaced.startswith("persistent/.cert-migration-displaced-")
        assert not displaced.startswith(CERTS + "/") and "/" not in displaced[len("persistent/") :]
        moved = f"{displaced}/{os.path.basename(changed)}"
        assert after[displaced].kind == "dir"
        assert after[moved] == edited  # the admin's bytes, mode and owner, kept
        rest = {rel: entry for rel, entry in after.items() if rel != displaced and not rel.startswith(displaced + "/")}
        assert diff_trees(original, rest) == []
        assert sorted(diff_trees(original, after)) == sorted([f"added {displaced}", f"added {moved}"])


def _change_after_migration(root, changed: str) -> None:
    """What an administrator does after the migration: edit the config, or install another client.pem."""
    if changed == CONFIG:
        with open(os.path.join(root, CONFIG), "ab") as f:
            f.write(b"*c xConfiguration Logging Level: 2\n")
    else:
        with open(os.path.join(root, changed), "wb") as f:
            f.write(other_cert())


# --- interrupted runs (power cut) -----------------------------------------------


class TestInterrupted:
    SCENARIO = "edge-crlf"

    def _check_recoverable(self, root: str, original: Tree, migrated: Tree, seen: set, label: str) -> None:
        """After a crash: no loose key file; a recognised state; apply completes and rollback restores exactly."""
        after = read_tree(root)
        assert loose_key_files(after) == [], label
        key = tree_key(without_journal_times(after))
        if key in seen:  # the same tree as after an earlier crash point: its recovery was checked already
            return
        seen.add(key)
        changes = diff_trees(original, after)
        if changes:
            state = state_of(root)
            journal_state = json.loads(after[JOURNAL].data).get("state") if JOURNAL in after else None
            state_dir_only = all(line.split()[-1].startswith(STATE) for line in changes)
            assert (
                state == "interrupted"
                # died before its journal: only tool state, which rollback clears (checked below)
                or (state == "x15.4" and JOURNAL not in after and state_dir_only)
                # died after the journal said applied (the last fsync): the migration is complete
                or (state == "x15.5" and journal_state == "applied")
            ), f"{label}: state {state}, changes {changes}"
        # (a) apply completes the migration, to exactly what a clean run gives
        resume = root + "-resume"
        write_tree(after, resume)
        writer.apply(Layout.for_node(resume))
        assert verify_ids(resume) == [], label
        assert diff_trees(without_journal_bytes(migrated), without_journal_bytes(read_tree(resume))) == [], label
        # (b) rollback returns exactly the original tree
        undo = root + "-undo"
        write_tree(after, undo)
        writer.rollback(Layout.for_node(undo))
        assert diff_trees(original, read_tree(undo)) == [], label

    def _crash_everywhere(
        self, monkeypatch, counted: tuple[str, ...], dead_after: tuple[str, ...], prefix: str
    ) -> None:
        """Crash apply at each counted call of a clean run in turn, and check the node recovers from each."""
        tree = scenario(self.SCENARIO)
        original = read_tree(plant(tree, f"/{prefix}/original").root)
        migrated = clean_migration(tree, f"/{prefix}/clean")
        total = count_calls(monkeypatch, tree, f"/{prefix}/count", counted)
        assert total >= 1
        seen: set = set()
        for n in range(1, total + 1):
            root = f"/{prefix}/{n}"
            layout = plant(tree, root)
            with faults(monkeypatch, counted, at=n, error=Crash, dead_after=dead_after), pytest.raises(Crash):
                writer.apply(layout)
            self._check_recoverable(root, original, migrated, seen, f"{prefix}: crash at call {n}/{total}")

    @pytest.mark.parametrize("call", ["link", "replace", "fsync", "unlink"])
    def test_crash_at_every_call_leaves_a_node_apply_and_rollback_recover(self, fs, monkeypatch, call):
        """A crash at each os.<call> of apply leaves X15.4, or a state from which apply completes and rollback restores exactly."""
        self._crash_everywhere(monkeypatch, (call,), (), f"crash-{call}")

    def test_power_cut_at_every_step_leaves_a_node_apply_and_rollback_recover(self, fs, monkeypatch):
        """A power cut at each fsync or chown of apply (no write of any kind after it, so no cleanup) leaves a recoverable node."""
        # Every write step of apply ends in an fsync, so a cut there leaves each step's partial result on disk
        # (staging files included); a cut at the chown catches a staging file before its owner and mode are set.
        # The window between os.link and its os.unlink is the "unlink" crash above.
        self._crash_everywhere(monkeypatch, ("fsync", "chown"), MUTATING_CALLS, "power-cut")


# --- failures during apply are undone ------------------------------------------


class TestFailureUndo:
    @pytest.mark.parametrize("call", ["link", "replace", "fsync", "unlink"])
    def test_io_error_at_every_call_is_undone(self, fs, monkeypatch, call):
        """An EIO at each os.<call> of apply raises apply-failed and leaves the exact X15.4 tree, with no state directory."""
        tree = scenario("edge-crlf")
        original = read_tree(plant(tree, "/original").root)
        total = count_calls(monkeypatch, tree, "/count", (call,))
        assert total >= 1
        for n in range(1, total + 1):
            root = f"/eio/{call}-{n}"
            layout = plant(tree, root)
            eio = faults(monkeypatch, (call,), at=n, error=lambda: OSError(errno.EIO, "injected I/O error"))
            with eio, pytest.raises(ApplyError) as caught:
                writer.apply(layout)
            assert caught.value.id == "apply-failed", f"EIO at os.{call} call {n}/{total}"
            assert diff_trees(original, read_tree(root)) == [], f"EIO at os.{call} call {n}/{total}"

    def test_disk_full_at_every_size_is_undone(self, fs):
        """With the disk full at any point of apply (ENOSPC), apply-failed is raised and the tree is exactly X15.4."""
        tree = scenario("edge-crlf")
        failures = 0
        for budget in range(0, 64 * 1024, 512):
            root = f"/full/{budget}"
            fs.set_disk_usage(1 << 40)
            layout = plant(tree, root)
            original = read_tree(root)
            fs.set_disk_usage(fs.get_disk_usage().used + budget)
            try:
                outcome = writer.apply(layout)
            except ApplyError as exc:
                assert exc.id == "apply-failed"
                failures += 1
            else:
                assert outcome.result == "migrated"
                break
            finally:
                fs.set_disk_usage(1 << 40)
            assert diff_trees(original, read_tree(root)) == [], f"disk full with {budget} bytes free"
        else:
            pytest.fail("apply never succeeded, even with 64 KiB free")
        assert failures >= 5  # the disk filled up at several different steps
        assert verify_ids(root) == []


# --- saved plans ----------------------------------------------------------------


class TestSavedPlan:
    def test_saved_plan_is_applied(self, root):
        """A plan saved as JSON and loaded back is applied: the node is migrated as a plain apply would."""
        layout = plant(scenario("edge"), root)
        original = read_tree(root)
        saved = load_saved_plan(json.dumps(make_plan(checks.analyse(scan(layout))).as_dict()).encode(), "plan.json")
        outcome = writer.apply(layout, saved_plan=saved)
        after = read_tree(root)
        assert outcome.result == "migrated"
        assert verify_ids(root) == []
        assert after[CONFIG].data == expected_config(original[CONFIG].data)
        assert after[f"{CERTS}/clientprivkey.pem"].data == original[f"{CERTS}/privkey.pem"].data

    @pytest.mark.parametrize("change", ["bytes", "mode", "owner"])
    def test_stale_plan_is_refused_and_nothing_is_touched(self, root, change):
        """A node changed after its plan was saved (ca.pem bytes, mode or owner) is refused as plan-stale, untouched."""
        layout = plant(scenario("edge"), root)
        saved = make_plan(checks.analyse(scan(layout))).as_dict()
        ca = os.path.join(root, CERTS, "ca.pem")
        if change == "bytes":
            with open(ca, "ab") as f:
                f.write(other_cert())
        elif change == "mode":
            os.chmod(ca, 0o640)
        else:
            os.chown(ca, 0, 0, follow_symlinks=False)
        before = read_tree(root)
        with pytest.raises(PlanError) as caught:
            writer.apply(layout, saved_plan=saved)
        assert caught.value.id == "plan-stale"
        assert diff_trees(before, read_tree(root)) == []


# --- refusals -------------------------------------------------------------------


def _with_symlinked_client_pem(tree: Tree) -> Tree:
    out = dict(tree)
    out[f"{CERTS}/client.pem"] = Entry("symlink", 0o777, 0, 0, target="server.pem")
    return out


def _with_foreign_client_pem(tree: Tree) -> Tree:
    out = dict(tree)
    out[f"{CERTS}/client.pem"] = Entry("file", 0o644, NOBODY, NOBODY, data=other_cert())
    return out


class TestRefusals:
    @pytest.mark.parametrize(
        ("make", "blocker"),
        [
            (lambda: scenario("ssh-other"), "ssh-identity-mismatch"),
            (lambda: _with_symlinked_client_pem(scenario("core")), "file-not-regular"),
            (lambda: _with_foreign_client_pem(scenario("core")), "client-store-conflict"),
        ],
        ids=["ssh-key-mismatch", "symlinked-client-pem", "client-store-conflict"],
    )
    def test_blocker_refuses_and_creates_nothing(self, root, make, blocker):
        """A blocker raises BlockedError with its id; the node is untouched and not even the state directory appears."""
        layout = plant(make(), root)
        before = read_tree(root)
        with pytest.raises(BlockedError) as caught:
            writer.apply(layout)
        assert caught.value.id == blocker
        assert diff_trees(before, read_tree(root)) == []
        assert not os.path.lexists(os.path.join(root, STATE))

    def test_not_root_refuses_and_creates_nothing(self, root, monkeypatch):
        """Apply as a non-root user raises not-root and changes nothing, not even the state directory."""
        layout = plant(scenario("core"), root)
        before = read_tree(root)
        monkeypatch.setattr(writer.os, "geteuid", lambda: 1000)
        with pytest.raises(PrivilegeError) as caught:
            writer.apply(layout)
        assert caught.value.id == "not-root"
        assert diff_trees(before, read_tree(root)) == []
        assert not os.path.lexists(os.path.join(root, STATE))

    def test_rollback_not_root_refuses_and_changes_nothing(self, root, monkeypatch):
        """Rollback of a migrated node as a non-root user raises not-root and leaves the migrated tree as it is."""
        layout = plant(scenario("core"), root)
        writer.apply(layout)
        migrated = read_tree(root)
        monkeypatch.setattr(writer.os, "geteuid", lambda: 1000)
        with pytest.raises(PrivilegeError) as caught:
            writer.rollback(layout)
        assert caught.value.id == "not-root"
        assert diff_trees(migrated, read_tree(root)) == []


# --- the lock (real file system: pyfakefs's flock does nothing) ----------------


class TestLock:
    def test_held_lock_refuses_apply_and_changes_nothing(self, tmp_path):
        """While another holder has the node's lock, apply raises lock-held and changes nothing."""
        layout = plant(scenario("core"), tmp_path / "node")
        with journal.locked(layout):
            before = read_tree(tmp_path / "node")
            with pytest.raises(LockError) as caught:
                writer.apply(layout)
            assert caught.value.id == "lock-held"
            assert diff_trees(before, read_tree(tmp_path / "node")) == []
            assert not os.path.lexists(layout.journal)

    def test_held_lock_refuses_rollback_and_changes_nothing(self, tmp_path):
        """While another holder has the lock of a migrated node, rollback raises lock-held and changes nothing."""
        layout = plant(scenario("core"), tmp_path / "node")
        writer.apply(layout)
        migrated = read_tree(tmp_path / "node")
        with journal.locked(layout):
            with pytest.raises(LockError) as caught:
                writer.rollback(layout)
            assert caught.value.id == "lock-held"
        assert diff_trees(migrated, read_tree(tmp_path / "node")) == []

    def test_apply_works_once_the_holder_has_gone(self, tmp_path):
        """Apply refused while the lock is held migrates the node once the holder has released it."""
        layout = plant(scenario("core"), tmp_path / "node")
        with journal.locked(layout), pytest.raises(LockError):
            writer.apply(layout)
        assert writer.apply(layout).result == "migrated"
        assert verify_ids(tmp_path / "node") == []
        assert json.loads(read_tree(tmp_path / "node")[JOURNAL].data)["state"] == "applied"

    def test_stale_lock_file_does_not_block(self, tmp_path):
        """A lock file left behind with a dead holder's pid does not block apply, and rollback then clears it."""
        root = tmp_path / "node"
        layout = plant(scenario("core"), root)
        original = read_tree(root)
        os.mkdir(layout.state_dir, 0o700)
        layout.lock.write_bytes(b"999999\n")
        assert writer.apply(layout).result == "migrated"
        assert verify_ids(root) == []
        assert writer.rollback(layout).result == "rolled-back"
        assert diff_trees(original, read_tree(root)) == []
