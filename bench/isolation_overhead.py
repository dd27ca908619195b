"""Per-cell overhead of isolation: the bundled cases in persistent workers vs a bare in-process loop of
load, run and compare, measured in the same run. Target: workers <= 2x the bare loop.

    python bench/isolation_overhead.py [--rounds 5] [--root reference_outputs]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from harness import api
from harness.golden.cases import discover
from harness.run.executor import Executor, RunOptions, probe
from harness.run.plan import plan_case


def bare_loop(plans) -> float:
    """What a hand-written script does: session, run every data set, allclose against the goldens."""
    start = time.perf_counter()
    for plan in plans:
        session = ort.InferenceSession(str(plan.case.model_path), providers=["CPUExecutionProvider"])
        for ds in plan.datasets:
            outputs = session.run(None, ds.inputs)
            for name, actual in zip(plan.info.output_names, outputs):
                np.testing.assert_allclose(actual, ds.outputs[name], rtol=1e-4, atol=1e-5)
    return time.perf_counter() - start


def _all_passed(results) -> None:
    bad = [r for r in results if r.verdict != "PASS"]
    if bad:
        sys.exit(f"isolated run did not pass: {[(r.case, r.verdict, r.detail) for r in bad]}")


def isolated_warm(plans, profile, out_dir: Path) -> float:
    """Cells only: the worker is started and probed before the clock starts."""
    executor = Executor(RunOptions(out_dir), None)
    availability = {profile.name: probe(profile, executor.pool)}
    start = time.perf_counter()
    results = executor.run([(p, profile) for p in plans], availability)
    elapsed = time.perf_counter() - start
    executor.close()
    _all_passed(results)
    return elapsed


def whole_run(cases, profile, out_dir: Path) -> float:
    """The library entry point as a user calls it: plan, probe, worker start, cells, record."""
    start = time.perf_counter()
    record = api.run_matrix(cases, [profile], api.MatrixOptions(out=out_dir, numerics_only=True))
    elapsed = time.perf_counter() - start
    _all_passed(record.cells)
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--root", type=Path, default=Path("reference_outputs"))
    args = parser.parse_args()
    cases = discover([], args.root)
    plans = [plan_case(c, dims={}, seed=0) for c in cases]
    [profile] = api.load_profiles(["cpu"], api.MatrixOptions())
    bare, warm, cold = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        bare_loop(plans)  # warm the page cache and ORT's one-time initialisation
        for _ in range(args.rounds):
            bare.append(bare_loop(plans))
            warm.append(isolated_warm(plans, profile, Path(tmp)))
            cold.append(whole_run(cases, profile, Path(tmp)))
    n = len(plans)
    b, w, c = statistics.median(bare), statistics.median(warm), statistics.median(cold)
    print(f"{n} cases x {args.rounds} rounds (medians)")
    print(f"bare in-process loop      : {1e3 * b / n:8.2f} ms/cell")
    print(f"workers, warm (reused)    : {1e3 * w / n:8.2f} ms/cell   ratio {w / b:5.2f}x  (target <= 2x)")
    print(f"run_matrix, whole run     : {1e3 * c / n:8.2f} ms/cell   ratio {c / b:5.2f}x  (worker start, probe, record)")
    return 0 if w / b <= 2.0 else 1


if __name__ == "__main__":
    sys.exit(main())
