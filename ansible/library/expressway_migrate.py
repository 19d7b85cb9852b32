#!/usr/bin/python
"""Ansible module: run expressway-migrate's plan (check mode) or apply on one node root.

It lives beside the playbooks (``library/``), so no collection is needed. It
runs the command with an argv list (no shell, no ``$VAR`` or ``~``
expansion), reads its JSON report, and turns it into Ansible's terms:

- ``changed``: check mode, changes are pending (``plan --detailed-exitcode``
  exit 2); otherwise ``apply`` migrated the node now;
- ``failed``: blockers, a refused or failed apply, or anything but the
  command's own JSON document;
- ``warnings``: every finding of severity ``warning`` (``cert-no-client-eku``,
  ``server-eku-upload-on``...), shown by Ansible as ``[WARNING]`` on the task;
- ``diff`` (with ``--diff``): the files the plan creates and the
  configuration lines it removes and adds, as before/after texts.
"""

from __future__ import annotations

import json

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: expressway_migrate
short_description: Plan (check mode) or apply the X15.4 to X15.5 certificate store migration of one node root
options:
  node:
    description: The node root, passed to the command exactly as written.
    required: true
    type: str
  executable:
    description: The expressway-migrate command, a path or a name on PATH.
    default: expressway-migrate
    type: str
"""


def _line(setting: str, value: str) -> str:
    return f"*c xConfiguration {setting}: {value}"


def _diffs(node: str, actions: list[dict]) -> list[dict]:
    """One before/after pair per file the actions touch: each created file, and the configuration's lines."""
    out = []
    config_before, config_after, config_path = [], [], None
    for action in actions:
        kind = action.get("action")
        if kind == "create-file":
            out.append(
                {
                    "before_header": f"{node}/{action['path']} (absent)",
                    "after_header": f"{node}/{action['path']}",
                    "before": "",
                    "after": f"a copy of {action['source']}: mode {action['mode']}, owner {action['uid']}:"
                    f"{action['gid']}, sha256 {action['sha256']}\n",
                }
            )
        elif kind == "retire-setting":
            config_path = action["path"]
            config_before.append(f"line {action['line']}: {_line(action['setting'], action['old_value'])}\n")
        elif kind == "add-setting":
            config_path = action["path"]
            config_after.append(f"end of file: {_line(action['setting'], action['value'])}\n")
    if config_path is not None:
        out.append(
            {
                "before_header": f"{node}/{config_path} (the lines removed)",
                "after_header": f"{node}/{config_path} (the lines added)",
                "before": "".join(config_before),
                "after": "".join(config_after),
            }
        )
    return out


def _warn(module: AnsibleModule, node: str, doc: dict) -> None:
    for finding in doc.get("findings") or ():
        if finding.get("severity") == "warning":
            where = f" ({finding['path']})" if finding.get("path") else ""
            module.warn(f"{node}: [{finding['id']}]{where} {finding['message']} -- hint: {finding['hint']}")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "node": {"type": "str", "required": True},
            "executable": {"type": "str", "default": "expressway-migrate"},
        },
        supports_check_mode=True,
    )
    node, executable = module.params["node"], module.params["executable"]
    command = "plan" if module.check_mode else "apply"
    argv = [executable, command, node, "--format", "json"]
    if command == "plan":
        argv.append("--detailed-exitcode")
    rc, stdout, stderr = module.run_command(argv, expand_user_and_vars=False)
    # Not "rc": Ansible fails any task whose result has a non-zero "rc", and plan exits 2 for "changes pending".
    result = {"exit_code": rc, "stdout": stdout, "stderr": stderr, "cmd": argv, "changed": False}
    try:
        doc = json.loads(stdout)
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("command") != command:
        module.fail_json(msg=f"{command} {node}: {stderr.strip() or 'no report'}", **result)
    result["report"] = doc
    _warn(module, node, doc)
    if "error" in doc:
        module.fail_json(msg=f"{command} {node}: {stderr.strip()}", **result)
    if command == "plan":
        if rc not in (0, 2):
            blockers = [f"[{f['id']}] {f['message']}" for f in doc.get("findings", ()) if f["severity"] == "blocker"]
            module.fail_json(msg=f"plan {node}: blocked: " + "; ".join(blockers), **result)
        result["changed"] = rc == 2
    else:
        if rc != 0 or doc.get("result") not in ("migrated", "already-migrated"):
            module.fail_json(msg=f"apply {node}: {stderr.strip() or doc.get('result')}", **result)
        result["changed"] = doc["result"] == "migrated"
    if module._diff and result["changed"]:
        result["diff"] = _diffs(node, doc.get("actions") or [])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
