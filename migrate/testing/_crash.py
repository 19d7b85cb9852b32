"""The crash rehearsal: stop a command that changes the node at each call that writes, and recover from each stop.

Two operations are rehearsed this way, each a command and the ``rollback``
that undoes it:

- the migration: ``apply`` (from the X15.4 tree to the migrated one), and ``rollback``;
- with an install request, ``install-client`` (from the migrated tree to the
  installed one), and ``rollback`` of the install (named ``rollback-install``
  in crash points).

A stop is a power cut at that call (:mod:`migrate.testing.faults`): a write is
torn, and nothing after it reaches the disk.  From the state it leaves,
``rollback`` must give back the tree before the command exactly, and the
command run again the tree after it (the journals' times and the lock's pid
aside).  ``rollback`` undoes the newest operation the node records: from a
stop of ``install-client`` that left no install journal, that is the
migration, so it must give back the X15.4 tree.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import posixpath
from collections.abc import Callable

import attrs

from .. import policy
from ..errors import MigrateError
from ._fakefs import write_fake_tree
from ._forking import _can_fork, _in_child
from ._snapshot import FakeState, fake_tree
from .tree import diff_trees

INSTALL_JOURNAL_REL = f"{policy.STATE_DIR}/{policy.INSTALL_JOURNAL_NAME}"


@attrs.define
class _CrashRehearsal:
    """Stop a command and its rollback at each call that writes; recover from each stop both ways.

    The command is ``apply`` (from :attr:`before`, the X15.4 tree, to
    :attr:`after`, the migrated one), or with :attr:`install` the
    ``install-client`` of that request (from :attr:`before`, the migrated
    tree, to :attr:`after`, the installed one; :attr:`x154` is the tree
    before the migration).  The points are the calls that write of one clean
    run of the command and of one clean ``rollback``
    (:func:`migrate.testing.faults.count_calls`).  From the state a stop
    leaves, ``rollback`` must give back :attr:`before` exactly and the command
    :attr:`after` (journal and lock bytes aside).  Two stops that leave the
    same state (:meth:`_state_key`) are judged once.

    Where the process can fork (POSIX, one thread), the clean run itself is the
    rehearsal, in a child of the caller (so the caller's fake disk is never
    touched; it must hold :attr:`before` at :attr:`root`).  At each call that
    writes, before the call is made, the stop there is judged in place
    (:meth:`_judge_in_place`): what a power cut lets land of the call (half of
    a ``write``'s bytes; of any other call, nothing) is made to land;
    ``rollback`` runs on the state left, the state is put back object by
    object (:class:`~migrate.testing._snapshot.FakeState`), the command runs
    on it; and the whole fake file system is put back as it was before the
    call, the clean run's calls uncounted meanwhile.  The clean run goes on.

    The partial runs are thus made once in all, not once a point, and no tree
    is rewritten, read back through ``os`` or removed.  Elsewhere every point
    runs in process, on a scratch copy written for it
    (:meth:`_run_in_process`): the same points, the same judgement, about
    3.5 times as slowly (``tests/test_rehearsal_crash.py`` holds the two
    equal).
    """

    root: str
    before: dict
    after: dict
    filesystem: object
    fork: bool = True
    install: object = None  # an InstallRequest: rehearse install-client instead of apply
    x154: dict | None = None  # with install: the tree before the migration
    _scratch: str = ""
    _seen: dict = attrs.field(factory=dict)  # state key -> problem ("" = recovered)

    def run(self) -> tuple[int, list[tuple[str, str, str]]]:
        """The number of points tried, and those that did not recover (command, call, problem)."""
        points = self.points()
        return len(points), [point for point in points if point[2]]

    def points(self) -> list[tuple[str, str, str]]:
        """Every point tried, in order: the command stopped, the call, and what did not hold ("" when both recoveries did)."""
        return _in_child(self._run_forked) if self.fork and _can_fork() else self._run_in_process()

    # -- the two commands -----------------------------------------------------------------------------------

    @property
    def _names(self) -> tuple[str, str]:
        """The command and its rollback, as crash points name them."""
        return ("install-client", "rollback-install") if self.install is not None else ("apply", "rollback")

    def _command(self) -> Callable:
        from .. import writer

        if self.install is None:
            return writer.apply
        return functools.partial(_install, self.install)

    def _runs(self) -> tuple[tuple[str, dict, Callable], ...]:
        """Each run stopped: its name, the tree it starts from, and the run."""
        from .. import writer

        forward, backward = self._names
        return (forward, self.before, self._command()), (backward, self.after, writer.rollback)

    # -- forked: one clean run in a child of the caller, each stop judged as it comes -----------------------------

    def _run_forked(self) -> list[tuple[str, str, str]]:
        from ..scan import Layout
        from . import faults

        points: list[tuple[str, str, str]] = []
        for command, _, run in self._runs():
            held: dict = {}  # the injector of the run
            broke: list[BaseException] = []  # a failure while judging a point, raised after the run is unwound

            def stop_here(call, command=command, held=held, broke=broke) -> None:
                if not call.writes or broke:
                    return
                try:
                    problem = self._judge_in_place(held["injector"])
                except BaseException as exc:  # noqa: B036 - raised from points() once the clean run is unwound
                    broke.append(exc)
                    raise _Abandon from exc
                points.append((command, str(call), problem))

            try:
                with faults.inject(observe=stop_here) as held["injector"]:
                    run(Layout.for_node(self.root))
            except BaseException:  # noqa: B036 - whatever the run ended with, a failure to judge is the one to raise
                if broke:
                    raise broke[0] from None
                raise  # the clean run failed: as when it is counted in process, that is the caller's
            if broke:
                raise broke[0]
        return points

    def _judge_in_place(self, injector) -> str:
        """Judge a stop at the call the clean run is about to make, there and then, and put everything back.

        A power cut at the call lets nothing of it land but half of a write's bytes: those are written
        (:meth:`~migrate.testing.faults.Injector.tear`), and the disk is then as the stop leaves it.  The
        recoveries run with the injector paused (their calls are neither counted nor observed), each from that
        state, which is put back exactly between them (:class:`FakeState`); then the whole fake file system is
        put back as it was before the call (torn bytes, open files and all) for the clean run to go on.
        """
        state = FakeState(self.filesystem)
        try:
            with injector.pause():
                torn = injector.tear()
            links: dict[str, int] = {}
            key = self._state_key(fake_tree(self.filesystem, self.root, links=links), links)
            if key not in self._seen:
                left = FakeState(self.filesystem) if torn else state  # the state the stop leaves
                with injector.pause():
                    rolled_back = self._rollback_problems(self.root)
                    left.restore()
                    self._seen[key] = "; ".join(rolled_back + self._apply_problems(self.root))
        finally:
            state.restore()
        return self._seen[key]

    # -- in process: a scratch copy for each point ----------------------------------------------------------

    def _run_in_process(self) -> list[tuple[str, str, str]]:
        parent = posixpath.dirname(self.root.rstrip("/")) or "/"
        self._scratch = posixpath.join(
            parent, f".{posixpath.basename(self.root.rstrip('/')) or 'node'}-crash-rehearsal"
        )
        points = []
        try:
            for command, start, run in self._runs():
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
        """Roll back the node at ``node``; what differs from the tree that gives back (the newest operation undone)."""
        from .. import writer
        from ..scan import Layout

        if self.install is None:
            want, compare = self.before, _exactly
        elif self.filesystem.exists(posixpath.join(node, INSTALL_JOURNAL_REL)):  # type: ignore[attr-defined]
            want, compare = self.before, _without_times
        else:  # the stop left no record of the install: rollback undoes the migration
            assert self.x154 is not None, "an install's crash rehearsal needs the tree before the migration"
            want, compare = self.x154, _exactly
        try:
            writer.rollback(Layout.for_node(node))
        except MigrateError as exc:
            return [f"rollback: {exc.one_line()}"]
        return [f"rollback: {d}" for d in compare(want, fake_tree(self.filesystem, node))[:3]]

    def _apply_problems(self, node: str) -> list[str]:
        """Run the command again at ``node``; what differs from the tree it must give."""
        from ..scan import Layout

        name = self._names[0]
        try:
            self._command()(Layout.for_node(node))
        except MigrateError as exc:
            return [f"{name}: {exc.one_line()}"]
        compare = _without_times if self.install is not None else _without_journal
        return [f"{name}: {d}" for d in compare(self.after, fake_tree(self.filesystem, node))[:3]]

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


class _Abandon(BaseException):
    """Unwinds a clean run whose point could not be judged (not an ``Exception``: no cleanup of the tool's takes it
    for a failure of its own); the failure itself is raised from :meth:`_CrashRehearsal.points`."""


def _install(request, layout):
    """``install-client`` with ``request`` (the command a crash rehearsal of the install stops and runs again)."""
    from .. import clientstore

    return clientstore.install(layout, request)


def _exactly(want: dict, got: dict) -> list[str]:
    return diff_trees(want, got)


def _without_journal(want: dict, got: dict) -> list[str]:
    """The trees compared with the journals' bytes and the lock's pid blanked (``apply``: a new journal each run)."""
    return diff_trees(_blank(want), _blank(got))


def _without_times(want: dict, got: dict) -> list[str]:
    """The trees compared with the journals' times and the lock's pid blanked (an install keeps the migration's journal)."""
    return diff_trees(_blank(want, keep_journal=True), _blank(got, keep_journal=True))


def _blank(tree: dict, *, keep_journal: bool = False) -> dict:
    """``tree`` without what differs from run to run: the journals' times (or all their bytes) and the lock's pid."""
    lock_rel = f"{policy.STATE_DIR}/{policy.LOCK_NAME}"
    out = dict(tree)
    if lock_rel in out:
        out[lock_rel] = attrs.evolve(out[lock_rel], data=b"")
    for journal_rel in (f"{policy.STATE_DIR}/{policy.JOURNAL_NAME}", INSTALL_JOURNAL_REL):
        if journal_rel not in out:
            continue
        data = b""
        if keep_journal:
            try:
                record = json.loads(out[journal_rel].data)
                record.pop("started", None)
                record.pop("finished", None)
                data = json.dumps(record, sort_keys=True).encode()
            except (ValueError, TypeError, AttributeError):
                data = out[journal_rel].data
        out[journal_rel] = attrs.evolve(out[journal_rel], data=data)
    return out


def _remove_tree(path: str) -> None:
    """Remove a scratch tree of the fake file system (never the real one: the caller checked)."""
    import shutil

    with contextlib.suppress(FileNotFoundError):
        shutil.rmtree(path)
