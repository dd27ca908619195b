"""Fuzz every loader that reads a user's file, and both ends of the worker protocol, for many inputs.

    python bench/fuzz.py                        # every target, 10**6 inputs each
    python bench/fuzz.py --inputs 20000 --target pb_tensor --target journal
    python bench/fuzz.py --engine mutation      # the seed-mutation loop even where atheris is installed

The targets are tests/fuzz/targets.py (the CI suite runs the same ones for a few hundred inputs). With atheris
installed (the [fuzz] extra), each target runs coverage-guided under libFuzzer in a child process, the harness
modules instrumented; otherwise a seed-mutation loop runs in this process. Per target the bench prints the inputs
run, the time and the distinct escapes (exception type + the harness function it left from), with one example
each, saved under --save as hex. Exit status: 0 when no target found an escape, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "fuzz"))
sys.path.insert(0, str(REPO))

import targets as fuzz_targets  # noqa: E402


def _atheris_available() -> bool:
    try:
        import atheris  # noqa: F401
    except ImportError:
        return False
    return True


def run_mutation(target: fuzz_targets.Target, inputs: int, seed: int) -> dict:
    """The fallback engine: seeds mutated at random (targets.mutate), every input checked."""
    rng = random.Random(seed)
    for data in target.seeds:
        target.check(data)
    start = time.perf_counter()
    for _ in range(inputs):
        ops = [(rng.randrange(8), rng.randrange(1 << 16), rng.randrange(1 << 16)) for _ in range(rng.randrange(1, 9))]
        target.check(fuzz_targets.mutate(rng.choice(target.seeds), ops, rng.choice(target.seeds)))
    return {"engine": "mutation", "inputs": inputs, "seconds": time.perf_counter() - start,
            "escapes": dict(target.escapes)}


def run_atheris_child(name: str, inputs: int, seed: int, workdir: Path) -> dict:
    """One target under libFuzzer in a child process (libFuzzer ends its process when done)."""
    report = workdir / f"{name}.escapes.jsonl"
    report.unlink(missing_ok=True)
    corpus = workdir / f"{name}.corpus"
    corpus.mkdir(exist_ok=True)
    command = [sys.executable, __file__, "--atheris-child", name, "--workdir", str(workdir), str(corpus),
               f"-runs={inputs}", f"-seed={seed}", "-timeout=0", "-rss_limit_mb=4096", "-print_final_stats=1"]
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    escapes: dict[str, str] = {}
    if report.is_file():
        for line in report.read_text().splitlines():
            entry = json.loads(line)
            escapes.setdefault(entry["signature"], entry["example"])
    runs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", proc.stderr)
    cover = re.findall(r"cov: (\d+)", proc.stderr)
    result = {"engine": "atheris", "inputs": int(runs[-1]) if runs else 0, "seconds": seconds,
              "escapes": escapes, "coverage": int(cover[-1]) if cover else None}
    if proc.returncode != 0:
        result["child_failed"] = f"exit {proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}"
    return result


def atheris_child(name: str, workdir: Path, libfuzzer_args: list[str]) -> None:
    """Inside the child: instrument the harness, then let libFuzzer drive the target until -runs."""
    import atheris
    with atheris.instrument_imports(include=["harness"]):
        import harness.golden.cases  # noqa: F401 - instrumented before targets import them lazily
        import harness.golden.layout  # noqa: F401
        import harness.golden.manifest  # noqa: F401
        import harness.profiles.registry  # noqa: F401
        import harness.profiles.schema  # noqa: F401
        import harness.run.record  # noqa: F401
        import harness.worker.main  # noqa: F401
        import harness.worker.protocol  # noqa: F401
    target = fuzz_targets.make_targets(Path(tempfile.mkdtemp(prefix=f"fuzz-{name}-")))[name]
    corpus = Path(libfuzzer_args[0])
    for i, data in enumerate(target.seeds):
        (corpus / f"seed-{i}").write_bytes(data)
    report = (workdir / f"{name}.escapes.jsonl").open("a")

    def one_input(data: bytes) -> None:
        known = len(target.escapes)
        found = target.check(data)
        if found is not None and len(target.escapes) > known:
            report.write(json.dumps({"signature": found, "example": target.escapes[found]}) + "\n")
            report.flush()
    atheris.Setup([sys.argv[0], *libfuzzer_args], one_input)
    atheris.Fuzz()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=10**6, help="inputs per target (default 10**6)")
    parser.add_argument("--target", action="append", help="a target name (repeatable; default: all)")
    parser.add_argument("--engine", choices=("auto", "atheris", "mutation"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", type=Path, help="folder for one example of each escape (hex)")
    parser.add_argument("--json", type=Path, help="write the per-target results here")
    parser.add_argument("--atheris-child", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args.atheris_child:
        atheris_child(args.atheris_child, args.workdir, rest)
        return 0
    engine = args.engine
    if engine == "auto":
        engine = "atheris" if _atheris_available() else "mutation"
    workdir = Path(tempfile.mkdtemp(prefix="harness-fuzz-"))
    names = args.target or list(fuzz_targets.make_targets(workdir / "probe"))
    results = {}
    print(f"{'target':<16} {'engine':<9} {'inputs':>9} {'seconds':>8} {'per s':>7} {'escapes':>7}")
    for name in names:
        if engine == "atheris":
            result = run_atheris_child(name, args.inputs, args.seed, workdir)
        else:
            result = run_mutation(fuzz_targets.make_targets(workdir / name)[name], args.inputs, args.seed)
        results[name] = result
        rate = result["inputs"] / result["seconds"] if result["seconds"] else 0.0
        print(f"{name:<16} {result['engine']:<9} {result['inputs']:>9} {result['seconds']:>8.1f} {rate:>7.0f} "
              f"{len(result['escapes']):>7}" + (f"  cov {result['coverage']}" if result.get("coverage") else "")
              + (f"  ({result['child_failed']})" if result.get("child_failed") else ""), flush=True)
        for signature, example in result["escapes"].items():
            print(f"    {signature}  example: {example[:96]}{'...' if len(example) > 96 else ''}")
    _save(results, args.save, args.json)
    return 1 if any(r["escapes"] or r.get("child_failed") for r in results.values()) else 0


def _save(results: dict, folder: Path | None, json_path: Path | None) -> None:
    if folder:
        folder.mkdir(parents=True, exist_ok=True)
        for name, result in results.items():
            for i, example in enumerate(result["escapes"].values()):
                (folder / f"{name}-{i}.hex").write_text(example + "\n")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    os.environ.pop("HARNESS_TEST_FAULT", None)
    warnings.simplefilter("ignore")  # onnx warns about every fuzzed external-data key; a warning is not an escape
    sys.exit(main())
