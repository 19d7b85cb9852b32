"""SIGKILL of the real command on the real file system, at every file-system call, and recovery both ways.

Each kill happens in a real process: a child forked from the test (or, in
``TestExecedProcesses``, a separate interpreter) runs ``expressway-migrate``
with :func:`migrate.testing.faults.inject` set to ``fault="sigkill"`` at call N, so it
dies there by the kernel's hand: no ``finally``, no ``except`` runs.  A kill at
a ``write`` first tears it (half its bytes land), so "inside a write" is
covered; a kill at the call after a ``replace`` or ``link`` falls between the
rename and the directory ``fsync``.  The call numbers are discovered by counting
a clean run (:func:`migrate.testing.faults.count_calls`), never listed by hand.

After each kill the node is judged on disk: no key readable by anyone who could
not read it before, no X15.4 file touched, no published file torn; then the node
must recover both ways, in place (through the lock file the killed run left)
and on copies (:func:`support.check_recovers`, once per distinct tree).

Every kill is real, so a whole matrix is a few hundred forks: the children run a
few at a time (``WIDTH``) while the test judges the ones that have died.
"""

from __future__ import annotations

import contextlib
import gc
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import attrs
import pytest
import support
from support import BACKUP, CERTS, CLIENT_FILES, CONFIG, JOURNAL, LOCK, STAGING_SUFFIX, STATE

from migrate import record
from migrate.cli import main
from migrate.testing import faults
from migrate.testing.tree import Tree, diff_trees, read_tree, write_tree

SCENARIO = "edge-crlf"  # CRLF config with two retired lines, foreign bytes and no final newline; non-root owners
WIDTH = 6  # killed children alive at once while the test judges the ones that died
COMPOUND_STRIDE = 7  # the compound tests kill apply at every 7th call ...
COMPOUND_SECOND = 3  # ... and the recovery at this many calls spread over its own count
PROJECT = Path(__file__).resolve().parent.parent

# A separate interpreter that kills itself at call N of ``apply NODE``.
KILLED_APPLY = """
import sys
from migrate.testing import faults
from migrate.cli import main
root, at = sys.argv[1], int(sys.argv[2])
with faults.inject(at=at, fault="sigkill"):
    code = main(["apply", root])
sys.exit(100 + code)  # not reached: the injected SIGKILL ends the process at call N
"""

# A separate interpreter that takes the node's lock, says so, and holds it.
LOCK_HOLDER = """
import sys, time
from migrate import journal
from migrate.scan import Layout
with journal.locked(Layout.for_node(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


# --- Helpers --------------------------------------------------------------------


@attrs.frozen
class Node:
    """The two trees every kill is judged against."""

    original: Tree  # X15.4, as planted
    migrated: Tree  # what a clean apply of ``original`` gives (lock written by this process)


@pytest.fixture(scope="module")
def node(tmp_path_factory) -> Node:
    """The scenario's X15.4 tree and the tree a clean apply makes of it, on the real disk."""
    base = tmp_path_factory.mktemp("reference")
    original = support.scenario(SCENARIO)
    support.plant(original, base / "x154")
    assert diff_trees(original, read_tree(base / "x154")) == []
    migrated = support.clean_migration(original, base / "x155")
    assert support.verify_ids(base / "x155") == []
    return Node(original=original, migrated=migrated)


def _main(*argv: str) -> tuple[int, str, str]:
    """Run the command in this process; its exit code, stdout and stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _count(argv: list[str], root: Path) -> list[faults.Call]:
    """The file-system calls of an unfaulted run of the command on the node at ``root``."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        calls = faults.count_calls(lambda: main([*argv, str(root), "--format", "json"]))
    assert json.loads(out.getvalue())["ok"] is True, f"{argv} at {root}: {err.getvalue()}"
    return calls


def _count_clean(argv: list[str], tree: Tree, root: Path) -> list[faults.Call]:
    """The file-system calls of a clean run of the command on ``tree`` (planted at ``root``)."""
    write_tree(tree, root)
    return _count(argv, root)


def _held_here(tree: Tree) -> Tree:
    """``tree`` with the lock file holding this process's pid, as recovery here writes it.

    The lock's bytes are the pid of its last holder: a killed child leaves its
    own, and recovery keeps it where it need not take the lock (a node already
    migrated).  It is the one thing two equal trees made by different processes
    may differ in; its mode and owner stay compared.
    """
    if LOCK not in tree:
        return tree
    return {**tree, LOCK: attrs.evolve(tree[LOCK], data=f"{os.getpid()}\n".encode())}


def _fork_killed(tree: Tree | None, root: Path, argv: list[str], at: int) -> int:
    """Plant ``tree`` at ``root`` (unless None) and fork a child running the command there, killed at call ``at``; its pid."""
    if tree is not None:
        write_tree(tree, root)
    pid = os.fork()
    if pid:
        return pid
    code = 70  # the child: never returns into pytest, whatever happens
    try:
        gc.disable()  # a short life: no collection copying the parent's pages
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        sys.stdout = sys.stderr = open(devnull, "w", closefd=False)  # noqa: SIM115 - the child exits below
        with faults.inject(at=at, fault="sigkill"):
            code = 100 + main([*argv, str(root)])
    finally:
        os._exit(code)


def _kill_each(tree: Tree | None, argv: list[str], points: Iterable[tuple[Path, int]]) -> Iterator[tuple[Path, int]]:
    """For each (root, n): plant ``tree`` at root (unless None), run the command there killed at call n; yield (root, n) once dead.

    Up to ``WIDTH`` children run at once; each is checked to have died of SIGKILL.
    """
    alive: deque[tuple[Path, int, int]] = deque()

    def reap() -> tuple[Path, int]:
        root, at, pid = alive.popleft()
        _, status = os.waitpid(pid, 0)
        how = f"exit {os.WEXITSTATUS(status)}" if os.WIFEXITED(status) else f"signal {os.WTERMSIG(status)}"
        assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"{argv} at call {at}: {how}"
        return root, at

    try:
        for root, at in points:
            alive.append((root, at, _fork_killed(tree, root, argv, at)))
            if len(alive) >= WIDTH:
                yield reap()
        while alive:
            yield reap()
    finally:  # a failed assertion above: still reap every child
        for _, _, pid in alive:
            os.waitpid(pid, 0)


def _assert_safe(after: Tree, node: Node, label: str) -> None:
    """What no kill may leave: an exposed key, a changed X15.4 file, a torn published file, a torn journal."""
    assert support.exposed_keys(after, node.original) == [], label
    for rel, entry in node.original.items():
        if rel == CONFIG:
            assert after.get(rel) in (entry, node.migrated[rel]), label  # the old bytes or the new, never a mix
        else:
            assert after.get(rel) == entry, f"{label}: {rel}"
    for rel in after.keys() - node.original.keys():
        made = after[rel]
        name = rel.rpartition("/")[2]
        if rel in (JOURNAL, LOCK):
            want = node.migrated[rel]
            assert (made.kind, made.mode, made.uid, made.gid) == (want.kind, want.mode, want.uid, want.gid), label
            if rel == JOURNAL:
                assert json.loads(made.data)["format_version"] == record.FORMAT_VERSION, label
        elif rel in node.migrated:
            assert made == node.migrated[rel], f"{label}: {rel}"  # published whole, with its mode and owner
        else:
            assert name.startswith(".") and name.endswith(STAGING_SUFFIX), f"{label}: unexpected {rel}"
            assert rel.rpartition("/")[0] in (CERTS, STATE, "persistent"), f"{label}: {rel}"


class Recoveries:
    """Judges recovery from each tree a kill leaves: on copies, and in place; once per distinct state.

    A kill that leaves the same state on disk as an earlier one (same paths, bytes,
    modes, owners and hard links; journal times and the dead holder's pid aside) is
    recovered the same way, so each recovery runs once per state, for the first kill
    point that left it.
    """

    def __init__(self, node: Node, scratch: Path) -> None:
        self.node = node
        self.scratch = scratch
        self.seen: set[frozenset] = set()  # trees recovered on copies
        self.in_place: set[tuple] = set()  # states recovered in place
        self.stuck: list[str] = []  # in-place recoveries that failed, one line each

    def check(self, after: Tree, label: str) -> None:
        """Apply on one copy of ``after`` reaches the migrated tree, rollback on another the X15.4 tree."""
        after = _held_here(after)
        key = support.tree_key(support.without_journal_times(after))
        if key in self.seen:
            return
        self.seen.add(key)
        scratch = str(self.scratch / f"copy{len(self.seen)}")
        support.check_recovers(after, self.node.original, self.node.migrated, scratch, label)

    def check_in_place(self, command: str, root: Path, after: Tree, label: str) -> None:
        """``command`` run again in this process on the killed node itself must finish the job.

        The node is used as the kill left it: its lock file, staging files and
        hard links.  Apply must exit 0 and leave the migrated tree, verified;
        rollback must exit 0 and leave the exact X15.4 tree.  A failure is
        recorded in ``stuck``, so that a matrix reports every point that fails.
        """
        state = (command, _state(root, after))
        if state in self.in_place:
            return
        self.in_place.add(state)
        target = self.node.migrated if command == "apply" else self.node.original
        code, _, err = _main(command, str(root))
        if code != 0:
            self.stuck.append(f"{label}: {command} in place exited {code}: {err.strip()}")
            return
        if command == "apply" and support.verify_ids(root) != []:
            self.stuck.append(f"{label}: apply in place left a node that does not verify: {support.verify_ids(root)}")
            return
        final = support.without_journal_bytes(_held_here(read_tree(root)))
        diff = diff_trees(support.without_journal_bytes(target), final)
        if diff:
            self.stuck.append(f"{label}: {command} in place left {diff}")


def _state(root: Path, tree: Tree) -> tuple:
    """A hashable value equal for two nodes in the same state: ``tree`` as read at ``root``, with its hard links."""
    return support.tree_key(support.without_journal_times(_held_here(tree))), _hard_links(root, tree)


def _hard_links(root: Path, tree: Tree) -> frozenset:
    """The files of ``tree`` at ``root`` that have more than one link: the names sharing each inode, and its count."""
    names: dict[int, set[str]] = {}
    counts: dict[int, int] = {}
    for rel, entry in tree.items():
        if entry.kind == "file":
            st = os.lstat(root / rel)
            if st.st_nlink > 1:
                names.setdefault(st.st_ino, set()).add(rel)
                counts[st.st_ino] = st.st_nlink
    return frozenset((frozenset(rels), counts[ino]) for ino, rels in names.items())


def _inside(count: int, k: int) -> list[int]:
    """``k`` call numbers spread evenly inside 1..count (at 1/(k+1), 2/(k+1), ... of the way)."""
    return sorted({min(count, max(1, round(i * count / (k + 1)))) for i in range(1, k + 1)})


def _labelled(calls: list[faults.Call], root: Path) -> Callable[[int], str]:
    def label(n: int) -> str:
        return str(calls[n - 1]).replace(str(root), "NODE")

    return label


# --- apply killed at every call ---------------------------------------------------


class TestKillEveryCall:
    @pytest.mark.slow
    @pytest.mark.parametrize(("command", "least_calls", "least_trees"), [("apply", 150, 20), ("rollback", 50, 10)])
    def test_killed_at_every_call_recovers_both_ways(self, node, tmp_path, command, least_calls, least_trees):
        """SIGKILL at each call of apply (or rollback) leaves no exposed key and a node that recovers both ways, in place and on copies."""
        start = node.original if command == "apply" else node.migrated
        calls = _count_clean([command], start, tmp_path / "count")
        assert len(calls) > least_calls and any(c.name in ("write", "unlink") for c in calls)
        label = _labelled(calls, tmp_path / "count")
        recoveries = Recoveries(node, tmp_path / "scratch")
        points = [(tmp_path / f"kill{c.number}", c.number) for c in calls]
        with contextlib.closing(_kill_each(start, [command], points)) as dead:
            for root, n in dead:
                after = read_tree(root)
                _assert_safe(after, node, f"{command} killed at {label(n)}")
                recoveries.check(after, f"{command} killed at {label(n)}")
                recoveries.check_in_place(command, root, after, f"{command} killed at {label(n)}")
        assert recoveries.stuck == [], "\n".join(recoveries.stuck)  # every kill point, not only the first that fails
        assert len(recoveries.seen) > least_trees  # the kills really left many different trees

    def test_kill_points_cover_torn_writes_and_renames_before_their_directory_fsync(self, node, tmp_path):
        """Apply writes the client key through a staging file, and fsyncs the directory only after (not with) each rename or link: kill points lie inside and between them."""
        calls = _count_clean(["apply"], node.original, tmp_path / "count")
        torn = [c for c in calls if c.name == "write" and "clientprivkey.pem" in c.target]
        assert torn, "no write of the client key is among the kill points"
        published = [c for c in calls if c.name in ("replace", "link")]
        assert len(published) >= 4
        for call in published:  # the fsync of the directory is a later call: a kill there falls before it runs
            directory = call.target.partition(" -> ")[2].rpartition("/")[0]
            fsync = next(c for c in calls[call.number :] if c.name == "fsync")
            assert fsync.target == directory and fsync.number > call.number, str(call)


# --- a second kill during recovery -----------------------------------------------


@pytest.mark.slow
class TestKillRecovery:
    """A second SIGKILL, during the recovery from a first one.

    Not every pair (the full n x m matrix runs in pyfakefs): apply is killed at
    every ``COMPOUND_STRIDE``-th call (1, 8, 15, ...), keeping the first n of
    each distinct state those kills leave (the kills before apply's first
    change all leave the X15.4 tree, those after its last the migrated one).
    The recovery then runs in that same directory and is killed at
    ``COMPOUND_SECOND`` calls spread evenly inside its own call count (at 1/4,
    2/4 and 3/4 of it), counted by an unfaulted recovery after the same first
    kill.  What the second kill leaves must recover both ways on copies, and in
    place by running the interrupted command again.
    """

    @pytest.mark.parametrize("recovery", ["rollback", "apply"])
    def test_recovery_killed_after_a_killed_apply_still_recovers(self, node, tmp_path, recovery):
        """A rollback (or re-apply) killed while recovering a killed apply leaves no exposed key, and running it again finishes the job."""
        calls = _count_clean(["apply"], node.original, tmp_path / "count")
        first_label = _labelled(calls, tmp_path / "count")
        strided = range(1, len(calls) + 1, COMPOUND_STRIDE)
        # The recovery's own calls after each first kill, counted where that kill happened; one n per state left.
        counted: dict[int, tuple[Path, list[faults.Call]]] = {}
        states: set[tuple] = set()
        with contextlib.closing(
            _kill_each(node.original, ["apply"], [(tmp_path / f"count{n}", n) for n in strided])
        ) as dead:
            for root, n in dead:
                first = read_tree(root)
                _assert_safe(first, node, f"apply killed at {first_label(n)}")
                state = _state(root, first)
                if state not in states:
                    states.add(state)
                    counted[n] = (root, _count([recovery], root))
        pairs = [(n, m) for n in sorted(counted) for m in _inside(len(counted[n][1]), COMPOUND_SECOND)]
        roots = {pair: tmp_path / "pair{}-{}".format(*pair) for pair in pairs}
        with contextlib.closing(_kill_each(node.original, ["apply"], [(roots[n, m], n) for n, m in pairs])) as dead:
            for _ in dead:
                pass
        recoveries = Recoveries(node, tmp_path / "scratch")
        second = {roots[pair]: pair for pair in pairs}
        with contextlib.closing(_kill_each(None, [recovery], [(roots[n, m], m) for n, m in pairs])) as dead:
            for root, m in dead:
                n = second[root][0]
                second_label = _labelled(counted[n][1], counted[n][0])
                where = f"apply killed at {first_label(n)}, then {recovery} at {second_label(m)}"
                after = read_tree(root)
                _assert_safe(after, node, where)
                recoveries.check(after, where)
                recoveries.check_in_place(recovery, root, after, where)  # the interrupted command, again
        assert recoveries.stuck == [], "\n".join(recoveries.stuck)  # every pair, not only the first that fails
        assert len(pairs) > 40 and len(recoveries.seen) > 10


# --- separate interpreters ---------------------------------------------------------


class TestExecedProcesses:
    def test_separately_execed_apply_killed_at_chosen_calls_recovers(self, node, tmp_path):
        """A fresh interpreter killed inside the key's write, after the first link, after the config's replace and at its last call leaves a recoverable node."""
        calls = _count_clean(["apply"], node.original, tmp_path / "count")
        label = _labelled(calls, tmp_path / "count")
        first_link = next(c.number for c in calls if c.name == "link")
        config_replace = next(c.number for c in calls if c.name == "replace" and c.target.endswith(CONFIG))
        chosen = [
            next(c.number for c in calls if c.name == "write" and "clientprivkey.pem" in c.target),  # torn key
            first_link + 1,  # published, its staging name not yet removed, no directory fsync
            config_replace + 1,  # renamed over the config, before the directory fsync
            len(calls),
        ]
        recoveries = Recoveries(node, tmp_path / "scratch")
        for n in chosen:
            root = tmp_path / f"exec{n}"
            write_tree(node.original, root)
            done = subprocess.run(
                [sys.executable, "-c", KILLED_APPLY, str(root), str(n)],
                check=False,
                cwd=PROJECT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                timeout=60,
            )
            assert done.returncode == -signal.SIGKILL, f"{label(n)}: {done.returncode} {done.stderr.decode()}"
            after = read_tree(root)
            _assert_safe(after, node, f"exec'd apply killed at {label(n)}")
            recoveries.check(after, f"exec'd apply killed at {label(n)}")
            recoveries.check_in_place("apply", root, after, f"exec'd apply killed at {label(n)}")
        assert recoveries.stuck == [], "\n".join(recoveries.stuck)
        assert len(recoveries.seen) == len(chosen)  # four different points, four different trees

    def test_apply_killed_after_a_random_delay_recovers(self, node, tmp_path):
        """``python -m migrate apply`` killed by the clock (seeded), wherever it then was, leaves a recoverable node."""
        command = [sys.executable, "-m", "migrate", "apply"]
        write_tree(node.original, tmp_path / "whole")
        started = time.monotonic()
        subprocess.run([*command, str(tmp_path / "whole")], check=True, cwd=PROJECT, capture_output=True, timeout=60)
        whole = time.monotonic() - started  # a run, interpreter start included, on this machine
        delay = random.Random(2024).uniform(0.0, 1.2 * whole)  # before it starts, mid-run, or after it finished
        root = tmp_path / "timed"
        write_tree(node.original, root)
        with subprocess.Popen(
            [*command, str(root)], cwd=PROJECT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        ) as proc:
            time.sleep(delay)
            proc.kill()
            code = proc.wait(timeout=60)
        assert code in (0, -signal.SIGKILL)  # killed, or finished before the clock ran out
        after = read_tree(root)
        _assert_safe(after, node, f"apply killed after {delay:.3f}s")
        recoveries = Recoveries(node, tmp_path / "scratch")
        recoveries.check(after, f"apply killed after {delay:.3f}s")
        recoveries.check_in_place("apply", root, after, f"apply killed after {delay:.3f}s")
        assert recoveries.stuck == [], "\n".join(recoveries.stuck)


# --- stale lock ----------------------------------------------------------------------


class TestStaleLock:
    def test_lock_of_a_live_holder_refuses_and_of_a_killed_one_does_not_block(self, node, tmp_path):
        """While a live process holds the lock apply exits 1 (lock-held, naming its pid) and changes nothing; once it is SIGKILLed apply migrates at once."""
        root = tmp_path / "node"
        write_tree(node.original, root)
        with subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(root)],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            text=True,
        ) as holder:
            try:
                assert holder.stdout is not None and "locked\n" in iter(holder.stdout.readline, "")
                held = read_tree(root)
                code, _, err = _main("apply", str(root))
                assert code == 1
                assert "error[lock-held]" in err and f"(pid {holder.pid})" in err, err
                assert diff_trees(held, read_tree(root)) == []  # the refusal changed nothing
                assert sorted(diff_trees(node.original, held)) == sorted([f"added {LOCK}", f"added {STATE}"])
                holder.kill()
                assert holder.wait(timeout=10) == -signal.SIGKILL
            finally:
                if holder.poll() is None:
                    holder.kill()
        assert read_tree(root)[LOCK].data == f"{holder.pid}\n".encode()  # the dead holder's lock file is still there
        started = time.monotonic()
        code, _, err = _main("apply", str(root))
        elapsed = time.monotonic() - started
        assert code == 0, err
        assert elapsed < 5, f"apply took {elapsed:.1f}s after the holder died"
        assert support.verify_ids(root) == []
        after = support.without_journal_bytes(read_tree(root))
        assert diff_trees(support.without_journal_bytes(node.migrated), after) == []
        for client, (counterpart, mode) in CLIENT_FILES.items():
            made = after[f"{CERTS}/{client}"]
            assert made.data == node.original[f"{CERTS}/{counterpart}"].data and made.mode == mode
        assert after[BACKUP].data == node.original[CONFIG].data
