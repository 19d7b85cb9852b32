"""API.md against the real JSON documents and the source: every schema, every field table, every id.

API.md gives each command's ``--format json`` document as a JSON Schema (draft 2020-12) in a
fenced ``json-schema`` block, a table of fields above each object schema, and one table of every
finding and error id.  Here every command runs through ``main`` on real nodes planted on the real
disk, and each document is validated with a small validator written here (the project does not
depend on jsonschema).  The validator knows only the keywords API.md says it uses and refuses a
schema with any other.  The id table is compared with the ids the source code can produce, read
with ``ast`` (not by importing), in both directions.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import re
from pathlib import Path

import pytest
from support import CERTS, CONFIG, JOURNAL, plant, scenario

import migrate
from migrate.testing import rehearsal

API = Path(__file__).resolve().parent.parent / "API.md"
PACKAGE = Path(migrate.__file__).resolve().parent
URN = "urn:expressway-migrate:api:"
DRAFT = "https://json-schema.org/draft/2020-12/schema"
SEVERITIES = ("blocker", "warning", "info")
ID = r"[a-z0-9]+(-[a-z0-9]+)*"
# The keywords API.md says its schemas use; the validator implements exactly these.
KEYWORDS = frozenset(
    {"$schema", "$id", "$defs", "$ref", "title", "description", "type", "properties", "required"}
    | {"additionalProperties", "items", "enum", "const", "pattern", "minimum", "oneOf"}
)
JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
JSON_TYPES.update({list: "array", dict: "object"})


def _json_type(value) -> str:
    return JSON_TYPES[type(value)]


def _same(a, b) -> bool:
    """JSON equality: ``true`` is not ``1``."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


# --- The validator ----------------------------------------------------------------


class Validator:
    """JSON Schema draft 2020-12, limited to :data:`KEYWORDS`; ``$ref`` by ``$id`` and JSON pointer.

    ``matched`` collects each ``$ref`` target (``URN#/$defs/NAME``, or a document's ``$id``) that an
    instance matched; a ``oneOf`` branch that does not match adds nothing.
    """

    def __init__(self, schemas: dict[str, dict]) -> None:
        self.schemas = schemas
        self.matched: set[str] = set()
        for uri, schema in schemas.items():
            self._check_keywords(schema, uri)

    def _check_keywords(self, schema, where: str) -> None:
        if not isinstance(schema, dict):
            raise TypeError(f"{where}: a schema must be an object")
        unknown = set(schema) - KEYWORDS
        if unknown:
            raise ValueError(f"{where}: keywords the validator does not implement: {sorted(unknown)}")
        for name, sub in schema.get("properties", {}).items():
            self._check_keywords(sub, f"{where}/properties/{name}")
        for name, sub in schema.get("$defs", {}).items():
            self._check_keywords(sub, f"{where}/$defs/{name}")
        for i, sub in enumerate(schema.get("oneOf", ())):
            self._check_keywords(sub, f"{where}/oneOf/{i}")
        for key in ("items", "additionalProperties"):
            if isinstance(schema.get(key), dict):
                self._check_keywords(schema[key], f"{where}/{key}")

    def resolve(self, ref: str, base: str) -> tuple[str, dict, str]:
        """The base URI, the schema and the full name of ``ref`` as seen from ``base``."""
        uri, _, pointer = ref.partition("#")
        uri = uri or base
        node = self.schemas[uri]
        for part in filter(None, pointer.split("/")):
            node = node[part]
        return uri, node, f"{uri}#{pointer}" if pointer else uri

    def validate(self, instance, ref: str) -> list[str]:
        """Every way ``instance`` fails the schema ``ref`` (empty: it is valid)."""
        return self._errors(instance, {"$ref": ref}, ref.partition("#")[0], "$")

    def _branch(self, instance, schema: dict, base: str, at: str) -> tuple[list[str], set[str]]:
        saved, self.matched = self.matched, set()
        try:
            return self._errors(instance, schema, base, at), self.matched
        finally:
            self.matched = saved

    def _errors(self, instance, schema: dict, base: str, at: str) -> list[str]:
        out: list[str] = []
        if "$ref" in schema:
            uri, target, name = self.resolve(schema["$ref"], base)
            found = self._errors(instance, target, uri, at)
            if not found:
                self.matched.add(name)
            out += found
        if "type" in schema:
            allowed = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            kind = _json_type(instance)
            if kind not in allowed and not (kind == "integer" and "number" in allowed):
                return out + [f"{at}: {kind} where the schema wants {' or '.join(allowed)}"]
        if "const" in schema and not _same(instance, schema["const"]):
            out.append(f"{at}: {instance!r} is not the constant {schema['const']!r}")
        if "enum" in schema and not any(_same(instance, value) for value in schema["enum"]):
            out.append(f"{at}: {instance!r} is not one of {schema['enum']}")
        if "pattern" in schema and isinstance(instance, str) and not re.search(schema["pattern"], instance):
            out.append(f"{at}: {instance!r} does not match {schema['pattern']}")
        if "minimum" in schema and _json_type(instance) in ("integer", "number") and instance < schema["minimum"]:
            out.append(f"{at}: {instance} is below the minimum {schema['minimum']}")
        if "oneOf" in schema:
            results = [self._branch(instance, branch, base, at) for branch in schema["oneOf"]]
            passing = [matched for errors, matched in results if not errors]
            if len(passing) == 1:
                self.matched |= passing[0]
            elif not passing:  # say why the nearest branch failed
                closest = min((errors for errors, _ in results), key=len)
                out.append(f"{at}: matches none of oneOf; the nearest fails with: {'; '.join(closest)}")
            else:
                out.append(f"{at}: matches {len(passing)} of the {len(results)} schemas of oneOf, not exactly one")
        if isinstance(instance, dict):
            properties = schema.get("properties", {})
            out += [f"{at}: no {key!r}" for key in schema.get("required", ()) if key not in instance]
            extra = schema.get("additionalProperties", True)
            for key, value in instance.items():
                if key in properties:
                    out += self._errors(value, properties[key], base, f"{at}.{key}")
                elif extra is False:
                    out.append(f"{at}: {key!r} is not a field of this object")
                elif isinstance(extra, dict):
                    out += self._errors(value, extra, base, f"{at}.{key}")
        if isinstance(instance, list) and "items" in schema:
            for i, item in enumerate(instance):
                out += self._errors(item, schema["items"], base, f"{at}[{i}]")
        return out


# --- API.md, parsed ---------------------------------------------------------------


@functools.cache
def _api_text() -> str:
    return API.read_text(encoding="utf-8")


@functools.cache
def schemas() -> dict[str, dict]:
    """The ``json-schema`` blocks of API.md, by ``$id``."""
    out = {}
    for block in re.findall(r"^```json-schema\n(.*?)^```$", _api_text(), re.DOTALL | re.MULTILINE):
        schema = json.loads(block)
        assert schema["$id"] not in out, f"two schemas are {schema['$id']}"
        out[schema["$id"]] = schema
    return out


def _table_after(marker: str) -> list[list[str]]:
    """The body rows of the Markdown table right after the line ``marker``, as lists of cells."""
    lines = _api_text().splitlines()
    start = lines.index(marker) + 1
    rows = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    assert len(rows) > 2, f"no table after {marker}"
    return rows[2:]  # the header and the separator


def _field_tables() -> dict[str, list[list[str]]]:
    """Each ``<!-- fields: REF -->`` table of API.md, by REF."""
    refs = re.findall(r"^<!-- fields: (\S+) -->$", _api_text(), re.MULTILINE)
    assert len(refs) == len(set(refs)), "a schema has two field tables"
    return {ref: _table_after(f"<!-- fields: {ref} -->") for ref in refs}


@functools.cache
def id_table() -> dict[str, tuple[frozenset[str], bool]]:
    """API.md's id list: id -> (its severities as a finding, whether it is an error id)."""
    out = {}
    for cells in _table_after("<!-- ids -->"):
        assert len(cells) == 5, cells
        name, finding, error = cells[0].strip("`"), cells[1], cells[2]
        assert name not in out, f"{name} is listed twice"
        assert error in ("yes", "—"), cells
        severities = frozenset(re.findall(r"\b(blocker|warning|info)\b", finding))
        assert severities or finding == "—", cells
        assert severities or error == "yes", f"{name} is neither a finding nor an error"
        assert cells[4], f"{name} has no meaning"
        out[name] = (severities, error == "yes")
    return out


def listed_findings() -> set[tuple[str, str]]:
    return {(name, severity) for name, (severities, _) in id_table().items() for severity in severities}


def listed_errors() -> set[str]:
    return {name for name, (_, error) in id_table().items() if error}


def _object_schemas() -> dict[str, dict]:
    """Every schema with properties: each document and each object of ``$defs``, by its full ref."""
    out = {}
    for uri, schema in schemas().items():
        if "properties" in schema:
            out[uri] = schema
        for name, sub in schema.get("$defs", {}).items():
            if "properties" in sub:
                out[f"{uri}#/$defs/{name}"] = sub
    return out


def _types(schema: dict, base: str) -> set[str]:
    """The JSON types a schema admits."""
    if "$ref" in schema:
        uri, target, _ = Validator(schemas()).resolve(schema["$ref"], base)
        return _types(target, uri)
    if "oneOf" in schema:
        return set().union(*(_types(branch, base) for branch in schema["oneOf"]))
    if "type" in schema:
        return set(schema["type"]) if isinstance(schema["type"], list) else {schema["type"]}
    if "const" in schema:
        return {_json_type(schema["const"])}
    return {_json_type(value) for value in schema["enum"]}


# --- The ids in the source, read with ast -------------------------------------------


def _name(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    return node.attr if isinstance(node, ast.Attribute) else None


def _text(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


@functools.cache
def _modules() -> dict[str, ast.Module]:
    """Every module of the package, parsed, by its path relative to the package."""
    return {
        path.relative_to(PACKAGE).as_posix(): ast.parse(path.read_text(encoding="utf-8"), str(path))
        for path in sorted(PACKAGE.rglob("*.py"))
    }


def _calls(name: str):
    for tree in _modules().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and _name(node.func) == name:
                yield node


def _argument(call: ast.Call, names: list[str], name: str):
    """The expression ``call`` passes for the parameter ``name`` of ``names``, or None when it passes none.

    A ``*args`` in the call is allowed before the parameter only when every later parameter is passed
    positionally after it (``_Store("label", *files, "key-mismatch", ...)``): they are counted from the end.
    """
    for kw in call.keywords:
        if kw.arg == name:
            return kw.value
    index, args = names.index(name), call.args
    starred = [i for i, arg in enumerate(args) if isinstance(arg, ast.Starred)]
    if not starred or index < starred[0]:
        return args[index] if index < len(args) and not isinstance(args[index], ast.Starred) else None
    after = len(args) - starred[-1] - 1
    assert not call.keywords and len(names) - index <= after, f"line {call.lineno}: cannot tell what {name} is"
    return args[len(args) - (len(names) - index)]


def _constant_arguments(function: str, names: list[str], name: str) -> set[str]:
    """The string constants passed for the parameter ``name`` (of ``names``) in every call of ``function``."""
    out = set()
    for call in _calls(function):
        value = _argument(call, names, name)
        assert value is None or _text(value) is not None, f"line {call.lineno}: {name} is not a constant"
        if value is not None:
            out.add(_text(value))
    return out


def _cert_error_ids() -> set[str]:
    """The ids certs.py and pem.py give their CertErrors: checks turn each into a finding with that id."""
    return {
        _text(kw.value)
        for module in ("certs.py", "pem.py")
        for node in ast.walk(_modules()[module])
        if isinstance(node, ast.Call) and _name(node.func) == "CertError"
        for kw in node.keywords
        if kw.arg == "id" and _text(kw.value) is not None
    }


def _finding_ids(module: str, call: ast.Call, parents: dict) -> set[str] | None:
    """The ids a ``Finding(...)`` call can carry; None when it takes them from an error (a fleet row)."""
    first = call.args[0] if call.args else next(kw.value for kw in call.keywords if kw.arg == "id")
    if _text(first) is not None:  # Finding("key-exposed", ...)
        return {_text(first)}
    if isinstance(first, ast.JoinedStr):  # Finding(f"{prefix}-not-regular", ...): the prefixes passed in
        head, tail = first.values
        function = call
        while not isinstance(function, ast.FunctionDef):
            function = parents[function]
        params = [a.arg for a in function.args.args]
        return {prefix + tail.value for prefix in _constant_arguments(function.name, params, head.value.id)}
    if isinstance(first, ast.Attribute) and first.attr == "id":
        if module.startswith("checks"):  # Finding(err.id, ...): a file's CertError
            return _cert_error_ids()
        if module == "fleet.py":  # Finding(exc.id, ...): a node that cannot be scanned
            return None
    if isinstance(first, ast.Attribute):  # Finding(store.key_id, ...): that field of the value classes built
        out = set()
        for tree in _modules().values():
            for cls in (node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)):
                fields = [s.target.id for s in cls.body if isinstance(s, ast.AnnAssign)]
                if first.attr in fields:
                    out |= _constant_arguments(cls.name, fields, first.attr)
        if out:
            return out
    raise AssertionError(f"{module}:{call.lineno}: cannot tell the ids of this Finding; teach test_api.py")


@functools.cache
def code_findings() -> frozenset[tuple[str, str]]:
    """(id, severity) of every finding the package can produce."""
    out = set()
    for module, tree in _modules().items():
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == "Finding"):
            severity = _name(call.args[1]) if len(call.args) > 1 else None
            assert severity in ("BLOCKER", "WARNING", "INFO"), f"{module}:{call.lineno}: severity {severity}"
            ids = _finding_ids(module, call, parents) or ()
            assert all(re.fullmatch(ID, i) for i in ids), f"{module}:{call.lineno}: {sorted(ids)} are not ids"
            out |= {(i, severity.lower()) for i in ids}
    return frozenset(out)


@functools.cache
def code_errors() -> frozenset[str]:
    """Every error id in the package: ``id="..."`` given to an error, ``_error("...")`` and ``json_record("...")``,
    the classes' defaults."""
    out = set()
    for tree in _modules().values():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (_name(node.func) or "").endswith("Error"):
                out |= {_text(kw.value) for kw in node.keywords if kw.arg == "id" and _text(kw.value) is not None}
    for builder in ("_error", "json_record"):  # the CLI's stand-ins and its JSON error records
        out |= {_text(call.args[0]) for call in _calls(builder) if call.args and _text(call.args[0]) is not None}
    for cls in (node for node in _modules()["errors.py"].body if isinstance(node, ast.ClassDef)):
        for statement in cls.body:
            target = statement.targets[0] if isinstance(statement, ast.Assign) else getattr(statement, "target", None)
            if isinstance(target, ast.Name) and target.id == "id" and _text(statement.value) is not None:
                out.add(_text(statement.value))
    return frozenset(out)


# --- Real documents ------------------------------------------------------------------


def _doc(run, *argv, code: int) -> dict:
    """The JSON document ``main`` prints for ``argv`` (with ``--format json``), which must exit ``code``."""
    got, out, err = run(*argv, "--format", "json")
    assert got == code, f"{argv}: exit {got}, stderr {err}"
    return json.loads(out)  # stdout is the document and nothing else


def _node(tmp_path: Path, name: str, kind: str = "core") -> Path:
    root = tmp_path / name
    plant(scenario(kind), root)
    return root


def _blocked(tmp_path: Path, name: str) -> Path:
    """A Core without its configuration: the blocker config-missing."""
    root = _node(tmp_path, name)
    (root / CONFIG).unlink()
    return root


def _interrupted(run, tmp_path: Path, name: str, *, staging: bool = False) -> Path:
    """An Edge whose migration stopped after its last change (the journal still ``applying``)."""
    root = _node(tmp_path, name, "edge")
    assert run("apply", root)[0] == 0
    record = json.loads((root / JOURNAL).read_bytes())
    record["state"] = "applying"
    del record["finished"]
    (root / JOURNAL).write_text(json.dumps(record))
    if staging:
        os.close(os.open(root / CERTS / ".client.pem.cert-migration.tmp", os.O_CREAT | os.O_WRONLY, 0o600))
    return root


def _precheck(run, tmp_path):
    edge, blocked = _node(tmp_path, "edge", "edge"), _blocked(tmp_path, "blocked")
    return [("precheck", _doc(run, "precheck", edge, code=0)), ("precheck", _doc(run, "precheck", blocked, code=1))]


def _fleet(run, tmp_path):
    fleet = tmp_path / "fleet"
    _node(fleet, "a")
    _node(fleet, "b/x", "edge")
    _blocked(fleet, "c")
    (fleet / "link").symlink_to(fleet / "a")  # the walk's link-not-followed
    return [("precheck-fleet", _doc(run, "precheck", "--fleet", fleet, "--jobs", "1", code=1))]


def _plan(run, tmp_path):
    edge = _node(tmp_path, "edge", "edge")  # create-file, retire-setting, add-setting
    done = _interrupted(run, tmp_path, "done")  # complete-journal
    staged = _interrupted(run, tmp_path, "staged", staging=True)  # remove-temp
    return [("plan", _doc(run, "plan", root, code=0)) for root in (edge, done, staged)]


def _apply(run, tmp_path):
    edge = _node(tmp_path, "edge", "edge")
    return [("apply", _doc(run, "apply", edge, code=0)), ("apply", _doc(run, "apply", edge, code=0))]


def _verify(run, tmp_path):
    core = _node(tmp_path, "core")
    before = _doc(run, "verify", core, code=1)
    assert run("apply", core)[0] == 0
    return [("verify", before), ("verify", _doc(run, "verify", core, code=0))]


def _rollback(run, tmp_path):
    x154 = _node(tmp_path, "x154")
    changed = _interrupted(run, tmp_path, "changed", staging=True)  # remove-temp, restore-config, remove-file
    with open(changed / CERTS / "client.pem", "ab") as out:  # a conflict: --force moves it aside (displaced)
        out.write(b"\n")
    return [
        ("rollback", _doc(run, "rollback", x154, code=0)),
        ("rollback", _doc(run, "rollback", changed, "--force", code=0)),
    ]


def _status(run, tmp_path):
    edge, blocked = _node(tmp_path, "edge", "edge"), _blocked(tmp_path, "blocked")
    docs = [_doc(run, "status", edge, code=0), _doc(run, "status", blocked, code=0)]
    assert run("apply", edge)[0] == 0
    docs.append(_doc(run, "status", edge, code=0))
    docs.append(_doc(run, "status", _interrupted(run, tmp_path, "interrupted"), code=0))
    return [("status", doc) for doc in docs]


def _rehearse(run, tmp_path):
    from install_support import cas, core_client, write_inputs

    from migrate.testing.factory import NodeSpec, issue, node_tree

    edge, blocked = _node(tmp_path, "edge", "edge"), _blocked(tmp_path, "blocked")
    public, private = cas()  # an X15.4 Core whose ca.pem trusts CA1, and a client identity from CA1 for it
    core = tmp_path / "core"
    identity = issue(public, "core.example.com", eku=["serverAuth"])
    plant(node_tree(NodeSpec(role="core", identity=identity, trusted=(public, private))), core)
    files = write_inputs(str(tmp_path / "in"), core_client().cert_pem, core_client().key_pem())
    return [
        ("rehearse", _doc(run, "rehearse", edge, "--no-crash", code=0)),
        ("rehearse", _doc(run, "rehearse", "--sample", "core", "--no-crash", code=0)),
        ("rehearse", _doc(run, "rehearse", blocked, "--no-crash", code=1)),
        ("rehearse", _doc(run, "rehearse", core, "--install-client", files.cert, files.key, "--no-crash", code=0)),
    ]


def _assess(run, tmp_path):
    core, edge = _node(tmp_path, "core"), _node(tmp_path, "edge", "edge")
    marker = b"-----BEGIN CERTIFICATE-----"
    public = tmp_path / "public.pem"  # the Edge's CA counts as public: its certificates get a cut-off date
    public.write_bytes(marker + (edge / CERTS / "server.pem").read_bytes().split(marker)[2])
    return [("assess", _doc(run, "assess", "--core", core, "--edge", edge, "--public-ca", public, code=1))]


def _sample(run, tmp_path):
    return [
        ("sample", _doc(run, "sample", tmp_path / "both", code=0)),
        ("sample", _doc(run, "sample", tmp_path / "edge", "--role", "edge", code=0)),
    ]


def _csr(run, tmp_path):
    from install_support import condition2

    core = tmp_path / "core"
    plant(condition2("core"), core)
    return [
        ("csr", _doc(run, "csr", core, "--out", tmp_path / "new.csr", code=0)),
        ("csr", _doc(run, "csr", core, "--reuse-key", "--out", tmp_path / "reuse.csr", code=0)),
    ]


def _install_client(run, tmp_path):
    """A plan, an install with --peer, an install already done, a refusal planned, and the install's rollback."""
    from install_support import condition2, core_client, write_inputs

    core, edge = tmp_path / "core", tmp_path / "edge"
    plant(condition2("core"), core)
    plant(condition2("edge"), edge)
    good = write_inputs(str(tmp_path / "good"), core_client().cert_pem, core_client().key_pem())
    bad = core_client(eku=("serverAuth",))
    refused = write_inputs(str(tmp_path / "bad"), bad.cert_pem, bad.key_pem())
    args = ("install-client", core, "--cert", good.cert, "--key", good.key)
    docs = [
        ("install-client", _doc(run, *args, "--plan-only", code=0)),
        ("install-client", _doc(run, "install-client", core, "--cert", refused.cert, "--key", refused.key, "--plan-only", code=1)),
        ("install-client", _doc(run, *args, "--peer", edge, code=0)),
        ("install-client", _doc(run, *args, code=0)),
    ]
    return [*docs, ("rollback", _doc(run, "rollback", core, code=0))]


def _error(run, tmp_path):
    return [
        ("error", _doc(run, "precheck", tmp_path / "missing", code=1)),
        ("error", _doc(run, "apply", _blocked(tmp_path, "blocked"), code=1)),  # the first blocker, with its path
    ]


CASES = {
    "precheck": _precheck,
    "precheck-fleet": _fleet,
    "plan": _plan,
    "apply": _apply,
    "verify": _verify,
    "rollback": _rollback,
    "status": _status,
    "rehearse": _rehearse,
    "assess": _assess,
    "sample": _sample,
    "csr": _csr,
    "install-client": _install_client,
    "error": _error,
}


def _all_documents(run, tmp_path) -> list[tuple[str, dict]]:
    out = []
    for name, case in CASES.items():
        out += case(run, tmp_path / name)
    return out


def _findings(value, where: str):
    """Each finding anywhere in a document (an object with exactly a finding's fields)."""
    if isinstance(value, dict):
        if set(value) == {"id", "severity", "path", "message", "hint"}:
            yield where, value
        for key, item in value.items():
            yield from _findings(item, f"{where}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _findings(item, f"{where}[{i}]")


# --- The tests -------------------------------------------------------------------------

# A plan document that is valid, small, and reaches a finding and an action through $ref and oneOf.
VALID_PLAN = {
    "format_version": 1,
    "command": "plan",
    "node": "/tandberg",
    "ready": True,
    "state": "x15.4",
    "migrated_by_tool": False,
    "fingerprint": "sha256:" + "0" * 64,
    "findings": [{"id": "ssh-bundle-absent", "severity": "info", "path": None, "message": "m", "hint": ""}],
    "actions": [
        {
            "action": "create-file",
            "path": "persistent/certs/client.pem",
            "source": "persistent/certs/server.pem",
            "mode": "0644",
            "uid": 0,
            "gid": 0,
            "sha256": "0" * 64,
        },
        {
            "action": "retire-setting",
            "path": "persistent/xconfiguration.txt",
            "setting": "XCP TLS Certificate CVS EnableServerEkuUpload",
            "old_value": "On",
            "line": 3,
        },
    ],
}


def _mutated(change):
    doc = json.loads(json.dumps(VALID_PLAN))
    change(doc)
    return doc


class TestValidator:
    def test_accepts_a_valid_document(self):
        """The validator accepts a plan document that follows API.md, so its rejections below mean something."""
        validator = Validator(schemas())
        assert validator.validate(VALID_PLAN, URN + "plan") == []
        assert URN + "common#/$defs/create-file" in validator.matched

    @pytest.mark.parametrize(
        "change, where",
        [
            pytest.param(lambda d: d.update(extra=1), "$: 'extra' is not a field", id="extra-key"),
            pytest.param(lambda d: d["findings"][0].update(x=1), "$.findings[0]: 'x' is not", id="extra-nested"),
            pytest.param(lambda d: d["actions"][0].update(x=1), "$.actions[0]: 'x' is not", id="extra-in-action"),
            pytest.param(lambda d: d.pop("ready"), "$: no 'ready'", id="missing-key"),
            pytest.param(lambda d: d["findings"][0].pop("hint"), "$.findings[0]: no 'hint'", id="missing-nested"),
            pytest.param(lambda d: d.update(ready="yes"), "$.ready: string where", id="wrong-type"),
            pytest.param(lambda d: d["actions"][1].update(line=True), "$.actions[1].line: boolean", id="bool-int"),
            pytest.param(lambda d: d["findings"][0].update(message=None), "$.findings[0].message: null", id="null"),
            pytest.param(lambda d: d.update(format_version=2), "$.format_version: 2 is not", id="const"),
            pytest.param(lambda d: d["findings"][0].update(severity="fatal"), "'fatal' is not one of", id="enum"),
            pytest.param(lambda d: d.update(fingerprint="md5:0"), "does not match", id="pattern"),
            pytest.param(lambda d: d["actions"][1].update(line=0), "$.actions[1].line: 0 is below", id="minimum"),
            pytest.param(lambda d: d["actions"][0].update(action="delete-file"), "matches none", id="one-of-none"),
            pytest.param(lambda d: d.update(findings={}), "$.findings: object where", id="object-for-array"),
        ],
    )
    def test_rejects(self, change, where):
        """The validator rejects a document with an extra, missing, mistyped or out-of-range field, and says where."""
        errors = Validator(schemas()).validate(_mutated(change), URN + "plan")
        assert errors, "accepted"
        assert any(where in error for error in errors), errors

    def test_refuses_a_keyword_it_does_not_implement(self):
        """A schema with a keyword the validator does not implement is refused, not silently half-checked."""
        with pytest.raises(ValueError, match="maxItems"):
            Validator({"x": {"$id": "x", "type": "array", "maxItems": 0}})


class TestSchemas:
    def test_every_block_is_a_strict_draft_2020_12_schema(self):
        """Every json-schema block is draft 2020-12 with a unique $id, and every object requires all its fields
        and admits no other."""
        found = schemas()
        assert set(found) == {URN + name for name in ("common", *CASES)}
        Validator(found)  # only the keywords API.md names
        for uri, schema in found.items():
            assert schema["$schema"] == DRAFT, uri
        for ref, schema in _object_schemas().items():
            assert schema["type"] == "object", ref
            assert schema["required"] == list(schema["properties"]), ref
            assert schema["additionalProperties"] is False, ref

    def test_field_tables_match_the_schemas(self):
        """Each object schema has one field table naming exactly its fields, each with the schema's type and nullability."""
        tables = _field_tables()
        assert set(tables) == set(_object_schemas())
        for ref, rows in tables.items():
            schema, base = _object_schemas()[ref], ref.partition("#")[0]
            assert [row[0].strip("`") for row in rows] == list(schema["properties"]), ref
            for field, kind, null, meaning in rows:
                types = _types(schema["properties"][field.strip("`")], base)
                assert kind.split()[0] == "/".join(sorted(types - {"null"} or {"null"})), (ref, field, types)
                assert null == ("yes" if "null" in types else "no"), (ref, field, types)
                assert meaning, (ref, field)


class TestDocuments:
    @pytest.mark.parametrize("case", list(CASES))
    def test_command_documents_match_their_schema(self, run, tmp_path, case):
        """The command's real JSON documents, on real nodes, are valid against their schema in API.md."""
        validator = Validator(schemas())
        for name, doc in CASES[case](run, tmp_path):
            assert validator.validate(doc, URN + name) == [], json.dumps(doc, indent=1)[:4000]

    def test_every_schema_and_definition_is_exercised(self, run, tmp_path):
        """The runs reach every document schema and every $defs entry with a matching instance (findings, every
        action kind, journal, fleet rows, services...), so no nested schema goes untested."""
        validator = Validator(schemas())
        for name, doc in _all_documents(run, tmp_path):
            assert validator.validate(doc, URN + name) == []
        # No real run leaves a crash point unrecovered: one built with the engine's own classes stands in.
        point = rehearsal.CrashPoint("apply", "#7 link(/tandberg/persistent/certs/client.pem)", "rollback: differs")
        report = rehearsal.Rehearsal(node="/tandberg", steps=(), plan=None, crash_points=1, unrecovered=(point,))
        assert validator.validate(report.as_dict(), URN + "rehearse#/$defs/rehearsal") == []
        wanted = {uri for uri, schema in schemas().items() if "type" in schema}
        wanted |= {f"{uri}#/$defs/{name}" for uri, schema in schemas().items() for name in schema.get("$defs", {})}
        assert wanted - validator.matched == set()

    def test_every_emitted_id_is_listed(self, run, tmp_path):
        """Every finding in the documents has an id and severity API.md lists, and every error an error id (or, for a
        refusal, a blocker's id)."""
        findings, blockers = listed_findings(), {name for name, severity in listed_findings() if severity == "blocker"}
        seen = set()
        for name, doc in _all_documents(run, tmp_path):
            for where, finding in _findings(doc, name):
                pair = (finding["id"], finding["severity"])
                from_error = name == "precheck-fleet" and pair[1] == "blocker" and pair[0] in listed_errors()
                assert pair in findings or from_error, f"{where}: {pair} is not in API.md's id list"
                seen.add(pair)
            if name == "error":
                assert doc["error"]["id"] in listed_errors() | blockers, doc
                seen.add((doc["error"]["id"], "error"))
        # The runs did report findings of every severity, and errors of both kinds (a test of nothing proves nothing).
        assert {severity for _, severity in seen} == {*SEVERITIES, "error"}
        assert {("node-missing", "error"), ("config-missing", "error")} <= seen


class TestIds:
    def test_every_finding_in_the_code_is_listed_with_its_severities(self):
        """The (id, severity) pairs the source can produce are exactly those API.md lists, no more and no fewer."""
        code, listed = code_findings(), listed_findings()
        assert sorted(code - listed) == [], "in the code, not in API.md"
        assert sorted(listed - code) == [], "in API.md, not in the code"

    def test_every_error_id_in_the_code_is_listed(self):
        """The error ids the source names (given to an error, or an error class's default) are exactly API.md's."""
        code, listed = code_errors(), listed_errors()
        assert sorted(code - listed) == [], "in the code, not in API.md"
        assert sorted(listed - code) == [], "in API.md, not in the code"

    def test_the_source_reading_finds_what_it_must(self):
        """The ast reading resolves the ids that are not literals: the f-string prefixes, the stores' fields, the
        CertError ids, the command line's own errors."""
        pairs = code_findings()
        assert {("config-too-large", "blocker"), ("file-not-regular", "blocker")} <= pairs
        assert {("client-ssh-identity-mismatch", "blocker"), ("pem-malformed", "blocker")} <= pairs
        assert {("retired-setting-present", "info"), ("retired-setting-present", "blocker")} <= pairs
        assert {"internal-error", "interrupted", "lock-held", "node-missing"} <= code_errors()
