import importlib.util

import pytest

from harness.worker.gpu_memory import GpuMemory


def _gpu_present() -> bool:
    if importlib.util.find_spec("pynvml") is None:
        return False
    try:
        import pynvml
        pynvml.nvmlInit()
        return pynvml.nvmlDeviceGetCount() > 0
    except Exception:
        return False


@pytest.mark.skipif(_gpu_present(), reason="a GPU with NVML is present: the unavailable path cannot be shown here")
def test_without_nvml_or_gpu_the_summary_says_why():
    gpu = GpuMemory()
    gpu.mark("start")
    summary = gpu.summary()
    assert summary["available"] is False
    assert "nvidia-ml-py" in summary["reason"] or "NVML" in summary["reason"]
    assert gpu.used_by_this_process() is None


@pytest.mark.skipif(not _gpu_present(), reason="needs an NVIDIA GPU and nvidia-ml-py (the [gpu] extra)")
def test_with_a_gpu_usage_is_reported_in_bytes():
    gpu = GpuMemory()
    gpu.mark("start")
    gpu.mark("after")
    summary = gpu.summary()
    assert summary["available"] is True
    assert summary["start"] > 0 and summary["peak_delta_mb"] >= 0
