"""The speed bench of issue 9: the onnx node suite through the harness vs a bare in-process loop, and the
start-up cost of a whole `harness run` over a few real models vs a script doing the same.

    python bench/node_suite.py [--filter REGEX] [--jobs 0] [--rounds 1] [--startup-rounds 3]
                               [--real-models a,b,c] [--skip-build] [--skip-suite] [--skip-startup]

Every measurement is a fresh Python process timed from outside, so imports count:
  build   the suite's cache, cold (a fresh HARNESS_CACHE_DIR) and warm (the cache reused);
  bare    import, read the cached suite, then per case: onnxruntime CPU session (ORT's default threads, and
          again with 1 intra-op thread, what each parallel harness cell gets), sess.run on the values the
          harness reads (golden.layout), numpy allclose with the case's rtol/atol (bfloat16 as float32 with
          rtol 2^-6, like onnx's runner); a case that does not load or run counts as an error, not a stop;
  harness import, read the cached suite, api.run_matrix(cases, ["cpu"], MatrixOptions(numerics_only=True,
          jobs=N)) through isolated workers, record written (jobs 0: every core, as `harness run --numerics-only`);
  startup over real models (bench/fetch_real_models.py): `python -m harness run DIRS --profile cpu
          --numerics-only` vs a script doing import + load + run + compare on the same cases.
Prints wall times, ratios (targets: suite <= 2x, start-up <= 1.2x) and cases per second. Exits 0 whatever
the ratios (it measures), 2 when something could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REAL = "ocr-cls,ocr-det,minilm-l3"


# ---- children: each runs in its own process, prints one JSON line ---------------------------------------

def child_build() -> dict:
    from harness.golden.suite import materialise, read_index, suite_dir
    hit = read_index(suite_dir()) is not None
    started = time.perf_counter()
    folder, entries = materialise()
    return {"seconds": time.perf_counter() - started, "cache_hit": hit, "cases": len(entries), "folder": str(folder)}


def _close(actual, golden, rtol: float, atol: float) -> bool:
    """numpy allclose, recursing into sequences; bfloat16 widened to float32 with onnx's runner's rtol."""
    import numpy as np
    if isinstance(golden, list) or golden is None:
        return isinstance(actual, list) and len(actual) == len(golden or []) and all(
            _close(a, g, rtol, atol) for a, g in zip(actual, golden or [])) if golden is not None else actual is None
    actual, golden = np.asarray(actual), np.asarray(golden)
    if actual.shape != golden.shape:
        return False
    if golden.dtype == object or golden.dtype.kind in "biuSU":
        return bool(np.array_equal(actual, golden))
    if golden.dtype.name == "bfloat16":
        rtol = max(rtol, 2 ** -6)
    return bool(np.allclose(actual.astype(np.float32) if actual.dtype.name == "bfloat16" else actual,
                            golden.astype(np.float32) if golden.dtype.name == "bfloat16" else golden,
                            rtol=rtol, atol=atol, equal_nan=True))


def child_bare(pattern: str | None, threads: int = 0) -> dict:
    """What a hand-written script does with the cached suite, one case after another in this process
    (``threads``: intra-op threads per session, 0 being onnxruntime's default of one per core)."""
    import onnxruntime as ort
    from harness.golden.suite import NodeSuite
    started = time.perf_counter()
    cases = NodeSuite().cases(pattern)
    loaded = time.perf_counter() - started
    options = ort.SessionOptions()
    options.log_severity_level = 4
    options.intra_op_num_threads = threads
    counts: Counter[str] = Counter()
    for case in cases:
        counts[_bare_case(case, ort, options)] += 1
    return {"seconds_in_process": time.perf_counter() - started, "suite_read_s": loaded, "cases": len(cases),
            "counts": dict(counts)}


def _bare_case(case, ort, options) -> str:
    own = case.tolerance_overrides.data_json
    try:
        [ds] = case.datasets()
        session = ort.InferenceSession(str(case.model_path), options, providers=["CPUExecutionProvider"])
        outputs = session.run(None, ds.inputs)
    except Exception:  # noqa: BLE001 - a bare loop's honest failure mode: this case is an error, go on
        return "error"
    ok = all(_close(a, ds.outputs[n], own.rtol, own.atol) for n, a in zip(case.info.output_names, outputs))
    return "pass" if ok else "fail"


def child_harness(pattern: str | None, jobs: int, out: str) -> dict:
    from harness import api
    from harness.golden.suite import NodeSuite
    started = time.perf_counter()
    cases = NodeSuite().cases(pattern)
    loaded = time.perf_counter() - started
    record = api.run_matrix(cases, ["cpu"], api.MatrixOptions(out=Path(out), numerics_only=True, jobs=jobs))
    if len(record.cells) != len(cases) or record.location is None:
        raise SystemExit(f"the harness recorded {len(record.cells)} of {len(cases)} cells ({record.write_errors})")
    return {"seconds_in_process": time.perf_counter() - started, "suite_read_s": loaded, "cases": len(cases),
            "counts": dict(Counter(c.verdict for c in record.cells)), "record": str(record.location),
            "jobs": record.options["jobs"]}


def child_script(dirs: list[str]) -> dict:
    """A user's own script over real model cases: import, load, run, compare (data read with onnx)."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper
    counts: Counter[str] = Counter()
    for folder in map(Path, dirs):
        session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
        inputs, outputs = [i.name for i in session.get_inputs()], [o.name for o in session.get_outputs()]
        for ds in sorted(folder.glob("test_data_set_*")):
            def load(kind: str, i: int, ds: Path = ds) -> np.ndarray:
                return numpy_helper.to_array(onnx.load_tensor(str(ds / f"{kind}_{i}.pb")))
            got = session.run(None, {n: load("input", i) for i, n in enumerate(inputs)})
            ok = all(np.allclose(g, load("output", j), rtol=1e-4, atol=1e-5) for j, g in enumerate(got[:len(outputs)]))
            counts["pass" if ok else "fail"] += 1
    return {"counts": dict(counts)}


# ---- the parent: times each child from outside ---------------------------------------------------------

def _timed_child(args: list[str], env: dict[str, str] | None = None) -> tuple[float, dict]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"bench child {args[:2]} failed with exit {proc.returncode}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])


def _harness_run(dirs: list[str], out: str) -> tuple[float, dict]:
    """One timed `harness run`; it counts only if it wrote a record with every cell (exit 1 is also what a
    traceback gives, so the exit code alone would time a crash)."""
    before = set(Path(out).glob("*/record.json"))
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "harness", "run", *dirs, "--profile", "cpu", "--numerics-only",
                           "--out", out], cwd=REPO, capture_output=True, text=True)
    wall = time.perf_counter() - started
    written = set(Path(out).glob("*/record.json")) - before
    cells = len(json.loads(written.pop().read_text())["cells"]) if len(written) == 1 else 0
    if proc.returncode not in (0, 1) or cells != len(dirs):
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"harness run failed with exit {proc.returncode}, {cells} of {len(dirs)} cells recorded")
    return wall, {"exit": proc.returncode}


def bench_build() -> None:
    with tempfile.TemporaryDirectory() as cold_cache:
        cold, info = _timed_child(["--child", "build"], {"HARNESS_CACHE_DIR": cold_cache})
        print(f"suite build, cold (fresh cache)  : {cold:6.2f} s wall, {info['seconds']:6.2f} s in materialise, "
              f"{info['cases']} cases")
    _timed_child(["--child", "build"])  # make sure the user's cache is built before the warm measurement
    warm, info = _timed_child(["--child", "build"])
    print(f"suite build, warm (cache reused) : {warm:6.2f} s wall, {info['seconds']:6.2f} s in materialise "
          f"(cache hit: {info['cache_hit']})  {info['folder']}")


def bench_suite(pattern: str | None, jobs: int, rounds: int) -> None:
    """The harness against two bare loops: onnxruntime's default threads (what a script gets) and one intra-op
    thread per session (what the harness gives each of its parallel cells, so the fairer per-case baseline)."""
    bare, bare1, harness = [], [], []
    filt = ["--filter", pattern] if pattern else []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(rounds):
            bare.append(_timed_child(["--child", "bare", *filt]))
            bare1.append(_timed_child(["--child", "bare", "--threads", "1", *filt]))
            harness.append(_timed_child(["--child", "harness", "--jobs", str(jobs), "--out", out, *filt]))
    b, b1 = statistics.median(w for w, _ in bare), statistics.median(w for w, _ in bare1)
    h = statistics.median(w for w, _ in harness)
    n = bare[-1][1]["cases"]
    print(f"{n} node cases, {rounds} round(s), medians of process wall time (import and suite read included)")
    for label, wall, runs in (("bare loop, ORT threads", b, bare), ("bare loop, 1 thread  ", b1, bare1)):
        print(f"  {label}: {wall:7.2f} s  {n / wall:7.1f} cases/s   suite read {runs[-1][1]['suite_read_s']:.2f} s"
              f"   {runs[-1][1]['counts']}")
    print(f"  harness cpu, jobs={harness[-1][1]['jobs']}   : {h:7.2f} s  {n / h:7.1f} cases/s   suite read "
          f"{harness[-1][1]['suite_read_s']:.2f} s   {harness[-1][1]['counts']}")
    print(f"  ratio harness/bare    : {h / b:7.2f}x (ORT threads), {h / b1:.2f}x (1 thread)  (target <= 2x)   "
          f"overhead {1e3 * (h - min(b, b1)) / n:.1f} ms/case over the faster loop")


def bench_startup(names: list[str], rounds: int) -> None:
    from bench.fetch_real_models import default_cache
    root = default_cache()
    dirs = [str(root / n) for n in names if (root / n / "model.onnx").is_file()]
    if not dirs:
        print(f"start-up: none of {names} under {root}; run 'python bench/fetch_real_models.py' first")
        return
    script, run = [], []
    with tempfile.TemporaryDirectory() as out:
        for _ in range(rounds):
            script.append(_timed_child(["--child", "script", *dirs])[0])
            run.append(_harness_run(dirs, out)[0])
    s, r = statistics.median(script), statistics.median(run)
    print(f"start-up over {len(dirs)} real models ({', '.join(Path(d).name for d in dirs)}), {rounds} round(s):")
    print(f"  script (import, load, run, compare): {s:6.2f} s")
    print(f"  harness run --profile cpu --numerics-only: {r:6.2f} s   ratio {r / s:5.2f}x  (target <= 1.2x)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--filter", default=None, help="regex on node test names (default: all 1884)")
    parser.add_argument("--jobs", type=int, default=0, help="harness jobs (default 0: every core)")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--startup-rounds", type=int, default=3)
    parser.add_argument("--real-models", default=DEFAULT_REAL)
    parser.add_argument("--skip-build", action="store_true", help="no cold/warm build timing (~20-30 s)")
    parser.add_argument("--skip-suite", action="store_true")
    parser.add_argument("--skip-startup", action="store_true")
    parser.add_argument("--child", choices=["build", "bare", "harness", "script"], help=argparse.SUPPRESS)
    parser.add_argument("--out", default="", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("dirs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = {"build": child_build, "bare": lambda: child_bare(args.filter, args.threads),
                  "harness": lambda: child_harness(args.filter, args.jobs, args.out),
                  "script": lambda: child_script(args.dirs)}[args.child]()
        print(json.dumps(result))
        return 0
    sys.path.insert(0, str(REPO))
    if not args.skip_build:
        bench_build()
    if not args.skip_suite:
        bench_suite(args.filter, args.jobs, args.rounds)
    if not args.skip_startup:
        bench_startup(args.real_models.split(","), args.startup_rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
