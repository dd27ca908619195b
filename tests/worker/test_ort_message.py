"""ORT's own words (harness/worker/ort_message.py), on error texts provoked from the installed onnxruntime: the
status code and the message, without the C++ source location and signature that hide them."""

from __future__ import annotations

import importlib.util
import io
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from harness.run.pool import WorkerHandle
from harness.worker import protocol
from harness.worker.main import Worker, handle
from harness.worker.ort_message import parse_ort_message, strip_locations

CPU = {"name": "cpu", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
       "device_metadata": {}, "precision_hint": None, "session": {}, "env": {}, "cpu_cores": None,
       "memory_limit_mb": None}


def _model(node: onnx.NodeProto, *opsets: tuple[str, int], x_shape=(1, 4), extra_inputs=()) -> bytes:
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape)),
                                            *extra_inputs],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    imports = [helper.make_opsetid(d, v) for d, v in (("", 13), *opsets)]
    return helper.make_model(graph, opset_imports=imports, ir_version=8).SerializeToString()


def _ort_error(action) -> str:
    with pytest.raises(Exception) as info:
        action()
    return str(info.value)


def _bad_shape() -> str:
    session = ort.InferenceSession(_model(helper.make_node("Relu", ["x"], ["y"])))
    return _ort_error(lambda: session.run(None, {"x": np.zeros((2, 4), np.float32)}))


def _unknown_domain() -> str:
    model = _model(helper.make_node("Foo", ["x"], ["y"], domain="com.unknown"), ("com.unknown", 1))
    return _ort_error(lambda: ort.InferenceSession(model))


def _reshape_mismatch() -> str:
    shape = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    so = ort.SessionOptions()
    so.log_severity_level = 4
    session = ort.InferenceSession(_model(helper.make_node("Reshape", ["x", "s"], ["y"]), extra_inputs=[shape]), so)
    feed = {"x": np.zeros((1, 4), np.float32), "s": np.array([3, 3], np.int64)}
    return _ort_error(lambda: session.run(None, feed))


def test_bad_input_shape() -> None:
    text = _bad_shape()
    parsed = parse_ort_message(text)
    assert (parsed.code, parsed.number) == ("INVALID_ARGUMENT", 2) and parsed.full == text
    assert parsed.line == ("INVALID_ARGUMENT: Got invalid dimensions for input: x for the following indices "
                           "index: 0 Got: 2 Expected: 1 Please fix either the inputs/outputs or the model.")


def test_op_of_an_unknown_domain() -> None:
    parsed = parse_ort_message(_unknown_domain())
    assert parsed.code == "FAIL"
    assert parsed.line == "FAIL: Fatal error: com.unknown:Foo(-1) is not a registered function/op"


def test_a_source_location_inside_the_message_is_dropped_with_its_signature() -> None:
    text = _reshape_mismatch()
    assert "/onnxruntime_src/" in text and "ReshapeHelper::ReshapeHelper(" in text  # what ORT really sends
    line = parse_ort_message(text).line
    assert line.startswith("FAIL: Non-zero status code returned while running Reshape node. Name:'' Status Message: "
                           "input_shape_size == requested_shape_size was false. The input tensor cannot be reshaped")
    assert "onnxruntime_src" not in line and "ReshapeHelper" not in line and "\n" not in line


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime_ep_webgpu") is None,
                    reason="onnxruntime-ep-webgpu is not installed (the [webgpu] extra)")
def test_webgpu_without_an_adapter_nested_status() -> None:
    """The real text, from a worker whose Vulkan loader sees no driver: a plugin EP's status inside the
    session's, both at C++ paths."""
    spec = {**CPU, "name": "webgpu", "ep": "WebGpuExecutionProvider", "plugin": "onnxruntime_ep_webgpu",
            "env": {"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1"}}
    worker = WorkerHandle(spec, env={"VK_ICD_FILENAMES": "/nonexistent.json", "VK_DRIVER_FILES": "/nonexistent.json"})
    try:
        reason = worker.hello["reason"]
    finally:
        worker.close()
    assert "'EP_FAIL: " in reason and "Failed to get a WebGPU adapter: No supported adapters'" in reason
    assert "PluginExecutionProviderFactory" not in reason and ".cc:" not in reason


@pytest.mark.parametrize("text, line", [
    (("[ONNXRuntimeError] : 1 : FAIL : /x/y.cc:12 onnxruntime::common::Status onnxruntime::Foo<T>::Compute("
      "onnxruntime::OpKernelContext*) const [with T = float] bad thing happened"), "FAIL: bad thing happened"),
    ("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : /a/b.h:3 auto f()::<lambda(int)> x -> y failed",
     "RUNTIME_EXCEPTION: x -> y failed"),
    ("[ONNXRuntimeError] : 11 : EP_FAIL : /p/q.cc:9 void g() [ONNXRuntimeError] : 1 : FAIL : inner words",
     "EP_FAIL: FAIL: inner words"),
    ("Required inputs (['x']) are missing from input feed (['z']).",
     "Required inputs (['x']) are missing from input feed (['z'])."),
    ("/p/q.cc:9 unbalanced operator< ( words", "unbalanced operator< ( words"),  # no signature: the path goes
])
def test_message_shapes(text: str, line: str) -> None:
    assert parse_ort_message(text).line == line


def test_text_without_a_location_is_kept() -> None:
    assert strip_locations("version 1.2.3 of model.h is fine") == "version 1.2.3 of model.h is fine"


def _worker_replies(model: bytes, tmp_path: Path, feed: dict | None = None) -> list[dict]:
    path = tmp_path / "model.onnx"
    path.write_bytes(model)
    out = io.BytesIO()
    worker = Worker(CPU, out)
    handle(worker, {"type": "load", "case": "c", "model_path": str(path)}, {})
    if feed is not None:
        handle(worker, {"type": "infer", "datasets": 1, "measure": None}, {f"0/{k}": v for k, v in feed.items()})
    out.seek(0)
    replies = []
    while (message := protocol.read_message(out)) is not None:
        replies.append(message[0])
    return replies


def test_an_error_reply_leads_with_the_clean_line_and_keeps_the_full_text(tmp_path: Path) -> None:
    model = _model(helper.make_node("Foo", ["x"], ["y"], domain="com.unknown"), ("com.unknown", 1))
    [error] = _worker_replies(model, tmp_path)
    assert error["type"] == "error" and error["kind"] == "session" and error["status"] == "FAIL"
    assert error["message"] == (f"FAIL: Load model from {tmp_path / 'model.onnx'} failed:Fatal error: "
                                "com.unknown:Foo(-1) is not a registered function/op")  # nothing hidden: one line


def test_an_error_reply_keeps_the_full_text_when_the_line_dropped_a_location(tmp_path: Path) -> None:
    shape = helper.make_tensor_value_info("s", TensorProto.INT64, [2])
    model = _model(helper.make_node("Reshape", ["x", "s"], ["y"]), extra_inputs=[shape])
    _, error = _worker_replies(model, tmp_path, {"x": np.zeros((1, 4), np.float32), "s": np.array([3, 3], np.int64)})
    first, _, full = error["message"].partition("\n")
    assert first.startswith("FAIL: Non-zero status code returned while running Reshape node.")
    assert "reshape_helper.h:" not in first and "reshape_helper.h:" in full


def test_a_run_error_reply_names_the_bad_shape(tmp_path: Path) -> None:
    loaded, error = _worker_replies(_model(helper.make_node("Relu", ["x"], ["y"])), tmp_path,
                                    {"x": np.zeros((2, 4), np.float32)})
    assert loaded["type"] == "loaded" and error["kind"] == "run" and error["status"] == "INVALID_ARGUMENT"
    assert error["message"] == ("INVALID_ARGUMENT: Got invalid dimensions for input: x for the following indices "
                                "index: 0 Got: 2 Expected: 1 Please fix either the inputs/outputs or the model.")
