"""case.json 'calibration': round trip, checked on load, written atomically, never replaced without --force."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.calibrate.calibrate import write_calibration
from harness.errors import GoldenError
from harness.golden.cases import load_case
from harness.golden.manifest import CaseManifest, read_manifest

BLOCK = {"k": 8.0, "outputs": {"y": {"k": 8.0, "kind": "float", "scale": 1.5, "floor": 1.5e-3, "ulps": 12.0,
                                     "dtype": "float32", "mismatch_fraction": 0.0},
                               "label": {"k": 8.0, "kind": "exact", "mismatch_fraction": 0.01}},
         "runs": [{"profile": "cpu@all", "status": "ran", "used": True, "worst": {"y": 12.0}}],
         "reference": {"profile": "reference", "ran": True, "trusted": True}, "review": "",
         "versions": {"onnxruntime": "1.32.0"}, "model_sha256": "ab" * 32, "data_sha256": "cd" * 32,
         "created": "2026-12-01T00:00:00+00:00"}


def test_round_trip_and_rules() -> None:
    manifest = CaseManifest(case="tiny", calibration=BLOCK)
    again = CaseManifest.from_dict(json.loads(manifest.to_json()), "round trip")
    assert again == manifest
    rules = again.calibrated_rules()
    assert rules["y"].allowed_ulps == 96.0 and rules["label"].allowed_mismatch_fraction == pytest.approx(0.08)
    assert again.calibration_review == ""


@pytest.mark.parametrize("block, message", [
    ({"outputs": {"y": {"k": -1}}}, r"calibration.outputs.y: k must be a finite number >= 0"),
    ({"outputs": []}, "must hold an 'outputs' object"),
    ({"outputs": {}, "reveiw": ""}, "unknown calibration key 'reveiw'.*did you mean 'review'"),
    ({"outputs": {}, "review": 3}, "'review' is a string"),
])
def test_a_damaged_calibration_is_refused_on_load(block: dict, message: str) -> None:
    with pytest.raises(GoldenError, match=message):
        CaseManifest.from_dict({"calibration": block}, "case.json")


def test_write_keeps_the_rest_of_the_manifest_and_refuses_to_replace_without_force(tiny_case: Path) -> None:
    (tiny_case / "case.json").write_text(json.dumps({"case": "tiny", "task": "regression", "dims": {"N": 2}}))
    case = load_case(tiny_case, "tiny")
    write_calibration(case, BLOCK, force=False)
    written = read_manifest(tiny_case)
    assert written.calibration == BLOCK and written.task == "regression" and written.dims == {"N": 2}
    with pytest.raises(GoldenError, match="already holds a calibration") as refused:
        write_calibration(case, {**BLOCK, "k": 4.0}, force=False)
    assert "pass --force" in refused.value.one_line()
    assert read_manifest(tiny_case).calibration["k"] == 8.0
    write_calibration(case, {**BLOCK, "k": 4.0}, force=True)
    assert read_manifest(tiny_case).calibration["k"] == 4.0
    assert not [p for p in tiny_case.iterdir() if p.name.endswith(".tmp")]  # atomic: no temp file left


def test_a_case_without_a_manifest_gets_one(tiny_case: Path) -> None:
    write_calibration(load_case(tiny_case, "tiny"), BLOCK, force=False)
    assert read_manifest(tiny_case).case == "tiny"
