"""Synthetic cases with a known place of divergence (fixtures: tests run with --import-mode=importlib)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from harness.golden.layout import write_dataset


def _save_case(folder: Path, model: onnx.ModelProto, x: np.ndarray) -> Path:
    """model.onnx plus one data set whose golden is the fp32 CPU EP's output."""
    folder.mkdir(parents=True, exist_ok=True)
    onnx.checker.check_model(model)
    onnx.save(model, str(folder / "model.onnx"))
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"x": x})))
    write_dataset(folder, 0, {"x": x}, outputs, ["x"], list(outputs), force=True)
    return folder


def _model(nodes: list, inits: list, features: int, outputs: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", outputs])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 9
    return model


def overflow_model() -> onnx.ModelProto:
    """x @ W1 -> Tanh -> Mul by 1e5 ('amplify') -> Mul by 1e-5 -> @ W2. Every node is benign in fp16 except
    'amplify', whose constant 1e5 does not fit in float16 (max 65504): the fp16 transform clips it, so the output
    is a third off, while the other nodes only round (~1e-3)."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.normal(size=(16, 16)) * 0.3).astype(np.float32), "W1"),
             numpy_helper.from_array(np.array(1e5, np.float32), "big"),
             numpy_helper.from_array(np.array(1e-5, np.float32), "small"),
             numpy_helper.from_array((rng.normal(size=(16, 4)) * 0.3).astype(np.float32), "W2")]
    nodes = [helper.make_node("MatMul", ["x", "W1"], ["h1"], name="mm1"),
             helper.make_node("Tanh", ["h1"], ["h2"], name="tanh1"),
             helper.make_node("Mul", ["h2", "big"], ["h3"], name="amplify"),
             helper.make_node("Mul", ["h3", "small"], ["h4"], name="shrink"),
             helper.make_node("MatMul", ["h4", "W2"], ["y"], name="mm2")]
    return _model(nodes, inits, 16, 4)


def chain_model(length: int, width: int) -> onnx.ModelProto:
    """x -> (Add 0.001, Relu) x length: every activation is [N, width] float32."""
    inits = [numpy_helper.from_array(np.array(1e-3, np.float32), "c")]
    nodes, last = [], "x"
    for i in range(length):
        nodes.append(helper.make_node("Add", [last, "c"], [f"a{i}"], name=f"add{i}"))
        last = f"r{i}" if i < length - 1 else "y"
        nodes.append(helper.make_node("Relu", [f"a{i}"], [last], name=f"relu{i}"))
    return _model(nodes, inits, width, width)


def fusion_model() -> onnx.ModelProto:
    """Mul by a scalar then MatMul: onnxruntime's MatMulScaleFusion folds the scale into the MatMul, which rounds
    differently from the unfused pair (the kind of change onnxruntime #24711 reports)."""
    rng = np.random.default_rng(3)
    inits = [numpy_helper.from_array(np.array(0.37, np.float32), "s"),
             numpy_helper.from_array(rng.normal(size=(64, 64)).astype(np.float32), "W")]
    nodes = [helper.make_node("Mul", ["x", "s"], ["scaled"], name="scale"),
             helper.make_node("MatMul", ["scaled", "W"], ["y"], name="mm")]
    return _model(nodes, inits, 64, 64)


def layernorm_model(width: int = 64) -> onnx.ModelProto:
    """LayerNorm spelt out in nine nodes: onnxruntime's LayerNormFusion turns it into one LayerNormalization, which
    rounds differently; exposing any of var/ve/sd/n/d2 as an output stops the fusion."""
    rng = np.random.default_rng(5)
    inits = [numpy_helper.from_array(np.array(2.0, np.float32), "two"),
             numpy_helper.from_array(np.array(1e-5, np.float32), "eps"),
             numpy_helper.from_array(rng.normal(size=width).astype(np.float32), "gamma"),
             numpy_helper.from_array(rng.normal(size=width).astype(np.float32), "beta")]
    nodes = [helper.make_node("ReduceMean", ["x"], ["mu"], axes=[-1], name="mean"),
             helper.make_node("Sub", ["x", "mu"], ["d"], name="center"),
             helper.make_node("Pow", ["d", "two"], ["d2"], name="square"),
             helper.make_node("ReduceMean", ["d2"], ["var"], axes=[-1], name="variance"),
             helper.make_node("Add", ["var", "eps"], ["ve"], name="add_eps"),
             helper.make_node("Sqrt", ["ve"], ["sd"], name="sqrt"),
             helper.make_node("Div", ["d", "sd"], ["n"], name="normalize"),
             helper.make_node("Mul", ["n", "gamma"], ["g"], name="gain"),
             helper.make_node("Add", ["g", "beta"], ["y"], name="bias")]
    return _model(nodes, inits, width, width)


@pytest.fixture
def layernorm_case(tmp_path: Path) -> Path:
    x = (np.random.default_rng(4).normal(size=(16, 64)) * 3 + 1).astype(np.float32)
    return _save_case(tmp_path / "layernorm", layernorm_model(), x)


@pytest.fixture
def overflow_case(tmp_path: Path) -> Path:
    x = np.random.default_rng(1).normal(size=(4, 16)).astype(np.float32)
    return _save_case(tmp_path / "overflow", overflow_model(), x)


@pytest.fixture
def chain_case() -> Callable[[Path, int, int], Path]:
    def make(folder: Path, length: int, width: int) -> Path:
        x = np.random.default_rng(2).uniform(-1, 1, (4, width)).astype(np.float32)
        return _save_case(folder, chain_model(length, width), x)
    return make


@pytest.fixture
def fusion_case(tmp_path: Path) -> Path:
    x = np.random.default_rng(4).normal(size=(16, 64)).astype(np.float32)
    return _save_case(tmp_path / "fusion", fusion_model(), x)


@pytest.fixture(autouse=True)
def private_cache(cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Transforms are cached in the session's scratch cache, never the user's."""
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))


def perturb_after(node_name: str, delta: float) -> Callable[[onnx.ModelProto], None]:
    """Test-only hook for LocalizeOptions.edit_profile_model: add ``delta`` to one node's output, keeping its name
    for its consumers (the perturbation is that node's, as a faulty kernel's would be)."""
    def edit(model: onnx.ModelProto) -> None:
        [node] = [n for n in model.graph.node if n.name == node_name]
        out = node.output[0]
        node.output[0] = f"{out}__raw"
        model.graph.initializer.append(numpy_helper.from_array(np.array(delta, np.float32), f"{out}__delta"))
        model.graph.node.append(helper.make_node("Add", [f"{out}__raw", f"{out}__delta"], [out], name=f"{out}__perturb"))
        ordered = list(model.graph.node)
        model.graph.ClearField("node")
        model.graph.node.extend(_topological(ordered, model))
    return edit


def _topological(nodes: list, model: onnx.ModelProto) -> list:
    ready = {i.name for i in model.graph.input} | {i.name for i in model.graph.initializer}
    out, pending = [], list(nodes)
    while pending:
        for node in pending:
            if all(t in ready for t in node.input):
                out.append(node)
                ready.update(node.output)
                pending.remove(node)
                break
    return out


@pytest.fixture
def perturb() -> Callable[[str, float], Callable[[onnx.ModelProto], None]]:
    return perturb_after
