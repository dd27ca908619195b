"""Suspects ordered by amplification, with op, attributes and the EP from the placement audit."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

from harness.localize.expose import view_of
from harness.localize.rank import ep_of, rank
from harness.localize.scope import judge


def _model():
    graph = helper.make_graph(
        [helper.make_node("Neg", ["x"], ["a"], name="n1"),
         helper.make_node("Softmax", ["a"], ["b"], name="n2", axis=-1),
         helper.make_node("Relu", ["b"], ["y"], name="n3")],
        "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    return helper.make_model(graph)


def test_the_node_that_grows_the_error_most_ranks_first_with_its_attributes() -> None:
    view = view_of(_model())
    ref = np.ones((2, 4), np.float32)
    errors = {"a": judge("a", ref, ref * np.float32(1.001), 0.0, 1e-3, 4),
              "b": judge("b", ref, ref * np.float32(1.2), 1e-3, 1e-3, 4)}
    carried = {"x": 0.0, "a": errors["a"].error, "b": errors["b"].error}
    placement = {"available": True, "per_ep": {"CPUExecutionProvider": 3}, "fell_back": [], "fell_back_count": 0}
    suspects = rank(view, errors, carried, 1e-3, placement, "CPUExecutionProvider")
    assert [s.node for s in suspects] == ["n2", "n1"]
    assert suspects[0].op_type == "Softmax" and suspects[0].attributes == {"axis": "-1"}
    assert suspects[0].beyond and suspects[0].ep == "CPUExecutionProvider"
    assert "n2 (Softmax: axis=-1) on CPUExecutionProvider" in suspects[0].line()


def test_a_node_that_fell_back_is_named_with_the_ep_that_ran_it() -> None:
    node = helper.make_node("Neg", ["x"], ["a"], name="n1")
    placement = {"available": True, "fell_back": ["n1(Neg)->CPUExecutionProvider"], "fell_back_count": 1}
    assert ep_of(node, placement, "OpenVINOExecutionProvider")[0] == "CPUExecutionProvider"
    assert ep_of(node, {"available": False, "reason": "old build"}, "X")[1].startswith("assumed")
