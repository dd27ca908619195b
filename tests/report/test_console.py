"""The console report (harness/report/console.py): matrix orientation, cell text, skip reasons, failure detail."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from rich.console import Console

from harness.compare.comparator import compare_output
from harness.compare.tolerances import Tolerance
from harness.report.console import cell_text, details, matrix, max_ulps, print_report, skipped_profiles, summary
from harness.run import record as R


def _render(renderable) -> str:
    buffer = io.StringIO()
    Console(file=buffer, width=200, color_system=None, highlight=False).print(renderable)
    return buffer.getvalue()


def _grid(cases: list[str], profiles: list[str]) -> list[R.CellResult]:
    return [R.CellResult(c, p, R.PASS) for c in cases for p in profiles]


def _header(text: str) -> list[str]:
    line = next(line for line in text.splitlines() if "\\" in line)
    return [part.strip() for part in line.strip("┃│ ").split("┃")]


def test_more_cases_than_profiles_puts_cases_down_the_rows() -> None:
    text = _render(matrix(_grid(["c1", "c2", "c3"], ["p1", "p2"]), ["p1", "p2"]))
    assert _header(text) == ["case \\ profile", "p1", "p2"]
    rows = [line for line in text.splitlines() if line.startswith("│ c")]
    assert [r.split("│")[1].strip() for r in rows] == ["c1", "c2", "c3"]


def test_more_profiles_than_cases_puts_profiles_down_the_rows() -> None:
    profiles = ["cpu", "cpu-edge", "webgpu"]
    text = _render(matrix(_grid(["mlp"], profiles), profiles))
    assert _header(text) == ["profile \\ case", "mlp"]
    rows = [line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│ ")]
    assert rows == profiles


def test_a_missing_cell_is_a_dash() -> None:
    text = _render(matrix([R.CellResult("c1", "p1", R.FAIL), R.CellResult("c2", "p2", R.PASS)], ["p1", "p2"]))
    row = next(line for line in text.splitlines() if line.startswith("│ c1"))
    assert [part.strip() for part in row.split("│")[1:4]] == ["c1", "FAIL", "-"]


def test_pass_star_shows_the_share_on_the_ep() -> None:
    cell = R.CellResult("t", "webgpu", R.PASS_FELL_BACK, placement={"available": True, "fraction_on_ep": 0.8})
    assert cell_text(cell).plain == "PASS* 80% on EP"
    full = R.CellResult("t", "cpu", R.PASS, placement={"available": True, "fraction_on_ep": 1.0})
    assert cell_text(full).plain == "PASS"


def test_latency_and_memory_lines() -> None:
    cell = R.CellResult("t", "cpu", R.PASS, latency={"stats": {"p50": 1.234, "p95": 2.5, "ci": {"p95": [2.4, 2.6]}}},
                        memory={"peak_delta_mb": 3.21})
    lines = cell_text(cell).plain.splitlines()
    assert lines[0] == "PASS" and lines[-1] == "peak +3.2 MB"
    assert "p50 1.23" in "\n".join(lines) and "p95 2.5" in "\n".join(lines)
    assert cell_text(R.CellResult("t", "cpu", R.PASS, memory={"peak_delta_mb": 123.4})).plain == "PASS\npeak +123 MB"


def test_skip_reasons_once_per_profile() -> None:
    cells = [R.CellResult(c, "cuda", R.SKIPPED, detail="CUDA EP not in this build") for c in ("a", "b", "c")]
    cells.append(R.CellResult("a", "cpu", R.PASS))
    assert skipped_profiles(cells) == ["cuda: SKIPPED - CUDA EP not in this build"]
    buffer = io.StringIO()
    record = R.RunRecord("r", "", {}, {}, {}, [], profiles={"cpu": {}, "cuda": {}}, cells=cells,
                         location=Path("rec.json"))
    print_report(Console(file=buffer, width=200, color_system=None), record)
    assert buffer.getvalue().count("CUDA EP not in this build") == 1
    assert "4 cells: 3 SKIPPED, 1 PASS. Run record: rec.json" in buffer.getvalue()


def test_the_report_says_what_cells_were_compared_with() -> None:
    golden = np.array([0.0, 1.0], dtype=np.float32)
    vs_cpu = compare_output("y", golden, golden, Tolerance(rtol=1e-4, atol=1e-5), against="cpu").to_dict()
    record = R.RunRecord("r", "", {}, {}, {}, [], profiles={"cpu-int8": {}},
                         cells=[R.CellResult("m", "cpu-int8", R.PASS, outputs=[{"dataset": 0, "comparison": vs_cpu}])],
                         location=Path("rec.json"), log="run.log")
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=200, color_system=None), record)
    assert "cases without goldens were compared with profile cpu" in buffer.getvalue()
    assert "library output in run.log" in buffer.getvalue()


def test_fail_detail_has_the_torch_style_message() -> None:
    golden = np.array([0.0, 1.0, 2.0], dtype=np.float32)
    comparison = compare_output("logits", golden, golden + np.float32([0, 0, 0.5]), Tolerance(rtol=1e-4, atol=1e-5))
    cell = R.CellResult("mlp", "cpu-fp16", R.FAIL, detail="1 output(s) out of tolerance (logits)",
                        outputs=[{"dataset": 0, "comparison": comparison.to_dict()}],
                        artifacts={"actual_outputs": "cells/mlp__cpu-fp16"})
    [block] = details([cell])
    lines = block.splitlines()
    assert lines[0] == "[FAIL] case 'mlp' on profile 'cpu-fp16': 1 output(s) out of tolerance (logits)"
    assert "case 'mlp [test_data_set_0]' output 'logits' on profile 'cpu-fp16': tensor-likes are not close" in block
    assert "Mismatched elements: 1 / 3 (33.3%) beyond rtol 0.0001 / atol 1e-05" in lines
    assert "Greatest absolute difference: 0.5 at index (2,) (up to 1e-05 allowed)" in lines
    assert "Actual outputs saved under cells/mlp__cpu-fp16/" in lines


def test_details_skip_quiet_verdicts_and_show_the_rest() -> None:
    cells = [R.CellResult("a", "p", R.PASS), R.CellResult("b", "p", R.SKIPPED), R.CellResult("c", "p", R.XFAIL),
             R.CellResult("d", "p", R.PASS_FELL_BACK, detail="80%", placement={"fell_back": ["n1(Shape)->CPU"]}),
             R.CellResult("e", "p", R.CRASH, detail="worker died", error={"stderr_tail": "line 1\nline 2"}),
             R.CellResult("f", "p", R.OVER_BUDGET, budget=["p95 12 ms > 10 ms"])]
    blocks = details(cells)
    assert [b.split("]")[0] for b in blocks] == ["[PASS*", "[CRASH", "[OVER_BUDGET"]
    assert blocks[0].endswith("Fell back: n1(Shape)->CPU")
    assert blocks[1].endswith("Last stderr lines:\n  line 1\n  line 2")
    assert blocks[2].endswith("Over budget: p95 12 ms > 10 ms")


def test_summary_counts_most_first() -> None:
    cells = [R.CellResult("a", "p", R.FAIL), R.CellResult("b", "p", R.PASS), R.CellResult("c", "p", R.PASS)]
    assert summary(cells) == "2 PASS, 1 FAIL"


def _report(record: R.RunRecord, **kwargs) -> str:
    buffer = io.StringIO()
    print_report(Console(file=buffer, width=200, color_system=None, highlight=False), record, **kwargs)
    return buffer.getvalue()


def _record(cells: list[R.CellResult]) -> R.RunRecord:
    return R.RunRecord("run", "", {}, {}, {}, [], cells=cells)


def test_a_large_run_shows_counts_per_profile_and_the_first_failures_only() -> None:
    from harness.report.console import COMPACT_CASES, MAX_DETAILS
    names = [f"test_{i}" for i in range(COMPACT_CASES + 20)]
    cells = [R.CellResult(n, "cpu", R.PASS if i % 2 else R.ERROR, detail=f"boom {i}") for i, n in enumerate(names)]
    cells += [R.CellResult(n, "ref", R.PASS) for n in names]
    text = _report(_record(cells))
    assert "Conformance matrix" not in text and "Verdicts per profile" in text
    row = next(line for line in text.splitlines() if line.startswith("│ cpu"))
    assert [p.strip() for p in row.strip("│ ").split("│")] == ["cpu", str(len(names)), "30", "30"]
    errors = len(names) // 2
    assert text.count("[ERROR]") == MAX_DETAILS
    noisy = _record(cells)
    noisy.warnings = [f"golden {i} holds NaN" for i in range(MAX_DETAILS + 7)]
    assert "and 7 more warning(s) in the run record" in _report(noisy)
    assert f"and {errors - MAX_DETAILS} more cell(s) that need attention" in text


def test_a_small_run_keeps_the_matrix_and_every_detail() -> None:
    cells = [R.CellResult(f"c{i}", "cpu", R.ERROR, detail="x") for i in range(3)]
    text = _report(_record(cells))
    assert "Conformance matrix" in text and text.count("[ERROR]") == 3


def test_by_op_prints_each_profile_and_the_ops_that_pass_on_one_only() -> None:
    def cell(case: str, profile: str, verdict: str, op: str) -> R.CellResult:
        return R.CellResult(case, profile, verdict, model={"op": op})
    cells = [cell("test_abs", "cpu", R.PASS, "Abs"), cell("test_abs", "bf16", R.FAIL, "Abs"),
             cell("test_relu", "cpu", R.PASS, "Relu"), cell("test_relu", "bf16", R.PASS, "Relu")]
    text = _report(_record(cells), by_op=True)
    assert "cpu: per operator" in text and "bf16: per operator" in text
    diff = text[text.index("pass on one of cpu / bf16"):]
    assert "Abs" in diff and "test_abs" in diff and "Relu" not in diff.split("\n\n")[0]


# ---- emulated profiles (harness/setup/arm64.py): the max ULP per output in place of timings -------------------

def _ulp_cell(case: str, profile: str, outputs: dict[str, float], *, elementwise: bool = True) -> R.CellResult:
    """A passing cell whose outputs each differ from a golden of 1.0 by ``outputs[name]`` (float32 steps of 2^-23)."""
    tolerance = Tolerance(rtol=1e-4, atol=1e-5) if elementwise else Tolerance(rtol=1e-4, atol=1e-5, elementwise=False, min_cosine=0.99)
    entries = []
    for name, steps in outputs.items():
        golden = np.ones(4, dtype=np.float32)
        actual = golden + np.float32(steps * 2.0 ** -23) * np.float32([0, 1, 0, 0])
        entries.append({"dataset": 0, "comparison": compare_output(name, golden, actual, tolerance).to_dict()})
    return R.CellResult(case, profile, R.PASS, outputs=entries, memory={"peak_delta_mb": 150.0},
                        timing={"session_ms": 900.0})


def _emulated_record(cells: list[R.CellResult]) -> R.RunRecord:
    profiles = {"cpu": {"emulated": ""}, "arm": {"emulated": "qemu-aarch64 neoverse-n1"}}
    return R.RunRecord("run", "", {}, {}, {}, [], profiles=profiles, cells=cells)


def test_max_ulps_per_output_leave_out_outputs_judged_by_signal_quality() -> None:
    cell = _ulp_cell("gru", "arm", {"output": 3, "h_n": 11})
    assert max_ulps(cell) == {"output": 3, "h_n": 11}
    assert max_ulps(_ulp_cell("mlp", "arm-int8", {"y": 7}, elementwise=False)) == {}


def test_an_emulated_cell_shows_its_max_ulp_and_neither_latency_nor_memory() -> None:
    cell = _ulp_cell("gru", "arm", {"output": 3, "h_n": 11})
    assert cell_text(cell, emulated=True).plain == "PASS 11ulp"
    assert cell_text(cell).plain == "PASS\npeak +150 MB"  # the same cell on the host's CPU: memory is the device's


def test_the_matrix_labels_emulated_columns_and_lists_max_ulp_per_output() -> None:
    cells = [_ulp_cell("gru", "cpu", {"output": 2, "h_n": 0}), _ulp_cell("gru", "arm", {"output": 3, "h_n": 11}),
             _ulp_cell("mlp", "cpu", {"y": 1}), _ulp_cell("mlp", "arm", {"y": 5})]
    text = _report(_emulated_record(cells))
    assert "emulated: max ULP, no timing" in text and "PASS 11ulp" in text and "PASS 5ulp" in text
    assert text.count("peak +150 MB") == 2  # the cpu cells only
    table = text[text.index("Max ULP vs golden per output"):]
    rows = [[part.strip() for part in line.strip("│ ").split("│")] for line in table.splitlines() if line.startswith("│")]
    assert rows == [["gru", "output", "2", "3"], ["gru", "h_n", "0", "11"], ["mlp", "y", "1", "5"]]


def test_a_run_without_emulated_profiles_has_no_ulp_table() -> None:
    record = _emulated_record([_ulp_cell("mlp", "cpu", {"y": 1})])
    record.profiles = {"cpu": {"emulated": ""}}
    assert "Max ULP" not in _report(record)


def test_no_ulp_table_when_the_emulated_profile_was_skipped() -> None:
    record = _emulated_record([_ulp_cell("mlp", "cpu", {"y": 1}),
                               R.CellResult("mlp", "arm", R.SKIPPED, detail="not set up; fix: harness setup arm64")])
    text = _report(record)
    assert "Max ULP" not in text and "arm: SKIPPED - not set up; fix: harness setup arm64" in text


def test_a_large_run_says_each_emulated_profile_worst_ulp_in_one_line() -> None:
    from harness.report.console import COMPACT_CASES
    cells = [_ulp_cell(f"test_{i}", "arm", {"y": i % 7}) for i in range(COMPACT_CASES + 5)]
    text = _report(_emulated_record(cells))
    assert "Max ULP vs golden per output" not in text
    assert (f"arm (qemu-aarch64 neoverse-n1): max ULP vs golden over {COMPACT_CASES + 5} float output(s): 6 "
            f"(test_6/y); the run record has each output's") in text
