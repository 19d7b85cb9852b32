"""The second, unprivileged user, played for real: what a service account can do to the root tool.

DOMAIN.md's threat model: the tool runs as root while service accounts own
parts of the store.  Each test here plants a real node in a real temporary
directory (under a 0755 base, so that the other user can reach it) and plays
the attacker as uid/gid 65534 (nobody/nogroup, ``_nobody`` of the "core"
scenario, which owns ``server.pem`` and ``ca.pem``) in a forked child that
has dropped every privilege (:func:`as_other_user`), or as root where the
attack stands for "however it got there" (a journal edited earlier, a
directory swapped at a chosen call).

Every judgement is about the disk: a victim directory outside the node
byte for byte unchanged (:func:`migrate.testing.tree.read_tree` before and after),
keys that the other user tries, and fails, to open, the configuration's mode
and owner, and the exact X15.4 tree after rollback and the exact X15.5 tree
(modulo journal times) after apply.

Root is required (CI runs as root): without it every test fails, none skips.
ACLs and the linear-time parsing are tested in ``test_acl`` and ``test_linear``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import support
from support import CERTS, CONFIG, JOURNAL, RETIRED, STATE

from migrate.testing import faults
from migrate.testing.tree import Entry, Tree, diff_trees, read_tree, write_tree

OTHER = 65534  # nobody / nogroup: the unprivileged user the tests play
SCENARIO = "core"  # its _nobody is uid 65534: the attacker owns server.pem, ca.pem and generated_csr/
KEYS = ("privkey.pem", "clientprivkey.pem", "server-ssh.pem", "client-ssh.pem")
PROJECT = Path(__file__).resolve().parent.parent
ERROR_LINE = re.compile(r"^error\[(?P<id>[a-z0-9-]+)\]: ", re.MULTILINE)
VICTIM_FILE = b"the victim's own bytes: no path in a journal may reach them\n"
JOURNAL_CAP = 64 << 10  # the journal on disk stays under 64 KiB, whatever the configuration holds

# A separate interpreter that takes the node's lock, says so, and holds it (as in test_kill).
LOCK_HOLDER = """
import sys, time
from migrate import journal
from migrate.scan import Layout
with journal.locked(Layout.for_node(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


# --- The other user -------------------------------------------------------------

_DROP_FAILED = 3  # the child could not become the other user: a harness failure, never an answer


def as_other_user(fn: Callable[[], object]) -> int:
    """Run ``fn`` in a forked child as uid/gid 65534 with no supplementary group; its exit code.

    0: ``fn`` returned; 1: it raised :class:`PermissionError`; 2: it raised
    anything else (the traceback goes to file descriptor 2, which pytest
    captures, as does anything ``fn`` prints: the child writes to the real
    descriptors and flushes them before ``os._exit``).
    """
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest, whatever happens
        code = _DROP_FAILED
        try:
            sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115 - the child exits below
            sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
            try:
                os.setgroups([])
                os.setresgid(OTHER, OTHER, OTHER)
                os.setresuid(OTHER, OTHER, OTHER)
                if os.getresuid() != (OTHER,) * 3 or os.getresgid() != (OTHER,) * 3 or os.getgroups():
                    raise RuntimeError("still privileged after dropping")
            except BaseException:  # noqa: BLE001 - the child reports any failure and exits: it never returns
                sys.stderr.write("as_other_user: could not become uid/gid 65534\n" + traceback.format_exc())
                code = _DROP_FAILED
            else:
                try:
                    fn()
                    code = 0
                except PermissionError:
                    code = 1
                except BaseException:  # noqa: BLE001 - exit 2 stands for any other error, reported above
                    sys.stderr.write(f"as_other_user: {getattr(fn, '__name__', fn)!r} failed\n")
                    sys.stderr.write(traceback.format_exc())
                    code = 2
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), f"the other user's child died of signal {os.WTERMSIG(status)}"
    code = os.WEXITSTATUS(status)
    assert code != _DROP_FAILED, "the child could not become uid/gid 65534 (see its stderr)"
    return code


def _read_one_byte(path: Path) -> None:
    with open(path, "rb") as f:
        f.read(1)


def readable_by_other(path: Path) -> bool:
    """Whether the other user can open ``path`` and read from it; an error other than EACCES fails the test."""
    code = as_other_user(functools.partial(_read_one_byte, path))
    assert code in (0, 1), f"{path}: the other user's open failed with something else than EACCES (exit {code})"
    return code == 0


def assert_private(cert_dir: Path, state_dir: Path | None = None) -> None:
    """The other user can open none of the keys in ``cert_dir`` nor any file of ``state_dir``."""
    paths = [cert_dir / name for name in KEYS if os.path.lexists(cert_dir / name)]
    assert cert_dir / "privkey.pem" in paths, f"no key to try in {cert_dir}"
    if state_dir is not None and os.path.lexists(state_dir) and stat.S_ISDIR(os.lstat(state_dir).st_mode):
        paths += [state_dir / name for name in sorted(os.listdir(state_dir))]
    readable = [str(path) for path in paths if readable_by_other(path)]
    assert readable == [], f"uid {OTHER} can read: {readable}"


# --- Fixtures and helpers -------------------------------------------------------


@pytest.fixture(autouse=True)
def _must_be_root():
    """These tests play a second user: only root can become one.  Not root is a failure, never a skip."""
    if os.geteuid() != 0:
        pytest.fail("test_attacks must run as root (CI does): it forks children that become uid 65534")


@pytest.fixture
def cli(run, capsys):
    """``run`` (exit code, stdout, stderr), minus what the setup printed: until ``main`` configures it, the log goes to stdout."""

    def cli(*argv):
        capsys.readouterr()
        return run(*argv)

    return cli


@pytest.fixture
def base():
    """A 0755 directory under /tmp that the other user can traverse (pytest's tmp_path is under a 0700 one)."""
    path = tempfile.mkdtemp(prefix="attacks-", dir="/tmp")
    os.chmod(path, 0o755)
    try:
        yield Path(path)
    finally:
        shutil.rmtree(path)


def make_victim(base: Path) -> Path:
    """A root-owned directory outside the node, with a file and a subdirectory: what no attack may touch."""
    victim = base / "victim"
    write_tree(
        {
            "file": Entry("file", 0o644, 0, 0, data=VICTIM_FILE),
            "sub": Entry("dir", 0o755, 0, 0),
            "sub/keep": Entry("file", 0o600, 0, 0, data=b"kept\n"),
        },
        victim,
    )
    os.chmod(victim, 0o755)
    return victim


def migrated_node(base: Path, tree: Tree | None = None) -> tuple[Path, Tree, Tree]:
    """Plant ``tree`` (the scenario's by default) at ``base/node`` and apply it; (root, X15.4 tree, X15.5 tree)."""
    original = tree if tree is not None else support.scenario(SCENARIO)
    root = base / "node"
    migrated = support.clean_migration(original, root)
    assert support.verify_ids(root) == []
    return root, original, migrated


def error_ids(err: str) -> list[str]:
    """The ids of the ``error[id]:`` lines on stderr."""
    return ERROR_LINE.findall(err)


def error_lines(err: str) -> list[str]:
    """The ``error[...]`` lines of stderr (log lines carry times: they are left out of comparisons)."""
    return [line for line in err.splitlines() if line.startswith("error[")]


def blocker_findings(out: str) -> list[dict]:
    """The blocker findings of a JSON report."""
    return [f for f in json.loads(out)["findings"] if f["severity"] == "blocker"]


def edit_journal(root: Path, edit: Callable[[dict], None]) -> None:
    """Rewrite the node's journal after ``edit`` changed its JSON (the file keeps its mode and owner)."""
    path = root / JOURNAL
    record = json.loads(path.read_bytes())
    edit(record)
    path.write_bytes(json.dumps(record, indent=2, sort_keys=True).encode() + b"\n")


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _first_created(record: dict) -> dict:
    return next(a for a in record["actions"] if isinstance(a, dict) and a.get("action") == "create-file")


# --- 0. The harness ------------------------------------------------------------


class TestHarness:
    def test_the_other_user_is_real(self, base):
        """The child really is uid/gid 65534: it reads a world-readable file, is refused a root-only one, and has no group."""
        root, _, _ = migrated_node(base)
        assert readable_by_other(root / CERTS / "ca.pem")
        assert not readable_by_other(root / CERTS / "privkey.pem")
        assert as_other_user(lambda: os.listdir(root / STATE)) == 1  # 0700 root
        assert as_other_user(lambda: os.mkdir(root / "persistent" / "x")) == 1  # 0755 root
        assert as_other_user(lambda: 1 / 0) == 2


# --- 1. The journal is not obeyed blindly ----------------------------------------


def _aim_at(path: str, data: bytes | None):
    """An edit pointing the journal's first created file at ``path``, with the sha256 of ``data`` when given."""

    def edit(record: dict) -> None:
        entry = _first_created(record)
        entry["path"] = path
        if data is not None:
            entry["sha256"] = _sha(data)

    return edit


def _set_types(record: dict) -> None:
    _first_created(record)["sha256"] = 5


def _actions_not_a_list(record: dict) -> None:
    record["actions"] = {}


def _config_mode_owner(record: dict) -> None:
    record["config"].update({"mode": "4777", "uid": OTHER, "gid": OTHER})


def _format_1_lying(record: dict) -> None:
    """The journal as expressway-migrate 0.1.0 wrote it (format 1 kept the config's path, mode and owner), lying about both."""
    record["format_version"] = 1
    record["config"].update({"path": CONFIG, "mode": "4777", "uid": OTHER, "gid": OTHER})


# name -> (edit(record, root, victim), whether the journal names a path outside the node)
JOURNAL_ATTACKS = {
    "absolute-path": (lambda rec, root, victim: _aim_at(str(victim / "file"), VICTIM_FILE)(rec), True),
    "dotdot-from-certs": (
        lambda rec, root, victim: _aim_at("persistent/certs/../../../victim/file", VICTIM_FILE)(rec),
        True,
    ),
    "dotdot-from-root": (lambda rec, root, victim: _aim_at("../victim/file", VICTIM_FILE)(rec), True),
    "unmanaged-ca": (
        lambda rec, root, victim: _aim_at(f"{CERTS}/ca.pem", (root / CERTS / "ca.pem").read_bytes())(rec),
        False,
    ),
    "server-key": (
        lambda rec, root, victim: _aim_at(f"{CERTS}/privkey.pem", (root / CERTS / "privkey.pem").read_bytes())(rec),
        False,
    ),
    "sha256-not-a-string": (lambda rec, root, victim: _set_types(rec), False),
    "actions-not-a-list": (lambda rec, root, victim: _actions_not_a_list(rec), False),
    "config-mode-owner": (lambda rec, root, victim: _config_mode_owner(rec), False),
    "config-foreign-path": (lambda rec, root, victim: rec["config"].update(path=str(victim / "file")), True),
}


class TestJournalIsInput:
    @pytest.mark.parametrize("attack", sorted(JOURNAL_ATTACKS))
    def test_a_forged_journal_is_refused_and_touches_nothing(self, base, cli, attack):
        """A journal naming a path, a type or a mode/owner the layout does not allow is journal-invalid for precheck, rollback and rollback --force, which change nothing anywhere."""
        victim = make_victim(base)
        root, _, _ = migrated_node(base)
        edit, foreign = JOURNAL_ATTACKS[attack]
        edit_journal(root, lambda record: edit(record, root, victim))
        world = read_tree(base)

        code, out, err = cli("precheck", root, "--format", "json")
        assert code == 1, out + err
        assert "journal-invalid" in {f["id"] for f in blocker_findings(out)}, out
        answers = {}
        for argv in (["rollback"], ["rollback", "--force"]):
            code, out, err = cli(*argv, root, "--format", "json")
            assert code == 1, f"{argv}: {out}{err}"
            assert error_ids(err) == ["journal-invalid"], f"{argv}: {err}"
            assert json.loads(out)["error"]["id"] == "journal-invalid", out
            answers[" ".join(argv)] = (code, out, error_lines(err))
            assert diff_trees(world, read_tree(base)) == [], argv  # neither the node nor the victim changed

        if foreign:  # the answer is the same whether the foreign path exists or not
            away = base / "file-away"
            os.rename(victim / "file", away)
            try:
                for argv in (["rollback"], ["rollback", "--force"]):
                    code, out, err = cli(*argv, root, "--format", "json")
                    assert (code, out, error_lines(err)) == answers[" ".join(argv)], argv
            finally:
                os.rename(away, victim / "file")
            assert diff_trees(world, read_tree(base)) == []
        assert_private(root / CERTS, root / STATE)

    @pytest.mark.parametrize(
        "lie", [None, _config_mode_owner, _format_1_lying], ids=["as-written", "lying-mode-owner", "format-1-lying"]
    )
    def test_rollback_restores_the_configs_own_mode_and_owner(self, base, cli, lie):
        """After rollback the configuration has the mode and owner it had before apply, whatever the journal says about them."""
        original = dict(support.scenario(SCENARIO))
        planted_config = original[CONFIG] = Entry("file", 0o640, 0, support.PFWD, data=original[CONFIG].data)
        victim = make_victim(base)
        root, original, _ = migrated_node(base, original)
        if lie is not None:
            edit_journal(root, lie)
        victim_before = read_tree(victim)
        node_before = read_tree(root)

        code, _, err = cli("rollback", root)
        after = read_tree(root)
        config = after[CONFIG]
        assert (config.mode, config.uid, config.gid) == (0o640, 0, support.PFWD), err
        if lie is None:
            assert code == 0, err
            assert diff_trees(original, after) == []  # exact X15.4, the configuration's mode and owner included
        elif code == 0:
            assert diff_trees(original, after) == []
        else:
            assert error_ids(err) == ["journal-invalid"], err
            assert diff_trees(node_before, after) == []
        assert after[CONFIG].data in (planted_config.data, node_before[CONFIG].data)
        assert diff_trees(victim_before, read_tree(victim)) == []
        assert_private(root / CERTS, root / STATE)


# --- 2. Directories are checked ----------------------------------------------------


def _loosen(root: Path, case: str) -> None:
    """As root, make one directory of the node writable (or owned) by someone else."""
    if case == "persistent-group-writable":
        os.chown(root / "persistent", 0, OTHER)
        os.chmod(root / "persistent", 0o775)
    elif case == "root-world-writable":
        os.chmod(root, 0o777)
    elif case == "certs-other-writable":
        os.chmod(root / CERTS, 0o757)
    elif case == "state-dir-foreign-owner":  # made by the attacker earlier, or handed over since
        if not os.path.lexists(root / STATE):
            os.mkdir(root / STATE, 0o700)
        os.chown(root / STATE, OTHER, OTHER)
    else:
        raise ValueError(case)


# The directory each case loosens, as a finding names it (the root may be named several ways).
UNSAFE_PATHS = {
    "persistent-group-writable": {"persistent"},
    "root-world-writable": None,
    "certs-other-writable": {CERTS},
    "state-dir-foreign-owner": {STATE},
}


def _plant_state(root: Path, journal: bytes) -> Callable[[], None]:
    """The attacker's move through a group-writable ``persistent``: the tool's state directory is now theirs."""

    def plant() -> None:
        state = root / STATE
        if os.path.lexists(state):
            os.rename(state, root / "persistent" / ".cert-migration-old")
        os.mkdir(state, 0o755)
        (state / "journal.json").write_bytes(journal)

    return plant


class TestDirectoriesAreChecked:
    @pytest.mark.parametrize("node_state", ["x15.4", "x15.5"])
    @pytest.mark.parametrize("case", sorted(UNSAFE_PATHS))
    def test_a_directory_others_can_write_is_refused(self, base, cli, case, node_state):
        """A node directory writable or owned by another user is an unsafe-directory blocker for precheck, and apply and rollback refuse with it, changing nothing."""
        make_victim(base)
        original = support.scenario(SCENARIO)
        if node_state == "x15.4":
            root = base / "node"
            support.plant(original, root)
        else:
            root, _, _ = migrated_node(base)
        _loosen(root, case)
        if case == "persistent-group-writable":  # the group really can write: the attacker plants a journal
            ca = (root / CERTS / "ca.pem").read_bytes()
            forged = {
                "format_version": 1,
                "tool": "expressway-migrate 0.1.0",
                "state": "applied",
                "fingerprint": "sha256:" + "0" * 64,
                "config": None,
                "actions": [{"action": "create-file", "path": f"{CERTS}/ca.pem", "sha256": _sha(ca), "done": True}],
            }
            assert as_other_user(_plant_state(root, json.dumps(forged).encode())) == 0
            assert (root / STATE).stat().st_uid == OTHER
        world = read_tree(base)

        code, out, err = cli("precheck", root, "--format", "json")
        assert code == 1, out + err
        unsafe = [f for f in blocker_findings(out) if f["id"] == "unsafe-directory"]
        assert unsafe, out
        if UNSAFE_PATHS[case] is not None:
            assert UNSAFE_PATHS[case] & {f["path"] for f in unsafe}, unsafe
        for command in ("apply", "rollback"):
            code, out, err = cli(command, root, "--format", "json")
            assert code == 1, f"{command}: {out}{err}"
            assert "unsafe-directory" in error_ids(err), f"{command}: {err}"
            assert diff_trees(world, read_tree(base)) == [], command
        assert diff_trees(world, read_tree(base)) == []  # the victim outside the node included
        assert_private(root / CERTS)


# --- 3. A directory swapped mid-apply cannot redirect a write ------------------------


def _is_client_key_staging(name: str) -> bool:
    """Whether ``name`` is a staging name of clientprivkey.pem: ``.clientprivkey.pem[.<random>].cert-migration.tmp``."""
    return name.startswith(".clientprivkey.pem") and name.endswith(support.STAGING_SUFFIX)


# Where apply meets the swap: the first write of clientprivkey.pem's staging file (its creation),
# or the first call that publishes it under its own name (link, rename or replace).
SWAP_POINTS: dict[str, Callable[[faults.Call], bool]] = {
    "staging-created": lambda call: call.writes and _is_client_key_staging(call.target.rpartition("/")[2]),
    "published": lambda call: (
        call.name in ("link", "rename", "replace") and call.target.rpartition(" -> ")[2].endswith("/clientprivkey.pem")
    ),
}


class TestSwappedDirectory:
    @pytest.mark.parametrize("point", sorted(SWAP_POINTS))
    def test_certs_swapped_for_a_link_mid_apply_writes_nothing_outside(self, base, cli, point):
        """Swapping persistent/certs for a link to a victim as apply writes clientprivkey.pem creates nothing there; apply fails, the key stays private, and the node recovers both ways."""
        at = SWAP_POINTS[point]
        original = support.scenario(SCENARIO)
        reference = support.clean_migration(original, base / "reference")
        counted = base / "count"
        support.plant(original, counted)
        calls = faults.count_calls(lambda: cli("apply", counted))
        number = next((c.number for c in calls if at(c)), None)
        assert number is not None, [str(c) for c in calls]

        victim = make_victim(base)
        victim_before = read_tree(victim)
        victim_names = set(os.listdir(victim))
        root = base / "node"
        support.plant(original, root)
        certs, certs_old = root / CERTS, root / "persistent" / "certs-old"
        swapped: list[faults.Call] = []
        seen_in_victim: list[str] = []

        def hook(call: faults.Call) -> None:
            if call.number == number:
                swapped.append(call)
                os.rename(certs, certs_old)
                os.symlink(victim, certs)
            if swapped and set(os.listdir(victim)) != victim_names:
                seen_in_victim.append(f"{call}: {sorted(set(os.listdir(victim)) ^ victim_names)}")

        try:
            with faults.inject(observe=hook):
                code, out, err = cli("apply", root, "--format", "json")
            assert swapped and at(swapped[0]), f"the swap point moved: {swapped}"
            assert seen_in_victim == [], seen_in_victim[:3]  # never, not even for a moment
            assert diff_trees(victim_before, read_tree(victim)) == []
            assert code == 1, out + err
            assert_private(certs_old, root / STATE)
        finally:
            if os.path.islink(certs):
                os.unlink(certs)
                os.rename(certs_old, certs)
        assert diff_trees(victim_before, read_tree(victim)) == []
        assert_private(certs, root / STATE)

        code, _, err = cli("rollback", root)
        assert code == 0, err
        assert diff_trees(original, read_tree(root)) == []  # exact X15.4
        code, _, err = cli("apply", root)
        assert code == 0, err
        assert (
            diff_trees(support.without_journal_times(reference), support.without_journal_times(read_tree(root))) == []
        )
        assert diff_trees(victim_before, read_tree(victim)) == []
        assert_private(certs, root / STATE)


# --- 4. rollback --force never renames through a planted link ---------------------------


def _displaced_names(now: datetime) -> list[str]:
    """Displaced-directory names a clock-based scheme could pick around ``now``: each second, and each minute, of two minutes."""
    names = []
    for seconds in range(-5, 125):
        names.append((now + timedelta(seconds=seconds)).strftime("%Y%m%dT%H%M%SZ"))
    for minutes in (0, 1, 2):
        names.append((now + timedelta(minutes=minutes)).strftime("%Y%m%dT%H%MZ"))
    return [f".cert-migration-displaced-{name}" for name in names]


class TestForcedRollback:
    def test_force_moves_conflicts_into_a_new_private_directory(self, base, cli):
        """rollback --force puts a changed client.pem in a directory it creates (root, 0700, not a planted name), never through a planted link or directory."""
        victim = make_victim(base)
        victim_before = read_tree(victim)
        root, original, _ = migrated_node(base)
        changed = support.other_cert()
        (root / CERTS / "client.pem").write_bytes(changed)  # keeps its mode and owner: a conflict for rollback
        planted = _displaced_names(datetime.now(UTC))
        for i, name in enumerate(planted):
            path = root / "persistent" / name
            if i % 2 == 0:  # a link to the victim ...
                os.symlink(victim, path)
            else:  # ... or a directory the other user owns and everyone can write
                os.mkdir(path)
                os.chown(path, OTHER, OTHER)
                os.chmod(path, 0o777)
        node_before = read_tree(root)

        code, out, err = cli("rollback", "--force", root, "--format", "json")
        assert diff_trees(victim_before, read_tree(victim)) == []
        assert code == 0, out + err
        displaced = json.loads(out)["displaced"]
        assert displaced, out
        moved_to = Path(displaced) if os.path.isabs(displaced) else root / displaced
        assert moved_to.name not in planted
        st = os.lstat(moved_to)
        assert stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o700 and st.st_uid == 0, oct(st.st_mode)
        assert (moved_to / "client.pem").read_bytes() == changed
        for name in planted:  # every decoy as it was
            rel = f"persistent/{name}"
            assert read_tree(root).get(rel) == node_before[rel], rel
        rel_moved = os.path.relpath(moved_to, root)
        left = {
            rel: entry
            for rel, entry in read_tree(root).items()
            if rel not in node_before or not rel.startswith("persistent/.cert-migration-displaced-")
            if rel != rel_moved and not rel.startswith(f"{rel_moved}/")
        }
        assert diff_trees(original, left) == []  # exact X15.4 besides the displaced files
        assert_private(root / CERTS)


# --- 5. Locks for every answer ---------------------------------------------------------


class TestLockedAnswers:
    @pytest.mark.parametrize("command", ["apply", "verify", "status"])
    def test_a_command_on_a_locked_node_says_so(self, base, cli, command):
        """While another process holds the node's lock, apply, verify and status exit 1 with lock-held rather than judge a node in flux."""
        root, _, _ = migrated_node(base)
        with subprocess.Popen(
            [sys.executable, "-c", LOCK_HOLDER, str(root)],
            cwd=PROJECT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        ) as holder:
            try:
                assert holder.stdout is not None and holder.stderr is not None
                if "locked\n" not in iter(holder.stdout.readline, ""):  # it died before taking the lock
                    holder.wait(timeout=10)
                    pytest.fail(f"the lock holder did not take the lock: {holder.stderr.read()}")
                held = read_tree(base)
                code, out, err = cli(command, root, "--format", "json")
                assert code == 1, out + err
                assert error_ids(err) == ["lock-held"], err
                assert json.loads(out)["error"]["id"] == "lock-held", out
                assert diff_trees(held, read_tree(base)) == []
            finally:
                holder.kill()
                holder.wait(timeout=10)
        assert holder.returncode == -signal.SIGKILL


# --- 6. The journal's size is bounded ---------------------------------------------------


class TestJournalSize:
    def test_a_huge_retired_value_keeps_the_journal_small_and_rollback_exact(self, base, cli):
        """A retired line carrying 1.5 MB of control bytes leaves a journal under 64 KiB and an exact rollback, or a clean refusal; never a stuck node."""
        tree = dict(support.scenario(SCENARIO))
        config = tree[CONFIG]
        huge = b"*c xConfiguration " + RETIRED.encode() + b": " + b"\x01" * 1_500_000 + b"\n"
        tree[CONFIG] = Entry("file", config.mode, config.uid, config.gid, data=config.data + huge)
        root = base / "node"
        support.plant(tree, root)

        code, out, err = cli("precheck", root, "--format", "json")
        blockers = [f["id"] for f in blocker_findings(out)]
        if code != 0:  # a refusal is acceptable when it is clear and changes nothing
            assert blockers, out
            code, _, err = cli("apply", root)
            assert code == 1 and error_ids(err) == [blockers[0]], err
            assert diff_trees(tree, read_tree(root)) == []
            return
        code, out, err = cli("apply", root, "--format", "json")
        assert code == 0, out + err
        size = os.lstat(root / JOURNAL).st_size
        assert size < JOURNAL_CAP, f"the journal holds {size} bytes"
        assert support.verify_ids(root) == []
        assert_private(root / CERTS, root / STATE)
        code, _, err = cli("rollback", root)
        assert code == 0, err
        assert read_tree(root)[CONFIG].data == tree[CONFIG].data
        assert diff_trees(tree, read_tree(root)) == []


# --- Round two: the files written for the operator ----------------------------------


def _shared(base: Path, case: str) -> Path:
    """A directory for the operator's files that the other user can change, in one of the ways it can."""
    shared = base / "shared"
    shared.mkdir()
    if case == "owned-by-other":
        os.chmod(shared, 0o755)
        os.chown(shared, OTHER, OTHER)
    elif case == "group-writable":
        os.chmod(shared, 0o775)
        os.chown(shared, 0, OTHER)
    elif case == "sticky-world-writable":  # /tmp's shape
        os.chmod(shared, 0o1777)
    elif case == "acl-grants-write":
        os.chmod(shared, 0o755)
        subprocess.run(["setfacl", "-m", f"u:{OTHER}:rwx", str(shared)], check=True)
    return shared


UNSAFE_DIRECTORIES = ["owned-by-other", "group-writable", "sticky-world-writable", "acl-grants-write"]


def _node_and_victim(base: Path) -> tuple[Path, Tree, Path, Tree]:
    root = base / "node"
    tree = support.scenario(SCENARIO)
    support.plant(tree, root)
    victim = make_victim(base)
    return root, tree, victim, read_tree(victim)


class TestOperatorOutputs:
    @pytest.mark.parametrize("case", UNSAFE_DIRECTORIES)
    @pytest.mark.parametrize("command", ["plan", "csr"])
    def test_a_directory_another_user_can_change_is_refused(self, base, cli, case, command):
        """plan --out and csr --out in a directory the other user can change: output-directory-unsafe, and its planted
        link to a root-only file is never written through: nothing is created, the victim keeps its bytes."""
        root, tree, victim, victim_before = _node_and_victim(base)
        shared = _shared(base, case)
        names = ("plan.json",) if command == "plan" else ("core.csr", "core.key")
        for name in names:  # the other user points each name the tool will create at the victim
            assert as_other_user(lambda name=name: os.symlink(victim / "file", shared / name)) == 0
        before = read_tree(shared)
        code, _, err = cli(command, root, "--out", shared / names[0])
        assert code == 1 and error_ids(err) == ["output-directory-unsafe"], err
        assert str(shared) in err
        assert read_tree(victim) == victim_before and read_tree(shared) == before
        assert diff_trees(tree, read_tree(root)) == []

    def test_csr_refuses_the_stores_own_generated_csr(self, base, cli):
        """The store's CSR work area is _nobody's: csr --out there is refused, and no key lands where _nobody can swap it."""
        root, tree, _, _ = _node_and_victim(base)
        area = root / CERTS / "generated_csr"
        assert os.stat(area).st_uid == OTHER
        code, _, err = cli("csr", root, "--out", area / "core.csr")
        assert code == 1 and error_ids(err) == ["output-directory-unsafe"], err
        assert diff_trees(tree, read_tree(root)) == []

    @pytest.mark.parametrize("kind", ["link", "fifo", "file"])
    @pytest.mark.parametrize("command", ["plan", "csr"])
    def test_an_entry_at_the_name_is_never_written_over_or_through(self, base, cli, kind, command):
        """In a safe directory, a link, a FIFO or a file already at the name: output-exists at once (no hang on the
        FIFO), the entry as it was, the victim unchanged, and csr leaves no key behind."""
        root, tree, victim, victim_before = _node_and_victim(base)
        out = base / "out"
        out.mkdir(mode=0o700)
        name = "plan.json" if command == "plan" else "core.key"  # csr: the key's name is taken, the request's free
        if kind == "link":
            os.symlink(victim / "file", out / name)
        elif kind == "fifo":
            os.mkfifo(out / name)
        else:
            (out / name).write_bytes(b"the operator's own file\n")
        before = read_tree(out)
        target = out / ("plan.json" if command == "plan" else "core.csr")
        code, _, err = cli(command, root, "--out", target)
        assert code == 1 and error_ids(err) == ["output-exists"], err
        assert read_tree(out) == before and read_tree(victim) == victim_before
        assert diff_trees(tree, read_tree(root)) == []

    @pytest.mark.parametrize("command", ["plan", "csr"])
    def test_the_directory_swapped_after_its_check_is_still_the_one_written_in(self, base, cli, monkeypatch, command):
        """The output directory renamed aside and replaced by a link to the victim right after it was checked: the
        files land in the directory that was checked (held open), none in the victim."""
        from migrate import outputs

        root, _, victim, victim_before = _node_and_victim(base)
        out = base / "out"
        out.mkdir(mode=0o700)
        checked = outputs.directory_problem

        def check_then_swap(fd, euid):
            problem = checked(fd, euid)
            os.rename(out, base / "aside")
            os.symlink(victim, out)
            return problem

        monkeypatch.setattr(outputs, "directory_problem", check_then_swap)
        names = ["plan.json"] if command == "plan" else ["core.csr", "core.key"]
        code, _, err = cli(command, root, "--out", out / names[0])
        assert code == 0, err
        assert sorted(os.listdir(base / "aside")) == sorted(names)
        assert read_tree(victim) == victim_before
        if command == "csr":
            assert stat.S_IMODE(os.stat(base / "aside" / "core.key").st_mode) == 0o400


def _x155_core(base: Path) -> tuple[Path, Tree]:
    from install_support import condition2

    root = base / "core"
    tree = condition2("core")
    support.plant(tree, root)
    return root, tree


def _client_identity():
    from install_support import core_client

    return core_client()


class TestOperatorKeys:
    @pytest.mark.parametrize(
        "case", ["other-users-key", "world-readable", "group-readable", "acl-reader", "link-to-roots-key"]
    )
    def test_a_key_another_user_could_have_put_or_can_read_is_refused(self, base, cli, case):
        """install-client --key naming a key the other user owns, can read (mode or ACL), or a link to one of root's:
        install-key-unsafe, and the client store is untouched."""
        root, tree = _x155_core(base)
        ident = _client_identity()
        work = base / "work"
        work.mkdir(mode=0o700)
        (work / "core.crt").write_bytes(ident.cert_pem)
        key = work / "core.key"
        if case == "link-to-roots-key":
            real = work / "real.key"
            real.write_bytes(ident.key_pem())
            os.chmod(real, 0o400)
            os.symlink(real, key)
        else:
            key.write_bytes(ident.key_pem())
            os.chmod(key, {"world-readable": 0o644, "group-readable": 0o640}.get(case, 0o600))
            if case == "other-users-key":  # _nobody swapped in a key of its own, which it knows
                os.chown(key, OTHER, OTHER)
            elif case == "acl-reader":
                subprocess.run(["setfacl", "-m", f"u:{OTHER}:r", str(key)], check=True)
        code, _, err = cli("install-client", root, "--cert", work / "core.crt", "--key", key)
        assert code == 1 and error_ids(err) == ["install-key-unsafe"], err
        assert diff_trees(tree, read_tree(root)) == []

    def test_the_swap_in_generated_csr_is_refused(self, base, cli):
        """The CSR work area's attack end to end: _nobody replaces the key there with its own (a key it knows, world
        readable): install-client refuses it, and the node's client identity stays the one it had."""
        root, tree = _x155_core(base)
        area = root / CERTS / "generated_csr"
        ident = _client_identity()
        assert as_other_user(lambda: (area / "core.key").write_bytes(ident.key_pem())) == 0
        assert as_other_user(lambda: (area / "core.crt").write_bytes(ident.cert_pem)) == 0
        before = read_tree(root)
        code, _, err = cli("install-client", root, "--cert", area / "core.crt", "--key", area / "core.key")
        assert code == 1 and error_ids(err) == ["install-key-unsafe"], err
        assert diff_trees(before, read_tree(root)) == []

    @pytest.mark.parametrize("which", ["--cert", "--key", "--chain"])
    def test_a_fifo_for_any_input_never_hangs(self, base, cli, which):
        """A FIFO named as the certificate, key or chain is refused at once (install-input-unreadable), never opened."""
        root, tree = _x155_core(base)
        ident = _client_identity()
        work = base / "work"
        work.mkdir(mode=0o700)
        files = {"--cert": work / "core.crt", "--key": work / "core.key", "--chain": work / "chain.pem"}
        files["--cert"].write_bytes(ident.cert_pem)
        files["--key"].write_bytes(ident.key_pem())
        os.chmod(files["--key"], 0o400)
        files["--chain"].write_bytes(ident.ca.cert_pem)
        files[which].unlink()
        os.mkfifo(files[which], 0o600)
        argv = [sys.executable, "-m", "migrate", "install-client", str(root)]
        for flag, path in files.items():
            argv += [flag, str(path)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60)  # a hang fails here
        assert result.returncode == 1 and error_ids(result.stderr) == ["install-input-unreadable"], result.stderr
        assert diff_trees(tree, read_tree(root)) == []
