"""The fast engines (numpy blocks, optional numba kernel) against the exact reference path."""

import math

import ml_dtypes
import numpy as np
import pytest

from harness.compare import metrics as metrics_mod
from harness.compare.metrics import compute_metrics, fast_engine

try:
    import numba  # noqa: F401

    HAVE_NUMBA = True
except ImportError:
    HAVE_NUMBA = False

ENGINES = [
    "numpy",
    pytest.param("numba", marks=pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed (optional extra)")),
]
EXACT_FIELDS = ("total", "mismatched", "nan_mismatch", "inf_mismatch", "golden_nan_count", "max_ulp",
                "max_abs_index", "max_rel_index", "max_abs_diff", "max_rel_diff", "required_atol", "mismatch_fraction",
                "finite_pairs", "actual_nan_count", "golden_inf_count", "actual_inf_count", "notes")


def assert_same(fast, exact):
    for name in EXACT_FIELDS:
        assert getattr(fast, name) == getattr(exact, name), name
    # energies are summed in a different order (blocks / BLAS / one loop): only rounding differs
    for name, rel in (("required_rtol", 1e-12), ("snr_db", 1e-9)):
        want = getattr(exact, name)
        if want is None:  # not computable (no finite pair, or an all-zero golden): None on every engine
            assert getattr(fast, name) is None, name
        else:
            assert getattr(fast, name) == pytest.approx(want, rel=rel, abs=0, nan_ok=True), name
    if exact.cosine is None:
        assert fast.cosine is None
    else:
        assert fast.cosine == pytest.approx(exact.cosine, abs=1e-7, nan_ok=True)


def both(g, a, engine, rtol=1e-4, atol=1e-5, **kw):
    return (compute_metrics(g, a, rtol, atol, engine=engine, **kw),
            compute_metrics(g, a, rtol, atol, engine="exact", **kw))


def noisy(rng, n, dtype, scale=1e-4):
    g = rng.standard_normal(n).astype(dtype)
    a = (g.astype(np.float64) + rng.standard_normal(n) * scale).astype(dtype)
    return g, a


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1])
def test_random_noise_equals_exact(engine, dtype, seed):
    rng = np.random.default_rng(seed)
    scale = 1e-3 if dtype == np.float16 else 1e-5
    g, a = noisy(rng, 100_003, dtype, scale)  # several fast blocks plus a ragged tail
    g[::97] = 0.0  # |g| <= atol: excluded from max_rel, "inf" required_rtol when they differ
    fast, exact = both(g, a, engine, chunk_elems=40_000)
    assert exact.mismatched > 0  # the mismatch / required_rtol branch is exercised
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_all_within_atol(engine, dtype):
    g, a = noisy(np.random.default_rng(5), 70_000, dtype, 1e-7)
    fast, exact = both(g, a, engine)
    assert exact.mismatched == 0 and exact.required_rtol == 0.0
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_identical(engine):
    g = np.random.default_rng(6).standard_normal(50_000).astype(np.float32)
    fast, exact = both(g, g.copy(), engine)
    assert fast.cosine == 1.0 and fast.snr_db == math.inf and fast.max_ulp == 0
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("chunk", [7, 1000, 1 << 20])
def test_chunks_with_nan_inf_fall_back(engine, chunk):
    g, a = noisy(np.random.default_rng(7), 80_000, np.float32)
    a[5], a[11], g[11] = np.nan, np.inf, np.inf  # NaN mismatch; Inf agreeing
    g[40_000], a[40_001] = np.nan, -np.inf  # NaN mismatch; Inf mismatch
    g[70_000] = a[70_000] = np.nan
    fast, exact = both(g, a, engine, chunk_elems=chunk)
    assert (exact.nan_mismatch, exact.inf_mismatch, exact.golden_nan_count) == (2, 1, 2)
    assert (exact.actual_nan_count, exact.actual_inf_count, exact.golden_inf_count) == (2, 2, 1)
    assert exact.finite_pairs == 80_000 - 5  # positions 5, 11, 40_000, 40_001, 70_000
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_huge_finite_values_fall_back(engine):
    g = np.full(1000, 3e38, np.float32)
    a = g.copy()
    a[3] = -3e38  # the float32 square would overflow; values are finite
    fast, exact = both(g, a, engine)
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_opposite_sign_ulp(engine, dtype):
    rng = np.random.default_rng(8)
    g, a = noisy(rng, 50_000, dtype)
    g[100], a[100] = 0.0, -0.0  # 0 ULP apart
    g[200], a[200] = dtype(1e-3), dtype(-1e-3)  # across zero
    fast, exact = both(g, a, engine)
    assert_same(fast, exact)
    g[200], a[200] = np.finfo(dtype).max, -np.finfo(dtype).max  # widest distance
    fast, exact = both(g, a, engine)
    assert fast.max_ulp == exact.max_ulp == 2 * int(np.finfo(dtype).max.view(metrics_mod._ULP_VIEWS[np.dtype(dtype).name]))
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_relative_masks_golden_within_atol(engine):
    g = np.array([1e-6, 2.0, 0.0, 4.0] * 5000, np.float32)
    a = g + np.float32(5e-6)  # largest ratio would be at |g| = 1e-6 <= atol: must be skipped
    fast, exact = both(g, a, engine, atol=1e-5)
    assert exact.max_rel_index == [1]
    assert_same(fast, exact)
    g = np.full(10, 1e-6, np.float32)  # no element with |g| > atol at all
    fast, exact = both(g, g + np.float32(1e-6), engine, atol=1e-5)
    assert fast.max_rel_index is None and fast.max_rel_diff == 0.0
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_ties_take_first_index(engine):
    g = np.zeros(100_000, np.float32) + 1
    a = g.copy()
    a[[70_000, 10, 40_000]] += 0.5  # equal max abs and rel differences: first occurrence wins
    fast, exact = both(g, a, engine)
    assert fast.max_abs_index == fast.max_rel_index == [10]
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_zero_atol_and_rtol(engine):
    g, a = noisy(np.random.default_rng(9), 30_000, np.float64)
    fast, exact = both(g, a, engine, rtol=0.0, atol=0.0)
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_non_contiguous_and_shaped(engine):
    g, a = noisy(np.random.default_rng(10), 60_000, np.float32, 1e-3)
    g, a = g.reshape(200, 300)[:, ::3], a.reshape(200, 300).T.copy().T[:, ::3]
    fast, exact = both(g, a, engine, chunk_elems=1000, topk=3)
    assert fast.topk_agreement == exact.topk_agreement
    assert_same(fast, exact)


def test_bfloat16_and_mixed_dtypes_use_exact_path():
    g = np.arange(10, dtype=np.float32).astype(ml_dtypes.bfloat16)
    r = compute_metrics(g, g, 0, 0, engine="numpy")
    assert r.max_ulp == 0 and r.mismatched == 0
    r = compute_metrics(np.ones(4, np.float32), np.ones(4, np.float64), 0, 0, engine="numpy")
    assert r.max_ulp is None


def test_engine_validation():
    with pytest.raises(ValueError):
        compute_metrics(np.ones(2), np.ones(2), 0, 0, engine="fortran")
    assert fast_engine() == ("numba" if HAVE_NUMBA else "numpy")


def test_auto_keeps_small_tensors_on_the_numpy_path():
    """numba's import and compile cost more than the numpy path spends on a small tensor."""
    from harness.compare.metrics import NUMBA_MIN_ELEMS
    assert fast_engine(1000) == "numpy"
    assert fast_engine(NUMBA_MIN_ELEMS) == ("numba" if HAVE_NUMBA else "numpy")


# --- the numba kernel works on blocks of fused._BLOCK elements and skips blocks that cannot change a
# result: edges around those block boundaries (the numpy engine runs them too, as a cross-check) ---

def _block():
    if HAVE_NUMBA:
        from harness.compare import fused
        return fused._BLOCK
    return 4096


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ties_across_block_boundaries(engine, dtype):
    b = _block()
    n = 3 * b + 123
    g = np.ones(n, dtype)
    a = g.copy()
    a[[2 * b, b - 1, b, 3 * b + 5]] = dtype(1.5)  # equal abs and rel maxima on both sides of boundaries
    fast, exact = both(g, a, engine)
    assert fast.max_abs_index == fast.max_rel_index == [b - 1]
    assert_same(fast, exact)
    fast, exact = both(g, a, engine, chunk_elems=b + 1)  # ties across chunks as well
    assert fast.max_abs_index == fast.max_rel_index == [b - 1]
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_maxima_in_last_partial_block(engine, dtype):
    b = _block()
    rng = np.random.default_rng(11)
    g, a = noisy(rng, 2 * b + 77, dtype, 1e-3 if dtype == np.float16 else 1e-5)
    g[-3], a[-3] = dtype(2.0 ** -10), dtype(4.0)  # largest abs, rel and required rtol, near the end
    g[-1], a[-1] = dtype(0.0), dtype(0.25)  # |g| = 0 with d > atol: required_rtol inf, last element
    fast, exact = both(g, a, engine)
    assert exact.max_abs_index == [g.size - 3] and exact.required_rtol == math.inf
    assert_same(fast, exact)
    g[-1] = a[-1]
    fast, exact = both(g, a, engine)
    assert exact.max_rel_index == [g.size - 3] and math.isfinite(exact.required_rtol)
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_opposite_sign_ulp_in_one_block_only(engine, dtype):
    b = _block()
    g = np.full(3 * b, 1.0, dtype)
    a = np.nextafter(g, dtype(2.0))  # 1 ULP everywhere
    a[5] = np.nextafter(g[5], dtype(4.0))  # a wider same-sign gap elsewhere
    g[2 * b + 7], a[2 * b + 7] = dtype(2.0 ** -10), dtype(-(2.0 ** -10))  # the widest: across zero
    fast, exact = both(g, a, engine, rtol=10.0, atol=10.0)
    kg = int(g[2 * b + 7:2 * b + 8].view(metrics_mod._ULP_VIEWS[np.dtype(dtype).name])[0])
    assert fast.max_ulp == exact.max_ulp == 2 * kg
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_later_chunks_only_report_what_beats_earlier_ones(engine):
    """Each chunk's kernel is told the running maxima: smaller values later must not replace them,
    and a later larger relative difference must."""
    b = _block()
    g = np.ones(4 * b, np.float32)
    a = g.copy()
    a[10] = 3.0  # abs 2 and rel 2, first chunk
    a[2 * b + 1] = 2.5
    g[3 * b + 2], a[3 * b + 2] = np.float32(0.5), np.float32(1.75)  # rel 2.5, abs 1.25: later chunk
    fast, exact = both(g, a, engine, chunk_elems=b)
    assert exact.max_abs_index == [10] and exact.max_rel_index == [3 * b + 2]
    assert_same(fast, exact)


@pytest.mark.parametrize("engine", ENGINES)
def test_all_nan_actual_measures_nothing_on_every_engine(engine):
    g = np.random.default_rng(3).standard_normal(50_000).astype(np.float32)
    fast, exact = both(g, np.full_like(g, np.nan), engine, chunk_elems=20_000)
    assert exact.finite_pairs == 0 and exact.actual_nan_count == g.size and exact.cosine is None
    assert_same(fast, exact)
