"""Per-cell overhead of the Ray lab path against a local run of the same cells, on a local 3-node cluster
(a head that runs nothing, hosts A and B each offering every profile of the run, one cell at a time each).

    python bench/lab_overhead.py [--root reference_outputs] [--profiles cpu,cpu-noopt] [--rounds 2] [--no-kill]

Prints, for the local run and each lab round (the first starts Ray's worker processes and the harness's workers
on the hosts; later rounds reuse them): wall time, wall per cell, and the mean cell duration as the head measured
it (for a lab cell: submit, the host's observation, the answer back); then the ratio and the overhead per cell.
Checks that every lab round has the local run's verdicts with each cell's host recorded. Unless --no-kill, a last
round removes host B as soon as it finished a cell: the cells B finished stay in the journal and the record, the
rest finish on A, and the verdicts are still the local run's.
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
        print("kill round: host B finished no cell before the run ended; nothing was killed")
        return False
    before = {f"{c['case']}|{c['profile']}": c for c in killed[0]}
    cells = {c.key: c for c in record.cells}
    kept = all(k in cells and cells[k].verdict == c["verdict"] and cells[k].host == c["host"] for k, c in before.items())
    on_b = sum(f"node {b.node_id[:12]}" in c.host for c in record.cells)
    lost = [c.key for c in record.cells if c.detail.startswith("LOST")]
    _line("lab, B killed", record, wall)
    print(f"  B removed after {len(before)} journalled cell(s); all {len(before)} kept with verdict and host: {kept}; "
          f"{on_b} cell(s) in the record ran on B; LOST: {len(lost)}")
    return _same(local, record, "killed round") and kept and not lost


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("reference_outputs"))
    parser.add_argument("--profiles", default="cpu,cpu-noopt")
    parser.add_argument("--rounds", type=int, default=2)
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
        slots = {f"profile:{p}": 1 for p in profiles}
        cluster.add_node(num_cpus=0, resources=slots, object_store_memory=STORE)
        b = cluster.add_node(num_cpus=0, resources=slots, object_store_memory=STORE)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        print(f"3-node cluster up in {time.perf_counter() - started:.1f} s; profiles {', '.join(profiles)}; "
              f"cases under {args.root}")
        local, wall = _run(profiles, args.root, scratch / "local-1", None, 1)
        local_mean = _line("local, 1 job", local, wall)
        local2, wall2 = _run(profiles, args.root, scratch / "local-0", None, 0)
        _line("local, every core", local2, wall2)
        ok = True
        for round_ in range(1, args.rounds + 1):
            lab, lab_wall = _run(profiles, args.root, scratch / f"lab-{round_}", cluster.address, 0)
            lab_mean = _line(f"lab round {round_}", lab, lab_wall)
            print(f"  mean cell lab/local {lab_mean / local_mean:.2f}x, overhead {1000 * (lab_mean - local_mean):.1f} "
                  f"ms/cell; wall lab/local(1 job) {lab_wall / wall:.2f}x")
            ok &= _same(local, lab, f"round {round_}")
        if not args.no_kill:
            ok &= _kill_round(cluster, b, local, profiles, args.root, scratch, cluster.address)
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    print("OK" if ok else "MISMATCH")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
