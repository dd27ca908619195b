"""JUnit XML: parsed back with a JUnit parser (junitparser), the counts and each verdict's mapping are pytest's,
messages carry the metrics, and hostile names come back intact (or as visible escapes where XML cannot hold a
character)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.report.junit import junit_xml, outcome, write_junit
from harness.run import record as R

junitparser = pytest.importorskip("junitparser")

EXPECTED = {R.PASS: None, R.PASS_FELL_BACK: None, R.XPASS: None,
            R.XFAIL: ("Skipped", "pytest.xfail"), R.SKIPPED: ("Skipped", "pytest.skip"),
            R.NOT_APPLICABLE: ("Skipped", "pytest.skip"),
            R.FAIL: ("Failure", "FAIL"), R.OVER_BUDGET: ("Failure", "OVER_BUDGET"), R.UNSUPPORTED: ("Failure", "UNSUPPORTED"),
            R.CRASH: ("Error", "CRASH"), R.TIMEOUT: ("Error", "TIMEOUT"), R.OOM: ("Error", "OOM"), R.ERROR: ("Error", "ERROR"),
            R.TRANSFORM_FAILED: ("Error", "TRANSFORM_FAILED"), R.NO_GOLDEN: ("Error", "NO_GOLDEN"), R.LOST: ("Error", "LOST")}


def _parsed(record: R.RunRecord, tmp_path: Path):
    path = write_junit([record], tmp_path / "sub" / "junit.xml")
    return junitparser.JUnitXml.fromfile(str(path))


def test_every_verdict_has_a_mapping() -> None:
    assert set(EXPECTED) == set(R.VERDICTS)


def test_counts_parse_back(verdicts_record, tmp_path: Path) -> None:
    xml = _parsed(verdicts_record, tmp_path)
    [suite] = list(xml)
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (17, 4, 7, 3)
    assert (xml.tests, xml.failures, xml.errors, xml.skipped) == (17, 4, 7, 3)
    cases = list(suite)
    assert len(cases) == 17 and sum(1 for c in cases if c.is_passed) == 3
    assert sum(1 for c in cases if c.is_skipped) == 3
    assert suite.time == pytest.approx(0.5 * 16 + next(c for c in verdicts_record.cells if "<script>" in c.case).duration_s, abs=0.01)


def test_each_verdict_maps_the_way_pytest_maps_it(verdicts_record, tmp_path: Path) -> None:
    cases = {c.classname: c for c in next(iter(_parsed(verdicts_record, tmp_path)))}
    for verdict, expected in EXPECTED.items():
        case = cases[f"case-{verdict}"]
        if expected is None:
            assert case.is_passed and not case.result, verdict
            continue
        [result] = case.result
        assert (type(result).__name__, result.type) == expected, verdict
        assert outcome(verdict) in ("skipped", "failure", "error")


def test_messages_carry_the_metrics(verdicts_record, tmp_path: Path) -> None:
    cases = {c.classname: c for c in next(iter(_parsed(verdicts_record, tmp_path)))}
    [fail] = cases["case-FAIL"].result
    assert fail.message.startswith("FAIL: why FAIL; y [test_data_set_0]: 6/6 mismatched (100%)")
    assert "max abs diff 1 (atol 1e-05)" in fail.message and "cosine 0.9537" in fail.message
    assert "Greatest absolute difference: 1.0 at index (0, 0)" in fail.text  # the full report in the body
    assert "Actual outputs saved under cells/bad__cpu-7d7fb75e6b99/" in fail.text
    [budget] = cases["case-OVER_BUDGET"].result
    assert "p50 0.25 ms, p95 0.5 ms" in budget.message and "peak +12.5 MB" in budget.message
    assert "over budget: p95 0.5 ms > budget 0.1 ms" in budget.message
    [xfail] = cases["case-XFAIL"].result
    assert "known: fp16 accumulation" in xfail.message and "max abs diff 1" in xfail.message
    [skip] = cases["case-SKIPPED"].result
    assert skip.message == "CUDA is not available here; fix: pip install onnxruntime-gpu"
    [crash] = cases["case-CRASH"].result
    assert "Segmentation fault\\x07 in kernel" in crash.text  # BEL cannot be in XML: written as its escape
    root = ET.fromstring(junit_xml([verdicts_record]))
    element = next(e for e in root.iter("testcase") if e.get("classname") == "case-FAIL")
    props = {p.get("name"): p.get("value") for p in element.iter("property")}
    assert props["verdict"] == "FAIL" and props["max_abs_diff"] == "1.0" and props["worst_output"] == "y"
    assert props["ep"] == "CPUExecutionProvider"


def test_hostile_names_survive_as_text(verdicts_record, tmp_path: Path) -> None:
    path = write_junit([verdicts_record], tmp_path / "junit.xml")
    raw = path.read_text(encoding="utf-8")
    assert "<script>" not in raw and "<b>" not in raw and "<img" not in raw  # escaped, never markup
    ET.fromstring(raw.encode("utf-8"))  # well-formed although the name held NUL and ESC
    [case] = [c for c in next(iter(junitparser.JUnitXml.fromfile(str(path)))) if "<script>" in c.classname]
    assert case.classname == "<script>alert(1)</script>|a*b_c\nnext\\x00\\x1b[31m&amp;"
    assert case.name == "p|<b>x</b>"
    [failure] = case.result
    assert "<img src=x onerror=alert(1)>|y" in failure.message


def test_several_records_are_several_suites(verdicts_record) -> None:
    root = ET.fromstring(junit_xml([verdicts_record, verdicts_record]))
    assert root.tag == "testsuites" and len(root) == 2 and root.get("tests") == "34" and root.get("failures") == "8"


def test_an_unknown_verdict_is_an_error_not_a_pass() -> None:
    assert outcome("FUTURE_VERDICT") == "error"
