"""The calibrated rule on synthetic arrays: |a-g| <= k*max(U,4)*ulp(max(|g|,f)), its score, and its messages."""

from __future__ import annotations

import time

import numpy as np
import pytest

from harness.compare.comparator import CALIBRATED, DECLARED, compare_output, format_failure
from harness.compare.tolerances import CalibratedRule, Tolerance, floor_for, ulp_distance
from harness.errors import ProfileError

DECLARED_TOL = Tolerance(rtol=1e-4, atol=1e-5)


def _rule(scale: float = 1.0, ulps: float = 2.0, k: float = 8.0) -> CalibratedRule:
    return CalibratedRule(k=k, scale=scale, floor=floor_for(scale), ulps=ulps)


def _steps(values: np.ndarray, n: int) -> np.ndarray:
    """``values`` moved up by n float32 ULPs each."""
    out = values.astype(np.float32).copy()
    for _ in range(n):
        out = np.nextafter(out, np.float32(np.inf))
    return out


def test_ulp_distance_counts_float32_steps() -> None:
    g = np.array([1.0, 0.5, 3.0], dtype=np.float32)
    score = ulp_distance(g, _steps(g, 5), floor=1e-3)
    assert score.worst_ulps == pytest.approx(5.0) and score.scored == 3 and score.beyond == 0


def test_near_zero_elements_are_measured_against_the_floor_not_their_own_ulp() -> None:
    """A golden of 1e-9 moved to 2e-9 is a billion-fold relative error but far below f = 1e-3*S: tiny in ULPs."""
    g = np.array([1.0, 1e-9], dtype=np.float32)
    a = np.array([1.0, 2e-9], dtype=np.float32)
    score = ulp_distance(g, a, floor=floor_for(1.0))
    assert score.worst_ulps == pytest.approx(1e-9 / float(np.spacing(np.float32(1e-3))), rel=1e-3)  # ~8.6
    assert score.index == [1]
    assert compare_output("y", g, a, DECLARED_TOL, calibrated=_rule()).passed  # 8.6 <= 32 allowed
    own_ulps = 1e-9 / float(np.spacing(np.float32(1e-9)))
    assert own_ulps > 1e6  # what the element's own ULP would have said


def test_pass_within_and_fail_beyond_k_times_the_floor() -> None:
    g_safe = np.linspace(1.1, 1.9, 50, dtype=np.float32)  # one binade: every ULP step is the same size
    rule = _rule(ulps=2.0, k=8.0)  # allowed: 8 * max(2, 4) = 32 ULP
    assert rule.allowed_ulps == 32.0
    assert compare_output("y", g_safe, _steps(g_safe, 30), DECLARED_TOL, calibrated=rule).passed
    result = compare_output("y", g_safe, _steps(g_safe, 40), DECLARED_TOL, calibrated=rule)
    assert not result.passed and result.rule == CALIBRATED
    assert result.calibration["beyond"] == g_safe.size and result.calibration["allowed_ulps"] == 32.0


def test_the_failure_message_says_the_allowance_and_what_was_observed_in_ulps() -> None:
    g = np.array([[0.5, 1.0, 2.0]], dtype=np.float32)
    result = compare_output("logits", g, _steps(g, 100), DECLARED_TOL, calibrated=_rule(ulps=3.0))
    message = format_failure(result, case="mlp [test_data_set_0]", profile="cpu-fp16")
    assert message.startswith("case 'mlp [test_data_set_0]' output 'logits' on profile 'cpu-fp16'")
    assert "\ncalibrated: k·U = 8·4 = 32 ULP allowed, observed 100 ULP at index (0, 0)\n" in message
    assert "\nMismatched elements: 3 / 3 (100.0%) beyond 32 ULP\n" in message
    assert "Minimum k that would pass: 25" in message
    assert "up to" not in message  # no rtol/atol allowance is in force under the calibrated rule


def test_a_nan_pattern_mismatch_fails_whatever_the_allowance() -> None:
    g = np.array([1.0, np.nan, 2.0], dtype=np.float32)
    a = np.array([1.0, 1.0, 2.0], dtype=np.float32)
    result = compare_output("y", g, a, DECLARED_TOL, calibrated=_rule(ulps=1e6, k=1e6))
    assert not result.passed and "NaN" in result.reasons[0]
    matched = compare_output("y", g, g.copy(), DECLARED_TOL, calibrated=_rule())
    assert matched.passed  # NaN meets NaN


def test_opposite_infinities_fail() -> None:
    g = np.array([np.inf, 1.0], dtype=np.float32)
    result = compare_output("y", g, np.array([-np.inf, 1.0], dtype=np.float32), DECLARED_TOL, calibrated=_rule())
    assert not result.passed and "infinite" in result.reasons[0]


def test_integer_outputs_stay_exact_unless_calibration_saw_them_differ() -> None:
    g = np.arange(100, dtype=np.int64)
    a = g.copy()
    a[:2] += 1  # 2% of elements differ
    exact = CalibratedRule(k=8.0, kind="exact")
    result = compare_output("label", g, a, DECLARED_TOL, calibrated=exact)
    assert not result.passed and result.rule == CALIBRATED and "exact match required" in result.reasons[0]
    seen = CalibratedRule(k=8.0, kind="exact", mismatch_fraction=0.005)  # 8 * 0.5% = 4% may differ
    assert compare_output("label", g, a, DECLARED_TOL, calibrated=seen).passed


def test_a_float_rule_does_not_judge_an_integer_output() -> None:
    g = np.arange(4, dtype=np.int32)
    result = compare_output("label", g, g + 1, DECLARED_TOL, calibrated=_rule(ulps=1e9))
    assert not result.passed and result.rule == DECLARED


def test_the_rule_round_trips_through_the_record() -> None:
    from harness.compare.comparator import OutputComparison
    g = np.ones(3, dtype=np.float32)
    result = compare_output("y", g, _steps(g, 2), DECLARED_TOL, calibrated=_rule())
    again = OutputComparison.from_dict(result.to_dict())
    assert again.rule == CALIBRATED and again.calibration == result.calibration and again.passed


def test_old_records_read_as_the_declared_rule() -> None:
    from harness.compare.comparator import OutputComparison
    d = compare_output("y", np.ones(2, np.float32), np.ones(2, np.float32), DECLARED_TOL).to_dict()
    del d["rule"], d["calibration"]
    assert OutputComparison.from_dict(d).rule == DECLARED


@pytest.mark.parametrize("entry, message", [
    ({"k": 0}, "k must be above 0"),
    ({"k": 8, "ulps": -1}, "ulps must be a finite number >= 0"),
    ({"k": 8, "ulps": float("nan")}, "ulps must be a finite number"),
    ({"k": 8, "kind": "fuzzy"}, "kind must be"),
    ({"k": 8, "dtype": "bfloat16"}, "dtype must be one of"),
    ({"k": 8, "ulp": 3}, "unknown calibration key 'ulp'.*did you mean 'ulps'"),
    ({"scale": 1}, "k must be a finite number"),
])
def test_bad_rules_are_refused(entry: dict, message: str) -> None:
    with pytest.raises(ProfileError, match=message):
        CalibratedRule.from_mapping(entry, "case.json calibration.outputs.y")


def test_the_equivalent_element_rule_is_about_k_u_eps() -> None:
    tol = _rule(scale=2.0, ulps=10.0, k=8.0).equivalent()
    assert tol.rtol == pytest.approx(80 * 2.0**-23) and tol.atol == pytest.approx(tol.rtol * 2e-3)


def test_large_outputs_are_scored_in_bounded_chunks_and_fast() -> None:
    rng = np.random.default_rng(0)
    g = rng.standard_normal(4_000_000).astype(np.float32)
    a = _steps(g, 1)
    a[123_456] = g[123_456] + np.float32(0.5)
    started = time.perf_counter()
    score = ulp_distance(g, a, floor=floor_for(float(np.abs(g).max())), limit=32.0, chunk_elems=1 << 18)
    elapsed = time.perf_counter() - started
    assert score.index == [123_456] and score.beyond == 1 and score.scored == g.size
    assert elapsed < 5.0, f"{elapsed:.2f} s for 4M elements"
