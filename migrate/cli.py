"""The command line: the one place that prints reports and turns errors into exit codes.

Reports go to stdout, logs to stderr.  ``main(argv)`` returns the exit code:
0 success, 1 refused / blocked / failed, 2 usage error (and, for
``plan --detailed-exitcode``, changes pending).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_PENDING = 0, 1, 2, 2


def _parser() -> argparse.ArgumentParser:
    from . import __version__, policy

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text", help="report format (default: text)"
    )
    common.add_argument(
        "--log-format", choices=("console", "json"), default="console", help="log format on stderr (default: console)"
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")

    node = argparse.ArgumentParser(add_help=False)
    node.add_argument("node", metavar="NODE", help="the node root (on an appliance: /tandberg)")
    node.add_argument("--cert-dir", metavar="DIR", help="the certificate directory (default: NODE/persistent/certs)")
    node.add_argument(
        "--config", metavar="FILE", help="the xConfiguration text (default: NODE/persistent/xconfiguration.txt)"
    )
    checks = argparse.ArgumentParser(add_help=False)
    checks.add_argument(
        "--warn-days",
        type=int,
        default=policy.EXPIRY_WARNING_DAYS,
        metavar="N",
        help=f"report certificates that expire within N days (default: {policy.EXPIRY_WARNING_DAYS})",
    )

    parser = argparse.ArgumentParser(
        prog="expressway-migrate",
        description="Migrate a Cisco Expressway node's certificate store from X15.4 to X15.5, safely and reversibly.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    p = sub.add_parser("precheck", parents=[common, checks], help="read-only checks; exit 1 if any blocker")
    p.add_argument("node", metavar="NODE", nargs="?", help="the node root (on an appliance: /tandberg)")
    p.add_argument("--cert-dir", metavar="DIR", help="the certificate directory (default: NODE/persistent/certs)")
    p.add_argument(
        "--config", metavar="FILE", help="the xConfiguration text (default: NODE/persistent/xconfiguration.txt)"
    )
    p.add_argument(
        "--fleet",
        metavar="DIR",
        help="precheck every node root under DIR (a directory holding persistent/certs) instead of NODE",
    )
    p.add_argument(
        "--jobs",
        type=_positive_int,
        metavar="N",
        help="with --fleet: worker processes (default: one per core; 1 runs in this process)",
    )
    p = sub.add_parser("plan", parents=[common, node, checks], help="the precheck plus the actions apply would take")
    p.add_argument("--out", metavar="FILE", help="also write the plan's JSON to FILE, for apply --plan")
    p.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 0 when there is nothing to do, 2 when changes are pending",
    )
    p = sub.add_parser("apply", parents=[common, node, checks], help="migrate the node, then prove the result")
    p.add_argument("--plan", metavar="FILE", help="execute this saved plan; refused if the node changed since")
    sub.add_parser("verify", parents=[common, node], help="check the X15.5 invariants on disk")
    p = sub.add_parser("rollback", parents=[common, node], help="return a migrated node to its exact X15.4 state")
    p.add_argument(
        "--force",
        action="store_true",
        help="move files changed since the migration to a directory outside the store, then roll back",
    )
    sub.add_parser("status", parents=[common, node], help="say which state the node is in")
    p = sub.add_parser(
        "assess",
        parents=[common],
        help="will the traversal zone, SSH tunnels, MRA and WebRTC still work; exit 1 if a service fails",
    )
    p.add_argument("--core", required=True, metavar="NODE", help="the Core's node root (X15.4 or X15.5)")
    p.add_argument("--edge", required=True, metavar="NODE", help="the Edge's node root (X15.4 or X15.5)")
    p.add_argument(
        "--public-ca",
        metavar="FILE",
        help="PEM CAs treated as publicly trusted (default: the system trust store)",
    )
    p.add_argument(
        "--cutoff",
        metavar="DATE",
        type=_iso_date,
        help="the public CAs' clientAuth cut-off, YYYY-MM-DD (default: per CA, see policy.CLIENT_AUTH_CUTOFFS)",
    )
    p = sub.add_parser("rehearse", parents=[common], help="rehearse the whole upgrade in memory; the node is only read")
    p.add_argument("node", metavar="NODE", nargs="?", help="the node root (default: the bundled sample nodes)")
    p.add_argument("--sample", metavar="NAME", action="append", help="rehearse this bundled sample (default: all)")
    p.add_argument(
        "--no-crash",
        dest="crash",
        action="store_false",
        help="skip the crash rehearsal (stopping apply and rollback at each file-system call)",
    )
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def _check_usage(parser: argparse.ArgumentParser, args) -> None:
    """The rules argparse cannot state: precheck takes NODE or --fleet, exactly one."""
    if args.command != "precheck":
        return
    if (args.node is None) == (args.fleet is None):
        parser.error("precheck: pass either NODE or --fleet DIR, not both and not neither")
    if args.fleet is not None and (args.cert_dir or args.config):
        parser.error("precheck: --cert-dir and --config name one node's files; they do not apply to --fleet")
    if args.fleet is None and args.jobs is not None:
        parser.error("precheck: --jobs applies only with --fleet")


def _iso_date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _configure_logging(fmt: str, verbosity: int) -> None:
    """Records below the level ``-v`` asks for are dropped unseen; structlog is set up for the first that is not."""
    import functools

    from . import logs

    level = (logs.WARNING, logs.INFO, logs.DEBUG)[min(verbosity, 2)]
    logs.configure(level, functools.partial(_setup_structlog, fmt, level))


def _setup_structlog(fmt: str, level: int, structlog) -> None:
    processors = [structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True)]
    if fmt == "json":
        processors += [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty()))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def _layout(args):
    from .scan import Layout

    return Layout.for_node(args.node, cert_dir=args.cert_dir, config=args.config)


def _make_plan(args, **kwargs):
    """Scan the node the arguments name, and plan its migration (the dry run)."""
    from . import checks
    from .plan import make_plan
    from .scan import scan

    return make_plan(checks.analyse(scan(_layout(args))), **kwargs)


def _precheck(args) -> tuple[dict, int]:
    if args.fleet is not None:
        return _precheck_fleet(args)
    plan = _make_plan(args, warn_days=args.warn_days)
    doc = {
        "format_version": 1,
        "command": "precheck",
        "node": plan.node,
        "ready": plan.ready,
        "state": plan.state,
        "migrated_by_tool": plan.migrated_by_tool,
        "findings": [f.as_dict() for f in plan.findings],
    }
    return doc, EXIT_OK if plan.ready else EXIT_FAIL


def _precheck_fleet(args) -> tuple[dict, int]:
    """Precheck every node under ``--fleet``, with a progress bar on a terminal."""
    import os

    from . import fleet
    from .errors import MigrateError

    top = os.path.abspath(args.fleet)
    if not os.path.isdir(top):
        raise MigrateError(
            f"{args.fleet} is not a directory", id="fleet-missing", hint="pass the directory that holds the node roots"
        )
    jobs = args.jobs or os.cpu_count() or 1
    walk_findings: list = []
    results = fleet.run(top, walk_findings, jobs=jobs, warn_days=args.warn_days)
    if not sys.stderr.isatty():  # piped: no bar, and no need to load one
        with contextlib.closing(results):
            nodes = list(results)
    else:
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: the workers fork from a single-threaded process
        with contextlib.closing(results), tqdm(results, desc="precheck", unit=" nodes", file=sys.stderr) as bar:
            nodes = list(bar)
    if not nodes:
        skipped = "; ".join(f.path for f in walk_findings if f.severity != "info")
        raise MigrateError(
            f"no node root (a directory holding persistent/certs) under {args.fleet}"
            + (f"; not readable: {skipped}" if skipped else ""),
            id="fleet-empty",
            hint="pass the directory that holds the node roots",
        )
    doc = fleet.fleet_doc(top, nodes, walk_findings)
    return doc, EXIT_OK if doc["ready"] else EXIT_FAIL


def _plan(args) -> tuple[dict, int]:
    import json

    plan = _make_plan(args, warn_days=args.warn_days)
    doc = plan.as_dict()
    if args.out:
        _write_user_file(args.out, json.dumps(plan.as_dict(), indent=2).encode() + b"\n")
    if not plan.ready:
        return doc, EXIT_FAIL
    if args.detailed_exitcode and plan.actions:
        return doc, EXIT_PENDING
    return doc, EXIT_OK


def _write_user_file(path: str, data: bytes) -> None:
    from .errors import MigrateError

    try:
        with open(path, "wb") as out:
            out.write(data)
    except OSError as exc:
        raise MigrateError(
            f"cannot write {path}: {exc.strerror}", id="output-unwritable", hint="choose another --out path"
        ) from None


def _apply(args) -> tuple[dict, int]:
    from . import writer
    from .plan import load_saved_plan
    from .scan import read_capped

    saved = None
    if args.plan:
        from pathlib import Path

        from .errors import PlanError

        state = read_capped(Path(args.plan), 16 << 20, args.plan)
        if state.data is None:
            raise PlanError(
                f"cannot read the plan file ({state.kind})",
                id="plan-unreadable",
                path=args.plan,
                hint="pass the file written by plan --out",
            )
        saved = load_saved_plan(state.data, args.plan)
    outcome = writer.apply(_layout(args), saved_plan=saved, warn_days=args.warn_days)
    return outcome.as_dict(), EXIT_OK if outcome.ok else EXIT_FAIL


def _verify(args) -> tuple[dict, int]:
    from . import checks
    from .scan import scan

    layout = _layout(args)
    findings = checks.verify(checks.analyse(scan(layout)))
    doc = {
        "format_version": 1,
        "command": "verify",
        "node": str(layout.root),
        "ok": not findings,
        "findings": [f.as_dict() for f in findings],
    }
    return doc, EXIT_OK if not findings else EXIT_FAIL


def _rollback(args) -> tuple[dict, int]:
    from . import writer

    outcome = writer.rollback(_layout(args), force=args.force)
    return outcome.as_dict(), EXIT_OK


def _status(args) -> tuple[dict, int]:
    from . import checks
    from .plan import make_plan
    from .scan import scan

    layout = _layout(args)
    snapshot = scan(layout)
    plan = make_plan(checks.analyse(snapshot))
    record = snapshot.journal_data
    doc = {
        "format_version": 1,
        "command": "status",
        "node": str(layout.root),
        "state": plan.state,
        "migrated_by_tool": plan.migrated_by_tool,
        "journal": None if record is None else {k: record.get(k) for k in ("state", "started", "finished", "tool")},
        "pending_actions": len(plan.actions),
        "findings": [f.as_dict() for f in checks.blockers(plan.findings)],
    }
    return doc, EXIT_OK


def _rehearse(args) -> tuple[dict, int]:
    from . import rehearsal

    if args.node:
        from .scan import Layout
        from .tree import read_tree

        root = str(Layout.for_node(args.node).root)
        try:
            tree = read_tree(root)
        except (OSError, ValueError) as exc:
            from .errors import NodeError

            raise NodeError(
                f"cannot read the node at {root}: {exc}", id="node-unreadable", hint="pass a readable node root"
            ) from None
        reports = [rehearsal.rehearse_tree(tree, root, crash=args.crash)]
    else:
        from .samples import sample_names

        reports = rehearsal.rehearse_samples(args.sample or list(sample_names()), crash=args.crash)
    ok = all(r.ok for r in reports)
    doc = {
        "format_version": 1,
        "command": "rehearse",
        "ok": ok,
        "crash_points": sum(r.crash_points for r in reports),
        "rehearsals": [r.as_dict() for r in reports],
    }
    return doc, EXIT_OK if ok else EXIT_FAIL


def _read_public_cas(path: str | None) -> tuple[tuple, str]:
    """The CAs to treat as public, and where they came from: ``path``, else the system trust store."""
    import os
    import ssl
    from pathlib import Path

    from . import certs
    from .errors import CertError
    from .scan import read_capped

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


def _assess(args) -> tuple[dict, int]:
    from datetime import datetime, timezone

    from . import checks
    from .assess import assess
    from .scan import Layout, scan

    now = datetime.now(timezone.utc)
    core, edge = (checks.analyse(scan(Layout.for_node(root), now=now)) for root in (args.core, args.edge))
    public_cas, source = _read_public_cas(args.public_ca)
    result = assess(core, edge, public_cas=public_cas, public_source=source, now=now, cutoff=args.cutoff)
    return result.as_dict(), EXIT_FAIL if result.failed else EXIT_OK


COMMANDS = {
    "precheck": _precheck,
    "plan": _plan,
    "apply": _apply,
    "verify": _verify,
    "rollback": _rollback,
    "status": _status,
    "rehearse": _rehearse,
    "assess": _assess,
}


def _render(doc: dict, fmt: str) -> str:
    from .report import render

    if doc.get("command") == "rehearse":
        if fmt == "json":
            return render(doc, fmt)
        parts = [render(r, fmt) for r in doc["rehearsals"]]
        verdict = "ok" if doc["ok"] else "NOT OK"
        tail = f"rehearsal: {verdict}\n" if fmt == "text" else f"**Rehearsal: {verdict}**\n"
        return "\n".join(parts) + "\n" + tail
    return render(doc, fmt)


def _report_error(exc, args, code: int = EXIT_FAIL) -> int:
    """One line on stderr; with ``--format json`` also the error object on stdout."""
    print(exc.one_line(), file=sys.stderr)
    if args.format == "json":
        doc = {"format_version": 1, "command": args.command, "ok": False, "error": exc.as_dict()}
        sys.stdout.write(_render(doc, "json"))
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = _parser()
    try:
        args = parser.parse_args(argv)
        _check_usage(parser, args)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    _configure_logging(args.log_format, args.verbose)
    from .errors import MigrateError

    try:
        doc, code = COMMANDS[args.command](args)
    except MigrateError as exc:
        return _report_error(exc, args)
    except KeyboardInterrupt:
        return _report_error(
            MigrateError("interrupted", id="interrupted", hint="run status to see the node's state"), args, 130
        )
    except Exception as exc:  # a defect, not the user's mistake: one line, the traceback at -vv
        from . import logs

        logs.get_logger(__name__).debug("internal_error", exc_info=True)
        error = MigrateError(
            f"{type(exc).__name__}: {exc}",
            id="internal-error",
            hint="this is a defect; run with -vv for the traceback and report it",
        )
        return _report_error(error, args)
    sys.stdout.write(_render(doc, args.format))
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
