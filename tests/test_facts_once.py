"""Each domain fact is spelled once: the engine names files, settings and the format version through policy.

"grep proves it", as a test: every string and number literal of the engine's
code (docstrings aside) is read with ``ast``, and none may restate a fact
that ``migrate.policy`` holds.  The test kit (``migrate.testing``) builds
sample nodes and may name files as data; the engine may not.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from migrate import policy

PACKAGE = Path(__file__).resolve().parent.parent / "migrate"
HOME = set((PACKAGE / "policy").glob("*.py"))  # where the facts live: the policy package


def engine_sources() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p not in HOME and "testing" not in p.relative_to(PACKAGE).parts)


def literals(path: Path) -> list[tuple[int, object]]:
    """The string and int constants of a module, without its docstrings, with their line numbers."""
    tree = ast.parse(path.read_text(), str(path))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and id(node) not in docstrings and isinstance(node.value, str | int)
    ]


FILE_NAMES = {rule.name for rule in policy.FILES} | set(policy.OTHER_FILES)
SETTINGS = {policy.RETIRED_SETTING, policy.CHECKING_SETTING}
OIDS = {policy.SERVER_AUTH, policy.CLIENT_AUTH, policy.ANY_EKU}
STATE_NAMES = {policy.JOURNAL_NAME, policy.CONFIG_BACKUP_NAME, policy.LOCK_NAME, policy.STATE_DIR, policy.CERT_DIR,
               policy.CONFIG_FILE}  # fmt: skip


def restated(value: object) -> str | None:
    """Which fact of policy a literal restates, or None."""
    if not isinstance(value, str):
        return None
    if value in FILE_NAMES:
        return "a file of the store"
    if value in SETTINGS:
        return "a setting's name"
    if value in OIDS:
        return "an EKU OID"
    if value in STATE_NAMES:
        return "a path of the layout"
    return None


class TestFactsOnce:
    @pytest.mark.parametrize("path", engine_sources(), ids=lambda p: str(p.relative_to(PACKAGE)))
    def test_no_module_restates_a_policy_fact(self, path):
        """No literal in an engine module is a file name, setting name, EKU OID or layout path that policy holds."""
        found = [f"line {line}: {value!r} ({why})" for line, value in literals(path) if (why := restated(value))]
        assert found == []

    def test_the_json_format_version_is_defined_once(self):
        """Only policy defines FORMAT_VERSION for the documents; the journal's own is record's, and no document
        writes the version as a literal."""
        for path in engine_sources():
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values, strict=True):
                        if isinstance(key, ast.Constant) and key.value == "format_version":
                            assert not isinstance(value, ast.Constant), f"{path}:{node.lineno}"
                if isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "FORMAT_VERSION" for t in node.targets
                ):
                    assert path.name == "record.py" or not isinstance(node.value, ast.Constant), f"{path}"

    def test_the_reader_sees_a_restated_fact(self, tmp_path):
        """A module that spells a managed file name is caught: the check cannot pass vacuously."""
        source = tmp_path / "mod.py"
        source.write_text('"""Docstring naming privkey.pem is fine."""\nNAME = "privkey.pem"\n')
        assert [(line, value) for line, value in literals(source) if restated(value)] == [(2, "privkey.pem")]
