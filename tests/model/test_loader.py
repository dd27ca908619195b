"""Model vetting: signatures, hashes, and refusal of broken or escaping models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper

from harness.errors import ModelError
from harness.model.loader import load_model_info, sha256_file


def _save(model: onnx.ModelProto, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "model.onnx"
    path.write_bytes(model.SerializeToString())
    return path


def _externalise(model: onnx.ModelProto, location: str) -> onnx.ModelProto:
    """Point initializer W at ``location`` without onnx's own path checks (a hand-crafted hostile file)."""
    weight = model.graph.initializer[0]
    external_data_helper.set_external_data(weight, location=location)
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    weight.ClearField("float_data")
    return model


def test_signature_and_metadata(tmp_path: Path, make_model) -> None:
    path = _save(make_model(), tmp_path)
    info = load_model_info(path)
    assert info.input_names == ["x"]  # initializers W and b are not inputs
    assert info.output_names == ["y"]
    [x], [y] = info.inputs, info.outputs
    assert x.dtype == np.float32 and x.dtype_name == "float32"
    assert x.shape == ("N", 4) and y.shape == ("N", 3)
    assert info.opset == 17 and info.node_count == 3 and not info.has_external_data
    assert info.op_types == ("MatMul", "Add", "Relu") and info.single_op == ""
    assert info.sha256 == hashlib.sha256(path.read_bytes()).hexdigest() == sha256_file(path)


def test_unknown_dims_and_non_tensor_inputs(tmp_path: Path) -> None:
    graph = helper.make_graph(
        [helper.make_node("SequenceLength", ["seq"], ["n"]), helper.make_node("Identity", ["x"], ["z"])], "g",
        [helper.make_tensor_sequence_value_info("seq", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("x", TensorProto.INT64, [None, 2])],
        [helper.make_tensor_value_info("n", TensorProto.INT64, []),
         helper.make_tensor_value_info("z", TensorProto.INT64, [None, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    info = load_model_info(_save(model, tmp_path))
    seq, x = info.inputs
    assert seq.dtype is None and seq.dtype_name == "non-tensor"
    assert info.op_types == ("SequenceLength", "Identity") and info.single_op == ""
    assert x.dtype == np.int64 and x.shape == (None, 2)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="model file not found"):
        load_model_info(tmp_path / "model.onnx")


@pytest.mark.parametrize("corrupt", ["random", "truncated", "empty"])
def test_not_onnx_or_truncated_is_refused(tmp_path: Path, make_model, corrupt: str) -> None:
    good = make_model().SerializeToString()
    data = {"random": np.random.default_rng(3).bytes(512), "truncated": good[: len(good) // 2], "empty": b""}[corrupt]
    path = tmp_path / "model.onnx"
    path.write_bytes(data)
    with pytest.raises(ModelError) as info:
        load_model_info(path)
    assert str(path) in info.value.message


def test_checker_failure_is_one_line(tmp_path: Path, make_model) -> None:
    model = make_model()
    model.graph.node[0].op_type = "NoSuchOp"
    with pytest.raises(ModelError, match="fails the ONNX checker") as info:
        load_model_info(_save(model, tmp_path))
    assert "\n" not in info.value.one_line()


@pytest.mark.parametrize("location", ["../secret.bin", "sub/../../secret.bin", "/etc/passwd"])
def test_external_data_outside_the_folder_is_refused(tmp_path: Path, make_model, location: str) -> None:
    (tmp_path / "secret.bin").write_bytes(np.zeros(12, np.float32).tobytes())
    path = _save(_externalise(make_model(), location), tmp_path / "case")
    with pytest.raises(ModelError, match="points outside the model's folder"):
        load_model_info(path)


def test_external_data_inside_the_folder_is_accepted(tmp_path: Path, make_model) -> None:
    model = make_model()
    weight = onnx.numpy_helper.to_array(model.graph.initializer[0])
    folder = tmp_path / "case"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(weight.tobytes())
    path = _save(_externalise(model, "weights.bin"), folder)
    assert load_model_info(path).has_external_data
    (folder / "weights.bin").unlink()
    with pytest.raises(ModelError, match="external data file 'weights.bin' is missing"):
        load_model_info(path)


def test_a_one_node_graph_names_its_op(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    assert load_model_info(_save(model, tmp_path)).single_op == "Abs"
