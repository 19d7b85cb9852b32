"""Tests for migrate.testing.pytest_plugin: a user's own test file, with no conftest, run by pytester in a subprocess.

Each test writes a realistic user file (``import migrate`` and the fixtures, nothing else) and runs
it with ``runpytest_subprocess``: the plugin must be found through its ``pytest11`` entry point,
and pyfakefs and cryptography stay out of nested in-process runs.  Every run also proves that the
real root directory gained nothing.
"""

from __future__ import annotations

import os

import pytest

pytest_plugins = ["pytester"]

# Where the user files put nodes, in their fake file systems; none may appear on the real disk.
FAKE_ROOTS = ("/tandberg", "/tandberg-2", "/node", "/srv/expressway")


@pytest.fixture
def run(pytester):
    """Run pytest on the user's files in a subprocess, warnings as errors, and check the real ``/`` is untouched."""

    def run(*args):
        for root in FAKE_ROOTS:
            assert not os.path.lexists(root), f"{root} exists on the real disk before the run"
        before = sorted(os.listdir("/"))
        result = pytester.runpytest_subprocess("-W", "error", *args, timeout=300)
        assert sorted(os.listdir("/")) == before
        for root in FAKE_ROOTS:
            assert not os.path.lexists(root), f"the run left {root} on the real disk"
        return result

    return run


@pytest.mark.slow
class TestRegistration:
    def test_fixtures_are_listed_with_their_docstrings(self, pytester, run):
        """``--fixtures`` in a directory with no conftest lists the three fixtures, documented, from the plugin."""
        result = run("--fixtures")
        result.stdout.fnmatch_lines(
            ["x154_node -- *migrate/testing/pytest_plugin.py:*", "    The bundled sample X15.4 node (``core``*"],
            consecutive=True,
        )
        result.stdout.fnmatch_lines(
            ["make_x154_node -- *migrate/testing/pytest_plugin.py:*", "    Build nodes from parameters in the fake file*"],
            consecutive=True,
        )
        result.stdout.fnmatch_lines(
            ["fault_injector -- *migrate/testing/pytest_plugin.py:*", "    :mod:`migrate.testing.faults`: ``count_calls(run)``*"],
            consecutive=True,
        )
        result.stdout.no_fnmatch_line("*_x154_samples*")  # private: shown only with -v
        assert result.ret == 0

    def test_the_entry_point_is_what_provides_the_fixtures(self, pytester, run):
        """With the ``expressway_migrate`` plugin disabled by name, a user's test cannot find ``x154_node``."""
        pytester.makepyfile(
            """
            import migrate

            def test_bundled_node_upgrades(x154_node):
                assert migrate.rehearse(x154_node, crash=False).ok
            """
        )
        result = run("-p", "no:expressway_migrate")
        result.assert_outcomes(errors=1)
        result.stdout.fnmatch_lines(["*fixture 'x154_node' not found*"])


class TestBundledNode:
    def test_bundled_core_and_edge_rehearse_ok(self, pytester, run):
        """``x154_node`` puts the bundled Core (or the Edge, parametrized) at ``/tandberg``, and it rehearses ok."""
        pytester.makepyfile(
            """
            import os

            import migrate
            import pytest


            def test_bundled_core_is_at_tandberg(x154_node):
                assert x154_node == "/tandberg"
                store = {"ca.pem", "server.pem", "privkey.pem", "server-ssh.pem"}
                assert store <= set(os.listdir("/tandberg/persistent/certs"))
                assert not os.path.exists("/tandberg/persistent/certs/client.pem")
                with open("/tandberg/persistent/xconfiguration.txt") as config:
                    assert 'EdgeConfigServer Enabled: "On"' in config.read()


            def test_bundled_core_upgrades(x154_node):
                report = migrate.rehearse(x154_node, crash=False)
                assert report.ok
                assert [s.step for s in report.steps] == [
                    "precheck", "plan", "apply", "verify", "re-plan", "re-apply", "rollback", "compare"
                ]
                assert report.steps[0].detail == "no blocker, 0 warning(s)"
                assert not os.path.exists("/tandberg/persistent/certs/client.pem")  # rolled back


            @pytest.mark.parametrize("x154_node", ["edge"], indirect=True)
            def test_bundled_edge_upgrades_with_warnings(x154_node):
                with open(os.path.join(x154_node, "persistent/xconfiguration.txt")) as config:
                    assert "EnableServerEkuUpload: On" in config.read()
                report = migrate.rehearse(x154_node, crash=False)
                assert report.ok
                warnings = sorted(f["id"] for f in report.plan["findings"] if f["severity"] == "warning")
                assert warnings == ["cert-no-client-eku", "server-eku-upload-on"]


            @pytest.mark.parametrize("x154_node", ["dmz"], indirect=True)
            def test_unknown_sample(x154_node):
                pass
            """
        )
        result = run()
        result.assert_outcomes(passed=3, errors=1)
        result.stdout.fnmatch_lines(
            [
                "*ERROR at setup of test_unknown_sample[[]dmz[]]*",
                "E * ValueError: no bundled sample 'dmz'; there are core, edge",
            ]
        )

    @pytest.mark.slow
    def test_bundled_core_survives_the_crash_rehearsal(self, pytester, run):
        """The full rehearsal of the bundled Core stops apply and rollback at many calls, and every stop recovers."""
        pytester.makepyfile(
            """
            import migrate


            def test_bundled_core_survives_power_cuts(x154_node):
                report = migrate.rehearse(x154_node)
                assert report.ok
                assert report.steps[-1].step == "crash"
                assert report.crash_points > 0
                assert report.unrecovered == ()
                print(f"CRASH POINTS {report.crash_points}")
            """
        )
        result = run("-s")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*CRASH POINTS [1-9]*"])  # -s: the line follows the file name


@pytest.mark.slow
class TestHandBuiltNode:
    def test_node_written_with_fs_create_file(self, pytester, run):
        """A node the user writes in ``fs`` rehearses ok, and the same node with a default-mode key is refused."""
        pytester.makepyfile(
            """
            import stat

            import migrate
            import pytest
            from migrate.testing.factory import issue, make_ca

            KEY = stat.S_IFREG

            @pytest.fixture
            def node(fs):
                ca = make_ca("Acme Internal CA")
                me = issue(ca, "expc.acme.example", key_type="ec256")
                fs.create_dir("/node/persistent/certs/generated_csr")
                fs.create_file("/node/persistent/certs/ca.pem", contents=ca.cert_pem)
                fs.create_file("/node/persistent/certs/server.pem", contents=me.chain_pem)
                fs.create_file("/node/persistent/certs/server-ssh.pem", contents=me.bundle_pem(), st_mode=KEY | 0o600)
                fs.create_file("/node/persistent/xconfiguration.txt", contents=b'*c xConfiguration SIP Mode: "On"\\n')
                return fs, me


            def test_hand_built_node_upgrades(node):
                fs, me = node
                fs.create_file("/node/persistent/certs/privkey.pem", contents=me.key_pem(), st_mode=KEY | 0o440)
                report = migrate.rehearse("/node", crash=False)
                assert report.ok, report.steps
                assert report.plan["node"] == "/node"
                assert report.plan["findings"] == []
                assert [a["path"] for a in report.plan["actions"] if a["action"] == "create-file"] == [
                    "persistent/certs/client.pem",
                    "persistent/certs/clientprivkey.pem",
                    "persistent/certs/client-ssh.pem",
                ]


            def test_hand_built_key_left_world_readable(node):
                fs, me = node
                fs.create_file("/node/persistent/certs/privkey.pem", contents=me.key_pem())  # 0644
                report = migrate.rehearse("/node", crash=False)
                assert not report.ok
                assert report.steps[0].detail == "1 blocker(s): key-exposed"
            """
        )
        result = run()
        result.assert_outcomes(passed=2)


@pytest.mark.slow
class TestBrokenNode:
    def test_broken_nodes_are_reported_not_ok(self, pytester, run):
        """A node with a blocker rehearses not ok, stopped at precheck with its id; ``assert report.ok`` fails."""
        pytester.makepyfile(
            """
            import os

            import migrate
            import pytest


            @pytest.mark.parametrize(
                "broken, blocker",
                [
                    (dict(ssh="other"), "ssh-identity-mismatch"),
                    (dict(expires_in_days=-1), "cert-expired"),
                    (dict(modes={"privkey.pem": 0o444}), "key-exposed"),
                ],
            )
            def test_broken_node_is_refused(make_x154_node, broken, blocker):
                root = make_x154_node(**broken)
                report = migrate.rehearse(root, crash=False)
                assert not report.ok
                assert [s.step for s in report.steps] == ["precheck"]
                assert not report.steps[0].ok
                assert blocker in report.steps[0].detail
                assert blocker in [f["id"] for f in report.plan["findings"] if f["severity"] == "blocker"]
                assert not os.path.exists(os.path.join(root, "persistent/certs/client.pem"))


            def test_naive_user_expects_ok(make_x154_node):
                report = migrate.rehearse(make_x154_node(ssh="other"), crash=False)
                assert report.ok, report.steps[0].detail
            """
        )
        result = run()
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines(
            [
                "*AssertionError: 1 blocker(s): ssh-identity-mismatch",
                "FAILED *test_naive_user_expects_ok*",
            ]
        )

    def test_rehearse_refuses_the_real_disk(self, pytester, run):
        """In a user's test without the fixtures, ``rehearse`` raises ``rehearsal-not-fake`` and touches nothing."""
        pytester.makepyfile(
            """
            import migrate
            import pytest


            def test_no_fake_file_system():
                with pytest.raises(migrate.MigrateError, match="only inside a fake file system") as caught:
                    migrate.rehearse("/tandberg", crash=False)
                assert caught.value.id == "rehearsal-not-fake"
            """
        )
        run().assert_outcomes(passed=1)


@pytest.mark.slow
class TestMakeNode:
    def test_domain_scenarios_in_one_line_each(self, pytester, run):
        """DOMAIN.md's scenarios, one ``make_x154_node`` call each, rehearse ok with the warnings they deserve."""
        pytester.makepyfile(
            """
            import migrate
            import pytest

            UPLOAD = "XCP TLS Certificate CVS EnableServerEkuUpload"
            CHECKING = "SIP TLS Certificate ExtendedKeyUsage Checking Mode"


            def findings(report, severity):
                return sorted(f["id"] for f in report.plan["findings"] if f["severity"] == severity)


            @pytest.mark.parametrize(
                "node, warnings, infos",
                [
                    # 3 and 4: a Core from the internal CA1 with both EKUs, an Edge from CA1 too.
                    (dict(role="core"), [], []),
                    (dict(role="edge"), [], []),
                    # 2: every certificate public and server-only; turning the Core's check Off is no fix.
                    (dict(role="core", issuer="public", eku=["serverAuth"]), ["cert-no-client-eku"], []),
                    (
                        dict(role="core", issuer="public", eku=["serverAuth"], settings={CHECKING: '"Off"'}),
                        ["cert-no-client-eku"],
                        ["checking-mode-off"],
                    ),
                    # 5: a public, server-only Edge uploaded through the retired switch.
                    (
                        dict(role="edge", issuer="public", eku=["serverAuth"], settings={UPLOAD: "On"}),
                        ["cert-no-client-eku", "server-eku-upload-on"],
                        [],
                    ),
                    # No EKU extension at all: good for both.
                    (dict(role="core", issuer="public", eku=None), [], []),
                ],
            )
            def test_scenario(make_x154_node, node, warnings, infos):
                report = migrate.rehearse(make_x154_node(**node), crash=False)
                assert report.ok
                assert findings(report, "warning") == warnings
                assert findings(report, "info") == infos


            def test_upgrade_leaves_both_stores_identical(make_x154_node):
                root = make_x154_node()
                assert migrate.apply(migrate.Layout.for_node(root)).result == "migrated"
                certs = root + "/persistent/certs/"
                for server, client in [
                    ("server.pem", "client.pem"),
                    ("privkey.pem", "clientprivkey.pem"),
                    ("server-ssh.pem", "client-ssh.pem"),
                ]:
                    with open(certs + server, "rb") as a, open(certs + client, "rb") as b:
                        assert a.read() == b.read()
            """
        )
        result = run()
        result.assert_outcomes(passed=7)

    def test_parameters_and_several_nodes(self, pytester, run):
        """``make_x154_node`` gives each node its own root and honours owners, key type and format, and a user's CA."""
        pytester.makepyfile(
            """
            import os

            import migrate
            import pytest
            from migrate.testing.factory import make_ca


            def test_several_nodes_get_distinct_roots(make_x154_node):
                core, edge = make_x154_node(), make_x154_node(role="edge")
                mine = make_x154_node(root="/srv/expressway")
                assert (core, edge, mine) == ("/tandberg", "/tandberg-2", "/srv/expressway")
                for root, host in [(core, "core"), (edge, "edge"), (mine, "core")]:
                    with open(os.path.join(root, "persistent/xconfiguration.txt")) as config:
                        assert f'IP DNS Hostname: "{host}"' in config.read()
                    assert migrate.rehearse(root, crash=False).ok


            def test_owners(make_x154_node):
                root = make_x154_node(owners={"privkey.pem": (1000, 1000)})
                st = os.stat(os.path.join(root, "persistent/certs/privkey.pem"))
                assert (st.st_uid, st.st_gid) == (1000, 1000)
                report = migrate.rehearse(root, crash=False)
                assert report.ok
                assert report.steps[0].detail == "no blocker, 1 warning(s): owner-unexpected"


            @pytest.mark.parametrize(
                "key, header",
                [
                    (dict(key_type="ec256"), b"-----BEGIN PRIVATE KEY-----"),
                    (dict(key_type="ec256", key_format="sec1"), b"-----BEGIN EC PRIVATE KEY-----"),
                    (dict(key_format="pkcs1"), b"-----BEGIN RSA PRIVATE KEY-----"),
                ],
            )
            def test_key_type_and_format(make_x154_node, key, header):
                root = make_x154_node(**key)
                with open(os.path.join(root, "persistent/certs/privkey.pem"), "rb") as f:
                    assert f.read().startswith(header)
                assert migrate.rehearse(root, crash=False).ok


            def test_own_issuer(make_x154_node):
                ca = make_ca("Acme Root CA")
                root = make_x154_node(issuer=ca)
                with open(os.path.join(root, "persistent/certs/ca.pem"), "rb") as f:
                    assert f.read() == ca.cert_pem
                with open(os.path.join(root, "persistent/certs/server.pem"), "rb") as f:
                    assert f.read().endswith(ca.cert_pem)
                assert migrate.rehearse(root, crash=False).ok


            def test_impossible_node(make_x154_node):
                with pytest.raises(ValueError, match="pkcs1 is an RSA key format"):
                    make_x154_node(key_type="ec256", key_format="pkcs1")
            """
        )
        result = run()
        result.assert_outcomes(passed=7)


class TestFaultInjector:
    def test_users_own_power_cut_then_rollback(self, pytester, run):
        """A user counts apply's calls on one node, cuts the power half-way on another; rollback restores it exactly."""
        pytester.makepyfile(
            """
            import migrate
            import pytest
            from migrate.testing.tree import read_tree


            def test_power_cut_half_way(make_x154_node, fault_injector):
                counted, node = make_x154_node(), make_x154_node()
                calls = fault_injector.count_calls(lambda: migrate.apply(migrate.Layout.for_node(counted)))
                assert len(calls) > 10
                assert any(call.writes for call in calls)
                before = read_tree(node)

                half_way = len(calls) // 2
                with fault_injector.inject(at=half_way, fault="power-cut"), pytest.raises(fault_injector.PowerCut):
                    migrate.apply(migrate.Layout.for_node(node))
                assert read_tree(node) != before  # half-migrated

                assert migrate.rollback(migrate.Layout.for_node(node)).result == "rolled-back"
                assert read_tree(node) == before
            """
        )
        run().assert_outcomes(passed=1)


@pytest.mark.slow
class TestRealDisk:
    def test_nothing_reaches_the_real_disk(self, pytester, run):
        """After user tests that build, migrate and rehearse nodes, pytester's directory holds only pytest's files."""
        user_file = pytester.makepyfile(
            test_nodes="""
            import migrate
            import pytest


            def test_bundled(x154_node):
                assert migrate.rehearse(x154_node, crash=False).ok


            def test_made(make_x154_node):
                roots = [make_x154_node(), make_x154_node(role="edge")]
                for root in roots:
                    assert migrate.apply(migrate.Layout.for_node(root)).result == "migrated"
                    assert migrate.rehearse(root, crash=False).steps[0].ok


            def test_hand_built(fs):
                fs.create_file("/node/persistent/xconfiguration.txt", contents=b"")
                assert not migrate.rehearse("/node", crash=False).ok
            """
        )
        before = {p.relative_to(pytester.path) for p in pytester.path.rglob("*")}
        result = run()
        result.assert_outcomes(passed=3)
        after = {p.relative_to(pytester.path) for p in pytester.path.rglob("*")}
        new = after - before
        assert before == {user_file.relative_to(pytester.path)}
        assert {p.parts[0] for p in new} <= {
            "stdout",
            "stderr",
            "runpytest-0",
            "runpytest-current",
            "__pycache__",
            ".pytest_cache",
        }
        names = {p.name for p in new}
        assert not names & {"persistent", "certs", "server.pem", "privkey.pem", "client.pem", "xconfiguration.txt"}
        assert not any(name.startswith(".cert-migration") or "crash-rehearsal" in name for name in names)
