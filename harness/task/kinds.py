"""What a case's model is for: its task kind, read from case.json ``task`` or inferred where it is obvious.

case.json may say ``"task": {"kind": "classification", "output": "logits", "labels": {...}, "k": 5}`` (declared),
or the older one-word ``"task": "classification"``: a word that is a kind declares it, any other word ("vision",
"tagging") is a description, and the kind is then inferred from the outputs. An inference is never silent: the spec
says ``source = "inferred"`` and why, and an inferred kind never turns a FAIL into a pass (harness.task.verdict).

Keys of the object form, all optional but ``kind``:
    output               the scored output (classification, regression, embedding, image, sequence)
    k                    top-k for classification (default 5, at most the class count)
    labels               ground truth per data set, {"test_data_set_0": [3, 1], ...}: P/R/F1 against it;
                         without it, P/R/F1 are against the golden's top-1 (how far the device is from the golden)
    classes              class names, by index, for the per-class table
    boxes, scores,       detection outputs (default names "boxes", "scores", "classes"); boxes are [N, 4]
    box_classes          x1, y1, x2, y2
    iou                  detection: the IoU at or above which two boxes of one class match (default 0.5)
    score_threshold      detection: boxes scoring below it are dropped on both sides (default none)
    pad                  sequence: a token id that ends a sequence and is not compared (e.g. 0)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.errors import GoldenError
from harness.model.loader import ModelInfo, TensorSig
from harness.suggest import did_you_mean

KINDS = ("classification", "detection", "regression", "embedding", "image", "sequence")
_KEYS = ("kind", "output", "k", "labels", "classes", "boxes", "scores", "box_classes", "iou", "score_threshold", "pad")
_CLASSIFIER_NAME = re.compile(r"logit|prob|score|class|softmax", re.IGNORECASE)
DECLARED, INFERRED = "declared", "inferred"


@dataclass(frozen=True)
class TaskSpec:
    """How a case's outputs are scored. ``outputs`` names the outputs used, by role ("scored", or for detection
    "boxes", "scores", "classes"); ``options`` holds the kind's own keys (k, labels, iou ...)."""

    kind: str
    source: str  # "declared" or "inferred"
    why: str
    outputs: dict[str, str]
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "source": self.source, "why": self.why, "outputs": dict(self.outputs)}


def task_spec(task: Any, info: ModelInfo, where: str) -> TaskSpec | None:
    """The case's task, or None when it has none (a generic case, or nothing obvious to infer).
    ``where`` (the case.json path) names the file in errors."""
    if isinstance(task, dict):
        return _declared(dict(task), info, where)
    word = str(task or "generic")
    if word in KINDS:
        found = _declared({"kind": word}, info, where, strict=False)
        if found is not None:
            return found
    return infer(info, f"case.json task {word!r} is not a task kind" if word != "generic" else "")


def _declared(task: dict[str, Any], info: ModelInfo, where: str, strict: bool = True) -> TaskSpec | None:
    """The object form, checked: an unknown key, kind or output is refused (a typo would score nothing).
    ``strict`` False (the one-word form): an output that does not fit the kind gives None, to infer instead."""
    unknown = [k for k in task if k not in _KEYS]
    if unknown:
        raise GoldenError(f"{where}: task has unknown key {unknown[0]!r}{did_you_mean(unknown[0], _KEYS)}",
                          hint=f"known keys: {', '.join(_KEYS)}")
    kind = task.get("kind")
    if kind not in KINDS:
        raise GoldenError(f"{where}: task kind {kind!r} is not one of {', '.join(KINDS)}{did_you_mean(str(kind), KINDS)}",
                          hint='e.g. "task": {"kind": "classification"}')
    options = {k: v for k, v in task.items() if k not in ("kind", "output", "boxes", "scores", "box_classes")}
    _check_options(kind, options, where)
    if kind == "detection":
        roles = {"boxes": task.get("boxes", "boxes"), "scores": task.get("scores", "scores"),
                 "classes": task.get("box_classes", "classes")}
        missing = [f"{role} {name!r}" for role, name in roles.items() if name not in info.output_names]
        if missing:
            if not strict:
                return None
            raise GoldenError(f"{where}: task detection names output(s) {', '.join(missing)} the model lacks; its "
                              f"outputs are {info.output_names}", hint='name them: "boxes", "scores", "box_classes"')
        return TaskSpec(kind, DECLARED, "case.json task", roles, options)
    output = task.get("output") or _default_output(kind, info)
    if output is None or output not in info.output_names:
        if not strict:
            return None
        named = f"output {output!r}" if output else "no 'output', and no single output fits"
        raise GoldenError(f"{where}: task {kind}: {named}; the model's outputs are {info.output_names}",
                          hint='name the scored output: "task": {"kind": "...", "output": "NAME"}')
    sig = next(s for s in info.outputs if s.name == output)
    if kind == "sequence" and not (sig.dtype is not None and sig.dtype.kind in "iu"):
        if not strict:
            return None
        raise GoldenError(f"{where}: task sequence scores integer token ids, but output {output!r} is "
                          f"{sig.dtype_name}", hint="name the token-id output, or pick the kind that fits")
    return TaskSpec(kind, DECLARED, "case.json task", {"scored": output}, options)


def _check_options(kind: str, options: dict[str, Any], where: str) -> None:
    k = options.get("k", 5)
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise GoldenError(f"{where}: task k = {k!r} must be a whole number >= 1")
    iou = options.get("iou", 0.5)
    if not isinstance(iou, (int, float)) or isinstance(iou, bool) or not 0 < iou <= 1:
        raise GoldenError(f"{where}: task iou = {iou!r} must be a number in (0, 1]")
    labels = options.get("labels", {})
    if not isinstance(labels, dict) or not all(isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool)
                                                                          for x in v) for v in labels.values()):
        raise GoldenError(f"{where}: task labels must map each test_data_set_<k> to a list of class ids",
                          hint='e.g. "labels": {"test_data_set_0": [3, 1]}')
    if "labels" in options and kind != "classification":
        raise GoldenError(f"{where}: task labels apply to classification only, not {kind}")


def _default_output(kind: str, info: ModelInfo) -> str | None:
    """The scored output when the task does not name one: the only output, else for classification the one
    float [.., C] output named like logits/probabilities."""
    if len(info.outputs) == 1:
        return info.outputs[0].name
    if kind == "classification":
        named = [s.name for s in info.outputs if _looks_like_classes(s)]
        return named[0] if len(named) == 1 else None
    return None


def _is_float(sig: TensorSig) -> bool:
    return sig.dtype is not None and sig.dtype.kind == "f"


def _looks_like_classes(sig: TensorSig) -> bool:
    """A float output of rank >= 2 whose last axis is a class axis (fixed and >= 2, or symbolic) and whose name
    says logits, probabilities or scores."""
    last = sig.shape[-1] if sig.shape else None
    classes = isinstance(last, int) and last >= 2
    return _is_float(sig) and len(sig.shape) >= 2 and classes and bool(_CLASSIFIER_NAME.search(sig.name))


def infer(info: ModelInfo, prefix: str = "") -> TaskSpec | None:
    """Classification where it is obvious: exactly one float [N, C] (or [.., C]) output, C >= 2, named like logits,
    probabilities or scores. Nothing else is guessed."""
    named = [s for s in info.outputs if _looks_like_classes(s)]
    if len(named) != 1:
        return None
    sig = named[0]
    why = (f"{prefix}; " if prefix else "") + (f"inferred from output {sig.name!r} {list(sig.shape)} (float, last axis "
                                               f"{sig.shape[-1]} classes, named like logits/probabilities)")
    return TaskSpec("classification", INFERRED, why, {"scored": sig.name}, {})


def labels_for(spec: TaskSpec, dataset_index: int) -> list[int] | None:
    """The ground truth of one data set, or None when the case gives none."""
    labels = spec.options.get("labels") or {}
    found = labels.get(f"test_data_set_{dataset_index}")
    return list(found) if found is not None else None


def rows(array: np.ndarray) -> np.ndarray:
    """[.., C] as [rows, C]: every leading position is one sample (a tagger's tokens, a batch's items)."""
    return array.reshape(-1, array.shape[-1]) if array.ndim >= 2 else array.reshape(1, -1)
