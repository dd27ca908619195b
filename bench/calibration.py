"""Calibrated tolerances vs fixed ones: how well does each separate benign runs from divergent ones?

For every case (the bundled reference_outputs/ and, when fetched, the real models of bench/fetch_real_models.py):
1. the calibration runs (cpu at graph optimisation disable/basic/all, the float64 reference) give each output's
   noise floor U (harness.calibrate, measured in memory: no case.json is written);
2. benign runs (cpu, cpu-noopt, cpu-edge, and openvino-cpu-f32 where this host has the OpenVINO CPU device) and
   divergent runs (cpu-fp16, and openvino-cpu-bf16 / openvino-cpu-f16 where available) are scored per cell as the
   worst output of the worst data set:
   - calibrated: max_e |a-g| / (max(U,4) * ulp(max(|g|, f)))   (the cell passes iff score <= k)
   - fixed rtol/atol: max_e |a-g| / (atol + rtol*|g|)            (the cell passes iff score <= 1)
   A NaN/Inf pattern mismatch scores inf.
3. per rule: the worst benign score, the best divergent score, their ratio (worst benign / best divergent: below
   1 means some threshold separates every benign run from every divergent one, and the smaller the wider the
   margin), and the false alarms and misses at the rule's own threshold.

cpu and cpu-noopt are calibration runs themselves (cpu@all, cpu@disable), so their benign scores are in-sample;
cpu-edge (basic, one thread, no arena) and OpenVINO f32 are not. Nothing here is hard-coded: every number printed
is measured. Runs are cached with the calibration runs (~/.cache/onnx-harness/calibration).

    python bench/calibration.py [--k 8] [--no-real] [--real-dir DIR] [--jobs N]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.api import MatrixOptions, load_profiles  # noqa: E402
from harness.calibrate.calibrate import measure_case  # noqa: E402
from harness.calibrate.runs import calibration_profiles, run_calibration  # noqa: E402
from harness.compare.tolerances import MIN_ULPS, ulp_distance  # noqa: E402
from harness.golden.cases import discover  # noqa: E402
from harness.run.plan import CasePlan, plan_case  # noqa: E402

BENIGN = ("cpu", "cpu-noopt", "cpu-edge", "openvino-cpu-f32")
DIVERGENT = ("cpu-fp16", "openvino-cpu-bf16", "openvino-cpu-f16")
FIXED = {"rtol 1e-3 / atol 1e-7": (1e-3, 1e-7), "rtol 1e-4 / atol 1e-5": (1e-4, 1e-5)}
CALIBRATED = "calibrated"


@dataclass
class Scores:
    """Per rule: (case, profile, score) for the benign and the divergent cells."""

    benign: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)
    divergent: dict[str, list[tuple[str, str, float]]] = field(default_factory=dict)

    def add(self, kind: str, rule: str, case: str, profile: str, score: float) -> None:
        getattr(self, kind).setdefault(rule, []).append((case, profile, score))


def _non_finite_mismatch(g: np.ndarray, a: np.ndarray) -> bool:
    g64, a64 = g.astype(np.float64), a.astype(np.float64)
    return bool(np.any((np.isnan(g64) != np.isnan(a64)) | (np.isinf(g64) != np.isinf(a64))
                       | (np.isinf(g64) & np.isinf(a64) & (g64 != a64))))


def fixed_score(g: np.ndarray, a: np.ndarray, rtol: float, atol: float) -> float:
    if _non_finite_mismatch(g, a):
        return math.inf
    g64, a64 = g.astype(np.float64), a.astype(np.float64)
    both = np.isfinite(g64) & np.isfinite(a64)
    if not both.any():
        return 0.0
    return float(np.max(np.abs(a64[both] - g64[both]) / (atol + rtol * np.abs(g64[both]))))


def calibrated_score(g: np.ndarray, a: np.ndarray, rule) -> float:
    if _non_finite_mismatch(g, a):
        return math.inf
    worst = ulp_distance(g, a, rule.floor, rule.dtype).worst_ulps
    return 0.0 if worst is None else worst / max(rule.ulps, MIN_ULPS)


def cell_scores(plan: CasePlan, outputs: dict[str, np.ndarray], rules: dict) -> dict[str, float]:
    """The cell's score under each rule: its worst float output over every data set."""
    scores = {name: 0.0 for name in (CALIBRATED, *FIXED)}
    for ds in plan.datasets:
        for name, golden in ds.outputs.items():
            rule = rules.get(name)
            if rule is None or rule.kind != "float" or not isinstance(golden, np.ndarray):
                continue
            got = outputs.get(f"{ds.index}/{name}")
            if got is None or got.shape != golden.shape:
                for key in scores:
                    scores[key] = math.inf
                continue
            scores[CALIBRATED] = max(scores[CALIBRATED], calibrated_score(golden, got, rule))
            for label, (rtol, atol) in FIXED.items():
                scores[label] = max(scores[label], fixed_score(golden, got, rtol, atol))
    return scores


def _cases(real_dir: Path | None) -> list[CasePlan]:
    cases = discover([], REPO / "reference_outputs")
    if real_dir is not None and real_dir.is_dir():
        cases += discover([], real_dir)
    plans = [plan_case(case, dims=dict(case.manifest.dims), seed=0) for case in cases]
    return [plan for plan in plans if plan.has_goldens]


def _evaluation_profiles(options: MatrixOptions) -> list:
    return load_profiles([*BENIGN, *DIVERGENT], options)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=float, default=8.0)
    parser.add_argument("--no-real", action="store_true", help="bundled cases only")
    parser.add_argument("--real-dir", type=Path, default=None, help="default: the fetch_real_models.py cache")
    parser.add_argument("--jobs", type=int, default=0)
    args = parser.parse_args(argv)
    real_dir = None
    if not args.no_real:
        sys.path.insert(0, str(REPO / "bench"))
        from fetch_real_models import default_cache
        real_dir = args.real_dir or default_cache()
    started = time.perf_counter()
    plans = _cases(real_dir)
    options = MatrixOptions()
    calibration = run_calibration(plans, calibration_profiles(options), jobs=args.jobs)
    calibrated_at = time.perf_counter()
    evaluation_profiles = _evaluation_profiles(options)
    runs = run_calibration(plans, evaluation_profiles, jobs=args.jobs)
    print(f"{len(plans)} case(s); calibration runs {calibrated_at - started:.1f} s (cached runs are not re-run), "
          f"evaluation runs {time.perf_counter() - calibrated_at:.1f} s, k = {args.k:g}")
    scores = Scores()
    skipped: dict[str, str] = {}
    print(f"\n{'case':<22} {'review':<7} {'U (ULP) per float output':<34} {'profile':<18} "
          f"{'calibrated':>11} " + " ".join(f"{label:>21}" for label in FIXED))
    for plan in plans:
        name = plan.case.name
        result = measure_case(plan, [calibration[(name, p.name)] for p in calibration_profiles(options)], args.k)
        rules = {n.name: n.rule for n in result.outputs if n.rule is not None}
        floors = ", ".join(f"{n}={r.ulps:.3g}" for n, r in rules.items() if r.kind == "float") or "-"
        for profile in evaluation_profiles:
            outcome = runs[(name, profile.name)]
            if outcome.outputs is None:
                skipped.setdefault(profile.name, f"{outcome.status} {outcome.detail[:100]}")
                continue
            cell = cell_scores(plan, outcome.outputs, rules)
            kind = "benign" if profile.name in BENIGN else "divergent"
            trusted = not result.review
            for rule, score in cell.items():
                if rule != CALIBRATED or trusted:
                    scores.add(kind, rule, name, profile.name, score)
            print(f"{name[:22]:<22} {'yes' if result.review else 'no':<7} {floors[:34]:<34} {profile.name:<18} "
                  f"{cell[CALIBRATED]:>11.3g} " + " ".join(f"{cell[label]:>21.3g}" for label in FIXED))
        if result.review:
            print(f"  {name}: REVIEW ({result.review[:200]}); its calibrated scores are left out of the summary")
    for profile, why in skipped.items():
        print(f"not run: {profile}: {why}")
    _summary(scores, args.k)
    return 0


def _summary(scores: Scores, k: float) -> None:
    print("\nper rule: worst benign cell, best divergent cell, worst benign / best divergent "
          "(< 1: separable), false alarms and misses at the rule's own threshold")
    for rule in (CALIBRATED, *FIXED):
        benign, divergent = scores.benign.get(rule, []), scores.divergent.get(rule, [])
        if not benign or not divergent:
            print(f"  {rule}: not enough runs ({len(benign)} benign, {len(divergent)} divergent)")
            continue
        threshold = k if rule == CALIBRATED else 1.0
        worst = max(benign, key=lambda s: s[2])
        best = min(divergent, key=lambda s: s[2])
        ratio = worst[2] / best[2] if best[2] > 0 else math.inf
        alarms = sum(1 for s in benign if s[2] > threshold)
        misses = sum(1 for s in divergent if s[2] <= threshold)
        print(f"  {rule:<22} worst benign {worst[2]:.3g} ({worst[0]} on {worst[1]}), best divergent {best[2]:.3g} "
              f"({best[0]} on {best[1]}): ratio {ratio:.3g} (separation {1 / ratio if ratio else math.inf:.3g}x); "
              f"threshold {threshold:g}: {alarms}/{len(benign)} false alarms, {misses}/{len(divergent)} missed")


if __name__ == "__main__":
    sys.exit(main())
