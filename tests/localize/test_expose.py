"""Topological order, the tensors both sides still have, batches under the cap, exposure undone in place."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper

from harness.localize import expose as X


def _graph(nodes: list) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_nodes_out_of_order_are_walked_in_topological_order() -> None:
    model = _graph([helper.make_node("Relu", ["a"], ["y"], name="second"),
                    helper.make_node("Neg", ["x"], ["a"], name="first")])
    view = X.view_of(model)
    assert [n.name for n in view.nodes] == ["first", "second"]
    assert view.producer == {"a": 0, "y": 1}


def test_only_names_every_side_still_produces_are_candidates_and_outputs_are_not() -> None:
    model = _graph([helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Abs", ["a"], ["b"]),
                    helper.make_node("Relu", ["b"], ["y"])])
    view = X.view_of(model)
    assert X.candidates(view, [{"a", "b", "y"}, {"b", "y", "a_quantized"}]) == ["b"]


def test_batches_stay_under_the_cap_and_an_oversized_tensor_goes_alone() -> None:
    sizes = {"a": 40, "b": 40, "c": 40, "d": 500, "e": 10}
    assert X.batches(list(sizes), sizes, 100) == [["a", "b"], ["c"], ["d"], ["e"]]


def test_an_unsized_tensor_is_assumed_as_large_as_the_largest_sized_one() -> None:
    assert X.guess({"a": 10, "b": 70}, "unknown") == 70
    assert X.batches(["a", "unknown", "b"], {"a": 10, "b": 70}, 100) == [["a", "unknown"], ["b"]]


def test_sizes_come_from_shape_inference_with_the_data_sets_real_shapes() -> None:
    model = _graph([helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])])
    sizes = X.estimate_sizes(model, {"x": (5, 8)})
    assert sizes["a"] == 5 * 8 * 4


def test_exposing_adds_outputs_in_place_and_unexposing_restores_the_graph() -> None:
    model = _graph([helper.make_node("Neg", ["x"], ["a"]), helper.make_node("Relu", ["a"], ["y"])])
    before = X.expose(model, ["a", "y"])
    assert [o.name for o in model.graph.output] == ["y", "a"]
    X.unexpose(model, before)
    assert [o.name for o in model.graph.output] == ["y"]


def test_stripping_weights_keeps_names_and_drops_bytes() -> None:
    model = _graph([helper.make_node("Add", ["x", "w"], ["y"])])
    model.graph.initializer.append(onnx.numpy_helper.from_array(np.ones(1000, np.float32), "w"))
    X.strip_weights(model)
    assert model.graph.initializer[0].name == "w" and model.ByteSize() < 1000


def test_weights_in_constant_nodes_are_stripped_too_but_small_shape_tensors_kept() -> None:
    big = onnx.numpy_helper.from_array(np.ones(5000, np.float32), "w")
    shape = onnx.numpy_helper.from_array(np.array([5, 1000], np.int64), "s")
    model = _graph([helper.make_node("Constant", [], ["w"], value=big),
                    helper.make_node("Constant", [], ["s"], value=shape),
                    helper.make_node("Reshape", ["w", "s"], ["y"])])
    X.strip_weights(model, keep_below=X.SHAPE_TENSOR_BYTES)
    assert model.ByteSize() < 1000
    assert X.estimate_sizes(model, {"x": (1, 8)})["y"] == 5000 * 4  # the Reshape's shape survived
