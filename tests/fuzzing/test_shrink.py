"""The shrinker: ddmin on its own, and on a graph where one op is computed differently (an injected comparison,
in this process: the reference evaluator against a copy whose Sigmoid is HardSigmoid)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from harness.fuzzing.generate import generate
from harness.fuzzing.shrink import (
    Shrunk,
    ddmin,
    reference_values,
    shrink,
    shrink_attributes,
    shrink_nodes,
    subgraph,
    value_types,
)
from harness.worker.reference import ReferenceSession


def test_ddmin_finds_the_two_items_that_matter():
    calls = []

    def test(items: list[int]) -> bool:
        calls.append(list(items))
        return 3 in items and 11 in items
    assert sorted(ddmin(list(range(16)), test)) == [3, 11]
    assert len(calls) <= 64  # ddmin is at worst quadratic; 16 items, 2 needed


def test_ddmin_keeps_everything_when_nothing_can_go():
    assert ddmin([0, 1, 2], lambda items: len(items) == 3) == [0, 1, 2]


def _model() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """x -> Tanh -> MatMul W -> Sigmoid -> Mul 2 -> Relu -> y, and x -> Abs -> z: Sigmoid sits in the middle."""
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((4, 4)).astype(np.float32), "W")
    two = numpy_helper.from_array(np.asarray(2.0, np.float32), "two")
    nodes = [helper.make_node("Tanh", ["x"], ["t"], name="tanh"), helper.make_node("MatMul", ["t", "W"], ["m"], name="mm"),
             helper.make_node("Sigmoid", ["m"], ["s"], name="sig"), helper.make_node("Mul", ["s", "two"], ["d"], name="mul"),
             helper.make_node("Relu", ["d"], ["y"], name="relu"), helper.make_node("Abs", ["x"], ["z"], name="abs")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 4]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 4])], [w, two])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    return model, {"x": rng.uniform(-2, 2, (3, 4)).astype(np.float32)}


def _faulty(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for node in copy.graph.node:
        if node.op_type == "Sigmoid":
            node.op_type = "HardSigmoid"
    return copy


def disagrees(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> bool:
    good = ReferenceSession(model).run(None, feed)
    bad = ReferenceSession(_faulty(model)).run(None, feed)
    return any(not np.allclose(g, b, rtol=1e-4, atol=1e-5) for g, b in zip(good, bad))


def test_a_disagreement_in_one_op_shrinks_to_that_node_fed_its_real_inputs():
    model, feed = _model()
    assert disagrees(model, feed)
    shrunk = shrink_nodes(model, feed, disagrees)
    assert [n.op_type for n in shrunk.model.graph.node] == ["Sigmoid"]
    assert (shrunk.nodes_before, shrunk.nodes_after) == (6, 1)
    [fed] = shrunk.model.graph.input
    assert fed.name == "m"  # the MatMul's output, promoted to a graph input
    values = reference_values(model, feed)
    np.testing.assert_array_equal(shrunk.feed["m"], values["m"])
    onnx.checker.check_model(shrunk.model, full_check=True)


def test_a_subgraph_that_onnx_refuses_is_none():
    model, feed = _model()
    values, types = reference_values(model, feed), value_types(model)
    assert subgraph(model, [], values, types) is None
    built = subgraph(model, [1, 2], values, types)
    assert built is not None and [i.name for i in built[0].graph.input] == ["t"]


def test_attributes_whose_default_keeps_the_failure_are_dropped_and_required_ones_stay():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3])
    node = helper.make_node("MaxPool", ["x"], ["y"], kernel_shape=[2, 2], strides=[1, 1], ceil_mode=0)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y]), opset_imports=[helper.make_opsetid("", 21)])
    feed = {"x": np.zeros((1, 1, 4, 4), np.float32)}
    shrunk = shrink_attributes(Shrunk(model, feed, 1, 1, [], 0), lambda m, f: True)
    assert sorted(shrunk.attributes_dropped) == ["MaxPool.ceil_mode", "MaxPool.strides"]
    assert [a.name for a in shrunk.model.graph.node[0].attribute] == ["kernel_shape"]


def test_generated_graphs_shrink_to_one_node_of_the_op_that_differs():
    """On fuzzed graphs holding a Sigmoid (with whatever guards and broadcasts they drew), the shrinker ends on
    that Sigmoid alone."""
    done = 0
    for index in range(200):
        graph = generate(21, index)
        if "Sigmoid" not in graph.ops or not disagrees(graph.model, graph.inputs):
            continue
        shrunk = shrink(graph.model, graph.inputs, disagrees)
        assert [n.op_type for n in shrunk.model.graph.node] == ["Sigmoid"], graph.name
        done += 1
        if done == 3:
            break
    assert done == 3
