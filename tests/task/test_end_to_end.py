"""Task gates through run_matrix on bundled cases: an int8 classifier passes on top-1 agreement while failing
elementwise (and the reports show both); the detector passes with its boxes in another order and fails when a box
moves beyond the IoU gate."""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from harness import api
from harness.profiles.schema import Profile, ProfileTolerance
from harness.report.markdown import markdown
from harness.report.reason import reason
from harness.run import record as R
from harness.task.gates import TaskGates, parse_task_table

REPO = Path(__file__).resolve().parents[2]
CLASSIFIER_GATES = ("top1_agreement >= 0.99", "f1_drop <= 0.01")


def gated(profile: Profile, *gates: str, tight: bool = False) -> Profile:
    """The profile with task gates, as its [task] table gives them (parsed by harness.task.gates); ``tight``: the
    per-dtype default tolerance (float32 rtol 1e-4, atol 1e-5) instead of the profile's own gates."""
    gates_table = parse_task_table({"gates": list(gates)}, f"{profile.name}.toml") if gates else TaskGates()
    return replace(profile, tolerance=ProfileTolerance() if tight else profile.tolerance, task_gates=gates_table)


def profile(name: str) -> Profile:
    [found] = api.load_profiles([name], api.MatrixOptions())
    return found


def run(case: Path | str, profiles: list[Profile], tmp_path: Path) -> R.RunRecord:
    return api.run_matrix([case], profiles, api.MatrixOptions(out=tmp_path / "results", numerics_only=True))


def test_int8_classifier_passes_on_top1_while_failing_elementwise_and_reports_both(tmp_path: Path):
    int8 = profile("cpu-int8")
    record = run(REPO / "reference_outputs" / "classifier",
                 [gated(int8, *CLASSIFIER_GATES, tight=True), ], tmp_path)
    [cell] = record.cells
    assert cell.verdict == R.PASS_FELL_BACK, cell.detail
    failed = [e["comparison"] for e in cell.outputs if not e["comparison"]["passed"]]
    assert failed and failed[0]["name"] == "probabilities"
    assert cell.task["metrics"]["top1_agreement"] == 1.0 and cell.task["metrics"]["f1_drop"] == 0.0
    assert [g["passed"] for g in cell.task["gates"]] == [True, True]
    line = reason(cell)
    assert "passed on task gates (top1_agreement >= 0.99, f1_drop <= 0.01)" in line
    assert "elementwise: 2 output(s) out of tolerance vs golden (probabilities)" in line
    assert re.search(r"probabilities \[test_data_set_\d\]: \d+/\d+ mismatched", line), line
    text = markdown([record])
    assert "### Passed on task gates, failing elementwise" in text and "### Task metrics" in text


def test_without_gates_the_same_cell_fails_and_keeps_its_task_metrics(tmp_path: Path):
    [cell] = run(REPO / "reference_outputs" / "classifier", [gated(profile("cpu-int8"), tight=True)], tmp_path).cells
    assert cell.verdict == R.FAIL and cell.task["metrics"]["top1_agreement"] == 1.0 and cell.task["gates"] == []
    assert "task classification (declared): top1_agreement 1" in reason(cell)


def test_an_inferred_kind_keeps_the_elementwise_failure(tmp_path: Path):
    case = shutil.copytree(REPO / "reference_outputs" / "classifier", tmp_path / "cases" / "undeclared")
    manifest = json.loads((case / "case.json").read_text())
    (case / "case.json").write_text(json.dumps({**manifest, "task": "generic"}))
    [cell] = run(case, [gated(profile("cpu-int8"), *CLASSIFIER_GATES, tight=True)], tmp_path).cells
    assert cell.verdict == R.FAIL and cell.task["source"] == "inferred"
    assert "the kind is inferred, so the elementwise verdict stands" in cell.detail


def _rewrite_goldens(case: Path, change) -> None:
    """Apply ``change(boxes, scores, classes)`` to every data set's goldens (as the device's answers differ)."""
    for ds in sorted(case.glob("test_data_set_*")):
        files = [ds / f"output_{j}.pb" for j in range(3)]
        protos = [numpy_helper.to_array(numpy_helper.from_array(np.zeros(1)).FromString(f.read_bytes())) for f in files]
        for path, name, value in zip(files, ("boxes", "scores", "classes"), change(*protos)):
            path.write_bytes(numpy_helper.from_array(np.ascontiguousarray(value), name).SerializeToString())


@pytest.fixture
def detector(tmp_path: Path) -> Path:
    return shutil.copytree(REPO / "reference_outputs" / "detector", tmp_path / "cases" / "detector")


def test_the_detector_passes_with_its_boxes_in_another_order(detector: Path, tmp_path: Path):
    order = np.array([3, 0, 7, 5, 1, 6, 2, 4])
    _rewrite_goldens(detector, lambda b, s, c: (b[:, order], s[:, order], c[:, order]))
    [plain, cell] = run(detector, [profile("cpu"), gated(profile("cpu"), "recall >= 1", "precision >= 1")],
                        tmp_path).cells
    assert plain.verdict == R.FAIL  # every allclose fails on a reordering
    assert cell.verdict == R.PASS_FELL_BACK, cell.detail
    metrics = cell.task["metrics"]
    assert metrics["recall"] == 1.0 and metrics["precision"] == 1.0 and metrics["matched"] == 40
    assert metrics["max_coord_error"] < 1e-4 and metrics["matcher"] == "hungarian"


def test_the_detector_fails_when_a_box_moves_beyond_the_iou_gate(detector: Path, tmp_path: Path):
    def move(b, s, c):
        b = b.copy()
        b[0, 2] += 12.0  # a 10-pixel box moved by 12: IoU 0 with where it was
        return b[:, ::-1], s[:, ::-1], c[:, ::-1]
    _rewrite_goldens(detector, move)
    [cell] = run(detector, [gated(profile("cpu"), "recall >= 1", "precision >= 1")], tmp_path).cells
    assert cell.verdict == R.FAIL
    assert cell.task["metrics"]["matched"] == 38 and cell.task["metrics"]["recall"] == pytest.approx(38 / 40)
    assert "task gate failed: recall 0.95 fails >= 1; precision 0.95 fails >= 1" in cell.detail
