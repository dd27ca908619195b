"""The availability probe: a one-node model run on the profile's EP and device, so "available" means a session
was really created and run here, not only that the EP offers a device (WebGPU offers one even where no Vulkan
driver exists, and then fails on the first session).

The model is kept as serialised bytes, because the worker may not import the ``onnx`` package;
tests/worker/test_probe.py rebuilds it with onnx.helper and checks the bytes are the same.
"""

from __future__ import annotations

import numpy as np

# Relu(x: float32[1, 4]) -> y, opset 13, IR version 8 (old enough for any onnxruntime a worker may carry).
PROBE_MODEL = (b'\x08\x08\x12\rharness-probe:?\n\x0c\n\x01x\x12\x01y"\x04Relu\x12\x05probeZ\x13\n\x01x\x12\x0e\n'
               b'\x0c\x08\x01\x12\x08\n\x02\x08\x01\n\x02\x08\x04b\x13\n\x01y\x12\x0e\n\x0c\x08\x01\x12\x08\n\x02'
               b'\x08\x01\n\x02\x08\x04B\x04\n\x00\x10\r')
PROBE_FEED = {"x": np.array([[-1.0, 0.0, 0.5, 2.0]], dtype=np.float32)}

NO_WEBGPU_ADAPTER = "no WebGPU adapter (no Vulkan driver)"
WEBGPU_FIX = "install a Vulkan driver (Debian: apt-get install -t bookworm-backports mesa-vulkan-drivers)"
_ADAPTER_WORDS = ("Failed to get a WebGPU adapter", "No supported adapters")


class Unavailable(Exception):
    """The profile cannot run on this host: missing package, EP or device. Becomes SKIPPED.
    ``kind``: "not_installed" (a plugin package would fix it), "not_in_build" (another onnxruntime build would,
    e.g. onnxruntime-gpu), or "no_device" (this host lacks the device). It lives here, beside the probe, so that
    session.py and the reference evaluator it dispatches to (harness.worker.reference) both raise it without
    importing each other; session.py re-exports it."""

    def __init__(self, message: str, kind: str = "no_device") -> None:
        super().__init__(message)
        self.kind = kind


def explain_failure(ep: str, ort_line: str, full: str) -> tuple[str, str]:
    """(reason, kind) for a probe session that failed: a missing WebGPU adapter is named in words with its
    fix (ORT only says ``EP_FAIL`` at a C++ path); anything else keeps ORT's own line."""
    if ep == "WebGpuExecutionProvider" and any(words in full for words in _ADAPTER_WORDS):
        return f"{NO_WEBGPU_ADAPTER}: ORT says {ort_line!r}; fix: {WEBGPU_FIX}", "no_device"
    return f"a one-node {ep} session could not be created and run on this host: {ort_line}", "probe_failed"
