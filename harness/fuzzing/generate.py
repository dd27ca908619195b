"""Random valid ONNX graphs, and inputs on which the float64 reference gives finite outputs.

    from harness.fuzzing.generate import GeneratorConfig, generate
    graph = generate(seed=7, index=0, config=GeneratorConfig())   # the same (seed, index): the same bytes
    graph.model, graph.inputs, graph.reference_outputs, graph.ops

Why seeded per graph (``numpy.random.default_rng([seed, index])``) rather than one stream per campaign: graph 812
of a seed can be regenerated alone, and a resumed campaign continues with exactly the graphs a straight one would.

A graph is built op by op on tensors already there (ops.py), so its shapes are right by construction; it is then
checked with ``onnx.checker`` (full check) and strict shape inference, whose shapes must equal the builder's. A
graph that fails either is a generator bug and raises ``GeneratorBug``: tests run thousands of seeds through it.

The inputs are searched: up to ``input_tries`` draws (the first at a magnitude drawn per graph), each from
ranges half as wide as the last, until every output of
the float64 reference (harness.worker.reference, the ``reference`` profile's own session, run in this process) is
finite. A graph with no such draw is ``Rejected`` (counted, not compared): an Inf the reference itself gives says
nothing about a device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx
import onnx.shape_inference
from onnx import TensorProto, helper

from harness.errors import HarnessError
from harness.fuzzing.ops import (
    DEFAULT_RANGE,
    DTYPE_NAMES,
    FLOAT_TYPES,
    NEEDS,
    OPS,
    Builder,
    T,
    ops_for,
)

DEFAULT_OPSET = 21  # onnxruntime 1.32 and onnxruntime-web 1.31 run it; onnx 1.23's reference knows it
IR_VERSION = 10
# The first draw's range is DEFAULT_RANGE times a magnitude drawn log-uniformly from here, per graph: small values
# keep every op in its well-conditioned range, large ones reach float16's limits and the ops' saturating tails.
MAGNITUDES = (0.25, 4.0)
PRODUCER = "harness-fuzz"


class GeneratorBug(HarnessError):
    """A generated graph failed onnx's checker or shape inference, or its shapes differ from the builder's."""


class Rejected(Exception):
    """A graph that is valid but not worth comparing (no draw of inputs gives finite reference outputs)."""


@dataclass(frozen=True)
class GeneratorConfig:
    opset: int = DEFAULT_OPSET
    ops: tuple[str, ...] = ()  # empty: every op known at ``opset``
    max_nodes: int = 8
    input_tries: int = 6
    dtypes: tuple[tuple[int, float], ...] = ((TensorProto.FLOAT, 0.8), (TensorProto.FLOAT16, 0.1),
                                             (TensorProto.DOUBLE, 0.1))

    def op_names(self) -> list[str]:
        return ops_for(self.opset, list(self.ops) or None)


@dataclass
class Generated:
    name: str
    seed: int
    index: int
    model: onnx.ModelProto
    inputs: dict[str, np.ndarray]
    reference_outputs: dict[str, np.ndarray]
    dtype: str  # the graph inputs' element type
    coverage: dict[str, dict[str, list[str]]] = field(default_factory=dict)  # op -> attribute -> values
    input_tries: int = 1

    @property
    def ops(self) -> list[str]:
        return [n.op_type for n in self.model.graph.node]


def graph_name(seed: int, index: int) -> str:
    return f"fuzz-s{seed}-g{index:06d}"


def generate(seed: int, index: int, config: GeneratorConfig | None = None) -> Generated:
    """Graph ``index`` of campaign ``seed``; raises Rejected (no finite inputs) or GeneratorBug."""
    config = config or GeneratorConfig()
    rng = np.random.default_rng([seed, index])
    builder = _build(rng, config)
    name = graph_name(seed, index)
    model = _model(builder, name, config.opset)
    check(model, builder.shapes, name)
    inputs, outputs, tries = search_inputs(model, builder, np.random.default_rng([seed, index, 1]), config.input_tries)
    coverage = {op: {k: sorted(v) for k, v in attrs.items()} for op, attrs in builder.coverage.items()}
    return Generated(name, seed, index, model, inputs, outputs, DTYPE_NAMES[builder.inputs[0].dtype], coverage, tries)


def _build(rng: np.random.Generator, config: GeneratorConfig) -> Builder:
    names = config.op_names()
    kinds, weights = zip(*config.dtypes)
    dtype = int(rng.choice(kinds, p=np.asarray(weights) / sum(weights)))
    for _ in range(20):  # an unlucky draw may add no node at all; draw again from the same stream
        b = Builder(rng)
        b.add_input(_input_shape(rng, image=rng.random() < 0.5), dtype)
        if rng.random() < 0.3:
            b.add_input(_input_shape(rng, image=False), dtype)
        wanted = int(rng.integers(1, config.max_nodes + 1))
        for _ in range(wanted * 4):
            if len(b.nodes) >= wanted:
                break
            op = str(rng.choice(names))
            x = b.pick(NEEDS.get(op, lambda t: True))
            if x is not None:
                OPS[op][0](b, x)
        b.inputs = [i for i in b.inputs if i.name in b.consumed]
        if b.nodes and b.inputs:
            return b
    raise GeneratorBug("the generator drew no node in 20 attempts", hint="check GeneratorConfig.ops and max_nodes")


def _input_shape(rng: np.random.Generator, image: bool) -> tuple[int, ...]:
    if image:
        return (int(rng.integers(1, 3)), int(rng.integers(1, 5)), int(rng.integers(2, 9)), int(rng.integers(2, 9)))
    return tuple(int(rng.integers(1, 9)) for _ in range(int(rng.integers(1, 4))))


def _value_info(t: T) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(t.name, t.dtype, list(t.shape))


def _model(b: Builder, name: str, opset: int) -> onnx.ModelProto:
    """Every value no node consumes is a graph output (a dangling node would be optimised away unseen)."""
    produced = [t for t in b.tensors if t.name not in {i.name for i in b.inputs} and
                any(t.name in n.output for n in b.nodes)]
    outputs = [t for t in produced if t.name not in b.consumed]
    graph = helper.make_graph(b.nodes, name, [_value_info(i) for i in b.inputs], [_value_info(o) for o in outputs],
                              b.initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name=PRODUCER)
    model.ir_version = IR_VERSION
    return model


def check(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]], name: str) -> None:
    """onnx.checker (full) and strict shape inference, whose shapes must be the builder's."""
    try:
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True, data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise GeneratorBug(f"graph {name}: onnx refuses it: {str(exc).splitlines()[0][:300]}",
                           hint="a generator bug: report the seed and index") from None
    for info in (*inferred.graph.value_info, *inferred.graph.output):
        dims = info.type.tensor_type.shape.dim
        got = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        if info.name in shapes and got != shapes[info.name]:
            raise GeneratorBug(f"graph {name}: {info.name} is {got} by shape inference but {shapes[info.name]} by "
                               f"the generator", hint="a generator bug: report the seed and index")


def search_inputs(model: onnx.ModelProto, b: Builder, rng: np.random.Generator, tries: int
                  ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], int]:
    """Inputs on which every reference output is finite: each try draws from ranges half as wide as the last."""
    from harness.worker.reference import ReferenceSession
    session = ReferenceSession(model)
    names = [o.name for o in model.graph.output]
    magnitude = float(np.exp(rng.uniform(np.log(MAGNITUDES[0]), np.log(MAGNITUDES[1]))))
    for attempt in range(tries):
        feed = {i.name: _draw(rng, i, b.ranges.get(i.name), magnitude * 0.5 ** attempt) for i in b.inputs}
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # an overflow is what is searched
                outputs = dict(zip(names, session.run(None, feed)))
        except Exception as exc:  # noqa: BLE001 (the reference evaluator's failures are many kinds; the graph is unusable)
            raise Rejected(f"the reference evaluator failed: {type(exc).__name__}: {str(exc)[:200]}") from None
        if all(np.all(np.isfinite(np.asarray(v, dtype=np.float64))) for v in outputs.values()):
            return feed, outputs, attempt + 1
    raise Rejected(f"no finite reference outputs in {tries} draws of inputs")


def _draw(rng: np.random.Generator, t: T, given: tuple[float, float] | None, scale: float) -> np.ndarray:
    low, high = given or DEFAULT_RANGE
    if low > 0:  # a positive domain keeps its lower bound and narrows from above
        high = low + (high - low) * min(scale, 1.0)
    else:
        low, high = low * scale, high * scale
    return rng.uniform(low, high, size=t.shape).astype(FLOAT_TYPES[t.dtype])


def model_bytes(graph: Generated) -> bytes:
    return graph.model.SerializeToString(deterministic=True)


__all__ = ["DEFAULT_OPSET", "Generated", "GeneratorBug", "GeneratorConfig", "Rejected", "check", "generate",
           "graph_name", "model_bytes", "search_inputs"]
