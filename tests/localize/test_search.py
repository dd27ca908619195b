"""End to end: localize names the node a synthetic model diverges at, its op and EP, and cuts a repro that fails
alone under 'harness run'."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness import api
from harness.errors import UsageError
from harness.localize import LocalizeOptions, localize
from harness.localize.render import lines, write_json


def test_fp16_overflow_is_pinned_on_the_node_whose_constant_float16_cannot_hold(overflow_case: Path,
                                                                                 tmp_path: Path) -> None:
    found = localize(overflow_case, "cpu-fp16", LocalizeOptions(out=tmp_path / "repro"))
    assert found.status == "localized"
    assert found.first["node"] == "amplify" and found.first["op_type"] == "Mul"
    assert found.first["ep"] == "CPUExecutionProvider"
    top = found.suspects[0]
    assert (top.node, top.op_type, top.ep) == ("amplify", "Mul", "CPUExecutionProvider")
    assert top.amplification > 4 and top.beyond
    benign = {s.node: s for s in found.suspects if s.node in ("mm1", "tanh1")}
    assert all(not s.beyond and s.error_out < 5e-3 for s in benign.values()), benign
    text = "\n".join(lines(found))
    assert "amplify (Mul)" in text and "scope rule:" in text and "fails alone" in text


def test_the_repro_fails_alone_under_harness_run(overflow_case: Path, tmp_path: Path) -> None:
    found = localize(overflow_case, "cpu-fp16", LocalizeOptions(out=tmp_path / "repro"))
    repro = found.repro
    assert repro is not None and repro.fails_alone and repro.nodes == ["amplify"]
    assert repro.model_bytes < 1000 and repro.folder_bytes < 5000
    record = api.run_matrix([str(tmp_path / "repro")], ["cpu-fp16", "cpu"],
                            api.MatrixOptions(numerics_only=True, out=tmp_path / "results"))
    verdicts = {c.profile: c.verdict for c in record.cells}
    assert verdicts == {"cpu-fp16": "FAIL", "cpu": "PASS"}, verdicts


def test_a_perturbation_injected_into_one_node_is_found_there(overflow_case: Path, perturb) -> None:
    options = LocalizeOptions(repro=False, blame_passes=False, edit_profile_model=perturb("tanh1", 0.05),
                              in_process=True)
    found = localize(overflow_case, "cpu-noopt", options)
    assert found.first["node"] == "tanh1" and found.first["op_type"] == "Tanh"
    assert found.suspects[0].node == "tanh1"
    upstream = next(s for s in found.suspects if s.node == "mm1")
    assert upstream.error_out == 0.0 and not upstream.beyond


def test_a_passing_case_says_so(overflow_case: Path) -> None:
    found = localize(overflow_case, "cpu-noopt", LocalizeOptions(in_process=True))
    assert found.status == "passes" and found.suspects == [] and found.repro is None
    assert lines(found)[0].endswith("passes, nothing to localise")


def test_an_unavailable_reference_is_bad_input(overflow_case: Path, make_profile, tmp_path: Path) -> None:
    make_profile(tmp_path / "profiles", "absent", extra='[requires]\npackages = ["no_such_package_h11"]\n')
    options = LocalizeOptions(against="absent", matrix=api.MatrixOptions(profile_dirs=[tmp_path / "profiles"]))
    with pytest.raises(UsageError, match="reference profile 'absent' cannot run here"):
        localize(overflow_case, "cpu-fp16", options)


def test_the_same_profile_on_both_sides_is_refused(overflow_case: Path) -> None:
    with pytest.raises(UsageError, match="same profile"):
        localize(overflow_case, "cpu", LocalizeOptions())


def test_the_json_holds_numbers_and_no_arrays(overflow_case: Path, tmp_path: Path) -> None:
    found = localize(overflow_case, "cpu-fp16", LocalizeOptions(repro=False, blame_passes=False))
    data = json.loads(write_json(found, tmp_path / "loc.json").read_text())
    assert data["schema"] == "onnx-harness/localization" and data["first"]["node"] == "amplify"
    assert all(isinstance(t["error"], (int, float, str)) for t in data["tensors"])


def test_under_int8_the_quantised_matmul_is_found_by_its_surviving_output_name(overflow_case: Path) -> None:
    """quantize_dynamic replaces mm1 by DynamicQuantizeLinear/MatMulInteger/Mul nodes but keeps its output 'h1'."""
    options = LocalizeOptions(rtol=1e-4, atol=1e-6, repro=False, blame_passes=False)
    found = localize(overflow_case, "cpu-int8", options)
    assert found.first["tensor"] == "h1" and found.first["node"] == "mm1" and found.first["op_type"] == "MatMul"
    assert [t.name for t in found.tensors] == ["h1", "h2", "h3", "h4"]
