"""Tests for per-cell peak memory (harness/worker/memory.py)."""

from __future__ import annotations

import gc
import time

import numpy as np
import pytest

from harness.worker import memory as M

MB = 1024 * 1024


def _clear_refs_writable() -> bool:
    return M.reset_peak() and M.read_status()["VmHWM"] is not None


needs_vmhwm = pytest.mark.skipif(
    not _clear_refs_writable(), reason="/proc/self/clear_refs is not writable (non-Linux or restricted)"
)
needs_psutil = pytest.mark.skipif(not M.PeakSampler.available(), reason="psutil is not installed")


def _alloc(nbytes: int) -> np.ndarray:
    return np.ones(nbytes // 8, dtype=np.float64)  # np.ones writes, so every page is touched


def _cell(nbytes: int, method=None, hold: float = 0.0) -> dict:
    cm = M.CellMemory(method=method)
    cm.begin()
    a = _alloc(nbytes)
    cm.mark("after_alloc")
    if hold:
        time.sleep(hold)
    del a
    gc.collect()
    return cm.end()


def test_read_status_shape():
    st = M.read_status()
    assert set(st) == {"VmRSS", "VmHWM"}
    if st["VmRSS"] is not None:
        assert st["VmRSS"] > MB and st["VmHWM"] >= st["VmRSS"]


def test_current_rss_positive():
    rss = M.current_rss()
    assert rss is None or rss > MB


@needs_vmhwm
def test_reset_peak_lowers_hwm():
    a = _alloc(100 * MB)
    del a
    gc.collect()
    before = M.read_status()["VmHWM"]
    assert M.reset_peak() is True
    after = M.read_status()
    assert after["VmHWM"] < before - 50 * MB
    assert after["VmHWM"] >= after["VmRSS"] - MB


@needs_vmhwm
def test_cell_peaks_with_vmhwm_reset_between_cells():
    first = _cell(200 * MB)
    assert first["method"] == "vmhwm"
    grew = first["peak"] - first["rss_start"]
    assert abs(grew - 200 * MB) < 0.1 * 200 * MB, grew / MB
    assert first["after_alloc"] - first["rss_start"] > 180 * MB
    assert first["rss_end"] - first["rss_start"] < 20 * MB  # freed (large arrays are mmapped)

    second = _cell(50 * MB)
    grew2 = second["peak"] - second["rss_start"]
    assert abs(grew2 - 50 * MB) < 0.1 * 50 * MB, grew2 / MB  # not 200 MB: the reset worked


@needs_psutil
def test_cell_peaks_with_sampler():
    first = _cell(200 * MB, method="sampler", hold=0.1)
    assert first["method"] == "sampler"
    grew = first["peak"] - first["rss_start"]
    assert abs(grew - 200 * MB) < 0.1 * 200 * MB, grew / MB
    second = _cell(50 * MB, method="sampler", hold=0.1)
    grew2 = second["peak"] - second["rss_start"]
    assert abs(grew2 - 50 * MB) < 0.1 * 50 * MB, grew2 / MB


@needs_psutil
def test_peak_sampler_context_manager():
    with M.PeakSampler(interval=0.005) as s:
        base = s.peak
        a = _alloc(100 * MB)
        time.sleep(0.05)
        del a
        gc.collect()
    assert s.peak - base > 90 * MB
    assert s._thread is None  # stopped and joined


def test_cell_memory_context_manager_and_reserved_labels():
    with M.CellMemory() as cm:
        with pytest.raises(ValueError):
            cm.mark("peak")
        cm.mark("after_session")
    r = cm.result
    assert set(r) == {"rss_start", "rss_end", "peak", "method", "after_session"}
    assert r["method"] in ("vmhwm", "sampler", "none")
    if r["peak"] is not None:
        assert r["peak"] >= max(r["rss_start"], r["rss_end"], r["after_session"])


def test_unknown_method_rejected():
    with pytest.raises(ValueError):
        M.CellMemory(method="magic")


def test_reset_peak_false_when_unavailable(monkeypatch):
    monkeypatch.setattr(M, "_CLEAR_REFS", "/nonexistent-dir/clear_refs")
    assert M.reset_peak() is False


@needs_psutil
def test_falls_back_to_sampler_when_reset_unavailable(monkeypatch):
    monkeypatch.setattr(M, "reset_peak", lambda: False)
    cm = M.CellMemory().begin()
    assert cm.method == "sampler"
    r = cm.end()
    assert r["peak"] is not None and r["peak"] >= r["rss_start"]
