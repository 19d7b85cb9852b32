"""The command line: the one place that prints reports and turns errors into exit codes.

Reports go to stdout, logs to stderr.  ``main(argv)`` returns the exit code:
0 success, 1 refused / blocked / failed, 2 usage error (and, for
``plan --detailed-exitcode``, changes pending).  Every failure, a report that
cannot be written and a module of the tool that cannot be loaded included,
is one line on stderr, never a traceback (``--debug`` adds it).
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from . import streams

# ``plan --detailed-exitcode`` shares 2 with usage errors, as Terraform's does: a script tells them
# apart by the report on stdout (a usage error prints none).
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_PENDING, EXIT_INTERRUPTED = 0, 1, 2, 2, 130


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
    common.add_argument("--debug", action="store_true", help="on an error, print its traceback after its line")

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
    from . import commands

    return commands.plan(_layout(args), **kwargs)


def _precheck(args) -> tuple[dict, int]:
    if args.fleet is not None:
        return _precheck_fleet(args)
    plan = _make_plan(args, warn_days=args.warn_days)
    return plan.precheck_dict(), EXIT_OK if plan.ready else EXIT_FAIL


def _precheck_fleet(args) -> tuple[dict, int]:
    """Precheck every node under ``--fleet``, with a progress bar on a terminal."""
    from . import commands

    progress = None
    if sys.stderr.isatty():  # piped: no bar, and no need to load one
        from tqdm import tqdm

        tqdm.monitor_interval = 0  # no monitor thread: the workers fork from a single-threaded process

        def progress(results):
            with tqdm(results, desc="precheck", unit=" nodes", file=sys.stderr) as bar:
                yield from bar

    result = commands.precheck_fleet(args.fleet, jobs=args.jobs, warn_days=args.warn_days, progress=progress)
    return result.as_dict(), EXIT_OK if result.ready else EXIT_FAIL


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
    from . import commands, writer

    saved = commands.load_plan_file(args.plan) if args.plan else None
    outcome = writer.apply(_layout(args), saved_plan=saved, warn_days=args.warn_days)
    return outcome.as_dict(), EXIT_OK if outcome.ok else EXIT_FAIL


def _verify(args) -> tuple[dict, int]:
    from . import commands

    result = commands.verify(_layout(args))
    return result.as_dict(), EXIT_OK if result.ok else EXIT_FAIL


def _rollback(args) -> tuple[dict, int]:
    from . import writer

    outcome = writer.rollback(_layout(args), force=args.force)
    return outcome.as_dict(), EXIT_OK


def _status(args) -> tuple[dict, int]:
    from . import commands

    return commands.status(_layout(args)).as_dict(), EXIT_OK


def _rehearse(args) -> tuple[dict, int]:
    from .testing import command

    result = command.rehearse(args.node, samples=args.sample, crash=args.crash)
    return result.as_dict(), EXIT_OK if result.ok else EXIT_FAIL


def _assess(args) -> tuple[dict, int]:
    from . import commands
    from .scan import Layout

    layouts = (Layout.for_node(args.core), Layout.for_node(args.edge))
    result = commands.assess(*layouts, public_ca=args.public_ca, cutoff=args.cutoff)
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

    return render(doc, fmt)


def _error(id: str, message: str, hint: str):
    """A :class:`~migrate.errors.MigrateError`, or its :class:`streams.PlainError` stand-in if errors.py cannot be loaded."""
    try:
        from .errors import MigrateError
    except Exception:  # noqa: BLE001 - errors.py itself is broken: the same line, built here
        return streams.PlainError(id, message, hint)
    return MigrateError(message, id=id, hint=hint)


def _internal_error(exc: Exception):
    """A defect or a broken install, not the user's mistake: ``internal-error``."""
    message = " ".join(f"{type(exc).__name__}: {exc}".split())  # one line, whatever the exception says
    if isinstance(exc, ImportError):
        hint = "a module of the tool cannot be loaded: reinstall expressway-migrate; --debug shows the traceback"
    else:
        hint = "this is a defect; run with --debug for the traceback and report it"
    return _error("internal-error", message, hint)


def _unwritable(exc: Exception, code: int):
    """The report could not be written to stdout: ``report-unwritable``."""
    reason = (exc.strerror if isinstance(exc, OSError) else None) or str(exc) or type(exc).__name__
    return _error(
        "report-unwritable",
        f"cannot write the report to stdout ({reason}); the command itself ended with exit code {code}",
        "free space where stdout goes, or keep its reader open, and run the command again;"
        " status shows the node's state",
    )


def _debug_requested(args, argv: list[str] | None) -> bool:
    """``--debug``, from the parsed arguments, or from argv itself when they could not be parsed (a broken install)."""
    if args is not None:
        return bool(getattr(args, "debug", False))
    words = sys.argv[1:] if argv is None else argv
    return "--debug" in words[: words.index("--")] if "--" in words else "--debug" in words


def _report_error(exc, args, code: int = EXIT_FAIL, *, cause: BaseException | None = None, stdout_ok=True) -> int:
    """One line on stderr (with ``--debug`` then the traceback of ``cause``); with ``--format json`` also the
    error object on stdout, unless stdout is what failed.  Never raises."""
    streams.print_stderr(exc.one_line())
    if cause is not None:
        import traceback

        with contextlib.suppress(Exception):  # the line is out; a traceback that cannot be printed is no second error
            streams.print_stderr("".join(traceback.format_exception(cause)))
    if stdout_ok and getattr(args, "format", None) == "json":
        try:
            from .policy import FORMAT_VERSION
        except Exception:  # noqa: BLE001 - a broken install: the one line on stderr says so
            return code
        doc = {"format_version": FORMAT_VERSION, "command": getattr(args, "command", None), "ok": False}
        doc["error"] = exc.as_dict()
        try:
            text = _render(doc, "json")
        except Exception:  # noqa: BLE001 - the report module itself is broken: the same JSON, without it
            import json

            text = json.dumps(doc, indent=2) + "\n"
        try:
            streams.write_stdout(text)
        except (OSError, ValueError):  # stdout fails too: the one line on stderr stands alone
            streams.silence_stdout()
    return code


def _write_report(text: str, args, code: int, debug: bool) -> int:
    """Write the report; one ``report-unwritable`` line (exit 1) if stdout refuses it."""
    try:
        streams.write_stdout(text)
    except (OSError, ValueError) as exc:  # ENOSPC, EIO, EPIPE, a closed file
        streams.silence_stdout()
        return _report_error(_unwritable(exc, code), args, EXIT_FAIL, cause=exc if debug else None, stdout_ok=False)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    The single place that turns exceptions into exit codes: every failure,
    from loading the tool's own modules to writing the report, is one line on
    stderr with a stable id and exit 1 (130 when interrupted), never a
    traceback unless ``--debug`` asks for it.
    """
    args = None
    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
            _check_usage(parser, args)
        except SystemExit as exc:  # usage error, --help or --version: argparse has written what it had to say
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
            return _write_report("", None, code, _debug_requested(None, argv))
        _configure_logging(args.log_format, args.verbose)
        from .errors import MigrateError

        try:
            doc, code = COMMANDS[args.command](args)
        except MigrateError as exc:
            return _report_error(exc, args, cause=exc if args.debug else None)
        text = _render(doc, args.format)
    except KeyboardInterrupt as exc:
        error = _error("interrupted", "interrupted", "run status to see the node's state")
        return _report_error(error, args, EXIT_INTERRUPTED, cause=exc if _debug_requested(args, argv) else None)
    except Exception as exc:  # noqa: BLE001 - a defect or a broken install, not the user's mistake: one line
        error = _internal_error(exc)
        return _report_error(error, args, cause=exc if _debug_requested(args, argv) else None)
    return _write_report(text, args, code, args.debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
