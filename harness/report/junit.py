"""JUnit XML from run records, mapped the way pytest's junitxml maps its outcomes, so CI systems show the matrix
as tests: one <testsuite> per record, one <testcase> per cell (classname: the case, name: the profile).

    PASS, PASS*, XPASS                   passed (pytest: a non-strict XPASS passes); PASS* notes its fallback
    XFAIL                                <skipped type="pytest.xfail"> with the known failure's reason
    SKIPPED, NOT_APPLICABLE              <skipped type="pytest.skip"> with the reason
    FAIL, OVER_BUDGET, UNSUPPORTED       <failure>: the device's answer was judged and found wanting
    CRASH, TIMEOUT, OOM, ERROR,          <error>: the cell could not be judged
    TRANSFORM_FAILED, NO_GOLDEN

Each message carries the cell's metrics (worst output's errors, latency, memory, budget); the element's text holds
the full per-output report, and <properties> the numbers one by one. Written with xml.etree (escaping included);
characters XML 1.0 cannot hold at all (most control characters) are written as their escapes first.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_bytes
from harness.report.reason import failing_outputs, number, output_metrics, reason
from harness.run import record as R

PASSED = frozenset({R.PASS, R.PASS_FELL_BACK, R.XPASS})
SKIPS = {R.XFAIL: "pytest.xfail", R.SKIPPED: "pytest.skip", R.NOT_APPLICABLE: "pytest.skip"}
FAILURES = frozenset({R.FAIL, R.OVER_BUDGET, R.UNSUPPORTED})
ERRORS = frozenset({R.CRASH, R.TIMEOUT, R.OOM, R.ERROR, R.TRANSFORM_FAILED, R.NO_GOLDEN, R.LOST})
_NOT_XML = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(value: Any) -> str:
    """``value`` as text XML 1.0 can hold: a character it forbids (NUL, ESC, a lone surrogate) as its escape."""
    return _NOT_XML.sub(lambda m: repr(m.group())[1:-1], str(value))


def outcome(verdict: str) -> str:
    """'passed', 'skipped', 'failure' or 'error': where a verdict lands in JUnit."""
    if verdict in PASSED:
        return "passed"
    if verdict in SKIPS:
        return "skipped"
    if verdict in FAILURES:
        return "failure"
    return "error"  # ERRORS, and a verdict this harness does not know (a newer record's): never a silent pass


def _properties(parent: ET.Element, values: dict[str, Any]) -> None:
    shown = {k: v for k, v in values.items() if v not in (None, "", [])}
    if shown:
        properties = ET.SubElement(parent, "properties")
        for name, value in shown.items():
            ET.SubElement(properties, "property", name=name, value=xml_text(value))


def _cell_properties(cell: R.CellResult, record: R.RunRecord) -> dict[str, Any]:
    stats = (cell.latency.get("stats") or {}) if isinstance(cell.latency, dict) else {}
    worst = failing_outputs(cell)
    metrics = (worst[0].get("metrics") or {}) if worst else {}
    profile = record.profiles.get(cell.profile) or {}
    return {"verdict": cell.verdict, "ep": profile.get("ep"), "transform": cell.model.get("transform"),
            "p50_ms": stats.get("p50"), "p95_ms": stats.get("p95"), "peak_delta_mb": cell.memory.get("peak_delta_mb"),
            "fraction_on_ep": cell.placement.get("fraction_on_ep"), "worst_output": worst[0].get("name") if worst else None,
            "max_abs_diff": metrics.get("max_abs_diff"), "max_rel_diff": metrics.get("max_rel_diff"),
            "cosine": metrics.get("cosine"), "actual_outputs": cell.artifacts.get("actual_outputs")}


def _body(cell: R.CellResult) -> str:
    """The element's text: the full report of each failed output, the budget, the worker's last stderr lines."""
    parts = [f"[{cell.verdict}] case {cell.case!r} on profile {cell.profile!r}: {cell.detail}"]
    parts += _output_reports(cell)
    parts += [f"Over budget: {line}" for line in cell.budget]
    if isinstance(cell.error, dict) and cell.error.get("stderr_tail"):
        parts.append("Last stderr lines:\n" + str(cell.error["stderr_tail"]))
    if cell.artifacts.get("actual_outputs"):
        parts.append(f"Actual outputs saved under {cell.artifacts['actual_outputs']}/")
    return xml_text("\n".join(parts))


def _output_reports(cell: R.CellResult) -> list[str]:
    """The torch.testing-style report of each failed output; from a record this harness cannot parse back (a
    hand-edited or foreign one), the one-line metrics instead."""
    failed = failing_outputs(cell)
    if not failed:
        return []
    from harness.run.verdict import failure_messages  # the comparator (and onnx): only when a cell failed
    try:
        return failure_messages(cell)
    except (KeyError, TypeError, ValueError, AttributeError):
        return [output_metrics(c) for c in failed]


def testcase(cell: R.CellResult, record: R.RunRecord) -> ET.Element:
    case = ET.Element("testcase", classname=xml_text(cell.case), name=xml_text(cell.profile),
                      time=f"{cell.duration_s:.3f}" if isinstance(cell.duration_s, (int, float)) else "0")
    _properties(case, _cell_properties(cell, record))
    kind = outcome(cell.verdict)
    if kind == "skipped":
        ET.SubElement(case, "skipped", type=SKIPS[cell.verdict], message=xml_text(reason(cell)))
    elif kind in ("failure", "error"):
        element = ET.SubElement(case, kind, type=xml_text(cell.verdict), message=xml_text(f"{cell.verdict}: {reason(cell)}"))
        element.text = _body(cell)
    elif cell.verdict != R.PASS:  # PASS* and XPASS pass, with why they are not a plain PASS
        out = ET.SubElement(case, "system-out")
        out.text = xml_text(f"{cell.verdict}: {reason(cell)}")
    return case


def testsuite(record: R.RunRecord) -> ET.Element:
    cells = record.cells
    counts = {kind: sum(1 for c in cells if outcome(c.verdict) == kind) for kind in ("failure", "error", "skipped")}
    suite = ET.Element("testsuite", name=xml_text(f"onnx-conformance {record.run_id}"), tests=str(len(cells)),
                       failures=str(counts["failure"]), errors=str(counts["error"]), skipped=str(counts["skipped"]),
                       time=f"{sum(c.duration_s for c in cells if isinstance(c.duration_s, (int, float))):.3f}",
                       timestamp=xml_text(record.created), hostname=xml_text(record.machine.get("node", "")))
    _properties(suite, {"run_id": record.run_id, "cpu": record.machine.get("cpu"),
                        **{f"version.{k}": v for k, v in record.versions.items()},
                        "commit": record.commit.get("id"), "save_outputs": record.save_outputs})
    for cell in cells:
        suite.append(testcase(cell, record))
    return suite


def junit_xml(records: Sequence[R.RunRecord]) -> bytes:
    """<testsuites> holding one <testsuite> per record, with the totals on the root as pytest writes them."""
    root = ET.Element("testsuites", name="onnx-conformance")
    for record in records:
        root.append(testsuite(record))
    for total in ("tests", "failures", "errors", "skipped"):
        root.set(total, str(sum(int(suite.get(total, "0")) for suite in root)))
    root.set("time", number(sum(float(suite.get("time", "0")) for suite in root)))
    ET.indent(root)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def write_junit(records: Sequence[R.RunRecord], path: Path) -> Path:
    atomic_write_bytes(path, junit_xml(records))
    return path


__all__ = ["junit_xml", "outcome", "testcase", "testsuite", "write_junit", "xml_text"]
