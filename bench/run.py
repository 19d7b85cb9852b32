"""Benchmarks of the pre-check against its physical floor, reported as ratios measured side by side.

    .venv/bin/python bench/run.py               # 1,000 nodes, medians of 3
    .venv/bin/python bench/run.py --nodes 200   # quicker
    .venv/bin/python bench/run.py --smoke       # a few nodes, one run: checks the script works (CI)

What it measures, in one run on one synthetic fleet (RSA-4096 identities as in
the field; a few keys are reused, since generating them is slow):

- fleet: ``expressway-migrate precheck --fleet DIR`` ÷ a bare script that reads
  the same files and parses each certificate and key once, with as many
  processes (target ≤ 1.5);
- cold start: ``expressway-migrate plan NODE`` ÷ ``python -c "import
  cryptography.x509"`` (target ≤ 1.2);
- in process: the cost per node of precheck + plan, and of a rehearsal of the
  cycle in pyfakefs (without the crash rehearsal), at growing fleet sizes: the
  per-node figure should stay flat (linear growth).

Machines are noisy: every figure is the median of ``--repeat`` runs.
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

FLOOR = r"""
import os, sys
from concurrent.futures import ProcessPoolExecutor
from cryptography import x509
from cryptography.hazmat.primitives import serialization

NAMES = ("ca.pem", "server.pem", "privkey.pem", "server-ssh.pem")


def node(root):
    certs = os.path.join(root, "persistent", "certs")
    for name in NAMES:
        path = os.path.join(certs, name)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            continue
        if b"CERTIFICATE" in data:
            x509.load_pem_x509_certificates(data[data.index(b"-----BEGIN CERTIFICATE") :])
        if b"PRIVATE KEY" in data:
            end = data.index(b"PRIVATE KEY-----", data.index(b"PRIVATE KEY") + 11) + 16
            serialization.load_pem_private_key(data[:end], None, unsafe_skip_rsa_key_validation=True)
    with open(os.path.join(root, "persistent", "xconfiguration.txt"), "rb") as f:
        f.read()
    return 1


roots = sys.argv[1:]
with ProcessPoolExecutor(os.cpu_count()) as pool:
    assert sum(pool.map(node, roots, chunksize=16)) == len(roots)
"""


def build_fleet(root: Path, count: int) -> list[Path]:
    """``count`` X15.4 nodes under ``root``: mostly healthy, every 10th blocked, every 7th at risk."""
    from migrate import policy
    from migrate.factory import NodeSpec, issue, make_ca, node_tree
    from migrate.tree import write_tree

    private, public = make_ca("Example Internal CA1"), make_ca("Example Public CA2", public=True)
    variants = {
        "healthy": node_tree(NodeSpec(role="core", identity=issue(private, "core.example.com", key_type="rsa4096"))),
        "blocked": node_tree(
            NodeSpec(role="core", identity=issue(private, "core.example.com", key_type="rsa4096"), ssh="other")
        ),
        "at-risk": node_tree(
            NodeSpec(
                role="edge",
                identity=issue(public, "edge.example.com", eku=["serverAuth"], key_type="rsa4096"),
                settings={policy.RETIRED_SETTING: "On"},
            )
        ),
    }
    roots = []
    for i in range(count):
        kind = "blocked" if i % 10 == 9 else "at-risk" if i % 7 == 6 else "healthy"
        node = root / f"site-{i // 50:03d}" / f"node-{i:04d}"
        write_tree(variants[kind], node)
        roots.append(node)
    return roots


def timed(argv: list[str], repeat: int) -> float:
    """The median wall time of running ``argv`` (its output thrown away)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_node(run, roots: list[Path], repeat: int) -> float:
    """The median, over ``repeat`` runs, of the in-process cost per node of ``run(root)``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for root in roots:
            run(root)
        times.append((time.perf_counter() - start) / len(roots))
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="fleet size (default 1000)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per figure; the median is reported")
    parser.add_argument("--smoke", action="store_true", help="a tiny fleet and one run: check the script works")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if args.smoke:
        args.nodes, args.repeat = 4, 1
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))  # figures only
    sizes = sorted({n for n in (10, 100, 1000) if n <= args.nodes} | {args.nodes})

    from migrate import checks
    from migrate.plan import make_plan
    from migrate.rehearsal import rehearse_tree
    from migrate.scan import Layout, scan
    from migrate.tree import read_tree

    work = Path(tempfile.mkdtemp(prefix="expressway-bench-"))
    try:
        roots = build_fleet(work / "fleet", args.nodes)
        fleet = timed([*TOOL, "precheck", "--fleet", str(work / "fleet"), "--format", "json"], args.repeat)
        floor = timed([sys.executable, "-c", FLOOR, *map(str, roots)], args.repeat)
        plan = timed([*TOOL, "plan", str(roots[0]), "--format", "json"], max(args.repeat, 5))
        imports = timed([sys.executable, "-c", "import cryptography.x509"], max(args.repeat, 5))

        def precheck_and_plan(root: Path) -> None:
            make_plan(checks.analyse(scan(Layout.for_node(root))))

        def rehearsal(root: Path) -> None:
            rehearse_tree(read_tree(root), "/tandberg", crash=False)

        growth = {
            size: {
                "precheck_plan_ms": 1000 * per_node(precheck_and_plan, roots[:size], args.repeat),
                "rehearsal_ms": 1000 * per_node(rehearsal, roots[:size], 1),  # one run: it is the slow one
            }
            for size in sizes
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    figures = {
        "nodes": args.nodes,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "fleet_precheck_s": round(fleet, 3),
        "read_and_parse_floor_s": round(floor, 3),
        "fleet_ratio": round(fleet / floor, 2),
        "cold_plan_s": round(plan, 3),
        "import_cryptography_x509_s": round(imports, 3),
        "cold_start_ratio": round(plan / imports, 2),
        "per_node": {str(k): {n: round(v, 2) for n, v in row.items()} for k, row in growth.items()},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(f"{args.nodes} nodes, medians of {args.repeat}, {os.cpu_count()} CPUs")
    print(f"fleet precheck {fleet:.2f} s / read-and-parse floor {floor:.2f} s = {fleet / floor:.2f} (target <= 1.5)")
    print(f"cold plan {plan:.3f} s / import cryptography.x509 {imports:.3f} s = {plan / imports:.2f} (target <= 1.2)")
    print("per node, in process:   nodes  precheck+plan  rehearsal (the cycle in pyfakefs, no crash rehearsal)")
    for size, row in growth.items():
        print(f"                       {size:5d}  {row['precheck_plan_ms']:9.2f} ms  {row['rehearsal_ms']:9.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
