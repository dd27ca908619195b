"""harness/model/int8.py: pre-processing, dynamic and static QDQ quantisation, refusal of quantised models."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.golden.cases import load_case
from harness.model import int8
from harness.model.transform_spec import TransformFailed, TransformNotApplicable, TransformSpec

REPO = Path(__file__).resolve().parents[2]


def _save(tmp_path: Path, nodes: list, inputs: list, outputs: list, initializers: list, opset: int = 17) -> Path:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 9 if opset >= 13 else 7
    onnx.checker.check_model(model)
    path = tmp_path / "model.onnx"
    onnx.save(model, str(path))
    return path


def _conv_through_identity(tmp_path: Path) -> Path:
    """A Conv whose weight reaches it through an Identity: 'Expected conv2d_394.w_0 to be an initializer'."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 3, 3, 3)).astype(np.float32), "w_src")
    bias = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
    nodes = [helper.make_node("Identity", ["w_src"], ["conv2d_394.w_0"], name="id"),
             helper.make_node("Conv", ["x", "conv2d_394.w_0", "b"], ["y"], name="conv", pads=[1, 1, 1, 1])]
    return _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                 [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], [weight, bias])


def _conv_classifier(tmp_path: Path, opset: int = 17) -> Path:
    """Conv (per-channel weight scales differing 100x, as after batch-norm folding) + Relu + pool + Gemm + Softmax."""
    rng = np.random.default_rng(1)
    weight = rng.standard_normal((16, 3, 3, 3)).astype(np.float32) * np.logspace(-2, 0, 16)[:, None, None, None]
    dense = rng.standard_normal((16, 10)).astype(np.float32)
    inits = [numpy_helper.from_array(weight.astype(np.float32), "w"),
             numpy_helper.from_array(rng.standard_normal(16).astype(np.float32) * 0.1, "b"),
             numpy_helper.from_array(dense, "d"), numpy_helper.from_array(np.zeros(10, np.float32), "db")]
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("GlobalAveragePool", ["r"], ["p"], name="pool"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
             helper.make_node("Gemm", ["f", "d", "db"], ["logits"], name="dense"),
             helper.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1)]
    return _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 16, 16])],
                 [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 10])], inits, opset)


def _feeds(count: int, shape: tuple[int, ...]) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(2)
    return [{"x": rng.uniform(0, 1, shape).astype(np.float32)} for _ in range(count)]


def _run(model: bytes | str, feed: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel().astype(np.float64), b.ravel().astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def _ops(data: bytes) -> set[str]:
    return {node.op_type for node in onnx.load_from_string(data).graph.node}


def test_dynamic_quantises_a_weight_fed_through_identity(tmp_path) -> None:
    model = _conv_through_identity(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    data, report = int8.quantize_dynamic_model(model, TransformSpec(kind="int8-dynamic"), work)
    assert "ConvInteger" in _ops(data)
    assert report["nodes_quantised"] == {"Conv": 1}
    assert report["pre_processing"]["ran"] and "constant folding" in report["pre_processing"]["steps"]
    feed = _feeds(1, (1, 3, 8, 8))[0]
    assert _cosine(_run(str(model), feed), _run(data, feed)) > 0.99


def test_static_quantises_a_weight_fed_through_identity(tmp_path) -> None:
    model = _conv_through_identity(tmp_path)
    data, report = int8.quantize_static_model(model, TransformSpec(kind="int8-static"), _feeds(4, (1, 3, 8, 8)),
                                              tmp_path, "4 generated feeds")
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= _ops(data)
    assert report["nodes_quantised"] == {"Conv": 1}


def test_a_conv_whose_weight_is_computed_from_an_input_stays_float_in_dynamic(tmp_path) -> None:
    rng = np.random.default_rng(3)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["y"], name="conv")]
    model = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4]),
                                    helper.make_tensor_value_info("w", TensorProto.FLOAT, [3, 2, 1, 1])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])],
                  [numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "b")])
    _, report = int8.quantize_dynamic_model(model, TransformSpec(kind="int8-dynamic"), tmp_path)
    assert report["nodes_kept_float"] == {"Conv": 1} and "computed at run time" in report["kept_float_why"]["conv"]


def test_dequantize_linear_with_float_scales_is_not_applicable_with_the_reason(tmp_path) -> None:
    inits = [numpy_helper.from_array(np.arange(32, dtype=np.int8).reshape(4, 8), "wq"),
             numpy_helper.from_array(np.array(0.02, np.float32), "wq_scale"),
             numpy_helper.from_array(np.array(0, np.int8), "wq_zero_point")]
    nodes = [helper.make_node("DequantizeLinear", ["wq", "wq_scale", "wq_zero_point"], ["w"], name="dq"),
             helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")]
    model = _save(tmp_path, nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], inits)
    assert int8.already_quantised(onnx.load(str(model))) == (
        "the model is already quantised: 1 DequantizeLinear; 1 integer weight tensor(s) (e.g. 'wq')")
    with pytest.raises(TransformNotApplicable, match="1 DequantizeLinear"):
        int8.quantize_dynamic_model(model, TransformSpec(kind="int8-dynamic"), tmp_path)
    with pytest.raises(TransformNotApplicable, match="already quantised"):
        int8.quantize_static_model(model, TransformSpec(kind="int8-static"), [{"x": np.ones((2, 4), np.float32)}],
                                   tmp_path, "ones")


def test_quantised_ops_inside_a_subgraph_are_found() -> None:
    branch = helper.make_graph([helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"])], "b", [],
                               [helper.make_tensor_value_info("q", TensorProto.UINT8, [2])])
    graph = helper.make_graph([helper.make_node("If", ["c"], ["q"], then_branch=branch, else_branch=branch)], "g",
                              [helper.make_tensor_value_info("c", TensorProto.BOOL, [])],
                              [helper.make_tensor_value_info("q", TensorProto.UINT8, [2])])
    assert int8.already_quantised(helper.make_model(graph)) == "the model is already quantised: 2 DynamicQuantizeLinear"


def test_a_float_model_is_not_already_quantised() -> None:
    assert int8.already_quantised(onnx.load(str(REPO / "reference_outputs" / "cnn" / "model.onnx"))) is None


def test_per_channel_static_keeps_a_conv_classifier_close_to_float(tmp_path) -> None:
    model = _conv_classifier(tmp_path)
    feeds = _feeds(8, (2, 3, 16, 16))
    data, _ = int8.quantize_static_model(model, TransformSpec(kind="int8-static"), feeds, tmp_path, "8 feeds")
    worst = min(_cosine(_run(str(model), feed), _run(data, feed)) for feed in feeds)
    assert worst > 0.999, worst
    weight_scales = [t for t in onnx.load_from_string(data).graph.initializer if t.name.startswith("w_scale")]
    assert [list(t.dims) for t in weight_scales] == [[16]]  # one scale per output channel


def test_an_opset_11_model_is_converted_so_per_channel_scales_load(tmp_path) -> None:
    """Paddle exports at opset 11-12; per-channel DequantizeLinear needs its axis attribute (opset 13)."""
    model = _conv_classifier(tmp_path, opset=11)
    feeds = _feeds(2, (1, 3, 16, 16))
    data, report = int8.quantize_static_model(model, TransformSpec(kind="int8-static"), feeds, tmp_path, "2 feeds")
    assert report["pre_processing"]["opset"].startswith("11 -> 13")
    assert _cosine(_run(str(model), feeds[0]), _run(data, feeds[0])) > 0.999


def test_the_report_says_what_was_quantised_and_how_it_was_calibrated(tmp_path) -> None:
    model = _conv_classifier(tmp_path)
    spec = TransformSpec(kind="int8-static", calibration="percentile", op_block_list=("Softmax",))
    _, report = int8.quantize_static_model(model, spec, _feeds(3, (2, 3, 16, 16)), tmp_path, "test_data_set_0..2")
    assert report["calibration"] == {"method": "percentile", "feeds": 3, "source": "test_data_set_0..2",
                                     "input_shapes": ["x: [2, 3, 16, 16] float32"],
                                     "note": "onnxruntime's defaults: 99.999th percentile of |x|, symmetric range, "
                                             "2048 bins"}
    assert report["nodes_quantised"]["Conv"] == 1 and report["nodes_quantised"]["Gemm"] == 1
    assert report["nodes_kept_float"] == {"Softmax": 1}
    assert report["per_channel"] is True and report["format"] == "QDQ"
    assert report["activation_type"] == "QUInt8 (asymmetric)"
    assert any("percentile" in line.lower() for line in report["library_messages"])  # the calibrator's prints
    dynamic = int8.quantize_dynamic_model(model, TransformSpec(kind="int8-dynamic", per_channel=False), tmp_path)[1]
    assert dynamic["nodes_quantised"] == {"Conv": 1, "Gemm": 1} and dynamic["per_channel"] is False


def test_a_library_failure_is_transform_failed_with_its_own_words(tmp_path) -> None:
    model = _conv_classifier(tmp_path)
    with pytest.raises(TransformFailed) as caught:
        int8.quantize_static_model(model, TransformSpec(kind="int8-static"), [{"image": np.ones((1, 3, 16, 16),
                                                                                                  np.float32)}],
                                   tmp_path, "one feed")
    assert "model.onnx: int8-static:" in caught.value.message and "image" in caught.value.message
    assert caught.value.hint


def test_no_calibration_data_is_transform_failed(tmp_path) -> None:
    with pytest.raises(TransformFailed, match="needs inputs to calibrate on"):
        int8.quantize_static_model(_conv_classifier(tmp_path), TransformSpec(kind="int8-static"), [], tmp_path, "")


def test_quantising_prints_nothing_and_leaves_no_file_behind(tmp_path, capfd, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m").mkdir()
    model = _conv_classifier(tmp_path / "m")
    work = tmp_path / "work"
    work.mkdir()
    int8.quantize_static_model(model, TransformSpec(kind="int8-static", calibration="entropy"),
                               _feeds(2, (2, 3, 16, 16)), work, "two feeds")
    int8.quantize_dynamic_model(model, TransformSpec(kind="int8-dynamic"), work)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m", "work"]


def test_failed_symbolic_shape_inference_falls_back_and_says_why(tmp_path, capfd, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    sklearn = REPO / "reference_outputs" / "sklearn_logreg" / "model.onnx"
    path, _, report = int8._pre_process(sklearn, onnx.load(str(sklearn)), work)
    assert path == work / "pre-processed.onnx" and report["ran"]
    assert report["steps"] == "ONNX shape inference, ORT basic optimisation (constant folding)"
    assert "Incomplete symbolic shape inference" in report["failed"][0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]  # ORT's sym_shape_infer_temp.onnx stayed in work
    # ORT's optimiser (C++) warns about an unused initializer of this model on fd 2; transform_model captures
    # the file descriptors around the transform. Nothing else may reach the terminal.
    out, err = capfd.readouterr()
    assert out == "" and [line for line in err.splitlines() if "CleanUnusedInitializers" not in line] == []


def test_an_rnn_inside_if_branches_is_quantised_dynamically_and_not_applicable_statically(tmp_path) -> None:
    rng = np.random.default_rng(4)
    weight = numpy_helper.from_array(rng.standard_normal((4, 8)).astype(np.float32), "w")
    branch = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y_b"], name="mm")], "branch", [],
                               [helper.make_tensor_value_info("y_b", TensorProto.FLOAT, [2, 8])])
    nodes = [helper.make_node("If", ["c"], ["y"], name="if", then_branch=branch, else_branch=branch)]
    model = _save(tmp_path, nodes, [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                                    helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 8])], [weight])
    data, report = int8.quantize_dynamic_model(model, TransformSpec(kind="int8-dynamic"), tmp_path)
    assert report["subgraph_quantised_ops"] == {"MatMulInteger": 2}  # x is quantised once, in the main graph
    feed = {"c": np.array(True), "x": rng.standard_normal((2, 4)).astype(np.float32)}
    assert _cosine(_run(str(model), feed), _run(data, feed)) > 0.99
    with pytest.raises(TransformNotApplicable, match="2 inside If/Loop/Scan subgraphs"):
        int8.quantize_static_model(model, TransformSpec(kind="int8-static"), [feed], tmp_path, "one feed")


def test_a_blocked_op_type_leaves_nothing_to_quantise(tmp_path) -> None:
    spec = TransformSpec(kind="int8-dynamic", op_block_list=("Conv", "MatMul"))
    with pytest.raises(TransformNotApplicable) as caught:
        int8.quantize_dynamic_model(_conv_through_identity(tmp_path), spec, tmp_path)
    assert caught.value.reason == ("nothing to quantise: no Attention/EmbedLayerNormalization/LSTM node outside "
                                   "[precision] op_block_list (Conv)")  # MatMul is blocked too, but absent


@pytest.mark.parametrize("case", sorted(p.name for p in (REPO / "reference_outputs").iterdir()
                                        if (p / "model.onnx").is_file()))
def test_the_bundled_zoo_quantises_both_ways(case, tmp_path) -> None:
    folder = REPO / "reference_outputs" / case
    model = onnx.load(str(folder / "model.onnx"))
    feeds = [dataset.inputs for dataset in load_case(folder, case).datasets()]
    started = time.perf_counter()
    if not {"Conv", "MatMul", "Gemm"} & {node.op_type for node in model.graph.node}:  # trees; a GRU (no int8 form)
        with pytest.raises(TransformNotApplicable, match="nothing to quantise"):
            int8.quantize_dynamic_model(folder / "model.onnx", TransformSpec(kind="int8-dynamic"), tmp_path)
        return
    dynamic, _ = int8.quantize_dynamic_model(folder / "model.onnx", TransformSpec(kind="int8-dynamic"), tmp_path)
    static, report = int8.quantize_static_model(folder / "model.onnx", TransformSpec(kind="int8-static"), feeds,
                                                tmp_path, "stored data sets")
    assert time.perf_counter() - started < 10
    for data in (dynamic, static):
        out = ort.InferenceSession(data, providers=["CPUExecutionProvider"]).run(None, feeds[0])
        assert len(out) == len(model.graph.output)
    assert report["calibration"]["feeds"] == len(feeds) >= 1


@pytest.mark.parametrize(("profile", "quantised", "kept"), [
    ("cpu-int8", {"Gemm": 1}, {"Conv": 1}),  # dynamic ConvInteger is per tensor: Conv stays float
    ("cpu-int8-static", {"Conv": 1, "Flatten": 1, "Gemm": 1, "Relu": 1}, {"GlobalAveragePool": 1, "Softmax": 1}),
])
def test_the_shipped_int8_profiles_quantise_what_their_comments_say(profile, quantised, kept, tmp_path) -> None:
    from harness.profiles.schema import load_profile
    loaded = load_profile(REPO / "device_profiles" / f"{profile}.toml")
    spec = TransformSpec.from_profile_fields(loaded.transform, loaded.keep_io_types, loaded.precision_options)
    model, feeds = _conv_classifier(tmp_path), _feeds(4, (2, 3, 16, 16))
    if spec.kind == "int8-dynamic":
        data, report = int8.quantize_dynamic_model(model, spec, tmp_path)
    else:
        data, report = int8.quantize_static_model(model, spec, feeds, tmp_path, "4 feeds")
    assert (report["nodes_quantised"], report["nodes_kept_float"]) == (quantised, kept)
    assert report["per_channel"] is True
    assert min(_cosine(_run(str(model), feed), _run(data, feed)) for feed in feeds) > 0.999
