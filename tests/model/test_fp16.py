"""harness/model/fp16.py: fp16 copies that load, on small graphs that reproduce issue 19's failures."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP
from onnx import helper as h
from onnx import numpy_helper as nh

from harness.model.transform_spec import (
    TransformFailed,
    TransformNotApplicable,
    TransformSpec,
)
from harness.model.transforms import transform_model

X = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
FEEDS = [{"x": X}]


def _model(nodes, outputs, *, initializers=(), opset: int = 17, inputs=None, domains=()) -> onnx.ModelProto:
    graph = h.make_graph(nodes, "g", inputs or [h.make_tensor_value_info("x", TP.FLOAT, [2, 3])], outputs,
                         initializer=list(initializers))
    opsets = [h.make_opsetid("", opset), *(h.make_opsetid(d, 1) for d in domains)]
    model = h.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    return model


def _out(name: str = "y", shape=(2, 3), dtype=TP.FLOAT):
    return [h.make_tensor_value_info(name, dtype, list(shape) if shape else None)]


def cast_then_add() -> onnx.ModelProto:
    """Shape -> Cast(to=float) -> ReduceSum -> Add: the issue's `/Cast_2 ... does not match expected type`."""
    return _model([h.make_node("Shape", ["x"], ["s"], name="/Shape"),
                   h.make_node("Cast", ["s"], ["sf"], to=TP.FLOAT, name="/Cast_2"),
                   h.make_node("ReduceSum", ["sf"], ["r"], keepdims=1, name="/ReduceSum"),
                   h.make_node("Add", ["x", "r"], ["y"], name="/Add")], _out())


def cast_inside_if() -> onnx.ModelProto:
    """The same Cast inside an If branch: `Graph attribute inferencing failed`."""
    then = h.make_graph([h.make_node("Shape", ["x"], ["ts"], name="then/Shape"),
                         h.make_node("Cast", ["ts"], ["tf"], to=TP.FLOAT, name="then/Cast"),
                         h.make_node("ReduceSum", ["tf"], ["tr"], keepdims=1, name="then/ReduceSum"),
                         h.make_node("Mul", ["x", "tr"], ["to"], name="then/Mul")],
                        "then", [], [h.make_tensor_value_info("to", TP.FLOAT, None)])
    other = h.make_graph([h.make_node("Neg", ["x"], ["eo"], name="else/Neg")], "else", [],
                         [h.make_tensor_value_info("eo", TP.FLOAT, None)])
    return _model([h.make_node("ReduceSum", ["x"], ["s"], keepdims=0, name="/Sum"),
                   h.make_node("Greater", ["s", "zero"], ["c"], name="/Greater"),
                   h.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other, name="/If")],
                  _out(), initializers=[nh.from_array(np.array(-100, np.float32), "zero")])


def loop_body() -> onnx.ModelProto:
    """A Loop whose body casts the iteration count to float: acc = acc * w + i, three times."""
    body = h.make_graph([h.make_node("Cast", ["i"], ["fi"], to=TP.FLOAT, name="body/Cast"),
                         h.make_node("Mul", ["acc", "w"], ["m"], name="body/Mul"),
                         h.make_node("Add", ["m", "fi"], ["acc_out"], name="body/Add"),
                         h.make_node("Identity", ["cond"], ["cond_out"], name="body/Identity")],
                        "body", [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("cond", TP.BOOL, []),
                                 h.make_tensor_value_info("acc", TP.FLOAT, [2, 3])],
                        [h.make_tensor_value_info("cond_out", TP.BOOL, []),
                         h.make_tensor_value_info("acc_out", TP.FLOAT, [2, 3])])
    return _model([h.make_node("Loop", ["n", "", "x"], ["y"], body=body, name="/Loop")], _out(),
                  initializers=[nh.from_array(np.array(3, np.int64), "n"), nh.from_array(np.array(0.5, np.float32), "w")])


def dequantize_scales(*, through_identity: bool = False) -> onnx.ModelProto:
    """int8 weights dequantised with a float scale (opset 13: the scale must be float32), then MatMul."""
    scale_in = "w_scale_id" if through_identity else "w_scale"
    nodes = [h.make_node("Identity", ["w_scale"], ["w_scale_id"], name="/ScaleIdentity")] if through_identity else []
    nodes += [h.make_node("DequantizeLinear", ["w_q", scale_in, "w_zp"], ["w"], name="/DQ"),
              h.make_node("MatMul", ["x", "w"], ["y"], name="/MatMul")]
    weights = np.arange(-6, 6, dtype=np.int8).reshape(3, 4)
    return _model(nodes, _out(shape=(2, 4)), opset=13, initializers=[
        nh.from_array(weights, "w_q"), nh.from_array(np.array(0.0123, np.float32), "w_scale"),
        nh.from_array(np.array(0, np.int8), "w_zp")])


def weight_through_identity() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    return _model([h.make_node("Identity", ["W"], ["W2"], name="/WeightIdentity"),
                   h.make_node("MatMul", ["x", "W2"], ["m"], name="/MatMul"),
                   h.make_node("Add", ["m", "b"], ["y"], name="/Add")], _out(shape=(2, 4)),
                  initializers=[nh.from_array(rng.standard_normal((3, 4)).astype(np.float32), "W"),
                                nh.from_array(np.ones(4, np.float32), "b")])


def rounded_bias() -> onnx.ModelProto:
    """y = relu((x + 1000.123) - 1000) * 2: in float16 the bias rounds to 1000.0 (spacing 0.5).

    A weight is what fp16 changes on the CPU EP: it runs chains of ops without float16 kernels in
    float32 and drops the casts between them, so intermediate rounding does not show there."""
    return _model([h.make_node("Add", ["x", "bias"], ["a"], name="/AddBias"),
                   h.make_node("Sub", ["a", "thousand"], ["s"], name="/Sub"),
                   h.make_node("Relu", ["s"], ["r"], name="/Relu"),
                   h.make_node("Mul", ["r", "two"], ["y"], name="/Double")], _out(),
                  initializers=[nh.from_array(np.array(1000.123, np.float32), "bias"),
                                nh.from_array(np.array(1000, np.float32), "thousand"),
                                nh.from_array(np.array(2, np.float32), "two")])


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def _save(model: onnx.ModelProto, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _run(path_or_model, feed=None) -> list[np.ndarray]:
    data = path_or_model.SerializeToString() if isinstance(path_or_model, onnx.ModelProto) else str(path_or_model)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"]).run(None, feed or {"x": X})


def _fp16(model: onnx.ModelProto, tmp_path: Path, name: str, **spec):
    path = _save(model, tmp_path, name)
    return path, transform_model(path, name.ljust(64, "0"), TransformSpec("fp16", **spec), FEEDS)


def _cast_targets(graph: onnx.GraphProto) -> list[int]:
    targets = []
    for node in graph.node:
        targets += [a.i for a in node.attribute if node.op_type == "Cast" and a.name == "to"]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                targets += _cast_targets(attr.g)
    return targets


def _occ_refused(model: onnx.ModelProto) -> str:
    """What onnxruntime says about onnxconverter-common's plain conversion (the issue's error)."""
    from onnxconverter_common import float16
    converted = float16.convert_float_to_float16(model, keep_io_types=True)
    with pytest.raises(Exception) as refused:
        _run(converted)
    return str(refused.value)


@pytest.mark.parametrize(("build", "error"), [
    (cast_then_add, "of node (/Cast_2) does not match expected type (tensor(float))"),
    (cast_inside_if, "Graph attribute inferencing failed"),
    (loop_body, "Graph attribute inferencing failed"),
])
def test_casts_to_float_become_casts_to_float16_and_the_model_loads(tmp_path, build, error) -> None:
    model = build()
    assert error in _occ_refused(onnx.ModelProto.FromString(model.SerializeToString()))
    path, result = _fp16(model, tmp_path, build.__name__)
    converted = onnx.load(str(result.path))
    assert TP.FLOAT16 in _cast_targets(converted.graph)
    assert converted.graph.input[0].type.tensor_type.elem_type == TP.FLOAT  # IO types kept
    assert converted.graph.output[0].type.tensor_type.elem_type == TP.FLOAT
    assert result.report["checks"] == ["onnx.checker (full_check)", "onnxruntime CPU session",
                                       "one run on the case's input"]
    np.testing.assert_allclose(_run(result.path)[0], _run(path)[0], rtol=5e-3, atol=5e-3)


def test_dequantize_scales_stay_float32_and_are_reported(tmp_path) -> None:
    from onnxruntime.transformers import float16
    with pytest.raises(Exception, match=r"Type 'tensor\(float16\)' of input parameter \(w_scale\)"):
        _run(float16.convert_float_to_float16(dequantize_scales(), keep_io_types=True))
    path, result = _fp16(dequantize_scales(), tmp_path, "dq")
    scales = {i.name: i.data_type for i in onnx.load(str(result.path)).graph.initializer}
    assert scales["w_scale"] == TP.FLOAT
    assert result.report["kept_fp32"] == [{"node": "/DQ", "op": "DequantizeLinear",
                                           "reason": "quantisation op (scales and zero points stay float32)"}]
    assert result.report["converted_by_op"] == {"MatMul": 1}
    assert result.report["quantised_nodes"] == 1
    np.testing.assert_allclose(_run(result.path)[0], _run(path)[0], rtol=1e-2, atol=1e-2)


def test_a_scale_through_an_identity_is_not_rounded_to_float16(tmp_path) -> None:
    _, result = _fp16(dequantize_scales(through_identity=True), tmp_path, "dq_id")
    assert {i.name: i.data_type for i in onnx.load(str(result.path)).graph.initializer}["w_scale"] == TP.FLOAT
    assert result.report["kept_fp32_by_op"] == {"Identity": 1, "DequantizeLinear": 1}
    assert {"node": "/ScaleIdentity", "op": "Identity", "reason": "feeds only float32 nodes"} in result.report["kept_fp32"]


def test_a_weight_through_an_identity_is_converted(tmp_path) -> None:
    path, result = _fp16(weight_through_identity(), tmp_path, "w_id")
    assert {i.name: i.data_type for i in onnx.load(str(result.path)).graph.initializer}["W"] == TP.FLOAT16
    assert result.report["kept_fp32"] == []
    np.testing.assert_allclose(_run(result.path)[0], _run(path)[0], rtol=1e-2, atol=1e-2)


def test_the_profile_block_list_keeps_ops_in_float32(tmp_path) -> None:
    _, result = _fp16(weight_through_identity(), tmp_path, "blocked", op_block_list=("MatMul",))
    assert result.report["kept_fp32_by_op"] == {"Identity": 1, "MatMul": 1}  # the Identity only feeds MatMul
    assert {"node": "/MatMul", "op": "MatMul", "reason": "profile op_block_list"} in result.report["kept_fp32"]


def test_a_model_that_does_not_load_after_conversion_raises_transform_failed(tmp_path) -> None:
    """A custom op the CPU EP does not know: both converters' results are refused, each in its own words."""
    model = _model([h.make_node("Relu", ["x"], ["r"], name="/Relu"),
                    h.make_node("Mystery", ["r"], ["y"], name="/Mystery", domain="example.custom")],
                   _out(), domains=("example.custom",))
    with pytest.raises(TransformFailed) as failed:
        _fp16(model, tmp_path, "custom")
    assert "onnxruntime.transformers.float16:" in failed.value.message
    assert "onnxconverter_common.float16:" in failed.value.message
    assert "Mystery" in failed.value.message
    assert "op_block_list" in failed.value.hint


def test_nothing_float_to_convert_is_not_applicable(tmp_path) -> None:
    model = _model([h.make_node("Neg", ["x"], ["y"], name="/Neg")], _out(dtype=TP.INT32),
                   inputs=[h.make_tensor_value_info("x", TP.INT32, [2, 3])])
    with pytest.raises(TransformNotApplicable, match="no float32 tensors to convert"):
        _fp16(model, tmp_path, "ints")


def test_an_fp16_model_is_not_converted_again(tmp_path) -> None:
    model = _model([h.make_node("Relu", ["x"], ["y"], name="/Relu")], _out(dtype=TP.FLOAT16),
                   inputs=[h.make_tensor_value_info("x", TP.FLOAT16, [2, 3])])
    with pytest.raises(TransformNotApplicable, match="already float16"):
        _fp16(model, tmp_path, "half")


def test_a_model_of_float32_only_ops_is_not_applicable_with_the_reason(tmp_path) -> None:
    model = h.make_model(h.make_graph([h.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", offset=[0.0] * 3,
                                                   scale=[2.0] * 3, name="/Scaler")], "g",
                                      [h.make_tensor_value_info("x", TP.FLOAT, [2, 3])], _out()),
                         opset_imports=[h.make_opsetid("", 17), h.make_opsetid("ai.onnx.ml", 3)])
    model.ir_version = 8
    with pytest.raises(TransformNotApplicable, match=r"1 Scaler \(its ONNX schema allows no float16 for X\)"):
        _fp16(model, tmp_path, "scaler")


def test_fp16_mixed_keeps_the_nodes_whose_error_is_too_large(tmp_path) -> None:
    path = _save(rounded_bias(), tmp_path, "bias")
    plain = transform_model(path, "c" * 64, TransformSpec("fp16"), FEEDS)
    expected = _run(path)[0]
    assert np.abs(_run(plain.path)[0] - expected).max() > 0.2  # plain fp16 loses the .123
    mixed = transform_model(path, "c" * 64, TransformSpec("fp16-mixed", mixed_rtol=1e-2, mixed_atol=1e-2), FEEDS)
    kept = mixed.report["mixed"]["kept_fp32_for_error"]
    assert kept == [{"node": "/AddBias", "op": "Add"}]
    assert {"node": "/AddBias", "op": "Add", "reason": "fp16 error above the bound on the case's inputs"} \
        in mixed.report["kept_fp32"]
    assert mixed.report["mixed"]["bound"] == {"rtol": 1e-2, "atol": 1e-2}
    np.testing.assert_allclose(_run(mixed.path)[0], expected, rtol=1e-2, atol=1e-2)
    verification = mixed.report["mixed"]["verification"]
    assert verification["passed"] and verification["feeds"] == 1 and verification["worst"]["ratio"] <= 1.0


def overflowing_chain() -> onnx.ModelProto:
    """y = ((x * 1e3) * 1e3) / 1e6 + 0.1: the middle value (and the divisor) pass float16's 65504."""
    return _model([h.make_node("Mul", ["x", "thousand"], ["a"], name="/Mul1"),
                   h.make_node("Mul", ["a", "thousand"], ["b"], name="/Mul2"),
                   h.make_node("Div", ["b", "million"], ["c"], name="/Div"),
                   h.make_node("Add", ["c", "tenth"], ["y"], name="/Add")], _out(),
                  initializers=[nh.from_array(np.array(1e3, np.float32), "thousand"),
                                nh.from_array(np.array(1e6, np.float32), "million"),
                                nh.from_array(np.array(0.1, np.float32), "tenth")])


def test_fp16_mixed_keeps_the_nodes_past_float16_range_in_float32_and_says_why(tmp_path) -> None:
    path = _save(overflowing_chain(), tmp_path, "overflow")
    feeds = [{"x": X}, {"x": 3 * X}]
    mixed = transform_model(path, "e" * 64, TransformSpec("fp16-mixed", mixed_rtol=2e-2, mixed_atol=5e-3), feeds)
    ranged = {k["node"]: k for k in mixed.report["mixed"]["kept_fp32_for_range"]}
    assert set(ranged) == {"/Mul2", "/Div"}
    assert ranged["/Mul2"]["tensor"] == "b" and ranged["/Mul2"]["max_abs"] > 65504
    assert ranged["/Div"]["tensor"] in ("b", "million")
    reasons = {k["node"]: k["reason"] for k in mixed.report["kept_fp32"]}
    assert "overflows float16" in reasons["/Mul2"] and "on the case's inputs" in reasons["/Mul2"]
    for feed in feeds:
        actual, expected = _run(mixed.path, feed)[0], _run(path, feed)[0]
        assert np.isfinite(actual).all()
        np.testing.assert_allclose(actual, expected, rtol=2e-2, atol=5e-3)
    assert mixed.report["mixed"]["verification"]["feeds"] == 2
    assert "/Mul1" not in reasons and "/Add" not in reasons  # the rest is float16


def test_a_value_between_two_float32_nodes_is_not_stored_as_float16(tmp_path) -> None:
    """onnxruntime's converter wraps each blocked node in its own casts: b = 3.9e6 went Mul2 -> Cast(float16)
    -> inf -> Cast(float) -> Div. Now Mul2 feeds Div directly and only the Add runs in float16."""
    path, result = _fp16(overflowing_chain(), tmp_path, "chain", op_block_list=("Mul", "Div"))
    converted = onnx.load(str(result.path))
    assert _cast_targets(converted.graph).count(TP.FLOAT16) == 1  # only c, into the float16 Add
    assert result.report["converted_by_op"] == {"Add": 1}
    actual = _run(result.path)[0]
    assert np.isfinite(actual).all()
    np.testing.assert_allclose(actual, _run(path)[0], rtol=1e-3, atol=1e-3)


def test_a_search_stopped_by_its_attempt_limit_returns_a_verified_model(tmp_path, monkeypatch) -> None:
    """Three attempts on four nodes: all (too far), the first half (too far), the second half (good); then
    the limit. /AddBias and /Sub were never decided, stay float32, and the model is checked on both feeds."""
    from harness.model import fp16
    monkeypatch.setattr(fp16, "MIXED_MAX_ATTEMPTS", 3)
    path = _save(rounded_bias(), tmp_path, "bias")
    feeds = [{"x": X}, {"x": 2 * X}]
    mixed = transform_model(path, "f" * 64, TransformSpec("fp16-mixed", mixed_rtol=1e-2, mixed_atol=1e-2), feeds)
    report = mixed.report["mixed"]
    assert report["search_stopped_early"] and report["search_attempts"] == 3 and report["kept_fp32_undecided"] == 2
    reasons = {k["node"]: k["reason"] for k in mixed.report["kept_fp32"]}
    assert reasons["/Sub"] == "not tried before the search budget ran out"
    assert mixed.report["converted_by_op"] == {"Relu": 1, "Mul": 1}
    assert report["verification"]["passed"] and report["verification"]["feeds"] == 2
    for feed in feeds:
        np.testing.assert_allclose(_run(mixed.path, feed)[0], _run(path, feed)[0], rtol=1e-2, atol=1e-2)


def test_a_search_that_converts_nothing_in_its_budget_is_a_failure(tmp_path, monkeypatch) -> None:
    from harness.model import fp16
    monkeypatch.setattr(fp16, "MIXED_MAX_ATTEMPTS", 2)
    path = _save(rounded_bias(), tmp_path, "bias")
    with pytest.raises(TransformFailed, match="no node converts to float16 within") as failed:
        transform_model(path, "g" * 64, TransformSpec("fp16-mixed", mixed_rtol=1e-2, mixed_atol=1e-2), FEEDS)
    assert "mixed_rtol" in failed.value.hint


def test_the_final_model_is_checked_even_when_the_search_accepts_everything(tmp_path, monkeypatch) -> None:
    """A search whose trials all pass (here: a stand-in that says yes) still meets the bound check on every
    feed; plain fp16 of rounded_bias is 0.25 off, so it fails and says by how much."""
    from harness.model import fp16
    monkeypatch.setattr(fp16, "_within", lambda *args: True)
    path = _save(rounded_bias(), tmp_path, "bias")
    with pytest.raises(TransformFailed) as failed:
        transform_model(path, "h" * 64, TransformSpec("fp16-mixed", mixed_rtol=1e-2, mixed_atol=1e-2), FEEDS)
    message = str(failed.value)
    assert "output y on feed 0 misses |actual - fp32| <= 0.01 + 0.01 * |fp32| by" in message
    assert "checked on 1 feed(s)" in message and "op_block_list" in failed.value.hint


def test_nan_where_float32_is_finite_is_infinitely_far() -> None:
    from harness.model.fp16 import _excess
    expected = np.array([1.0, np.nan, np.inf], np.float32)
    assert _excess(expected.copy(), expected, (0.0, 0.0))[0] == 0.0
    assert _excess(np.array([np.nan, np.nan, np.inf], np.float32), expected, (1.0, 1.0))[0] == np.inf
    assert _excess(np.array([1.0, np.nan, 65504], np.float32), expected, (1.0, 1.0))[0] == np.inf
    ratio, diff, allowed = _excess(np.array([1.5, np.nan, np.inf], np.float32), expected, (0.1, 0.1))
    assert (ratio, diff, allowed) == (pytest.approx(2.5), 0.5, pytest.approx(0.2))


def test_fp16_mixed_needs_an_input(tmp_path) -> None:
    path = _save(rounded_bias(), tmp_path, "bias")
    with pytest.raises(TransformFailed, match="needs one input feed"):
        transform_model(path, "d" * 64, TransformSpec("fp16-mixed"), [])


# onnx's node test names for the ops that failed the probe (see CPU_FP16_UNSUPPORTED_OPS), with their
# function-expanded variants, which mix those ops' bodies with ops that do convert.
PROBED = ("test_eyelike", "test_mvn", "test_scatter_elements", "test_scatternd", "test_layer_normalization",
          "test_nonmaxsuppression", "test_upsample", "test_tfidfvectorizer", "test_dynamicquantizelinear",
          "test_ai_onnx_ml_binarizer", "test_bitcast")


def test_the_ops_the_probe_found_failing_now_convert_or_say_why_not(tmp_path) -> None:
    """Before the block lists each of these made a model the CPU EP refused; now each converts to a model
    that runs, or is refused as not applicable (all its float ops must stay float32). None fails."""
    from onnx.backend.test.case import node

    from harness.model.fp16 import convert_fp16
    outcomes = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx's generators divide by zero on purpose
        cases = [c for c in node.collect_testcases(None) if c.name.startswith(PROBED) and c.data_sets]
    for case in cases:
        feed = {v.name: a for v, a in zip(case.model.graph.input, case.data_sets[0][0])}
        try:
            _run(case.model, feed)
        except Exception:  # noqa: BLE001, S112 - float32 does not run either: not an fp16 question
            continue
        try:
            data, _ = convert_fp16(_save(case.model, tmp_path, case.name), TransformSpec("fp16"), [feed])
        except TransformNotApplicable:
            outcomes[case.name] = "not applicable"
            continue
        _run(onnx.ModelProto.FromString(data), feed)
        outcomes[case.name] = "ok"
    assert len(outcomes) > 60
    assert outcomes["test_mvn_expanded"] == "ok" and outcomes["test_mvn"] == "not applicable"


def test_the_cpu_ep_computes_an_fp16_graph_in_float32(tmp_path) -> None:
    """Pins what cpu-fp16 measures: the CPU EP casts float16 weights up and runs Add, LayerNormalization and
    Mul in float32, dropping the casts between them, so only weight rounding shows. (3000.0, 1 and 0 are
    exact in float16, so the outputs are identical.) If onnxruntime changes this, cpu-fp16's gates change."""
    model = _model([h.make_node("Add", ["x", "big"], ["a"], name="/Add"),
                    h.make_node("LayerNormalization", ["a", "g", "b"], ["n"], axis=-1, name="/LN"),
                    h.make_node("Mul", ["n", "two"], ["y"], name="/Mul")], _out(),
                   initializers=[nh.from_array(np.array(3000, np.float32), "big"),
                                 nh.from_array(np.ones(3, np.float32), "g"), nh.from_array(np.zeros(3, np.float32), "b"),
                                 nh.from_array(np.array(2, np.float32), "two")])
    path, result = _fp16(model, tmp_path, "ln")
    assert result.report["converted_by_op"] == {"Add": 1, "LayerNormalization": 1, "Mul": 1}
    np.testing.assert_array_equal(_run(result.path)[0], _run(path)[0])
