"""The live progress line: cells done / total, ETA and the running cell on a terminal; nothing on a pipe, a file
or with --quiet."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
import threading
from pathlib import Path

from rich.console import Console

from harness.run import record as R
from harness.run.progress import CellProgress

REPO = Path(__file__).resolve().parents[2]


class _Terminal:
    """A pseudo-terminal: ``slave`` is a real TTY for a Console or a child process; what is written to it
    is collected from the master side by a thread (so a long write never blocks)."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        self.chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:  # EIO: every slave descriptor is closed
                return
            if not data:
                return
            self.chunks.append(data)

    def text(self) -> str:
        os.close(self.slave)
        self._reader.join(timeout=10)
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8", "replace")


def _plain(text: str) -> str:
    """The text without terminal control sequences (colours, cursor moves)."""
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_on_a_terminal_it_shows_cells_done_of_total_eta_and_the_running_cell() -> None:
    term = _Terminal()
    stream = os.fdopen(os.dup(term.slave), "w", encoding="utf-8")
    console = Console(file=stream, width=160)
    with CellProgress(console) as progress:
        assert progress.shown
        progress.new_run("run 1/1", 3)
        progress.started("mlp", "cpu")
        progress.started("<script>\x1b[31m", "cpu-fp16")
        progress._progress.refresh()
        progress.done(R.CellResult("mlp", "cpu", R.PASS))
        progress._progress.refresh()
    stream.close()
    raw = term.text()
    text = _plain(raw)
    assert "0/3 cells" in text and "1/3 cells" in text and "ETA" in text
    assert "<script>\\x1b[31m on cpu-fp16 (+1 more)" in text  # the name's ESC is shown escaped, never sent
    assert "<script>\x1b" not in raw


def test_a_console_that_is_not_a_terminal_gets_nothing() -> None:
    buffer = io.StringIO()
    console = Console(file=buffer, width=160, force_terminal=True)  # colour forced, but the stream is no TTY
    with CellProgress(console) as progress:
        progress.new_run("run 1/1", 1)
        progress.started("mlp", "cpu")
        progress.done(R.CellResult("mlp", "cpu", R.PASS))
    assert not progress.shown and buffer.getvalue() == ""
    with CellProgress(None) as progress:  # the library's default: no console, no progress
        progress.new_run("run 1/1", 1)
        progress.done(R.CellResult("mlp", "cpu", R.PASS))
    assert not progress.shown


def _run(case: Path, out: Path, *extra: str, stdout) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "160", "HARNESS_CACHE_DIR": str(out / "cache")}
    env.pop("NO_COLOR", None)
    return subprocess.run([sys.executable, "-m", "harness", "run", str(case), "--profile", "cpu", "--numerics-only",
                           "--root", str(case.parent), "--out", str(out), *extra], cwd=REPO, env=env,
                          stdout=stdout, stderr=subprocess.PIPE, timeout=120)


def test_harness_run_shows_progress_on_a_tty_and_not_on_a_pipe_or_with_quiet(make_case, tmp_path: Path) -> None:
    case = make_case(tmp_path / "cases" / "tiny")
    term = _Terminal()
    assert _run(case, tmp_path / "a", stdout=term.slave).returncode == 0
    shown = _plain(term.text())
    assert "1/1 cells" in shown and "ETA" in shown
    term = _Terminal()
    assert _run(case, tmp_path / "b", "--quiet", stdout=term.slave).returncode == 0
    quiet = _plain(term.text())
    assert "cells" in quiet and "ETA" not in quiet and "1/1 cells" not in quiet  # the matrix, no progress line
    piped = _run(case, tmp_path / "c", stdout=subprocess.PIPE)
    assert piped.returncode == 0 and b"ETA" not in piped.stdout and b"\x1b[" not in piped.stdout
