"""The HTML report of a real run with failing cells: its content, its escaping, and (with Chromium) its rendering."""

from __future__ import annotations

import base64
import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.report import html as H
from harness.report import plots
from harness.run import record as R

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "mlp<img src=x onerror=alert(1)>"
TIGHT = """name = "cpu-fp16-tight"
extends = "cpu-fp16"
[tolerance.dtype.float32]
rtol = 1e-6
atol = 1e-7
[budgets]
p95_ms = 0.05
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[R.RunRecord, Path]:
    """mlp and a hostile-named copy on cpu (PASS) and cpu-fp16-tight (FAIL, outputs saved)."""
    from harness.api import MatrixOptions, run_matrix
    work = tmp_path_factory.mktemp("html")
    (work / "profiles").mkdir()
    (work / "profiles" / "cpu-fp16-tight.toml").write_text(TIGHT, encoding="utf-8")
    for name in ("mlp", HOSTILE):
        shutil.copytree(REPO / "reference_outputs" / "mlp", work / "cases" / name)
    record = run_matrix([], ["cpu", "cpu-fp16-tight"], MatrixOptions(out=work / "out", root=work / "cases",
                                                                    profile_dirs=[work / "profiles"], time_cap_s=0.2))
    return record, record.location.parent


@pytest.fixture(scope="module")
def page(run) -> str:
    return H.render_html([run])


def images(text: str) -> list[str]:
    return [base64.b64decode(m).decode("utf-8") for m in re.findall(r'src="data:image/svg\+xml;base64,([^"]+)"', text)]


def test_the_run_has_failing_cells_with_saved_outputs(run):
    record, folder = run
    verdicts = {(c.case, c.profile): c.verdict for c in record.cells}
    assert verdicts == {("mlp", "cpu"): "PASS", (HOSTILE, "cpu"): "PASS", ("mlp", "cpu-fp16-tight"): "FAIL",
                        (HOSTILE, "cpu-fp16-tight"): "FAIL"}
    failing = next(c for c in record.cells if c.case == "mlp" and c.profile == "cpu-fp16-tight")
    assert R.read_saved_outputs(folder, failing)


def test_self_contained_no_script_no_network(page):
    assert page.startswith("<!DOCTYPE html>")
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert "<script" not in page.lower()
    assert not re.search(r"""(src|href)=["']?(https?:|//)""", page)  # nothing loaded from anywhere


def test_every_section_is_there(page):
    for section in ("Matrix", "Failing cells", "Latency", "Memory", "Placement"):
        assert f"<h2>{section}</h2>" in page


def test_matrix_cells_are_coloured_by_verdict(page):
    fail = plots.VERDICT_COLOURS["FAIL"]
    cells = re.findall(r'<td class="v" style="background:(#[0-9a-f]{6});[^"]*"[^>]*>([A-Z*_]+) ', page)
    assert sorted(cells) == sorted([(plots.VERDICT_COLOURS["PASS"], "PASS")] * 2 + [(fail, "FAIL")] * 2)


def test_failing_cell_lists_the_worst_elements_from_the_saved_outputs(run, page):
    record, _ = run
    cell = next(c for c in record.cells if c.case == "mlp" and c.profile == "cpu-fp16-tight")
    metrics = cell.outputs[0]["comparison"]["metrics"]
    index = ", ".join(str(i) for i in metrics["max_abs_index"])
    block = page[page.index("<h3>mlp / "):]
    worst_row = re.search(r"<th>rel error</th></tr><tr><td>\(([^)]*)\)</td><td[^>]*>([^<]+)</td><td[^>]*>([^<]+)"
                          r"</td><td[^>]*>([^<]+)</td>", block)
    assert worst_row is not None
    assert worst_row.group(1) == index  # the worst element is where the comparator found the max abs diff
    assert float(worst_row.group(4)) == pytest.approx(metrics["max_abs_diff"], rel=1e-3)
    expected, actual = float(worst_row.group(2)), float(worst_row.group(3))
    assert abs(actual - expected) == pytest.approx(metrics["max_abs_diff"], abs=2e-7)  # values shown to 7 digits


def test_failing_output_has_an_error_histogram_with_the_tolerance(page):
    svgs = images(page)
    histograms = [s for s in svgs if "fraction of elements &lt;= error" in s]
    assert len(histograms) >= 2  # one per failing output per data set
    assert all("atol 1e-07" in s and "rtol 1e-06" in s for s in histograms)


def test_latency_plot_per_profile_with_the_budget_line(page):
    assert "budgets: p95_ms 0.05" in page
    latency = [s for s in images(page) if "latency (ms)" in s]
    assert len(latency) == 2
    assert sum("budget p95 0.05 ms" in s for s in latency) == 1  # only cpu-fp16-tight has a budget


def test_memory_and_placement_tables(run, page):
    record, _ = run
    nodes = sum(c.placement["per_ep"]["CPUExecutionProvider"] for c in record.cells if c.profile == "cpu")
    assert re.search(rf"<tr><td>cpu</td><td class=num>{nodes}</td>", page)
    assert "peak MB over the session" in page
    assert any("Nodes per execution provider" in s for s in images(page))


def test_hostile_names_are_escaped_everywhere(page):
    assert "<img src=x" not in page and "onerror=alert(1)>" not in page
    assert "mlp&lt;img src=x onerror=alert(1)&gt;" in page
    for svg in images(page):
        assert "<img" not in svg and "<script" not in svg


def test_hostile_node_name_and_detail_in_a_record_are_escaped(run):
    record, folder = run
    hostile = copy.deepcopy(record)
    cell = next(c for c in hostile.cells if c.profile == "cpu-fp16-tight")
    cell.placement["fell_back"] = ["<script>alert('node')</script>"]
    cell.detail = '"><script>alert(2)</script>'
    cell.error = {"message": "</pre><script>alert(3)</script>"}
    text = H.render_html([(hostile, folder)])
    assert "<script" not in text
    assert "&lt;script&gt;alert(&#x27;node&#x27;)&lt;/script&gt;" in text
    assert 'title="&quot;&gt;&lt;script&gt;alert(2)' in text


def test_without_saved_outputs_the_numbers_come_from_the_record(run):
    record, folder = run
    bare = copy.deepcopy(record)
    for cell in bare.cells:
        cell.artifacts.pop("actual_outputs", None)
    text = H.render_html([(bare, folder)])
    assert "Actual outputs were not saved for this cell" in text
    assert "max abs diff" in text and "<th>rel error</th>" not in text
    assert not any("fraction of elements" in s for s in images(text))


def test_without_matplotlib_the_report_renders_and_says_which_extra(run, monkeypatch):
    monkeypatch.setattr(plots, "available", lambda: False)
    text = H.render_html([run])
    assert plots.EXTRA_HINT.replace("'", "&#x27;") in text
    assert "data:image/svg" not in text
    assert "<h2>Failing cells</h2>" in text and "<th>rel error</th>" in text  # tables stay


def test_write_html_accepts_a_record_with_its_location(run, tmp_path):
    record, _ = run
    path = H.write_html([record], tmp_path / "r.html")  # record.location set by run_matrix
    assert "budget p95 0.05 ms" in "".join(images(path.read_text(encoding="utf-8")))


def test_report_of_two_records_labels_columns_by_host(run, tmp_path):
    record, folder = run
    text = H.render_html([(record, folder), (record, folder)])
    host = record.machine["node"]
    assert f"{host}/cpu@{record.run_id}" in text and "Conformance report: 2 runs" in text


@pytest.mark.skipif(not (shutil.which("chromium") or shutil.which("chromium-browser")),
                    reason="Chromium is not installed (Debian: apt-get install -y chromium)")
def test_report_renders_in_headless_chromium_without_console_errors(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "bench" / "html_report.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "html_report: all checks hold" in done.stdout
    assert (tmp_path / "report.png").stat().st_size > 10_000
