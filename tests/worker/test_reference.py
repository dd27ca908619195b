"""The reference profile's session (harness.worker.reference): float64 computation with outputs in the declared
dtypes, the worker-facing session surface, and each work-around pinned twice: the bug in plain
ReferenceEvaluator, and the fix in ours."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from harness.run.launchers import harness_import_path
from harness.worker import reference
from harness.worker import session, values
from harness.worker.probe import PROBE_FEED, PROBE_MODEL, Unavailable
from harness.worker.session import placement
from harness.worker.timing import measure_latency

REPO = Path(__file__).resolve().parents[2]


def one_node(op: str, opset: int, inputs: list[tuple[str, int, list]], outputs: list[tuple[str, int, list]],
             initializers: list[np.ndarray] = (), **attrs) -> onnx.ModelProto:
    """A one-node model: ``inputs`` fed, then the initializers (named i0, i1, ...) as the node's next inputs."""
    inits = [numpy_helper.from_array(a, f"i{k}") for k, a in enumerate(initializers)]
    node = helper.make_node(op, [n for n, _, _ in inputs] + [t.name for t in inits], [n for n, _, _ in outputs],
                            **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(*i) for i in inputs],
                              [helper.make_tensor_value_info(*o) for o in outputs], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def ours(model: onnx.ModelProto) -> reference.ReferenceSession:
    return reference.create_session(model.SerializeToString(), {"ep": reference.REFERENCE_EP})


# ----- BatchNormalization: running statistics in inference ----------------------------------------------------

BN_STATS = [np.array([2.0, 3.0], np.float32), np.array([1.0, -1.0], np.float32),
            np.array([10.0, 20.0], np.float32), np.array([4.0, 9.0], np.float32)]


def bn_expected(x: np.ndarray) -> np.ndarray:
    scale, bias, mean, var = (a.astype(np.float64).reshape(2, 1) for a in BN_STATS)
    return (x - mean) / np.sqrt(var + 1e-5) * scale + bias


@pytest.mark.parametrize("opset,attrs", [(9, {"momentum": 0.99}), (9, {}), (13, {"momentum": 0.9}), (7, {})])
def test_batchnorm_before_opset_14_uses_the_running_statistics(opset: int, attrs: dict) -> None:
    model = one_node("BatchNormalization", opset, [("x", TensorProto.FLOAT, [3, 2, 4])],
                     [("y", TensorProto.FLOAT, [3, 2, 4])], BN_STATS, **attrs)
    x = np.random.default_rng(0).random((3, 2, 4), dtype=np.float32)
    try:  # onnx's kernel: batch statistics (9..13) or a crash (opset 7, training mode returning a tuple)
        plain_error = np.abs(ReferenceEvaluator(model).run(None, {"x": x})[0] - bn_expected(x)).max()
    except TypeError:
        plain_error = np.inf
    assert plain_error > 0.05
    y = ours(model).run(None, {"x": x})[0]
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, bn_expected(x), rtol=1e-6, atol=1e-6)


def test_batchnorm_in_training_mode_still_uses_the_batch_statistics() -> None:
    model = one_node("BatchNormalization", 15, [("x", TensorProto.FLOAT, [3, 2, 4])],
                     [("y", TensorProto.FLOAT, [3, 2, 4]), ("m", TensorProto.FLOAT, [2]), ("v", TensorProto.FLOAT, [2])],
                     BN_STATS, training_mode=1)
    x = np.random.default_rng(1).random((3, 2, 4), dtype=np.float32)
    expected = ReferenceEvaluator(model).run(None, {"x": x})
    for got, want in zip(ours(model).run(None, {"x": x}), expected):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)


# ----- DequantizeLinear: every opset, per tensor, per axis, blocked --------------------------------------------

DEQUANT_CASES = {
    "per-tensor-10": (10, [np.array(0.5, np.float32), np.array(3, np.int8)], {}, (2, 3)),
    "per-axis-13": (13, [np.array([0.5, 0.25, 2.0], np.float32), np.array([1, -2, 0], np.int8)], {"axis": 1}, (2, 3)),
    "per-axis-18": (18, [np.array([0.5, 0.25], np.float32), np.array([1, -2], np.int8)], {"axis": 0}, (2, 3)),
    "blocked-21": (21, [np.array([[0.5, 4.0], [0.25, 2.0]], np.float32), np.array([[1, 0], [-2, 5]], np.int8)],
                   {"axis": 1, "block_size": 2}, (2, 3)),
}


@pytest.mark.parametrize("name", sorted(DEQUANT_CASES))
def test_dequantize_linear_matches_onnxruntime_for_every_opset_and_granularity(name: str) -> None:
    opset, inits, attrs, shape = DEQUANT_CASES[name]
    model = one_node("DequantizeLinear", opset, [("x", TensorProto.INT8, list(shape))],
                     [("y", TensorProto.FLOAT, list(shape))], inits, **attrs)
    x = np.arange(-3, 3, dtype=np.int8).reshape(shape) * 7
    expected = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    if opset < 19:
        with pytest.raises(RuntimeError, match="No implementation for operator 'DequantizeLinear'"):
            ReferenceEvaluator(model)
    got = ours(model).run(None, {"x": x})[0]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected[0])


def test_dequantize_linear_of_int32_subtracts_the_zero_point_exactly() -> None:
    """onnx's kernel subtracts the zero point in float32, where 2**24 + 1 rounds to 2**24 first."""
    model = one_node("DequantizeLinear", 21, [("x", TensorProto.INT32, [1])], [("y", TensorProto.FLOAT, [1])],
                     [np.array(1.0, np.float32), np.array(1, np.int32)])
    x = np.array([2 ** 24 + 1], np.int32)
    assert ReferenceEvaluator(model).run(None, {"x": x})[0][0] == 2 ** 24 - 1
    assert ours(model).run(None, {"x": x})[0][0] == 2 ** 24


# ----- Further bugs found by the ONNX node suite ----------------------------------------------------------------

def counting_loop(cond: str) -> onnx.ModelProto:
    """Loop n times from ``start`` adding 1; scan output: each iteration's value. ``cond`` "" leaves it out."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["prev", "one"], ["next"]),
         helper.make_node("Identity", ["prev"], ["scan"])], "body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []), helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("prev", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []), helper.make_tensor_value_info("next", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, [])],
        [numpy_helper.from_array(np.array(1.0, np.float32), "one")])
    loop = helper.make_node("Loop", ["n", cond, "start"], ["last", "all"], body=body)
    inputs = [helper.make_tensor_value_info("n", TensorProto.INT64, []),
              helper.make_tensor_value_info("start", TensorProto.FLOAT, [])]
    if cond:
        inputs.append(helper.make_tensor_value_info(cond, TensorProto.BOOL, []))
    graph = helper.make_graph([loop], "g", inputs, [helper.make_tensor_value_info("last", TensorProto.FLOAT, []),
                                                    helper.make_tensor_value_info("all", TensorProto.FLOAT, [None])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 16)])


def test_loop_stacks_scalar_scan_outputs_along_a_new_axis() -> None:
    """test_range_*_expanded: onnx's Loop vstacks scan outputs, so three scalars come out as (3, 1)."""
    feed = {"n": np.array(3, np.int64), "start": np.array(0.5, np.float32), "c": np.array(True)}
    assert ReferenceEvaluator(counting_loop("c")).run(None, feed)[1].shape == (3, 1)
    last, scanned = ours(counting_loop("c")).run(None, feed)
    assert last == np.float32(3.5) and scanned.dtype == np.float32
    np.testing.assert_array_equal(scanned, np.array([0.5, 1.5, 2.5], np.float32))


def test_loop_without_a_condition_runs_its_trip_count() -> None:
    """An omitted cond means true; onnx's Loop reads it as false, runs nothing and fails stacking no scans."""
    feed = {"n": np.array(2, np.int64), "start": np.array(0.5, np.float32)}
    with pytest.raises(ValueError, match="need at least one array"):
        ReferenceEvaluator(counting_loop("")).run(None, feed)
    last, scanned = ours(counting_loop("")).run(None, feed)
    assert last == np.float32(2.5) and list(scanned) == [0.5, 1.5]


def test_scan_8_with_its_batch_axis_runs() -> None:
    """test_scan_sum: onnx implements only Scan-9's layout and meets Scan-8's empty sequence_lens as a state."""
    body = helper.make_graph(
        [helper.make_node("Add", ["s_in", "x_t"], ["s_out"]), helper.make_node("Identity", ["s_out"], ["y_t"])], "body",
        [helper.make_tensor_value_info("s_in", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("x_t", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("s_out", TensorProto.FLOAT, [2]), helper.make_tensor_value_info("y_t", TensorProto.FLOAT, [2])])
    scan = helper.make_node("Scan", ["", "s0", "x"], ["s", "y"], body=body, num_scan_inputs=1)
    graph = helper.make_graph([scan], "g", [helper.make_tensor_value_info("s0", TensorProto.FLOAT, [2, 2]),
                                            helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 2])],
                              [helper.make_tensor_value_info("s", TensorProto.FLOAT, [2, 2]),
                               helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3, 2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 8)])
    feed = {"s0": np.zeros((2, 2), np.float32), "x": np.arange(12, dtype=np.float32).reshape(2, 3, 2)}
    with pytest.raises(RuntimeError, match="different dtype"):
        ReferenceEvaluator(model).run(None, feed)
    final, scanned = ours(model).run(None, feed)
    np.testing.assert_array_equal(scanned, np.cumsum(feed["x"], axis=1))
    np.testing.assert_array_equal(final, feed["x"].sum(axis=1))


def test_optional_holds_the_value_not_a_one_element_sequence() -> None:
    """test_if_opt: onnx's Optional returns [x], so an optional tensor gains a leading axis."""
    model = one_node("Optional", 18, [("x", TensorProto.FLOAT, [2])], [("y", TensorProto.FLOAT, [2])])
    model.graph.output[0].type.CopyFrom(helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [2])))
    x = np.array([1.0, 2.0], np.float32)
    assert np.asarray(ReferenceEvaluator(model).run(None, {"x": x})[0]).shape == (1, 2)
    np.testing.assert_array_equal(ours(model).run(None, {"x": x})[0], x)


def test_mean_variance_normalization_runs_in_float64() -> None:
    """test_mvn: onnx runs the op as its schema function, whose float32 constants fail on a float64 input."""
    model = one_node("MeanVarianceNormalization", 13, [("x", TensorProto.FLOAT, [2, 3, 2, 2])],
                     [("y", TensorProto.FLOAT, [2, 3, 2, 2])])
    x = np.random.default_rng(2).random((2, 3, 2, 2), dtype=np.float32)
    widened, _ = reference.widen_model(model)
    with pytest.raises(Exception, match="float64 != float32|float32 != float64"):
        ReferenceEvaluator(widened).run(None, {"x": x.astype(np.float64)})
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(ours(model).run(None, {"x": x})[0], expected, rtol=1e-5, atol=1e-6)


def test_scatter_has_a_kernel() -> None:
    model = one_node("Scatter", 10, [("d", TensorProto.FLOAT, [3]), ("i", TensorProto.INT64, [1]),
                                     ("u", TensorProto.FLOAT, [1])], [("y", TensorProto.FLOAT, [3])])
    feed = {"d": np.zeros(3, np.float32), "i": np.array([1]), "u": np.array([5.0], np.float32)}
    with pytest.raises(Exception, match="Scatter"):
        ReferenceEvaluator(model).run(None, feed)
    np.testing.assert_array_equal(ours(model).run(None, feed)[0], np.array([0.0, 5.0, 0.0], np.float32))


def test_string_outputs_are_object_arrays_as_onnxruntime_gives_them() -> None:
    model = one_node("Identity", 16, [("s", TensorProto.STRING, [2])], [("t", TensorProto.STRING, [2])])
    got = ours(model).run(None, {"s": np.array(["a", "bc"], dtype=object)})[0]
    assert got.dtype == object and list(got) == ["a", "bc"]


# ----- float64 -----------------------------------------------------------------------------------------------

def cancelling_model(elem: int) -> onnx.ModelProto:
    """y = (x + 2**24) - 2**24: float32 loses x's fraction, float64 keeps it."""
    nodes = [helper.make_node("Add", ["x", "big"], ["s"]), helper.make_node("Sub", ["s", "big"], ["y"])]
    big = numpy_helper.from_array(np.array(2.0 ** 24, helper.tensor_dtype_to_np_dtype(elem)), "big")
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", elem, [2])],
                              [helper.make_tensor_value_info("y", elem, [2])], [big])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_float32_models_compute_in_float64_and_answer_in_float32() -> None:
    model = cancelling_model(TensorProto.FLOAT)
    x = np.array([0.25, 1.75], np.float32)
    assert list(ReferenceEvaluator(model).run(None, {"x": x})[0]) == [0.0, 2.0]
    session = ours(model)
    y = session.run(None, {"x": x})[0]
    assert y.dtype == np.float32 and list(y) == [0.25, 1.75]
    assert session.numerics == {"computed_in": "float64", "kept_narrow": []}


def test_float16_models_answer_in_float16() -> None:
    model = one_node("Mul", 17, [("a", TensorProto.FLOAT16, [2]), ("b", TensorProto.FLOAT16, [2])],
                     [("y", TensorProto.FLOAT16, [2])])
    a, b = np.array([0.1, 3.0], np.float16), np.array([0.3, 7.0], np.float16)
    y = ours(model).run(None, {"a": a, "b": b})[0]
    assert y.dtype == np.float16
    np.testing.assert_array_equal(y, (a.astype(np.float64) * b.astype(np.float64)).astype(np.float16))


def test_an_explicit_cast_to_a_narrow_float_keeps_its_rounding() -> None:
    nodes = [helper.make_node("Cast", ["x"], ["h"], to=TensorProto.FLOAT16, name="to_half"),
             helper.make_node("Cast", ["h"], ["y"], to=TensorProto.FLOAT)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    session = ours(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))
    assert session.run(None, {"x": np.array([0.1], np.float32)})[0][0] == np.float32(np.float16(0.1))
    assert session.numerics["kept_narrow"] == ["h (Cast to FLOAT16)", "y (Cast to FLOAT)"]


def test_subgraph_constants_and_initializers_are_widened_too() -> None:
    """An If branch with a float32 Constant(value_float) and ConstantOfShape's float32 default both meet a
    float64 value: the evaluator refuses mixed dtypes, so any narrow leftover would fail here."""
    branch = helper.make_graph(
        [helper.make_node("Constant", [], ["c"], value_float=2.0 ** 24),
         helper.make_node("ConstantOfShape", ["shape"], ["zeros"]),
         helper.make_node("Add", ["x", "c"], ["s"]), helper.make_node("Sub", ["s", "c"], ["d"]),
         helper.make_node("Add", ["d", "zeros"], ["out"])], "then", [],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [2])])
    if_node = helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch)
    graph = helper.make_graph([if_node], "g", [helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
                                               helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
                              [numpy_helper.from_array(np.array([2], np.int64), "shape")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    y = ours(model).run(None, {"cond": np.array(True), "x": np.array([0.25, 0.5], np.float32)})[0]
    assert y.dtype == np.float32 and list(y) == [0.25, 0.5]


def test_a_model_with_a_bit_exact_op_keeps_its_declared_dtypes() -> None:
    model = one_node("BitCast", 26, [("x", TensorProto.FLOAT, [1])], [("y", TensorProto.INT32, [1])],
                     to=TensorProto.INT32)
    session = ours(model)
    assert session.numerics["computed_in"] == "declared dtypes" and "BitCast" in session.numerics["why"]
    assert session.run(None, {"x": np.array([1.0], np.float32)})[0][0] == 0x3F800000


# ----- the surface the worker uses -------------------------------------------------------------------------------

def test_the_session_offers_what_the_worker_calls(tmp_path: Path) -> None:
    path = tmp_path / "probe.onnx"
    path.write_bytes(PROBE_MODEL)
    session = reference.create_session(str(path), {"ep": reference.REFERENCE_EP})
    assert [(v.name, v.type) for v in session.get_inputs()] == [("x", "tensor(float)")]
    assert [(v.name, v.type, v.shape) for v in session.get_outputs()] == [("y", "tensor(float)", [1, 4])]
    assert session.get_providers() == [reference.REFERENCE_EP]
    placed = placement(session, reference.REFERENCE_EP)
    assert placed["available"] and placed["fraction_on_ep"] == 1.0 and placed["fell_back_count"] == 0
    samples, info = measure_latency(session, PROBE_FEED, {"warmup": {"count": 1},
                                                          "stopping": {"targets": ["p50"], "time_cap_s": 0.05}})
    assert len(samples) == info["iters"] >= 1


@pytest.mark.parametrize("elem", [TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN, TensorProto.INT4])
def test_exotic_tensors_go_through_the_workers_value_route(elem: int) -> None:
    """harness.worker.values feeds them as OrtValues and fetches them with run_with_ort_values."""
    model = one_node("Identity", 21, [("x", elem, [3])], [("y", elem, [3])])
    x = np.array([1.0, -2.0, 3.0]).astype(helper.tensor_dtype_to_np_dtype(elem))
    y = values.run(ours(model), {"x": x})[0]
    assert y.dtype == x.dtype
    np.testing.assert_array_equal(y.astype(np.float64), x.astype(np.float64))


def test_check_available_runs_a_one_node_model(monkeypatch: pytest.MonkeyPatch) -> None:
    reference.check_available({"ep": reference.REFERENCE_EP})
    monkeypatch.setattr(reference, "PROBE_FEED", {"not_an_input": np.zeros(1, np.float32)})  # x is missing
    with pytest.raises(Unavailable, match="ReferenceEvaluator could not run a one-node model") as caught:
        reference.check_available({"ep": reference.REFERENCE_EP})
    assert caught.value.kind == "probe_failed"


def test_the_worker_and_this_module_name_the_pseudo_ep_alike() -> None:
    assert reference.REFERENCE_EP == session.REFERENCE_EP


def test_importing_the_worker_package_does_not_load_onnx() -> None:
    """Only this module imports onnx; the rest of harness.worker must not pull it in for other profiles."""
    script = ("import sys, json; import harness.worker.main, harness.worker.session, harness.worker.timing; "
              "print(json.dumps(sorted(m for m in sys.modules if m == 'onnx' or m.startswith('onnx.'))))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False,
                          env={"PYTHONPATH": harness_import_path(), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1]) == []
