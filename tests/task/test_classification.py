"""Classification metrics: agreement with the golden, P/R/F1 against labels or the golden, flips."""

from __future__ import annotations

import numpy as np
import pytest

from harness.task import classification


def one_hot(classes: list[int], count: int = 4, margin: float = 0.6) -> np.ndarray:
    logits = np.full((len(classes), count), 0.1, dtype=np.float32)
    logits[np.arange(len(classes)), classes] += margin
    return logits


def test_identical_logits_agree_fully_and_lose_no_f1():
    golden = [one_hot([0, 1, 2]), one_hot([3, 0])]
    found = classification.score(golden, [g.copy() for g in golden], [None, None], k=2)
    assert found["rows"] == 5 and found["top1_agreement"] == 1.0 and found["topk_agreement"] == 1.0
    assert found["macro_f1"] == 1.0 and found["f1_drop"] == 0.0 and found["flips"] == []
    assert found["reference"] == "golden top-1"


def test_small_logit_moves_keep_top1_but_a_flip_is_counted():
    golden = [one_hot([0, 1, 2, 3])]
    moved = golden[0] * 1.03  # logits off by 3%: the classes stay
    flipped = one_hot([0, 1, 3, 3])  # the third sample now says 3, not 2
    assert classification.score(golden, [moved], [None], k=1)["top1_agreement"] == 1.0
    found = classification.score(golden, [flipped], [None], k=1)
    assert found["top1_agreement"] == pytest.approx(0.75)
    assert found["flips"] == [{"golden": 2, "device": 3, "count": 1}]
    assert found["per_class"]["2"]["recall"] == 0.0 and found["per_class"]["3"]["precision"] == 0.5


def test_labels_score_both_sides_and_the_drop_is_what_the_device_lost():
    golden = [one_hot([0, 1, 1, 2])]
    device = [one_hot([0, 1, 2, 2])]
    labels = [[0, 1, 1, 2]]  # the golden is right everywhere; the device misses sample 2
    found = classification.score(golden, device, labels, k=1)
    assert found["reference"] == "labels"
    assert found["golden_accuracy"] == 1.0 and found["accuracy"] == 0.75
    assert found["accuracy_drop"] == pytest.approx(0.25)
    expected_f1 = np.mean([1.0, 2 * 1 * 0.5 / 1.5, 2 * 0.5 * 1 / 1.5])
    assert found["macro_f1"] == pytest.approx(expected_f1)
    assert found["f1_drop"] == pytest.approx(1.0 - expected_f1)


def test_numpy_fallback_gives_sklearn_numbers():
    rng = np.random.default_rng(3)
    truth, predicted = rng.integers(0, 4, 50), rng.integers(0, 4, 50)
    ours = classification._prf_numpy(truth, predicted, [0, 1, 2, 3])
    from sklearn.metrics import precision_recall_fscore_support
    theirs = precision_recall_fscore_support(truth, predicted, labels=[0, 1, 2, 3], zero_division=0)
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a, b)


def test_labels_of_the_wrong_length_are_said_not_used():
    found = classification.score([one_hot([0, 1])], [one_hot([0, 1])], [[0, 1, 2]], k=1)
    assert found["reference"] == "golden top-1" and "3 classes for 2 rows" in found["labels_ignored"]


def test_rows_of_another_shape_cannot_be_paired():
    found = classification.score([one_hot([0, 1])], [one_hot([0, 1, 2])], [None], k=1)
    assert "cannot be paired" in found["error"]


def test_a_large_head_keeps_only_its_worst_classes_per_cell():
    rng = np.random.default_rng(0)
    golden = rng.standard_normal((400, 120)).astype(np.float32)
    device = golden.copy()
    device[:5] = np.roll(device[:5], 1, axis=1)  # five rows change class
    found = classification.score([golden], [device], [None], k=5)
    assert len(found["per_class"]) == classification.PER_CLASS_LIMIT
    assert min(v["f1"] for v in found["per_class"].values()) < 1.0
    assert max(v["f1"] for v in found["per_class"].values()) <= 1.0
