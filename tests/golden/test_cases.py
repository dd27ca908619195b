"""Case discovery: names under the root, directories, did-you-mean, manifests optional."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from harness.errors import GoldenError, UsageError
from harness.golden.cases import discover, load_case


@pytest.fixture
def root(tmp_path: Path, make_case) -> Path:
    base = tmp_path / "root"
    make_case(base / "mlp")
    make_case(base / "vision" / "cnn", sets=2)
    return base


def test_no_selector_means_every_case_under_root(root: Path) -> None:
    cases = discover([], root)
    assert [c.name for c in cases] == ["mlp", "vision/cnn"]
    assert all(not c.has_manifest and c.manifest.case == c.name for c in cases)


def test_select_by_name_and_by_directory(root: Path, tmp_path: Path) -> None:
    assert [c.path for c in discover(["vision/cnn"], root)] == [root / "vision" / "cnn"]
    [case] = discover([str(root / "mlp")], tmp_path / "elsewhere")
    assert case.name == "mlp" and case.path == root / "mlp"
    assert [c.name for c in discover([str(root / "vision")], root)] == ["vision/cnn"]


def test_a_case_selected_twice_runs_once(root: Path) -> None:
    assert len(discover(["mlp", str(root / "mlp")], root)) == 1


def test_a_nested_case_can_be_named_by_its_folder_name(root: Path) -> None:
    [case] = discover(["cnn"], root)
    assert case.path == root / "vision" / "cnn"


def test_unknown_name_suggests_a_close_one(root: Path) -> None:
    with pytest.raises(UsageError, match=r"no case or directory named 'mlpp' \(did you mean 'mlp'\?\)") as info:
        discover(["mlpp"], root)
    assert "harness list" in info.value.one_line()


@pytest.mark.parametrize("make, message", [
    (lambda d: d.mkdir(), "no model.onnx found"),
    (lambda d: d.write_text("x"), "not a case folder or an .onnx model"),
])
def test_bad_paths(tmp_path: Path, make, message: str) -> None:
    target = tmp_path / "target"
    make(target)
    with pytest.raises(UsageError, match=message):
        discover([str(target)], tmp_path / "root")


def test_empty_root_without_selectors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="no cases to run here"):
        discover([], tmp_path)


def test_datasets_are_read_in_signature_order(root: Path) -> None:
    [case] = discover(["vision/cnn"], root)
    sets = case.datasets()
    assert [ds.index for ds in sets] == [0, 1]
    assert list(sets[0].inputs) == ["x"] and list(sets[0].outputs) == ["y"]
    assert case.info.input_names == ["x"]


def test_data_json_override(root: Path) -> None:
    [case] = discover(["mlp"], root)
    assert case.tolerance_overrides.data_json is None
    (case.path / "data.json").write_text('{"rtol": 0.01, "atol": 1e-6, "other": 1}')
    [case] = discover(["mlp"], root)  # parsed once per case object
    override = case.tolerance_overrides.data_json
    assert (override.rtol, override.atol) == (0.01, 1e-6)
    (case.path / "data.json").write_text("{")
    [case] = discover(["mlp"], root)
    with pytest.raises(GoldenError, match="data.json: not valid JSON"):
        case.tolerance_overrides


def test_manifest_is_picked_up(root: Path) -> None:
    (root / "mlp" / "case.json").write_text('{"case": "mlp", "task": "regression", "dims": {"N": 3}}')
    [case] = discover(["mlp"], root)
    assert case.has_manifest and case.manifest.task == "regression" and case.manifest.dims == {"N": 3}


def test_an_ambiguous_folder_name_is_refused(root: Path, make_case) -> None:
    make_case(root / "audio" / "cnn")
    with pytest.raises(UsageError, match=r"'cnn' is ambiguous: audio/cnn, vision/cnn"):
        discover(["cnn"], root)


@pytest.mark.parametrize("filename", ["case.json", "data.json"])
def test_json_nested_too_deep_is_one_line(root: Path, filename: str) -> None:
    """json.loads recurses once per level: 100k levels raised RecursionError with a traceback."""
    (root / "mlp" / filename).write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(GoldenError, match=rf"mlp/{filename}: nested too deeply") as info:
        [case] = discover(["mlp"], root)
        case.validate_tolerances()
    assert "\n" not in info.value.one_line()


def test_op_is_the_single_node_or_what_the_source_says(root: Path, tmp_path: Path) -> None:
    [case] = discover(["mlp"], root)
    assert case.op == ""  # MatMul, Add, Relu: no single operator under test
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    (tmp_path / "relu").mkdir()
    onnx.save(model, str(tmp_path / "relu" / "model.onnx"))
    [relu] = discover([str(tmp_path / "relu")], root)
    assert relu.op == "Relu"
    named = load_case(tmp_path / "relu", "relu")
    named.tested_op = "LeakyRelu"
    assert named.op == "LeakyRelu"
