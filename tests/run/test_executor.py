"""The executor (harness/run/executor.py) under injected faults: a crash, a hang and an OOM each cost one cell,
and the cells around them finish intact in the same record."""

from __future__ import annotations

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

from harness.golden.cases import load_case
from harness.profiles.schema import load_profile
from harness.run import record as R
from harness.run.executor import (
    Availability,
    Executor,
    RunOptions,
    missing_requirements,
    probe,
)
from harness.run.plan import plan_case

FAULT_ENV = "HARNESS_TEST_FAULT"
CASES = ("a_ok", "b_bad", "c_ok")
FAULTS = {"crashy": ("segfault:b_bad", ""), "hangy": ("hang:b_bad", ""),
          "hungry": ("oom:b_bad", "[constraints]\nmemory_limit_mb = 512\n")}


def fault_profile(folder: Path, name: str, fault: str, make_profile, extra: str = "") -> Path:
    """A profile whose workers start through a launcher script that sets the test fault: a profile may not set
    HARNESS_* variables itself (harness/profiles/trust.py), but its [worker] command may be any wrapper."""
    import sys
    folder.mkdir(parents=True, exist_ok=True)
    wrapper = folder / f"{name}-launcher.sh"
    wrapper.write_text(f'#!/bin/sh\n{FAULT_ENV}="{fault}" exec "{sys.executable}" "$@"\n')
    wrapper.chmod(0o755)
    return make_profile(folder, name, extra=f'{extra}\n[worker]\ncommand = ["{wrapper}"]\n')


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, case_builder, make_profile) -> Path:
    """Cases a_ok, b_bad, c_ok and three profiles, each injecting one kind of fault into b_bad only."""
    base = tmp_path_factory.mktemp("faults")
    for name in CASES:
        case_builder(base / "cases" / name)
    for name, (fault, extra) in FAULTS.items():
        fault_profile(base / "profiles", name, fault, make_profile, extra)
    return base


@pytest.fixture(scope="module")
def fault_run(lab: Path, cli, read_record) -> tuple[subprocess.CompletedProcess, dict]:
    only = [arg for name in FAULTS for arg in ("--profile", name)]  # not the built-in profiles as well
    proc = cli("run", "--root", lab / "cases", "--profiles-dir", lab / "profiles", *only, "--numerics-only",
               "--timeout", "3", "--out", lab / "results")
    return proc, read_record(lab / "results")


def _cells(record: dict) -> dict[tuple[str, str], dict]:
    return {(c["case"], c["profile"]): c for c in record["cells"]}


def test_one_record_holds_crash_timeout_oom_next_to_passes(fault_run) -> None:
    proc, record = fault_run
    assert proc.returncode == 1, proc.stderr
    verdicts = {key: c["verdict"] for key, c in _cells(record).items()}
    assert verdicts == {("a_ok", "crashy"): "PASS", ("b_bad", "crashy"): "CRASH", ("c_ok", "crashy"): "PASS",
                        ("a_ok", "hangy"): "PASS", ("b_bad", "hangy"): "TIMEOUT", ("c_ok", "hangy"): "PASS",
                        ("a_ok", "hungry"): "PASS", ("b_bad", "hungry"): "OOM", ("c_ok", "hungry"): "PASS"}
    intact = [c for c in record["cells"] if c["verdict"] == "PASS"]
    assert all(c["outputs"] and c["outputs"][0]["comparison"]["passed"] for c in intact)
    assert len({c["model"]["output_digest"] for c in intact}) == 1  # the same model, the same bits everywhere


def test_crash_names_the_signal_and_keeps_the_stderr_tail(fault_run) -> None:
    proc, record = fault_run
    crash = _cells(record)[("b_bad", "crashy")]
    assert "SIGSEGV" in crash["detail"] and crash["error"]["signal"] == "SIGSEGV"
    assert crash["error"]["kind"] == "crash"
    assert "injected_fault" in crash["error"]["stderr_tail"]  # faulthandler's Python stack
    report = proc.stdout
    assert "[CRASH] case 'b_bad' on profile 'crashy': worker died creating the session: SIGSEGV" in report
    assert "Last stderr lines:" in report and "injected_fault" in report


def test_timeout_and_oom_details(fault_run) -> None:
    proc, record = fault_run
    cells = _cells(record)
    assert "no reply within 3 s creating the session" in cells[("b_bad", "hangy")]["detail"]
    assert cells[("b_bad", "hangy")]["duration_s"] < 30
    assert cells[("b_bad", "hungry")]["detail"].startswith("out of memory under the 512 MB limit")
    assert "6 PASS, 1 CRASH, 1 TIMEOUT, 1 OOM" in proc.stdout


def test_the_journal_has_every_cell_once(fault_run, lab: Path) -> None:
    [journal] = (lab / "results").glob("*/journal.jsonl")
    lines = [json.loads(line) for line in journal.read_text().splitlines()]
    assert lines[0]["kind"] == "header"
    keys = [f"{e['case']}|{e['profile']}" for e in lines[1:]]
    assert sorted(keys) == sorted(f"{c}|{p}" for c in CASES for p in FAULTS) and all(e["kind"] == "cell"
                                                                                     for e in lines[1:])


# ---- in-process: the worker behind a crash is replaced ---------------------------------------------------------

def test_after_a_crash_the_next_case_gets_a_fresh_worker(lab: Path, tmp_path: Path) -> None:
    profile = load_profile(lab / "profiles" / "crashy.toml")
    plans = [plan_case(load_case(lab / "cases" / name, name), dims={}, seed=0) for name in CASES]
    executor = Executor(RunOptions(tmp_path, timeout_s=30), R.Journal(tmp_path))
    try:
        availability = probe(profile, executor.pool)
        first_pid = availability.hello["pid"]
        done: list[str] = []
        results = executor.run([(plan, profile) for plan in plans], {profile.name: availability},
                               lambda r: done.append(r.case))
        worker = executor.pool.acquire(profile)
        assert worker.alive and worker.hello["pid"] != first_pid
        executor.pool.release(profile, worker)
        assert executor.pool.started == 2  # the probe's worker, then one replacement for the crash: nothing more
    finally:
        executor.close()
        executor.journal.close()
    assert [r.verdict for r in results] == [R.PASS, R.CRASH, R.PASS] and done == list(CASES)
    assert results[1].error["signal"] == "SIGSEGV"
    assert len((tmp_path / R.JOURNAL_NAME).read_text().splitlines()) == 3


def test_an_unavailable_profile_is_skipped_without_a_worker(lab: Path, tmp_path: Path) -> None:
    profile = load_profile(lab / "profiles" / "crashy.toml")
    plan = plan_case(load_case(lab / "cases" / "a_ok", "a_ok"), dims={}, seed=0)
    executor = Executor(RunOptions(tmp_path), None)
    try:
        result = executor.run_cell(plan, profile, Availability(False, "no such device"))
    finally:
        executor.close()
    assert result.verdict == R.SKIPPED and result.detail == "no such device"
    assert result.model["sha256"] == plan.info.sha256


def test_missing_packages_skip_with_the_install_hint(make_profile, tmp_path: Path) -> None:
    path = make_profile(tmp_path, "needy", extra="[requires]\npackages = ['surely_missing_pkg_xyz']\n"
                                                  "install = 'pip install it'\n")
    profile = load_profile(path)
    reason = missing_requirements(profile)
    assert reason == "missing package(s) surely_missing_pkg_xyz; fix: pip install it"
    executor = Executor(RunOptions(tmp_path), None)
    try:
        assert probe(profile, executor.pool) == Availability(False, reason, kind="not_installed")
    finally:
        executor.close()


def test_a_missing_required_variable_skips_the_profile(make_profile, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_SURELY_UNSET_VAR", raising=False)
    profile = load_profile(make_profile(tmp_path, "needy", extra="[requires]\nenv = ['HARNESS_SURELY_UNSET_VAR']\n"))
    assert "HARNESS_SURELY_UNSET_VAR" in missing_requirements(profile)


# ---- placement audit --------------------------------------------------------------------------------------------

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def placement_run(tmp_path_factory: pytest.TempPathFactory, cli, read_record) -> tuple[subprocess.CompletedProcess,
                                                                                         dict]:
    """transformer (shape ops) on cpu, webgpu and a strict-placement copy of webgpu."""
    base = tmp_path_factory.mktemp("placement")
    profiles = base / "profiles"
    profiles.mkdir()
    shipped = REPO / "device_profiles"
    (profiles / "cpu.toml").write_text((shipped / "cpu.toml").read_text())
    webgpu = (shipped / "webgpu.toml").read_text()
    (profiles / "webgpu.toml").write_text(webgpu)
    assert "[session]" not in webgpu  # the strict copy below adds the table
    strict = webgpu.replace('name = "webgpu"', 'name = "webgpu-strict"', 1) + "\n[session]\nstrict_placement = true\n"
    (profiles / "webgpu-strict.toml").write_text(strict)
    proc = cli("run", "transformer", "--profiles-dir", profiles, "--profile", "cpu", "--profile", "webgpu",
               "--profile", "webgpu-strict", "--numerics-only", "--out", base / "results")
    return proc, read_record(base / "results")


def _webgpu_or_skip(record: dict) -> None:
    state = record["profiles"]["webgpu"]
    if not state["available"]:
        pytest.skip(f"webgpu profile skipped on this host: {state['reason']}")


def test_cpu_runs_every_node_on_its_ep(placement_run) -> None:
    _, record = placement_run
    cpu = _cells(record)[("transformer", "cpu")]
    assert cpu["verdict"] == "PASS" and cpu["placement"]["fraction_on_ep"] == 1.0
    assert cpu["placement"]["nodes"] > 0 and cpu["placement"]["fell_back"] == []


def test_webgpu_shape_ops_fall_back_and_say_so(placement_run) -> None:
    proc, record = placement_run
    _webgpu_or_skip(record)
    cell = _cells(record)[("transformer", "webgpu")]
    placement = cell["placement"]
    assert cell["verdict"] == "PASS*" and 0 < placement["fraction_on_ep"] < 1
    assert placement["fell_back_count"] == len(placement["fell_back"]) > 0
    assert placement["per_ep"]["WebGpuExecutionProvider"] + placement["per_ep"]["CPUExecutionProvider"] == \
        placement["nodes"]
    assert all(n.endswith("->CPUExecutionProvider") for n in placement["fell_back"])
    assert any("(Concat)" in n or "(Reshape)" in n or "(Slice)" in n for n in placement["fell_back"])
    share = f"{placement['fraction_on_ep']:.0%} on EP"
    assert f"PASS* {share}" in proc.stdout and "Fell back: " in proc.stdout


def test_strict_placement_refuses_the_session(placement_run) -> None:
    proc, record = placement_run
    _webgpu_or_skip(record)
    cell = _cells(record)[("transformer", "webgpu-strict")]
    assert cell["verdict"] == "ERROR" and cell["error"]["kind"] == "session"
    assert cell["detail"].startswith("session: ")
    assert "fallback to CPU EP has been explicitly disabled" in cell["detail"]
    assert proc.returncode == 1


def test_a_failing_journal_loses_no_cell(make_case, tmp_path: Path) -> None:
    from harness.golden.cases import load_case
    from harness.profiles.registry import load_all
    from harness.run.plan import plan_case

    class BrokenJournal:
        def cell(self, result):
            raise OSError("No space left on device")

    plans = [plan_case(load_case(make_case(tmp_path / n), n), dims={}, seed=0) for n in ("a", "b", "c")]
    profile = load_all(Path(__file__).resolve().parents[2] / "device_profiles")["cpu"]
    executor = Executor(RunOptions(tmp_path / "out"), BrokenJournal())
    try:
        availability = {profile.name: probe(profile, executor.pool)}
        results = executor.run([(p, profile) for p in plans], availability)
    finally:
        executor.close()
    assert [r.verdict for r in results] == ["PASS", "PASS", "PASS"]
    assert all("No space left" in r.error["journal"] for r in results)


@pytest.mark.skipif(importlib.util.find_spec("onnxruntime_ep_webgpu") is None, reason="onnxruntime-ep-webgpu is not installed")
def test_webgpu_without_a_vulkan_driver_is_skipped_with_the_reason_and_the_fix(make_case, tmp_path: Path) -> None:
    """The shipped webgpu profile on a host whose Vulkan loader finds no driver (the ICDs hidden, as on a fresh
    machine): the probe session fails, so the cell is SKIPPED with the words and the fix, never ERROR."""
    text = (REPO / "device_profiles" / "webgpu.toml").read_text().replace('name = "webgpu"', 'name = "webgpu-novk"', 1)
    assert "[worker]" not in text
    hide = '[worker]\nenv = { VK_ICD_FILENAMES = "/nonexistent.json", VK_DRIVER_FILES = "/nonexistent.json" }\n'
    (tmp_path / "webgpu-novk.toml").write_text(text + "\n" + hide)
    profile = load_profile(tmp_path / "webgpu-novk.toml")
    case = make_case(tmp_path / "tiny")
    executor = Executor(RunOptions(tmp_path / "out"), None)
    try:
        availability = probe(profile, executor.pool)
        result = executor.run_cell(plan_case(load_case(case, "tiny"), dims={}, seed=0), profile, availability)
    finally:
        executor.close()
    assert not availability.available and availability.kind == "no_device"
    assert result.verdict == R.SKIPPED
    assert result.detail.startswith("no WebGPU adapter (no Vulkan driver): ORT says 'EP_FAIL: ")
    assert "Debian: apt-get install -t bookworm-backports mesa-vulkan-drivers" in result.detail


class _ScriptedWorker:
    """Answers load and infer as a worker would, and records what was sent before each receive."""

    pipe_bytes = 1 << 20

    def __init__(self, loaded: dict) -> None:
        from harness.run.pool import Reply
        self.sent: list[tuple[str, dict | None]] = []
        self.sent_before_first_receive = 0
        self._replies = [Reply(loaded, {}), Reply({"type": "result"}, {})]

    def send(self, header: dict, tensors: dict | None, what: str) -> None:
        self.sent.append((header["type"], tensors))

    def receive(self, timeout: float, what: str):
        if len(self._replies) == 2:
            self.sent_before_first_receive = len(self.sent)
        return self._replies.pop(0)


def test_sequence_and_absent_optional_feeds_are_sized_and_sent_ahead(make_case, tmp_path: Path) -> None:
    """A feed holding a sequence (list) and an absent optional (None) is sized by its payload, not .nbytes, so
    it goes out with the load like any small feed; the worker's "numerics" is kept in the cell's model."""
    import time as _time

    import numpy as np

    from harness.profiles.registry import load_all
    plan = plan_case(load_case(make_case(tmp_path / "c"), "c"), dims={}, seed=0)
    plan.datasets[0].inputs = {"seq": [np.zeros(3, np.float32), np.ones(2, np.float32)], "opt": None}
    profile = load_all(Path(__file__).resolve().parents[2] / "device_profiles")["cpu"]
    worker = _ScriptedWorker({"type": "loaded", "placement": {}, "session_ms": 1.0, "numerics": "float64"})
    executor = Executor(RunOptions(tmp_path / "out"), None)
    result = R.CellResult("c", "cpu", R.SKIPPED)
    try:
        reply = executor._load_and_infer(worker, plan, profile, plan.case.model_path, None, _time.monotonic() + 30,
                                         result)
    finally:
        executor.close()
    assert reply.header["type"] == "result"
    assert worker.sent_before_first_receive == 2 and [kind for kind, _ in worker.sent] == ["load", "infer"]
    assert worker.sent[1][1]["0/opt"] is None and len(worker.sent[1][1]["0/seq"]) == 2
    assert result.model["numerics"] == "float64"


@pytest.mark.parametrize("message, unsupported", [
    ("NOT_IMPLEMENTED: Could not find an implementation for BitCast(26) node with name ''", True),
    ("FAIL: Exception during initialization: !node_provider_type.empty() was false. Provider type for Mish node "
     "with name '' is not set.", True),
    ("INVALID_ARGUMENT: Unexpected input data type", False),
])
def test_what_onnxruntime_cannot_run_is_unsupported(message: str, unsupported: bool) -> None:
    from harness.run.executor import is_unsupported
    assert is_unsupported({"type": "error", "status": "FAIL", "message": message}) is unsupported
