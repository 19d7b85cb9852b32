"""The Ansible playbooks of ``ansible/``, run for real by ansible-playbook against node roots on localhost.

Each run is a real ``ansible-playbook`` process (``connection: local``) that
runs the real command on real node roots; the assertions are on the PLAY
RECAP and on the trees, never on what the tool said it did.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import subprocess
import sys

import pytest
import support

from migrate.testing.factory import NodeSpec, build_node
from migrate.testing.tree import diff_trees, read_tree

ANSIBLE_DIR = pathlib.Path(__file__).resolve().parent.parent / "ansible"
BIN = pathlib.Path(sys.executable).parent
# Node roots whose names would break a shell string: the playbooks pass argv.
NODES = {
    "core one": NodeSpec(role="core"),
    "edge's": NodeSpec(role="edge", settings={support.RETIRED: '"On"'}),
    "edge;$HOME": NodeSpec(role="edge", settings={support.RETIRED: '"On"'}, ssh="absent"),
}
pytestmark = pytest.mark.slow  # real ansible-playbook runs

RECAP = re.compile(r"^localhost\s*:\s*(.*)$", re.MULTILINE)


def _inventory(tmp: pathlib.Path, nodes: list[pathlib.Path]) -> pathlib.Path:
    """A YAML inventory (JSON is YAML) with localhost in the group expressway, driving ``nodes``."""
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        "expressway_migrate": str(BIN / "expressway-migrate"),
        "expressway_nodes": [str(node) for node in nodes],
    }
    path = tmp / "inventory.yml"
    path.write_text(json.dumps({"expressway": {"hosts": {"localhost": host}}}))
    return path


def _play(tmp: pathlib.Path, inventory: pathlib.Path, playbook: str, *extra: str) -> tuple[int, dict, str]:
    """Run ``ansible-playbook``; its exit code, the PLAY RECAP counts for localhost, and its output."""
    home = tmp / "ansible-home"
    config = tmp / "ansible.cfg"  # empty: no ansible.cfg of the machine or the user applies
    config.touch()
    env = {
        **os.environ,
        "HOME": str(home),
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "local-tmp"),
        "ANSIBLE_REMOTE_TEMP": str(home / "remote-tmp"),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_STDOUT_CALLBACK": "default",
        "ANSIBLE_CONFIG": str(config),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    proc = subprocess.run(
        [str(BIN / "ansible-playbook"), "-i", str(inventory), str(ANSIBLE_DIR / playbook), *extra],
        check=False,
        cwd=tmp,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = proc.stdout + proc.stderr
    recap = output.partition("PLAY RECAP")[2]
    match = RECAP.search(recap)
    assert match, output
    counts = {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
    return proc.returncode, counts, output


def _trees(nodes: list[pathlib.Path]) -> list:
    return [read_tree(node) for node in nodes]


def _same(before: list, after: list) -> list:
    """Every difference between two lists of trees (empty when each node is byte-for-byte the same)."""
    return [diff for old, new in zip(before, after, strict=True) for diff in diff_trees(old, new)]


@pytest.fixture(scope="class")
def cycle(tmp_path_factory):
    """The whole cycle once on three nodes: check, apply, apply, check, rollback check, rollback twice, check."""
    tmp = tmp_path_factory.mktemp("ansible")
    nodes = [build_node(tmp / "nodes" / name, spec) for name, spec in NODES.items()]
    inventory = _inventory(tmp, nodes)
    steps = {}

    def step(name, playbook, *extra):
        rc, counts, output = _play(tmp, inventory, playbook, *extra)
        steps[name] = {"rc": rc, "counts": counts, "output": output, "trees": _trees(nodes)}

    steps["original"] = {"trees": _trees(nodes)}
    step("check", "migrate.yml", "--check")
    step("apply", "migrate.yml")
    step("apply-again", "migrate.yml")
    step("check-migrated", "migrate.yml", "--check")
    step("rollback-check", "rollback.yml", "--check")
    step("rollback", "rollback.yml")
    step("rollback-again", "rollback.yml")
    step("rollback-check-again", "rollback.yml", "--check")
    return nodes, steps


def _ok(steps: dict, name: str, changed: int) -> None:
    run = steps[name]
    assert run["rc"] == 0, run["output"]
    assert run["counts"]["failed"] == 0 and run["counts"]["unreachable"] == 0, run["output"]
    assert run["counts"]["changed"] == changed, run["output"]


class TestPlaybooks:
    def test_check_mode_reports_every_node_and_writes_nothing(self, cycle):
        """migrate.yml --check reports one change per X15.4 node and leaves every node byte-for-byte as it was."""
        nodes, steps = cycle
        _ok(steps, "check", len(nodes))
        assert _same(steps["original"]["trees"], steps["check"]["trees"]) == []

    def test_first_run_migrates_every_node(self, cycle):
        """The first migrate.yml run changes every node: client.pem is server.pem, the retired setting is gone."""
        nodes, steps = cycle
        _ok(steps, "apply", len(nodes))
        for tree in steps["apply"]["trees"]:
            assert tree[f"{support.CERTS}/client.pem"].data == tree[f"{support.CERTS}/server.pem"].data
            assert b"EnableServerEkuUpload" not in tree[support.CONFIG].data
            assert support.JOURNAL in tree

    def test_second_run_changes_nothing(self, cycle):
        """A second migrate.yml run reports changed=0 and leaves the migrated trees as they were (idempotence)."""
        _, steps = cycle
        _ok(steps, "apply-again", 0)
        assert _same(steps["apply"]["trees"], steps["apply-again"]["trees"]) == []

    def test_check_mode_on_migrated_nodes_changes_nothing(self, cycle):
        """migrate.yml --check on migrated nodes reports changed=0 and writes nothing."""
        _, steps = cycle
        _ok(steps, "check-migrated", 0)
        assert _same(steps["apply"]["trees"], steps["check-migrated"]["trees"]) == []

    def test_rollback_check_mode_reports_every_node_and_writes_nothing(self, cycle):
        """rollback.yml --check reports one change per migrated node and leaves every node as it was."""
        nodes, steps = cycle
        _ok(steps, "rollback-check", len(nodes))
        assert _same(steps["apply"]["trees"], steps["rollback-check"]["trees"]) == []

    def test_rollback_restores_every_original_tree(self, cycle):
        """rollback.yml changes every node and returns each to its exact original X15.4 tree."""
        nodes, steps = cycle
        _ok(steps, "rollback", len(nodes))
        assert _same(steps["original"]["trees"], steps["rollback"]["trees"]) == []

    def test_second_rollback_changes_nothing(self, cycle):
        """A second rollback.yml run, and its check mode, report changed=0 and leave the X15.4 trees as they were."""
        _, steps = cycle
        _ok(steps, "rollback-again", 0)
        _ok(steps, "rollback-check-again", 0)
        assert _same(steps["original"]["trees"], steps["rollback-again"]["trees"]) == []
        assert _same(steps["original"]["trees"], steps["rollback-check-again"]["trees"]) == []

    def test_blocker_fails_the_host_and_stops_its_nodes(self, tmp_path):
        """A node with a blocker fails the host in check mode and for real, is left untouched, and so are the host's later nodes."""
        healthy = build_node(tmp_path / "nodes" / "first", NodeSpec(role="core"))
        blocked = build_node(tmp_path / "nodes" / "blocked", NodeSpec(role="edge", ssh="other"))
        later = build_node(tmp_path / "nodes" / "later", NodeSpec(role="core"))
        nodes = [healthy, blocked, later]
        inventory = _inventory(tmp_path, nodes)
        original = _trees(nodes)

        rc, counts, output = _play(tmp_path, inventory, "migrate.yml", "--check")
        assert rc != 0 and counts["failed"] == 1 and counts["changed"] == 1, output
        assert _same(original, _trees(nodes)) == []

        rc, counts, output = _play(tmp_path, inventory, "migrate.yml")
        assert rc != 0 and counts["failed"] == 1 and counts["changed"] == 1, output
        after = _trees(nodes)
        assert f"{support.CERTS}/client.pem" in after[0], output
        assert _same(original[1:], after[1:]) == [], output


class TestReporting:
    def test_warnings_on_the_task_and_a_diff(self, tmp_path):
        """The warnings plan shows are [WARNING]s of the task, in check mode and for real; --diff shows the files
        created and the configuration lines removed and added; a second run has neither."""
        from migrate import policy
        from migrate.testing.factory import issue, make_ca

        identity = issue(make_ca("Example Internal CA1"), "core.example.com", eku=["serverAuth"])
        node = build_node(tmp_path / "nodes" / "core", NodeSpec(identity=identity, settings={support.RETIRED: '"On"'}))
        inventory = _inventory(tmp_path, [node])
        original = _trees([node])

        for extra in (("--check", "--diff"), ("--diff",)):
            rc, counts, output = _play(tmp_path, inventory, "migrate.yml", *extra)
            assert rc == 0 and counts["changed"] == 1, output
            warnings = re.findall(r"^\[WARNING\]: (.*)$", output, re.MULTILINE)
            assert any(w.startswith(f"{node}: [cert-no-client-eku]") for w in warnings), output
            assert any(w.startswith(f"{node}: [server-eku-upload-on]") for w in warnings), output
            for name in ("client.pem", "clientprivkey.pem", "client-ssh.pem"):
                assert f"+++ after: {node}/{support.CERTS}/{name}\n" in output, output
            removed = rf"^-line \d+: \*c xConfiguration {re.escape(policy.RETIRED_SETTING)}: On$"
            assert re.search(removed, output, re.MULTILINE), output
            if "--check" in extra:
                assert _same(original, _trees([node])) == []

        rc, counts, output = _play(tmp_path, inventory, "migrate.yml", "--diff")
        assert rc == 0 and counts["changed"] == 0, output
        assert "+++ after:" not in output
        assert "[cert-no-client-eku]" in output  # the node still warrants the warning: it is about the node
