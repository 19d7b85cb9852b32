"""Tests for migrate.plan: the planner on plain data (Snapshot values built by hand, no file system)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import attrs
import pytest
from support import PLAN_KEYS, empty_journal

from migrate import checks, facts, policy
from migrate.errors import MigrateError, PlanError
from migrate.plan import (
    AddSetting,
    CompleteJournal,
    CreateFile,
    RemoveTemp,
    RetireSetting,
    check_saved_plan,
    edited_config,
    load_saved_plan,
    make_plan,
)
from migrate.scan import FileState, Layout, Snapshot
from migrate.testing.factory import issue, make_ca

LAYOUT = Layout.for_node("/n")  # a made-up root: nothing here touches a file system
CERTS = policy.CERT_DIR
CONFIG = policy.CONFIG_FILE
STATE_DIR = policy.STATE_DIR
JOURNAL = f"{policy.STATE_DIR}/{policy.JOURNAL_NAME}"
NOW = datetime.now(UTC)

RETIRED = policy.RETIRED_SETTING
CHECKING = policy.CHECKING_SETTING

# Owners of the X15.4 files, with groups that differ from the owners: a copy must mirror both.
OWNERS = {
    "ca.pem": (65534, 65530),
    "server.pem": (65534, 65531),
    "privkey.pem": (0, 7),
    "server-ssh.pem": (1001, 1002),
}

BASE_CONFIG = b'*c xConfiguration SIP Mode: "On"\n*c xConfiguration SIP TLS Mode: "On"\n'


def setting(name: str, value: str, end: bytes = b"\n") -> bytes:
    return f"*c xConfiguration {name}: {value}".encode() + end


CHECKING_ON = setting(CHECKING, '"On"')
CHECKING_OFF = setting(CHECKING, "Off")
RETIRED_ON = setting(RETIRED, "On")
RETIRED_OFF = setting(RETIRED, '"Off"')


@pytest.fixture(scope="module")
def m():
    """Certificates and keys from the factory, generated once for the module (EC P-256)."""
    ca = make_ca("Plan Test CA")
    ident = issue(ca, "core.example.com")
    other = issue(ca, "other.example.com")
    return SimpleNamespace(
        ca_pem=ca.cert_pem,
        cert=ident.chain_pem,
        key=ident.key_pem(),
        ssh=ident.bundle_pem(),
        other_cert=other.chain_pem,
        other_key=other.key_pem(),
    )


# --- Snapshot builders -----------------------------------------------------------------------


def cert_path(name: str) -> str:
    return f"{CERTS}/{name}"


def present(rel: str, data: bytes, *, mode: int, uid: int, gid: int, nlink: int = 1) -> FileState:
    return FileState(rel, "file", mode=mode, uid=uid, gid=gid, nlink=nlink, size=len(data), data=data)


def missing(rel: str) -> FileState:
    return FileState(rel, "missing")


def directory(rel: str, mode: int = 0o755) -> FileState:
    return FileState(rel, "dir", mode=mode, uid=0, gid=0, nlink=2)


def server_file(name: str, data: bytes, **kw) -> FileState:
    uid, gid = OWNERS[name]
    args = {"mode": policy.RULES[name].mode, "uid": uid, "gid": gid}
    args.update(kw)
    return present(cert_path(name), data, **args)


def client_copy(name: str, files: dict, **kw) -> FileState:
    """The client file ``name`` as the migration leaves it: its counterpart's bytes and owner, the policy mode."""
    source = files[policy.RULES[name].counterpart]
    args = {"mode": policy.RULES[name].mode, "uid": source.uid, "gid": source.gid}
    args.update(kw)
    return present(cert_path(name), source.data, **args)


def x154_files(m, *, ssh: bool = True) -> dict:
    files = {
        "ca.pem": server_file("ca.pem", m.ca_pem),
        "server.pem": server_file("server.pem", m.cert),
        "privkey.pem": server_file("privkey.pem", m.key),
        "server-ssh.pem": server_file("server-ssh.pem", m.ssh) if ssh else missing(cert_path("server-ssh.pem")),
    }
    for rule in policy.CLIENT_FILES:
        files[rule.name] = missing(cert_path(rule.name))
    return files


def x155_files(m, *, ssh: bool = True) -> dict:
    files = x154_files(m, ssh=ssh)
    for rule in policy.CLIENT_FILES:
        if files[rule.counterpart].exists:
            files[rule.name] = client_copy(rule.name, files)
    return files


def journal_state(state: str) -> FileState:
    data = empty_journal(state)
    return present(JOURNAL, data, mode=0o600, uid=0, gid=0)


def staging(rel: str) -> FileState:
    path = Path(rel)  # the staging name an earlier version of the tool wrote (still recognised)
    return present(path.with_name(f".{path.name}{policy.TEMP_SUFFIX}").as_posix(), b"partial", mode=0o600, uid=0, gid=0)


def snapshot(
    files: dict,
    config: bytes | None = BASE_CONFIG,
    *,
    journal: FileState | None = None,
    temps: tuple = (),
    state_dir: bool = False,
    euid: int = 0,
    now: datetime = NOW,
    config_state: FileState | None = None,
) -> Snapshot:
    if config_state is None:
        config_state = present(CONFIG, config, mode=0o644, uid=0, gid=0) if config is not None else missing(CONFIG)
    has_state = state_dir or journal is not None
    return Snapshot(
        layout=LAYOUT,
        files=files,
        config=config_state,
        dirs=(directory("persistent"), directory(CERTS)),
        state_dir=directory(STATE_DIR, 0o700) if has_state else missing(STATE_DIR),
        temps=tuple(temps),
        journal=journal if journal is not None else missing(JOURNAL),
        config_backup=missing(f"{STATE_DIR}/{policy.CONFIG_BACKUP_NAME}"),
        euid=euid,
        now=now,
    )


def plan_of(snap: Snapshot):
    return make_plan(facts.analyse(snap))


def kinds_and_paths(plan) -> list[tuple[str, str | None]]:
    return [(a.kind, getattr(a, "path", None)) for a in plan.actions]


def mixed(m, **client_kw):
    """An X15.4 node where client.pem already is a copy of server.pem (with ``client_kw`` overriding it)."""
    files = x154_files(m)
    files["client.pem"] = client_copy("client.pem", files, **client_kw)
    return files


CREATE_ALL = [
    ("create-file", cert_path("client.pem")),
    ("create-file", cert_path("clientprivkey.pem")),
    ("create-file", cert_path("client-ssh.pem")),
]
ADD = [("add-setting", CONFIG)]
RETIRE = [("retire-setting", CONFIG)]


# --- Scenarios: snapshot and the ordered actions ------------------------------------------------------

PLAN_CASES = [
    pytest.param(lambda m: snapshot(x154_files(m)), CREATE_ALL + ADD, id="x15.4-core"),
    pytest.param(
        lambda m: snapshot(x154_files(m), BASE_CONFIG + RETIRED_ON), CREATE_ALL + RETIRE + ADD, id="retired-on"
    ),
    pytest.param(
        lambda m: snapshot(x154_files(m), RETIRED_ON + BASE_CONFIG + RETIRED_OFF + CHECKING_OFF),
        CREATE_ALL + RETIRE + RETIRE,
        id="two-retired-lines-checking-off",
    ),
    pytest.param(lambda m: snapshot(x154_files(m), BASE_CONFIG + CHECKING_ON), CREATE_ALL, id="checking-stated-on"),
    pytest.param(lambda m: snapshot(x154_files(m), BASE_CONFIG + CHECKING_OFF), CREATE_ALL, id="checking-stated-off"),
    pytest.param(lambda m: snapshot(x154_files(m, ssh=False)), CREATE_ALL[:2] + ADD, id="no-ssh-bundle"),
    pytest.param(lambda m: snapshot(mixed(m)), CREATE_ALL[1:] + ADD, id="client-pem-already-copied"),
    pytest.param(lambda m: snapshot(x154_files(m), BASE_CONFIG, euid=1000), CREATE_ALL + ADD, id="not-root-only-warns"),
    pytest.param(lambda m: snapshot(x155_files(m), BASE_CONFIG + CHECKING_ON), [], id="x15.5-plans-nothing"),
    pytest.param(lambda m: snapshot(x155_files(m, ssh=False), CHECKING_ON), [], id="x15.5-without-ssh"),
    pytest.param(
        lambda m: snapshot(x155_files(m), RETIRED_ON + CHECKING_ON), RETIRE, id="client-store-complete-retired-left"
    ),
    pytest.param(
        lambda m: snapshot(x155_files(m), BASE_CONFIG + CHECKING_ON, journal=journal_state("applying")),
        [("complete-journal", None)],
        id="interrupted-nothing-left",
    ),
    pytest.param(
        lambda m: snapshot(x155_files(m), BASE_CONFIG + CHECKING_ON, journal=journal_state("applied")),
        [],
        id="applied-journal-nothing-left",
    ),
    pytest.param(
        lambda m: snapshot(x155_files(m), BASE_CONFIG + CHECKING_ON, state_dir=True),
        [],
        id="x15.5-with-empty-state-dir",
    ),
    pytest.param(
        lambda m: snapshot(
            {**x155_files(m), "client.pem": missing(cert_path("client.pem"))},
            BASE_CONFIG,
            journal=journal_state("applying"),
            temps=(staging(cert_path("client.pem")), staging(CONFIG)),
        ),
        [
            ("remove-temp", f"{CERTS}/.client.pem{policy.TEMP_SUFFIX}"),
            ("remove-temp", f"persistent/.xconfiguration.txt{policy.TEMP_SUFFIX}"),
            ("create-file", cert_path("client.pem")),
            ("add-setting", CONFIG),
        ],
        id="interrupted-with-staging-files",
    ),
    pytest.param(
        lambda m: snapshot(
            x155_files(m), BASE_CONFIG + CHECKING_ON, journal=journal_state("applied"), temps=(staging(CONFIG),)
        ),
        [("remove-temp", f"persistent/.xconfiguration.txt{policy.TEMP_SUFFIX}")],
        id="applied-journal-leftover-staging",
    ),
]


class TestMakePlan:
    @pytest.mark.parametrize("build, expected", PLAN_CASES)
    def test_ordered_actions(self, m, build, expected):
        """The plan lists exactly the expected actions, in the documented order."""
        plan = plan_of(build(m))
        assert plan.ready
        assert kinds_and_paths(plan) == expected

    @pytest.mark.parametrize("ssh", [True, False])
    def test_create_file_mirrors_counterpart(self, m, ssh):
        """Each create-file copies its counterpart: policy mode, the counterpart's uid and gid, the sha256 of its bytes."""
        files = x154_files(m, ssh=ssh)
        plan = plan_of(snapshot(files))
        creates = [a for a in plan.actions if isinstance(a, CreateFile)]
        expected = []
        for rule in policy.CLIENT_FILES:
            source = files[rule.counterpart]
            if source.exists:
                expected.append(
                    CreateFile(
                        path=cert_path(rule.name),
                        source=cert_path(rule.counterpart),
                        mode=rule.mode,
                        uid=source.uid,
                        gid=source.gid,
                        sha256=hashlib.sha256(source.data).hexdigest(),
                    )
                )
        assert creates == expected
        assert [(a.mode, a.uid, a.gid) for a in creates] == [(0o644, 65534, 65531), (0o440, 0, 7), (0o600, 1001, 1002)][
            : len(creates)
        ]

    def test_create_file_follows_unusual_owner(self, m):
        """The owner of a created file is read from the counterpart, not from the policy's owner names."""
        files = x154_files(m)
        files["server.pem"] = server_file("server.pem", m.cert, uid=4242, gid=4343)
        plan = plan_of(snapshot(files))
        first = plan.actions[0]
        assert (first.path, first.uid, first.gid) == (cert_path("client.pem"), 4242, 4343)

    @pytest.mark.parametrize(
        "config, expected",
        [
            pytest.param(
                BASE_CONFIG + RETIRED_ON,
                [RetireSetting(CONFIG, RETIRED, "On", 3), AddSetting(CONFIG, CHECKING, "On")],
                id="retired-last",
            ),
            pytest.param(
                RETIRED_ON + BASE_CONFIG + RETIRED_OFF + CHECKING_ON,
                [RetireSetting(CONFIG, RETIRED, "On", 1), RetireSetting(CONFIG, RETIRED, "Off", 4)],
                id="two-lines-checking-stated",
            ),
            pytest.param(
                b"# comment\r\n" + setting(RETIRED.lower(), '"On"', b"\r\n") + BASE_CONFIG,
                [RetireSetting(CONFIG, RETIRED.lower(), "On", 2), AddSetting(CONFIG, CHECKING, "On")],
                id="crlf-lowercase-quoted",
            ),
            pytest.param(
                BASE_CONFIG + setting(CHECKING, '"Off"'),
                [],
                id="checking-off-kept",
            ),
            pytest.param(b"# no settings\n", [AddSetting(CONFIG, CHECKING, "On")], id="no-settings"),
        ],
    )
    def test_config_actions(self, m, config, expected):
        """One retire-setting per retired line (1-based, name and value as in the file); add-setting only without a Checking Mode line."""
        plan = plan_of(snapshot(x155_files(m), config))
        assert list(plan.config_actions) == expected
        assert list(plan.actions) == expected  # nothing else to do on a node whose client store is complete

    @pytest.mark.parametrize(
        "build, blocker",
        [
            pytest.param(
                lambda m: snapshot({**x154_files(m), "privkey.pem": server_file("privkey.pem", m.other_key)}),
                "key-mismatch",
                id="key-mismatch",
            ),
            pytest.param(lambda m: snapshot(x154_files(m), None), "config-missing", id="config-missing"),
            pytest.param(
                lambda m: snapshot(x154_files(m), BASE_CONFIG + setting(CHECKING, "Maybe")),
                "checking-mode-invalid",
                id="checking-invalid",
            ),
            pytest.param(
                lambda m: snapshot(x154_files(m), BASE_CONFIG + CHECKING_ON + CHECKING_OFF),
                "checking-mode-conflict",
                id="checking-conflict",
            ),
            pytest.param(
                lambda m: snapshot(x154_files(m), temps=(staging(cert_path("client.pem")),)),
                "stale-temp-file",
                id="staging-without-journal",
            ),
            pytest.param(
                lambda m: snapshot(x154_files(m), journal=present(JOURNAL, b"{not json", mode=0o600, uid=0, gid=0)),
                "journal-invalid",
                id="journal-invalid",
            ),
            pytest.param(
                lambda m: snapshot(
                    {
                        **x154_files(m),
                        "client.pem": present(cert_path("client.pem"), m.other_cert, mode=0o644, uid=65534, gid=65531),
                    },
                    BASE_CONFIG + RETIRED_ON,
                ),
                "client-store-conflict",
                id="client-conflict",
            ),
            pytest.param(
                lambda m: snapshot({**x154_files(m), "ca.pem": missing(cert_path("ca.pem"))}),
                "file-missing",
                id="ca-missing",
            ),
            pytest.param(
                lambda m: snapshot(
                    {
                        **x154_files(m),
                        "server.pem": FileState(cert_path("server.pem"), "symlink", mode=0o777, uid=0, gid=0),
                    }
                ),
                "file-not-regular",
                id="server-pem-symlink",
            ),
            pytest.param(
                lambda m: snapshot({**x154_files(m), "privkey.pem": server_file("privkey.pem", m.key, mode=0o444)}),
                "key-exposed",
                id="key-exposed",
            ),
        ],
    )
    def test_no_actions_while_blocked(self, m, build, blocker):
        """While any blocker stands the plan has no actions at all, and is not ready."""
        plan = plan_of(build(m))
        assert blocker in {f.id for f in checks.blockers(plan.findings)}
        assert not plan.ready
        assert plan.actions == ()

    def test_plan_carries_state_and_findings(self, m):
        """The plan records node, fingerprint, state and the precheck's findings of the same snapshot."""
        snap = snapshot(x154_files(m, ssh=False), BASE_CONFIG + RETIRED_ON)
        plan = plan_of(snap)
        assert plan.node == "/n"
        assert plan.fingerprint == snap.fingerprint
        assert (plan.state, plan.migrated_by_tool) == ("x15.4", False)
        assert plan.findings == checks.precheck(facts.analyse(snap))
        assert {"ssh-bundle-absent", "server-eku-upload-on"} <= {f.id for f in plan.findings}

    @pytest.mark.parametrize(
        "build, state",
        [
            pytest.param(lambda m: snapshot(x154_files(m)), ("x15.4", False), id="x15.4"),
            pytest.param(lambda m: snapshot(x155_files(m), CHECKING_ON), ("x15.5", False), id="x15.5"),
            pytest.param(lambda m: snapshot(mixed(m)), ("mixed", False), id="mixed"),
            pytest.param(
                lambda m: snapshot(x155_files(m), CHECKING_ON, journal=journal_state("applied")),
                ("x15.5", True),
                id="by-tool",
            ),
            pytest.param(
                lambda m: snapshot(x154_files(m), journal=journal_state("applying")),
                ("interrupted", True),
                id="interrupted",
            ),
        ],
    )
    def test_state(self, m, build, state):
        """The plan names the node's state and whether this tool migrated it."""
        plan = plan_of(build(m))
        assert (plan.state, plan.migrated_by_tool) == state


# --- The plan, carried out on the data -----------------------------------------------------------------


def carried_out(snap: Snapshot, plan) -> Snapshot:
    """The snapshot after the writer did exactly what ``plan`` says (a model of apply, on plain data)."""
    files = dict(snap.files)
    temps = list(snap.temps)
    for action in plan.actions:
        if isinstance(action, CreateFile):
            name = Path(action.path).name
            source = files[policy.RULES[name].counterpart]
            assert source.sha256 == action.sha256
            files[name] = present(action.path, source.data, mode=action.mode, uid=action.uid, gid=action.gid)
        elif isinstance(action, RemoveTemp):
            temps = [t for t in temps if t.path != action.path]
        elif not isinstance(action, (RetireSetting, AddSetting, CompleteJournal)):
            raise TypeError(f"the model does not know the action {action!r}")
    config = snap.config
    if plan.config_actions:
        data = edited_config(config.data, plan.config_actions)
        config = attrs.evolve(config, data=data, size=len(data))
    return attrs.evolve(
        snap,
        files=files,
        temps=tuple(temps),
        config=config,
        journal=journal_state("applied"),
        state_dir=directory(STATE_DIR),
    )


class TestPlanOutcome:
    @pytest.mark.parametrize(
        "build",
        [
            pytest.param(lambda m: snapshot(x154_files(m)), id="x15.4-core"),
            pytest.param(lambda m: snapshot(x154_files(m), BASE_CONFIG + RETIRED_ON + CHECKING_OFF), id="edge-retired"),
            pytest.param(lambda m: snapshot(x154_files(m, ssh=False)), id="no-ssh"),
            pytest.param(lambda m: snapshot(mixed(m)), id="client-pem-copied-at-policy"),
            pytest.param(
                lambda m: snapshot({**x154_files(m), "privkey.pem": server_file("privkey.pem", m.key, mode=0o400)}),
                id="server-key-tighter-than-policy",
            ),
        ],
    )
    def test_ready_plan_verifies(self, m, build):
        """On a sound X15.4 node the plan is ready, and once carried out it leaves a node that verify accepts."""
        snap = build(m)
        plan = plan_of(snap)
        assert plan.ready and plan.actions
        after = carried_out(snap, plan)
        assert checks.verify(facts.analyse(after)) == ()
        assert plan_of(after).actions == ()

    @pytest.mark.parametrize(
        "client_kw",
        [
            pytest.param({"mode": 0o600}, id="mode-0600"),
            pytest.param({"mode": 0o444}, id="mode-0444"),
            pytest.param({"uid": 0, "gid": 0}, id="owner-root"),
        ],
    )
    def test_existing_client_copy_off_policy(self, m, client_kw):
        """An existing copy of server.pem with a non-policy mode or owner is either a blocker or fixed by the plan, never a ready plan that fails verify."""
        snap = snapshot(mixed(m, **client_kw))
        plan = plan_of(snap)
        if plan.ready:
            after = carried_out(snap, plan)
            assert checks.verify(facts.analyse(after)) == ()
        else:
            assert plan.actions == ()

    @pytest.mark.parametrize(
        "config",
        [
            pytest.param(BASE_CONFIG, id="plain"),
            pytest.param(RETIRED_ON + BASE_CONFIG + RETIRED_OFF, id="two-retired"),
            pytest.param(BASE_CONFIG.replace(b"\n", b"\r\n") + setting(RETIRED, "On", b""), id="crlf-no-final-newline"),
        ],
    )
    def test_replan_after_config_edit_is_empty(self, m, config):
        """The edited configuration needs no further configuration action."""
        snap = snapshot(x155_files(m), config)
        plan = plan_of(snap)
        after = carried_out(snap, plan)
        assert plan_of(after).config_actions == ()


# --- edited_config --------------------------------------------------------------------------------


class TestEditedConfig:
    @pytest.mark.parametrize(
        "config, expected",
        [
            pytest.param(BASE_CONFIG, BASE_CONFIG + CHECKING_ON.replace(b'"On"', b"On"), id="append-only"),
            pytest.param(
                BASE_CONFIG + RETIRED_ON,
                BASE_CONFIG + b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On\n",
                id="retire-last-line",
            ),
            pytest.param(
                RETIRED_ON + BASE_CONFIG + CHECKING_OFF,
                BASE_CONFIG + CHECKING_OFF,
                id="retire-first-keep-checking",
            ),
            pytest.param(
                b"a\r\n" + setting(RETIRED, "On", b"\r\n") + b"b\r\n",
                b"a\r\nb\r\n*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On\r\n",
                id="crlf",
            ),
            pytest.param(
                b"x \xff\xfe odd\n" + setting(RETIRED, '"On"') + b"no newline at end",
                b"x \xff\xfe odd\nno newline at end\n*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: On\n",
                id="odd-bytes-no-final-newline",
            ),
            pytest.param(
                setting(RETIRED, "On") + setting(RETIRED, "Off") + CHECKING_ON, CHECKING_ON, id="every-retired-line"
            ),
        ],
    )
    def test_bytes(self, m, config, expected):
        """The edited configuration is exactly the input without the retired lines and with Checking Mode appended if absent."""
        plan = plan_of(snapshot(x155_files(m), config))
        assert edited_config(config, plan.config_actions) == expected

    def test_no_config_actions_keeps_bytes(self):
        """With no configuration action the bytes come back unchanged."""
        data = b"keep \xff me\r\nas is"
        assert edited_config(data, ()) == data

    def test_non_config_actions_ignored(self, m):
        """Create-file and remove-temp actions do not touch the configuration bytes."""
        actions = [RemoveTemp("x"), CreateFile("a", "b", 0o644, 0, 0, "0" * 64), CompleteJournal()]
        assert edited_config(BASE_CONFIG, actions) == BASE_CONFIG


# --- The plan as JSON, and saved plans ----------------------------------------------------------


ACTION_KEYS = {
    "create-file": {"action", "path", "source", "mode", "uid", "gid", "sha256"},
    "retire-setting": {"action", "path", "setting", "old_value", "line"},
    "add-setting": {"action", "path", "setting", "value"},
    "remove-temp": {"action", "path"},
    "complete-journal": {"action"},
}


class TestPlanDict:
    def test_shape(self, m):
        """as_dict is format_version 1 with the documented keys, JSON-serialisable."""
        snap = snapshot(x154_files(m), BASE_CONFIG + RETIRED_ON)
        doc = plan_of(snap).as_dict()
        assert set(doc) == PLAN_KEYS
        assert doc["format_version"] == 1
        assert doc["command"] == "plan"
        assert doc["node"] == "/n"
        assert doc["ready"] is True
        assert (doc["state"], doc["migrated_by_tool"]) == ("x15.4", False)
        assert doc["fingerprint"] == snap.fingerprint and doc["fingerprint"].startswith("sha256:")
        assert json.loads(json.dumps(doc)) == doc
        for finding in doc["findings"]:
            assert set(finding) == {"id", "severity", "path", "message", "hint"}

    def test_action_dicts(self, m):
        """Every action kind serialises with exactly its documented keys; modes are four-digit octal strings."""
        files = x154_files(m)
        snap = snapshot(files, RETIRED_ON + BASE_CONFIG)
        doc = plan_of(snap).as_dict()
        by_kind = {}
        for action in doc["actions"]:
            assert set(action) == ACTION_KEYS[action["action"]]
            by_kind.setdefault(action["action"], []).append(action)
        assert [a["mode"] for a in by_kind["create-file"]] == ["0644", "0440", "0600"]
        assert by_kind["create-file"][0] == {
            "action": "create-file",
            "path": "persistent/certs/client.pem",
            "source": "persistent/certs/server.pem",
            "mode": "0644",
            "uid": 65534,
            "gid": 65531,
            "sha256": hashlib.sha256(m.cert).hexdigest(),
        }
        assert by_kind["retire-setting"] == [
            {"action": "retire-setting", "path": CONFIG, "setting": RETIRED, "old_value": "On", "line": 1}
        ]
        assert by_kind["add-setting"] == [{"action": "add-setting", "path": CONFIG, "setting": CHECKING, "value": "On"}]
        assert RemoveTemp("p").as_dict() == {"action": "remove-temp", "path": "p"}
        assert CompleteJournal().as_dict() == {"action": "complete-journal"}

    def test_blocked_plan_dict(self, m):
        """A blocked plan says ready false and lists no actions, but lists the blocker."""
        doc = plan_of(snapshot(x154_files(m), None)).as_dict()
        assert doc["ready"] is False and doc["actions"] == []
        assert "config-missing" in [f["id"] for f in doc["findings"] if f["severity"] == "blocker"]


def _evolve_file(snap: Snapshot, name: str, **changes) -> Snapshot:
    files = dict(snap.files)
    files[name] = attrs.evolve(files[name], **changes)
    return attrs.evolve(snap, files=files)


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 1])


FINGERPRINT_CHANGES = [
    pytest.param(
        lambda s: _evolve_file(s, "server.pem", data=_flip_last_byte(s.files["server.pem"].data)), id="cert-byte"
    ),
    pytest.param(lambda s: _evolve_file(s, "privkey.pem", data=s.files["privkey.pem"].data + b"\n"), id="key-byte"),
    pytest.param(lambda s: _evolve_file(s, "privkey.pem", mode=0o400), id="key-mode"),
    pytest.param(lambda s: _evolve_file(s, "server.pem", uid=0), id="cert-uid"),
    pytest.param(lambda s: _evolve_file(s, "server-ssh.pem", gid=0), id="ssh-gid"),
    pytest.param(lambda s: _evolve_file(s, "ca.pem", mode=0o600), id="ca-mode"),
    pytest.param(lambda s: _evolve_file(s, "privkey.pem", nlink=2), id="key-hardlinked"),
    pytest.param(
        lambda s: _evolve_file(s, "client.pem", kind="file", mode=0o644, uid=65534, gid=65531, nlink=1, data=b"x"),
        id="client-file-appears",
    ),
    pytest.param(
        lambda s: attrs.evolve(s, config=attrs.evolve(s.config, data=s.config.data + b"\n")), id="config-byte"
    ),
    pytest.param(lambda s: attrs.evolve(s, config=attrs.evolve(s.config, mode=0o600)), id="config-mode"),
    pytest.param(lambda s: attrs.evolve(s, journal=journal_state("applying")), id="journal-appears"),
    pytest.param(lambda s: attrs.evolve(s, temps=(staging(CONFIG),)), id="temp-appears"),
    pytest.param(lambda s: attrs.evolve(s, dirs=(directory("persistent"), directory(CERTS, 0o777))), id="dir-mode"),
    pytest.param(
        lambda s: attrs.evolve(
            s, config_backup=present(f"{STATE_DIR}/{policy.CONFIG_BACKUP_NAME}", b"", mode=0o600, uid=0, gid=0)
        ),
        id="config-backup-appears",
    ),
]

FINGERPRINT_SAME = [
    pytest.param(lambda s: attrs.evolve(s, state_dir=directory(STATE_DIR, 0o700)), id="state-dir-appears"),
    pytest.param(lambda s: attrs.evolve(s, euid=1000), id="other-user"),
    pytest.param(lambda s: attrs.evolve(s, now=datetime(2030, 1, 1, tzinfo=UTC)), id="later"),
    pytest.param(lambda s: attrs.evolve(s, dirs=tuple(attrs.evolve(d, nlink=9) for d in s.dirs)), id="dir-nlink"),
]


class TestFingerprint:
    @pytest.mark.parametrize("change", FINGERPRINT_CHANGES)
    def test_changes(self, m, change):
        """Any byte, mode, owner or link count of a managed file, the configuration or the tool's state changes the fingerprint."""
        snap = snapshot(x154_files(m))
        changed = change(snap)
        assert changed != snap
        assert changed.fingerprint != snap.fingerprint

    @pytest.mark.parametrize("change", FINGERPRINT_SAME)
    def test_stable(self, m, change):
        """The state directory appearing (taking the lock creates it), the user or the clock do not change the fingerprint."""
        snap = snapshot(x154_files(m))
        assert change(snap).fingerprint == snap.fingerprint

    def test_journal_content_changes_it(self, m):
        """Two journals that differ only in their state give different fingerprints."""
        files = x155_files(m)
        a = snapshot(files, CHECKING_ON, journal=journal_state("applying"))
        b = snapshot(files, CHECKING_ON, journal=journal_state("applied"))
        assert a.fingerprint != b.fingerprint

    def test_deterministic(self, m):
        """Equal snapshots built separately have equal fingerprints."""
        assert snapshot(x154_files(m)).fingerprint == snapshot(x154_files(m)).fingerprint


class TestSavedPlan:
    def test_round_trip(self, m):
        """A plan saved as JSON loads back and is accepted for the unchanged node."""
        plan = plan_of(snapshot(x154_files(m), BASE_CONFIG + RETIRED_ON))
        saved = load_saved_plan(json.dumps(plan.as_dict()).encode(), "plan.json")
        check_saved_plan(saved, plan)  # no error
        assert saved == plan.as_dict()

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"this is not json", id="not-json"),
            pytest.param(b"", id="empty"),
            pytest.param(b"\xff\xfe\x00garbage", id="not-utf8"),
            pytest.param(b"[1, 2]", id="list"),
            pytest.param(b'"sha256:abc"', id="string"),
            pytest.param(b'{"format_version": 2, "fingerprint": "sha256:x", "actions": []}', id="version-2"),
            pytest.param(b'{"format_version": "1", "fingerprint": "sha256:x", "actions": []}', id="version-string"),
            pytest.param(b'{"format_version": 1, "actions": []}', id="no-fingerprint"),
        ],
    )
    def test_invalid(self, data):
        """Anything but a format-1 plan object with a fingerprint is plan-invalid, naming the source."""
        with pytest.raises(PlanError) as info:
            load_saved_plan(data, "saved-plan.json")
        assert info.value.id == "plan-invalid"
        assert "saved-plan.json" in info.value.message
        assert info.value.hint
        assert isinstance(info.value, MigrateError)

    def test_deeply_nested_is_invalid(self):
        """A plan file nested too deeply for the JSON parser is plan-invalid, not a crash."""
        with pytest.raises(PlanError) as info:
            load_saved_plan(b"[" * 100_000, "deep.json")
        assert info.value.id == "plan-invalid"

    @pytest.mark.parametrize(
        "change, error",
        [
            pytest.param(
                lambda s: _evolve_file(s, "server.pem", data=s.files["server.pem"].data + b"\n"),
                "plan-stale",
                id="byte",
            ),
            pytest.param(lambda s: _evolve_file(s, "privkey.pem", mode=0o400), "plan-stale", id="mode"),
            pytest.param(lambda s: _evolve_file(s, "server-ssh.pem", uid=0), "plan-stale", id="owner"),
            pytest.param(lambda s: attrs.evolve(s, journal=journal_state("applying")), "plan-stale", id="journal"),
        ],
    )
    def test_node_changed(self, m, change, error):
        """A saved plan is refused as stale when the node changed since."""
        snap = snapshot(x154_files(m))
        saved = load_saved_plan(json.dumps(plan_of(snap).as_dict()).encode(), "p")
        with pytest.raises(PlanError) as info:
            check_saved_plan(saved, plan_of(change(snap)))
        assert info.value.id == error

    def test_state_dir_appearing_is_not_stale(self, m):
        """A saved plan stays valid when only the state directory appeared (apply's lock creates it)."""
        snap = snapshot(x154_files(m))
        saved = load_saved_plan(json.dumps(plan_of(snap).as_dict()).encode(), "p")
        check_saved_plan(saved, plan_of(attrs.evolve(snap, state_dir=directory(STATE_DIR, 0o700))))

    @pytest.mark.parametrize(
        "edit",
        [
            pytest.param(lambda actions: actions[1:], id="action-dropped"),
            pytest.param(lambda actions: [dict(actions[0], mode="0666")] + actions[1:], id="mode-changed"),
            pytest.param(lambda actions: list(reversed(actions)), id="reordered"),
            pytest.param(
                lambda actions: actions + [{"action": "remove-temp", "path": "/etc/passwd"}], id="action-added"
            ),
        ],
    )
    def test_actions_edited(self, m, edit):
        """A saved plan whose actions differ from today's plan for the same node is plan-mismatch."""
        plan = plan_of(snapshot(x154_files(m)))
        saved = plan.as_dict()
        saved["actions"] = edit(saved["actions"])
        saved = load_saved_plan(json.dumps(saved).encode(), "p")
        with pytest.raises(PlanError) as info:
            check_saved_plan(saved, plan)
        assert info.value.id == "plan-mismatch"
