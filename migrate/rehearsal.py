"""Rehearse the whole upgrade on an in-memory copy of a node.

The real node is only read (into a :class:`~migrate.tree.Tree`); the cycle
runs in a pyfakefs file system: precheck, plan, apply, verify, re-plan,
re-apply, rollback, and a byte-for-byte comparison with the original.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import attrs

from . import checks
from .errors import MigrateError

FORMAT_VERSION = 1


@attrs.frozen
class Step:
    step: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return {"step": self.step, "ok": self.ok, "detail": self.detail}


@attrs.frozen
class Rehearsal:
    """What a rehearsal did: each step, the dry-run plan, and whether everything held."""

    node: str
    steps: tuple[Step, ...]
    plan: dict | None

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(step.ok for step in self.steps)

    def as_dict(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "command": "rehearse",
            "node": self.node,
            "ok": self.ok,
            "steps": [s.as_dict() for s in self.steps],
            "plan": self.plan,
        }


def _refuse_real_call(name: str) -> Callable:
    def refuse(*args, **kwargs):
        raise RuntimeError(f"os.{name} is not faked by pyfakefs; a rehearsal must not reach the real disk")

    return refuse


@contextlib.contextmanager
def fake_filesystem() -> Iterator[object]:
    """An in-memory file system, as root, with pyfakefs's unfaked calls closed off."""
    from pyfakefs.fake_filesystem_unittest import Patcher
    from pyfakefs.helpers import set_gid, set_uid

    # Import what the cycle uses before the file system is replaced.
    from . import certs, writer  # noqa: F401

    with Patcher() as patcher:
        fake_os = patcher.fake_modules["os"]
        for name in ("fchown", "lchown", "lchmod"):
            setattr(fake_os, name, _refuse_real_call(name))
        fake_os.geteuid = lambda: 0
        set_uid(0)
        set_gid(0)
        try:
            yield patcher.fs
        finally:
            from pyfakefs.helpers import reset_ids

            reset_ids()


def rehearse_tree(tree: dict, root: str) -> Rehearsal:
    """Write ``tree`` at ``root`` in a fresh fake file system and rehearse the upgrade there."""
    import posixpath

    from .tree import WRITABLE_KINDS, write_tree

    special = {rel: entry for rel, entry in tree.items() if entry.kind not in WRITABLE_KINDS}
    with fake_filesystem() as fs:
        write_tree({rel: entry for rel, entry in tree.items() if rel not in special}, root)
        # FIFOs, sockets and devices: pyfakefs keeps them as entries of their kind, never opened.
        for rel, entry in special.items():
            kind_bits = _SPECIAL_KINDS.get(entry.kind)
            if kind_bits is not None:  # the fake file system's own API: a local `import os` would be the real one
                fake = fs.create_file(posixpath.join(root, rel), st_mode=kind_bits | entry.mode)
                fake.st_uid, fake.st_gid = entry.uid, entry.gid
        return rehearse(root)


_SPECIAL_KINDS = {"fifo": 0o010000, "socket": 0o140000, "device": 0o020000}  # S_IFIFO, S_IFSOCK, S_IFCHR


def rehearse(root: str) -> Rehearsal:
    """The upgrade's whole cycle on the node at ``root`` in the current (fake) file system."""
    from . import writer
    from .plan import make_plan
    from .scan import Layout, scan
    from .tree import diff_trees, read_tree

    layout = Layout.for_node(root)
    steps: list[Step] = []
    original = read_tree(root)

    def step(name: str, ok: bool, detail: str) -> bool:
        steps.append(Step(name, ok, detail))
        return ok

    analysis = checks.analyse(scan(layout))
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
    try:
        outcome = writer.apply(layout)
        step("apply", outcome.ok and outcome.result == "migrated", f"result {outcome.result}")
        problems = checks.verify(checks.analyse(scan(layout)))
        step("verify", not problems, "X15.5 invariants hold" if not problems else ", ".join(p.id for p in problems))
        again = make_plan(checks.analyse(scan(layout)))
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
    return Rehearsal(node=root, steps=tuple(steps), plan=plan.as_dict())


SAMPLE_ROOT = "/tandberg"


def rehearse_sample(name: str) -> Rehearsal:
    """Rehearse a bundled sample node, with its manifest's modes and owners."""
    from .samples import sample_tree

    report = rehearse_tree(sample_tree(name), SAMPLE_ROOT)
    return attrs.evolve(report, node=f"sample:{name}")
