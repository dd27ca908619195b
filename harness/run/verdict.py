"""Observation -> verdict: resolve each output's tolerance through its layers, compare, and decide.

Tolerance layers, later wins: dtype default (the actual output's, between floats; the looser between kinds) ->
the case's data.json (the ONNX backend tests' tolerance for an exact implementation) -> profile [tolerance] ->
profile [tolerance.dtype.<golden dtype>] -> case.json 'tolerance' -> case.json 'output_tolerance'[output] ->
profile [[tolerance.override]] matching case/output. data.json sits below the profile: it says how exact an
implementation must be, and a profile's stated precision (a float16 shader, bfloat16 inference) is what its
device can do; case.json is the user's own word about their case, so it stays above.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from harness.compare.comparator import GOLDEN, OutputComparison, compare_value, format_failure
from harness.compare.tolerances import Tolerance, ToleranceOverride, resolve_tolerance
from harness.golden.cases import Case
from harness.golden.layout import DataSet, Value
from harness.profiles.schema import Profile
from harness.run import record as R


def tolerance_layers(case: Case, profile: Profile, output: str, golden_dtype: np.dtype) -> list[ToleranceOverride | None]:
    own = case.tolerance_overrides
    return [own.data_json, profile.tolerance.everything, profile.tolerance.per_dtype.get(golden_dtype.name),
            own.case_wide, own.per_output.get(output),
            *(o.override for o in profile.tolerance.overrides if o.matches(case.name, output))]


def _missing_like(golden: Value) -> Value:
    """What stands in for an output the worker did not return: an empty value of the golden's kind, which
    fails as a shape (length) mismatch, or a present value where an absent optional was expected."""
    if isinstance(golden, list):
        return [] if golden else [np.zeros((0,))]
    if isinstance(golden, dict):
        return {}
    return np.zeros((0,), dtype=golden.dtype) if golden is not None else np.zeros((0,))


def compare_datasets(case: Case, profile: Profile, datasets: list[DataSet], actual: dict[str, Value],
                     against: str = GOLDEN) -> list[tuple[int, OutputComparison]]:
    """Compare every expected output of every data set; ``actual`` is keyed "<k>/<output>". The data sets'
    outputs are the goldens, or (``against`` = a reference profile's name) that profile's outputs. Outputs are
    any ONNX value (tensor, sequence, map, optional); each tensor inside gets the tolerance of its dtypes."""
    results = []
    for ds in datasets:
        for name, golden in ds.outputs.items():
            key = f"{ds.index}/{name}"
            got = actual[key] if key in actual else _missing_like(golden)

            def tolerance_for(golden_dtype: np.dtype, actual_dtype: np.dtype, name: str = name) -> Tolerance:
                return resolve_tolerance(golden_dtype, actual_dtype,
                                         tolerance_layers(case, profile, name, golden_dtype))
            results.append((ds.index, compare_value(name, golden, got, tolerance_for, against=against)))
    return results


def fell_back(profile: Profile, placement: dict) -> bool:
    if profile.ep == "CPUExecutionProvider" or not placement.get("available"):
        return False
    return placement.get("fraction_on_ep", 1.0) < 1.0


def numeric_verdict(case: Case, profile: Profile, comparisons: list[tuple[int, OutputComparison]],
                    placement: dict, against: str = GOLDEN) -> tuple[str, str]:
    """FAIL names the failing outputs and what they were compared against ("vs golden", "vs cpu")."""
    failed = [(k, c) for k, c in comparisons if not c.passed]
    if failed:
        k, first = failed[0]
        names = sorted({c.name for _, c in failed})
        return R.FAIL, (f"{len(failed)} output(s) out of tolerance vs {against} ({', '.join(names)}); "
                        f"first in test_data_set_{k}")
    notes = _notes(comparisons)
    if fell_back(profile, placement):
        share = placement.get("fraction_on_ep", 0.0)
        return R.PASS_FELL_BACK, (f"passed, but only {share:.0%} of nodes ran on {profile.ep}; "
                                  f"{placement.get('fell_back_count', 0)} fell back" + (f"; {notes}" if notes else ""))
    return R.PASS, (f"passed; {notes}" if notes else "")


def _notes(comparisons: list[tuple[int, OutputComparison]]) -> str:
    """What a passing cell should still say (a dtype mismatch compared after widening), once per output.
    An optional absent on both sides is the expected outcome, not worth a note."""
    said: dict[str, str] = {}
    for _, c in comparisons:
        for note in c.notes:
            if note != "optional absent on both sides":
                said.setdefault(f"output {c.name!r}: {note}", "")
    return "; ".join(said)


def _failing() -> tuple[str, ...]:
    """Verdicts a known failure turns into XFAIL. UNSUPPORTED (the session could not be created: NOT_IMPLEMENTED,
    an unsupported opset) is one where run/record.py defines it."""
    return tuple(v for v in (R.FAIL, R.ERROR, R.CRASH, R.TIMEOUT, R.OOM, getattr(R, "UNSUPPORTED", None)) if v)



def apply_known_failure(result: R.CellResult, profile: Profile) -> R.CellResult:
    known = profile.known_failure(result.case)
    if known is None:
        return result
    if known.output != "*" and not _only_listed_outputs_failed(result, known.output):
        return result
    result.known_failure = known.reason
    if result.verdict in _failing():
        result.detail = f"expected failure: {known.reason} ({result.detail})"
        result.verdict = R.XFAIL
    elif result.verdict in (R.PASS, R.PASS_FELL_BACK):
        result.detail = f"unexpectedly passed; listed as known failure: {known.reason}. Remove the entry from the profile"
        result.verdict = R.XPASS
    return result


def _only_listed_outputs_failed(result: R.CellResult, pattern: str) -> bool:
    """A known failure naming an output covers a FAIL only when every failing output matches it; a crash
    or error is not about any one output, so only an entry for every output ('*') covers it."""
    if result.verdict in (R.PASS, R.PASS_FELL_BACK):
        return True
    if result.verdict != R.FAIL:
        return False
    failing = {e["comparison"]["name"] for e in result.outputs if not e["comparison"]["passed"]}
    return bool(failing) and all(fnmatch.fnmatchcase(name, pattern) for name in failing)


def failure_messages(result: R.CellResult) -> list[str]:
    """The torch.testing-style message for each failing output of a cell."""
    messages = []
    for entry in result.outputs:
        comparison = OutputComparison.from_dict(entry["comparison"])
        if not comparison.passed:
            where = f"{result.case} [test_data_set_{entry['dataset']}]"
            messages.append(format_failure(comparison, case=where, profile=result.profile))
    return messages
