"""What runs on a lab host: one cell observed exactly as a local run observes it, in this host's isolated worker.

A Ray task calls ``observe_cell`` with the case (``SharedCase``: the plan with its inputs and goldens, and the
model's bytes, put into the object store once per case and shared by every cell of it), the profile and the
cell's result so far. The host writes the model into its cache (once per model), runs the local executor's
observation on it (``Executor._observe``: transform, load, infer, judge against the goldens), and sends back
what the head needs to finish the cell as a local run would: the result, the worker failure if the worker
died (a CRASH, TIMEOUT or OOM cell, never a Ray retry), the latency samples for the head's evaluation, the
artifact files, the log lines and the captured outputs of a reference cell.

The harness's workers live in a pool per Ray worker process, reused by the next cell of the same profile that
Ray sends to that process; they die with it (PR_SET_PDEATHSIG), so a cancelled task leaves no worker behind.
"""

from __future__ import annotations

import hashlib
import socket
import tempfile
from dataclasses import dataclass, field, is_dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_write_bytes
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.executor import Availability, Executor, RunOptions, probe
from harness.run.plan import CasePlan
from harness.run.pool import WorkerFailure, WorkerPool
from harness.setup import cache_root

_POOL: WorkerPool | None = None  # this Ray worker process's harness workers, reused across its cells


def _pool() -> WorkerPool:
    global _POOL
    if _POOL is None:
        _POOL = WorkerPool()
    return _POOL


@dataclass
class SharedCase:
    """A case as a host receives it: the plan (inputs, goldens or a reference's outputs, calibration inputs)
    and the model file's bytes, with its external data files where it has any."""

    plan: CasePlan
    files: dict[str, bytes]
    model_name: str
    digest: str

    @classmethod
    def of(cls, plan: CasePlan) -> SharedCase:
        path = plan.case.model_path
        names = [path] + (sorted(p for p in path.parent.iterdir() if p.is_file() and p != path)
                          if plan.info.has_external_data else [])
        files = {p.name: p.read_bytes() for p in names}
        digest = hashlib.sha256()
        for name, data in files.items():
            digest.update(name.encode("utf-8", "surrogatepass") + b"\0" + hashlib.sha256(data).digest())
        return cls(plan, files, path.name, digest.hexdigest())

    def local_plan(self) -> CasePlan:
        """The plan with the model at its copy in this host's cache (written once per model and host)."""
        folder = cache_root() / "lab" / self.digest[:32]
        for name, data in self.files.items():
            target = folder / name
            if not target.is_file() or target.stat().st_size != len(data):
                atomic_write_bytes(target, data)
        model = folder / self.model_name
        case = replace(self.plan.case, model_file=model)
        info = replace(self.plan.info, path=model) if is_dataclass(self.plan.info) else self.plan.info
        return replace(self.plan, case=case, info=info)


@dataclass
class Observed:
    """A host's answer for one cell."""

    result: R.CellResult
    host: str
    failure: dict[str, str] | None = None  # the worker died or hung: WorkerFailure's outcome, message, signal, stderr
    judged: bool = False  # the cell was judged, so the head's evaluation (latency statistics, budgets) applies
    samples: np.ndarray | None = None  # latency samples, for the head's evaluation
    captured: dict[str, Any] | None = None  # a reference cell's (or bless's) actual outputs
    files: dict[str, bytes] = field(default_factory=dict)  # artifacts, by path relative to the run folder
    logs: list[tuple[str, str]] = field(default_factory=list)
    write_errors: list[str] = field(default_factory=list)


def host_name() -> str:
    """This host as the record names it: host name, address and Ray node id (one machine may run several nodes)."""
    import ray
    context = ray.get_runtime_context()
    return f"{socket.gethostname()} ({ray.util.get_node_ip_address()}, node {context.get_node_id()[:12]})"


def observe_cell(shared: SharedCase, profile: Profile, result: R.CellResult, as_reference: bool,
                 settings: dict[str, Any]) -> Observed:
    """Observe one cell here as the local executor does; ``settings``: timeout_s, measure (the sampling spec the
    head computed for this cell, or None), save_outputs, capture_outputs."""
    plan = shared.local_plan()
    observed = Observed(result, host_name())
    measure = settings.get("measure")

    def judged(_result: R.CellResult, _plan: CasePlan, _profile: Profile, samples: np.ndarray | None) -> None:
        observed.judged, observed.samples = True, samples

    with tempfile.TemporaryDirectory(prefix="harness-lab-") as scratch:
        out = Path(scratch)
        options = RunOptions(out, 1, settings.get("timeout_s"), measure=(lambda _p, _c: measure) if measure else None,
                             evaluate=judged, capture_outputs=bool(settings.get("capture_outputs")),
                             log=lambda source, text: observed.logs.append((source, text)),
                             save_outputs=str(settings.get("save_outputs", "failing")))
        executor = Executor(options, None, _pool())
        try:
            executor._observe(plan, profile, result, as_reference)
        except WorkerFailure as failure:
            observed.failure = {"outcome": failure.outcome, "message": str(failure),
                                "signal_name": failure.signal_name, "stderr_tail": failure.stderr_tail}
        observed.files = {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
    observed.captured = executor.captured.get(result.key)
    observed.write_errors = executor.write_errors
    return observed


def probe_profile(profile: Profile) -> tuple[Availability, str]:
    """Can the profile run on this host? As ``harness profiles`` checks it locally, in this process's pool."""
    return probe(profile, _pool()), host_name()


__all__ = ["Observed", "SharedCase", "host_name", "observe_cell", "probe_profile"]
