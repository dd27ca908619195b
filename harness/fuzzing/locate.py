"""The first node where two profiles part ways on a fuzzed graph, by harness.localize's scope rule.

The fuzzer's graphs are small (tens of values), so every intermediate is exposed in one run per side instead of
harness.localize's bounded batches, and the two workers are the campaign's own (``sides.Runner``). Each value is
judged with ``harness.localize.scope.judge``: its error relative to its own magnitude, against the profile's
relative tolerance for its dtype plus ``growth`` times the error its node's inputs already carried, so a node that
only passes on its inputs' error is not blamed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx

from harness.compare.tolerances import resolve_tolerance
from harness.fuzzing.sides import Runner
from harness.golden.cases import Case
from harness.localize.rank import attributes
from harness.localize.scope import DEFAULT_GROWTH, base_of, judge
from harness.profiles.schema import Profile
from harness.run.verdict import tolerance_layers


@dataclass
class Divergence:
    node: str
    op: str
    index: int  # in graph order
    attributes: dict[str, str]
    tensor: str
    error: float
    allowed: float

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "op": self.op, "index": self.index, "attributes": self.attributes,
                "tensor": self.tensor, "error": _finite(self.error), "allowed": _finite(self.allowed)}


def _finite(x: float) -> float | str:
    return x if np.isfinite(x) else "inf"


def first_divergence(runner: Runner, case: Case, model: onnx.ModelProto, profile: Profile, other: Profile
                     ) -> Divergence | None:
    """The first node (graph order) whose output is beyond the scope rule; None when a side fails to run exposed
    or no intermediate is beyond it (the outputs alone disagree)."""
    names = [t for n in model.graph.node for t in n.output if t]
    mine, theirs = runner.run(case, profile, names), runner.run(case, other, names)
    if not (mine.ok and theirs.ok):
        return None
    carried: dict[str, float] = {}
    for index, node in enumerate(model.graph.node):
        received = max((carried.get(t, 0.0) for t in node.input if t), default=0.0)
        for name in (t for t in node.output if t):
            ref, act = theirs.outputs.get(name), mine.outputs.get(name)
            if not (isinstance(ref, np.ndarray) and isinstance(act, np.ndarray)):
                carried[name] = received
                continue
            tolerance = resolve_tolerance(ref.dtype, act.dtype, tolerance_layers(case, profile, name, ref.dtype))
            scored = judge(name, ref, act, received, base_of(tolerance), DEFAULT_GROWTH)
            carried[name] = scored.error
            if scored.beyond:
                return Divergence(node.name, node.op_type, index, attributes(node), name, scored.error, scored.allowed)
    return None


__all__ = ["Divergence", "first_divergence"]
