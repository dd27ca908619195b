import numpy as np
import pytest

from harness.worker.stats import (
    LatencyStats,
    StoppingRule,
    WarmupRule,
    bootstrap_ci,
    bootstrap_diff_ci,
    min_samples_for,
    percentile_ci,
    percentile_from_name,
    percentile_nearest_rank,
)

TEN = [7, 3, 10, 1, 9, 2, 8, 5, 4, 6]  # 1..10 shuffled


@pytest.mark.parametrize(
    "q, expected",
    [(0, 1), (10, 1), (11, 2), (50, 5), (51, 6), (90, 9), (95, 10), (99, 10), (99.9, 10), (100, 10)],
)
def test_percentile_nearest_rank_by_hand(q, expected):
    assert percentile_nearest_rank(TEN, q) == expected


def test_percentile_no_float_rounding_up():
    # 95% of 20 = 19 exactly -> 19th smallest, not the 20th
    assert percentile_nearest_rank(list(range(1, 21)), 95) == 19
    assert percentile_nearest_rank(list(range(1, 1001)), 99.9) == 999


def test_percentile_errors():
    with pytest.raises(ValueError):
        percentile_nearest_rank([], 50)
    with pytest.raises(ValueError):
        percentile_nearest_rank([1.0], 101)
    with pytest.raises(ValueError, match="known: p50"):
        percentile_from_name("p42")


def test_min_samples_anchors_match_mlperf():
    assert min_samples_for(90) == 64
    assert min_samples_for(99) == 662


def test_min_samples_monotone_and_edges():
    qs = [50, 90, 95, 99, 99.9]
    ns = [min_samples_for(q) for q in qs]
    assert ns == sorted(ns) and ns[0] > 1
    assert min_samples_for(0) == 1
    with pytest.raises(ValueError):
        min_samples_for(100)


def test_ci_contains_truth_and_narrows():
    rng = np.random.default_rng(3)
    small = rng.normal(100.0, 10.0, 500)
    large = rng.normal(100.0, 10.0, 20_000)
    lo_s, hi_s = percentile_ci(small, 50, n_boot=200)
    lo_l, hi_l = percentile_ci(large, 50, n_boot=200)
    assert lo_l <= 100.0 <= hi_l
    assert hi_l - lo_l < hi_s - lo_s
    lo, hi = bootstrap_ci(large, np.mean, n_boot=200)
    assert lo <= 100.0 <= hi and hi - lo < 0.5


def test_bootstrap_deterministic_with_seed():
    x = np.random.default_rng(0).exponential(1.0, 300)
    assert percentile_ci(x, 95, n_boot=100, seed=7) == percentile_ci(x, 95, n_boot=100, seed=7)
    assert percentile_ci(x, 95, n_boot=100, seed=7) != percentile_ci(x, 95, n_boot=100, seed=8)


def test_bootstrap_custom_callable_and_blocks():
    x = np.arange(100.0)
    lo, hi = bootstrap_ci(x, lambda r: float(np.ptp(r)), n_boot=50)
    assert 80 <= lo <= hi <= 99
    lo2, hi2 = percentile_ci(np.arange(300_000.0), 50, n_boot=20)  # several resample blocks
    assert lo2 <= 150_000 <= hi2


def test_bootstrap_diff_ci_detects_shift():
    rng = np.random.default_rng(1)
    base = rng.normal(10, 1, 2000)
    _, _, (lo, hi) = bootstrap_diff_ci(base, base + 2.0, 50.0, n_boot=200)
    assert 1.5 < lo <= hi < 2.5


def test_latency_stats_from_samples_and_roundtrip():
    samples_ns = [ms * 1_000_000 for ms in TEN]
    s = LatencyStats.from_samples(samples_ns, ci_for=("p50", "p99"), n_boot=50)
    assert (s.n, s.min, s.mean, s.p50, s.p90, s.p95, s.p99, s.p999) == (10, 1.0, 5.5, 5.0, 9.0, 10.0, 10.0, 10.0)
    assert s.std == pytest.approx(np.std(TEN, ddof=1))
    assert set(s.ci) == {"p50", "p99"}
    lo, hi = s.ci["p50"]
    assert 1.0 <= lo <= 5.0 <= hi <= 10.0
    d = s.to_dict()
    import json

    assert LatencyStats.from_dict(json.loads(json.dumps(d))) == s


def test_latency_stats_single_sample_and_errors():
    s = LatencyStats.from_samples([2_000_000], ci_for=())
    assert s.std == 0.0 and s.p999 == 2.0 and s.ci == {}
    with pytest.raises(ValueError):
        LatencyStats.from_samples([])
    with pytest.raises(ValueError, match="unknown percentile"):
        LatencyStats.from_samples([1, 2], ci_for=("p98",))


def _noisy(n, seed=0):
    return list((np.random.default_rng(seed).lognormal(0, 0.5, n) * 1e6).astype(np.int64))


def test_stopping_never_before_min_samples_for_p99():
    rule = StoppingRule(["p99"], time_cap_s=0.1)
    assert rule.required == 662
    assert rule.should_stop([1_000_000] * 661, elapsed_s=5.0) == (False, "")
    assert rule.should_stop(_noisy(662), elapsed_s=5.0)[0] is True


def test_stopping_hard_caps_win():
    rule = StoppingRule(["p99"], time_cap_s=0.1, max_iters=100)
    assert rule.should_stop([1] * 100, 0.0) == (True, "iter_cap")
    rule = StoppingRule(["p99"], hard_time_cap_s=60.0)
    assert rule.should_stop([1] * 10, 61.0) == (True, "time_cap")


def test_stopping_converges_on_constant_samples():
    rule = StoppingRule(["p50", "p95"], time_cap_s=10.0)
    assert rule.required == 130
    assert rule.should_stop([1_000_000] * 129, 0.01) == (False, "")
    assert rule.should_stop([1_000_000] * 130, 0.01) == (True, "converged")
    assert rule.half_widths == {"p50": 0.0, "p95": 0.0}


def test_stopping_time_cap_when_not_converged():
    rule = StoppingRule(["p95"], rel_half_width=1e-6, time_cap_s=1.0, n_boot=50)
    samples = _noisy(200)
    assert rule.should_stop(samples, 0.5) == (False, "")
    assert rule.should_stop(samples, 1.0) == (True, "time_cap")


def test_stopping_check_cadence():
    rule = StoppingRule(["p50"], rel_half_width=1e-9, time_cap_s=100.0, n_boot=20)
    samples = _noisy(4000)
    rule.should_stop(samples[:11], 0.0)  # first check at the minimum count
    assert rule._last_checked == 11 and rule.checks == 1
    rule.should_stop(samples[:210], 0.0)  # +199: not due (at least 200 more)
    assert rule._last_checked == 11
    rule.should_stop(samples[:211], 0.0)  # +200: due
    assert rule._last_checked == 211 and rule.checks == 2
    rule.should_stop(samples[:2000], 0.0)
    assert rule._last_checked == 2000
    rule.should_stop(samples[:2499], 0.0)  # +24.95%: not due
    assert rule._last_checked == 2000
    rule.should_stop(samples[:2500], 0.0)  # +25%: due
    assert rule._last_checked == 2500
    rule.should_stop(samples[:5], 0.0)  # a new loop with the same rule resets it
    assert rule._last_checked == 0 and rule.checks == 0


def test_stopping_unknown_target():
    with pytest.raises(ValueError, match="p97"):
        StoppingRule(["p97"])


def test_warmup_fixed_count():
    rule = WarmupRule(count=5)
    assert not rule.done([1] * 4)
    assert rule.done([1] * 5)


def test_warmup_until_stable():
    rule = WarmupRule(until_stable=True, batch=10, max_batches=5)
    assert not rule.done([100] * 19)  # needs two full batches
    assert not rule.done([300] * 10 + [100] * 10)  # still settling
    assert rule.done([300] * 10 + [100] * 10 + [104] * 10)  # within 5% of previous batch
    drifting = [100 * 2**i for i in range(5) for _ in range(10)]
    assert not rule.done(drifting[:40]) and rule.done(drifting)  # capped at max_batches
    assert rule.max_count == 50
