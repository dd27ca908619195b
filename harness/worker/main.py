"""The isolated worker: one process per profile, reused across cases, speaking harness.worker.protocol
over stdin/stdout. Imports only numpy, onnxruntime and its sibling worker modules, never the rest of the
harness (tests/worker/test_standalone.py checks), so any interpreter that can import ``harness.worker`` runs it.

Conversation (docs/worker-protocol.md):
    worker -> hello   {available, reason, pid, executable, versions, affinity, memory_limit_mb}
    parent -> load    {case, model_path}                      worker -> loaded {placement, session_ms} | error
    parent -> infer   {datasets, measure} + "<k>/<input>"      worker -> result {...} + "<k>/<output>" | error
    parent -> bye
"""

from __future__ import annotations

import fnmatch
import json
import os
import sys
import time
from typing import Any, BinaryIO

from harness.worker import protocol, values
from harness.worker.memory import CellMemory
from harness.worker.ort_message import ort_message_of

FAULT_ENV = "HARNESS_TEST_FAULT"  # test-only: "<kind>:<case glob>", kind in segfault|hang|oom|exit


def apply_constraints(spec: dict[str, Any]) -> dict[str, Any]:
    """CPU affinity and an address-space cap, applied to this process before onnxruntime loads. Cores the
    spec names that this host does not offer are reported (``missing_cores``), never silently dropped: the
    hello then says the worker is unavailable, since its timings would not be the ones the profile asks for."""
    applied: dict[str, Any] = {}
    cores = spec.get("cpu_cores")
    if cores is not None and hasattr(os, "sched_setaffinity"):
        available = sorted(os.sched_getaffinity(0))
        chosen = available[:cores] if isinstance(cores, int) else [c for c in cores if c in available]
        if isinstance(cores, int) and cores > len(available):
            applied["missing_cores"], applied["offered_cores"] = cores - len(available), available
        elif not isinstance(cores, int) and len(chosen) < len(cores):
            applied["missing_cores"] = sorted(set(cores) - set(available))
            applied["offered_cores"] = available
        elif chosen:
            os.sched_setaffinity(0, chosen)
    if hasattr(os, "sched_getaffinity"):
        applied["affinity"] = sorted(os.sched_getaffinity(0))
    limit = spec.get("memory_limit_mb")
    if limit:
        import resource
        # RLIMIT_DATA counts heap and private anonymous mappings (what tensors and arenas use) but not the
        # address space reserved for shared libraries and thread stacks, which RLIMIT_AS would count.
        extra = int(limit) << 20
        resource.setrlimit(resource.RLIMIT_DATA, (_data_in_use() + extra, resource.RLIM_INFINITY))
        applied["memory_limit_mb"] = int(limit)
    return applied


def _data_in_use() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def injected_fault(case: str) -> None:
    """Test-only fault injection, enabled solely by the HARNESS_TEST_FAULT environment variable."""
    setting = os.environ.get(FAULT_ENV, "")
    kind, _, pattern = setting.partition(":")
    if not setting or not fnmatch.fnmatchcase(case, pattern or "*"):
        return
    if kind == "segfault":
        import ctypes
        ctypes.string_at(0)
    elif kind == "hang":
        time.sleep(3600)
    elif kind == "oom":
        _cap_data_if_unlimited()
        hog = []
        while True:  # runaway allocation until the memory limit stops it
            hog.append(bytearray(64 << 20))
    elif kind == "exit":
        os._exit(3)


OOM_FAULT_HEADROOM = 1 << 30  # the test-only oom fault never takes more than this beyond what is in use


def _cap_data_if_unlimited() -> None:
    """A profile without a memory limit must not let the test-only hog take the whole host: cap the data
    segment 1 GiB above what is in use, so the hog ends in a MemoryError like a limited worker's."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if soft == resource.RLIM_INFINITY:
        cap = _data_in_use() + OOM_FAULT_HEADROOM
        resource.setrlimit(resource.RLIMIT_DATA, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))


def _core_shortfall(spec: dict[str, Any], applied: dict[str, Any]) -> str | None:
    """Why the cores the profile asks for are not here, in one line; None when they are."""
    missing = applied.get("missing_cores")
    if not missing:
        return None
    offered = _ranges(applied.get("offered_cores", []))
    if isinstance(missing, int):  # a count: more cores than this host offers
        return f"cpu_cores {spec.get('cpu_cores')} asks for more cores than this host offers ({offered})"
    return f"cpu_cores {missing} do not exist here (this host offers {offered})"


def _ranges(cores: list[int]) -> str:
    """[0, 1, 2, 5] -> '0-2, 5' (how a person reads a core list)."""
    parts: list[str] = []
    for core in cores:
        if parts and core == int(parts[-1].split("-")[-1]) + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{core}"
        else:
            parts.append(str(core))
    return ", ".join(parts)


def split_feeds(tensors: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """"<k>/<input>" tensors grouped by data set k, in numeric order (k need not start at 0 or be dense)."""
    feeds: dict[str, dict[str, Any]] = {}
    for name, array in tensors.items():
        k, _, input_name = name.partition("/")
        feeds.setdefault(k, {})[input_name] = array
    return dict(sorted(feeds.items(), key=lambda item: int(item[0]) if item[0].isdigit() else -1))


def inputless_feeds(header: dict[str, Any], session: Any) -> dict[str, dict[str, Any]]:
    """A model without inputs (Constant, RandomNormal) still runs once per data set: the sets named by
    ``dataset_ids`` when the parent sends them, else 0..datasets-1."""
    if session.get_inputs():
        return {}
    ids = header.get("dataset_ids")
    if not isinstance(ids, list):
        count = header.get("datasets")
        ids = list(range(count)) if isinstance(count, int) and count > 0 else []
    return {str(k): {} for k in ids}


def release_freed_memory() -> None:
    """Hand memory freed by the previous cell back to the OS, so this cell's peak is its own and not
    hidden inside pages glibc kept from the last session. (No gc.collect: sessions are freed by refcount,
    and a full collection of onnxruntime's module graph costs ~11 ms a cell.)"""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def threads_in_effect(spec: dict[str, Any]) -> dict[str, Any]:
    """Thread settings and the affinity this worker really runs with (0 = onnxruntime's default)."""
    session = spec.get("session") or {}
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    intra = session.get("intra_op_threads") or 0
    return {"intra_op": intra, "inter_op": session.get("inter_op_threads") or 0, "affinity": affinity,
            "intra_op_effective": intra or (len(affinity) if affinity else os.cpu_count())}


class Worker:
    def __init__(self, spec: dict[str, Any], out: BinaryIO) -> None:
        self.spec = spec
        self.out = out
        self.session = None
        self.case = ""
        self.memory: CellMemory | None = None
        self.gpu = None
        if spec["ep"] in ("CUDAExecutionProvider", "TensorrtExecutionProvider"):
            from harness.worker.gpu_memory import GpuMemory
            self.gpu = GpuMemory(int((spec.get("ep_options") or {}).get("device_id", 0)))

    def send(self, header: dict[str, Any], tensors: dict | None = None) -> None:
        protocol.write_message(self.out, header, tensors)

    def error(self, kind: str, exc: BaseException) -> None:
        """Reply with ORT's own words: the first line is ``CODE: message`` without C++ source paths (what a
        report shows), then the full text when it says more."""
        parsed = ort_message_of(exc)
        full = parsed.full.strip()
        if isinstance(exc, MemoryError) or "bad_alloc" in full or "Failed to allocate" in full:
            kind = "oom"
        message = parsed.line if parsed.says_everything else f"{parsed.line}\n{full}"
        self.send({"type": protocol.MSG_ERROR, "kind": kind, "status": parsed.code, "message": message[:4000]})

    def on_load(self, header: dict[str, Any]) -> None:
        from harness.worker.session import create_session, placement
        self.session = None
        self.case = header.get("case", "")
        release_freed_memory()
        self.memory = CellMemory().begin()
        if self.gpu:
            self.gpu.samples.clear()
            self.gpu.mark("start")
        injected_fault(self.case)
        start = time.perf_counter_ns()
        self.session = create_session(header["model_path"], self.spec)
        session_ns = time.perf_counter_ns() - start
        self.memory.mark("after_session")
        if self.gpu:
            self.gpu.mark("after_session")
        loaded = {"session_ms": session_ns / 1e6, "placement": placement(self.session, self.spec["ep"]),
                  "providers": self.session.get_providers(), "threads": threads_in_effect(self.spec)}
        self.send({"type": protocol.MSG_LOADED, **loaded})

    def on_infer(self, header: dict[str, Any], tensors: dict) -> None:
        from harness.worker.timing import measure_latency
        if self.session is None:
            raise RuntimeError("infer before load")
        outputs: dict[str, Any] = {}
        output_names = [o.name for o in self.session.get_outputs()]
        first_ms = None
        feeds = split_feeds(tensors) or inputless_feeds(header, self.session)
        for k, feed in feeds.items():
            start = time.perf_counter_ns()
            result = values.run(self.session, feed)
            if first_ms is None:
                first_ms = (time.perf_counter_ns() - start) / 1e6
            outputs.update({f"{k}/{n}": v for n, v in zip(output_names, result)})
        # The cell's memory window is session creation plus inference; it closes before latency sampling,
        # whose bookkeeping (bootstrap resamples) is the harness's, not the model's.
        reply: dict[str, Any] = {"type": protocol.MSG_RESULT, "first_inference_ms": first_ms,
                                 "output_names": output_names, "memory": self.memory.end() if self.memory else {}}
        if self.gpu:
            self.gpu.mark("after_inference")
            reply["gpu_memory"] = self.gpu.summary()
        self.memory = None
        measure = header.get("measure")
        if measure and feeds:
            device_id = int((self.spec.get("ep_options") or {}).get("device_id", 0))
            session, feed = values.for_timing(self.session, next(iter(feeds.values())))
            samples, info = measure_latency(session, feed, measure, device_id)
            outputs["__latency_ns"] = samples
            reply["latency"] = info
        self.session = None
        self.send(reply, outputs)


def _versions() -> dict[str, str]:
    import numpy
    import onnxruntime
    return {"python": sys.version.split()[0], "numpy": numpy.__version__, "onnxruntime": onnxruntime.__version__}


def watch_parent(interval_s: float = 1.0) -> None:
    """Exit when the harness that started us dies (even by SIGKILL), so a hung or busy worker never
    outlives its run. A thread polling getppid(), not PR_SET_PDEATHSIG: that fires when the parent *thread*
    that spawned us exits, and workers are shared between the harness's job threads."""
    import threading
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(interval_s)
            if os.getppid() != parent:
                os._exit(70)
    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def hello_for(spec: dict[str, Any], applied: dict[str, Any]) -> dict[str, Any]:
    """The first frame: who we are, and whether this host can run the spec's EP (and why not). Available means
    a one-node session was created and run on the EP (harness.worker.probe)."""
    hello: dict[str, Any] = {"type": protocol.MSG_HELLO, "runtime": "python", "pid": os.getpid(),
                             "executable": sys.executable, **applied, "protocol": protocol.PROTOCOL_VERSION}
    shortfall = _core_shortfall(spec, applied)
    if shortfall:
        hello.update(available=False, unavailable="no_device", reason=shortfall)
        return hello
    try:
        from harness.worker.session import Unavailable, check_available
        hello["versions"] = _versions()
        check_available(spec)
        hello["available"] = True
    except Unavailable as exc:
        hello.update(available=False, reason=str(exc), unavailable=exc.kind)
    except Exception as exc:  # a plugin that fails to load is a skip with ORT's words, not a crash
        words = ort_message_of(exc).line
        hello.update(available=False, reason=f"{type(exc).__name__}: {words}", unavailable="load_failed")
    return hello


def handle(worker: Worker, header: dict[str, Any], tensors: dict) -> bool:
    """Answer one request; False once the parent said bye."""
    kind = header.get("type")
    if kind == protocol.MSG_BYE:
        return False
    try:
        if kind == protocol.MSG_LOAD:
            worker.on_load(header)
        elif kind == protocol.MSG_INFER:
            worker.on_infer(header, tensors)
        else:
            worker.send({"type": protocol.MSG_ERROR, "kind": "protocol", "message": f"unknown message {kind!r}"})
    except MemoryError as exc:
        worker.session = None
        worker.error("oom", exc)
    except Exception as exc:
        worker.session = None
        worker.error("session" if kind == protocol.MSG_LOAD else "run", exc)
    return True


def serve(spec: dict[str, Any], inp: BinaryIO, out: BinaryIO) -> int:
    applied = apply_constraints(spec)
    for key, value in (spec.get("env") or {}).items():
        os.environ[key] = value
    worker = Worker(spec, out)
    worker.send(hello_for(spec, applied))
    while True:
        message = protocol.read_message(inp)
        if message is None or not handle(worker, *message):
            return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--spec":
        print("usage: python -m harness.worker --spec '<profile worker spec JSON>'", file=sys.stderr)
        return 2
    spec = json.loads(args[1])
    import faulthandler
    faulthandler.enable()  # a native crash leaves a Python stack in the stderr tail the parent reports
    watch_parent()
    # The frame stream gets a private copy of fd 1; fd 1 itself then points at stderr, so that stray
    # prints from Python or native libraries (WebGPU, OpenVINO) cannot corrupt the frames.
    sys.stdout.flush()
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return serve(spec, sys.stdin.buffer, out)
