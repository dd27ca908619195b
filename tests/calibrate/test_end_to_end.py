"""End to end on a tiny model made here: calibrate (isolated workers, cache), then run judged by the rule."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from harness import api
from harness.calibrate.calibrate import calibrate
from harness.golden.manifest import read_manifest
from harness.run import record as R


@pytest.fixture
def calibrated(make_case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    case = make_case(tmp_path / "cases" / "tiny", sets=2)
    [result] = calibrate([str(case)], api.MatrixOptions(root=tmp_path / "cases"), k=8.0)
    assert [r.status for r in result.runs] == ["ran"] * 4
    return case


def test_calibrate_writes_the_rule_the_runs_and_the_versions(calibrated: Path) -> None:
    block = read_manifest(calibrated).calibration
    rule = block["outputs"]["y"]
    assert rule["kind"] == "float" and rule["k"] == 8.0 and rule["scale"] > 0 and rule["ulps"] >= 0
    assert [r["profile"] for r in block["runs"]] == ["cpu@disable", "cpu@basic", "cpu@all", "reference"]
    assert block["versions"]["onnxruntime"] and block["review"] == "" and block["reference"]["trusted"]


def test_a_second_calibration_is_refused_then_served_from_the_cache(calibrated: Path, tmp_path: Path) -> None:
    from harness.errors import GoldenError
    options = api.MatrixOptions(root=tmp_path / "cases")
    with pytest.raises(GoldenError, match="already calibrated"):
        calibrate([str(calibrated)], options)
    [again] = calibrate([str(calibrated)], options, force=True)
    assert [r.status for r in again.runs] == ["cached"] * 4
    assert len(list((tmp_path / "cache" / "calibration").glob("*.npz"))) == 4


def _repoint_calibration(case_dir: Path) -> None:
    from harness.golden.cases import load_case
    from harness.run.verdict import goldens_digest
    manifest = json.loads((case_dir / "case.json").read_text())
    manifest["calibration"]["goldens_sha256"] = goldens_digest(load_case(case_dir, "tiny").datasets())
    (case_dir / "case.json").write_text(json.dumps(manifest))


def test_a_re_blessed_case_is_judged_by_its_declared_tolerance(calibrated: Path, tmp_path: Path) -> None:
    path = calibrated / "test_data_set_0" / "output_0.pb"
    golden = numpy_helper.to_array(onnx.load_tensor(str(path)))
    path.write_bytes(numpy_helper.from_array((golden * np.float32(1 + 5e-5)).astype(np.float32), "y")
                     .SerializeToString())
    cell = _run(calibrated, tmp_path)
    assert cell.verdict == R.PASS and {o["comparison"]["rule"] for o in cell.outputs} == {"declared"}
    assert "calibration not applied: the goldens changed since the calibration" in cell.detail


def _run(case: Path, tmp_path: Path) -> R.CellResult:
    record = api.run_matrix([str(case)], ["cpu"], api.MatrixOptions(numerics_only=True, out=tmp_path / "results",
                                                                      root=tmp_path / "cases"))
    [cell] = record.cells
    return cell


def test_run_judges_a_calibrated_case_by_its_rule(calibrated: Path, tmp_path: Path) -> None:
    cell = _run(calibrated, tmp_path)
    assert cell.verdict == R.PASS and "calibrated rule" in cell.detail
    assert {o["comparison"]["rule"] for o in cell.outputs} == {"calibrated"}


def test_a_drift_the_declared_tolerance_hides_fails_in_ulps(calibrated: Path, tmp_path: Path) -> None:
    """5e-5 relative on every element: inside float32's declared rtol 1e-4, hundreds of ULPs beyond the floor."""
    path = calibrated / "test_data_set_0" / "output_0.pb"
    golden = numpy_helper.to_array(onnx.load_tensor(str(path)))
    path.write_bytes(numpy_helper.from_array((golden * np.float32(1 + 5e-5)).astype(np.float32), "y")
                     .SerializeToString())
    # A drifting device moves the outputs, not the goldens; moving the goldens instead, the calibration is pointed
    # at them, else it is (rightly) stale and not applied (test_modes.py).
    _repoint_calibration(calibrated)
    cell = _run(calibrated, tmp_path)
    assert cell.verdict == R.FAIL
    from harness.run.verdict import failure_messages
    [message] = failure_messages(cell)
    assert "on profile 'cpu'" in message and "output 'y'" in message
    assert "calibrated: k·U = 8·" in message and "ULP allowed, observed" in message


def test_the_cli_calibrates_and_refuses_twice_in_one_line(make_case, run_cli, tmp_path: Path, assert_bad_input) -> None:
    case = make_case(tmp_path / "cases" / "tiny")
    first = run_cli("calibrate", case, "--root", tmp_path / "cases", "--k", "6")
    assert first.returncode == 0, first.stderr
    assert "tiny: calibrated (1 output(s), k = 6)" in first.stdout and "ULP allowed" in first.stdout
    assert json.loads((case / "case.json").read_text())["calibration"]["k"] == 6.0
    line = assert_bad_input(run_cli("calibrate", case, "--root", tmp_path / "cases"))
    assert "already calibrated" in line and "--force" in line
    assert_bad_input(run_cli("calibrate", case, "--k", "0", "--root", tmp_path / "cases"))
