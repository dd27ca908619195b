"""Detection matching: order independent, by IoU and class; recall, precision, coordinate error."""

from __future__ import annotations

import numpy as np
import pytest

from harness.task import detection
from harness.task.detection import Detections

BOXES = np.array([[0, 0, 10, 10], [20, 20, 40, 40], [50, 5, 60, 25]], dtype=np.float32)
SCORES = np.array([0.9, 0.8, 0.7], dtype=np.float32)
CLASSES = np.array([1, 2, 1], dtype=np.int64)


def dets(boxes=BOXES, scores=SCORES, classes=CLASSES, threshold=None) -> Detections:
    return Detections.of(boxes, scores, classes, threshold)


@pytest.mark.parametrize("matcher", ["hungarian", "greedy"])
def test_the_same_boxes_in_another_order_match_fully(matcher):
    order = [2, 0, 1]
    found = detection.score([dets()], [dets(BOXES[order], SCORES[order], CLASSES[order])], 0.5, matcher)
    assert found["recall"] == 1.0 and found["precision"] == 1.0 and found["matched"] == 3
    assert found["max_coord_error"] == 0.0 and found["min_matched_iou"] == 1.0


def test_a_box_moved_beyond_the_iou_gate_is_lost():
    moved = BOXES.copy()
    moved[1] += 12  # IoU of [20,40]^2 with [32,52]^2 = 64 / 736 < 0.5
    found = detection.score([dets()], [dets(moved)], 0.5)
    assert found["matched"] == 2 and found["recall"] == pytest.approx(2 / 3)
    assert found["precision"] == pytest.approx(2 / 3)


def test_a_small_move_matches_and_reports_the_coordinate_error():
    moved = BOXES.copy()
    moved[0, 2] += 1.5
    found = detection.score([dets()], [dets(moved)], 0.5)
    assert found["recall"] == 1.0 and found["max_coord_error"] == pytest.approx(1.5)
    assert found["min_matched_iou"] == pytest.approx(100 / 115)


def test_another_class_never_matches():
    found = detection.score([dets()], [dets(classes=np.array([2, 2, 1]))], 0.5)
    assert found["matched"] == 2 and found["recall"] == pytest.approx(2 / 3)


def test_an_extra_device_box_lowers_precision_only():
    extra = np.vstack([BOXES, [[70, 70, 80, 80]]])
    found = detection.score([dets()], [dets(extra, np.append(SCORES, 0.6), np.append(CLASSES, 3))], 0.5)
    assert found["recall"] == 1.0 and found["precision"] == 0.75


def test_a_box_whose_score_falls_below_the_threshold_is_lost():
    weak = SCORES.copy()
    weak[2] = 0.1
    found = detection.score([dets(threshold=0.5)], [dets(scores=weak, threshold=0.5)], 0.5)
    assert found["golden_boxes"] == 3 and found["device_boxes"] == 2
    assert found["recall"] == pytest.approx(2 / 3) and found["precision"] == 1.0


def test_hungarian_beats_greedy_where_greedy_steals_a_match():
    # golden A overlaps both device boxes; greedy gives A the best one and leaves B unmatched
    golden = Detections.of(np.array([[0, 0, 10, 10], [4, 0, 14, 10]]), np.ones(2), np.zeros(2))
    device = Detections.of(np.array([[2, 0, 12, 10], [-2, 0, 8, 10]]), np.ones(2), np.zeros(2))
    assert len(detection.match(golden, device, 0.6, "hungarian")) == 2
    assert len(detection.match(golden, device, 0.6, "greedy")) == 1


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="do not pair up"):
        Detections.of(BOXES, SCORES[:2], CLASSES, None)
