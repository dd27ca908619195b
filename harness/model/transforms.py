"""Precision transforms a profile may ask for, cached by (model sha256, transform).

fp16 uses onnxconverter-common (IO types kept, so goldens and inputs stay float32); int8 uses
onnxruntime.quantization: dynamic, or static QDQ calibrated on the case's own inputs.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx

from harness.errors import ProfileError
from harness.golden.layout import atomic_write_bytes


def cache_dir() -> Path:
    root = os.environ.get("HARNESS_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "onnx-harness")
    return Path(root) / "transforms"


def transformed_path(model_path: Path, sha256: str, transform: str, keep_io_types: bool,
                     calibration: list[dict[str, np.ndarray]]) -> Path:
    """Return the model to run: the original, or a cached transformed copy (built on first use)."""
    if transform == "none":
        return model_path
    suffix = "" if keep_io_types else "-io"
    if transform == "int8-static":  # the scales depend on the calibration inputs (seed, dims, data sets)
        suffix += "-" + _calibration_digest(calibration)
    target = cache_dir() / f"{sha256[:32]}-{transform}{suffix}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    builders = {"fp16": _fp16, "int8-dynamic": _int8_dynamic, "int8-static": _int8_static}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        data = builders[transform](model_path, keep_io_types, calibration)
    atomic_write_bytes(target, data)
    return target


def _calibration_digest(calibration: list[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for feed in calibration:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def _fp16(model_path: Path, keep_io_types: bool, _calibration: list) -> bytes:
    try:
        from onnxconverter_common import float16
    except ImportError:
        raise ProfileError("the fp16 transform needs onnxconverter-common",
                           hint="pip install onnxconverter-common") from None
    model = onnx.load(str(model_path))
    converted = float16.convert_float_to_float16(model, keep_io_types=keep_io_types)
    return converted.SerializeToString()


def _int8_dynamic(model_path: Path, _keep: bool, _calibration: list) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_dynamic(str(model_path), str(out), weight_type=QuantType.QInt8)
        return out.read_bytes()


class _Reader:
    """CalibrationDataReader over the case's stored or generated inputs."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)


def _int8_static(model_path: Path, _keep: bool, calibration: list[dict[str, np.ndarray]]) -> bytes:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    if not calibration:
        raise ProfileError(f"{model_path}: int8-static needs inputs to calibrate on, and the case has none")
    reader = type("CaseReader", (_Reader, CalibrationDataReader), {})(calibration)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "q.onnx"
        quantize_static(str(model_path), str(out), reader, quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return out.read_bytes()
