"""Fuzz targets: every loader that reads a user's file, and both ends of the worker protocol.

A target takes raw bytes (the file's or the stream's content) and returns normally or raises one of its
``allowed`` errors: the typed one-line errors (``harness.errors.HarnessError`` subclasses, or
``protocol.ProtocolError`` for frames). Anything else is an *escape*; so is an allowed error whose message is
not one line, an input that runs longer than the per-input deadline, or one that allocates more than the memory
cap. tests/fuzz/test_*.py run each target for a short budget with hypothesis; bench/fuzz.py runs them for
millions of inputs, with atheris where it is installed.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import resource
import signal
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np

REPO = Path(__file__).resolve().parents[2]
DEADLINE_S = 10.0  # per input; far above any loader's honest time on these small inputs
MEMORY_CAP_MB = 512  # heap an input may add; a loader that allocates what a header announces trips it


class Hang(Exception):
    """An input ran past DEADLINE_S."""


@dataclass
class Target:
    name: str
    seeds: list[bytes]
    run: Callable[[bytes], None]
    allowed: tuple[type[BaseException], ...]
    escapes: dict[str, str] = field(default_factory=dict)  # signature -> one example's description

    def check(self, data: bytes) -> str | None:
        """Run one input; the escape's signature, or None when the target held."""
        try:
            with deadline(DEADLINE_S), memory_cap(MEMORY_CAP_MB):
                self.run(data)
        except self.allowed as exc:
            line = _one_line(exc)
            if "\n" in line or not line.strip():
                return self._record(signature(exc, "not one line"), data)
            return None
        except Exception as exc:  # noqa: BLE001 - every other exception is what we are looking for
            return self._record(signature(exc), data)
        return None

    def _record(self, sig: str, data: bytes) -> str:
        self.escapes.setdefault(sig, data[:2000].hex())
        return sig


def _one_line(exc: BaseException) -> str:
    one_line = getattr(exc, "one_line", None)
    return one_line() if callable(one_line) else str(exc)


def signature(exc: BaseException, what: str = "") -> str:
    """Where an escape comes from: the exception type (and what is wrong with it, for a typed error that is not
    one line) and the innermost harness frame (file:function)."""
    if isinstance(exc, IllTyped):
        return f"IllTyped result of harness/run/record.py:load_record ({exc.field})"
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if "/harness/" in f.filename]
    last = frames[-1] if frames else None
    where = f"{last.filename[last.filename.rindex('/harness/') + 1:]}:{last.name}" if last else "outside harness"
    return f"{type(exc).__name__}{f' ({what})' if what else ''} in {where}"


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Raise Hang in the main thread after ``seconds`` (SIGALRM; elsewhere, no deadline)."""
    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"no answer within {seconds} s")
    try:
        previous = signal.signal(signal.SIGALRM, fire)
    except ValueError:  # not the main thread
        yield
        return
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def memory_cap(extra_mb: int) -> Iterator[None]:
    """Cap this process's heap at what it uses now plus ``extra_mb`` while one input runs, so a loader that
    allocates a size read from the input gets MemoryError (an escape) instead of the host's memory."""
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = _data_in_use() + (extra_mb << 20)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _data_in_use() -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        return next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmData:"))


# ---- seeds -------------------------------------------------------------------------------------------------------

def tensor_seeds() -> list[bytes]:
    """Valid TensorProtos of several kinds: raw_data and typed fields, scalars, empty, strings, float16."""
    import onnx
    from onnx import helper, numpy_helper
    seeds = [numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "x"),
             numpy_helper.from_array(np.array(3, dtype=np.int64), "x"),
             numpy_helper.from_array(np.zeros((0, 4), dtype=np.float32), "x"),
             numpy_helper.from_array(np.array([True, False]), "x"),
             numpy_helper.from_array(np.array([1.5, -2.0], dtype=np.float16), "x"),
             numpy_helper.from_array(np.array([b"ab", b"c"], dtype=object), "x"),
             helper.make_tensor("x", onnx.TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0]),
             helper.make_tensor("x", onnx.TensorProto.INT32, [3], [1, -2, 3]),
             helper.make_tensor("x", onnx.TensorProto.DOUBLE, [1], [0.25])]
    external = helper.make_tensor("x", onnx.TensorProto.FLOAT, [2], [0.0, 0.0])
    external.ClearField("float_data")
    external.data_location = onnx.TensorProto.EXTERNAL
    for key, value in (("location", "weights.bin"), ("offset", "0"), ("length", "8")):
        external.external_data.add(key=key, value=value)
    return [t.SerializeToString() for t in (*seeds, external)]


def manifest_seeds() -> list[bytes]:
    full = {"schema_version": 1, "case": "c", "description": "d", "model_sha256": "0" * 64, "opset": 13,
            "source": {"kind": "profile", "profile": "cpu"}, "host": {"cpu": "x"}, "created": "2026-01-01",
            "task": "generic", "dims": {"batch": 1}, "input_ranges": {"x": {"low": -1.0, "high": 1.0}},
            "tolerance": {"rtol": 1e-3, "atol": 1e-4}, "output_tolerance": {"y": {"min_cosine": 0.99}},
            "budgets": {"p95_ms": 20, "peak_mb": 256}}
    return [json.dumps(full).encode(), b"{}", json.dumps({"tolerance": {"elementwise": False, "min_snr_db": 20}}).encode()]


def data_json_seeds() -> list[bytes]:
    return [b'{"rtol": 0.001, "atol": 1e-05}', b'{"atol": 0, "rtol": 0}', b"{}"]


def profile_seeds() -> list[bytes]:
    """Every shipped profile without its name line (the file is fuzzed under another name)."""
    seeds = []
    for path in sorted((REPO / "device_profiles").glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        seeds.append(text.replace(f'name = "{path.stem}"\n', "", 1).encode())
    seeds.append(b'extends = "cpu"\n[session]\nintra_op_threads = 2\n[[tolerance.override]]\ncase = "a*"\n'
                 b'output = "*"\nrtol = 1e-3\natol = 1e-4\n')
    return seeds


def record_seeds() -> list[bytes]:
    from harness.run.record import CellResult, RunRecord
    cells = [CellResult("a", "cpu", "PASS", timing={"session_ms": 1.0}, latency={"p50_ms": 0.1},
                        artifacts={"latency": "cells/a__cpu/latency.npy"}),
             CellResult("b/c", "cpu-int8", "FAIL", detail="x", outputs=[{"name": "y", "ok": False}])]
    record = RunRecord("run-1", "2026-01-01T00:00:00+00:00", {"cores": 2}, {"harness": "0.1.0"}, {}, ["run"],
                       profiles={"cpu": {"ep": "CPUExecutionProvider"}}, cells=cells, options={"jobs": 1})
    return [record.to_json().encode()]


def journal_seeds() -> list[bytes]:
    body = json.loads(record_seeds()[0])
    cells = body.pop("cells")
    for key in ("schema", "location"):
        body.pop(key, None)
    lines = [json.dumps({"kind": "header", **body})] + [json.dumps({"kind": "cell", **c}) for c in cells]
    return ["\n".join(lines).encode() + b"\n", "\n".join(lines[:2]).encode() + b'\n{"kind": "cell", "ca']


def frame_seeds() -> list[bytes]:
    from harness.worker import protocol
    frames = [protocol.encode_message({"type": "hello", "pid": 1, "available": True}),
              protocol.encode_message({"type": "load", "case": "c", "model_path": "m.onnx"}),
              protocol.encode_message({"type": "infer", "measure": None},
                                      {"0/x": np.arange(4, dtype=np.float32).reshape(1, 4),
                                       "0/i": np.array([1, 2], dtype=np.int64), "0/b": np.array(True),
                                       "0/h": np.zeros((2, 0), dtype=np.float16)}),
              protocol.encode_message({"type": "error", "kind": "run", "message": "x"}),
              protocol.encode_message({"type": "bye"})]
    return [*frames, b"".join(frames)]


# ---- targets -----------------------------------------------------------------------------------------------------

def make_targets(workdir: Path) -> dict[str, Target]:
    """Every target, each writing its inputs under its own folder of ``workdir``."""
    from harness.errors import HarnessError
    from harness.worker.protocol import ProtocolError
    makers = {"pb_tensor": _pb_tensor, "pb_dataset": _pb_dataset, "case_json": _case_json,
              "data_json": _data_json, "profile_toml": _profile_toml, "record_json": _record_json,
              "journal": _journal, "protocol_parent": _protocol_parent, "protocol_worker": _protocol_worker}
    targets = {}
    for name, maker in makers.items():
        folder = workdir / name
        folder.mkdir(parents=True, exist_ok=True)
        seeds, run = maker(folder)
        allowed = (ProtocolError,) if name.startswith("protocol") else (HarnessError,)
        targets[name] = Target(name, seeds, run, allowed)
    return targets


def _pb_tensor(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.golden.layout import read_tensor
    (folder / "weights.bin").write_bytes(bytes(8))
    path = folder / "input_0.pb"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        read_tensor(path)
    return tensor_seeds(), run


def _pb_dataset(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from onnx import numpy_helper

    from harness.golden.layout import read_dataset
    dataset = folder / "test_data_set_0"
    dataset.mkdir(exist_ok=True)
    (dataset / "weights.bin").write_bytes(bytes(8))
    (dataset / "output_0.pb").write_bytes(numpy_helper.from_array(np.zeros((1, 4), np.float32), "y").SerializeToString())

    def run(data: bytes) -> None:
        (dataset / "input_0.pb").write_bytes(data)
        read_dataset(dataset, 0, ["x"], ["y"])
    return tensor_seeds(), run


def _case_folder(folder: Path) -> Path:
    from harness.worker.probe import PROBE_MODEL
    (folder / "model.onnx").write_bytes(PROBE_MODEL)
    return folder


def _case_json(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.golden.cases import load_case
    case_dir = _case_folder(folder)

    def run(data: bytes) -> None:
        (case_dir / "case.json").write_bytes(data)
        case = load_case(case_dir, "c")
        case.validate_tolerances()
        _ = case.budgets
    return manifest_seeds(), run


def _data_json(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.golden.cases import load_case
    case_dir = _case_folder(folder)

    def run(data: bytes) -> None:
        (case_dir / "data.json").write_bytes(data)
        load_case(case_dir, "c").validate_tolerances()
    return data_json_seeds(), run


def _profile_toml(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.profiles.registry import load_all
    from harness.profiles.schema import load_profile
    path = folder / "fuzzed.toml"

    def run(data: bytes) -> None:
        path.write_bytes(data)
        if b"extends" in data:  # only the registry resolves extends (over the built-ins)
            load_all([folder], cwd=folder)
        else:
            load_profile(path)
    return profile_seeds(), run


def _record_json(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.run.record import load_record

    def run(data: bytes) -> None:
        (folder / "record.json").write_bytes(data)
        check_record_types(load_record(folder)[0])
    return record_seeds(), run


def _journal(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.run.record import load_record

    def run(data: bytes) -> None:
        (folder / "journal.jsonl").write_bytes(data)
        check_record_types(load_record(folder)[0])
    return journal_seeds(), run


class IllTyped(Exception):
    """A loader returned a record whose fields are not of their declared types: its consumers would fail later."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_record_types(record: Any) -> None:
    """The loaded record's fields (and each cell's) have their declared base types."""
    from harness.run.record import CellResult, RunRecord
    for obj, cls in ((record, RunRecord), *((cell, CellResult) for cell in record.cells)):
        if not isinstance(obj, cls):
            raise IllTyped(cls.__name__, f"a {cls.__name__} entry is a {type(obj).__name__}")
        hints = get_type_hints(cls)
        for f in fields(cls):
            expected = _base_type(hints[f.name])
            value = getattr(obj, f.name)
            if expected is not None and not isinstance(value, expected):
                raise IllTyped(f"{cls.__name__}.{f.name}", f"{cls.__name__}.{f.name} is a {type(value).__name__}, "
                                                          f"not {expected}")


def _base_type(hint: Any) -> tuple[type, ...] | None:
    origin = getattr(hint, "__origin__", None)
    if hint in (str, int, float, bool, dict, list):
        return (int, float) if hint is float else (hint,)
    if origin in (dict, list):
        return (origin,)
    return None  # unions (Path | None) are not checked


def _protocol_parent(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    from harness.worker import protocol

    def run(data: bytes) -> None:
        stream = io.BytesIO(data)
        while protocol.read_message(stream) is not None:
            pass
    return frame_seeds(), run


def _protocol_worker(folder: Path) -> tuple[list[bytes], Callable[[bytes], None]]:
    """The worker's serve loop in this process, fed the bytes as its stdin; what it writes must be frames."""
    from harness.worker import main, protocol
    from harness.worker.probe import PROBE_MODEL
    model = folder / "m.onnx"
    model.write_bytes(PROBE_MODEL)
    spec = {"name": "fuzz", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
            "device_metadata": {}, "precision_hint": None, "session": {"intra_op_threads": 1}, "env": {},
            "cpu_cores": None, "memory_limit_mb": None}
    os.environ.pop(main.FAULT_ENV, None)

    def run(data: bytes) -> None:
        out = io.BytesIO()
        try:
            main.serve(spec, io.BytesIO(data), out)
        finally:
            replies = io.BytesIO(out.getvalue())
            try:
                while protocol.read_message(replies) is not None:
                    pass
            except protocol.ProtocolError as exc:
                raise UnreadableReply(f"the worker wrote a frame the parent cannot read: {exc}") from None
    load = protocol.encode_message({"type": "load", "case": "c", "model_path": str(model)})
    infer = protocol.encode_message({"type": "infer", "measure": None},
                                    {"0/x": np.arange(4, dtype=np.float32).reshape(1, 4)})
    bye = protocol.encode_message({"type": "bye"})
    seeds = [load + infer + bye, load + infer + load + infer, infer + bye,
             protocol.encode_message({"type": "what"}) + bye,
             protocol.encode_message({"type": "load", "case": "c", "model_path": str(folder / "missing.onnx")})]
    return seeds, run


class UnreadableReply(Exception):
    """The worker answered with bytes that are not protocol frames."""


# ---- mutation (shared by the hypothesis strategy and bench/fuzz.py's fallback loop) ------------------------------

_INTERESTING = (0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF, 2**63 - 1, 2**64 - 1)
_TOKENS = (b"{", b"}", b"[", b"]", b'"', b",", b":", b"null", b"1e309", b"-1", b"NaN", b"\x00", b"\n", b"=",
           b"[[", b"]]", b'"""', b"\\u0000", b"\xff\xfe", b"true", b"0" * 40)


def mutate(data: bytes, ops: list[tuple[int, int, int]], other: bytes = b"") -> bytes:
    """Apply ``ops`` (each: kind, position, value) to ``data``: bit flips, byte sets, inserts and deletes,
    little-endian interesting integers (lengths in frame prefixes and protobuf varints live there), tokens
    of the text formats, and splices from another seed."""
    buf = bytearray(data)
    for kind, pos, value in ops:
        at = pos % (len(buf) + 1)
        kind %= 8
        if kind == 0 and buf:
            buf[at % len(buf)] ^= 1 << (value % 8)
        elif kind == 1 and buf:
            buf[at % len(buf)] = value % 256
        elif kind == 2:
            buf[at:at] = bytes([value % 256]) * (1 + value % 4)
        elif kind == 3:
            del buf[at:at + 1 + value % 16]
        elif kind == 4:
            width = (1, 2, 4, 8)[value % 4]
            number = _INTERESTING[(value // 4) % len(_INTERESTING)] % (1 << (8 * width))
            buf[at:at + width] = number.to_bytes(width, "little")
        elif kind == 5:
            buf[at:at] = _TOKENS[value % len(_TOKENS)]
        elif kind == 6 and other:
            start = value % len(other)
            buf[at:] = other[start:start + 64] + buf[at:]
        elif kind == 7:
            del buf[at:]
    return bytes(buf)
