"""Faults at every file-system call of install-client and of its rollback: errors, power cuts, SIGKILL.

The calls are discovered by :mod:`migrate.testing.faults` from a clean run,
never listed here.  For every call N: an error there (EIO, ENOSPC, EACCES)
is undone to the exact previous tree, or the install completes to the exact
installed tree; a power cut there (pyfakefs and a real directory) or a real
SIGKILL (a forked process on the real disk) leaves a node from which
``rollback`` reaches the exact previous client store and ``install-client``
with the same files the exact installed one; a second cut during the
recovery is recovered from too.  At no call may a file expose a key.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys

import pytest
from install_support import INPUT, LOCK, STATE, condition2, core_client, without_times, write_inputs
from support import exposed_keys

from migrate import clientcert, clientstore, writer  # noqa: F401 - loaded before pyfakefs starts
from migrate.errors import MigrateError
from migrate.install import InstallRequest
from migrate.scan import Layout
from migrate.testing import faults
from migrate.testing.tree import Tree, diff_trees, read_tree, write_tree

ERROR_FAULTS = ("eio", "enospc", "eacces")


class Node:
    """Condition 2's Core under ``prefix``: the tree before, the tree a clean install gives, and the calls of both runs."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.original = condition2("core")
        ident = core_client()
        self.request = write_inputs(f"{prefix}{INPUT}", ident.cert_pem, ident.key_pem())
        self.installed = self._clean_install(f"{prefix}/installed")
        self.install_calls = faults.count_calls(lambda: self.install(self.plant(f"{prefix}/count-install")))
        self.rollback_calls = faults.count_calls(
            lambda: writer.rollback(self.plant(f"{prefix}/count-rollback", self.installed))
        )
        self._seen: set = set()

    def plant(self, root: str, tree: Tree | None = None) -> Layout:
        write_tree(self.original if tree is None else tree, root)
        return Layout.for_node(root)

    def install(self, layout: Layout):
        return clientstore.install(layout, self.request)

    def _clean_install(self, root: str) -> Tree:
        self.install(self.plant(root))
        return read_tree(root)

    def is_original(self, after: Tree) -> bool:
        """Exactly the tree before; a failure while clearing the lock may leave just the lock and its directory."""
        extra = set(after) - set(self.original)
        return extra <= {STATE, LOCK} and diff_trees(self.original, {k: v for k, v in after.items() if k not in extra}) == []

    def is_installed(self, after: Tree) -> bool:
        return diff_trees(without_times(self.installed), without_times(after)) == []

    def recovers(self, root: str, label: str) -> None:
        """No exposed key at ``root``; rollback of a copy gives the exact tree before, install in place the installed one."""
        after = read_tree(root)
        assert exposed_keys(after, self.original) == [], label
        key = frozenset((rel, repr(entry)) for rel, entry in without_times(after).items())
        if key in self._seen:
            return
        self._seen.add(key)
        undo = f"{root}-rollback"
        write_tree(after, undo)
        try:
            writer.rollback(Layout.for_node(undo))
        except MigrateError as exc:  # a cut before the first write: an X15.5 node untouched, nothing to roll back
            assert exc.id == "not-migrated-by-tool" and diff_trees(self.original, after) == [], f"{label}: {exc}"
        assert diff_trees(self.original, read_tree(undo)) == [], label
        self.install(Layout.for_node(root))
        assert self.is_installed(read_tree(root)), f"{label}: {diff_trees(self.installed, read_tree(root))}"


def _run(command, layout: Layout, at: int, fault: str) -> BaseException | None:
    """Run ``command`` with ``fault`` at call ``at``; what it raised (None if it completed).

    After a power cut the descriptors the run left open are closed, as the
    kernel closes a dead process's: on a real disk its ``flock`` would
    otherwise still hold the lock against the recovery in this same process.
    """
    with faults.inject(at=at, fault=fault) as injector:
        try:
            command(layout)
        except (Exception, faults.PowerCut) as exc:  # noqa: BLE001 - judged by the caller
            raised: BaseException | None = exc
        else:
            raised = None
    if isinstance(raised, faults.PowerCut):
        for fd in list(injector._fds):
            with contextlib.suppress(OSError):
                os.close(fd)
    assert injector.tripped is not None, f"call {at} never came"
    return raised


@pytest.fixture(params=["fake", "real"])
def node(request, tmp_path) -> Node:
    if request.param == "fake":
        request.getfixturevalue("fs")
        return Node("/n")
    return Node(str(tmp_path))


@pytest.fixture
def fake_node(fs) -> Node:
    """The error matrices run in pyfakefs only (the power-cut and kill matrices cover the real disk)."""
    return Node("/n")


def _writes(calls: list[faults.Call]) -> list[faults.Call]:
    return [call for call in calls if call.writes]


class TestCounts:
    def test_the_runs_are_counted_and_write_through_fsops(self, node):
        """A clean install and rollback make dozens of counted calls; the install publishes each client file with replace."""
        assert len(_writes(node.install_calls)) > 20 and len(_writes(node.rollback_calls)) > 10
        replaced = {c.target.rpartition("/")[2] for c in node.install_calls if c.name == "replace"}
        assert {"client.pem", "clientprivkey.pem", "client-ssh.pem", "install.json"} <= replaced
        assert {"client.pem.previous", "clientprivkey.pem.previous", "client-ssh.pem.previous"} <= replaced

    def test_one_power_cut_mid_install_recovers_both_ways(self, node):
        """A power cut at the replace of clientprivkey.pem leaves a node rollback and install-client both recover."""
        at = next(c.number for c in node.install_calls if c.name == "replace" and c.target.endswith("/clientprivkey.pem"))
        root = f"{node.prefix}/one"
        assert isinstance(_run(node.install, node.plant(root), at, "power-cut"), faults.PowerCut)
        node.recovers(root, f"cut at {at}")


@pytest.mark.slow
class TestPowerCuts:
    @pytest.mark.parametrize("command", ["install", "rollback"])
    def test_power_cut_at_every_call_that_writes_recovers_both_ways(self, node, command):
        """A power cut at any writing call of install-client (or its rollback) recovers to the exact tree either way."""
        run, start, calls = (
            (node.install, None, node.install_calls)
            if command == "install"
            else (writer.rollback, node.installed, node.rollback_calls)
        )
        for call in _writes(calls):
            root = f"{node.prefix}/c{call.number}"
            raised = _run(run, node.plant(root, start), call.number, "power-cut")
            assert isinstance(raised, faults.PowerCut), f"cut at {call}: {raised!r}"
            node.recovers(root, f"power cut at {command} {call}")
        assert len(node._seen) > 5

    def test_second_power_cut_during_the_rollback_of_a_cut_install(self, node):
        """After a cut in install-client, a cut at a rotating call of the recovering rollback still recovers both ways."""
        points = _writes(node.install_calls)
        for index, call in enumerate(points):
            root = f"{node.prefix}/d{call.number}"
            _run(node.install, node.plant(root), call.number, "power-cut")
            probe = f"{root}-probe"
            write_tree(read_tree(root), probe)
            try:
                recovery = _writes(faults.count_calls(lambda p=probe: writer.rollback(Layout.for_node(p))))
            except MigrateError:  # cut before its first write: nothing to roll back (recovers() checks the tree)
                recovery = []
            if not recovery:
                continue
            at = recovery[(index * 7) % len(recovery)]
            _run(writer.rollback, Layout.for_node(root), at.number, "power-cut")
            node.recovers(root, f"cut at install {call}, then at rollback {at}")


@pytest.mark.slow
class TestErrors:
    @pytest.mark.parametrize("fault", ERROR_FAULTS)
    def test_error_at_every_call_of_install_is_undone(self, fake_node, fault):
        """An error at any call of install-client raises a MigrateError and leaves exactly the tree before, or completes."""
        node, undone = fake_node, 0
        for call in node.install_calls:
            root = f"{node.prefix}/e{call.number}"
            raised = _run(node.install, node.plant(root), call.number, fault)
            after = read_tree(root)
            label = f"{fault} at {call}"
            if raised is None:
                assert node.is_installed(after), label
            else:
                assert isinstance(raised, MigrateError), f"{label}: {raised!r}"
                assert node.is_original(after), f"{label}: {diff_trees(node.original, after)}"
                undone += 1
            node.recovers(root, label)
        assert undone > len(node.install_calls) // 3

    @pytest.mark.parametrize("fault", ERROR_FAULTS)
    def test_error_at_every_call_of_rollback_leaves_a_node_both_recoveries_finish(self, fake_node, fault):
        """An error at any call of the install's rollback raises a MigrateError, and the node still recovers both ways."""
        node = fake_node
        for call in node.rollback_calls:
            root = f"{node.prefix}/r{call.number}"
            raised = _run(writer.rollback, node.plant(root, node.installed), call.number, fault)
            if raised is not None:
                assert isinstance(raised, MigrateError), f"{fault} at {call}: {raised!r}"
            node.recovers(root, f"{fault} at rollback {call}")


def _fork_killed(node: Node, root: str, tree: Tree, command: str, at: int) -> None:
    """Plant ``tree`` at ``root`` and run ``command`` there in a forked child killed at call ``at``; wait for its death."""
    write_tree(tree, root)
    pid = os.fork()
    if pid == 0:
        code = 70  # the child never returns into pytest
        try:
            gc.disable()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            sys.stdout = sys.stderr = open(devnull, "w", closefd=False)  # noqa: SIM115 - the child exits below
            with faults.inject(at=at, fault="sigkill"):
                if command == "install":
                    node.install(Layout.for_node(root))
                else:
                    writer.rollback(Layout.for_node(root))
            code = 100
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{command} at {at}: status {status}"


@pytest.mark.slow
class TestKill:
    @pytest.mark.parametrize("command", ["install", "rollback"])
    def test_sigkill_at_every_call_recovers_both_ways(self, tmp_path, command):
        """A real process killed at any call of install-client (or its rollback) leaves a node both recoveries finish."""
        node = Node(str(tmp_path))
        start, calls = (node.original, node.install_calls) if command == "install" else (node.installed, node.rollback_calls)
        for call in calls:
            root = f"{tmp_path}/k{call.number}"
            _fork_killed(node, root, start, command, call.number)
            node.recovers(root, f"{command} killed at {call}")
        assert len(node._seen) > 5


def test_request_paths_are_absolute_for_the_children(tmp_path):
    """The forked children read the administrator's files by the absolute paths the request names."""
    request = write_inputs(str(tmp_path / "in"), b"x")
    assert isinstance(request, InstallRequest) and os.path.isabs(request.cert)
