"""From calibration runs to each output's noise floor, and the check of the float64 run before it is trusted.

Per output o with goldens g (over every data set): S = max|g|, f = 1e-3*S, and U = the most ULPs of
max(|g|, f) that any trusted calibration run moved any element (harness.compare.tolerances.ulp_distance).
Integer and bool outputs record the largest share of elements a run changed (0: they stay exact).

The float64 run is checked first: where it deviates from the golden by more than ``REVIEW_FRACTION`` of S, the
goldens themselves are that coarse (a dynamically quantised model flips quantisation codes under any non-ORT
arithmetic), so the case is flagged for review, the float64 run does not widen U, and the floor is reported as
a resolution ("≈3% of scale"), not as a precision in ULPs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.compare.comparator import output_kind
from harness.compare.tolerances import CalibratedRule, floor_for, ulp_distance, ulp_dtype
from harness.run.plan import CasePlan

REVIEW_FRACTION = 0.01  # the float64 run may deviate by up to ~1% of an output's scale before the case is flagged


@dataclass
class OutputNoise:
    """What calibration measured for one output: the rule (None when the output is not calibrated, with why),
    each run's worst ULPs (float) or changed share (exact), and the float64 run's deviation as a share of S."""

    name: str
    rule: CalibratedRule | None
    why_not: str = ""
    per_run: dict[str, float] = field(default_factory=dict)
    reference_deviation: float | None = None  # max |fp64 - g| / S
    non_finite: list[str] = field(default_factory=list)  # runs whose NaN/Inf pattern differs from the golden


def resolution(fraction: float) -> str:
    """'≈3% of scale': how a floor the goldens cannot resolve below is said."""
    return f"≈{fraction * 100:.2g}% of scale"


def _goldens(plan: CasePlan, name: str) -> list[tuple[int, Any]]:
    return [(ds.index, ds.outputs[name]) for ds in plan.datasets if name in ds.outputs]


def _pairs(goldens: list[tuple[int, Any]], outputs: dict[str, np.ndarray], name: str
           ) -> list[tuple[np.ndarray, np.ndarray]] | None:
    """(golden, run output) per data set; None when the run lacks one or its shape differs."""
    pairs = []
    for index, golden in goldens:
        got = outputs.get(f"{index}/{name}")
        if got is None or np.shape(got) != np.shape(golden):
            return None
        pairs.append((np.asarray(golden), np.asarray(got)))
    return pairs


def _non_finite_differs(g: np.ndarray, a: np.ndarray) -> bool:
    if g.dtype.kind != "f" and a.dtype.kind != "f":
        return False
    g64, a64 = g.astype(np.float64), a.astype(np.float64)
    finite_g, finite_a = np.isfinite(g64), np.isfinite(a64)
    nan_differs = np.isnan(g64) != np.isnan(a64)
    inf_differs = ~finite_g & ~finite_a & ~np.isnan(g64) & ~np.isnan(a64) & (g64 != a64)
    return bool(np.any(nan_differs | inf_differs | (np.isinf(g64) != np.isinf(a64))))


def _scale(goldens: list[tuple[int, Any]]) -> float:
    finite = [np.abs(np.asarray(g, dtype=np.float64)[np.isfinite(np.asarray(g, dtype=np.float64))])
              for _, g in goldens]
    return max((float(v.max()) for v in finite if v.size), default=0.0)


def measure_output(plan: CasePlan, name: str, runs: dict[str, dict[str, np.ndarray]], reference: str, k: float,
                   ) -> OutputNoise:
    """One output's noise over ``runs`` (profile name -> outputs; ``reference`` names the float64 run)."""
    goldens = _goldens(plan, name)
    if not goldens or not all(isinstance(g, np.ndarray) for _, g in goldens):
        return OutputNoise(name, None, "not a tensor output: its items keep the declared tolerance")
    dtype = goldens[0][1].dtype
    kind = output_kind(dtype.name, dtype.name)
    if kind not in ("float", "integer", "boolean"):
        return OutputNoise(name, None, f"a {dtype.name} output is compared exactly")
    noise = OutputNoise(name, None)
    usable = {p: pairs for p, outputs in runs.items() if (pairs := _pairs(goldens, outputs, name)) is not None}
    if not usable:
        noise.why_not = "no calibration run produced it with the golden's shape"
        return noise
    noise.non_finite = [p for p, pairs in usable.items() if any(_non_finite_differs(g, a) for g, a in pairs)]
    if kind != "float":
        noise.per_run = {p: max(float(np.mean(g != a)) if g.size else 0.0 for g, a in pairs)
                         for p, pairs in usable.items()}
        noise.rule = CalibratedRule(k=k, kind="exact", mismatch_fraction=max(noise.per_run.values()))
        return noise
    scale, ulps_in = _scale(goldens), ulp_dtype(dtype)
    floor = floor_for(scale, ulps_in)
    for profile, pairs in usable.items():
        scores = [ulp_distance(g, a, floor, ulps_in).worst_ulps for g, a in pairs]
        noise.per_run[profile] = max((s for s in scores if s is not None), default=0.0)
    if reference in usable and scale > 0:
        noise.reference_deviation = max(_max_abs_diff(g, a) for g, a in usable[reference]) / scale
    noise.rule = CalibratedRule(k=k, kind="float", scale=scale, floor=floor, dtype=ulps_in, ulps=0.0)
    return noise


def _max_abs_diff(g: np.ndarray, a: np.ndarray) -> float:
    g64, a64 = g.astype(np.float64), a.astype(np.float64)
    both = np.isfinite(g64) & np.isfinite(a64)
    return float(np.max(np.abs(a64[both] - g64[both]))) if both.any() else 0.0


def review_reason(noises: list[OutputNoise], reference: str) -> str:
    """Why the case needs review ('' when it does not): the float64 run off the golden by more than
    REVIEW_FRACTION of an output's scale, or a run whose NaN/Inf pattern differs from the golden's."""
    reasons = []
    off = [n for n in noises if n.reference_deviation is not None and n.reference_deviation > REVIEW_FRACTION]
    if off:
        worst = max(off, key=lambda n: n.reference_deviation or 0.0)
        reasons.append(f"the float64 reference deviates from the golden by {resolution(worst.reference_deviation)} on "
                       f"output {worst.name!r} (more than {REVIEW_FRACTION:.0%}): the goldens resolve this case to "
                       f"{resolution(worst.reference_deviation)}, not to a noise floor in ULPs; check how they were "
                       f"made (a quantised model flips codes under any other arithmetic)")
    for noise in noises:
        if noise.non_finite:
            reasons.append(f"output {noise.name!r}: NaN/Inf where the golden has none (or the reverse) on "
                           f"{', '.join(noise.non_finite)}")
    return "; ".join(reasons)


def settle(noises: list[OutputNoise], trusted: list[str]) -> None:
    """Set each float rule's U to the worst of the ``trusted`` runs (the float64 run is left out of a case under
    review: it must not widen anything)."""
    for noise in noises:
        if noise.rule is None:
            continue
        worst = max((v for p, v in noise.per_run.items() if p in trusted), default=0.0)
        if noise.rule.kind == "float":
            # rounded up, so that no calibration run fails its own rule at k = 1
            noise.rule = CalibratedRule(**{**noise.rule.to_dict(), "ulps": math.ceil(worst * 1e4) / 1e4})
        else:
            noise.rule = CalibratedRule(**{**noise.rule.to_dict(), "mismatch_fraction": worst})
