"""Parent side of the workers (harness/run/pool.py): deaths and hangs become CRASH/TIMEOUT, never a stuck harness;
parallel cells give the same verdicts as serial ones."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import onnx
import pytest

from harness.run.pool import WorkerFailure, WorkerHandle, WorkerPool, signal_name

FAULT_ENV = "HARNESS_TEST_FAULT"
SPEC = {"name": "cpu", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
        "device_metadata": {}, "precision_hint": None, "session": {}, "env": {}, "cpu_cores": None,
        "memory_limit_mb": None}


@pytest.fixture
def model_path(tmp_path: Path, make_model) -> str:
    path = tmp_path / "model.onnx"
    onnx.save(make_model(), str(path))
    return str(path)


def _load(model_path: str) -> dict:
    return {"type": "load", "case": "victim", "model_path": model_path}


@pytest.mark.parametrize("code, name", [(None, "exit code None"), (0, "exit code 0"), (3, "exit code 3"),
                                        (-signal.SIGSEGV, "SIGSEGV"), (-signal.SIGKILL, "SIGKILL"),
                                        (-200, "signal 200")])
def test_signal_name(code, name: str) -> None:
    assert signal_name(code) == name


def test_a_worker_that_exits_is_a_crash(model_path: str) -> None:
    worker = WorkerHandle(SPEC, env={FAULT_ENV: "exit:victim"})
    try:
        assert worker.hello["available"] is True
        with pytest.raises(WorkerFailure) as info:
            worker.request(_load(model_path), None, 30, "creating the session")
        assert info.value.outcome == "CRASH" and info.value.signal_name == "exit code 3"
        assert str(info.value) == "worker died creating the session: exit code 3"
        assert not worker.alive
        with pytest.raises(WorkerFailure, match="exit code 3"):  # a dead worker stays dead
            worker.request(_load(model_path), None, 5, "creating the session")
    finally:
        worker.close()


def test_a_hung_worker_times_out_and_is_killed(model_path: str) -> None:
    worker = WorkerHandle(SPEC, env={FAULT_ENV: "hang:victim"})
    try:
        start = time.monotonic()
        with pytest.raises(WorkerFailure) as info:
            worker.request(_load(model_path), None, 1.0, "creating the session")
        assert time.monotonic() - start < 10
        assert info.value.outcome == "TIMEOUT" and "no reply within 1 s creating the session" in str(info.value)
        assert "--timeout" in str(info.value) and not worker.alive
    finally:
        worker.close()


def test_a_healthy_worker_answers_and_says_bye(model_path: str) -> None:
    worker = WorkerHandle(SPEC)
    reply = worker.request(_load(model_path), None, 30, "creating the session")
    assert reply.header["type"] == "loaded" and reply.header["placement"]["fraction_on_ep"] == 1.0
    worker.close()
    assert worker.proc.returncode == 0  # bye, not a kill


def test_the_pool_reuses_idle_workers_and_discards_failed_ones(tmp_path: Path, make_profile) -> None:
    from harness.profiles.schema import load_profile
    profile = load_profile(make_profile(tmp_path, "cpu"))
    pool = WorkerPool()
    try:
        first = pool.acquire(profile)
        pool.release(profile, first)
        again = pool.acquire(profile)
        assert again is first
        pool.discard(again)
        assert not again.alive
        fresh = pool.acquire(profile)
        assert fresh is not first and fresh.hello["pid"] != first.hello["pid"]
        pool.release(profile, fresh)
    finally:
        pool.close()
    assert fresh.proc.returncode == 0


# ---- --jobs 2 gives the verdicts of --jobs 1 --------------------------------------------------------------------

def test_parallel_cells_give_the_serial_verdicts(make_case, break_golden, make_profile, tmp_path: Path, run_cli,
                                                 read_record) -> None:
    root = tmp_path / "cases"
    for name in ("a", "b", "d"):
        make_case(root / name)
    break_golden(make_case(root / "c_red"))
    make_profile(tmp_path / "profiles", "cpu")
    make_profile(tmp_path / "profiles", "crashy", env={FAULT_ENV: "segfault:b"})
    make_profile(tmp_path / "profiles", "edge", extra="[session]\nintra_op_threads = 1\n[constraints]\ncpu_cores = 1\n")
    verdicts = []
    for jobs in ("1", "2"):
        out = tmp_path / f"results-{jobs}"
        proc = run_cli("run", "--root", root, "--profiles-dir", tmp_path / "profiles", "--profile", "cpu",
                       "--profile", "crashy", "--profile", "edge", "--numerics-only",
                       "--jobs", jobs, "--out", out)
        assert proc.returncode == 1, proc.stdout + proc.stderr
        record = read_record(out)
        assert record["options"]["jobs"] == int(jobs)
        verdicts.append({(c["case"], c["profile"]): (c["verdict"], c["model"].get("output_digest"))
                         for c in record["cells"]})
    serial, parallel = verdicts
    assert serial == parallel
    assert serial[("b", "crashy")][0] == "CRASH" and serial[("c_red", "edge")][0] == "FAIL"
    assert sum(v == "PASS" for v, _ in serial.values()) == 12 - 1 - 3
