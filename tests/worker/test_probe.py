"""The availability probe (harness/worker/probe.py, session.check_available): a profile is available only where a
one-node session was created and run on its EP, and a missing WebGPU adapter is named in words with its fix."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from harness.run.pool import WorkerHandle
from harness.worker import probe, session
from harness.worker.session import Unavailable, check_available

REPO = Path(__file__).resolve().parents[2]
HIDE_VULKAN = {"VK_ICD_FILENAMES": "/nonexistent.json", "VK_DRIVER_FILES": "/nonexistent.json"}
WEBGPU = {"name": "webgpu", "ep": "WebGpuExecutionProvider", "plugin": "onnxruntime_ep_webgpu", "ep_options": {},
          "device_type": None, "device_metadata": {}, "precision_hint": None, "session": {},
          "env": {"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1"}, "cpu_cores": None, "memory_limit_mb": None}
needs_webgpu_plugin = pytest.mark.skipif(importlib.util.find_spec("onnxruntime_ep_webgpu") is None,
                                         reason="onnxruntime-ep-webgpu is not installed (the [webgpu] extra)")


def _cpu(**session_fields) -> dict:
    return {**WEBGPU, "name": "cpu", "ep": "CPUExecutionProvider", "plugin": None, "env": {},
            "session": session_fields}


def test_the_probe_model_is_what_onnx_helper_builds() -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "probe",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8,
                              producer_name="harness-probe")
    onnx.checker.check_model(model)
    assert model.SerializeToString() == probe.PROBE_MODEL


def test_the_probe_model_runs_on_cpu() -> None:
    [y] = ort.InferenceSession(probe.PROBE_MODEL).run(None, probe.PROBE_FEED)
    np.testing.assert_array_equal(y, np.maximum(probe.PROBE_FEED["x"], 0))


def test_cpu_is_available_through_a_real_session() -> None:
    check_available(_cpu(strict_placement=True))  # strict placement is off for the probe: the EP, not coverage


def test_a_session_that_cannot_be_created_makes_the_profile_unavailable_with_orts_words() -> None:
    with pytest.raises(Unavailable) as info:
        check_available(_cpu(config={"session.graph_optimizations_loop_level": "abc"}))
    assert info.value.kind == "probe_failed"
    assert str(info.value).startswith("a one-node CPUExecutionProvider session could not be created and run on this "
                                      "host: RUNTIME_EXCEPTION: ")
    assert "/onnxruntime_src/" not in str(info.value)


def test_the_probe_uses_the_case_session_path(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[object, dict]] = []
    real = session.create_session
    monkeypatch.setattr(session, "create_session", lambda model, spec: seen.append((model, spec)) or real(model, spec))
    check_available(_cpu(intra_op_threads=1, strict_placement=True))
    [(model, spec)] = seen
    assert model == probe.PROBE_MODEL
    assert spec["session"] == {"intra_op_threads": 1, "strict_placement": False}


def test_explain_failure_names_the_missing_adapter_and_the_fix() -> None:
    full = "[ONNXRuntimeError] : 11 : EP_FAIL : Failed to get a WebGPU adapter: No supported adapters"
    reason, kind = probe.explain_failure("WebGpuExecutionProvider", "EP_FAIL: Failed to ...", full)
    assert kind == "no_device"
    assert reason.startswith("no WebGPU adapter (no Vulkan driver): ORT says 'EP_FAIL: Failed to ...'; fix: ")
    assert "Debian: apt-get install -t bookworm-backports mesa-vulkan-drivers" in reason
    assert probe.explain_failure("OpenVINOExecutionProvider", "EP_FAIL: x", full)[1] == "probe_failed"


@needs_webgpu_plugin
def test_webgpu_without_vulkan_drivers_is_unavailable_in_words() -> None:
    """Hiding every Vulkan ICD from the loader is what a host without a driver looks like (with or without Mesa
    installed), and the EP still offers a device there: only a real session shows it cannot work."""
    worker = WorkerHandle(WEBGPU, env=HIDE_VULKAN)
    try:
        hello = worker.hello
    finally:
        worker.close()
    assert hello["available"] is False and hello["unavailable"] == "no_device"
    assert hello["reason"].startswith("no WebGPU adapter (no Vulkan driver): ORT says 'EP_FAIL: ")
    assert "No supported adapters" in hello["reason"] and "/onnxruntime_src/" not in hello["reason"]
    assert "fix: install a Vulkan driver (Debian: apt-get install -t bookworm-backports mesa-vulkan-drivers)" \
        in hello["reason"]


@needs_webgpu_plugin
def test_webgpu_with_a_vulkan_driver_is_available_or_says_why() -> None:
    """Where Mesa (lavapipe) or a GPU driver is installed the probe session runs; elsewhere the reason is the
    no-adapter one, never a crash."""
    worker = WorkerHandle(WEBGPU)
    try:
        hello = worker.hello
    finally:
        worker.close()
    folders = ("/usr/share/vulkan/icd.d", "/usr/local/share/vulkan/icd.d", "/etc/vulkan/icd.d")
    drivers = [p for d in folders if os.path.isdir(d) for p in os.listdir(d)]
    named = os.environ.get("VK_ICD_FILENAMES") or os.environ.get("VK_DRIVER_FILES")
    if hello["available"]:
        assert drivers or named, "available without any Vulkan ICD installed"
    else:
        assert hello["reason"].startswith(probe.NO_WEBGPU_ADAPTER), hello["reason"]
