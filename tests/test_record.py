"""The journal as a typed record: every field validated against the layout, bounded in size, reversed exactly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from migrate import policy, record
from migrate.actions import AddSetting, CreateFile, RemoveFile, RestoreConfig, RetireSetting
from migrate.scan import Layout

LAYOUT = Layout.for_node("/srv/node")
CERTS = "persistent/certs"
CONFIG = "persistent/xconfiguration.txt"
SHA = "a" * 64
SHA2 = "b" * 64
DIGESTS = {"sha256_before": SHA, "sha256_after": SHA2}


def create(name: str = "clientprivkey.pem", **over) -> dict:
    counterpart = policy.RULES[name].counterpart
    entry = {
        "action": "create-file",
        "path": f"{CERTS}/{name}",
        "source": f"{CERTS}/{counterpart}",
        "mode": f"{policy.RULES[name].mode:04o}",
        "uid": 0,
        "gid": 0,
        "sha256": SHA,
        "done": True,
    }
    return {**entry, **over}


def retire(**over) -> dict:
    entry = {
        "action": "retire-setting",
        "path": CONFIG,
        "setting": policy.RETIRED_SETTING,
        "old_value": "On",
        "line": 3,
        "done": True,
    }
    return {**entry, **over}


def add(**over) -> dict:
    entry = {
        "action": "add-setting",
        "path": CONFIG,
        "setting": policy.CHECKING_SETTING,
        "value": policy.CHECKING_DEFAULT,
        "done": False,
    }
    return {**entry, **over}


def journal(actions=(), config=None, **over) -> dict:
    """A journal document; its configuration record is there when ``config`` says, else when it edits the config."""
    if config is None:
        config = isinstance(actions, list | tuple) and any(a.get("action") != "create-file" for a in actions)
    doc = {
        "format_version": record.FORMAT_VERSION,
        "tool": "expressway-migrate 0.1.0",
        "state": "applying",
        "started": "2026-11-29T10:00:00+00:00",
        "fingerprint": "sha256:" + SHA,
        "config": config if isinstance(config, dict) else (DIGESTS if config else None),
        "actions": list(actions) if isinstance(actions, list | tuple) else actions,
    }
    return {**doc, **over}


def load(doc, layout: Layout = LAYOUT) -> record.Journal:
    return record.load(json.dumps(doc).encode(), layout)


class TestLoad:
    def test_valid_journal_round_trips(self):
        """A journal this tool writes loads into the plan's own action values and writes back the same document."""
        doc = journal([create(), create("client.pem", mode="0644", uid=4001, gid=4001), retire(), add()])
        loaded = load(doc)
        assert [type(e.action) for e in loaded.entries] == [CreateFile, CreateFile, RetireSetting, AddSetting]
        assert loaded.as_dict() == doc

    @pytest.mark.parametrize(
        "doc, reason",
        [
            pytest.param(journal([create(path="/tmp/victim/file")]), "not a client file", id="absolute-path"),
            pytest.param(journal([create(path="../../victim/file")]), "not a client file", id="dotdot-path"),
            pytest.param(journal([create(path=f"{CERTS}/../../x")]), "not a client file", id="dotdot-inside"),
            pytest.param(journal([create(path=f"{CERTS}/ca.pem")]), "not a client file", id="unmanaged-file"),
            pytest.param(journal([create(path=f"{CERTS}/server.pem")]), "not a client file", id="server-file"),
            pytest.param(journal([create(source="/etc/shadow")]), "not its counterpart", id="foreign-source"),
            pytest.param(journal([create(sha256=5)]), "sha256", id="digest-not-text"),
            pytest.param(journal([create(sha256="x" * 64)]), "sha256", id="digest-not-hex"),
            pytest.param(journal([create(mode="4777")]), "wider", id="setuid-mode"),
            pytest.param(journal([create(mode=420)]), "octal", id="mode-not-text"),
            pytest.param(journal([create(uid=-1)]), "uid", id="negative-uid"),
            pytest.param(journal([create(uid=True)]), "uid", id="bool-uid"),
            pytest.param(journal([create(done="yes")]), "done", id="done-not-bool"),
            pytest.param(journal([create(extra=1)]), "never writes", id="extra-action-field"),
            pytest.param(journal([{k: v for k, v in create().items() if k != "sha256"}]), "lacks", id="missing-field"),
            pytest.param(journal([retire(path="/etc/passwd")]), "configuration", id="retire-foreign-file"),
            pytest.param(journal([retire(setting="Other Setting")]), "another setting", id="retire-other-setting"),
            pytest.param(journal([retire(old_value="x" * 1000)]), "short text", id="retire-long-value"),
            pytest.param(journal([retire(line=0)]), "line", id="retire-line-zero"),
            pytest.param(journal([add(value="Off")]), "never adds", id="add-off"),
            pytest.param(journal([{"action": "remove-file", "path": "/x", "done": True}]), "never journals", id="kind"),
            pytest.param(journal([create(), create()]), "twice", id="duplicate"),
            pytest.param(journal([create()], config=True), "disagree", id="config-record-without-actions"),
            pytest.param(journal([retire()], config=False), "disagree", id="config-actions-without-record"),
            pytest.param(journal(actions={}), "not a list", id="actions-object"),
            pytest.param(journal(format_version=3), "format version", id="version-3"),
            pytest.param(journal(format_version=2.0), "format version", id="version-float"),
            pytest.param(journal(state="done"), "state", id="state"),
            pytest.param(journal(fingerprint="sha256:xyz"), "fingerprint", id="fingerprint"),
            pytest.param(journal(started="yesterday"), "date", id="started"),
            pytest.param(journal(config={"sha256_before": SHA, "sha256_after": SHA2, "mode": "4777"}), "never writes",
                         id="config-mode"),
            pytest.param(journal(config={"sha256_before": SHA, "sha256_after": SHA2, "uid": 65534}), "never writes",
                         id="config-owner"),
            pytest.param(journal(config={"sha256_before": SHA}), "lacks", id="config-incomplete"),
            pytest.param(journal(path="/"), "never writes", id="extra-top-field"),
            pytest.param([1, 2], "not an object", id="not-an-object"),
        ],
    )  # fmt: skip
    def test_refused(self, doc, reason):
        """A journal naming anything the layout does not manage, or with a wrong type or field, is refused whole."""
        with pytest.raises(record.Invalid) as caught:
            load(doc)
        assert reason in str(caught.value)

    def test_refusal_never_quotes_a_path(self):
        """The reason for a refused path does not repeat it, so the error cannot confirm what exists elsewhere."""
        with pytest.raises(record.Invalid) as caught:
            load(journal([create(path="/root/.ssh/id_rsa")]))
        assert "/root" not in str(caught.value)

    @pytest.mark.parametrize("data", [None, b"", b"\xff{", b"[" * 100000, b"{" + b" " * (policy.MAX_JOURNAL_BYTES + 1)])
    def test_unreadable_bytes(self, data):
        """Missing, non-JSON, absurdly nested or over-long bytes are refused with a reason, never an exception."""
        with pytest.raises(record.Invalid):
            record.load(data, LAYOUT)

    def test_paths_follow_the_layout(self):
        """With --cert-dir outside the node, the journal's paths are that layout's: the default ones are refused."""
        outside = Layout.for_node("/srv/node", cert_dir="/etc/certs")
        inside = journal([create()], config=False)
        with pytest.raises(record.Invalid):
            load(inside, outside)
        moved = journal(
            [create(path="/etc/certs/clientprivkey.pem", source="/etc/certs/privkey.pem")], config=False
        )
        assert load(moved, outside).created()[0].path == "/etc/certs/clientprivkey.pem"


class TestUndo:
    def test_reverses_every_entry_newest_first(self):
        """Rollback's steps are the reverses of the entries, newest first, with the configuration restored once."""
        loaded = load(journal([create("client.pem", mode="0644"), create(done=False), retire(), add()]))
        assert loaded.undo() == (
            RestoreConfig(path=CONFIG),
            RemoveFile(path=f"{CERTS}/clientprivkey.pem", sha256=SHA),
            RemoveFile(path=f"{CERTS}/client.pem", sha256=SHA),
        )

    def test_resume_adds_only_new_entries(self):
        """A resumed apply adds the actions the journal does not hold yet, so a journal never grows with retries."""
        loaded = load(journal([create(done=False)], config=False))
        again = loaded.with_entries([loaded.entries[0].action, loaded.entries[0].action])
        assert again.entries == loaded.entries


class TestSize:
    def test_largest_journal_fits_the_reader(self):
        """The largest journal a migration can write (three files, the most retired lines) is under the reader's cap."""
        creates = [
            create(name, mode=f"{policy.RULES[name].mode:04o}", uid=2**32 - 2, gid=2**32 - 2, done=False)
            for name in ("client.pem", "clientprivkey.pem", "client-ssh.pem")
        ]
        worst_value = "\x01" * policy.MAX_SHOWN_VALUE + "\u2026"  # every character escaped in JSON
        retired = [
            retire(line=policy.MAX_CONFIG_BYTES - n, old_value=worst_value, setting=policy.RETIRED_SETTING.upper())
            for n in range(policy.MAX_RETIRED_LINES)
        ]
        # The longest paths Linux allows (PATH_MAX 4096), for the node, the --cert-dir and the --config.
        cert_dir, config = "/" + "c" * 4000, "/" + "f" * 4000
        long_layout = Layout.for_node("/" + "n" * 4000, cert_dir=cert_dir, config=config)
        creates = [
            dict(c, path=f"{cert_dir}/{Path(c['path']).name}", source=f"{cert_dir}/{Path(c['source']).name}")
            for c in creates
        ]
        retired = [dict(r, path=config) for r in retired]
        added = add(path=config)
        loaded = load(journal(creates + retired + [added], finished="2026-11-29T10:00:00+00:00"), long_layout)
        assert len(loaded.to_bytes()) <= policy.MAX_JOURNAL_BYTES


class TestFormatOne:
    def test_journal_of_0_1_0_still_loads(self):
        """A format-1 journal (0.1.0) loads: config mode and owner and staging removals dropped, repeats merged."""
        doc = journal(
            [
                {"action": "remove-temp", "path": f"{CERTS}/.client.pem.cert-migration.tmp", "done": True},
                create(done=False),
                create(done=True),
                retire(old_value="\x01" * 1000),
            ],
            format_version=1,
            config={"path": CONFIG, "sha256_before": SHA, "sha256_after": SHA2, "mode": "0644", "uid": 0, "gid": 0},
        )
        loaded = load(doc)
        assert [(type(e.action), e.done) for e in loaded.entries] == [(CreateFile, True), (RetireSetting, True)]
        assert loaded.entries[1].action.old_value == "\x01" * policy.MAX_SHOWN_VALUE + "\u2026"
        assert loaded.config == record.ConfigRecord(SHA, SHA2)

    def test_format_one_is_validated_too(self):
        """A format-1 journal naming a path outside the layout is refused like any other."""
        doc = journal([create(path="/etc/passwd")], format_version=1, config=False)
        with pytest.raises(record.Invalid):
            load(doc)
        other = {"path": "/etc/passwd", "sha256_before": SHA, "sha256_after": SHA2, "mode": "4777", "uid": 0, "gid": 0}
        with pytest.raises(record.Invalid):
            load(journal([retire()], format_version=1, config=other))
