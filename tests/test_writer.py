"""Tests for migrate.writer: apply and rollback, judged by the tree they leave (pyfakefs and a real directory)."""

from __future__ import annotations

import json
import os

import attrs
import pytest
from pyfakefs.fake_filesystem_unittest import Patcher
from support import (
    ADDED_BY_APPLY,
    BACKUP,
    CERTS,
    CHECKING_LINE,
    CLIENT_FILES,
    CONFIG,
    EDGE_UIDS,
    JOURNAL,
    NOBODY,
    PFWD,
    SCENARIOS,
    STAGING_SUFFIX,
    STATE,
    clean_migration,
    expected_config,
    other_cert,
    plant,
    scenario,
    verify_ids,
    without_journal_times,
)

from migrate import facts, journal, writer, writing
from migrate.errors import (
    BlockedError,
    LockError,
    PlanError,
    PrivilegeError,
    RollbackError,
)
from migrate.plan import load_saved_plan, make_plan
from migrate.scan import scan
from migrate.testing.tree import Entry, Tree, diff_trees, read_tree

# --- Fixtures -------------------------------------------------------------------


@pytest.fixture(params=["fake", "real"])
def root(request, tmp_path) -> str:
    """A node root not yet created: in pyfakefs, or in a real temporary directory (we run as root)."""
    if request.param == "fake":
        request.getfixturevalue("fs")
        return "/srv/node"
    return str(tmp_path / "node")


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

    def test_a_key_tighter_than_policy_gets_a_copy_no_looser(self, root):
        """privkey.pem at 0400 with group 4242 gives clientprivkey.pem 0400: the group cannot read the copy either."""
        tree = dict(scenario("core"))
        key = f"{CERTS}/privkey.pem"
        tree[key] = attrs.evolve(tree[key], mode=0o400, gid=4242)
        layout = plant(tree, root)
        assert writer.apply(layout).result == "migrated"
        copy = read_tree(root)[f"{CERTS}/clientprivkey.pem"]
        assert (copy.mode, copy.uid, copy.gid) == (0o400, 0, 4242)
        assert copy.data == tree[key].data
        assert verify_ids(root) == []

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


# --- saved plans ----------------------------------------------------------------


class TestSavedPlan:
    def test_saved_plan_is_applied(self, root):
        """A plan saved as JSON and loaded back is applied: the node is migrated as a plain apply would."""
        layout = plant(scenario("edge"), root)
        original = read_tree(root)
        saved = load_saved_plan(json.dumps(make_plan(facts.analyse(scan(layout))).as_dict()).encode(), "plan.json")
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
        saved = make_plan(facts.analyse(scan(layout))).as_dict()
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
        monkeypatch.setattr(writing.os, "geteuid", lambda: 1000)
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
        monkeypatch.setattr(writing.os, "geteuid", lambda: 1000)
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
