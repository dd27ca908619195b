"""Judge one output against its golden: a plain-data verdict plus a torch.testing-style message.

Failures are data (OutputComparison), not exceptions; the run layer decides what to raise or report.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.compare.metrics import Metrics, compute_metrics, decode_float, encode_float
from harness.compare.tolerances import Tolerance

NOTE = (
    "Note: if this difference is expected on this profile, set a per-output override in the case's "
    "case.json or the profile's [tolerance] table; if not, localise the diverging node."
)


@dataclass
class OutputComparison:
    name: str
    golden_shape: list[int]
    actual_shape: list[int]
    golden_dtype: str
    actual_dtype: str
    tolerance: Tolerance
    metrics: Metrics | None
    shape_mismatch: bool
    dtype_mismatch: bool
    passed: bool
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "golden_shape": list(self.golden_shape),
            "actual_shape": list(self.actual_shape),
            "golden_dtype": self.golden_dtype,
            "actual_dtype": self.actual_dtype,
            "tolerance": {k: encode_float(v) for k, v in self.tolerance.to_dict().items()},
            "metrics": None if self.metrics is None else self.metrics.to_dict(),
            "shape_mismatch": self.shape_mismatch,
            "dtype_mismatch": self.dtype_mismatch,
            "passed": self.passed,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputComparison:
        tol = Tolerance.from_dict({k: decode_float(v) for k, v in d["tolerance"].items()})
        metrics = None if d.get("metrics") is None else Metrics.from_dict(d["metrics"])
        return cls(
            name=d["name"],
            golden_shape=list(d["golden_shape"]),
            actual_shape=list(d["actual_shape"]),
            golden_dtype=d["golden_dtype"],
            actual_dtype=d["actual_dtype"],
            tolerance=tol,
            metrics=metrics,
            shape_mismatch=bool(d["shape_mismatch"]),
            dtype_mismatch=bool(d["dtype_mismatch"]),
            passed=bool(d["passed"]),
            reasons=list(d.get("reasons", [])),
        )


def _num(x: float | None) -> str:
    """Short, torch-like numbers: 2.0, 1e-05, 0.0001, inf."""
    if x is None:
        return "n/a"
    if not math.isfinite(x):
        return str(x)
    return repr(float(f"{x:.6g}"))


def _db(x: float | None) -> str:
    return "n/a" if x is None else (str(x) if not math.isfinite(x) else f"{x:.1f}")


def _shape(shape: list[int]) -> str:
    return str(tuple(shape))


def compare_output(
    name: str, golden: np.ndarray, actual: np.ndarray, tolerance: Tolerance, *, chunk_elems: int = 1 << 20
) -> OutputComparison:
    """Shapes must match exactly; dtypes may differ (reported) and are judged with ``tolerance``."""
    golden, actual = np.asarray(golden), np.asarray(actual)
    result = OutputComparison(
        name=name,
        golden_shape=list(golden.shape),
        actual_shape=list(actual.shape),
        golden_dtype=golden.dtype.name,
        actual_dtype=actual.dtype.name,
        tolerance=tolerance,
        metrics=None,
        shape_mismatch=golden.shape != actual.shape,
        dtype_mismatch=golden.dtype != actual.dtype,
        passed=False,
    )
    if result.shape_mismatch:
        result.reasons = [f"shape mismatch: golden {_shape(result.golden_shape)} vs actual {_shape(result.actual_shape)}"]
        return result
    topk = tolerance.topk if tolerance.min_topk_agreement is not None else None
    result.metrics = compute_metrics(
        golden, actual, tolerance.rtol, tolerance.atol, chunk_elems=chunk_elems, topk=topk
    )
    result.reasons = failed_gates(result.metrics, tolerance, result.golden_shape)
    result.passed = not result.reasons
    return result


def failed_gates(m: Metrics, tol: Tolerance, shape: list[int]) -> list[str]:
    """Each failed criterion in words; empty means the output passes."""
    reasons = []
    if m.mismatch_fraction > tol.max_mismatch_fraction:
        reasons.append(
            f"{m.mismatched} / {m.total} elements outside rtol={_num(tol.rtol)} atol={_num(tol.atol)}"
            f" ({m.mismatch_fraction:.1%} > allowed {tol.max_mismatch_fraction:.1%})"
        )
    if m.nan_mismatch:
        reasons.append(f"{m.nan_mismatch} NaN disagreements (NaN on one side only)")
    if m.inf_mismatch:
        reasons.append(f"{m.inf_mismatch} Inf disagreements (different infinities)")
    reasons += _metric_gates(m, tol, shape)
    return reasons


def _metric_gates(m: Metrics, tol: Tolerance, shape: list[int]) -> list[str]:
    reasons = []
    if tol.min_cosine is not None and (m.cosine is None or m.cosine < tol.min_cosine):
        reasons.append(f"Cosine similarity {_num(m.cosine)} < required {_num(tol.min_cosine)}")
    if tol.min_snr_db is not None:
        if m.snr_db is None:
            reasons.append(f"SNR undefined (golden is all zero) < required {_num(tol.min_snr_db)} dB")
        elif m.snr_db < tol.min_snr_db:
            reasons.append(f"SNR {_db(m.snr_db)} dB < required {_num(tol.min_snr_db)} dB")
    if tol.min_topk_agreement is not None:
        if m.topk_agreement is None:
            reasons.append(f"Top-{tol.topk} agreement not computable for shape {_shape(shape)} (needs a class axis last)")
        elif m.topk_agreement < tol.min_topk_agreement:
            reasons.append(
                f"Top-{tol.topk} agreement {_num(m.topk_agreement)} < required {_num(tol.min_topk_agreement)}"
            )
    return reasons


def format_failure(cmp: OutputComparison, *, case: str, profile: str) -> str:
    """Multi-line message naming case, output and profile, the numbers, and what to do next."""
    head = f"case '{case}' output '{cmp.name}' on profile '{profile}'"
    if cmp.shape_mismatch or cmp.metrics is None:
        shapes = f"golden {_shape(cmp.golden_shape)} vs actual {_shape(cmp.actual_shape)}"
        return f"{head}: shape mismatch: {shapes}\n{NOTE}"
    m, tol = cmp.metrics, cmp.tolerance
    lines = [f"{head}: tensor-likes are not close"]
    if cmp.dtype_mismatch:
        lines.append(f"Dtypes differ: golden {cmp.golden_dtype} vs actual {cmp.actual_dtype}")
    lines += _difference_lines(m, tol)
    lines += [r for r in cmp.reasons if r.startswith(("Cosine", "SNR", "Top-"))]
    lines.append(NOTE)
    return "\n".join(lines)


def _at(index: list[int] | None) -> str:
    return "" if index is None else f" at index {_shape(index)}"


def _difference_lines(m: Metrics, tol: Tolerance) -> list[str]:
    pct = f"{100 * m.mismatch_fraction:.1f}%"
    lines = [
        f"Mismatched elements: {m.mismatched} / {m.total} ({pct})",
        f"Greatest absolute difference: {_num(m.max_abs_diff)}{_at(m.max_abs_index)} (up to {_num(tol.atol)} allowed)",
        f"Greatest relative difference: {_num(m.max_rel_diff)}{_at(m.max_rel_index)} (up to {_num(tol.rtol)} allowed)",
    ]
    if m.cosine is not None:
        ulp = f"  Max ULP: {m.max_ulp}" if m.max_ulp is not None else ""
        lines.append(f"Cosine similarity: {_num(m.cosine)}  SNR: {_db(m.snr_db)} dB{ulp}")
    lines.append(f"NaN/Inf disagreements: {m.nan_mismatch} NaN, {m.inf_mismatch} Inf")
    if m.golden_nan_count:
        lines.append(f"Golden contains {m.golden_nan_count} NaN (matched only by NaN)")
    lines.append(
        f"Minimum tolerance that would pass: atol={_num(m.required_atol)} (at rtol=0)"
        f" or rtol={_num(m.required_rtol)} (at atol={_num(tol.atol)})"
    )
    return lines
