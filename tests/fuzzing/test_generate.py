"""The generator: valid graphs over many seeds, the same bytes for the same seed, inputs searched until the float64
reference is finite."""

from __future__ import annotations

import collections

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from harness.fuzzing.generate import (
    GeneratorConfig,
    Rejected,
    generate,
    model_bytes,
    search_inputs,
)
from harness.fuzzing.ops import OPS, Builder, broadcast_shape, ops_for


def test_every_graph_of_many_seeds_passes_the_checker_and_strict_shape_inference():
    """generate() raises GeneratorBug for a graph onnx refuses or whose inferred shapes differ from the builder's;
    here it must not, and the float64 reference must give finite outputs on the inputs it found."""
    seen, rejected = collections.Counter(), 0
    for index in range(300):
        try:
            graph = generate(11, index)
        except Rejected:
            rejected += 1
            continue
        onnx.checker.check_model(graph.model, full_check=True)
        assert all(np.all(np.isfinite(v.astype(np.float64))) for v in graph.reference_outputs.values())
        seen.update(graph.ops)
    assert rejected <= 6, f"{rejected} of 300 graphs had no finite inputs or a failing reference"
    assert set(OPS) <= set(seen), f"never drawn: {sorted(set(OPS) - set(seen))}"


def test_the_same_seed_gives_byte_identical_models_and_inputs():
    first = [generate(3, i) for i in range(5)]
    again = [generate(3, i) for i in range(5)]
    assert [model_bytes(g) for g in first] == [model_bytes(g) for g in again]
    for a, b in zip(first, again):
        assert all(np.array_equal(a.inputs[k], b.inputs[k]) for k in a.inputs)
    other = [model_bytes(generate(4, i)) for i in range(5)]
    assert other != [model_bytes(g) for g in first]


def test_graph_i_does_not_depend_on_the_graphs_before_it():
    """A resumed campaign starts at graph i; it must be the graph a straight campaign drew."""
    straight = [model_bytes(generate(9, i)) for i in range(4)]
    assert model_bytes(generate(9, 3)) == straight[3]


def test_dtypes_and_opset_follow_the_config():
    config = GeneratorConfig(opset=17, dtypes=((TensorProto.DOUBLE, 1.0),))
    graph = generate(5, 0, config)
    assert graph.model.opset_import[0].version == 17
    assert graph.dtype == "float64"
    assert "Gelu" not in ops_for(17) and "Gelu" in ops_for(20)


def test_only_the_ops_asked_for_are_drawn():
    config = GeneratorConfig(ops=("Relu", "Add"))
    ops = {op for i in range(20) for op in generate(2, i, config).ops}
    assert ops <= {"Relu", "Add"}


def test_the_input_search_narrows_ranges_until_the_reference_is_finite():
    """Exp(100 x) in float16 overflows (e^11.1 > 65504) for x above 0.111: the first draw (at least +-0.5) fails,
    and the draws narrow until every element of x is below that."""
    from harness.fuzzing.generate import _model
    b = Builder(np.random.default_rng(0))
    x = b.add_input((16,), TensorProto.FLOAT16)
    scaled = b.node("Mul", [x.name, b.const(np.asarray(100.0, np.float16), "k")], x.shape, TensorProto.FLOAT16)
    b.node("Exp", [scaled.name], x.shape, TensorProto.FLOAT16)
    inputs, outputs, tries = search_inputs(_model(b, "overflow", 21), b, np.random.default_rng(0), 12)
    assert tries > 1
    assert all(np.all(np.isfinite(v.astype(np.float64))) for v in outputs.values())
    assert inputs["x_1"].astype(np.float64).max() < 0.111


def test_a_graph_with_no_finite_draw_is_rejected():
    """x - x is 0 everywhere, so 1/(x - x) is Inf on every draw."""
    from harness.fuzzing.generate import _model
    b = Builder(np.random.default_rng(0))
    x = b.add_input((4,), TensorProto.FLOAT)
    zero = b.node("Sub", [x.name, x.name], x.shape, TensorProto.FLOAT)
    b.node("Reciprocal", [zero.name], x.shape, TensorProto.FLOAT)
    with pytest.raises(Rejected, match="no finite reference outputs in 3 draws"):
        search_inputs(_model(b, "inf", 21), b, np.random.default_rng(0), 3)


def test_domain_ops_get_a_positive_input_range_or_a_guard():
    b = Builder(np.random.default_rng(0))
    x = b.add_input((4,), TensorProto.FLOAT)
    OPS["Log"][0](b, x)
    assert b.ranges[x.name][0] > 0  # a graph input: given a positive range
    y = b.node("Tanh", [x.name], x.shape, TensorProto.FLOAT)
    OPS["Sqrt"][0](b, y)
    assert [n.op_type for n in b.nodes[-3:]] == ["Abs", "Add", "Sqrt"]  # an intermediate: guarded


@pytest.mark.parametrize("a, c, out", [((2, 3), (3,), (2, 3)), ((2, 1), (1, 4), (2, 4)), ((3,), (2, 3), (2, 3)),
                                       ((2, 3), (2,), None)])
def test_broadcasting(a, c, out):
    assert broadcast_shape(a, c) == out
