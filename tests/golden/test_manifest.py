"""case.json: strict keys with did-you-mean, checked values, lossless round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import GoldenError
from harness.golden.manifest import MANIFEST_NAME, SCHEMA_VERSION, CaseManifest, read_manifest


def test_defaults_are_a_valid_manifest() -> None:
    manifest = CaseManifest.from_dict({}, "x")
    assert manifest.task == "generic" and manifest.dims == {} and manifest.schema_version == SCHEMA_VERSION


def test_round_trip_through_json() -> None:
    manifest = CaseManifest(case="mlp", description="d", model_sha256="ab" * 32, opset=17,
                            source={"kind": "framework", "framework": "torch"}, task="regression",
                            dims={"N": 2}, input_ranges={"x": {"low": -2.0, "high": 2.0}},
                            tolerance={"rtol": 1e-3}, output_tolerance={"y": {"atol": 1e-4}})
    text = manifest.to_json()
    assert text.endswith("\n")
    again = CaseManifest.from_dict(json.loads(text), "round trip")
    assert again == manifest


def test_unknown_key_suggests_the_close_one() -> None:
    with pytest.raises(GoldenError, match=r"unknown manifest key 'dimz'.*did you mean 'dims'"):
        CaseManifest.from_dict({"dimz": {"N": 2}}, "case.json")


@pytest.mark.parametrize("dims", [{"N": 0}, {"N": -1}, {"N": True}, {"N": "3"}, {"N": 2.5}])
def test_bad_dims_are_refused(dims: dict) -> None:
    with pytest.raises(GoldenError, match=r"dims\['N'\] must be a positive integer"):
        CaseManifest.from_dict({"dims": dims}, "case.json")


@pytest.mark.parametrize("rng", [{"low": 1, "high": 1}, {"low": 2, "high": 1}, {"low": 0},
                                 {"low": "a", "high": "b"}, {"low": False, "high": True}, "0..1"])
def test_bad_input_ranges_are_refused(rng) -> None:
    with pytest.raises(GoldenError, match=r"input_ranges\['x'\]"):
        CaseManifest.from_dict({"input_ranges": {"x": rng}}, "case.json")


@pytest.mark.parametrize("data, message", [
    ([], "must be a JSON object"),
    ({"schema_version": 2}, "schema_version 2 is not supported"),
    ({"tolerance": []}, "'tolerance' must be an object"),
])
def test_other_malformed_manifests(data, message: str) -> None:
    with pytest.raises(GoldenError, match=message):
        CaseManifest.from_dict(data, "case.json")


def test_read_manifest(tmp_path: Path) -> None:
    assert read_manifest(tmp_path) is None
    (tmp_path / MANIFEST_NAME).write_text('{"case": "a", "dims": {"N": 4}}')
    assert read_manifest(tmp_path).dims == {"N": 4}
    (tmp_path / MANIFEST_NAME).write_text('{"case": ')
    with pytest.raises(GoldenError, match="not valid JSON"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_bytes(b"\xff\xfe")
    with pytest.raises(GoldenError, match="not valid JSON"):
        read_manifest(tmp_path)


def test_to_json_refuses_nan() -> None:
    with pytest.raises(ValueError):
        CaseManifest(tolerance={"rtol": float("nan")}).to_json()
