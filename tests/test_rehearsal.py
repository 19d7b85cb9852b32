"""Tests for migrate.rehearsal and the rehearse command: the whole cycle in memory, the real disk only read.

The bundled samples hold RSA-4096 keys: they are rehearsed only a few times here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from migrate import policy, rehearsal
from migrate.cli import main
from migrate.factory import NodeSpec, build_node, config_text, issue, make_ca, node_tree
from migrate.tree import diff_trees, read_tree

CERTS = policy.CERT_DIR
STATE = policy.STATE_DIR
STEPS = ["precheck", "plan", "apply", "verify", "re-plan", "re-apply", "rollback", "compare"]
REHEARSAL_KEYS = {"format_version", "command", "node", "ok", "steps", "plan"}


@pytest.fixture
def run(capsys):
    """Run ``main`` and return (exit code, stdout, stderr)."""

    def run(*argv):
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return code, out, err

    return run


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
    """A rehearsal document that ran every step of the cycle, each ok."""
    assert set(doc) == REHEARSAL_KEYS
    assert doc["format_version"] == 1 and doc["command"] == "rehearse"
    assert doc["ok"] is True
    assert [s["step"] for s in doc["steps"]] == STEPS
    assert all(s["ok"] for s in doc["steps"]), doc["steps"]
    assert doc["plan"]["command"] == "plan" and doc["plan"]["actions"]


class TestRehearseSamples:
    def test_all_samples_json(self, run):
        """`rehearse` with no node rehearses both bundled samples through the whole cycle, exit 0, and writes nothing."""
        tandberg_existed = os.path.lexists(rehearsal.SAMPLE_ROOT)
        code, out, err = run("rehearse", "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert (doc["format_version"], doc["command"], doc["ok"]) == (1, "rehearse", True)
        assert set(doc) == {"format_version", "command", "ok", "rehearsals"}
        assert [r["node"] for r in doc["rehearsals"]] == ["sample:core", "sample:edge"]
        for report in doc["rehearsals"]:
            assert_full_cycle(report)
        assert os.path.lexists(rehearsal.SAMPLE_ROOT) == tandberg_existed

    def test_one_sample_markdown(self, run):
        """`rehearse --sample edge --format markdown` rehearses only the edge sample and ends with the verdict."""
        code, out, err = run("rehearse", "--sample", "edge", "--format", "markdown")
        assert code == 0, err
        assert out.startswith("## `rehearse` — sample:edge: **ok**")
        assert "sample:core" not in out
        assert "| step | result | detail |" in out
        for step in STEPS:
            assert f"| {step} | ok |" in out
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
        code, out, err = run("rehearse", root, "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["ok"] is True
        [report] = doc["rehearsals"]
        assert report["node"] == str(root)
        assert_full_cycle(report)
        assert_disk_unchanged(root, before)

    def test_text_verdict(self, run, tmp_path):
        """The text form lists the steps and ends with `rehearsal: ok`."""
        root = build_node(tmp_path / "node", NodeSpec())
        code, out, _ = run("rehearse", root)
        assert code == 0
        assert "steps:" in out and "ok   compare:" in out
        assert out.endswith("rehearsal: ok\n")

    def test_broken_node(self, run, tmp_path):
        """A node with a garbage privkey.pem: exit 1, ok false, the precheck step failed naming not-pem; node untouched."""
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
        assert_disk_unchanged(root, before)

    def test_missing_node(self, run, tmp_path):
        """`rehearse` of a missing node exits 1 with one error line and no traceback."""
        code, out, err = run("rehearse", tmp_path / "nope")
        assert code == 1
        assert out == ""
        assert err.startswith("error[node-unreadable]:") and " -- hint: " in err
        assert len(err.splitlines()) == 1 and "Traceback" not in err

    def test_node_with_fifo_is_not_an_internal_error(self, run, tmp_path):
        """A node holding a FIFO outside the managed names (precheck: ready) is rehearsed or refused as a user error, never a defect."""
        root = build_node(tmp_path / "node", NodeSpec())
        os.mkfifo(root / CERTS / ".pipe")
        assert run("precheck", root)[0] == 0
        before = disk_state(root)
        code, _, err = run("rehearse", root)
        assert "error[internal-error]" not in err
        assert code == 0 or (code == 1 and err.startswith("error[") and " -- hint: " in err)
        assert_disk_unchanged(root, before)

    def test_relative_node_path(self, run, tmp_path, monkeypatch):
        """A relative NODE is rehearsed as the absolute path it names."""
        build_node(tmp_path / "node", NodeSpec())
        monkeypatch.chdir(tmp_path)
        code, out, err = run("rehearse", "node", "--format", "json")
        assert code == 0, err
        assert json.loads(out)["rehearsals"][0]["node"] == str(tmp_path / "node")


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
        report = rehearsal.rehearse_tree(node_tree(NodeSpec(role="edge")), str(root))
        assert report.ok, report.steps
        assert [s.step for s in report.steps] == STEPS
        assert leaked == []
        assert_disk_unchanged(root, before)

    def test_same_tree_same_path(self, tmp_path):
        """Rehearsing a real node's own tree at its own path migrates and rolls back in memory only."""
        root = build_node(tmp_path / "node", NodeSpec(role="edge", uids={"root": 0, "_nobody": 4242, "_pfwd": 31337}))
        before = disk_state(root)
        report = rehearsal.rehearse_tree(read_tree(root), str(root))
        assert report.ok, report.steps
        assert report.node == str(root)
        assert_disk_unchanged(root, before)

    def test_as_dict(self, tmp_path):
        """Rehearsal.as_dict() has format_version 1, the steps as dicts and the dry-run plan."""
        report = rehearsal.rehearse_tree(node_tree(NodeSpec()), str(tmp_path / "n"))
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
        report = rehearsal.rehearse(root)
        assert report.ok is True, report.steps
        assert [s.step for s in report.steps] == STEPS
        assert [a["action"] for a in report.plan["actions"]] == ["create-file"] * 3 + ["add-setting"]
        assert diff_trees(before, read_tree(root)) == []

    def test_hand_built_broken_node(self, fs):
        """A hand-built node with a garbage server.pem fails at precheck, naming not-pem, and stays as it was."""
        root = "/tandberg"
        _write_node_by_hand(fs, root, server_pem=b"garbage\n")
        before = read_tree(root)
        report = rehearsal.rehearse(root)
        assert report.ok is False
        [step] = report.steps
        assert step.step == "precheck" and not step.ok and "not-pem" in step.detail
        assert report.plan["actions"] == []
        assert diff_trees(before, read_tree(root)) == []
