"""The standard ONNX test-data layout, read and written.

    <case>/model.onnx
    <case>/test_data_set_<k>/input_<i>.pb     onnx.TensorProto named after the graph input
    <case>/test_data_set_<k>/output_<j>.pb    onnx.TensorProto named after the graph output

onnx's backend loader and onnxruntime's onnx_test_runner read this unchanged. Writes are atomic
(temporary file, fsync, rename) and never replace existing goldens unless ``force`` is given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from harness.atomic import atomic_write_bytes
from harness.errors import GoldenError

MODEL_NAME = "model.onnx"
_DATASET_RE = re.compile(r"^test_data_set_(\d+)$")
_TENSOR_RE = re.compile(r"^(input|output)_(\d+)\.pb$")


@dataclass
class DataSet:
    """One test_data_set_<k>: inputs keyed by graph input name; outputs keyed by graph output name
    (empty when the set holds no goldens)."""

    index: int
    path: Path | None
    inputs: dict[str, np.ndarray]
    outputs: dict[str, np.ndarray]


def dataset_dirs(case_dir: Path) -> list[tuple[int, Path]]:
    found = []
    for child in case_dir.iterdir() if case_dir.is_dir() else []:
        match = _DATASET_RE.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return sorted(found)


def read_tensor(path: Path) -> tuple[str, np.ndarray]:
    """Parse one .pb; anything that is not a TensorProto is a GoldenError naming the file."""
    data = path.read_bytes()
    tensor = onnx.TensorProto()
    try:
        tensor.ParseFromString(data)
    except DecodeError as exc:
        raise GoldenError(f"{path}: not an onnx.TensorProto ({exc})", hint="regenerate it with 'harness bless'") from None
    if not tensor.dims and not tensor.raw_data and tensor.data_type == 0 and data:
        raise GoldenError(f"{path}: not an onnx.TensorProto (no data type)", hint="regenerate it with 'harness bless'")
    try:
        array = numpy_helper.to_array(tensor, base_dir=str(path.parent))
    except Exception as exc:  # onnx raises bare Exceptions/ValueErrors for inconsistent protos
        raise GoldenError(f"{path}: TensorProto does not decode ({exc})", hint="regenerate it with 'harness bless'") from None
    return tensor.name, array


def _by_name(files: list[tuple[int, Path]], names: list[str], kind: str, where: Path) -> dict[str, np.ndarray]:
    result: dict[str, np.ndarray] = {}
    if files and len(files) != len(names):
        raise GoldenError(
            f"{where}: {len(files)} {kind} file(s) but the model has {len(names)} {kind}(s) {names}",
            hint="the goldens belong to another model; re-bless them with 'harness bless --force'")
    for position, path in files:
        name, array = read_tensor(path)
        if position >= len(names):
            raise GoldenError(f"{path}: {kind} index {position} but the model has {len(names)} {kind}(s)")
        expected = names[position]
        if name and name != expected:
            raise GoldenError(f"{path}: tensor is named {name!r} but the model's {kind} {position} is {expected!r}",
                              hint="the goldens belong to another model; re-bless them with 'harness bless --force'")
        result[expected] = array
    return result


def read_dataset(ds_dir: Path, index: int, input_names: list[str], output_names: list[str]) -> DataSet:
    files: dict[str, list[tuple[int, Path]]] = {"input": [], "output": []}
    for child in ds_dir.iterdir():
        match = _TENSOR_RE.match(child.name)
        if match:
            files[match.group(1)].append((int(match.group(2)), child))
    for group in files.values():
        group.sort()
    return DataSet(index, ds_dir,
                   _by_name(files["input"], input_names, "input", ds_dir),
                   _by_name(files["output"], output_names, "output", ds_dir))


def tensor_bytes(name: str, array: np.ndarray) -> bytes:
    return numpy_helper.from_array(np.asarray(array), name=name).SerializeToString()


def write_dataset(case_dir: Path, index: int, inputs: Mapping[str, np.ndarray], outputs: Mapping[str, np.ndarray],
                  input_names: list[str], output_names: list[str], *, force: bool = False) -> Path:
    """Write one data set; files are named by position in the graph's signature, tensors by name."""
    ds_dir = case_dir / f"test_data_set_{index}"
    if not force and any(ds_dir.glob("output_*.pb")):
        raise GoldenError(f"{ds_dir}: goldens already exist", hint="pass --force to overwrite them")
    # Serialise everything first so a bad tensor leaves no half-written set behind.
    payload = [(f"input_{i}.pb", tensor_bytes(n, inputs[n])) for i, n in enumerate(input_names)]
    payload += [(f"output_{j}.pb", tensor_bytes(n, outputs[n])) for j, n in enumerate(output_names)]
    for filename, data in payload:
        atomic_write_bytes(ds_dir / filename, data)
    # A forced rewrite for a model with fewer inputs/outputs must not leave the old extra files behind:
    # the next read would count them and refuse the set.
    wanted = {filename for filename, _ in payload}
    for child in ds_dir.iterdir():
        if _TENSOR_RE.match(child.name) and child.name not in wanted:
            child.unlink()
    return ds_dir
