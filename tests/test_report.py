"""Tests for migrate.report: render() of hand-written documents in text, JSON and Markdown."""

from __future__ import annotations

import copy
import json
import re

import pytest

from migrate.report import FORMATS, render, state_words

NODE = "/srv/nodes/core-1"
SHA = "ab" * 32

BLOCKER = {
    "id": "key-mismatch",
    "severity": "blocker",
    "path": "persistent/certs/privkey.pem",
    "message": "privkey.pem does not hold the private key of the certificate in server.pem",
    "hint": "install the key that belongs to server.pem",
}
WARNING = {
    "id": "cert-no-client-eku",
    "severity": "warning",
    "path": "persistent/certs/server.pem",
    "message": "server.pem has EKU serverAuth | no clientAuth",
    "hint": "use a private CA | not a public one",
}
INFO = {
    "id": "ssh-bundle-absent",
    "severity": "info",
    "path": None,
    "message": "there is no server-ssh.pem\non this node",
    "hint": "",
}

CREATE = {
    "action": "create-file",
    "path": "persistent/certs/clientprivkey.pem",
    "source": "persistent/certs/privkey.pem",
    "mode": "0440",
    "uid": 0,
    "gid": 0,
    "sha256": SHA,
}
RETIRE = {
    "action": "retire-setting",
    "path": "persistent/xconfiguration.txt",
    "setting": "XCP TLS Certificate CVS EnableServerEkuUpload",
    "old_value": "On",
    "line": 31,
}
ADD = {
    "action": "add-setting",
    "path": "persistent/xconfiguration.txt",
    "setting": "SIP TLS Certificate ExtendedKeyUsage Checking Mode",
    "value": "On",
}
REMOVE_TEMP = {"action": "remove-temp", "path": "persistent/certs/.client.pem.cert-migration.tmp"}
COMPLETE = {"action": "complete-journal"}
REMOVE_FILE = {"action": "remove-file", "path": "persistent/certs/clientprivkey.pem", "sha256": SHA}
RESTORE = {"action": "restore-config", "path": "persistent/xconfiguration.txt"}

# Crash points that did not recover, as a rehearsal reports them (the calls name the node's own root).
APPLY_STOP = {
    "command": "apply",
    "call": "#57 open(/tandberg/persistent/certs/.client.pem.cert-migration.tmp)",
    "problem": "apply: added persistent/certs/.client.pem.cert-migration.tmp",
}
ROLLBACK_STOP = {
    "command": "rollback",
    "call": "#12 rename(/tandberg/persistent/.xconfiguration.txt.cert-migration.tmp -> /tandberg/persistent/xconfiguration.txt)",
    "problem": "rollback: changed bytes persistent/xconfiguration.txt | apply: error[apply-failed]: apply failed",
}

PLAN = {
    "format_version": 1,
    "command": "plan",
    "node": NODE,
    "ready": True,
    "state": "x15.4",
    "migrated_by_tool": False,
    "fingerprint": "sha256:" + "cd" * 32,
    "findings": [WARNING, INFO],
    "actions": [REMOVE_TEMP, CREATE, RETIRE, ADD, COMPLETE],
}
DOCS = {
    "precheck": {
        "format_version": 1,
        "command": "precheck",
        "node": NODE,
        "ready": False,
        "state": "x15.4",
        "migrated_by_tool": False,
        "findings": [BLOCKER, WARNING, INFO],
    },
    "plan": PLAN,
    "apply": {
        "format_version": 1,
        "command": "apply",
        "node": NODE,
        "ok": True,
        "result": "migrated",
        "actions": [CREATE, RETIRE, ADD],
        "findings": [],
        "displaced": None,
    },
    "verify": {
        "format_version": 1,
        "command": "verify",
        "node": NODE,
        "ok": False,
        "findings": [BLOCKER, WARNING],
    },
    "rollback": {
        "format_version": 1,
        "command": "rollback",
        "node": NODE,
        "ok": True,
        "result": "rolled-back",
        "actions": [REMOVE_FILE, RESTORE],
        "findings": [],
        "displaced": "persistent/.cert-migration-displaced-20260101T000000Z",
    },
    "status": {
        "format_version": 1,
        "command": "status",
        "node": NODE,
        "state": "interrupted",
        "migrated_by_tool": False,
        "journal": {"state": "applying", "started": "2026-01-01T00:00:00+00:00", "finished": None, "tool": "x 0.1"},
        "pending_actions": 2,
        "findings": [BLOCKER],
    },
    "rehearse": {
        "format_version": 1,
        "command": "rehearse",
        "node": "sample:core",
        "ok": False,
        "steps": [
            {"step": "precheck", "ok": True, "detail": "no blocker, 1 warning(s): cert-no-client-eku"},
            {"step": "apply", "ok": True, "detail": "result migrated"},
            {"step": "compare", "ok": False, "detail": "changed bytes a|b; removed c"},
        ],
        "crash_points": 76,
        "unrecovered": [APPLY_STOP, ROLLBACK_STOP],
        "plan": PLAN,
    },
    "rehearse-recovered": {
        "format_version": 1,
        "command": "rehearse",
        "node": "sample:edge",
        "ok": True,
        "steps": [
            {"step": "compare", "ok": True, "detail": "the node is byte for byte as before"},
            {
                "step": "crash",
                "ok": True,
                "detail": "stopped apply and rollback at 76 call(s); every stop recovered both ways, exactly",
            },
        ],
        "crash_points": 76,
        "unrecovered": [],
        "plan": PLAN,
    },
    "error": {
        "format_version": 1,
        "command": "apply",
        "ok": False,
        "error": {
            "id": "plan-stale",
            "message": "the node changed since the plan was made",
            "path": None,
            "hint": "run plan again and review the new plan",
        },
    },
}

# What each document's text and Markdown renderings must show.
EXPECTED = {
    "precheck": [
        NODE,
        "precheck",
        "BLOCKED",
        "key-mismatch",
        "cert-no-client-eku",
        "ssh-bundle-absent",
        BLOCKER["path"],
        WARNING["path"],
        "X15.4",
    ],
    "plan": [
        NODE,
        "ready",
        PLAN["fingerprint"],
        "remove-temp",
        REMOVE_TEMP["path"],
        "create-file",
        CREATE["path"],
        CREATE["source"],
        "0440",
        "retire-setting",
        RETIRE["setting"],
        "line 31",
        "add-setting",
        ADD["setting"],
        "complete-journal",
        "cert-no-client-eku",
    ],
    "apply": [NODE, "apply", "migrated", CREATE["path"], CREATE["source"], RETIRE["setting"], ADD["setting"]],
    "verify": [NODE, "verify", "NOT OK", "key-mismatch", BLOCKER["path"], "cert-no-client-eku"],
    "rollback": [
        NODE,
        "rollback",
        "rolled-back",
        "remove-file",
        REMOVE_FILE["path"],
        "restore-config",
        RESTORE["path"],
        DOCS["rollback"]["displaced"],
    ],
    "status": [NODE, "status", "interrupted", "key-mismatch", BLOCKER["path"]],
    "rehearse": [
        "sample:core",
        "precheck",
        "apply",
        "compare",
        "cert-no-client-eku",
        "crash points tried: 76",
        APPLY_STOP["call"],
        APPLY_STOP["problem"],
        ROLLBACK_STOP["call"],
        NODE,
        CREATE["path"],
        ADD["setting"],
    ],
    "rehearse-recovered": ["sample:edge", "crash", "crash points tried: 76", "every stop recovered", NODE],
    "error": ["plan-stale", "the node changed since the plan was made", "run plan again"],
}

_UNESCAPED_PIPE = re.compile(r"(?<!\\)\|")


def _table_rows(markdown: str) -> list[str]:
    return [line for line in markdown.splitlines() if line.startswith("|")]


class TestRenderJSON:
    @pytest.mark.parametrize("name", DOCS)
    def test_round_trips(self, name):
        """The JSON form parses back to the very document, ends with a newline and keeps key order."""
        doc = DOCS[name]
        out = render(doc, "json")
        assert out.endswith("\n")
        assert json.loads(out) == doc
        assert list(json.loads(out)) == list(doc)

    def test_does_not_mutate(self):
        """Rendering in every format leaves the document unchanged."""
        for name, doc in DOCS.items():
            kept = copy.deepcopy(doc)
            for fmt in FORMATS:
                render(doc, fmt)
            assert doc == kept, name


class TestRenderContent:
    @pytest.mark.parametrize("fmt", ["text", "markdown"])
    @pytest.mark.parametrize("name", DOCS)
    def test_stable_content(self, name, fmt):
        """The text and Markdown forms show the document's ids, paths, actions and verdict (JSON: round trip)."""
        out = render(DOCS[name], fmt)
        for expected in EXPECTED[name]:
            assert expected in out, (name, fmt, expected)

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("name", DOCS)
    def test_ends_with_one_newline(self, name, fmt):
        """Every rendering ends with exactly one newline."""
        out = render(DOCS[name], fmt)
        assert out.endswith("\n") and not out.endswith("\n\n")

    @pytest.mark.parametrize("name", DOCS)
    def test_deterministic(self, name):
        """Rendering the same document twice gives the same text."""
        for fmt in FORMATS:
            assert render(DOCS[name], fmt) == render(copy.deepcopy(DOCS[name]), fmt)

    @pytest.mark.parametrize("fmt", ["text", "markdown"])
    def test_action_order_kept(self, fmt):
        """Actions appear in the order of the plan, numbered from 1."""
        out = render(PLAN, fmt)
        positions = [out.index(a["action"]) for a in PLAN["actions"]]
        assert positions == sorted(positions)
        assert re.search(r"^\s*1\. .*remove-temp", out, re.MULTILINE)
        assert re.search(r"^\s*5\. .*complete-journal", out, re.MULTILINE)

    @pytest.mark.parametrize(
        "fmt, first, section, last",
        [
            ("text", "FAIL compare: ", "crash points that did not recover:", "dry-run plan:"),
            ("markdown", "| compare | ", "### Crash points that did not recover", "### `plan` — "),
        ],
    )
    def test_unrecovered_after_steps(self, fmt, first, section, last):
        """The crash points that did not recover come after the steps and before the dry-run plan."""
        lines = render(DOCS["rehearse"], fmt).splitlines()
        [steps_end] = [i for i, line in enumerate(lines) if line.strip().startswith(first)]
        [plan_start] = [i for i, line in enumerate(lines) if line.startswith(last)]
        assert steps_end < lines.index(section) < plan_start

    @pytest.mark.parametrize(
        "name, fmt, line",
        [
            ("rehearse", "text", "  crash points tried: 76"),
            ("rehearse", "markdown", "- crash points tried: 76"),
            ("rehearse-recovered", "text", "  crash points tried: 76"),
            ("rehearse-recovered", "markdown", "- crash points tried: 76"),
        ],
    )
    def test_crash_points_tried(self, name, fmt, line):
        """A rehearsal's summary says how many crash points were tried, as one line."""
        assert render(DOCS[name], fmt).splitlines().count(line) == 1

    @pytest.mark.parametrize("fmt", ["text", "markdown"])
    def test_create_file_names_owner(self, fmt):
        """A create-file action shows its mode, owner and the start of its digest, not the whole digest."""
        out = render(DOCS["apply"], fmt)
        assert "0440" in out and "0:0" in out and SHA[:12] in out
        assert SHA not in out


class TestRenderText:
    @pytest.mark.parametrize(
        "name, first_line",
        [
            ("precheck", f"precheck {NODE}: BLOCKED"),
            ("plan", f"plan {NODE}: ready"),
            ("apply", f"apply {NODE}: ok"),
            ("verify", f"verify {NODE}: NOT OK"),
            ("rollback", f"rollback {NODE}: ok"),
            ("status", f"status {NODE}: interrupted mid-migration"),
            ("rehearse", "rehearse sample:core: NOT OK"),
            ("rehearse-recovered", "rehearse sample:edge: ok"),
        ],
    )
    def test_verdict_line(self, name, first_line):
        """The first text line is `command node: verdict`."""
        assert render(DOCS[name], "text").splitlines()[0] == first_line

    def test_findings_marked_by_severity(self):
        """Each finding is one line marked BLOCKER, warning or info, followed by its hint."""
        lines = render(DOCS["precheck"], "text").splitlines()
        blocker = next(i for i, line in enumerate(lines) if "key-mismatch" in line)
        assert lines[blocker].strip().startswith("[BLOCKER] key-mismatch persistent/certs/privkey.pem:")
        assert lines[blocker + 1].strip() == f"hint: {BLOCKER['hint']}"
        assert any(line.strip().startswith("[warning] cert-no-client-eku") for line in lines)
        assert any(line.strip().startswith("[info] ssh-bundle-absent:") for line in lines)

    def test_no_actions(self):
        """A plan with no action says `actions: none`."""
        doc = dict(PLAN, actions=[], findings=[])
        assert "actions: none" in render(doc, "text").splitlines()

    def test_steps(self):
        """A rehearsal lists each step with ok or FAIL and its detail."""
        out = render(DOCS["rehearse"], "text")
        assert "ok   precheck: no blocker, 1 warning(s): cert-no-client-eku" in out
        assert "FAIL compare: changed bytes a|b; removed c" in out
        assert "dry-run plan:" in out

    @pytest.mark.parametrize(
        "name, expected",
        [
            (
                "rehearse",
                [
                    "crash points that did not recover:",
                    f"  apply stopped at {APPLY_STOP['call']}: {APPLY_STOP['problem']}",
                    f"  rollback stopped at {ROLLBACK_STOP['call']}: {ROLLBACK_STOP['problem']}",
                ],
            ),
            ("rehearse-recovered", []),
        ],
    )
    def test_unrecovered(self, name, expected):
        """Each crash point that did not recover is one line naming the run, the call and the problem; none, no section."""
        lines = render(DOCS[name], "text").splitlines()
        heading = "crash points that did not recover:"
        section = lines[lines.index(heading) :][: 1 + len(DOCS[name]["unrecovered"])] if heading in lines else []
        assert section == expected
        assert not any("did not recover" in line for line in lines if line not in expected)

    def test_error(self):
        """An error document renders as the one error line with its hint."""
        out = render(DOCS["error"], "text")
        assert (
            out
            == "error[plan-stale]: the node changed since the plan was made -- hint: run plan again and review the new plan\n"
        )

    def test_displaced_named(self):
        """A forced rollback names the directory the changed files were moved to."""
        out = render(DOCS["rollback"], "text")
        assert f"changed files were moved to: {DOCS['rollback']['displaced']}" in out


class TestRenderMarkdown:
    @pytest.mark.parametrize("name", [n for n in DOCS if n != "error"])
    def test_heading(self, name):
        """The Markdown form starts with a level-2 heading naming the command and the node."""
        first = render(DOCS[name], "markdown").splitlines()[0]
        assert first.startswith("## `" + DOCS[name]["command"] + "`")
        assert DOCS[name]["node"] in first

    @pytest.mark.parametrize("name", ["precheck", "verify", "status", "plan"])
    def test_findings_table_pipes_escaped(self, name):
        """Pipes inside cells are escaped, so every findings row has exactly the table's five columns."""
        out = render(DOCS[name], "markdown")
        rows = _table_rows(out)
        assert rows[0] == "| severity | id | path | message | hint |"
        assert rows[1] == "|---|---|---|---|---|"
        for row in rows:
            assert len(_UNESCAPED_PIPE.findall(row)) == 6, row
        if any(f["id"] == "cert-no-client-eku" for f in DOCS[name]["findings"]):
            assert "server.pem has EKU serverAuth \\| no clientAuth" in out
            assert "use a private CA \\| not a public one" in out

    def test_newline_in_cell_flattened(self):
        """A newline inside a message does not break its table row."""
        out = render(DOCS["precheck"], "markdown")
        [row] = [r for r in _table_rows(out) if "ssh-bundle-absent" in r]
        assert "there is no server-ssh.pem on this node" in row

    def test_steps_table_pipes_escaped(self):
        """The steps table escapes pipes in details and marks a failed step."""
        out = render(DOCS["rehearse"], "markdown")
        assert "| step | result | detail |" in out
        [row] = [r for r in _table_rows(out) if r.startswith("| compare ")]
        assert row == "| compare | **failed** | changed bytes a\\|b; removed c |"
        assert len(_UNESCAPED_PIPE.findall(row)) == 4

    @pytest.mark.parametrize(
        "name, expected",
        [
            (
                "rehearse",
                [
                    "### Crash points that did not recover",
                    "",
                    "| run | stopped at | problem |",
                    "|---|---|---|",
                    f"| apply | `{APPLY_STOP['call']}` | {APPLY_STOP['problem']} |",
                    "| rollback | `"
                    + ROLLBACK_STOP["call"]
                    + "` | rollback: changed bytes persistent/xconfiguration.txt \\| apply: error[apply-failed]: apply failed |",
                ],
            ),
            ("rehearse-recovered", []),
        ],
    )
    def test_unrecovered_table(self, name, expected):
        """Crash points that did not recover are a three-column table, pipes escaped; none, no table."""
        lines = render(DOCS[name], "markdown").splitlines()
        heading = "### Crash points that did not recover"
        section = lines[lines.index(heading) :][: 4 + len(DOCS[name]["unrecovered"])] if heading in lines else []
        assert section == expected
        for row in section[2:]:
            assert len(_UNESCAPED_PIPE.findall(row)) == 4, row
        assert not any("did not recover" in line for line in lines if line not in expected)

    def test_nested_plan_one_level_deeper(self):
        """The rehearsal's dry-run plan is rendered under a deeper heading."""
        out = render(DOCS["rehearse"], "markdown")
        assert re.search(r"^### `plan` — " + re.escape(NODE), out, re.MULTILINE)
        assert re.search(r"^#### Actions$", out, re.MULTILINE)

    def test_actions_numbered_list(self):
        """Actions are a numbered list of code spans."""
        out = render(DOCS["apply"], "markdown")
        assert re.search(r"^### Actions$", out, re.MULTILINE)
        assert re.search(
            r"^1\. `create-file persistent/certs/clientprivkey\.pem <- persistent/certs/privkey\.pem", out, re.MULTILINE
        )

    def test_no_actions(self):
        """A plan with nothing to do says so."""
        assert "None: nothing to do." in render(dict(PLAN, actions=[]), "markdown")

    def test_error(self):
        """An error document renders as a heading with its id, the message and the hint."""
        out = render(DOCS["error"], "markdown")
        assert out.startswith("## Error `plan-stale`")
        assert "*Hint:* run plan again and review the new plan" in out


class TestStateWords:
    @pytest.mark.parametrize(
        "state, by_tool, words",
        [
            ("x15.4", False, "X15.4 (not migrated)"),
            ("x15.5", True, "X15.5, migrated by this tool"),
            ("x15.5", False, "X15.5, not migrated by this tool"),
            ("interrupted", False, "interrupted mid-migration"),
            ("mixed", False, "neither X15.4 nor X15.5 (a partial client store, no journal)"),
            ("x16.0", False, "x16.0"),
        ],
    )
    def test_words(self, state, by_tool, words):
        """Each node state has its human words; an unknown state is shown as is."""
        assert state_words({"state": state, "migrated_by_tool": by_tool}) == words
