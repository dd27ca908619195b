"""Session building in the worker (harness/worker/session.py): profile spec -> SessionOptions, EP options,
availability and the placement audit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from harness.worker import session as S


def _spec(**over) -> dict:
    spec = {"name": "t", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
            "device_metadata": {}, "precision_hint": None, "session": {}, "env": {}, "cpu_cores": None,
            "memory_limit_mb": None}
    spec.update(over)
    return spec


def test_session_options_map_every_field() -> None:
    so = S.session_options(_spec(session={
        "intra_op_threads": 3, "inter_op_threads": 2, "graph_optimization": "basic", "cpu_arena": False,
        "memory_pattern": False, "execution_mode": "parallel", "strict_placement": True,
        "config": {"session.intra_op.allow_spinning": 0}}))
    assert so.intra_op_num_threads == 3 and so.inter_op_num_threads == 2
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    assert so.enable_cpu_mem_arena is False and so.enable_mem_pattern is False
    assert so.execution_mode == ort.ExecutionMode.ORT_PARALLEL
    assert so.get_session_config_entry("session.disable_cpu_ep_fallback") == "1"
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert so.get_session_config_entry("session.record_ep_graph_assignment_info") == "1"


def test_session_options_defaults() -> None:
    so = S.session_options(_spec())
    assert so.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    assert so.enable_cpu_mem_arena is True and so.enable_mem_pattern is True
    assert so.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
    assert so.intra_op_num_threads == 0  # onnxruntime's default
    with pytest.raises(RuntimeError, match="does not have configuration"):
        so.get_session_config_entry("session.disable_cpu_ep_fallback")


@pytest.mark.parametrize("level, name", [("disable", "ORT_DISABLE_ALL"), ("extended", "ORT_ENABLE_EXTENDED"),
                                         ("all", "ORT_ENABLE_ALL")])
def test_every_optimisation_level(level: str, name: str) -> None:
    so = S.session_options(_spec(session={"graph_optimization": level}))
    assert so.graph_optimization_level == getattr(ort.GraphOptimizationLevel, name)


def test_openvino_precision_hint_becomes_load_config() -> None:
    options = S.ep_options(_spec(ep="OpenVINOExecutionProvider", ep_options={"num_streams": 1},
                                 precision_hint="bf16", device_metadata={"ov_device": "CPU"}))
    assert options["num_streams"] == "1"
    assert json.loads(options["load_config"]) == {"CPU": {"INFERENCE_PRECISION_HINT": "bf16"}}


def test_load_config_names_the_openvino_device() -> None:
    options = S.ep_options(_spec(ep="OpenVINOExecutionProvider", precision_hint="f16",
                                 device_metadata={"ov_device": "GPU"}))
    assert json.loads(options["load_config"]) == {"GPU": {"INFERENCE_PRECISION_HINT": "f16"}}


def test_no_hint_no_load_config() -> None:
    assert S.ep_options(_spec(ep="CUDAExecutionProvider", ep_options={"device_id": 0})) == {"device_id": "0"}


def test_cpu_is_available() -> None:
    S.check_available(_spec())


def test_cuda_unavailable_names_what_is_there() -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime build has the CUDA EP")
    with pytest.raises(S.Unavailable, match="CUDAExecutionProvider is not in this onnxruntime build") as info:
        S.check_available(_spec(ep="CUDAExecutionProvider"))
    assert "CPUExecutionProvider" in str(info.value)


def test_missing_plugin_package_is_unavailable() -> None:
    spec = _spec(ep="OpenVINOExecutionProvider", plugin="surely_not_an_installed_plugin_xyz")
    with pytest.raises(S.Unavailable, match="plugin package 'surely_not_an_installed_plugin_xyz' is not installed"):
        S.check_available(spec)


def test_placement_on_a_cpu_session(tmp_path: Path, make_model) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(make_model(), str(path))
    spec = _spec(session={"graph_optimization": "disable"})  # keeps MatMul, Add, Relu apart
    sess = S.create_session(str(path), spec)
    placed = S.placement(sess, "CPUExecutionProvider")
    assert placed["available"] is True
    assert placed["nodes"] == 3 and placed["on_profile_ep"] == 3 and placed["fraction_on_ep"] == 1.0
    assert placed["per_ep"] == {"CPUExecutionProvider": 3}
    assert placed["fell_back"] == [] and placed["fell_back_count"] == 0


def test_placement_against_another_ep_lists_every_node(tmp_path: Path, make_model) -> None:
    path = tmp_path / "m.onnx"
    onnx.save(make_model(), str(path))
    sess = S.create_session(str(path), _spec(session={"graph_optimization": "disable"}))
    placed = S.placement(sess, "WebGpuExecutionProvider")
    assert placed["fraction_on_ep"] == 0.0 and placed["fell_back_count"] == 3
    assert sorted(n.split("(")[1].split(")")[0] for n in placed["fell_back"]) == ["Add", "MatMul", "Relu"]
    assert all(n.endswith("->CPUExecutionProvider") for n in placed["fell_back"])


def test_placement_without_the_api_is_reported_not_raised() -> None:
    class Old:
        def get_provider_graph_assignment_info(self):
            raise AttributeError("no such API")
    assert S.placement(Old(), "CPUExecutionProvider") == {"available": False, "reason": "no such API"}


# ---- the ReferenceEvaluator pseudo-EP is handed to harness.worker.reference ------------------------------------

def test_reference_evaluator_runs_through_the_session_module(tmp_path: Path, make_model) -> None:
    pytest.importorskip("harness.worker.reference")
    path = tmp_path / "m.onnx"
    onnx.save(make_model(), str(path))
    spec = _spec(ep=S.REFERENCE_EP)
    S.require_ep(spec)
    S.check_available(spec)
    sess = S.create_session(str(path), spec)
    assert sess.get_providers() == [S.REFERENCE_EP]
    feed = {i.name: np.ones([d if isinstance(d, int) else 1 for d in i.shape], np.float32) for i in sess.get_inputs()}
    cpu = S.create_session(str(path), _spec())
    expected = cpu.run(None, feed)
    got = sess.run(None, feed)
    assert [o.name for o in sess.get_outputs()] == [o.name for o in cpu.get_outputs()]
    np.testing.assert_allclose(got[0], expected[0], rtol=1e-5)
    placed = S.placement(sess, S.REFERENCE_EP)
    assert placed["available"] and placed["fraction_on_ep"] == 1.0 and placed["fell_back_count"] == 0


def test_reference_evaluator_without_its_module_is_unavailable(monkeypatch) -> None:
    import sys
    monkeypatch.setitem(sys.modules, "harness.worker.reference", None)
    for call in (S.require_ep, S.check_available, lambda spec: S.create_session(b"", spec)):
        with pytest.raises(S.Unavailable, match="onnx.reference worker not built") as info:
            call(_spec(ep=S.REFERENCE_EP))
        assert info.value.kind == "not_installed"


def test_reference_evaluator_never_touches_onnxruntime_providers(monkeypatch) -> None:
    """The pseudo-EP is not an onnxruntime provider: asking onnxruntime about it would call it 'not in build'."""
    pytest.importorskip("harness.worker.reference")
    monkeypatch.setattr(ort, "get_available_providers", lambda: pytest.fail("asked onnxruntime"))
    S.require_ep(_spec(ep=S.REFERENCE_EP))


def test_unavailable_is_one_class_for_session_and_probe() -> None:
    from harness.worker import probe
    assert S.Unavailable is probe.Unavailable
