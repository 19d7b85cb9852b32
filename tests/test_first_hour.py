"""A new user's first hour: the samples on disk, warnings where they act, one error per cause, usage that helps.

Every command runs through ``main(argv)``; every assertion is on the disk, the
exit code or the exact stream a user reads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from migrate import policy
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca
from migrate.testing.samples import sample_names, sample_tree
from migrate.testing.tree import read_tree

README = Path(__file__).resolve().parent.parent / "README.md"
CERTS = policy.CERT_DIR


def _listing(root: Path) -> dict:
    """Every path under ``root`` with its kind, mode, owner and bytes."""
    return {rel: (e.kind, e.mode, e.uid, e.gid, e.data) for rel, e in read_tree(root).items()}


class TestSample:
    def test_lays_out_both_samples_with_the_manifest(self, run, tmp_path):
        """sample DEST writes DEST/core and DEST/edge with the manifest's bytes, modes and owners, ready to migrate."""
        dest = tmp_path / "nodes"
        code, out, err = run("sample", dest, "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert [n["role"] for n in doc["nodes"]] == list(sample_names()) and doc["findings"] == []
        for name in sample_names():
            root = dest / name
            assert _listing(root) == {
                rel: (e.kind, e.mode, e.uid, e.gid, e.data) for rel, e in sample_tree(name).items()
            }
            assert (root.stat().st_mode & 0o777, root.stat().st_uid) == (0o755, 0)
            code, out, err = run("precheck", root, "--format", "json")
            assert code == 0 and json.loads(out)["ready"], out + err

    def test_one_role_at_dest_itself(self, run, tmp_path):
        """--role edge writes the Edge sample as the node root DEST, and nothing else."""
        dest = tmp_path / "edge"
        code, _, err = run("sample", dest, "--role", "edge")
        assert code == 0, err
        assert _listing(dest) == {rel: (e.kind, e.mode, e.uid, e.gid, e.data) for rel, e in sample_tree("edge").items()}

    def test_an_empty_directory_is_used(self, run, tmp_path):
        """An existing empty DEST is filled."""
        dest = tmp_path / "empty"
        dest.mkdir()
        assert run("sample", dest, "--role", "core")[0] == 0
        assert (dest / CERTS / "server.pem").read_bytes() == sample_tree("core")[f"{CERTS}/server.pem"].data

    @pytest.mark.parametrize("kind", ["file", "non-empty-dir", "symlink"])
    def test_never_writes_over_anything(self, run, tmp_path, kind):
        """A DEST that exists and is not an empty directory is refused with sample-dest-exists, untouched."""
        dest = tmp_path / "dest"
        if kind == "file":
            dest.write_bytes(b"mine\n")
        elif kind == "non-empty-dir":
            dest.mkdir()
            (dest / "keep").write_bytes(b"mine\n")
        else:
            (tmp_path / "target").mkdir()
            dest.symlink_to(tmp_path / "target")
        before = _listing(tmp_path)
        code, out, err = run("sample", dest)
        assert (code, out) == (1, "")
        assert err.startswith("error[sample-dest-exists]:") and len(err.splitlines()) == 1
        assert _listing(tmp_path) == before

    def test_not_root_sets_modes_and_says_which_owners_it_could_not(self):
        """Run as another user, sample sets every mode, keeps the user as owner, and warns per node."""
        from tests.test_attacks import OTHER, as_other_user

        base = Path(tempfile.mkdtemp(prefix="sample-", dir="/tmp"))  # pytest's tmp_path is under a 0700 directory
        os.chmod(base, 0o755)
        os.chown(base, OTHER, OTHER)
        dest = base / "nodes"
        out = base / "out.json"

        def lay_out():
            from migrate.cli import main

            with open(out, "w") as sink:
                sys.stdout = sink
                assert main(["sample", str(dest), "--format", "json"]) == 0

        try:
            assert as_other_user(lay_out) == 0
            doc = json.loads(out.read_text())
            trees = {name: read_tree(dest / name) for name in sample_names()}
        finally:
            shutil.rmtree(base)
        assert [f["id"] for f in doc["findings"]] == ["sample-owners-not-set"] * 2
        assert all("_nobody" in f["message"] and f["severity"] == "warning" for f in doc["findings"])
        for name, on_disk in trees.items():
            tree = sample_tree(name)
            assert {rel: e.mode for rel, e in on_disk.items()} == {rel: e.mode for rel, e in tree.items()}
            assert {(e.uid, e.gid) for e in on_disk.values()} == {(OTHER, OTHER)}


def _no_client_eku_node(root: Path) -> Path:
    """An X15.4 Core whose server certificate has serverAuth only, with EnableServerEkuUpload On."""
    identity = issue(make_ca("Example Internal CA1"), "core.example.com", eku=["serverAuth"])
    spec = NodeSpec(identity=identity, settings={policy.RETIRED_SETTING: '"On"'})
    return build_node(root, spec)


class TestApplyReportsFindings:
    @pytest.mark.parametrize("fmt", ["json", "text", "markdown"])
    def test_the_plan_warnings_are_in_apply_report(self, run, tmp_path, fmt):
        """apply reports the warnings plan shows (cert-no-client-eku, server-eku-upload-on), in every format."""
        root = _no_client_eku_node(tmp_path / "node")
        code, out, _ = run("plan", root, "--format", "json")
        warned = {f["id"] for f in json.loads(out)["findings"] if f["severity"] == "warning"}
        assert {"cert-no-client-eku", "server-eku-upload-on"} <= warned
        code, out, err = run("apply", root, "--format", fmt)
        assert code == 0, err
        assert (root / CERTS / "client.pem").read_bytes() == (root / CERTS / "server.pem").read_bytes()
        if fmt == "json":
            doc = json.loads(out)
            assert doc["ok"] and {f["id"] for f in doc["findings"] if f["severity"] == "warning"} == warned
        else:
            assert all(finding in out for finding in warned), out

    def test_already_migrated_still_says_them(self, run, tmp_path):
        """A second apply (nothing to do) reports the same warnings about the node as it is."""
        root = _no_client_eku_node(tmp_path / "node")
        assert run("apply", root)[0] == 0
        code, out, _ = run("apply", root, "--format", "json")
        doc = json.loads(out)
        assert (code, doc["result"]) == (0, "already-migrated")
        assert "cert-no-client-eku" in {f["id"] for f in doc["findings"]}


NODE_COMMANDS = [
    ("precheck",),
    ("plan",),
    ("apply",),
    ("verify",),
    ("rollback",),
    ("status",),
    ("rehearse", "--no-crash"),
]


class TestOneErrorPerCause:
    @pytest.mark.parametrize("command", NODE_COMMANDS, ids=lambda c: c[0])
    @pytest.mark.parametrize(
        "case, error",
        [("missing", "node-missing"), ("file", "node-not-directory"), ("empty-dir", "node-not-a-node")],
    )
    def test_every_command_resolves_a_node_the_same_way(self, run, tmp_path, command, case, error):
        """Missing, not a directory, not a node: every command gives the same one error, and writes nothing."""
        where = tmp_path / "node"
        if case == "file":
            where.write_bytes(b"x\n")
        elif case == "empty-dir":
            where.mkdir()
        before = _listing(tmp_path)
        code, out, err = run(command[0], where, *command[1:])
        assert (code, out) == (1, "")
        assert err.startswith(f"error[{error}]: ") and len(err.splitlines()) == 1, err
        assert _listing(tmp_path) == before

    def test_a_store_without_its_directory_is_one_finding(self, run, tmp_path):
        """A configuration but no certificate directory: directory-missing alone, not a file-missing per file."""
        root = tmp_path / "node"
        (root / "persistent").mkdir(parents=True)
        (root / policy.CONFIG_FILE).write_bytes(b'*c xConfiguration SystemUnit Name: "x"\n')
        code, out, _ = run("precheck", root, "--format", "json")
        assert code == 1
        ids = [f["id"] for f in json.loads(out)["findings"]]
        assert ids.count("directory-missing") == 1 and "file-missing" not in ids and "ssh-bundle-absent" not in ids

    def test_a_plan_for_another_node_is_refused_as_such(self, run, tmp_path):
        """apply core --plan edge.json says the plan is another node's (plan-other-node), and the Core is untouched."""
        core = build_node(tmp_path / "core", NodeSpec())
        edge = build_node(tmp_path / "edge", NodeSpec(role="edge"))
        plan_file = tmp_path / "edge.plan.json"
        assert run("plan", edge, "--out", plan_file)[0] == 0
        before = _listing(core)
        code, out, err = run("apply", core, "--plan", plan_file)
        assert (code, out) == (1, "")
        assert err.startswith("error[plan-other-node]: ") and str(edge) in err
        assert _listing(core) == before

    def test_plan_out_writes_nothing_for_a_blocked_node(self, run, tmp_path):
        """plan --out on a blocked node exits 1 and writes no plan file."""
        root = build_node(tmp_path / "node", NodeSpec())
        (root / CERTS / "server.pem").unlink()
        target = tmp_path / "plan.json"
        code, out, _ = run("plan", root, "--out", target)
        assert code == 1 and "file-missing" in out
        assert not target.exists()


class TestUsage:
    @pytest.mark.parametrize(
        "argv, message",
        [
            (["precheck"], "pass either NODE or --fleet DIR"),
            (["precheck", "n", "--fleet", "f"], "pass either NODE or --fleet DIR"),
            (["precheck", "n", "--jobs", "2"], "--jobs applies only with --fleet"),
            (["precheck", "--fleet", "f", "--config", "c"], "--cert-dir and --config name one node's files"),
        ],
    )
    def test_precheck_usage_errors_show_precheck_usage(self, run, argv, message):
        """A precheck usage error prints precheck's usage, not the top-level one, and exits 2."""
        code, out, err = run(*argv)
        assert (code, out) == (2, "")
        assert err.startswith("usage: expressway-migrate precheck ")
        assert f"expressway-migrate precheck: error: {message}" in err

    @pytest.mark.parametrize("typo, meant", [("aply", "apply"), ("rolback", "rollback"), ("prechek", "precheck")])
    def test_a_mistyped_command_gets_a_suggestion(self, run, typo, meant):
        """A mistyped command is answered with the closest one."""
        code, _, err = run(typo, "node")
        assert code == 2
        assert f"did you mean {meant!r}?" in err

    def test_no_suggestion_for_nonsense(self, run):
        """Nothing close: no suggestion, just the choices."""
        code, _, err = run("zzzzzz")
        assert code == 2 and "did you mean" not in err and "choose from" in err

    def test_usage_error_is_one_json_record_with_json_logs(self, run):
        """With --log-format json a usage error is one JSON record on stderr, the command's usage in its hint."""
        code, out, err = run("precheck", "--log-format", "json")
        assert (code, out) == (2, "")
        [line] = err.splitlines()
        record = json.loads(line)
        assert (record["level"], record["id"]) == ("error", "usage-error")
        assert "pass either NODE or --fleet DIR" in record["message"]
        assert record["hint"].startswith("usage: expressway-migrate precheck ")

    def test_command_error_is_one_json_record_with_json_logs(self, run, tmp_path):
        """With --log-format json a refusal is one JSON record on stderr, not the plain line."""
        code, out, err = run("status", tmp_path / "missing", "--log-format", "json")
        assert (code, out) == (1, "")
        [line] = err.splitlines()
        record = json.loads(line)
        assert (record["id"], record["message"]) == ("node-missing", f"no node at {tmp_path / 'missing'}")
        assert record["hint"] and re.fullmatch(r"\d{4}-\d\d-\d\dT.*Z", record["timestamp"])


class TestFactoryParameters:
    @pytest.mark.parametrize(
        "kwargs, listed",
        [
            ({"role": "edgy"}, "role must be one of 'core', 'edge', not 'edgy'"),
            ({"ssh": "maybe"}, "ssh must be one of 'same', 'absent', 'other', not 'maybe'"),
            ({"client": "copied"}, "client must be one of 'absent', 'migrated', not 'copied'"),
            ({"key_format": "der"}, "key_format must be one of 'pkcs8', 'pkcs1', 'sec1', not 'der'"),
        ],
    )
    def test_a_wrong_value_lists_the_valid_ones(self, kwargs, listed):
        """A wrong NodeSpec parameter is a ValueError naming it and listing the valid values."""
        with pytest.raises(ValueError) as info:
            NodeSpec(**kwargs)
        assert str(info.value) == listed

    def test_the_plugin_role_is_validated_the_same_way(self, fs):
        """make_x154_node(role="edgy") raises the same listing ValueError."""
        from migrate.testing.pytest_plugin import _make_node

        with pytest.raises(ValueError, match=r"^role must be one of 'core', 'edge', not 'edgy'$"):
            _make_node("/tandberg", role="edgy")


def walkthrough() -> str:
    """The README's walkthrough block, exactly as printed."""
    text = README.read_text(encoding="utf-8")
    block = text.split("<!-- walkthrough -->\n```sh\n", 1)[1].split("```", 1)[0]
    assert block.count("expressway-migrate") >= 9
    return block


class TestReadmeWalkthrough:
    def test_runs_as_printed(self, tmp_path):
        """The README's walkthrough runs line by line in an empty directory, each command exiting 0, and leaves
        the Core exactly as sample laid it out."""
        (tmp_path / ".venv").symlink_to(sys.prefix)  # the README's .venv/bin/... is this interpreter's environment
        assert Path(sys.prefix, "bin", "expressway-migrate").exists()
        done = subprocess.run(
            ["bash", "-e", "-c", walkthrough()], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "apply " in done.stdout and "result: migrated" in done.stdout
        assert "result: rolled-back" in done.stdout
        assert done.stdout.count("status ") == 2 and "X15.4 (not migrated)" in done.stdout
        core = tmp_path / "nodes" / "core"
        assert _listing(core) == {rel: (e.kind, e.mode, e.uid, e.gid, e.data) for rel, e in sample_tree("core").items()}

