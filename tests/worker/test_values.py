"""Values in and out of onnxruntime sessions (harness/worker/values.py): every element type of the ONNX suite."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto as T
from onnx import helper

from harness.worker import values

_ML = {T.BFLOAT16: ml_dtypes.bfloat16, T.FLOAT8E4M3FN: ml_dtypes.float8_e4m3fn,
       T.FLOAT8E4M3FNUZ: ml_dtypes.float8_e4m3fnuz, T.FLOAT8E5M2: ml_dtypes.float8_e5m2,
       T.FLOAT8E5M2FNUZ: ml_dtypes.float8_e5m2fnuz, T.INT4: ml_dtypes.int4, T.UINT4: ml_dtypes.uint4}
X = np.array([[1.5, -2.25, 3.0], [0.1, -7.0, 6.0], [0.0, 2.0, -1.0]], np.float32)


def _session(nodes, inputs, outputs, opset: int = 21) -> ort.InferenceSession:
    graph = helper.make_graph(nodes, "g", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _cast(frm: int, to: int) -> ort.InferenceSession:
    return _session([helper.make_node("Cast", ["x"], ["y"], to=to)],
                    [helper.make_tensor_value_info("x", frm, [3, 3])], [helper.make_tensor_value_info("y", to, [3, 3])])


@pytest.mark.parametrize("elem", sorted(_ML))
def test_exotic_outputs_come_back_with_their_element_type(elem: int) -> None:
    x = np.abs(X) if elem == T.UINT4 else X  # (onnxruntime wraps negative values into uint4)
    [got] = values.run(_cast(T.FLOAT, elem), {"x": x})
    want = x.astype(_ML[elem])  # ml_dtypes rounds to nearest even, as onnxruntime's Cast does
    if elem in (T.INT4, T.UINT4):
        want = np.clip(np.round(x), -8, 7).astype(_ML[elem])
    assert got.dtype == want.dtype and got.shape == (3, 3)
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize("elem", sorted(_ML))
def test_exotic_inputs_go_in_as_ort_values(elem: int) -> None:
    x = X.astype(_ML[elem]) if elem not in (T.INT4, T.UINT4) else np.clip(np.round(X), 0, 7).astype(_ML[elem])
    [got] = values.run(_cast(elem, T.FLOAT), {"x": x})
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, x.astype(np.float32))


def test_odd_sized_int4_tensors_pack_and_unpack_exactly() -> None:
    x = np.array([-8, 7, -1, 0, 3], dtype=ml_dtypes.int4)
    packed = values.pack_bits(x, 4)
    assert packed.tolist() == [0x78, 0x0F, 0x03]  # low nibble first, as ONNX packs
    back = values.unpack_bits(packed, 5, T.INT4).view(ml_dtypes.int4)
    assert back.astype(int).tolist() == [-8, 7, -1, 0, 3]
    to_float = _session([helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT)],
                        [helper.make_tensor_value_info("x", T.INT4, [5])], [helper.make_tensor_value_info("y", T.FLOAT, [5])])
    [got] = values.run(to_float, {"x": x})
    assert got.tolist() == [-8, 7, -1, 0, 3]
    to_int4 = _session([helper.make_node("Cast", ["x"], ["y"], to=T.INT4)],
                       [helper.make_tensor_value_info("x", T.FLOAT, [5])], [helper.make_tensor_value_info("y", T.INT4, [5])])
    [got] = values.run(to_int4, {"x": got})
    assert got.dtype == ml_dtypes.int4 and got.astype(int).tolist() == [-8, 7, -1, 0, 3]


def test_strings_sequences_and_plain_tensors_take_sess_run() -> None:
    sess = _session([helper.make_node("SequenceInsert", ["s", "t"], ["out"])],
                    [helper.make_tensor_sequence_value_info("s", T.INT64, None),
                     helper.make_tensor_value_info("t", T.INT64, None)],
                    [helper.make_tensor_sequence_value_info("out", T.INT64, None)], opset=21)
    [got] = values.run(sess, {"s": [np.array([1, 2], np.int64)], "t": np.array([3], np.int64)})
    assert [a.tolist() for a in got] == [[1, 2], [3]]
    upper = _session([helper.make_node("StringNormalizer", ["x"], ["y"], case_change_action="UPPER", locale="C")],
                     [helper.make_tensor_value_info("x", T.STRING, [2])], [helper.make_tensor_value_info("y", T.STRING, [2])])
    [got] = values.run(upper, {"x": np.array(["ab", "c"], dtype=object)})
    assert got.tolist() == ["AB", "C"]


def test_a_sequence_of_exotic_tensors_is_refused_in_words() -> None:
    with pytest.raises(NotImplementedError, match="input 's': a sequence of bfloat16"):
        values.session_feed({"s": [np.zeros(2, ml_dtypes.bfloat16)]})


def test_plain_arrays_pass_through_untouched() -> None:
    x = np.zeros(3, np.float32)
    feed = values.session_feed({"x": x, "n": None, "s": [x]})
    assert feed["x"] is x and feed["n"] is None and feed["s"][0] is x
    assert values.elem_type(np.zeros(1, ml_dtypes.bfloat16)) == onnx.TensorProto.BFLOAT16


@pytest.mark.parametrize("elem, dtype, vals", [(T.INT2, ml_dtypes.int2, [-2, 1, -1, 0, 1, -2, 0]),
                                               (T.UINT2, ml_dtypes.uint2, [3, 0, 1, 2, 3, 3, 0])])
def test_two_bit_types_pack_four_per_byte_and_cross_onnxruntime(elem: int, dtype, vals) -> None:
    x = np.array(vals, dtype=dtype)
    packed = values.pack_bits(x, 2)
    assert packed.size == 2
    assert values.unpack_bits(packed, 7, elem).view(dtype).astype(int).tolist() == vals
    if elem == T.UINT2:
        assert packed.tolist() == [3 | 0 << 2 | 1 << 4 | 2 << 6, 3 | 3 << 2 | 0 << 4]
    to_float = _session([helper.make_node("Cast", ["x"], ["y"], to=T.FLOAT)],
                        [helper.make_tensor_value_info("x", elem, [7])], [helper.make_tensor_value_info("y", T.FLOAT, [7])],
                        opset=25)
    [got] = values.run(to_float, {"x": x})
    assert got.tolist() == vals
    back = _session([helper.make_node("Cast", ["x"], ["y"], to=elem)],
                    [helper.make_tensor_value_info("x", T.FLOAT, [7])], [helper.make_tensor_value_info("y", elem, [7])],
                    opset=25)
    [got] = values.run(back, {"x": got})
    assert got.dtype == dtype and got.astype(int).tolist() == vals


def test_latency_sampling_gets_a_session_and_feed_it_can_time() -> None:
    from harness.worker.timing import measure_latency
    measure = {"warmup": {"count": 1}, "stopping": {"min_iters": 3, "max_iters": 3, "targets": ["p50"]}}
    plain = _cast(T.FLOAT, T.FLOAT16)
    feed = {"x": X}
    assert values.for_timing(plain, feed) == (plain, feed)  # untouched when numpy can carry everything
    for sess, x in ((_cast(T.FLOAT, T.BFLOAT16), X), (_cast(T.BFLOAT16, T.FLOAT), X.astype(ml_dtypes.bfloat16))):
        session, prepared = values.for_timing(sess, {"x": x})
        assert isinstance(prepared["x"], ort.OrtValue)
        samples, info = measure_latency(session, prepared, measure)
        assert info["iters"] == 3 and samples.dtype == np.int64 and (samples > 0).all()
