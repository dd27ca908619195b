"""GPU memory per cell through NVML (the ``[gpu]`` extra, nvidia-ml-py), for CUDA/TensorRT profiles.

onnxruntime has no API for device memory (microsoft/onnxruntime#24993), so people parse nvidia-smi; NVML
gives this process's usage directly. Where NVML or a GPU is missing, the reason is reported instead.
"""

from __future__ import annotations

import os
from typing import Any


class GpuMemory:
    def __init__(self, device_id: int = 0) -> None:
        self.device_id = device_id
        self.reason = ""
        self._nvml: Any = None
        self._handle: Any = None
        try:
            import pynvml
            pynvml.nvmlInit()
            self._handle = pynvml.nvmlDeviceGetHandleByIndex(device_id)
            self._nvml = pynvml
        except ImportError:
            self.reason = "nvidia-ml-py is not installed (pip install -e \".[gpu]\")"
        except Exception as exc:  # NVMLError_* when there is no driver or device
            self.reason = f"NVML unavailable: {exc}"
        self.samples: dict[str, int] = {}

    @property
    def available(self) -> bool:
        return self._nvml is not None

    def used_by_this_process(self) -> int | None:
        if not self.available:
            return None
        nvml = self._nvml
        try:
            processes = nvml.nvmlDeviceGetComputeRunningProcesses(self._handle)
        except Exception:
            processes = []
        mine = [p.usedGpuMemory for p in processes if p.pid == os.getpid() and p.usedGpuMemory is not None]
        if mine:
            return int(sum(mine))
        # Inside containers the PID namespace often hides our pid from NVML: fall back to device-wide usage.
        return int(nvml.nvmlDeviceGetMemoryInfo(self._handle).used)

    def mark(self, label: str) -> None:
        value = self.used_by_this_process()
        if value is not None:
            self.samples[label] = value

    def summary(self) -> dict[str, Any]:
        if not self.available:
            return {"available": False, "reason": self.reason}
        start = self.samples.get("start", 0)
        peak = max(self.samples.values()) if self.samples else 0
        return {"available": True, "device_id": self.device_id, **self.samples,
                "peak_delta_mb": round((peak - start) / (1 << 20), 2)}
