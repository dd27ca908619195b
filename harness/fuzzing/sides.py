"""Run one small graph on one profile, again and again, through workers that stay up: what localising and shrinking
a finding need (dozens of runs of candidate graphs), where a ``run_matrix`` per candidate would start every worker
anew.

Each run goes through harness.localize's ``Side``: the profile's precision transform, EP options, launcher and
worker protocol apply as in a cell of ``harness run``, and intermediates can be exposed as extra outputs.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from harness.errors import HarnessError
from harness.golden.cases import Case, load_case
from harness.golden.layout import MODEL_NAME, write_dataset
from harness.localize.sides import Side
from harness.profiles.schema import Profile
from harness.run.plan import plan_case
from harness.run.pool import WorkerPool


@dataclass
class Outcome:
    """A profile's outputs on one graph (name -> value, intermediates included when asked), or why it failed:
    ``failure`` is the one line the worker or the transform gave."""

    outputs: dict[str, Any]
    failure: str = ""

    @property
    def ok(self) -> bool:
        return not self.failure


def write_case(folder: Path, model: onnx.ModelProto, feed: dict[str, np.ndarray],
               outputs: dict[str, Any] | None = None) -> Path:
    """A case folder in the ONNX test-data layout: model.onnx and test_data_set_0 (inputs; goldens if given)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_NAME).write_bytes(model.SerializeToString(deterministic=True))
    names = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
    out_names = [o.name for o in model.graph.output] if outputs else []
    write_dataset(folder, 0, feed, outputs or {}, names, out_names, force=True)
    return folder


class Runner:
    """Profiles' workers kept in one pool for the life of a campaign; ``run`` takes a case folder."""

    def __init__(self, timeout_s: float) -> None:
        self.pool = WorkerPool()
        self.timeout_s = timeout_s
        self.runs = 0

    def close(self) -> None:
        self.pool.close()

    def run(self, case: Case, profile: Profile, extra: list[str] | None = None) -> Outcome:
        self.runs += 1
        try:
            plan = plan_case(case, dims={}, seed=0)
            side = Side(profile, plan, 0, self.pool, timeout_s=min(self.timeout_s, profile.timeout_s))
            if extra:
                present = _node_outputs(side.model())
                extra = [t for t in extra if t in present]
            return Outcome(side.run(extra or []).outputs)
        except HarnessError as exc:  # SideFailed (a crash, a timeout, an error reply) or a transform that failed
            return Outcome({}, exc.message[:400])

    def run_model(self, model: onnx.ModelProto, feed: dict[str, np.ndarray], profile: Profile,
                  extra: list[str] | None = None) -> Outcome:
        """``run`` on a graph not yet in a folder: written to a scratch case folder, removed afterwards."""
        work = Path(tempfile.mkdtemp(prefix="harness-fuzz-"))
        try:
            return self.run(load_case(write_case(work / "case", model, feed), "candidate"), profile, extra)
        finally:
            shutil.rmtree(work, ignore_errors=True)


def _node_outputs(model: onnx.ModelProto) -> set[str]:
    return {t for n in model.graph.node for t in n.output if t}


__all__ = ["Outcome", "Runner", "write_case"]
