"""``harness calibrate``: run the calibration set, measure each output's noise floor, write case.json.

The manifest is read again just before it is written and replaced atomically, so a kill leaves the old case.json
or the new one; an existing calibration is never overwritten without ``force``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.api import MatrixOptions
from harness.atomic import atomic_write_bytes
from harness.calibrate.noise import (
    REVIEW_FRACTION,
    OutputNoise,
    measure_output,
    resolution,
    review_reason,
    settle,
)
from harness.calibrate.runs import REFERENCE, RunOutcome, calibration_profiles, data_digest, run_calibration
from harness.compare.tolerances import DEFAULT_K
from harness.errors import GoldenError, UsageError
from harness.golden.cases import Case, discover
from harness.golden.manifest import MANIFEST_NAME, CaseManifest, read_manifest
from harness.run import record as R
from harness.run.plan import CasePlan, plan_case
from harness.run.verdict import goldens_digest


@dataclass
class CaseCalibration:
    """The outcome for one case: what was measured, whether it needs review, and the block written."""

    case: str
    path: Path
    outputs: list[OutputNoise]
    runs: list[RunOutcome]
    review: str = ""
    block: dict[str, Any] = field(default_factory=dict)


def check_k(k: float) -> float:
    if isinstance(k, bool) or not isinstance(k, (int, float)) or not math.isfinite(k) or k <= 0:
        raise UsageError(f"--k {k!r}: must be a finite number above 0", hint=f"the default is {DEFAULT_K:g}")
    return float(k)


def _plan(case: Case, force: bool) -> CasePlan:
    """The case's plan, refused before anything runs when it cannot be calibrated or already is."""
    if case.model_file is not None:
        raise UsageError(f"{case.model_file}: a bare model has no goldens to calibrate against",
                         hint=f"make it a case folder and bless goldens first: 'harness bless {case.name}'")
    if case.has_manifest and case.manifest.calibration and not force:
        raise GoldenError(f"case {case.name!r} is already calibrated ({case.manifest.calibration.get('created', '?')})",
                          hint="pass --force to measure and write it again")
    plan = plan_case(case, dims=dict(case.manifest.dims), seed=0)
    if not plan.has_goldens:
        raise GoldenError(f"case {case.name!r} has no golden outputs to calibrate against",
                          hint=f"bless them first: 'harness bless {case.name}'")
    return plan


def calibrate(selectors: Sequence[str | Case], options: MatrixOptions | None = None, *, k: float = DEFAULT_K,
              force: bool = False, jobs: int = 0) -> list[CaseCalibration]:
    """Calibrate every case the selectors name (case names under ``options.root``, folders, or Case objects) and
    write each one's case.json. Bad input (no goldens, already calibrated without ``force``) raises before any
    run; a calibration run that fails is recorded in the block, and the case is calibrated from the others."""
    options = options or MatrixOptions()
    k = check_k(k)
    cases = [c for c in selectors if isinstance(c, Case)]
    names = [str(c) for c in selectors if not isinstance(c, Case)]
    cases += discover(names, options.root) if names or not cases else []
    plans = [_plan(case, force) for case in cases]
    profiles = calibration_profiles(options)
    outcomes = run_calibration(plans, profiles, jobs=jobs)
    results = []
    for plan in plans:
        runs = [outcomes[(plan.case.name, p.name)] for p in profiles]
        result = measure_case(plan, runs, k)
        if not any(n.rule for n in result.outputs):
            raise GoldenError(f"case {plan.case.name!r}: no output could be calibrated "
                              f"({'; '.join(f'{n.name}: {n.why_not}' for n in result.outputs)})",
                              hint="see why each calibration run failed: " + _failed_runs(runs))
        write_calibration(plan.case, result.block, force=force)
        results.append(result)
    return results


def _failed_runs(runs: list[RunOutcome]) -> str:
    failed = [f"{r.profile} {r.status} {r.detail}" for r in runs if r.outputs is None]
    return "; ".join(failed) or "every run produced outputs"


def measure_case(plan: CasePlan, runs: list[RunOutcome], k: float) -> CaseCalibration:
    """The rules and the manifest block from the runs that produced outputs; the float64 run is trusted only when
    it agrees with the goldens to within the review threshold."""
    produced = {r.profile: r.outputs for r in runs if r.outputs is not None}
    noises = [measure_output(plan, name, produced, REFERENCE, k) for name in plan.info.output_names]
    review = review_reason(noises, REFERENCE)
    reference_off = any(n.reference_deviation is not None and n.reference_deviation > REVIEW_FRACTION
                        for n in noises)
    trusted = [p for p in produced if not (p == REFERENCE and reference_off)]
    settle(noises, trusted)
    block = {
        "k": k,
        "outputs": {n.name: n.rule.to_dict() for n in noises if n.rule is not None},
        "runs": [_run_entry(r, noises, r.profile in trusted) for r in runs],
        "reference": _reference_entry(runs, noises, reference_off),
        "review": review,
        "versions": R.versions(),
        "host": {key: R.machine_info().get(key) for key in ("cpu", "machine", "cores")},
        "model_sha256": plan.info.sha256,
        "data_sha256": data_digest(plan),
        "goldens_sha256": goldens_digest(plan.datasets),
        "created": R.now_iso(),
    }
    return CaseCalibration(plan.case.name, plan.case.path, noises, runs, review, block)


def _run_entry(run: RunOutcome, noises: list[OutputNoise], trusted: bool) -> dict[str, Any]:
    entry: dict[str, Any] = {"profile": run.profile, "status": run.status, "used": trusted and run.outputs is not None}
    if run.detail:
        entry["detail"] = run.detail
    entry["worst"] = {n.name: n.per_run[run.profile] for n in noises if run.profile in n.per_run}
    return entry


def _reference_entry(runs: list[RunOutcome], noises: list[OutputNoise], off: bool) -> dict[str, Any]:
    ran = any(r.profile == REFERENCE and r.outputs is not None for r in runs)
    deviation = {n.name: n.reference_deviation for n in noises if n.reference_deviation is not None}
    worst = max(deviation.values(), default=None)
    return {"profile": REFERENCE, "ran": ran, "trusted": ran and not off, "deviation_of_scale": deviation,
            "resolution": resolution(worst) if off and worst is not None else ""}


def write_calibration(case: Case, block: dict[str, Any], *, force: bool) -> Path:
    """Put ``block`` into the case's case.json (read again now: an edit made during the runs is kept), atomically;
    refuse to replace a calibration without ``force`` (another process may have written one meanwhile)."""
    path = case.path / MANIFEST_NAME
    manifest = read_manifest(case.path) or CaseManifest(case=case.name)
    if manifest.calibration and not force:
        raise GoldenError(f"{path}: already holds a calibration ({manifest.calibration.get('created', '?')}), "
                          f"written before or while this one ran", hint="pass --force to replace it")
    manifest.calibration = block
    CaseManifest.from_dict(_json_round_trip(manifest), str(path))  # what is written must read back
    atomic_write_bytes(path, manifest.to_json().encode())
    return path


def _json_round_trip(manifest: CaseManifest) -> dict[str, Any]:
    return json.loads(manifest.to_json())


def summary_lines(result: CaseCalibration) -> list[str]:
    """What the command prints per case: each output's floor and allowance, the runs, and any review flag."""
    lines = [f"{result.case}: calibrated ({len(result.block['outputs'])} output(s), k = {result.block['k']:g}) "
             f"-> {result.path / MANIFEST_NAME}"]
    for noise in result.outputs:
        rule = noise.rule
        if rule is None:
            lines.append(f"  {noise.name}: not calibrated ({noise.why_not})")
        elif rule.kind == "float":
            fp64 = ("" if noise.reference_deviation is None
                    else f", fp64 off by {noise.reference_deviation:.2e} of scale")
            lines.append(f"  {noise.name}: S = {rule.scale:.4g}, f = {rule.floor:.3g}, U = {rule.ulps:.3g} ULP -> "
                         f"{rule.allowed_ulps:.4g} ULP allowed{fp64}")
        else:
            lines.append(f"  {noise.name}: exact; calibration saw {rule.mismatch_fraction:.3%} of elements differ")
    lines.append("  runs: " + ", ".join(f"{r.profile} {r.status}" + ("" if r.outputs is not None else f" ({r.detail})")
                                        for r in result.runs))
    if result.review:
        lines.append(f"  REVIEW: {result.review}. The calibrated rule is recorded but not applied by default "
                     f"(--tolerance calibrated applies it)")
    return lines
