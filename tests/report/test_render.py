"""`harness run --junit-xml/--markdown/--html` and `harness report RECORD...`: the formats are written from the
record (the same bytes whether right after the run or later from the saved record), nothing is re-run, and a bad
record or an unwritable path is one line and exit 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from harness.report.render import render
from harness.run import record as R

junitparser = pytest.importorskip("junitparser")
RECORDS = Path(__file__).resolve().parents[1] / "data" / "records"


@pytest.fixture(scope="module")
def ran(tmp_path_factory, case_builder, break_golden, cli) -> dict:
    """One run of a passing and a failing case on cpu that writes JUnit and Markdown at its end."""
    root = tmp_path_factory.mktemp("render")
    good, bad = case_builder(root / "cases" / "good"), break_golden(case_builder(root / "cases" / "bad"))
    proc = cli("run", good, bad, "--profile", "cpu", "--numerics-only", "--root", root / "cases", "--out", root / "out",
               "--junit-xml", root / "run.xml", "--markdown", root / "run.md", "--save-outputs", "all")
    [record] = sorted((root / "out").glob("*/record.json"))
    return {"proc": proc, "root": root, "record": record}


def test_run_writes_the_formats_at_its_end(ran) -> None:
    proc, root = ran["proc"], ran["root"]
    assert proc.returncode == 1, proc.stderr  # a failing cell
    assert f"wrote {root / 'run.xml'}" in proc.stdout and f"wrote {root / 'run.md'}" in proc.stdout
    suite = next(iter(junitparser.JUnitXml.fromfile(str(root / "run.xml"))))
    assert (suite.tests, suite.failures, suite.errors, suite.skipped) == (2, 1, 0, 0)
    [failed] = [c for c in suite if not c.is_passed]
    assert (failed.classname, failed.name) == ("bad", "cpu") and "mismatched" in failed.result[0].message
    text = (root / "run.md").read_text(encoding="utf-8")
    assert "❌ 1 of 2 cells failing" in text and "| bad | ❌ FAIL |" in text and "| good | ✅ PASS |" in text


def test_report_renders_the_saved_record_the_same_without_re_running(ran, cli) -> None:
    root, record = ran["root"], ran["record"]
    runs_before = sorted((root / "out").iterdir())
    proc = cli("report", record.parent, "--junit-xml", root / "again.xml", "--markdown", root / "again.md")
    assert proc.returncode == 0, proc.stderr
    assert (root / "again.xml").read_bytes() == (root / "run.xml").read_bytes()
    assert (root / "again.md").read_bytes() == (root / "run.md").read_bytes()
    assert sorted((root / "out").iterdir()) == runs_before


def test_report_without_a_format_prints_the_matrix(ran, cli) -> None:
    proc = cli("report", ran["record"])
    assert proc.returncode == 0 and "Conformance matrix" in proc.stdout and "FAIL" in proc.stdout
    assert f"Run record: {ran['record']}" in proc.stdout


def test_report_upgrades_an_older_record(cli, tmp_path: Path) -> None:
    proc = cli("report", RECORDS / "v1", "--markdown", tmp_path / "v1.md", "--junit-xml", tmp_path / "v1.xml")
    assert proc.returncode == 0, proc.stderr
    assert "| bad | ❌ FAIL |" in (tmp_path / "v1.md").read_text(encoding="utf-8")
    assert next(iter(junitparser.JUnitXml.fromfile(str(tmp_path / "v1.xml")))).failures == 1


def test_report_of_several_records(ran, cli, tmp_path: Path) -> None:
    proc = cli("report", ran["record"], RECORDS / "v1", "--junit-xml", tmp_path / "both.xml")
    assert proc.returncode == 0, proc.stderr
    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "both.xml"))
    assert [s.tests for s in xml] == [2, 2] and xml.failures == 2


@pytest.mark.parametrize("content, message", [
    ('{"schema": "someone-else", "cells": []}', "not a harness run record"),
    ('{"schema": "onnx-harness/run-record", "schema_version": 2, "cel', "not valid JSON"),
    (json.dumps({"schema": R.SCHEMA, "schema_version": R.SCHEMA_VERSION + 1}), "upgrade the harness"),
    ("[1, 2]", "a run record is a JSON object"),
])
def test_a_bad_record_is_one_line_and_exit_2(cli, tmp_path: Path, assert_bad_input, content: str, message: str) -> None:
    (tmp_path / "record.json").write_text(content)
    line = assert_bad_input(cli("report", tmp_path / "record.json", "--junit-xml", tmp_path / "x.xml"))
    assert message in line and not (tmp_path / "x.xml").exists()


def test_an_unwritable_report_path_is_one_line_and_exit_2(cli, tmp_path: Path, assert_bad_input) -> None:
    (tmp_path / "taken").mkdir()
    line = assert_bad_input(cli("report", RECORDS / "v1", "--markdown", tmp_path / "taken"))
    assert line.startswith(f"harness: error: --markdown {tmp_path / 'taken'}: cannot write the report")


def test_render_takes_records_with_or_without_their_folder(ran, tmp_path: Path) -> None:
    record, folder = R.load_record(ran["record"])
    assert record.location == ran["record"]
    written = render([(record, folder)], junit_xml=tmp_path / "a.xml", markdown=tmp_path / "a.md")
    assert written == [tmp_path / "a.xml", tmp_path / "a.md"]
    assert render([record]) == []


@pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="the report extra is not installed")
def test_report_html_writes_one_self_contained_file(ran, cli) -> None:
    out = ran["root"] / "report.html"
    proc = cli("report", ran["record"], "--html", out)
    assert proc.returncode == 0, proc.stderr
    page = out.read_text(encoding="utf-8")
    assert "<html" in page.lower() and "bad" in page and "http://" not in page.replace("http://www.w3.org", "")
