"""Latency statistics computed from raw samples: nearest-rank percentiles, bootstrap confidence
intervals, and the rules that decide when warm-up and the timed loop may stop.

Only stdlib + numpy: it lives in the worker package, whose timed loop follows these rules; the parent imports it
to summarise the samples the worker sends back.
Samples arrive in integer nanoseconds (``time.perf_counter_ns``); reported statistics are in ms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Union

import numpy as np

NS_PER_MS = 1_000_000

# Percentile names used in reports, budgets and stopping targets -> q in percent.
PERCENTILE_NAMES: dict[str, float] = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}

# Upper bound on elements in one block of resampled data, to keep bootstrap memory flat (~16 MB).
_BLOCK_ELEMS = 2_000_000

Stat = Union[float, Callable[[np.ndarray], float]]


def percentile_from_name(name: str) -> float:
    """'p95' -> 95.0, 'p999' -> 99.9. Raises ValueError naming the known names."""
    if name in PERCENTILE_NAMES:
        return PERCENTILE_NAMES[name]
    known = ", ".join(PERCENTILE_NAMES)
    raise ValueError(f"unknown percentile {name!r}; known: {known}")


def _nearest_rank(n: int, q: float) -> int:
    """1-based nearest rank: ceil(q/100 * n), at least 1. Rounded first so 0.9*10 is not 9.0000001."""
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile must be within [0, 100], got {q}")
    return min(n, max(1, math.ceil(round(q * n / 100.0, 9))))


def percentile_nearest_rank(samples: Sequence[float] | np.ndarray, q: float) -> float:
    """Nearest-rank percentile (no interpolation), as onnxruntime_perf_test reports it.

    The result is always one of the samples, so a p99 never claims a latency nobody observed.
    """
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("percentile of an empty sample")
    k = _nearest_rank(x.size, q) - 1
    return float(np.partition(x, k)[k])


@lru_cache(maxsize=None)
def min_samples_for(q: float, confidence: float = 0.99) -> int:
    """Fewest samples for which the q-th percentile can be trusted, per MLPerf LoadGen's minimums.

    LoadGen's early-stopping rule publishes 64 queries for p90 and 662 for p99. Both are reproduced
    exactly by: the smallest n with P[Binomial(n, 1 - q/100) <= 1] <= 1 - confidence (0.99). In words:
    with n samples, the second-largest sample is an upper bound on the true q-th percentile with 99%
    confidence (it fails only if at most one sample lands above that percentile). This is our
    derivation, checked against the two published anchors; the other values (p50 -> 11, p95 -> 130,
    p99.9 -> 6636) follow from the same formula and are not LoadGen-published numbers.
    """
    if q <= 0.0:
        return 1
    if q >= 100.0:
        raise ValueError("no finite sample count supports the 100th percentile")
    p = 1.0 - q / 100.0  # chance that one sample lands above the true percentile
    alpha = 1.0 - confidence

    def tail(n: int) -> float:  # P[at most one of n samples above the percentile]
        return math.exp((n - 1) * math.log1p(-p)) * ((1.0 - p) + n * p)

    lo, hi = 2, 4
    while tail(hi) > alpha:  # tail decreases in n once n >= 2: bracket, then bisect
        lo, hi = hi, hi * 2
    while lo < hi:
        mid = (lo + hi) // 2
        if tail(mid) <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo


# numpy reductions that accept axis=1; anything else is applied row by row.
_AXIS_REDUCTIONS: dict[Any, Callable[..., np.ndarray]] = {
    np.mean: np.mean, np.median: np.median, np.min: np.min, np.max: np.max,
    np.amin: np.min, np.amax: np.max, min: np.min, max: np.max,
}


def _boot_stats(x: np.ndarray, stat: Stat, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """The statistic on n_boot resamples of x, drawn in blocks so memory stays bounded."""
    n = x.size
    out = np.empty(n_boot, dtype=np.float64)
    rows = max(1, _BLOCK_ELEMS // n)
    for start in range(0, n_boot, rows):
        stop = min(n_boot, start + rows)
        block = x[rng.integers(0, n, size=(stop - start, n))]
        if callable(stat):
            reduce = _AXIS_REDUCTIONS.get(stat)
            if reduce is not None:
                out[start:stop] = reduce(block, axis=1)
            else:
                out[start:stop] = [float(stat(row)) for row in block]
        else:
            k = _nearest_rank(n, float(stat)) - 1
            out[start:stop] = np.partition(block, k, axis=1)[:, k]
    return out


def _as_samples(samples: Sequence[float] | np.ndarray) -> np.ndarray:
    x = np.asarray(samples, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("bootstrap of an empty sample")
    return x


def _interval(boot: np.ndarray, conf: float) -> tuple[float, float]:
    if not 0.0 < conf < 1.0:
        raise ValueError(f"confidence must be within (0, 1), got {conf}")
    tail = (1.0 - conf) / 2.0
    lo, hi = np.quantile(boot, [tail, 1.0 - tail])
    return float(lo), float(hi)


def bootstrap_ci(
    samples: Sequence[float] | np.ndarray,
    stat: Stat,
    *,
    n_boot: int = 1000,
    conf: float = 0.95,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``stat`` (a callable, or a percentile q in percent).

    Deterministic for a given seed. Bootstrap, not a normal approximation, because latency
    distributions are skewed and multi-modal.
    """
    x = _as_samples(samples)
    boot = _boot_stats(x, stat, n_boot, np.random.default_rng(seed))
    return _interval(boot, conf)


def percentile_ci(
    samples: Sequence[float] | np.ndarray, q: float, *, n_boot: int = 1000, conf: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Bootstrap CI of the nearest-rank q-th percentile."""
    return bootstrap_ci(samples, float(q), n_boot=n_boot, conf=conf, seed=seed)


def bootstrap_diff_ci(
    base: Sequence[float] | np.ndarray,
    new: Sequence[float] | np.ndarray,
    stat: Stat,
    *,
    n_boot: int = 1000,
    conf: float = 0.95,
    seed: int = 0,
) -> tuple[tuple[float, float], tuple[float, float], tuple[float, float]]:
    """CIs of stat(base), stat(new) and stat(new) - stat(base), resampling each side independently."""
    rng = np.random.default_rng(seed)
    b = _boot_stats(_as_samples(base), stat, n_boot, rng)
    m = _boot_stats(_as_samples(new), stat, n_boot, rng)
    return _interval(b, conf), _interval(m, conf), _interval(m - b, conf)


@dataclass
class LatencyStats:
    """Summary of one timed loop, in milliseconds; percentiles are nearest rank."""

    n: int
    min: float
    mean: float
    std: float
    p50: float
    p90: float
    p95: float
    p99: float
    p999: float
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)

    @classmethod
    def from_samples(
        cls,
        samples_ns: Sequence[int] | np.ndarray,
        ci_for: Iterable[str] = ("p50", "p95"),
        n_boot: int = 1000,
        seed: int = 0,
    ) -> LatencyStats:
        x = np.sort(np.asarray(samples_ns, dtype=np.float64).ravel()) / NS_PER_MS
        if x.size == 0:
            raise ValueError("no latency samples")
        pct = {name: float(x[_nearest_rank(x.size, q) - 1]) for name, q in PERCENTILE_NAMES.items()}
        ci = {
            name: percentile_ci(x, percentile_from_name(name), n_boot=n_boot, seed=seed) for name in ci_for
        }
        std = float(np.std(x, ddof=1)) if x.size > 1 else 0.0
        return cls(n=int(x.size), min=float(x[0]), mean=float(np.mean(x)), std=std, ci=ci, **pct)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {k: getattr(self, k) for k in ("n", "min", "mean", "std", *PERCENTILE_NAMES)}
        d["ci"] = {k: [lo, hi] for k, (lo, hi) in self.ci.items()}
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LatencyStats:
        ci = {k: (float(v[0]), float(v[1])) for k, v in d.get("ci", {}).items()}
        values = {k: float(d[k]) for k in ("min", "mean", "std", *PERCENTILE_NAMES)}
        return cls(n=int(d["n"]), ci=ci, **values)


class StoppingRule:
    """Decides when the timed loop has enough samples.

    - Never stops below max(min_iters, min_samples_for(target)) samples: a p99 from 100 samples is
      just the maximum. To get there the soft ``time_cap_s`` is extended as needed; only
      ``max_iters`` and ``hard_time_cap_s`` (60 s) stop the loop earlier.
    - Stops "converged" when every target's bootstrap CI half-width is <= rel_half_width * estimate.
    - Stops "time_cap" when the soft time cap has passed (and the minimum count is met).
    The bootstrap is costly, so it runs only every ``check_every`` samples, or by default when n has
    grown by 25% (at least 200 samples) since the last check. The rule is stateful:
    use one instance per timed loop (or call ``reset()``).
    """

    def __init__(
        self,
        targets: Sequence[str],
        rel_half_width: float = 0.02,
        time_cap_s: float = 1.0,
        max_iters: int = 100_000,
        min_iters: int = 10,
        *,
        hard_time_cap_s: float = 60.0,
        check_every: int | None = None,
        n_boot: int = 200,
        seed: int = 0,
    ) -> None:
        self.targets = {name: percentile_from_name(name) for name in targets}
        self.rel_half_width = rel_half_width
        self.time_cap_s = time_cap_s
        self.max_iters = max_iters
        self.min_iters = min_iters
        self.hard_time_cap_s = hard_time_cap_s
        self.check_every = check_every
        self.n_boot = n_boot
        self.seed = seed
        self.required = max([min_iters, *(min_samples_for(q) for q in self.targets.values())])
        self.half_widths: dict[str, float] = {}  # relative half-widths at the last check, for reports
        self._last_checked = 0
        self._checks = 0

    def reset(self) -> None:
        self.half_widths = {}
        self._last_checked = 0
        self._checks = 0

    def should_stop(self, samples_ns: Sequence[int] | np.ndarray, elapsed_s: float) -> tuple[bool, str]:
        n = len(samples_ns)
        if n < self._last_checked:  # a new loop reused this rule
            self.reset()
        if n >= self.max_iters:
            return True, "iter_cap"
        if elapsed_s >= self.hard_time_cap_s:
            return True, "time_cap"
        if n < self.required:
            return False, ""
        if elapsed_s >= self.time_cap_s:  # last chance: say "converged" if it is
            return (True, "converged") if self._converged(samples_ns) else (True, "time_cap")
        if self._due(n) and self._converged(samples_ns):
            return True, "converged"
        return False, ""

    def _due(self, n: int) -> bool:
        last = self._last_checked
        if last == 0:
            return True
        if self.check_every is not None:
            return n - last >= self.check_every
        # Geometric: a bootstrap over n samples costs O(n), so checking every +25% keeps the total check
        # cost linear and the pauses it puts between timed samples rare.
        return n - last >= max(200, last // 4)

    @property
    def checks(self) -> int:
        """How many CI checks have run (the timed loop re-warms after each)."""
        return self._checks

    def _converged(self, samples_ns: Sequence[int] | np.ndarray) -> bool:
        x = np.asarray(samples_ns, dtype=np.float64)
        self._last_checked = x.size
        self._checks += 1
        ok = True
        for name, q in self.targets.items():
            est = percentile_nearest_rank(x, q)
            lo, hi = percentile_ci(x, q, n_boot=self.n_boot, seed=self.seed)
            half = (hi - lo) / 2.0
            self.half_widths[name] = half / est if est > 0 else (0.0 if half == 0 else math.inf)
            ok = ok and half <= self.rel_half_width * est
        return ok


@dataclass
class WarmupRule:
    """Warm-up before timing: a fixed ``count`` of runs, or (``until_stable``) batches of ``batch``
    runs until a batch median is within ``tolerance`` of the previous one, at most ``max_batches``.
    Caches, JIT compilation and clock ramp-up make the first runs unrepresentative."""

    count: int = 5
    until_stable: bool = False
    batch: int = 10
    max_batches: int = 20
    tolerance: float = 0.05

    @property
    def max_count(self) -> int:
        return self.batch * self.max_batches if self.until_stable else self.count

    def done(self, samples_ns: Sequence[int] | np.ndarray) -> bool:
        n = len(samples_ns)
        if n >= self.max_count:
            return True
        if not self.until_stable:
            return False
        k = n // self.batch
        if k < 2:
            return False
        x = np.asarray(samples_ns[: k * self.batch], dtype=np.float64)
        last = float(np.median(x[(k - 1) * self.batch :]))
        prev = float(np.median(x[(k - 2) * self.batch : (k - 1) * self.batch]))
        return abs(last - prev) <= self.tolerance * prev
