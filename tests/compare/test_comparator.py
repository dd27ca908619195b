import json
import math

import numpy as np
import pytest

from harness.compare.comparator import OutputComparison, compare_output, format_failure
from harness.compare.tolerances import Tolerance, ToleranceOverride, resolve_tolerance

TOL = Tolerance(rtol=1e-4, atol=1e-5)


def cmp(g, a, tol=TOL, dtype=np.float32, adtype=None):
    return compare_output("logits", np.array(g, dtype=dtype), np.array(a, dtype=adtype or dtype), tol)


def msg(c):
    return format_failure(c, case="mlp", profile="cpu").splitlines()


@pytest.fixture
def failing():
    return cmp([1, 2, 3], [1, 4, 3])


# --- verdicts ---

def test_pass():
    c = cmp([1, 2, 3], [1, 2, 3.00001])
    assert c.passed and c.reasons == [] and not c.shape_mismatch and not c.dtype_mismatch


def test_fail_reason(failing):
    assert not failing.passed
    assert failing.reasons == ["Mismatched elements: 1 / 3 (33.3%) beyond rtol 0.0001 / atol 1e-05"]


def test_shape_mismatch_no_crash():
    c = compare_output("y", np.zeros((2, 10)), np.zeros((2, 5)), TOL)
    assert not c.passed and c.shape_mismatch and c.metrics is None
    assert c.reasons == ["shape mismatch: golden (2, 10) vs actual (2, 5)"]


def test_dtype_mismatch_reported_but_judged_numerically():
    c = cmp([1.0, 2.0], [1.0, 2.0], dtype=np.float32, adtype=np.float16)
    assert c.dtype_mismatch and c.passed
    assert (c.golden_dtype, c.actual_dtype) == ("float32", "float16")


def test_mismatch_fraction_allowance():
    tol = Tolerance(1e-4, 1e-5, max_mismatch_fraction=0.5)
    assert cmp([1, 2, 3, 4], [1, 2, 3, 9], tol).passed
    assert not cmp([1, 2, 3, 4], [1, 2, 8, 9], tol.__class__(1e-4, 1e-5, max_mismatch_fraction=0.25)).passed


def test_nan_disagreement_fails_even_with_allowance():
    c = cmp([np.nan, 1.0], [1.0, 1.0], Tolerance(1e-4, 1e-5, max_mismatch_fraction=1.0))
    assert not c.passed and any("NaN" in r for r in c.reasons)


def test_inf_disagreement_fails():
    c = cmp([np.inf], [-np.inf], Tolerance(1e-4, 1e-5, max_mismatch_fraction=1.0))
    assert not c.passed and any("Inf" in r for r in c.reasons)


def test_nan_matching_nan_passes():
    assert cmp([np.nan, np.inf], [np.nan, np.inf]).passed


def test_cosine_gate():
    loose = Tolerance(1.0, 10.0, min_cosine=0.9999)
    c = cmp([1, 2, 3], [1, 2, 5], loose)
    assert not c.passed and c.reasons == ["cosine 0.9759 < 0.9999"]
    assert cmp([1, 2, 3], [1, 2, 3.001], loose).passed


def test_snr_gate():
    c = cmp([1, 2, 3], [1, 2, 5], Tolerance(1.0, 10.0, min_snr_db=30))
    assert c.reasons == ["SNR 5.4 dB < 30 dB"]


def test_snr_gate_zero_golden():
    c = cmp([0, 0], [1, 0], Tolerance(1.0, 10.0, min_snr_db=30))
    assert not c.passed and c.reasons == ["SNR n/a (the expected output is all zero), needs >= 30 dB"]


def test_topk_gate():
    g = [[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]]
    a = [[0.2, 0.7, 0.1], [0.1, 0.2, 0.7]]
    top1 = cmp(g, a, Tolerance(10.0, 10.0, min_topk_agreement=1.0))
    assert not top1.passed and top1.metrics.topk_agreement == 0.5
    assert top1.reasons == ["top-1 agreement 0.5 < 1.0"]
    assert cmp(g, a, Tolerance(10.0, 10.0, min_topk_agreement=1.0, topk=2)).passed


def test_topk_gate_on_scalar_fails_clearly():
    c = cmp(1.0, 1.0, Tolerance(1e-4, 1e-5, min_topk_agreement=0.9))
    assert not c.passed and c.reasons == ["top-1 agreement n/a (shape () has no class axis last), needs >= 0.9"]


def test_topk_not_computed_without_gate():
    assert cmp([[1, 2]], [[1, 2]]).metrics.topk_agreement is None


def test_int64_large_values_exact():
    c = cmp([2**62], [2**62 + 1], Tolerance(1.0, 1.0), dtype=np.int64)
    assert not c.passed


# --- message fragments ---

def test_message_header(failing):
    assert msg(failing)[0] == "case 'mlp' output 'logits' on profile 'cpu': tensor-likes are not close vs golden"


def test_message_mismatched_leads_and_names_the_tolerance(failing):
    assert msg(failing)[1] == "Mismatched elements: 1 / 3 (33.3%) beyond rtol 0.0001 / atol 1e-05"


def test_message_mismatched_with_allowance():
    c = cmp([1, 2, 3, 4], [1, 2, 8, 9], Tolerance(1e-4, 1e-5, max_mismatch_fraction=0.25))
    assert msg(c)[1] == "Mismatched elements: 2 / 4 (50.0%) beyond rtol 0.0001 / atol 1e-05 (50.0% > 25.0% allowed)"


def test_message_torch_example():
    lines = msg(cmp([1, 2, 3], [1, 4, 3]))
    assert "Greatest absolute difference: 2.0 at index (1,) (up to 1e-05 allowed)" in lines
    assert "Greatest relative difference: 1.0 at index (1,) (up to 0.0001 allowed)" in lines


def test_message_multi_dim_index():
    c = cmp([[1, 2], [3, 4]], [[1, 2], [3, 6]])
    assert "Greatest absolute difference: 2.0 at index (1, 1) (up to 1e-05 allowed)" in msg(c)


def test_message_cosine_snr_ulp(failing):
    line = next(x for x in msg(failing) if x.startswith("Cosine similarity:"))
    assert line.startswith("Cosine similarity: 0.") and "SNR: 5.4 dB" in line and "dB  Max ULP: " in line


def test_message_no_ulp_for_mixed_dtypes():
    c = cmp([1, 2], [1, 3], dtype=np.float32, adtype=np.float16)
    line = next(x for x in msg(c) if x.startswith("Cosine similarity:"))
    assert "ULP" not in line
    assert "Dtypes differ: golden float32 vs actual float16" in msg(c)


def test_message_nan_inf_line():
    c = cmp([np.nan, np.inf, 1.0], [1.0, -np.inf, 1.0])
    assert "NaN/Inf disagreements: 1 NaN, 1 Inf" in msg(c)


def test_message_golden_nan_count():
    c = cmp([np.nan, 1.0], [np.nan, 2.0])
    assert ("Non-finite elements: 1 NaN in the actual output, 1 NaN in the golden "
            "(NaN matches only NaN, Inf only the same Inf)") in msg(c)


def test_message_minimum_tolerance(failing):
    line = next(x for x in msg(failing) if x.startswith("Minimum tolerance"))
    assert line == "Minimum tolerance that would pass: atol=2.0 (at rtol=0) or rtol=0.999995 (at atol=1e-05)"


def test_message_minimum_rtol_inf_for_zero_golden():
    line = next(x for x in msg(cmp([0.0, 1.0], [1.0, 1.0])) if x.startswith("Minimum tolerance"))
    assert "rtol=inf" in line


def test_message_gate_line_leads():
    c = cmp([1, 2, 3], [1, 2, 5], Tolerance(1.0, 10.0, min_cosine=0.99))
    assert msg(c)[1] == "cosine 0.9759 < 0.99"


def test_message_note(failing):
    last = msg(failing)[-1]
    assert last.startswith("Note: if this difference is expected on this profile")
    assert "case.json" in last and "[tolerance]" in last and "localise the diverging node" in last


def test_message_shape_mismatch():
    c = compare_output("y", np.zeros((2, 10)), np.zeros((2, 5)), TOL)
    lines = format_failure(c, case="x", profile="p").splitlines()
    assert lines[0] == "case 'x' output 'y' on profile 'p': shape mismatch: golden (2, 10) vs actual (2, 5)"
    assert lines[1].startswith("Note:") and len(lines) == 2


# --- serialisation ---

def test_json_round_trip_with_inf():
    c = cmp([0.0, 1.0], [1.0, 1.0], Tolerance(math.inf, 0.0, min_snr_db=10.0))
    assert c.metrics.required_rtol == math.inf
    text = json.dumps(c.to_dict(), allow_nan=False)
    assert '"inf"' in text
    assert OutputComparison.from_dict(json.loads(text)) == c


def test_json_round_trip_identical_snr_inf():
    c = cmp([1.0, 2.0], [1.0, 2.0])
    back = OutputComparison.from_dict(json.loads(json.dumps(c.to_dict(), allow_nan=False)))
    assert back.metrics.snr_db == math.inf and back == c


def test_json_round_trip_shape_mismatch():
    c = compare_output("y", np.zeros((2, 10)), np.zeros((2, 5)), TOL)
    assert OutputComparison.from_dict(json.loads(json.dumps(c.to_dict(), allow_nan=False))) == c


# --- the gate that failed leads ---

INT8_LIKE = resolve_tolerance(np.float32, np.float32, [ToleranceOverride.from_mapping(
    {"elementwise": False, "min_cosine": 0.99, "min_snr_db": 15}, "cpu-int8 [tolerance]")])


def noisy_copy(n: int, noise: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    g = rng.standard_normal(n).astype(np.float32)
    return g, (g + noise * rng.standard_normal(n)).astype(np.float32)


def test_int8_like_snr_failure_leads_with_snr():
    g, a = noisy_copy(4096, 0.1)  # SNR ~20 dB, cosine ~0.995: only the SNR gate fails at 25 dB
    tol = Tolerance(1e-4, 1e-5, min_cosine=0.99, min_snr_db=25, elementwise=False)
    c = cmp(g, a, tol)
    lines = msg(c)
    assert not c.passed and len(c.reasons) == 1
    snr = c.metrics.snr_db
    assert lines[1] == f"SNR {snr:.1f} dB < 25 dB"


def test_int8_like_several_gates_in_fixed_order():
    g, a = noisy_copy(4096, 1.0)  # noise as large as the signal: SNR ~0 dB, cosine ~0.7
    c = cmp(g, a, INT8_LIKE)
    assert [r.split()[0] for r in c.reasons] == ["SNR", "cosine"]
    assert c.reasons[1] == f"cosine {float(f'{c.metrics.cosine:.6g}')!r} < 0.99"
    assert msg(c)[1:3] == c.reasons


def test_no_elementwise_gate_prints_no_allowance():
    g, a = noisy_copy(4096, 0.01)  # far outside rtol 1e-4, well inside the signal gates
    c = cmp(g, a, INT8_LIKE)
    assert c.passed and c.metrics.mismatched > 0  # counted for the record, not gated
    text = format_failure(c, case="mlp", profile="cpu-int8")
    assert "allowed" not in text and "Mismatched elements" not in text
    assert "Greatest absolute difference: " in text
    assert "Element rule that would pass (not in force): atol=" in text


def test_no_elementwise_gate_still_fails_on_nan():
    g, a = noisy_copy(8, 0.0)
    a[3] = np.nan
    c = cmp(g, a, INT8_LIKE)
    assert not c.passed and c.reasons[0] == "1 of 8 elements are NaN in the actual output, 0 in the golden"


def test_all_nan_actual_leads_with_the_nan_count():
    g = np.random.default_rng(0).standard_normal(16384).astype(np.float32)
    c = cmp(g, np.full_like(g, np.nan))
    lines = msg(c)
    assert lines[1] == "16384 of 16384 elements are NaN in the actual output, 0 in the golden"
    assert "Mismatched elements" not in "\n".join(lines)  # the NaN line says it all
    assert "Greatest absolute difference: n/a (no element finite on both sides: 16384 NaN in actual)" in lines
    assert "Cosine similarity: n/a  SNR: n/a (no element finite on both sides: 16384 NaN in actual)" in lines
    assert not any(x in line for line in lines for x in ("Cosine similarity: 1.0", "SNR: inf", "difference: 0.0"))
    assert lines[-1].startswith("Note: a NaN or Inf the other side does not have fails whatever the tolerance")


def test_all_nan_on_a_signal_gated_profile():
    c = cmp(np.ones(16, np.float32), np.full(16, np.nan, np.float32), INT8_LIKE)
    assert c.reasons == [
        "16 of 16 elements are NaN in the actual output, 0 in the golden",
        "SNR n/a (no element finite on both sides: 16 NaN in actual), needs >= 15 dB",
        "cosine n/a (no element finite on both sides: 16 NaN in actual), needs >= 0.99",
    ]


def test_all_nan_comparison_json_is_valid():
    c = cmp([1.0, 2.0], [np.nan, np.nan])
    text = json.dumps(c.to_dict(), allow_nan=False)
    assert '"cosine": null' in text
    assert OutputComparison.from_dict(json.loads(text)) == c


def test_nan_on_both_sides_at_different_places():
    c = cmp([np.nan, 1.0, 2.0], [1.0, np.nan, 2.0])
    assert c.reasons[0] == ("1 of 3 elements are NaN in the actual output, 1 in the golden "
                            "(2 positions have NaN on one side only)")


def test_message_inf_gate_line():
    c = cmp([np.inf, 1.0], [-np.inf, 1.0])
    assert msg(c)[1] == ("1 of 2 elements are infinite on one side only or with opposite signs "
                         "(1 Inf in the actual output, 1 in the golden)")


def test_signal_line_says_when_computed_over_finite_pairs_only():
    c = cmp([1.0, 2.0, 3.0], [1.0, 2.5, np.nan])
    line = next(x for x in msg(c) if x.startswith("Cosine similarity:"))
    assert line.endswith("(over the 2 of 3 elements finite on both sides)")


def test_integer_output_one_of_48_differs():
    g = np.arange(48, dtype=np.int64) % 7
    a = g.copy()
    a[17] += 1
    old_int8 = Tolerance(1e9, 1e9, min_cosine=0.0)  # what the int8 profiles used to resolve to
    for tol in (TOL, old_int8, INT8_LIKE):
        c = compare_output("classes", g, a, tol)
        lines = format_failure(c, case="cls", profile="cpu-int8").splitlines()
        assert not c.passed
        assert lines[1] == "integer output: 1 of 48 elements differ (exact match required)"
        assert "allowed" not in "\n".join(lines) and "Minimum tolerance" not in "\n".join(lines)
        assert "Greatest absolute difference: 1.0 at index (17,)" in lines


def test_integer_output_with_an_allowance():
    c = cmp([1, 2, 3, 4], [1, 2, 3, 5], Tolerance(0.0, 0.0, max_mismatch_fraction=0.1), dtype=np.int32)
    assert c.reasons == ["integer output: 1 of 4 elements differ (25.0% > 10.0% allowed)"]


def test_boolean_output():
    c = cmp([True, False], [True, True], dtype=np.bool_)
    assert c.reasons == ["boolean output: 1 of 2 elements differ (exact match required)"]


def test_string_output():
    c = cmp(["cat", "dog"], ["cat", "cow"], dtype=object)
    lines = msg(c)
    assert lines[1] == "string output: 1 of 2 elements differ (exact match required)"
    assert lines[2] == "First mismatch at index (1,): golden 'dog' vs actual 'cow'"
    assert not any(line.startswith(("Greatest", "Cosine", "Minimum")) for line in lines)


# --- what the comparison was against ---

def test_against_a_reference_profile_in_every_message_part():
    c = compare_output("y", np.array([1.0, 2.0], np.float32), np.array([np.nan, 2.0], np.float16), TOL,
                       against="cpu")
    lines = format_failure(c, case="mlp [test_data_set_0]", profile="cpu-fp16").splitlines()
    assert lines[0] == "case 'mlp [test_data_set_0]' output 'y' on profile 'cpu-fp16': tensor-likes are not close vs cpu"
    assert lines[1] == "1 of 2 elements are NaN in the actual output, 0 in cpu"
    assert "Dtypes differ: cpu float32 vs actual float16" in lines
    assert c.to_dict()["against"] == "cpu"


def test_against_in_a_shape_mismatch():
    c = compare_output("y", np.zeros((2, 10)), np.zeros((2, 5)), TOL, against="cpu")
    assert c.reasons == ["shape mismatch: cpu (2, 10) vs actual (2, 5)"]
    assert format_failure(c, case="x", profile="p").splitlines()[0].endswith("shape mismatch: cpu (2, 10) vs actual (2, 5)")


def test_json_round_trip_against():
    c = compare_output("y", np.ones(3), np.ones(3) * 2, TOL, against="cpu")
    assert OutputComparison.from_dict(json.loads(json.dumps(c.to_dict(), allow_nan=False))) == c


def test_from_dict_of_an_old_record():
    old = {"name": "logits", "golden_shape": [3], "actual_shape": [3], "golden_dtype": "float32",
           "actual_dtype": "float32",
           "tolerance": {"rtol": 1e9, "atol": 1e9, "min_cosine": 0.99, "min_snr_db": 15.0,
                         "min_topk_agreement": None, "topk": 1, "max_mismatch_fraction": 0.0},
           "metrics": {"total": 3, "mismatched": 0, "mismatch_fraction": 0.0, "max_abs_diff": 2.0,
                       "max_abs_index": [1], "max_rel_diff": 1.0, "max_rel_index": [1], "required_atol": 2.0,
                       "required_rtol": 0.999995, "cosine": 0.9759, "snr_db": 5.4, "max_ulp": 3,
                       "nan_mismatch": 0, "inf_mismatch": 0, "golden_nan_count": 0},
           "shape_mismatch": False, "dtype_mismatch": False, "passed": False,
           "reasons": ["Cosine similarity 0.9759 < required 0.99"]}
    c = OutputComparison.from_dict(old)
    assert c.against == "golden" and c.tolerance.elementwise and c.metrics.finite_pairs is None
    lines = format_failure(c, case="mlp", profile="cpu-int8").splitlines()
    assert lines[0].endswith("tensor-likes are not close vs golden")
    assert lines[1] == "Cosine similarity 0.9759 < required 0.99"  # the reasons it was judged with
    assert "Cosine similarity: 0.9759  SNR: 5.4 dB  Max ULP: 3" in lines


# --- issue 8: a passing dtype mismatch says so; opposite infinities have no passing tolerance ---

def test_a_wider_golden_dtype_passes_with_a_note():
    c = cmp([1.0, 2.0], [1.0, 2.0], dtype=np.float64, adtype=np.float32)
    assert c.passed and c.dtype_mismatch
    assert c.notes == ["dtype mismatch: golden float64 vs actual float32: compared after widening both to float64"]
    assert OutputComparison.from_dict(json.loads(json.dumps(c.to_dict()))).notes == c.notes


def test_opposite_infinities_say_that_no_tolerance_passes():
    lines = msg(cmp([np.inf, 1.0], [-np.inf, 1.0]))
    assert not any(line.startswith("Minimum tolerance that would pass") for line in lines)
    assert "No tolerance would pass: 1 non-finite mismatch (NaN or Inf on one side only, or opposite infinities)" in lines


def test_a_nan_mismatch_says_that_no_tolerance_passes_either():
    lines = msg(cmp([np.nan, 1.0, 2.0], [1.0, 1.0, 2.5]))
    assert "No tolerance would pass: 1 non-finite mismatch (NaN or Inf on one side only, or opposite infinities)" in lines


# --- every dtype and value kind of the ONNX node suite ---

import ml_dtypes  # noqa: E402

from harness.compare.comparator import compare_value  # noqa: E402
from harness.compare.tolerances import default_tolerance  # noqa: E402


def by_dtype(g, a):
    return default_tolerance(g, a)


@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz",
                                  "float4_e2m1fn"])
def test_exotic_floats_are_widened_exactly(name):
    dt = getattr(ml_dtypes, name)
    g = np.array([1.0, 2.0, 3.0, 0.5], dt)
    assert compare_output("y", g, g.copy(), default_tolerance(g.dtype, g.dtype)).passed
    a = g.copy()
    a[1] = dt(4.0)
    c = compare_output("y", g, a, default_tolerance(g.dtype, g.dtype))
    assert not c.passed and c.metrics.max_abs_diff == 2.0 and c.metrics.max_abs_index == [1]  # exact, in float64


def test_bfloat16_one_step_passes_at_the_suites_rtol():
    """The ONNX suite gives bfloat16 outputs rtol 2**-6: one bfloat16 step (2**-7 relative) passes, two fail."""
    g = np.array([1.0, 1.5, 3.0], ml_dtypes.bfloat16)
    one_step = np.array([1.0078125, 1.5, 3.0], ml_dtypes.bfloat16)
    suite = Tolerance(rtol=2.0 ** -6, atol=1e-7)
    assert compare_output("y", g, one_step, suite).passed
    assert compare_output("y", g, one_step, suite).metrics.max_ulp == 1
    assert not compare_output("y", g, np.array([1.03125, 1.5, 3.0], ml_dtypes.bfloat16), suite).passed


def test_int4_is_compared_as_integers():
    g = np.array([-8, 7, 1], ml_dtypes.int4)
    a = np.array([-8, 6, 1], ml_dtypes.int4)
    lines = msg(compare_output("q", g, a, default_tolerance(g.dtype, a.dtype)))
    assert lines[1] == "integer output: 1 of 3 elements differ (exact match required)"
    assert lines[2] == "First mismatch at index (1,): golden 7 vs actual 6"


def test_sequences_compare_item_by_item_with_each_items_tolerance():
    g = [np.array([1.0, 2.0], np.float32), np.array([1, 2], np.int64)]
    assert compare_value("s", g, [x.copy() for x in g], by_dtype).passed
    c = compare_value("s", g, [np.array([1.0, 2.5], np.float32), np.array([1, 2], np.int64)], by_dtype)
    assert not c.passed and c.kind == "sequence" and len(c.items) == 2
    assert c.reasons == ["s[0]: Mismatched elements: 1 / 2 (50.0%) beyond rtol 0.0001 / atol 1e-05"]
    assert c.metrics.max_abs_diff == 0.5  # the worst item's numbers, for the record's per-output metrics
    lines = msg(c)
    assert lines[0] == "case 'mlp' output 's' on profile 'cpu': sequence values differ vs golden"
    assert "s[0]:" in lines and "  Greatest absolute difference: 0.5 at index (1,) (up to 1e-05 allowed)" in lines
    back = OutputComparison.from_dict(json.loads(json.dumps(c.to_dict(), allow_nan=False)))
    assert back == c


def test_a_sequence_length_mismatch_is_a_clear_failure():
    c = compare_value("s", [np.zeros(2), np.zeros(2)], [np.zeros(2)], by_dtype)
    assert not c.passed and c.shape_mismatch
    assert c.reasons == ["sequence length mismatch: golden 2 item(s) vs actual 1"]
    assert compare_value("s", [], [], by_dtype).passed


def test_optionals_absent_on_both_sides_pass_and_on_one_side_fail():
    both = compare_value("o", None, None, by_dtype)
    assert both.passed and both.notes == ["optional absent on both sides"] and both.kind == "optional"
    one = compare_value("o", None, np.zeros(2, np.float32), by_dtype)
    assert not one.passed
    assert one.reasons == ["kind mismatch: golden is absent (an empty optional), actual is a float32 tensor (2,)"]
    assert compare_value("o", np.ones(2), None, by_dtype, against="cpu").reasons == [
        "kind mismatch: cpu is a float64 tensor (2,), actual is absent (an empty optional)"]


def test_maps_compare_keys_then_values():
    g = {"a": np.array(1.0, np.float32), "b": np.array(2.0, np.float32)}
    assert compare_value("m", g, dict(g), by_dtype).passed
    c = compare_value("m", g, {"a": np.array(1.0, np.float32), "c": np.array(2.0, np.float32)}, by_dtype)
    assert c.reasons == ["map keys missing from the actual output: ['b']", "map keys not in the golden: ['c']"]


def test_many_failing_items_are_counted_not_listed():
    g = [np.array([float(i)]) for i in range(9)]
    c = compare_value("s", g, [x + 1 for x in g], by_dtype)
    assert len(c.reasons) == 6 and c.reasons[-1] == "... and 4 more failing item(s)"


def test_float8_ulp_counts_steps_of_the_format():
    g = np.array([1.0, -2.0], ml_dtypes.float8_e4m3fn)
    a = np.array([1.125, -2.0], ml_dtypes.float8_e4m3fn)  # the next e4m3 value above 1.0
    assert compare_output("y", g, a, Tolerance(0.2, 0.0)).metrics.max_ulp == 1


def test_the_record_holds_no_passing_tolerance_for_a_non_finite_mismatch():
    m = cmp([np.inf, 1.0], [-np.inf, 1.0]).metrics
    assert m.required_atol is None and m.required_rtol is None
    assert m.notes["required_atol"] == "no tolerance passes: 1 non-finite mismatch(es)"


GATED = Tolerance(1e-4, 1e-5, min_cosine=0.9999, min_snr_db=40.0)


@pytest.mark.parametrize("golden, actual", [
    (np.array(["a", "bc"], dtype=object), np.array(["a", "bc"], dtype=object)),  # strings: compared exactly
    (np.array([np.inf, -np.inf], np.float32), np.array([np.inf, -np.inf], np.float32)),  # nothing finite, all matched
    (np.zeros((0, 3), np.float32), np.zeros((0, 3), np.float32)),  # empty
])
def test_signal_gates_do_not_fail_outputs_they_cannot_score_when_they_are_equal(golden, actual) -> None:
    """A profile that gates on cosine/SNR (webgpu, int8) used to FAIL equal string or all-Inf outputs with
    'cosine n/a ... needs >= 0.9999'."""
    c = compare_output("y", golden, actual, GATED)
    assert c.passed, c.reasons


def test_signal_gates_still_fail_what_differs() -> None:
    inf = compare_output("y", np.array([np.inf, 1.0], np.float32), np.array([-np.inf, 1.0], np.float32), GATED)
    text = compare_output("y", np.array(["a"], dtype=object), np.array(["b"], dtype=object), GATED)
    noisy = compare_output("y", np.array([1.0, 2.0, 3.0], np.float32), np.array([1.5, 1.0, 3.5], np.float32), GATED)
    assert not inf.passed and not text.passed and not noisy.passed
    assert any("cosine" in r for r in noisy.reasons)
