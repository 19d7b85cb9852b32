"""Tests for migrate.logs: records below the command line's level never load structlog."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
import structlog.testing

from migrate import logs
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca

PROBE = """
import contextlib, io, json, sys
from migrate.cli import main
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
    code = main(sys.argv[1:])
print(json.dumps([code, "structlog" in sys.modules, err.getvalue()]))
"""


def _probe(*argv: str) -> tuple[int, bool, str]:
    out = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, check=True).stdout
    code, loaded, stderr = json.loads(out)
    return code, loaded, stderr


class TestCommandLine:
    def test_plan_never_loads_structlog(self, tmp_path):
        """A cold plan at the default level emits nothing, so structlog is never imported."""
        code, loaded, stderr = _probe("plan", str(build_node(tmp_path / "node", NodeSpec())))
        assert (code, loaded, stderr) == (0, False, "")

    def test_verbose_apply_loads_and_configures_it(self, tmp_path):
        """apply -v logs its changes as JSON lines at info, through the command line's setup."""
        node = build_node(tmp_path / "node", NodeSpec())
        code, loaded, stderr = _probe("apply", str(node), "-v", "--log-format", "json")
        assert code == 0 and loaded
        events = [json.loads(line) for line in stderr.splitlines()]
        assert events and {e["event"] for e in events} >= {"file_created"}
        assert all(e["level"] == "info" for e in events)


class TestLogger:
    def test_unconfigured_library_is_silent(self, capsys):
        """Without configure(), records reach neither stdout nor stderr, and structlog's default printer is unused."""
        with structlog.testing.capture_logs() as records:
            logs.get_logger("migrate.t").info("said", path="/x")
            logs.get_logger("migrate.t").warning("warned")
        assert records == []
        assert capsys.readouterr() == ("", "")

    def test_unconfigured_records_go_to_stdlib_logging(self, caplog):
        """A caller that configures the standard library's logging gets the records, with their fields."""
        with caplog.at_level(logging.DEBUG, logger="migrate"):
            logs.get_logger("migrate.writer").info("file_created", path="/x/client.pem", mode="0o440")
        [record] = [r for r in caplog.records if r.name == "migrate.writer"]
        assert record.levelno == logging.INFO
        assert record.getMessage() == "file_created path=/x/client.pem mode=0o440"
        assert (record.event, record.fields) == ("file_created", {"path": "/x/client.pem", "mode": "0o440"})

    def test_threshold_drops_records_before_structlog(self):
        """Below the configured level nothing reaches structlog, and setup runs once, for the first record above."""
        calls = []
        logs.configure(logs.WARNING, calls.append)
        with structlog.testing.capture_logs() as records:
            log = logs.get_logger("t")
            log.debug("dropped")
            log.info("dropped")
            assert calls == []
            log.error("kept", reason="x")
            log.warning("kept too")
        assert calls == [structlog]
        assert [r["event"] for r in records] == ["kept", "kept too"]

    def test_configure_without_setup_hands_records_to_structlog(self):
        """configure(level) alone hands the records at or above level to structlog as its caller set it up."""
        logs.configure(logs.INFO)
        with structlog.testing.capture_logs() as records:
            logs.get_logger("t").debug("dropped")
            logs.get_logger("t").info("said")
        assert [r["event"] for r in records] == ["said"]

    def test_reset_makes_it_quiet_again(self, capsys):
        """reset() forgets configure(): records go to logging again, and nothing is printed."""
        logs.configure(logs.DEBUG)
        logs.reset()
        with structlog.testing.capture_logs() as records:
            logs.get_logger("t").info("said")
        assert records == [] and capsys.readouterr() == ("", "")


LIBRARY_PROBE = """
import sys
from migrate import apply, Layout
outcome = apply(Layout.for_node(sys.argv[1]))
assert outcome.ok, outcome
"""


class TestLibrary:
    def test_apply_from_python_prints_nothing(self, tmp_path):
        """apply called from Python, in a fresh interpreter with no logging set up, writes nothing to stdout or stderr."""
        node = build_node(tmp_path / "node", NodeSpec())
        done = subprocess.run([sys.executable, "-c", LIBRARY_PROBE, str(node)], capture_output=True, text=True)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
        assert (node / "persistent" / "certs" / "client.pem").read_bytes() == (
            node / "persistent" / "certs" / "server.pem"
        ).read_bytes()


WARNING_PROBE = """
import sys, warnings
from migrate import commands
from migrate.cli import main

class LibraryWarning(UserWarning):
    pass

planned = commands.plan

def plan(*args, **kwargs):  # a dependency that warns in the middle of a command
    warnings.warn("this API is going away", LibraryWarning)
    return planned(*args, **kwargs)

commands.plan = plan
code = main(sys.argv[1:])
assert warnings.showwarning is warnings._showwarning_orig, "main left its hook behind"
sys.exit(code)
"""


def _json_lines(stderr: str) -> list[dict]:
    """Every line of ``stderr`` as a JSON object (a line that is not one fails the test)."""
    return [json.loads(line) for line in stderr.splitlines()]


class TestWarnings:
    @pytest.mark.parametrize("fmt", ["json", "console"])
    def test_a_dependencys_warning_is_a_log_record(self, tmp_path, fmt):
        """A warning raised during a command is a python_warning record on stderr, never Python's raw two lines."""
        node = build_node(tmp_path / "node", NodeSpec())
        argv = [sys.executable, "-c", WARNING_PROBE, "precheck", str(node), "--log-format", fmt]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stderr
        assert "LibraryWarning: this API" not in result.stderr and "warnings.warn(" not in result.stderr
        if fmt == "json":
            [record] = _json_lines(result.stderr)
            assert record["event"] == "python_warning" and record["level"] == "warning"
            assert (record["category"], record["message"]) == ("LibraryWarning", "this API is going away")
            assert record["origin"].endswith(":12")  # the line of the probe that warned
        else:
            [line] = result.stderr.splitlines()
            assert "python_warning" in line and "LibraryWarning" in line

    def test_the_filters_still_decide(self, tmp_path):
        """An error filter (python -W error) still makes the warning an error: one line, internal-error, exit 1."""
        node = build_node(tmp_path / "node", NodeSpec())
        argv = [sys.executable, "-W", "error::UserWarning", "-c", WARNING_PROBE, "precheck", str(node)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1
        assert result.stderr.startswith("error[internal-error]: LibraryWarning: this API is going away")
        assert "Traceback" not in result.stderr

    @pytest.mark.parametrize("key_type", ["dsa2048", "ed25519"])
    @pytest.mark.parametrize("command", ["precheck", "plan", "apply", "rehearse"])
    def test_unsupported_keys_log_json_lines_only(self, tmp_path, key_type, command):
        """A DSA or Ed25519 node, refused with -vv --log-format json: every stderr line is JSON, none a warning.

        Run as a user runs it (a new interpreter, Python's default warning
        filters) on whatever cryptography is installed: the newest releases'
        job runs it on the newest, which deprecates DSA.
        """
        identity = issue(make_ca("Example Internal CA"), "core.example.com", key_type=key_type)
        node = build_node(tmp_path / "node", NodeSpec(identity=identity))
        argv = [sys.executable, "-m", "migrate", command, str(node), "-vv", "--log-format", "json", "--format", "json"]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        assert result.returncode == 1, result.stderr
        records = _json_lines(result.stderr)
        assert [r for r in records if r["event"] == "python_warning"] == []
        assert "key-unsupported" in result.stdout

    def test_every_command_logs_json_lines_only(self, tmp_path):
        """The whole cycle, assess, csr, install-client, rehearse, the fleet and sample, each run as a user runs it
        (a new interpreter, Python's default filters) with -vv --log-format json: every stderr line is a JSON
        record, and none is a warning.  The newest releases' job runs it on the newest of everything."""
        from install_support import cas, condition2
        from support import plant

        from migrate.testing.pki import sign_csr

        base = tmp_path
        core, edge = str(base / "x154" / "core"), str(base / "x154" / "edge")
        private = cas()[1]  # one private CA for the pair: their links verify
        for role, root in (("core", core), ("edge", edge)):
            build_node(root, NodeSpec(role=role, identity=issue(private, f"{role}.example.com"), chown=True))
        core5, edge5 = str(base / "x155" / "core"), str(base / "x155" / "edge")
        plant(condition2("core"), core5)
        plant(condition2("edge"), edge5)
        (base / "public.pem").write_bytes(cas()[0].cert_pem)

        def run(*argv: str) -> subprocess.CompletedProcess:
            command = [sys.executable, "-m", "migrate", *argv, "-vv", "--log-format", "json"]
            result = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=base)
            records = _json_lines(result.stderr)  # fails on any line that is not JSON
            assert [r for r in records if r["event"] == "python_warning"] == [], argv
            return result

        steps = [  # each with its exit code
            (0, "assess", "--core", core, "--edge", edge),
            (0, "precheck", core),
            (0, "plan", core, "--out", str(base / "core-plan.json")),
            (0, "apply", core, "--plan", str(base / "core-plan.json")),
            (0, "verify", core),
            (0, "status", core),
            (0, "rollback", core),
            (0, "rehearse", edge),
            (0, "precheck", "--fleet", str(base / "x154"), "--jobs", "2"),
            (0, "sample", str(base / "nodes")),
            (1, "assess", "--core", core5, "--edge", edge5, "--public-ca", str(base / "public.pem")),  # condition 2 fails
            (0, "csr", core5, "--new-key", "ec:p256", "--out", str(base / "core.csr")),
        ]
        for code, *step in steps:
            result = run(*step)
            assert result.returncode == code, (step, result.stdout[-2000:], result.stderr[-2000:])
        (base / "core.crt").write_bytes(sign_csr(cas()[1], (base / "core.csr").read_bytes()))
        installed = run("install-client", core5, "--cert", str(base / "core.crt"), "--key", str(base / "core.key"), "--peer", edge5)
        assert installed.returncode == 0, installed.stderr
        assert run("rollback", core5).returncode == 0
