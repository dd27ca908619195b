"""Which rule judges a cell (harness/run/verdict.py): auto, calibrated, declared; by the profile's precision."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.golden.cases import load_case
from harness.profiles import registry
from harness.profiles.schema import Profile
from harness.run.verdict import calibrated_rules, compare_datasets, computes_in, numeric_verdict

BUILTIN = dict(registry.load_all([], builtin=True))


def _profile(**over) -> Profile:
    return Profile(name=over.pop("name", "p"), source=None, **over)


@pytest.mark.parametrize("name, precision", [
    ("cpu", "float32"), ("cpu-edge", "float32"), ("cpu-noopt", "float32"), ("openvino-cpu-f32", "float32"),
    ("webgpu", "float32"), ("cuda", "float32"), ("reference", "float64"), ("cpu-fp16", "float16"),
    ("cpu-fp16-mixed", "float16"), ("cuda-fp16", "float16"), ("openvino-cpu-bf16", "bfloat16"),
    ("openvino-cpu-f16", "float16"), ("cpu-int8", "int8"), ("cpu-int8-static", "int8"), ("tensorrt", "float16"),
])
def test_each_builtin_profile_computes_in_what_it_declares(name: str, precision: str) -> None:
    assert computes_in(BUILTIN[name]) == precision


def test_precision_comes_from_the_profile_not_its_name() -> None:
    assert computes_in(_profile(name="my-fp16-board")) == "float32"
    assert computes_in(_profile(name="fast", transform="fp16")) == "float16"
    trt = "TensorrtExecutionProvider"
    assert computes_in(_profile(name="trt", ep=trt, ep_options={"trt_int8_enable": "1"})) == "int8"
    assert computes_in(_profile(name="trt", ep=trt, ep_options={"trt_fp16_enable": "false"})) == "float32"


def _calibrated_case(case_dir: Path, *, review: str = "", ulps: float = 2.0, model_sha: str | None = None):
    case = load_case(case_dir, "tiny")
    block = {"k": 8.0, "outputs": {"y": {"k": 8.0, "kind": "float", "scale": 2.0, "floor": 2e-3, "ulps": ulps,
                                         "dtype": "float32", "mismatch_fraction": 0.0}},
             "review": review, "model_sha256": model_sha or case.info.sha256}
    (case_dir / "case.json").write_text(json.dumps({"case": "tiny", "calibration": block}))
    return load_case(case_dir, "tiny")


@pytest.mark.parametrize("mode, profile, applies", [
    ("auto", "cpu", True), ("auto", "webgpu", True), ("auto", "cpu-fp16", False), ("auto", "cpu-int8", False),
    ("auto", "reference", False), ("calibrated", "cpu-fp16", True), ("calibrated", "reference", True),
    ("declared", "cpu", False),
])
def test_modes(tiny_case: Path, mode: str, profile: str, applies: bool) -> None:
    case = _calibrated_case(tiny_case)
    rules, why = calibrated_rules(case, BUILTIN[profile], mode)
    assert bool(rules) == applies, why
    assert why.startswith("calibrated" if applies else "declared")


def test_a_case_under_review_keeps_declared_gates_unless_asked(tiny_case: Path) -> None:
    case = _calibrated_case(tiny_case, review="the float64 reference deviates by ≈3% of scale")
    flagged = "declared: the case's calibration is flagged for review"
    assert calibrated_rules(case, BUILTIN["cpu"], "auto") == ({}, flagged)
    assert calibrated_rules(case, BUILTIN["cpu"], "calibrated")[0]


def test_a_calibration_of_another_model_is_not_applied(tiny_case: Path) -> None:
    case = _calibrated_case(tiny_case, model_sha="0" * 64)
    rules, why = calibrated_rules(case, BUILTIN["cpu"], "calibrated")
    assert rules == {} and "another model.onnx" in why


def test_cases_compared_with_a_reference_profile_are_not_judged_by_a_golden_calibration(tiny_case: Path) -> None:
    case = _calibrated_case(tiny_case)
    assert calibrated_rules(case, BUILTIN["cpu"], "auto", against="cpu")[0] == {}


def test_uncalibrated_cases_keep_their_declared_tolerance(tiny_case: Path) -> None:
    case = load_case(tiny_case, "tiny")
    assert calibrated_rules(case, BUILTIN["cpu"], "calibrated") == ({}, "declared: the case is not calibrated")


def test_unknown_mode_is_a_bug_not_a_silent_default(tiny_case: Path) -> None:
    with pytest.raises(ValueError):
        calibrated_rules(load_case(tiny_case, "tiny"), BUILTIN["cpu"], "strict")


def test_compare_datasets_records_the_rule_per_output(tiny_case: Path) -> None:
    case = _calibrated_case(tiny_case)
    [ds] = case.datasets()
    golden = ds.outputs["y"]
    off = golden + np.float32(1e-4) * (golden != 0)  # ~200 ULP at |g| ~ 1: beyond 32, inside declared 1e-4/1e-5
    actual = {"0/y": off.astype(np.float32)}
    [(_, auto)] = compare_datasets(case, BUILTIN["cpu"], [ds], actual)
    [(_, declared)] = compare_datasets(case, BUILTIN["cpu"], [ds], actual, tolerance="declared")
    [(_, fp16)] = compare_datasets(case, BUILTIN["cpu-fp16"], [ds], actual)
    assert (auto.rule, auto.passed) == ("calibrated", False)
    assert (declared.rule, declared.passed) == ("declared", True)
    assert fp16.rule == "declared"


def test_a_passing_calibrated_cell_says_how_close_it_came(tiny_case: Path) -> None:
    case = _calibrated_case(tiny_case)
    [ds] = case.datasets()
    comparisons = compare_datasets(case, BUILTIN["cpu"], [ds], {"0/y": ds.outputs["y"].copy()})
    verdict, detail = numeric_verdict(case, BUILTIN["cpu"], comparisons, {})
    assert verdict == "PASS" and detail == "passed; calibrated rule: worst 0 of 32 ULP allowed"


def test_a_calibration_against_other_goldens_is_not_applied(tiny_case: Path) -> None:
    """A re-bless keeps case.json: the goldens' digest tells the calibration is stale."""
    from harness.run.verdict import goldens_digest
    case = _calibrated_case(tiny_case)
    datasets = case.datasets()
    block = {**case.manifest.calibration, "goldens_sha256": goldens_digest(datasets)}
    (tiny_case / "case.json").write_text(json.dumps({"case": "tiny", "calibration": block}))
    case = load_case(tiny_case, "tiny")
    assert calibrated_rules(case, BUILTIN["cpu"], "auto", datasets=datasets)[0]
    datasets[0].outputs["y"] = datasets[0].outputs["y"] + np.float32(1)
    rules, why = calibrated_rules(case, BUILTIN["cpu"], "auto", datasets=datasets)
    assert rules == {} and "goldens changed" in why
