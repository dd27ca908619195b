"""One side of the comparison: a profile, the model as that profile runs it (its precision transform applied), and
a worker from the pool that runs it, as a cell of ``harness run`` would.

Each run loads a session on a copy of the model with some intermediates exposed as extra outputs and runs one data
set through the worker protocol, so fp16/int8 transforms, EP options, launchers and memory limits all apply as
in a run. The exposed copy is written to a scratch folder and deleted after the run; its session is released by
the worker on the next load.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from harness.errors import UsageError
from harness.localize.expose import expose, unexpose
from harness.model.transform_spec import (
    TransformFailed,
    TransformNotApplicable,
    TransformSpec,
)
from harness.model.transforms import transform_model
from harness.profiles.schema import Profile
from harness.run.plan import CasePlan
from harness.run.pool import WorkerFailure, WorkerPool


class SideFailed(UsageError):
    """A side could not load or run the (exposed) model: the localisation cannot go on."""


@dataclass
class Observed:
    outputs: dict[str, Any]  # tensor name -> value, for one data set
    placement: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)


def transformed_path(plan: CasePlan, profile: Profile) -> Path:
    """The model this profile runs for this case (the case's own, or its cached precision transform)."""
    spec = TransformSpec.from_profile_fields(profile.transform, profile.keep_io_types, profile.precision_options)
    try:
        return transform_model(plan.case.model_path, plan.info.sha256, spec, plan.calibration_feeds(),
                               plan.calibration_source).path
    except TransformNotApplicable as exc:
        raise UsageError(f"case {plan.case.name!r}: profile {profile.name!r}'s {profile.transform} transform does "
                         f"not apply ({exc.reason}), so there is nothing to localise",
                         hint="pick a profile whose transform applies to this model") from None
    except TransformFailed as exc:
        raise UsageError(f"case {plan.case.name!r}: profile {profile.name!r}'s {profile.transform} transform "
                         f"failed: {exc.message.strip().splitlines()[0][:300] if exc.message.strip() else ''}",
                         hint=exc.hint or "run 'harness run' on the case to see the transform's report") from None


def _has_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in model.graph.initializer)


@contextlib.contextmanager
def saved(model: onnx.ModelProto, source: Path) -> Iterator[Path]:
    """``model`` written to a scratch file for the worker to load, deleted afterwards. A model whose weights are
    in external files is written beside ``source`` (a hidden name), where its relative data paths still resolve."""
    if not _has_external_data(model):
        with tempfile.TemporaryDirectory(prefix="harness-localize-") as work:
            path = Path(work) / "model.onnx"
            onnx.save(model, str(path))
            yield path
        return
    path = source.parent / f".harness-localize-{uuid.uuid4().hex}.onnx"
    try:
        onnx.save(model, str(path))
        yield path
    finally:
        path.unlink(missing_ok=True)


class Side:
    """``edit``: a test-only hook that changes the model this side runs (e.g. perturbs one node's output)."""

    def __init__(self, profile: Profile, plan: CasePlan, dataset: int, pool: WorkerPool, *,
                 timeout_s: float | None = None, edit: Callable[[onnx.ModelProto], None] | None = None) -> None:
        self.profile = profile
        self.plan = plan
        self.dataset = dataset
        self.pool = pool
        self.timeout_s = timeout_s or profile.timeout_s
        self.edit = edit
        self.path = transformed_path(plan, profile)
        self.runs = 0
        self.placement: dict[str, Any] = {}
        self.peak_worker_bytes = 0

    def model(self) -> onnx.ModelProto:
        """The side's model, read afresh (external data left where it is): one copy in memory at a time."""
        model = onnx.load(str(self.path), load_external_data=False)
        if self.edit:
            self.edit(model)
        return model

    def run(self, extra: list[str], model_path: Path | None = None, feed: dict[str, Any] | None = None) -> Observed:
        """The side's outputs plus ``extra`` intermediates on its data set; ``model_path``/``feed``: another
        model (an extracted subgraph) and its inputs instead."""
        if model_path is not None:
            return self._run_file(model_path, feed if feed is not None else self.feed())
        if not extra and self.edit is None:
            return self._run_file(self.path, self.feed())
        model = self.model()
        before = expose(model, extra)
        with saved(model, self.path) as path:
            unexpose(model, before)
            del model
            return self._run_file(path, self.feed())

    def feed(self) -> dict[str, Any]:
        """The inputs of the side's data set, by name."""
        [ds] = [d for d in self.plan.datasets if d.index == self.dataset]
        return dict(ds.inputs)

    def _run_file(self, path: Path, feed: dict[str, Any]) -> Observed:
        worker = self.pool.acquire(self.profile)
        try:
            observed = self._load_and_infer(worker, path, feed)
        except WorkerFailure as failure:
            self.pool.discard(worker)
            raise SideFailed(f"case {self.plan.case.name!r} on profile {self.profile.name!r}: the worker "
                             f"{failure.outcome.lower()}ed: {str(failure)[:300]}",
                             hint="run 'harness run' on the case alone to see the failure") from None
        except BaseException:
            self.pool.discard(worker)
            raise
        self.pool.release(self.profile, worker)
        self.runs += 1
        peak = observed.memory.get("peak") or 0
        self.peak_worker_bytes = max(self.peak_worker_bytes, int(peak) if isinstance(peak, (int, float)) else 0)
        return observed

    def _load_and_infer(self, worker: Any, path: Path, feed: dict[str, Any]) -> Observed:
        deadline = time.monotonic() + self.timeout_s

        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())
        worker.send({"type": "load", "case": self.plan.case.name, "model_path": str(path)}, None,
                    "creating the session")
        loaded = worker.receive(remaining(), "creating the session")
        self._refuse_error(loaded.header, "creating the session")
        worker.send({"type": "infer", "datasets": 1, "measure": None, "dataset_ids": [self.dataset]},
                    {f"{self.dataset}/{k}": v for k, v in feed.items()}, "running inference")
        reply = worker.receive(remaining(), "running inference")
        self._refuse_error(reply.header, "running inference")
        placement = loaded.header.get("placement", {})
        if path == self.path or not self.placement:
            self.placement = placement
        prefix = f"{self.dataset}/"
        outputs = {k[len(prefix):]: v for k, v in reply.tensors.items() if k.startswith(prefix)}
        return Observed(outputs, placement, reply.header.get("memory", {}))

    def _refuse_error(self, header: dict[str, Any], what: str) -> None:
        if header.get("type") != "error":
            return
        first = str(header.get("message", "")).splitlines()[0][:300] if header.get("message") else ""
        raise SideFailed(f"case {self.plan.case.name!r} on profile {self.profile.name!r}: {header.get('kind', 'error')} "
                         f"while {what}: {first}",
                         hint="run 'harness run' on the case with this profile; localisation needs a cell that runs")


def as_array(value: Any) -> np.ndarray | None:
    """A tensor value as an array; None for a sequence, map or absent optional (not compared intermediately)."""
    return value if isinstance(value, np.ndarray) else None
