"""One function per command that only answers: it reads the node and returns a typed result with ``as_dict()``.

The command line (:mod:`migrate.cli`) parses arguments, calls one of these,
renders the result and turns it into an exit code; it reads nothing itself.
``apply`` and ``rollback`` are :mod:`migrate.writer`'s, ``rehearse`` the test
kit's (:mod:`migrate.testing._command`), ``precheck --fleet`` runs
:mod:`migrate.fleet`.  Every answer about a node
is read while holding the node's lock shared (:func:`migrate.journal.reading`),
so it never describes a node that another run is changing.
"""

from __future__ import annotations

from datetime import datetime

import attrs

from . import checks, facts, policy
from .errors import CertError
from .journal import reading
from .model import Finding, Layout, Snapshot
from .plan import Plan, make_plan
from .scan import read_capped, scan


def scan_locked(layout: Layout, *, now: datetime | None = None) -> Snapshot:
    """Scan the node while holding its lock shared: an answer never describes a node another run is changing."""
    with reading(layout):
        return scan(layout, now=now)


def plan(layout: Layout, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> Plan:
    """The plan of the node (the dry run); its ``as_dict`` is the plan document, ``precheck_dict`` precheck's."""
    return make_plan(facts.analyse(scan_locked(layout)), warn_days=warn_days)


@attrs.frozen
class Verification:
    """What ``verify`` found: every way the node falls short of the X15.5 invariants."""

    node: str
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def as_dict(self) -> dict[str, object]:
        return {
            "format_version": policy.FORMAT_VERSION,
            "command": "verify",
            "node": self.node,
            "ok": self.ok,
            "findings": [f.as_dict() for f in self.findings],
        }


def verify(layout: Layout) -> Verification:
    """Check the X15.5 invariants on disk."""
    return Verification(node=str(layout.root), findings=checks.verify(facts.analyse(scan_locked(layout))))


@attrs.frozen
class Status:
    """Which state the node is in, what its journal says, and how much is left to do."""

    node: str
    plan: Plan
    journal: dict[str, object] | None

    def as_dict(self) -> dict[str, object]:
        return {
            "format_version": policy.FORMAT_VERSION,
            "command": "status",
            "node": self.node,
            "state": self.plan.state,
            "migrated_by_tool": self.plan.migrated_by_tool,
            "journal": self.journal,
            "pending_actions": len(self.plan.actions),
            "findings": [f.as_dict() for f in checks.blockers(self.plan.findings)],
        }


def status(layout: Layout) -> Status:
    """The node's state, its journal's summary and the number of actions pending."""
    snapshot = scan_locked(layout)
    found = snapshot.journal_record
    summary = None
    if found is not None:
        record = found.as_dict()
        summary = {key: record.get(key) for key in ("state", "started", "finished", "tool")}
    return Status(node=str(layout.root), plan=make_plan(facts.analyse(snapshot)), journal=summary)


def read_public_cas(path: str | None) -> tuple[tuple, str]:
    """The CAs ``assess`` treats as public, and where they came from: ``path``, else the system trust store."""
    # Imported here, not at module level: this module is first imported by a command, which may run
    # inside a test's pyfakefs, and a module-level os or pathlib would keep the fake one afterwards.
    import os
    import ssl
    from pathlib import Path

    from . import certs

    cap = 64 << 20
    if path is not None:  # named by the user, not a file of the node: a link to it is followed
        state = read_capped(Path(os.path.realpath(path)), cap, path)
        if state.data is None:
            raise CertError(
                f"cannot read the public CA list ({state.error or state.kind})",
                id="public-ca-unreadable",
                path=path,
                hint="pass a readable PEM file of CA certificates",
            )
        try:
            return certs.load_ca_bundle(state.data), path
        except CertError as exc:
            raise CertError(
                f"the public CA list cannot be used: {exc.message}", id=exc.id, path=path, hint=exc.hint
            ) from None
    cafile = ssl.get_default_verify_paths().cafile
    if not cafile:
        return (), "the system trust store (none found)"
    cafile = os.path.realpath(cafile)  # distributions often link it; the store itself is trusted system data
    state = read_capped(Path(cafile), cap, cafile)
    if state.data is None:
        return (), f"the system trust store ({cafile}: {state.error or state.kind})"
    try:
        return certs.load_ca_bundle(state.data), cafile
    except CertError as exc:
        return (), f"the system trust store ({cafile}: {exc.message})"


def assess(
    core: Layout,
    edge: Layout,
    *,
    public_ca: str | None = None,
    cutoff=None,
    now: datetime | None = None,
    at=None,
    cutoffs=None,
    peers=None,
):
    """Will the pair's services still work after the upgrade (:func:`migrate.assess.assess`).

    ``at`` (a date) judges the pair on that day instead of now; ``cutoffs`` maps a cut-off
    table entry to its date, ``cutoff`` replaces them all; ``peers`` maps a peer's name to a
    PEM file of the certificate it presents.
    """
    from datetime import UTC

    from .assess import assess as judge

    when = now or datetime.now(UTC)
    pair = [facts.analyse(scan(layout, now=when)) for layout in (core, edge)]
    if at is not None and at != when.date():
        when = datetime(at.year, at.month, at.day, tzinfo=UTC)
    public_cas, source = read_public_cas(public_ca)
    certs_of = {name: _read_peer(name, path) for name, path in (peers or {}).items()}
    try:
        return judge(
            pair[0],
            pair[1],
            public_cas=public_cas,
            public_source=source,
            now=when,
            cutoff=cutoff,
            cutoffs=cutoffs,
            peers=certs_of,
        )
    except ValueError as exc:  # an unknown --cutoff CA (migrate.assess.cutoff_table)
        known = ", ".join(entry.ca for entry in policy.CLIENT_AUTH_CUTOFFS)
        raise CertError(
            f"--cutoff names {exc.args[0]!r}, which is not in the cut-off table",
            id="cutoff-ca-unknown",
            hint=f"use one of: {known} (any case), or --cutoff DATE for every public CA",
        ) from None


def _read_peer(name: str, path: str) -> tuple:
    """The certificates of ``--peer NAME=FILE``, leaf first."""
    import os
    from pathlib import Path

    from . import certs

    state = read_capped(Path(os.path.realpath(path)), policy.MAX_PEM_BYTES, path)
    if state.data is None:
        raise CertError(
            f"cannot read the certificate of peer {name!r} ({state.error or state.kind})",
            id="peer-unreadable",
            path=path,
            hint="pass --peer NAME=FILE with a readable PEM file of the certificate the peer presents",
        )
    try:
        return certs.load_certificates(state.data)
    except CertError as exc:
        raise CertError(
            f"the certificate of peer {name!r} cannot be used: {exc.message}", id=exc.id, path=path, hint=exc.hint
        ) from None


def load_plan_file(path: str) -> dict:
    """The plan document saved by ``plan --out`` at ``path``, checked as a plan (not yet against the node)."""
    from pathlib import Path

    from .errors import PlanError
    from .plan import load_saved_plan

    state = read_capped(Path(path), 16 << 20, path)
    if state.data is None:
        raise PlanError(
            f"cannot read the plan file ({state.kind})",
            id="plan-unreadable",
            path=path,
            hint="pass the file written by plan --out",
        )
    return load_saved_plan(state.data, path)


@attrs.frozen
class FleetPrecheck:
    """``precheck --fleet``: every node's precheck, the summary, and the directories that could not be walked."""

    doc: dict[str, object]

    @property
    def ready(self) -> bool:
        return bool(self.doc["ready"])

    def as_dict(self) -> dict[str, object]:
        return self.doc


def precheck_fleet(
    fleet_dir: str, *, jobs: int | None = None, warn_days: int = policy.EXPIRY_WARNING_DAYS, progress=None
) -> FleetPrecheck:
    """Precheck every node root under ``fleet_dir`` with ``jobs`` processes (default: one per core).

    ``progress``, if given, wraps the stream of node results (the command line's progress bar).
    """
    import contextlib
    import os

    from . import fleet
    from .errors import MigrateError

    top = os.path.abspath(fleet_dir)
    if not os.path.isdir(top):
        raise MigrateError(
            f"{fleet_dir} is not a directory", id="fleet-missing", hint="pass the directory that holds the node roots"
        )
    walk_findings: list[Finding] = []
    results = fleet.run(top, walk_findings, jobs=jobs or os.cpu_count() or 1, warn_days=warn_days)
    with contextlib.closing(results):
        nodes = list(progress(results) if progress is not None else results)
    if not nodes:
        skipped = "; ".join(f.path or "" for f in walk_findings if f.severity != "info")
        raise MigrateError(
            f"no node root (a directory holding persistent/certs) under {fleet_dir}"
            + (f"; not readable: {skipped}" if skipped else ""),
            id="fleet-empty",
            hint="pass the directory that holds the node roots",
        )
    return FleetPrecheck(fleet.fleet_doc(top, nodes, walk_findings))
