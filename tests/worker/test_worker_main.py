"""The worker process (harness/worker/main.py): the conversation, constraints, error kinds, fault injection."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness.worker import main as W
from harness.worker import protocol as P

CPU_SPEC = {"name": "cpu", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
            "device_metadata": {}, "precision_hint": None, "session": {"graph_optimization": "disable"},
            "env": {}, "cpu_cores": None, "memory_limit_mb": None}


def _converse(requests: list[tuple[dict, dict | None]], spec: dict = CPU_SPEC) -> tuple[int, list]:
    """Run serve() in-process on framed requests; return its exit code and every reply (header, tensors)."""
    inp, out = io.BytesIO(), io.BytesIO()
    for header, tensors in requests:
        P.write_message(inp, header, tensors)
    inp.seek(0)
    code = W.serve(spec, inp, out)
    out.seek(0)
    replies = []
    while (message := P.read_message(out)) is not None:
        replies.append(message)
    return code, replies


@pytest.fixture
def model_path(tmp_path: Path, make_model) -> Path:
    path = tmp_path / "model.onnx"
    onnx.save(make_model(), str(path))
    return path


def test_hello_load_infer_bye(model_path: Path, make_model, reference) -> None:
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    code, replies = _converse([({"type": "load", "case": "tiny", "model_path": str(model_path)}, None),
                               ({"type": "infer", "datasets": 1, "measure": None}, {"0/x": x}),
                               ({"type": "bye"}, None),
                               ({"type": "load", "case": "never", "model_path": "/nope"}, None)])
    assert code == 0
    (hello, _), (loaded, _), (result, tensors) = replies  # nothing after bye
    assert hello["type"] == "hello" and hello["available"] is True and hello["pid"] == os.getpid()
    assert hello["protocol"] == P.PROTOCOL_VERSION and "onnxruntime" in hello["versions"]
    assert loaded["type"] == "loaded" and loaded["placement"]["fraction_on_ep"] == 1.0
    assert loaded["session_ms"] > 0 and loaded["providers"] == ["CPUExecutionProvider"]
    assert result["type"] == "result" and result["output_names"] == ["y"] and result["first_inference_ms"] > 0
    np.testing.assert_allclose(tensors["0/y"], reference(make_model(), x), rtol=1e-6, atol=1e-6)


def test_end_of_input_is_a_clean_exit() -> None:
    code, [(hello, _)] = _converse([])
    assert code == 0 and hello["type"] == "hello"


def test_errors_are_replies_not_deaths(tmp_path: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not onnx")
    code, replies = _converse([({"type": "load", "case": "bad", "model_path": str(bad)}, None),
                               ({"type": "infer", "datasets": 1}, {"0/x": np.zeros((1, 4), np.float32)}),
                               ({"type": "dance"}, None)])
    assert code == 0
    kinds = [(h["type"], h.get("kind")) for h, _ in replies[1:]]
    assert kinds == [("error", "session"), ("error", "run"), ("error", "protocol")]
    assert "infer before load" in replies[2][0]["message"]
    assert "unknown message 'dance'" in replies[3][0]["message"]


def test_an_unavailable_ep_says_why_in_hello() -> None:
    spec = {**CPU_SPEC, "ep": "OpenVINOExecutionProvider", "plugin": "surely_not_an_installed_plugin_xyz"}
    _, [(hello, _)] = _converse([], spec)
    assert hello["available"] is False and "surely_not_an_installed_plugin_xyz" in hello["reason"]


def test_memory_errors_are_classified_as_oom() -> None:
    out = io.BytesIO()
    worker = W.Worker(CPU_SPEC, out)
    worker.error("run", MemoryError())
    worker.error("session", RuntimeError("std::bad_alloc in arena"))
    worker.error("run", RuntimeError("shape mismatch"))
    out.seek(0)
    replies = [P.read_message(out)[0] for _ in range(3)]
    assert [(r["kind"], r["message"]) for r in replies] == [
        ("oom", "MemoryError"), ("oom", "std::bad_alloc in arena"), ("run", "shape mismatch")]


def test_threads_in_effect() -> None:
    threads = W.threads_in_effect({"session": {"intra_op_threads": 0}})
    assert threads["intra_op"] == 0 and threads["intra_op_effective"] == len(os.sched_getaffinity(0))
    assert W.threads_in_effect({"session": {"intra_op_threads": 3}})["intra_op_effective"] == 3


def _python(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})}, cwd=Path(__file__).resolve().parents[2])


def test_constraints_pin_one_core_and_cap_memory() -> None:
    proc = _python(
        "import json, resource\n"
        "from harness.worker.main import apply_constraints, _data_in_use\n"
        "applied = apply_constraints({'cpu_cores': 1, 'memory_limit_mb': 64})\n"
        "soft = resource.getrlimit(resource.RLIMIT_DATA)[0]\n"
        "try:\n    hog = bytearray(256 << 20); oom = False\n"
        "except MemoryError:\n    oom = True\n"
        "print(json.dumps({**applied, 'headroom': soft - _data_in_use(), 'oom': oom}))\n")
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert len(got["affinity"]) == 1 and got["memory_limit_mb"] == 64
    assert 0 < got["headroom"] <= 64 << 20 and got["oom"] is True


def test_no_fault_without_the_variable_or_a_matching_case(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(W.FAULT_ENV, raising=False)
    W.injected_fault("anything")
    monkeypatch.setenv(W.FAULT_ENV, "exit:other*")
    W.injected_fault("mine")  # still alive


@pytest.mark.parametrize("fault, code", [("exit", 3), ("segfault", -11)])
def test_injected_faults_kill_the_process(fault: str, code: int) -> None:
    proc = _python("from harness.worker.main import injected_fault; injected_fault('boom_case')",
                   {W.FAULT_ENV: f"{fault}:boom*"})
    assert proc.returncode == code, proc.stderr


def test_bad_arguments_print_usage() -> None:
    proc = _python("import sys; from harness.worker.main import main; sys.exit(main(['--nope']))")
    assert proc.returncode == 2 and "usage: python -m harness.worker --spec" in proc.stderr


def test_the_oom_fault_caps_itself_without_a_memory_limit() -> None:
    """A profile with no memory limit: the test-only hog stops at 1 GiB above what is in use (MemoryError), not
    at the host's end."""
    proc = _python(
        "import resource\n"
        "from harness.worker.main import injected_fault, _data_in_use, OOM_FAULT_HEADROOM\n"
        "assert resource.getrlimit(resource.RLIMIT_DATA)[0] == resource.RLIM_INFINITY\n"
        "before = _data_in_use()\n"
        "try:\n    injected_fault('hog_case')\n"
        "except MemoryError:\n"
        "    soft = resource.getrlimit(resource.RLIMIT_DATA)[0]\n"
        "    print('capped', 0 < soft - before <= OOM_FAULT_HEADROOM + (64 << 20))\n",
        {W.FAULT_ENV: "oom:hog*"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "capped True"


def test_cores_that_do_not_exist_make_the_worker_unavailable_in_words() -> None:
    offered = sorted(os.sched_getaffinity(0))
    ghost = [max(offered) + 5, max(offered) + 7]
    spec = {**CPU_SPEC, "cpu_cores": [offered[0], *ghost]}
    applied = W.apply_constraints(dict(spec))
    assert applied["missing_cores"] == ghost and sorted(os.sched_getaffinity(0)) == offered  # nothing pinned
    _, [(hello, _)] = _converse([], spec)
    assert hello["available"] is False and hello["unavailable"] == "no_device"
    assert hello["missing_cores"] == ghost
    assert hello["reason"].startswith(f"cpu_cores {ghost} do not exist here (this host offers ")
    assert W._ranges([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    _, [(hello, _)] = _converse([], {**CPU_SPEC, "cpu_cores": len(offered) + 3})
    assert hello["available"] is False and hello["missing_cores"] == 3
    assert hello["reason"] == (f"cpu_cores {len(offered) + 3} asks for more cores than this host offers "
                               f"({W._ranges(offered)})")


def test_exotic_inputs_and_outputs_cross_the_worker(tmp_path: Path) -> None:
    """bfloat16 in, float8 and int4 out: the worker builds OrtValues and the reply carries ml_dtypes arrays."""
    import ml_dtypes
    from onnx import TensorProto as T
    from onnx import helper
    nodes = [helper.make_node("Cast", ["x"], ["f"], to=T.FLOAT), helper.make_node("Cast", ["f"], ["e"], to=T.FLOAT8E4M3FN),
             helper.make_node("Cast", ["f"], ["i"], to=T.INT4)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", T.BFLOAT16, [3])],
                              [helper.make_tensor_value_info("e", T.FLOAT8E4M3FN, [3]),
                               helper.make_tensor_value_info("i", T.INT4, [3])])
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), str(path))
    x = np.array([1.5, -3.0, 2.25], dtype=ml_dtypes.bfloat16)
    _, replies = _converse([({"type": "load", "case": "exotic", "model_path": str(path)}, None),
                            ({"type": "infer", "datasets": 1, "measure": None}, {"0/x": x})])
    result, tensors = replies[2]
    assert result["type"] == "result", result
    assert tensors["0/e"].dtype == ml_dtypes.float8_e4m3fn and tensors["0/e"].astype(float).tolist() == [1.5, -3.0, 2.25]
    assert tensors["0/i"].dtype == ml_dtypes.int4 and tensors["0/i"].astype(int).tolist() == [2, -3, 2]


def test_a_model_without_inputs_runs_once_per_data_set(tmp_path: Path) -> None:
    from onnx import TensorProto as T
    from onnx import helper
    node = helper.make_node("Constant", [], ["y"], value=onnx.numpy_helper.from_array(np.arange(3, dtype=np.float32)))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", T.FLOAT, [3])])
    path = tmp_path / "const.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    _, replies = _converse([({"type": "load", "case": "c", "model_path": str(path)}, None),
                            ({"type": "infer", "datasets": 2, "measure": None}, None),
                            ({"type": "load", "case": "c", "model_path": str(path)}, None),
                            ({"type": "infer", "datasets": 1, "dataset_ids": [4], "measure": None}, None)])
    assert sorted(replies[2][1]) == ["0/y", "1/y"] and replies[2][1]["1/y"].tolist() == [0.0, 1.0, 2.0]
    assert sorted(replies[4][1]) == ["4/y"]
