"""One report layer over saved run records: JUnit XML, Markdown and HTML are written from a ``RunRecord`` (and the
files beside it), never by re-running anything. ``harness report RECORD...`` and ``harness run --junit-xml /
--markdown / --html`` both call ``render``; what each format says about one cell is in harness.report.reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Union

from harness.errors import UsageError
from harness.run import record as R

RecordLike = Union[R.RunRecord, tuple[R.RunRecord, Union[Path, None]]]


def loaded(records: Sequence[RecordLike]) -> list[tuple[R.RunRecord, Path | None]]:
    """(record, its folder) pairs: a bare RunRecord's folder is where it was written (None if it was not)."""
    pairs = []
    for item in records:
        record, folder = item if isinstance(item, tuple) else (item, None)
        if folder is None and record.location is not None:
            folder = record.location.parent
        pairs.append((record, folder))
    return pairs


def render(records: Sequence[RecordLike], *, html: Path | None = None, markdown: Path | None = None,
           junit_xml: Path | None = None) -> list[Path]:
    """Write each asked-for format of ``records``; returns the paths written. A path that cannot be written is
    bad input, said in one line naming the flag."""
    pairs = loaded(records)
    written = []
    for flag, path, write in (("--junit-xml", junit_xml, _junit), ("--markdown", markdown, _markdown),
                              ("--html", html, _html)):
        if path is None:
            continue
        try:
            written.append(write(pairs, path))
        except OSError as exc:
            raise UsageError(f"{flag} {path}: cannot write the report: {exc.strerror or exc}",
                             hint="pass a writable path (its folder is created if missing)") from None
    return written


def _junit(pairs: list[tuple[R.RunRecord, Path | None]], path: Path) -> Path:
    from harness.report.junit import write_junit
    return write_junit([record for record, _ in pairs], path)


def _markdown(pairs: list[tuple[R.RunRecord, Path | None]], path: Path) -> Path:
    from harness.report.markdown import write_markdown
    return write_markdown([record for record, _ in pairs], path)


def _html(pairs: list[tuple[R.RunRecord, Path | None]], path: Path) -> Path:
    try:
        from harness.report.html import write_html
    except ImportError as exc:  # matplotlib (the [report] extra) missing
        raise UsageError(f"--html needs {exc.name or 'the report extra'}, which is not installed",
                         hint="pip install 'onnx-conformance-harness[report]'") from None
    return write_html(pairs, path)
