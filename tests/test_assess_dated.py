"""Assess and precheck read the whole configuration and never give advice that fails on the day.

Each case is built with real certificates (``migrate.testing``): public-like CAs named as the
real ones are ("DigiCert Inc", "Sectigo Limited"), a private CA, and nodes laid out by the factory.  Each
test asserts the service statuses, the certificate at fault, the break date, and that the fix offered is
one that works on that date (where it names a certificate to install, the test installs it and judges again).
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from migrate import checks, facts, policy, xconfig
from migrate.assess import assess
from migrate.certs import load_ca_bundle
from migrate.cli import main
from migrate.plan import make_plan
from migrate.scan import Layout, scan
from migrate.testing.factory import NodeSpec, build_node
from migrate.testing.pki import CA, issue, make_ca

NOW = datetime(2026, 6, 1, tzinfo=UTC)
BOTH, SERVER_ONLY = ["serverAuth", "clientAuth"], ["serverAuth"]
CHECKING = policy.CHECKING_SETTING
CERTS = policy.CERT_DIR


def org_ca(org: str, name: str) -> CA:
    """A self-signed CA whose organisation is ``org`` (the factory's CAs all carry an example name)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, name)]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2040, 1, 1, tzinfo=UTC))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(name=name, cert_pem=cert.public_bytes(serialization.Encoding.PEM), public=True, key=key)


@pytest.fixture(scope="module")
def digicert():
    return org_ca("DigiCert Inc", "DigiCert Global Root G2 (test)")


@pytest.fixture(scope="module")
def sectigo():
    return org_ca("Sectigo Limited", "Sectigo Public Server Authentication Root (test)")


@pytest.fixture(scope="module")
def unknown_public():
    return make_ca("Example Public CA2", public=True, not_before=datetime(2020, 1, 1, tzinfo=UTC))


@pytest.fixture(scope="module")
def private():
    return make_ca("Example Internal CA1", not_before=datetime(2020, 1, 1, tzinfo=UTC))


def leaf(ca, cn, eku=BOTH, start=(2026, 1, 1), end=(2029, 1, 1), san=()):
    return issue(
        ca, cn, eku=eku, not_before=datetime(*start, tzinfo=UTC), not_after=datetime(*end, tzinfo=UTC), san=san
    )


def node(tmp_path, role, identity, trusted, *, checking=None, client_identity=None, client="absent", config=None):
    """A node; ``client_identity`` makes it X15.5 with its own client store; ``config`` replaces its configuration."""
    settings = {CHECKING: f'"{checking}"'} if checking else {}
    root = build_node(
        tmp_path / role,
        NodeSpec(
            role=role,
            identity=identity,
            trusted=trusted,
            settings=settings,
            client="migrated" if client_identity is not None else client,
            chown=False,
        ),
    )
    if client_identity is not None:
        (root / CERTS / "client.pem").write_bytes(client_identity.chain_pem)
        (root / CERTS / "clientprivkey.pem").write_bytes(client_identity.key_pem())
        (root / CERTS / "client-ssh.pem").write_bytes(client_identity.bundle_pem())
    if config is not None:
        (root / policy.CONFIG_FILE).write_bytes(config)
    return root


def analysed(root, now=NOW):
    return facts.analyse(scan(Layout.for_node(root), now=now))


def judge(core, edge, public, at=NOW, **kw):
    cas = tuple(c for ca in public for c in load_ca_bundle(ca.cert_pem))
    return assess(analysed(core), analysed(edge), public_cas=cas, public_source="test", now=at, **kw)


def statuses(result):
    return {s.id: s.status for s in result.services}


def finding_ids(result):
    return {f.id for f in result.findings}


class TestPrecheckKnowsTheState:
    def test_x155_core_with_private_client_cert_gets_no_false_warning(self, tmp_path, digicert, private):
        """Case 1: an X15.5 Core whose client.pem is a private-CA cert with both EKUs gets no cert-no-client-eku."""
        core = node(
            tmp_path,
            "core",
            leaf(digicert, "core.example.com", SERVER_ONLY),
            [digicert, private],
            client_identity=leaf(private, "core.example.com", BOTH),
        )
        found = checks.precheck(analysed(core))
        assert "cert-no-client-eku" not in {f.id for f in found}

    def test_x155_copy_without_client_auth_speaks_of_the_store_as_it_is(self, tmp_path, digicert):
        """Case 1: on X15.5 with client.pem a copy of a server-only cert, the warning names the copy, not an upgrade."""
        core = node(tmp_path, "core", leaf(digicert, "core.example.com", SERVER_ONLY), [digicert], client="migrated")
        found = {f.id: f for f in checks.precheck(analysed(core))}
        warning = found["cert-no-client-eku"]
        assert "upgrade" not in warning.message and "client store holds a copy" in warning.message
        assert "condition 4" in warning.hint

    def test_x154_hint_names_condition_4_for_an_edge(self, tmp_path, digicert):
        """Case 1: before the upgrade the hint also gives an Edge condition 4 (the peer turns its check off)."""
        edge = node(tmp_path, "edge", leaf(digicert, "edge.example.com", SERVER_ONLY), [digicert])
        found = {f.id: f for f in checks.precheck(analysed(edge))}
        assert "the upgrade copies" in found["cert-no-client-eku"].message
        assert "condition 4" in found["cert-no-client-eku"].hint


class TestAdviceThatWorksOnTheDay:
    def test_expired_public_cert_after_cutoff_is_not_told_to_renew(self, tmp_path, digicert, private):
        """Case 2: an expired DigiCert cert relied on for clientAuth, judged after the cut-off: no 'renew'; the private fix works."""
        at = datetime(2027, 4, 1, tzinfo=UTC)  # after DigiCert's 2027-03-01
        core_id = leaf(digicert, "core.example.com", BOTH, end=(2027, 3, 20))
        core = node(tmp_path / "a", "core", core_id, [digicert, private])
        edge = node(
            tmp_path / "a",
            "edge",
            leaf(digicert, "edge.example.com", SERVER_ONLY, end=(2028, 1, 1)),
            [digicert, private],
        )
        result = judge(core, edge, [digicert], at=at)
        ssh = result.service("ssh-tunnels")
        assert ssh.status == "failed" and ssh.certificates == ("core:client-ssh.pem",)
        assert ssh.breaks_on == date(2027, 3, 20)
        assert "renew " not in ssh.fix.replace("renewal", "") and "private CA" in ssh.fix
        # The offered fix, applied on that day: a private-CA client certificate with both EKUs.
        fixed = node(
            tmp_path / "b",
            "core",
            core_id,
            [digicert, private],
            client_identity=leaf(private, "core.example.com", BOTH),
        )
        edge_b = node(
            tmp_path / "b",
            "edge",
            leaf(digicert, "edge.example.com", SERVER_ONLY, end=(2028, 1, 1)),
            [digicert, private],
        )
        assert statuses(judge(fixed, edge_b, [digicert], at=at))["ssh-tunnels"] == "active"

    def test_expired_private_cert_is_told_to_renew(self, tmp_path, private):
        """Case 2, the other side: a private CA's renewal keeps clientAuth, so 'renew' is offered."""
        core = node(tmp_path, "core", leaf(private, "core.example.com", BOTH, end=(2026, 3, 1)), [private])
        edge = node(tmp_path, "edge", leaf(private, "edge.example.com", BOTH), [private])
        zone = judge(core, edge, []).service("uc-traversal-zone")
        assert zone.status == "failed" and "renew" in zone.fix and zone.breaks_on == date(2026, 3, 1)

    def test_edge_outbound_fix_is_condition_4_not_a_public_client_cert(self, tmp_path, private, sectigo):
        """Case 2: condition 3's Edge outbound fix names the X15.5 upload option and the peer's check, never a public client cert."""
        core = node(tmp_path, "core", leaf(private, "core.example.com"), [private])
        edge = node(tmp_path, "edge", leaf(private, "edge.example.com"), [private])
        outbound = judge(core, edge, [sectigo]).service("edge-outbound-mtls")
        assert outbound.status == "at-risk" and outbound.certificates == ("edge:client.pem",)
        assert policy.UPLOAD_AS_CLIENT_OPTION in outbound.fix and "client-EKU check off" in outbound.fix
        assert "from a public CA" not in outbound.fix

    def test_stale_client_ssh_is_told_to_reinstall(self, tmp_path, digicert, private):
        """Case 2: a stale client-ssh.pem gets precheck's hint (reinstall to regenerate), not 'install a private cert'."""
        server_id = leaf(digicert, "core.example.com", SERVER_ONLY)
        core = node(tmp_path, "core", server_id, [digicert, private], client_identity=leaf(private, "core.example.com"))
        (core / CERTS / "client-ssh.pem").write_bytes(server_id.bundle_pem())  # the old, server-only identity
        edge = node(tmp_path, "edge", leaf(digicert, "edge.example.com", SERVER_ONLY), [digicert, private])
        result = judge(core, edge, [digicert])
        ssh = result.service("ssh-tunnels")
        assert ssh.status == "failed" and ssh.certificates == ("core:client-ssh.pem",)
        assert ssh.fix == policy.ASSESS_FIXES["stale-ssh"]
        assert statuses(result)["uc-traversal-zone"] == "active" and "client-ssh-stale" in finding_ids(result)


CHECKING_OFF_FORMS = [
    b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: Off\n",
    b'*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: "Off"\n',
    b"xconfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: Off\n",  # the technote's form
    b"xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: Off\r\n",
    b'  XCONFIGURATION  sip tls certificate extendedkeyusage checking mode:  "off"  \r\n',
]


class TestWholeConfiguration:
    @pytest.mark.parametrize("line", CHECKING_OFF_FORMS)
    def test_every_form_is_read(self, line):
        """Case 3: every form an administrator or the appliance prints gives Checking Mode Off."""
        (setting,) = xconfig.find(xconfig.parse(b"OK\n" + line), CHECKING)
        assert xconfig.is_on(setting.value) is False
        assert xconfig.unplaced(b"OK\n" + line, xconfig.parse(b"OK\n" + line), exact=policy.RELIED_ON_SETTINGS) == ()

    @pytest.mark.parametrize(
        "line",
        [
            b"xconfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode Off",
            b"*c xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode:Off",
            b"# xconfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: Off",
            b"*s xConfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode: Off",
        ],
    )
    def test_a_line_it_cannot_place_is_reported(self, line):
        """Case 3: a line naming the setting that is not a readable setting line is reported, never skipped."""
        data = b"OK\n" + line + b"\n"
        assert xconfig.unplaced(data, xconfig.parse(data), exact=policy.RELIED_ON_SETTINGS) == ((2, CHECKING),)

    def test_bare_technote_line_keeps_the_zone_and_apply_adds_nothing(self, tmp_path, unknown_public):
        """Case 3: the bare Off line is read: zone active (condition 2 Off), and the plan appends no Checking Mode On."""
        edge = node(tmp_path, "edge", leaf(unknown_public, "edge.example.com", SERVER_ONLY), [unknown_public])
        config = edge / policy.CONFIG_FILE
        config.write_bytes(config.read_bytes() + CHECKING_OFF_FORMS[2])
        core = node(tmp_path, "core", leaf(unknown_public, "core.example.com", SERVER_ONLY), [unknown_public])
        result = judge(core, edge, [unknown_public])
        assert result.nodes[1].checking_on is False
        assert statuses(result)["uc-traversal-zone"] == "active" and statuses(result)["ssh-tunnels"] == "failed"
        plan = make_plan(analysed(edge))
        assert not any(a.as_dict().get("setting") == CHECKING for a in plan.actions)

    def test_unreadable_checking_line_blocks_the_plan(self, tmp_path, private):
        """Case 3: a Checking Mode line the parser cannot read is a blocker: the plan has no action, the node stays."""
        edge = node(tmp_path, "edge", leaf(private, "edge.example.com"), [private])
        config = edge / policy.CONFIG_FILE
        config.write_bytes(
            config.read_bytes() + b"xconfiguration SIP TLS Certificate ExtendedKeyUsage Checking Mode:Off\n"
        )
        plan = make_plan(analysed(edge))
        assert "config-line-unparsed" in {f.id for f in checks.blockers(plan.findings)} and plan.actions == ()


class TestNamesAndPair:
    @pytest.mark.parametrize("checking", ["On", "Off"])
    def test_core_client_cert_for_another_name_fails_the_zone(self, tmp_path, private, checking):
        """Case 4: the Edge verifies core.example.com; a client cert for other.example.com fails the zone in either mode."""
        core = node(
            tmp_path,
            "core",
            leaf(private, "core.example.com"),
            [private],
            client_identity=leaf(private, "other.example.com"),
        )
        edge = node(tmp_path, "edge", leaf(private, "edge.example.com"), [private], checking=checking)
        result = judge(core, edge, [])
        zone = result.service("uc-traversal-zone")
        assert zone.status == "failed" and zone.certificates == ("core:client.pem",)
        assert "core.example.com" in zone.reason and "other.example.com" in zone.reason
        assert statuses(result)["mra"] == "failed"
        # The offered fix: a certificate whose SAN holds the verified name.
        fixed = node(
            tmp_path / "b",
            "core",
            leaf(private, "core.example.com"),
            [private],
            client_identity=leaf(private, "other.example.com", san=["core.example.com"]),
        )
        assert statuses(judge(fixed, edge, []))["uc-traversal-zone"] == "active"

    def test_mixed_versions_are_a_finding(self, tmp_path, private):
        """Case 5: an X15.4 Core with an X15.5 Edge is a finding."""
        core = node(tmp_path, "core", leaf(private, "core.example.com"), [private])
        edge = node(tmp_path, "edge", leaf(private, "edge.example.com"), [private], client="migrated")
        assert "pair-versions-differ" in finding_ids(judge(core, edge, []))

    def test_x154_switch_on_a_core_and_missing_issuer_are_findings(self, tmp_path, private, digicert):
        """The pair: the Edge-only switch set on a Core, and a Core ca.pem without its client cert's issuer."""
        core = node(
            tmp_path,
            "core",
            leaf(digicert, "core.example.com", SERVER_ONLY),
            [digicert],
            client_identity=leaf(private, "core.example.com"),
        )
        config = core / policy.CONFIG_FILE
        config.write_bytes(config.read_bytes() + xconfig.setting_line(policy.RETIRED_SETTING, "On") + b"\n")
        edge = node(tmp_path, "edge", leaf(digicert, "edge.example.com", SERVER_ONLY), [digicert, private])
        ids = finding_ids(judge(core, edge, [digicert]))
        assert {"server-eku-upload-on-core", "core-ca-lacks-client-issuer"} <= ids

    def test_neighbour_peer_without_client_auth_fails_when_checking_on(self, tmp_path, private, digicert):
        """A CUCM neighbour presenting a server-only cert fails on a Core whose checking is On; unseen it is at-risk."""
        core = node(tmp_path, "core", leaf(private, "core.example.com"), [private, digicert], checking="On")
        edge = node(tmp_path, "edge", leaf(private, "edge.example.com"), [private])
        unseen = judge(core, edge, []).service("core-neighbor-zone-2")
        assert unseen.status == "at-risk" and "--peer CUCM Neighbor=FILE" in unseen.fix
        cucm = tuple(load_ca_bundle(leaf(digicert, "cucm.example.com", SERVER_ONLY).chain_pem))
        seen = judge(core, edge, [digicert], peers={"cucm.example.com": cucm}).service("core-neighbor-zone-2")
        assert seen.status == "failed" and "clientAuth" in seen.reason and "checking Off" in seen.fix


class TestCutoffs:
    def test_every_entry_has_a_date_and_a_source(self):
        """The cut-off table: every entry has a valid date, a URL source, the day it was read, and names to match."""
        for entry in policy.CLIENT_AUTH_CUTOFFS:
            assert date.fromisoformat(entry.date) and date.fromisoformat(entry.read)
            assert entry.source.startswith("https://") and entry.orgs and entry.ca
        assert min(e.date for e in policy.CLIENT_AUTH_CUTOFFS) == policy.UNKNOWN_CA_CUTOFF
        assert max(e.date for e in policy.CLIENT_AUTH_CUTOFFS) <= policy.CHROME_CLIENT_AUTH_END
        digicert = next(e for e in policy.CLIENT_AUTH_CUTOFFS if e.ca == "DigiCert")
        assert digicert.date == "2027-03-01" and "ALERT53" in digicert.note
        sectigo = next(e for e in policy.CLIENT_AUTH_CUTOFFS if e.ca == "Sectigo")
        assert sectigo.date == "2026-05-15" and "resellers" in sectigo.note

    def test_unknown_public_ca_gets_the_earliest_date_and_a_finding(self, tmp_path, unknown_public):
        """An unknown public CA gets the earliest known cut-off, with a finding that says so."""
        core = node(tmp_path, "core", leaf(unknown_public, "core.example.com"), [unknown_public])
        edge = node(tmp_path, "edge", leaf(unknown_public, "edge.example.com"), [unknown_public])
        result = judge(core, edge, [unknown_public])
        assert {c["client_auth_cutoff"] for c in result.certificates} == {policy.UNKNOWN_CA_CUTOFF}
        assert "client-auth-cutoff-unknown-ca" in finding_ids(result)

    def test_future_day_says_which_service_breaks_when_and_why(self, tmp_path, digicert, private):
        """``at``: a DigiCert client cert valid today breaks at its expiry after the cut-off; today it is at-risk, dated."""
        core_id = leaf(digicert, "core.example.com", BOTH, start=(2026, 4, 1), end=(2027, 5, 1))
        core = node(tmp_path, "core", core_id, [digicert, private])
        edge = node(
            tmp_path, "edge", leaf(digicert, "edge.example.com", SERVER_ONLY, end=(2028, 1, 1)), [digicert, private]
        )
        today = judge(core, edge, [digicert])
        assert statuses(today)["ssh-tunnels"] == "at-risk" and today.service("ssh-tunnels").breaks_on == date(
            2027, 5, 1
        )
        assert "2027-03-01" in today.service("ssh-tunnels").reason
        later = judge(core, edge, [digicert], at=datetime(2027, 6, 1, tzinfo=UTC))
        ssh = later.service("ssh-tunnels")
        assert (
            ssh.status == "failed"
            and ssh.breaks_on == date(2027, 5, 1)
            and ssh.certificates == ("core:client-ssh.pem",)
        )
        assert "has passed" in ssh.reason and "private CA" in ssh.fix

    def test_cutoff_for_one_ca_overrides_only_that_one(self, tmp_path, digicert, sectigo):
        """``cutoffs={"digicert": ...}`` moves DigiCert's date and leaves Sectigo's."""
        core = node(tmp_path, "core", leaf(digicert, "core.example.com"), [digicert, sectigo])
        edge = node(tmp_path, "edge", leaf(sectigo, "edge.example.com"), [digicert, sectigo])
        result = judge(core, edge, [digicert, sectigo], cutoffs={"digicert": date(2026, 9, 1)})
        by_id = {c["id"]: c["client_auth_cutoff"] for c in result.certificates}
        assert by_id["core:client.pem"] == "2026-09-01" and by_id["edge:client.pem"] == "2026-05-15"

    def test_cert_issued_after_cutoff_with_client_auth_contradicts_the_table(self, tmp_path, sectigo):
        """A Sectigo cert issued after 2026-05-15 that still carries clientAuth is a finding: the table is wrong."""
        core = node(tmp_path, "core", leaf(sectigo, "core.example.com", start=(2026, 5, 20)), [sectigo])
        edge = node(tmp_path, "edge", leaf(sectigo, "edge.example.com", SERVER_ONLY), [sectigo])
        assert "client-auth-cutoff-contradicted" in finding_ids(judge(core, edge, [sectigo]))


class TestWordsAndCli:
    def test_no_cryptography_message_and_at_risk_in_text(self, tmp_path, capsys, private, unknown_public):
        """Case 7: cryptography's words never reach the user, and text says at-risk as JSON does."""
        core = node(
            tmp_path, "core", leaf(private, "core.example.com", start=(2026, 1, 1), end=(2036, 1, 1)), [private]
        )
        edge = node(tmp_path, "edge", leaf(unknown_public, "edge.example.com", end=(2036, 1, 1)), [unknown_public])
        ca_file = tmp_path / "public.pem"
        ca_file.write_bytes(unknown_public.cert_pem)
        main(["assess", "--core", str(core), "--edge", str(edge), "--public-ca", str(ca_file), "--format", "text"])
        text = capsys.readouterr().out
        assert "candidates exhausted" not in text and "at risk" not in text and "at-risk" in text

    def test_cli_options(self, tmp_path, capsys, digicert, private):
        """--at, --cutoff CA=DATE, plain --cutoff DATE and --peer reach the document; bad ones are one-line errors."""
        core = node(
            tmp_path, "core", leaf(digicert, "core.example.com", start=(2026, 4, 1), end=(2027, 5, 1)), [digicert]
        )
        edge = node(tmp_path, "edge", leaf(digicert, "edge.example.com", SERVER_ONLY, end=(2028, 1, 1)), [digicert])
        ca_file = tmp_path / "public.pem"
        ca_file.write_bytes(digicert.cert_pem)
        peer = tmp_path / "cucm.pem"
        peer.write_bytes(leaf(private, "cucm.example.com").chain_pem)
        base = ["assess", "--core", str(core), "--edge", str(edge), "--public-ca", str(ca_file), "--format", "json"]
        assert main([*base, "--at", "2027-06-01", "--cutoff", "DigiCert=2027-03-01", "--peer", f"2={peer}"]) == 1
        doc = json.loads(capsys.readouterr().out)
        assert doc["at"] == "2027-06-01"
        ssh = next(s for s in doc["services"] if s["id"] == "ssh-tunnels")
        assert ssh["status"] == "failed" and ssh["breaks_on"] == "2027-05-01"
        assert main([*base, "--cutoff", "2026-12-31"]) in (0, 1)
        assert {c["client_auth_cutoff"] for c in json.loads(capsys.readouterr().out)["certificates"]} == {"2026-12-31"}
        assert main([*base, "--cutoff", "Nobody=2027-01-01"]) == 1
        err = capsys.readouterr().err
        assert "error[cutoff-ca-unknown]" in err and "Traceback" not in err
        assert main([*base, "--peer", f"x={tmp_path / 'nope.pem'}"]) == 1
        assert "error[peer-unreadable]" in capsys.readouterr().err
        assert main([*base, "--peer", "no-equals"]) == 2
