"""Peak memory of localisation against a plain run and against exposing every tensor at once (Polygraphy's
"mark all"), for one case, measured in one invocation.

Each mode runs in a fresh child process that runs the sessions in worker processes, as 'harness run' and
'harness localize' do. The child reports its own peak RSS (it holds both sides' exposed values and compares them)
and the largest peak RSS a worker reported for one of its runs (the per-load VmHWM every worker reports, as
'harness run' records per cell); their sum bounds the mode's peak from above. The
exposed-all mode in one process is Polygraphy's "mark all"; here its weight is split between the two. The modes:

    plain       both profiles run the model once, graph outputs only, and are compared (what 'harness run' does
                against a reference profile)
    localize    'harness localize' with --cap-mb (bounded batches), the repro included, the pass bisection not
    expose-all  the same localisation with an unbounded cap: every intermediate exposed at once on both sides

--rtol/--atol (default 1e-7/1e-9) make the case fail so that the localisation scans the whole graph.

    python bench/localize_memory.py [--case transformer] [--profile cpu-fp16] [--cap-mb 0.02]
    python bench/localize_memory.py --case ~/.cache/onnx-harness/real-models/ocr-rec --cap-mb 16

Measured 2026-12-01 (2-core AMD host, onnxruntime 1.32, cpu-fp16 vs cpu, parent + largest worker):
- bundled transformer (59 intermediates, 0.12 MiB of activations in all), cap 0.02 MiB: plain 220.9 MiB,
  localize 223.1 MiB (22 batches), expose-all 222.6 MiB: its activations are too small to show a difference.
- ocr-rec (PP-OCRv4 recogniser, 10.9 MB, 859 intermediates, 201 MiB of activations), cap 16 MiB: plain 284.6 MiB,
  localize 408.2 MiB (1.43x, 41 batches, 137 s), expose-all 857.6 MiB (3.01x; worker 296 MiB against 108).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("plain", "localize", "expose-all")
UNBOUNDED_MB = 1e9


def child(mode: str, args: argparse.Namespace) -> dict:
    from harness.localize import LocalizeOptions, localize
    options = LocalizeOptions(against=args.against, cap_mb=UNBOUNDED_MB if mode == "expose-all" else args.cap_mb,
                              rtol=args.rtol, atol=args.atol, blame_passes=False,
                              out=Path(args.scratch) / mode, repro=mode != "plain")
    if mode == "plain":
        return plain(args, options)
    found = localize(args.case, args.profile, options)
    first = found.first or {}
    return {"batches": found.batches, "tensors": len(found.tensors), "largest_batch_bytes": found.largest_batch_bytes,
            "first": first.get("node"), "status": found.status, "worker_peak_bytes": found.worker_peak_bytes}


def plain(args: argparse.Namespace, options) -> dict:
    """Both sides' graph outputs on the first data set, compared: no intermediate exposed."""
    from harness.api import load_profiles
    from harness.localize.search import _one_case, _Search
    from harness.localize.sides import Side
    from harness.run.plan import plan_case
    from harness.run.pool import WorkerPool
    case = _one_case(args.case, options.matrix.root)
    target, reference = load_profiles([args.profile, args.against], options.matrix)
    plan = plan_case(case, dims={}, seed=0)
    pool = WorkerPool()
    try:
        index = plan.datasets[0].index
        sides = [Side(reference, plan, index, pool), Side(target, plan, index, pool)]
        ref, act = (side.run([]).outputs for side in sides)
        failed = _Search(plan, target, reference, pool, options).failing_outputs(ref, act)
    finally:
        pool.close()
    return {"failing_outputs": [f["output"] for f in failed],
            "worker_peak_bytes": max(side.peak_worker_bytes for side in sides)}


def run_mode(mode: str, args: argparse.Namespace) -> dict:
    argv = [sys.executable, __file__, "--child", mode, "--case", str(args.case), "--profile", args.profile,
            "--against", args.against, "--cap-mb", str(args.cap_mb), "--rtol", str(args.rtol), "--atol", str(args.atol),
            "--scratch", args.scratch]
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"mode": mode, "wall_s": round(time.perf_counter() - start, 2), **result}


def peaks(result: dict) -> dict:
    """This process's peak RSS (ru_maxrss, KiB on Linux) and the largest peak a worker reported for one of its runs
    (VmHWM reset at each session load: the worker's own memory report, the one 'harness run' records per cell;
    getrusage(RUSAGE_CHILDREN) cannot be used, since that reset lowers the children's ru_maxrss too), in MiB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = result.pop("worker_peak_bytes", 0) / 2**20
    return {"parent_mib": round(own, 1), "worker_mib": round(workers, 1), "sum_mib": round(own + workers, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", default="transformer")
    parser.add_argument("--profile", default="cpu-fp16")
    parser.add_argument("--against", default="cpu")
    parser.add_argument("--cap-mb", type=float, default=0.02)
    parser.add_argument("--rtol", type=float, default=1e-7)
    parser.add_argument("--atol", type=float, default=1e-9)
    parser.add_argument("--child", choices=MODES)
    parser.add_argument("--scratch")
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args)
        print(json.dumps({**result, **peaks(result)}))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-localize-") as scratch:
        args.scratch = scratch
        rows = [run_mode(mode, args) for mode in MODES]
    print(f"case {args.case}, profile {args.profile} vs {args.against}, cap {args.cap_mb} MiB per side and batch")
    for row in rows:
        print(json.dumps(row))
    base = rows[0]["sum_mib"]
    for row in rows:
        print(f"{row['mode']:<11} peak RSS parent {row['parent_mib']:7.1f} + largest worker {row['worker_mib']:7.1f} = "
              f"{row['sum_mib']:7.1f} MiB ({row['sum_mib'] / base:.2f}x plain)"
              f"  {row['wall_s']:6.2f} s" + (f"  batches {row['batches']}, tensors {row['tensors']}, largest batch "
                                             f"{row['largest_batch_bytes'] / 2**20:.3f} MiB, first {row['first']!r}"
                                             if "batches" in row else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
