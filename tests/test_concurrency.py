"""Several runs of the real command at once on one node: one acts, the others refuse or find it done.

Real processes on the real file system: flock is only real there.
"""

from __future__ import annotations

import json
import subprocess
import sys

import support

from migrate import policy
from migrate.testing.factory import NodeSpec, build_node
from migrate.testing.tree import diff_trees, read_tree

RUNS = 4


def _run_at_once(*argv: str, commands: list[list[str]] | None = None) -> list[tuple[int, dict]]:
    """Start RUNS copies of the command (or each of ``commands``) together; their exit codes and JSON reports."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "migrate", *command, "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for command in (commands or [list(argv)] * RUNS)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        results.append((proc.returncode, json.loads(out)))
    return results


def _outcome(doc: dict) -> str:
    return doc["error"]["id"] if "error" in doc else doc["result"]


class TestConcurrentRuns:
    def test_concurrent_apply_then_rollback(self, tmp_path):
        """Of four simultaneous applies exactly one migrates; of four rollbacks one restores the exact X15.4 tree."""
        root = build_node(tmp_path / "node", NodeSpec(settings={policy.RETIRED_SETTING: "On"}))
        original = read_tree(root)

        applied = _run_at_once("apply", str(root))
        outcomes = sorted(_outcome(doc) for _, doc in applied)
        assert outcomes.count("migrated") == 1, outcomes
        assert set(outcomes) <= {"migrated", "already-migrated", "lock-held", "node-changed"}, outcomes
        assert all(code == (0 if _outcome(doc) in ("migrated", "already-migrated") else 1) for code, doc in applied)
        migrated = read_tree(root)
        assert (root / policy.CERT_DIR / "client.pem").read_bytes() == original[f"{policy.CERT_DIR}/server.pem"].data
        assert b"EnableServerEkuUpload" not in migrated[policy.CONFIG_FILE].data

        rolled = _run_at_once("rollback", str(root))
        outcomes = sorted(_outcome(doc) for _, doc in rolled)
        assert outcomes.count("rolled-back") == 1, outcomes
        assert set(outcomes) <= {"rolled-back", "nothing-to-do", "lock-held"}, outcomes
        assert diff_trees(original, read_tree(root)) == []

    def test_applies_and_rollbacks_at_once_end_exactly_x154_or_x155(self, tmp_path):
        """Two applies and two rollbacks started together leave exactly X15.4 or exactly X15.5, never a mix."""
        root = build_node(tmp_path / "node", NodeSpec(settings={policy.RETIRED_SETTING: "On"}))
        original = read_tree(root)
        migrated = support.clean_migration(original, tmp_path / "reference")
        mixed = [["apply", str(root)], ["rollback", str(root)], ["apply", str(root)], ["rollback", str(root)]]
        results = _run_at_once(commands=mixed)
        outcomes = sorted(_outcome(doc) for _, doc in results)
        allowed = {"migrated", "already-migrated", "rolled-back", "nothing-to-do", "lock-held", "node-changed"}
        assert set(outcomes) <= allowed, outcomes
        after = read_tree(root)
        assert (
            diff_trees(original, after) == []
            or diff_trees(support.without_journal_bytes(migrated), support.without_journal_bytes(after)) == []
        ), diff_trees(original, after)
