"""Tests for migrate.logs: records below the command line's level never load structlog."""

from __future__ import annotations

import json
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
    def test_unconfigured_records_reach_structlog(self):
        """Without configure(), every record goes to structlog as its caller set it up (here: captured)."""
        with structlog.testing.capture_logs() as records:
            logs.get_logger("t").debug("deep", n=1)
            logs.get_logger("t").info("said", path="/x")
        assert [(r["event"], r["log_level"]) for r in records] == [("deep", "debug"), ("said", "info")]

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

    def test_reset_forgets_the_threshold(self):
        """reset() hands every record to structlog again."""
        logs.configure(logs.ERROR)
        logs.reset()
        with structlog.testing.capture_logs() as records:
            logs.get_logger("t").info("said")
        assert [r["event"] for r in records] == ["said"]
