"""Noise floors from calibration runs, and the float64 run checked before it is trusted (harness/calibrate/noise.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.calibrate.calibrate import measure_case
from harness.calibrate.noise import measure_output, resolution, review_reason
from harness.calibrate.runs import REFERENCE, RunOutcome
from harness.golden.cases import load_case
from harness.run.plan import plan_case


def _plan(case_dir: Path):
    return plan_case(load_case(case_dir, "tiny"), dims={}, seed=0)


def _steps(values: np.ndarray, n: int) -> np.ndarray:
    out = values.astype(np.float32).copy()
    for _ in range(n):
        out = np.nextafter(out, np.float32(np.inf))
    return out


def _runs(plan, shift: dict[str, int], reference_offset: float = 0.0) -> list[RunOutcome]:
    """cpu@* runs moved by ``shift`` ULPs, and a reference moved by ``reference_offset`` of the output's scale."""
    runs = []
    for profile, n in shift.items():
        runs.append(RunOutcome(profile, {f"{ds.index}/y": _steps(ds.outputs["y"], n) for ds in plan.datasets}, "ran"))
    scale = max(float(np.abs(ds.outputs["y"]).max()) for ds in plan.datasets)
    runs.append(RunOutcome(REFERENCE, {f"{ds.index}/y": ds.outputs["y"] + np.float32(reference_offset * scale)
                                       for ds in plan.datasets}, "ran"))
    return runs


def test_u_is_the_worst_run_in_ulps_and_s_f_come_from_the_goldens(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "tiny", sets=2))
    result = measure_case(plan, _runs(plan, {"cpu@disable": 3, "cpu@basic": 1, "cpu@all": 0}), k=8.0)
    rule = result.outputs[0].rule
    scale = max(float(np.abs(ds.outputs["y"]).max()) for ds in plan.datasets)
    assert rule.scale == pytest.approx(scale) and rule.floor == pytest.approx(1e-3 * scale)
    assert 2.0 <= rule.ulps <= 3.0  # 3 steps of an element's own ULP, at most 3 ULPs of max(|g|, f)
    assert result.review == "" and result.block["reference"]["trusted"]
    assert result.block["outputs"]["y"]["k"] == 8.0 and [r["profile"] for r in result.block["runs"]] == [
        "cpu@disable", "cpu@basic", "cpu@all", REFERENCE]


def test_a_float64_run_far_from_the_golden_flags_the_case_and_widens_nothing(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "tiny"))
    result = measure_case(plan, _runs(plan, {"cpu@disable": 2, "cpu@basic": 2, "cpu@all": 0}, 0.03), k=8.0)
    assert "≈3% of scale" in result.review and "output 'y'" in result.review
    assert result.block["reference"] == {**result.block["reference"], "trusted": False, "resolution": "≈3% of scale"}
    assert result.outputs[0].rule.ulps <= 2.0  # the CPU runs' floor; the float64 run's 3% did not widen it
    assert [r["used"] for r in result.block["runs"]] == [True, True, True, False]


def test_a_float64_run_within_one_percent_is_trusted(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "tiny"))
    result = measure_case(plan, _runs(plan, {"cpu@all": 0}, 0.005), k=8.0)
    assert result.review == "" and result.outputs[0].rule.ulps > 1000  # 0.5% of scale is many ULPs, and trusted


def test_a_failed_run_is_recorded_and_the_others_calibrate(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "tiny"))
    runs = _runs(plan, {"cpu@all": 1}) + [RunOutcome("cpu@basic", None, "TIMEOUT", "took too long")]
    result = measure_case(plan, runs, k=8.0)
    entry = next(r for r in result.block["runs"] if r["profile"] == "cpu@basic")
    assert entry == {"profile": "cpu@basic", "status": "TIMEOUT", "used": False, "detail": "took too long", "worst": {}}
    assert result.outputs[0].rule is not None


def test_nan_where_the_golden_has_none_flags_review(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "tiny"))
    runs = _runs(plan, {"cpu@all": 0})
    runs[0].outputs["0/y"] = runs[0].outputs["0/y"].copy()
    runs[0].outputs["0/y"][0, 0] = np.nan
    noise = measure_output(plan, "y", {r.profile: r.outputs for r in runs}, REFERENCE, 8.0)
    assert noise.non_finite == ["cpu@all"]
    assert "NaN/Inf where the golden has none" in review_reason([noise], REFERENCE)


def test_resolution_wording() -> None:
    assert resolution(0.0312) == "≈3.1% of scale" and resolution(0.03) == "≈3% of scale"
