"""Tests for migrate.testing.rehearsal and the rehearse command: the whole cycle in memory, the real disk only read.

The crash rehearsal (apply and rollback stopped at each call that writes) costs
about 4 s of CPU for a node in pyfakefs, an EC one or the bundled RSA-4096
samples alike: every test runs with ``--no-crash`` / ``crash=False`` except the
crash rehearsal's own classes, which share one run of a healthy node and one of
a defective one (class-scoped fixtures).  The machinery of the crash rehearsal
(forked children, the tree read from pyfakefs's objects, the points pinned for
the samples) is ``tests/test_rehearsal_crash.py``.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import posix
import re
import time
import tracemalloc
import types
from pathlib import Path

import pytest
import structlog
from pyfakefs.helpers import get_gid, get_uid, set_gid, set_uid

from migrate import plan, policy, writer
from migrate.cli import _render, main
from migrate.errors import MigrateError
from migrate.scan import Layout
from migrate.testing import faults, rehearsal
from migrate.testing.factory import NodeSpec, build_node, config_text, issue, make_ca, node_tree
from migrate.testing.samples import sample_tree
from migrate.testing.tree import diff_trees, read_tree, write_tree

CERTS = policy.CERT_DIR
STATE = policy.STATE_DIR
STEPS = ["precheck", "plan", "apply", "verify", "re-plan", "re-apply", "rollback", "compare"]
REHEARSAL_KEYS = {"format_version", "command", "node", "ok", "steps", "crash_points", "unrecovered", "plan"}
# A call as the fault injector names it: "#57 open(/tandberg/persistent/certs/.client.pem.cert-migration.tmp)".
CALL = re.compile(r"#(?P<number>[1-9][0-9]*) (?P<name>[a-z_]+)\((?P<target>.+)\)")


def disk_state(root: Path) -> tuple[dict, dict]:
    """The tree at ``root`` and the ctime of every path (any write, chmod or chown changes a ctime)."""
    ctimes = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            path = os.path.join(dirpath, name)
            ctimes[path] = os.lstat(path).st_ctime_ns
    return read_tree(root), ctimes


def assert_disk_unchanged(root: Path, before: tuple[dict, dict]) -> None:
    """Nothing under ``root`` was written, chmod'ed, chown'ed, added or removed; no state directory."""
    tree, ctimes = disk_state(root)
    assert diff_trees(before[0], tree) == []
    assert ctimes == before[1]
    assert not (root / STATE).exists()
    assert not any(name.endswith(policy.TEMP_SUFFIX) for name in tree)


def assert_full_cycle(doc: dict) -> None:
    """A rehearsal document that ran every step of the cycle, each ok, and (``--no-crash``) no crash rehearsal."""
    assert set(doc) == REHEARSAL_KEYS
    assert doc["format_version"] == 1 and doc["command"] == "rehearse"
    assert doc["ok"] is True
    assert [s["step"] for s in doc["steps"]] == STEPS
    assert all(s["ok"] for s in doc["steps"]), doc["steps"]
    assert (doc["crash_points"], doc["unrecovered"]) == (0, [])
    assert doc["plan"]["command"] == "plan" and doc["plan"]["actions"]


def fake_paths() -> set[str]:
    """Every path of the active (fake) file system, walked from /."""
    paths = set()
    for dirpath, dirnames, filenames in os.walk("/"):
        paths.add(dirpath)
        paths.update(os.path.join(dirpath, name) for name in dirnames + filenames)
    return paths


def small_node() -> NodeSpec:
    """A core node with an EC P-256 identity: cheap enough for a whole crash rehearsal."""
    return NodeSpec(identity=issue(make_ca("CA"), "core.example.com", key_type="ec256"))


class TestRehearseSamples:
    def test_all_samples_json(self, run):
        """`rehearse --no-crash` with no node rehearses both bundled samples through the whole cycle, exit 0, and writes nothing."""
        tandberg_existed = os.path.lexists(rehearsal.SAMPLE_ROOT)
        code, out, err = run("rehearse", "--format", "json", "--no-crash")
        assert code == 0, err
        doc = json.loads(out)
        assert (doc["format_version"], doc["command"], doc["ok"]) == (1, "rehearse", True)
        assert set(doc) == {"format_version", "command", "ok", "crash_points", "rehearsals"}
        assert doc["crash_points"] == 0  # --no-crash
        assert [r["node"] for r in doc["rehearsals"]] == ["sample:core", "sample:edge"]
        for report in doc["rehearsals"]:
            assert_full_cycle(report)
        assert os.path.lexists(rehearsal.SAMPLE_ROOT) == tandberg_existed

    def test_one_sample_markdown(self, run):
        """`rehearse --sample edge --format markdown --no-crash` rehearses only the edge sample, tries no crash point and ends with the verdict."""
        code, out, err = run("rehearse", "--sample", "edge", "--format", "markdown", "--no-crash")
        assert code == 0, err
        assert out.startswith("## `rehearse` — sample:edge: **ok**")
        assert "sample:core" not in out
        assert "| step | result | detail |" in out
        for step in STEPS:
            assert f"| {step} | ok |" in out
        assert "| crash |" not in out and "- crash points tried: 0" in out
        assert out.endswith("**Rehearsal: ok**\n")

    def test_unknown_sample(self, run):
        """An unknown sample name exits 1 with one sample-unknown error line."""
        code, out, err = run("rehearse", "--sample", "nosuch")
        assert code == 1
        assert out == ""
        assert err.startswith("error[sample-unknown]:") and " -- hint: " in err
        assert len(err.splitlines()) == 1


class TestRehearseNode:
    @pytest.mark.parametrize(
        "spec",
        [
            pytest.param(NodeSpec(), id="core-default-uids"),
            pytest.param(NodeSpec(role="edge", uids={"root": 0, "_nobody": 4242, "_pfwd": 31337}), id="edge-odd-uids"),
            pytest.param(
                NodeSpec(uids={"root": 0, "_nobody": 70000, "_pfwd": 70001}, ssh="absent"), id="no-ssh-high-uids"
            ),
        ],
    )
    def test_real_node_rehearsed_and_untouched(self, run, tmp_path, spec):
        """`rehearse NODE` runs the whole cycle on an in-memory copy, exit 0; the real node is not touched at all."""
        root = build_node(tmp_path / "node", spec)
        before = disk_state(root)
        code, out, err = run("rehearse", root, "--format", "json", "--no-crash")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["ok"] is True
        [report] = doc["rehearsals"]
        assert report["node"] == str(root)
        assert_full_cycle(report)
        assert_disk_unchanged(root, before)

    def test_text_verdict(self, run, tmp_path):
        """The text form lists the steps, the crash points tried (none with --no-crash) and ends with `rehearsal: ok`."""
        root = build_node(tmp_path / "node", NodeSpec())
        code, out, _ = run("rehearse", root, "--no-crash")
        assert code == 0
        assert "steps:" in out and "ok   compare:" in out
        assert "  crash points tried: 0" in out.splitlines()
        assert " crash:" not in out and "did not recover" not in out
        assert out.endswith("rehearsal: ok\n")

    def test_broken_node(self, run, tmp_path):
        """A node with a garbage privkey.pem: exit 1, ok false, only the precheck step (failed, naming not-pem), no crash point; node untouched."""
        root = build_node(tmp_path / "node", NodeSpec())
        with open(root / CERTS / "privkey.pem", "wb") as f:
            f.write(b"not a key at all\n")
        before = disk_state(root)
        code, out, _ = run("rehearse", root, "--format", "json")
        assert code == 1
        doc = json.loads(out)
        assert doc["ok"] is False
        [report] = doc["rehearsals"]
        assert report["ok"] is False
        [step] = report["steps"]
        assert (step["step"], step["ok"]) == ("precheck", False)
        assert "not-pem" in step["detail"]
        assert (report["crash_points"], report["unrecovered"]) == (0, [])
        assert_disk_unchanged(root, before)

    def test_missing_node(self, run, tmp_path):
        """`rehearse` of a missing node exits 1 with one node-missing line, as every other command says it, and no traceback."""
        code, out, err = run("rehearse", tmp_path / "nope")
        assert code == 1
        assert out == ""
        assert err.startswith(f"error[node-missing]: no node at {tmp_path / 'nope'} -- hint: ")
        assert len(err.splitlines()) == 1 and "Traceback" not in err

    @pytest.mark.parametrize(
        "flags", [pytest.param(["--no-crash"], id="no-crash"), pytest.param([], id="crash", marks=pytest.mark.slow)]
    )
    def test_node_with_fifo_is_not_an_internal_error(self, run, tmp_path, flags):
        """A node holding a FIFO outside the managed names (precheck: ready) is rehearsed or refused as a user error, never a defect."""
        root = build_node(tmp_path / "node", NodeSpec())
        os.mkfifo(root / CERTS / ".pipe")
        assert run("precheck", root)[0] == 0
        before = disk_state(root)
        code, _, err = run("rehearse", root, *flags)
        assert "error[internal-error]" not in err
        assert code == 0 or (code == 1 and err.startswith("error[") and " -- hint: " in err)
        assert_disk_unchanged(root, before)

    def test_relative_node_path(self, run, tmp_path, monkeypatch):
        """A relative NODE is rehearsed as the absolute path it names."""
        build_node(tmp_path / "node", NodeSpec())
        monkeypatch.chdir(tmp_path)
        code, out, err = run("rehearse", "node", "--format", "json", "--no-crash")
        assert code == 0, err
        assert json.loads(out)["rehearsals"][0]["node"] == str(tmp_path / "node")


def _add_sparse_csrs(root: Path, count: int, size: int = 63 << 20) -> None:
    """``count`` sparse files of ``size`` bytes in the certificate store's generated_csr/, owned like _nobody's."""
    csr = root / CERTS / "generated_csr"
    csr.mkdir(exist_ok=True)
    for n in range(count):
        path = csr / f"sparse-{n}.csr"
        with open(path, "wb") as f:
            f.truncate(size)
        os.chown(path, 65534, 65534)


def _listing(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its ctime, size and mode, from ``lstat`` alone (sparse files are not read)."""
    listing = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            listing[os.path.join(dirpath, name)] = (st.st_ctime_ns, st.st_size, st.st_mode)
    return listing


class TestRehearseCap:
    def test_sparse_files_refused_quickly_in_bounded_memory(self, run, tmp_path):
        """Sparse 63 MiB CSR files past the 64 MiB cap: exit 1, one node-too-large line naming the cap, within seconds, peak under 16 MiB; node untouched."""
        root = build_node(tmp_path / "node", NodeSpec())
        _add_sparse_csrs(root, 6)
        before = _listing(root)
        tracemalloc.start()
        started = time.monotonic()
        try:
            code, out, err = run("rehearse", root, "--no-crash")
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert time.monotonic() - started < 10
        assert peak < 16 << 20, f"peak {peak} bytes"
        assert code == 1
        assert out == ""
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert err.startswith(f"error[node-too-large]: the node at {root} is too large to rehearse in memory: ")
        hint = err.split(" -- hint: ", 1)[1]
        assert f"{policy.REHEARSE_MAX_BYTES >> 20} MiB" in hint and f"{policy.REHEARSE_MAX_ENTRIES} paths" in hint
        assert "persistent/certs" in hint and "persistent/xconfiguration.txt" in hint
        assert _listing(root) == before  # nothing written, chmod'ed, chown'ed, added or removed

    def test_json_error_object(self, run, tmp_path):
        """With --format json the node-too-large error is also the JSON error object on stdout."""
        root = build_node(tmp_path / "node", NodeSpec())
        _add_sparse_csrs(root, 2)
        code, out, err = run("rehearse", root, "--no-crash", "--format", "json")
        assert code == 1
        doc = json.loads(out)
        assert (doc["command"], doc["ok"], doc["error"]["id"]) == ("rehearse", False, "node-too-large")
        assert err.startswith("error[node-too-large]:")

    def test_too_many_paths_refused(self, run, tmp_path, monkeypatch):
        """A node of exactly the entry cap's paths rehearses; one path more is refused with node-too-large."""
        root = build_node(tmp_path / "node", NodeSpec())
        paths = sum(len(dirnames) + len(filenames) for _, dirnames, filenames in os.walk(root))
        monkeypatch.setattr(policy, "REHEARSE_MAX_ENTRIES", paths + 1)
        os.mkdir(root / "junk")
        code, _, err = run("rehearse", root, "--no-crash")
        assert code == 0, err
        os.mkdir(root / "junk" / "one-more")
        code, out, err = run("rehearse", root, "--no-crash")
        assert code == 1
        assert out == ""
        assert err.startswith("error[node-too-large]:") and f"max_entries={paths + 1} " in err
        assert f"{paths + 1} paths" in err.split(" -- hint: ", 1)[1]
        assert len(err.splitlines()) == 1

    def test_sample_under_the_cap_still_rehearses(self, run, tmp_path):
        """The bundled edge sample planted on disk, with a small sparse CSR beside it, still rehearses through the whole cycle."""
        root = tmp_path / "tandberg"
        write_tree(sample_tree("edge"), root)
        _add_sparse_csrs(root, 1, size=1 << 20)
        before = disk_state(root)
        code, out, err = run("rehearse", root, "--format", "json", "--no-crash")
        assert code == 0, err
        [report] = json.loads(out)["rehearsals"]
        assert_full_cycle(report)
        assert_disk_unchanged(root, before)


class TestFakeFilesystem:
    @pytest.mark.parametrize("name", ["fchown", "lchown"])
    def test_unfaked_chown_refused(self, tmp_path, name):
        """Inside fake_filesystem(), os.fchown and os.lchown raise RuntimeError instead of reaching the real disk."""
        real = getattr(os, name)
        with rehearsal.fake_filesystem() as fs:
            probe = tmp_path / "probe"
            fs.create_file(probe, contents=b"x")
            fd = os.open(probe, os.O_RDONLY)
            try:
                target = fd if name == "fchown" else str(probe)
                with pytest.raises(RuntimeError, match="real disk"):
                    getattr(os, name)(target, -1, -1)
            finally:
                os.close(fd)
        assert getattr(os, name) is real
        assert not probe.exists()

    def test_root_inside(self):
        """Inside fake_filesystem() the process is root (euid 0), so apply may set owners."""
        with rehearsal.fake_filesystem():
            assert os.geteuid() == 0

    def test_writes_stay_in_memory(self, tmp_path):
        """A file written inside fake_filesystem() at a real path does not exist on the real disk afterwards."""
        target = tmp_path / "written-in-memory"
        with rehearsal.fake_filesystem():
            os.makedirs(tmp_path)
            target.write_bytes(b"hello")
            os.chown(target, 4242, 4242)
            assert target.read_bytes() == b"hello"
        assert not target.exists()


class TestRehearseTree:
    def test_real_path_exists_real_node_untouched(self, tmp_path, monkeypatch):
        """Rehearsing a different tree at the path of a real node leaves the real node exactly as it was."""
        root = build_node(tmp_path / "node", NodeSpec(role="core"))
        before = disk_state(root)
        leaked = []
        for name in ("fchown", "lchown"):
            real = getattr(os, name)
            monkeypatch.setattr(
                os, name, lambda *a, _real=real, _name=name, **k: leaked.append(_name) or _real(*a, **k)
            )
        report = rehearsal.rehearse_tree(node_tree(NodeSpec(role="edge")), str(root), crash=False)
        assert report.ok, report.steps
        assert [s.step for s in report.steps] == STEPS
        assert leaked == []
        assert_disk_unchanged(root, before)

    def test_same_tree_same_path(self, tmp_path):
        """Rehearsing a real node's own tree at its own path migrates and rolls back in memory only."""
        root = build_node(tmp_path / "node", NodeSpec(role="edge", uids={"root": 0, "_nobody": 4242, "_pfwd": 31337}))
        before = disk_state(root)
        report = rehearsal.rehearse_tree(read_tree(root), str(root), crash=False)
        assert report.ok, report.steps
        assert report.node == str(root)
        assert_disk_unchanged(root, before)

    def test_as_dict(self, tmp_path):
        """Rehearsal.as_dict() has format_version 1, the steps as dicts, no crash point (crash=False) and the dry-run plan."""
        report = rehearsal.rehearse_tree(node_tree(NodeSpec()), str(tmp_path / "n"), crash=False)
        assert_full_cycle(report.as_dict())
        assert not (tmp_path / "n").exists()


def _write_node_by_hand(fs, root: str, *, server_pem: bytes | None = None) -> None:
    """An X15.4 core node made with fs.create_dir/create_file from factory bytes, modes and owners set."""
    identity = issue(make_ca("Hand CA"), "core.example.com")
    nobody, pfwd = 65534, 1001
    dirs = [("persistent", 0o755, 0), (CERTS, 0o755, 0)]
    files = [
        (f"{CERTS}/ca.pem", identity.ca.cert_pem, 0o644, nobody),
        (f"{CERTS}/server.pem", server_pem if server_pem is not None else identity.chain_pem, 0o644, nobody),
        (f"{CERTS}/privkey.pem", identity.key_pem(), 0o440, 0),
        (f"{CERTS}/server-ssh.pem", identity.bundle_pem(), 0o600, pfwd),
        (policy.CONFIG_FILE, config_text(NodeSpec(identity=identity), identity.cn), 0o644, 0),
    ]
    for rel, mode, uid in dirs:
        path = f"{root}/{rel}"
        fs.create_dir(path)
        os.chown(path, uid, uid)
        os.chmod(path, mode)
    for rel, data, mode, uid in files:
        path = f"{root}/{rel}"
        fs.create_file(path, contents=data)
        os.chown(path, uid, uid)
        os.chmod(path, mode)


class TestRehearseInFakeFs:
    def test_hand_built_node(self, fs):
        """rehearse(root) in a pyfakefs fs fixture runs the whole cycle on a hand-built node and restores it exactly."""
        root = "/tandberg"
        _write_node_by_hand(fs, root)
        before = read_tree(root)
        report = rehearsal.rehearse(root, crash=False)
        assert report.ok is True, report.steps
        assert [s.step for s in report.steps] == STEPS
        assert [a["action"] for a in report.plan["actions"]] == ["create-file"] * 3 + ["add-setting"]
        assert diff_trees(before, read_tree(root)) == []

    def test_hand_built_broken_node(self, fs):
        """A hand-built node with a garbage server.pem fails at precheck, naming not-pem, tries no crash point and stays as it was."""
        root = "/tandberg"
        _write_node_by_hand(fs, root, server_pem=b"garbage\n")
        before = read_tree(root)
        report = rehearsal.rehearse(root)
        assert report.ok is False
        [step] = report.steps
        assert step.step == "precheck" and not step.ok and "not-pem" in step.detail
        assert (report.crash_points, report.unrecovered) == (0, ())
        assert report.plan["actions"] == []
        assert diff_trees(before, read_tree(root)) == []


class TestRehearseGuard:
    @pytest.mark.parametrize("crash", [pytest.param(True, id="crash"), pytest.param(False, id="no-crash")])
    def test_refuses_real_disk(self, tmp_path, crash):
        """rehearse(root) outside any fake file system raises rehearsal-not-fake and leaves the real node and its parent untouched."""
        root = build_node(tmp_path / "node", NodeSpec())
        before = disk_state(root)
        with pytest.raises(MigrateError) as caught:
            rehearsal.rehearse(str(root), crash=crash)
        assert caught.value.id == "rehearsal-not-fake"
        assert caught.value.hint
        assert_disk_unchanged(root, before)
        assert os.listdir(tmp_path) == ["node"]

    @pytest.mark.parametrize("user", ["root", "non-root"])
    def test_ids_restored(self, fs, monkeypatch, user):
        """rehearse(root) in the fs fixture runs for any fake user and gives back the fake ids, euid and os calls it found."""
        root = "/tandberg"
        _write_node_by_hand(fs, root)
        if user == "non-root":
            set_uid(4242)
            set_gid(4243)
            monkeypatch.setattr(os, "geteuid", lambda: 4242)
        calls = ("geteuid", "fchown", "lchown")
        before = (get_uid(), get_gid(), os.geteuid(), {name: getattr(os, name) for name in calls})
        report = rehearsal.rehearse(root, crash=False)
        assert report.ok is True, report.steps
        assert (get_uid(), get_gid(), os.geteuid(), {name: getattr(os, name) for name in calls}) == before
        if user == "root":
            assert os.geteuid is posix.geteuid


@pytest.fixture(scope="class")
def healthy() -> types.SimpleNamespace:
    """One full rehearsal (crash rehearsal on) of a small healthy node in a fresh fake file system, and what judges it."""
    root = "/tandberg"
    with structlog.testing.capture_logs(), rehearsal.fake_filesystem():
        write_tree(node_tree(small_node()), root)
        original = read_tree(root)
        paths_before = fake_paths()
        report = rehearsal.rehearse(root)
        facts = types.SimpleNamespace(
            report=report,
            changes=diff_trees(original, read_tree(root)),
            paths_before=paths_before,
            paths_after=fake_paths(),
        )
        # The calls that write of a clean apply, then of a clean rollback, counted on a copy in the same fake fs.
        write_tree(original, "/count")
        layout, outcomes = Layout.for_node("/count"), []
        facts.apply_calls = faults.count_calls(lambda: outcomes.append(writer.apply(layout)))
        facts.rollback_calls = faults.count_calls(lambda: outcomes.append(writer.rollback(layout)))
        facts.count_results = [outcome.result for outcome in outcomes]
        facts.count_changes = diff_trees(original, read_tree("/count"))
    return facts


@pytest.mark.slow
class TestCrashRehearsalHealthy:
    def test_ok_with_crash_step(self, healthy):
        """A healthy node's rehearsal runs the whole cycle and then the crash step, every step ok, nothing unrecovered."""
        report = healthy.report
        assert [s.step for s in report.steps] == [*STEPS, "crash"]
        assert all(s.ok for s in report.steps), report.steps
        assert report.ok is True
        assert report.unrecovered == ()
        doc = report.as_dict()
        assert set(doc) == REHEARSAL_KEYS
        assert (doc["ok"], doc["crash_points"], doc["unrecovered"]) == (True, report.crash_points, [])

    def test_every_writing_call_tried(self, healthy):
        """The crash rehearsal stops at least at every call that writes of a clean apply and of a clean rollback."""
        assert healthy.count_results == ["migrated", "rolled-back"] and healthy.count_changes == []
        apply_writes = [call for call in healthy.apply_calls if call.writes]
        rollback_writes = [call for call in healthy.rollback_calls if call.writes]
        assert apply_writes and rollback_writes
        assert healthy.report.crash_points > 0
        assert healthy.report.crash_points >= len(apply_writes) + len(rollback_writes)
        [crash] = [s for s in healthy.report.steps if s.step == "crash"]
        assert f"at {healthy.report.crash_points} call(s)" in crash.detail

    def test_node_untouched(self, healthy):
        """After the rehearsal the node is byte for byte (modes, owners, file set) what it was."""
        assert healthy.changes == []

    def test_no_scratch_left(self, healthy):
        """The crash rehearsal's scratch copies are all gone: the fake file system holds exactly the paths it held before."""
        assert not any("crash-rehearsal" in path for path in healthy.paths_after)
        assert healthy.paths_after == healthy.paths_before


@pytest.fixture(scope="class")
def defective(tmp_path_factory) -> types.SimpleNamespace:
    """`rehearse NODE --format json` of a small real node, with a planner that never removes a leftover staging file."""
    root = build_node(tmp_path_factory.mktemp("defective") / "node", small_node())
    before = disk_state(root)
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        mp.setattr(plan, "_temp_actions", lambda analysis: [])
        try:
            code = main(["rehearse", str(root), "--format", "json"])
        finally:
            structlog.reset_defaults()
    return types.SimpleNamespace(root=root, before=before, code=code, out=out.getvalue(), err=err.getvalue())


@pytest.mark.slow
class TestCrashRehearsalDefect:
    def test_exit_1(self, defective):
        """A defect that shows only after a crash makes `rehearse NODE --format json` exit 1 with ok false."""
        assert defective.code == 1, defective.err
        doc = json.loads(defective.out)
        assert doc["ok"] is False
        [report] = doc["rehearsals"]
        assert doc["crash_points"] == report["crash_points"] > 0  # the command's total is the sum of its nodes'
        assert set(report) == REHEARSAL_KEYS
        assert report["ok"] is False and report["node"] == str(defective.root)

    def test_main_cycle_passes_crash_step_fails(self, defective):
        """Every step of the main cycle passes; only the crash step fails, after trying crash points."""
        [report] = json.loads(defective.out)["rehearsals"]
        assert [s["step"] for s in report["steps"]] == [*STEPS, "crash"]
        assert all(s["ok"] for s in report["steps"][:-1]), report["steps"]
        assert report["steps"][-1]["ok"] is False and "did not recover" in report["steps"][-1]["detail"]
        assert report["crash_points"] > 0

    def test_unrecovered_named(self, defective):
        """Each unrecovered point names its command, the call (on the node's own path, not a scratch copy) and a problem."""
        [report] = json.loads(defective.out)["rehearsals"]
        unrecovered = report["unrecovered"]
        assert unrecovered
        assert len(unrecovered) <= report["crash_points"]
        root = str(defective.root)
        for point in unrecovered:
            assert set(point) == {"command", "call", "problem"}
            assert point["command"] in ("apply", "rollback")
            match = CALL.fullmatch(point["call"])
            assert match, point
            assert match["target"].startswith(root + "/") and "crash-rehearsal" not in point["call"], point
            assert point["problem"], point
        assert len({(p["command"], p["call"]) for p in unrecovered}) == len(unrecovered)
        # The defect: a resumed apply meets the staging file the stopped one left behind.
        staged = [p for p in unrecovered if p["command"] == "apply" and policy.TEMP_SUFFIX in p["call"]]
        assert staged and all(policy.TEMP_SUFFIX in p["problem"] for p in staged)

    @pytest.mark.parametrize(
        "fmt, heading, line, last",
        [
            (
                "text",
                "crash points that did not recover:",
                "  {command} stopped at {call}: {problem}",
                "rehearsal: NOT OK",
            ),
            (
                "markdown",
                "### Crash points that did not recover",
                "| {command} | `{call}` | {problem} |",
                "**Rehearsal: NOT OK**",
            ),
        ],
    )
    def test_rendered(self, defective, fmt, heading, line, last):
        """The text and Markdown reports of that run list every unrecovered point under their heading, and end NOT OK."""
        doc = json.loads(defective.out)
        out = _render(doc, fmt)  # what main() writes for --format text / markdown
        lines = out.splitlines()
        assert heading in lines
        start = lines.index(heading)
        unrecovered = doc["rehearsals"][0]["unrecovered"]
        for point in unrecovered:
            cells = {key: value.replace("|", "\\|") if fmt == "markdown" else value for key, value in point.items()}
            assert line.format(**cells) in lines[start:], point
        assert lines[-1] == last

    def test_real_node_untouched(self, defective):
        """The real node rehearsed is not touched, and no scratch directory appears beside it."""
        assert_disk_unchanged(defective.root, defective.before)
        assert os.listdir(defective.root.parent) == ["node"]
