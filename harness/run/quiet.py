"""A quiet terminal: library chatter during a run goes to the run's log file, not the user's screen.

Python ``logging`` records (onnxruntime.quantization's "Please consider pre-processing..."), ``warnings``
(onnxconverter-common's constant clipping) and onnxruntime's own C++ log in this process all land in
``<run>/run.log``; the terminal shows the matrix and the failures. Worker processes keep their stderr in a
file of their own, shown only for a cell that crashed.
"""

from __future__ import annotations

import logging
import threading
import warnings
from pathlib import Path
from types import TracebackType


class _FileHandler(logging.Handler):
    def __init__(self, log: "RunLog") -> None:
        super().__init__(logging.DEBUG)
        self.log = log
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.log.write("logging", self.format(record))
        except Exception:  # a log line must never cost a cell
            self.handleError(record)


class RunLog:
    """Context manager: while open, Python logging and warnings go to ``path`` (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = False
        self.failed = ""  # why the log could not be written, when it could not
        self._lock = threading.Lock()
        self._handler = _FileHandler(self)
        self._saved: dict = {}

    def write(self, source: str, text: str) -> None:
        text = text.rstrip()
        if not text:
            return
        with self._lock:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                with self.path.open("a", encoding="utf-8", errors="replace") as handle:
                    handle.write(f"[{source}] {text}\n")
            except OSError as exc:  # a full disk costs log lines, never a cell; said once in the record
                self.failed = self.failed or f"could not write the run log {self.path}: {exc.strerror or exc}"
                return
            self.written = True

    def __enter__(self) -> "RunLog":
        root = logging.getLogger()
        self._saved = {"handlers": root.handlers[:], "level": root.level,
                       "showwarning": warnings.showwarning, "filters": warnings.filters[:]}
        root.handlers = [self._handler]  # also keeps logging.warning() from calling basicConfig on stderr
        root.setLevel(logging.WARNING)
        warnings.simplefilter("default")
        warnings.showwarning = self._show_warning
        _quiet_onnxruntime()
        return self

    def _show_warning(self, message, category, filename, lineno, file=None, line=None) -> None:
        self.write("warning", f"{category.__name__}: {message} ({filename}:{lineno})")

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        root = logging.getLogger()
        root.handlers = self._saved["handlers"]
        root.setLevel(self._saved["level"])
        warnings.showwarning = self._saved["showwarning"]
        warnings.filters[:] = self._saved["filters"]


def _quiet_onnxruntime() -> None:
    """onnxruntime's C++ logger in this process (transforms, calibration) prints warnings to stderr."""
    try:
        import onnxruntime
        onnxruntime.set_default_logger_severity(3)
    except (ImportError, AttributeError):
        pass
