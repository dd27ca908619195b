"""int8 quantisation as people deploy it: ORT's pre-processing, then dynamic or static QDQ quantisation.

The dispatcher in ``transforms.py`` calls the three public functions; each quantiser returns the model bytes and a
JSON-able report of what it did (nodes quantised and kept in float, calibration, pre-processing, what the library
said), so a verdict can say which configuration produced the numbers. Library failures, and quantised models that
onnxruntime cannot load, become ``TransformFailed`` with onnxruntime's own words and what to try; an already
quantised model, or one with nothing the quantiser handles, is ``TransformNotApplicable`` with the reason.

Static QDQ follows onnxruntime's CPU recommendation (``get_qdq_config``): activations QUInt8 asymmetric, weights
QInt8 symmetric, per channel, ``ForceQuantizeNoInputCheck``. Which op types to keep in float, and the calibration
method, are profile data (``[precision]`` in device_profiles/cpu-int8*.toml, with the measurements behind them).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnx.external_data_helper
import onnx.version_converter

from harness.model import transform_spec
from harness.model.fp16 import all_nodes, cpu_session, subgraphs

# Ops that only exist in a model that is already quantised (ai.onnx and com.microsoft domains).
_QUANTISED_OPS = frozenset({
    "QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "MatMulInteger", "ConvInteger",
    "DynamicQuantizeMatMul", "MatMulIntegerToFloat", "DynamicQuantizeLSTM", "QAttention", "QGemm",
    "QEmbedLayerNormalization",
    "MatMulNBits", "MatMulBnb4", "GatherBlockQuantized", "QMoE",
})
_INTEGER_WEIGHT_TYPES = frozenset({onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT4,
                                   onnx.TensorProto.UINT4})
_MIN_INTEGER_WEIGHT = 16  # smaller int8 tensors are zero points or lookup constants, not weights
_CALIBRATION = {"minmax": "MinMax", "entropy": "Entropy", "percentile": "Percentile"}
_CALIBRATION_NOTES = {
    "entropy": "onnxruntime's Entropy calibrator as quantize_static builds it has 128 histogram bins and 128 quantised "
               "bins, so its KL search has one candidate, the full range: the scales equal MinMax's (measured "
               "identical on the PP-LCNet orientation classifier and the PP-OCRv4 detector, onnxruntime 1.32)",
    "percentile": "onnxruntime's defaults: 99.999th percentile of |x|, symmetric range, 2048 bins"}
_QDQ_OPSET = 13
# The ops whose weights make quantisation worth doing; without one, the quantised model is the float model.
_WEIGHTED_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU", "Attention",
                           "EmbedLayerNormalization"})


def already_quantised(model: onnx.ModelProto) -> str | None:
    """Why quantising this model again makes no sense, or None. Quantising twice stacks rounding on rounding and
    feeds float scales to ops that expect them untouched, so a quantising profile does not apply."""
    ops = Counter(node.op_type for node in all_nodes(model.graph)
                  if node.op_type in _QUANTISED_OPS or node.op_type.startswith(("QLinear", "QOrdered")))
    integer = [t.name for t in _all_initializers(model.graph)
               if t.data_type in _INTEGER_WEIGHT_TYPES and int(np.prod(t.dims, dtype=np.int64)) >= _MIN_INTEGER_WEIGHT]
    if not ops and not integer:
        return None
    parts = [", ".join(f"{count} {op}" for op, count in sorted(ops.items()))] if ops else []
    if integer:
        parts.append(f"{len(integer)} integer weight tensor(s) (e.g. {integer[0]!r})")
    return "the model is already quantised: " + "; ".join(parts)


def quantize_dynamic_model(model_path: Path, spec: Any, work_dir: Path) -> tuple[bytes, dict]:
    """Weights int8, activations quantised at run time: what onnxruntime recommends for RNNs and transformers.
    Subgraphs (If/Loop bodies, where RNN exports keep their LSTM) are quantised too."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    prepared, before, pre = _prepare(model_path, work_dir)
    op_types = _op_types(IntegerOpsRegistry, spec)
    if "MatMul" in op_types and "Gemm" not in spec.op_block_list:
        op_types.append("Gemm")  # the dynamic quantiser rewrites Gemm as MatMul + Add, then quantises the MatMul
    _require_work(before, op_types, spec, subgraphs=True)
    unfoldable = _convs_with_computed_weights(before)
    out, options = work_dir / "int8-dynamic.onnx", {"EnableSubgraph": True}
    said = _run_quantiser(lambda: quantize_dynamic(
        prepared, out, op_types_to_quantize=[op for op in op_types if op != "Gemm"],
        nodes_to_exclude=[*_excluded_nodes(before, spec.op_block_list), *unfoldable], per_channel=spec.per_channel,
        weight_type=QuantType.QInt8, extra_options=options), model_path, "int8-dynamic")
    data = _loadable(out, model_path, "int8-dynamic")
    report = {"weight_type": "QInt8", "activations": "uint8, quantised at run time", "per_channel": spec.per_channel,
              "per_channel_applies_to": "MatMul/Gemm/Attention; onnxruntime's ConvInteger path quantises Conv "
                                        "weights per tensor", "op_block_list": list(spec.op_block_list),
              "extra_options": options, "pre_processing": pre,
              "kept_float_why": {name: "Conv weight is computed at run time (not a constant even after folding); "
                                 "ConvInteger needs a constant weight" for name in unfoldable},
              **_node_report(before, onnx.load_from_string(data), op_types, spec.op_block_list),
              "library_messages": said}
    return data, report


def quantize_static_model(model_path: Path, spec: Any, calibration: list[dict[str, np.ndarray]], work_dir: Path,
                          calibration_source: str) -> tuple[bytes, dict]:
    """Static QDQ with activation ranges calibrated on the case's own inputs, as an int8 accelerator runs it."""
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.registry import QDQRegistry, QLinearOpsRegistry

    _check_static_request(model_path, spec, calibration)
    prepared, before, pre = _prepare(model_path, work_dir)
    op_types = _op_types({**QLinearOpsRegistry, **QDQRegistry}, spec)
    _require_work(before, op_types, spec, subgraphs=False)
    options = {"ActivationSymmetric": False, "WeightSymmetric": True, "ForceQuantizeNoInputCheck": True}
    out = work_dir / "int8-static.onnx"
    said = _run_quantiser(lambda: quantize_static(
        prepared, out, _FeedReader(calibration), quant_format=QuantFormat.QDQ, op_types_to_quantize=op_types,
        nodes_to_exclude=_excluded_nodes(before, spec.op_block_list), per_channel=spec.per_channel,
        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
        calibrate_method=getattr(CalibrationMethod, _CALIBRATION[spec.calibration]), extra_options=options),
        model_path, "int8-static")
    data = _loadable(out, model_path, "int8-static")
    report = {"format": "QDQ", "activation_type": "QUInt8 (asymmetric)", "weight_type": "QInt8 (symmetric)",
              "per_channel": spec.per_channel, "op_block_list": list(spec.op_block_list), "extra_options": options,
              "calibration": _calibration_report(spec.calibration, calibration, calibration_source),
              "pre_processing": pre, **_node_report(before, onnx.load_from_string(data), op_types, spec.op_block_list),
              "library_messages": said}
    return data, report


def _check_static_request(model_path: Path, spec: Any, calibration: list[dict[str, np.ndarray]]) -> None:
    if spec.calibration not in _CALIBRATION:
        raise transform_spec.TransformFailed(f"{model_path.name}: unknown calibration method {spec.calibration!r}",
                                         hint="use one of " + ", ".join(_CALIBRATION))
    if not calibration:
        raise transform_spec.TransformFailed(f"{model_path.name}: int8-static needs inputs to calibrate on, and none "
                                         "were given", hint="add a test_data_set_N, or pass --calibration-data DIR")


def _prepare(model_path: Path, work_dir: Path) -> tuple[Path, onnx.ModelProto, dict]:
    """The model for the quantiser: its path, the same model loaded (for the node report), and the pre-processing
    report. The model is parsed once here; a quantised model is refused before its external weights are read."""
    model = onnx.load(str(model_path), load_external_data=False)
    reason = already_quantised(model)
    if reason:
        raise transform_spec.TransformNotApplicable(reason)
    onnx.external_data_helper.load_external_data_for_model(model, str(model_path.parent))  # what onnx.load does
    return _pre_process(model_path, model, work_dir)


def _require_work(model: onnx.ModelProto, op_types: list[str], spec: Any, subgraphs: bool) -> None:
    """A model with no weighted op the quantiser handles (a tree ensemble; an RNN whose LSTM sits inside If
    branches, which the static quantiser does not enter) would come back unchanged and PASS, saying nothing."""
    heavy = _WEIGHTED_OPS & set(op_types)
    main = sum(node.op_type in heavy for node in model.graph.node)
    everywhere = sum(node.op_type in heavy for node in all_nodes(model.graph))
    if main or (subgraphs and everywhere):
        return
    reason = f"nothing to quantise: no {'/'.join(sorted(heavy))} node"
    if everywhere:
        reason += (f" in the main graph ({everywhere} inside If/Loop/Scan subgraphs, which onnxruntime's static "
                   "quantiser does not enter; int8-dynamic does)")
    blocked = _WEIGHTED_OPS & set(spec.op_block_list) & {node.op_type for node in all_nodes(model.graph)}
    if blocked:
        reason += f" outside [precision] op_block_list ({', '.join(sorted(blocked))})"
    raise transform_spec.TransformNotApplicable(reason)


def _run_quantiser(quantise: Callable[[], None], model_path: Path, transform: str) -> list[str]:
    """Run an onnxruntime quantiser with its output collected; its exceptions become TransformFailed."""
    with _library_output() as said:
        try:
            quantise()
        except Exception as error:  # noqa: BLE001 - onnxruntime raises bare ValueError/KeyError/RuntimeError
            raise transform_spec.TransformFailed(f"{model_path.name}: {transform}: {_words(error)}",
                                             hint=_hint(error, transform)) from None
    return said


class _FeedReader:
    """The CalibrationDataReader protocol (get_next) over the case's feeds; ORT duck-types it."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _loadable(path: Path, model_path: Path, transform: str) -> bytes:
    """The quantiser can write a model onnxruntime refuses (an op it upgraded wrongly, an attribute the opset lacks);
    that is the transform failing, and it must say so here rather than as an EP error in the cell."""
    data = path.read_bytes()
    try:
        cpu_session(data)
    except Exception as error:  # noqa: BLE001 - ORT raises its own Fail/InvalidGraph types
        raise transform_spec.TransformFailed(
            f"{model_path.name}: {transform} produced a model onnxruntime cannot load: {_words(error)}",
            hint="add the op type named in the message to [precision] op_block_list") from None
    return data


def _pre_process(model_path: Path, model: onnx.ModelProto, work_dir: Path) -> tuple[Path, onnx.ModelProto, dict]:
    """ORT's quant_pre_process: symbolic and ONNX shape inference, then ORT's basic optimisation, which folds
    constants (a weight fed through Identity, a Constant node or a computed initializer becomes an initializer;
    without it the quantiser stops with 'Expected <weight> to be an initializer'). Symbolic shape inference fails on
    some graphs (If/Loop bodies, custom ops); then it is skipped and the rest still runs."""
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, model, opset = _opset_for_qdq(model_path, model, work_dir)
    out = work_dir / "pre-processed.onnx"
    attempts = [("symbolic shape inference, ONNX shape inference, ORT basic optimisation (constant folding)", {}),
                ("ONNX shape inference, ORT basic optimisation (constant folding)", {"skip_symbolic_shape": True}),
                ("ONNX shape inference", {"skip_symbolic_shape": True, "skip_optimization": True})]
    failures = []
    for steps, skips in attempts:
        with _library_output() as said:
            try:  # in work_dir: symbolic shape inference saves sym_shape_infer_temp.onnx to the cwd when it fails
                with _in_directory(work_dir):
                    quant_pre_process(str(source.resolve()), str(out.resolve()), **skips)
            except Exception as error:  # noqa: BLE001 - any library failure means: try with fewer steps
                failures.append(f"{steps}: {_words(error)}")
                continue
        optimiser = [m for m in said if "Optimization Failed" in m]
        if optimiser and "skip_optimization" not in skips:
            failures.append(f"ORT optimisation: {optimiser[0]}")
            steps = steps.replace(", ORT basic optimisation (constant folding)", "")
        return out, _name_nodes(out), {"ran": True, "steps": steps, "opset": opset, "failed": failures}
    return source, model, {"ran": False, "steps": "none: the plain model was quantised", "opset": opset,
                           "failed": failures}


@contextlib.contextmanager
def _in_directory(path: Path) -> Iterator[None]:
    """contextlib.chdir, which Python 3.10 lacks."""
    previous = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def _opset_for_qdq(model_path: Path, model: onnx.ModelProto, work_dir: Path) -> tuple[Path, onnx.ModelProto, str]:
    """Models exported at opset 11-12 (Paddle, older PyTorch) get per-channel DequantizeLinear nodes with an
    ``axis`` attribute that only opset 13 defines, so onnxruntime refuses the quantised model; convert first."""
    version = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), _QDQ_OPSET)
    if version >= _QDQ_OPSET:
        return model_path, model, f"{version} (kept)"
    try:
        converted = onnx.version_converter.convert_version(model, _QDQ_OPSET)
    except Exception as error:  # noqa: BLE001 - the converter raises bare RuntimeError/ValueError per op
        return model_path, model, f"{version} (kept: conversion to {_QDQ_OPSET} failed: {_words(error)})"
    target = work_dir / f"opset{_QDQ_OPSET}.onnx"
    onnx.save(converted, str(target))
    return target, converted, f"{version} -> {_QDQ_OPSET} (per-channel DequantizeLinear needs opset 13)"


def _name_nodes(path: Path) -> onnx.ModelProto:
    """Give unnamed nodes a name, so the report can tell which nodes the quantiser replaced; the named model."""
    model = onnx.load(str(path))
    unnamed = [node for node in model.graph.node if not node.name]
    if unnamed:
        taken = {node.name for node in model.graph.node}
        for index, node in enumerate(unnamed):
            name = f"{node.op_type}_int8_{index}"
            node.name = name if name not in taken else f"{name}_{len(taken)}"
        onnx.save(model, str(path))
    return model


def _op_types(registry: Any, spec: Any) -> list[str]:
    blocked = set(spec.op_block_list)
    return sorted(op for op in registry if op not in blocked)


def _excluded_nodes(model: onnx.ModelProto, blocked: tuple[str, ...] | list[str]) -> list[str]:
    """Names of the blocked op types' nodes. Leaving a type out of op_types_to_quantize is not enough: with
    ForceQuantizeNoInputCheck a QDQ pair still lands on its output, and the dynamic quantiser turns a Gemm into a
    MatMul (named '<gemm>_MatMul') before it looks at op types."""
    names = [node.name for node in model.graph.node if node.op_type in blocked]
    gemms = [f"{node.name}_MatMul" for node in model.graph.node if node.op_type == "Gemm" and "Gemm" in blocked]
    return names + gemms


def _convs_with_computed_weights(model: onnx.ModelProto) -> list[str]:
    """Conv nodes whose weight is still not an initializer after pre-processing (it depends on a graph input).
    The dynamic quantiser would stop on them with 'Expected <weight> to be an initializer'; they stay float."""
    constants = {t.name for t in model.graph.initializer}
    return [node.name for node in model.graph.node
            if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] not in constants]


def _hint(error: Exception, transform: str) -> str:
    text = str(error)
    if "initializer" in text:
        return "pre-processing could not fold this weight to a constant; add the op type to [precision] op_block_list"
    if transform == "int8-static" and ("calibrat" in text.lower() or "range" in text.lower()):
        return "try [precision] calibration = 'percentile' or 'minmax', or add the op type to op_block_list"
    return "add the op type named in the message to [precision] op_block_list, or use the int8-dynamic transform"


def _words(error: Exception) -> str:
    """The library's own words: KeyError and friends stringify as just a name, so say what kind of error it was."""
    text = str(error).strip() or "(no message)"
    return text if isinstance(error, (ValueError, RuntimeError)) else f"{type(error).__name__}: {text}"


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        self.messages[record.getMessage().strip().splitlines()[0][:300]] += 1


@contextlib.contextmanager
def _library_output() -> Iterator[list[str]]:
    """Collect what onnxruntime.quantization logs and prints (calibrators print progress) into the report, instead
    of the terminal. Handlers already on the root logger (the run's log file) still receive the records."""
    collector, said = _Collector(), []
    root = logging.getLogger()
    root.addHandler(collector)
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            yield said
    finally:
        root.removeHandler(collector)
        said.extend(f"{message} (x{count})" if count > 1 else message for message, count in collector.messages.items())
        said.extend(line for line in printed.getvalue().splitlines() if line.strip())


def _calibration_report(method: str, feeds: list[dict[str, np.ndarray]], source: str) -> dict:
    shapes = sorted({f"{name}: {list(array.shape)} {array.dtype}" for feed in feeds for name, array in feed.items()})
    report = {"method": method, "feeds": len(feeds), "source": source, "input_shapes": shapes}
    if method in _CALIBRATION_NOTES:
        report["note"] = _CALIBRATION_NOTES[method]
    return report


def _node_report(before: onnx.ModelProto, after: onnx.ModelProto, op_types: list[str],
                 blocked: tuple[str, ...] | list[str]) -> dict:
    """Which nodes of the (pre-processed) model the quantiser changed, by op type. A node is quantised when it was
    replaced (dynamic: MatMulInteger, ConvInteger...; QDQ: a Relu folded into its producer's range) or sits between
    DequantizeLinear and QuantizeLinear (QDQ); the rest of the op types the quantiser handles (plus the blocked
    ones) stayed in float."""
    produced_by = {out: node.op_type for node in after.graph.node for out in node.output}
    quantise_inputs = {name for node in after.graph.node if node.op_type == "QuantizeLinear" for name in node.input[:1]}
    kept = {node.name: node for node in after.graph.node}
    candidates = set(op_types) | set(blocked)
    quantised, floating = Counter(), Counter()
    for node in before.graph.node:
        if node.op_type not in candidates:
            continue
        same = kept.get(node.name)
        replaced = same is None or same.op_type != node.op_type
        in_qdq = same is not None and any(produced_by.get(name) == "DequantizeLinear" for name in same.input) and any(
            name in quantise_inputs for name in same.output)
        blocked_here = node.op_type in blocked  # excluded by name: a DQ -> op -> Q around it is its neighbours'
        (quantised if (replaced or in_qdq) and not blocked_here else floating)[node.op_type] += 1
    inside = Counter(node.op_type for node in all_nodes(after.graph) if node.op_type in _QUANTISED_OPS) - Counter(
        node.op_type for node in after.graph.node if node.op_type in _QUANTISED_OPS)
    return {"nodes_quantised": dict(sorted(quantised.items())), "nodes_kept_float": dict(sorted(floating.items())),
            "subgraph_quantised_ops": dict(sorted(inside.items()))}


def _all_initializers(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        if node.op_type == "Constant":
            yield from (a.t for a in node.attribute if a.name == "value")
        for sub in subgraphs(node):
            yield from _all_initializers(sub)
