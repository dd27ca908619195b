"""What task gates make of a cell: fail it, pass it on the task (declared kinds only), or leave it."""

from __future__ import annotations

import numpy as np

from harness.golden.layout import DataSet
from harness.task.gates import parse_task_table
from harness.task.kinds import DECLARED, INFERRED, TaskSpec
from harness.task.score import FAIL_ON_TASK, KEEP, PASS_ON_TASK, judge, metrics

GOLDEN = np.array([[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]], np.float32)
GATES = parse_task_table({"gates": ["top1_agreement >= 0.99", "f1_drop <= 0.01", "recall >= 1"]}, "p.toml")


def spec(source: str = DECLARED) -> TaskSpec:
    return TaskSpec("classification", source, "test", {"scored": "p"}, {})


def sets() -> list[DataSet]:
    return [DataSet(0, None, {}, {"p": GOLDEN})]


def test_logits_off_by_three_percent_pass_on_the_task_while_failing_elementwise():
    found = judge(spec(), GATES, sets(), {"0/p": GOLDEN * 1.03}, elementwise_passed=False)
    assert found.outcome == PASS_ON_TASK
    assert found.note.endswith("passed on task gates (top1_agreement >= 0.99, f1_drop <= 0.01)")
    assert [g["gate"] for g in found.record["gates"]] == ["top1_agreement >= 0.99", "f1_drop <= 0.01"]  # not recall


def test_an_inferred_kind_never_turns_a_failure_into_a_pass():
    found = judge(spec(INFERRED), GATES, sets(), {"0/p": GOLDEN * 1.03}, elementwise_passed=False)
    assert found.outcome == KEEP and "the kind is inferred, so the elementwise verdict stands" in found.note


def test_a_flipped_class_fails_the_gate_even_when_elementwise_passed():
    flipped = GOLDEN[:, [1, 0, 2]]
    found = judge(spec(), GATES, sets(), {"0/p": flipped}, elementwise_passed=True)
    assert found.outcome == FAIL_ON_TASK
    assert found.failed == ["top1_agreement 0 fails >= 0.99", "f1_drop 1 fails <= 0.01"]


def test_without_gates_the_metrics_are_kept_and_the_verdict_stands():
    found = judge(spec(), parse_task_table({"gates": ["recall >= 1"]}, "p.toml"), sets(), {"0/p": GOLDEN},
                  elementwise_passed=True)
    assert found.outcome == KEEP and found.record["metrics"]["top1_agreement"] == 1.0 and found.record["gates"] == []


def test_a_missing_output_is_not_scored_and_fails_a_gate():
    assert metrics(spec(), sets(), {}) == {"error": "the device returned no 'p' for test_data_set_0"}
    found = judge(spec(), GATES, sets(), {}, elementwise_passed=False)
    assert found.outcome == FAIL_ON_TASK and found.failed[0].startswith("top1_agreement not measured (the device")


def test_detection_outputs_in_another_order_pass_and_a_moved_box_fails():
    boxes = np.array([[0, 0, 10, 10], [20, 20, 40, 40]], np.float32)
    scores, classes = np.array([0.9, 0.8], np.float32), np.array([1, 2], np.int64)
    det = TaskSpec("detection", DECLARED, "test", {"boxes": "b", "scores": "s", "classes": "c"}, {"iou": 0.5})
    data = [DataSet(0, None, {}, {"b": boxes, "s": scores, "c": classes})]
    gates = parse_task_table({"gates": ["recall >= 1", "precision >= 1"]}, "p.toml")
    swapped = {"0/b": boxes[::-1], "0/s": scores[::-1], "0/c": classes[::-1]}
    assert judge(det, gates, data, swapped, elementwise_passed=False).outcome == PASS_ON_TASK
    moved = {**swapped, "0/b": swapped["0/b"] + np.array([[12, 12, 12, 12], [0, 0, 0, 0]], np.float32)}
    found = judge(det, gates, data, moved, elementwise_passed=False)
    assert found.outcome == FAIL_ON_TASK and found.failed == ["recall 0.5 fails >= 1", "precision 0.5 fails >= 1"]


def test_an_inferred_kind_never_fails_a_cell_either():
    flipped = GOLDEN[:, [1, 0, 2]]
    found = judge(spec(INFERRED), GATES, sets(), {"0/p": flipped}, elementwise_passed=True)
    assert found.outcome == KEEP and found.failed
    assert "task gate would fail (top1_agreement 0 fails >= 0.99; f1_drop 1 fails <= 0.01), but the kind is " \
           "inferred" in found.note
