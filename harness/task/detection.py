"""Detection: the device's boxes matched with the golden's by IoU and class, whatever their order.

A detector that returns the same boxes in another order fails every elementwise comparison and is still right;
one that moves a box so far that its IoU with the golden box falls below the gate has lost that detection. Boxes
are [N, 4] as x1, y1, x2, y2, or [B, N, 4] for a batch of B images (scores and classes [B, N]). Within one image, a
device box may match one golden box of its class with IoU >= ``iou``; the matching maximises total IoU (the Hungarian method, scipy's
``linear_sum_assignment``) or, without scipy, takes pairs greedily by IoU; the metrics say which.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

try:
    from scipy.optimize import linear_sum_assignment
    MATCHER = "hungarian"
except ImportError:  # pragma: no cover - exercised where scipy is not installed
    linear_sum_assignment = None
    MATCHER = "greedy"


@dataclass
class Detections:
    boxes: np.ndarray  # [N, 4] float64
    scores: np.ndarray  # [N]
    classes: np.ndarray  # [N] int64

    @classmethod
    def of(cls, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray,
           threshold: float | None = None) -> "Detections":
        b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        c = np.asarray(classes).reshape(-1).astype(np.int64)
        if not len(b) == len(s) == len(c):
            raise ValueError(f"{len(b)} boxes, {len(s)} scores and {len(c)} classes do not pair up")
        keep = s >= threshold if threshold is not None else np.ones(len(s), dtype=bool)
        return cls(b[keep], s[keep], c[keep])


def per_image(boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, threshold: float | None) -> list[Detections]:
    """One Detections per image: boxes [B, N, 4] (scores and classes [B, N]) are B images; [N, 4] is one."""
    boxes = np.asarray(boxes)
    if boxes.ndim == 3:
        return [Detections.of(boxes[i], np.asarray(scores)[i], np.asarray(classes)[i], threshold)
                for i in range(boxes.shape[0])]
    return [Detections.of(boxes, scores, classes, threshold)]


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of ``a`` [N, 4] with every box of ``b`` [M, 4]; empty or inverted boxes have area 0."""
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def match(golden: Detections, device: Detections, iou: float, matcher: str = MATCHER) -> list[tuple[int, int, float]]:
    """(golden index, device index, IoU) of each match: same class, IoU >= ``iou``, each box used once."""
    if not len(golden.boxes) or not len(device.boxes):
        return []
    overlap = iou_matrix(golden.boxes, device.boxes)
    allowed = (golden.classes[:, None] == device.classes[None, :]) & (overlap >= iou)
    if matcher == "hungarian" and linear_sum_assignment is not None:
        rows, cols = linear_sum_assignment(np.where(allowed, overlap, 0.0), maximize=True)
        pairs = zip(rows.tolist(), cols.tolist())
    else:
        pairs = _greedy(np.where(allowed, overlap, -1.0))
    return [(g, d, float(overlap[g, d])) for g, d in pairs if allowed[g, d]]


def _greedy(score: np.ndarray) -> list[tuple[int, int]]:
    """Pairs by IoU, highest first, each box once: what is left without scipy."""
    order = np.dstack(np.unravel_index(np.argsort(-score, axis=None, kind="stable"), score.shape))[0]
    used_g, used_d, pairs = set(), set(), []
    for g, d in order.tolist():
        if score[g, d] >= 0 and g not in used_g and d not in used_d:
            used_g.add(g)
            used_d.add(d)
            pairs.append((g, d))
    return pairs


def score(golden: list[Detections], device: list[Detections], iou: float, matcher: str = MATCHER) -> dict[str, Any]:
    """Metrics over every data set: recall and precision of the device's boxes against the golden's, the
    largest coordinate error and the smallest IoU among matched boxes."""
    matched = total_golden = total_device = 0
    worst_coord, ious = 0.0, []
    for g, d in zip(golden, device):
        pairs = match(g, d, iou, matcher)
        matched += len(pairs)
        total_golden += len(g.boxes)
        total_device += len(d.boxes)
        for gi, di, value in pairs:
            ious.append(value)
            worst_coord = max(worst_coord, float(np.max(np.abs(g.boxes[gi] - d.boxes[di]))))
    return {"matcher": matcher if linear_sum_assignment is not None else "greedy", "iou_gate": iou,
            "golden_boxes": total_golden, "device_boxes": total_device, "matched": matched,
            "recall": matched / total_golden if total_golden else 1.0,
            "precision": matched / total_device if total_device else 1.0,
            "max_coord_error": worst_coord, "min_matched_iou": min(ious) if ious else None,
            "mean_matched_iou": float(np.mean(ious)) if ious else None}
