"""Data validation before anything runs: each bad data set is one line naming the file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from harness.errors import GoldenError
from harness.golden.cases import load_case
from harness.golden.validate import ERROR, WARNING, validate
from harness.run.plan import plan_case


def two_input_case(folder: Path, a: np.ndarray, b: np.ndarray, y: np.ndarray | None = None) -> Path:
    """y = a + b with a, b: float32[N, 3]: two inputs that share the symbolic dim N."""
    graph = helper.make_graph([helper.make_node("Add", ["a", "b"], ["y"])], "add",
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["N", 3]) for n in "ab"],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    ds = folder / "test_data_set_0"
    ds.mkdir()
    for i, (name, value) in enumerate((("a", a), ("b", b))):
        (ds / f"input_{i}.pb").write_bytes(onnx.numpy_helper.from_array(value, name).SerializeToString())
    y = a + b if y is None else y
    (ds / "output_0.pb").write_bytes(onnx.numpy_helper.from_array(y, "y").SerializeToString())
    return folder


def problems(folder: Path):
    case = load_case(folder, folder.name)
    return validate(case.name, case.info, case.datasets(), case.manifest.input_ranges)


def with_ranges(folder: Path, ranges: dict) -> Path:
    (folder / "case.json").write_text(json.dumps({"case": folder.name, "input_ranges": ranges}))
    return folder


def test_a_good_case_has_no_problem(make_case, tmp_path: Path):
    assert problems(make_case(tmp_path / "c", sets=2)) == []


def test_a_symbolic_dim_bound_two_ways_names_the_file(tmp_path: Path):
    folder = two_input_case(tmp_path / "c", np.ones((2, 3), np.float32), np.ones((3, 3), np.float32),
                            np.ones((2, 3), np.float32))
    [found] = problems(folder)
    assert found.severity == ERROR and found.file.endswith("test_data_set_0/input_1.pb")
    assert found.message == "input 'b' axis 0 binds 'N' to 3, but input_0.pb axis 0 binds it to 2"


def test_a_golden_that_does_not_fit_the_output_is_a_warning(tmp_path: Path):
    """Declared output shapes are often stale: the comparison shows both shapes as the cell's FAIL."""
    a = np.ones((2, 3), np.float32)
    folder = two_input_case(tmp_path / "c", a, a, np.ones((2, 3), np.float64))
    [found] = problems(folder)
    assert found.severity == WARNING and found.file.endswith("output_0.pb")
    assert found.message == "golden 'y' is float64 but the model declares float32"


def test_a_golden_whose_batch_disagrees_with_the_inputs(tmp_path: Path):
    a = np.ones((2, 3), np.float32)
    folder = two_input_case(tmp_path / "c", a, a, np.ones((4, 3), np.float32))
    [found] = problems(folder)
    assert found.severity == WARNING
    assert "output 'y' axis 0 binds 'N' to 4, but input_0.pb axis 0 binds it to 2" in found.line


def test_nan_and_out_of_range_values(tmp_path: Path):
    a = np.array([[0.5, np.nan, np.inf]] * 2, np.float32)
    b = np.array([[0.5, 7.0, -9.0]] * 2, np.float32)
    folder = with_ranges(two_input_case(tmp_path / "c", a, b, np.zeros((2, 3), np.float32)),
                         {"a": {"low": -1, "high": 1}, "b": {"low": -1, "high": 1}})
    nan, outside = problems(folder)
    assert nan.severity == ERROR and nan.file.endswith("input_0.pb")
    assert nan.message == ("input 'a' holds 2 NaN and 2 Inf of 6 values (case.json input_ranges declares finite "
                           "values)")
    assert outside.file.endswith("input_1.pb")
    assert outside.message == "input 'b': 4 of 6 values outside the declared range [-1, 1] (min -9, max 7)"


def test_nan_without_a_declared_range_is_a_warning_and_without_any_ranges_not_said(tmp_path: Path):
    a = np.array([[0.5, np.nan, 0.0]] * 2, np.float32)
    b = np.zeros((2, 3), np.float32)
    folder = two_input_case(tmp_path / "c", a, b, np.zeros((2, 3), np.float32))
    assert problems(folder) == []  # the ONNX node suite feeds NaN on purpose and declares no ranges
    [found] = problems(with_ranges(folder, {"b": {"low": -1, "high": 1}}))
    assert found.severity == WARNING and "input 'a' holds 2 NaN and 0 Inf of 6 values" in found.line


def test_empty_and_duplicate_data_sets(make_case, tmp_path: Path):
    folder = make_case(tmp_path / "c", sets=2)
    shutil.copytree(folder / "test_data_set_0", folder / "test_data_set_2")
    (folder / "test_data_set_3").mkdir()
    duplicate, empty = problems(folder)
    assert duplicate.severity == WARNING and duplicate.file.endswith("test_data_set_2")
    assert duplicate.message == "the same inputs as test_data_set_0: a duplicate data set tests nothing new"
    assert empty.severity == WARNING and empty.line.endswith(
        "test_data_set_3: empty data set: no input_<i>.pb or output_<j>.pb in it, so it is not run (inputs are "
        "generated if no set has any)")


def test_the_plan_refuses_bad_data_in_one_line_and_counts_the_rest(tmp_path: Path):
    a = np.array([[9.0, np.nan, 0.0]] * 2, np.float32)
    folder = with_ranges(two_input_case(tmp_path / "c", a, np.full((3, 3), 5, np.float32),
                                        np.zeros((2, 3), np.float32)),
                         {"a": {"low": -1, "high": 1}, "b": {"low": -1, "high": 1}})
    with pytest.raises(GoldenError) as caught:
        plan_case(load_case(folder, "c"), dims={}, seed=0)
    line = caught.value.one_line()
    assert "\n" not in line and "test_data_set_0/input_1.pb: input 'b' axis 0 binds 'N' to 3" in line
    assert "(+2 more problem(s); 'harness validate c' lists each)" in line


def test_an_empty_set_is_said_when_inputs_are_generated_instead(make_case, tmp_path: Path):
    folder = make_case(tmp_path / "c", sets=0)
    (folder / "test_data_set_0").mkdir()
    plan = plan_case(load_case(folder, "c"), dims={"N": 2}, seed=0)
    assert plan.generates_inputs and any("test_data_set_0: empty data set" in w for w in plan.warnings)


def test_duplicate_sets_are_kept_as_plan_warnings(make_case, tmp_path: Path):
    folder = make_case(tmp_path / "c", sets=1)
    shutil.copytree(folder / "test_data_set_0", folder / "test_data_set_1")
    [warning] = plan_case(load_case(folder, "c"), dims={}, seed=0).warnings
    assert warning.endswith("test_data_set_1: the same inputs as test_data_set_0: a duplicate data set tests nothing new")


def test_harness_validate_lists_each_problem_in_one_line(run_cli, make_case, save_tensor, tmp_path: Path):
    folder = make_case(tmp_path / "cases" / "c", sets=1)
    shutil.copytree(folder / "test_data_set_0", folder / "test_data_set_1")
    x = np.full((2, 4), -1.0, np.float32)
    x[0, :2] = 5.0
    save_tensor(folder / "test_data_set_2" / "input_0.pb", "x", x)
    save_tensor(folder / "test_data_set_2" / "output_0.pb", "y", np.zeros((2, 3), np.float32))
    with_ranges(folder, {"x": {"low": -1, "high": 1}})
    proc = run_cli("validate", "c", "--root", tmp_path / "cases")
    assert proc.returncode == 1, proc.stderr
    warning, error, total = proc.stdout.splitlines()
    assert warning.startswith("warning: ") and warning.endswith("test_data_set_1: the same inputs as test_data_set_0: "
                                                                "a duplicate data set tests nothing new")
    assert error.startswith("error: ") and error.endswith("test_data_set_2/input_0.pb: input 'x': 2 of 8 values "
                                                          "outside the declared range [-1, 1] (min -1, max 5)")
    assert total == "1 error(s)"
    assert run_cli("validate", "classifier").returncode == 0
