"""Tests for the worker wire protocol (harness/worker/protocol.py)."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from harness.worker import protocol as P
from harness.worker.protocol import (
    BadMagic,
    OversizeHeader,
    ProtocolError,
    TruncatedFrame,
    decode_message,
    encode_message,
    read_message,
    write_message,
)

ml_dtypes = pytest.importorskip("ml_dtypes")

# Children load protocol.py by path, proving it stands alone (stdlib + numpy only).
CHILD_PRELUDE = textwrap.dedent(
    f"""
    import importlib.util, os, sys
    import numpy as np
    spec = importlib.util.spec_from_file_location("wire_protocol", {P.__file__!r})
    P = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(P)
    out = sys.stdout.buffer
    """
)


class Trickle:
    """Returns 1..7 bytes per read call, like a slow pipe (read() only, no readinto)."""

    def __init__(self, data: bytes):
        self._data = data
        self._pos = 0
        self._n = 0

    def read(self, n=-1):
        self._n += 1
        step = 1 + (self._n % 7)
        if n is not None and n >= 0:
            step = min(step, n)
        chunk = self._data[self._pos : self._pos + step]
        self._pos += len(chunk)
        return chunk


class TrickleReadinto(Trickle):
    def readinto(self, b):
        chunk = self.read(len(b))
        b[: len(chunk)] = chunk
        return len(chunk)


class PrefixOnly:
    """Serves a 16-byte prefix and fails the test if anything more is read."""

    def __init__(self, prefix: bytes):
        self._buf = io.BytesIO(prefix)
        self._limit = len(prefix)

    def read(self, n):
        if self._buf.tell() >= self._limit:
            raise AssertionError(f"reader went past the prefix (asked {n} more bytes)")
        return self._buf.read(n)


def _frame(header_bytes: bytes, payload: bytes = b"", magic: bytes = b"OHW1") -> bytes:
    return struct.pack("<4sIQ", magic, len(header_bytes), len(payload)) + header_bytes + payload


ALL_DTYPES = [
    "float32", "float64", "float16", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "bool",
    "bfloat16", "float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz",
    "int4", "uint4", "float4_e2m1fn", "complex64", "complex128",
]


def _sample(dtype: str, shape) -> np.ndarray:
    dt = P.dtype_from_name(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dtype == "bool":
        vals = (np.arange(n) % 3 == 0)
    elif dtype in ("int4", "uint4"):
        vals = np.arange(n) % 8
    elif dtype.startswith("uint") or dtype.startswith("int"):
        vals = np.arange(n) % 100
    elif dtype == "float4_e2m1fn":
        vals = (np.arange(n) % 5 - 2) * 0.5
    else:
        vals = (np.arange(n) % 17 - 8) * 0.5
    return vals.astype(dt).reshape(shape)


def _equal(a: np.ndarray, b: np.ndarray) -> bool:
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and a.tobytes() == b.tobytes()
    )


@pytest.mark.parametrize("dtype", ALL_DTYPES)
@pytest.mark.parametrize("shape", [(), (0,), (2, 0, 3), (5,), (3, 4, 5)])
def test_roundtrip_every_dtype(dtype, shape):
    arr = _sample(dtype, shape)
    data = encode_message({"type": "infer", "id": 7}, {"x": arr, "y": arr})
    header, tensors = decode_message(data)
    assert header["type"] == "infer" and header["id"] == 7
    assert list(tensors) == ["x", "y"]
    for name in ("x", "y"):
        out = tensors[name]
        assert _equal(out, arr), (dtype, shape, out)
        assert out.dtype == arr.dtype
    entry = header["tensors"][0]
    assert entry == {"name": "x", "dtype": dtype, "elem_type": P.ELEM_TYPES[dtype], "shape": list(shape),
                     "offset": 0, "nbytes": arr.nbytes}


def test_all_documented_dtypes_supported():
    for name in ALL_DTYPES:
        assert P.dtype_name(P.dtype_from_name(name)) == name


def test_framing_bytes_match_spec():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    data = encode_message({"type": "result"}, {"out": arr})
    magic, hlen, plen = data[:4], int.from_bytes(data[4:8], "little"), int.from_bytes(data[8:16], "little")
    assert magic == b"OHW1"
    assert plen == 24
    assert len(data) == 16 + hlen + plen
    header = json.loads(data[16 : 16 + hlen].decode("utf-8"))
    assert header == {
        "type": "result",
        "tensors": [{"name": "out", "dtype": "float32", "elem_type": 1, "shape": [2, 3], "offset": 0,
                     "nbytes": 24}],
    }
    assert data[16 + hlen :] == arr.astype("<f4").tobytes()


def test_offsets_aligned_and_honoured():
    a = np.arange(3, dtype=np.uint8)
    b = np.arange(4, dtype=np.float64)
    header, tensors = decode_message(encode_message({"type": "infer"}, {"a": a, "b": b}))
    assert header["tensors"][1]["offset"] % P.TENSOR_ALIGNMENT == 0
    assert _equal(tensors["a"], a) and _equal(tensors["b"], b)
    # A foreign writer may pack tensors back to back, unaligned: readers honour offsets.
    hdr = {"type": "infer", "tensors": [
        {"name": "a", "dtype": "uint8", "shape": [3], "offset": 0, "nbytes": 3},
        {"name": "b", "dtype": "float64", "shape": [4], "offset": 3, "nbytes": 32},
    ]}
    _, t2 = decode_message(_frame(json.dumps(hdr).encode(), a.tobytes() + b.tobytes()))
    assert _equal(t2["a"], a) and _equal(t2["b"], b)


def test_header_not_mutated_and_tensors_overwritten():
    header = {"type": "infer", "tensors": "junk", "profile": {"ep": "cpu"}}
    h, t = decode_message(encode_message(header, None))
    assert header["tensors"] == "junk"
    assert h["tensors"] == [] and t == {}
    assert h["profile"] == {"ep": "cpu"}


def test_arrays_writeable_and_share_one_buffer():
    data = encode_message({"type": "result"}, {"a": np.zeros(4, np.float32), "b": np.ones(4, np.int64)})
    _, t = decode_message(data)
    assert t["a"].flags.writeable and t["b"].flags.writeable
    def root(a):
        while isinstance(a, np.ndarray):
            a = a.base
        return a.obj if isinstance(a, memoryview) else a

    assert isinstance(root(t["a"]), bytearray) and root(t["a"]) is root(t["b"])
    t["a"][0] = 5.0


def test_noncontiguous_and_big_endian_converted():
    base = np.arange(24, dtype=np.float64).reshape(4, 6)
    strided = base[:, ::2].T
    big = np.arange(5, dtype=">i4")
    _, t = decode_message(encode_message({"type": "infer"}, {"s": strided, "b": big}))
    np.testing.assert_array_equal(t["s"], strided)
    np.testing.assert_array_equal(t["b"], big)
    assert t["b"].dtype == np.dtype("<i4")


def test_non_string_objects_rejected():
    with pytest.raises(ProtocolError, match="string tensor holds a object"):
        encode_message({"type": "infer"}, {"s": np.array([object()], dtype=object)})


def test_unsupported_dtype_and_bad_header_on_write():
    with pytest.raises(ProtocolError):
        encode_message({"type": "infer"}, {"c": np.zeros(2, "datetime64[s]")})
    with pytest.raises(ProtocolError):
        encode_message({"no_type": 1})
    with pytest.raises(ProtocolError):
        encode_message({"type": "result", "latency": float("nan")})
    with pytest.raises(ProtocolError):
        encode_message({"type": "result", "obj": object()})


@pytest.mark.parametrize("stream_cls", [Trickle, TrickleReadinto])
def test_partial_reads(stream_cls):
    arrs = {"x": np.random.default_rng(0).standard_normal((37, 11)).astype(np.float32),
            "y": np.arange(9, dtype=np.int64)}
    data = encode_message({"type": "infer", "n": 1}, arrs) + encode_message({"type": "bye"})
    stream = stream_cls(data)
    h, t = read_message(stream)
    assert h["n"] == 1
    assert _equal(t["x"], arrs["x"]) and _equal(t["y"], arrs["y"])
    h2, t2 = read_message(stream)
    assert h2["type"] == "bye" and t2 == {}
    assert read_message(stream) is None


def test_clean_eof_returns_none():
    assert read_message(io.BytesIO(b"")) is None


def test_truncated_prefix():
    data = encode_message({"type": "bye"})
    with pytest.raises(TruncatedFrame, match="expected 16 bytes, got 5"):
        read_message(io.BytesIO(data[:5]))


def test_truncated_header():
    data = encode_message({"type": "hello", "runtime": "python"})
    hlen = int.from_bytes(data[4:8], "little")
    with pytest.raises(TruncatedFrame, match=f"expected {hlen} bytes, got 3"):
        read_message(io.BytesIO(data[: 16 + 3]))


def test_truncated_payload():
    data = encode_message({"type": "result"}, {"x": np.zeros(100, np.float32)})
    with pytest.raises(TruncatedFrame, match="expected 400 bytes, got 399"):
        read_message(io.BytesIO(data[:-1]))
    assert issubclass(TruncatedFrame, ProtocolError)


def test_oversize_header_checked_before_allocation():
    prefix = struct.pack("<4sIQ", b"OHW1", P.MAX_HEADER_BYTES + 1, 0)
    with pytest.raises(OversizeHeader, match="header"):
        read_message(PrefixOnly(prefix))
    huge = struct.pack("<4sIQ", b"OHW1", 0xFFFFFFFF, 0)
    with pytest.raises(OversizeHeader):
        read_message(PrefixOnly(huge))


def test_oversize_payload_checked_before_allocation():
    prefix = struct.pack("<4sIQ", b"OHW1", 10, 1 << 62)
    with pytest.raises(OversizeHeader, match="payload"):
        read_message(PrefixOnly(prefix))
    small = struct.pack("<4sIQ", b"OHW1", 10, 1001)
    with pytest.raises(OversizeHeader):
        read_message(PrefixOnly(small), max_payload=1000)


def test_oversize_header_on_write():
    with pytest.raises(OversizeHeader):
        encode_message({"type": "load", "blob": "x" * (P.MAX_HEADER_BYTES + 10)})


def test_bad_magic():
    data = encode_message({"type": "bye"})
    with pytest.raises(BadMagic):
        read_message(io.BytesIO(b"XXXX" + data[4:]))


@pytest.mark.parametrize("hbytes", [b"{not json", b"[1, 2]", b'{"x": 1}', b"\xff\xfe", b'{"type": 3}'])
def test_bad_json_header(hbytes):
    with pytest.raises(ProtocolError):
        read_message(io.BytesIO(_frame(hbytes)))


@pytest.mark.parametrize(
    "entry",
    [
        {"name": "x", "dtype": "float32", "shape": [4], "offset": 4, "nbytes": 16},  # past the end
        {"name": "x", "dtype": "float32", "shape": [5], "offset": 0, "nbytes": 20},  # bigger than payload
        {"name": "x", "dtype": "float32", "shape": [4], "offset": -1, "nbytes": 16},
        {"name": "x", "dtype": "float32", "shape": [3], "offset": 0, "nbytes": 16},  # nbytes mismatch
        {"name": "x", "dtype": "float32", "shape": [-4], "offset": 0, "nbytes": 16},
        {"name": "x", "dtype": "complex256", "shape": [2], "offset": 0, "nbytes": 16},  # unknown dtype
        {"name": "x", "dtype": "string", "shape": [2], "offset": 0, "nbytes": 16},  # 3 offsets need 24 bytes
        {"name": "x", "dtype": "float32", "elem_type": 11, "shape": [4], "offset": 0, "nbytes": 16},  # disagree
        {"name": "x", "elem_type": 99, "shape": [4], "offset": 0, "nbytes": 16},
        {"name": "x", "kind": "graph", "shape": [4], "offset": 0, "nbytes": 16},
        {"name": "x", "kind": "sequence", "items": 3},
        {"name": "x", "kind": "sequence", "items": [{"kind": "optional", "value": 7}]},
        {"name": "x", "kind": "map", "keys": {"dtype": "int64", "shape": [1], "offset": 0, "nbytes": 8},
         "values": {"kind": "sequence", "items": []}},  # 1 key, 0 values
        {"name": 3, "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 16},
        {"name": "x", "dtype": "float32", "shape": 4, "offset": 0, "nbytes": 16},
    ],
)
def test_bad_tensor_entries(entry):
    hdr = json.dumps({"type": "infer", "tensors": [entry]}).encode()
    with pytest.raises(ProtocolError):
        read_message(io.BytesIO(_frame(hdr, bytes(16))))


def test_duplicate_tensor_names_rejected():
    e = {"name": "x", "dtype": "uint8", "shape": [1], "offset": 0, "nbytes": 1}
    hdr = json.dumps({"type": "infer", "tensors": [e, e]}).encode()
    with pytest.raises(ProtocolError, match="duplicate"):
        read_message(io.BytesIO(_frame(hdr, b"\x00")))


def test_decode_message_trailing_and_empty():
    data = encode_message({"type": "bye"})
    with pytest.raises(ProtocolError, match="trailing"):
        decode_message(data + b"x")
    with pytest.raises(ProtocolError):
        decode_message(b"")


def test_message_vocabulary():
    assert P.MESSAGE_TYPES == {"hello", "load", "loaded", "infer", "result", "error", "bye"}
    assert P.MSG_HELLO == "hello" and P.MSG_ERROR == "error"


def test_protocol_imports_nothing_from_harness():
    code = CHILD_PRELUDE + textwrap.dedent(
        """
        bad = sorted(m for m in sys.modules if m == "harness" or m.startswith("harness."))
        print(",".join(bad))
        """
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == ""


def test_child_dies_mid_frame():
    code = CHILD_PRELUDE + textwrap.dedent(
        """
        P.write_message(out, {"type": "hello", "runtime": "python", "pid": os.getpid()},
                        {"t": np.arange(10, dtype=np.int32)})
        frame = P.encode_message({"type": "result"}, {"y": np.ones(1000, np.float32)})
        out.write(frame[: len(frame) // 2])
        out.flush()
        os._exit(3)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        h, t = read_message(proc.stdout)
        assert h["type"] == "hello" and h["pid"] == proc.pid
        np.testing.assert_array_equal(t["t"], np.arange(10, dtype=np.int32))
        with pytest.raises(TruncatedFrame):
            read_message(proc.stdout)
    finally:
        proc.stdout.close()
        assert proc.wait(timeout=60) == 3


def test_child_echo_loop_large_tensor():
    code = CHILD_PRELUDE + textwrap.dedent(
        """
        inp = sys.stdin.buffer
        P.write_message(out, {"type": P.MSG_HELLO, "runtime": "python", "pid": os.getpid()})
        while True:
            msg = P.read_message(inp)
            if msg is None or msg[0]["type"] == P.MSG_BYE:
                break
            header, tensors = msg
            P.write_message(out, {"type": P.MSG_RESULT, "id": header.get("id"),
                                  "names": sorted(tensors)}, tensors)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        hello, _ = read_message(proc.stdout)
        assert hello["type"] == "hello"
        big = np.random.default_rng(1).integers(0, 2**31, size=(50 * 1024 * 1024) // 4, dtype=np.int32)
        for i in range(2):
            small = np.array([i], dtype=np.int64)
            write_message(proc.stdin, {"type": "infer", "id": i}, {"big": big, "small": small})
            h, t = read_message(proc.stdout)
            assert h["type"] == "result" and h["id"] == i and h["names"] == ["big", "small"]
            assert t["big"].nbytes == 50 * 1024 * 1024
            assert np.array_equal(t["big"], big)
            assert t["small"][0] == i
        write_message(proc.stdin, {"type": "bye"})
        proc.stdin.close()
        assert read_message(proc.stdout) is None
    finally:
        if proc.stdin and not proc.stdin.closed:
            proc.stdin.close()
        proc.stdout.close()
        assert proc.wait(timeout=60) == 0


class Recorder:
    """Accepts at most ``cap`` bytes per write call (like a raw pipe) and records each call."""

    def __init__(self, cap=None):
        self.cap = cap
        self.calls = []
        self.flushed = 0

    def write(self, b):
        data = bytes(memoryview(b)[: self.cap] if self.cap else b)
        self.calls.append(data)
        return len(data)

    def flush(self):
        self.flushed += 1

    def getvalue(self):
        return b"".join(self.calls)


def test_write_is_few_calls_and_flushes():
    arrs = {"a": np.zeros(1000, np.float32), "b": np.ones(1000, np.float32)}
    rec = Recorder()
    write_message(rec, {"type": "infer"}, arrs)
    # prefix+header, a, pad, b: never one concatenated copy of all tensor bytes
    assert len(rec.calls) <= 4
    assert max(len(c) for c in rec.calls) <= 4000 + 64
    assert rec.flushed == 1
    assert rec.getvalue() == encode_message({"type": "infer"}, arrs)


def test_short_writes_are_completed():
    arrs = {"a": np.arange(100, dtype=np.int16)}
    rec = Recorder(cap=5)
    write_message(rec, {"type": "infer"}, arrs)
    h, t = decode_message(rec.getvalue())
    assert _equal(t["a"], arrs["a"])


# --- version 2: element types, strings, sequences, optionals, maps ---


def test_protocol_version_is_2():
    assert P.PROTOCOL_VERSION == 2


def test_elem_type_alone_is_enough_and_version_1_entries_still_read():
    arr = np.arange(4, dtype=np.float32)
    for entry in ({"name": "x", "elem_type": 1, "shape": [4], "offset": 0, "nbytes": 16},
                  {"name": "x", "dtype": "float32", "shape": [4], "offset": 0, "nbytes": 16}):
        _, t = decode_message(_frame(json.dumps({"type": "infer", "tensors": [entry]}).encode(), arr.tobytes()))
        assert _equal(t["x"], arr)


@pytest.mark.parametrize("strings", [["a", "", "héllo wörld", "日本"], [], ["x" * 1000]])
def test_string_tensors_round_trip_as_utf8_with_offsets(strings):
    arr = np.array(strings, dtype=object).reshape(-1)
    header, t = decode_message(encode_message({"type": "result"}, {"s": arr, "b": np.array([b"raw"], dtype=object)}))
    assert t["s"].dtype == object and t["s"].tolist() == strings
    assert t["b"].tolist() == ["raw"]  # bytes go out as UTF-8 and come back as str, as onnxruntime returns them
    entry = header["tensors"][0]
    assert entry["dtype"] == "string" and entry["elem_type"] == 8
    blob = sum(len(x.encode()) for x in strings)
    assert entry["nbytes"] == 8 * (len(strings) + 1) + blob


def test_numpy_unicode_and_2d_string_tensors():
    arr = np.array([["ab", "c"], ["", "d"]])
    _, t = decode_message(encode_message({"type": "result"}, {"s": arr}))
    assert t["s"].shape == (2, 2) and t["s"].tolist() == arr.tolist()


@pytest.mark.parametrize("offsets,data", [([0, 5], b"abc"), ([1, 3], b"abc"), ([0, 2, 1, 3], b"abc"),
                                          ([0, 2], b"\xff\xfe")])
def test_bad_string_offsets_or_bytes_are_protocol_errors(offsets, data):
    count = len(offsets) - 1
    blob = np.array(offsets, "<u8").tobytes() + data
    entry = {"name": "s", "dtype": "string", "shape": [count], "offset": 0, "nbytes": len(blob)}
    with pytest.raises(ProtocolError, match="tensor 's'"):
        decode_message(_frame(json.dumps({"type": "result", "tensors": [entry]}).encode(), blob))


def test_sequences_optionals_and_maps_round_trip():
    values = {
        "seq": [np.arange(3, dtype=np.int64), np.ones((2, 2), np.float32)],
        "empty": [],
        "absent": None,
        "nested": [[np.array([1.5], ml_dtypes.bfloat16)], [np.array(["s"], dtype=object)]],
        "map": {"a": np.array(1.0, np.float32), "b": np.array(2.0, np.float32)},
        "imap": {3: np.array(1.5)},
        "plain": np.arange(2, dtype=np.uint8),
    }
    header, t = decode_message(encode_message({"type": "result"}, values))
    assert list(t) == list(values)
    assert [x.tolist() for x in t["seq"]] == [[0, 1, 2], [[1, 1], [1, 1]]]
    assert t["seq"][1].dtype == np.float32 and t["empty"] == [] and t["absent"] is None
    assert t["nested"][0][0].dtype == ml_dtypes.bfloat16 and t["nested"][1][0].tolist() == ["s"]
    assert list(t["map"]) == ["a", "b"] and float(t["map"]["b"]) == 2.0 and list(t["imap"]) == [3]
    kinds = {e["name"]: e.get("kind", "tensor") for e in header["tensors"]}
    assert kinds == {"seq": "sequence", "empty": "sequence", "absent": "optional", "nested": "sequence",
                     "map": "map", "imap": "map", "plain": "tensor"}
    for entry in header["tensors"][0]["items"]:
        assert entry["offset"] % P.TENSOR_ALIGNMENT == 0


def test_nesting_is_bounded_both_ways():
    deep: list = [np.zeros(1)]
    for _ in range(P.MAX_NESTING + 2):
        deep = [deep]
    with pytest.raises(ProtocolError, match="nest deeper"):
        encode_message({"type": "result"}, {"d": deep})
    entry: dict = {"kind": "optional", "value": None}
    for _ in range(P.MAX_NESTING + 2):
        entry = {"kind": "sequence", "items": [entry]}
    hdr = json.dumps({"type": "result", "tensors": [{"name": "d", **entry}]}).encode()
    with pytest.raises(ProtocolError, match="nest deeper"):
        read_message(io.BytesIO(_frame(hdr)))


def test_value_nbytes_counts_what_goes_on_the_wire():
    assert P.value_nbytes(np.zeros(4, np.float32)) == 16
    assert P.value_nbytes([np.zeros(2, np.int64), None, np.array(["é"], dtype=object)]) == 16 + 16 + 2
    assert P.value_nbytes(None) == 0


def test_elem_type_of_matches_onnx():
    onnx = pytest.importorskip("onnx")
    for name, elem in P.ELEM_TYPES.items():
        assert onnx.TensorProto.DataType.Name(elem).replace("_", "").lower().startswith(
            {"float32": "float", "float64": "double", "float16": "float16", "string": "string",
             "float4_e2m1fn": "float4e2m1", "float8_e8m0fnu": "float8e8m0", "float6_e2m3fn": "float6e2m3",
             "float6_e3m2fn": "float6e3m2"}.get(name, name.replace("_", "")))
        if name != "string":
            assert np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem)) == P.dtype_from_name(name)


def test_huge_dims_of_an_empty_tensor_are_a_protocol_error():
    for shape in ([0, 10**30], [0] * 65):
        entry = {"name": "x", "dtype": "float32", "shape": shape, "offset": 0, "nbytes": 0}
        with pytest.raises(ProtocolError, match="shape must be"):
            decode_message(_frame(json.dumps({"type": "infer", "tensors": [entry]}).encode()))


def test_mutated_frames_raise_protocol_errors_only():
    """Random byte flips anywhere in a frame with strings, sequences, optionals and maps: a ProtocolError or a
    frame, never another exception."""
    frame = encode_message({"type": "result", "n": 1}, {
        "s": np.array(["ab", "é"], dtype=object), "q": [np.arange(3, dtype=np.int64), None],
        "m": {"k": np.array(1.5, np.float32)}, "b": np.array([1.5], ml_dtypes.bfloat16)})
    rng = np.random.default_rng(0)
    for _ in range(3000):
        data = bytearray(frame)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            data[pos] = int(rng.integers(0, 256))
        try:
            decode_message(bytes(data))
        except ProtocolError:
            pass


def test_mutated_headers_raise_protocol_errors_only():
    """Every field of every (nested) entry replaced by values of the wrong type or range."""
    frame = encode_message({"type": "result"}, {
        "s": np.array(["ab", "é"], dtype=object), "q": [np.arange(3, dtype=np.int64), None],
        "m": {"k": np.array(1.5, np.float32)}, "b": np.array([1.5], ml_dtypes.int4)})
    hlen = int.from_bytes(frame[4:8], "little")
    header, payload = json.loads(frame[16:16 + hlen]), frame[16 + hlen:]
    wrong = [None, -1, 0, 2**70, 1e300, True, "x", "string", "map", [], [-1], [2**63], {}, {"kind": "map"}]

    def paths(node, at=()):
        if isinstance(node, dict):
            for key, child in node.items():
                yield at + (key,)
                yield from paths(child, at + (key,))
        elif isinstance(node, list):
            for i, child in enumerate(node):
                yield at + (i,)
                yield from paths(child, at + (i,))

    for path in list(paths(header["tensors"], ("tensors",))):
        for value in wrong:
            mutated = json.loads(json.dumps(header))
            node = mutated
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = value
            try:
                decode_message(_frame(json.dumps(mutated).encode(), payload))
            except ProtocolError:
                pass


def test_payload_memory_grows_with_the_bytes_that_arrive():
    """A frame announcing gigabytes but carrying a few bytes is truncated, without allocating the gigabytes;
    a payload larger than the first chunk still reads whole."""
    header = b'{"type":"bye","tensors":[]}'
    frame = P.PREFIX.pack(P.MAGIC, len(header), 8 << 30) + header + b"abc"
    with pytest.raises(TruncatedFrame, match="expected 8589934592 bytes, got 3"):
        read_message(io.BytesIO(frame), max_payload=16 << 30)
    big = np.arange((5 << 20) // 8 + 5, dtype=np.int64)  # a little over 5 MiB: grows 1 -> 4 -> 16 MiB
    for stream in (io.BytesIO(encode_message({"type": "result"}, {"x": big})),
                   TrickleReadinto(encode_message({"type": "result"}, {"x": big}))):
        _, t = read_message(stream)
        assert _equal(t["x"], big)
