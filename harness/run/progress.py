"""The live progress line of a long run: cells done / total, elapsed time, ETA, and the cell now running.

Shown only on a real terminal: a console whose stream is not a TTY (a pipe, a CI log, a file) gets nothing, so a
log never fills with redrawn frames; ``harness run --quiet`` passes no console at all. The line is transient: it
is gone when the run ends, and the matrix is printed in its place.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, \
    TimeRemainingColumn

from harness.run import record as R


def on_a_terminal(console: Any) -> bool:
    """Does ``console`` write to an interactive terminal (its stream a TTY, and not TERM=dumb)?"""
    if console is None or console.is_dumb_terminal:
        return False
    isatty = getattr(console.file, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


class CellProgress:
    """Context manager. ``started(case, profile)`` and ``done(result)`` are safe from the executor's threads;
    both do nothing when the console is not a terminal."""

    def __init__(self, console: Any) -> None:
        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("cells"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                  TextColumn("{task.fields[now]}", markup=False),
                                  console=console, transient=True) if on_a_terminal(console) else None
        self._task: TaskID | None = None
        self._running: dict[tuple[str, str], None] = {}  # (case, profile) now running, in the order they started
        self._lock = threading.Lock()

    @property
    def shown(self) -> bool:
        return self._progress is not None

    def __enter__(self) -> "CellProgress":
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._progress is not None:
            self._progress.stop()

    def new_run(self, description: str, total: int) -> None:
        """A pass over ``total`` cells (``--repeat`` makes several); the bar starts again at 0."""
        if self._progress is None:
            return
        with self._lock:
            if self._task is not None:
                self._progress.remove_task(self._task)
            self._running.clear()
            self._task = self._progress.add_task(description, total=total, now="")

    def started(self, case: str, profile: str) -> None:
        self._update((case, profile), running=True)

    def done(self, result: R.CellResult) -> None:
        self._update((result.case, result.profile), running=False)

    def _update(self, key: tuple[str, str], running: bool) -> None:
        if self._progress is None or self._task is None:
            return
        with self._lock:
            if running:
                self._running[key] = None
            else:
                self._running.pop(key, None)
            self._progress.update(self._task, advance=0 if running else 1, now=self._now())

    def _now(self) -> str:
        """The latest cell started, as 'case on profile', and how many others run beside it."""
        if not self._running:
            return ""
        case, profile = next(reversed(self._running))
        more = f" (+{len(self._running) - 1} more)" if len(self._running) > 1 else ""
        return f"{_shown(case)} on {_shown(profile)}{more}"


def _shown(name: str, limit: int = 60) -> str:
    """A name as one short line: what a terminal would act on (ESC, a newline) written as its escape."""
    text = "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)
    return text if len(text) <= limit else text[:limit - 3] + "..."
