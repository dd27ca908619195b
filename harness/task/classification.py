"""Classification: does the device pick the classes the golden picks, and how good is it at the task?

Rows are pooled over every data set (each leading position of a [.., C] output is one sample). Top-1 and top-k
agreement compare the device's argmax with the golden's ranking (harness.compare.metrics.topk_agreement).
Precision, recall and F1 (macro and per class) are scored against the case's labels where it gives them, and
against the golden's top-1 otherwise: then they say how far the device is from the golden, per class. With
labels, the golden is scored too, and ``f1_drop`` / ``accuracy_drop`` say what the device lost against it.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from harness.compare.metrics import topk_agreement

PER_CLASS_LIMIT = 50  # classes kept per cell in the record, worst F1 first, when more occur

try:  # sklearn is well kept and does the zero-division cases right; numpy below gives the same numbers
    from sklearn.metrics import precision_recall_fscore_support
except ImportError:  # pragma: no cover - exercised where sklearn is not installed
    precision_recall_fscore_support = None


def prf(truth: np.ndarray, predicted: np.ndarray, classes: list[int]) -> dict[str, Any]:
    """Accuracy, macro and per-class precision/recall/F1 over ``classes`` (a class with no prediction or no sample
    scores 0 there, as sklearn's zero_division=0)."""
    if precision_recall_fscore_support is not None:
        p, r, f, s = precision_recall_fscore_support(truth, predicted, labels=classes, zero_division=0)
    else:
        p, r, f, s = _prf_numpy(truth, predicted, classes)
    per_class = {str(c): {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, c in enumerate(classes)}
    return {"accuracy": float(np.mean(truth == predicted)) if truth.size else 0.0,
            "macro_precision": float(np.mean(p)), "macro_recall": float(np.mean(r)), "macro_f1": float(np.mean(f)),
            "per_class": per_class}


def _prf_numpy(truth: np.ndarray, predicted: np.ndarray, classes: list[int]):
    p, r, f, s = [], [], [], []
    for c in classes:
        tp = float(np.sum((predicted == c) & (truth == c)))
        fp = float(np.sum((predicted == c) & (truth != c)))
        fn = float(np.sum((predicted != c) & (truth == c)))
        precision = tp / (tp + fp) if tp + fp else 0.0
        recall = tp / (tp + fn) if tp + fn else 0.0
        p.append(precision)
        r.append(recall)
        f.append(2 * precision * recall / (precision + recall) if precision + recall else 0.0)
        s.append(int(tp + fn))
    return np.array(p), np.array(r), np.array(f), np.array(s)


def flips(golden_top1: np.ndarray, device_top1: np.ndarray, limit: int = 20) -> list[dict[str, Any]]:
    """Which classes flip between the golden and the device: the off-diagonal of their confusion, most first."""
    counts = Counter((int(g), int(d)) for g, d in zip(golden_top1, device_top1) if g != d)
    return [{"golden": g, "device": d, "count": n} for (g, d), n in counts.most_common(limit)]


def score(golden: list[np.ndarray], actual: list[np.ndarray], labels: list[list[int] | None], k: int) -> dict[str, Any]:
    """Metrics of one cell. ``golden``/``actual``: the scored output of each data set; ``labels``: each set's
    ground truth or None. Labels count only when every set has them, one per row."""
    g = np.concatenate([_rows(a) for a in golden]).astype(np.float64)
    a = np.concatenate([_rows(x) for x in actual]).astype(np.float64)
    if g.shape != a.shape:
        return {"error": f"golden rows {list(g.shape)} vs device rows {list(a.shape)}: cannot be paired"}
    k = min(k, g.shape[1])
    g1, a1 = np.argmax(g, axis=1), np.argmax(a, axis=1)
    out: dict[str, Any] = {"rows": int(g.shape[0]), "classes": int(g.shape[1]), "k": k,
                           "top1_agreement": float(np.mean(g1 == a1)) if g.size else 1.0,
                           "topk_agreement": _topk(g, a, k)}
    truth = _truth(labels, g.shape[0])
    if truth is None and labels and all(item is not None for item in labels):
        out["labels_ignored"] = (f"case.json labels give {sum(len(x) for x in labels)} classes for "
                                 f"{g.shape[0]} rows; scored against the golden's top-1 instead")
    # Macro averages run over the classes that occur (in the truth or in either side's predictions), as sklearn's
    # default does: a class that no sample has and nobody predicts would score 0 and drag a perfect device down.
    classes = sorted(set(np.unique(g1).tolist()) | set(np.unique(a1).tolist())
                     | (set(truth.tolist()) if truth is not None else set()))
    device = prf(truth if truth is not None else g1, a1, classes)
    out.update({name: device[name] for name in ("accuracy", "macro_precision", "macro_recall", "macro_f1")})
    out["per_class"] = _worst_classes(device["per_class"])
    out["reference"] = "labels" if truth is not None else "golden top-1"
    if truth is not None:
        reference = prf(truth, g1, classes)
        out["golden_accuracy"], out["golden_macro_f1"] = reference["accuracy"], reference["macro_f1"]
        out["accuracy_drop"] = reference["accuracy"] - device["accuracy"]
        out["f1_drop"] = reference["macro_f1"] - device["macro_f1"]
    else:
        out["f1_drop"] = 1.0 - device["macro_f1"] if g.size else 0.0  # the golden scores 1 against itself
        out["accuracy_drop"] = 1.0 - device["accuracy"] if g.size else 0.0
    out["flips"] = flips(g1, a1)
    return out


def _worst_classes(per_class: dict[str, dict[str, Any]], limit: int = PER_CLASS_LIMIT) -> dict[str, dict[str, Any]]:
    """Every class for a small head; for a large one (ImageNet's 1000) the ``limit`` classes with the lowest F1, so
    that a record stays readable (the macro averages still cover every class)."""
    if len(per_class) <= limit:
        return per_class
    return dict(sorted(per_class.items(), key=lambda item: (item[1]["f1"], int(item[0])))[:limit])


def _rows(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1, array.shape[-1]) if array.ndim >= 2 else array.reshape(1, -1)


def _topk(g: np.ndarray, a: np.ndarray, k: int) -> float:
    found = topk_agreement(g, a, k) if g.size else 1.0
    return float(found) if found is not None else 0.0


def _truth(labels: list[list[int] | None], count: int) -> np.ndarray | None:
    if not labels or any(item is None for item in labels):
        return None
    truth = np.array([x for item in labels for x in item], dtype=np.int64)
    return truth if truth.size == count else None
