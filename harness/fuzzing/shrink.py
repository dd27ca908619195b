"""Shrink a graph on which two profiles disagree to a minimal one on which they still do.

Nodes first, by delta debugging (Zeller's ddmin) over the graph's nodes: a candidate keeps a subset of them; a
value it reads that no kept node makes becomes a graph input, fed with the value the float64 reference computed
for it in the whole graph (``reference_values``), so each kept node still sees the numbers it saw in the campaign.
Every value a kept node makes that no kept node reads is an output. The result is 1-minimal: dropping any one
more node loses the disagreement.

Then attributes, where that is simple: each attribute of the kept nodes is dropped (its default applies) when the
graph stays valid with the same output shapes and the disagreement stays. Shapes are not shrunk: a smaller input
would need the whole graph's shapes drawn again.

``still_fails(model, feed)`` is the caller's test (it runs both profiles); a candidate onnx refuses is skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import onnx
import onnx.shape_inference
from onnx import helper

Test = Callable[[onnx.ModelProto, dict[str, np.ndarray]], bool]


@dataclass
class Shrunk:
    model: onnx.ModelProto
    feed: dict[str, np.ndarray]
    nodes_before: int
    nodes_after: int
    attributes_dropped: list[str]
    tests: int


def value_types(model: onnx.ModelProto) -> dict[str, onnx.TypeProto]:
    """Every value's type, from strict shape inference (the fuzzer's graphs are fully static)."""
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    graph = inferred.graph
    return {v.name: v.type for v in (*graph.input, *graph.value_info, *graph.output)}


def reference_values(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Every value of the graph as the float64 reference computes it, narrowed to its declared type."""
    from harness.worker.reference import ReferenceSession
    types = value_types(model)
    exposed = onnx.ModelProto()
    exposed.CopyFrom(model)
    present = {o.name for o in exposed.graph.output}
    for node in model.graph.node:
        for name in node.output:
            if name and name not in present:
                exposed.graph.output.append(helper.make_value_info(name, types[name]))
    names = [o.name for o in exposed.graph.output]
    return {**feed, **dict(zip(names, ReferenceSession(exposed).run(None, feed)))}


def subgraph(model: onnx.ModelProto, keep: Sequence[int], values: dict[str, np.ndarray],
             types: dict[str, onnx.TypeProto]) -> tuple[onnx.ModelProto, dict[str, np.ndarray]] | None:
    """The graph of the nodes at ``keep`` (indices in graph order), or None when it is not a valid graph."""
    nodes = [model.graph.node[i] for i in sorted(keep)]
    initializers = {t.name: t for t in model.graph.initializer}
    produced = {t for n in nodes for t in n.output if t}
    read = [t for n in nodes for t in n.input if t]
    fed = list(dict.fromkeys(t for t in read if t not in produced and t not in initializers))
    original_outputs = {o.name for o in model.graph.output}
    outputs = [t for n in nodes for t in n.output if t and (t not in read or t in original_outputs)]
    if not outputs or any(t not in values for t in fed):
        return None
    graph = helper.make_graph(nodes, model.graph.name, [helper.make_value_info(t, types[t]) for t in fed],
                              [helper.make_value_info(t, types[t]) for t in outputs],
                              [initializers[t] for t in dict.fromkeys(read) if t in initializers])
    candidate = helper.make_model(graph, opset_imports=list(model.opset_import), producer_name=model.producer_name)
    candidate.ir_version = model.ir_version
    try:
        onnx.checker.check_model(candidate, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        return None
    return candidate, {t: values[t] for t in fed}


def ddmin(items: list[int], test: Callable[[list[int]], bool]) -> list[int]:
    """Zeller's ddmin: a 1-minimal subset of ``items`` on which ``test`` holds (it holds on ``items``)."""
    n = 2
    while len(items) >= 2:
        size = len(items) // n
        chunks = [items[i:i + size] for i in range(0, len(items), size)] if size else [[i] for i in items]
        reduced = False
        for chunk in chunks:
            if test(chunk):
                items, n, reduced = chunk, 2, True
                break
        if not reduced:
            for chunk in chunks:
                rest = [i for i in items if i not in chunk]
                if rest and test(rest):
                    items, n, reduced = rest, max(n - 1, 2), True
                    break
        if not reduced:
            if n >= len(items):
                break
            n = min(len(items), n * 2)
    return items


def shrink_nodes(model: onnx.ModelProto, feed: dict[str, np.ndarray], still_fails: Test) -> Shrunk:
    values = reference_values(model, feed)
    types = value_types(model)
    tests = 0
    cache: dict[tuple[int, ...], bool] = {}

    def holds(keep: list[int]) -> bool:
        nonlocal tests
        key = tuple(sorted(keep))
        if key not in cache:
            built = subgraph(model, key, values, types)
            tests += built is not None
            cache[key] = built is not None and still_fails(*built)
        return cache[key]

    everything = list(range(len(model.graph.node)))
    kept = ddmin(everything, holds)
    built = subgraph(model, kept, values, types) if kept != everything else None
    small, small_feed = built if built is not None else (model, feed)
    return Shrunk(small, small_feed, len(everything), len(small.graph.node), [], tests)


def _same_shapes(model: onnx.ModelProto, before: dict[str, onnx.TypeProto]) -> bool:
    try:
        onnx.checker.check_model(model, full_check=True)
        after = value_types(model)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError):
        return False
    return all(after.get(o.name) == before.get(o.name) for o in model.graph.output)


def shrink_attributes(shrunk: Shrunk, still_fails: Test) -> Shrunk:
    """Drop each attribute whose default keeps the graph valid, its output shapes and the disagreement."""
    model = onnx.ModelProto()
    model.CopyFrom(shrunk.model)
    before = value_types(model)
    for node in model.graph.node:
        for attr in list(node.attribute):
            node.attribute.remove(attr)
            if _same_shapes(model, before) and still_fails(model, shrunk.feed):
                shrunk.attributes_dropped.append(f"{node.op_type}.{attr.name}")
                shrunk.tests += 1
                continue
            shrunk.tests += 1
            node.attribute.append(attr)
            _restore_order(node)
    shrunk.model = model
    return shrunk


def _restore_order(node: onnx.NodeProto) -> None:
    """Attributes sorted by name, as helper.make_node writes them: the saved repro is the same bytes each time."""
    ordered = sorted(node.attribute, key=lambda a: a.name)
    del node.attribute[:]
    node.attribute.extend(ordered)


def shrink(model: onnx.ModelProto, feed: dict[str, np.ndarray], still_fails: Test) -> Shrunk:
    return shrink_attributes(shrink_nodes(model, feed, still_fails), still_fails)


__all__ = ["Shrunk", "ddmin", "reference_values", "shrink", "shrink_attributes", "shrink_nodes", "subgraph",
           "value_types"]
