"""When two runs of one graph disagree: the harness's own verdict rule, applied between any two profiles.

Against the reference profile, a profile is judged exactly as ``harness run`` judges it (harness.run.verdict's
``compare_datasets``: its declared tolerance layers, or the case's calibrated rule where case.json has one).
Between two device profiles neither is the truth, so the looser of the two rules decides: they disagree only when
each one's outputs fail the other's tolerance. ``Disagreement`` is what one such failure says, in plain JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from harness.golden.cases import Case
from harness.golden.layout import DataSet
from harness.profiles.schema import Profile
from harness.run.verdict import compare_datasets

KIND_MISMATCH = "mismatch"  # outputs differ beyond tolerance
FAILURE_KINDS = ("CRASH", "TIMEOUT", "OOM", "ERROR")  # a cell that did not finish: a finding of its own kind


@dataclass
class Disagreement:
    """``profile`` against ``other`` on one graph: kind is "mismatch" or a failing cell's verdict; ``outputs``
    names the outputs beyond tolerance and ``reasons`` their first reason lines (the comparator's own words)."""

    profile: str
    other: str
    kind: str
    outputs: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    explained_by: str = ""  # a pairwise disagreement that a reference disagreement of one side already explains

    @property
    def pair(self) -> str:
        return f"{self.profile}~{self.other}" if self.other else self.profile

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _as_datasets(inputs: dict[str, Any], outputs: dict[str, Any]) -> list[DataSet]:
    return [DataSet(0, None, dict(inputs), dict(outputs))]


def failing_outputs(case: Case, profile: Profile, inputs: dict[str, Any], expected: dict[str, Any],
                    actual: dict[str, Any], against: str) -> list[tuple[str, str]]:
    """(output, first reason) for each output of ``actual`` (one data set, keyed by output name) beyond the
    profile's tolerance of ``expected``."""
    compared = compare_datasets(case, profile, _as_datasets(inputs, expected), {f"0/{k}": v for k, v in actual.items()},
                                against=against)
    return [(c.name, (c.reasons or ["beyond tolerance"])[0]) for _, c in compared if not c.passed]


def judge_pair(case: Case, first: Profile, second: Profile, inputs: dict[str, Any], first_out: dict[str, Any],
               second_out: dict[str, Any], reference: str) -> Disagreement | None:
    """A mismatch between two profiles' outputs, or None. Against ``reference`` (the second profile's name) the
    first profile's rule decides; between two device profiles, both rules must fail."""
    failed = failing_outputs(case, first, inputs, second_out, first_out, second.name)
    if failed and second.name != reference:
        back = {name for name, _ in failing_outputs(case, second, inputs, first_out, second_out, first.name)}
        failed = [(name, why) for name, why in failed if name in back]
    if not failed:
        return None
    return Disagreement(first.name, second.name, KIND_MISMATCH, [n for n, _ in failed], [w for _, w in failed])


__all__ = ["FAILURE_KINDS", "KIND_MISMATCH", "Disagreement", "failing_outputs", "judge_pair"]
