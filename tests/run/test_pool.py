"""Parent side of the workers (harness/run/pool.py): deaths and hangs become CRASH/TIMEOUT, never a stuck harness;
parallel cells give the same verdicts as serial ones."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import onnx
import pytest

from harness.run.launchers import Launch, harness_import_path
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
        assert again.proc.stdin.closed and again.proc.stdout.closed  # a killed worker leaks no pipes
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
    wrapper = tmp_path / "crashy-launcher.sh"  # a profile may not set HARNESS_* itself; its launcher may
    wrapper.write_text(f'#!/bin/sh\n{FAULT_ENV}="segfault:b" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    make_profile(tmp_path / "profiles", "crashy", extra=f'[worker]\ncommand = ["{wrapper}"]\n')
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


# ---- launchers are data: a profile's [worker] table says how its worker starts ---------------------------------

def test_the_launch_command_replaces_the_interpreter() -> None:
    spec = {**SPEC, "env": {"EP_SETTING": "ep"}}
    assert Launch().argv(spec)[:3] == [sys.executable, "-m", "harness.worker"]
    wrapped = Launch(("qemu-aarch64-static", "-L", "/sysroot", "/sysroot/usr/bin/python3"))
    argv = wrapped.argv(spec)
    assert argv[:6] == ["qemu-aarch64-static", "-L", "/sysroot", "/sysroot/usr/bin/python3", "-m", "harness.worker"]
    assert argv[6] == "--spec" and json.loads(argv[7]) == spec


def test_the_worker_environment_merges_in_a_documented_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/inherited")
    monkeypatch.setenv("SHARED", "parent")
    launch = Launch((), {"SHARED": "launcher", "LAUNCHER_ONLY": "1"})
    env = launch.environment({**SPEC, "env": {"SHARED": "ep"}}, {"EXTRA": "x"})
    assert env["PYTHONPATH"] == os.pathsep.join([harness_import_path(), "/inherited"])
    assert env["SHARED"] == "ep" and env["LAUNCHER_ONLY"] == "1" and env["EXTRA"] == "x"
    assert launch.environment(SPEC, {"SHARED": "test"})["SHARED"] == "test"
    assert sorted(os.listdir(harness_import_path())) == ["harness"]  # nothing else rides along on PYTHONPATH


def test_a_profile_runs_through_a_wrapper_launcher(tmp_path: Path, make_profile, make_case) -> None:
    """The same worker, started through a shell script that records its pid and then execs Python: the cell
    passes, and the worker that said hello is the process the wrapper became."""
    from harness.golden.cases import load_case
    from harness.profiles.schema import load_profile
    from harness.run.executor import Executor, RunOptions, probe
    from harness.run.plan import plan_case
    marker = tmp_path / "wrapped.txt"
    wrapper = tmp_path / "wrap.sh"
    wrapper.write_text(f'#!/bin/sh\necho "$$ $WRAPPED_BY" > "{marker}"\nexec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    extra = f'[worker]\ncommand = ["{wrapper}"]\nenv = {{ WRAPPED_BY = "by-profile" }}\n'
    profile = load_profile(make_profile(tmp_path / "profiles", "wrapped", extra=extra))
    assert profile.launch_command == (str(wrapper),)
    case = make_case(tmp_path / "cases" / "tiny")
    plan = plan_case(load_case(case, case.name), dims={}, seed=0)
    executor = Executor(RunOptions(tmp_path / "out"), None)
    try:
        availability = probe(profile, executor.pool)
        result = executor.run_cell(plan, profile, availability)
    finally:
        executor.close()
    assert availability.available, availability.reason
    assert result.verdict == "PASS", result.detail
    pid, env_marker = marker.read_text().split()
    assert int(pid) == availability.hello["pid"] and env_marker == "by-profile"
    assert availability.hello["executable"] == sys.executable


def test_a_launcher_that_cannot_start_is_a_worker_failure(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-python"
    with pytest.raises(WorkerFailure) as info:
        WorkerHandle(SPEC, Launch((str(missing),)))
    assert info.value.outcome == "CRASH"
    assert str(info.value).startswith(f"worker launcher ['{missing}'] could not start: ")
    assert "No such file or directory" in str(info.value)


def test_a_launcher_that_is_not_a_worker_is_a_crash_on_start(tmp_path: Path) -> None:
    with pytest.raises(WorkerFailure) as info:
        WorkerHandle(SPEC, Launch(("sh", "-c", "echo not a worker >&2; exit 4", "sh")))
    assert info.value.outcome == "CRASH" and "exit code 4" in str(info.value)
    assert "not a worker" in info.value.stderr_tail


# ---- prestarted workers --------------------------------------------------------------------------------------

class _FakeRunner:
    """A runner that starts when the test says so (no process): what the pool does while workers start."""

    def __init__(self, gate, fail: bool) -> None:
        gate.wait(10)
        if fail:
            raise WorkerFailure("CRASH", "worker launcher could not start")
        self.alive = True
        self.closed = False
        self.hello = {"available": True}

    def close(self) -> None:
        self.closed = True

    def kill(self) -> None:
        self.alive = False


def _fake_pool(fail: bool = False):
    import threading
    gate = threading.Event()
    made: list[_FakeRunner] = []

    def factory(spec, launch):
        runner = _FakeRunner(gate, fail)
        made.append(runner)
        return runner
    return WorkerPool(factory), gate, made


def test_acquire_waits_for_a_prestarted_worker_instead_of_starting_another(tmp_path: Path, make_profile) -> None:
    import threading

    from harness.profiles.schema import load_profile
    profile = load_profile(make_profile(tmp_path, "cpu"))
    pool, gate, made = _fake_pool()
    pool.prestart(profile, 2)
    got: list = []
    taker = threading.Thread(target=lambda: got.append(pool.acquire(profile)))
    taker.start()
    taker.join(0.2)
    assert taker.is_alive() and not got  # still starting: acquire waits rather than start a third
    gate.set()
    taker.join(10)
    assert got and got[0] in made
    second = pool.acquire(profile)
    assert second in made and second is not got[0] and pool.started == 2
    pool.release(profile, second)
    pool.close()
    assert second.closed


def test_a_prestart_that_fails_leaves_acquire_to_start_and_meet_the_failure(tmp_path: Path, make_profile) -> None:
    from harness.profiles.schema import load_profile
    profile = load_profile(make_profile(tmp_path, "cpu"))
    pool, gate, _ = _fake_pool(fail=True)
    pool.prestart(profile)
    gate.set()
    with pytest.raises(WorkerFailure, match="could not start"):
        pool.acquire(profile)
    assert pool.started == 2  # the background start, then acquire's own
    pool.close()


def test_a_worker_that_comes_up_after_close_is_closed(tmp_path: Path, make_profile) -> None:
    from harness.profiles.schema import load_profile
    profile = load_profile(make_profile(tmp_path, "cpu"))
    pool, gate, made = _fake_pool()
    pool.prestart(profile)
    pool.close()
    gate.set()
    for _ in range(100):
        if made and made[0].closed:
            break
        time.sleep(0.05)
    assert made and made[0].closed


def test_close_says_bye_to_every_worker_before_waiting_for_any(tmp_path: Path, make_profile) -> None:
    """Workers exit side by side: each is told bye before the pool waits for the first to exit."""
    from harness.profiles.schema import load_profile
    profile = load_profile(make_profile(tmp_path, "cpu"))
    pool = WorkerPool()
    events: list[tuple[str, int]] = []
    workers = [pool.acquire(profile), pool.acquire(profile)]
    for worker in workers:
        bye, close = worker.say_bye, worker.close
        worker.say_bye = lambda w=worker, f=bye: (events.append(("bye", w.hello["pid"])), f())[1]
        worker.close = lambda w=worker, f=close: (events.append(("close", w.hello["pid"])), f())[1]
        pool.release(profile, worker)
    pool.close()
    kinds = [kind for kind, _ in events]
    assert kinds[:3] == ["bye", "bye", "close"] and kinds.count("close") == 2  # (close says bye again: a no-op)
    assert {pid for kind, pid in events[:2]} == {w.hello["pid"] for w in workers}
    assert all(w.proc.returncode == 0 for w in workers)
