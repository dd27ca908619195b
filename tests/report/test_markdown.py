"""Markdown for a job summary: the counts, the matrix, the failing cells with reasons and metrics; hostile names
stay text (rendered with markdown-it, GitHub's table rules), and a large run stays small."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from harness.report.markdown import COMPACT_CASES, MAX_FAILING, markdown, md, write_markdown
from harness.run import record as R

markdown_it = pytest.importorskip("markdown_it")  # installed with rich


def _html(text: str) -> str:
    return markdown_it.MarkdownIt("commonmark").enable("table").render(text)


def _tables(rendered: str) -> list[list[list[str]]]:
    """Each <table> as rows of cell texts (header row first)."""
    import xml.etree.ElementTree as ET
    tables = []
    for chunk in rendered.split("<table>")[1:]:
        body = ET.fromstring("<table>" + chunk.split("</table>")[0] + "</table>")
        tables.append([["".join(cell.itertext()) for cell in row] for row in body.iter("tr")])
    return tables


def test_summary_counts_and_headline(verdicts_record) -> None:
    text = markdown([verdicts_record])
    assert text.startswith("## ONNX conformance: ❌ 11 of 17 cells failing\n")
    assert "**Verdicts:** 2 FAIL, 1 PASS, 1 PASS\\*," in text
    assert "on box&lt;1&gt; (AMD EPYC, 2 cores)" in text and "commit 0123456789ab (dirty)" in text


def test_the_matrix_and_the_failing_cells_render_as_tables(verdicts_record) -> None:
    matrix, failing = _tables(_html(markdown([verdicts_record])))
    assert matrix[0] == ["case \\ profile", "cpu", "gpu", "p|<b>x</b>"]
    rows = {row[0]: row[1:] for row in matrix[1:]}
    assert rows["case-FAIL"] == ["❌ FAIL", "–", "–"] and rows["case-PASS*"][0] == "✅ PASS*"
    assert rows["case-SKIPPED"] == ["–", "⏭️ SKIPPED", "–"]
    assert failing[0] == ["case", "profile", "verdict", "reason"] and len(failing) == 1 + 11
    reasons = {row[0]: row[3] for row in failing[1:]}
    assert reasons["case-FAIL"].startswith("why FAIL; y [test_data_set_0]: 6/6 mismatched (100%), max abs diff 1")
    assert "over budget: p95 0.5 ms > budget 0.1 ms" in reasons["case-OVER_BUDGET"]
    assert "case-XFAIL" not in reasons and "case-PASS" not in reasons


def test_hostile_names_stay_text(verdicts_record) -> None:
    text = markdown([verdicts_record])
    assert "<script>" not in text and "<b>" not in text and "<img" not in text
    assert "\x00" not in text and "\x1b" not in text and "\x07" not in text
    rendered = _html(text)
    assert "<script>" not in rendered and "<img" not in rendered and "<b>" not in rendered
    matrix, failing = _tables(rendered)
    hostile = "<script>alert(1)</script>|a*b_c next\\x00\\x1b[31m&amp;"
    assert [row[0] for row in matrix[1:]][-1] == hostile  # one cell, every character as written
    row = next(r for r in failing[1:] if r[0] == hostile)
    assert row[1] == "p|<b>x</b>" and "(<img src=x onerror=alert(1)>|y)" in row[3]
    assert all(len(r) == 4 for r in failing) and all(len(r) == 4 for r in matrix)


@pytest.mark.parametrize("name, shown", [("a|b", "a\\|b"), ("<i>", "&lt;i&gt;"), ("x\ny", "x y"), ("*b*", "\\*b\\*"),
                                         ("[l](http://x)", "\\[l\\](http://x)"), ("a&b", "a&amp;b"), ("\x1b", "\\\\x1b")])
def test_escaping(name: str, shown: str) -> None:
    assert md(name) == shown


def _many(cases: int, failing: int) -> R.RunRecord:
    cells = [R.CellResult(f"test_case_{i}", profile, R.FAIL if i < failing else R.PASS, detail="out of tolerance")
             for i in range(cases) for profile in ("cpu", "cpu-fp16")]
    return R.RunRecord("r", "now", {}, {}, {}, [], profiles={"cpu": {}, "cpu-fp16": {}}, cells=cells)


def test_a_large_run_shows_counts_per_profile_and_the_first_failing_cells(tmp_path: Path) -> None:
    record = _many(1884, MAX_FAILING)
    path = write_markdown([record], tmp_path / "summary.md")
    text = path.read_text(encoding="utf-8")
    assert len(text.encode("utf-8")) < 100_000  # a job summary takes 1 MiB
    counts, failing = _tables(_html(text))
    assert counts == [["profile", "cells", "✅ PASS", "❌ FAIL"], ["cpu", "1884", "1784", "100"],
                      ["cpu-fp16", "1884", "1784", "100"]]
    assert len(failing) == 1 + MAX_FAILING
    assert f"### Failing cells ({2 * MAX_FAILING})" in text
    assert f"… and {MAX_FAILING} more failing cell(s): see the run record." in text


def test_a_small_run_shows_the_matrix_and_a_passing_headline() -> None:
    record = _many(COMPACT_CASES, 0)
    text = markdown([record])
    assert text.startswith(f"## ONNX conformance: ✅ all {2 * COMPACT_CASES} cells passing")
    [matrix] = _tables(_html(text))
    assert len(matrix) == 1 + COMPACT_CASES and "Failing cells" not in text
    assert html.escape("<") not in text
