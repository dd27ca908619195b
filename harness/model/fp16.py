"""fp16 and mixed-precision copies of a model that really load, with a report of what stayed float32.

Why not just call a converter: on real models both public converters leave graphs ONNX Runtime refuses
(a `Cast(to=float)` whose output is then typed float16, the same inside If/Loop bodies, float16 scales
fed to DequantizeLinear). So the conversion here (1) names every node, (2) decides which nodes stay
float32 and why (quantisation ops, ops whose schema has no float16, ops the CPU EP cannot run in
float16, the profile's `op_block_list`), (3) converts with the converter that handles more models and
falls back to the other, and (4) accepts a result only after the ONNX checker and a real onnxruntime
CPU session (and one run on the case's inputs) have taken it.

Converter order, measured with keep_io_types (onnxruntime 1.32, onnxconverter-common 1.16, December 2026):
- each library alone, default settings: onnxruntime.transformers.float16 loads 5 of the 7 graphs in
  tests/model/test_fp16.py and 7 of 8 real models; onnxconverter-common 2 of 7 and 4 of 8. It leaves
  `Cast(to=float)` as it is (the issue's `/Cast_2` error, also inside If/Loop bodies); both give
  DequantizeLinear float16 scales.
- with the block lists here: onnxruntime's 8 of 8 real models, onnxconverter-common's 4 of 8.
So onnxruntime's converter goes first and onnxconverter-common is the fallback.

Both converters' results pass through `_fp32_kept_between`: onnxruntime's converter wraps each blocked node in
its own casts, so without it a value between two float32 nodes is still stored as float16 on the way.
"""

from __future__ import annotations

import functools
import heapq
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto

from harness.errors import ProfileError
from harness.model.transform_spec import (
    TransformFailed,
    TransformNotApplicable,
    TransformSpec,
)

# Quantisation ops and their parameters stay float32 by policy: a float16 scale changes the quantised
# values, and the ONNX schemas before opset 19 (and DynamicQuantizeLinear always) accept float only.
QUANTISATION_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv", "QLinearMatMul",
    "MatMulInteger", "ConvInteger", "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "QGemm", "QAttention",
    "QLinearAdd", "QLinearMul", "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QLinearConcat",
    "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearReduceMean", "QLinearWhere",
    "DynamicQuantizeLSTM", "QEmbedLayerNormalization", "MatMulNBits", "GatherBlockQuantized",
})

# Ops the CPU EP cannot load or run once converted, although their schema allows float16. Found
# empirically (onnxruntime 1.32): every float case of onnx.backend.test.case.node that runs in float32
# was converted with onnxruntime's converter, an empty block list and float32 IO, then loaded and run
# on the CPU EP. 141 op types passed; these failed (errors in brackets). Ops whose schema has no float16
# (Upsample scales, NonMaxSuppression, TfIdfVectorizer, ai.onnx.ml) are found per node by
# `_schema_without_fp16`, and LayerNormalization only fails with its optional float-only outputs.
CPU_FP16_UNSUPPORTED_OPS = frozenset({
    "EyeLike",  # [NOT_IMPLEMENTED: no float16 kernel, and no cast inserted for an output-only float]
    "MeanVarianceNormalization",  # [its function body binds T to float16 and float]
    "ScatterElements", "ScatterND",  # [reduction add/mul/min/max: CPU EP has no MLFloat16 reduction]
    "SequenceMap",  # [TensorSeq: IsSameDataType was false]
    "BitCast",  # [bit widths differ once the float side is float16]
    "TreeEnsemble",  # [attribute types must match the input type]
})

DEFAULT_MIXED_RTOL, DEFAULT_MIXED_ATOL = 1e-2, 1e-3  # onnxconverter-common's own example bound
# Each search attempt is one conversion, one session and one run (about a second for a 20 MB model); past
# either limit the undecided nodes stay float32, the safe side, and the report says the search stopped early.
MIXED_MAX_ATTEMPTS = 200
MIXED_TIME_BUDGET_S = 120.0
_FLOAT, _FLOAT16 = TensorProto.FLOAT, TensorProto.FLOAT16
_CONTROL_FLOW = ("If", "Loop", "Scan")
_ONNX_DOMAINS = ("", "ai.onnx")

Converter = Callable[[onnx.ModelProto, bool, set[str], set[str]], onnx.ModelProto]


def convert_fp16(model_path: Path, spec: TransformSpec, feeds: list[dict[str, np.ndarray]]) -> tuple[bytes, dict]:
    """An fp16 copy of the model that the checker and a CPU session accept, and what was kept float32."""
    model = _prepared(model_path)
    kept = _kept_fp32(model, spec)
    _require_something_to_convert(model, kept)
    converted, report, _ = _convert_verified(model, spec, kept, feeds[:1])
    return converted.SerializeToString(), {**report, **_describe(model, kept, converted)}


def convert_fp16_mixed(model_path: Path, spec: TransformSpec,
                       feeds: list[dict[str, np.ndarray]]) -> tuple[bytes, dict]:
    """fp16, except the nodes whose fp16 error on the case's inputs exceeds (rtol, atol); the result is
    checked against the bound on every feed before it is returned, or TransformFailed says by how much it missed.

    Three steps: (1) a range pre-pass keeps float32 every node that reads or writes a value beyond float16's
    range on the feeds (the layers that must stay float32 whatever the bound); (2) onnxconverter-common's
    auto mixed precision search (its `SegmentList` bisection over the remaining top-level nodes, each trial
    measured on every feed); (3) the final model, run on every feed against the float32 outputs.
    `auto_convert_mixed_precision` itself is not called because it hard-wires onnxconverter-common's
    converter, which fails on Cast/If/Loop graphs, and does not say which nodes it kept.
    """
    if not feeds:
        raise TransformFailed(f"{model_path.name}: fp16-mixed needs one input feed to measure fp16 error, "
                              "and the case has none", hint="add a test_data_set_0, or use the fp16 transform")
    bound = (spec.mixed_rtol if spec.mixed_rtol is not None else DEFAULT_MIXED_RTOL,
             spec.mixed_atol if spec.mixed_atol is not None else DEFAULT_MIXED_ATOL)
    model = _prepared(model_path)
    kept = _kept_fp32(model, spec)
    _require_something_to_convert(model, kept)
    feeds = [_feed_for(model, feed) for feed in feeds]
    references, ranges = _range_scan(model, feeds)
    out_of_range = _out_of_range(model, kept, ranges)
    kept.update({name: finding["reason"] for name, finding in out_of_range.items()})
    _keep_parameter_producers(model.graph, kept)
    too_far, undecided, attempts = _mixed_search(model, spec, kept, feeds, references, bound)
    kept.update(dict.fromkeys(too_far, "fp16 error above the bound on the case's inputs"))
    kept.update(dict.fromkeys(undecided, "not tried before the search budget ran out"))
    converted, report, verification = _final_verified(model, spec, kept, feeds, references, bound)
    ops = {node.name: node.op_type for node in model.graph.node}
    mixed = {"bound": {"rtol": bound[0], "atol": bound[1]}, "search_attempts": attempts,
             "search_stopped_early": bool(undecided), "kept_fp32_undecided": len(undecided),
             "kept_fp32_for_range": [{"node": name, "op": ops[name], **finding}
                                     for name, finding in out_of_range.items()],
             "kept_fp32_for_error": [{"node": name, "op": ops[name]} for name in too_far],
             "verification": verification}
    return converted.SerializeToString(), {**report, **_describe(model, kept, converted), "mixed": mixed}


# --- preparing the model ---------------------------------------------------------------------------

def _prepared(model_path: Path) -> onnx.ModelProto:
    """Loaded, with types inferred where onnx can, and every node named (block lists match by name)."""
    model = onnx.load(str(model_path))
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001, S110 - inference is a help, not a requirement; the converters cope
        pass
    originals = {node.name for node in all_nodes(model.graph)}
    seen: set[str] = set()
    for index, node in enumerate(all_nodes(model.graph)):
        if not node.name or node.name in seen:
            candidate = f"{node.name or node.op_type}__fp16_{index}"
            while candidate in originals or candidate in seen:
                candidate += "_"
            node.name = candidate
        seen.add(node.name)
    return model


def all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """Every node, those inside If/Loop/Scan bodies included (int8.py walks graphs with it too)."""
    for node in graph.node:
        yield node
        for sub in subgraphs(node):
            yield from all_nodes(sub)


def subgraphs(node: onnx.NodeProto) -> Iterator[onnx.GraphProto]:
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            yield attr.g
        elif attr.type == onnx.AttributeProto.GRAPHS:
            yield from attr.graphs


def _all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    yield graph
    for node in graph.node:
        for sub in subgraphs(node):
            yield from _all_graphs(sub)


# --- what stays float32 ------------------------------------------------------------------------------

def _kept_fp32(model: onnx.ModelProto, spec: TransformSpec) -> dict[str, str]:
    """Node name -> why it stays float32."""
    opsets = {(o.domain or ""): o.version for o in model.opset_import}
    opsets.setdefault("", opsets.get("ai.onnx", 21))
    extra = set(spec.op_block_list)
    kept: dict[str, str] = {}
    for node in all_nodes(model.graph):
        reason = _block_reason(node, opsets, extra)
        if reason:
            kept[node.name] = reason
    _keep_parameter_producers(model.graph, kept)
    return kept


def _block_reason(node: onnx.NodeProto, opsets: dict[str, int], extra: set[str]) -> str | None:
    if node.op_type in extra:
        return "profile op_block_list"
    if node.op_type in QUANTISATION_OPS:
        return "quantisation op (scales and zero points stay float32)"
    if node.op_type in CPU_FP16_UNSUPPORTED_OPS:
        return "the CPU EP cannot run it in float16 (probe)"
    if (node.domain or "") not in _ONNX_DOMAINS + ("ai.onnx.ml",):
        return None if _cpu_has_fp16_kernel(node.domain, node.op_type) else f"{node.domain} op without a float16 CPU kernel"
    formal = _schema_without_fp16(node, opsets)
    return f"its ONNX schema allows no float16 for {formal}" if formal else None


def _schema_without_fp16(node: onnx.NodeProto, opsets: dict[str, int]) -> str | None:
    """The first used input/output whose schema type allows float but not float16 (then fp16 is invalid)."""
    domain = "" if node.domain in _ONNX_DOMAINS else node.domain
    try:
        schema = onnx.defs.get_schema(node.op_type, opsets.get(domain, 1), domain)
    except onnx.defs.SchemaError:
        return None
    allowed = {c.type_param_str: set(c.allowed_type_strs) for c in schema.type_constraints}
    for formals, actuals in ((schema.inputs, node.input), (schema.outputs, node.output)):
        for index, formal in enumerate(formals):
            variadic = formal.option == onnx.defs.OpSchema.FormalParameterOption.Variadic
            used = any(actuals[index:]) if variadic else index < len(actuals) and bool(actuals[index])
            types = allowed.get(formal.type_str, {formal.type_str})
            if used and "tensor(float)" in types and "tensor(float16)" not in types:
                return formal.name
    return None


@functools.cache
def _cpu_fp16_kernels() -> frozenset[tuple[str, str]]:
    """(domain, op) pairs with a float16 kernel on the CPU EP, from onnxruntime's kernel registry."""
    try:
        from onnxruntime.capi import onnxruntime_pybind11_state as capi
        defs = capi.get_all_opkernel_def()
    except (ImportError, AttributeError):
        return frozenset()
    return frozenset((d.domain, d.op_name) for d in defs if d.provider == "CPUExecutionProvider"
                     and any("tensor(float16)" in types for types in d.type_constraints.values()))


def _cpu_has_fp16_kernel(domain: str, op_type: str) -> bool:
    return (domain, op_type) in _cpu_fp16_kernels()


def _keep_parameter_producers(graph: onnx.GraphProto, kept: dict[str, str]) -> None:
    """An Identity or Constant that only feeds float32 nodes stays float32 too (a scale through an
    Identity would otherwise be rounded to float16 and cast back)."""
    for sub in _all_graphs(graph):
        consumers: dict[str, list[onnx.NodeProto]] = {}
        for node in sub.node:
            for name in _reads(node):
                consumers.setdefault(name, []).append(node)
        changed = True
        while changed:
            changed = False
            for node in sub.node:
                if node.op_type not in ("Identity", "Constant") or node.name in kept:
                    continue
                users = [user for out in node.output for user in consumers.get(out, [])]
                outputs = {o.name for o in sub.output}
                if users and all(u.name in kept for u in users) and not outputs & set(node.output):
                    kept[node.name] = "feeds only float32 nodes"
                    changed = True


def _reads(node: onnx.NodeProto) -> set[str]:
    """Names a node reads, including those its subgraphs take from the outer scope."""
    names = {name for name in node.input if name}
    for sub in subgraphs(node):
        for inner in all_nodes(sub):
            names.update(name for name in inner.input if name)
    return names


def _float_values(model: onnx.ModelProto) -> dict[str, int]:
    """Name -> elem type for every typed value in every graph (after shape inference)."""
    types: dict[str, int] = {}
    for graph in _all_graphs(model.graph):
        for info in [*graph.input, *graph.output, *graph.value_info]:
            types[info.name] = info.type.tensor_type.elem_type
        for init in graph.initializer:
            types[init.name] = init.data_type
    return types


def _computes_in_float(node: onnx.NodeProto, types: dict[str, int]) -> bool:
    if node.op_type == "Cast":
        return any(a.name == "to" and a.i == _FLOAT for a in node.attribute)
    if node.op_type == "Constant":
        return any(a.t.data_type == _FLOAT for a in node.attribute)
    return any(types.get(name) == _FLOAT for name in [*node.input, *node.output] if name)


def _require_something_to_convert(model: onnx.ModelProto, kept: dict[str, str]) -> None:
    """Raise TransformNotApplicable when fp16 would change nothing, saying why."""
    types = _float_values(model)
    fp16 = sum(1 for t in types.values() if t == _FLOAT16)
    floats = [n for n in all_nodes(model.graph) if _computes_in_float(n, types)]
    if fp16 and not any(t == _FLOAT for t in types.values()):
        raise TransformNotApplicable(f"already float16 ({fp16} float16 tensors, no float32 ones)")
    if not floats and not any(t == _FLOAT for t in types.values()):
        raise TransformNotApplicable("no float32 tensors to convert")
    if floats and all(n.name in kept for n in floats):
        reasons = Counter(f"{n.op_type} ({kept[n.name]})" for n in floats)
        raise TransformNotApplicable("every node that computes in float32 must stay float32: "
                                     + ", ".join(f"{count} {what}" for what, count in reasons.most_common(4)))


# --- converting and checking -------------------------------------------------------------------------

def _ort_converter(model: onnx.ModelProto, keep_io: bool, ops: set[str], nodes: set[str]) -> onnx.ModelProto:
    from onnxruntime.transformers import float16
    return _fp32_kept_between(_sorted(float16.convert_float_to_float16(
        model, keep_io_types=keep_io, disable_shape_infer=True, op_block_list=sorted(ops),
        node_block_list=sorted(nodes))))


def _fp32_kept_between(model: onnx.ModelProto) -> onnx.ModelProto:
    """Two float32 nodes in a row talk in float32: each `Cast(to=float16) -> Cast(to=float)` round trip of a
    float32 value becomes an Identity of that value, and a first Cast nobody else reads is dropped.

    Why: onnxruntime's converter wraps every blocked node in its own casts, so a value between two blocked
    nodes is written as float16 and read back. The CPU EP keeps such casts; a value past 65504 there turns
    into inf (T5's -3.4e38 mask gave NaN everywhere; the OCR detector's batch-norm variance gave zeros)."""
    try:
        types = _float_values(onnx.shape_inference.infer_shapes(model))
    except Exception:  # noqa: BLE001 - without types no pair can be proven a float32 round trip
        return model
    for graph in _all_graphs(model.graph):
        _drop_round_trips(graph, types)
    return model


def _drop_round_trips(graph: onnx.GraphProto, types: dict[str, int]) -> None:
    producer = {out: node for node in graph.node for out in node.output}
    for node in graph.node:
        first = producer.get(node.input[0]) if node.op_type == "Cast" and node.input else None
        if (first is not None and first.op_type == "Cast" and _cast_to(node) == _FLOAT
                and _cast_to(first) == _FLOAT16 and types.get(first.input[0]) == _FLOAT):
            node.op_type = "Identity"
            node.ClearField("attribute")
            node.input[0] = first.input[0]
    read = {name for node in graph.node for name in _reads(node)} | {o.name for o in graph.output}
    unused = [n for n in graph.node if n.op_type == "Cast" and not any(out in read for out in n.output)]
    for node in unused:
        graph.node.remove(node)


def _cast_to(node: onnx.NodeProto) -> int | None:
    return next((a.i for a in node.attribute if a.name == "to"), None)


def _sorted(model: onnx.ModelProto) -> onnx.ModelProto:
    """Nodes in dependency order in every graph. onnxruntime's converter appends its Casts at the end,
    which the checker refuses; the sorts in both libraries ignore what a subgraph reads from outside."""
    for graph in _all_graphs(model.graph):
        _sort_graph(graph)
    return model


def _sort_graph(graph: onnx.GraphProto) -> None:
    """Kahn's algorithm, stable: a node keeps its place unless a producer comes later."""
    nodes = list(graph.node)
    producer = {out: index for index, node in enumerate(nodes) for out in node.output if out}
    waiting = [{producer[n] for n in _reads(node) if n in producer} - {index} for index, node in enumerate(nodes)]
    users: dict[int, list[int]] = {}
    for index, deps in enumerate(waiting):
        for dep in deps:
            users.setdefault(dep, []).append(index)
    ready = [index for index, deps in enumerate(waiting) if not deps]
    heapq.heapify(ready)
    order = []
    while ready:
        index = heapq.heappop(ready)
        order.append(index)
        for user in users.get(index, []):
            waiting[user].discard(index)
            if not waiting[user]:
                heapq.heappush(ready, user)
    if len(order) == len(nodes):  # a cycle is left as it is, for the checker to name
        graph.ClearField("node")
        graph.node.extend(nodes[index] for index in order)


def _occ_converter(model: onnx.ModelProto, keep_io: bool, ops: set[str], nodes: set[str]) -> onnx.ModelProto:
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise ProfileError("the fp16 fallback converter needs onnxconverter-common",
                           hint="pip install onnxconverter-common") from None
    return _fp32_kept_between(float16.convert_float_to_float16(
        model, keep_io_types=keep_io, disable_shape_infer=True, op_block_list=sorted(ops),
        node_block_list=sorted(nodes), check_fp16_ready=False))


# Better first (see the module docstring for the counts).
CONVERTERS: tuple[tuple[str, Converter], ...] = (
    ("onnxruntime.transformers.float16", _ort_converter),
    ("onnxconverter_common.float16", _occ_converter),
)


def _convert_verified(model: onnx.ModelProto, spec: TransformSpec, kept: dict[str, str],
                      feeds: list[dict[str, np.ndarray]]) -> tuple[onnx.ModelProto, dict, list[list[np.ndarray]]]:
    """The first converter's result that passes the checks, its report and its outputs on `feeds` (so a
    caller that compares them need not run the model again); TransformFailed with each one's error if none."""
    attempts = []
    for name, convert in CONVERTERS:
        try:
            converted = convert(_copy(model), spec.keep_io_types, _blocked_op_types(spec), set(kept))
            checks, outputs = _verify(model, converted, feeds)
        except (ProfileError, TransformNotApplicable):
            raise
        except Exception as exc:  # noqa: BLE001 - the converter's or the runtime's own words are the finding
            attempts.append({"converter": name, "error": _first_line(exc)})
            continue
        return converted, {"converter": name, "failed_converters": attempts, "checks": checks}, outputs
    detail = "; ".join(f"{a['converter']}: {a['error']}" for a in attempts)
    raise TransformFailed(f"fp16 conversion of {model.graph.name or 'the model'} did not load: {detail}",
                          hint="add the op type named in the error to [precision] op_block_list in the profile, "
                               "or try transform = \"fp16-mixed\"")


def _blocked_op_types(spec: TransformSpec) -> set[str]:
    """The op types every conversion (search trial or final) tells the converter to keep float32; the list
    replaces the converter's own default block list."""
    return set(QUANTISATION_OPS | CPU_FP16_UNSUPPORTED_OPS | set(spec.op_block_list))


def _verify(original: onnx.ModelProto, converted: onnx.ModelProto,
            feeds: list[dict[str, np.ndarray]]) -> tuple[list[str], list[list[np.ndarray]]]:
    """Checker (full where it works), then a real CPU session, then a run per feed: what passed, and the outputs."""
    checks = [_checker(original, converted)]
    session = cpu_session(converted)
    checks.append("onnxruntime CPU session")
    outputs = []
    for feed in feeds:
        outputs.append(session.run(None, _feed_for(converted, feed)))
        checks.append("one run on the case's input")
    return checks, outputs


def _checker(original: onnx.ModelProto, converted: onnx.ModelProto) -> str:
    try:
        onnx.checker.check_model(converted, full_check=True)
        return "onnx.checker (full_check)"
    except Exception:  # noqa: BLE001, S110 - full_check's strict inference refuses some valid models
        pass
    try:
        onnx.checker.check_model(converted)
        return "onnx.checker"
    except Exception as exc:
        try:
            onnx.checker.check_model(original)
        except Exception:  # noqa: BLE001 - the original fails too: the checker says nothing about fp16
            return "onnx.checker skipped (the float32 model fails it too)"
        raise ValueError(f"onnx.checker: {_first_line(exc)}") from exc


def cpu_session(model: onnx.ModelProto | bytes):
    """A CPU session that logs errors only: how both converters (fp16 here, int8.py) prove a model loads."""
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only; warnings would be captured anyway, but need not be made
    data = model if isinstance(model, bytes) else model.SerializeToString()
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _feed_for(model: onnx.ModelProto, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    initializers = {init.name for init in model.graph.initializer}
    names = [i.name for i in model.graph.input if i.name not in initializers]
    return {name: feed[name] for name in names if name in feed}


def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:400]


# --- float16 range pre-pass ----------------------------------------------------------------------------

FP16_MAX = float(np.finfo(np.float16).max)  # 65504: a larger finite value becomes inf in a float16 tensor
FP16_TINIEST = float(np.finfo(np.float16).smallest_subnormal)  # 2**-24: a smaller magnitude becomes 0


def _range_scan(model: onnx.ModelProto, feeds: list[dict[str, np.ndarray]]
                ) -> tuple[list[list[np.ndarray]], dict[str, float]]:
    """The float32 outputs per feed, and the largest finite |value| of every float tensor over all feeds.

    Why: the CPU EP computes an all-fp16 graph mostly in float32, but a mixed graph casts real float16
    tensors between its float32 islands, and a value past 65504 there becomes inf (T5's -3.4e38 attention
    mask, its layer-norm Pow). One run with every top-level float value exposed as an output finds them."""
    outputs = [o.name for o in model.graph.output]
    probe = _copy(model)
    types = _float_values(model)
    exposed = [name for node in model.graph.node for name in node.output
               if name and types.get(name) == _FLOAT and name not in outputs]
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(name, _FLOAT, None) for name in exposed)
    try:
        session = cpu_session(probe)
    except Exception:  # noqa: BLE001 - an exposed value ORT refuses: measure the graph outputs only
        session = cpu_session(model)
    names = [o.name for o in session.get_outputs()]
    ranges = {init.name: _finite_max(onnx.numpy_helper.to_array(init))
              for graph in _all_graphs(model.graph) for init in graph.initializer if init.data_type == _FLOAT}
    references = []
    for feed in feeds:
        values = dict(zip(names, session.run(None, feed)))
        references.append([values[name] for name in outputs])
        for name, value in values.items():
            if np.asarray(value).dtype == np.float32:
                ranges[name] = max(ranges.get(name, 0.0), _finite_max(value))
    for feed in feeds:
        for name, value in feed.items():
            if np.asarray(value).dtype == np.float32:
                ranges[name] = max(ranges.get(name, 0.0), _finite_max(value))
    return references, ranges


def _finite_max(value: np.ndarray) -> float:
    finite = np.abs(np.asarray(value, dtype=np.float64))
    finite = finite[np.isfinite(finite)]
    return float(finite.max()) if finite.size else 0.0


def _out_of_range(model: onnx.ModelProto, kept: dict[str, str], ranges: dict[str, float]) -> dict[str, dict]:
    """Top-level nodes that read or write a float value float16 cannot hold, with the value and the reason.

    A value beyond 65504 overflows to inf; a nonzero value whose largest magnitude is below 2**-24 becomes
    all zeros. Keeping the node float32 keeps the value float32 on both sides (no cast to float16 between)."""
    found: dict[str, dict] = {}
    for node in model.graph.node:
        if node.name in kept:
            continue
        for name in [*node.input, *node.output]:
            peak = ranges.get(name)
            if peak is None or FP16_TINIEST <= peak <= FP16_MAX or peak == 0.0:
                continue
            what = "overflows" if peak > FP16_MAX else "underflows to zero in"
            found[node.name] = {"tensor": name, "max_abs": peak,
                                "reason": f"{name} reaches |x| = {peak:.3g} on the case's inputs, which "
                                          f"{what} float16 (range {FP16_TINIEST:.3g} to {FP16_MAX:g})"}
            break
    return found


# --- mixed precision search ---------------------------------------------------------------------------

def _mixed_search(model: onnx.ModelProto, spec: TransformSpec, kept: dict[str, str],
                  feeds: list[dict[str, np.ndarray]], references: list[list[np.ndarray]],
                  bound: tuple[float, float]) -> tuple[list[str], list[str], int]:
    """Top-level nodes whose fp16 error breaks `bound` on some feed, nodes left undecided when the budget ran
    out, and the attempts made. A trial converts every segment found good so far plus the one tried, so the
    last good trial is the final node set (which `_final_verified` checks again)."""
    from onnxconverter_common.auto_mixed_precision import SegmentList
    names = [n.name for n in model.graph.node if n.op_type not in _CONTROL_FLOW and n.name not in kept]
    segments = SegmentList(names)
    attempts, deadline = 0, time.monotonic() + MIXED_TIME_BUDGET_S
    while (segment := segments.get_largest()) is not None:
        if attempts >= MIXED_MAX_ATTEMPTS or time.monotonic() > deadline:
            break
        attempts += 1
        trial = {**kept, **dict.fromkeys(segments.get_nodes(segment), "trial")}
        if _within(model, spec, trial, feeds, references, bound):
            segment.good = True
        elif segment.size == 1:
            segment.bad = True
        else:
            segment.split()
    return _segment_names(segments, bad=True), _segment_names(segments, bad=False), attempts


def _segment_names(segments, *, bad: bool) -> list[str]:
    """Names in the segments found bad (bad=True) or not yet decided (bad=False)."""
    names, start, current = [], 0, segments.first
    while current is not None:
        if not current.good and current.bad == bad:
            names.extend(segments.node_names[start:start + current.size])
        start += current.size
        current = current.next
    return names


def _within(model: onnx.ModelProto, spec: TransformSpec, kept: dict[str, str], feeds: list[dict[str, np.ndarray]],
            references: list[list[np.ndarray]], bound: tuple[float, float]) -> bool:
    """Does fp16 with `kept` in float32 load and stay within the bound on every feed? (A load failure is no.)"""
    convert = CONVERTERS[0][1]
    try:
        session = cpu_session(convert(_copy(model), spec.keep_io_types, _blocked_op_types(spec), set(kept)))
        return all(_excess(a, r, bound)[0] <= 1.0
                   for feed, expected in zip(feeds, references)
                   for a, r in zip(session.run(None, feed), expected))
    except Exception:  # noqa: BLE001 - this node set does not load or run: keep bisecting
        return False


def _excess(actual: np.ndarray, expected: np.ndarray, bound: tuple[float, float]) -> tuple[float, float, float]:
    """(worst |actual - expected| / (atol + rtol * |expected|), that element's |diff|, its allowance).

    Above 1.0 misses the bound. NaN or inf where float32 has a finite value, a shape change, or any change
    of a non-float output count as infinitely far."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    if actual.shape != expected.shape:
        return np.inf, np.inf, 0.0
    if not np.issubdtype(expected.dtype, np.floating):
        return (0.0, 0.0, 0.0) if np.array_equal(actual, expected) else (np.inf, np.inf, 0.0)
    if not actual.size:
        return 0.0, 0.0, 0.0
    a, e = actual.astype(np.float64).ravel(), expected.astype(np.float64).ravel()
    with np.errstate(invalid="ignore"):
        allowed = bound[1] + bound[0] * np.abs(e)
    same = (a == e) | (np.isnan(a) & np.isnan(e))  # equal infs and NaN where float32 has NaN are no error
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        diff = np.where(same, 0.0, np.abs(a - e))
        diff = np.where(np.isnan(diff), np.inf, diff)
        ratio = np.where(diff == 0.0, 0.0, diff / allowed)
    ratio = np.where(np.isnan(ratio), np.inf, ratio)
    worst = int(np.argmax(ratio))
    return float(ratio[worst]), float(diff[worst]), float(allowed[worst])


def _final_verified(model: onnx.ModelProto, spec: TransformSpec, kept: dict[str, str],
                    feeds: list[dict[str, np.ndarray]], references: list[list[np.ndarray]],
                    bound: tuple[float, float]) -> tuple[onnx.ModelProto, dict, dict]:
    """The converted model, its conversion report and its check against the bound on every feed.

    If it misses (the search only ever converted control flow, or a run differs from the trial's), the
    control-flow nodes stay float32 too and it is checked again; if it still misses, TransformFailed."""
    control_flow = [n.name for n in model.graph.node if n.op_type in _CONTROL_FLOW and n.name not in kept]
    types = _float_values(model)
    for extra in ([], control_flow) if control_flow else ([],):
        kept.update(dict.fromkeys(extra, "control flow: the mixed model missed the bound with it in float16"))
        if all(n.name in kept for n in model.graph.node if _computes_in_float(n, types)):
            raise TransformFailed(f"fp16-mixed of {model.graph.name or 'the model'}: no node converts to float16 "
                                  f"within |actual - fp32| <= {bound[1]:g} + {bound[0]:g} * |fp32| on the "
                                  f"{len(feeds)} input feed(s) before the search stopped", hint=_MIXED_HINT)
        converted, report, actuals = _convert_verified(model, spec, kept, feeds)
        verification = _verification([o.name for o in converted.graph.output], actuals, references, bound)
        if verification["passed"]:
            return converted, report, verification
    worst = verification["worst"]
    raise TransformFailed(
        f"fp16-mixed of {model.graph.name or 'the model'}: output {worst['output']} on feed {worst['feed']} misses "
        f"|actual - fp32| <= {bound[1]:g} + {bound[0]:g} * |fp32| by {worst['ratio']:.3g}x (|diff| "
        f"{worst['max_abs_diff']:.3g} where {worst['allowed']:.3g} is allowed), checked on {len(feeds)} feed(s)",
        hint=_MIXED_HINT)


_MIXED_HINT = ("raise mixed_rtol / mixed_atol in the profile's [precision], or add the op types that must stay "
               "float32 to op_block_list")


def _verification(outputs: list[str], actuals: list[list[np.ndarray]], references: list[list[np.ndarray]],
                  bound: tuple[float, float]) -> dict:
    """The final model's outputs on every feed (from `_verify`'s runs); the worst element against the bound."""
    worst = {"ratio": -1.0}
    for index, (actual_outputs, expected) in enumerate(zip(actuals, references)):
        for name, actual, reference in zip(outputs, actual_outputs, expected):
            ratio, diff, allowed = _excess(actual, reference, bound)
            if ratio > worst["ratio"]:
                worst = {"ratio": ratio, "output": name, "feed": index, "max_abs_diff": diff, "allowed": allowed}
    return {"feeds": len(actuals), "outputs": len(outputs), "passed": bool(worst["ratio"] <= 1.0),
            "worst": worst, "bound": f"|actual - fp32| <= {bound[1]:g} + {bound[0]:g} * |fp32|, every element"}


# --- the report ----------------------------------------------------------------------------------------

def _describe(model: onnx.ModelProto, kept: dict[str, str], converted: onnx.ModelProto) -> dict:
    """Counts by op type of what was converted and what stayed float32 (with names and reasons)."""
    types = _float_values(model)
    nodes = list(all_nodes(model.graph))
    float_nodes = [n for n in nodes if _computes_in_float(n, types)]
    kept_nodes = [n for n in nodes if n.name in kept]
    before = sum(1 for n in nodes if n.op_type == "Cast")
    after = sum(1 for n in all_nodes(converted.graph) if n.op_type == "Cast")
    return {
        "nodes": len(nodes),
        "converted_by_op": dict(Counter(n.op_type for n in float_nodes if n.name not in kept).most_common()),
        "kept_fp32_by_op": dict(Counter(n.op_type for n in kept_nodes).most_common()),
        "kept_fp32": [{"node": n.name, "op": n.op_type, "reason": kept[n.name]} for n in kept_nodes],
        "blocked_ops": sorted({n.op_type for n in kept_nodes}),
        "casts_inserted": after - before,
        "quantised_nodes": sum(1 for n in nodes if n.op_type in QUANTISATION_OPS),
    }
