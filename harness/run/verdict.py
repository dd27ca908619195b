"""Observation -> verdict: resolve each output's tolerance through its layers, compare, and decide.

Tolerance layers, later wins: dtype default (the actual output's, between floats; the looser between kinds) ->
the case's data.json (the ONNX backend tests' tolerance for an exact implementation) -> profile [tolerance] ->
profile [tolerance.dtype.<golden dtype>] -> case.json 'tolerance' -> case.json 'output_tolerance'[output] ->
profile [[tolerance.override]] matching case/output. data.json sits below the profile: it says how exact an
implementation must be, and a profile's stated precision (a float16 shader, bfloat16 inference) is what its
device can do; case.json is the user's own word about their case, so it stays above.

A calibrated case (case.json 'calibration', written by 'harness calibrate') is judged instead by its measured rule
on profiles that compute in float32, by default (``--tolerance auto``); reduced-precision profiles (fp16, bf16,
int8) keep their declared gates, so expected precision loss stays green. ``--tolerance calibrated`` applies the
rule on every profile ("how far from fp32 is this device, in ULPs?"), ``--tolerance declared`` on none. Each
output's comparison records which rule judged it.
"""

from __future__ import annotations

import fnmatch

import numpy as np

from harness.compare.comparator import CALIBRATED, GOLDEN, OutputComparison, compare_value, format_failure
from harness.compare.tolerances import CalibratedRule, Tolerance, ToleranceOverride, resolve_tolerance
from harness.golden.cases import Case
from harness.golden.layout import DataSet, Value, value_digest
from harness.profiles.known_keys import REFERENCE_EP
from harness.profiles.schema import Profile
from harness.run import record as R

TOLERANCE_MODES = ("auto", "calibrated", "declared")
# A calibration that no longer describes the case: said on every cell it would have judged, so that it is redone.
STALE_MODEL = "declared: the calibration was measured on another model.onnx (rerun 'harness calibrate --force')"
STALE_GOLDENS = "declared: the goldens changed since the calibration (rerun 'harness calibrate --force')"
_REDUCED = {"f16": "float16", "bf16": "bfloat16", "fp16": "float16", "int8": "int8"}


def computes_in(profile: Profile) -> str:
    """The precision a profile computes in, from what it declares (never from its name): 'float64' for the
    reference evaluator; the precision transform ('fp16', 'fp16-mixed', 'int8-*'); OpenVINO's precision hint; an
    EP option that switches reduced precision on (TensorRT's trt_fp16_enable, trt_int8_enable); else 'float32'."""
    if profile.ep == REFERENCE_EP:
        return "float64"
    if profile.transform != "none":
        return "float16" if profile.transform.startswith("fp16") else "int8"
    if profile.precision_hint in _REDUCED:
        return _REDUCED[profile.precision_hint]
    for key, value in profile.ep_options.items():
        tag = next((t for t in ("bf16", "fp16", "int8") if t in key.lower()), None)
        if tag and str(value).strip().lower() not in ("0", "false", "", "no", "off"):
            return _REDUCED[tag]
    return "float32"


def goldens_digest(datasets: list[DataSet]) -> str:
    """The goldens a calibration was measured against, as one digest: a re-bless changes it."""
    return value_digest({f"{ds.index}/{name}": value for ds in datasets for name, value in ds.outputs.items()})


def calibrated_rules(case: Case, profile: Profile, mode: str = "auto", against: str = GOLDEN,
                     datasets: list[DataSet] | None = None) -> tuple[dict[str, CalibratedRule], str]:
    """The calibrated rule per output that judges this cell ({} for none), and why, in one phrase. A calibration
    measured on another model.onnx, or (given the ``datasets``) against other goldens, is stale and not applied."""
    if mode not in TOLERANCE_MODES:
        raise ValueError(f"tolerance mode {mode!r} is not one of {TOLERANCE_MODES}")
    rules = case.manifest.calibrated_rules() if case.has_manifest else {}
    if mode == "declared":
        return {}, "declared: --tolerance declared"
    if not rules:
        return {}, "declared: the case is not calibrated"
    measured_on = case.manifest.calibration.get("model_sha256")
    if measured_on and measured_on != case.info.sha256:
        return {}, STALE_MODEL
    if against != GOLDEN:
        return {}, f"declared: compared with profile {against!r}, not the goldens it was calibrated on"
    measured_against = case.manifest.calibration.get("goldens_sha256")
    if datasets is not None and measured_against and measured_against != goldens_digest(datasets):
        return {}, STALE_GOLDENS
    if mode == "calibrated":
        return rules, "calibrated: --tolerance calibrated"
    if case.manifest.calibration_review:
        return {}, "declared: the case's calibration is flagged for review"
    precision = computes_in(profile)
    if precision != "float32":
        return {}, f"declared: profile {profile.name!r} computes in {precision}"
    return rules, f"calibrated: profile {profile.name!r} computes in float32"


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
                     against: str = GOLDEN, tolerance: str = "auto") -> list[tuple[int, OutputComparison]]:
    """Compare every expected output of every data set; ``actual`` is keyed "<k>/<output>". The data sets'
    outputs are the goldens, or (``against`` = a reference profile's name) that profile's outputs. Outputs are
    any ONNX value (tensor, sequence, map, optional); each tensor inside gets the tolerance of its dtypes, or the
    case's calibrated rule where ``tolerance`` (auto, calibrated, declared) says it applies."""
    rules, why = calibrated_rules(case, profile, tolerance, against, datasets)
    stale = why.removeprefix("declared: ") if why in (STALE_MODEL, STALE_GOLDENS) else ""
    results = []
    for ds in datasets:
        for name, golden in ds.outputs.items():
            key = f"{ds.index}/{name}"
            got = actual[key] if key in actual else _missing_like(golden)

            def tolerance_for(golden_dtype: np.dtype, actual_dtype: np.dtype, name: str = name) -> Tolerance:
                return resolve_tolerance(golden_dtype, actual_dtype,
                                         tolerance_layers(case, profile, name, golden_dtype))
            compared = compare_value(name, golden, got, tolerance_for, against=against, calibrated=rules.get(name))
            if stale:
                compared.notes.append(f"calibration not applied: {stale}")
            results.append((ds.index, compared))
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
    notes = "; ".join(n for n in (_calibrated_note(comparisons), _notes(comparisons)) if n)
    if fell_back(profile, placement):
        share = placement.get("fraction_on_ep", 0.0)
        return R.PASS_FELL_BACK, (f"passed, but only {share:.0%} of nodes ran on {profile.ep}; "
                                  f"{placement.get('fell_back_count', 0)} fell back" + (f"; {notes}" if notes else ""))
    return R.PASS, (f"passed; {notes}" if notes else "")


def _calibrated_note(comparisons: list[tuple[int, OutputComparison]]) -> str:
    """A passing cell judged by the calibrated rule says how close it came: the worst output's ULPs."""
    scored = [c.calibration for _, c in comparisons if c.rule == CALIBRATED and c.calibration
              and c.calibration.get("worst_ulps") is not None]
    if not scored:
        return ""
    worst = max(scored, key=lambda s: s["worst_ulps"] / s["allowed_ulps"])
    return f"calibrated rule: worst {worst['worst_ulps']:.3g} of {worst['allowed_ulps']:.3g} ULP allowed"


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
