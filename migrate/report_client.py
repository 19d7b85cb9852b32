"""Text and Markdown for the documents of ``csr`` and ``install-client`` (their JSON is the document itself)."""

from __future__ import annotations


def render_client(doc: dict, fmt: str) -> str:
    """``doc`` (a ``csr`` or ``install-client`` document) as text or Markdown; ends with a newline."""
    lines = _csr(doc, fmt) if doc["command"] == "csr" else _install(doc, fmt)
    return "\n".join(lines).rstrip("\n") + "\n"


def _csr(doc: dict, fmt: str) -> list[str]:
    key = doc["key"] if doc["key"] is not None else f"the node's own key ({doc['key_type']}), reused"
    rows = [
        ("request", doc["csr"]),
        ("new key" if doc["key"] is not None else "key", f"{key} (mode 0400; never shown)" if doc["key"] else key),
        ("key type", doc["key_type"]),
        ("subject", doc["subject"]),
        ("names", ", ".join(doc["names"])),
        ("EKU", " + ".join(doc["eku"])),
        ("key usage", ", ".join(doc["key_usage"])),
        ("copied from", doc["source"]),
        ("sha256", doc["sha256"]),
    ]
    if fmt == "markdown":
        out = [f"## `csr` — {doc['node']}: **ok**", "", "| | |", "|---|---|"]
        out += [f"| {name} | {_md(value)} |" for name, value in rows]
        return [*out, "", "A CA operator inspects it with:", "", "```sh", doc["inspect"], "```"]
    out = [f"csr {doc['node']}: ok"] + [f"  {name}: {value}" for name, value in rows]
    return [*out, f"inspect it with: {doc['inspect']}"]


def _install(doc: dict, fmt: str) -> list[str]:
    from .report import _MARK, _action_line, state_words

    cert = doc["certificate"]
    verdict = "ok" if doc["ok"] else "REFUSED" if doc["result"] == "refused" else "NOT OK"
    peer = doc["peer"]
    rows = [
        ("result", doc["result"]),
        ("state", state_words(doc)),
        ("certificate", f"{cert['subject']}, issued by {cert['issuer']}, valid until {cert['not_after']}"),
        ("EKU", "none (unrestricted)" if cert["eku"] is None else " + ".join(cert["eku"]) or "empty"),
        ("names", ", ".join(cert["names"])),
        ("key", f"{cert['key_type']} ({cert['key']})"),
        ("trusted by this node's ca.pem", "yes" if doc["trusted_by_node"] else "NO"),
    ]
    if peer is not None:
        rows.append((f"trusted by the peer {peer['node']}", "yes" if peer["trusted"] else f"NO ({peer['reason']})"))
    if doc["consequence"]:
        rows.append(("consequence", doc["consequence"]))
    findings, actions = doc["findings"], doc["actions"]
    if fmt == "markdown":
        out = [f"## `install-client` — {doc['node']}: **{verdict}**", "", "| | |", "|---|---|"]
        out += [f"| {name} | {_md(value)} |" for name, value in rows]
        if findings:
            out += ["", "### Findings", "", "| severity | id | path | message | hint |", "|---|---|---|---|---|"]
            out += [
                f"| {f['severity']} | `{f['id']}` | {_md(f['path'] or '')} | {_md(f['message'])} | {_md(f['hint'])} |"
                for f in findings
            ]
        out += ["", "### Actions", ""]
        out += [f"{i}. `{_action_line(a)}`" for i, a in enumerate(actions, 1)] or ["None: nothing to do."]
        return out
    out = [f"install-client {doc['node']}: {verdict}"] + [f"  {name}: {value}" for name, value in rows]
    if findings:
        out.append("findings:")
        for f in findings:
            where = f" {f['path']}" if f["path"] else ""
            out.append(f"  [{_MARK.get(f['severity'], f['severity'])}] {f['id']}{where}: {f['message']}")
            if f["hint"]:
                out.append(f"      hint: {f['hint']}")
    out.append("actions:" if actions else "actions: none")
    out += [f"  {i}. {_action_line(a)}" for i, a in enumerate(actions, 1)]
    return out


def _md(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
