"""Tests for migrate.assess: will the Core/Edge services still work after the upgrade.

Each scenario of DOMAIN.md ("Observed outcomes" 1-5) is built as two real nodes with
``factory.build_node``; the pure ``assess`` is judged at a fixed moment, and ``cli.main``
runs the same scenarios end to end and is judged by its JSON and exit code.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest

from migrate import facts, policy
from migrate.assess import assess, client_auth_cutoff
from migrate.certs import load_ca_bundle
from migrate.cli import main
from migrate.scan import Layout, scan
from migrate.testing.factory import NodeSpec, build_node, issue, make_ca

NOW = datetime(2026, 6, 1, tzinfo=UTC)
CA_DATES = dict(
    not_before=datetime(2025, 1, 1, tzinfo=UTC), not_after=datetime(2040, 1, 1, tzinfo=UTC)
)
LEAF_DATES = dict(
    not_before=datetime(2026, 1, 1, tzinfo=UTC), not_after=datetime(2029, 1, 1, tzinfo=UTC)
)
BOTH, SERVER_ONLY, CLIENT_ONLY = ["serverAuth", "clientAuth"], ["serverAuth"], ["clientAuth"]
CHECKING = policy.CHECKING_SETTING
CERTS = policy.CERT_DIR


@pytest.fixture(scope="module")
def ca1():
    return make_ca("Example Internal CA1", **CA_DATES)


@pytest.fixture(scope="module")
def ca2():
    return make_ca("Example Public CA2", public=True, **CA_DATES)


def cert(ca, role, eku=BOTH, dates=LEAF_DATES):
    """A leaf for the Core or the Edge, valid around NOW unless told (``dates={}``: around the real now)."""
    return issue(ca, f"{role}.example.com", eku=eku, **dates)


def node(tmp_path, role, identity, trusted, *, checking=None, client="absent", client_identity=None):
    """Build a node; ``client_identity`` gives an X15.5 node its own client store."""
    settings = {CHECKING: f'"{checking}"'} if checking else {}
    if client_identity is not None:
        client = "migrated"
    root = build_node(
        tmp_path / role,
        NodeSpec(role=role, identity=identity, trusted=trusted, settings=settings, client=client, chown=False),
    )
    if client_identity is not None:
        certs = root / CERTS
        (certs / "client.pem").write_bytes(client_identity.chain_pem)
        (certs / "clientprivkey.pem").write_bytes(client_identity.key_pem())
        (certs / "client-ssh.pem").write_bytes(client_identity.bundle_pem())
    return root


def analysed(root, now=NOW):
    return facts.analyse(scan(Layout.for_node(root), now=now))


def judge(core, edge, public=(), **kw):
    """The assessment of two built nodes at NOW, with ``public`` CAs."""
    cas = tuple(c for ca in public for c in load_ca_bundle(ca.cert_pem))
    return assess(analysed(core), analysed(edge), public_cas=cas, public_source="test", now=NOW, **kw)


def statuses(result):
    return {s.id: s.status for s in result.services}


def run_cli(tmp_path, core, edge, public, *extra):
    """``main(["assess", ...])`` with JSON output: (exit code, document)."""
    ca_file = tmp_path / "public.pem"
    ca_file.write_bytes(b"".join(ca.cert_pem for ca in public))
    return main(["assess", "--core", str(core), "--edge", str(edge), "--public-ca", str(ca_file), *extra])


@pytest.fixture
def cli_json(tmp_path, capsys):
    def go(core, edge, public, *extra):
        code = run_cli(tmp_path, core, edge, public, "--format", "json", *extra)
        return code, json.loads(capsys.readouterr().out)

    return go


class TestObservedOutcomes:
    def test_x154_is_assessed_as_its_migrated_copy(self, tmp_path, ca1, ca2):
        """Outcome 1: an X15.4 pair gives the same verdicts as the same pair just upgraded (stores identical)."""
        core_id, edge_id = cert(ca2, "core", SERVER_ONLY), cert(ca2, "edge", SERVER_ONLY)
        old = judge(node(tmp_path / "a", "core", core_id, [ca2]), node(tmp_path / "a", "edge", edge_id, [ca2]), [ca2])
        new = judge(
            node(tmp_path / "b", "core", core_id, [ca2], client="migrated"),
            node(tmp_path / "b", "edge", edge_id, [ca2], client="migrated"),
            [ca2],
        )
        assert [n.state for n in old.nodes] == ["x15.4", "x15.4"]
        assert [n.state for n in new.nodes] == ["x15.5", "x15.5"]
        assert [s.as_dict() for s in old.services] != [] and statuses(old) == statuses(new)
        planned = {c["id"]: c["read_from"] for c in old.certificates}
        assert planned["core:client.pem"] == "server.pem" and planned["core:client-ssh.pem"] == "server-ssh.pem"

    def test_all_public_server_only_checking_on_fails_zone(self, tmp_path, ca2):
        """Outcome 2, Edge checking On: the traversal zone, tunnels, MRA and WebRTC fail on the Core's client cert."""
        result = judge(
            node(tmp_path, "core", cert(ca2, "core", SERVER_ONLY), [ca2]),
            node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY), [ca2], checking="On"),
            [ca2],
        )
        got = statuses(result)
        assert [got[s] for s in ("uc-traversal-zone", "ssh-tunnels", "mra", "webrtc-proxy")] == ["failed"] * 4
        zone = result.service("uc-traversal-zone")
        assert zone.certificates == ("core:client.pem",) and "clientAuth" in zone.reason
        assert "private CA" in zone.fix
        assert result.failed

    def test_all_public_server_only_checking_off_still_fails_tunnels(self, tmp_path, ca2):
        """Outcome 2, Edge checking Off: the zone comes up, but the SSH tunnels fail, so MRA and WebRTC fail."""
        result = judge(
            node(tmp_path, "core", cert(ca2, "core", SERVER_ONLY), [ca2]),
            node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY), [ca2], checking="Off"),
            [ca2],
        )
        got = statuses(result)
        assert got["uc-traversal-zone"] == "active"
        assert (got["ssh-tunnels"], got["mra"], got["webrtc-proxy"]) == ("failed", "failed", "failed")
        ssh = result.service("ssh-tunnels")
        assert ssh.certificates == ("core:client-ssh.pem",)
        assert "turning EKU checking off is not a fix" in ssh.fix and "private CA" in ssh.fix
        assert "core:client-ssh.pem" in result.service("mra").certificates

    @pytest.mark.parametrize("checking", ["On", "Off"])
    def test_private_core_client_cert_succeeds(self, tmp_path, ca1, ca2, checking):
        """Outcome 3: a Core client cert from CA1 with both EKUs brings zone, tunnels and MRA up in either mode."""
        core = node(
            tmp_path, "core", cert(ca2, "core", SERVER_ONLY), [ca1, ca2], client_identity=cert(ca1, "core", BOTH)
        )
        edge = node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY), [ca1, ca2], checking=checking)
        result = judge(core, edge, [ca2])
        got = statuses(result)
        assert [got[s] for s in ("uc-traversal-zone", "ssh-tunnels", "mra", "webrtc-proxy")] == ["active"] * 4
        assert got["core-outbound-mtls"] == "active" and got["mra-client-trust"] == "active"
        assert got["edge-outbound-mtls"] == "at-risk"  # the Edge's public server-only client copy (outcome 5)
        assert not result.failed  # DOMAIN.md calls this setup a success

    def test_all_private_works_but_remote_parties_must_trust_ca1(self, tmp_path, ca1, ca2):
        """Outcome 4: all certs from CA1 work between the nodes; MRA clients and remote peers are at risk."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", BOTH), [ca1])
        result = judge(core, edge, [ca2])
        got = statuses(result)
        assert [got[s] for s in ("uc-traversal-zone", "ssh-tunnels", "mra", "webrtc-proxy")] == ["active"] * 4
        assert got["mra-client-trust"] == "at-risk" and got["edge-outbound-mtls"] == "at-risk"
        assert not result.failed

    def test_all_private_exits_zero_through_cli(self, tmp_path, ca1, ca2, cli_json):
        """Outcome 4 through ``main``: at-risk services alone exit 0, and MRA client trust names the Edge's cert."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH, dates={}), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", BOTH, dates={}), [ca1])
        code, doc = cli_json(core, edge, [ca2])
        assert code == 0 and doc["ok"] is True
        trust = next(s for s in doc["services"] if s["id"] == "mra-client-trust")
        assert trust["certificates"] == ["edge:server.pem"] and "public CA" in trust["reason"]

    def test_edge_server_only_copy_breaks_outbound_mtls(self, tmp_path, ca1, ca2):
        """Outcome 5: the Edge's public server-only cert copied to its client store puts mTLS to Webex at risk: the remote decides."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH), [ca1, ca2], client="migrated")
        edge = node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY), [ca1, ca2], client="migrated")
        result = judge(core, edge, [ca2])
        outbound = result.service("edge-outbound-mtls")
        assert outbound.status == "at-risk" and outbound.certificates == ("edge:client.pem",)
        assert "client-EKU check off" in outbound.fix
        assert statuses(result)["uc-traversal-zone"] == "active"


class TestCertificateProblems:
    def test_edge_does_not_trust_core_issuer(self, tmp_path, ca1, ca2):
        """An Edge whose ca.pem lacks the Core's issuer fails the zone and tunnels, naming the cert and ca.pem."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH), [ca1, ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", BOTH), [ca2])
        result = judge(core, edge, [ca2])
        zone = result.service("uc-traversal-zone")
        assert zone.status == "failed" and zone.certificates == ("core:client.pem",)
        assert "ca.pem" in zone.reason and "Example Internal CA1" in zone.reason
        assert "Edge's ca.pem" in zone.fix
        assert statuses(result)["ssh-tunnels"] == "failed"

    def test_core_does_not_trust_edge_issuer(self, tmp_path, ca1, ca2):
        """A Core that does not trust the Edge's issuer fails the zone on the Edge's server certificate."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH), [ca1])
        edge = node(tmp_path, "edge", cert(ca2, "edge", BOTH), [ca1, ca2])
        zone = judge(core, edge, [ca2]).service("uc-traversal-zone")
        assert zone.status == "failed" and zone.certificates == ("edge:server.pem",)
        assert "Core's ca.pem" in zone.fix

    def test_expired_core_certificate_fails(self, tmp_path, ca1):
        """An expired Core certificate fails every service it is presented in, with its expiry date."""
        old = dict(
            not_before=datetime(2025, 1, 1, tzinfo=UTC), not_after=datetime(2026, 3, 1, tzinfo=UTC)
        )
        core = node(tmp_path, "core", cert(ca1, "core", BOTH, old), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", BOTH), [ca1])
        result = judge(core, edge, [])
        zone = result.service("uc-traversal-zone")
        assert zone.status == "failed" and "expired on 2026-03-01" in zone.reason and "renew" in zone.fix
        assert statuses(result)["core-outbound-mtls"] == "failed"

    def test_no_eku_extension_is_good_for_both(self, tmp_path, ca1):
        """Certificates without an EKU extension are unrestricted: zone, tunnels and outbound mTLS all pass."""
        core = node(tmp_path, "core", cert(ca1, "core", None), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", None), [ca1], checking="On")
        got = statuses(judge(core, edge, []))
        assert all(got[s] == "active" for s in policy_ids()), got

    @pytest.mark.parametrize(("checking", "zone"), [("On", "active"), ("Off", "failed")])
    def test_checking_off_still_checks_server_auth(self, tmp_path, ca1, checking, zone):
        """With checking Off the Edge still wants serverAuth where an EKU exists: a clientAuth-only cert then fails."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH), [ca1], client_identity=cert(ca1, "core", CLIENT_ONLY))
        edge = node(tmp_path, "edge", cert(ca1, "edge", BOTH), [ca1], checking=checking)
        result = judge(core, edge, [])
        assert statuses(result)["uc-traversal-zone"] == zone
        assert statuses(result)["ssh-tunnels"] == "active"
        assert result.nodes[1].checking_on is (checking == "On")

    def test_outbound_cert_without_client_auth_is_at_risk_whoever_issued_it(self, tmp_path, ca1):
        """An Edge client cert without clientAuth puts outbound mTLS at risk, named, even when no public CA issued it."""
        core = node(tmp_path, "core", cert(ca1, "core", BOTH), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", SERVER_ONLY), [ca1])
        outbound = judge(core, edge, []).service("edge-outbound-mtls")
        assert outbound.status == "at-risk" and outbound.certificates == ("edge:client.pem",)
        assert "clientAuth" in outbound.reason


def policy_ids():
    return [s.id for s in policy.SERVICES if s.id not in ("edge-outbound-mtls", "mra-client-trust")]


class TestPublicCutoff:
    def test_public_client_auth_cert_is_at_risk_with_date(self, tmp_path, ca2):
        """A public cert that carries clientAuth today is at risk, with the cut-off date and its break date, wherever relied on.

        An unknown public CA gets the earliest known cut-off (never the latest), already past on NOW, so the
        certificate breaks when it expires.
        """
        core = node(tmp_path, "core", cert(ca2, "core", BOTH), [ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", BOTH), [ca2], checking="On")
        result = judge(core, edge, [ca2])
        got = statuses(result)
        assert (got["uc-traversal-zone"], got["ssh-tunnels"], got["mra"]) == ("at-risk", "at-risk", "at-risk")
        assert not result.failed
        assert policy.UNKNOWN_CA_CUTOFF in result.service("ssh-tunnels").reason
        assert result.service("ssh-tunnels").breaks_on == date(2029, 1, 1)
        cutoffs = {f.path: f.message for f in result.findings if f.id == "client-auth-cutoff"}
        assert set(cutoffs) == {"core:client.pem", "core:client-ssh.pem", "edge:client.pem"}
        assert all(policy.UNKNOWN_CA_CUTOFF in m and "has passed" in m for m in cutoffs.values())

    def test_checking_off_zone_does_not_rely_on_client_auth(self, tmp_path, ca2):
        """With the Edge's checking Off only the tunnels rely on clientAuth: the zone stays active."""
        core = node(tmp_path, "core", cert(ca2, "core", BOTH), [ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", BOTH), [ca2], checking="Off")
        got = statuses(judge(core, edge, [ca2]))
        assert (got["uc-traversal-zone"], got["ssh-tunnels"]) == ("active", "at-risk")

    def test_cutoff_override(self, tmp_path, ca2):
        """``cutoff`` replaces every public CA's date in the verdicts and the certificate list."""
        core = node(tmp_path, "core", cert(ca2, "core", BOTH), [ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", BOTH), [ca2])
        result = judge(core, edge, [ca2], cutoff=date(2026, 9, 1))
        assert "2026-09-01" in result.service("ssh-tunnels").reason
        assert {c["client_auth_cutoff"] for c in result.certificates} == {"2026-09-01"}

    @pytest.mark.parametrize(
        ("orgs", "expected"),
        [
            (["DigiCert Inc"], "2027-03-01"),  # ALERT53 (modified 2026-03-03), not 2027-03-15
            (["Sectigo Limited"], "2026-05-15"),
            (["Let's Encrypt", "Internet Security Research Group"], "2026-02-11"),
            (["Example Public Trust"], policy.UNKNOWN_CA_CUTOFF),
        ],
    )
    def test_cutoff_by_organisation(self, orgs, expected):
        """The cut-off is matched on the issuer organisation, the earliest known date for an unknown public CA."""
        assert client_auth_cutoff(orgs) == date.fromisoformat(expected)

    def test_empty_public_list_is_said(self, tmp_path, ca1):
        """With no public CA, a finding says so and MRA client trust is at risk."""
        core = node(tmp_path, "core", cert(ca1, "core"), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge"), [ca1])
        result = judge(core, edge, [])
        assert "public-ca-list-empty" in {f.id for f in result.findings}
        assert statuses(result)["mra-client-trust"] == "at-risk"


class TestCli:
    def test_json_contract_and_failure_exit(self, tmp_path, ca2, cli_json):
        """Outcome 2 through ``main``: exit 1, the stable JSON keys, and every non-active service names cert and fix."""
        core = node(tmp_path, "core", cert(ca2, "core", SERVER_ONLY, dates={}), [ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY, dates={}), [ca2], checking="Off")
        code, doc = cli_json(core, edge, [ca2])
        assert code == 1 and doc["format_version"] == 1 and doc["command"] == "assess"
        ids = [s["id"] for s in doc["services"]]
        assert set(ids) >= {
            "uc-traversal-zone",
            "ssh-tunnels",
            "mra",
            "webrtc-proxy",
            "edge-outbound-mtls",
            "core-outbound-mtls",
            "mra-client-trust",
        }
        for service in doc["services"]:
            assert {"id", "status", "reason", "fix"} <= set(service)
            if service["status"] != "active":
                assert service["certificates"] and service["fix"], service
        assert doc["edge"]["checking_mode"] == "Off"
        assert {"certificates", "findings"} <= set(doc)

    def test_cutoff_option(self, tmp_path, ca2, cli_json):
        """``--cutoff DATE`` reaches the certificates' cut-off in the JSON."""
        core = node(tmp_path, "core", cert(ca2, "core", BOTH, dates={}), [ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", BOTH, dates={}), [ca2])
        code, doc = cli_json(core, edge, [ca2], "--cutoff", "2026-12-31")
        assert code == 0
        assert {c["client_auth_cutoff"] for c in doc["certificates"]} == {"2026-12-31"}

    def test_bad_cutoff_is_usage_error(self, tmp_path, ca2):
        """A ``--cutoff`` that is not a date is a usage error (exit 2)."""
        assert main(["assess", "--core", str(tmp_path), "--edge", str(tmp_path), "--cutoff", "soon"]) == 2

    def test_text_and_markdown(self, tmp_path, capsys, ca2):
        """Text is a table of services; Markdown adds a Mermaid flowchart with each link's state."""
        core = node(tmp_path, "core", cert(ca2, "core", SERVER_ONLY, dates={}), [ca2])
        edge = node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY, dates={}), [ca2], checking="Off")
        assert run_cli(tmp_path, core, edge, [ca2], "--format", "text") == 1
        text = capsys.readouterr().out
        assert any(line.split()[:2] == ["ssh-tunnels", "FAILED"] for line in text.splitlines())
        assert any(line.split()[:2] == ["uc-traversal-zone", "active"] for line in text.splitlines())
        assert run_cli(tmp_path, core, edge, [ca2], "--format", "markdown") == 1
        markdown = capsys.readouterr().out
        assert "```mermaid" in markdown and "flowchart LR" in markdown
        assert '-->|"ssh-tunnels: failed"|' in markdown and '-->|"uc-traversal-zone: active"|' in markdown

    def test_missing_public_ca_file_is_an_error(self, tmp_path, capsys, ca1):
        """An unreadable ``--public-ca`` is one error line and exit 1."""
        core = node(tmp_path, "core", cert(ca1, "core", dates={}), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", dates={}), [ca1])
        code = main(["assess", "--core", str(core), "--edge", str(edge), "--public-ca", str(tmp_path / "nope.pem")])
        assert code == 1 and "error[public-ca-unreadable]" in capsys.readouterr().err


class TestSystemTrustStore:
    def test_without_public_ca_the_system_store_is_read_through_its_link(self, tmp_path, ca1, ca2, capsys, monkeypatch):
        """Without --public-ca the system store's cafile counts as public, even when it is a symbolic link to the file."""
        import ssl

        store = tmp_path / "store" / "ca-certificates.crt"
        store.parent.mkdir()
        store.write_bytes(ca2.cert_pem)
        link = tmp_path / "cert.pem"
        link.symlink_to(store)
        paths = ssl.get_default_verify_paths()._replace(cafile=str(link))
        monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
        core = node(
            tmp_path,
            "core",
            cert(ca2, "core", SERVER_ONLY, dates={}),
            [ca1, ca2],
            client_identity=cert(ca1, "core", BOTH, dates={}),
        )
        edge = node(tmp_path, "edge", cert(ca2, "edge", SERVER_ONLY, dates={}), [ca1, ca2])
        code = main(["assess", "--core", str(core), "--edge", str(edge), "--format", "json"])
        doc = json.loads(capsys.readouterr().out)
        assert code == 0
        assert {s["id"]: s["status"] for s in doc["services"]}["mra-client-trust"] == "active"  # ca2 read as public

    def test_no_system_store_means_no_public_ca_and_says_so(self, tmp_path, ca1, capsys, monkeypatch):
        """With no system store found, no CA counts as public and a finding says why."""
        import ssl

        paths = ssl.get_default_verify_paths()._replace(cafile=None)
        monkeypatch.setattr(ssl, "get_default_verify_paths", lambda: paths)
        core = node(tmp_path, "core", cert(ca1, "core", BOTH, dates={}), [ca1])
        edge = node(tmp_path, "edge", cert(ca1, "edge", BOTH, dates={}), [ca1])
        main(["assess", "--core", str(core), "--edge", str(edge), "--format", "json"])
        doc = json.loads(capsys.readouterr().out)
        empty = [f for f in doc["findings"] if f["id"] == "public-ca-list-empty"]
        assert empty and "none found" in empty[0]["path"], doc["findings"]
        assert {s["id"]: s["status"] for s in doc["services"]}["mra-client-trust"] == "at-risk"
