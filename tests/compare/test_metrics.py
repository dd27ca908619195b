import json
import math
import warnings

import ml_dtypes
import numpy as np
import pytest

from harness.compare.metrics import Metrics, compute_metrics, topk_agreement

INF, NAN = math.inf, math.nan


def m(g, a, rtol=1e-4, atol=1e-5, dtype=np.float64, adtype=None, **kw):
    return compute_metrics(np.array(g, dtype=dtype), np.array(a, dtype=adtype or dtype), rtol, atol, **kw)


# --- hand-computed values on [1, 2, 3] vs [1, 2, 5] ---

def test_counts():
    r = m([1, 2, 3], [1, 2, 5])
    assert (r.total, r.mismatched) == (3, 1)
    assert r.mismatch_fraction == pytest.approx(1 / 3)


def test_max_abs():
    r = m([1, 2, 3], [1, 2, 5])
    assert r.max_abs_diff == 2.0 and r.max_abs_index == [2]


def test_max_rel():
    r = m([1, 2, 3], [1, 2, 5])
    assert r.max_rel_diff == pytest.approx(2 / 3) and r.max_rel_index == [2]


def test_required_tolerances():
    r = m([1, 2, 3], [1, 2, 5], atol=1e-5)
    assert r.required_atol == 2.0
    assert r.required_rtol == pytest.approx((2 - 1e-5) / 3)


def test_required_rtol_passes_when_applied():
    g, a = np.array([1.0, -4.0, 10.0]), np.array([1.5, -3.0, 10.2])
    r = compute_metrics(g, a, 0.0, 0.1)
    assert compute_metrics(g, a, r.required_rtol * (1 + 1e-12), 0.1).mismatched == 0
    assert compute_metrics(g, a, 0.0, r.required_atol).mismatched == 0


def test_required_rtol_zero_when_within_atol():
    assert m([1, 2], [1, 2.000001], atol=1e-5).required_rtol == 0.0


def test_required_rtol_inf_for_zero_golden():
    assert m([0.0, 1.0], [1.0, 1.0]).required_rtol == INF


def test_cosine():
    r = m([1, 2, 3], [1, 2, 5])
    assert r.cosine == pytest.approx(20 / math.sqrt(14 * 30))


def test_snr():
    r = m([1, 2, 3], [1, 2, 5])
    assert r.snr_db == pytest.approx(20 * math.log10(math.sqrt(14) / 2))


def test_identical():
    r = m([1, 2, 3], [1, 2, 3])
    assert r.mismatched == 0 and r.snr_db == INF and r.cosine == 1.0
    assert r.max_abs_diff == 0.0 and r.max_ulp == 0


def test_cosine_zero_cases():
    assert m([0, 0], [0, 0]).cosine == 1.0
    assert m([0, 0], [1, 0]).cosine == 0.0
    assert m([1, 0], [0, 0]).cosine == 0.0


def test_snr_zero_golden_differs():
    assert m([0, 0], [1, 0]).snr_db is None


def test_element_rule_boundary():
    # |d| <= atol + rtol*|g|: 0.5 <= 0 + 0.5*1 passes; 0.51 fails
    assert m([1.0], [1.5], rtol=0.5, atol=0.0).mismatched == 0
    assert m([1.0], [1.51], rtol=0.5, atol=0.0).mismatched == 1


def test_near_zero_golden_judged_by_atol_only():
    r = m([0.0, 1e-7, 2.0], [1e-6, 2e-7, 2.0], atol=1e-5)
    assert r.mismatched == 0
    assert r.max_rel_diff == 0.0 and r.max_rel_index == [2]


def test_no_relative_candidates():
    r = m([0.0, 0.0], [1e-6, 0.0], atol=1e-5)
    assert r.max_rel_diff == 0.0 and r.max_rel_index is None


def test_index_into_original_shape():
    g = np.zeros((2, 3, 4))
    a = g.copy()
    a[1, 2, 3] = 5.0
    r = compute_metrics(g, a, 1e-4, 1e-5)
    assert r.max_abs_index == [1, 2, 3]


def test_scalar():
    r = m(1.0, 2.0)
    assert r.total == 1 and r.mismatched == 1 and r.max_abs_index == []


def test_empty():
    r = compute_metrics(np.zeros((0, 3)), np.zeros((0, 3)), 1e-4, 1e-5)
    assert (r.total, r.mismatched, r.mismatch_fraction) == (0, 0, 0.0)
    assert r.max_abs_index is None


# --- NaN / Inf ---

def test_nan_vs_nan_passes():
    r = m([NAN, 1.0], [NAN, 1.0])
    assert r.mismatched == 0 and r.nan_mismatch == 0 and r.golden_nan_count == 1


def test_nan_vs_number_fails():
    r = m([NAN], [1.0])
    assert r.mismatched == 1 and r.nan_mismatch == 1


def test_number_vs_nan_fails():
    r = m([1.0], [NAN])
    assert r.mismatched == 1 and r.nan_mismatch == 1 and r.golden_nan_count == 0


def test_inf_same_sign_passes():
    r = m([INF, -INF], [INF, -INF])
    assert r.mismatched == 0 and r.inf_mismatch == 0


def test_inf_opposite_sign_fails():
    r = m([INF], [-INF])
    assert r.mismatched == 1 and r.inf_mismatch == 1


def test_inf_vs_finite_fails():
    r = m([INF, 1.0], [1e308, INF])
    assert r.mismatched == 2 and r.inf_mismatch == 2


def test_non_finite_excluded_from_stats():
    r = m([NAN, INF, 1.0, 2.0], [NAN, INF, 1.0, 3.0])
    assert r.max_abs_diff == 1.0 and r.max_abs_index == [3]
    assert r.snr_db == pytest.approx(10 * math.log10(5 / 1))


def test_all_non_finite_has_no_index():
    r = m([NAN, INF], [1.0, 2.0])
    assert r.max_abs_index is None and r.max_abs_diff is None  # nothing measured, not a perfect 0.0
    assert r.cosine is None and r.snr_db is None and r.finite_pairs == 0
    assert r.notes["cosine"] == "no element finite on both sides: 1 NaN in golden, 1 Inf in golden"


def test_no_runtime_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        m([NAN, INF, -INF, 0.0, 0.0], [1.0, -INF, INF, 0.0, NAN], rtol=INF, atol=0.0)
        m([0.0, 0.0], [0.0, 1.0], dtype=np.float32, topk=1)


# --- ULP ---

def test_ulp_float32_next():
    one = np.float32(1.0)
    r = compute_metrics(np.array([one]), np.array([np.nextafter(one, np.float32(2))]), 0, 0)
    assert r.max_ulp == 1


def test_ulp_signed_zero():
    r = m([-0.0], [0.0], dtype=np.float32)
    assert r.max_ulp == 0 and r.mismatched == 0


def test_ulp_across_zero():
    tiny = np.nextafter(np.float32(0), np.float32(1))
    r = compute_metrics(np.array([-tiny]), np.array([tiny]), 0, 0)
    assert r.max_ulp == 2


def test_ulp_float16():
    one = np.float16(1.0)
    r = compute_metrics(np.array([one, one]), np.array([one, np.float16(1.0 + 3 * 2**-10)]), 0, 0)
    assert r.max_ulp == 3


def test_ulp_bfloat16():
    g = np.array([1.0, -2.0], dtype=ml_dtypes.bfloat16)
    a = np.array([1.0 + 2**-7, -2.0], dtype=ml_dtypes.bfloat16)  # eps of bf16 is 2**-7
    assert compute_metrics(g, a, 0, 0).max_ulp == 1


def test_ulp_float64_extremes_do_not_overflow():
    big = np.finfo(np.float64).max
    r = compute_metrics(np.array([-big]), np.array([big]), 0, 0)
    assert r.max_ulp == 2 * 0x7FEFFFFFFFFFFFFF


def test_ulp_none_for_ints_and_mixed_dtypes():
    assert m([1, 2], [1, 2], dtype=np.int32).max_ulp is None
    assert m([1, 2], [1, 2], dtype=np.float32, adtype=np.float16).max_ulp is None


# --- integers, bool, strings, mixed dtypes ---

def test_int64_large_exact():
    r = m([2**62], [2**62 + 1], dtype=np.int64, rtol=1.0, atol=1.0)
    assert r.mismatched == 1 and r.max_abs_diff == 1.0 and r.max_abs_index == [0]


def test_int64_extreme_difference():
    r = m([np.iinfo(np.int64).min], [np.iinfo(np.int64).max], dtype=np.int64)
    assert r.max_abs_diff == float(2**64 - 1)


def test_uint64_vs_int64():
    r = m([2**62], [2**62], dtype=np.int64, adtype=np.uint64)
    assert r.mismatched == 0


def test_bool():
    r = m([True, False, True], [True, True, True], dtype=np.bool_)
    assert r.mismatched == 1 and r.max_abs_index == [1]


def test_strings_exact():
    r = compute_metrics(np.array(["a", "b"]), np.array(["a", "c"]), 0, 0)
    assert r.mismatched == 1 and r.cosine is None and r.snr_db is None


def test_mixed_float_dtypes_upcast():
    # fp16 spacing at 2.0 is 2**-9; 2**-9 <= 1e-3 * 2 passes
    r = m([1.0, 2.0], [1.0, 2.001953125], dtype=np.float32, adtype=np.float16, rtol=1e-3, atol=0.0)
    assert r.mismatched == 0
    assert r.max_abs_diff == 2**-9 and r.max_abs_index == [1]


def test_float_vs_int():
    r = m([1.0, 2.5], [1, 2], dtype=np.float32, adtype=np.int64)
    assert r.mismatched == 1 and r.max_abs_diff == 0.5


# --- chunking ---

def _random_pair(rng, shape):
    g = rng.standard_normal(shape).astype(np.float32)
    a = (g + rng.standard_normal(shape).astype(np.float32) * 1e-4).astype(np.float32)
    g.reshape(-1)[::17] = 0.0
    a.reshape(-1)[5] = np.nan
    a.reshape(-1)[11] = np.inf
    return g, a


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chunked_equals_unchunked(seed):
    g, a = _random_pair(np.random.default_rng(seed), (13, 11))
    small = compute_metrics(g, a, 1e-4, 1e-5, chunk_elems=7, topk=3)
    whole = compute_metrics(g, a, 1e-4, 1e-5, chunk_elems=1 << 20, topk=3)
    for name in ("total", "mismatched", "nan_mismatch", "inf_mismatch", "golden_nan_count", "max_ulp",
                 "max_abs_index", "max_rel_index", "topk_agreement", "max_abs_diff", "max_rel_diff"):
        assert getattr(small, name) == getattr(whole, name), name
    for name in ("cosine", "snr_db"):
        assert getattr(small, name) == pytest.approx(getattr(whole, name), rel=1e-12), name
    assert small.required_atol is whole.required_atol is None  # the NaN and Inf: no tolerance would pass
    g2, a2 = np.nan_to_num(g, posinf=0.0), np.nan_to_num(a, nan=0.0, posinf=0.0)
    small = compute_metrics(g2, a2, 1e-4, 1e-5, chunk_elems=7, topk=3)
    whole = compute_metrics(g2, a2, 1e-4, 1e-5, chunk_elems=1 << 20, topk=3)
    for name in ("required_rtol", "required_atol"):
        assert getattr(small, name) == pytest.approx(getattr(whole, name), rel=1e-12), name


def test_non_contiguous_input():
    g, a = _random_pair(np.random.default_rng(3), (8, 10))
    view_g, view_a = g[:, ::2], a.T.copy().T[:, ::2]
    r1 = compute_metrics(view_g, view_a, 1e-4, 1e-5, chunk_elems=3)
    r2 = compute_metrics(np.ascontiguousarray(view_g), np.ascontiguousarray(view_a), 1e-4, 1e-5)
    assert r1.cosine == pytest.approx(r2.cosine, rel=1e-12)
    assert r1.snr_db == pytest.approx(r2.snr_db, rel=1e-12)
    r1.cosine, r1.snr_db = r2.cosine, r2.snr_db
    assert r1 == r2


def test_bfloat16_non_contiguous():
    g = np.arange(12, dtype=ml_dtypes.bfloat16).reshape(3, 4)[:, ::2]
    r = compute_metrics(g, g, 0, 0, chunk_elems=2)
    assert r.mismatched == 0 and r.max_ulp == 0


# --- top-k ---

def test_topk1_argmax_agreement():
    g = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    a = np.array([[0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])
    assert compute_metrics(g, a, 1e-4, 1e-5, topk=1).topk_agreement == 0.5


def test_topk_k_set():
    g = np.array([[0.1, 0.9, 0.0], [0.5, 0.2, 0.3]])
    a = np.array([[0.2, 0.7, 0.1], [0.1, 0.2, 0.7]])  # row 2 argmax 2 is golden's 2nd best
    assert topk_agreement(g, a, 2) == 1.0


def test_topk_over_leading_axes_and_chunks():
    rng = np.random.default_rng(4)
    g = rng.standard_normal((3, 5, 10))
    a = g.copy()
    a[0, 0] = -a[0, 0]
    expected = np.mean(g.reshape(-1, 10).argmax(1) == a.reshape(-1, 10).argmax(1))
    assert topk_agreement(g, a, 1, chunk_elems=20) == expected


def test_topk_ties_rank_by_lower_index():
    g = np.array([[1.0, 1.0, 0.0]])
    assert topk_agreement(g, np.array([[0.0, 1.0, 0.0]]), 1) == 0.0  # golden argmax is index 0
    assert topk_agreement(g, np.array([[0.0, 1.0, 0.0]]), 2) == 1.0


@pytest.mark.parametrize("k", [1, 2, 5])
def test_topk_long_rows_match_short_path(k):
    rng = np.random.default_rng(5)
    g = rng.standard_normal((4, 50))
    a = g + rng.standard_normal((4, 50)) * 0.5
    assert topk_agreement(g, a, k, chunk_elems=7) == topk_agreement(g, a, k)


def test_topk_none_when_no_class_axis():
    assert m(1.0, 1.0, topk=1).topk_agreement is None
    assert m([[1.0], [2.0]], [[1.0], [2.0]], topk=1).topk_agreement is None


def test_topk_not_computed_when_not_asked():
    assert m([[1.0, 2.0]], [[1.0, 2.0]]).topk_agreement is None


# --- serialisation ---

def test_metrics_json_round_trip_with_inf():
    r = m([0.0, 1.0], [1.0, 1.0])
    assert r.required_rtol == INF
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert Metrics.from_dict(json.loads(text)) == r


def test_metrics_fields_are_plain_python():
    r = m([[1, 2], [3, 4]], [[1, 2], [3, 5]], dtype=np.float32, topk=1)
    for value in r.to_dict().values():
        assert value is None or type(value) in (int, float, str, list, bool, dict)
    assert all(type(i) is int for i in r.max_abs_index)


@pytest.mark.parametrize("shape", [(1 << 19,), (1 << 9, 1 << 10)])
def test_memory_stays_a_fraction_of_one_tensor(shape):
    import tracemalloc

    g = np.ones(shape, dtype=np.float32)  # 2 MiB
    a = g.copy()
    a.reshape(-1)[-1] = 2.0
    tracemalloc.start()
    try:
        r = compute_metrics(g, a, 1e-4, 1e-5, chunk_elems=1 << 12, topk=5)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.mismatched == 1
    assert peak < g.nbytes // 4  # ~a dozen float64 chunk temporaries, never a full copy


# --- NaN-aware signal metrics ---

def test_all_nan_actual_is_not_a_perfect_match():
    r = m([1.0, 2.0, 3.0], [NAN, NAN, NAN], dtype=np.float32)
    assert (r.max_abs_diff, r.max_rel_diff, r.required_atol, r.required_rtol) == (None, None, None, None)
    assert r.cosine is None and r.snr_db is None and r.max_ulp is None
    assert (r.actual_nan_count, r.golden_nan_count, r.finite_pairs, r.nan_mismatch) == (3, 0, 0, 3)
    assert r.notes == {**{name: "no element finite on both sides: 3 NaN in actual"
                          for name in ("max_abs_diff", "max_rel_diff", "cosine", "snr_db")},
                       "required_atol": "no tolerance passes: 3 non-finite mismatch(es)",
                       "required_rtol": "no tolerance passes: 3 non-finite mismatch(es)"}


def test_all_nan_json_is_valid_and_round_trips():
    r = m([1.0, 2.0], [NAN, NAN])
    text = json.dumps(r.to_dict(), allow_nan=False)
    assert '"cosine": null' in text and '"notes": {"max_abs_diff": "no element finite' in text
    assert Metrics.from_dict(json.loads(text)) == r


def test_signal_over_finite_pairs_only():
    r = m([1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, NAN])
    assert r.finite_pairs == 3 and r.actual_nan_count == 1
    assert r.cosine == 1.0 and r.snr_db == INF and r.max_abs_diff == 0.0
    assert r.notes == {"required_atol": "no tolerance passes: 1 non-finite mismatch(es)",
                       "required_rtol": "no tolerance passes: 1 non-finite mismatch(es)"}


def test_inf_counts_per_side():
    r = m([INF, -INF, 1.0], [INF, 1.0, NAN])
    assert (r.golden_inf_count, r.actual_inf_count, r.actual_nan_count, r.finite_pairs) == (2, 1, 1, 0)


def test_snr_note_for_all_zero_expected_output():
    r = m([0.0, 0.0], [1.0, 0.0])
    assert r.snr_db is None and r.notes == {"snr_db": "the expected output is all zero"}


def test_ints_are_all_finite_pairs():
    r = m([1, 2, 3], [1, 2, 4], dtype=np.int64)
    assert r.finite_pairs == 3 and r.actual_nan_count == 0 and r.notes == {}


def test_strings_have_no_finite_pair_count():
    assert m(["a", "b"], ["a", "c"], dtype=object).finite_pairs is None


def test_topk_is_not_ranked_through_nan():
    r = m([[0.1, 0.9]], [[NAN, 0.2]], dtype=np.float32, topk=1)
    assert r.topk == 1 and r.topk_agreement is None and r.notes["topk_agreement"] == "NaN in actual"


def test_metrics_from_an_old_record():
    old = {"total": 3, "mismatched": 1, "mismatch_fraction": 1 / 3, "max_abs_diff": 2.0, "max_abs_index": [1],
           "max_rel_diff": 1.0, "max_rel_index": [1], "required_atol": 2.0, "required_rtol": 0.999995,
           "cosine": 0.9, "snr_db": "inf", "max_ulp": 3, "nan_mismatch": 0, "inf_mismatch": 0,
           "golden_nan_count": 0, "topk": None, "topk_agreement": None}
    r = Metrics.from_dict(old)
    assert r.snr_db == INF and r.finite_pairs is None and r.actual_nan_count == 0 and r.notes == {}
