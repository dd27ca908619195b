"""harness/run/runner.py: the in-process runner speaks the same protocol and gives the same results as an
isolated worker."""

from __future__ import annotations

import json
import os
from pathlib import Path

from harness.golden.cases import load_case
from harness.profiles.registry import load_all
from harness.run.executor import Executor, RunOptions, probe
from harness.run.plan import plan_case
from harness.run.pool import WorkerHandle
from harness.run.runner import InProcessRunner, Runner

REPO = Path(__file__).resolve().parents[2]


def _run(tmp_path: Path, case_dir: Path, in_process: bool):
    profile = load_all(REPO / "device_profiles")["cpu"]
    plan = plan_case(load_case(case_dir, case_dir.name), dims={}, seed=0)
    executor = Executor(RunOptions(tmp_path / ("in" if in_process else "out"), in_process=in_process), None)
    try:
        availability = probe(profile, executor.pool)
        return executor.run_cell(plan, profile, availability)
    finally:
        executor.close()


def test_in_process_and_isolated_agree(tmp_path, make_case):
    case_dir = make_case(tmp_path / "tiny", sets=2)
    isolated, local = _run(tmp_path, case_dir, False), _run(tmp_path, case_dir, True)
    assert isolated.verdict == local.verdict == "PASS"
    assert isolated.model["output_digest"] == local.model["output_digest"]
    assert local.placement["fraction_on_ep"] == 1.0


def test_in_process_runner_reports_a_session_error_as_a_reply(tmp_path):
    runner = InProcessRunner({"ep": "CPUExecutionProvider", "session": {}})
    assert runner.hello["available"] is True and runner.hello["in_process"] is True
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a model")
    runner.send({"type": "load", "case": "c", "model_path": str(bogus)}, None, "loading")
    reply = runner.receive(1.0, "loading")
    assert reply.header["type"] == "error" and reply.header["kind"] == "session"
    runner.send({"type": "bye"}, None, "closing")
    assert not runner.alive


def test_both_runners_offer_the_runner_members():
    members = [name for name in Runner.__dict__ if not name.startswith("_")] + list(Runner.__annotations__)
    assert {"alive", "send", "receive", "kill", "close", "hello", "pipe_bytes"} <= set(members)
    runner = InProcessRunner({"ep": "CPUExecutionProvider", "session": {}})
    for name in ("alive", "send", "receive", "kill", "close", "hello", "pipe_bytes"):
        assert hasattr(runner, name), name
    for name in ("alive", "send", "receive", "kill", "close"):
        assert hasattr(WorkerHandle, name), name


def test_cli_in_process_flag(tmp_path, make_case, run_cli, profiles_dir):
    case_dir = make_case(tmp_path / "cases" / "tiny")
    proc = run_cli("run", case_dir, "--in-process", "--numerics-only", "--profiles-dir", profiles_dir,
                   "--profile", "cpu", "--out", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads(next((tmp_path / "results").glob("*/record.json")).read_text())
    assert record["profiles"]["cpu"]["worker"]["in_process"] is True


def test_in_process_runner_takes_the_launcher_environment_and_says_it_bypassed_the_command(monkeypatch):
    from harness.run.pool import Launch
    monkeypatch.setenv("HARNESS_TEST_LAUNCH_ENV", "unset at teardown")  # recorded, so the runner's value is undone
    monkeypatch.delenv("HARNESS_TEST_LAUNCH_ENV")
    launch = Launch(("env", "python3"), {"HARNESS_TEST_LAUNCH_ENV": "1"})
    runner = InProcessRunner({"ep": "CPUExecutionProvider", "session": {}}, launch)
    assert os.environ["HARNESS_TEST_LAUNCH_ENV"] == "1"
    assert runner.hello["available"] is True and runner.hello["launcher_bypassed"] == ["env", "python3"]
