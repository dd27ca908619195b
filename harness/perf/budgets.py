"""Latency and memory budgets from device profiles, and regression checks against a baseline.

Budgets are absolute limits (``p95_ms: 10``). Regression checks are pytest-benchmark style strings
(``p95:5%``) comparing new samples to a baseline's raw samples, with a bootstrap CI on the difference
so noise alone does not fail a run.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import numpy as np

from harness.errors import BaselineError, ProfileError, UsageError
from harness.worker.stats import (
    NS_PER_MS,
    LatencyStats,
    bootstrap_diff_ci,
    percentile_from_name,
    percentile_nearest_rank,
)
from harness.suggest import did_you_mean

# Budget key -> (label in messages, unit).
_BUDGET_INFO: dict[str, tuple[str, str]] = {
    "p50_ms": ("p50", "ms"),
    "p90_ms": ("p90", "ms"),
    "p95_ms": ("p95", "ms"),
    "p99_ms": ("p99", "ms"),
    "p999_ms": ("p999", "ms"),
    "mean_ms": ("mean", "ms"),
    "cold_start_ms": ("cold start", "ms"),
    "first_inference_ms": ("first inference", "ms"),
    "peak_mb": ("peak", "MB"),
}
BUDGET_KEYS: tuple[str, ...] = tuple(_BUDGET_INFO)

# Budgets on LatencyStats attributes (the rest come from separate measurements).
_LATENCY_KEYS = {"p50_ms": "p50", "p90_ms": "p90", "p95_ms": "p95", "p99_ms": "p99", "p999_ms": "p999",
                 "mean_ms": "mean"}


def _num(x: float, decimals: int = 1) -> str:
    """Fixed decimals from 10 up (12.4, 600.0); three significant digits below, so 1.64 ms and
    0.0712 ms keep their precision instead of printing as 1.6 and 0.1."""
    if x == 0 or abs(x) >= 10 or not math.isfinite(x):
        return f"{x:.{decimals}f}"
    return f"{x:.3g}"


@dataclass(frozen=True)
class Budgets:
    """Limits in ms / MB; None means no budget for that measurement."""

    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    p999_ms: float | None = None
    mean_ms: float | None = None
    cold_start_ms: float | None = None
    first_inference_ms: float | None = None
    peak_mb: float | None = None

    def to_dict(self) -> dict[str, float]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def merged(self, other: Budgets | None) -> Budgets:
        """Self as defaults, ``other`` (e.g. a per-case override) wins where it sets a key."""
        if other is None:
            return self
        return Budgets(**{**self.to_dict(), **other.to_dict()})

    def __bool__(self) -> bool:
        return bool(self.to_dict())


def parse_budgets(mapping: Any, where: str) -> Budgets:
    """Validate a budget table from a profile; ``where`` names it in errors (e.g. 'profile cpu-avx2')."""
    if mapping is None:
        return Budgets()
    if not isinstance(mapping, Mapping):
        raise ProfileError(f"{where}: budgets must be a table of key = number, got {type(mapping).__name__}",
                           hint="e.g. budgets = {{ p95_ms = 10, peak_mb = 512 }}")
    values: dict[str, float] = {}
    for key, value in mapping.items():
        if key not in _BUDGET_INFO:
            raise ProfileError(
                f"{where}: unknown budget {key!r}{did_you_mean(str(key), BUDGET_KEYS)}",
                hint="known budgets: " + ", ".join(BUDGET_KEYS),
            )
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProfileError(f"{where}: budget {key!r} must be a number, got {value!r}",
                               hint=f"write e.g. {key} = 10")
        if value <= 0:
            raise ProfileError(f"{where}: budget {key!r} must be positive, got {value!r}",
                               hint="remove the key to have no budget")
        values[key] = float(value)
    return Budgets(**values)


@dataclass(frozen=True)
class BudgetViolation:
    key: str
    measured: float
    limit: float
    ci: tuple[float, float] | None = None

    def message(self) -> str:
        label, unit = _BUDGET_INFO[self.key]
        ci = f" [{_num(self.ci[0])}, {_num(self.ci[1])}]" if self.ci else ""
        return f"{label} {_num(self.measured)} {unit}{ci} > budget {self.limit:g} {unit}"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ci"] = list(self.ci) if self.ci else None
        return d


def check_budgets(
    budgets: Budgets,
    latency: LatencyStats | None,
    *,
    cold_start_ms: float | None = None,
    first_inference_ms: float | None = None,
    peak_mb: float | None = None,
) -> list[BudgetViolation]:
    """Violations only; a budget whose measurement is missing is skipped, not failed.

    A percentile is over budget when its point estimate exceeds the limit; its CI is reported with it
    so a reader can tell a clear miss from a borderline one.
    """
    other = {"cold_start_ms": cold_start_ms, "first_inference_ms": first_inference_ms, "peak_mb": peak_mb}
    out: list[BudgetViolation] = []
    for f in fields(budgets):
        limit = getattr(budgets, f.name)
        if limit is None:
            continue
        ci = None
        if f.name in _LATENCY_KEYS:
            if latency is None:
                continue
            attr = _LATENCY_KEYS[f.name]
            measured = getattr(latency, attr)
            ci = latency.ci.get(attr)
        else:
            measured = other[f.name]
            if measured is None:
                continue
        if measured > limit:
            out.append(BudgetViolation(f.name, float(measured), limit, tuple(ci) if ci else None))
    return out


# ---------------------------------------------------------------------------------------------
# Regression checks against a baseline

REGRESSION_STATS: tuple[str, ...] = ("min", "mean", "p50", "p90", "p95", "p99")
_SPEC_RE = re.compile(r"^\s*([A-Za-z0-9]+)\s*:\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(%|ms|us)?\s*$")
_EXAMPLE = "e.g. 'p95:5%' (relative), 'p50:0.5ms' or 'p50:500us' (absolute; a bare number means ms)"


def _stat_fn(stat: str) -> Any:
    if stat == "min":
        return np.min
    if stat == "mean":
        return np.mean
    return percentile_from_name(stat)


def _point(x: np.ndarray, stat: str) -> float:
    if stat == "min":
        return float(np.min(x))
    if stat == "mean":
        return float(np.mean(x))
    return percentile_nearest_rank(x, percentile_from_name(stat))


@dataclass(frozen=True)
class RegressionResult:
    stat: str
    base: float  # ms
    new: float  # ms
    delta: float  # ms, new - base
    delta_pct: float
    ci_base: tuple[float, float]
    ci_new: tuple[float, float]
    diff_ci: tuple[float, float]  # ms, bootstrap CI of new - base
    significant: bool
    regressed: bool
    allowed: str  # threshold as written back, e.g. '5%' or '0.5 ms'

    def message(self) -> str:
        detail = (f"({_num(self.base, 2)} -> {_num(self.new, 2)} ms, "
                  f"diff CI [{_num(self.diff_ci[0])}, {_num(self.diff_ci[1])}] ms)")
        pct = f"{abs(self.delta_pct):.1f}%"
        if self.regressed:
            return f"{self.stat} regressed {pct} {detail} > allowed {self.allowed}"
        if self.significant:
            return f"{self.stat} slower by {pct} {detail}, within allowed {self.allowed}"
        if self.diff_ci[1] < 0:
            return f"{self.stat} improved {pct} {detail}"
        return f"{self.stat} no significant change {detail}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RegressionCheck:
    """One parsed check: ``stat`` may grow by at most ``threshold`` percent (relative) or ms."""

    stat: str
    threshold: float
    relative: bool

    @property
    def allowed(self) -> str:
        return f"{self.threshold:g}%" if self.relative else f"{self.threshold:g} ms"

    def check(
        self,
        base_samples_ns: Sequence[int] | np.ndarray,
        new_samples_ns: Sequence[int] | np.ndarray,
        *,
        seed: int = 0,
        n_boot: int = 1000,
        conf: float = 0.95,
    ) -> RegressionResult:
        """Regressed only when the slowdown is significant (diff CI above 0) and beyond the threshold."""
        base = np.asarray(base_samples_ns, dtype=np.float64).ravel() / NS_PER_MS
        new = np.asarray(new_samples_ns, dtype=np.float64).ravel() / NS_PER_MS
        if base.size == 0 or new.size == 0:
            side = "baseline" if base.size == 0 else "new run"
            raise BaselineError(f"cannot check {self.stat} regression: the {side} has no latency samples",
                                hint="record the baseline again with latency timing enabled")
        b, m = _point(base, self.stat), _point(new, self.stat)
        delta = m - b
        delta_pct = 100.0 * delta / b if b > 0 else (math.inf if delta > 0 else 0.0)
        ci_b, ci_m, diff_ci = bootstrap_diff_ci(base, new, _stat_fn(self.stat), n_boot=n_boot, conf=conf,
                                                seed=seed)
        significant = diff_ci[0] > 0
        beyond = delta_pct > self.threshold if self.relative else delta > self.threshold
        return RegressionResult(self.stat, b, m, delta, delta_pct, ci_b, ci_m, diff_ci, significant,
                                significant and beyond, self.allowed)


def parse_regression(spec: str) -> RegressionCheck:
    """'p95:5%' -> relative; 'p50:0.5ms', 'p50:500us', 'p50:0.5' (ms) -> absolute."""
    m = _SPEC_RE.match(spec) if isinstance(spec, str) else None
    if not m:
        raise UsageError(f"bad regression check {spec!r}: expected STAT:THRESHOLD", hint=_EXAMPLE)
    stat, number, unit = m.group(1).lower(), float(m.group(2)), m.group(3)
    if stat not in REGRESSION_STATS:
        raise UsageError(
            f"bad regression check {spec!r}: unknown statistic {stat!r}{did_you_mean(stat, REGRESSION_STATS)}",
            hint="use one of " + ", ".join(REGRESSION_STATS) + "; " + _EXAMPLE,
        )
    if number < 0:
        raise UsageError(f"bad regression check {spec!r}: the allowed slowdown cannot be negative", hint=_EXAMPLE)
    if unit == "%":
        return RegressionCheck(stat, number, relative=True)
    return RegressionCheck(stat, number / 1000.0 if unit == "us" else number, relative=False)
