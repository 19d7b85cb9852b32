"""The command line: the one place that prints reports and turns errors into exit codes.

The arguments are :mod:`migrate.arguments`'s; each command's handler here calls
one function that returns a typed result, and renders its ``as_dict()``.

Reports go to stdout, logs to stderr.  ``main(argv)`` returns the exit code:
0 success, 1 refused / blocked / failed, 2 usage error (and, for
``plan --detailed-exitcode``, changes pending).  Every failure, a report that
cannot be written and a module of the tool that cannot be loaded included,
is one line on stderr, never a traceback (``--debug`` adds it).
"""

from __future__ import annotations

import contextlib
import sys

from . import streams

# ``plan --detailed-exitcode`` shares 2 with usage errors, as Terraform's does: a script tells them
# apart by the report on stdout (a usage error prints none).
EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_PENDING, EXIT_INTERRUPTED = 0, 1, 2, 2, 130


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
    if not plan.ready:  # a blocked node has no plan to save: --out writes nothing
        return doc, EXIT_FAIL
    if args.out:
        _write_user_file(args.out, json.dumps(doc, indent=2).encode() + b"\n")
    if args.detailed_exitcode and plan.actions:
        return doc, EXIT_PENDING
    return doc, EXIT_OK


def _write_user_file(path: str, data: bytes) -> None:
    from . import outputs

    hint = "choose another --out, or move the file away: a plan is never written over a file"
    outputs.write_new(path, data, 0o644, hint_exists=hint)


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
    from .testing import _command as command

    result = command.rehearse(args.node, samples=args.sample, crash=args.crash, install_client=args.install_client)
    return result.as_dict(), EXIT_OK if result.ok else EXIT_FAIL


def _sample(args) -> tuple[dict, int]:
    from .testing import _command as command

    return command.lay_out(args.dest, args.role).as_dict(), EXIT_OK


def _assess(args) -> tuple[dict, int]:
    from . import commands
    from .scan import Layout

    layouts = (Layout.for_node(args.core), Layout.for_node(args.edge))
    every = [day for name, day in args.cutoff if name is None]
    result = commands.assess(
        *layouts,
        public_ca=args.public_ca,
        cutoff=every[-1] if every else None,  # plain --cutoff DATE: every CA, as before
        cutoffs={name: day for name, day in args.cutoff if name is not None},
        at=args.at,
        peers=dict(args.peer),
    )
    return result.as_dict(), EXIT_FAIL if result.failed else EXIT_OK


def _csr(args) -> tuple[dict, int]:
    from . import csr

    result = csr.request(_layout(args), new_key=args.new_key, reuse_key=args.reuse_key, out=args.out)
    return result.as_dict(), EXIT_OK


def _install_client(args) -> tuple[dict, int]:
    from . import clientcert, clientstore
    from .install import InstallRequest

    request = InstallRequest(
        cert=args.cert,
        key=args.key,
        chain=args.chain,
        peer=args.peer,
        server_copy=args.server_copy,
        warn_days=args.warn_days,
    )
    run = clientcert.plan_install if args.plan_only else clientstore.install
    report = run(_layout(args), request)
    return report.as_dict(), EXIT_OK if report.ok else EXIT_FAIL


COMMANDS = {
    "precheck": _precheck,
    "csr": _csr,
    "install-client": _install_client,
    "plan": _plan,
    "apply": _apply,
    "verify": _verify,
    "rollback": _rollback,
    "status": _status,
    "rehearse": _rehearse,
    "sample": _sample,
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


def _words(argv: list[str] | None) -> list[str]:
    """The options of the command line before ``--``, for when they could not be parsed."""
    words = sys.argv[1:] if argv is None else argv
    return words[: words.index("--")] if "--" in words else words


def _debug_requested(args, argv: list[str] | None) -> bool:
    """``--debug``, from the parsed arguments, or from argv itself when they could not be parsed (a broken install)."""
    if args is not None:
        return bool(getattr(args, "debug", False))
    return "--debug" in _words(argv)


def _json_logs_requested(args, argv: list[str] | None) -> bool:
    """``--log-format json``, from the parsed arguments, or from argv itself when they could not be parsed."""
    if args is not None:
        return getattr(args, "log_format", None) == "json"
    words = _words(argv)
    return "--log-format=json" in words or any(
        a == "--log-format" and b == "json" for a, b in zip(words, words[1:], strict=False)
    )


def _report_error(
    exc, args, code: int = EXIT_FAIL, *, cause: BaseException | None = None, stdout_ok=True, json_logs=False
) -> int:
    """One line on stderr (with ``--debug`` then the traceback of ``cause``), or with ``--log-format json`` one JSON
    record holding both; with ``--format json`` also the error object on stdout, unless stdout is what failed.
    Never raises."""
    trace = None
    if cause is not None:
        import traceback

        with contextlib.suppress(Exception):  # a traceback that cannot be formatted is no second error
            trace = "".join(traceback.format_exception(cause))
    if json_logs or _json_logs_requested(args, None if args is not None else []):
        extra = {"exception": trace} if trace is not None else {}
        fields = exc.as_dict()
        streams.print_stderr(
            streams.json_record(fields["id"], fields["message"], fields["hint"], fields["path"], **extra)
        )
    else:
        streams.print_stderr(exc.one_line())
        if trace is not None:
            streams.print_stderr(trace)
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


def _write_report(text: str, args, code: int, debug: bool, json_logs: bool = False) -> int:
    """Write the report; one ``report-unwritable`` line (exit 1) if stdout refuses it."""
    try:
        streams.write_stdout(text)
    except (OSError, ValueError) as exc:  # ENOSPC, EIO, EPIPE, a closed file
        streams.silence_stdout()
        return _report_error(
            _unwritable(exc, code), args, EXIT_FAIL, cause=exc if debug else None, stdout_ok=False, json_logs=json_logs
        )
    return code


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); return the exit code.

    The single place that turns exceptions into exit codes: every failure,
    from loading the tool's own modules to writing the report, is one line on
    stderr with a stable id and exit 1 (130 when interrupted), never a
    traceback unless ``--debug`` asks for it.
    """
    args = None
    json_logs = _json_logs_requested(None, argv)
    try:
        from . import arguments  # inside the try: a module that cannot be loaded is one line, not a traceback

        parser = arguments.parser(json_errors=json_logs)
        try:
            args = parser.parse_args(argv)
            arguments.check_usage(parser, args)
        except SystemExit as exc:  # usage error, --help or --version: argparse has written what it had to say
            code = exc.code if isinstance(exc.code, int) else EXIT_USAGE
            return _write_report("", None, code, _debug_requested(None, argv), json_logs)
        _configure_logging(args.log_format, args.verbose)
        from . import logs
        from .errors import MigrateError

        with logs.warnings_as_records():  # a dependency's warning is a log record, never raw text on stderr
            try:
                doc, code = COMMANDS[args.command](args)
            except MigrateError as exc:
                return _report_error(exc, args, cause=exc if args.debug else None)
            text = _render(doc, args.format)
    except KeyboardInterrupt as exc:
        error = _error("interrupted", "interrupted", "run status to see the node's state")
        cause = exc if _debug_requested(args, argv) else None
        return _report_error(error, args, EXIT_INTERRUPTED, cause=cause, json_logs=json_logs)
    except Exception as exc:  # noqa: BLE001 - a defect or a broken install, not the user's mistake: one line
        error = _internal_error(exc)
        return _report_error(error, args, cause=exc if _debug_requested(args, argv) else None, json_logs=json_logs)
    return _write_report(text, args, code, args.debug)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
