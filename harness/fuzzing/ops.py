"""The operators the fuzzer draws, one small builder each, and the state they build on.

Each builder takes the graph under construction (``Builder``) and one operand it was offered, adds its node(s)
with sampled attributes and returns the output tensor, or None when the operand does not suit it (a Conv needs a
rank-4 tensor). Shapes are computed here, by the op's own rule, so that a graph is shape-correct by construction;
``generate`` then checks every graph with onnx.checker and strict shape inference and compares the inferred
shapes with these.

Domains: an op that is undefined somewhere (Log, Sqrt, Div, Pow, Reciprocal) gets an operand that cannot leave its
domain: a graph input still without a range is given a positive one, any other tensor is guarded with
``Add(Abs(x), c)``. Overflow (Exp, Pow, long chains) is what the finite-input search in ``generate`` deals with.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from onnx import TensorProto, helper, numpy_helper

FLOAT_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64}
DTYPE_NAMES = {TensorProto.FLOAT: "float32", TensorProto.FLOAT16: "float16", TensorProto.DOUBLE: "float64"}
DEFAULT_RANGE = (-2.0, 2.0)
POSITIVE_RANGE = (0.5, 3.0)


@dataclass(frozen=True)
class T:
    """A tensor of the graph under construction: its name, static shape and ONNX element type."""

    name: str
    shape: tuple[int, ...]
    dtype: int

    @property
    def rank(self) -> int:
        return len(self.shape)


@dataclass
class Builder:
    """The graph under construction: nodes, initializers, graph inputs with their value ranges, and what was
    exercised (op -> attribute -> values seen) for the coverage report."""

    rng: np.random.Generator
    nodes: list[Any] = field(default_factory=list)
    initializers: list[Any] = field(default_factory=list)
    inputs: list[T] = field(default_factory=list)
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)  # graph input -> (low, high)
    tensors: list[T] = field(default_factory=list)  # every value a node may consume
    consumed: set[str] = field(default_factory=set)
    coverage: dict[str, dict[str, set[str]]] = field(default_factory=dict)
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)
    _count: int = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def add_input(self, shape: tuple[int, ...], dtype: int) -> T:
        t = T(self.name("x"), shape, dtype)
        self.inputs.append(t)
        self.tensors.append(t)
        self.shapes[t.name] = shape
        return t

    def const(self, array: np.ndarray, stem: str = "w") -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(array, name))
        return name

    def weights(self, shape: tuple[int, ...], dtype: int, scale: float = 1.0) -> str:
        values = self.rng.uniform(-1.0, 1.0, size=shape) * scale
        return self.const(values.astype(FLOAT_TYPES[dtype]))

    def node(self, op: str, inputs: list[str], out_shape: tuple[int, ...], out_dtype: int, **attrs: Any) -> T:
        """Add one node; records its attributes for coverage (ints, strings and lists as written, floats to 2
        significant digits)."""
        out = T(self.name(op.lower()), tuple(int(d) for d in out_shape), out_dtype)
        self.nodes.append(helper.make_node(op, inputs, [out.name], name=self.name(f"n_{op}"), **attrs))
        self.consumed.update(i for i in inputs if i)
        seen = self.coverage.setdefault(op, {})
        seen.setdefault("dtype", set()).add(DTYPE_NAMES[out_dtype] if out_dtype in DTYPE_NAMES else str(out_dtype))
        for key, value in attrs.items():
            seen.setdefault(key, set()).add(_attr_text(value))
        self.tensors.append(out)
        self.shapes[out.name] = out.shape
        return out

    def positive(self, x: T) -> str:
        """``x`` kept inside (0, inf): a graph input without a range gets a positive one, else a guard."""
        if x.name in {i.name for i in self.inputs} and x.name not in self.ranges:
            self.ranges[x.name] = POSITIVE_RANGE
            return x.name
        if x.name in self.ranges and self.ranges[x.name][0] > 0:
            return x.name
        absolute = self.node("Abs", [x.name], x.shape, x.dtype)
        eps = self.const(np.asarray(0.5, dtype=FLOAT_TYPES[x.dtype]), "eps")
        return self.node("Add", [absolute.name, eps], x.shape, x.dtype).name

    def pick(self, wanted: Callable[[T], bool]) -> T | None:
        """A tensor that satisfies ``wanted``, recent ones more likely (graphs grow deep, not only wide)."""
        found = [t for t in self.tensors if wanted(t)]
        if not found:
            return None
        weights = np.arange(1, len(found) + 1, dtype=np.float64)
        return found[int(self.rng.choice(len(found), p=weights / weights.sum()))]


def _attr_text(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.2g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_attr_text(v) for v in value) + "]"
    if isinstance(value, bytes):
        return value.decode()
    return str(value)


def _uniform(b: Builder, low: float, high: float) -> float:
    return round(float(b.rng.uniform(low, high)), 3)


# --- elementwise unary
def unary(op: str, **attr_samplers: Callable[[Builder], Any]) -> Callable[[Builder, T], T | None]:
    def build(b: Builder, x: T) -> T:
        attrs = {k: sample(b) for k, sample in attr_samplers.items()}
        return b.node(op, [x.name], x.shape, x.dtype, **attrs)
    return build


def domain_unary(op: str) -> Callable[[Builder, T], T | None]:
    def build(b: Builder, x: T) -> T:
        return b.node(op, [b.positive(x)], x.shape, x.dtype)
    return build


def op_clip(b: Builder, x: T) -> T:
    low = _uniform(b, -1.5, 0.0)
    high = _uniform(b, 0.1, 1.5)
    kind = FLOAT_TYPES[x.dtype]
    return b.node("Clip", [x.name, b.const(np.asarray(low, kind), "min"), b.const(np.asarray(high, kind), "max")],
                  x.shape, x.dtype)


# --- elementwise binary with broadcasting
def broadcast_shape(a: tuple[int, ...], c: tuple[int, ...]) -> tuple[int, ...] | None:
    """numpy's (and ONNX's multidirectional) broadcasting; None when the shapes do not broadcast."""
    out = []
    for x, y in zip(((1,) * (len(c) - len(a))) + a, ((1,) * (len(a) - len(c))) + c):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out)


def _broadcast_partner_shape(b: Builder, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts with ``shape``: a suffix of it, some dims set to 1."""
    keep = int(b.rng.integers(0, len(shape) + 1))
    tail = list(shape[len(shape) - keep:])
    return tuple(1 if b.rng.random() < 0.3 else d for d in tail)


def _second_operand(b: Builder, x: T) -> T | str:
    other = b.pick(lambda t: t.dtype == x.dtype and t.name != x.name and broadcast_shape(x.shape, t.shape) is not None)
    if other is not None and b.rng.random() < 0.6:
        return other
    shape = _broadcast_partner_shape(b, x.shape)
    return T(b.weights(shape, x.dtype), shape, x.dtype)


def binary(op: str) -> Callable[[Builder, T], T | None]:
    def build(b: Builder, x: T) -> T | None:
        y = _second_operand(b, x)
        out = broadcast_shape(x.shape, y.shape)
        first, second = (x, y) if b.rng.random() < 0.5 else (y, x)
        return b.node(op, [first.name, second.name], out, x.dtype) if out is not None else None
    return build


def op_div(b: Builder, x: T) -> T | None:
    """The divisor stays away from zero: a graph tensor through ``positive``, else weights of magnitude 0.5..2."""
    other = b.pick(lambda t: t.dtype == x.dtype and t.name != x.name and broadcast_shape(x.shape, t.shape) is not None)
    if other is not None and b.rng.random() < 0.6:
        shape, divisor = other.shape, b.positive(other)
    else:
        shape = _broadcast_partner_shape(b, x.shape)
        values = b.rng.uniform(0.5, 2.0, size=shape) * b.rng.choice([-1.0, 1.0], size=shape)
        divisor = b.const(values.astype(FLOAT_TYPES[x.dtype]), "d")
    out = broadcast_shape(x.shape, shape)
    return b.node("Div", [x.name, divisor], out, x.dtype) if out is not None else None


def op_pow(b: Builder, x: T) -> T:
    exponent = float(b.rng.choice([0.5, 1.5, 2.0, 3.0, -1.0]))
    return b.node("Pow", [b.positive(x), b.const(np.asarray(exponent, FLOAT_TYPES[x.dtype]), "e")], x.shape, x.dtype)


# --- linear algebra
def op_matmul(b: Builder, x: T) -> T | None:
    if x.rank < 2:
        return None
    k, n = x.shape[-1], int(b.rng.integers(1, 9))
    w = b.weights((k, n), x.dtype, 1.0 / math.sqrt(k))
    return b.node("MatMul", [x.name, w], x.shape[:-1] + (n,), x.dtype)


def op_gemm(b: Builder, x: T) -> T | None:
    if x.rank != 2:
        return None
    m, k = x.shape
    n = int(b.rng.integers(1, 9))
    trans_b = int(b.rng.integers(0, 2))
    w = b.weights((n, k) if trans_b else (k, n), x.dtype, 1.0 / math.sqrt(k))
    inputs = [x.name, w]
    if b.rng.random() < 0.7:
        inputs.append(b.weights((n,) if b.rng.random() < 0.5 else (1, n), x.dtype))
    return b.node("Gemm", inputs, (m, n), x.dtype, transB=trans_b, alpha=_uniform(b, 0.5, 1.5),
                  beta=_uniform(b, 0.5, 1.5))


# --- convolution and pooling (NCHW)
def _window(size: int, kernel: int, stride: int, pad: int, dilation: int = 1, ceil: bool = False) -> int:
    span = size + 2 * pad - dilation * (kernel - 1) - 1
    return (math.ceil(span / stride) if ceil else span // stride) + 1


def _window_attrs(b: Builder, x: T, dilated: bool) -> dict[str, Any] | None:
    h, w = x.shape[2], x.shape[3]
    kernel = [int(b.rng.integers(1, min(3, h + 1) + 1)), int(b.rng.integers(1, min(3, w + 1) + 1))]
    strides = [int(b.rng.integers(1, 3)), int(b.rng.integers(1, 3))]
    pads = [int(b.rng.integers(0, k)) for k in kernel] * 2  # a pad below the kernel: every window sees data
    dilations = [int(b.rng.integers(1, 3)) for _ in kernel] if dilated else [1, 1]
    if any(_window(s, k, st, p, d) < 1 for s, k, st, p, d in zip((h, w), kernel, strides, pads, dilations)):
        return None
    return {"kernel_shape": kernel, "strides": strides, "pads": pads, "dilations": dilations}


def op_conv(b: Builder, x: T) -> T | None:
    if x.rank != 4:
        return None
    attrs = _window_attrs(b, x, dilated=True)
    if attrs is None:
        return None
    c = x.shape[1]
    group = int(b.rng.choice([g for g in (1, 2, c) if c % g == 0]))
    m = group * int(b.rng.integers(1, 3))
    w = b.weights((m, c // group, *attrs["kernel_shape"]), x.dtype, 1.0 / math.sqrt(c // group * 4))
    inputs = [x.name, w] + ([b.weights((m,), x.dtype)] if b.rng.random() < 0.6 else [])
    out = (x.shape[0], m, *[_window(s, k, st, p, d) for s, k, st, p, d in
                            zip(x.shape[2:], attrs["kernel_shape"], attrs["strides"], attrs["pads"], attrs["dilations"])])
    return b.node("Conv", inputs, out, x.dtype, group=group, **attrs)


def pool(op: str) -> Callable[[Builder, T], T | None]:
    def build(b: Builder, x: T) -> T | None:
        if x.rank != 4:
            return None
        attrs = _window_attrs(b, x, dilated=False)
        if attrs is None:
            return None
        attrs.pop("dilations")
        ceil = int(b.rng.random() < 0.3)
        out = (*x.shape[:2], *[_pooled(s, k, st, p, ceil) for s, k, st, p in
                               zip(x.shape[2:], attrs["kernel_shape"], attrs["strides"], attrs["pads"])])
        extra = {"count_include_pad": int(b.rng.integers(0, 2))} if op == "AveragePool" else {}
        return b.node(op, [x.name], out, x.dtype, ceil_mode=ceil, **attrs, **extra)
    return build


def _pooled(size: int, kernel: int, stride: int, pad: int, ceil: int) -> int:
    """ONNX's pooling output size, as onnx's shape inference computes it. With ceil_mode it keeps a last window
    that starts inside the right padding, where PyTorch (and some kernels) drop it: a place for runtimes to
    differ, which is why ceil_mode is drawn at all."""
    return _window(size, kernel, stride, pad, 1, bool(ceil))


def op_global_average_pool(b: Builder, x: T) -> T | None:
    if x.rank < 3:
        return None
    return b.node("GlobalAveragePool", [x.name], x.shape[:2] + (1,) * (x.rank - 2), x.dtype)


# --- reductions and normalisations
def reduce(op: str) -> Callable[[Builder, T], T | None]:
    def build(b: Builder, x: T) -> T | None:
        if x.rank == 0:
            return None
        count = int(b.rng.integers(1, x.rank + 1))
        axes = sorted(int(a) for a in b.rng.choice(x.rank, size=count, replace=False))
        keepdims = int(b.rng.integers(0, 2))
        out = tuple(1 if i in axes else d for i, d in enumerate(x.shape)) if keepdims else \
            tuple(d for i, d in enumerate(x.shape) if i not in axes)
        written = [a - x.rank if b.rng.random() < 0.3 else a for a in axes]
        return b.node(op, [x.name, b.const(np.asarray(written, np.int64), "axes")], out, x.dtype, keepdims=keepdims)
    return build


def softmax(op: str) -> Callable[[Builder, T], T | None]:
    def build(b: Builder, x: T) -> T | None:
        if x.rank == 0:
            return None
        return b.node(op, [x.name], x.shape, x.dtype, axis=int(b.rng.integers(-x.rank, x.rank)))
    return build


def op_layer_norm(b: Builder, x: T) -> T | None:
    if x.rank == 0:
        return None
    axis = int(b.rng.integers(-x.rank, x.rank))
    normalized = x.shape[axis:]
    inputs = [x.name, b.weights(normalized, x.dtype)] + ([b.weights(normalized, x.dtype)] if b.rng.random() < 0.6 else [])
    return b.node("LayerNormalization", inputs, x.shape, x.dtype, axis=axis,
                  epsilon=float(b.rng.choice([1e-5, 1e-3])))


# --- layout
def op_transpose(b: Builder, x: T) -> T | None:
    if x.rank < 2:
        return None
    perm = [int(p) for p in b.rng.permutation(x.rank)]
    return b.node("Transpose", [x.name], tuple(x.shape[p] for p in perm), x.dtype, perm=perm)


def _factors(n: int) -> list[int]:
    found, d = [], 2
    while d * d <= n:
        while n % d == 0:
            found.append(d)
            n //= d
        d += 1
    return found + ([n] if n > 1 else [])


def op_reshape(b: Builder, x: T) -> T | None:
    rank = int(b.rng.integers(1, 5))
    dims = [1] * rank
    for f in _factors(math.prod(x.shape)):
        dims[int(b.rng.integers(0, rank))] *= f
    written = list(dims)
    if b.rng.random() < 0.4:
        written[int(b.rng.integers(0, rank))] = -1
    return b.node("Reshape", [x.name, b.const(np.asarray(written, np.int64), "shape")], tuple(dims), x.dtype)


def op_concat(b: Builder, x: T) -> T | None:
    if x.rank == 0:
        return None
    axis = int(b.rng.integers(0, x.rank))
    fits = lambda t: t.dtype == x.dtype and t.rank == x.rank and all(
        d == e for i, (d, e) in enumerate(zip(t.shape, x.shape)) if i != axis)
    other = b.pick(fits) if b.rng.random() < 0.7 else None
    if other is None:
        shape = tuple(int(b.rng.integers(1, 4)) if i == axis else d for i, d in enumerate(x.shape))
        other = T(b.weights(shape, x.dtype), shape, x.dtype)
    out = tuple(d + other.shape[i] if i == axis else d for i, d in enumerate(x.shape))
    return b.node("Concat", [x.name, other.name], out, x.dtype, axis=axis - x.rank if b.rng.random() < 0.3 else axis)


def op_slice(b: Builder, x: T) -> T | None:
    if x.rank == 0 or max(x.shape) < 2:
        return None
    axis = int(b.rng.choice([i for i, d in enumerate(x.shape) if d >= 2]))
    size = x.shape[axis]
    start = int(b.rng.integers(0, size - 1))
    end = int(b.rng.integers(start + 1, size + 1))
    step = int(b.rng.integers(1, 3))
    if b.rng.random() < 0.25:  # backwards: from end-1 down to start (exclusive of start-1)
        starts, ends, step = [end - 1], [start - 1 if start > 0 else -size - 1], -step
        length = len(range(end - 1, start - 1, step))
    else:
        starts, ends = [start], [end]
        length = len(range(start, end, step))
    out = tuple(length if i == axis else d for i, d in enumerate(x.shape))
    consts = [b.const(np.asarray(v, np.int64), s) for v, s in ((starts, "starts"), (ends, "ends"), ([axis], "axes"),
                                                               ([step], "steps"))]
    return b.node("Slice", [x.name, *consts], out, x.dtype)


# Narrower first: a Cast is drawn only towards a narrower float. A widening one (float16 -> float32) would compare
# data that carries float16 rounding under the float32 tolerance of the output's dtype, while the float64 reference
# (which widens the whole graph) never rounded it: every such graph would "disagree" on every runtime.
_WIDTH = {TensorProto.FLOAT16: 0, TensorProto.FLOAT: 1, TensorProto.DOUBLE: 2}


def op_cast(b: Builder, x: T) -> T | None:
    narrower = [t for t in FLOAT_TYPES if _WIDTH[t] < _WIDTH[x.dtype]]
    if not narrower:
        return None
    to = int(b.rng.choice(narrower))
    return b.node("Cast", [x.name], x.shape, to, to=to)


# name -> (builder, opset in which this form of the op appeared)
OPS: dict[str, tuple[Callable[[Builder, T], T | None], int]] = {
    "Abs": (unary("Abs"), 13), "Neg": (unary("Neg"), 13), "Exp": (unary("Exp"), 13), "Tanh": (unary("Tanh"), 13),
    "Sigmoid": (unary("Sigmoid"), 13), "Relu": (unary("Relu"), 14), "Softplus": (unary("Softplus"), 1),
    "Erf": (unary("Erf"), 13), "Sin": (unary("Sin"), 7), "Cos": (unary("Cos"), 7),
    "Log": (domain_unary("Log"), 13), "Sqrt": (domain_unary("Sqrt"), 13), "Reciprocal": (domain_unary("Reciprocal"), 13),
    "LeakyRelu": (unary("LeakyRelu", alpha=lambda b: _uniform(b, 0.01, 0.5)), 16),
    "Elu": (unary("Elu", alpha=lambda b: _uniform(b, 0.5, 2.0)), 6),
    "HardSigmoid": (unary("HardSigmoid", alpha=lambda b: _uniform(b, 0.1, 0.5), beta=lambda b: _uniform(b, 0.3, 0.7)), 6),
    "Gelu": (unary("Gelu", approximate=lambda b: str(b.rng.choice(["none", "tanh"]))), 20),
    "Clip": (op_clip, 13),
    "Add": (binary("Add"), 14), "Sub": (binary("Sub"), 14), "Mul": (binary("Mul"), 14), "Max": (binary("Max"), 13),
    "Min": (binary("Min"), 13), "Div": (op_div, 14), "Pow": (op_pow, 15),
    "MatMul": (op_matmul, 13), "Gemm": (op_gemm, 13), "Conv": (op_conv, 11),
    "MaxPool": (pool("MaxPool"), 12), "AveragePool": (pool("AveragePool"), 11),
    "GlobalAveragePool": (op_global_average_pool, 1),
    "ReduceSum": (reduce("ReduceSum"), 13), "ReduceMean": (reduce("ReduceMean"), 18),
    "ReduceMax": (reduce("ReduceMax"), 18), "ReduceL2": (reduce("ReduceL2"), 18),
    "ReduceLogSumExp": (reduce("ReduceLogSumExp"), 18),
    "Softmax": (softmax("Softmax"), 13), "LogSoftmax": (softmax("LogSoftmax"), 13),
    "LayerNormalization": (op_layer_norm, 17),
    "Transpose": (op_transpose, 13), "Reshape": (op_reshape, 14), "Concat": (op_concat, 13), "Slice": (op_slice, 13),
    "Cast": (op_cast, 13),
}


# What an op's operand must be; others take any tensor. The operand is chosen to suit the op, so that ops with a
# rank requirement are drawn as often as the others.
NEEDS: dict[str, Callable[[T], bool]] = {
    "Conv": lambda t: t.rank == 4, "MaxPool": lambda t: t.rank == 4, "AveragePool": lambda t: t.rank == 4,
    "GlobalAveragePool": lambda t: t.rank >= 3, "Gemm": lambda t: t.rank == 2, "MatMul": lambda t: t.rank >= 2,
    "Transpose": lambda t: t.rank >= 2, "Slice": lambda t: t.rank >= 1 and max(t.shape) >= 2,
    "Cast": lambda t: t.dtype != TensorProto.FLOAT16,
}


def ops_for(opset: int, only: list[str] | None = None) -> list[str]:
    """The op names the fuzzer may draw at ``opset`` (those whose form here appeared at or before it)."""
    names = [n for n, (_, since) in OPS.items() if since <= opset]
    return [n for n in names if n in only] if only else names
