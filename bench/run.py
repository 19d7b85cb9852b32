"""Benchmarks of the pre-check and the rehearsal against their floors and targets, measured side by side.

    .venv/bin/python bench/run.py               # 1,000 nodes, medians of 3
    .venv/bin/python bench/run.py --nodes 200   # quicker
    .venv/bin/python bench/run.py --smoke       # a few nodes, one run: checks the script works (CI)

What it measures, in one run on one synthetic fleet (RSA-4096 identities as in
the field: each node its own certificate, the keys from a small pool, since
generating them is slow), each figure printed beside its target:

- fleet: ``expressway-migrate precheck --fleet DIR`` ÷ a bare script that reads
  the same files, parses each certificate and key once and checks the leaf
  certificate's signature (as the precheck does), with as many processes
  (target ≤ 1.6); and, for scale, ÷ the same script without the signature
  check;
- cold start: ``expressway-migrate plan NODE`` ÷ ``python -c "import
  cryptography.x509"`` (target ≤ 1.6), with the package's bytecode cached as
  an installed wheel has it;
- in process: the cost per node of precheck + plan, and of a rehearsal of the
  cycle in pyfakefs (without the crash rehearsal), at growing fleet sizes: the
  per-node figure should stay flat (linear growth);
- the crash rehearsal: the CPU of a node's whole rehearsal with its crash
  rehearsal (this process's and its forked children's, at 1 and 10 nodes;
  target ≤ 1 s), and that ÷ the CPU of one ``apply`` of the same node in the
  same fake file system (as a rehearsal has it); and the wall time of ``expressway-migrate rehearse``
  (both bundled samples, crash rehearsal on; target ≤ 3 s).

Before it times anything, it checks that ``precheck --fleet`` counts the fleet
as it was built (nodes, ready, blocked, at risk), and stops if it does not.
Machines are noisy: every figure is the median of ``--repeat`` runs (at least
10 for the cold start), and the commands compared take turns.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent
TOOL = [sys.executable, "-m", "migrate"]
# The installed command, as users start it (``-m`` would add runpy's start-up).
COMMAND = [str(BIN / "expressway-migrate")] if (BIN / "expressway-migrate").exists() else TOOL

FLOOR = r"""
import os, sys
from concurrent.futures import ProcessPoolExecutor
from cryptography import x509
from cryptography.hazmat.primitives import serialization

NAMES = ("ca.pem", "server.pem", "privkey.pem", "server-ssh.pem")
VERIFY = os.environ.get("FLOOR_VERIFY") == "1"


def node(root):
    certs = os.path.join(root, "persistent", "certs")
    parsed = {}
    for name in NAMES:
        path = os.path.join(certs, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if b"CERTIFICATE" in data:
            parsed[name] = x509.load_pem_x509_certificates(data[data.index(b"-----BEGIN CERTIFICATE") :])
        if b"PRIVATE KEY" in data:
            end = data.index(b"PRIVATE KEY-----", data.index(b"PRIVATE KEY") + 11) + 16
            serialization.load_pem_private_key(data[:end], None, unsafe_skip_rsa_key_validation=True)
    with open(os.path.join(root, "persistent", "xconfiguration.txt"), "rb") as f:
        f.read()
    if VERIFY and "server.pem" in parsed:  # and check the leaf's signature against its CA
        leaf = parsed["server.pem"][0]
        for ca in parsed.get("ca.pem", ()):
            if ca.subject == leaf.issuer:
                leaf.verify_directly_issued_by(ca)
    return 1


roots = sys.argv[1:]
with ProcessPoolExecutor(os.cpu_count()) as pool:
    assert sum(pool.map(node, roots, chunksize=16)) == len(roots)
"""


def kind_of(i: int) -> str:
    """What the ``i``-th node of the synthetic fleet is: every 10th blocked, every 7th at risk."""
    return "blocked" if i % 10 == 9 else "at-risk" if i % 7 == 6 else "healthy"


def check_counts(fleet: Path, count: int) -> dict:
    """Run ``precheck --fleet`` once and compare its summary with how the fleet was built; raise if they differ."""
    argv = [*COMMAND, "precheck", "--fleet", str(fleet), "--format", "json"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)  # exit 1: some nodes are blocked
    if done.returncode not in (0, 1):
        raise SystemExit(f"precheck --fleet failed (exit {done.returncode}): {done.stderr.strip()}")
    summary = json.loads(done.stdout)["summary"]
    kinds = [kind_of(i) for i in range(count)]
    expected = {
        "nodes": count,
        "ready": count - kinds.count("blocked"),
        "blocked": kinds.count("blocked"),
        "at_risk": kinds.count("at-risk"),
    }
    got = {key: summary[key] for key in expected}
    if got != expected or done.returncode != (1 if expected["blocked"] else 0):
        raise SystemExit(f"precheck --fleet miscounted the fleet: {got} (exit {done.returncode}), built {expected}")
    return got


def build_fleet(root: Path, count: int) -> list[Path]:
    """``count`` X15.4 nodes under ``root``: mostly healthy, every 10th blocked, every 7th at risk.

    Every node has its own leaf certificate (its own name and serial, as in the
    field), so that no cache can serve one node's parse to the next; the
    RSA-4096 keys come from a small pool, and the CAs are shared by the fleet.
    """
    from migrate import policy
    from migrate.testing.factory import NodeSpec, issue, make_ca, node_tree
    from migrate.testing.tree import write_tree

    private, public = make_ca("Example Internal CA1"), make_ca("Example Public CA2", public=True)
    roots = []
    for i in range(count):
        kind = kind_of(i)
        cn = f"node-{i:04d}.example.com"
        if kind == "at-risk":
            identity = issue(public, cn, eku=["serverAuth"], key_type="rsa4096")
            spec = NodeSpec(role="edge", identity=identity, settings={policy.RETIRED_SETTING: "On"})
        else:
            identity = issue(private, cn, key_type="rsa4096")
            spec = NodeSpec(role="core", identity=identity, ssh="other" if kind == "blocked" else "same")
        node = root / f"site-{i // 50:03d}" / f"node-{i:04d}"
        write_tree(node_tree(spec), node)
        roots.append(node)
    return roots


def timed(commands: dict[str, tuple[list[str], dict | None]], repeat: int) -> dict[str, float]:
    """The median wall time of each command (its output thrown away), the commands taking turns.

    Taking turns, rather than timing one command ``repeat`` times and then the
    next, spreads the machine's other load over all of them alike.
    """
    times: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(repeat):
        for name, (argv, env) in commands.items():
            start = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def compile_package() -> None:
    """Cache the package's bytecode, as pip does when it installs a wheel (and did for cryptography).

    An editable install under ``PYTHONDONTWRITEBYTECODE`` would otherwise
    compile every module from source on every cold start.
    """
    import compileall

    import migrate

    compileall.compile_dir(os.path.dirname(migrate.__file__), quiet=1)


def cold_caches() -> None:
    """Forget every parsed certificate and setting name, as a new process would have.

    Otherwise a small fleet's certificates would all still be cached when the
    next run starts, and it would look cheaper per node than a large one.
    """
    from migrate import certs, xconfig

    for cached in (certs._cert_info, certs.x509_certificate, xconfig._normal):
        cached.cache_clear()


def per_node(run, roots: list[Path], repeat: int) -> float:
    """The median, over ``repeat`` runs each from cold caches, of the in-process cost per node of ``run(root)``."""
    times = []
    for _ in range(repeat):
        cold_caches()
        start = time.perf_counter()
        for root in roots:
            run(root)
        times.append((time.perf_counter() - start) / len(roots))
    return statistics.median(times)


def cpu_now() -> float:
    """The CPU seconds used so far by this process and by its children that have ended (the crash rehearsal forks)."""
    import resource

    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def crash_cpu_per_node(roots: list[Path], repeat: int) -> float:
    """The median, over ``repeat`` runs, of the CPU per node of a whole rehearsal with its crash rehearsal."""
    from migrate.testing.rehearsal import rehearse_tree
    from migrate.testing.tree import read_tree

    trees = [read_tree(root) for root in roots]
    times = []
    for _ in range(repeat):
        cold_caches()
        start = cpu_now()
        for tree in trees:
            report = rehearse_tree(tree, "/tandberg")
            if not report.ok or not report.crash_points:
                raise SystemExit(f"the crash rehearsal of a bench node failed: {report.as_dict()['steps']}")
        times.append((cpu_now() - start) / len(trees))
    return statistics.median(times)


def apply_cpu(root: Path, repeat: int) -> float:
    """The median CPU of one ``apply`` of the node at ``root`` in a fake file system as a rehearsal has it (pyfakefs's
    path arithmetic remembered: ``faster_pyfakefs``), each from X15.4 (rolled back)."""
    from migrate import writer
    from migrate.scan import Layout
    from migrate.testing.rehearsal import fake_filesystem, faster_pyfakefs, write_fake_tree
    from migrate.testing.tree import read_tree

    tree = read_tree(root)
    times = []
    with fake_filesystem() as fs, faster_pyfakefs(fs):
        write_fake_tree(tree, "/tandberg")
        layout = Layout.for_node("/tandberg")
        for _ in range(max(repeat, 10)):
            start = time.process_time()
            outcome = writer.apply(layout)
            times.append(time.process_time() - start)
            if outcome.result != "migrated" or writer.rollback(layout).result != "rolled-back":
                raise SystemExit(f"apply of a bench node did not migrate: {outcome.result}")
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="fleet size (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--smoke", action="store_true", help="a tiny fleet and one run: check the script works")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.nodes, args.repeat = 10, 1  # 10: one blocked node and one at risk among them
    from migrate import logs

    logs.configure(logs.WARNING)  # figures only
    sizes = sorted({n for n in (10, 100, 1000) if n <= args.nodes} | {args.nodes})
    crash_sizes = (
        [1] if args.smoke else [n for n in (1, 10) if n <= sum(kind_of(i) == "healthy" for i in range(args.nodes))]
    )

    from migrate import facts
    from migrate.plan import make_plan
    from migrate.scan import Layout, scan
    from migrate.testing.rehearsal import rehearse_tree
    from migrate.testing.tree import read_tree

    work = Path(tempfile.mkdtemp(prefix="expressway-bench-"))
    try:
        roots = build_fleet(work / "fleet", args.nodes)
        compile_package()
        counts = check_counts(work / "fleet", args.nodes)
        nodes = list(map(str, roots))
        verify_env = {**os.environ, "FLOOR_VERIFY": "1"}
        fleet_times = timed(
            {
                "fleet": ([*COMMAND, "precheck", "--fleet", str(work / "fleet"), "--format", "json"], None),
                "floor": ([sys.executable, "-c", FLOOR, *nodes], None),
                "verify_floor": ([sys.executable, "-c", FLOOR, *nodes], verify_env),
            },
            args.repeat,
        )
        fleet, floor, verify_floor = fleet_times["fleet"], fleet_times["floor"], fleet_times["verify_floor"]
        cold = timed(
            {
                "plan": ([*COMMAND, "plan", nodes[0], "--format", "json"], None),
                "imports": ([sys.executable, "-c", "import cryptography.x509"], None),
            },
            max(args.repeat, 10),
        )
        plan, imports = cold["plan"], cold["imports"]

        def precheck_and_plan(root: Path) -> None:
            make_plan(facts.analyse(scan(Layout.for_node(root))))

        def rehearsal(root: Path) -> None:
            rehearse_tree(read_tree(root), "/tandberg", crash=False)

        growth = {
            size: {
                "precheck_plan_ms": 1000 * per_node(precheck_and_plan, roots[:size], args.repeat),
                "rehearsal_ms": 1000 * per_node(rehearsal, roots[:size], 1),  # one run: it is the slow one
            }
            for size in sizes
        }
        # The crash rehearsal: at 1 node a median of --repeat runs, at 10 nodes one run (itself a mean of 10).
        healthy = [root for i, root in enumerate(roots) if kind_of(i) == "healthy"]  # a blocked node stops at precheck
        crash = {size: crash_cpu_per_node(healthy[:size], args.repeat if size == 1 else 1) for size in crash_sizes}
        one_apply = apply_cpu(healthy[0], args.repeat)
        samples = timed({"rehearse": ([*COMMAND, "rehearse", "--format", "json"], None)}, args.repeat)["rehearse"]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "nodes": args.nodes,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "counts": counts,  # checked against how the fleet was built
        "fleet_precheck_s": round(fleet, 3),
        "read_and_parse_floor_s": round(floor, 3),
        "fleet_ratio": round(fleet / floor, 2),
        "read_parse_and_verify_floor_s": round(verify_floor, 3),
        "fleet_ratio_to_verify_floor": round(fleet / verify_floor, 2),
        "cold_plan_s": round(plan, 3),
        "import_cryptography_x509_s": round(imports, 3),
        "cold_start_ratio": round(plan / imports, 2),
        "per_node": {str(k): {n: round(v, 2) for n, v in row.items()} for k, row in growth.items()},
        "crash_rehearsal_cpu_s_per_node": {str(k): round(v, 3) for k, v in crash.items()},
        "apply_cpu_ms": round(1000 * one_apply, 2),
        "crash_rehearsal_to_apply_ratio": round(crash[1] / one_apply, 1),
        "rehearse_samples_wall_s": round(samples, 2),
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.nodes} nodes, medians of {args.repeat}, {os.cpu_count()} CPUs")
    print(f"precheck --fleet counted them right: {', '.join(f'{n} {key}' for key, n in counts.items())}")
    print(
        f"fleet precheck {fleet:.2f} s / read, parse and verify the leaf's signature {verify_floor:.2f} s"
        f" = {fleet / verify_floor:.2f} (target <= 1.6)"
    )
    print(f"fleet precheck {fleet:.2f} s / read-and-parse floor {floor:.2f} s = {fleet / floor:.2f}")
    print(f"cold plan {plan:.3f} s / import cryptography.x509 {imports:.3f} s = {plan / imports:.2f} (target <= 1.6)")
    print("per node, in process:   nodes  precheck+plan  rehearsal (the cycle in pyfakefs, no crash rehearsal)")
    for size, row in growth.items():
        print(f"                       {size:5d}  {row['precheck_plan_ms']:9.2f} ms  {row['rehearsal_ms']:9.2f} ms")
    for size, cpu in crash.items():
        print(f"rehearsal with its crash rehearsal, CPU per node at {size} node(s): {cpu:.2f} s (target <= 1 s)")
    ratio = crash[1] / one_apply
    print(
        f"  that / one apply of the same node in pyfakefs {1000 * one_apply:.1f} ms = {ratio:.0f}"
        f" (the 1 s target is {1 / one_apply:.0f})"
    )
    print(f"rehearse (both samples, crash rehearsal on): {samples:.2f} s wall (target <= 3 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
