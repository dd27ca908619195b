"""Records for the report formats: one cell of every verdict (comparisons taken from the kept v1 example record,
which a real run wrote), with hostile case and profile names."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from harness.run import record as R

RECORDS = Path(__file__).resolve().parents[1] / "data" / "records"
HOSTILE_CASE = "<script>alert(1)</script>|a*b_c\nnext\x00\x1b[31m&amp;"
HOSTILE_PROFILE = "p|<b>x</b>"


def every_verdict_record() -> R.RunRecord:
    """A record with one cell per verdict, each with what a run gives that verdict (a FAIL's comparisons and
    saved outputs, a CRASH's stderr, an OVER_BUDGET's budget lines, latency and memory)."""
    example, _ = R.load_record(RECORDS / "v1")
    failed = next(c for c in example.cells if c.verdict == R.FAIL)
    stats = {"stats": {"n": 100, "p50": 0.25, "p95": 0.5, "p99": 0.75}}
    cells = []
    for verdict in R.VERDICTS:
        cell = R.CellResult(f"case-{verdict}", "cpu", verdict, detail=f"why {verdict}", duration_s=0.5,
                            model={"transform": "none"}, placement={"fraction_on_ep": 1.0})
        if verdict in (R.FAIL, R.XFAIL):
            cell.outputs = copy.deepcopy(failed.outputs)
            cell.artifacts = {"actual_outputs": failed.artifacts["actual_outputs"]}
        if verdict == R.XFAIL:
            cell.known_failure = "known: fp16 accumulation"
            cell.detail = "expected failure: known: fp16 accumulation (1 output(s) out of tolerance vs golden (y))"
        if verdict == R.OVER_BUDGET:
            cell.latency, cell.memory = stats, {"peak_delta_mb": 12.5}
            cell.budget = ["p95 0.5 ms > budget 0.1 ms"]
        if verdict == R.CRASH:
            cell.error = {"kind": "crash", "signal": "SIGSEGV", "stderr_tail": "Segmentation fault\x07 in kernel"}
        if verdict == R.SKIPPED:
            cell.profile, cell.detail = "gpu", "CUDA is not available here; fix: pip install onnxruntime-gpu"
        cells.append(cell)
    hostile = copy.deepcopy(failed)
    hostile.case, hostile.profile = HOSTILE_CASE, HOSTILE_PROFILE
    hostile.detail = "1 output(s) out of tolerance vs golden (<img src=x onerror=alert(1)>|y)"
    cells.append(hostile)
    return R.RunRecord(run_id="20261201-120000-000000", created="2026-12-01T12:00:00+00:00",
                       machine={"node": "box<1>", "cpu": "AMD EPYC", "cores": 2}, versions=example.versions,
                       commit={"id": "0123456789abcdef", "dirty": True}, argv=["run"],
                       profiles={"cpu": {"ep": "CPUExecutionProvider"}, "gpu": {"ep": "CUDAExecutionProvider"}},
                       cells=cells, finished="2026-12-01T12:00:05+00:00", warnings=["a warning with |pipes|"])


@pytest.fixture
def verdicts_record() -> R.RunRecord:
    return every_verdict_record()
