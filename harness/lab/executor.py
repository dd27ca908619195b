"""The local executor with each cell observed on a lab host (a Ray task) instead of in a local worker.

Everything around the observation stays the local run's: the queue of cells, the journal line per finished
cell, the verdict of an unavailable profile, known failures, the evaluation (latency statistics, budgets,
baseline regressions) and the artifacts, which the host sends back and the head writes into the run folder.

The failure policy (the harness decides; Ray never retries a task by itself):
- a worker that crashes, hangs or runs out of memory on the host is the cell's CRASH, TIMEOUT or OOM, as locally;
- a host that dies (its node, its Ray worker process or an object lost) is infrastructure: the cell is sent to
  another live host offering its profile, up to ``MAX_RESENDS`` times, and is LOST when none is left;
- a cell past its deadline (``cluster.cell_deadline``) is cancelled (``ray.cancel(force=True)``) and sent once
  more; past it again, it is LOST.
A LOST cell's detail says what happened to each try (error kind "lost"). It is journalled like any cell and
fails the run; ``--resume`` runs it again.

Cells of a profile are in flight at most as many at a time as the hosts offer slots for it, so a cell's deadline
and its duration count its own run (and its tries), not its wait behind others in Ray's queue.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from functools import partial
from itertools import zip_longest
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_bytes
from harness.lab import cluster, resource_name
from harness.lab.remote import Observed, SharedCase, observe_cell, probe_profile
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.executor import Availability, Executor, RunOptions
from harness.run.plan import CasePlan
from harness.run.pool import HELLO_TIMEOUT_S, WorkerFailure, WorkerPool

MAX_RESENDS = 3  # a cell whose host died is sent again at most this many times
MAX_IN_FLIGHT = 256  # threads with a cell at once (waiting for a slot or for the host's answer)
PROBE_DEADLINE_S = HELLO_TIMEOUT_S + 60.0
READY, LATE, DIED, NO_HOST = "ready", "late", "died", "no_host"  # how a try ended
HOST_CHECK_S = 5.0  # while a cell waits, how often the head checks that a live host still offers its profile


class CellLost(Exception):
    """The lab could not run the cell to its end: its hosts died or never answered."""


class LabExecutor(Executor):
    """``Executor`` whose cells run on the Ray cluster at ``address`` (connected on construction)."""

    def __init__(self, address: str, options: RunOptions, journal: R.Journal | None,
                 pool: WorkerPool | None = None) -> None:
        super().__init__(options, journal, pool)
        self.address = address
        self.ray = cluster.import_ray()
        self._owns_connection = cluster.connect(address)
        remote = self.ray.remote(num_cpus=0, max_retries=0)
        self._observe_task = remote(observe_cell)
        self._probe_task = remote(probe_profile)
        self._shared: dict[tuple[int, str, bool], Any] = {}
        self._shared_lock = threading.Lock()
        self._slots: dict[str, threading.Semaphore] = {}
        self._gone: set[str] = set()  # profiles whose last host died during the run: their cells are LOST at once
        self.offered: dict[str, int] = {}

    # -- probing -------------------------------------------------------------------------------------------------

    def probe_all(self, profiles: list[Profile]) -> dict[str, Availability]:
        """Each profile's availability in the lab: SKIPPED with the reason where no live host offers it, else
        probed on one host that does (a session created and run there, as ``harness profiles`` does)."""
        self.offered = cluster.offered_slots()
        self._slots = {name: threading.Semaphore(count) for name, count in self.offered.items()}
        wanted = [p for p in profiles if p.name in self.offered]
        # a thread per cell (up to MAX_IN_FLIGHT), each waiting for a slot of its profile: a slow profile whose
        # cells wait for its few slots never holds the threads that another profile's free slots need
        self.options.jobs = MAX_IN_FLIGHT
        refs = {p.name: self._probe_task.options(resources={resource_name(p.name): 1}).remote(p) for p in wanted}
        found = {p.name: self._not_offered(p) for p in profiles if p.name not in self.offered}
        for name, ref in refs.items():
            found[name] = self._probe_answer(name, ref)
        return found

    def _not_offered(self, profile: Profile) -> Availability:
        offers = ", ".join(f"{name} ({n})" for name, n in sorted(self.offered.items())) or "none"
        return Availability(False, f"no host of the Ray lab at {self.address} offers profile {profile.name!r} "
                                   f"(profiles offered: {offers}); join a host that runs it with 'harness lab join "
                                   f"--address HEAD --profiles {profile.name}'", kind="no_host")

    def _probe_answer(self, name: str, ref: Any) -> Availability:
        ray = self.ray
        try:
            ready, _ = ray.wait([ref], timeout=PROBE_DEADLINE_S)
            if not ready:
                ray.cancel(ref, force=True)
                return Availability(False, f"no lab host answered the probe of profile {name!r} within "
                                           f"{PROBE_DEADLINE_S:.0f} s", kind="start_failed")
            state, host = ray.get(ref)
        except ray.exceptions.RayError as exc:
            return Availability(False, f"the probe of profile {name!r} on the lab failed: {_first_line(exc)}",
                                kind="start_failed")
        state.hello = {**state.hello, "lab_host": host}
        return state

    # -- running -------------------------------------------------------------------------------------------------

    def run(self, cells: list[tuple[CasePlan, Profile]], availability: dict[str, Availability],
            on_done: Callable[[R.CellResult], None] | None = None, *,
            as_reference: bool = False, on_start: Callable[[str, str], None] | None = None) -> list[R.CellResult]:
        """As the local executor, with the cells taken in turn from each profile (the matrix lists a profile's
        cells together), so that every profile's hosts have work from the start; results in the given order."""
        order = _round_robin(cells)
        done = super().run([cells[i] for i in order], availability, on_done, as_reference=as_reference,
                           on_start=on_start)
        results: list[R.CellResult] = [done[0]] * len(cells) if cells else []
        for position, index in enumerate(order):
            results[index] = done[position]
        return results

    def run_cell(self, plan: CasePlan, profile: Profile, availability: Availability,
                 as_reference: bool = False) -> R.CellResult:
        slot = self._slots.get(profile.name) if availability.available else None
        with slot or nullcontext():  # the cell's time on the lab starts when a host has a slot for it
            start = time.perf_counter()
            try:
                return super().run_cell(plan, profile, availability, as_reference)
            except CellLost as lost:
                return self._lost(plan, profile, lost, time.perf_counter() - start)

    @staticmethod
    def _lost(plan: CasePlan, profile: Profile, lost: CellLost, took: float) -> R.CellResult:
        """A LOST cell: infrastructure, not the cell's verdict, so no known failure applies to it."""
        return R.CellResult(plan.case.name, profile.name, R.LOST, detail=str(lost),
                            error={"kind": "lost", "message": str(lost)},
                            model={"sha256": plan.info.sha256, "transform": profile.transform,
                                   "nodes": plan.info.node_count, "op": getattr(plan.case, "op", "")},
                            duration_s=round(took, 4))

    def _observe(self, plan: CasePlan, profile: Profile, result: R.CellResult, as_reference: bool = False) -> None:
        """The local observation, run on a lab host; then what the host sent back, taken as a local run takes it."""
        settings = {"timeout_s": self.options.timeout_s, "save_outputs": self.options.save_outputs,
                    "capture_outputs": self.options.capture_outputs,
                    "measure": self.options.measure(profile, plan) if self.options.measure else None}
        observed = self._send(plan, profile, result, as_reference, settings)
        self._take(observed, plan, profile, result)

    def _send(self, plan: CasePlan, profile: Profile, result: R.CellResult, as_reference: bool,
              settings: dict[str, Any]) -> Observed:
        """Submit the cell and wait for it under its deadline; send it again where the failure policy says so."""
        task = self._observe_task.options(resources={resource_name(profile.name): 1})
        call = partial(task.remote, self._shared_ref(plan), profile, result, as_reference, settings)
        deadline = cluster.cell_deadline(self.options.timeout_s or profile.timeout_s)
        kinds: list[str] = []
        tries: list[str] = []  # how each try ended
        while True:
            outcome = self._try(call, deadline, profile.name)
            if isinstance(outcome, Observed):
                return outcome
            kinds.append(outcome[0])
            tries.append(outcome[1])
            if outcome[0] == NO_HOST or kinds.count(LATE) > 1 or kinds.count(DIED) > MAX_RESENDS:
                raise CellLost(f"case {plan.case.name!r} on profile {profile.name!r}: " + "; then ".join(tries))

    def _try(self, call: Callable[[], Any], deadline: float, profile: str) -> Observed | tuple[str, str]:
        """One try: the host's answer, or why there is none (NO_HOST, LATE, DIED) in words."""
        if profile in self._gone:
            return NO_HOST, "no live host offers the profile any more (its last host died during the run)"
        ray = self.ray
        ref = call()
        state = self._wait(ref, deadline, profile)
        if state != READY:
            ray.cancel(ref, force=True)
            if state == NO_HOST:
                self._gone.add(profile)
                return NO_HOST, "no live host offers the profile any more (its last host died during the run)"
            return LATE, f"no answer within its deadline of {deadline:g} s (cancelled)"
        try:
            return ray.get(ref)
        except ray.exceptions.RayTaskError:
            raise  # the harness failed on the host: the cell's harness error, as it would be locally
        except ray.exceptions.RayError as exc:  # the node, its worker process or an object was lost
            if not cluster.hosts_offering(profile):
                self._gone.add(profile)
            return DIED, f"its host was lost ({type(exc).__name__}: {_first_line(exc)[:200]})"

    def _wait(self, ref: Any, deadline: float, profile: str) -> str:
        """READY, LATE (past the deadline) or NO_HOST: no live host offers the profile, so the task would wait in
        Ray's queue for a host that never comes (checked every ``HOST_CHECK_S`` while waiting)."""
        end = time.monotonic() + deadline
        while True:
            left = end - time.monotonic()
            ready, _ = self.ray.wait([ref], timeout=max(0.0, min(left, HOST_CHECK_S)))
            if ready:
                return READY
            if left <= HOST_CHECK_S:
                return LATE
            if not cluster.hosts_offering(profile):
                return NO_HOST

    def _shared_ref(self, plan: CasePlan) -> Any:
        """The case in the object store, put once and shared by its cells (again after a reference run gave it
        the outputs to compare with)."""
        key = (id(plan), plan.against, plan.has_goldens)
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = self.ray.put(SharedCase.of(plan))
            return self._shared[key]

    def _take(self, observed: Observed, plan: CasePlan, profile: Profile, result: R.CellResult) -> None:
        """The host's answer into the head's cell and run folder, as the local observation would have left them."""
        for name, value in observed.result.to_dict().items():
            setattr(result, name, value)
        result.host = observed.host
        for relative, data in observed.files.items():
            self._keep_file(result, relative, data)
        if self.options.log:
            for source, text in observed.logs:
                self.options.log(f"{source} [{observed.host}]", text)
        self.write_errors.extend(observed.write_errors)
        if observed.captured is not None:
            self.captured[result.key] = observed.captured
        if observed.failure is not None:
            failure = observed.failure
            raise WorkerFailure(failure["outcome"], failure["message"], signal_name=failure["signal_name"],
                                stderr_tail=failure["stderr_tail"])
        if observed.judged and self.options.evaluate:
            self.options.evaluate(result, plan, profile, observed.samples)

    def _keep_file(self, result: R.CellResult, relative: str, data: bytes) -> None:
        path = Path(relative)
        if path.is_absolute() or ".." in path.parts:  # the host's own scratch folder only; never elsewhere
            self.write_errors.append(f"could not write the artifact {relative!r} of case {result.case!r} on profile "
                                     f"{result.profile!r}: a path outside the run folder")
            return
        try:
            atomic_write_bytes(self.options.out_dir / path, data)
        except OSError as exc:
            result.error.setdefault("artifacts", f"{relative}: {exc.strerror or exc}")
            self._write_failed(f"artifact {relative} of case {result.case!r} on profile {result.profile!r}", exc)

    def close(self) -> None:
        super().close()
        if self._owns_connection:
            self._owns_connection = False
            cluster.disconnect()


def _round_robin(cells: list[tuple[CasePlan, Profile]]) -> list[int]:
    """Indices of ``cells`` taking one cell of each profile in turn."""
    by_profile: dict[str, list[int]] = {}
    for index, (_, profile) in enumerate(cells):
        by_profile.setdefault(profile.name, []).append(index)
    return [i for turn in zip_longest(*by_profile.values()) for i in turn if i is not None]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


__all__ = ["MAX_RESENDS", "CellLost", "LabExecutor"]
