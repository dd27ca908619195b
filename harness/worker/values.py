"""Values in and out of an onnxruntime session, for every element type the ONNX suite uses.

``sess.run`` takes and returns numpy arrays of numpy's own dtypes, lists (sequences), dicts (maps) and None
(an absent optional). It cannot take bfloat16, float8, int4/uint4 or float4e2m1 arrays, and it cannot return
them (bfloat16: "No corresponding Numpy type"; float8e4m3fn comes back as raw uint8). Those go in as OrtValues
built with their ONNX element type, and come out of ``run_with_ort_values`` as bits that are reinterpreted with
ml_dtypes (imported lazily, through the protocol's dtype table).

Sub-byte types: ml_dtypes keeps one element per byte; onnxruntime packs them (two 4-bit or four 2-bit elements
per byte, the first in the lowest bits: the ONNX layout). ``pack_bits`` / ``unpack_bits`` convert at the
session's edge.

Worker-side: imports only numpy, onnxruntime (lazily), the standard library and sibling worker modules.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

from harness.worker import protocol

# Element types sess.run cannot carry as numpy arrays (ONNX TensorProto.DataType numbers).
# Packed sub-byte types -> bits per element: uint4, int4, float4e2m1 (two per byte), uint2, int2 (four per byte).
_PACKED_BITS = {21: 4, 22: 4, 23: 4, 25: 2, 26: 2}
_SIGNED = {22, 26}  # int4, int2: two's complement, sign-extended to a byte by ml_dtypes
_BITS_VIEW = {1: np.uint8, 2: np.uint16}  # itemsize -> the unsigned type with the same bits
# onnxruntime's type strings for element types numpy has (everything else needs OrtValues).
_NUMPY_NATIVE = {"float", "float16", "double", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                 "uint64", "bool", "string", "complex64", "complex128"}


def elem_type(array: np.ndarray) -> int | None:
    """The ONNX element type of an array that needs an OrtValue; None when sess.run takes it as it is."""
    if array.dtype.kind in "OSU" or array.dtype.name in protocol.NUMPY_DTYPE_NAMES:  # by name: ml_dtypes'
        return None  # float8_e5m2 has kind 'f' like numpy's own floats
    return protocol.elem_type_of(array.dtype)


def pack_bits(array: np.ndarray, bits: int) -> np.ndarray:
    """One sub-byte element per byte (ml_dtypes) -> 8/bits per byte, the first in the lowest bits (ONNX)."""
    per_byte = 8 // bits
    codes = array.reshape(-1).view(np.uint8) & ((1 << bits) - 1)
    codes = np.append(codes, np.zeros((-codes.size) % per_byte, np.uint8)).reshape(-1, per_byte)
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    return np.bitwise_or.reduce(codes << shifts, axis=1).astype(np.uint8)


def unpack_bits(packed: np.ndarray, count: int, elem: int) -> np.ndarray:
    """8/bits elements per byte -> one per byte in ml_dtypes' layout (int4/int2 sign-extended)."""
    bits = _PACKED_BITS[elem]
    per_byte = 8 // bits
    shifts = np.arange(per_byte, dtype=np.uint8) * bits
    codes = ((packed.reshape(-1, 1) >> shifts) & ((1 << bits) - 1)).astype(np.uint8).reshape(-1)[:count]
    if elem in _SIGNED:  # two's complement in the low bits -> a sign-extended byte
        sign = np.uint8(1 << (bits - 1))
        codes = np.where(codes & sign, codes | np.uint8(0xFF << bits & 0xFF), codes).astype(np.uint8)
    return codes


def to_ort_value(array: np.ndarray, elem: int) -> Any:
    """An OrtValue of ONNX element type ``elem`` holding ``array``'s values (a copy for packed types, else a
    view that keeps ``array`` alive)."""
    import onnxruntime as ort
    array = np.ascontiguousarray(array) if array.ndim else array.copy()
    if elem in _PACKED_BITS:
        value = ort.OrtValue.ortvalue_from_shape_and_type(list(array.shape), elem)
        packed = pack_bits(array, _PACKED_BITS[elem])
        if packed.size:
            if value.tensor_size_in_bytes() != packed.nbytes:
                raise ValueError(f"onnxruntime expects {value.tensor_size_in_bytes()} bytes for a "
                                 f"{list(array.shape)} tensor of element type {elem}, packing gave {packed.nbytes}")
            ctypes.memmove(value.data_ptr(), packed.ctypes.data, packed.nbytes)
        return value
    bits = array.view(_BITS_VIEW[array.dtype.itemsize])
    return ort.OrtValue.ortvalue_from_numpy_with_onnx_type(bits, elem)


def from_ort_value(value: Any) -> np.ndarray:
    """A tensor OrtValue as a numpy array with its ONNX element type (ml_dtypes for the exotic ones)."""
    elem = value.element_type()
    name = protocol.DTYPE_OF_ELEM.get(elem)
    if name is None:
        raise ValueError(f"output of ONNX element type {elem} ({value.data_type()}) has no numpy form here")
    if not _exotic(value.data_type()):
        return value.numpy()
    shape = tuple(value.shape())
    count = int(np.prod(shape, dtype=np.int64))
    nbytes = value.tensor_size_in_bytes()
    raw = np.frombuffer(ctypes.string_at(value.data_ptr(), nbytes), dtype=np.uint8) if nbytes else np.empty(0, np.uint8)
    dtype = protocol.dtype_from_name(name)
    if elem in _PACKED_BITS:
        return unpack_bits(raw, count, elem).view(dtype).reshape(shape)
    return raw.view(dtype).reshape(shape)


def _convert(name: str, value: Any) -> Any:
    if isinstance(value, np.ndarray):
        elem = elem_type(value)
        return value if elem is None else to_ort_value(value, elem)
    if isinstance(value, list) and any(isinstance(v, np.ndarray) and elem_type(v) is not None for v in value):
        raise NotImplementedError(f"input {name!r}: a sequence of {value[0].dtype} tensors cannot be fed to "
                                  f"onnxruntime from Python (only sequences of numpy's own dtypes)")
    return value


def session_feed(feed: dict[str, Any]) -> dict[str, Any]:
    """Inputs as sess.run takes them: numpy arrays, lists, dicts and None as they are; exotic tensors as
    OrtValues with their ONNX element type."""
    return {name: _convert(name, value) for name, value in feed.items()}


def _exotic(type_string: str) -> bool:
    """'tensor(bfloat16)' and friends: outputs sess.run cannot turn into numpy arrays."""
    return type_string.startswith("tensor(") and type_string[7:-1] not in _NUMPY_NATIVE


def needs_ort_values(session: Any) -> bool:
    """True when an output is of a type only run_with_ort_values returns (bfloat16, float8, 4-bit...)."""
    return any(_exotic(o.type) for o in session.get_outputs())


def ort_inputs(feed: dict[str, Any]) -> dict[str, Any]:
    """Every input as an OrtValue, for run_with_ort_values (which takes tensors only)."""
    import onnxruntime as ort
    inputs = session_feed(feed)
    out = {}
    for n, v in inputs.items():
        if not isinstance(v, (np.ndarray, ort.OrtValue)):
            raise NotImplementedError(f"input {n!r} is a {type(v).__name__} value, and an output is of a type only "
                                      f"run_with_ort_values returns (which takes tensors only)")
        out[n] = v if isinstance(v, ort.OrtValue) else ort.OrtValue.ortvalue_from_numpy(v)
    return out


def run(session: Any, feed: dict[str, Any]) -> list[Any]:
    """One inference; outputs in the session's order, each a value of the protocol's value model. Models with
    an exotic tensor output go through run_with_ort_values (every output must then be a tensor)."""
    if not needs_ort_values(session):
        return session.run(None, session_feed(feed))
    outputs = session.get_outputs()
    results = session.run_with_ort_values(None, ort_inputs(feed))
    values = []
    for meta, value in zip(outputs, results):
        if not value.is_tensor():
            raise NotImplementedError(f"output {meta.name!r} ({meta.type}) is not a tensor, and another output is "
                                      f"of a type only run_with_ort_values returns")
        values.append(from_ort_value(value))
    return values


class _OrtValueSession:
    """A session whose ``run`` is run_with_ort_values: what latency sampling times for a model with an exotic
    output, so that the timed call is the inference alone, outputs left as OrtValues (never converted)."""

    def __init__(self, session: Any) -> None:
        self._session = session

    def run(self, output_names: Any, feed: dict[str, Any]) -> Any:
        return self._session.run_with_ort_values(output_names, feed)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._session, name)


def for_timing(session: Any, feed: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """(session, feed) for harness.worker.timing, prepared once before the timed loop: unchanged for a model of
    numpy types; exotic inputs as OrtValues; a model with an exotic output behind run_with_ort_values."""
    if needs_ort_values(session):
        return _OrtValueSession(session), ort_inputs(feed)
    if any(isinstance(v, np.ndarray) and elem_type(v) is not None for v in feed.values()):
        return session, session_feed(feed)
    return session, feed
