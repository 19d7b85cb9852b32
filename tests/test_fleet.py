"""Tests for migrate.fleet and ``precheck --fleet``: discovery, per-node results, the summary, the CLI.

One fleet of twelve nodes (EC keys, so it builds in about a second) is written once per module
on the real disk: healthy nodes, blocked ones (another SSH identity; server.pem missing), and
at-risk Edges (a public server-only certificate with EnableServerEkuUpload On), in nested
folders, with decoys (no ``persistent/certs``), links to nodes, and a node nested inside a node.
"""

from __future__ import annotations

import errno
import importlib
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from migrate import fleet, policy
from migrate.checks import Finding
from migrate.errors import NodeError
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca
from migrate.testing.tree import read_tree

HEALTHY = {
    "lab",
    "site-a/core1",
    "site-a/edge1",
    "site-b/core2",
    "site-b/edge2",
    "site-c/dc1/core1",
    "site-c/dc2/core1",
}
BLOCKED = {"site-a/core2": "ssh-identity-mismatch", "site-b/core1": "file-missing"}
AT_RISK = {"site-a/edge2", "site-b/edge1", "site-c/dc1/edge1"}
NODES = HEALTHY | set(BLOCKED) | AT_RISK
AT_RISK_IDS = {"cert-no-client-eku", "server-eku-upload-on"}


@pytest.fixture(scope="module")
def fleet_dir(tmp_path_factory) -> Path:
    """The twelve-node fleet with its decoys and links (never modified by a test)."""
    top = tmp_path_factory.mktemp("fleet")
    public = make_ca("Example Public CA2", public=True)
    for rel in sorted(HEALTHY):
        build_node(top / rel, NodeSpec(role="edge" if "edge" in rel else "core"))
    build_node(top / "site-a/core2", NodeSpec(ssh="other"))
    missing = build_node(top / "site-b/core1", NodeSpec())
    (missing / policy.CERT_DIR / "server.pem").unlink()
    for rel in sorted(AT_RISK):
        identity = issue(public, "edge.example.com", eku=["serverAuth"])
        build_node(top / rel, NodeSpec(role="edge", identity=identity, settings={policy.RETIRED_SETTING: '"On"'}))
    # Decoys: a folder of notes, a persistent/ without certs/, a node inside a node.
    (top / "site-a/notes").mkdir()
    (top / "site-a/notes/readme.txt").write_text("not a node\n")
    (top / "site-b/backup/persistent").mkdir(parents=True)
    (top / "site-c/dc2/core1/archive/old" / policy.CERT_DIR).mkdir(parents=True)
    # Links: to a node and to a whole site; following either would count nodes twice.
    (top / "site-b/core1-link").symlink_to(top / "site-a/core1", target_is_directory=True)
    (top / "mirror").symlink_to(top / "site-a", target_is_directory=True)
    return top


def node_paths(items) -> set[str]:
    return {item for item in items if isinstance(item, str)}


def walk_findings(items) -> list[Finding]:
    return [item for item in items if isinstance(item, Finding)]


def deny(monkeypatch, *paths: Path) -> None:
    """Make listing, or looking inside, each of ``paths`` fail with EACCES (the suite runs as root)."""
    denied = {os.fspath(p) for p in paths}
    real_scandir, real_lstat = os.scandir, os.lstat

    def scandir(path="."):
        if os.fspath(path) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_scandir(path)

    def lstat(path, *args, **kwargs):
        if os.path.dirname(os.fspath(path)) in denied:
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(os, "scandir", scandir)
    monkeypatch.setattr(os, "lstat", lstat)


class TestDiscover:
    def test_finds_exactly_the_node_roots(self, fleet_dir):
        """discover yields the twelve node roots, relative, and no decoy, link target twice, or node inside a node."""
        items = list(fleet.discover(fleet_dir))
        assert node_paths(items) == NODES
        assert len([i for i in items if isinstance(i, str)]) == len(NODES)

    def test_links_are_reported_not_followed(self, fleet_dir):
        """Each link to a directory is an info finding, and nothing under it is walked."""
        findings = walk_findings(fleet.discover(fleet_dir))
        assert {(f.id, f.severity, f.path) for f in findings} == {
            ("link-not-followed", "info", "mirror"),
            ("link-not-followed", "info", "site-b/core1-link"),
        }

    def test_fleet_dir_that_is_a_node(self, fleet_dir):
        """A --fleet directory that is itself a node root yields '.' alone."""
        assert list(fleet.discover(fleet_dir / "lab")) == ["."]

    def test_unreadable_directory_is_skipped_with_a_warning(self, fleet_dir, monkeypatch):
        """An unreadable folder is a directory-unreadable warning; the walk goes on past it."""
        deny(monkeypatch, fleet_dir / "site-b")
        items = list(fleet.discover(fleet_dir))
        assert node_paths(items) == {n for n in NODES if not n.startswith("site-b/")}
        [finding] = [f for f in walk_findings(items) if f.id == "directory-unreadable"]
        assert (finding.severity, finding.path) == ("warning", "site-b")


class TestPrecheckNode:
    def test_missing_node_is_a_blocker_not_an_exception(self, fleet_dir):
        """A node root gone since the walk becomes a blocked result with the NodeError's id."""
        result = fleet.precheck_node(str(fleet_dir), "site-z/gone")
        assert result["node"] == "site-z/gone" and result["ready"] is False
        assert [(f["id"], f["severity"]) for f in result["findings"]] == [("node-missing", "blocker")]

    def test_result_is_small_plain_data(self, fleet_dir):
        """The per-node result is JSON-ready plain data: node, ready, at_risk and finding dicts only."""
        result = fleet.precheck_node(str(fleet_dir), "site-a/edge2")
        assert json.loads(json.dumps(result)) == result
        assert set(result) == {"node", "ready", "at_risk", "findings"}
        assert result["ready"] is True and result["at_risk"] is True
        assert {f["id"] for f in result["findings"]} == AT_RISK_IDS


def finding(fid: str, severity: str) -> dict:
    return {"id": fid, "severity": severity, "path": None, "message": "", "hint": ""}


class TestSummarise:
    @pytest.mark.parametrize(
        ("nodes", "counts", "by_finding"),
        [
            pytest.param([], (0, 0, 0, 0), {}, id="empty"),
            pytest.param(
                [fleet.node_result("a", []), fleet.node_result("b", [finding("mode-loose", "warning")])],
                (2, 2, 0, 1),
                {"mode-loose": {"severity": "warning", "nodes": 1}},
                id="ready-and-at-risk",
            ),
            pytest.param(
                [
                    fleet.node_result("a", [finding("mode-loose", "warning"), finding("mode-loose", "warning")]),
                    fleet.node_result("b", [finding("key-mismatch", "blocker"), finding("mode-loose", "warning")]),
                    fleet.node_result("c", [finding("ssh-bundle-absent", "info")]),
                ],
                (3, 2, 1, 1),
                {
                    "key-mismatch": {"severity": "blocker", "nodes": 1},
                    "mode-loose": {"severity": "warning", "nodes": 2},
                    "ssh-bundle-absent": {"severity": "info", "nodes": 1},
                },
                id="id-counted-once-per-node",
            ),
        ],
    )
    def test_counts_and_groups(self, nodes, counts, by_finding):
        """summarise counts nodes, ready, blocked and at risk, and each finding id once per node, worst first."""
        summary = fleet.summarise(nodes)
        assert (summary["nodes"], summary["ready"], summary["blocked"], summary["at_risk"]) == counts
        assert summary["by_finding"] == by_finding
        assert list(summary["by_finding"]) == list(by_finding)

    def test_blocked_node_with_warning_is_not_at_risk(self):
        """A node with a blocker and a warning counts as blocked only, never at risk."""
        node = fleet.node_result("a", [finding("mode-loose", "warning"), finding("key-mismatch", "blocker")])
        assert (node["ready"], node["at_risk"]) == (False, False)


class TestWorkers:
    def test_a_single_threaded_process_forks_its_workers(self):
        """With one thread (the command line), workers fork from it: no second interpreter to start."""
        probe = "from migrate import fleet; print(fleet._context().get_start_method())"
        out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
        assert out.strip() == "fork"

    def test_with_other_threads_workers_come_from_a_fork_server(self, fleet_dir):
        """With another thread running, workers start from a fork server, and the results are the same."""
        stop = threading.Event()
        other = threading.Thread(target=stop.wait)
        other.start()
        try:
            assert fleet._context().get_start_method() == "forkserver"
            parallel = sorted(fleet.run(str(fleet_dir), [], jobs=2), key=lambda n: n["node"])
        finally:
            stop.set()
            other.join()
        in_process = sorted(fleet.run(str(fleet_dir), [], jobs=1), key=lambda n: n["node"])
        assert parallel == in_process and len(parallel) == len(NODES)

    def test_nodes_stream_through_a_bounded_window(self, monkeypatch, tmp_path):
        """The walk is read only a few batches ahead of the results, so memory does not grow with the fleet."""
        pulled = 0

        def discover(top):
            nonlocal pulled
            for i in range(2000):
                pulled += 1
                yield f"site/node-{i:04d}"  # none exists: each is a quick node-missing blocker

        monkeypatch.setattr(fleet, "discover", discover)
        ahead, count = [], 0
        for count, node in enumerate(fleet.run(str(tmp_path), [], jobs=2, chunksize=4), start=1):
            ahead.append(pulled - count)
            assert [f["id"] for f in node["findings"]] == ["node-missing"]
        assert count == 2000
        assert max(ahead) <= (2 * fleet._IN_FLIGHT_PER_JOB + 1) * 4


class TestPrecheckFleet:
    def test_json_report(self, run, fleet_dir):
        """The JSON names every node once, sorted, with its verdict, the counts and the groups; exit 1 (blocked)."""
        code, out, _ = run("precheck", "--fleet", fleet_dir, "--format", "json", "--jobs", "1")
        doc = json.loads(out)
        assert code == 1
        assert (doc["format_version"], doc["command"], doc["fleet"]) == (1, "precheck", str(fleet_dir))
        assert [n["node"] for n in doc["nodes"]] == sorted(NODES)
        verdicts = {n["node"]: (n["ready"], n["at_risk"]) for n in doc["nodes"]}
        assert verdicts == {
            **{n: (True, False) for n in HEALTHY},
            **{n: (False, False) for n in BLOCKED},
            **{n: (True, True) for n in AT_RISK},
        }
        for rel, fid in BLOCKED.items():
            [node] = [n for n in doc["nodes"] if n["node"] == rel]
            assert fid in {f["id"] for f in node["findings"] if f["severity"] == "blocker"}
        summary = doc["summary"]
        assert (summary["nodes"], summary["ready"], summary["blocked"], summary["at_risk"]) == (12, 10, 2, 3)
        assert summary["by_finding"] == {
            "file-missing": {"severity": "blocker", "nodes": 1},
            "ssh-identity-mismatch": {"severity": "blocker", "nodes": 1},
            "cert-no-client-eku": {"severity": "warning", "nodes": 3},
            "server-eku-upload-on": {"severity": "warning", "nodes": 3},
        }

    def test_parallel_and_in_process_agree(self, run, fleet_dir):
        """--jobs 2 (worker processes) prints byte for byte the JSON of --jobs 1 (in process)."""
        code1, out1, _ = run("precheck", "--fleet", fleet_dir, "--format", "json", "--jobs", "1")
        code2, out2, _ = run("precheck", "--fleet", fleet_dir, "--format", "json", "--jobs", "2")
        assert (code1, out1) == (code2, out2)
        assert len(json.loads(out2)["nodes"]) == len(NODES)

    def test_no_blocker_exits_0(self, run, fleet_dir):
        """A fleet with at-risk nodes but no blocked one exits 0 and counts the risk."""
        code, out, _ = run("precheck", "--fleet", fleet_dir / "site-c", "--format", "json", "--jobs", "1")
        summary = json.loads(out)["summary"]
        assert code == 0
        assert (summary["nodes"], summary["ready"], summary["blocked"], summary["at_risk"]) == (3, 3, 0, 1)

    def test_precheck_reads_only(self, run, fleet_dir):
        """The fleet precheck leaves every file of the fleet as it was."""
        before = read_tree(fleet_dir)
        run("precheck", "--fleet", fleet_dir, "--jobs", "2")
        assert read_tree(fleet_dir) == before

    def test_text_report(self, run, fleet_dir):
        """Text gives the counts, the finding ids with severity and node count, and one line per flagged node."""
        code, out, _ = run("precheck", "--fleet", fleet_dir, "--jobs", "1")
        lines = out.splitlines()
        assert code == 1
        assert lines[0] == f"precheck fleet {fleet_dir}: 2 of 12 BLOCKED"
        assert [line.split(":")[0].strip() for line in lines[1:5]] == [
            "nodes",
            "ready (no blocker)",
            "blocked",
            "at risk (ready, with a warning)",
        ]
        assert [line.split()[-1] for line in lines[1:5]] == ["12", "10", "2", "3"]
        assert "  cert-no-client-eku     warning   3" in lines
        assert "  site-a/core2: BLOCKED ssh-identity-mismatch" in lines
        assert "  site-b/edge1: at risk cert-no-client-eku, server-eku-upload-on" in lines
        assert not any(line.startswith(f"  {n}:") for n in HEALTHY for line in lines)

    def test_markdown_report(self, run, fleet_dir):
        """Markdown gives the same summary, groups and flagged nodes as tables."""
        code, out, _ = run("precheck", "--fleet", fleet_dir, "--format", "markdown", "--jobs", "1")
        assert code == 1
        assert "| blocked | 2 |" in out and "| at risk (ready, with a warning) | 3 |" in out
        assert "| `server-eku-upload-on` | warning | 3 |" in out
        assert "| site-b/core1 | **blocked** | `file-missing` |" in out
        assert "| site-c/dc1/edge1 | at risk | `cert-no-client-eku`, `server-eku-upload-on` |" in out

    def test_no_progress_bar_when_piped(self, run, fleet_dir):
        """With stderr not a terminal, nothing at all is written to stderr."""
        assert not sys.stderr.isatty()
        _, _, err = run("precheck", "--fleet", fleet_dir, "--jobs", "2")
        assert err == ""

    def test_progress_bar_on_a_terminal(self, run, fleet_dir, capsys, monkeypatch):
        """With stderr a terminal, tqdm draws the bar there, counting every node; stdout holds only the report."""
        monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
        code, out, err = run("precheck", "--fleet", fleet_dir, "--format", "json", "--jobs", "2")
        assert code == 1
        assert "precheck: " in err and f"{len(NODES)} nodes [" in err
        assert len(json.loads(out)["nodes"]) == len(NODES)

    def test_unreadable_directory_is_reported_not_a_crash(self, run, fleet_dir, monkeypatch):
        """An unreadable node root mid-walk is a walk warning; every other node is still checked."""
        deny(monkeypatch, fleet_dir / "site-a/core2")
        code, out, _ = run("precheck", "--fleet", fleet_dir, "--format", "json", "--jobs", "1")
        doc = json.loads(out)
        assert code == 1  # site-b/core1 is still blocked
        assert {n["node"] for n in doc["nodes"]} == NODES - {"site-a/core2"}
        assert [(f["id"], f["path"]) for f in doc["findings"] if f["severity"] == "warning"] == [
            ("directory-unreadable", "site-a/core2")
        ]

    def test_node_error_is_reported_as_blocked(self, run, fleet_dir, monkeypatch):
        """A node whose scan raises NodeError is a blocked node with that error's id; the run completes."""
        scan_module = importlib.import_module("migrate.scan")  # the package re-exports the function as migrate.scan
        real_scan = scan_module.scan

        def scan(layout, **kwargs):
            if layout.root == fleet_dir / "lab":
                raise NodeError("the node root cannot be read", id="node-unreadable", hint="check it")
            return real_scan(layout, **kwargs)

        monkeypatch.setattr(scan_module, "scan", scan)
        code, out, _ = run("precheck", "--fleet", fleet_dir, "--format", "json", "--jobs", "1")
        doc = json.loads(out)
        assert code == 1
        [lab] = [n for n in doc["nodes"] if n["node"] == "lab"]
        assert lab["ready"] is False
        assert [(f["id"], f["severity"]) for f in lab["findings"]] == [("node-unreadable", "blocker")]
        assert doc["summary"]["blocked"] == 3 and doc["summary"]["nodes"] == 12

    def test_empty_fleet_is_an_error(self, run, tmp_path):
        """A directory without any node root is an error (exit 1), not an all-clear."""
        code, _, err = run("precheck", "--fleet", tmp_path, "--jobs", "1")
        assert code == 1
        assert err.startswith("error[fleet-empty]: ")

    @pytest.mark.parametrize(
        "extra",
        [
            pytest.param(["NODE"], id="node-and-fleet"),
            pytest.param(["--cert-dir", "/x"], id="cert-dir-with-fleet"),
            pytest.param(["--jobs", "0"], id="jobs-zero"),
        ],
    )
    def test_usage_errors_with_fleet(self, run, fleet_dir, extra):
        """NODE, --cert-dir or --jobs 0 alongside --fleet is a usage error (exit 2) that prints no report."""
        argv = [str(fleet_dir / "lab") if a == "NODE" else a for a in extra]
        code, out, err = run("precheck", "--fleet", fleet_dir, *argv)
        assert code == 2 and out == ""
        assert "usage:" in err

    @pytest.mark.parametrize(
        "argv",
        [pytest.param([], id="neither"), pytest.param(["/tandberg", "--jobs", "2"], id="jobs-without-fleet")],
    )
    def test_usage_errors_without_fleet(self, run, argv):
        """precheck with neither NODE nor --fleet, or --jobs without --fleet, is a usage error (exit 2)."""
        code, out, err = run("precheck", *argv)
        assert code == 2 and out == ""
        assert "usage:" in err
