"""Worker wire protocol: length-prefixed frames of a JSON header plus raw tensor bytes.

Language-neutral on purpose (see ``docs/worker-protocol.md``): a worker written in any
runtime (Node.js + ONNX Runtime Web, a qemu-emulated Python, a remote process) can speak it
with nothing more than a JSON parser and little-endian integer decoding.

Frame layout, all integers little-endian::

    magic    4 bytes  b"OHW1"
    hlen     uint32   length of the JSON header in bytes (<= MAX_HEADER_BYTES)
    plen     uint64   length of the raw payload in bytes (<= max_payload)
    header   hlen bytes of UTF-8 JSON (an object with at least "type": str)
    payload  plen bytes: the tensors' C-contiguous little-endian data

Values (version 2): a tensor is an ``np.ndarray`` (ml_dtypes dtypes for bfloat16, float8, int4/uint4,
float4e2m1...; an object array of ``str`` for strings), a sequence a ``list``, a map a ``dict``, an absent
optional ``None`` (a present one is its value). Every tensor entry carries its ONNX element type.

This module imports only the standard library and numpy (ml_dtypes lazily, for the exotic
element types). It must not import anything else from ``harness``.
"""

from __future__ import annotations

import io
import json
import struct
import sys
from collections.abc import Mapping
from typing import Any, BinaryIO

import numpy as np

__all__ = [
    "MAGIC",
    "PROTOCOL_VERSION",
    "PREFIX",
    "PREFIX_SIZE",
    "MAX_HEADER_BYTES",
    "DEFAULT_MAX_PAYLOAD",
    "TENSOR_ALIGNMENT",
    "MSG_HELLO",
    "MSG_LOAD",
    "MSG_LOADED",
    "MSG_INFER",
    "MSG_RESULT",
    "MSG_ERROR",
    "MSG_BYE",
    "MESSAGE_TYPES",
    "SUPPORTED_DTYPES",
    "ProtocolError",
    "TruncatedFrame",
    "OversizeHeader",
    "BadMagic",
    "dtype_from_name",
    "dtype_name",
    "elem_type_of",
    "value_nbytes",
    "write_message",
    "read_message",
    "encode_message",
    "decode_message",
]

MAGIC = b"OHW1"
PROTOCOL_VERSION = 2  # 2: ONNX element types, strings, sub-byte types, sequences/optionals/maps
PREFIX = struct.Struct("<4sIQ")  # magic, hlen (uint32), plen (uint64)
PREFIX_SIZE = PREFIX.size  # 16
MAX_HEADER_BYTES = 1 << 20  # 1 MiB
DEFAULT_MAX_PAYLOAD = 16 << 30  # 16 GiB
TENSOR_ALIGNMENT = 64  # writers pad tensor offsets to this; readers accept any offset
MAX_NESTING = 16  # sequences/optionals/maps inside each other, at most this deep
_MAX_DIM = 1 << 62  # numpy refuses larger dimensions (even of an empty array)
_FIRST_PAYLOAD_CHUNK = 1 << 20  # the payload buffer starts here and grows x4 as bytes arrive

# Message vocabulary (header["type"]). See docs/worker-protocol.md for the fields of each.
MSG_HELLO = "hello"  # worker -> parent, first frame: runtime, pid, versions
MSG_LOAD = "load"  # parent -> worker: model path, profile dict
MSG_LOADED = "loaded"  # worker -> parent: the session is ready (+ input/output metadata)
MSG_INFER = "infer"  # parent -> worker: input tensors
MSG_RESULT = "result"  # worker -> parent: output tensors + observation fields
MSG_ERROR = "error"  # worker -> parent: {"kind": ..., "message": ...}
MSG_BYE = "bye"  # either way: orderly shutdown
MESSAGE_TYPES = frozenset(
    {MSG_HELLO, MSG_LOAD, MSG_LOADED, MSG_INFER, MSG_RESULT, MSG_ERROR, MSG_BYE}
)

# Explicit little-endian numpy dtypes; keys are the wire names.
_NUMPY_DTYPES: dict[str, str] = {
    "float16": "<f2",
    "float32": "<f4",
    "float64": "<f8",
    "int8": "i1",
    "int16": "<i2",
    "int32": "<i4",
    "int64": "<i8",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
    "complex64": "<c8",
    "complex128": "<c16",
}
NUMPY_DTYPE_NAMES = frozenset(_NUMPY_DTYPES)  # numpy's own; the others need ml_dtypes
# Provided by ml_dtypes when it is importable; one byte per element for the sub-byte types (unpacked).
_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
              "float8_e8m0fnu", "int4", "uint4", "float4_e2m1fn", "int2", "uint2", "float6_e2m3fn",
              "float6_e3m2fn")
STRING = "string"  # UTF-8 strings: (n + 1) uint64 offsets, then the bytes

SUPPORTED_DTYPES = tuple(_NUMPY_DTYPES) + _ML_DTYPES + (STRING,)

# ONNX TensorProto.DataType of each wire dtype (onnx.TensorProto numbering; not imported, to stay standalone).
ELEM_TYPES: dict[str, int] = {
    "float32": 1, "uint8": 2, "int8": 3, "uint16": 4, "int16": 5, "int32": 6, "int64": 7, STRING: 8,
    "bool": 9, "float16": 10, "float64": 11, "uint32": 12, "uint64": 13, "complex64": 14, "complex128": 15,
    "bfloat16": 16, "float8_e4m3fn": 17, "float8_e4m3fnuz": 18, "float8_e5m2": 19, "float8_e5m2fnuz": 20,
    "uint4": 21, "int4": 22, "float4_e2m1fn": 23, "float8_e8m0fnu": 24, "uint2": 25, "int2": 26,
    "float6_e2m3fn": 27, "float6_e3m2fn": 28,
}
DTYPE_OF_ELEM = {v: k for k, v in ELEM_TYPES.items()}
KINDS = ("tensor", "sequence", "optional", "map")


class ProtocolError(Exception):
    """A frame is malformed or cannot be encoded."""


class TruncatedFrame(ProtocolError):
    """End of stream in the middle of a frame (the peer died or closed mid-write)."""


class OversizeHeader(ProtocolError):
    """The announced header or payload length exceeds the configured limit."""


class BadMagic(ProtocolError):
    """The frame does not start with the protocol magic."""


_ml_cache: dict[str, np.dtype] | None = None


def _ml_dtypes() -> dict[str, np.dtype]:
    global _ml_cache
    if _ml_cache is None:
        found: dict[str, np.dtype] = {}
        try:
            import ml_dtypes  # type: ignore[import-not-found]
        except ImportError:
            ml_dtypes = None
        if ml_dtypes is not None:
            for name in _ML_DTYPES:
                t = getattr(ml_dtypes, name, None)
                if t is not None:
                    found[name] = np.dtype(t)
        _ml_cache = found
    return _ml_cache


def dtype_from_name(name: str) -> np.dtype:
    """Wire dtype name -> numpy dtype (little-endian; object for strings). Raises ProtocolError if unknown."""
    if not isinstance(name, str):
        raise ProtocolError(f"dtype must be a string, got {name!r}")
    code = _NUMPY_DTYPES.get(name)
    if code is not None:
        return np.dtype(code)
    if name == STRING:
        return np.dtype(object)
    if name in _ML_DTYPES:
        dt = _ml_dtypes().get(name)
        if dt is None:
            raise ProtocolError(f"dtype {name!r} needs the ml_dtypes package, which is not installed")
        return dt
    raise ProtocolError(f"unknown dtype {name!r}; supported: {', '.join(SUPPORTED_DTYPES)}")


def dtype_name(dtype: Any) -> str:
    """numpy dtype -> wire dtype name ('string' for str/bytes/object arrays). Raises ProtocolError if unsupported."""
    dt = np.dtype(dtype)
    if dt.kind in "USO":
        return STRING
    name = dt.name
    if name in _NUMPY_DTYPES and dt.kind in "fiubc":
        return name
    if name in _ML_DTYPES and _ml_dtypes().get(name) == dt:
        return name
    raise ProtocolError(f"dtype {dt} is not supported; supported: {', '.join(SUPPORTED_DTYPES)}")


def elem_type_of(dtype: Any) -> int:
    """The ONNX element type (TensorProto.DataType) of a numpy dtype."""
    return ELEM_TYPES[dtype_name(dtype)]


def _string_blob(arr: np.ndarray) -> np.ndarray:
    """A string tensor as bytes: (n + 1) little-endian uint64 offsets into the data, then the UTF-8 data."""
    parts = []
    for item in arr.reshape(-1).tolist():
        if isinstance(item, str):
            parts.append(item.encode("utf-8"))
        elif isinstance(item, bytes):
            parts.append(item)
        else:
            raise ProtocolError(f"a string tensor holds a {type(item).__name__}, not str or bytes")
    offsets = np.zeros(len(parts) + 1, dtype="<u8")
    np.cumsum([len(b) for b in parts], out=offsets[1:])
    return np.frombuffer(offsets.tobytes() + b"".join(parts), dtype=np.uint8)


def _wire_array(value: Any) -> tuple[str, np.ndarray, np.ndarray]:
    """(wire dtype, the array as sent for its shape, the bytes to send as a flat uint8-viewable array)."""
    arr = np.asarray(value)
    wire = dtype_name(arr.dtype)
    if wire == STRING:
        return wire, arr, _string_blob(arr)
    code = _NUMPY_DTYPES.get(wire)
    if code is not None and arr.dtype.str != np.dtype(code).str:
        arr = arr.astype(np.dtype(code))  # big-endian (or native on a big-endian host) -> '<'
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    return wire, arr, arr


class _Builder:
    """Lays values out in the payload: header entries plus (padding, bytes) pieces."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, np.ndarray]] = []
        self.offset = 0

    def entry(self, value: Any, depth: int = 0) -> dict[str, Any]:
        if depth > MAX_NESTING:
            raise ProtocolError(f"values nest deeper than {MAX_NESTING} levels")
        if value is None:
            return {"kind": "optional", "value": None}
        if isinstance(value, (list, tuple)):
            return {"kind": "sequence", "items": [self.entry(v, depth + 1) for v in value]}
        if isinstance(value, Mapping):
            keys = np.asarray(list(value.keys()))
            if keys.dtype.kind == "U":
                keys = keys.astype(object)
            return {"kind": "map", "keys": self.tensor(keys),
                    "values": self.entry([np.asarray(v) for v in value.values()], depth + 1)}
        return self.tensor(value)

    def tensor(self, value: Any) -> dict[str, Any]:
        wire, arr, data = _wire_array(value)
        pad = (-self.offset) % TENSOR_ALIGNMENT
        self.offset += pad
        entry = {"dtype": wire, "elem_type": ELEM_TYPES[wire], "shape": [int(d) for d in arr.shape],
                 "offset": self.offset, "nbytes": int(data.nbytes)}
        self.pieces.append((pad, data))
        self.offset += data.nbytes
        return entry


def _build(header: Mapping[str, Any], tensors: Mapping[str, Any] | None):
    if not isinstance(header, Mapping):
        raise ProtocolError(f"header must be a mapping, got {type(header).__name__}")
    if not isinstance(header.get("type"), str):
        raise ProtocolError("header must have a string 'type'")
    hdr = dict(header)
    builder = _Builder()
    table: list[dict[str, Any]] = []
    for name, value in (tensors or {}).items():
        if not isinstance(name, str):
            raise ProtocolError(f"tensor names must be strings, got {name!r}")
        table.append({"name": name, **builder.entry(value)})
    hdr["tensors"] = table
    try:
        hbytes = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON-serialisable: {exc}") from exc
    if len(hbytes) > MAX_HEADER_BYTES:
        raise OversizeHeader(f"header is {len(hbytes)} bytes, limit {MAX_HEADER_BYTES}")
    return hbytes, builder.pieces, builder.offset


def value_nbytes(value: Any) -> int:
    """Payload bytes a value takes (before alignment padding): what a sender weighs against a pipe's size."""
    if value is None:
        return 0
    if isinstance(value, (list, tuple)):
        return sum(value_nbytes(v) for v in value)
    if isinstance(value, Mapping):
        return value_nbytes(np.asarray(list(value.keys()))) + sum(value_nbytes(v) for v in value.values())
    arr = np.asarray(value)
    if arr.dtype.kind in "USO":
        items = arr.reshape(-1).tolist()
        return 8 * (arr.size + 1) + sum(len(x.encode("utf-8") if isinstance(x, str) else x) for x in items)
    return int(arr.nbytes)


def write_message(
    stream: BinaryIO, header: Mapping[str, Any], tensors: Mapping[str, Any] | None = None
) -> None:
    """Write one frame to a binary stream and flush it.

    ``header["tensors"]`` is (re)built from ``tensors`` in a copy; the caller's dict is untouched.
    Tensor bytes are written straight from each array's buffer (no concatenated copy).
    """
    hbytes, pieces, plen = _build(header, tensors)
    _write_all(stream, PREFIX.pack(MAGIC, len(hbytes), plen) + hbytes)
    for pad, arr in pieces:
        if pad:
            _write_all(stream, bytes(pad))
        if arr.nbytes:
            _write_all(stream, arr.reshape(-1).view(np.uint8))
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


def _write_all(stream: BinaryIO, data: Any) -> None:
    view = memoryview(data).cast("B")
    total = len(view)
    done = 0
    while done < total:
        n = stream.write(view[done:])
        if n is None:  # non-blocking raw stream with nothing written; buffered streams never do this
            raise ProtocolError("stream.write returned None (non-blocking stream is not supported)")
        if n <= 0 and done < total:
            raise ProtocolError("stream.write wrote no bytes")
        done += n


def _read_into(stream: BinaryIO, buf: bytearray | memoryview) -> int:
    """Fill ``buf`` from the stream, tolerating short reads. Returns bytes read (< len on EOF)."""
    view = memoryview(buf)
    total = len(buf)
    got = 0
    readinto = getattr(stream, "readinto", None)
    while got < total:
        if readinto is not None:
            n = readinto(view[got:])
            if n is None:
                raise ProtocolError("stream.readinto returned None (non-blocking stream is not supported)")
        else:
            chunk = stream.read(total - got)
            if chunk is None:
                raise ProtocolError("stream.read returned None (non-blocking stream is not supported)")
            n = len(chunk)
            view[got : got + n] = chunk
        if n == 0:
            break
        got += n
    return got


def _read_payload(stream: BinaryIO, plen: int) -> bytearray:
    """The payload, in memory that grows (x4) only as its bytes arrive: a 43-byte frame announcing 16 GiB ends in
    TruncatedFrame after a 1 MiB read, not in a 16 GiB allocation."""
    buf = bytearray(min(plen, _FIRST_PAYLOAD_CHUNK))
    filled = 0
    while True:
        with memoryview(buf) as view:
            filled += _read_into(stream, view[filled:])
        if filled < len(buf):
            raise _truncated("payload", plen, filled)
        if filled == plen:
            return buf
        try:
            buf += bytes(min(3 * len(buf), plen - len(buf)))
        except MemoryError:
            raise OversizeHeader(f"frame payload of {plen} bytes does not fit in memory") from None


def _truncated(what: str, expected: int, got: int) -> TruncatedFrame:
    return TruncatedFrame(f"end of stream inside the frame {what}: expected {expected} bytes, got {got}")


def _parse_header(hbytes: bytes | bytearray) -> dict[str, Any]:
    try:
        header = json.loads(bytes(hbytes).decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"frame header is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(f"frame header must be a JSON object, got {type(header).__name__}")
    if not isinstance(header.get("type"), str):
        raise ProtocolError("frame header has no string 'type'")
    return header


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _entry_dtype(entry: dict[str, Any], what: str) -> tuple[str, np.dtype]:
    """dtype name and elem_type must agree; either alone is enough (a version-1 writer sends dtype only)."""
    name, elem = entry.get("dtype"), entry.get("elem_type")
    if name is not None and not isinstance(name, str):
        raise ProtocolError(f"{what}: dtype must be a string, got {name!r}"[:300])
    if elem is not None:
        if not _is_int(elem) or elem not in DTYPE_OF_ELEM:
            raise ProtocolError(f"{what}: unknown ONNX elem_type {elem!r}")
        if name is None:
            name = DTYPE_OF_ELEM[elem]
        elif ELEM_TYPES.get(name) != elem:
            raise ProtocolError(f"{what}: dtype {name!r} does not match elem_type {elem}")
    return name, dtype_from_name(name)


def _strings(payload: bytearray, offset: int, nbytes: int, count: int, what: str) -> np.ndarray:
    head = 8 * (count + 1)
    if nbytes < head:
        raise ProtocolError(f"{what}: {nbytes} bytes cannot hold {count + 1} string offsets")
    ends = np.frombuffer(payload, dtype="<u8", count=count + 1, offset=offset).astype(np.int64)
    data = bytes(payload[offset + head: offset + nbytes])
    if ends[0] != 0 or int(ends[-1]) != len(data) or (np.diff(ends) < 0).any():
        raise ProtocolError(f"{what}: string offsets do not run from 0 to the {len(data)} data bytes in order")
    out = np.empty(count, dtype=object)
    try:
        for i in range(count):
            out[i] = data[ends[i]:ends[i + 1]].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"{what}: string {i} is not UTF-8 ({exc.reason})") from None
    return out


class _Reader:
    """Turns header entries back into values, checking every offset against the payload."""

    def __init__(self, payload: bytearray) -> None:
        self.payload = payload

    def value(self, entry: Any, what: str, depth: int = 0) -> Any:
        if depth > MAX_NESTING:
            raise ProtocolError(f"{what}: values nest deeper than {MAX_NESTING} levels")
        if not isinstance(entry, dict):
            raise ProtocolError(f"{what} is not an object")
        kind = entry.get("kind", "tensor")
        if kind == "tensor":
            return self.tensor(entry, what)
        if kind == "sequence":
            items = entry.get("items")
            if not isinstance(items, list):
                raise ProtocolError(f"{what}: a sequence needs a list 'items'")
            return [self.value(item, f"{what} item {i}", depth + 1) for i, item in enumerate(items)]
        if kind == "optional":
            inner = entry.get("value")
            return None if inner is None else self.value(inner, f"{what} value", depth + 1)
        if kind == "map":
            return self.map(entry, what, depth)
        raise ProtocolError(f"{what}: unknown kind {kind!r}; known: {', '.join(KINDS)}")

    def map(self, entry: dict[str, Any], what: str, depth: int) -> dict[Any, Any]:
        keys = self.value(entry.get("keys"), f"{what} keys", depth + 1)
        values = self.value(entry.get("values"), f"{what} values", depth + 1)
        if not isinstance(keys, np.ndarray) or keys.ndim != 1:
            raise ProtocolError(f"{what}: map keys must be a 1-D tensor")
        if not isinstance(values, list) or len(values) != len(keys):
            raise ProtocolError(f"{what}: map values must be a sequence as long as the keys ({len(keys)})")
        return dict(zip(keys.tolist(), values))

    def tensor(self, entry: dict[str, Any], what: str) -> np.ndarray:
        wire, dt = _entry_dtype(entry, what)
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and 0 <= d < _MAX_DIM for d in shape) or len(shape) > 64:
            raise ProtocolError(f"{what}: shape must be a list of at most 64 ints in [0, 2**62), got {shape!r}"[:300])
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        if not (_is_int(offset) and _is_int(nbytes)) or offset < 0 or nbytes < 0:
            raise ProtocolError(f"{what}: offset/nbytes must be non-negative ints")
        count = 1
        for d in shape:
            count *= d
        if wire != STRING and count * dt.itemsize != nbytes:
            raise ProtocolError(f"{what}: nbytes {nbytes} != {count} elements x {dt.itemsize} bytes ({wire})")
        if offset + nbytes > len(self.payload):
            raise ProtocolError(
                f"{what}: bytes [{offset}, {offset + nbytes}) lie outside the {len(self.payload)}-byte payload")
        if wire == STRING:
            return _strings(self.payload, offset, nbytes, count, what).reshape(tuple(shape))
        if count == 0:
            return np.empty(tuple(shape), dtype=dt)
        return np.frombuffer(self.payload, dtype=dt, count=count, offset=offset).reshape(tuple(shape))


def _tensors(header: dict[str, Any], payload: bytearray) -> dict[str, Any]:
    table = header.get("tensors", [])
    if not isinstance(table, list):
        raise ProtocolError("header 'tensors' must be a list")
    reader = _Reader(payload)
    out: dict[str, Any] = {}
    for i, entry in enumerate(table):
        if not isinstance(entry, dict):
            raise ProtocolError(f"tensor entry {i} is not an object")
        name = entry.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"tensor entry {i} has no string 'name'")
        if name in out:
            raise ProtocolError(f"duplicate tensor name {name!r}")
        out[name] = reader.value(entry, f"tensor {name!r}")
    return out


def read_message(
    stream: BinaryIO, *, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Read one frame. Returns (header, values by name), or None on a clean EOF at a frame boundary.

    Numeric arrays are writeable views into one payload bytearray (strings are decoded copies). Limits are checked before
    anything is allocated.
    """
    prefix = bytearray(PREFIX_SIZE)
    got = _read_into(stream, prefix)
    if got == 0:
        return None
    if got < PREFIX_SIZE:
        raise _truncated("prefix", PREFIX_SIZE, got)
    magic, hlen, plen = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise BadMagic(f"bad frame magic {bytes(magic)!r}, expected {MAGIC!r}")
    if hlen > MAX_HEADER_BYTES:
        raise OversizeHeader(f"frame header announces {hlen} bytes, limit {MAX_HEADER_BYTES}")
    if plen > max_payload:
        raise OversizeHeader(f"frame payload announces {plen} bytes, limit {max_payload}")
    hbuf = bytearray(hlen)
    got = _read_into(stream, hbuf)
    if got < hlen:
        raise _truncated("header", hlen, got)
    header = _parse_header(hbuf)
    return header, _tensors(header, _read_payload(stream, plen))


def encode_message(header: Mapping[str, Any], tensors: Mapping[str, Any] | None = None) -> bytes:
    """One frame as bytes (for tests and in-memory transports)."""
    buf = io.BytesIO()
    write_message(buf, header, tensors)
    return buf.getvalue()


def decode_message(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, Any]]:
    """Decode exactly one frame from bytes. Raises ProtocolError on empty input or trailing bytes."""
    buf = io.BytesIO(bytes(data))
    msg = read_message(buf)
    if msg is None:
        raise TruncatedFrame("no frame: the input is empty")
    rest = len(buf.getbuffer()) - buf.tell()
    if rest:
        raise ProtocolError(f"{rest} trailing bytes after the frame")
    return msg


if sys.byteorder != "little":  # pragma: no cover - documented, not exercised in CI
    # ml_dtypes types are native-endian; on a big-endian host they would need swapping.
    _ML_DTYPES = ()
    SUPPORTED_DTYPES = tuple(_NUMPY_DTYPES) + (STRING,)
