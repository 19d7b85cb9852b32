"""The import contracts of the layers, read from the code: the graph a newcomer would draw, enforced.

Every ``import`` statement of every module of the package counts, at module
level or inside a function (a lazy import is still a dependency).  The layers:

- **pure** (``model``, ``policy``, ``actions``, ``record``, ``plan``,
  ``xconfig``, ``pem``, ``acl``, ``errors`` and the ``checks`` package): values in,
  values out.  Neither they nor anything they import touches ``os``, the
  reader, the writer, or ``cryptography``.
- **reader** (``scan``, ``dirs``, ``facts``, ``certs``): reads the node and
  parses it into facts; never writes.
- **writer** (``fsops``, ``journal``, ``writer``): the only modules that hold
  the file-system primitives (``fsops``).
- **test kit** (``factory``, ``faults``, ``tree``, ``samples``,
  ``rehearsal``, ``pytest_plugin``): never imported by the engine.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "migrate"

PURE = {"migrate.model", "migrate.policy", "migrate.actions", "migrate.record", "migrate.plan", "migrate.xconfig",
        "migrate.pem", "migrate.acl", "migrate.errors", "migrate.checks", "migrate.install",
        "migrate.install_record", "migrate.install_checks"}  # fmt: skip
FORBIDDEN_IN_PURE = {"os", "fcntl", "shutil", "tempfile", "cryptography", "migrate.scan", "migrate.dirs",
                     "migrate.facts", "migrate.certs", "migrate.fsops", "migrate.journal", "migrate.writer"}  # fmt: skip
WRITERS = {"migrate.fsops", "migrate.journal", "migrate.writer", "migrate.clientstore", "migrate.writing"}
TEST_KIT = {"migrate.testing"}  # the whole package: factory, pki, faults, tree, samples, rehearsal, the plugin  # fmt: skip
ENGINE = {"migrate.model", "migrate.policy", "migrate.actions", "migrate.record", "migrate.plan", "migrate.xconfig",
          "migrate.pem", "migrate.acl", "migrate.errors", "migrate.checks", "migrate.scan", "migrate.dirs",
          "migrate.facts", "migrate.certs", "migrate.fsops", "migrate.journal", "migrate.writer", "migrate.assess",
          "migrate.fleet", "migrate.report", "migrate.logs", "migrate.commands", "migrate.streams",
          "migrate.install", "migrate.install_record", "migrate.install_checks", "migrate.clientcert", "migrate.clientstore", "migrate.csr",
          "migrate.report_client", "migrate.arguments", "migrate.writing"}  # fmt: skip


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, name: str | None = None) -> set[str]:
    """Every module ``path`` imports (absolute names; ``from . import x`` gives ``migrate.x``), anywhere in it.

    ``name`` is the module's dotted name (default: from its place in the package).
    """
    name = name or module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            found.add(origin)
            found.update(f"{origin}.{alias.name}" for alias in node.names)  # ``from . import scan``: a module
    return found


def graph() -> dict[str, set[str]]:
    """The package's import graph: module -> the modules (of the package or not) it imports."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    out = {}
    for name, path in modules.items():
        # The top package runs first whatever a module imports: it is no dependency a module chooses.
        out[name] = {_owner(imported, modules) for imported in imports_of(path)} - {None, name, "migrate"}
    return out


def _owner(imported: str, modules) -> str | None:
    """The module of the package an imported name belongs to (its longest prefix), or the top-level name outside it."""
    if not imported.startswith("migrate"):
        return imported.split(".")[0]
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def _layer_of(name: str, layer: set[str]) -> bool:
    return any(name == member or name.startswith(member + ".") for member in layer)


def closure(start: str, edges: dict[str, set[str]]) -> set[str]:
    seen, todo = set(), [start]
    while todo:
        for nxt in edges.get(todo.pop(), ()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


EDGES = graph()


class TestContracts:
    @pytest.mark.parametrize("module", sorted(m for m in EDGES if _layer_of(m, PURE)))
    def test_pure_modules_reach_no_io_and_no_cryptography(self, module):
        """A pure module imports, directly or through others, neither os, the reader, the writer nor cryptography."""
        reached = closure(module, EDGES)
        assert sorted(name for name in reached if _layer_of(name, FORBIDDEN_IN_PURE)) == []

    def test_only_the_writer_imports_the_file_system_primitives(self):
        """fsops, the file-system primitives, is imported by the writer's modules alone."""
        users = {name for name, deps in EDGES.items() if "migrate.fsops" in deps}
        assert users <= WRITERS, users - WRITERS

    def test_the_fault_injector_sees_every_os_of_the_reader_and_the_writer(self):
        """Every reader or writer module that imports os is one the fault injector patches: no call escapes it."""
        from migrate.testing.faults import PATCHED_MODULES

        readers_writers = WRITERS | {"migrate.scan", "migrate.dirs"}
        with_os = {name for name in readers_writers if name in EDGES and "os" in EDGES[name]}
        assert with_os == set(PATCHED_MODULES)

    @pytest.mark.parametrize("module", sorted(m for m in EDGES if _layer_of(m, ENGINE)))
    def test_the_engine_never_imports_the_test_kit(self, module):
        """No module of the engine reaches the test kit (factory, faults, tree, samples, rehearsal, plugin)."""
        assert sorted(name for name in closure(module, EDGES) if _layer_of(name, TEST_KIT)) == []

    def test_the_graph_is_read(self):
        """The graph holds every module and its known edges: a broken reader cannot pass the contracts vacuously."""
        assert {"migrate.model", "migrate.checks._files", "migrate.writer", "migrate.cli"} <= EDGES.keys()
        assert {"migrate.fsops", "migrate.journal", "migrate.scan"} <= EDGES["migrate.writer"]
        assert "os" in EDGES["migrate.scan"] and "cryptography" in EDGES["migrate.certs"]
        assert "migrate.model" in EDGES["migrate.checks._files"]
        assert "migrate.facts" in closure("migrate.writer", EDGES)  # through its lazy imports too

    def test_a_violation_is_seen(self, tmp_path):
        """The import reader sees a lazy import inside a function, the kind a contract must catch."""
        source = tmp_path / "mod.py"
        source.write_text("def f():\n    import os\n    from .scan import scan\n")
        found = imports_of(source, "migrate.mod")
        assert {"os", "migrate.scan"} <= found


class TestPublicNames:
    def test_names_users_import_keep_working(self):
        """The test kit moved to migrate.testing, but migrate.rehearse and ``from migrate import faults`` still work."""
        import migrate
        from migrate import factory, faults
        from migrate.testing import faults as kit_faults
        from migrate.testing import rehearsal

        assert faults is kit_faults and factory.__name__ == "migrate.testing.factory"
        assert migrate.rehearse is rehearsal.rehearse and migrate.Rehearsal is rehearsal.Rehearsal
