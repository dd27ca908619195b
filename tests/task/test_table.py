"""The per-device task table and the task phrase of a cell's reason line."""

from __future__ import annotations

from harness.report.reason import task_metrics
from harness.run import record as R
from harness.task.table import case_tables, text_table


def cell(profile: str, top1: float, source: str = "declared", gates=()) -> R.CellResult:
    metrics = {"top1_agreement": top1, "topk_agreement": 1.0, "accuracy": 0.8, "macro_precision": 0.79,
               "macro_recall": 0.8, "macro_f1": 0.79, "f1_drop": 0.001, "reference": "labels",
               "flips": [{"golden": 2, "device": 3, "count": 1}] if top1 < 1 else []}
    return R.CellResult("clf", profile, R.PASS, task={"kind": "classification", "source": source, "metrics": metrics,
                                                      "gates": list(gates)})


def test_one_row_per_profile_with_flips():
    tables = case_tables([cell("cpu", 1.0), cell("cpu-int8", 0.9961), R.CellResult("clf", "cuda", R.SKIPPED)])
    kind, header, rows = tables["clf"]
    assert kind == "classification (declared, vs labels)"
    assert header[:3] == ["profile", "verdict", "top-1"] and header[-1] == "class flips (golden→device)"
    assert rows == [["cpu", "PASS", "1", "1", "0.8", "0.79", "0.8", "0.79", "0.001", "none"],
                    ["cpu-int8", "PASS", "0.9961", "1", "0.8", "0.79", "0.8", "0.79", "0.001", "2→3×1"]]
    lines = text_table(header, rows)
    assert lines[0].startswith("profile   verdict  top-1") and len(lines) == 4


def test_the_reason_phrase_says_a_failed_gate_and_whether_it_counted():
    failed = [{"gate": "top1_agreement >= 0.99", "passed": False, "why": "top1_agreement 0.9 fails >= 0.99"}]
    assert task_metrics(cell("cpu", 0.9, gates=failed)).endswith("task gate failed: top1_agreement 0.9 fails >= 0.99")
    assert "task gate would fail (inferred kind)" in task_metrics(cell("cpu", 0.9, "inferred", failed))
    assert task_metrics(R.CellResult("c", "cpu", R.PASS)) == ""
