"""A profile's ``[task]`` table: gates on task metrics, each a small check that writes its own message.

    [task]
    why = "int8 logits move by a few percent; what matters is that the class does not"
    gates = ["top1_agreement >= 0.99", "f1_drop <= 0.01"]

A gate is ``<metric> <op> <number>`` with op one of >=, <=, >, <. It applies to a cell whose task kind produces
that metric (top1_agreement to classifiers, recall to detectors ...) and is ignored by the others; a metric that no
kind produces is refused when the profile is read (a typo would gate nothing).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import ProfileError
from harness.suggest import did_you_mean

# The numeric metrics each kind writes (harness.task.score), which gates may name.
METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("top1_agreement", "topk_agreement", "accuracy", "macro_precision", "macro_recall", "macro_f1",
                       "f1_drop", "accuracy_drop"),
    "detection": ("recall", "precision", "max_coord_error", "min_matched_iou", "mean_matched_iou"),
    "regression": ("cosine_min", "cosine_p5", "cosine_median", "nn_rank_correlation", "nn_top1_agreement",
                   "max_abs_error"),
    "image": ("psnr_db_min", "psnr_db_mean"),
    "sequence": ("exact_match_rate", "mean_edit_distance", "max_edit_distance", "normalized_edit_distance"),
}
METRICS["embedding"] = METRICS["regression"]
ALL_METRICS = tuple(dict.fromkeys(m for names in METRICS.values() for m in names))
_OPS: dict[str, Callable[[float, float], bool]] = {">=": operator.ge, "<=": operator.le, ">": operator.gt,
                                                   "<": operator.lt}
_GATE = re.compile(r"^\s*([A-Za-z0-9_]+)\s*(>=|<=|>|<)\s*([-+0-9.eE]+|inf)\s*$")
TABLE_KEYS = ("gates", "why")


@dataclass(frozen=True)
class Gate:
    metric: str
    op: str
    bound: float

    @property
    def text(self) -> str:
        return f"{self.metric} {self.op} {self.bound:g}"

    def applies(self, kind: str) -> bool:
        return self.metric in METRICS.get(kind, ())

    def check(self, metrics: Mapping[str, Any]) -> str:
        """'' when the metric meets the gate, else why not, with the number: 'top1_agreement 0.95 < 0.99 needed'."""
        value = metrics.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value):
            return f"{self.metric} not measured ({metrics.get('error') or 'no value'}), needs {self.op} {self.bound:g}"
        if _OPS[self.op](float(value), self.bound):
            return ""
        return f"{self.metric} {value:.6g} fails {self.op} {self.bound:g}"


@dataclass(frozen=True)
class TaskGates:
    gates: tuple[Gate, ...] = ()
    why: str = ""

    def for_kind(self, kind: str) -> tuple[Gate, ...]:
        return tuple(g for g in self.gates if g.applies(kind))

    def to_dict(self) -> dict[str, Any]:
        return {"gates": [g.text for g in self.gates], "why": self.why}


def parse_gate(text: Any, where: str) -> Gate:
    """One gate string, refused in one line when it does not parse or names no metric."""
    found = _GATE.match(text) if isinstance(text, str) else None
    if not found:
        raise ProfileError(f"{where}: task gate {text!r} is not '<metric> <op> <number>'",
                           hint="e.g. \"top1_agreement >= 0.99\"; op is one of >=, <=, >, <")
    metric, op, number = found.groups()
    if metric not in ALL_METRICS:
        raise ProfileError(f"{where}: task gate {text!r} names no task metric{did_you_mean(metric, ALL_METRICS)}",
                           hint=f"metrics: {', '.join(ALL_METRICS)}")
    try:
        bound = float(number)
    except ValueError:
        raise ProfileError(f"{where}: task gate {text!r}: {number!r} is not a number") from None
    return Gate(metric, op, bound)


def parse_task_table(table: Any, where: str) -> TaskGates:
    """The ``[task]`` table of a profile (``where`` names the file), checked strictly."""
    if not isinstance(table, dict):
        raise ProfileError(f"{where}: [task] must be a table with gates = [...]")
    unknown = [k for k in table if k not in TABLE_KEYS]
    if unknown:
        raise ProfileError(f"{where} [task]: unknown key {unknown[0]!r}{did_you_mean(unknown[0], TABLE_KEYS)}",
                           hint="known keys: gates, why")
    gates = table.get("gates", [])
    if not isinstance(gates, list) or not gates:
        raise ProfileError(f"{where} [task]: gates must be a non-empty list of strings",
                           hint="e.g. gates = [\"top1_agreement >= 0.99\", \"f1_drop <= 0.01\"]")
    why = table.get("why", "")
    if not isinstance(why, str):
        raise ProfileError(f"{where} [task]: why must be a string")
    return TaskGates(tuple(parse_gate(g, f"{where} [task]") for g in gates), why)


def profile_gates(profile: Any) -> TaskGates:
    """The task gates of a profile (harness.profiles.schema parses its ``[task]`` table into ``task_gates``); none
    for an object without them (a profile built by hand)."""
    gates = getattr(profile, "task_gates", None)
    return gates if isinstance(gates, TaskGates) else TaskGates()
