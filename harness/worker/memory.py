"""Per-cell peak resident memory for a worker process.

On Linux the kernel keeps a resident high-water mark (VmHWM in /proc/self/status) that can be
reset to the current RSS by writing "5" to /proc/self/clear_refs, which gives an exact per-cell
peak at no cost. Elsewhere (or where that write is refused) a sampling thread polls RSS via
psutil every 10 ms, which can miss short spikes.

Standard library only; psutil is imported lazily for the fallback.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

__all__ = ["reset_peak", "read_status", "current_rss", "PeakSampler", "CellMemory"]

_CLEAR_REFS = "/proc/self/clear_refs"
_STATUS = "/proc/self/status"


def reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS. True if the kernel accepted it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(_CLEAR_REFS, "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def read_status() -> dict[str, int | None]:
    """{"VmRSS": bytes, "VmHWM": bytes} from /proc/self/status; None where unavailable."""
    out: dict[str, int | None] = {"VmRSS": None, "VmHWM": None}
    try:
        with open(_STATUS) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in out:
                    parts = rest.split()
                    if parts:
                        value = int(parts[0])
                        unit = parts[1].lower() if len(parts) > 1 else "b"
                        out[key] = value * 1024 if unit == "kb" else value
    except (OSError, ValueError):
        pass
    return out


def _psutil_rss():
    try:
        import psutil  # type: ignore[import-not-found]
    except ImportError:
        return None
    proc = psutil.Process()
    return lambda: int(proc.memory_info().rss)


def current_rss() -> int | None:
    """Current resident set size in bytes (procfs, else psutil, else None)."""
    rss = read_status()["VmRSS"]
    if rss is not None:
        return rss
    fn = _psutil_rss()
    return fn() if fn is not None else None


class PeakSampler:
    """Daemon thread sampling RSS (psutil) every ``interval`` seconds; ``stop()`` returns the peak."""

    def __init__(self, interval: float = 0.01):
        self.interval = interval
        self.peak: int | None = None
        self._rss = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def available() -> bool:
        return _psutil_rss() is not None

    def _sample(self) -> None:
        value = self._rss()
        if self.peak is None or value > self.peak:
            self.peak = value

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def start(self) -> "PeakSampler":
        self._rss = _psutil_rss()
        if self._rss is None:
            raise RuntimeError("PeakSampler needs psutil")
        self.peak = None
        self._stop.clear()
        self._sample()
        self._thread = threading.Thread(target=self._run, name="peak-rss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int | None:
        if self._thread is not None:
            self._stop.set()
            self._thread.join()
            self._thread = None
            self._sample()
        return self.peak

    def __enter__(self) -> "PeakSampler":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()


_RESERVED = frozenset({"rss_start", "rss_end", "peak", "method"})


class CellMemory:
    """Memory observation for one cell: ``begin()``, optional ``mark(label)``s, ``end()``.

    ``method``: None picks "vmhwm" when the kernel high-water mark can be reset, else
    "sampler" (psutil), else "none" (peak reported as None).
    """

    def __init__(self, method: str | None = None, interval: float = 0.01):
        if method not in (None, "vmhwm", "sampler"):
            raise ValueError(f"unknown method {method!r}")
        self._want = method
        self._interval = interval
        self.method: str | None = None
        self.rss_start: int | None = None
        self.marks: dict[str, int | None] = {}
        self._sampler: PeakSampler | None = None
        self.result: dict[str, Any] | None = None

    def begin(self) -> "CellMemory":
        self.marks = {}
        self.result = None
        self._sampler = None
        if self._want in (None, "vmhwm") and reset_peak() and read_status()["VmHWM"] is not None:
            self.method = "vmhwm"
        elif self._want == "vmhwm":
            raise RuntimeError("VmHWM reset (/proc/self/clear_refs) is not available")
        elif PeakSampler.available():
            self.method = "sampler"
            self._sampler = PeakSampler(self._interval).start()
        else:
            self.method = "none"
        self.rss_start = current_rss()
        return self

    def mark(self, label: str) -> int | None:
        if label in _RESERVED:
            raise ValueError(f"mark label {label!r} is reserved")
        rss = current_rss()
        self.marks[label] = rss
        return rss

    def end(self) -> dict[str, Any]:
        rss_end = current_rss()
        peak: int | None = None
        if self.method == "vmhwm":
            peak = read_status()["VmHWM"]
        elif self._sampler is not None:
            peak = self._sampler.stop()
            self._sampler = None
        if peak is not None:
            peak = max(v for v in (peak, self.rss_start, rss_end, *self.marks.values()) if v is not None)
        self.result = {
            "rss_start": self.rss_start,
            "rss_end": rss_end,
            "peak": peak,
            "method": self.method,
            **self.marks,
        }
        return self.result

    def __enter__(self) -> "CellMemory":
        return self.begin()

    def __exit__(self, *exc: Any) -> None:
        self.end()
