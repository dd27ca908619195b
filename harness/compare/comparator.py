"""Judge one output against its golden (or a reference profile's output): a plain-data verdict plus a
torch.testing-style message.

Failures are data (OutputComparison), not exceptions; the run layer decides what to raise or report.

A message is: a header naming case, data set, output, profile and what it was compared against; then one
line per failed gate, in this fixed order (so the line that explains most comes first):
NaN, Inf, exact match (integer, bool and string outputs) or the element rule (float outputs), SNR,
cosine, top-k; then the supporting numbers (greatest differences, cosine/SNR/ULP, non-finite counts, the
minimum tolerance that would pass); then a Note saying what to do.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.compare.metrics import Metrics, compute_metrics, decode_float, encode_float, pair_category
from harness.compare.tolerances import MIN_ULPS, CalibratedRule, Tolerance, ulp_distance

GOLDEN = "golden"
NOTE = (
    "Note: if this difference is expected on this profile, set a per-output override in the case's "
    "case.json or the profile's [tolerance] table; if not, localise the diverging node."
)
NON_FINITE_NOTE = (
    "Note: a NaN or Inf the other side does not have fails whatever the tolerance; localise the node that "
    "first produces it (reduced precision overflowing is a common cause)."
)
CALIBRATED_NOTE = (
    "Note: this case's tolerance was measured by 'harness calibrate' (case.json 'calibration'); a difference this "
    "far beyond the noise floor of benign CPU variants is a real divergence: localise the diverging node. To judge "
    "with the profile's declared tolerance instead, run with --tolerance declared."
)
DECLARED, CALIBRATED = "declared", "calibrated"
_EXACT_KIND = {"int": "integer", "other": "non-numeric"}
MAX_ITEM_LINES = 5  # failing sequence items / map values named in the reasons, then a count


def output_kind(golden_dtype: str, actual_dtype: str) -> str:
    """'float' (element rule and signal gates), or 'integer', 'boolean', 'string', 'non-numeric' (exact match)."""
    category = pair_category(golden_dtype, actual_dtype)
    if category == "float":
        return "float"
    if golden_dtype == actual_dtype == "bool":
        return "boolean"
    return "string" if golden_dtype == actual_dtype == "object" else _EXACT_KIND[category]


@dataclass
class OutputComparison:
    """One output of one data set. ``golden_*`` describe what it was compared against: the blessed golden,
    or the output of the reference profile named by ``against``."""

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
    against: str = GOLDEN
    notes: list[str] = field(default_factory=list)  # said even when it passes (a dtype mismatch, both absent)
    kind: str = "tensor"  # or "sequence", "map", "optional" (see compare_value)
    items: list[OutputComparison] = field(default_factory=list)  # a sequence's items, a map's values
    # Which rule judged it: "declared" (the tolerance layers) or "calibrated" (case.json 'calibration'); with the
    # calibrated rule, ``calibration`` holds the rule and the score (worst_ulps, allowed_ulps, index, beyond).
    rule: str = DECLARED
    calibration: dict[str, Any] | None = None

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
            "against": self.against,
            "notes": list(self.notes),
            "kind": self.kind,
            "items": [item.to_dict() for item in self.items],
            "rule": self.rule,
            "calibration": self.calibration,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> OutputComparison:
        """Records written before ``against`` existed were all compared with goldens."""
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
            against=str(d.get("against", GOLDEN)),
            notes=list(d.get("notes", [])),
            kind=str(d.get("kind", "tensor")),
            items=[cls.from_dict(item) for item in d.get("items", [])],
            rule=str(d.get("rule", DECLARED)),
            calibration=d.get("calibration"),
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


def _ref(against: str) -> str:
    """How the other side is named in a sentence: 'the golden', or 'cpu' for a reference profile."""
    return "the golden" if against == GOLDEN else against


def compare_output(
    name: str, golden: np.ndarray, actual: np.ndarray, tolerance: Tolerance, *, chunk_elems: int = 1 << 20,
    against: str = GOLDEN, calibrated: CalibratedRule | None = None,
) -> OutputComparison:
    """Shapes must match exactly; dtypes may differ (reported) and are judged with ``tolerance``, or with the
    ``calibrated`` rule when one is given for a numeric output (it then replaces every declared gate; the NaN/Inf
    pattern is still judged). ``golden`` is whatever ``against`` names: the blessed golden, or a reference
    profile's output."""
    golden, actual = np.asarray(golden), np.asarray(actual)
    kind = output_kind(golden.dtype.name, actual.dtype.name)
    if calibrated is not None and _calibration_fits(calibrated, kind):
        tolerance = calibrated.equivalent()
    else:
        calibrated = None
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
        against=against,
    )
    if result.shape_mismatch:
        result.reasons = [f"shape mismatch: {against} {_shape(result.golden_shape)} vs actual "
                          f"{_shape(result.actual_shape)}"]
        return result
    if result.dtype_mismatch:
        result.notes.append(_dtype_note(result.golden_dtype, result.actual_dtype, against))
    topk = tolerance.topk if tolerance.min_topk_agreement is not None else None
    result.metrics = compute_metrics(
        golden, actual, tolerance.rtol, tolerance.atol, chunk_elems=chunk_elems, topk=topk
    )
    if calibrated is not None:
        result.rule = CALIBRATED
        result.reasons = _calibrated_gates(result, golden, actual, calibrated, kind, chunk_elems)
    else:
        result.reasons = failed_gates(result.metrics, tolerance, result.golden_shape, kind=kind, against=against)
    result.passed = not result.reasons
    return result


def _calibration_fits(rule: CalibratedRule, kind: str) -> bool:
    """A float rule judges float outputs, an exact one integer and bool outputs; anything else (a calibration
    written for another dtype, strings) keeps the declared tolerance."""
    return (rule.kind == "float") == (kind == "float") and kind in ("float", "integer", "boolean")


def _calibrated_gates(result: OutputComparison, golden: np.ndarray, actual: np.ndarray, rule: CalibratedRule,
                      kind: str, chunk_elems: int) -> list[str]:
    """NaN/Inf pattern first (a mismatch always fails), then the rule: elements within k*max(U,4) ULP of
    max(|golden|, f) for float outputs, the exact match (less what calibration saw differ) for integers."""
    m = result.metrics
    assert m is not None
    non_finite = _non_finite_gates(m, result.against)
    result.calibration = {"rule": rule.to_dict()}
    if kind != "float":
        return [*non_finite, *_element_gates(m, result.tolerance, kind)]
    score = ulp_distance(golden, actual, rule.floor, rule.dtype, limit=rule.allowed_ulps, chunk_elems=chunk_elems)
    result.calibration.update(worst_ulps=score.worst_ulps, allowed_ulps=rule.allowed_ulps, index=score.index,
                              beyond=score.beyond, scored=score.scored)
    if not score.beyond:
        return non_finite
    return [*non_finite, f"calibrated: k·U = {rule.k:g}·{max(rule.ulps, MIN_ULPS):.3g} = {rule.allowed_ulps:.4g} ULP "
                         f"allowed, observed {score.worst_ulps:.4g} ULP{_at(score.index)}"]


ToleranceFor = Callable[[np.dtype, np.dtype], Tolerance]


def _kind_of(value: Any) -> str:
    if value is None:
        return "optional"
    if isinstance(value, list):
        return "sequence"
    return "map" if isinstance(value, dict) else "tensor"


def _describe(value: Any) -> str:
    """How a value reads in a message: 'a float32 tensor (2, 3)', 'a sequence of 3 items', 'absent'."""
    kind = _kind_of(value)
    if kind == "optional":
        return "absent (an empty optional)"
    if kind == "sequence":
        return f"a sequence of {len(value)} item(s)"
    if kind == "map":
        return f"a map of {len(value)} key(s)"
    array = np.asarray(value)
    return f"a {array.dtype.name} tensor {_shape(list(array.shape))}"


def _elem_dtypes(value: Any) -> str:
    """'sequence(float32)', 'map(int64)', 'absent': the dtype field of a non-tensor comparison."""
    kind = _kind_of(value)
    if kind == "optional":
        return "absent"
    if kind == "tensor":
        return np.asarray(value).dtype.name
    inner = value if kind == "sequence" else list(value.values())
    names = sorted({np.asarray(v).dtype.name if _kind_of(v) == "tensor" else _kind_of(v) for v in inner})
    return f"{kind}({','.join(names)})"


def compare_value(name: str, golden: Any, actual: Any, tolerance_for: ToleranceFor, *, against: str = GOLDEN,
                  chunk_elems: int = 1 << 20, calibrated: CalibratedRule | None = None) -> OutputComparison:
    """Any ONNX value against its golden: tensors with ``compare_output`` (the tolerance for each pair of
    dtypes from ``tolerance_for``, or the ``calibrated`` rule), sequences item by item (a length mismatch fails),
    maps key by key, and optionals: absent on both sides passes, absent on one side fails. Calibration covers
    tensor outputs only: the items of a sequence or map keep their declared tolerance."""
    if _kind_of(golden) == _kind_of(actual) == "tensor":
        golden, actual = np.asarray(golden), np.asarray(actual)
        return compare_output(name, golden, actual, tolerance_for(golden.dtype, actual.dtype),
                              chunk_elems=chunk_elems, against=against, calibrated=calibrated)
    kind = _kind_of(golden)
    result = OutputComparison(name=name, golden_shape=_length(golden), actual_shape=_length(actual),
                              golden_dtype=_elem_dtypes(golden), actual_dtype=_elem_dtypes(actual),
                              tolerance=Tolerance(0.0, 0.0), metrics=None, shape_mismatch=False,
                              dtype_mismatch=False, passed=False, against=against, kind=kind)
    if golden is None and actual is None:
        result.passed, result.notes = True, ["optional absent on both sides"]
        return result
    if kind != _kind_of(actual):
        result.reasons = [f"kind mismatch: {_ref(against).removeprefix('the ')} is {_describe(golden)}, "
                          f"actual is {_describe(actual)}"]
        return result
    pairs, missing = _pairs(name, golden, actual)
    result.items = [compare_value(item, g, a, tolerance_for, against=against, chunk_elems=chunk_elems)
                    for item, g, a in pairs]
    result.shape_mismatch = bool(missing)
    result.reasons = missing + _item_reasons(result.items)
    result.passed = not result.reasons
    result.dtype_mismatch = result.golden_dtype != result.actual_dtype
    result.notes = [note for item in result.items for note in item.notes][:MAX_ITEM_LINES]
    result.tolerance = result.items[0].tolerance if result.items else result.tolerance
    result.metrics = _worst_metrics(result.items)
    return result


def _length(value: Any) -> list[int]:
    if isinstance(value, (list, dict)):
        return [len(value)]
    return [] if value is None else list(np.asarray(value).shape)


def _pairs(name: str, golden: Any, actual: Any) -> tuple[list[tuple[str, Any, Any]], list[str]]:
    """(item name, golden, actual) to compare, and what does not pair up (length or key mismatch)."""
    if isinstance(golden, list):
        missing = [] if len(golden) == len(actual) else [
            f"sequence length mismatch: golden {len(golden)} item(s) vs actual {len(actual)}"]
        return [(f"{name}[{i}]", g, a) for i, (g, a) in enumerate(zip(golden, actual))], missing
    absent = [k for k in golden if k not in actual]
    extra = [k for k in actual if k not in golden]
    missing = []
    if absent:
        missing.append(f"map keys missing from the actual output: {absent[:MAX_ITEM_LINES]}")
    if extra:
        missing.append(f"map keys not in the golden: {extra[:MAX_ITEM_LINES]}")
    return [(f"{name}[{k!r}]", golden[k], actual[k]) for k in golden if k in actual], missing


def _item_reasons(items: list[OutputComparison]) -> list[str]:
    failing = [item for item in items if not item.passed]
    lines = [f"{item.name}: {item.reasons[0] if item.reasons else 'differs'}" for item in failing[:MAX_ITEM_LINES]]
    if len(failing) > MAX_ITEM_LINES:
        lines.append(f"... and {len(failing) - MAX_ITEM_LINES} more failing item(s)")
    return lines


def _worst_metrics(items: list[OutputComparison]) -> Metrics | None:
    """The record's per-output numbers for a sequence or map: those of its worst item (failing items first,
    then the greatest absolute difference), so a per-op summary has one figure to show."""
    measured = [item for item in items if item.metrics is not None]
    if not measured:
        return None
    return max(measured, key=lambda i: (not i.passed, i.metrics.max_abs_diff or 0.0)).metrics


def _dtype_note(golden_dtype: str, actual_dtype: str, against: str) -> str:
    how = {"float": "compared after widening both to float64", "int": "compared as integers",
           "other": "compared by equality"}[pair_category(golden_dtype, actual_dtype)]
    return f"dtype mismatch: {_ref(against).removeprefix('the ')} {golden_dtype} vs actual {actual_dtype}: {how}"


def failed_gates(m: Metrics, tol: Tolerance, shape: list[int], *, kind: str = "float",
                 against: str = GOLDEN) -> list[str]:
    """Each failed gate as one line, in the module's fixed order; empty means the output passes.
    ``kind`` is ``output_kind`` of the pair's dtypes."""
    signal = _signal_gates(m, tol, shape) if kind == "float" and not _nothing_to_score(m) else []
    return [*_non_finite_gates(m, against), *_element_gates(m, tol, kind), *signal]


def _nothing_to_score(m: Metrics) -> bool:
    """Signal-quality gates (cosine, SNR, top-k) judge the finite elements. With none finite on both sides
    (an empty tensor, or every element NaN/Inf) and every NaN/Inf matched, the outputs are equal and the
    gates have nothing to say; an integer, bool or string output is compared exactly and never scored."""
    return m.finite_pairs == 0 and not m.nan_mismatch and not m.inf_mismatch


def _non_finite_gates(m: Metrics, against: str) -> list[str]:
    """NaN must meet NaN and Inf the same Inf, whatever the tolerance: a NaN where the other side has a
    number is a failure even on a profile that gates on signal quality only."""
    reasons = []
    if m.nan_mismatch:
        line = (f"{m.actual_nan_count} of {m.total} elements are NaN in the actual output, "
                f"{m.golden_nan_count} in {_ref(against)}")
        if m.actual_nan_count and m.golden_nan_count:
            line += f" ({m.nan_mismatch} positions have NaN on one side only)"
        reasons.append(line)
    if m.inf_mismatch:
        reasons.append(f"{m.inf_mismatch} of {m.total} elements are infinite on one side only or with opposite "
                       f"signs ({m.actual_inf_count} Inf in the actual output, {m.golden_inf_count} in "
                       f"{_ref(against)})")
    return reasons


def _element_gates(m: Metrics, tol: Tolerance, kind: str) -> list[str]:
    """Integer, bool and string outputs: exact match (less any max_mismatch_fraction allowance). Float
    outputs: the element rule, unless the tolerance turned it off."""
    if m.mismatch_fraction <= tol.max_mismatch_fraction:
        return []
    allowed = f"{m.mismatch_fraction:.1%} > {tol.max_mismatch_fraction:.1%} allowed"
    if kind != "float":
        why = "exact match required" if not tol.max_mismatch_fraction else allowed
        return [f"{kind} output: {m.mismatched} of {m.total} elements differ ({why})"]
    finite_mismatches = m.mismatched - m.nan_mismatch - m.inf_mismatch
    if not tol.elementwise or finite_mismatches == 0:  # off, or the NaN/Inf lines already say it all
        return []
    line = (f"Mismatched elements: {m.mismatched} / {m.total} ({100 * m.mismatch_fraction:.1f}%) beyond "
            f"rtol {_num(tol.rtol)} / atol {_num(tol.atol)}")
    return [line + (f" ({allowed})" if tol.max_mismatch_fraction else "")]


def _signal_gates(m: Metrics, tol: Tolerance, shape: list[int]) -> list[str]:
    reasons = []
    if tol.min_snr_db is not None:
        if m.snr_db is None:
            reasons.append(f"SNR n/a ({_note(m, 'snr_db')}), needs >= {tol.min_snr_db:g} dB")
        elif m.snr_db < tol.min_snr_db:
            reasons.append(f"SNR {_db(m.snr_db)} dB < {tol.min_snr_db:g} dB")
    if tol.min_cosine is not None:
        if m.cosine is None:
            reasons.append(f"cosine n/a ({_note(m, 'cosine')}), needs >= {_num(tol.min_cosine)}")
        elif m.cosine < tol.min_cosine:
            reasons.append(f"cosine {_num(m.cosine)} < {_num(tol.min_cosine)}")
    if tol.min_topk_agreement is not None:
        name = f"top-{tol.topk} agreement"
        if m.topk_agreement is None:
            why = m.notes.get("topk_agreement") or f"shape {_shape(shape)} has no class axis last"
            reasons.append(f"{name} n/a ({why}), needs >= {_num(tol.min_topk_agreement)}")
        elif m.topk_agreement < tol.min_topk_agreement:
            reasons.append(f"{name} {_num(m.topk_agreement)} < {_num(tol.min_topk_agreement)}")
    return reasons


def _note(m: Metrics, name: str) -> str:
    return m.notes.get(name) or "not computable"


def format_failure(cmp: OutputComparison, *, case: str, profile: str) -> str:
    """Header, the failed gates (the first one leads), the supporting numbers, then what to do next."""
    head = f"case '{case}' output '{cmp.name}' on profile '{profile}'"
    if cmp.kind != "tensor":
        return _format_container(cmp, head, case, profile)
    if cmp.shape_mismatch or cmp.metrics is None:
        shapes = f"{cmp.against} {_shape(cmp.golden_shape)} vs actual {_shape(cmp.actual_shape)}"
        return f"{head}: shape mismatch: {shapes}\n{NOTE}"
    lines = [f"{head}: tensor-likes are not close vs {cmp.against}", *cmp.reasons, *_beyond_lines(cmp)]
    if cmp.dtype_mismatch:
        lines.append(f"Dtypes differ: {cmp.against} {cmp.golden_dtype} vs actual {cmp.actual_dtype}")
    category = pair_category(cmp.golden_dtype, cmp.actual_dtype)
    calibrated = cmp.rule == CALIBRATED
    lines += _first_mismatch_lines(cmp.metrics, cmp.against, category)
    if category != "other":
        lines += _difference_lines(cmp.metrics, cmp.tolerance, category, in_force=not calibrated)
        lines += _signal_lines(cmp.metrics)
    if category == "float":
        lines += _non_finite_lines(cmp.metrics, cmp.against)
        lines += _minimum_k_lines(cmp) if calibrated else _minimum_tolerance_lines(cmp.metrics, cmp.tolerance)
    non_finite = cmp.metrics.nan_mismatch or cmp.metrics.inf_mismatch
    lines.append(NON_FINITE_NOTE if non_finite else CALIBRATED_NOTE if calibrated else NOTE)
    return "\n".join(lines)


def _beyond_lines(cmp: OutputComparison) -> list[str]:
    """torch.testing's count of mismatched elements, in the calibrated rule's terms."""
    score = cmp.calibration or {}
    beyond, total = score.get("beyond"), cmp.metrics.total if cmp.metrics else 0
    if cmp.rule != CALIBRATED or not beyond or not total:
        return []
    return [f"Mismatched elements: {beyond} / {total} ({100 * beyond / total:.1f}%) beyond "
            f"{score['allowed_ulps']:.4g} ULP"]


def _minimum_k_lines(cmp: OutputComparison) -> list[str]:
    """Under the calibrated rule, what the minimum tolerance line says in its terms: the k that would pass."""
    score = cmp.calibration or {}
    rule = score.get("rule") or {}
    worst = score.get("worst_ulps")
    if worst is None or not rule or cmp.metrics is None or cmp.metrics.nan_mismatch or cmp.metrics.inf_mismatch:
        return []
    return [f"Minimum k that would pass: {worst / max(rule.get('ulps', 0.0), MIN_ULPS):.4g} "
            f"(this case's k is {rule.get('k', 0.0):g}; noise floor U = {rule.get('ulps', 0.0):.3g} ULP)"]


def _format_container(cmp: OutputComparison, head: str, case: str, profile: str) -> str:
    """A sequence, map or optional: what does not pair up, then each failing item's own message (indented)."""
    lines = [f"{head}: {cmp.kind} values differ vs {cmp.against}", *cmp.reasons]
    for item in [i for i in cmp.items if not i.passed][:MAX_ITEM_LINES]:
        item_lines = format_failure(item, case=case, profile=profile).splitlines()
        lines.append(f"{item.name}:")
        lines += ["  " + line for line in item_lines[1:] if not line.startswith("Note:")]
    lines.append(NOTE)
    return "\n".join(lines)


def _first_mismatch_lines(m: Metrics, against: str, category: str) -> list[str]:
    """Exact outputs (integers, bools, strings): the first element that differs, with both values."""
    if category == "float" or m.first_mismatch_index is None or not m.first_mismatch:
        return []
    golden, actual = m.first_mismatch
    return [f"First mismatch{_at(m.first_mismatch_index)}: {_ref(against).removeprefix('the ')} {golden} vs actual {actual}"]


def _at(index: list[int] | None) -> str:
    return "" if index is None else f" at index {_shape(index)}"


def _difference_lines(m: Metrics, tol: Tolerance, category: str, *, in_force: bool = True) -> list[str]:
    """torch.testing's two lines; '(up to ... allowed)' only where the element rule is in force (not under the
    calibrated rule, whose limit is in ULPs)."""
    if m.max_abs_diff is None:
        return [f"Greatest absolute difference: n/a ({_note(m, 'max_abs_diff')})"]
    in_force = in_force and category == "float" and tol.elementwise
    abs_allowed = f" (up to {_num(tol.atol)} allowed)" if in_force else ""
    rel_allowed = f" (up to {_num(tol.rtol)} allowed)" if in_force else ""
    return [
        f"Greatest absolute difference: {_num(m.max_abs_diff)}{_at(m.max_abs_index)}{abs_allowed}",
        f"Greatest relative difference: {_num(m.max_rel_diff)}{_at(m.max_rel_index)}{rel_allowed}",
    ]


def _signal_lines(m: Metrics) -> list[str]:
    """Cosine, SNR and ULP, over the elements finite on both sides; n/a with the reason, never a perfect
    score, when there are none."""
    if m.cosine is None and m.snr_db is None and "cosine" in m.notes:
        return [f"Cosine similarity: n/a  SNR: n/a ({m.notes['cosine']})"]
    snr = f"{_db(m.snr_db)} dB" if m.snr_db is not None else f"n/a ({_note(m, 'snr_db')})"
    ulp = f"  Max ULP: {m.max_ulp}" if m.max_ulp is not None else ""
    over = ""
    if m.finite_pairs is not None and m.finite_pairs < m.total:
        over = f" (over the {m.finite_pairs} of {m.total} elements finite on both sides)"
    return [f"Cosine similarity: {_num(m.cosine)}  SNR: {snr}{ulp}{over}"]


def _non_finite_lines(m: Metrics, against: str) -> list[str]:
    lines = [f"NaN/Inf disagreements: {m.nan_mismatch} NaN, {m.inf_mismatch} Inf"]
    actual, golden = m.non_finite("actual"), m.non_finite("golden")
    if actual or golden:
        lines.append(f"Non-finite elements: {actual or 'none'} in the actual output, {golden or 'none'} in "
                     f"{_ref(against)} (NaN matches only NaN, Inf only the same Inf)")
    return lines


def _minimum_tolerance_lines(m: Metrics, tol: Tolerance) -> list[str]:
    non_finite = m.nan_mismatch + m.inf_mismatch
    if non_finite:  # no atol/rtol covers a NaN or Inf the other side lacks: never print a tolerance that "passes"
        plural = "es" if non_finite > 1 else ""
        return [f"No tolerance would pass: {non_finite} non-finite mismatch{plural} (NaN or Inf on one side only, "
                f"or opposite infinities)"]
    if m.required_atol is None:
        return []
    which = "Minimum tolerance that would pass" if tol.elementwise else "Element rule that would pass (not in force)"
    return [f"{which}: atol={_num(m.required_atol)} (at rtol=0)"
            f" or rtol={_num(m.required_rtol)} (at atol={_num(tol.atol)})"]
