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

This module imports only the standard library and numpy (ml_dtypes lazily, for bfloat16
and float8). It must not import anything else from ``harness``.
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
    "write_message",
    "read_message",
    "encode_message",
    "decode_message",
]

MAGIC = b"OHW1"
PROTOCOL_VERSION = 1
PREFIX = struct.Struct("<4sIQ")  # magic, hlen (uint32), plen (uint64)
PREFIX_SIZE = PREFIX.size  # 16
MAX_HEADER_BYTES = 1 << 20  # 1 MiB
DEFAULT_MAX_PAYLOAD = 16 << 30  # 16 GiB
TENSOR_ALIGNMENT = 64  # writers pad tensor offsets to this; readers accept any offset

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
}
# Provided by ml_dtypes when it is importable.
_ML_DTYPES = ("bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")

SUPPORTED_DTYPES = tuple(_NUMPY_DTYPES) + _ML_DTYPES


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
    """Wire dtype name -> numpy dtype (little-endian). Raises ProtocolError if unknown."""
    if not isinstance(name, str):
        raise ProtocolError(f"dtype must be a string, got {name!r}")
    code = _NUMPY_DTYPES.get(name)
    if code is not None:
        return np.dtype(code)
    if name in _ML_DTYPES:
        dt = _ml_dtypes().get(name)
        if dt is None:
            raise ProtocolError(f"dtype {name!r} needs the ml_dtypes package, which is not installed")
        return dt
    raise ProtocolError(f"unknown dtype {name!r}; supported: {', '.join(SUPPORTED_DTYPES)}")


def dtype_name(dtype: Any) -> str:
    """numpy dtype -> wire dtype name. Raises ProtocolError for strings/objects/unsupported."""
    dt = np.dtype(dtype)
    if dt.kind in "USO":
        raise ProtocolError(
            f"string/object tensors are not supported by the worker protocol (dtype {dt})"
        )
    name = dt.name
    if name in _NUMPY_DTYPES and dt.kind in "fiub":
        return name
    if name in _ML_DTYPES and _ml_dtypes().get(name) == dt:
        return name
    raise ProtocolError(f"dtype {dt} is not supported; supported: {', '.join(SUPPORTED_DTYPES)}")


def _wire_array(name: str, value: Any) -> tuple[str, np.ndarray]:
    arr = np.asarray(value)
    wire = dtype_name(arr.dtype)
    code = _NUMPY_DTYPES.get(wire)
    if code is not None and arr.dtype.str != np.dtype(code).str:
        arr = arr.astype(np.dtype(code))  # big-endian (or native on a big-endian host) -> '<'
    if not arr.flags.c_contiguous:
        arr = arr.copy(order="C")  # (np.ascontiguousarray would turn 0-d into 1-d)
    return wire, arr


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


def _build(header: Mapping[str, Any], tensors: Mapping[str, Any] | None):
    if not isinstance(header, Mapping):
        raise ProtocolError(f"header must be a mapping, got {type(header).__name__}")
    if not isinstance(header.get("type"), str):
        raise ProtocolError("header must have a string 'type'")
    hdr = dict(header)
    table: list[dict[str, Any]] = []
    arrays: list[tuple[int, np.ndarray]] = []  # (padding before, array)
    offset = 0
    for name, value in (tensors or {}).items():
        if not isinstance(name, str):
            raise ProtocolError(f"tensor names must be strings, got {name!r}")
        wire, arr = _wire_array(name, value)
        pad = (-offset) % TENSOR_ALIGNMENT
        offset += pad
        table.append(
            {
                "name": name,
                "dtype": wire,
                "shape": [int(d) for d in arr.shape],
                "offset": offset,
                "nbytes": int(arr.nbytes),
            }
        )
        arrays.append((pad, arr))
        offset += arr.nbytes
    hdr["tensors"] = table
    try:
        hbytes = json.dumps(hdr, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"header is not JSON-serialisable: {exc}") from exc
    if len(hbytes) > MAX_HEADER_BYTES:
        raise OversizeHeader(f"header is {len(hbytes)} bytes, limit {MAX_HEADER_BYTES}")
    return hbytes, arrays, offset


def write_message(
    stream: BinaryIO, header: Mapping[str, Any], tensors: Mapping[str, Any] | None = None
) -> None:
    """Write one frame to a binary stream and flush it.

    ``header["tensors"]`` is (re)built from ``tensors`` in a copy; the caller's dict is untouched.
    Tensor bytes are written straight from each array's buffer (no concatenated copy).
    """
    hbytes, arrays, plen = _build(header, tensors)
    _write_all(stream, PREFIX.pack(MAGIC, len(hbytes), plen) + hbytes)
    for pad, arr in arrays:
        if pad:
            _write_all(stream, bytes(pad))
        if arr.nbytes:
            _write_all(stream, arr.reshape(-1).view(np.uint8))
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


def _read_into(stream: BinaryIO, buf: bytearray) -> int:
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


def _truncated(what: str, expected: int, got: int) -> TruncatedFrame:
    return TruncatedFrame(f"end of stream inside the frame {what}: expected {expected} bytes, got {got}")


def _parse_header(hbytes: bytes | bytearray) -> dict[str, Any]:
    try:
        header = json.loads(bytes(hbytes).decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(f"frame header is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise ProtocolError(f"frame header must be a JSON object, got {type(header).__name__}")
    if not isinstance(header.get("type"), str):
        raise ProtocolError("frame header has no string 'type'")
    return header


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _tensors(header: dict[str, Any], payload: bytearray) -> dict[str, np.ndarray]:
    table = header.get("tensors", [])
    if not isinstance(table, list):
        raise ProtocolError("header 'tensors' must be a list")
    plen = len(payload)
    out: dict[str, np.ndarray] = {}
    for i, entry in enumerate(table):
        if not isinstance(entry, dict):
            raise ProtocolError(f"tensor entry {i} is not an object")
        name = entry.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"tensor entry {i} has no string 'name'")
        if name in out:
            raise ProtocolError(f"duplicate tensor name {name!r}")
        dt = dtype_from_name(entry.get("dtype"))
        shape = entry.get("shape")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise ProtocolError(f"tensor {name!r}: shape must be a list of non-negative ints, got {shape!r}")
        offset, nbytes = entry.get("offset"), entry.get("nbytes")
        if not (_is_int(offset) and _is_int(nbytes)) or offset < 0 or nbytes < 0:
            raise ProtocolError(f"tensor {name!r}: offset/nbytes must be non-negative ints")
        count = 1
        for d in shape:
            count *= d
        if count * dt.itemsize != nbytes:
            raise ProtocolError(
                f"tensor {name!r}: nbytes {nbytes} != {count} elements x {dt.itemsize} bytes ({entry['dtype']})"
            )
        if offset + nbytes > plen:
            raise ProtocolError(
                f"tensor {name!r}: bytes [{offset}, {offset + nbytes}) lie outside the {plen}-byte payload"
            )
        if count == 0:
            arr = np.empty(tuple(shape), dtype=dt)
        else:
            arr = np.frombuffer(payload, dtype=dt, count=count, offset=offset).reshape(tuple(shape))
        out[name] = arr
    return out


def read_message(
    stream: BinaryIO, *, max_payload: int = DEFAULT_MAX_PAYLOAD
) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """Read one frame. Returns (header, tensors), or None on a clean EOF at a frame boundary.

    The arrays are writeable views into one payload bytearray. Limits are checked before
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
    payload = bytearray(plen)
    got = _read_into(stream, payload)
    if got < plen:
        raise _truncated("payload", plen, got)
    return header, _tensors(header, payload)


def encode_message(header: Mapping[str, Any], tensors: Mapping[str, Any] | None = None) -> bytes:
    """One frame as bytes (for tests and in-memory transports)."""
    buf = io.BytesIO()
    write_message(buf, header, tensors)
    return buf.getvalue()


def decode_message(data: bytes | bytearray | memoryview) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
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
    SUPPORTED_DTYPES = tuple(_NUMPY_DTYPES)
