"""Tests for `rehearse NODE --install-client CERT [KEY [CHAIN]]`: the install rehearsed in memory after the migration.

The node given is X15.4 (the rehearsal's cycle starts with apply), its ca.pem
trusting the private CA1 of ``install_support``; the client identity comes from
CA1 with serverAuth and clientAuth and the node's names.  Everything runs
through ``main`` on a real node directory, which must be left byte for byte as
it was, as must the administrator's files.  The crash rehearsals (about 10 s a
node) share one run per class (class-scoped fixtures) and are marked slow.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import types

import pytest
import structlog
from install_support import cas, core_client, write_inputs

from migrate import clientstore, policy
from migrate.cli import main
from migrate.install_record import APPLIED
from migrate.testing import rehearsal
from migrate.testing.factory import NodeSpec, build_node, issue
from migrate.testing.tree import read_tree

CYCLE = ["precheck", "plan", "apply", "verify", "re-plan", "re-apply"]
INSTALL = ["install-plan", "install", "re-install", "rollback-install"]
END = ["rollback", "compare"]
INSTALL_COMMANDS = {"install-client", "rollback-install"}
CALLS = re.compile(r"at (\d+) call\(s\)")


def x154_core(root) -> str:
    """An X15.4 Core at ``root`` (real disk) whose ca.pem trusts CA1: public, server-only, EC, so it rehearses fast."""
    public, private = cas()
    identity = issue(public, "core.example.com", eku=["serverAuth"], key_type="ec256")
    return str(build_node(root, NodeSpec(role="core", identity=identity, trusted=(public, private))))


def snapshot(*roots) -> dict:
    """Every tree under ``roots`` (the node and the administrator's files), and each path's ctime."""
    out = {}
    for root in roots:
        out[str(root)] = read_tree(root)
        for dirpath, dirnames, filenames in os.walk(root):
            for name in [".", *dirnames, *filenames]:
                path = os.path.join(dirpath, name)
                out[path] = os.lstat(path).st_ctime_ns
    return out


def rehearse_json(*argv) -> tuple[int, dict | None, str]:
    """``main(["rehearse", *argv, "--format", "json"])``: the exit code, the document (None if none), stderr."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(["rehearse", *map(str, argv), "--format", "json"])
        finally:
            structlog.reset_defaults()
    return code, (json.loads(out.getvalue()) if out.getvalue() else None), err.getvalue()


@pytest.fixture
def node_and_files(tmp_path) -> types.SimpleNamespace:
    root = x154_core(tmp_path / "node")
    ident = core_client()
    request = write_inputs(str(tmp_path / "in"), ident.cert_pem, ident.key_pem())
    return types.SimpleNamespace(root=root, cert=request.cert, key=request.key, inputs=tmp_path / "in")


class TestAccepted:
    def test_no_crash(self, node_and_files):
        """Without the crash rehearsal the install's steps run between re-apply and rollback, each ok, exit 0, and the
        real node and files are untouched."""
        n = node_and_files
        before = snapshot(n.root, n.inputs)
        code, doc, err = rehearse_json(n.root, "--install-client", n.cert, n.key, "--no-crash")
        assert code == 0, err
        [report] = doc["rehearsals"]
        assert [s["step"] for s in report["steps"]] == CYCLE + INSTALL + END
        assert all(s["ok"] for s in report["steps"]), report["steps"]
        steps = {s["step"]: s["detail"] for s in report["steps"]}
        assert steps["install-plan"].startswith("3 action(s): replace-file client.pem")
        assert steps["install"] == "result installed"
        assert steps["re-install"] == "result already-installed, 0 change(s) on disk"
        assert "byte for byte the migrated node" in steps["rollback-install"]
        assert (doc["crash_points"], report["unrecovered"]) == (0, [])
        assert snapshot(n.root, n.inputs) == before

    def test_without_install_client_nothing_changes(self, node_and_files):
        """The same node rehearsed without --install-client runs exactly the cycle it always ran."""
        code, doc, err = rehearse_json(node_and_files.root, "--no-crash")
        assert code == 0, err
        assert [s["step"] for s in doc["rehearsals"][0]["steps"]] == CYCLE + END

    def test_in_a_pyfakefs_test(self, fs):
        """`rehearsal.rehearse(root, install=request)` in the fs fixture runs the install's steps on a hand-made tree
        and leaves the caller's fake node as it was."""
        root = x154_core("/tandberg")
        ident = core_client()
        request = write_inputs("/in", ident.cert_pem, ident.key_pem())
        before = read_tree(root)
        with structlog.testing.capture_logs():
            report = rehearsal.rehearse(root, crash=False, install=request)
        assert report.ok, report.steps
        assert [s.step for s in report.steps] == CYCLE + INSTALL + END
        assert read_tree(root) == before


@pytest.fixture(scope="class")
def crashed(tmp_path_factory) -> types.SimpleNamespace:
    """One `rehearse NODE --install-client CERT KEY --format json` with the crash rehearsals on."""
    base = tmp_path_factory.mktemp("crashed")
    root = x154_core(base / "node")
    ident = core_client()
    request = write_inputs(str(base / "in"), ident.cert_pem, ident.key_pem())
    before = snapshot(root, base / "in")
    code, doc, err = rehearse_json(root, "--install-client", request.cert, request.key)
    return types.SimpleNamespace(
        code=code, doc=doc, err=err, unchanged=snapshot(root, base / "in") == before, root=root
    )


@pytest.mark.slow
class TestCrashAccepted:
    def test_steps(self, crashed):
        """The whole cycle with the install runs, every step of it ok; install-crash comes after rollback-install, and
        the migration's crash step last."""
        [report] = crashed.doc["rehearsals"]
        assert [s["step"] for s in report["steps"]] == [*CYCLE, *INSTALL, "install-crash", *END, "crash"]
        assert all(s["ok"] for s in report["steps"]), report["steps"]

    def test_install_crash_points_tried(self, crashed):
        """install-client and the install's rollback were each stopped at the calls that write (dozens), counted into
        crash_points with the migration's."""
        [report] = crashed.doc["rehearsals"]
        details = {s["step"]: s["detail"] for s in report["steps"]}
        install_points = int(CALLS.search(details["install-crash"])[1])
        migration_points = int(CALLS.search(details["crash"])[1])
        assert install_points > 40 and migration_points > 40
        assert report["crash_points"] == crashed.doc["crash_points"] == install_points + migration_points

    def test_every_stop_recovers(self, crashed):
        """Every stop of install-client and of its rollback recovers both ways, exactly: exit 0.  Among them the
        stops at the install journal's first staging copy: with no install journal yet, rollback undoes the
        migration and must clear that staging copy too."""
        [report] = crashed.doc["rehearsals"]
        assert report["unrecovered"] == [] and crashed.code == 0, report["unrecovered"]

    def test_real_node_and_files_untouched(self, crashed):
        """The real node and the administrator's files are byte for byte (and ctime for ctime) as they were."""
        assert crashed.unchanged
        assert sorted(os.listdir(os.path.dirname(crashed.root))) == ["in", "node"]  # no scratch copy beside them


class TestRefused:
    def test_no_client_auth(self, node_and_files, tmp_path):
        """A certificate without clientAuth fails install-plan naming install-no-client-auth; nothing is installed
        (no install step, no crash rehearsal), exit 1, and the real node is untouched."""
        n = node_and_files
        bad = core_client(eku=("serverAuth",))
        files = write_inputs(str(tmp_path / "bad"), bad.cert_pem, bad.key_pem())
        before = snapshot(n.root)
        code, doc, err = rehearse_json(n.root, "--install-client", files.cert, files.key)
        assert code == 1, err
        [report] = doc["rehearsals"]
        assert [s["step"] for s in report["steps"]] == [*CYCLE, "install-plan", *END]
        [plan] = [s for s in report["steps"] if s["step"] == "install-plan"]
        assert not plan["ok"] and "install-no-client-auth" in plan["detail"] and "nothing installed" in plan["detail"]
        assert report["ok"] is False and (report["crash_points"], report["unrecovered"]) == (0, [])
        assert snapshot(n.root) == before


class TestBadInput:
    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(["NODE", "--install-client", "a", "b", "c", "d"], id="four-files"),
            pytest.param(["--install-client", "a"], id="no-node"),
            pytest.param(["--sample", "core", "--install-client", "a"], id="sample"),
            pytest.param(["NODE", "--install-client"], id="no-file"),
        ],
    )
    def test_usage_errors(self, run, node_and_files, argv):
        """Four files, no NODE (a sample instead) or no file at all: a usage error, exit 2, nothing on stdout."""
        code, out, err = run("rehearse", *[node_and_files.root if a == "NODE" else a for a in argv])
        assert code == 2 and out == ""
        assert "--install-client" in err

    def test_unreadable_file(self, run, node_and_files, tmp_path):
        """A file that cannot be read is one install-input-unreadable line with a hint, exit 1; the node is untouched."""
        n = node_and_files
        before = snapshot(n.root)
        code, out, err = run("rehearse", n.root, "--install-client", tmp_path / "missing.crt", "--no-crash")
        assert code == 1 and out == ""
        assert err.startswith("error[install-input-unreadable]:") and " -- hint: " in err, err
        assert "missing.crt" in err and len(err.splitlines()) == 1
        assert snapshot(n.root) == before

    def test_oversized_file(self, run, node_and_files, tmp_path):
        """A file over the PEM cap is refused the same way, before anything is copied into memory."""
        big = tmp_path / "big.crt"
        big.write_bytes(b"x" * (policy.MAX_PEM_BYTES + 1))
        code, out, err = run("rehearse", node_and_files.root, "--install-client", big, "--no-crash")
        assert code == 1 and err.startswith("error[install-input-unreadable]:") and "bytes" in err


@pytest.mark.slow
class TestCrashDefect:
    def test_rollback_of_a_cut_install_that_forgets_a_file(self, monkeypatch, tmp_path):
        """An install rollback that, resuming a cut install, skips restoring client-ssh.pem passes every step of the
        cycle (the clean rollback is right) and is caught only by the install's crash rehearsal: unrecovered points,
        exit 1."""
        real_undo = clientstore._undo_steps

        def forgetful(snap, rec):
            steps, conflicts = real_undo(snap, rec)
            if rec.state != APPLIED:
                steps = [s for s in steps if not s.path.endswith("/client-ssh.pem")]
            return steps, conflicts

        monkeypatch.setattr(clientstore, "_undo_steps", forgetful)
        root = x154_core(tmp_path / "node")
        ident = core_client()
        files = write_inputs(str(tmp_path / "in"), ident.cert_pem, ident.key_pem())
        code, doc, err = rehearse_json(root, "--install-client", files.cert, files.key)
        assert code == 1, err
        [report] = doc["rehearsals"]
        steps = {s["step"]: s for s in report["steps"]}
        assert all(s["ok"] for name, s in steps.items() if name != "install-crash"), report["steps"]
        assert not steps["install-crash"]["ok"] and "did not recover" in steps["install-crash"]["detail"]
        forgot = [p for p in report["unrecovered"] if "client-ssh.pem" in p["problem"]]
        assert forgot and all(p["command"] in INSTALL_COMMANDS for p in forgot)
        assert all(p["problem"].startswith("rollback: ") for p in forgot)
        assert not any(p["command"] in ("apply", "rollback") for p in report["unrecovered"])
