"""Tests for migrate.cli: every command, the exit-code contract, the three formats, errors, and no key in any output.

Every scenario runs ``main([...])`` on a node built with ``factory.build_node`` on a real
temporary directory (the suite runs as root, so owners are real), and asserts on the tree
itself (``tree.read_tree``/``diff_trees``), not only on what the command printed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from support import PLAN_KEYS

from migrate import facts, fsops, journal, policy
from migrate.cli import main
from migrate.scan import Layout
from migrate.testing.factory import NodeSpec, build_node
from migrate.testing.tree import diff_trees, read_tree

CERTS = policy.CERT_DIR
CONFIG = policy.CONFIG_FILE
STATE = policy.STATE_DIR
FORMATS = ("text", "json", "markdown")
NODE_COMMANDS = ("precheck", "plan", "apply", "verify", "rollback", "status")
CHECKING_LINE = b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On\n"
# (client file, its counterpart, policy mode)
CLIENT_FILES = (
    ("client.pem", "server.pem", 0o644),
    ("clientprivkey.pem", "privkey.pem", 0o440),
    ("client-ssh.pem", "server-ssh.pem", 0o600),
)
MIGRATION_PATHS = (
    {f"{CERTS}/{name}" for name, _, _ in CLIENT_FILES}
    | {CONFIG, STATE}
    | {f"{STATE}/{name}" for name in (policy.JOURNAL_NAME, policy.CONFIG_BACKUP_NAME, policy.LOCK_NAME)}
)
ERROR_LINE = re.compile(r"^error\[(?P<id>[a-z0-9-]+)\]: .+ -- hint: .+$")

# The keys API.md documents for each command's JSON document.
JSON_KEYS = {
    "precheck": {"format_version", "command", "node", "ready", "state", "migrated_by_tool", "findings"},
    "plan": PLAN_KEYS,
    "apply": {"format_version", "command", "node", "ok", "result", "actions", "findings", "displaced"},
    "rollback": {"format_version", "command", "node", "ok", "result", "actions", "findings", "displaced"},
    "verify": {"format_version", "command", "node", "ok", "findings"},
    "status": {
        "format_version",
        "command",
        "node",
        "state",
        "migrated_by_tool",
        "journal",
        "pending_actions",
        "findings",
    },
}
ERROR_KEYS = {"format_version", "command", "ok", "error"}


@attrs.frozen
class Result:
    """One run of ``main``: the exit code and what it wrote."""

    code: int
    out: str
    err: str

    @property
    def doc(self) -> dict:
        return json.loads(self.out)

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]


class Crash(BaseException):
    """A power cut: not an Exception, so it escapes every cleanup handler."""


@pytest.fixture
def run(capsys):
    """Run ``main`` with the given arguments (str() applied) and capture its output."""

    def run(*argv) -> Result:
        code = main([str(arg) for arg in argv])
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return run


@pytest.fixture
def node(tmp_path) -> Path:
    """A healthy X15.4 core node (NodeSpec defaults, ec256 keys) on the real disk."""
    return build_node(tmp_path / "node", NodeSpec())


@pytest.fixture
def garbage_node(tmp_path) -> Path:
    """An X15.4 node whose server.pem holds no PEM at all (mode and owner kept)."""
    root = build_node(tmp_path / "garbage", NodeSpec())
    with open(root / CERTS / "server.pem", "wb") as f:
        f.write(b"this is not a certificate\n")
    return root


def ids(findings: list[dict]) -> set[str]:
    return {f["id"] for f in findings}


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as f:
        f.write(data)


def assert_migrated(root: Path, original: dict) -> None:
    """The tree at ``root`` is ``original`` migrated to X15.5, and nothing else changed."""
    now = read_tree(root)
    for name, counterpart, mode in CLIENT_FILES:
        new, old = now[f"{CERTS}/{name}"], original[f"{CERTS}/{counterpart}"]
        assert (new.kind, new.data, new.mode, new.uid, new.gid) == ("file", old.data, mode, old.uid, old.gid), name
    config = now[CONFIG]
    assert config.data == original[CONFIG].data + CHECKING_LINE
    assert (config.mode, config.uid, config.gid) == (original[CONFIG].mode, original[CONFIG].uid, original[CONFIG].gid)
    changed = {line.rsplit(" ", 1)[-1] for line in diff_trees(original, now)}
    assert changed <= MIGRATION_PATHS


def assert_untouched(root: Path, before: dict) -> None:
    """The tree at ``root`` is exactly ``before`` and the tool left no state directory."""
    assert diff_trees(before, read_tree(root)) == []
    assert not (root / STATE).exists()


def assert_one_error_line(result: Result, error_id: str) -> None:
    """stderr is exactly one ``error[id]: ... -- hint: ...`` line, without a traceback."""
    assert result.err_lines == [result.err.strip()]
    match = ERROR_LINE.match(result.err.strip())
    assert match is not None, result.err
    assert match["id"] == error_id
    assert "Traceback" not in result.err


class TestPrecheck:
    def test_healthy_node_exits_0(self, run, node):
        """precheck on a healthy X15.4 node exits 0, reports ready and changes nothing."""
        before = read_tree(node)
        result = run("precheck", node, "--format", "json")
        assert result.code == 0
        assert result.doc["ready"] is True and result.doc["state"] == "x15.4"
        assert_untouched(node, before)

    def test_blocker_exits_1(self, run, tmp_path):
        """precheck exits 1 when server-ssh.pem holds another identity, and names the blocker."""
        root = build_node(tmp_path / "node", NodeSpec(ssh="other"))
        result = run("precheck", root, "--format", "json")
        assert result.code == 1
        assert result.doc["ready"] is False
        blockers = [f for f in result.doc["findings"] if f["severity"] == "blocker"]
        assert "ssh-identity-mismatch" in ids(blockers)

    def test_garbage_server_pem_is_not_pem(self, run, garbage_node):
        """A server.pem with no PEM block makes precheck exit 1 with a not-pem blocker on that path."""
        result = run("precheck", garbage_node, "--format", "json")
        assert result.code == 1
        [finding] = [f for f in result.doc["findings"] if f["id"] == "not-pem"]
        assert finding["severity"] == "blocker"
        assert finding["path"] == f"{CERTS}/server.pem"

    def test_warn_days_reports_expiring_certificate(self, run, node):
        """--warn-days 400 reports the leaf (valid 365 more days) as expiring, still exit 0."""
        assert "cert-expiring" not in ids(run("precheck", node, "--format", "json").doc["findings"])
        result = run("precheck", node, "--format", "json", "--warn-days", "400")
        assert result.code == 0
        assert "cert-expiring" in ids(result.doc["findings"])


class TestPlan:
    def test_exit_0_without_detailed_exitcode(self, run, node):
        """plan exits 0 on a node with pending actions when --detailed-exitcode is not given."""
        result = run("plan", node, "--format", "json")
        assert result.code == 0
        assert [a["action"] for a in result.doc["actions"]] == ["create-file"] * 3 + ["add-setting"]

    def test_detailed_exitcode_2_then_0_after_apply(self, run, node):
        """--detailed-exitcode exits 2 while actions are pending and 0 once the node is migrated."""
        assert run("plan", node, "--detailed-exitcode").code == 2
        assert run("apply", node).code == 0
        result = run("plan", node, "--detailed-exitcode", "--format", "json")
        assert result.code == 0
        assert result.doc["actions"] == []

    @pytest.mark.parametrize("extra", [[], ["--detailed-exitcode"]])
    def test_blocked_exits_1(self, run, tmp_path, extra):
        """plan exits 1 on a blocked node (with or without --detailed-exitcode) and lists no action."""
        root = build_node(tmp_path / "node", NodeSpec(ssh="other"))
        result = run("plan", root, "--format", "json", *extra)
        assert result.code == 1
        assert result.doc["ready"] is False and result.doc["actions"] == []

    def test_out_writes_the_plan_and_apply_plan_executes_it(self, run, node, tmp_path):
        """plan --out writes the plan's JSON; apply --plan FILE executes it and migrates the tree."""
        original = read_tree(node)
        out = tmp_path / "plan.json"
        result = run("plan", node, "--out", out, "--format", "json")
        assert result.code == 0
        saved = json.loads(out.read_bytes())
        assert saved == result.doc
        assert saved["format_version"] == 1 and saved["command"] == "plan"
        assert diff_trees(original, read_tree(node)) == []  # plan wrote nothing into the node
        applied = run("apply", node, "--plan", out, "--format", "json")
        assert applied.code == 0, applied.err
        assert applied.doc["result"] == "migrated"
        assert applied.doc["actions"] == saved["actions"]
        assert_migrated(node, original)

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(
                lambda root: _append(root / CONFIG, b"*c xConfiguration H323 Gatekeeper: On\n"), id="config-edited"
            ),
            pytest.param(lambda root: os.chmod(root / CERTS / "ca.pem", 0o640), id="ca-mode-changed"),
            pytest.param(lambda root: os.chown(root / CERTS / "server.pem", 0, 0), id="server-owner-changed"),
        ],
    )
    def test_stale_saved_plan_refused(self, run, node, tmp_path, change):
        """apply --plan refuses a plan saved before the node changed: exit 1, one plan-stale line, node untouched."""
        out = tmp_path / "plan.json"
        assert run("plan", node, "--out", out).code == 0
        change(node)
        before = read_tree(node)
        result = run("apply", node, "--plan", out)
        assert result.code == 1
        assert_one_error_line(result, "plan-stale")
        assert result.err.startswith("error[plan-stale]:")
        assert_untouched(node, before)


class TestApply:
    def test_apply_then_apply_again(self, run, node):
        """apply migrates (exit 0); a second apply exits 0 as already-migrated and changes nothing."""
        original = read_tree(node)
        first = run("apply", node, "--format", "json")
        assert first.code == 0
        assert (first.doc["ok"], first.doc["result"]) == (True, "migrated")
        assert_migrated(node, original)
        migrated = read_tree(node)
        second = run("apply", node, "--format", "json")
        assert second.code == 0
        assert (second.doc["ok"], second.doc["result"], second.doc["actions"]) == (True, "already-migrated", [])
        assert diff_trees(migrated, read_tree(node)) == []

    def test_garbage_server_pem_refused_untouched(self, run, garbage_node):
        """apply on a node with a garbage server.pem exits 1 with one not-pem line; no file, no state directory."""
        before = read_tree(garbage_node)
        result = run("apply", garbage_node)
        assert result.code == 1
        assert_one_error_line(result, "not-pem")
        assert result.out == ""
        assert_untouched(garbage_node, before)

    def test_write_failure_undone(self, run, node, monkeypatch):
        """An I/O error while replacing the configuration makes apply exit 1 (apply-failed) with the node back to X15.4."""
        original = read_tree(node)
        real_replace = os.replace

        def replace(src, dst, *args, **kwargs):
            if Path(dst).name == "xconfiguration.txt":
                raise OSError(errno.EIO, "Input/output error")
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(fsops.os, "replace", replace)
        result = run("apply", node)
        assert result.code == 1
        # The error-level log of the failure may precede it; the error itself is one line.
        [line] = [line for line in result.err_lines if line.startswith("error[")]
        assert ERROR_LINE.match(line)["id"] == "apply-failed"
        assert "Traceback" not in result.err
        assert_untouched(node, original)

    def test_lock_held_refused(self, run, node):
        """apply exits 1 with lock-held while another run holds the node's lock, and creates no client file."""
        layout = Layout.for_node(node)
        with journal.locked(layout):
            result = run("apply", node)
        assert result.code == 1
        assert_one_error_line(result, "lock-held")
        assert not any((node / CERTS / name).exists() for name, _, _ in CLIENT_FILES)


class TestVerify:
    def test_1_before_0_after_apply(self, run, node):
        """verify exits 1 on an X15.4 node (client files missing) and 0 after apply."""
        before = run("verify", node, "--format", "json")
        assert before.code == 1
        assert before.doc["ok"] is False
        assert {"client-file-missing", "checking-mode-unstated"} <= ids(before.doc["findings"])
        assert run("apply", node).code == 0
        after = run("verify", node, "--format", "json")
        assert after.code == 0
        assert (after.doc["ok"], after.doc["findings"]) == (True, [])


class TestRollback:
    def test_rollback_restores_exact_original(self, run, node):
        """rollback after apply exits 0 and the tree equals the original exactly (bytes, modes, owners, file set)."""
        original = read_tree(node)
        assert run("apply", node).code == 0
        result = run("rollback", node, "--format", "json")
        assert result.code == 0
        assert result.doc["result"] == "rolled-back"
        assert diff_trees(original, read_tree(node)) == []

    def test_rollback_untouched_node(self, run, node):
        """rollback on a node never migrated exits 0 with nothing-to-do and changes nothing."""
        before = read_tree(node)
        result = run("rollback", node, "--format", "json")
        assert result.code == 0
        assert (result.doc["result"], result.doc["actions"]) == ("nothing-to-do", [])
        assert_untouched(node, before)

    def test_not_migrated_by_tool_refused(self, run, tmp_path):
        """rollback on an X15.5 node with no journal exits 1 (not-migrated-by-tool) and changes nothing."""
        root = build_node(tmp_path / "node", NodeSpec(client="migrated"))
        before = read_tree(root)
        result = run("rollback", root)
        assert result.code == 1
        assert_one_error_line(result, "not-migrated-by-tool")
        assert_untouched(root, before)

    def test_conflict_refused_then_forced(self, run, node):
        """A client file changed since apply makes rollback exit 1; --force moves it aside and restores X15.4."""
        original = read_tree(node)
        assert run("apply", node).code == 0
        with open(node / CERTS / "client.pem", "ab") as f:
            f.write(b"# edited after the migration\n")
        refused = run("rollback", node)
        assert refused.code == 1
        assert_one_error_line(refused, "rollback-conflict")
        assert (node / STATE / policy.JOURNAL_NAME).exists()
        forced = run("rollback", node, "--force", "--format", "json")
        assert forced.code == 0
        displaced = forced.doc["displaced"]
        assert displaced and displaced.startswith(policy.DISPLACED_PREFIX)
        assert (node / displaced / "client.pem").read_bytes().endswith(b"# edited after the migration\n")
        now = read_tree(node)
        assert diff_trees(original, {k: v for k, v in now.items() if not k.startswith(displaced)}) == []


class TestStatus:
    def test_state_through_apply_and_rollback(self, run, node):
        """status says x15.4, then x15.5 migrated by this tool after apply, then x15.4 after rollback; always exit 0."""

        def status() -> tuple:
            result = run("status", node, "--format", "json")
            assert result.code == 0
            return result.doc["state"], result.doc["migrated_by_tool"]

        assert status() == ("x15.4", False)
        assert run("apply", node).code == 0
        assert status() == ("x15.5", True)
        assert run("rollback", node).code == 0
        assert status() == ("x15.4", False)

    def test_blocked_node_status_exits_0(self, run, garbage_node):
        """status exits 0 even on a blocked node, listing its blockers."""
        result = run("status", garbage_node, "--format", "json")
        assert result.code == 0
        assert "not-pem" in ids(result.doc["findings"])


def _crash_on_config(dst: Path) -> bool:
    return dst.name == "xconfiguration.txt"


def _crash_after_client_pem(dst: Path) -> bool:
    certs = dst.parent.parent / "certs"
    return (
        dst.name == policy.JOURNAL_NAME
        and (certs / "client.pem").exists()
        and not (certs / "clientprivkey.pem").exists()
    )


class TestInterruptedApply:
    @pytest.mark.parametrize(
        "crash_when, remaining",
        [
            pytest.param(_crash_on_config, [("add-setting", CONFIG)], id="at-config-replace"),
            pytest.param(
                _crash_after_client_pem,
                [
                    ("create-file", f"{CERTS}/clientprivkey.pem"),
                    ("create-file", f"{CERTS}/client-ssh.pem"),
                    ("add-setting", CONFIG),
                ],
                id="after-client-pem",
            ),
        ],
    )
    def test_crash_then_status_plan_apply(self, run, node, monkeypatch, crash_when, remaining):
        """After a power cut mid-apply, status says interrupted, plan lists what is left, apply finishes, rollback is exact."""
        original = read_tree(node)
        real_replace = os.replace
        fired = []

        def replace(src, dst, *args, **kwargs):
            if "dst_dir_fd" in kwargs:  # the writer names files relative to the directories it holds
                dst = Path(os.readlink(f"/proc/self/fd/{kwargs['dst_dir_fd']}")) / dst
            if not fired and crash_when(Path(dst)):
                fired.append(dst)
                raise Crash(str(dst))
            return real_replace(src, dst, *args, **kwargs)

        monkeypatch.setattr(fsops.os, "replace", replace)
        with pytest.raises(Crash):
            main(["apply", str(node)])
        assert fired
        status = run("status", node, "--format", "json")
        assert status.code == 0
        assert status.doc["state"] == "interrupted"
        assert status.doc["journal"]["state"] == "applying"
        assert status.doc["pending_actions"] == len(remaining)
        plan = run("plan", node, "--format", "json")
        assert plan.code == 0
        assert [(a["action"], a["path"]) for a in plan.doc["actions"]] == remaining
        applied = run("apply", node, "--format", "json")
        assert applied.code == 0, applied.err
        assert applied.doc["ok"] is True
        assert run("verify", node).code == 0
        assert_migrated(node, original)
        assert run("rollback", node).code == 0
        assert diff_trees(original, read_tree(node)) == []


class TestUsage:
    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param([], id="no-command"),
            pytest.param(["frobnicate", "/tandberg"], id="unknown-command"),
            pytest.param(["status", "/tandberg", "--format", "xml"], id="bad-format"),
            pytest.param(["status"], id="no-node"),
            pytest.param(["precheck", "/tandberg", "--warn-days", "soon"], id="bad-warn-days"),
            pytest.param(["status", "/tandberg", "--log-format", "xml"], id="bad-log-format"),
        ],
    )
    def test_usage_error_exits_2(self, run, argv):
        """A usage error exits 2 with a usage message on stderr and nothing on stdout."""
        result = run(*argv)
        assert result.code == 2
        assert "usage:" in result.err
        assert result.out == ""

    def test_version_exits_0(self, run):
        """--version prints the program name and exits 0."""
        result = run("--version")
        assert result.code == 0
        assert "expressway-migrate" in result.out


def _prepare(run, node: Path, command: str) -> None:
    """Bring ``node`` to the state in which ``command`` has something to report."""
    if command == "rollback":
        assert run("apply", node).code == 0


class TestFormats:
    @pytest.mark.parametrize("command", NODE_COMMANDS)
    def test_json(self, run, node, command):
        """--format json prints one parseable document with format_version 1 and exactly the keys of API.md."""
        _prepare(run, node, command)
        result = run(command, node, "--format", "json")
        assert result.code in (0, 1)
        doc = result.doc
        assert doc["format_version"] == 1
        assert doc["command"] == command
        assert set(doc) == JSON_KEYS[command]
        assert doc["node"] == str(node)

    @pytest.mark.parametrize("command", NODE_COMMANDS)
    def test_markdown(self, run, node, command):
        """--format markdown prints a heading (and a table or list) naming the command."""
        _prepare(run, node, command)
        result = run(command, node, "--format", "markdown")
        assert re.search(r"^#{1,6} .*`" + command + "`", result.out, re.MULTILINE) or re.search(
            r"^\|.*\|$", result.out, re.MULTILINE
        )
        assert result.out.endswith("\n")
        assert str(node) in result.out

    @pytest.mark.parametrize("command", NODE_COMMANDS)
    def test_text(self, run, node, command):
        """--format text (the default) prints non-empty lines naming the command and node."""
        _prepare(run, node, command)
        result = run(command, node)
        assert result.out.strip()
        assert result.out.endswith("\n")
        assert result.out.startswith(f"{command} {node}:")

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_plan_actions_in_every_format(self, run, node, fmt):
        """Every format of plan names each planned action and its path."""
        out = run("plan", node, "--format", fmt).out
        for name, _, _ in CLIENT_FILES:
            assert f"{CERTS}/{name}" in out
        assert "add-setting" in out and policy.CHECKING_SETTING in out

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_findings_in_every_format(self, run, garbage_node, fmt):
        """Every format of precheck names the blocker's id and path."""
        result = run("precheck", garbage_node, "--format", fmt)
        assert result.code == 1
        assert "not-pem" in result.out and f"{CERTS}/server.pem" in result.out


class TestErrors:
    @pytest.mark.parametrize("command", NODE_COMMANDS)
    def test_missing_node(self, run, tmp_path, command):
        """A missing node directory: exit 1, one node-missing line with a hint, no traceback, nothing created."""
        missing = tmp_path / "no-such-node"
        result = run(command, missing)
        assert result.code == 1
        assert_one_error_line(result, "node-missing")
        assert result.out == ""
        assert not missing.exists()

    def test_node_is_a_file(self, run, tmp_path):
        """A node path that is a regular file: exit 1 with one node-not-directory line."""
        path = tmp_path / "file"
        path.write_bytes(b"x")
        result = run("precheck", path)
        assert result.code == 1
        assert_one_error_line(result, "node-not-directory")

    @pytest.mark.parametrize("command", NODE_COMMANDS)
    def test_json_error_object(self, run, tmp_path, command):
        """With --format json an error also prints the JSON error object on stdout."""
        result = run(command, tmp_path / "no-such-node", "--format", "json")
        assert result.code == 1
        assert_one_error_line(result, "node-missing")
        doc = result.doc
        assert set(doc) == ERROR_KEYS
        assert (doc["format_version"], doc["command"], doc["ok"]) == (1, command, False)
        assert set(doc["error"]) == {"id", "message", "path", "hint"}
        assert doc["error"]["id"] == "node-missing" and doc["error"]["hint"]

    def test_apply_garbage_json_error(self, run, garbage_node):
        """apply --format json on a blocked node prints the not-pem error object naming server.pem."""
        result = run("apply", garbage_node, "--format", "json")
        assert result.code == 1
        assert result.doc["error"]["id"] == "not-pem"
        assert result.doc["error"]["path"] == f"{CERTS}/server.pem"

    @pytest.mark.parametrize(
        "content, error_id",
        [
            pytest.param(None, "plan-unreadable", id="missing"),
            pytest.param(b"{not json", "plan-invalid", id="not-json"),
            pytest.param(b'{"format_version": 1, "command": "precheck"}\n', "plan-invalid", id="not-a-plan"),
        ],
    )
    def test_bad_saved_plan(self, run, node, tmp_path, content, error_id):
        """apply --plan with an unreadable or invalid plan file exits 1 with one error line; node untouched."""
        path = tmp_path / "plan.json"
        if content is not None:
            path.write_bytes(content)
        before = read_tree(node)
        result = run("apply", node, "--plan", path)
        assert result.code == 1
        assert_one_error_line(result, error_id)
        assert_untouched(node, before)

    def test_plan_out_unwritable(self, run, node, tmp_path):
        """plan --out into a missing directory exits 1 with one output-unwritable line."""
        result = run("plan", node, "--out", tmp_path / "no-such-dir" / "plan.json")
        assert result.code == 1
        assert_one_error_line(result, "output-unwritable")

    def test_internal_error_is_one_line(self, run, node, monkeypatch):
        """An unexpected exception becomes exit 1 and one internal-error line, without a traceback."""
        monkeypatch.setattr(facts, "analyse", _boom)
        result = run("precheck", node)
        assert result.code == 1
        assert_one_error_line(result, "internal-error")
        assert "RuntimeError: boom" in result.err

    def test_internal_error_json_error_object(self, run, node, monkeypatch):
        """With --format json an internal error also prints a JSON error object on stdout, as every error does."""
        monkeypatch.setattr(facts, "analyse", _boom)
        result = run("precheck", node, "--format", "json")
        assert result.code == 1
        assert result.doc["ok"] is False
        assert result.doc["error"]["id"] == "internal-error"

    def test_internal_error_traceback_only_with_debug(self, run, node, monkeypatch):
        """The internal-error hint promises a traceback with --debug: -vv alone shows none, --debug shows it after the line."""
        monkeypatch.setattr(facts, "analyse", _boom)
        result = run("precheck", node, "-vv")
        assert result.code == 1
        assert "error[internal-error]: RuntimeError: boom -- hint: " in result.err and "--debug" in result.err
        assert "Traceback" not in result.err and "_boom" not in result.err
        result = run("precheck", node, "-vv", "--debug")
        assert result.code == 1
        assert "Traceback (most recent call last):" in result.err
        assert 'raise RuntimeError("boom")' in result.err and "RuntimeError: boom" in result.err.splitlines()[-1]

    def test_internal_error_as_one_json_record(self, run, node, monkeypatch):
        """With --log-format json the error is one JSON record on stderr; --debug puts the traceback inside it."""
        monkeypatch.setattr(facts, "analyse", _boom)
        result = run("precheck", node, "-vv", "--log-format", "json")
        assert result.code == 1
        [record] = [json.loads(line) for line in result.err_lines]
        assert (record["level"], record["id"], record["message"]) == ("error", "internal-error", "RuntimeError: boom")
        assert "--debug" in record["hint"] and "exception" not in record
        result = run("precheck", node, "-vv", "--log-format", "json", "--debug")
        [record] = [json.loads(line) for line in result.err_lines]
        assert record["exception"].startswith("Traceback (most recent call last):")
        assert 'raise RuntimeError("boom")' in record["exception"]


def _boom(*args, **kwargs):
    raise RuntimeError("boom")


class TestLogging:
    def test_json_log_lines(self, run, node):
        """apply -v --log-format json writes only JSON lines on stderr, with file_created events."""
        result = run("apply", node, "-v", "--log-format", "json", "--format", "json")
        assert result.code == 0
        assert result.doc["result"] == "migrated"  # the report stays on stdout
        events = [json.loads(line) for line in result.err_lines]
        created = {e["path"] for e in events if e["event"] == "file_created"}
        assert {str(node / CERTS / name) for name, _, _ in CLIENT_FILES} <= created
        assert all(e["level"] in ("debug", "info", "warning", "error") for e in events)

    def test_quiet_by_default(self, run, node):
        """Without -v a successful apply logs nothing on stderr."""
        result = run("apply", node)
        assert result.code == 0
        assert result.err == ""


def _key_lines(root: Path) -> list[str]:
    """The base64 body lines of privkey.pem."""
    lines = (root / CERTS / "privkey.pem").read_text().splitlines()
    body = [line for line in lines if line and not line.startswith("-----")]
    assert body
    return body


class TestNoKeyMaterial:
    def test_no_key_in_any_output(self, run, node, tmp_path):
        """No command in any format, log format or verbosity ever prints PRIVATE KEY or a line of the key's base64."""
        body = _key_lines(node)
        joined = "".join(body)
        outputs = []

        def every_format(command, *extra):
            for fmt in FORMATS:
                for logging in (["-vv"], ["-vv", "--log-format", "json"]):
                    result = run(command, node, "--format", fmt, *logging, *extra)
                    outputs.append((command, fmt, logging, result.out + result.err))

        for command in ("status", "precheck", "plan", "verify"):
            every_format(command)
        every_format("plan", "--out", tmp_path / "plan.json")
        every_format("apply", "--plan", tmp_path / "plan.json")  # migrates once, then already-migrated
        for command in ("status", "verify", "plan", "rollback", "apply", "rollback"):
            every_format(command)
        outputs.append(("plan --out file", "json", [], (tmp_path / "plan.json").read_text()))
        for command, fmt, logging, text in outputs:
            flat = text.replace("\\n", "").replace("\n", "")
            assert "PRIVATE KEY" not in text, (command, fmt, logging)
            assert joined not in flat, (command, fmt, logging)
            for line in body:
                assert line not in text, (command, fmt, logging)

    @pytest.mark.parametrize(
        "damage",
        [
            pytest.param(lambda key: key + b"trailing text after the key\n", id="trailing-data"),
            pytest.param(lambda key: key + key, id="two-keys"),
            pytest.param(lambda key: b"\n".join(key.splitlines()[:-1]) + b"\n", id="no-end-line"),
            pytest.param(lambda key: b"\n".join(key.splitlines()[1:-1]) + b"\n", id="bare-base64"),
        ],
    )
    def test_no_key_in_errors(self, run, node, damage):
        """A damaged privkey.pem is reported without echoing any line of its base64 body."""
        body = _key_lines(node)
        path = node / CERTS / "privkey.pem"
        path.write_bytes(damage(path.read_bytes()))
        for command in ("precheck", "plan", "apply", "status", "verify"):
            for fmt in FORMATS:
                result = run(command, node, "--format", fmt, "-vv")
                text = result.out + result.err
                assert command in ("status",) or result.code == 1, (command, fmt)
                for line in body:
                    assert line not in text, (command, fmt)


class TestModuleEntryPoint:
    def test_python_m_migrate_help(self):
        """``python -m migrate --help`` exits 0 and lists the commands."""
        proc = subprocess.run(
            [sys.executable, "-m", "migrate", "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
        assert proc.returncode == 0, proc.stderr
        for command in (*NODE_COMMANDS, "rehearse"):
            assert command in proc.stdout


class _FailingStdout:
    """A stdout whose ``write`` or ``flush`` fails with ``errno``; what it was asked to write is kept in ``writes``."""

    def __init__(self, errno_: int, fail_on: str, fd: int | None = None) -> None:
        self.errno, self.fail_on, self.fd = errno_, fail_on, fd
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        if self.fail_on == "write":
            raise OSError(self.errno, os.strerror(self.errno))
        return len(text)

    def flush(self) -> None:
        if self.fail_on == "flush":
            raise OSError(self.errno, os.strerror(self.errno))

    def fileno(self) -> int:
        if self.fd is None:
            raise OSError(errno.EBADF, "no descriptor (captured)")  # as pytest's capture says it
        return self.fd


class _RefuseImport:
    """A meta-path finder that fails to import one module, as a broken install does."""

    def __init__(self, name: str) -> None:
        self.name = name

    def find_spec(self, fullname, path=None, target=None):
        if fullname == self.name:
            raise ImportError(f"cannot import name 'FILES' from partially initialized module {self.name!r}")


def _break_module(monkeypatch, name: str) -> None:
    """Make ``import name`` fail for the rest of the test (the module is put back afterwards)."""
    import migrate

    monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.delattr(migrate, name.rpartition(".")[2], raising=False)
    monkeypatch.setattr(sys, "meta_path", [_RefuseImport(name), *sys.meta_path])


def _assert_debug_traceback(result: Result, error_id: str, *needles: str) -> None:
    """stderr is the one error line, then a full traceback holding every needle."""
    assert ERROR_LINE.match(result.err_lines[0]) and result.err_lines[0].startswith(f"error[{error_id}]:")
    assert result.err_lines[1] == "Traceback (most recent call last):"
    for needle in needles:
        assert needle in result.err, needle


class TestNeverATraceback:
    @pytest.mark.parametrize("fmt", ["text", "json"])
    @pytest.mark.parametrize("fail_on", ["write", "flush"])
    @pytest.mark.parametrize("errno_", [errno.ENOSPC, errno.EIO, errno.EPIPE], ids=["ENOSPC", "EIO", "EPIPE"])
    def test_unwritable_report(self, run, node, monkeypatch, errno_, fail_on, fmt):
        """A report that stdout refuses (on write or on flush) is one report-unwritable line with the cause and exit 1; no JSON error object is tried on the failed stdout."""
        stdout = _FailingStdout(errno_, fail_on)
        monkeypatch.setattr(sys, "stdout", stdout)
        result = run("precheck", node, "--format", fmt)
        assert result.code == 1
        assert_one_error_line(result, "report-unwritable")
        assert f"({os.strerror(errno_)}); the command itself ended with exit code 0" in result.err
        assert len(stdout.writes) == 1 and f"{node}" in stdout.writes[0]  # the report, once; nothing after it

    def test_unwritable_report_debug(self, run, node, monkeypatch):
        """With --debug the report-unwritable line is followed by the OSError's traceback."""
        monkeypatch.setattr(sys, "stdout", _FailingStdout(errno.ENOSPC, "flush"))
        result = run("status", node, "--debug")
        assert result.code == 1
        _assert_debug_traceback(result, "report-unwritable", "OSError: [Errno 28] No space left on device")

    def test_stdout_descriptor_silenced(self, run, node, monkeypatch):
        """After a failed report, stdout's descriptor points at /dev/null, so the flush at exit cannot fail again."""
        read_end, write_end = os.pipe()
        try:
            monkeypatch.setattr(sys, "stdout", _FailingStdout(errno.EIO, "flush", fd=write_end))
            result = run("status", node)
            assert result.code == 1
            assert_one_error_line(result, "report-unwritable")
            now, null = os.fstat(write_end), os.stat(os.devnull)
            assert (now.st_mode & 0o170000, now.st_rdev) == (0o020000, null.st_rdev)  # a character device: /dev/null
            assert os.write(write_end, b"flushed at exit") == 15
        finally:
            os.close(read_end)
            os.close(write_end)

    @pytest.mark.parametrize(
        "argv",
        [
            pytest.param(["precheck", "{node}"], id="text"),
            pytest.param(["precheck", "{node}", "--format", "json"], id="json"),
            pytest.param(["--help"], id="help"),
        ],
    )
    def test_dev_full_subprocess(self, node, argv):
        """`python -m migrate` with stdout on /dev/full exits 1 with exactly one report-unwritable line on stderr: no traceback, no 'Exception ignored' at exit."""
        with open("/dev/full", "wb") as full:
            proc = subprocess.run(
                [sys.executable, "-m", "migrate", *(arg.format(node=node) for arg in argv)],
                stdout=full,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
                cwd=Path(__file__).resolve().parent.parent,
            )
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and proc.stderr.endswith("\n")
        assert proc.stderr.startswith("error[report-unwritable]: cannot write the report to stdout (No space left")
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr

    def test_closed_pipe_subprocess(self, node):
        """stdout a pipe whose reader has gone: exit 1 and one report-unwritable line, not a BrokenPipeError traceback."""
        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "migrate", "status", str(node)],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
                check=False,
                cwd=Path(__file__).resolve().parent.parent,
            )
        finally:
            os.close(write_end)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1
        assert proc.stderr.startswith("error[report-unwritable]: cannot write the report to stdout (Broken pipe)")

    @pytest.mark.parametrize(
        "module, argv",
        [
            pytest.param("migrate.commands", ["precheck", "{node}"], id="commands-in-a-command"),
            pytest.param("migrate.errors", ["status", "{node}"], id="errors"),
            pytest.param("migrate.policy", ["status", "{node}"], id="policy-in-the-parser"),
            pytest.param("migrate.report", ["status", "{node}"], id="report"),
        ],
    )
    def test_module_that_fails_to_import(self, run, node, monkeypatch, module, argv):
        """A module of the tool that cannot be imported is one internal-error line naming the ImportError, exit 1; --debug adds the traceback."""
        _break_module(monkeypatch, module)
        argv = [arg.format(node=node) for arg in argv]
        result = run(*argv)
        assert result.code == 1
        assert_one_error_line(result, "internal-error")
        assert "ImportError: cannot import name 'FILES'" in result.err and "reinstall expressway-migrate" in result.err
        result = run(*argv, "--debug")
        assert result.code == 1
        _assert_debug_traceback(result, "internal-error", "in find_spec", f"{module!r}")

    @pytest.mark.parametrize("module", ["migrate.errors", "migrate.report"])
    def test_module_that_fails_to_import_json(self, run, node, monkeypatch, module):
        """With --format json, a broken errors or report module still gives the JSON error object on stdout, as every error does."""
        _break_module(monkeypatch, module)
        result = run("status", node, "--format", "json")
        assert result.code == 1
        assert_one_error_line(result, "internal-error")
        assert set(result.doc) == ERROR_KEYS
        doc = result.doc
        assert (doc["command"], doc["ok"], doc["error"]["id"]) == ("status", False, "internal-error")

    def test_unexpected_exception_in_a_command(self, run, node, monkeypatch):
        """A command that raises RuntimeError (a message of two lines) is one internal-error line; --debug shows the traceback."""
        from migrate import cli

        def status(args):
            raise RuntimeError("first line\nsecond line")

        monkeypatch.setitem(cli.COMMANDS, "status", status)
        result = run("status", node)
        assert result.code == 1
        assert_one_error_line(result, "internal-error")
        assert "RuntimeError: first line second line -- hint: this is a defect; run with --debug" in result.err
        result = run("status", node, "--debug")
        assert result.code == 1
        _assert_debug_traceback(result, "internal-error", "in status", 'raise RuntimeError("first line\\nsecond line")')

    def test_user_error_traceback_with_debug(self, run, tmp_path):
        """--debug also follows a user error's line (node-missing) with its traceback; without it, the line stands alone."""
        result = run("status", tmp_path / "nope", "--debug")
        assert result.code == 1
        _assert_debug_traceback(result, "node-missing", "NodeError: no node at")

    def test_interrupt_stays_130(self, run, node, monkeypatch):
        """Ctrl-C in a command is still exit 130 with one interrupted line, and no traceback without --debug."""
        from migrate import cli

        def status(args):
            raise KeyboardInterrupt

        monkeypatch.setitem(cli.COMMANDS, "status", status)
        result = run("status", node)
        assert result.code == 130
        assert_one_error_line(result, "interrupted")
        result = run("status", node, "--debug")
        assert result.code == 130
        _assert_debug_traceback(result, "interrupted", "KeyboardInterrupt")

    def test_debug_in_every_command(self, run):
        """--debug is accepted by every command, as -v is."""
        for command in (*NODE_COMMANDS, "rehearse", "assess"):
            result = run(command, "--help")
            assert result.code == 0
            assert "--debug" in result.out, command
