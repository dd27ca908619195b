"""Latency sampling inside the worker: only the inference call is timed, with perf_counter_ns, on inputs
prepared beforehand (pre-bound with IOBinding on GPU EPs). Warm-up and stopping follow
harness.worker.stats (numpy-only; the parent reads the same module to summarise)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from harness.worker.stats import StoppingRule, WarmupRule

REWARM_RUNS = 2
_DEVICE_EPS = {"CUDAExecutionProvider": "cuda", "TensorrtExecutionProvider": "cuda"}


def _runner(session: Any, feed: dict[str, np.ndarray], device_id: int = 0):
    """A zero-argument callable running one inference with nothing left to prepare inside the timed call."""
    device = _DEVICE_EPS.get(session.get_providers()[0])
    if device is None:
        run = session.run
        return lambda: run(None, feed)
    import onnxruntime as ort
    binding = session.io_binding()
    for name, array in feed.items():
        binding.bind_ortvalue_input(name, ort.OrtValue.ortvalue_from_numpy(array, device, device_id))
    for output in session.get_outputs():
        binding.bind_output(output.name, device, device_id)
    run_bound = session.run_with_iobinding

    def run() -> None:
        run_bound(binding)
        binding.synchronize_outputs()
    return run


def measure_latency(session: Any, feed: dict[str, np.ndarray], measure: dict[str, Any],
                    device_id: int = 0) -> tuple[np.ndarray, dict]:
    """Warm up, then sample until the stopping rule says so. Returns raw samples (ns) and how it stopped.
    Warm-up stops early after ``warmup_max_s`` so a slow model spends its time on samples."""
    run = _runner(session, feed, device_id)
    clock = time.perf_counter_ns
    warmup = WarmupRule(**measure.get("warmup", {}))
    warm_deadline = time.perf_counter() + float(measure.get("warmup_max_s", 2.0))
    warm: list[int] = []
    while not warmup.done(warm) and time.perf_counter() < warm_deadline:
        start = clock()
        run()
        warm.append(clock() - start)
    rule = StoppingRule(**measure.get("stopping", {}))
    samples: list[int] = []
    begin = time.perf_counter()
    reason = ""
    checks = rule.checks
    while True:
        start = clock()
        run()
        samples.append(clock() - start)
        stop, reason = rule.should_stop(samples, time.perf_counter() - begin)
        if stop:
            break
        if rule.checks != checks:  # a CI check just ran: its bootstrap evicted caches and let the
            checks = rule.checks   # thread pool fall asleep, so re-warm before the next timed run
            for _ in range(REWARM_RUNS):
                run()
    info = {"warmup_iters": len(warm), "iters": len(samples), "stop_reason": reason,
            "sampling_s": time.perf_counter() - begin}
    return np.asarray(samples, dtype=np.int64), info
