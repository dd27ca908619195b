"""Observation -> verdict: resolve each output's tolerance through its layers, compare, and decide.

Tolerance layers, later wins: dtype default (looser of golden and actual) -> profile [tolerance] ->
profile [tolerance.dtype.<golden dtype>] -> the case's data.json -> case.json 'tolerance' ->
case.json 'output_tolerance'[output] -> profile [[tolerance.override]] matching case/output.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from harness.compare.comparator import GOLDEN, OutputComparison, compare_output, format_failure
from harness.compare.tolerances import ToleranceOverride, resolve_tolerance
from harness.golden.cases import Case
from harness.golden.layout import DataSet
from harness.profiles.schema import Profile
from harness.run import record as R


def tolerance_layers(case: Case, profile: Profile, output: str, golden_dtype: np.dtype) -> list[ToleranceOverride | None]:
    own = case.tolerance_overrides
    return [profile.tolerance.everything, profile.tolerance.per_dtype.get(golden_dtype.name), own.data_json,
            own.case_wide, own.per_output.get(output),
            *(o.override for o in profile.tolerance.overrides if o.matches(case.name, output))]


def compare_datasets(case: Case, profile: Profile, datasets: list[DataSet], actual: dict[str, np.ndarray],
                     against: str = GOLDEN) -> list[tuple[int, OutputComparison]]:
    """Compare every expected output of every data set; ``actual`` is keyed "<k>/<output>". The data sets'
    outputs are the goldens, or (``against`` = a reference profile's name) that profile's outputs."""
    results = []
    for ds in datasets:
        for name, golden in ds.outputs.items():
            got = actual.get(f"{ds.index}/{name}")
            if got is None:
                got = np.zeros((0,), dtype=golden.dtype)
            tol = resolve_tolerance(golden.dtype, got.dtype, tolerance_layers(case, profile, name, golden.dtype))
            results.append((ds.index, compare_output(name, golden, got, tol, against=against)))
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
    if fell_back(profile, placement):
        share = placement.get("fraction_on_ep", 0.0)
        return R.PASS_FELL_BACK, (f"passed, but only {share:.0%} of nodes ran on {profile.ep}; "
                                  f"{placement.get('fell_back_count', 0)} fell back")
    return R.PASS, ""


def apply_known_failure(result: R.CellResult, profile: Profile) -> R.CellResult:
    known = profile.known_failure(result.case)
    if known is None:
        return result
    if known.output != "*" and not _only_listed_outputs_failed(result, known.output):
        return result
    result.known_failure = known.reason
    if result.verdict in (R.FAIL, R.ERROR, R.CRASH, R.TIMEOUT, R.OOM):
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
