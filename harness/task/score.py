"""One cell's task metrics and what its profile's task gates make of them.

``judge(spec, gates, datasets, actual)`` scores the device's outputs (keyed "<k>/<output>", as the executor
receives them) against the data sets' goldens with the metrics of the case's kind, checks the gates of that kind,
and says what that means for the cell (``TaskOutcome``). harness.run turns the outcome into the verdict:

- a gate fails                       -> the cell fails, whatever the elementwise comparison said;
- every gate passes, elementwise FAIL -> the cell passes on its task (PASS*, the elementwise failure shown);
- the kind is inferred, not declared  -> the gates only add a note either way: a guess must neither turn a failure
                                        into a pass nor a pass into a failure (the note says how to declare it);
- no gate applies                    -> the verdict stands; the metrics are kept and shown.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.golden.layout import DataSet
from harness.task import classification, detection, image, regression, sequence
from harness.task.gates import TaskGates
from harness.task.kinds import DECLARED, TaskSpec, labels_for

# Outcomes for harness.run: what the task gates do to the cell's elementwise verdict.
KEEP, PASS_ON_TASK, FAIL_ON_TASK = "keep", "pass_on_task", "fail_on_task"

_HEADLINE = {"classification": ("top1_agreement", "topk_agreement", "macro_f1", "f1_drop"),
             "detection": ("recall", "precision", "max_coord_error", "min_matched_iou"),
             "regression": ("cosine_min", "cosine_median", "nn_rank_correlation"),
             "embedding": ("cosine_min", "cosine_median", "nn_rank_correlation"),
             "image": ("psnr_db_min", "psnr_db_mean"),
             "sequence": ("exact_match_rate", "mean_edit_distance")}


@dataclass
class TaskOutcome:
    outcome: str  # KEEP, PASS_ON_TASK or FAIL_ON_TASK
    record: dict[str, Any]  # what the cell keeps (CellResult.task)
    note: str = ""  # one phrase for the cell's detail
    failed: list[str] = field(default_factory=list)


def _values(datasets: list[DataSet], actual: dict[str, Any], name: str) -> tuple[list[Any], list[Any]]:
    golden, device = [], []
    for ds in datasets:
        if name not in ds.outputs:
            continue
        key = f"{ds.index}/{name}"
        if key not in actual:
            raise ValueError(f"the device returned no {name!r} for test_data_set_{ds.index}")
        golden.append(ds.outputs[name])
        device.append(actual[key])
    if not golden:
        raise ValueError(f"no golden {name!r} to score against")
    if not all(isinstance(v, np.ndarray) for v in golden + device):
        raise ValueError(f"output {name!r} is not a tensor")
    return golden, device


def metrics(spec: TaskSpec, datasets: list[DataSet], actual: dict[str, Any]) -> dict[str, Any]:
    """The kind's metrics over every data set; {"error": why} when the outputs cannot be scored."""
    try:
        if spec.kind == "detection":
            return _detection(spec, datasets, actual)
        golden, device = _values(datasets, actual, spec.outputs["scored"])
        if spec.kind == "classification":
            labels = [labels_for(spec, ds.index) for ds in datasets if spec.outputs["scored"] in ds.outputs]
            return classification.score(golden, device, labels, int(spec.options.get("k", 5)))
        if spec.kind in ("regression", "embedding"):
            return regression.score(golden, device)
        if spec.kind == "image":
            return image.score(golden, device)
        return sequence.score(golden, device, spec.options.get("pad"))
    except ValueError as exc:
        return {"error": str(exc)}


def _detection(spec: TaskSpec, datasets: list[DataSet], actual: dict[str, Any]) -> dict[str, Any]:
    threshold = spec.options.get("score_threshold")
    roles = spec.outputs
    found = {role: _values(datasets, actual, name) for role, name in roles.items()}
    golden = [image for b, s, c in zip(found["boxes"][0], found["scores"][0], found["classes"][0])
              for image in detection.per_image(b, s, c, threshold)]
    device = [image for b, s, c in zip(found["boxes"][1], found["scores"][1], found["classes"][1])
              for image in detection.per_image(b, s, c, threshold)]
    if len(golden) != len(device):
        raise ValueError(f"{len(golden)} golden images vs {len(device)} on the device")
    return detection.score(golden, device, float(spec.options.get("iou", 0.5)))


def headline(kind: str, values: dict[str, Any]) -> str:
    """The kind's main metrics in one phrase: 'top1_agreement 1, topk_agreement 1, macro_f1 1, f1_drop 0'."""
    if "error" in values:
        return f"not scored: {values['error']}"
    parts = [f"{name} {values[name]:.4g}" for name in _HEADLINE.get(kind, ())
             if isinstance(values.get(name), (int, float))]
    return ", ".join(parts)


def judge(spec: TaskSpec, gates: TaskGates, datasets: list[DataSet], actual: dict[str, Any],
          elementwise_passed: bool) -> TaskOutcome:
    """Score the cell and decide what its gates make of it (see the module docstring)."""
    values = metrics(spec, datasets, actual)
    applied = gates.for_kind(spec.kind)
    checked = [(g, g.check(values)) for g in applied]
    failed = [why for _, why in checked if why]
    record = {**spec.to_dict(), "metrics": values,
              "gates": [{"gate": g.text, "passed": not why, "why": why} for g, why in checked]}
    summary = f"task {spec.kind} ({spec.source}): {headline(spec.kind, values)}"
    declare = f"declare it in case.json (\"task\": {{\"kind\": \"{spec.kind}\"}}) to let the task decide"
    if failed and spec.source != DECLARED:
        return TaskOutcome(KEEP, record, f"{summary}; task gate would fail ({'; '.join(failed)}), but the kind is "
                                         f"inferred, so the elementwise verdict stands: {declare}", failed)
    if failed:
        return TaskOutcome(FAIL_ON_TASK, record, f"{summary}; task gate failed: {'; '.join(failed)}", failed)
    if not applied or elementwise_passed:
        return TaskOutcome(KEEP, record, summary + ("; task gates pass" if applied else ""))
    gate_list = ", ".join(g.text for g in applied)
    if spec.source != DECLARED:
        return TaskOutcome(KEEP, record, f"{summary}; task gates ({gate_list}) pass, but the kind is inferred, so "
                                         f"the elementwise verdict stands: {declare}")
    return TaskOutcome(PASS_ON_TASK, record, f"{summary}; passed on task gates ({gate_list})")
