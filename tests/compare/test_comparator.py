import json
import math

import numpy as np
import pytest

from harness.compare.comparator import OutputComparison, compare_output, format_failure
from harness.compare.tolerances import Tolerance

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
    assert failing.reasons == ["1 / 3 elements outside rtol=0.0001 atol=1e-05 (33.3% > allowed 0.0%)"]


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
    assert not c.passed and c.reasons[0].startswith("Cosine similarity 0.9759 < required 0.9999")
    assert cmp([1, 2, 3], [1, 2, 3.001], loose).passed


def test_snr_gate():
    c = cmp([1, 2, 3], [1, 2, 5], Tolerance(1.0, 10.0, min_snr_db=30))
    assert c.reasons == ["SNR 5.4 dB < required 30.0 dB"]


def test_snr_gate_zero_golden():
    c = cmp([0, 0], [1, 0], Tolerance(1.0, 10.0, min_snr_db=30))
    assert not c.passed and "SNR undefined" in c.reasons[0]


def test_topk_gate():
    g = [[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]]
    a = [[0.2, 0.7, 0.1], [0.1, 0.2, 0.7]]
    top1 = cmp(g, a, Tolerance(10.0, 10.0, min_topk_agreement=1.0))
    assert not top1.passed and top1.metrics.topk_agreement == 0.5
    assert top1.reasons == ["Top-1 agreement 0.5 < required 1.0"]
    assert cmp(g, a, Tolerance(10.0, 10.0, min_topk_agreement=1.0, topk=2)).passed


def test_topk_gate_on_scalar_fails_clearly():
    c = cmp(1.0, 1.0, Tolerance(1e-4, 1e-5, min_topk_agreement=0.9))
    assert not c.passed and "not computable for shape ()" in c.reasons[0]


def test_topk_not_computed_without_gate():
    assert cmp([[1, 2]], [[1, 2]]).metrics.topk_agreement is None


def test_int64_large_values_exact():
    c = cmp([2**62], [2**62 + 1], Tolerance(1.0, 1.0), dtype=np.int64)
    assert not c.passed


# --- message fragments ---

def test_message_header(failing):
    assert msg(failing)[0] == "case 'mlp' output 'logits' on profile 'cpu': tensor-likes are not close"


def test_message_mismatched(failing):
    assert "Mismatched elements: 1 / 3 (33.3%)" in msg(failing)


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
    assert "Golden contains 1 NaN (matched only by NaN)" in msg(c)


def test_message_minimum_tolerance(failing):
    line = next(x for x in msg(failing) if x.startswith("Minimum tolerance"))
    assert line == "Minimum tolerance that would pass: atol=2.0 (at rtol=0) or rtol=0.999995 (at atol=1e-05)"


def test_message_minimum_rtol_inf_for_zero_golden():
    line = next(x for x in msg(cmp([0.0, 1.0], [1.0, 1.0])) if x.startswith("Minimum tolerance"))
    assert "rtol=inf" in line


def test_message_gate_line():
    c = cmp([1, 2, 3], [1, 2, 5], Tolerance(1.0, 10.0, min_cosine=0.99))
    assert "Cosine similarity 0.9759 < required 0.99" in msg(c)


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
