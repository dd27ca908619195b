"""A differential fuzzing campaign end to end, and a check of its findings through the real CLI (issue 18).

Runs ``python -m harness fuzz`` in a subprocess (the command a user runs), then re-runs a few of the findings it
saved with ``python -m harness run <finding> --profile P --numerics-only`` (each in its own subprocess), and prints
one JSON document: the campaign's throughput, verdict counts, findings (key, occurrences, shrink, the campaign's
own reproduction verdict and assessment) and, per checked finding, the verdict and exit status the CLI gave.

    python bench/fuzz_campaign.py --profile cpu --profile cpu-noopt --profile cpu-fp16 --budget 10m --seed 18
    python bench/fuzz_campaign.py --profile cpu --budget 60s --check 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path


def fuzz(args: argparse.Namespace, out: Path) -> tuple[int, float]:
    argv = [sys.executable, "-m", "harness", "fuzz", "--budget", args.budget, "--seed", str(args.seed),
            "--out", str(out), "--batch", str(args.batch), *[f"--profile={p}" for p in args.profile]]
    started = time.perf_counter()
    done = subprocess.run(argv, check=False, stdout=sys.stderr)  # progress on stderr: stdout is the JSON
    return done.returncode, time.perf_counter() - started


def check(out: Path, finding: dict) -> dict:
    """'harness run <finding> --profile P' in a subprocess: the verdict line and the exit status."""
    folder = out / finding["path"]
    argv = [sys.executable, "-m", "harness", "run", str(folder), "--profile", finding["profile"], "--numerics-only",
            "--out", str(out / "checks")]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("[") and finding["profile"] in line]
    return {"key": finding["key"], "command": " ".join(argv[1:]), "exit": done.returncode,
            "line": lines[-1].strip()[:200] if lines else done.stderr.strip()[-200:]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", action="append", required=True)
    parser.add_argument("--budget", default="10m")
    parser.add_argument("--seed", type=int, default=18)
    parser.add_argument("--batch", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("results/bench-fuzz"))
    parser.add_argument("--check", type=int, default=4, help="findings re-run through 'harness run' (default: 4)")
    args = parser.parse_args()
    out = args.out / f"seed-{args.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    code, wall = fuzz(args, out)
    report = json.loads((out / "fuzz-report.json").read_text(encoding="utf-8"))
    summary = {"campaign": str(out), "exit": code, "wall_s": round(wall, 1), "elapsed_s": report["elapsed_s"],
               "graphs": report["graphs"], "throughput": report["throughput"], "verdicts": report["verdicts"],
               "findings": [{k: f[k] for k in ("key", "occurrences", "path", "assessment")} |
                            {"nodes": f"{f['shrink'].get('nodes_before')}->{f['shrink'].get('nodes_after')}",
                             "reproduces": (f.get("reproduces") or {}).get("verdict")} for f in report["findings"]],
               "coverage_ops": len(report["coverage"]["ops"]),
               "checked": [check(out, f) for f in report["findings"][:args.check]]}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
