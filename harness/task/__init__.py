"""Task-level agreement: is the device as good at what the model is for as the golden is?

Elementwise tolerance is not the whole story: an int8 classifier whose logits move by 3% but whose top-1 never
changes is fine, and a detector that returns its boxes in another order fails every allclose. One module per task
kind (``classification``, ``detection``, ``regression`` for regression and embeddings, ``image``, ``sequence``);
``kinds`` reads the kind from case.json or infers it where obvious; ``gates`` parses a profile's ``[task]`` gates;
``score`` scores a cell and says what the gates make of it; ``table`` renders the per-device P/R/F1 table.
"""

from __future__ import annotations

from harness.task.gates import TaskGates, parse_task_table, profile_gates
from harness.task.kinds import KINDS, TaskSpec, task_spec
from harness.task.score import FAIL_ON_TASK, KEEP, PASS_ON_TASK, TaskOutcome, judge


def case_task(case) -> TaskSpec | None:
    """The task of a harness.golden.cases.Case (None for none); a bad case.json task raises GoldenError."""
    return task_spec(case.manifest.task if case.has_manifest else None, case.info, str(case.path / "case.json"))


__all__ = ["FAIL_ON_TASK", "KEEP", "KINDS", "PASS_ON_TASK", "TaskGates", "TaskOutcome", "TaskSpec", "case_task",
           "judge", "parse_task_table", "profile_gates", "task_spec"]
