"""The standard ONNX test-data layout, read and written.

    <case>/model.onnx
    <case>/test_data_set_<k>/input_<i>.pb     named after the graph input
    <case>/test_data_set_<k>/output_<j>.pb    named after the graph output

Each .pb holds the proto that the graph's type calls for, as onnx's backend runner reads it: an
onnx.TensorProto for a tensor (every element type: bfloat16, float8, int4/uint4, float4e2m1, string, bool...),
an onnx.SequenceProto for a sequence, an onnx.OptionalProto for an optional, an onnx.MapProto for a map.

Values in Python (the model the run, the worker protocol and the comparator share): ``np.ndarray`` for a
tensor (ml_dtypes dtypes for the exotic element types, an object array of ``str`` for strings), ``list`` for
a sequence, ``dict`` for a map, ``None`` for an absent optional and the value itself for a present one.

onnx's backend loader and onnxruntime's onnx_test_runner read this unchanged. Writes are atomic
(temporary file, fsync, rename) and never replace existing goldens unless ``force`` is given.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from harness.atomic import atomic_write_bytes
from harness.errors import GoldenError

MODEL_NAME = "model.onnx"
_DATASET_RE = re.compile(r"^test_data_set_(\d+)$")
_TENSOR_RE = re.compile(r"^(input|output)_(\d+)\.pb$")
_HINT = "regenerate it with 'harness bless'"

# A tensor, a sequence (list), a map (dict) or an absent optional (None); see the module docstring.
Value = Union[np.ndarray, list, dict, None]
# What the graph declares for one input or output: "tensor", "sequence", "optional" or "map".
_PROTOS = {"tensor": onnx.TensorProto, "sequence": onnx.SequenceProto, "optional": onnx.OptionalProto,
           "map": onnx.MapProto}


@dataclass
class DataSet:
    """One test_data_set_<k>: inputs keyed by graph input name; outputs keyed by graph output name
    (empty when the set holds no goldens). Values follow the module's value model."""

    index: int
    path: Path | None
    inputs: dict[str, Value]
    outputs: dict[str, Value]


def dataset_dirs(case_dir: Path) -> list[tuple[int, Path]]:
    """The case's test_data_set_<k> folders by k. Something else with that name is refused: skipped, the goldens
    it stands for would go uncompared and the run green."""
    found = []
    for child in case_dir.iterdir() if case_dir.is_dir() else []:
        match = _DATASET_RE.match(child.name)
        if not match:
            continue
        if not child.is_dir():
            raise GoldenError(f"{child}: named like a data set but not a folder",
                              hint="rename or remove it; a data set is a folder of input_<i>.pb and output_<j>.pb")
        found.append((int(match.group(1)), child))
    return sorted(found)


def value_kind(type_proto: onnx.TypeProto | None) -> str:
    """The proto a graph input/output of this type is stored as: tensor (also the default for an unknown
    type), sequence, optional or map."""
    which = type_proto.WhichOneof("value") if type_proto is not None else None
    return {"sequence_type": "sequence", "optional_type": "optional", "map_type": "map"}.get(which, "tensor")


@functools.lru_cache(maxsize=64)
def _graph_types_cached(path: str, _mtime_ns: int, _size: int) -> dict[str, onnx.TypeProto]:
    model = onnx.load(path, load_external_data=False)
    return {v.name: v.type for v in (*model.graph.input, *model.graph.output)}


def graph_types(model_path: Path) -> dict[str, onnx.TypeProto]:
    """Declared types of the graph's inputs and outputs ({} when the model cannot be read: the tensor default
    applies, and the model's own loader reports what is wrong with it). Cached per file version, because every
    data set of a case asks."""
    try:
        stat = model_path.stat()
        return _graph_types_cached(str(model_path), stat.st_mtime_ns, stat.st_size)
    except (OSError, DecodeError, ValueError, RuntimeError):
        return {}


def _one_line(exc: BaseException) -> str:
    """onnx's and protobuf's error text can span lines (an overload listing, a file name holding a newline):
    the first line, repr-escaped and cut, so that a GoldenError stays one line."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else type(exc).__name__
    return first.encode("unicode_escape").decode("ascii")[:200]


def _parse(path: Path, data: bytes, kind: str) -> Any:
    proto = _PROTOS[kind]()
    try:
        proto.ParseFromString(data)
    except DecodeError as exc:
        raise GoldenError(f"{path}: not an onnx.{type(proto).__name__} ({_one_line(exc)})", hint=_HINT) from None
    return proto


def _decode(path: Path, proto: Any, kind: str) -> Value:
    """numpy_helper's readers; onnx raises bare Exceptions, TypeErrors or ValueErrors for inconsistent protos."""
    try:
        if kind == "tensor":
            return _string_fix(numpy_helper.to_array(proto, base_dir=str(path.parent)))
        if kind == "sequence":
            return _strings_in(numpy_helper.to_list(proto))
        if kind == "optional":
            return _strings_in(numpy_helper.to_optional(proto))
        return _strings_in(numpy_helper.to_dict(proto))
    except Exception as exc:
        raise GoldenError(f"{path}: {type(proto).__name__} does not decode ({_one_line(exc)})", hint=_HINT) from None


def _string_fix(array: np.ndarray) -> np.ndarray:
    """String tensors are object arrays of str (what onnxruntime returns), never numpy's fixed-width '<U'."""
    return array.astype(object) if array.dtype.kind in "SU" else array


def _strings_in(value: Value) -> Value:
    if isinstance(value, np.ndarray):
        return _string_fix(value)
    if isinstance(value, list):
        return [_strings_in(v) for v in value]
    if isinstance(value, dict):
        return {k: _strings_in(v) for k, v in value.items()}
    return value


def read_value(path: Path, type_proto: onnx.TypeProto | None = None) -> tuple[str, Value]:
    """Parse one .pb as the proto its graph type calls for (a TensorProto when the type is not known);
    anything else is a GoldenError naming the file."""
    data = path.read_bytes()
    kind = value_kind(type_proto)
    proto = _parse(path, data, kind)
    if kind == "tensor" and not proto.dims and not proto.raw_data and proto.data_type == 0 and data:
        raise GoldenError(f"{path}: not an onnx.TensorProto (no data type)", hint=_HINT)
    return proto.name, _decode(path, proto, kind)


def read_tensor(path: Path) -> tuple[str, np.ndarray]:
    """One TensorProto .pb (kept for callers that know they hold a tensor)."""
    name, value = read_value(path)
    return name, value  # type: ignore[return-value]


def _by_name(files: list[tuple[int, Path]], names: list[str], kind: str, where: Path,
             types: Mapping[str, onnx.TypeProto]) -> dict[str, Value]:
    result: dict[str, Value] = {}
    if files and len(files) != len(names):
        raise GoldenError(
            f"{where}: {len(files)} {kind} file(s) but the model has {len(names)} {kind}(s) {names}",
            hint="the goldens belong to another model; re-bless them with 'harness bless --force'")
    for position, path in files:
        if position >= len(names):
            raise GoldenError(f"{path}: {kind} index {position} but the model has {len(names)} {kind}(s)")
        expected = names[position]
        name, value = read_value(path, types.get(expected))
        if name and name != expected:
            raise GoldenError(f"{path}: value is named {name!r} but the model's {kind} {position} is {expected!r}",
                              hint="the goldens belong to another model; re-bless them with 'harness bless --force'")
        result[expected] = value
    return result


def read_dataset(ds_dir: Path, index: int, input_names: list[str], output_names: list[str],
                 types: Mapping[str, onnx.TypeProto] | None = None) -> DataSet:
    """``types``: the graph's declared types by name; read from the case's model.onnx when not given."""
    if types is None:
        types = graph_types(ds_dir.parent / MODEL_NAME)
    files: dict[str, list[tuple[int, Path]]] = {"input": [], "output": []}
    for child in ds_dir.iterdir():
        match = _TENSOR_RE.match(child.name)
        if match:
            files[match.group(1)].append((int(match.group(2)), child))
    for group in files.values():
        group.sort()
    return DataSet(index, ds_dir,
                   _by_name(files["input"], input_names, "input", ds_dir, types),
                   _by_name(files["output"], output_names, "output", ds_dir, types))


def _sequence_elem(type_proto: onnx.TypeProto | None) -> int | None:
    """SequenceProto.DataType for an (empty) sequence of this declared type; None lets onnx guess."""
    if type_proto is None or not type_proto.HasField("sequence_type"):
        return None
    which = type_proto.sequence_type.elem_type.WhichOneof("value")
    return {"tensor_type": onnx.SequenceProto.TENSOR, "sequence_type": onnx.SequenceProto.SEQUENCE,
            "map_type": onnx.SequenceProto.MAP, "optional_type": onnx.SequenceProto.OPTIONAL}.get(which)


def value_proto(name: str, value: Value, type_proto: onnx.TypeProto | None = None) -> Any:
    """The proto a value is stored as: the graph type decides (an optional's present value is wrapped in an
    OptionalProto); without one, the Python type does (list -> sequence, dict -> map, None -> optional)."""
    kind = value_kind(type_proto) if type_proto is not None else (
        "sequence" if isinstance(value, list) else "map" if isinstance(value, dict)
        else "optional" if value is None else "tensor")
    if kind == "sequence":
        return numpy_helper.from_list(value, name, _sequence_elem(type_proto))
    if kind == "optional":
        return numpy_helper.from_optional(value, name)
    if kind == "map":
        return numpy_helper.from_dict(value, name)
    return numpy_helper.from_array(np.asarray(value), name=name)


def value_bytes(name: str, value: Value, type_proto: onnx.TypeProto | None = None) -> bytes:
    """Serialised ``value_proto``; a value onnx cannot store is a GoldenError naming it."""
    try:
        return value_proto(name, value, type_proto).SerializeToString()
    except (TypeError, ValueError, NotImplementedError, KeyError) as exc:
        raise GoldenError(f"value {name!r} ({type(value).__name__}) cannot be stored as a .pb: {_one_line(exc)}") from None


def tensor_bytes(name: str, array: Value) -> bytes:
    """A value as its .pb bytes, by its Python type (kept for callers without the graph's types)."""
    return value_bytes(name, array)


def _digest_value(digest: Any, value: Value) -> None:
    if isinstance(value, np.ndarray) and value.dtype != object:
        array = np.ascontiguousarray(value) if value.ndim else value
        digest.update(f"{array.dtype}|{array.shape}|".encode())
        digest.update(array.tobytes())
    elif isinstance(value, np.ndarray):  # strings: their UTF-8 text, never the object pointers
        digest.update(f"string|{value.shape}|".encode())
        for item in value.reshape(-1).tolist():
            data = item.encode("utf-8") if isinstance(item, str) else bytes(item)
            digest.update(len(data).to_bytes(8, "little") + data)
    elif isinstance(value, list):
        digest.update(f"sequence|{len(value)}|".encode())
        for item in value:
            _digest_value(digest, item)
    elif isinstance(value, dict):
        digest.update(f"map|{len(value)}|".encode())
        for key, item in value.items():
            digest.update(f"{key!r}|".encode())
            _digest_value(digest, item)
    else:
        digest.update(b"absent|")


def value_digest(values: Mapping[str, Value]) -> str:
    """sha256 over every value's name, kind, dtype, shape and data: equal digests mean bitwise-equal outputs.
    For plain numeric tensors it is the digest the run record always held (name|dtype|shape| then the bytes)."""
    digest = hashlib.sha256()
    for name in sorted(values):
        digest.update(f"{name}|".encode())
        _digest_value(digest, values[name])
    return digest.hexdigest()


def write_dataset(case_dir: Path, index: int, inputs: Mapping[str, Value], outputs: Mapping[str, Value],
                  input_names: list[str], output_names: list[str], *, force: bool = False,
                  types: Mapping[str, onnx.TypeProto] | None = None) -> Path:
    """Write one data set; files are named by position in the graph's signature, values by name, each stored
    as the proto its graph type calls for (``types``, read from the case's model.onnx when not given)."""
    ds_dir = case_dir / f"test_data_set_{index}"
    if not force and any(ds_dir.glob("output_*.pb")):
        raise GoldenError(f"{ds_dir}: goldens already exist", hint="pass --force to overwrite them")
    if types is None:
        types = graph_types(case_dir / MODEL_NAME)
    # Serialise everything first so a bad value leaves no half-written set behind.
    payload = [(f"input_{i}.pb", value_bytes(n, inputs[n], types.get(n))) for i, n in enumerate(input_names)]
    payload += [(f"output_{j}.pb", value_bytes(n, outputs[n], types.get(n))) for j, n in enumerate(output_names)]
    for filename, data in payload:
        atomic_write_bytes(ds_dir / filename, data)
    # A forced rewrite for a model with fewer inputs/outputs must not leave the old extra files behind:
    # the next read would count them and refuse the set.
    wanted = {filename for filename, _ in payload}
    for child in ds_dir.iterdir():
        if _TENSOR_RE.match(child.name) and child.name not in wanted:
            child.unlink()
    return ds_dir
