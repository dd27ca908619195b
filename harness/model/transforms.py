"""Precision transforms a profile may ask for: one entry point, cached by model sha256 + spec.

`transform_model` dispatches to `fp16.py` (fp16, fp16-mixed) and `int8.py` (int8-dynamic, int8-static), runs
them with every library print, log record, warning and C-level write captured (a transform must never
reach the terminal), and caches the transformed model with its report beside it, so a cache hit
answers with the same report. A transform that cannot apply raises `TransformNotApplicable`; one that
applies but does not produce a loadable model raises `TransformFailed`. Both are the cell's verdict,
never an EP error.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.atomic import atomic_write_bytes
from harness.errors import HarnessError
from harness.model.transform_spec import CACHE_VERSION, TransformFailed, TransformNotApplicable, TransformSpec

# Kinds whose result depends on the case's inputs: their cache key carries a digest of them.
_DATA_DEPENDENT = ("int8-static", "fp16-mixed")
_REPORT_SCHEMA = "onnx-harness/transform-report"
# fd 1 and 2 are process-wide: two captures at once would restore each other's redirections.
_CAPTURE_LOCK = threading.RLock()


@dataclass
class Transformed:
    path: Path  # the model to run (the original for kind "none")
    report: dict  # JSON-able: what the transform did
    log: str  # everything the libraries printed or logged while transforming


def cache_root() -> Path:
    """The harness's cache (transforms, the node suite, calibration runs, emulated-device set-ups):
    $HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/onnx-harness, else ~/.cache/onnx-harness."""
    explicit = os.environ.get("HARNESS_CACHE_DIR")
    if explicit:
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")) / "onnx-harness"


def cache_dir() -> Path:
    return cache_root() / "transforms"


def transform_model(model_path: Path, sha256: str, spec: TransformSpec,
                    calibration: list[dict[str, np.ndarray]],
                    calibration_source: str = "case data sets") -> Transformed:
    """Return the model to run under `spec`, building and caching it on first use."""
    if spec.kind == "none":
        return Transformed(model_path, {"kind": "none"}, "")
    target = _cache_path(sha256, spec, calibration)
    sidecar = target.with_suffix(".json")
    cached = _read_cached(target, sidecar)
    if cached is not None:  # same model, spec and inputs; the inputs may have come from elsewhere this time
        _describe_inputs(cached.report, spec.kind, calibration, calibration_source)
        return cached
    log = io.StringIO()
    try:
        with tempfile.TemporaryDirectory(prefix="harness-transform-") as work, captured(log):
            data, report = _build(Path(model_path), spec, calibration, calibration_source, Path(work))
    except (TransformNotApplicable, TransformFailed) as exc:
        exc.log = log.getvalue()
        raise
    report = _describe_inputs({"kind": spec.kind, **report}, spec.kind, calibration, calibration_source)
    envelope = {"schema": _REPORT_SCHEMA, "version": CACHE_VERSION, "report": report, "log": log.getvalue()}
    text = json.dumps(envelope, indent=1, sort_keys=True, default=str)
    atomic_write_bytes(target, data)
    atomic_write_bytes(sidecar, text.encode())
    return Transformed(target, json.loads(text)["report"], log.getvalue())  # as a cache hit will read it


def _cache_path(sha256: str, spec: TransformSpec, calibration: list[dict[str, np.ndarray]]) -> Path:
    name = f"{sha256[:32]}-{spec.kind}-{spec.cache_tag()}"
    if spec.kind in _DATA_DEPENDENT:  # scales / kept-fp32 nodes depend on the inputs (seed, dims, data sets)
        name += "-" + _calibration_digest(calibration)
    return cache_dir() / f"{name}.onnx"


def _describe_inputs(report: dict, kind: str, calibration: list[dict[str, np.ndarray]], source: str) -> dict:
    """Say which inputs a data-dependent transform used. The source is the caller's label, not part of the build
    (the same inputs from another folder hit the same cache entry), so a build and a cache hit both write it here,
    at the top and in int8-static's calibration report."""
    if kind in _DATA_DEPENDENT:
        report["calibration_source"] = source
        report["calibration_feeds"] = len(calibration)
        if isinstance(report.get("calibration"), dict):
            report["calibration"]["source"] = source
    return report


def _read_cached(target: Path, sidecar: Path) -> Transformed | None:
    """A cached model with a readable report beside it, or None (then it is rebuilt)."""
    if not (target.is_file() and sidecar.is_file()):
        return None
    try:
        envelope = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(envelope, dict) or envelope.get("version") != CACHE_VERSION:
        return None
    return Transformed(target, envelope["report"], envelope.get("log", ""))


def _build(model_path: Path, spec: TransformSpec, calibration: list[dict[str, np.ndarray]], calibration_source: str,
           work_dir: Path) -> tuple[bytes, dict]:
    """Run the transform; a library's unexpected exception is the transform failing, not a harness crash."""
    try:
        if spec.kind == "fp16":
            from harness.model.fp16 import convert_fp16
            return convert_fp16(model_path, spec, calibration)
        if spec.kind == "fp16-mixed":
            from harness.model.fp16 import convert_fp16_mixed
            return convert_fp16_mixed(model_path, spec, calibration)
        from harness.model import (
            int8,  # lazy: onnxruntime.quantization is slow to import
        )
        if spec.kind == "int8-dynamic":
            return int8.quantize_dynamic_model(model_path, spec, work_dir)
        return int8.quantize_static_model(model_path, spec, calibration, work_dir, calibration_source)
    except (TransformNotApplicable, TransformFailed, HarnessError):
        raise
    except Exception as exc:
        raise TransformFailed(f"{spec.kind} transform of {model_path.name} raised {type(exc).__name__}: "
                              f"{_first_line(exc)}",
                              hint="run with another transform, or report the model to the harness") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else repr(exc))[:500]


def _calibration_digest(calibration: list[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for feed in calibration:
        for name in sorted(feed):
            array = np.ascontiguousarray(feed[name])
            digest.update(f"{name}|{array.dtype}|{array.shape}|".encode())
            digest.update(array.tobytes())
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def captured(log: io.StringIO) -> Iterator[None]:
    """Send everything a transform emits into `log`: Python prints, logging, warnings, and C-level fd 1/2.

    Why fds: onnxruntime's C++ logger and protobuf write straight to file descriptors, past sys.stdout.
    """
    handler = logging.StreamHandler(log)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    with _CAPTURE_LOCK, tempfile.TemporaryFile(mode="w+b") as sink, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        saved = [os.dup(1), os.dup(2)]
        root.addHandler(handler)
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
                yield
        finally:
            root.removeHandler(handler)
            for stream in (sys.__stdout__, sys.__stderr__):
                if stream is not None:
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            log.write(sink.read().decode("utf-8", "replace"))
            log.writelines(f"{w.filename}:{w.lineno}: {w.category.__name__}: {w.message}\n" for w in caught)
