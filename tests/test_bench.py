"""The benchmark script in its smoke mode: it runs, and reports every figure (the figures themselves are not judged here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "run.py"


@pytest.mark.slow
class TestBenchSmoke:
    def test_smoke_run_reports_every_ratio_and_growth_row(self):
        """`bench/run.py --smoke --json` exits 0 with the fleet counted right, every ratio, a per-node row and the crash rehearsal's figures."""
        done = subprocess.run(
            [sys.executable, str(BENCH), "--smoke", "--json"], capture_output=True, text=True, timeout=600, check=False
        )
        assert done.returncode == 0, done.stderr
        figures = json.loads(done.stdout)
        assert figures["nodes"] == 10 and figures["repeat"] == 1
        assert figures["counts"] == {"nodes": 10, "ready": 9, "blocked": 1, "at_risk": 1}
        for key in (
            "fleet_ratio",
            "fleet_ratio_to_verify_floor",
            "cold_start_ratio",
            "fleet_precheck_s",
            "read_and_parse_floor_s",
            "read_parse_and_verify_floor_s",
        ):
            assert figures[key] > 0, key
        # the ratio is of the unrounded times; the seconds are rounded to 3 places
        ratio = figures["fleet_precheck_s"] / figures["read_and_parse_floor_s"]
        assert figures["fleet_ratio"] == pytest.approx(ratio, abs=0.05)
        row = figures["per_node"]["10"]
        assert row["precheck_plan_ms"] > 0 and row["rehearsal_ms"] > 0
        # the crash rehearsal: its CPU per node (smoke: at 1 node), one apply's, their ratio, the samples' wall time
        assert list(figures["crash_rehearsal_cpu_s_per_node"]) == ["1"]
        crash_cpu = figures["crash_rehearsal_cpu_s_per_node"]["1"]
        assert crash_cpu > 0 and figures["apply_cpu_ms"] > 0 and figures["rehearse_samples_wall_s"] > 0
        ratio = 1000 * crash_cpu / figures["apply_cpu_ms"]
        assert figures["crash_rehearsal_to_apply_ratio"] == pytest.approx(ratio, rel=0.05)
