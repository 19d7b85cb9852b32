"""Tests for migrate.logs: records below the command line's level never load structlog."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import structlog.testing

from migrate import logs
from migrate.testing.factory import NodeSpec, build_node

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
