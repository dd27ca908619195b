"""Per-cell overhead of the Ray lab path against a local run of the same cells, on a local cluster: a head that
runs nothing and --hosts hosts (default 2: a 3-node cluster), each offering every profile of the run with --slots
cells at a time.

    python bench/lab_overhead.py [--root reference_outputs] [--profiles cpu,cpu-noopt] [--rounds 2]
                                 [--hosts 2] [--slots 1] [--no-kill]

Prints, for local runs with 1 job and with as many jobs as the lab has cells in flight (hosts x slots x profiles:
the same contention for this machine's cores), and for each lab round (the first starts Ray's worker processes and
the harness's workers on the hosts; later rounds reuse them): wall time, wall per cell, and the mean cell duration
as the head measured it (for a lab cell: submit, the host's observation, the answer back); then the ratio and the
overhead per cell against the local run at the same concurrency. Checks that every lab round has the local run's
verdicts with each cell's host recorded. Unless --no-kill (or with one host), a last round removes the last host as
soon as it finished a cell: the cells it finished stay in the journal and the record, the rest finish on the other
hosts, and the verdicts are still the local run's.

`--hosts 1 --slots 1 --profiles cpu` measures one cell at a time: the overhead of the lab path itself.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

STORE = 80 << 20


def _run(profiles: list[str], root: Path, out: Path, address: str | None, jobs: int):
    from harness import api
    start = time.perf_counter()
    record = api.run_matrix([], profiles, api.MatrixOptions(numerics_only=True, out=out, root=root, ray=address,
                                                            jobs=jobs))
    return record, time.perf_counter() - start


def _line(label: str, record, wall: float) -> float:
    cells = [c for c in record.cells if c.verdict != "SKIPPED"]
    mean = statistics.fmean(c.duration_s for c in cells) if cells else 0.0
    print(f"{label:<22} {len(cells):>3} cells  wall {wall:6.2f} s  {1000 * wall / max(len(cells), 1):7.1f} ms/cell  "
          f"mean cell {1000 * mean:7.1f} ms")
    return mean


def _same(local, lab, label: str) -> bool:
    want = {c.key: c.verdict for c in local.cells}
    got = {c.key: c.verdict for c in lab.cells}
    unhosted = [c.key for c in lab.cells if c.verdict != "SKIPPED" and not c.host]
    differ = {k: (want.get(k), v) for k, v in got.items() if want.get(k) != v}
    print(f"  {label}: verdicts {'same as local' if not differ and want.keys() == got.keys() else differ}; "
          f"hosts recorded on {len(lab.cells) - len(unhosted)}/{len(lab.cells)} cells")
    return not differ and want.keys() == got.keys() and not unhosted


def _kill_after_first_cell(cluster, node, out: Path, killed: list) -> threading.Thread:
    def watch() -> None:
        tag = f"node {node.node_id[:12]}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            for path in out.glob("*/journal.jsonl"):
                lines = path.read_text().splitlines()
                if any(tag in line for line in lines[1:]):
                    killed.append([json.loads(x) for x in lines[1:] if x.endswith("}")])
                    cluster.remove_node(node)
                    return
            time.sleep(0.02)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def _kill_round(cluster, b, local, profiles: list[str], root: Path, scratch: Path, address: str) -> bool:
    out = scratch / "kill"
    killed: list = []
    thread = _kill_after_first_cell(cluster, b, out, killed)
    record, wall = _run(profiles, root, out, address, 0)
    thread.join()
    if not killed:
        print("kill round: the host finished no cell before the run ended; nothing was killed")
        return False
    before = {f"{c['case']}|{c['profile']}": c for c in killed[0]}
    cells = {c.key: c for c in record.cells}
    kept = all(k in cells and cells[k].verdict == c["verdict"] and cells[k].host == c["host"] for k, c in before.items())
    on_b = sum(f"node {b.node_id[:12]}" in c.host for c in record.cells)
    lost = [c.key for c in record.cells if c.detail.startswith("LOST")]
    _line("lab, a host killed", record, wall)
    print(f"  host removed after {len(before)} journalled cell(s); all {len(before)} kept with verdict and host: {kept}; "
          f"{on_b} cell(s) in the record ran on it; LOST: {len(lost)}")
    return _same(local, record, "killed round") and kept and not lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("reference_outputs"))
    parser.add_argument("--profiles", default="cpu,cpu-noopt")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--hosts", type=int, default=2)
    parser.add_argument("--slots", type=int, default=1)
    parser.add_argument("--no-kill", action="store_true")
    args = parser.parse_args()
    profiles = [p for p in args.profiles.split(",") if p]
    folder = tempfile.mkdtemp(prefix="rl-", dir="/tmp")  # Ray's socket paths must stay under 108 bytes
    os.environ.update(RAY_TMPDIR=folder, HARNESS_CACHE_DIR=os.path.join(folder, "cache"))
    import ray
    from ray.cluster_utils import Cluster
    scratch = Path(folder) / "runs"
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "object_store_memory": STORE,
                                                            "include_dashboard": False,
                                                            "temp_dir": os.path.join(folder, "ray")})
    try:
        slots = {f"profile:{p}": args.slots for p in profiles}
        # num_cpus: cells ask for none, but a node keeps only num_cpus idle Ray worker processes (with 0, every
        # cell would start a fresh one and import the harness again)
        hosts = [cluster.add_node(num_cpus=args.slots * len(slots), resources=slots, object_store_memory=STORE)
                 for _ in range(args.hosts)]
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        in_flight = args.hosts * args.slots * len(profiles)
        print(f"{args.hosts + 1}-node cluster up in {time.perf_counter() - started:.1f} s; profiles "
              f"{', '.join(profiles)}, {args.slots} slot(s) each per host: {in_flight} cells in flight; "
              f"cases under {args.root}")
        local, wall = _run(profiles, args.root, scratch / "local-1", None, 1)
        _line("local, 1 job", local, wall)
        same_load, same_wall = (local, wall) if in_flight == 1 else \
            _run(profiles, args.root, scratch / "local-n", None, in_flight)
        local_mean = _line(f"local, {in_flight} jobs", same_load, same_wall) if in_flight > 1 else \
            statistics.fmean(c.duration_s for c in local.cells if c.verdict != "SKIPPED")
        ok = True
        for round_ in range(1, args.rounds + 1):
            lab, lab_wall = _run(profiles, args.root, scratch / f"lab-{round_}", cluster.address, 0)
            lab_mean = _line(f"lab round {round_}", lab, lab_wall)
            print(f"  mean cell lab/local({in_flight} jobs) {lab_mean / local_mean:.2f}x, overhead "
                  f"{1000 * (lab_mean - local_mean):.1f} ms/cell; wall lab/local({in_flight} jobs) "
                  f"{lab_wall / same_wall:.2f}x")
            ok &= _same(local, lab, f"round {round_}")
        if not args.no_kill and args.hosts > 1:
            ok &= _kill_round(cluster, hosts[-1], local, profiles, args.root, scratch, cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
