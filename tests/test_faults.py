"""Faults at every file-system call of apply and rollback, in pyfakefs: SQLite's I/O-error and crash tests.

The calls are discovered by :mod:`migrate.testing.faults` from a clean run, never
listed here.  For every call N of a clean run: an error there (EIO, ENOSPC,
EACCES) is undone to the exact X15.4 tree, or the run completes to the exact
X15.5 tree; a power cut there leaves a node from which ``apply`` reaches the
exact migrated tree and ``rollback`` the exact X15.4 tree; and a second power
cut during that recovery (SQLite's compound failures) is recovered from too.
At no call does any file hold key material that someone who could not read
the key before could read.

A power cut at a call that only reads leaves the disk exactly as a cut at the
next call that writes, so the power-cut matrices cut at every call that
writes.  The compound matrix cuts apply at every such call and then its
recovery at one point, rotating from one first cut to the next.  ``MIGRATE_FAULTS=full`` (a nightly run, about
fifteen minutes) cuts at every call, every error at every call, and every
pair of first and second cuts.
"""

from __future__ import annotations

import contextlib
import errno
import os

import attrs
import pytest
from support import (
    LOCK,
    STATE,
    clean_migration,
    exposed_keys,
    plant,
    scenario,
    tree_key,
    verify_ids,
    without_journal_bytes,
    without_journal_times,
)

from migrate import dirs, fsops, writer
from migrate.errors import MigrateError
from migrate.scan import Layout
from migrate.testing import faults
from migrate.testing.tree import Tree, diff_trees, read_tree, write_tree

SCENARIO = "edge-crlf"  # the messiest X15.4 node: SSH bundle, two retired lines, CRLF, non-UTF-8 bytes
FULL = os.environ.get("MIGRATE_FAULTS") == "full"


def _cut_points(calls: list[faults.Call]) -> list[faults.Call]:
    """Where a power cut can leave a different disk: every call that writes (every call with MIGRATE_FAULTS=full)."""
    return list(calls) if FULL else [call for call in calls if call.writes]


def _second_cuts(points: list[faults.Call], index: int) -> list[faults.Call]:
    """The second cuts tried after the ``index``-th distinct first cut: all with MIGRATE_FAULTS=full, else one.

    The one rotates with ``index`` by a stride of 7 calls, so that across the
    first cuts every phase of the recovery gets cut.
    """
    if FULL or not points:
        return points
    return [points[(index * 7) % len(points)]]


def _error_points(calls: list[faults.Call], fault: str) -> list[faults.Call]:
    """Where ``fault`` can happen: EIO anywhere; ENOSPC where a call writes or syncs; EACCES where a call names a path."""
    if FULL or fault == "eio":
        return list(calls)
    if fault == "enospc":
        return [call for call in calls if call.writes or call.name == "fsync"]
    return [
        call for call in calls if call.name not in ("read", "write", "fstat", "fsync", "close", "ftruncate", "flock")
    ]


class Node:
    """One scenario prepared in the fake file system: its X15.4 tree, its clean migration, and the calls of both."""

    def __init__(self, tree: Tree, prefix: str) -> None:
        self.tree = tree
        self.prefix = prefix
        self.original = read_tree(plant(tree, f"{prefix}/original").root)
        self.migrated = clean_migration(tree, f"{prefix}/migrated")
        self.apply_calls = faults.count_calls(lambda: writer.apply(plant(tree, f"{prefix}/count-apply")))
        self.rollback_calls = faults.count_calls(
            lambda: writer.rollback(plant(self.migrated, f"{prefix}/count-rollback"))
        )
        self._checked: set = set()

    def recovers(self, root: str, label: str) -> None:
        """No exposed key at ``root``; rollback of a copy gives exact X15.4, apply in place exact X15.5.

        Apply runs in place, so that what a copy loses (hard links between a
        published file and its staging name) is recovered from too.  Each
        distinct tree (its links included) is recovered from once.
        """
        after = read_tree(root)
        assert exposed_keys(after, self.original) == [], label
        key = _state_key(root, after)
        if key in self._checked:
            return
        self._checked.add(key)
        undo = f"{root}-rollback"
        write_tree(after, undo)
        writer.rollback(Layout.for_node(undo))
        assert diff_trees(self.original, read_tree(undo)) == [], label
        writer.apply(Layout.for_node(root))
        assert verify_ids(root) == [], label
        assert self.is_migrated(read_tree(root)), label

    def is_original(self, after: Tree) -> bool:
        """Exactly the X15.4 tree; a failure while clearing the tool's own lock may leave just that lock behind."""
        extra = set(after) - set(self.original)
        rest = {rel: entry for rel, entry in after.items() if rel not in extra}
        return extra <= {STATE, LOCK} and diff_trees(self.original, rest) == []

    def is_migrated(self, after: Tree) -> bool:
        """Exactly the tree a clean apply gives (the journal's times aside)."""
        return diff_trees(without_journal_bytes(self.migrated), without_journal_bytes(after)) == []


@pytest.fixture
def node(fs) -> Node:
    """The messy Edge scenario, prepared in a fresh fake file system."""
    return Node(scenario(SCENARIO), "/n")


def _run(command, layout: Layout, at: int, fault: str, **kwargs) -> BaseException | None:
    """Run ``command`` with ``fault`` at call ``at``; what it raised (None if it completed)."""
    with faults.inject(at=at, fault=fault, **kwargs) as injector:
        try:
            command(layout)
        except (Exception, faults.PowerCut) as exc:  # noqa: BLE001 - judged by the caller
            return exc
    assert injector.tripped is not None, f"call {at} never came"
    return None


# --- the injector itself --------------------------------------------------------


class TestInjector:
    def test_counts_every_os_call_of_the_writer_even_ones_no_list_names(self, fs):
        """A call no list in migrate.testing.faults names (os.access) is counted; a process call (os.getpid) is not."""
        fs.create_dir("/d")
        with faults.inject() as injector:
            fsops.os.access("/d", os.R_OK)
            fsops.os.getpid()
        assert [(call.name, call.target) for call in injector.calls] == [("access", "/d")]

    def test_an_error_fails_that_call_and_no_other(self, fs):
        """EIO at the link of create_file fails it: the target never appears and the staging copy is cleaned up."""
        fs.create_dir("/d")
        calls = faults.count_calls(lambda: fsops.create_file(dirs.open_root("/d"), "a", b"data", mode=0o600))
        link = next(call for call in calls if call.name == "link")
        fs.remove_object("/d/a")
        with faults.inject(at=link.number, fault="eio"), pytest.raises(OSError) as caught:
            fsops.create_file(dirs.open_root("/d"), "a", b"data", mode=0o600)
        assert caught.value.errno == errno.EIO
        assert os.listdir("/d") == []  # the cleanup after the failed call did run

    def test_a_power_cut_stops_every_later_call_so_no_cleanup_runs(self, fs):
        """A power cut at the link leaves the staging copy on disk: the unlink that would clean it up never runs."""
        fs.create_dir("/d")
        calls = faults.count_calls(lambda: fsops.create_file(dirs.open_root("/d"), "a", b"data", mode=0o600))
        link = next(call for call in calls if call.name == "link")
        fs.remove_object("/d/a")
        with faults.inject(at=link.number, fault="power-cut"), pytest.raises(faults.PowerCut):
            fsops.create_file(dirs.open_root("/d"), "a", b"data", mode=0o600)
        [staged] = os.listdir("/d")
        assert staged.startswith(".a.") and staged.endswith(".cert-migration.tmp")
        with open(f"/d/{staged}", "rb") as f:
            assert f.read() == b"data"

    def test_a_power_cut_in_a_write_tears_it(self, fs):
        """A power cut at a write lands half of its bytes, as a torn write does."""
        fs.create_dir("/d")
        calls = faults.count_calls(lambda: fsops.create_file(dirs.open_root("/d"), "a", b"12345678", mode=0o600))
        write = next(call for call in calls if call.name == "write")
        fs.remove_object("/d/a")
        with faults.inject(at=write.number, fault="power-cut"), pytest.raises(faults.PowerCut):
            fsops.create_file(dirs.open_root("/d"), "a", b"12345678", mode=0o600)
        [staged] = os.listdir("/d")
        with open(f"/d/{staged}", "rb") as f:
            assert f.read() == b"1234"

    def test_a_persistent_error_fails_every_selected_call_from_n_on(self, fs):
        """A read-only file system: every call that writes fails with EROFS, and nothing is created."""
        fs.create_dir("/d")
        d = dirs.open_root("/d")
        with faults.inject(at=1, fault="erofs", persistent=True, where=lambda c: c.writes):
            for name in ("a", "b"):
                with pytest.raises(OSError) as caught:
                    fsops.create_file(d, name, b"data", mode=0o600)
                assert caught.value.errno == errno.EROFS
            assert fsops.lexists(d, "a") is False  # reads still work (a failed one would raise)
        assert os.listdir("/d") == []

    def test_the_modules_get_their_own_os_back(self, fs):
        """After the block, the patched modules hold the os module they had before."""
        before = {name: __import__(name, fromlist=["os"]).os for name in faults.PATCHED_MODULES}
        with faults.inject():
            assert all(__import__(name, fromlist=["os"]).os is not os for name in faults.PATCHED_MODULES)
        assert {name: __import__(name, fromlist=["os"]).os for name in faults.PATCHED_MODULES} == before

    def test_tear_lands_what_a_power_cut_there_would_and_pause_lets_calls_through(self, fs):
        """From an observe callback, tear() lands half of the write being observed (as a power cut there would) and
        nothing of another call; inside pause() calls are neither counted nor observed; outside a callback, tear()
        is refused."""
        fs.create_dir("/d")
        landed: list[tuple[str, bool, bytes]] = []

        def observe(call: faults.Call) -> None:
            if call.name in ("write", "link"):
                with injector.pause():
                    torn = injector.tear()
                    staged = [n for n in fsops.os.listdir("/d") if n.endswith(".tmp")]
                    with open(f"/d/{staged[0]}", "rb") as f:
                        landed.append((call.name, torn, f.read()))

        with faults.inject(observe=observe) as injector:
            fsops.create_file(dirs.open_root("/d"), "a", b"12345678", mode=0o600)
        assert landed == [("write", True, b"1234"), ("link", False, b"123412345678")]
        assert not any(call.name == "listdir" for call in injector.calls)  # made while paused
        with faults.inject() as idle, pytest.raises(RuntimeError, match="observe"):
            idle.tear()

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"at": 1}, "both"),
            ({"fault": "eio"}, "both"),
            ({"at": 0, "fault": "eio"}, "from 1"),
            ({"at": 1, "fault": "x"}, "unknown"),
        ],
    )
    def test_bad_arguments_are_refused(self, kwargs, message):
        """at= without fault=, an unknown fault, or a call number below 1 is a ValueError."""
        with pytest.raises(ValueError, match=message), faults.inject(**kwargs):
            pass


# --- errors: undone, or the run completes ---------------------------------------


class TestErrors:
    @pytest.mark.slow
    @pytest.mark.parametrize("fault", ["eio", "enospc", "eacces"])
    def test_error_at_every_call_of_apply_is_undone(self, node, fault):
        """An error at any call of apply raises a MigrateError and leaves exactly X15.4, or apply completes to exactly X15.5."""
        points = _error_points(node.apply_calls, fault)
        assert len(points) > 20
        undone = 0
        for call in points:
            root = f"/e/{call.number}"
            raised = _run(writer.apply, plant(node.tree, root), call.number, fault)
            after = read_tree(root)
            label = f"{fault} at {call}"
            if raised is None:
                assert node.is_migrated(after), label
            else:
                assert isinstance(raised, MigrateError), f"{label}: {raised!r}"
                assert node.is_original(after), f"{label}: {diff_trees(node.original, after)}"
                undone += 1
            node.recovers(root, label)
            fs_remove(root)
        assert undone > len(points) // 2

    @pytest.mark.slow
    @pytest.mark.parametrize("fault", ["eio", "enospc", "eacces"])
    def test_error_at_every_call_of_rollback_leaves_a_node_both_recoveries_finish(self, node, fault):
        """An error at any call of rollback raises a MigrateError (rollback-failed) and the node still recovers both ways."""
        points = _error_points(node.rollback_calls, fault)
        assert len(points) > 10
        for call in points:
            root = f"/e/{call.number}"
            raised = _run(writer.rollback, plant(node.migrated, root), call.number, fault)
            label = f"{fault} at rollback {call}"
            if raised is not None:
                assert isinstance(raised, MigrateError), f"{label}: {raised!r}"
            node.recovers(root, label)
            fs_remove(root)

    def test_disk_full_at_every_size_is_undone(self, node, fs):
        """With the disk full at any point of apply (ENOSPC from pyfakefs), apply-failed is raised and the tree is exactly X15.4."""
        failures = 0
        for budget in range(0, 64 * 1024, 512):
            root = f"/full/{budget}"
            fs.set_disk_usage(1 << 40)
            layout = plant(node.tree, root)
            fs.set_disk_usage(fs.get_disk_usage().used + budget)
            try:
                outcome = writer.apply(layout)
            except MigrateError as exc:
                assert exc.id == "apply-failed"
                failures += 1
            else:
                assert outcome.result == "migrated"
                break
            finally:
                fs.set_disk_usage(1 << 40)
            assert node.is_original(read_tree(root)), f"disk full with {budget} bytes free"
        else:
            pytest.fail("apply never succeeded, even with 64 KiB free")
        assert failures >= 5  # the disk filled up at several different steps
        assert verify_ids(root) == []


# --- power cuts, and a second one during the recovery ---------------------------


@pytest.mark.slow
class TestPowerCuts:
    @pytest.mark.parametrize(("command", "least"), [("apply", 50), ("rollback", 10)])
    def test_power_cut_at_every_call_recovers_both_ways(self, node, command, least):
        """A power cut at any call of apply (or rollback) leaves a node from which apply reaches exact X15.5 and rollback exact X15.4."""
        run, start, calls = (
            (writer.apply, node.tree, node.apply_calls)
            if command == "apply"
            else (writer.rollback, node.migrated, node.rollback_calls)
        )
        points = _cut_points(calls)
        for call in points:
            root = f"/c/{call.number}"
            raised = _run(run, plant(start, root), call.number, "power-cut")
            assert isinstance(raised, faults.PowerCut), f"cut at {call}: {raised!r}"
            node.recovers(root, f"power cut at {command} {call}")
            fs_remove(root)
        assert len(points) > least

    @pytest.mark.parametrize("recovery", ["rollback", "apply"])
    def test_second_power_cut_during_the_recovery_is_recovered_from(self, node, recovery):
        """After a cut in apply, a second cut at any call of the recovering rollback (or re-apply) still recovers both ways."""
        command = writer.rollback if recovery == "rollback" else writer.apply

        def cut_apply(at: int, root: str) -> Layout:
            _run(writer.apply, plant(node.tree, root), at, "power-cut")
            return Layout.for_node(root)

        states: dict = {}  # one first cut per distinct state it leaves
        for call in _cut_points(node.apply_calls):
            root = str(cut_apply(call.number, f"/c/{call.number}").root)
            states.setdefault(_state_key(root, read_tree(root)), call)
            fs_remove(root)
        pairs, recoveries_that_write = 0, 0
        for index, first in enumerate(states.values()):
            layout = cut_apply(first.number, "/count")
            calls = faults.count_calls(lambda layout=layout: command(layout))
            fs_remove("/count")
            recoveries_that_write += any(call.writes for call in calls)
            for second in _second_cuts(_cut_points(calls), index):
                root = f"/c2/{second.number}"
                raised = _run(command, cut_apply(first.number, root), second.number, "power-cut")
                assert isinstance(raised, faults.PowerCut)
                node.recovers(root, f"cut at apply {first}, then at {recovery} {second}")
                fs_remove(root)
                pairs += 1
        assert len(states) > 10 and recoveries_that_write > 10
        assert pairs >= recoveries_that_write  # every recovery that writes was cut at least once


class TestKeysNeverExposed:
    @pytest.mark.parametrize(
        "command",
        ["apply", pytest.param("rollback", marks=pytest.mark.slow), pytest.param("resume", marks=pytest.mark.slow)],
    )
    def test_no_call_finds_a_key_readable_by_anyone_new(self, node, command):
        """Before every call of apply, of rollback and of an apply resuming after a cut, no file exposes key material."""
        if command == "apply":
            layout, run = plant(node.tree, "/k"), writer.apply
        elif command == "rollback":
            layout, run = plant(node.migrated, "/k"), writer.rollback
        else:
            middle = next(call for call in node.apply_calls if call.name == "link")
            _run(writer.apply, plant(node.tree, "/cut"), middle.number, "power-cut")
            layout, run = plant(read_tree("/cut"), "/k"), writer.apply
        seen = []

        def check(call: faults.Call) -> None:
            seen.append(call)
            assert exposed_keys(read_tree("/k"), node.original) == [], f"before {call}"

        with faults.inject(observe=check):
            run(layout)
        assert exposed_keys(read_tree("/k"), node.original) == []
        assert len(seen) > 20


def _state_key(root: str, tree: Tree) -> tuple:
    """Equal for two nodes in the same state: the same tree (journal times and lock pid aside), the same hard links."""
    links = sorted(
        rel for rel, entry in tree.items() if entry.kind == "file" and os.lstat(os.path.join(root, rel)).st_nlink > 1
    )
    tree = without_journal_times(tree)
    if LOCK in tree:
        tree[LOCK] = attrs.evolve(tree[LOCK], data=b"")
    return tree_key(tree), tuple(links)


def fs_remove(root: str) -> None:
    """Drop a scratch node and its recovery copies from the fake file system (keeps memory flat)."""
    import shutil

    for path in (root, f"{root}-apply", f"{root}-rollback"):
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(path)
