"""Per-operator summary: counts per verdict class, the worst difference and where, and the profile diff."""

from __future__ import annotations

import json

from rich.console import Console

from harness.report.ops import NO_OP, UNSUPPORTED, diff_ops, diff_table, op_summary, ops_table, summary_dict
from harness.run import record as R


def _cell(case: str, profile: str, verdict: str, op: str | None = "Abs",
          diffs: list[tuple[str, object, object]] = (), **metrics) -> R.CellResult:
    outputs = [{"dataset": 0, "comparison": {"name": name, "metrics": {"max_abs_diff": a, "max_rel_diff": r,
                                                                         **metrics}}}
               for name, a, r in diffs]
    return R.CellResult(case, profile, verdict, outputs=outputs, model={"op": op} if op else {})


CELLS = [
    _cell("test_abs", "cpu", R.PASS, diffs=[("y", 0.0, 0.0)]),
    _cell("test_abs_big", "cpu", R.FAIL, diffs=[("y", 0.5, 0.01), ("z", 0.1, 0.2)]),
    _cell("test_abs_int4", "cpu", UNSUPPORTED),
    _cell("test_abs_bf16", "cpu", R.XFAIL, diffs=[("y", 0.02, 0.03)]),
    _cell("test_relu", "cpu", R.PASS, op="Relu", diffs=[("y", 1e-7, 1e-6)]),
    _cell("test_relu_nan", "cpu", R.CRASH, op="Relu"),
    _cell("resnet", "cpu", R.PASS, op=None, diffs=[("logits", "inf", "nan")]),
    _cell("test_abs", "gpu", R.FAIL, diffs=[("y", 1.0, 1.0)]),
    _cell("test_abs_big", "gpu", R.PASS),
    _cell("test_relu", "gpu", R.PASS, op="Relu"),
]


def test_rows_count_each_verdict_class_per_op_and_profile() -> None:
    summary = op_summary(CELLS)
    assert list(summary) == ["cpu", "gpu"]
    rows = {r.op: r for r in summary["cpu"]}
    assert rows["Abs"].cases == 4
    assert rows["Abs"].counts == {"pass": 1, "fail": 1, "unsupported": 1, "xfail": 1}
    assert rows["Relu"].counts == {"pass": 1, "crash": 1}
    assert rows[NO_OP].counts == {"pass": 1}
    assert [r.op for r in summary["cpu"]] == ["Abs", "Relu", NO_OP]  # ops with problems first, then by name


def test_worst_difference_names_case_and_output() -> None:
    rows = {r.op: r for r in op_summary(CELLS)["cpu"]}
    assert (rows["Abs"].worst_abs.value, rows["Abs"].worst_abs.case, rows["Abs"].worst_abs.output) == (
        0.5, "test_abs_big", "y")
    assert (rows["Abs"].worst_rel.value, rows["Abs"].worst_rel.output) == (0.2, "z")
    assert rows["Relu"].worst_abs.value == 1e-7
    assert rows[NO_OP].worst_abs.value == float("inf") and rows[NO_OP].worst_rel is None  # nan is no number


def test_a_non_finite_mismatch_is_the_worst() -> None:
    [row] = op_summary([_cell("a", "cpu", R.FAIL, diffs=[("y", 0.001, 0.001)], nan_mismatch=3),
                        _cell("b", "cpu", R.FAIL, diffs=[("y", 5.0, 5.0)])])["cpu"]
    assert (row.worst_abs.value, row.worst_abs.case) == (float("inf"), "a")


def test_the_op_comes_from_the_mapping_when_the_cell_lacks_it() -> None:
    [row] = op_summary([_cell("test_x", "cpu", R.PASS, op=None)], ops={"test_x": "Gemm"})["cpu"]
    assert row.op == "Gemm"


def test_summary_dict_is_json_with_inf_as_text() -> None:
    data = summary_dict(op_summary(CELLS))
    text = json.dumps(data, allow_nan=False)
    whole = next(r for r in json.loads(text)["cpu"] if r["op"] == NO_OP)
    assert whole["worst_abs"] == {"value": "inf", "case": "resnet", "output": "logits"}


def test_table_shows_counts_and_worst() -> None:
    console = Console(width=200, record=True)
    console.print(ops_table(op_summary(CELLS)["cpu"], "cpu"))
    text = console.export_text()
    assert "cpu: per operator" in text
    assert "crash" in text and "timeout" not in text
    abs_line = next(line for line in text.splitlines() if line.startswith("│ Abs "))
    assert [c.strip() for c in abs_line.split("│")[2:11]] == [
        "4", "1", "1", "1", "1", "", "0.5", "0.2", "test_abs_big:y"]  # cases pass fail unsup xfail crash worst at
    assert "3 ops" in text


def test_diff_names_the_cases_that_pass_on_one_side_only() -> None:
    [abs_diff] = diff_ops(CELLS, "cpu", "gpu")
    assert (abs_diff.op, abs_diff.only_a, abs_diff.only_b) == ("Abs", ["test_abs"], ["test_abs_big"])
    assert (abs_diff.cases, abs_diff.pass_a, abs_diff.pass_b) == (2, 1, 1)  # test_abs_int4 is not on gpu
    assert diff_ops(CELLS, "cpu", "cpu") == []


def test_diff_of_two_records() -> None:
    before = [_cell("test_relu", "cpu", R.PASS, op="Relu")]
    after = [_cell("test_relu", "cpu", R.FAIL, op="Relu")]
    [d] = diff_ops(before, "cpu", "cpu", after)
    assert (d.op, d.only_a, d.only_b) == ("Relu", ["test_relu"], [])
    console = Console(width=200, record=True)
    console.print(diff_table([d], "cpu", "cpu"))
    assert "test_relu" in console.export_text()
