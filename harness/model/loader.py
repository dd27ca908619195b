"""Load and vet an ONNX model before any runtime sees it.

Hostile or broken files are refused here with one line: not protobuf, truncated, failing the checker,
or external data that points outside the model's own folder.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import helper

from harness.errors import ModelError

_HINT = "re-export the model, or restore it from git"


@dataclass(frozen=True)
class TensorSig:
    name: str
    dtype: np.dtype | None          # None for non-tensor types (sequences, maps)
    shape: tuple[int | str | None, ...]  # int = fixed, str = symbolic, None = unknown

    @property
    def dtype_name(self) -> str:
        return self.dtype.name if self.dtype is not None else "non-tensor"


@dataclass(frozen=True)
class ModelInfo:
    path: Path
    sha256: str
    opset: int | None
    inputs: list[TensorSig]
    outputs: list[TensorSig]
    node_count: int
    has_external_data: bool
    op_types: tuple[str, ...] = ()  # the top graph's nodes, in order (subgraphs not included)
    # Declared onnx.TypeProto of every graph input and output, by name: data sets are read with them, so a large
    # model is not parsed a second time for its types.
    value_types: dict[str, onnx.TypeProto] = field(default_factory=dict, compare=False, repr=False)

    @property
    def single_op(self) -> str:
        """The op_type of a one-node graph (what a node test or a hand-made op case tests), else ''."""
        return self.op_types[0] if len(self.op_types) == 1 else ""

    @property
    def input_names(self) -> list[str]:
        return [t.name for t in self.inputs]

    @property
    def output_names(self) -> list[str]:
        return [t.name for t in self.outputs]


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _sig(value_info: onnx.ValueInfoProto) -> TensorSig:
    ttype = value_info.type.tensor_type if value_info.type.HasField("tensor_type") else None
    if ttype is None:
        return TensorSig(value_info.name, None, ())
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(ttype.elem_type))
    except (KeyError, TypeError):
        dtype = None
    dims: list[int | str | None] = []
    for dim in ttype.shape.dim:
        if dim.HasField("dim_value"):
            dims.append(int(dim.dim_value))
        elif dim.HasField("dim_param"):
            dims.append(dim.dim_param)
        else:
            dims.append(None)
    return TensorSig(value_info.name, dtype, tuple(dims))


def _check_external_data(model: onnx.ModelProto, folder: Path) -> bool:
    """External data must stay inside the model's folder: no absolute paths, no '..' escapes."""
    found = False
    root = folder.resolve()
    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        found = True
        location = next((e.value for e in tensor.external_data if e.key == "location"), "")
        target = (folder / location).resolve()
        if not location or Path(location).is_absolute() or not target.is_relative_to(root):
            raise ModelError(f"{folder / 'model.onnx'}: initializer {tensor.name!r} points outside the model's folder "
                             f"({location!r})", hint="keep external data files beside the model")
        if not target.is_file():
            raise ModelError(f"{folder / 'model.onnx'}: external data file {location!r} is missing", hint=_HINT)
    return found


def _all_tensors(model: onnx.ModelProto):
    yield from model.graph.initializer
    for node in model.graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t


def load_model_info(path: Path) -> ModelInfo:
    """Parse, check and describe the model without loading external weights into memory."""
    if not path.is_file():
        raise ModelError(f"{path}: model file not found", hint=_HINT)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, OSError) as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {str(exc)[:120]})", hint=_HINT) from None
    if not model.graph.output or model.ir_version == 0:
        raise ModelError(f"{path}: not an ONNX model, or truncated (no graph outputs / IR version)", hint=_HINT)
    external = _check_external_data(model, path.parent)
    try:
        onnx.checker.check_model(str(path))  # by path: the C++ checker reads the file, no re-serialising
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: fails the ONNX checker ({first})", hint=_HINT) from None
    initializer_names = {t.name for t in model.graph.initializer}
    inputs = [_sig(v) for v in model.graph.input if v.name not in initializer_names]
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return ModelInfo(path, sha256_file(path), opset, inputs, [_sig(v) for v in model.graph.output],
                     len(model.graph.node), external, tuple(n.op_type for n in model.graph.node),
                     {v.name: v.type for v in [*model.graph.input, *model.graph.output]})
