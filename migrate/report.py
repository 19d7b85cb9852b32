"""Render a command's result: JSON (the stable machine form), text, or Markdown.

Every command builds one JSON-ready document (``format_version`` 1); the text
and Markdown forms are drawn from that same document, so the three never
disagree.
"""

from __future__ import annotations

import json

FORMATS = ("text", "json", "markdown")

_MARK = {"blocker": "BLOCKER", "warning": "warning", "info": "info"}
_STATE_WORDS = {
    "x15.4": "X15.4 (not migrated)",
    "x15.5": "X15.5",
    "interrupted": "interrupted mid-migration",
    "mixed": "neither X15.4 nor X15.5 (a partial client store, no journal)",
    "client-installed": "X15.5, with a client identity install-client installed (rollback restores the previous one)",
    "install-interrupted": "X15.5, an install of a client identity interrupted",
}


def render(doc: dict, fmt: str) -> str:
    """``doc`` in the format ``fmt``; always ends with a newline."""
    if fmt == "json":
        return json.dumps(doc, indent=2, sort_keys=False) + "\n"
    if doc.get("command") == "rehearse" and "rehearsals" in doc:
        parts = [render(r, fmt) for r in doc["rehearsals"]]
        verdict = "ok" if doc["ok"] else "NOT OK"
        tail = f"rehearsal: {verdict}\n" if fmt == "text" else f"**Rehearsal: {verdict}**\n"
        return "\n".join(parts) + "\n" + tail
    if doc.get("command") == "precheck" and "fleet" in doc and "error" not in doc:
        lines = _fleet_markdown(doc) if fmt == "markdown" else _fleet_text(doc)
        return "\n".join(lines).rstrip("\n") + "\n"
    if doc.get("command") in ("csr", "install-client") and "error" not in doc:
        from .report_client import render_client

        return render_client(doc, fmt)
    if doc.get("command") == "assess" and "error" not in doc:
        lines = _assess_markdown(doc) if fmt == "markdown" else _assess_text(doc)
        return "\n".join(lines).rstrip("\n") + "\n"
    if fmt == "markdown":
        return "\n".join(_markdown(doc)).rstrip("\n") + "\n"
    return "\n".join(_text(doc)).rstrip("\n") + "\n"


def state_words(doc: dict) -> str:
    words = _STATE_WORDS.get(doc.get("state", ""), doc.get("state", "unknown"))
    if doc.get("state") == "x15.5":
        words += ", migrated by this tool" if doc.get("migrated_by_tool") else ", not migrated by this tool"
    return words


def _verdict(doc: dict) -> str:
    command = doc.get("command", "")
    if "error" in doc:
        return "error"
    if command in ("precheck", "plan"):
        return "ready" if doc["ready"] else "BLOCKED"
    if command == "status":
        return state_words(doc)
    return "ok" if doc.get("ok") else "NOT OK"


def _summary(doc: dict) -> list[str]:
    command = doc.get("command", "")
    out = []
    if command in ("plan", "precheck"):  # status says it in its verdict
        out.append(f"state: {state_words(doc)}")
    if command in ("apply", "rollback"):
        out.append(f"result: {doc['result']}")
        if doc.get("displaced"):
            out.append(f"changed files were moved to: {doc['displaced']}")
    if command == "plan":
        out.append(f"fingerprint: {doc['fingerprint']}")
    if command == "sample":
        out += [f"{node['role']}: {node['path']} ({node['entries']} entries)" for node in doc.get("nodes", ())]
    if command == "rehearse" and "crash_points" in doc:
        out.append(f"crash points tried: {doc['crash_points']}")
    return out


def _action_line(action: dict) -> str:
    kind = action["action"]
    if kind == "create-file":
        return f"create-file {action['path']} <- {action['source']} (mode {action['mode']}, owner {action['uid']}:{action['gid']}, sha256 {action['sha256'][:12]}…)"
    if kind == "retire-setting":
        return f"retire-setting {action['setting']}: {action['old_value']} (line {action['line']} of {action['path']})"
    if kind == "add-setting":
        return f"add-setting {action['setting']}: {action['value']} (end of {action['path']})"
    if kind == "replace-file":
        was = action["previous"]
        before = "(none before)" if was is None else f"(was sha256 {was['sha256'][:12]}…, mode {was['mode']}, owner {was['uid']}:{was['gid']})"
        return f"replace-file {action['path']} -> sha256 {action['sha256'][:12]}… (mode {action['mode']}, owner {action['uid']}:{action['gid']}) {before}"
    if kind == "restore-file":
        was = action["previous"]
        return f"restore-file {action['path']} <- sha256 {was['sha256'][:12]}… (mode {was['mode']}, owner {was['uid']}:{was['gid']})"
    if "path" in action:
        return f"{kind} {action['path']}"
    return kind


def _text(doc: dict) -> list[str]:
    if "error" in doc:
        err = doc["error"]
        return [f"error[{err['id']}]: {err['message']}" + (f" -- hint: {err['hint']}" if err.get("hint") else "")]
    lines = [f"{doc.get('command', '')} {doc.get('node', '')}: {_verdict(doc)}"]
    lines += [f"  {line}" for line in _summary(doc)]
    findings = doc.get("findings") or []
    if findings:
        lines.append("findings:")
        for f in findings:
            where = f" {f['path']}" if f.get("path") else ""
            lines.append(f"  [{_MARK.get(f['severity'], f['severity'])}] {f['id']}{where}: {f['message']}")
            if f.get("hint"):
                lines.append(f"      hint: {f['hint']}")
    if "actions" in doc:
        actions = doc["actions"]
        lines.append("actions:" if actions else "actions: none")
        lines += [f"  {i}. {_action_line(a)}" for i, a in enumerate(actions, 1)]
    for step in doc.get("steps") or []:
        if step is (doc.get("steps") or [None])[0]:
            lines.append("steps:")
        lines.append(f"  {'ok  ' if step['ok'] else 'FAIL'} {step['step']}: {step['detail']}")
    if doc.get("unrecovered"):
        lines.append("crash points that did not recover:")
        lines += [f"  {c['command']} stopped at {c['call']}: {c['problem']}" for c in doc["unrecovered"]]
    if doc.get("plan"):
        lines.append("")
        lines.append("dry-run plan:")
        lines += ["  " + line for line in _text(doc["plan"])]
    return lines


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _markdown(doc: dict, level: int = 2) -> list[str]:
    h = "#" * level
    if "error" in doc:
        err = doc["error"]
        return [f"{h} Error `{err['id']}`", "", err["message"], "", f"*Hint:* {err.get('hint', '')}"]
    lines = [f"{h} `{doc.get('command', '')}` — {doc.get('node', '')}: **{_verdict(doc)}**", ""]
    lines += [f"- {line}" for line in _summary(doc)]
    lines.append("")
    findings = doc.get("findings") or []
    if findings:
        lines += [f"{h}# Findings", "", "| severity | id | path | message | hint |", "|---|---|---|---|---|"]
        for f in findings:
            lines.append(
                f"| {f['severity']} | `{f['id']}` | {_md_escape(f.get('path') or '')} | {_md_escape(f['message'])} | {_md_escape(f.get('hint', ''))} |"
            )
        lines.append("")
    if "actions" in doc:
        lines += [f"{h}# Actions", ""]
        if not doc["actions"]:
            lines.append("None: nothing to do.")
        lines += [f"{i}. `{_md_escape(_action_line(a))}`" for i, a in enumerate(doc["actions"], 1)]
        lines.append("")
    if doc.get("steps"):
        lines += [f"{h}# Steps", "", "| step | result | detail |", "|---|---|---|"]
        for step in doc["steps"]:
            lines.append(f"| {step['step']} | {'ok' if step['ok'] else '**failed**'} | {_md_escape(step['detail'])} |")
        lines.append("")
    if doc.get("unrecovered"):
        lines += [f"{h}# Crash points that did not recover", "", "| run | stopped at | problem |", "|---|---|---|"]
        for c in doc["unrecovered"]:
            lines.append(f"| {c['command']} | `{_md_escape(c['call'])}` | {_md_escape(c['problem'])} |")
        lines.append("")
    if doc.get("plan"):
        lines += _markdown(doc["plan"], level + 1)
    return lines


# --- assess ---------------------------------------------------------------------

_STATUS_WORDS = {"active": "active", "failed": "FAILED", "at-risk": "at-risk"}  # the JSON's word, as everywhere


def _assess_verdict(doc: dict) -> str:
    counts = {status: sum(s["status"] == status for s in doc["services"]) for status in ("failed", "at-risk")}
    if not any(counts.values()):
        return "every service active"
    return ", ".join(f"{n} {_STATUS_WORDS[status]}" for status, n in counts.items() if n)


def _node_words(node: dict) -> str:
    return f"{node['node']} ({node['state']}, EKU checking {node['checking_mode']}, {node['checking_source']})"


def _assess_text(doc: dict) -> list[str]:
    lines = [f"assess: {_assess_verdict(doc)}" + (f" (on {doc['at']})" if doc.get("at") else "")]
    lines += [f"  {role}: {_node_words(doc[role])}" for role in ("core", "edge")]
    width = max(len(s["id"]) for s in doc["services"])
    lines.append("services:")
    for s in doc["services"]:
        lines.append(f"  {s['id']:<{width}}  {_STATUS_WORDS[s['status']]:<7}  {s['reason']}")
        if s.get("breaks_on") and s["status"] != "active":
            lines.append(f"  {'':<{width}}  {'':<7}  breaks on: {s['breaks_on']}")
        if s["fix"] and s["status"] != "active":
            lines.append(f"  {'':<{width}}  {'':<7}  fix: {s['fix']}")
    if doc["findings"]:
        lines.append("findings:")
        for f in doc["findings"]:
            lines.append(f"  [{_MARK.get(f['severity'], f['severity'])}] {f['id']}: {f['message']}")
    return lines


# The picture: (from, to, service id); node ids and their labels.
_MERMAID_NODES = {
    "core": 'core["Expressway-C (Core)"]',
    "edge": 'edge["Expressway-E (Edge)"]',
    "webex": 'webex(["Webex / mTLS peers"])',
    "cucm": 'cucm(["CUCM"])',
    "clients": 'clients(["MRA clients"])',
}
_MERMAID_LINKS = (
    ("core", "edge", "uc-traversal-zone"),
    ("core", "edge", "ssh-tunnels"),
    ("edge", "webex", "edge-outbound-mtls"),
    ("core", "cucm", "core-outbound-mtls"),
    ("clients", "edge", "mra-client-trust"),
    ("clients", "edge", "mra"),
    ("clients", "edge", "webrtc-proxy"),
)
_MERMAID_COLOURS = {"active": "#2e7d32", "failed": "#c62828", "at-risk": "#ef6c00"}


def _assess_mermaid(doc: dict) -> list[str]:
    status = {s["id"]: s["status"] for s in doc["services"]}
    lines = ["```mermaid", "flowchart LR"]
    declared = set()
    styles = []
    for index, (source, target, service) in enumerate(link for link in _MERMAID_LINKS if link[2] in status):
        ends = []
        for node in (source, target):
            ends.append(_MERMAID_NODES[node] if node not in declared else node)
            declared.add(node)
        lines.append(f'  {ends[0]} -->|"{service}: {status[service]}"| {ends[1]}')
        styles.append(f"  linkStyle {index} stroke:{_MERMAID_COLOURS[status[service]]},stroke-width:2px")
    return lines + styles + ["```"]


def _assess_markdown(doc: dict) -> list[str]:
    lines = [f"## `assess`: **{_assess_verdict(doc)}**", ""]
    lines += [f"- {role}: {_md_escape(_node_words(doc[role]))}" for role in ("core", "edge")]
    lines += ["", *_assess_mermaid(doc), ""]
    lines += ["### Services", "", "| service | status | breaks on | reason | fix |", "|---|---|---|---|---|"]
    for s in doc["services"]:
        mark = s["status"] if s["status"] == "active" else f"**{s['status']}**"
        lines.append(
            f"| `{s['id']}` | {mark} | {s.get('breaks_on') or ''} | {_md_escape(s['reason'])} | {_md_escape(s['fix'])} |"
        )
    lines.append("")
    if doc["findings"]:
        lines += ["### Findings", "", "| severity | id | message | hint |", "|---|---|---|---|"]
        for f in doc["findings"]:
            lines.append(
                f"| {f['severity']} | `{f['id']}` | {_md_escape(f['message'])} | {_md_escape(f.get('hint', ''))} |"
            )
    return lines


# --- precheck --fleet -------------------------------------------------------------


def _fleet_verdict(doc: dict) -> str:
    summary = doc["summary"]
    if summary["blocked"]:
        return f"{summary['blocked']} of {summary['nodes']} BLOCKED"
    if summary["at_risk"]:
        return f"every node ready, {summary['at_risk']} at risk"
    return "every node ready"


def _fleet_counts(doc: dict) -> list[tuple[str, int]]:
    summary = doc["summary"]
    return [
        ("nodes", summary["nodes"]),
        ("ready (no blocker)", summary["ready"]),
        ("blocked", summary["blocked"]),
        ("at risk (ready, with a warning)", summary["at_risk"]),
    ]


def _node_reasons(node: dict) -> list[str]:
    """The ids that make a node blocked or at risk: blockers first, each once."""
    ordered = sorted(node["findings"], key=lambda f: f["severity"] != "blocker")
    return list(dict.fromkeys(f["id"] for f in ordered if f["severity"] in ("blocker", "warning")))


def _flagged(doc: dict) -> list[tuple[dict, str]]:
    """The blocked and the at-risk nodes, blocked first, each in path order, with its status word."""
    blocked = [(n, "BLOCKED") for n in doc["nodes"] if not n["ready"]]
    return blocked + [(n, "at risk") for n in doc["nodes"] if n["ready"] and n["at_risk"]]


def _fleet_text(doc: dict) -> list[str]:
    lines = [f"precheck fleet {doc['fleet']}: {_fleet_verdict(doc)}"]
    counts = _fleet_counts(doc)
    width = max(len(label) for label, _ in counts)
    lines += [f"  {label + ':':<{width + 1}} {value}" for label, value in counts]
    groups = doc["summary"]["by_finding"]
    if groups:
        id_width = max(len("id"), *(len(fid) for fid in groups))
        lines.append("findings:")
        lines.append(f"  {'id':<{id_width}}  {'severity':<8}  nodes")
        lines += [f"  {fid:<{id_width}}  {g['severity']:<8}  {g['nodes']}" for fid, g in groups.items()]
    flagged = _flagged(doc)
    if flagged:
        lines.append("blocked or at risk:")
        lines += [f"  {node['node']}: {word} {', '.join(_node_reasons(node))}" for node, word in flagged]
    if doc.get("findings"):
        lines.append("walk:")
        for f in doc["findings"]:
            lines.append(f"  [{_MARK.get(f['severity'], f['severity'])}] {f['id']} {f['path']}: {f['message']}")
    return lines


def _fleet_markdown(doc: dict) -> list[str]:
    lines = [f"## `precheck` — fleet {_md_escape(doc['fleet'])}: **{_fleet_verdict(doc)}**", ""]
    lines += ["| | nodes |", "|---|---|"]
    lines += [f"| {label} | {value} |" for label, value in _fleet_counts(doc)]
    lines.append("")
    groups = doc["summary"]["by_finding"]
    if groups:
        lines += ["### Findings", "", "| id | severity | nodes |", "|---|---|---|"]
        lines += [f"| `{fid}` | {g['severity']} | {g['nodes']} |" for fid, g in groups.items()]
        lines.append("")
    flagged = _flagged(doc)
    if flagged:
        lines += ["### Blocked or at risk", "", "| node | status | findings |", "|---|---|---|"]
        for node, word in flagged:
            reasons = ", ".join(f"`{fid}`" for fid in _node_reasons(node))
            lines.append(f"| {_md_escape(node['node'])} | {'**blocked**' if word == 'BLOCKED' else word} | {reasons} |")
        lines.append("")
    if doc.get("findings"):
        lines += ["### Walk", "", "| severity | id | path | message |", "|---|---|---|---|"]
        for f in doc["findings"]:
            lines.append(f"| {f['severity']} | `{f['id']}` | {_md_escape(f['path'])} | {_md_escape(f['message'])} |")
    return lines
