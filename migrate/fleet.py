"""Pre-check a fleet: every node root under one directory, in parallel, summed up.

Three pure parts and one runner:

- :func:`discover` walks the fleet directory lazily and yields each node root
  (a directory holding ``persistent/certs``) as a path relative to the fleet,
  or a :class:`~migrate.checks.Finding` for a directory it could not read or a
  link it did not follow.  It never follows a symbolic link and never
  descends into a node it found.
- :func:`precheck_node` prechecks one node and returns a small plain dict
  (``node``, ``ready``, ``at_risk``, ``findings``): what crosses the process
  boundary, never a snapshot or a certificate.
- :func:`summarise` counts ready, blocked and at-risk nodes and groups them by
  finding id.
- :func:`run` streams the node roots into a pool of processes in bounded
  batches (memory stays flat as the fleet grows) and yields the per-node
  results as they finish; with ``jobs=1`` it runs in this process.

Nothing here prints: the command line wires the progress bar and the report.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Generator, Iterable, Iterator

from . import policy
from .checks import BLOCKER, INFO, SEVERITIES, WARNING, Finding

FORMAT_VERSION = policy.FORMAT_VERSION  # one version for every document
CHUNKSIZE = 8  # nodes per task sent to a worker process
_IN_FLIGHT_PER_JOB = 4  # tasks queued per worker: enough to keep it busy, few enough to stay flat
_RANK = {severity: rank for rank, severity in enumerate(SEVERITIES)}


# --- Discovery ------------------------------------------------------------------


def _rel(path: str, top: str) -> str:
    rel = os.path.relpath(path, top)
    return "." if rel == os.curdir else rel.replace(os.sep, "/")


def _unreadable(rel: str, exc: OSError) -> Finding:
    return Finding(
        "directory-unreadable",
        WARNING,
        rel,
        f"{rel} cannot be read ({os.strerror(exc.errno or errno.EIO)}): nodes under it were not checked",
        "run as a user who can read it, or check that part of the fleet on its own",
    )


def _is_node(path: str) -> bool:
    """Whether ``path`` holds ``persistent/certs`` (no link followed); OSError if it cannot be told."""
    persistent = os.path.join(path, policy.CERT_DIR.split("/")[0])
    try:
        st = os.lstat(persistent)
    except (FileNotFoundError, NotADirectoryError):
        return False
    if stat.S_ISLNK(st.st_mode):
        return True  # a linked persistent/: a node whose precheck reports directory-not-safe
    if not stat.S_ISDIR(st.st_mode):
        return False
    try:
        os.lstat(os.path.join(path, policy.CERT_DIR))
    except (FileNotFoundError, NotADirectoryError):
        return False
    return True


def discover(fleet: str | os.PathLike) -> Iterator[str | Finding]:
    """Each node root under ``fleet`` (relative, ``/``-separated, sorted depth first), or a walk finding.

    A node root is a directory holding ``persistent/certs``; the walk does not
    descend into it.  Symbolic links are never followed (each one is an info
    finding), unreadable directories are skipped with a warning finding.
    """
    top = os.fspath(fleet)
    stack = [top]
    while stack:
        path = stack.pop()
        rel = _rel(path, top)
        try:
            if _is_node(path):
                yield rel
                continue
            with os.scandir(path) as entries:
                listed = sorted(entries, key=lambda entry: entry.name)
        except OSError as exc:
            yield _unreadable(rel, exc)
            continue
        subdirs = []
        for entry in listed:
            try:
                if entry.is_symlink():
                    if _points_to_dir(entry.path):
                        yield Finding(
                            "link-not-followed",
                            INFO,
                            _rel(entry.path, top),
                            f"{_rel(entry.path, top)} is a symbolic link: the fleet walk never follows links",
                            "pass the real directory with --fleet if it holds nodes that are not under this one",
                        )
                elif entry.is_dir(follow_symlinks=False):
                    subdirs.append(entry.path)
            except OSError as exc:
                yield _unreadable(_rel(entry.path, top), exc)
        stack.extend(reversed(subdirs))


def _points_to_dir(path: str) -> bool:
    try:
        return stat.S_ISDIR(os.stat(path).st_mode)
    except OSError:
        return False


# --- One node -------------------------------------------------------------------


def node_result(rel: str, findings: Iterable[dict]) -> dict:
    """The fleet's record of one node: its path, ``ready`` (no blocker), ``at_risk`` (ready, but a warning)."""
    findings = list(findings)
    severities = {f["severity"] for f in findings}
    ready = BLOCKER not in severities
    return {"node": rel, "ready": ready, "at_risk": ready and WARNING in severities, "findings": findings}


def precheck_node(fleet: str, rel: str, *, warn_days: int = policy.EXPIRY_WARNING_DAYS) -> dict:
    """Precheck the node at ``fleet/rel``; a :class:`MigrateError` becomes its blocker, not a crash."""
    from . import checks, facts
    from .errors import MigrateError
    from .scan import Layout, scan

    try:
        findings = checks.precheck(facts.analyse(scan(Layout.for_node(os.path.join(fleet, rel)))), warn_days=warn_days)
    except MigrateError as exc:
        error = Finding(exc.id, BLOCKER, exc.path, exc.message, exc.hint)
        return node_result(rel, [error.as_dict()])
    return node_result(rel, [f.as_dict() for f in findings])


def precheck_batch(fleet: str, rels: list[str], warn_days: int) -> list[dict]:
    """:func:`precheck_node` for each of ``rels``: one task of a worker process."""
    return [precheck_node(fleet, rel, warn_days=warn_days) for rel in rels]


# --- The summary ----------------------------------------------------------------


def summarise(nodes: Iterable[dict]) -> dict:
    """Counts (``nodes``, ``ready``, ``blocked``, ``at_risk``) and ``by_finding``: id -> severity, nodes.

    ``ready`` counts the nodes with no blocker, so ``ready + blocked == nodes``;
    ``at_risk`` counts the ready nodes with at least one warning.  A finding id
    counts each node once, however often it occurs there.
    """
    counts = {"nodes": 0, "ready": 0, "blocked": 0, "at_risk": 0}
    groups: dict[str, dict] = {}
    for node in nodes:
        counts["nodes"] += 1
        counts["ready" if node["ready"] else "blocked"] += 1
        counts["at_risk"] += bool(node["at_risk"])
        seen: dict[str, str] = {}
        for f in node["findings"]:
            if f["id"] not in seen or _RANK.get(f["severity"], 99) < _RANK.get(seen[f["id"]], 99):
                seen[f["id"]] = f["severity"]
        for fid, severity in seen.items():
            group = groups.setdefault(fid, {"severity": severity, "nodes": 0})
            group["nodes"] += 1
            if _RANK.get(severity, 99) < _RANK.get(group["severity"], 99):
                group["severity"] = severity
    order = sorted(groups, key=lambda fid: (_RANK.get(groups[fid]["severity"], 99), -groups[fid]["nodes"], fid))
    return {**counts, "by_finding": {fid: groups[fid] for fid in order}}


def fleet_doc(fleet: str, nodes: Iterable[dict], walk_findings: Iterable[Finding] = ()) -> dict:
    """The ``precheck --fleet`` document: nodes sorted by path, the walk's findings, the summary."""
    nodes = sorted(nodes, key=lambda node: node["node"])
    summary = summarise(nodes)
    return {
        "format_version": FORMAT_VERSION,
        "command": "precheck",
        "fleet": fleet,
        "ready": summary["blocked"] == 0,
        "nodes": nodes,
        "findings": [f.as_dict() for f in walk_findings],
        "summary": summary,
    }


# --- Running --------------------------------------------------------------------


def _batches(found: Iterable[str | Finding], walk_findings: list, size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for item in found:
        if isinstance(item, Finding):
            walk_findings.append(item)
            continue
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _context():
    """How worker processes start: forked from this process when that is safe, else from a server.

    On Linux, a process with one thread forks safely, and its workers start with every
    module they need already imported: no second interpreter to start.  With other
    threads running (a caller's, say), a fork could copy a lock another thread
    holds, so the workers fork from a small fresh server instead, which
    imports what every worker needs once.
    """
    import multiprocessing
    import sys
    import threading

    methods = multiprocessing.get_all_start_methods()
    if sys.platform.startswith("linux") and threading.active_count() == 1:  # macOS's frameworks do not survive a fork
        from . import certs  # noqa: F401 - imported once here, not once in each forked worker

        return multiprocessing.get_context("fork")
    if "forkserver" not in methods:
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["migrate.checks", "migrate.facts"])
    return context


def run(
    fleet: str,
    walk_findings: list,
    *,
    jobs: int = 1,
    warn_days: int = policy.EXPIRY_WARNING_DAYS,
    chunksize: int = CHUNKSIZE,
) -> Generator[dict, None, None]:
    """Precheck every node under ``fleet``, yielding each node's result as it finishes.

    The walk's findings are appended to ``walk_findings`` as they are met.
    ``jobs=1`` runs in this process; otherwise ``jobs`` worker processes take
    batches of ``chunksize`` node roots, with at most a few batches per worker
    in flight, so neither the walk nor the results pile up in memory.
    """
    found = discover(fleet)
    if jobs <= 1:
        for item in found:
            if isinstance(item, Finding):
                walk_findings.append(item)
            else:
                yield precheck_node(fleet, item, warn_days=warn_days)
        return
    import concurrent.futures as cf

    batches = _batches(found, walk_findings, chunksize)
    limit = jobs * _IN_FLIGHT_PER_JOB
    pool = cf.ProcessPoolExecutor(max_workers=jobs, mp_context=_context())
    try:
        pending: set = set()
        exhausted = False
        while pending or not exhausted:
            while not exhausted and len(pending) < limit:
                batch = next(batches, None)
                if batch is None:
                    exhausted = True
                else:
                    pending.add(pool.submit(precheck_batch, fleet, batch, warn_days))
            if not pending:
                break
            done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield from future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
