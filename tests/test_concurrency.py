"""Several runs of the real command at once on one node: one acts, the others refuse or find it done.

Real processes on the real file system: flock is only real there.
"""

from __future__ import annotations

import json
import subprocess
import sys

from migrate import policy
from migrate.factory import NodeSpec, build_node
from migrate.tree import diff_trees, read_tree

RUNS = 4


def _run_at_once(*argv: str) -> list[tuple[int, dict]]:
    """Start RUNS copies of the command together; their exit codes and JSON reports."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "migrate", *argv, "--format", "json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for _ in range(RUNS)
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
