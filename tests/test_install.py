"""install-client: from condition 2 to every service active, each refusal, --plan-only, rollback, the journal.

Judged on disk (bytes, modes, owners, the file set), in pyfakefs and on a real
temporary directory, with real certificates from the test PKI.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime, timedelta

import pytest
from install_support import (
    CERTS,
    CLIENT,
    INPUT,
    INSTALL_JOURNAL,
    NOBODY,
    PFWD,
    PREVIOUS,
    STATE,
    cas,
    condition2,
    core_client,
    without_times,
    write_inputs,
)
from support import plant, scenario, state_of

from migrate import clientcert, clientstore, csr, writer  # noqa: F401 - loaded before pyfakefs starts
from migrate.install import InstallRequest
from migrate.scan import Layout
from migrate.testing.factory import issue, make_ca
from migrate.testing.pki import sign_csr
from migrate.testing.tree import Entry, diff_trees, read_tree


@pytest.fixture(params=["fake", "real"])
def base(request, tmp_path) -> str:
    """A directory for the nodes and the administrator's files: in pyfakefs, or a real temporary directory."""
    if request.param == "fake":
        request.getfixturevalue("fs")
        os.makedirs("/w")
        return "/w"
    return str(tmp_path)


def _services(run, core, edge, public) -> tuple[int, dict[str, str]]:
    code, out, err = run("assess", "--core", core, "--edge", edge, "--public-ca", public, "--format", "json")
    assert err == "" or "error" not in err, err
    return code, {s["id"]: s["status"] for s in json.loads(out)["services"]}


FIXED = ("uc-traversal-zone", "ssh-tunnels", "mra", "webrtc-proxy", "core-outbound-mtls")


class TestEndToEnd:
    def test_condition_2_goes_to_active_in_three_commands_and_back(self, run, base):
        """assess (failed) -> csr -> a CA1 signature -> install-client -> assess (active); rollback restores the exact tree."""
        public, private = cas()
        core, edge = f"{base}/core", f"{base}/edge"
        plant(condition2("core"), core)
        plant(condition2("edge"), edge)
        with open(f"{base}/public.pem", "wb") as out:
            out.write(public.cert_pem)
        code, before = _services(run, core, edge, f"{base}/public.pem")
        assert code == 1 and all(before[s] == "failed" for s in FIXED[:4]), before
        original = read_tree(core)

        code, out, err = run("csr", core, "--new-key", "rsa:4096", "--out", f"{base}/core.csr", "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        with open(f"{base}/core.key", "rb") as f:
            key = f.read()
        assert doc["key"] == f"{base}/core.key" and os.stat(doc["key"]).st_mode & 0o777 == 0o400
        with open(doc["csr"], "rb") as f:
            cert = sign_csr(private, f.read())
        with open(f"{base}/core.crt", "wb") as signed:
            signed.write(cert)

        code, out, err = run("install-client", core, "--cert", f"{base}/core.crt", "--key", doc["key"], "--peer", edge)
        assert code == 0, err
        body = b"".join(key.splitlines()[1:-1]).decode()
        assert body[:40] not in out + err and "PRIVATE KEY" not in out + err  # the key is never shown
        after = read_tree(core)
        certs = f"{CERTS}"
        assert after[f"{certs}/client.pem"] == Entry("file", 0o644, NOBODY, NOBODY, cert)
        assert after[f"{certs}/clientprivkey.pem"] == Entry("file", 0o440, 0, 0, key)
        # The SSH bundle in the layout of server-ssh.pem: the key, then the leaf.
        assert after[f"{certs}/client-ssh.pem"] == Entry("file", 0o600, PFWD, PFWD, key + cert)
        assert original[f"{certs}/server-ssh.pem"].data.startswith(b"-----BEGIN PRIVATE KEY-----")
        for name, rel in PREVIOUS.items():  # the previous client store, kept private to root
            assert after[rel] == Entry("file", 0o400, 0, 0, original[f"{certs}/{name}"].data), name
        assert (after[INSTALL_JOURNAL].mode, after[INSTALL_JOURNAL].uid) == (0o600, 0)
        assert after[STATE].mode == 0o700
        changed = {rel for rel in after if after[rel] != original.get(rel)}
        assert changed == {f"{certs}/{n}" for n in CLIENT} | set(PREVIOUS.values()) | {
            INSTALL_JOURNAL,
            STATE,
            f"{STATE}/lock",
        }
        assert state_of(core) == "client-installed"

        code, services = _services(run, core, edge, f"{base}/public.pem")
        assert code == 0 and all(services[s] == "active" for s in FIXED), services
        assert "failed" not in services.values()

        code, out, err = run("rollback", core)
        assert code == 0, err
        assert diff_trees(original, read_tree(core)) == []  # bytes, modes, owners, file set: no state dir left

    def test_reuse_key_needs_no_key_file_and_plan_only_writes_nothing(self, run, base):
        """A request made with --reuse-key installs without --key; --plan-only before it replaces the certificate and the bundle
        (the key is already in place) and changes nothing."""
        core = f"{base}/core"
        plant(condition2("core"), core)
        code, out, err = run("csr", core, "--reuse-key", "--out", f"{base}/r.csr", "--format", "json")
        assert code == 0 and json.loads(out)["key"] is None and not os.path.exists(f"{base}/r.key"), err
        with open(f"{base}/r.csr", "rb") as f, open(f"{base}/r.crt", "wb") as signed:
            signed.write(sign_csr(cas()[1], f.read()))
        before = read_tree(core)
        code, out, _ = run("install-client", core, "--cert", f"{base}/r.crt", "--plan-only", "--format", "json")
        doc = json.loads(out)
        assert code == 0 and doc["result"] == "planned"
        assert [(a["action"], a["path"]) for a in doc["actions"]] == [
            ("replace-file", f"{CERTS}/client.pem"),
            ("replace-file", f"{CERTS}/client-ssh.pem"),
        ]
        assert diff_trees(before, read_tree(core)) == []
        assert run("install-client", core, "--cert", f"{base}/r.crt")[0] == 0
        after = read_tree(core)
        assert after[f"{CERTS}/clientprivkey.pem"].data == before[f"{CERTS}/privkey.pem"].data
        assert after[f"{CERTS}/client.pem"].data != before[f"{CERTS}/client.pem"].data
        code, out, _ = run("install-client", core, "--cert", f"{base}/r.crt", "--format", "json")
        assert code == 0 and json.loads(out)["result"] == "already-installed"


def _now():
    return datetime.now(UTC)


def _case(name: str):
    """(cert PEM, key PEM) of each refusal, with the id it must carry."""
    public, private = cas()
    good = core_client()
    if name == "install-no-client-auth":
        ident = core_client(eku=("serverAuth",))
    elif name == "install-key-mismatch":
        return good.cert_pem, core_client("rsa2048").key_pem()
    elif name == "install-chain-untrusted":
        ident = issue(make_ca("Rogue CA"), "core.example.com")
    elif name == "install-names-missing":
        ident = issue(private, "other.example.com")
    elif name == "install-cert-expired":
        ident = issue(private, "core.example.com", not_before=_now() - timedelta(days=400), not_after=_now() - timedelta(days=1))
    elif name == "install-cert-expiring":
        ident = issue(private, "core.example.com", not_after=_now() + timedelta(days=10))
    elif name == "key-encrypted":
        return good.cert_pem, good.key_pem(password=b"secret")
    elif name in ("install-key-unsupported-dsa", "install-key-unsupported-ed25519"):
        ident = core_client("dsa2048" if name.endswith("dsa") else "ed25519")
    else:  # pragma: no cover
        raise ValueError(name)
    return ident.cert_pem, ident.key_pem()


REFUSALS = [
    "install-no-client-auth",
    "install-key-mismatch",
    "install-chain-untrusted",
    "install-names-missing",
    "install-cert-expired",
    "install-cert-expiring",
    "key-encrypted",
    "install-key-unsupported-dsa",
    "install-key-unsupported-ed25519",
]


class TestRefusals:
    @pytest.mark.parametrize("name", REFUSALS)
    def test_each_refusal_is_one_line_with_its_id_and_the_node_untouched(self, run, fs, name):
        """Each broken identity exits 1 with error[id] (stable, kebab-case), no traceback, and the node unchanged."""
        plant(condition2("core"), "/n")
        request = write_inputs(INPUT, *_case(name))
        before = read_tree("/n")
        code, out, err = run("install-client", "/n", "--cert", request.cert, "--key", request.key)
        wanted = name.removesuffix("-dsa").removesuffix("-ed25519")
        assert code == 1 and out == ""
        assert err.startswith(f"error[{wanted}]:") and err.count("\n") == 1 and "Traceback" not in err, err
        assert diff_trees(before, read_tree("/n")) == []
        code, out, _ = run("install-client", "/n", "--cert", request.cert, "--key", request.key, "--plan-only", "--format", "json")
        if wanted != "key-encrypted":  # the plan names the same blocker and no action
            doc = json.loads(out)
            assert code == 1 and doc["result"] == "refused" and doc["actions"] == []
            assert wanted in [f["id"] for f in doc["findings"] if f["severity"] == "blocker"]

    def test_an_x154_node_is_refused(self, run, fs):
        """install-client on an X15.4 node (no client store) is install-not-x155 and changes nothing."""
        plant(scenario("core"), "/n")
        request = write_inputs(INPUT, core_client().cert_pem, core_client().key_pem())
        before = read_tree("/n")
        code, _, err = run("install-client", "/n", "--cert", request.cert, "--key", request.key)
        assert code == 1 and err.startswith("error[install-not-x155]:"), err
        assert diff_trees(before, read_tree("/n")) == []

    def test_an_unreadable_input_is_one_line(self, run, fs):
        """A --cert that does not exist is install-input-unreadable, not a traceback."""
        plant(condition2("core"), "/n")
        code, _, err = run("install-client", "/n", "--cert", "/nowhere.pem")
        assert code == 1 and err.startswith("error[install-input-unreadable]:") and err.count("\n") == 1, err

    def test_a_second_install_is_refused_until_rollback(self, run, fs):
        """Over an install, another identity is install-present; rollback first, then it installs."""
        plant(condition2("core"), "/n")
        first = write_inputs(INPUT, core_client().cert_pem, core_client().key_pem())
        assert run("install-client", "/n", "--cert", first.cert, "--key", first.key)[0] == 0
        other = core_client("ec384")
        second = write_inputs("/in2", other.cert_pem, other.key_pem())
        installed = read_tree("/n")
        code, _, err = run("install-client", "/n", "--cert", second.cert, "--key", second.key)
        assert code == 1 and err.startswith("error[install-present]:"), err
        assert diff_trees(installed, read_tree("/n")) == []
        assert run("rollback", "/n")[0] == 0
        assert run("install-client", "/n", "--cert", second.cert, "--key", second.key)[0] == 0
        assert read_tree("/n")[f"{CERTS}/client.pem"].data == other.cert_pem


class TestServerCopy:
    def test_server_copy_installs_the_server_identity_and_states_the_consequence(self, run, fs):
        """--server-copy replaces a CA1 client store with exact copies of the server store, with a warning naming the consequence."""
        tree = dict(condition2("core"))
        ident = core_client()
        for name, data in (("client.pem", ident.cert_pem), ("clientprivkey.pem", ident.key_pem()), ("client-ssh.pem", ident.bundle_pem())):
            rel = f"{CERTS}/{name}"
            tree[rel] = Entry("file", tree[rel].mode, tree[rel].uid, tree[rel].gid, data)
        plant(tree, "/n")
        code, out, err = run("install-client", "/n", "--server-copy", "--format", "json")
        assert code == 0, err
        doc = json.loads(out)
        assert doc["server_copy"] and "client-EKU check off" in doc["consequence"]
        assert "install-server-copy" in [f["id"] for f in doc["findings"]]
        after = read_tree("/n")
        for name, (mode, counterpart) in CLIENT.items():
            source = after[f"{CERTS}/{counterpart}"]
            assert after[f"{CERTS}/{name}"] == Entry("file", mode, source.uid, source.gid, source.data), name
        assert run("rollback", "/n")[0] == 0
        assert diff_trees(tree, {k: v for k, v in read_tree("/n").items()}) == []

    def test_server_copy_with_a_cert_is_a_usage_error(self, run, fs):
        """--server-copy and --cert together exit 2 (usage)."""
        plant(condition2("core"), "/n")
        assert run("install-client", "/n", "--server-copy", "--cert", "/x")[0] == 2


class TestRollbackOrder:
    def test_rollback_undoes_the_install_first_then_the_migration(self, run, fs):
        """On a node this tool migrated, the first rollback restores the migrated client store, the second the X15.4 node."""
        plant(scenario("core"), "/n")
        x154 = read_tree("/n")
        assert run("apply", "/n")[0] == 0
        migrated = read_tree("/n")
        public, private = cas()
        ident = issue(private, "core.example.com")  # the sample Core's own CA is another internal CA: trust CA1 too
        ca = migrated[f"{CERTS}/ca.pem"]
        with open(f"/n/{CERTS}/ca.pem", "ab") as out:
            out.write(private.cert_pem)
        migrated = read_tree("/n")
        request = write_inputs(INPUT, ident.cert_pem, ident.key_pem())
        assert run("install-client", "/n", "--cert", request.cert, "--key", request.key)[0] == 0
        assert state_of("/n") == "client-installed"
        assert run("rollback", "/n")[0] == 0
        assert diff_trees(without_times(migrated), without_times(read_tree("/n"))) == []
        assert state_of("/n") == "x15.5"
        with open(f"/n/{CERTS}/ca.pem", "wb") as out:  # the X15.4 files as they were
            out.write(ca.data)
        assert run("rollback", "/n")[0] == 0
        assert diff_trees(x154, read_tree("/n")) == []


class TestJournal:
    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("path", "/etc/shadow"),
            ("path", "persistent/certs/server.pem"),
            ("mode", "0666"),
            ("uid", 4242),
            ("previous", {"sha256": "0" * 64, "mode": "0777", "uid": 0, "gid": 0}),
            ("extra", 1),
        ],
    )
    def test_a_forged_install_journal_is_refused_and_nothing_is_touched(self, run, fs, field, value):
        """A journal naming a path, mode or owner the policy does not allow is install-journal-invalid: rollback refuses, precheck blocks."""
        plant(condition2("core"), "/n")
        request = write_inputs(INPUT, core_client().cert_pem, core_client().key_pem())
        assert run("install-client", "/n", "--cert", request.cert, "--key", request.key)[0] == 0
        with open(f"/n/{INSTALL_JOURNAL}") as f:
            doc = json.load(f)
        doc["actions"][1][field] = value
        with open(f"/n/{INSTALL_JOURNAL}", "w") as f:
            json.dump(doc, f)
        before = read_tree("/n")
        code, _, err = run("rollback", "/n")
        assert code == 1 and err.startswith("error[install-journal-invalid]:"), err
        assert diff_trees(before, read_tree("/n")) == []
        code, out, _ = run("precheck", "/n", "--format", "json")
        assert code == 1 and "install-journal-invalid" in [f["id"] for f in json.loads(out)["findings"]]
        assert state_of("/n") == "install-interrupted"


def test_install_request_is_a_value():
    """An InstallRequest holds paths, never contents (it can be logged)."""
    request = InstallRequest(cert="/a", key="/b")
    assert "key_pem" not in repr(request) and request.server_copy is False


def test_the_candidate_never_shows_its_key(fs):
    """The candidate's repr holds no key material (its PEM fields are hidden)."""
    plant(condition2("core"), "/n")
    request = write_inputs(INPUT, core_client().cert_pem, core_client().key_pem())
    plan = clientcert.read_plan(Layout.for_node("/n"), request)
    body = core_client().key_pem().splitlines()[1].decode()
    assert plan.contents and any(body.encode() in data for data in plan.contents.values())  # it is there ...
    for shown in (repr(plan), repr(plan.candidate), json.dumps(plan.candidate.summary())):
        assert body not in shown and "PRIVATE KEY" not in shown  # ... and never shown
