"""Rehearse the whole upgrade on an in-memory copy of a node.

The real node is only read (into a :class:`~migrate.testing.tree.Tree`); the cycle
runs in a pyfakefs file system: precheck, plan, apply, verify, re-plan,
re-apply, rollback, and a byte-for-byte comparison with the original.  Then
the crash rehearsal: ``apply`` is stopped dead (a power cut, from
:mod:`migrate.testing.faults`) at each of its file-system calls that writes, and so is
``rollback``; from each stop, ``rollback`` must give back the exact original
tree and ``apply`` the exact migrated one.  (A stop at a call that only reads
leaves the disk as a stop at the next call that writes.)

With an install request (``rehearse NODE --install-client CERT [KEY [CHAIN]]``),
the migrated node also installs that client identity, after ``re-apply``:
install-plan (a blocker stops there: a refused certificate is reported, never
installed), install, re-install, rollback-install (back to the exact migrated
tree), and the crash rehearsal of ``install-client`` and of its rollback.

Where the process can fork, the crash rehearsal makes one clean run of each
command, in a child of the caller, and judges the stop at each call that
writes as it comes: what the stop lets land (half of a torn ``write``) is made
to land, both recoveries run from there, and the fake file system is put back
after (:class:`~migrate.testing._snapshot.FakeState`).  No tree is rewritten,
read back through ``os`` or removed at each point
(:class:`~migrate.testing._crash._CrashRehearsal`; the child,
:mod:`migrate.testing._forking`; the fake file system,
:mod:`migrate.testing._fakefs`; :func:`faster_pyfakefs`, which every rehearsal
runs under, :mod:`migrate.testing._faster`).

:func:`rehearse` runs in whatever fake file system is active (a pyfakefs test's
``fs``), and refuses to run on the real disk.
"""

from __future__ import annotations

import functools
import os  # at module level, so that pyfakefs patches it
import posixpath

import attrs

from .. import checks, facts, policy
from ..errors import MigrateError

# The crash rehearsal, the fake file system and the forked children live in their own modules; every name this
# module had is still importable from here (the private ones too: tests reach them through this module).
from ._crash import _blank, _CrashRehearsal, _remove_tree  # noqa: F401
from ._fakefs import (  # noqa: F401
    _SPECIAL_KINDS,
    _modules,
    _refuse_real_call,
    active_fake_os,
    as_root,
    fake_filesystem,
    write_fake_tree,
)
from ._faster import faster_pyfakefs
from ._forking import _can_fork, _end_child, _fork, _in_child, _pickled_failure, _receive, _start_child  # noqa: F401
from ._snapshot import fake_tree
from .tree import diff_trees

__all__ = [
    "SAMPLE_ROOT",
    "CrashPoint",
    "Rehearsal",
    "Step",
    "active_fake_os",
    "as_root",
    "fake_filesystem",
    "faster_pyfakefs",
    "rehearse",
    "rehearse_sample",
    "rehearse_samples",
    "rehearse_tree",
    "write_fake_tree",
]

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

    command: str  # the run that was stopped: apply, rollback, install-client or rollback-install
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


INSTALL_FILES = ("cert.pem", "key.pem", "chain.pem")  # --install-client CERT [KEY [CHAIN]], in that order


def rehearse_tree(tree: dict, root: str, *, crash: bool = True, install_client: tuple[bytes, ...] = ()) -> Rehearsal:
    """Write ``tree`` at ``root`` in a fresh fake file system and rehearse the upgrade there.

    ``install_client`` holds the bytes of the certificate, and optionally of its
    key and chain, to rehearse ``install-client`` with after the migration:
    they are written in the fake file system beside the node, never inside it.
    """
    if len(install_client) > len(INSTALL_FILES):
        raise ValueError(f"install_client takes at most {len(INSTALL_FILES)} files: certificate, key, chain")
    with fake_filesystem():
        write_fake_tree(tree, root)
        request = _write_install_files(install_client, root) if install_client else None
        return rehearse(root, crash=crash, install=request)


def _write_install_files(files: tuple[bytes, ...], root: str):
    """Write the administrator's files in a directory of the fake file system outside the node; the request naming them."""
    from ..install import InstallRequest

    where, n = "/install-client", 0
    while os.path.lexists(where) or root == where or root.startswith(where + "/") or where.startswith(root + "/"):
        n += 1
        where = f"/install-client-{n}"
    os.makedirs(where, mode=0o700)
    paths = []
    for name, data in zip(INSTALL_FILES, files, strict=False):
        paths.append(posixpath.join(where, name))
        with open(paths[-1], "wb") as out:
            out.write(data)
        os.chmod(paths[-1], 0o600 if name == INSTALL_FILES[1] else 0o644)  # the key root's alone, as install-client wants
    cert, key, chain = (*paths, None, None)[:3]
    return InstallRequest(cert=cert, key=key, chain=chain)


def rehearse(root: str, *, crash: bool = True, install=None) -> Rehearsal:
    """The upgrade's whole cycle on the node at ``root``, in the current fake file system.

    With ``crash``, also stop ``apply`` and ``rollback`` at each file-system call
    that writes, and recover from each stop both ways.  With ``install`` (a
    :class:`~migrate.install.InstallRequest` naming files in the fake file
    system), also install that client identity into the migrated node, roll
    the install back, and (with ``crash``) stop ``install-client`` and its
    rollback at each call that writes.  Raises
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
    with as_root(fake_os), faster_pyfakefs(fake_os.filesystem):
        return _rehearse(str(root), crash, fake_os.filesystem, install)


_CRASH_STEPS = ("crash", "install-crash")


def _rehearse(root: str, crash: bool, filesystem, install=None) -> Rehearsal:
    from .. import writer
    from ..plan import make_plan
    from ..scan import Layout, scan

    def read_tree(root: str) -> dict:  # the node as read_tree reads it, straight from the fake objects
        return fake_tree(filesystem, root)

    layout = Layout.for_node(root)
    steps: list[Step] = []
    original = read_tree(root)
    tried = 0
    unrecovered: list[tuple[str, str, str]] = []

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
        if install is not None:
            points = _rehearse_install(root, layout, install, original, migrated, step, steps, crash, filesystem)
            tried, unrecovered = tried + points[0], unrecovered + points[1]
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
    if crash and migrated is not None and all(s.ok for s in steps if s.step not in _CRASH_STEPS):
        count, stopped = _CrashRehearsal(root, original, migrated, filesystem).run()
        step(
            "crash",
            not stopped,
            f"stopped apply and rollback at {count} call(s); "
            + (f"{len(stopped)} did not recover" if stopped else "every stop recovered both ways, exactly"),
        )
        tried, unrecovered = tried + count, unrecovered + stopped
    return Rehearsal(
        node=root,
        steps=tuple(steps),
        plan=plan.as_dict(),
        crash_points=tried,
        unrecovered=tuple(CrashPoint(*point) for point in unrecovered),
    )


def _rehearse_install(root, layout, request, original, migrated, step, steps, crash, filesystem) -> tuple[int, list]:
    """The install's steps on the migrated node at ``root``; the disk holds the migrated tree again afterwards.

    install-plan (a blocker ends the install's steps: nothing is installed),
    install, re-install, rollback-install, then with ``crash`` the crash
    rehearsal of ``install-client`` and its rollback (step ``install-crash``).
    Returns the crash points tried and those that did not recover.
    """
    from .. import clientcert, clientstore, writer

    report = clientcert.plan_install(layout, request)
    found = checks.blockers(report.findings)
    warnings = [f.id for f in report.findings if f.severity == checks.WARNING]
    actions = report.plan.actions
    if not step(
        "install-plan",
        report.plan.ready and not found,
        f"{len(found)} blocker(s): " + ", ".join(f.id for f in found) + "; nothing installed"
        if found
        else f"{len(actions)} action(s): "
        + ", ".join(f"{a.kind} {posixpath.basename(a.path)}" for a in actions)
        + (f"; {len(warnings)} warning(s): " + ", ".join(warnings) if warnings else ""),
    ):
        return 0, []
    result = clientstore.install(layout, request)
    step("install", result.ok and result.result == "installed", f"result {result.result}")
    installed = fake_tree(filesystem, root)
    result = clientstore.install(layout, request)
    changed = diff_trees(installed, fake_tree(filesystem, root))
    step(
        "re-install",
        result.result == "already-installed" and not changed,
        f"result {result.result}, {len(changed)} change(s) on disk",
    )
    outcome = writer.rollback(layout)
    differences = diff_trees(migrated, fake_tree(filesystem, root))
    step(
        "rollback-install",
        outcome.result == "rolled-back" and not differences,
        f"result {outcome.result}, "
        + ("the node is byte for byte the migrated node" if not differences else "; ".join(differences[:5])),
    )
    if not crash or not all(s.ok for s in steps):
        return 0, []
    tried, unrecovered = _CrashRehearsal(root, migrated, installed, filesystem, install=request, x154=original).run()
    step(
        "install-crash",
        not unrecovered,
        f"stopped install-client and its rollback at {tried} call(s); "
        + (f"{len(unrecovered)} did not recover" if unrecovered else "every stop recovered both ways, exactly"),
    )
    return tried, unrecovered


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
