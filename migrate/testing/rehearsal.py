"""Rehearse the whole upgrade on an in-memory copy of a node.

The real node is only read (into a :class:`~migrate.testing.tree.Tree`); the cycle
runs in a pyfakefs file system: precheck, plan, apply, verify, re-plan,
re-apply, rollback, and a byte-for-byte comparison with the original.  Then
the crash rehearsal: ``apply`` is stopped dead (a power cut, from
:mod:`migrate.testing.faults`) at each of its file-system calls that writes, and so is
``rollback``; from each stop, ``rollback`` must give back the exact original
tree and ``apply`` the exact migrated one.  (A stop at a call that only reads
leaves the disk as a stop at the next call that writes.)

Where the process can fork, the crash rehearsal makes one clean run of each
command and forks at each call that writes: the child inherits the fake disk
as it is at that call, cuts the power there and judges what it is left with,
so no tree is rewritten, read back through ``os`` or removed at each point
(:class:`_CrashRehearsal`).

:func:`rehearse` runs in whatever fake file system is active (a pyfakefs test's
``fs``), and refuses to run on the real disk.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os  # at module level, so that pyfakefs patches it
import pickle
import posix  # never patched: fork, pipes and _exit are the real process's
import posixpath
import sys
from collections.abc import Callable, Iterator
from typing import NoReturn

import attrs

from .. import checks, facts, policy
from ..errors import MigrateError
from ._snapshot import fake_tree
from .tree import diff_trees

FORMAT_VERSION = policy.FORMAT_VERSION  # one version for every document


@attrs.frozen
class Step:
    step: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return {"step": self.step, "ok": self.ok, "detail": self.detail}


@attrs.frozen
class CrashPoint:
    """A file-system call where a rehearsed run was stopped dead, and what recovering from there gave."""

    command: str  # the run that was stopped: apply or rollback
    call: str  # the call, as the fault injector names it: "#57 link(/tandberg/...)"
    problem: str  # what did not hold ("" when both recoveries did)

    def as_dict(self) -> dict:
        return {"command": self.command, "call": self.call, "problem": self.problem}


@attrs.frozen
class Rehearsal:
    """What a rehearsal did: each step, the dry-run plan, the crash points tried, and whether everything held."""

    node: str
    steps: tuple[Step, ...]
    plan: dict | None
    crash_points: int = 0
    unrecovered: tuple[CrashPoint, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps) and not self.unrecovered

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "command": "rehearse",
            "node": self.node,
            "ok": self.ok,
            "steps": [s.as_dict() for s in self.steps],
            "crash_points": self.crash_points,
            "unrecovered": [c.as_dict() for c in self.unrecovered],
            "plan": self.plan,
        }


def _refuse_real_call(name: str) -> Callable:
    def refuse(*args, **kwargs):
        raise RuntimeError(f"os.{name} is not faked by pyfakefs; a rehearsal must not reach the real disk")

    return refuse


# The modules whose ``os`` must be pyfakefs's for a rehearsal to stay off the real disk.
def _modules() -> tuple[str, ...]:
    from .faults import PATCHED_MODULES

    return (*PATCHED_MODULES, "migrate.testing.tree", "migrate.testing.rehearsal")


def active_fake_os():
    """pyfakefs's ``os`` module if every module of the cycle uses it, else None (the real disk)."""
    import importlib

    try:
        from pyfakefs.fake_os import FakeOsModule
    except ImportError:  # pragma: no cover - pyfakefs is a dependency
        return None
    found = []
    for name in _modules():
        module_os = importlib.import_module(name).__dict__.get("os")
        module_os = getattr(module_os, "_real", module_os)  # under migrate.testing.faults.inject
        if not isinstance(module_os, FakeOsModule):
            return None
        found.append(module_os)
    return found[0]


@contextlib.contextmanager
def as_root(fake_os) -> Iterator[None]:
    """Run as (fake) root, with pyfakefs's unfaked calls closed off; put everything back afterwards."""
    from pyfakefs.helpers import get_gid, get_uid, set_gid, set_uid

    patched = {"geteuid": lambda: 0, **{name: _refuse_real_call(name) for name in ("fchown", "lchown", "lchmod")}}
    saved = {name: fake_os.__dict__[name] for name in patched if name in fake_os.__dict__}
    uid, gid = get_uid(), get_gid()
    for name, value in patched.items():
        setattr(fake_os, name, value)
    set_uid(0)
    set_gid(0)
    try:
        yield
    finally:
        set_uid(uid)
        set_gid(gid)
        for name in patched:
            if name in saved:
                setattr(fake_os, name, saved[name])
            else:
                delattr(fake_os, name)


@contextlib.contextmanager
def fake_filesystem() -> Iterator[object]:
    """A fresh in-memory file system, as root, with pyfakefs's unfaked calls closed off."""
    from pyfakefs.fake_filesystem_unittest import Patcher

    # Import what the cycle uses before the file system is replaced.
    from .. import certs, writer  # noqa: F401
    from . import faults, tree  # noqa: F401

    with Patcher() as patcher, as_root(patcher.fake_modules["os"]):
        yield patcher.fs


def rehearse_tree(tree: dict, root: str, *, crash: bool = True) -> Rehearsal:
    """Write ``tree`` at ``root`` in a fresh fake file system and rehearse the upgrade there."""
    with fake_filesystem():
        write_fake_tree(tree, root)
        return rehearse(root, crash=crash)


_SPECIAL_KINDS = {"fifo": 0o010000, "socket": 0o140000, "device": 0o020000}  # S_IFIFO, S_IFSOCK, S_IFCHR


def write_fake_tree(tree: dict, root: str) -> None:
    """Write ``tree`` at ``root`` in the active fake file system, FIFOs, sockets and devices included.

    pyfakefs keeps those as entries of their kind, which the migration never opens.
    """
    from .tree import WRITABLE_KINDS, write_tree

    special = {rel: entry for rel, entry in tree.items() if entry.kind not in WRITABLE_KINDS}
    write_tree({rel: entry for rel, entry in tree.items() if rel not in special}, root)
    if not special:
        return
    fs = active_fake_os().filesystem  # the fake file system's own API makes them
    for rel, entry in special.items():
        kind_bits = _SPECIAL_KINDS.get(entry.kind)
        if kind_bits is not None:
            fake = fs.create_file(posixpath.join(root, rel), st_mode=kind_bits | entry.mode)
            fake.st_uid, fake.st_gid = entry.uid, entry.gid


def rehearse(root: str, *, crash: bool = True) -> Rehearsal:
    """The upgrade's whole cycle on the node at ``root``, in the current fake file system.

    With ``crash``, also stop ``apply`` and ``rollback`` at each file-system call
    that writes, and recover from each stop both ways.  Raises
    :class:`~migrate.errors.MigrateError` (``rehearsal-not-fake``) when no
    pyfakefs file system is active: a rehearsal never touches the real disk.
    """
    fake_os = active_fake_os()
    if fake_os is None:
        raise MigrateError(
            "a rehearsal runs only inside a fake file system: here it would change the real node",
            id="rehearsal-not-fake",
            hint="call migrate.rehearse inside a pyfakefs test (the fs fixture), or run expressway-migrate rehearse NODE",
        )
    with as_root(fake_os):
        return _rehearse(str(root), crash, fake_os.filesystem)


def _rehearse(root: str, crash: bool, filesystem) -> Rehearsal:
    from .. import writer
    from ..plan import make_plan
    from ..scan import Layout, scan

    def read_tree(root: str) -> dict:  # the node as read_tree reads it, straight from the fake objects
        return fake_tree(filesystem, root)

    layout = Layout.for_node(root)
    steps: list[Step] = []
    original = read_tree(root)

    def step(name: str, ok: bool, detail: str) -> bool:
        steps.append(Step(name, ok, detail))
        return ok

    analysis = facts.analyse(scan(layout))
    plan = make_plan(analysis)
    found = checks.blockers(plan.findings)
    warnings = [f for f in plan.findings if f.severity == checks.WARNING]
    if not step(
        "precheck",
        not found,
        f"{len(found)} blocker(s): " + ", ".join(f.id for f in found)
        if found
        else f"no blocker, {len(warnings)} warning(s)" + (": " + ", ".join(f.id for f in warnings) if warnings else ""),
    ):
        return Rehearsal(node=root, steps=tuple(steps), plan=plan.as_dict())
    step("plan", True, f"{len(plan.actions)} action(s): " + ", ".join(a.kind for a in plan.actions))
    migrated = None
    try:
        outcome = writer.apply(layout)
        step("apply", outcome.ok and outcome.result == "migrated", f"result {outcome.result}")
        problems = checks.verify(facts.analyse(scan(layout)))
        step("verify", not problems, "X15.5 invariants hold" if not problems else ", ".join(p.id for p in problems))
        again = make_plan(facts.analyse(scan(layout)))
        step("re-plan", not again.actions, f"{len(again.actions)} action(s) left")
        migrated = read_tree(root)
        outcome = writer.apply(layout)
        changed = diff_trees(migrated, read_tree(root))
        step(
            "re-apply",
            outcome.result == "already-migrated" and not changed,
            f"result {outcome.result}, {len(changed)} change(s) on disk",
        )
        outcome = writer.rollback(layout)
        step("rollback", outcome.result == "rolled-back", f"result {outcome.result}")
    except MigrateError as exc:
        step("error", False, exc.one_line())
    differences = diff_trees(original, read_tree(root))
    step(
        "compare",
        not differences,
        "the node is byte for byte as before (bytes, modes, owners, file set)"
        if not differences
        else "; ".join(differences[:5]),
    )
    if not crash or migrated is None or not all(s.ok for s in steps):
        return Rehearsal(node=root, steps=tuple(steps), plan=plan.as_dict())
    tried, unrecovered = _CrashRehearsal(root, original, migrated, filesystem).run()
    step(
        "crash",
        not unrecovered,
        f"stopped apply and rollback at {tried} call(s); "
        + (f"{len(unrecovered)} did not recover" if unrecovered else "every stop recovered both ways, exactly"),
    )
    return Rehearsal(
        node=root, steps=tuple(steps), plan=plan.as_dict(), crash_points=tried, unrecovered=tuple(unrecovered)
    )


@attrs.define
class _CrashRehearsal:
    """Stop apply and rollback at each call that writes; recover from each stop both ways.

    The points are the calls that write of one clean ``apply`` and of one clean
    ``rollback`` (:func:`migrate.testing.faults.count_calls`).  A stop is a power
    cut at that call: a write is torn, and nothing after it reaches the disk.
    From the state it leaves, ``rollback`` must give back :attr:`original`
    exactly and ``apply`` :attr:`migrated` (journal and lock bytes aside).  Two
    stops that leave the same state (:meth:`_state_key`) are judged once.

    Where the process can fork (POSIX, one thread), the clean run itself is the
    rehearsal: at each call that writes it forks, and the child, which
    inherits the fake disk as it is at that instant, cuts the power there,
    judges the state it is left with (the rollback in a child of its own, the
    apply in place, both at once) and reports; the clean run goes on.  The
    partial runs are thus made once in all, not once a point, and no tree is
    rewritten, read back through ``os`` or removed.  All of it happens in a
    child of the caller, so the caller's fake disk is never touched.
    Elsewhere every point runs in process, on a scratch copy written for it
    (:meth:`_run_in_process`): the same points, the same judgement, about
    twice as slowly (``tests/test_rehearsal_crash.py`` holds the two equal).
    """

    root: str
    original: dict
    migrated: dict
    filesystem: object
    fork: bool = True
    _scratch: str = ""
    _seen: dict = attrs.field(factory=dict)  # state key -> problem ("" = recovered)

    def run(self) -> tuple[int, list[CrashPoint]]:
        """The number of points tried, and those that did not recover."""
        points = self.points()
        unrecovered = [CrashPoint(command, call, problem) for command, call, problem in points if problem]
        return len(points), unrecovered

    def points(self) -> list[tuple[str, str, str]]:
        """Every point tried, in order: the command stopped, the call, and what did not hold ("" when both recoveries did)."""
        return _in_child(self._run_forked) if self.fork and _can_fork() else self._run_in_process()

    # -- forked: one clean run, a child at each point -------------------------------------------------------

    def _run_forked(self) -> list[tuple[str, str, str]]:
        from .. import writer
        from ..scan import Layout
        from . import faults

        points: list[tuple[str, str, str]] = []
        for command, run in (("apply", writer.apply), ("rollback", writer.rollback)):
            stopped: list[int] = []  # in the child of a point: the pipe to report on
            held: dict = {}  # the injector of the run

            def fork_here(call, command=command, stopped=stopped, held=held) -> None:
                if not call.writes:
                    return
                reader, report = posix.pipe()
                pid = _fork()
                if pid == 0:  # the child: cut the power at this very call, then judge what is left
                    posix.close(reader)
                    stopped.append(report)
                    held["injector"].at, held["injector"].fault = call.number, "power-cut"
                    return
                posix.close(report)
                key, problem = _receive(reader, pid)
                self._seen.setdefault(key, problem)
                points.append((command, str(call), problem))

            failure: BaseException | None = None
            try:
                with faults.inject(observe=fork_here) as held["injector"]:
                    run(Layout.for_node(self.root))
            except BaseException as exc:  # noqa: B036 - in a point's child, reported to the parent below
                if not stopped:  # the clean run failed: as when it is counted in process, that is the caller's
                    raise
                if not isinstance(exc, faults.PowerCut | MigrateError):  # what a stop may end with
                    failure = exc
            if stopped:  # only ever true in the child of a point, which ends here
                _end_child(stopped[0], functools.partial(self._judge_here, failure))
        return points

    def _judge_here(self, failure: BaseException | None) -> tuple[str, str]:
        """In the child of a point: the state key of the disk the stop left, and what recovering from it gave."""
        if failure is not None:
            raise failure
        links: dict[str, int] = {}
        key = self._state_key(fake_tree(self.filesystem, self.root, links=links), links)
        if key not in self._seen:  # as the parent knew it when it forked
            # The rollback in a child, on its own copy of the disk, while this process applies in place.
            rollback = _start_child(lambda: self._rollback_problems(self.root))
            applied = self._apply_problems(self.root)
            self._seen[key] = "; ".join(_receive(*rollback) + applied)
        return key, self._seen[key]

    # -- in process: a scratch copy for each point ----------------------------------------------------------

    def _run_in_process(self) -> list[tuple[str, str, str]]:
        from .. import writer

        parent = posixpath.dirname(self.root.rstrip("/")) or "/"
        self._scratch = posixpath.join(
            parent, f".{posixpath.basename(self.root.rstrip('/')) or 'node'}-crash-rehearsal"
        )
        points = []
        try:
            for command, start, run in (
                ("apply", self.original, writer.apply),
                ("rollback", self.migrated, writer.rollback),
            ):
                for call in self._points(command, start, run):
                    problem = self._stop_and_recover(command, start, run, call.number)
                    points.append((command, self._name(call, command), problem))
        finally:
            _remove_tree(self._scratch)
        return points

    def _points(self, command: str, start: dict, run) -> list:
        from ..scan import Layout
        from . import faults

        node = self._node(f"count-{command}")
        write_fake_tree(start, node)
        calls = faults.count_calls(lambda: run(Layout.for_node(node)))
        _remove_tree(node)
        return [call for call in calls if call.writes]

    def _stop_and_recover(self, command: str, start: dict, run, at: int) -> str:
        from ..scan import Layout
        from . import faults

        node = self._node(f"{command}-{at}")
        write_fake_tree(start, node)
        with faults.inject(at=at, fault="power-cut"), contextlib.suppress(faults.PowerCut, MigrateError):
            run(Layout.for_node(node))
        links: dict[str, int] = {}
        after = fake_tree(self.filesystem, node, links=links)
        key = self._state_key(after, links)
        if key not in self._seen:
            undo = self._node(f"{command}-{at}-rollback")
            write_fake_tree(after, undo)
            problems = self._rollback_problems(undo)
            _remove_tree(undo)
            problems += self._apply_problems(node)  # in place: a copy would lose what a stop leaves in links
            text = "; ".join(problems)
            for scratch in (undo, node):  # name the user's node, not the scratch copy
                text = text.replace(scratch, self.root.rstrip("/"))
            self._seen[key] = text
        _remove_tree(node)
        return self._seen[key]

    def _node(self, name: str) -> str:
        return posixpath.join(self._scratch, name)

    def _name(self, call, command: str) -> str:
        """The call as the injector names it, with the scratch copy's path shown as the node's."""
        return str(call).replace(self._node(f"count-{command}"), self.root.rstrip("/"))

    # -- the judgement, the same both ways -----------------------------------------------------------------

    def _rollback_problems(self, node: str) -> list[str]:
        from .. import writer
        from ..scan import Layout

        try:
            writer.rollback(Layout.for_node(node))
        except MigrateError as exc:
            return [f"rollback: {exc.one_line()}"]
        return [f"rollback: {d}" for d in diff_trees(self.original, fake_tree(self.filesystem, node))[:3]]

    def _apply_problems(self, node: str) -> list[str]:
        from .. import writer
        from ..scan import Layout

        try:
            writer.apply(Layout.for_node(node))
        except MigrateError as exc:
            return [f"apply: {exc.one_line()}"]
        return [f"apply: {d}" for d in diff_trees(_blank(self.migrated), _blank(fake_tree(self.filesystem, node)))[:3]]

    @staticmethod
    def _state_key(tree: dict, links: dict[str, int]) -> str:
        """Equal for two stops that left the same state: tree (journal times, lock pid aside) and hard links."""
        digest = hashlib.sha256()
        for rel, entry in sorted(_blank(tree, keep_journal=True).items()):
            data = entry.data or b""
            nlink = links.get(rel, 0) if entry.kind == "file" else 0
            digest.update(repr((rel, entry.kind, entry.mode, entry.uid, entry.gid, entry.target, nlink)).encode())
            digest.update(hashlib.sha256(data).digest())
        return digest.hexdigest()


def _can_fork() -> bool:
    """Whether the crash rehearsal may fork: POSIX, and no other thread that a child could inherit a lock from."""
    import threading

    return hasattr(posix, "fork") and threading.active_count() == 1


def _fork() -> int:
    """``fork``, with the standard streams flushed first so that no buffered output is written twice."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    return posix.fork()


def _in_child(work: Callable[[], object]):
    """``work()`` run in a forked child, on the child's copy of the fake disk; its result, or its exception, here."""
    return _receive(*_start_child(work))


def _start_child(work: Callable[[], object]) -> tuple[int, int]:
    """Fork a child that runs ``work()`` on its own copy of the fake disk; the pipe to :func:`_receive` from, and its pid."""
    reader, report = posix.pipe()
    pid = _fork()
    if pid == 0:
        posix.close(reader)
        _end_child(report, work)
    posix.close(report)
    return reader, pid


def _end_child(report: int, work: Callable[[], object]) -> NoReturn:
    """In a forked child: run ``work``, send its result (or its exception) down ``report``, and end the process.

    The child never returns into its parent's code: whatever happens, it ends
    here, without running the parent's cleanup (``os._exit``).
    """
    code = 1
    try:
        try:
            message = pickle.dumps(("ok", work()))
        except BaseException as exc:  # noqa: B036 - every failure is the parent's to raise
            message = _pickled_failure(exc)
        view = memoryview(message)
        while view:
            view = view[posix.write(report, view) :]
        posix.close(report)
        code = 0
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        posix._exit(code)


def _pickled_failure(exc: BaseException) -> bytes:
    """``exc`` to raise again in the parent: itself when it survives pickling, else a RuntimeError with its traceback."""
    import traceback

    try:
        message = pickle.dumps(("raise", exc))
        pickle.loads(message)
        return message
    except Exception:
        text = "".join(traceback.format_exception(exc))
        return pickle.dumps(("raise", RuntimeError(f"the crash rehearsal failed in a forked child:\n{text}")))


def _receive(reader: int, pid: int):
    """What the child ``pid`` sent down ``reader`` (after it ended): its result, or its exception raised here."""
    chunks = []
    try:
        while chunk := posix.read(reader, 1 << 16):
            chunks.append(chunk)
    finally:
        posix.close(reader)
        _, status = posix.waitpid(pid, 0)
    if not chunks:
        raise RuntimeError(f"a child of the crash rehearsal ended without a report (wait status {status})")
    kind, value = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's, through our own pipe
    if kind == "raise":
        raise value
    return value


def _blank(tree: dict, *, keep_journal: bool = False) -> dict:
    """``tree`` without what differs from run to run: the journal's times (or all its bytes) and the lock's pid."""
    from .. import policy

    journal_rel = f"{policy.STATE_DIR}/{policy.JOURNAL_NAME}"
    lock_rel = f"{policy.STATE_DIR}/{policy.LOCK_NAME}"
    out = dict(tree)
    if lock_rel in out:
        out[lock_rel] = attrs.evolve(out[lock_rel], data=b"")
    if journal_rel in out:
        data = b""
        if keep_journal:
            try:
                record = json.loads(out[journal_rel].data)
                record.pop("started", None)
                record.pop("finished", None)
                data = json.dumps(record, sort_keys=True).encode()
            except (ValueError, TypeError):
                data = out[journal_rel].data
        out[journal_rel] = attrs.evolve(out[journal_rel], data=data)
    return out


def _remove_tree(path: str) -> None:
    """Remove a scratch tree of the fake file system (never the real one: the caller checked)."""
    import shutil

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)


SAMPLE_ROOT = "/tandberg"


def rehearse_sample(name: str, *, crash: bool = True) -> Rehearsal:
    """Rehearse a bundled sample node, with its manifest's modes and owners."""
    from .samples import sample_tree

    report = rehearse_tree(sample_tree(name), SAMPLE_ROOT, crash=crash)
    return attrs.evolve(report, node=f"sample:{name}")


def rehearse_samples(names: list[str], *, crash: bool = True) -> list[Rehearsal]:
    """Rehearse several bundled samples, each in its own process when there is a core for it."""
    workers = min(len(names), os.cpu_count() or 1)
    if workers < 2 or not crash:  # without the crash rehearsal a sample takes well under a second
        return [rehearse_sample(name, crash=crash) for name in names]
    import concurrent.futures
    import multiprocessing

    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
        return list(pool.map(functools.partial(rehearse_sample, crash=crash), names))
