"""The command line's arguments: every command, its options, and the usage errors argparse cannot state.

:func:`parser` builds the parser :mod:`migrate.cli` parses with; a usage error
(exit 2) shows the command's own usage, suggests the closest command for a
typo, and with ``--log-format json`` is one JSON record on stderr.
"""

from __future__ import annotations

import argparse

from . import streams


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors suggest the closest command and, with ``--log-format json``, are one
    JSON record on stderr."""

    json_errors = False
    commands: dict[str, argparse.ArgumentParser] = {}  # noqa: RUF012 - set per instance by parser()

    def error(self, message: str):  # type: ignore[override]
        if "invalid choice" in message and self.commands:
            message += _suggestion(message, list(self.commands))
        if not self.json_errors:
            super().error(message)
        usage = " ".join(self.format_usage().split())
        streams.print_stderr(
            streams.json_record("usage-error", f"{self.prog}: {message}", f"{usage}; see {self.prog} --help")
        )
        self.exit(2)  # argparse's status for a usage error, as super().error() exits (cli.EXIT_USAGE)


def _suggestion(message: str, choices: list[str]) -> str:
    import difflib

    word = message.split("invalid choice: ", 1)[-1].split(" ", 1)[0].strip("'\"")
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def parser(json_errors: bool = False) -> argparse.ArgumentParser:
    from . import __version__, policy

    common = Parser(add_help=False)
    common.add_argument(
        "--format", choices=("text", "json", "markdown"), default="text", help="report format (default: text)"
    )
    common.add_argument(
        "--log-format", choices=("console", "json"), default="console", help="log format on stderr (default: console)"
    )
    common.add_argument("-v", "--verbose", action="count", default=0, help="more logging on stderr (-vv: debug)")
    common.add_argument("--debug", action="store_true", help="on an error, print its traceback after its line")

    node = Parser(add_help=False)
    node.add_argument("node", metavar="NODE", help="the node root (on an appliance: /tandberg)")
    node.add_argument("--cert-dir", metavar="DIR", help="the certificate directory (default: NODE/persistent/certs)")
    node.add_argument(
        "--config", metavar="FILE", help="the xConfiguration text (default: NODE/persistent/xconfiguration.txt)"
    )
    checks = Parser(add_help=False)
    checks.add_argument(
        "--warn-days",
        type=int,
        default=policy.EXPIRY_WARNING_DAYS,
        metavar="N",
        help=f"report certificates that expire within N days (default: {policy.EXPIRY_WARNING_DAYS})",
    )

    parser = Parser(
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
        metavar="[CA=]DATE",
        type=_cutoff_arg,
        action="append",
        default=[],
        help="a public CA's clientAuth cut-off, YYYY-MM-DD: CA=DATE for one CA of the table ("
        + ", ".join(f"{c.ca} {c.date}" for c in policy.CLIENT_AUTH_CUTOFFS)
        + f"; any other public CA {policy.UNKNOWN_CA_CUTOFF}), DATE for every public CA; repeatable",
    )
    p.add_argument(
        "--at",
        metavar="DATE",
        type=_iso_date,
        help="judge the pair on this day, YYYY-MM-DD: which services break by then, and why (default: today)",
    )
    p.add_argument(
        "--peer",
        metavar="NAME=FILE",
        type=_peer_arg,
        action="append",
        default=[],
        help="the PEM certificate a peer presents; NAME is a zone's name or number, a peer address or the "
        "subject name the zone verifies; repeatable",
    )
    p = sub.add_parser(
        "csr", parents=[common, node], help="a PKCS#10 request for the node's client identity (serverAuth+clientAuth)"
    )
    key = p.add_mutually_exclusive_group()
    key.add_argument(
        "--new-key",
        choices=tuple(policy.CSR_KEY_TYPES),
        default=policy.CSR_DEFAULT_KEY,
        help=f"the new key's type (default: {policy.CSR_DEFAULT_KEY}); written next to the request, mode 0400",
    )
    key.add_argument("--reuse-key", action="store_true", help="sign with the node's privkey.pem (read only)")
    p.add_argument("--out", metavar="FILE", help="the request's file (default: CN-client.csr); never overwritten")
    p = sub.add_parser(
        "install-client",
        parents=[common, node, checks],
        help="install a client identity into an X15.5 node's client store (plan, lock, journal, rollback)",
    )
    p.add_argument("--cert", metavar="FILE", help="the client certificate (PEM, leaf first; a chain may follow)")
    p.add_argument("--key", metavar="FILE", help="its private key (default: the node's privkey.pem, for --reuse-key)")
    p.add_argument("--chain", metavar="FILE", help="intermediate CA certificates (PEM)")
    p.add_argument("--peer", metavar="NODE", help="also say whether this node's ca.pem (the peer's) trusts it")
    p.add_argument("--plan-only", action="store_true", help="print the plan and write nothing")
    p.add_argument(
        "--server-copy",
        action="store_true",
        help="install the server identity as the client identity on purpose (X15.5's option; it has no clientAuth)",
    )
    p = sub.add_parser(
        "sample", parents=[common], help="lay the bundled X15.4 sample nodes out on disk, with their modes and owners"
    )
    p.add_argument("dest", metavar="DEST", help="a new (or empty) directory: DEST/core and DEST/edge are written")
    p.add_argument("--role", choices=("core", "edge"), help="write only this sample, as the node root DEST itself")
    p = sub.add_parser("rehearse", parents=[common], help="rehearse the whole upgrade in memory; the node is only read")
    p.add_argument("node", metavar="NODE", nargs="?", help="the node root (default: the bundled sample nodes)")
    p.add_argument("--sample", metavar="NAME", action="append", help="rehearse this bundled sample (default: all)")
    p.add_argument(
        "--no-crash",
        dest="crash",
        action="store_false",
        help="skip the crash rehearsal (stopping apply and rollback at each file-system call)",
    )
    p.add_argument(
        "--install-client",
        nargs="+",
        metavar=("CERT", "KEY [CHAIN]"),  # shown as CERT [KEY [CHAIN] ...]: one to three files
        help="after the migration, also rehearse install-client with these files (read only; the key defaults to"
        " the node's privkey.pem, as install-client's --key does): plan, install, re-install, rollback, and its"
        " crash rehearsal",
    )
    parser.json_errors, parser.commands = json_errors, dict(sub.choices)
    for subparser in sub.choices.values():
        subparser.json_errors = json_errors
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return value


def check_usage(parser: argparse.ArgumentParser, args) -> None:
    """The rules argparse cannot state (an error shows the command's usage): precheck takes NODE or --fleet, exactly
    one; install-client takes --cert or --server-copy; rehearse --install-client takes 1 to 3 files, and NODE."""
    if args.command == "install-client" and (args.cert is None) == (not args.server_copy):
        parser = parser.commands["install-client"] if isinstance(parser, Parser) else parser
        parser.error("pass either --cert FILE or --server-copy, not both and not neither")
    if args.command == "install-client" and args.server_copy and (args.key or args.chain):
        parser = parser.commands["install-client"] if isinstance(parser, Parser) else parser
        parser.error("--server-copy installs the server's own key and chain: --key and --chain do not apply")
    if args.command == "rehearse" and args.install_client is not None:
        parser = parser.commands["rehearse"] if isinstance(parser, Parser) else parser
        if len(args.install_client) > 3:
            parser.error(
                f"--install-client takes at most 3 files (CERT [KEY [CHAIN]]), not {len(args.install_client)}"
                " (put NODE before --install-client)"
            )
        if args.node is None:
            parser.error(
                "--install-client needs NODE, before it: it rehearses an install on that node after its migration"
            )
    if args.command != "precheck":
        return
    parser = parser.commands["precheck"] if isinstance(parser, Parser) else parser
    if (args.node is None) == (args.fleet is None):
        parser.error("pass either NODE or --fleet DIR, not both and not neither")
    if args.fleet is not None and (args.cert_dir or args.config):
        parser.error("--cert-dir and --config name one node's files; they do not apply to --fleet")
    if args.fleet is None and args.jobs is not None:
        parser.error("--jobs applies only with --fleet")


def _iso_date(text: str):
    from datetime import date

    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _cutoff_arg(text: str) -> tuple[str | None, object]:
    """``assess --cutoff``: ``CA=DATE`` for one entry of the cut-off table, ``DATE`` for every public CA."""
    name, sep, day = text.rpartition("=")
    if sep and not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r} names no CA (CA=YYYY-MM-DD)")
    return (name.strip() or None), _iso_date(day)


def _peer_arg(text: str) -> tuple[str, str]:
    """``assess --peer NAME=FILE``."""
    name, sep, path = text.partition("=")
    if not (sep and name.strip() and path):
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=FILE")
    return name.strip(), path
