"""Plan -> run -> observation -> verdict, one cell (case x profile) at a time, in isolated workers.

Up to ``jobs`` cells run in parallel, each thread borrowing a worker for the cell's profile from the pool.
Every finished cell is journalled at once, so a killed run loses nothing that had finished.
"""

from __future__ import annotations

import hashlib
import io
import queue
import re
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.atomic import atomic_write_bytes
from harness.errors import GoldenError
from harness.golden.layout import value_bytes, value_digest, value_kind
from harness.model.transform_spec import (
    TransformFailed,
    TransformNotApplicable,
    TransformSpec,
)
from harness.model.transforms import transform_model
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.plan import CasePlan
from harness.run.pool import (
    FIXABLE_BY_INSTALL,
    WorkerFailure,
    WorkerPool,
    importable,
    missing_requirements,
)
from harness.run.runner import InProcessRunner, Runner
from harness.run.verdict import apply_known_failure, compare_datasets, numeric_verdict
from harness.task import FAIL_ON_TASK, PASS_ON_TASK, case_task, profile_gates
from harness.task import judge as judge_task
from harness.worker.protocol import value_nbytes

PIPE_HEADROOM = 32 * 1024  # room for the frame prefix and JSON header


@dataclass
class RunOptions:
    out_dir: Path
    jobs: int = 1
    timeout_s: float | None = None
    measure: Callable[[Profile, CasePlan], dict[str, Any]] | None = None
    evaluate: Callable[[R.CellResult, CasePlan, Profile, np.ndarray | None], None] | None = None
    capture_outputs: bool = False  # keep actual outputs in memory (bless)
    in_process: bool = False  # debugging: run cells in this process (no isolation, timeouts or limits)
    log: Callable[[str, str], None] | None = None  # (source, text): library output kept off the terminal
    save_outputs: str = "failing"  # whose actual outputs go beside the record: "all", "failing" (FAIL) or "none"
    tolerance: str = "auto"  # which rule judges a calibrated case: auto, calibrated, declared (run/verdict.py)


# What ONNX Runtime 1.32 says when it cannot create a session because it does not implement something the model
# uses: a status of NOT_IMPLEMENTED ("Could not find an implementation for Relu(14) node with name ''" for a
# type with no kernel), an opset newer than its release ("Opset 30 is under development and support for this is
# limited"), or an op it does not know ("com.x:Foo(-1) is not a registered function/op").
UNSUPPORTED_STATUS = ("NOT_IMPLEMENTED",)
UNSUPPORTED_WORDS = ("Could not find an implementation for", "is under development and support for this is limited",
                     "is not a registered function/op",
                     # no EP took the node (a plugin EP declined it and the CPU EP has no kernel either)
                     "!node_provider_type.empty() was false")


def is_unsupported(header: dict[str, Any]) -> bool:
    """A worker's error reply to a load that says ORT does not implement what the model needs."""
    message = str(header.get("message", ""))
    return header.get("status") in UNSUPPORTED_STATUS or any(w in message for w in UNSUPPORTED_WORDS)


@dataclass
class Availability:
    available: bool
    reason: str = ""
    hello: dict[str, Any] = field(default_factory=dict)
    # Why not: "not_installed" (a pip install fixes it), "not_in_build" (another onnxruntime build fixes it),
    # "no_device", "env_unset", "load_failed", "start_failed".
    kind: str = ""


def probe(profile: Profile, pool: WorkerPool) -> Availability:
    """Is the profile runnable here? Missing packages are found without a process; the EP/device check
    runs in a worker (a plugin that crashes on load must not take the harness down)."""
    reason = missing_requirements(profile)
    if reason:
        uninstalled = any(not importable(p) for p in profile.requires_packages)
        return Availability(False, reason, kind="not_installed" if uninstalled else "env_unset")
    try:
        worker = pool.acquire(profile)
    except WorkerFailure as failure:
        return Availability(False, f"worker failed to start: {failure} {failure.stderr_tail[-300:]}",
                            kind="start_failed")
    hello = worker.hello
    if not hello.get("available"):
        pool.discard(worker)
        kind = hello.get("unavailable", "no_device")
        fix = f"; fix: {profile.install_hint}" if profile.install_hint and kind in FIXABLE_BY_INSTALL else ""
        return Availability(False, f"{hello.get('reason', 'unavailable')}{fix}", hello, kind)
    pool.release(profile, worker)
    return Availability(True, "", hello)


def _safe(name: str, limit: int = 60) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:limit].lstrip(".") or "_"


def cell_dir_name(case: str, profile: str) -> str:
    """The cell's artifact folder under cells/: a readable slug plus a hash of the exact (case, profile) key,
    so cases 'a/b' and 'a_b' (one slug) never share a folder, and any name stays well under NAME_MAX."""
    digest = hashlib.sha256(R.cell_key(case, profile).encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return f"{_safe(case)}__{_safe(profile, 40)}-{digest}"


class Executor:
    def __init__(self, options: RunOptions, journal: R.Journal | None, pool: WorkerPool | None = None) -> None:
        self.options = options
        self.journal = journal
        self.pool = pool or WorkerPool(InProcessRunner if options.in_process else None)
        self._journal_lock = threading.Lock()
        self.noise: dict[str, Any] = {}
        self.write_errors: list[str] = []  # artifacts that could not be written, one line each
        self.journal_errors: list[str] = []  # journal lines that could not be written (moot once the record is)
        self.captured: dict[str, dict[str, np.ndarray]] = {}

    def run(self, cells: list[tuple[CasePlan, Profile]], availability: dict[str, Availability],
            on_done: Callable[[R.CellResult], None] | None = None, *,
            as_reference: bool = False, on_start: Callable[[str, str], None] | None = None) -> list[R.CellResult]:
        """Run cells, ``jobs`` at a time. ``as_reference``: these cells' outputs become the comparison for
        cases without goldens; they are kept in ``captured`` and the cells PASS when they ran. ``on_start(case,
        profile)`` and ``on_done(result)`` tell a progress display which cell starts and which finished."""
        todo: queue.Queue = queue.Queue()
        for index, cell in enumerate(cells):
            todo.put((index, cell))
        results: list[R.CellResult | None] = [None] * len(cells)

        def work() -> None:
            while True:
                try:
                    index, (plan, profile) = todo.get_nowait()
                except queue.Empty:
                    return
                if on_start:
                    on_start(plan.case.name, profile.name)
                try:
                    result = self.run_cell(plan, profile, availability[profile.name], as_reference)
                except Exception as exc:  # a harness bug costs this cell, never the run or its record
                    result = R.CellResult(plan.case.name, profile.name, R.ERROR,
                                          model={"op": getattr(plan.case, "op", ""), "sha256": plan.info.sha256},
                                          detail=f"harness error: {type(exc).__name__}: {exc}",
                                          error={"kind": "harness", "message": traceback.format_exc()[-4000:]})
                results[index] = result
                with self._journal_lock:
                    try:
                        if self.journal:
                            self.journal.cell(result)
                        if on_done:
                            on_done(result)
                    except Exception as exc:  # a full disk must not silently drop the cells still queued
                        result.error.setdefault("journal", f"{type(exc).__name__}: {exc}")
                        self._write_failed(f"journal line for case {result.case!r} on profile {result.profile!r}",
                                           exc, self.journal_errors)

        threads = [threading.Thread(target=work, daemon=True) for _ in range(max(1, min(self.options.jobs, len(cells))))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return [r if r is not None else R.CellResult(plan.case.name, profile.name, R.ERROR,
                                                     detail="harness error: the cell was never run")
                for r, (plan, profile) in zip(results, cells)]

    def run_cell(self, plan: CasePlan, profile: Profile, availability: Availability,
                 as_reference: bool = False) -> R.CellResult:
        start = time.perf_counter()
        result = R.CellResult(plan.case.name, profile.name, R.SKIPPED,
                              model={"sha256": plan.info.sha256, "transform": profile.transform,
                                     "nodes": plan.info.node_count, "op": getattr(plan.case, "op", "")})
        if not availability.available:
            result.detail = availability.reason
            return result
        try:
            self._observe(plan, profile, result, as_reference)
        except WorkerFailure as failure:
            result.verdict, result.detail = failure.outcome, str(failure)
            result.error = {"kind": failure.outcome.lower(), "message": str(failure), "signal": failure.signal_name,
                            "stderr_tail": failure.stderr_tail}
        result.duration_s = round(time.perf_counter() - start, 4)
        return apply_known_failure(result, profile)

    def _model_for(self, plan: CasePlan, profile: Profile, result: R.CellResult) -> Path | None:
        """The model this profile runs: the case's, or its precision transform. A transform that does not
        apply or fails is the cell's verdict (NOT_APPLICABLE, TRANSFORM_FAILED), never an EP error."""
        spec = TransformSpec.from_profile_fields(profile.transform, profile.keep_io_types, profile.precision_options)
        try:
            done = transform_model(plan.case.model_path, plan.info.sha256, spec, plan.calibration_feeds(),
                                   plan.calibration_source)
        except TransformNotApplicable as exc:
            result.verdict, result.detail = R.NOT_APPLICABLE, f"{profile.transform} does not apply: {exc.reason}"
            self._log_transform(plan, profile, exc.log)
            return None
        except TransformFailed as exc:
            self._transform_failed(profile, result, exc.message, exc.hint)
            self._log_transform(plan, profile, exc.log)
            return None
        except Exception as exc:  # a library bug inside the transform is still the transform's failure
            self._transform_failed(profile, result, f"{type(exc).__name__}: {exc}",
                                   "report it with the model; the record's error holds the traceback")
            result.error["traceback"] = traceback.format_exc()[-4000:]
            return None
        if spec.kind != "none":
            result.model["transform_report"] = done.report
        self._log_transform(plan, profile, done.log)
        return done.path

    def _log_transform(self, plan: CasePlan, profile: Profile, text: str) -> None:
        """What the transform's libraries printed: into the run log, never onto the terminal."""
        if text and self.options.log:
            self.options.log(f"transform {profile.transform} {plan.case.name}", text)

    @staticmethod
    def _transform_failed(profile: Profile, result: R.CellResult, message: str, hint: str) -> None:
        first = message.strip().splitlines()[0][:300] if message.strip() else "no message"
        result.verdict = R.TRANSFORM_FAILED
        result.detail = f"the harness's {profile.transform} transform failed: {first}" + (f". Try: {hint}" if hint else "")
        result.error = {"kind": "transform", "message": message[:4000], "hint": hint}

    def _observe(self, plan: CasePlan, profile: Profile, result: R.CellResult, as_reference: bool = False) -> None:
        model_path = self._model_for(plan, profile, result)
        if model_path is None:
            return
        timeout = self.options.timeout_s or profile.timeout_s
        measure = self.options.measure(profile, plan) if self.options.measure else None
        if measure:  # sampling must end well inside the cell's deadline
            measure = {**measure, "stopping": {**measure["stopping"], "hard_time_cap_s": min(60.0, timeout / 2)}}
        worker = self.pool.acquire(profile)
        deadline = time.monotonic() + timeout  # after acquire: starting a worker is not the cell's time
        try:
            reply = self._load_and_infer(worker, plan, profile, model_path, measure, deadline, result)
            if reply is None:
                return
        except BaseException:  # WorkerFailure, or anything else: never leave a worker unaccounted for
            self.pool.discard(worker)
            raise
        failed = self._worker_error(reply.header, result, profile)
        self._give_back(profile, worker, result)
        if failed:
            return
        self._judge(plan, profile, result, reply.header, reply.tensors, as_reference)

    def _load_and_infer(self, worker: Runner, plan: CasePlan, profile: Profile, model_path: Path,
                        measure: dict[str, Any] | None, deadline: float, result: R.CellResult):
        """Send load and infer; small feeds go out back to back (the worker answers in order), saving a round
        trip per cell. A large feed waits for the session: writing it into the pipe of a worker that hangs
        while creating its session would block the parent with no timeout."""
        def remaining() -> float:
            return max(0.1, deadline - time.monotonic())

        feed = plan.feed()
        infer = {"type": "infer", "datasets": len(plan.datasets), "measure": measure,
                 "dataset_ids": [ds.index for ds in plan.datasets]}
        pipelined = sum(value_nbytes(v) for v in feed.values()) <= worker.pipe_bytes - PIPE_HEADROOM
        worker.send({"type": "load", "case": plan.case.name, "model_path": str(model_path)}, None,
                    "creating the session")
        if pipelined:
            worker.send(infer, feed, "running inference")
        loaded = worker.receive(remaining(), "creating the session")
        if self._worker_error(loaded.header, result, profile, loading=True):
            if pipelined and result.verdict != R.OOM:
                worker.receive(remaining(), "running inference")  # the worker's answer to the early infer
            self._give_back(profile, worker, result)
            return None
        result.placement = loaded.header.get("placement", {})
        result.timing["session_ms"] = loaded.header.get("session_ms")
        result.timing["threads"] = loaded.header.get("threads", {})
        if "numerics" in loaded.header:  # what the worker computed in (the reference profile: float64)
            result.model["numerics"] = loaded.header["numerics"]
        if not pipelined:
            worker.send(infer, feed, "running inference")
        return worker.receive(remaining(), "running inference")

    def _give_back(self, profile: Profile, worker: Runner, result: R.CellResult) -> None:
        """A worker that ran out of memory may be left fragmented or half-initialised: replace it."""
        if result.verdict == R.OOM:
            self.pool.discard(worker)
        else:
            self.pool.release(profile, worker)

    def _worker_error(self, header: dict[str, Any], result: R.CellResult, profile: Profile,
                      loading: bool = False) -> bool:
        """The worker's error reply as the cell's verdict: OOM on the worker's own word, UNSUPPORTED when the
        session could not be created because ORT lacks what the model needs, else ERROR."""
        if header.get("type") != "error":
            return False
        kind = str(header.get("kind", "error"))
        message = str(header.get("message", ""))
        first = message.splitlines()[0][:300] if message else ""
        limit = f" under the {profile.memory_limit_mb} MB limit" if profile.memory_limit_mb else ""
        if kind == "oom":
            result.verdict, result.detail = R.OOM, f"out of memory{limit}: {first}"
        elif loading and is_unsupported(header):
            result.verdict = R.UNSUPPORTED
            result.detail = f"onnxruntime does not support this model on {profile.ep}: {first}"
        else:
            result.verdict, result.detail = R.ERROR, f"{kind}: {first}"
        result.error = {"kind": kind, "message": message, "status": header.get("status")}
        return True

    def _judge(self, plan: CasePlan, profile: Profile, result: R.CellResult, header: dict[str, Any],
               tensors: dict[str, np.ndarray], as_reference: bool = False) -> None:
        result.timing["first_inference_ms"] = header.get("first_inference_ms")
        result.memory = header.get("memory", {})
        if "gpu_memory" in header:
            result.memory["gpu"] = header["gpu_memory"]
        samples = tensors.pop("__latency_ns", None)
        result.model["output_digest"] = value_digest(tensors)
        if self.options.capture_outputs or as_reference:
            self.captured[result.key] = dict(tensors)
        if samples is not None:
            result.latency = {"sampling": header.get("latency", {})}
            self._keep_artifact(result, "latency_ns", lambda: self._save_array(result, "latency_ns.npy", samples))
        if as_reference:
            result.verdict = R.PASS
            result.detail = "reference: the other profiles are compared with these outputs"
        elif not plan.has_goldens:
            result.verdict, result.detail = R.NO_GOLDEN, plan.no_golden_reason
        else:
            comparisons = compare_datasets(plan.case, profile, plan.datasets, tensors, against=plan.against,
                                           tolerance=self.options.tolerance)
            result.outputs = [{"dataset": k, "comparison": c.to_dict()} for k, c in comparisons]
            result.verdict, result.detail = numeric_verdict(plan.case, profile, comparisons, result.placement,
                                                            against=plan.against)
            self._judge_task(plan, profile, result, tensors)
        if self._keeps_outputs(result.verdict):
            self._keep_artifact(result, "actual_outputs", lambda: self._save_outputs(result, plan, tensors))
        if self.options.evaluate:
            self.options.evaluate(result, plan, profile, samples)

    @staticmethod
    def _judge_task(plan: CasePlan, profile: Profile, result: R.CellResult, tensors: dict[str, Any]) -> None:
        """Task metrics (harness.task) beside the elementwise verdict; the profile's [task] gates may fail the
        cell, or pass one that failed elementwise when its case declares its kind (PASS*, the failure kept)."""
        spec = case_task(plan.case)
        if spec is None or result.verdict not in (R.PASS, R.PASS_FELL_BACK, R.FAIL):
            return
        outcome = judge_task(spec, profile_gates(profile), plan.datasets, tensors, result.verdict != R.FAIL)
        result.task = outcome.record
        if outcome.outcome == FAIL_ON_TASK:
            result.verdict = R.FAIL
        elif outcome.outcome == PASS_ON_TASK:
            result.verdict, result.detail = R.PASS_FELL_BACK, f"{outcome.note}; elementwise: {result.detail}"
            return
        result.detail = "; ".join(p for p in (result.detail, outcome.note) if p)

    def _keeps_outputs(self, verdict: str) -> bool:
        """--save-outputs: "all" keeps every cell's outputs that ran to the end, "failing" those of FAIL cells
        (the outputs that disagree; a known failure's become XFAIL later), "none" nothing."""
        return self.options.save_outputs == "all" or (self.options.save_outputs == "failing" and verdict == R.FAIL)

    def _write_failed(self, what: str, exc: BaseException, into: list[str] | None = None) -> None:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
        (self.write_errors if into is None else into).append(f"could not write the {what}: {reason}")

    def _cell_dir(self, result: R.CellResult) -> Path:
        return self.options.out_dir / "cells" / cell_dir_name(result.case, result.profile)

    def _keep_artifact(self, result: R.CellResult, name: str, save: Callable[[], str]) -> None:
        """Write an artifact; a write that fails (a full disk) costs the artifact, never the cell's verdict."""
        try:
            result.artifacts[name] = save()
        except OSError as exc:
            result.error.setdefault("artifacts", f"{name}: {exc.strerror or exc}")
            self._write_failed(f"{name} of case {result.case!r} on profile {result.profile!r}", exc)
        except GoldenError as exc:  # a value the .pb format cannot hold (e.g. a map with string keys): not kept
            result.error.setdefault("artifacts", f"{name}: {exc.one_line()}")

    def _save_array(self, result: R.CellResult, name: str, array: np.ndarray) -> str:
        path = self._cell_dir(result) / name
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())  # a full disk leaves no half .npy for a baseline to read
        return str(path.relative_to(self.options.out_dir))

    def _save_outputs(self, result: R.CellResult, plan: CasePlan, tensors: dict[str, np.ndarray]) -> str:
        """Actual outputs in the test-data layout (each .pb written atomically), then outputs.json naming each
        output's proto kind and the data sets: written last, so a folder with a manifest is complete."""
        types = plan.info.value_types  # a present optional is saved as an OptionalProto, not a tensor
        folder = self._cell_dir(result)
        saved: dict[int, None] = {}  # data set indices, in order, that hold at least one output
        for ds in plan.datasets:
            for j, name in enumerate(plan.info.output_names):
                value = tensors.get(f"{ds.index}/{name}")
                if value is not None:
                    path = folder / f"test_data_set_{ds.index}" / f"output_{j}.pb"
                    atomic_write_bytes(path, value_bytes(name, value, types.get(name)))
                    saved[ds.index] = None
        outputs = [{"index": j, "name": name, "kind": value_kind(types.get(name))}
                   for j, name in enumerate(plan.info.output_names)]
        manifest = R.outputs_manifest(result.case, result.profile, outputs, list(saved))
        atomic_write_bytes(folder / R.OUTPUTS_MANIFEST, manifest)
        return str(folder.relative_to(self.options.out_dir))

    def close(self) -> None:
        self.pool.close()
