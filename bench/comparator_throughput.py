"""Comparator throughput: compare_output on two large float32 tensors (golden, and actual = golden with small
noise) vs one numpy subtraction pass into a preallocated buffer, plus the comparison's peak extra resident
memory (VmHWM reset through /proc/self/clear_refs) as a fraction of one tensor.
Targets: <= 3x the subtraction's time and <= 25% of one tensor's bytes.

    python bench/comparator_throughput.py [--elements 200000000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from harness.compare.comparator import compare_output
from harness.compare.metrics import fast_engine
from harness.compare.tolerances import Tolerance
from harness.worker.memory import read_status, reset_peak

TIME_TARGET, MEMORY_TARGET = 3.0, 0.25
MB = 1 << 20


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def peak_extra(fn) -> int | None:
    """Bytes the call added to the resident high-water mark over the RSS it started from (Linux only)."""
    if not reset_peak():
        return None
    start = read_status()["VmRSS"]
    fn()
    peak = read_status()["VmHWM"]
    return None if start is None or peak is None else peak - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--elements", type=int, default=200_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    n = args.elements
    rng = np.random.default_rng(0)
    golden = np.empty(n, dtype=np.float32)
    step = 1 << 24
    for i in range(0, n, step):  # fill in slices: a single standard_normal(n) would need a float64 temporary
        golden[i:i + step] = rng.standard_normal(min(step, n - i), dtype=np.float32)
    actual = golden + (rng.standard_normal(n, dtype=np.float32) * np.float32(1e-6))
    out = np.empty_like(golden)
    tol = Tolerance(rtol=1e-4, atol=1e-5)

    def compare() -> None:
        result = compare_output("y", golden, actual, tol)
        assert result.passed, result.reasons

    subtract_s = [timed(lambda: np.subtract(actual, golden, out=out)) for _ in range(args.repeats)]
    compare_s = [timed(compare) for _ in range(args.repeats)]
    extra = peak_extra(compare)
    s, c = statistics.median(subtract_s), statistics.median(compare_s)
    tensor = golden.nbytes
    print(f"{n:,} float32 elements ({tensor / MB:.0f} MB per tensor), median of {args.repeats}")
    print(f"fast path             : {fast_engine()}")
    print(f"np.subtract(out=...)  : {s:8.3f} s")
    print(f"compare_output        : {c:8.3f} s   ratio {c / s:6.2f}x  (target <= {TIME_TARGET:g}x)")
    ok = c / s <= TIME_TARGET
    if extra is None:
        print("peak extra memory     : n/a (no /proc/self/clear_refs)")
    else:
        frac = extra / tensor
        ok = ok and frac <= MEMORY_TARGET
        print(f"peak extra memory     : {extra / MB:8.1f} MB = {frac:.1%} of one tensor  (target <= {MEMORY_TARGET:.0%})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
