"""Which intermediate tensors can be compared, in what order, and in batches of bounded size.

Polygraphy's answer to "where does it diverge" marks every tensor as an output at once: memory grows to the sum
of all activations (1028 MiB against 112 MiB for a plain run on a 10 MB OCR model). Here the graph is walked in
topological order and cut into batches whose estimated bytes stay under a cap; each batch is exposed as extra
graph outputs on both sides, compared, and dropped before the next one, so the peak is a plain run plus one batch.

Sizes come from onnx shape inference with the graph inputs fixed to the data set's real shapes; a tensor whose
shape inference cannot size is assumed as large as the largest tensor it could size (the batch is then still
bounded by that guess), and is sized exactly once a batch has held it.

A profile's precision transform renames and inserts nodes (fp16 casts, int8 quantise/dequantise), but the
original tensor names that a consumer reads survive it; only names present on both sides are compared.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import onnx

# ONNX element type -> bytes per element, for the size estimate (strings count as pointers).
_ITEM_BYTES = {onnx.TensorProto.STRING: 8}
_FALLBACK_BYTES = 1 << 20  # a tensor nothing could size, in a graph where nothing was sized either


@dataclass(frozen=True)
class GraphView:
    """The original graph's structure (no weights): nodes in topological order, who produces each tensor."""

    nodes: list[onnx.NodeProto]
    producer: dict[str, int]  # tensor name -> index into nodes
    graph_inputs: list[str]
    initializers: frozenset[str]
    graph_outputs: list[str]
    nested: list[str]  # nodes holding a subgraph (If, Loop, Scan): their inside is not searched

    def inputs_of(self, index: int) -> list[str]:
        """A node's tensor inputs that some node produces or the graph feeds (no weights, no empty names)."""
        return [t for t in self.nodes[index].input if t and t not in self.initializers]


def topological(graph: onnx.GraphProto) -> list[onnx.NodeProto]:
    """Kahn's order, stable in the file's order: ONNX requires sorted graphs, but a hand-edited one may not be."""
    ready = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        progressed = [n for n in pending if all(t in ready for t in n.input)]
        if not progressed:  # inputs from an outer scope or a cycle: keep the file's order for the rest
            ordered += pending
            break
        for node in progressed:
            ready.update(node.output)
        ordered += progressed
        taken = {id(n) for n in progressed}
        pending = [n for n in pending if id(n) not in taken]
    return ordered


def view_of(model: onnx.ModelProto) -> GraphView:
    graph = model.graph
    nodes = topological(graph)
    producer = {t: i for i, n in enumerate(nodes) for t in n.output if t}
    nested = [f"{n.name or '?'} ({n.op_type})" for n in nodes
              if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in n.attribute)]
    inits = frozenset(i.name for i in graph.initializer)
    return GraphView(nodes, producer, [i.name for i in graph.input if i.name not in inits], inits,
                     [o.name for o in graph.output], nested)


def node_outputs(model: onnx.ModelProto) -> set[str]:
    """Tensor names the model's top-level nodes produce (what a transformed side still offers)."""
    return {t for n in model.graph.node for t in n.output if t}


def candidates(view: GraphView, offered: Iterable[set[str]]) -> list[str]:
    """Intermediate tensors in topological order that every side still produces; graph outputs are compared
    on every run anyway."""
    common = set.intersection(*map(set, offered))
    outputs = set(view.graph_outputs)
    return [t for n in view.nodes for t in n.output if t and t in common and t not in outputs]


def with_fixed_inputs(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> onnx.ModelProto:
    """A copy whose graph inputs have the data set's concrete shapes, so shape inference can size tensors."""
    fixed = copy.deepcopy(model)
    for value in fixed.graph.input:
        if value.name in shapes and value.type.HasField("tensor_type"):
            dims = value.type.tensor_type.shape
            dims.ClearField("dim")
            for size in shapes[value.name]:
                dims.dim.add().dim_value = int(size)
    return fixed


def estimate_sizes(model: onnx.ModelProto, shapes: dict[str, tuple[int, ...]]) -> dict[str, int]:
    """Bytes of each tensor shape inference can size for these input shapes (the others are absent)."""
    try:
        inferred = onnx.shape_inference.infer_shapes(with_fixed_inputs(model, shapes), data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, ValueError, RuntimeError, TypeError):
        # a model onnx cannot infer (custom domains, ops newer than onnx): every size is then a guess
        return {}
    sizes = {}
    for value in list(inferred.graph.value_info) + list(inferred.graph.output):
        size = _tensor_bytes(value.type)
        if size is not None:
            sizes[value.name] = size
    return sizes


def _tensor_bytes(type_proto: onnx.TypeProto) -> int | None:
    if not type_proto.HasField("tensor_type") or not type_proto.tensor_type.HasField("shape"):
        return None
    dims = type_proto.tensor_type.shape.dim
    if any(not d.HasField("dim_value") for d in dims):
        return None
    elem = type_proto.tensor_type.elem_type
    try:
        item = _ITEM_BYTES.get(elem) or onnx.helper.tensor_dtype_to_np_dtype(elem).itemsize
    except (KeyError, TypeError):
        return None
    return int(np.prod([d.dim_value for d in dims], dtype=np.int64)) * item


def guess(sizes: dict[str, int], name: str) -> int:
    """A tensor's size: known, else the largest known (an unknown one is assumed no smaller than that)."""
    return sizes.get(name) or max(sizes.values(), default=_FALLBACK_BYTES)


def batches(names: list[str], sizes: dict[str, int], cap_bytes: int) -> list[list[str]]:
    """Consecutive runs of ``names`` whose estimated bytes stay under the cap; a tensor larger than the cap
    goes alone (it cannot be compared in fewer bytes than itself)."""
    out: list[list[str]] = []
    current: list[str] = []
    used = 0
    for name in names:
        size = guess(sizes, name)
        if current and used + size > cap_bytes:
            out.append(current)
            current, used = [], 0
        current.append(name)
        used += size
    if current:
        out.append(current)
    return out


def expose(model: onnx.ModelProto, names: list[str]) -> int:
    """Add ``names`` as graph outputs (untyped: the session infers their type) in place; returns how many outputs
    were there before, for ``unexpose``. In place, because a copy of a large model's weights per batch is the
    memory this module exists to save."""
    before = len(model.graph.output)
    present = {o.name for o in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.ValueInfoProto(name=name))
    return before


def unexpose(model: onnx.ModelProto, before: int) -> None:
    del model.graph.output[before:]


_DATA_FIELDS = ("raw_data", "float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")
SHAPE_TENSOR_BYTES = 4096  # initializers up to this size keep their values: Reshape/Expand shapes live in them


def strip_weights(model: onnx.ModelProto, keep_below: int = 0) -> None:
    """Keep the graph's structure and names, drop the initializers' bytes (those of ``keep_below`` bytes or more):
    localisation keeps the original graph for topology and attributes only, and shape inference needs the values
    of small shape tensors, never of the weights, so it runs on a copy without them."""
    constants = [a.t for n in model.graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"]
    for tensor in [*model.graph.initializer, *constants]:  # some exporters (Paddle) keep weights in Constant nodes
        if keep_below and tensor.ByteSize() < keep_below:
            continue
        for name in _DATA_FIELDS:
            tensor.ClearField(name)
