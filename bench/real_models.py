"""Real-model bench: every built-in profile over the models fetched by bench/fetch_real_models.py.

Runs the harness as a user would (``python -m harness run <cases> --numerics-only``) in a subprocess, reads
the run record it writes, and prints per profile how many cells ended in each verdict, one line per cell
that did not pass, and the worst cosine and SNR per (model, profile). It is a bench: the verdicts are
its output, so it exits 0 whatever they are, and non-zero only when the harness itself could not run.

    python bench/fetch_real_models.py                  # once: models, inputs and goldens into the cache
    python bench/real_models.py [--profile NAME ...] [--models a,b] [--cache DIR] [--keep DIR]
                                [--harness-root DIR]

Transforms are rebuilt on every run (a fresh HARNESS_CACHE_DIR for the harness), so a changed transform is
what gets measured, not a copy cached by an earlier version; --reuse-transforms skips that.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from fetch_real_models import MODELS, default_cache

REPO = Path(__file__).resolve().parent.parent
# The verdict columns, in the order the issue asks about them; anything else lands in "other".
COLUMNS = ("TRANSFORM_FAILED", "NOT_APPLICABLE", "ERROR", "FAIL", "PASS", "PASS*", "SKIPPED")
PASSING = frozenset({"PASS", "PASS*", "SKIPPED"})
DETAIL_CHARS = 160


class BenchError(Exception):
    """The harness could not run, or the bench was asked for something that does not exist."""


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=None, help="where fetch_real_models.py put the cases "
                        "(default: $HARNESS_CACHE_DIR/real-models or ~/.cache/onnx-harness/real-models)")
    parser.add_argument("--profile", action="append", dest="profiles", default=[], metavar="NAME",
                        help="restrict to this profile (repeatable; default: every built-in profile)")
    parser.add_argument("--models", action="append", default=[], metavar="A,B",
                        help="restrict to these models (comma-separated or repeated; default: all fetched)")
    parser.add_argument("--jobs", type=int, default=1, help="cells run in parallel by the harness (default: 1)")
    parser.add_argument("--timeout", type=float, default=None, help="per-cell timeout in seconds")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep the harness's run folder (record.json, harness.log) under DIR")
    parser.add_argument("--harness-root", type=Path, default=REPO, metavar="DIR",
                        help="run the harness from this checkout (default: the one holding this script); e.g. a "
                             "clean 'git archive HEAD' export, to bench a commit while the tree is being edited")
    parser.add_argument("--reuse-transforms", action="store_true",
                        help="use the harness's transform cache instead of rebuilding every transform")
    return parser.parse_args(argv)


def case_dirs(cache: Path, wanted: list[str]) -> list[Path]:
    """The fetched case folders, in the pinned order; a model asked for by name must be there."""
    known = [m.name for m in MODELS]
    names = [n.strip() for item in wanted for n in item.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise BenchError(f"unknown model {unknown[0]!r}; choose from {', '.join(known)}")
    chosen = names or known
    present = [cache / n for n in chosen if (cache / n / "model.onnx").is_file()]
    missing = [n for n in chosen if not (cache / n / "model.onnx").is_file()]
    if names and missing or not present:
        raise BenchError(f"{cache}: model(s) {', '.join(missing)} not fetched; "
                         f"run 'python bench/fetch_real_models.py' first")
    return present


def run_harness(cases: list[Path], args: argparse.Namespace, out: Path) -> tuple[dict[str, Any], float]:
    """One harness run over the cases; returns its run record and the wall time in seconds."""
    cmd = [sys.executable, "-m", "harness", "run", *map(str, cases), "--numerics-only", "--out", str(out / "runs"),
           "--jobs", str(args.jobs)]
    cmd += [arg for name in args.profiles for arg in ("--profile", name)]
    cmd += ["--timeout", str(args.timeout)] if args.timeout else []
    env = dict(os.environ)
    if not args.reuse_transforms:
        env["HARNESS_CACHE_DIR"] = str(out / "harness-cache")
    log = out / "harness.log"
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as handle:
        done = subprocess.run(cmd, cwd=args.harness_root, env=env, stdout=handle, stderr=subprocess.STDOUT)
    wall = time.perf_counter() - start
    records = sorted((out / "runs").glob("*/record.json"))
    if done.returncode not in (0, 1) or not records:
        tail = log.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise BenchError(f"the harness exited {done.returncode} without a run record:\n  " + "\n  ".join(tail))
    return json.loads(records[-1].read_text(encoding="utf-8")), wall


def as_float(value: Any) -> float | None:
    """Metrics as the record stores them: numbers, or 'inf'/'-inf'/'nan' strings; anything else is absent."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def metric_values(cell: dict[str, Any], key: str) -> list[float]:
    """One metric over the cell's outputs and data sets, from outputs[].comparison (its 'metrics' dict, or
    the comparison itself); entries without it are left out."""
    values = []
    for entry in cell.get("outputs") or []:
        comparison = entry.get("comparison") if isinstance(entry, dict) else None
        if not isinstance(comparison, dict):
            continue
        metrics = comparison.get("metrics") if isinstance(comparison.get("metrics"), dict) else {}
        value = as_float(metrics.get(key, comparison.get(key)))
        if value is not None:
            values.append(value)
    return values


def worst(cell: dict[str, Any], key: str) -> float | None:
    """The lowest value of a metric over the cell's outputs and data sets; NaN counts as the worst."""
    values = metric_values(cell, key)
    if not values:
        return None
    return math.nan if any(math.isnan(v) for v in values) else min(values)


def case_name(cell: dict[str, Any]) -> str:
    return Path(str(cell.get("case", "?"))).name


def _one_line(text: Any) -> str:
    return " ".join(str(text).split())[:DETAIL_CHARS]


def first_reason(cell: dict[str, Any]) -> str:
    """The first reason of the first output that failed: the gate, where the detail only counts outputs."""
    for entry in cell.get("outputs") or []:
        comparison = entry.get("comparison") if isinstance(entry, dict) else None
        if isinstance(comparison, dict) and comparison.get("passed") is False:
            reasons = comparison.get("reasons") or []
            return _one_line(reasons[0]) if reasons and isinstance(reasons, list) else ""
    return ""


def verdict_table(cells: list[dict[str, Any]], profiles: list[str]) -> list[str]:
    counts = {p: Counter(str(c.get("verdict", "?")) for c in cells if c.get("profile") == p) for p in profiles}
    total = sum(counts.values(), Counter())
    width = max([len(p) for p in profiles] + [7])
    header = f"{'profile':<{width}} {'cells':>5} " + " ".join(f"{c:>{max(len(c), 4)}}" for c in COLUMNS) + "  other"
    lines = [header, "-" * len(header)]
    for name, count in [*counts.items(), ("TOTAL", total)]:
        other = ", ".join(f"{v}:{n}" for v, n in sorted(count.items()) if v not in COLUMNS)
        lines.append(f"{name:<{width}} {sum(count.values()):>5} "
                     + " ".join(f"{count.get(c, 0):>{max(len(c), 4)}}" for c in COLUMNS) + f"  {other}")
    return lines


def _fmt(value: float | None, digits: int) -> str:
    if value is None:
        return "-"
    return "nan" if math.isnan(value) else f"{value:.{digits}f}"


def metrics_lines(cells: list[dict[str, Any]]) -> list[str]:
    """Every cell that compared outputs; '-' where the record has no such metric (e.g. all NaN)."""
    lines = [f"{'model':<16} {'profile':<18} {'verdict':<16} {'worst cosine':>12} {'worst SNR dB':>12} "
             f"{'NaN in actual':>13}"]
    for cell in cells:
        if not cell.get("outputs"):
            continue
        nans = metric_values(cell, "actual_nan_count")
        lines.append(f"{case_name(cell):<16} {str(cell.get('profile')):<18} {str(cell.get('verdict')):<16} "
                     f"{_fmt(worst(cell, 'cosine'), 6):>12} {_fmt(worst(cell, 'snr_db'), 1):>12} "
                     f"{(str(int(sum(nans))) if nans else '-'):>13}")
    return lines


def report(record: dict[str, Any], wall: float) -> None:
    cells = [c for c in record.get("cells") or [] if isinstance(c, dict)]
    profiles = list(record.get("profiles") or {}) or sorted({str(c.get("profile")) for c in cells})
    models = sorted({case_name(c) for c in cells})
    commit = (record.get("commit") or {}).get("id") or "? (harness not run from a git checkout)"
    print(f"real-model bench: {len(models)} model(s) x {len(profiles)} profile(s) = {len(cells)} cells, "
          f"harness wall time {wall:.1f} s, commit {commit}, onnxruntime "
          f"{(record.get('versions') or {}).get('onnxruntime', '?')}")
    print()
    print("\n".join(verdict_table(cells, profiles)))
    failing = [c for c in cells if str(c.get("verdict")) not in PASSING]
    print(f"\ncells that did not pass ({len(failing)}):")
    for cell in failing:
        print(f"  {case_name(cell):<16} {str(cell.get('profile')):<18} {str(cell.get('verdict')):<16} "
              f"{_one_line(cell.get('detail') or '')}")
        reason = first_reason(cell)
        if reason:
            print(f"  {'':<16} {'':<18} {'':<16} first failing output: {reason}")
    print("\nworst cosine and SNR per (model, profile), over all outputs and data sets:")
    print("\n".join(metrics_lines(cells)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cases = case_dirs((args.cache or default_cache()).expanduser(), args.models)
        if args.keep:
            args.keep.mkdir(parents=True, exist_ok=True)
            out = Path(tempfile.mkdtemp(prefix="real-models-", dir=args.keep))
            record, wall = run_harness(cases, args, out)
            print(f"run folder kept: {out}")
        else:
            with tempfile.TemporaryDirectory(prefix="real-models-") as tmp:
                record, wall = run_harness(cases, args, Path(tmp))
    except BenchError as exc:
        print(f"real_models: error: {exc}", file=sys.stderr)
        return 2
    report(record, wall)
    return 0


if __name__ == "__main__":
    sys.exit(main())
