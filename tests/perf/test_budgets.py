import numpy as np
import pytest

from harness.errors import BaselineError, ProfileError, UsageError
from harness.perf.budgets import (
    BUDGET_KEYS,
    BudgetViolation,
    Budgets,
    check_budgets,
    parse_budgets,
    parse_regression,
)
from harness.worker.stats import LatencyStats

SPEC = {"p50_ms": 5.0, "p95_ms": 10, "p99_ms": 20, "cold_start_ms": 500, "first_inference_ms": 100, "peak_mb": 512}


def _latency(**over):
    base = dict(n=1000, min=1.0, mean=4.0, std=1.0, p50=4.0, p90=8.0, p95=9.0, p99=15.0, p999=30.0, ci={})
    base.update(over)
    return LatencyStats(**base)


def test_parse_budgets_ok_and_roundtrip():
    b = parse_budgets(SPEC, "profile cpu")
    assert b.p95_ms == 10.0 and b.peak_mb == 512.0 and b.p90_ms is None
    assert b.to_dict() == {k: float(v) for k, v in SPEC.items()}
    assert set(SPEC) <= set(BUDGET_KEYS)
    assert parse_budgets(None, "x") == Budgets() and not Budgets()


def test_parse_budgets_unknown_key_did_you_mean():
    with pytest.raises(ProfileError) as e:
        parse_budgets({"p95ms": 10}, "profile cpu")
    assert "profile cpu" in e.value.message
    assert "unknown budget 'p95ms'" in e.value.message
    assert "did you mean 'p95_ms'" in e.value.message
    assert "peak_mb" in e.value.hint and "cold_start_ms" in e.value.hint


@pytest.mark.parametrize("value, word", [(-1, "positive"), (0, "positive"), ("10", "number"), (True, "number"),
                                         (float("nan"), "number")])
def test_parse_budgets_bad_values(value, word):
    with pytest.raises(ProfileError) as e:
        parse_budgets({"p95_ms": value}, "profile gpu")
    assert "profile gpu" in e.value.message and "'p95_ms'" in e.value.message and word in e.value.message


def test_parse_budgets_not_a_table():
    with pytest.raises(ProfileError, match="must be a table"):
        parse_budgets([1, 2], "profile cpu")


def test_merged_per_case_overrides_win():
    profile = parse_budgets({"p95_ms": 10, "peak_mb": 512}, "profile")
    case = parse_budgets({"p95_ms": 3}, "case mlp")
    assert profile.merged(case).to_dict() == {"p95_ms": 3.0, "peak_mb": 512.0}
    assert profile.merged(None) == profile


def test_check_budgets_messages_exact():
    b = parse_budgets(SPEC, "profile")
    lat = _latency(p95=12.4, ci={"p95": (12.1, 12.8)})
    v = check_budgets(b, lat, cold_start_ms=450.0, first_inference_ms=100.0, peak_mb=600.0)
    assert [x.message() for x in v] == [
        "p95 12.4 ms [12.1, 12.8] > budget 10 ms",
        "peak 600.0 MB > budget 512 MB",
    ]
    assert v[0] == BudgetViolation("p95_ms", 12.4, 10.0, (12.1, 12.8))


def test_check_budgets_small_values_keep_precision():
    v = check_budgets(parse_budgets({"p50_ms": 0.05, "cold_start_ms": 1}, "p"), _latency(p50=0.0712),
                      cold_start_ms=1.64)
    assert [x.message() for x in v] == ["p50 0.0712 ms > budget 0.05 ms", "cold start 1.64 ms > budget 1 ms"]


def test_check_budgets_missing_measurements_skipped():
    b = parse_budgets(SPEC, "profile")
    assert check_budgets(b, None) == []
    assert check_budgets(b, _latency()) == []  # all within budget


def _ns(rng, n, scale=1.0):
    return (rng.lognormal(np.log(10.0), 0.2, n) * scale * 1e6).astype(np.int64)


def test_regression_identical_not_regressed():
    x = _ns(np.random.default_rng(0), 2000)
    r = parse_regression("p95:5%").check(x, x, n_boot=200)
    assert not r.significant and not r.regressed and r.delta == 0
    assert r.diff_ci[0] <= 0 <= r.diff_ci[1]
    assert "no significant change" in r.message()


def test_regression_shift_20pct_regressed():
    rng = np.random.default_rng(1)
    base, new = _ns(rng, 2000), _ns(rng, 2000, scale=1.2)
    r = parse_regression("p95:5%").check(base, new, n_boot=200)
    assert r.significant and r.regressed
    assert 10 < r.delta_pct < 30
    msg = r.message()
    assert msg.startswith("p95 regressed ")
    assert f"({r.base:.2f} -> {r.new:.2f} ms, diff CI [" in msg
    assert msg.endswith("ms) > allowed 5%")
    assert r.ci_base[0] <= r.base <= r.ci_base[1]


def test_regression_small_shift_within_threshold():
    rng = np.random.default_rng(2)
    base = _ns(rng, 3000)
    r = parse_regression("mean:5%").check(base, (base * 1.02).astype(np.int64), n_boot=200)
    assert r.significant and not r.regressed
    assert "within allowed 5%" in r.message()


def test_regression_absolute_threshold_and_improvement():
    rng = np.random.default_rng(3)
    base = _ns(rng, 2000)
    slower = base + 300_000  # +0.3 ms
    assert not parse_regression("p50:0.5ms").check(base, slower, n_boot=200).regressed
    assert parse_regression("p50:100us").check(base, slower, n_boot=200).regressed
    r = parse_regression("mean:1").check(slower, base, n_boot=200)
    assert not r.regressed and r.message().startswith("mean improved")


def test_regression_empty_samples():
    with pytest.raises(BaselineError, match="baseline has no latency samples"):
        parse_regression("p50:5%").check([], [1, 2, 3])


@pytest.mark.parametrize(
    "spec, threshold, relative",
    [("p95:5%", 5.0, True), ("p50:0.5ms", 0.5, False), ("p50:500us", 0.5, False), ("mean:0.25", 0.25, False),
     (" P99 : 0% ", 0.0, True)],
)
def test_parse_regression_ok(spec, threshold, relative):
    c = parse_regression(spec)
    assert c.threshold == pytest.approx(threshold) and c.relative is relative


@pytest.mark.parametrize(
    "spec, fragment",
    [("p95", "expected STAT:THRESHOLD"), ("p95:5s", "expected STAT:THRESHOLD"), ("", "expected STAT:THRESHOLD"),
     ("p95:-5%", "cannot be negative"), ("p98:5%", "unknown statistic 'p98'"),
     ("maen:5%", "did you mean 'mean'")],
)
def test_parse_regression_bad(spec, fragment):
    with pytest.raises(UsageError) as e:
        parse_regression(spec)
    assert fragment in e.value.message
    assert "p95:5%" in e.value.hint
