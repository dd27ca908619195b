"""The task kind: declared in case.json, or inferred where obvious (and said to be)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import GoldenError
from harness.model.loader import ModelInfo, TensorSig
from harness.task.kinds import task_spec


def info(*outputs: tuple[str, str, tuple]) -> ModelInfo:
    sigs = [TensorSig(name, np.dtype(dtype), shape) for name, dtype, shape in outputs]
    return ModelInfo(Path("m.onnx"), "0" * 64, 17, [TensorSig("x", np.dtype("float32"), ("N", 4))], sigs, 1, False)


LOGITS = ("logits", "float32", ("N", 10))


def test_a_single_logits_output_is_inferred_classification_and_says_so():
    spec = task_spec(None, info(LOGITS), "c/case.json")
    assert spec.kind == "classification" and spec.source == "inferred" and spec.outputs == {"scored": "logits"}
    assert "inferred from output 'logits'" in spec.why


@pytest.mark.parametrize("outputs", [[("y", "float32", ("N", 10))],  # not named like classes
                                     [("logits", "float32", ("N", 1))],  # one class
                                     [("logits", "int64", ("N", 10))],  # not float
                                     [LOGITS, ("probabilities", "float32", ("N", 10))]])  # two candidates
def test_nothing_is_guessed_where_it_is_not_obvious(outputs):
    assert task_spec(None, info(*outputs), "c/case.json") is None


def test_a_description_word_falls_back_to_inference_with_the_reason():
    spec = task_spec("vision", info(LOGITS), "c/case.json")
    assert spec.source == "inferred" and spec.why.startswith("case.json task 'vision' is not a task kind")


def test_the_object_form_declares_kind_output_and_options():
    spec = task_spec({"kind": "classification", "output": "probabilities", "k": 3,
                      "labels": {"test_data_set_0": [1, 2]}},
                     info(("label", "int64", ("N",)), ("probabilities", "float32", ("N", 3))), "c/case.json")
    assert spec.source == "declared" and spec.outputs == {"scored": "probabilities"} and spec.options["k"] == 3


def test_detection_names_its_three_outputs():
    outputs = [("boxes", "float32", ("N", 4)), ("scores", "float32", ("N",)), ("classes", "int64", ("N",))]
    spec = task_spec({"kind": "detection", "iou": 0.6}, info(*outputs), "c/case.json")
    assert spec.outputs == {"boxes": "boxes", "scores": "scores", "classes": "classes"} and spec.options["iou"] == 0.6


def test_a_float_output_is_not_a_token_sequence():
    assert task_spec("sequence", info(("output", "float32", ("N", "T", 32))), "c/case.json") is None
    with pytest.raises(GoldenError, match="integer token ids"):
        task_spec({"kind": "sequence"}, info(("output", "float32", ("N", "T", 32))), "c/case.json")


@pytest.mark.parametrize("task, words", [({"kind": "classifcation"}, "did you mean 'classification'"),
                                         ({"kind": "classification", "ouput": "y"}, "unknown key 'ouput'"),
                                         ({"kind": "classification", "output": "nope"}, "output 'nope'"),
                                         ({"kind": "detection"}, "lacks"),
                                         ({"kind": "classification", "k": 0}, "k = 0"),
                                         ({"kind": "detection", "iou": 1.5}, "iou = 1.5"),
                                         ({"kind": "classification", "labels": [1, 2]}, "labels must map")])
def test_a_bad_task_is_one_line_naming_case_json(task, words):
    with pytest.raises(GoldenError) as caught:
        task_spec(task, info(LOGITS), "cases/c/case.json")
    assert words in caught.value.one_line() and "cases/c/case.json" in caught.value.one_line()
