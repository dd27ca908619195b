"""The report's plots: each is a standalone SVG that parses, says what it shows, and escapes hostile text."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest

from harness.report import plots

pytest.importorskip("matplotlib", reason="the plots need the [report] extra (matplotlib)")

HOSTILE = "<script>alert(1)</script>"
SVG_NS = "{http://www.w3.org/2000/svg}"


def texts(svg: str) -> list[str]:
    """Every <text> element's content, as a browser would show it (the XML parser undoes the escaping)."""
    root = ET.fromstring(svg.encode("utf-8"))
    return ["".join(node.itertext()) for node in root.iter(f"{SVG_NS}text")]


def test_available_says_matplotlib_is_importable():
    assert plots.available() is True


def test_short_keeps_both_ends_and_escapes_control_characters():
    assert plots.short("a" * 10) == "a" * 10
    cut = plots.short("start_" + "x" * 100 + "_end", limit=20)
    assert len(cut) == 19 and cut.startswith("start_") and cut.endswith("_end") and "…" in cut
    assert plots.short("bell\x07") == "bell\\x07"


def test_heatmap_labels_cases_profiles_and_verdicts_present():
    svg = plots.verdict_heatmap(["mlp", HOSTILE], ["cpu", "cpu-fp16"],
                                {("mlp", "cpu"): "PASS", (HOSTILE, "cpu-fp16"): "FAIL"})
    shown = texts(svg)
    assert {"mlp", HOSTILE, "cpu", "cpu-fp16", "PASS", "FAIL"} <= set(shown)
    assert "Verdicts: 2 case(s) x 2 profile(s)" in shown
    assert "<script>" not in svg and "&lt;script&gt;" in svg  # escaped in the document, shown as text
    # the verdict colours are drawn (the legend patches use them)
    assert plots.VERDICT_COLOURS["FAIL"] in svg and plots.VERDICT_COLOURS["PASS"] in svg


def test_a_dollar_sign_is_text_not_mathtext():
    """matplotlib would parse '$x$' as a formula (and fail on '$x'); the report turns mathtext off."""
    svg = plots.grouped_bars("peak $x", "MB", {"case$1$": {"cpu": 1.0}})
    assert "case$1$" in texts(svg) and "peak $x" in texts(svg)


def test_error_distribution_draws_both_panels_and_the_tolerance_lines():
    err = np.concatenate([np.zeros(5), np.geomspace(1e-7, 1e-3, 200), [np.inf]])
    svg = plots.error_distribution(f"mlp / {HOSTILE} / output", err, 1e-5, err / 2, 1e-4)
    shown = texts(svg)
    assert "atol 1e-05" in shown and "rtol 0.0001" in shown
    assert "|actual - expected| (5 exact, 1 NaN/Inf element(s) not shown)" in shown
    assert "fraction of elements <= error" in shown
    assert f"mlp / {HOSTILE} / output" in shown and "<script>" not in svg
    ticks = {t.replace("\u2212", "-") for t in shown}  # matplotlib writes a typographic minus
    assert {"1e-07", "1e-05", "1e-03"} <= ticks  # log ticks as numbers, not $\mathdefault{..}$
    assert not any("mathdefault" in t for t in shown)
    assert not any(t.startswith("1e-2") or t.startswith("1e-1") and len(t) > 5 for t in ticks)  # no axis to 1e-300


def test_latency_boxes_draw_a_box_per_case_and_the_budget_line():
    samples = {"mlp": np.linspace(1.0, 2.0, 100), "cnn": np.linspace(3.0, 5.0, 100)}
    svg = plots.latency_boxes("cpu-edge", samples, {"p95_ms": 4.5, "peak_mb": 256})
    shown = texts(svg)
    assert {"mlp", "cnn", "budget p95 4.5 ms"} <= set(shown)
    assert not any("peak" in t for t in shown)  # a memory budget is not drawn on a latency axis


def test_latency_without_budget_has_no_budget_line():
    svg = plots.latency_boxes("cpu", {"mlp": np.linspace(1.0, 2.0, 50)}, {})
    assert not any(t.startswith("budget") for t in texts(svg))


def test_stacked_bars_name_every_series():
    svg = plots.grouped_bars("Nodes per EP", "nodes", {"cpu": {"CPUExecutionProvider": 9},
                                                       "ov": {"OpenVINOExecutionProvider": 5,
                                                              "CPUExecutionProvider": 4}}, stacked=True)
    shown = texts(svg)
    assert {"CPUExecutionProvider", "OpenVINOExecutionProvider", "cpu", "ov", "Nodes per EP"} <= set(shown)


def test_svg_is_reproducible():
    """No date or random ids: the same record renders to the same report (diffable artifacts)."""
    values = {"mlp": {"cpu": 1.0, "cpu-fp16": 2.0}}
    assert plots.grouped_bars("m", "MB", values) == plots.grouped_bars("m", "MB", values)
