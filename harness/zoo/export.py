"""Export zoo modules to ONNX and compute their eager (PyTorch) reference outputs.

Public API: :func:`make_inputs`, :func:`export_onnx`, :func:`eager_outputs`, :func:`torch_version`.
``torch`` and ``onnxscript`` are the optional "export" extra: they are imported lazily, and a missing
one surfaces as :class:`~harness.errors.ExportError` with an install hint, never a bare import error.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from harness.errors import ExportError

if TYPE_CHECKING:  # pragma: no cover - typing only; models.py imports torch
    from harness.zoo.models import ZooSpec

EXPORT_HINT = 'pip install torch==2.13.0 -e ".[export]"'
_EXTRA_MODULES = ("torch", "onnxscript")


def _missing_extra(exc: ModuleNotFoundError) -> ExportError:
    name = (exc.name or "").split(".")[0] or "a module"
    return ExportError(f"exporting the zoo needs the export extra ({name} is not installed)", EXPORT_HINT)


def _is_extra(exc: ModuleNotFoundError) -> bool:
    return (exc.name or "").split(".")[0] in _EXTRA_MODULES


def _import_torch() -> Any:
    try:
        import torch
    except ModuleNotFoundError as exc:
        raise _missing_extra(exc) from exc
    return torch


def torch_version() -> str:
    """The installed torch version, e.g. ``"2.13.0+cpu"``; raises ExportError if torch is missing."""
    return str(_import_torch().__version__)


def _resolve_dims(spec: ZooSpec, dims: dict[str, int] | None) -> dict[str, int]:
    resolved = dict(spec.dims)
    if dims:
        unknown = sorted(set(dims) - set(spec.symbolic_dims))
        if unknown:
            raise ExportError(
                f"model {spec.name!r} has no symbolic dim {', '.join(map(repr, unknown))}",
                f"its symbolic dims are: {', '.join(spec.symbolic_dims) or 'none'}",
            )
        resolved.update(dims)
    missing = [d for d in spec.symbolic_dims if d not in resolved]
    if missing:
        raise ExportError(f"model {spec.name!r}: no value for symbolic dim(s) {', '.join(missing)}")
    for name, value in resolved.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ExportError(f"model {spec.name!r}: dim {name!r} must be a positive integer, got {value!r}")
    return resolved


def make_inputs(spec: ZooSpec, seed: int, dims: dict[str, int] | None = None) -> dict[str, np.ndarray]:
    """Seeded inputs for ``spec``: floats uniform in [low, high), integers in [low, high).

    ``dims`` overrides the spec's concrete values for symbolic dims (e.g. ``{"batch": 5}``). The same
    (spec, seed, dims) always gives identical arrays, in the order of ``spec.inputs``.
    """
    concrete = _resolve_dims(spec, dims)
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for inp in spec.inputs:
        shape = tuple(concrete[d] if isinstance(d, str) else int(d) for d in inp.shape)
        dtype = np.dtype(inp.dtype)
        if np.issubdtype(dtype, np.integer):
            arr = rng.integers(int(inp.low), int(inp.high), size=shape, dtype=dtype)
        elif np.issubdtype(dtype, np.floating):
            arr = rng.uniform(inp.low, inp.high, size=shape).astype(dtype)
        elif dtype == np.bool_:
            arr = rng.integers(0, 2, size=shape).astype(np.bool_)
        else:
            raise ExportError(f"model {spec.name!r}: input {inp.name!r} has unsupported dtype {inp.dtype!r}")
        out[inp.name] = arr
    return out


def _to_numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().contiguous().numpy()


def _flatten_outputs(result: Any) -> list[Any]:
    if isinstance(result, (tuple, list)):
        return list(result)
    return [result]


def eager_outputs(spec: ZooSpec, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run the module in eval mode under ``torch.no_grad`` on ``inputs``; outputs keyed by name."""
    torch = _import_torch()
    module = spec.build().eval()
    args = tuple(torch.from_numpy(np.array(inputs[i.name], copy=True)) for i in spec.inputs)
    with torch.no_grad():
        results = _flatten_outputs(module(*args))
    if len(results) != len(spec.output_names):
        raise ExportError(
            f"model {spec.name!r} returned {len(results)} outputs, the spec names {len(spec.output_names)}"
        )
    return {name: _to_numpy(value) for name, value in zip(spec.output_names, results)}


def _dynamic_shapes(spec: ZooSpec, torch: Any) -> dict[str, dict[int, Any]] | None:
    """``dynamic_shapes`` for torch.export, keyed by forward argument name (= the input names)."""
    dim_objs = {name: torch.export.Dim(name) for name in spec.symbolic_dims}
    shapes = {
        inp.name: {axis: dim_objs[d] for axis, d in enumerate(inp.shape) if isinstance(d, str)}
        for inp in spec.inputs
    }
    return shapes if dim_objs else None


def _graph_io_names(model: Any) -> tuple[list[str], list[str]]:
    initializers = {t.name for t in model.graph.initializer}
    ins = [v.name for v in model.graph.input if v.name not in initializers]
    outs = [v.name for v in model.graph.output]
    return ins, outs


def _dynamic_axes(spec: ZooSpec) -> dict[str, dict[int, str]]:
    """``dynamic_axes`` for the legacy exporter (inputs only; it infers the outputs' symbolic dims)."""
    return {
        inp.name: {axis: d for axis, d in enumerate(inp.shape) if isinstance(d, str)}
        for inp in spec.inputs
        if any(isinstance(d, str) for d in inp.shape)
    }


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the exporter's progress prints, warnings and registry log lines (e.g. torchvision)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _run_exporter(
    spec: ZooSpec, module: Any, args: tuple[Any, ...], out_path: Path, opset: int, torch: Any
) -> None:
    common = dict(
        input_names=[i.name for i in spec.inputs],
        output_names=list(spec.output_names),
        opset_version=opset,
    )
    if spec.exporter == "dynamo":
        torch.onnx.export(
            module,
            args,
            str(out_path),
            dynamo=True,
            external_data=False,
            dynamic_shapes=_dynamic_shapes(spec, torch),
            verbose=False,
            **common,
        )
    elif spec.exporter == "torchscript":
        torch.onnx.export(
            module, args, str(out_path), dynamo=False, dynamic_axes=_dynamic_axes(spec), **common
        )
    else:
        raise ExportError(f"model {spec.name!r} names unknown exporter {spec.exporter!r}", "use dynamo or torchscript")


def _check_input_dims(spec: ZooSpec, model: Any) -> None:
    """Symbolic dims must stay symbolic: torch.onnx falls back to a fixed-shape graph without saying so."""
    graph_inputs = {v.name: v for v in model.graph.input}
    for inp in spec.inputs:
        dims = graph_inputs[inp.name].type.tensor_type.shape.dim
        got = [d.dim_param if d.HasField("dim_param") else d.dim_value for d in dims]
        ok = len(got) == len(inp.shape) and all(
            (isinstance(want, str) and isinstance(have, str) and have) or (not isinstance(want, str) and have == want)
            for want, have in zip(inp.shape, got)
        )
        if not ok:
            raise ExportError(
                f"exported {spec.name!r}: input {inp.name!r} has shape {got}, the spec says {list(inp.shape)}",
                _PINNED_HINT,
            )


_PINNED_HINT = "the exporter pinned a dynamic dim; give the spec exporter='torchscript' or make the module traceable"


def _alternate_dims(spec: ZooSpec) -> dict[str, int]:
    """Each symbolic dim moved off its golden value (2 -> 5, 8 -> 11), to expose pinned shapes."""
    return {name: value + 3 for name, value in spec.dims.items() if name in spec.symbolic_dims}


def _check_runs_at_other_dims(spec: ZooSpec, model: Any, out_path: Path) -> None:
    """Run the file with onnxruntime at other dims: the declared and actual output shapes must match eager.

    This catches what the declared input shapes do not: a graph whose inputs are symbolic but whose
    outputs (or an internal Reshape) were fixed to the example's size.
    """
    import onnxruntime as ort

    dims = _alternate_dims(spec)
    if not dims:
        return
    inputs = make_inputs(spec, seed=1, dims=dims)
    expected = eager_outputs(spec, inputs)
    declared = {v.name: v.type.tensor_type.shape.dim for v in model.graph.output}
    for name in spec.output_names:
        want = expected[name].shape
        have = [d.dim_value if d.HasField("dim_value") else None for d in declared[name]]
        if len(have) != len(want) or any(h is not None and h != w for h, w in zip(have, want)):
            shown = [d.dim_param or d.dim_value for d in declared[name]]
            raise ExportError(
                f"exported {spec.name!r}: output {name!r} is declared {shown}, but at {dims} it is {list(want)}",
                _PINNED_HINT,
            )
    try:
        session = ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"])
        got = session.run(list(spec.output_names), inputs)
    except Exception as exc:
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(f"exported {spec.name!r} does not run at {dims}: {text}", _PINNED_HINT) from exc
    for name, value in zip(spec.output_names, got):
        if value.shape != expected[name].shape or value.dtype != expected[name].dtype:
            raise ExportError(
                f"exported {spec.name!r}: output {name!r} at {dims} is {value.dtype}{list(value.shape)}, "
                f"eager gives {expected[name].dtype}{list(expected[name].shape)}"
            )


def export_onnx(spec: ZooSpec, out_path: Path, *, opset: int = 18) -> None:
    """Export ``spec``'s module to a single self-contained ONNX file at ``out_path``.

    Uses the spec's exporter (dynamo by default) with its symbolic dims as dynamic axes, then checks the
    file with ``onnx.checker``, that its graph inputs/outputs carry the spec's names and dims, and that
    onnxruntime runs it at other values of the symbolic dims with eager's output shapes and dtypes.
    """
    import onnx

    torch = _import_torch()
    out_path = Path(out_path)
    module = spec.build().eval()
    example = make_inputs(spec, seed=0)
    args = tuple(torch.from_numpy(example[i.name]) for i in spec.inputs)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    stray = out_path.with_name(out_path.name + ".data")
    try:
        with _quiet():
            _run_exporter(spec, module, args, out_path, opset, torch)
    except ModuleNotFoundError as exc:
        if _is_extra(exc):
            raise _missing_extra(exc) from exc
        raise ExportError(f"exporting {spec.name!r} failed: {exc}") from exc
    except ExportError:
        raise
    except Exception as exc:  # the exporter raises many types; report them uniformly
        text = str(exc).strip()
        first = text.splitlines()[0] if text else ""
        raise ExportError(
            f"exporting {spec.name!r} failed: {type(exc).__name__}: {first}",
            "check that the export extra is installed at the pinned versions: " + EXPORT_HINT,
        ) from exc

    if stray.exists():
        raise ExportError(f"exporting {spec.name!r} wrote external data to {stray}; expected a single file")
    try:
        model = onnx.load(str(out_path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise ExportError(f"exported {spec.name!r} does not pass onnx.checker: {exc}") from exc
    ins, outs = _graph_io_names(model)
    want_in = [i.name for i in spec.inputs]
    if ins != want_in or outs != list(spec.output_names):
        raise ExportError(
            f"exported {spec.name!r} has inputs {ins} and outputs {outs}; "
            f"the spec names inputs {want_in} and outputs {list(spec.output_names)}"
        )
    _check_input_dims(spec, model)
    _check_runs_at_other_dims(spec, model, out_path)
