"""The ``reference`` profile's session: ``onnx.reference.ReferenceEvaluator`` in the worker, computing in float64.

Why: a third opinion when two EPs disagree, and fp64 goldens for user models. The model is widened before it is
evaluated: float32/float16/bfloat16 inputs, initializers, constants and value types become float64 (exact: every
narrow float is a double), explicit casts to a narrow float keep their rounding (``Cast(to=FLOAT16)`` is followed by
a ``Cast(to=DOUBLE)``), and every output is narrowed back to the model's declared dtype at the end, so it compares
with goldens of that dtype. A model using an op whose reference kernel is not float64-safe (``NATIVE_ONLY_OPS``) is
evaluated in its declared dtypes instead; ``ReferenceSession.numerics`` says which happened and why.

Two known bugs of the reference implementation are worked around with replacement kernels (``new_ops``):
BatchNormalization-6..13 with one output uses batch statistics (training mode) instead of the running ones, and
DequantizeLinear before opset 19 has no kernel at all (and later ones compute in float32).

Worker-side: this is the one worker module that imports onnx (and, through it, ml_dtypes). harness.worker.session
imports it only for the ``ReferenceEvaluator`` pseudo-EP, so other profiles' workers never load onnx, and a worker
Python without onnx reports the profile as not installed (session._reference) instead of failing.
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun
from onnx.reference.ops.op_batch_normalization import _batchnorm_training_mode
from onnx.reference.ops.op_loop import Loop as _OnnxLoop
from onnx.reference.ops.op_scan import Scan as _OnnxScan
from onnx.reference.ops.op_scatter_elements import scatter_elements

from harness.worker import values
from harness.worker.probe import PROBE_FEED, PROBE_MODEL, Unavailable

REFERENCE_EP = "ReferenceEvaluator"

FLOAT, FLOAT16, DOUBLE, BFLOAT16 = onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE, \
    onnx.TensorProto.BFLOAT16
NARROW_FLOATS = frozenset({FLOAT, FLOAT16, BFLOAT16})
_TYPE_NAMES = {FLOAT: "FLOAT", FLOAT16: "FLOAT16", BFLOAT16: "BFLOAT16"}
# Ops whose attribute ``dtype`` names the output's element type
_DTYPE_ATTR_OPS = frozenset({"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "EyeLike",
                             "Bernoulli", "Multinomial"})
# Ops whose results depend on computing at the declared precision (found by running the ONNX node suite widened
# and not): BitCast reinterprets the bits, DynamicQuantizeLinear rounds x / scale to integers (one step off in
# float64, as in test_dynamicquantizelinear). A model using one is evaluated in its declared dtypes.
NATIVE_ONLY_OPS = frozenset({"BitCast", "DynamicQuantizeLinear"})


class _NotWidened(Exception):
    """The model keeps its declared dtypes; the message says why."""


@dataclass(frozen=True)
class ValueInfo:
    """What ``InferenceSession.get_inputs()`` gives per value: name, ORT-style type string, shape."""

    name: str
    type: str
    shape: list[Any]


@dataclass(frozen=True)
class NodeInfo:
    name: str
    op_type: str


@dataclass(frozen=True)
class Assignment:
    """One entry of ``get_provider_graph_assignment_info()``: every node runs on the reference evaluator."""

    ep_name: str
    nodes: tuple[NodeInfo, ...]

    def get_nodes(self) -> tuple[NodeInfo, ...]:
        return self.nodes


def check_available(spec: dict[str, Any]) -> None:
    """Raise Unavailable ("probe_failed") when the evaluator cannot run a one-node model, as the probe does for
    onnxruntime EPs. A missing onnx package already failed this module's import, which
    harness.worker.session turns into Unavailable("not_installed")."""
    try:
        create_session(PROBE_MODEL, spec).run(None, PROBE_FEED)
    except Exception as exc:  # the evaluator's failure types are many; the message says which
        raise Unavailable(f"{REFERENCE_EP} could not run a one-node model: {type(exc).__name__}: {exc}",
                          "probe_failed") from None


def create_session(model: str | bytes, spec: dict[str, Any]) -> ReferenceSession:
    """A session for ``model`` (a path the worker can read, or serialised bytes); ``spec`` is the profile's
    worker spec (nothing in it changes how the reference evaluator runs)."""
    proto = onnx.load_model_from_string(model) if isinstance(model, bytes) else onnx.load(model)
    return ReferenceSession(proto)


class ReferenceSession:
    """The parts of ``onnxruntime.InferenceSession`` the worker uses, over ``ReferenceEvaluator``."""

    # run() takes and returns the value model itself (ml_dtypes arrays for bfloat16, float8, int4, int2...), so
    # a caller may skip the OrtValue route onnxruntime needs for those (run_with_ort_values stays for one that
    # does not: its OrtValue conversions cover only what harness.worker.values packs).
    takes_numpy_values = True

    def __init__(self, proto: Any, widen: bool = True) -> None:
        graph = proto.graph
        initialized = {i.name for i in graph.initializer}
        self._inputs = [_value_info(v) for v in graph.input if v.name not in initialized]
        self._outputs = [_value_info(v) for v in graph.output]
        self._input_types = {v.name: v.type for v in graph.input}
        self._output_types = [v.type for v in graph.output]
        self._nodes = tuple(NodeInfo(n.name, n.op_type) for n in graph.node)
        try:
            if not widen:
                raise _NotWidened("widening was turned off")
            evaluated, kept = widen_model(proto)
            self.numerics = {"computed_in": "float64", "kept_narrow": kept}
        except _NotWidened as exc:
            evaluated = proto
            self.numerics = {"computed_in": "declared dtypes", "why": str(exc)}
        self.widened = evaluated is not proto
        self._evaluator = ReferenceEvaluator(evaluated, new_ops=list(REPLACEMENT_KERNELS))

    def get_inputs(self) -> list[ValueInfo]:
        return list(self._inputs)

    def get_outputs(self) -> list[ValueInfo]:
        return list(self._outputs)

    def get_providers(self) -> list[str]:
        return [REFERENCE_EP]

    def get_provider_graph_assignment_info(self) -> list[Assignment]:
        return [Assignment(REFERENCE_EP, self._nodes)]

    def run(self, output_names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        """Outputs in the declared dtypes; inputs of a narrow float type are widened first when the model is.
        Takes numpy (and ml_dtypes) arrays, lists, None, and the OrtValues values.session_feed makes of exotic
        tensors."""
        feed = {name: values.from_ort_value(v) if isinstance(v, ort.OrtValue) else v for name, v in feed.items()}
        if self.widened:
            feed = {name: _map_tensors(value, self._input_types.get(name), _widen_fed)
                    for name, value in feed.items()}
        results = self._evaluator.run(output_names, feed)
        if output_names:
            by_name = {v.name: t for v, t in zip(self._outputs, self._output_types)}
            types = [by_name.get(name) for name in output_names]
        else:
            types = self._output_types
        return [_map_tensors(value, t, _declared_tensor) for value, t in zip(results, types)]

    def run_with_ort_values(self, output_names: list[str] | None, feed: dict[str, Any]) -> list[Any]:
        """values.run's route for models with an exotic (bfloat16, float8, 4-bit) output: the same results, as
        OrtValues of their ONNX element types."""
        results = []
        for value in self.run(output_names, feed):
            array = np.asarray(value)
            elem = values.elem_type(array)
            results.append(ort.OrtValue.ortvalue_from_numpy(array) if elem is None else values.to_ort_value(array, elem))
        return results


# ----- widening the model --------------------------------------------------------------------------------------

def widen_model(proto: Any) -> tuple[Any, list[str]]:
    """A copy of ``proto`` computing in float64 where the declared type is a narrow float, and the values kept
    at a narrow float's rounding (the outputs of explicit Casts). Raises _NotWidened when an op in
    NATIVE_ONLY_OPS appears anywhere (graph, subgraphs, local functions)."""
    widened = onnx.ModelProto()
    widened.CopyFrom(proto)
    kept: list[str] = []
    _widen_graph(widened.graph, kept)
    for function in widened.functions:
        _widen_nodes(function.node, kept)
        for info in function.value_info:
            _widen_type(info.type)
    return widened, kept


def _widen_graph(graph: Any, kept: list[str]) -> None:
    for info in (*graph.input, *graph.output, *graph.value_info):
        _widen_type(info.type)
    for tensor in graph.initializer:
        _widen_tensor(tensor)
    for sparse in graph.sparse_initializer:
        _widen_tensor(sparse.values)
    _widen_nodes(graph.node, kept)


def _widen_nodes(nodes: Any, kept: list[str]) -> None:
    """Rewrite every node in place; a Cast to a narrow float gets a Cast to DOUBLE after it (same output name),
    so the model's own rounding is kept while everything around it stays float64."""
    rewritten = []
    for node in nodes:
        if node.op_type in NATIVE_ONLY_OPS and node.domain in ("", "ai.onnx"):
            raise _NotWidened(f"the model uses {node.op_type}, whose result depends on the declared precision")
        if node.op_type == "Constant":
            _constant_as_double(node)
        if node.op_type == "ConstantOfShape" and not any(a.name == "value" for a in node.attribute):
            # its default value is a float32 zero
            node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(np.zeros(1, np.float64))))
        for attribute in node.attribute:
            _widen_attribute(node, attribute, kept)
        rewritten.append(node)
        if node.op_type == "Cast" and node.domain in ("", "ai.onnx") and _attr_int(node, "to") in NARROW_FLOATS:
            narrow = f"{node.output[0]}__narrow_cast"
            wide = helper.make_node("Cast", [narrow], [node.output[0]], to=DOUBLE,
                                         name=f"{node.name}__to_double")
            kept.append(f"{node.output[0]} (Cast to {_TYPE_NAMES[_attr_int(node, 'to')]})")
            node.output[0] = narrow
            rewritten.append(wide)
    copies = [_copy_node(n) for n in rewritten]
    del nodes[:]
    nodes.extend(copies)


def _copy_node(node: Any) -> Any:
    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    return copy


def _widen_attribute(node: Any, attribute: Any, kept: list[str]) -> None:
    kind = attribute.type
    if kind == onnx.AttributeProto.GRAPH:
        _widen_graph(attribute.g, kept)
    elif kind == onnx.AttributeProto.GRAPHS:
        for graph in attribute.graphs:
            _widen_graph(graph, kept)
    elif kind == onnx.AttributeProto.TENSOR:
        _widen_tensor(attribute.t)
    elif kind == onnx.AttributeProto.TENSORS:
        for tensor in attribute.tensors:
            _widen_tensor(tensor)
    elif kind == onnx.AttributeProto.TYPE_PROTO:
        _widen_type(attribute.tp)
    elif kind == onnx.AttributeProto.INT and attribute.i in NARROW_FLOATS and (
            (attribute.name == "dtype" and node.op_type in _DTYPE_ATTR_OPS)
            or (attribute.name == "output_dtype" and node.op_type == "DequantizeLinear")):
        attribute.i = DOUBLE


def _constant_as_double(node: Any) -> None:
    """``Constant(value_float[s])`` yields float32 in the reference evaluator: make it a float64 tensor."""
    attribute = next((a for a in node.attribute if a.name in ("value_float", "value_floats")), None)
    if attribute is None:
        return
    if attribute.name == "value_float":
        array = np.asarray(attribute.f, dtype=np.float64)
    else:
        array = np.asarray(list(attribute.floats), dtype=np.float64)
    node.attribute.remove(attribute)
    node.attribute.append(helper.make_attribute("value", numpy_helper.from_array(array)))


def _attr_int(node: Any, name: str) -> int | None:
    return next((a.i for a in node.attribute if a.name == name), None)


def _widen_tensor(tensor: Any) -> None:
    if tensor.data_type not in NARROW_FLOATS:
        return
    array = numpy_helper.to_array(tensor).astype(np.float64)
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))


def _widen_type(type_proto: Any) -> None:
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        inner = getattr(type_proto, kind)
        if inner.elem_type in NARROW_FLOATS:
            inner.elem_type = DOUBLE
    elif kind == "sequence_type":
        _widen_type(type_proto.sequence_type.elem_type)
    elif kind == "optional_type":
        _widen_type(type_proto.optional_type.elem_type)
    elif kind == "map_type":
        _widen_type(type_proto.map_type.value_type)


# ----- values in and out ---------------------------------------------------------------------------------------

def _elem_type(type_proto: Any) -> int | None:
    kind = type_proto.WhichOneof("value") if type_proto is not None else None
    return getattr(type_proto, kind).elem_type if kind in ("tensor_type", "sparse_tensor_type") else None


def _map_tensors(value: Any, type_proto: Any, leaf: Callable[[Any, int | None], Any]) -> Any:
    """``value`` with ``leaf(tensor, elem_type)`` applied to every tensor inside, following the declared type
    through sequences and optionals (absent values and undeclared types pass through)."""
    kind = type_proto.WhichOneof("value") if type_proto is not None else None
    if value is None or kind is None:
        return value
    if kind == "sequence_type":
        return [_map_tensors(v, type_proto.sequence_type.elem_type, leaf) for v in value]
    if kind == "optional_type":
        return _map_tensors(value, type_proto.optional_type.elem_type, leaf)
    return leaf(value, _elem_type(type_proto))


def _widen_fed(value: Any, elem: int | None) -> Any:
    """A fed tensor in float64 where the declared type is a narrow float."""
    return np.asarray(value).astype(np.float64) if elem in NARROW_FLOATS else value


def _declared_tensor(value: Any, elem: int | None) -> Any:
    """A result in the output's declared dtype (the evaluator computed it in float64, or returned a numpy
    default type such as float64 for a float32 output)."""
    if elem == onnx.TensorProto.STRING:  # the evaluator gives numpy str arrays; onnxruntime gives object arrays
        return np.asarray(value, dtype=object)
    if elem in NARROW_FLOATS or elem == DOUBLE:
        dtype = helper.tensor_dtype_to_np_dtype(elem)
        array = np.asarray(value)
        return array.astype(dtype) if array.dtype != dtype else array
    return value


def _value_info(info: Any) -> ValueInfo:
    shape = []
    if info.type.WhichOneof("value") == "tensor_type" and info.type.tensor_type.HasField("shape"):
        shape = [d.dim_param or (d.dim_value if d.HasField("dim_value") else None)
                 for d in info.type.tensor_type.shape.dim]
    return ValueInfo(info.name, _ort_type(info.type), shape)


def _ort_type(type_proto: Any) -> str:
    """ORT's spelling of a type: tensor(float), seq(tensor(int64)), optional(...), map(int64,tensor(float))."""
    kind = type_proto.WhichOneof("value")
    if kind in ("tensor_type", "sparse_tensor_type"):
        word = "tensor" if kind == "tensor_type" else "sparse_tensor"
        return f"{word}({onnx.TensorProto.DataType.Name(getattr(type_proto, kind).elem_type).lower()})"
    if kind == "sequence_type":
        return f"seq({_ort_type(type_proto.sequence_type.elem_type)})"
    if kind == "optional_type":
        return f"optional({_ort_type(type_proto.optional_type.elem_type)})"
    if kind == "map_type":
        key = onnx.TensorProto.DataType.Name(type_proto.map_type.key_type).lower()
        return f"map({key},{_ort_type(type_proto.map_type.value_type)})"
    return "unknown"


# ----- replacement kernels -------------------------------------------------------------------------------------

class BatchNormalization(OpRun):
    """Inference mode (running mean and variance) whenever the node has only its Y output.

    onnx's BatchNormalization_9 (opsets 9..13) uses the batch statistics whenever ``momentum`` is set, and its
    schema default sets it always; _6 (opsets 6..8) runs training mode unless ``is_test``, and then fails (it
    returns a tuple). Before opset 14 the mode is told by the number of outputs: one is inference. Training mode
    (several outputs) keeps onnx's batch-statistics formula."""

    op_domain = ""

    def _run(self, x, scale, bias, mean, var, epsilon=None, momentum=None, training_mode=None,  # noqa: PLR0913
             is_test=None, spatial=None):  # noqa: ARG002 (opset 6..8 attributes, no effect in inference)
        opset = self.run_params["opsets"].get("", 1)
        eps = 1e-5 if epsilon is None else epsilon
        outputs = len(self.onnx_node.output)
        if (opset < 14 and outputs == 1) or (opset >= 14 and not training_mode):
            return (_batchnorm_inference(x, scale, bias, mean, var, eps),)
        y, saved_mean, saved_var, running_mean, running_var = _batchnorm_training_mode(
            x, scale, bias, mean, var, 0.9 if momentum is None else momentum, eps)
        if opset >= 14:
            return (y, running_mean, running_var)[:outputs]
        return (y, running_mean, running_var, saved_mean, saved_var)[:outputs]


class DequantizeLinear(OpRun):
    """(x - zero_point) * scale for every opset (10 onwards), per tensor, per axis or blocked, computed in
    float64 and given in the scale's dtype or ``output_dtype``. onnx has no kernel before opset 19, and its
    later ones subtract the zero point in float32 (inexact for int32)."""

    op_domain = ""

    def _run(self, x, x_scale, x_zero_point=None, axis=None, block_size=None, output_dtype=None):
        return (dequantize(x, x_scale, x_zero_point, 1 if axis is None else axis, block_size or 0, output_dtype),)


class MeanVarianceNormalization(OpRun):
    """(X - mean) / (sqrt(E[X^2] - mean^2) + 1e-9) over ``axes``, in the input's dtype. onnx runs this op as
    its schema function, whose float32 constants meet a float64 input in Pow and Add and fail there."""

    op_domain = ""

    def _run(self, x, axes=None):
        axes = tuple(axes) if axes is not None else (0, 2, 3)
        mean = x.mean(axis=axes, keepdims=True)
        std = np.sqrt((x ** 2).mean(axis=axes, keepdims=True) - mean ** 2)
        return (((x - mean) / (std + 1e-9)).astype(x.dtype),)


class Optional(OpRun):
    """The value itself, or None when the optional is empty. onnx's returns ``[x]``: a sequence holding the
    value (a tensor comes out with an extra leading axis, an empty optional as ``[None]``)."""

    op_domain = ""

    def _run(self, x=None, type=None):  # noqa: A002 (the attribute's name)
        return (x,)


class Loop(_OnnxLoop):
    """Scan outputs stacked along a new first axis (one entry per iteration), as the spec and onnxruntime do.
    onnx's ``np.vstack`` gives (n, 1) for scalars, (n*a, b) for (a, b) values, and fails after zero
    iterations."""

    op_domain = ""

    def _run(self, M, cond, *args, context=None, body=None, attributes=None, bindings=None):  # noqa: N803, ARG002
        names = self.body.input_names
        inputs = dict.fromkeys(names)
        inputs.update({name: value for name, value in zip(names[2:], args)})
        inputs.update(context or {})
        scans: list[list[Any]] = [[] for _ in range(self.K)]
        carried = list(args)
        iteration = 0
        cond = np.array(True) if cond is None else cond  # an omitted condition is true
        while bool(cond) and (M is None or iteration < int(M)):
            if names[0]:
                inputs[names[0]] = np.array(iteration, dtype=np.int64)
            if names[1]:
                inputs[names[1]] = cond
            outputs = self._run_body(inputs, attributes=attributes, bindings=bindings)
            cond = outputs[self.output_index[self.body.output_names[0]]]
            carried = list(outputs[1:1 + self.N])
            for name, value in zip(names[2:], carried):
                inputs[name] = value
            for k in range(self.K):
                scans[k].append(outputs[1 + self.N + k])
            iteration += 1
        stacked = [np.stack(values) if values else np.empty((0,), dtype=np.float32) for values in scans]
        return tuple(carried + stacked)


class Scatter(OpRun):
    """Scatter (opsets 9..10, deprecated for ScatterElements, same semantics). onnx has no kernel for it."""

    op_domain = ""

    def _run(self, data, indices, updates, axis=None):
        return (scatter_elements(data, indices, updates, axis=axis or 0),)


class Scan(_OnnxScan):
    """Scan-8 as well: its inputs start with ``sequence_lens`` and every state and scan input has a leading batch
    axis. onnx implements only Scan-9's layout, so Scan-8 met its empty sequence_lens as a state (test_scan_sum).
    Each batch entry runs as a Scan-9 and the results are stacked; per-entry lengths shorter than the sequence
    and reversed directions are refused with a clear message."""

    op_domain = ""

    def _run(self, *args, context=None, directions=None, attributes=None, bindings=None, **scan9):
        if self.run_params["opsets"].get("", 9) >= 9:
            return super()._run(*args, context=context, attributes=attributes, bindings=bindings, **scan9)
        lengths, values = args[0], args[1:]
        if any(directions or ()):
            raise NotImplementedError("Scan-8 with reversed directions is not implemented in the reference profile")
        full = values[-1].shape[1]
        if lengths is not None and np.any(np.asarray(lengths) != full):
            raise NotImplementedError("Scan-8 with sequence_lens shorter than the sequence is not implemented in "
                                      "the reference profile")
        per_batch = [super(Scan, self)._run(*(v[b] for v in values), context=context, attributes=attributes,
                                            bindings=bindings) for b in range(values[0].shape[0])]
        return tuple(np.stack(outputs) for outputs in zip(*per_batch))


# Replace the reference implementation's kernels for every opset (``new_ops`` keys by op type).
REPLACEMENT_KERNELS: tuple[type[OpRun], ...] = (BatchNormalization, DequantizeLinear, MeanVarianceNormalization,
                                                 Optional, Loop, Scan, Scatter)


def _batchnorm_inference(x: np.ndarray, scale: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray,
                         epsilon: float) -> np.ndarray:
    shape = (-1,) + (1,) * (x.ndim - 2)
    y = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + epsilon) * scale.reshape(shape) + bias.reshape(shape)
    return y.astype(x.dtype)


def dequantize(x: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None, axis: int, block_size: int,
               output_dtype: int | None) -> np.ndarray:
    """DequantizeLinear's formula with the scale (and zero point) broadcast per tensor, per axis or per block."""
    wide = np.asarray(x).astype(np.float64)
    if zero_point is not None:
        wide = wide - _along(np.asarray(zero_point).astype(np.float64), wide.shape, axis, block_size)
    y = wide * _along(np.asarray(scale).astype(np.float64), wide.shape, axis, block_size)
    if output_dtype:
        return y.astype(helper.tensor_dtype_to_np_dtype(output_dtype))
    return y.astype(np.asarray(scale).dtype)


def _along(values: np.ndarray, shape: tuple[int, ...], axis: int, block_size: int) -> np.ndarray:
    """``values`` shaped to broadcast against ``shape``: a scalar as is, a vector along ``axis``, a blocked
    tensor (same rank, ``ceil(dim / block_size)`` along axis) repeated block_size times along it."""
    if values.size == 1 and values.ndim <= 1:
        return values.reshape(())
    axis = axis % len(shape)
    if block_size:
        return np.repeat(values, block_size, axis=axis).take(np.arange(shape[axis]), axis=axis)
    return values.reshape([-1 if i == axis else 1 for i in range(len(shape))])
