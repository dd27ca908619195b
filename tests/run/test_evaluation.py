"""Latency and memory evaluation end to end, through ``harness run`` in a subprocess: budgets and their
messages, --numerics-only, the recorded statistics and raw samples, baselines, --repeat's noise floor,
profile budget validation, threads in effect and the matrix. Sampling is capped at 0.2 s per cell."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

TIME_CAP = "0.2"
CI_RE = r"\[[0-9.e+-]+, [0-9.e+-]+\]"


@pytest.fixture
def harness_run(run_cli, profiles_dir: Path, tmp_path: Path) -> Callable[..., tuple[Any, dict[str, Any], Path]]:
    """``harness run ARGS`` with latency on (time cap 0.2 s); returns (process, record.json, run folder)."""
    counter = iter(range(100))

    def run(*args: str | Path, profile: str = "cpu") -> tuple[Any, dict[str, Any], Path]:
        out = tmp_path / f"results{next(counter)}"
        proc = run_cli("run", *args, "--profile", profile, "--profiles-dir", profiles_dir, "--root",
                       tmp_path / "no-root", "--out", out, "--time-cap", TIME_CAP)
        records = list(out.glob("*/record.json"))
        record = json.loads(records[0].read_text()) if records else {}
        return proc, record, (records[0].parent if records else out)
    return run


@pytest.fixture
def add_profile(profiles_dir: Path) -> Callable[..., str]:
    """Write profile NAME: the cpu profile plus ``extra`` TOML tables and ``session`` keys."""
    def add(name: str, extra: str, session: str = "") -> str:
        base = (profiles_dir / "cpu.toml").read_text().replace('name = "cpu"', f'name = "{name}"', 1)
        base = base.replace("[session]\n", f"[session]\n{session}\n", 1)
        (profiles_dir / f"{name}.toml").write_text(base + "\n" + extra + "\n")
        return name
    return add


def _cell(record: dict[str, Any], case: str | None = None) -> dict[str, Any]:
    cells = [c for c in record["cells"] if case is None or c["case"] == case]
    assert len(cells) == 1, record.get("cells")
    return cells[0]


def _with_budgets(case: Path, budgets: dict[str, float]) -> Path:
    (case / "case.json").write_text(json.dumps({"budgets": budgets}))
    return case


# (a) budgets -------------------------------------------------------------------------------------

def test_tiny_p50_budget_is_over_budget_with_ci_and_exit_1(harness_run, add_profile, tiny_case):
    add_profile("tight", "[budgets]\np50_ms = 0.000001")
    proc, record, _ = harness_run(tiny_case, profile="tight")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    cell = _cell(record)
    assert cell["verdict"] == "OVER_BUDGET"
    assert re.fullmatch(rf"p50 [0-9.e+-]+ ms {CI_RE} > budget 1e-06 ms", cell["budget"][0]), cell["budget"]
    assert cell["detail"] == cell["budget"][0]
    assert "Over budget: p50 " in proc.stdout and "> budget 1e-06 ms" in proc.stdout


def test_generous_budgets_pass_and_p99_budget_forces_662_samples(harness_run, add_profile, tiny_case):
    """Also (c) the recorded statistics, (g) threads and affinity in effect, (h) the matrix cell."""
    add_profile("roomy", "[constraints]\ncpu_cores = 1\n"
                         "[budgets]\np50_ms = 1000\np95_ms = 1000\np99_ms = 1000\npeak_mb = 100000\n"
                         "cold_start_ms = 100000\nfirst_inference_ms = 100000", session="intra_op_threads = 1")
    proc, record, run_dir = harness_run(tiny_case, profile="roomy")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cell = _cell(record)
    assert cell["verdict"] == "PASS" and cell["budget"] == []
    stats = cell["latency"]["stats"]
    assert stats["p50"] <= stats["p95"] <= stats["p99"]
    assert stats["n"] >= 662  # MLPerf's minimum for a p99
    lo, hi = stats["ci"]["p50"]
    assert lo <= stats["p50"] <= hi
    assert "p99" in stats["ci"]  # a budgeted percentile gets its own CI
    samples = np.load(run_dir / cell["artifacts"]["latency_ns"])
    assert samples.dtype == np.int64 and len(samples) == stats["n"]
    threads = cell["timing"]["threads"]
    assert threads["intra_op"] == 1 and threads["intra_op_effective"] == 1
    assert len(threads["affinity"]) == 1
    matrix = proc.stdout.split("Conformance matrix")[1]
    for name in ("p50", "p95"):  # a value and its CI, as [lo,hi] or as a relative half-width
        assert re.search(rf"{name} [0-9.e+-]+( ms)? ?(\[[0-9.e+-]+, ?[0-9.e+-]+\]|±[0-9.]+%)", matrix), matrix
    assert re.search(r"peak \+[0-9.]+ MB", matrix), matrix


def test_case_budget_overrides_the_profile_budget(harness_run, add_profile, make_case, tmp_path):
    add_profile("tight", "[budgets]\np50_ms = 0.000001")
    relaxed = _with_budgets(make_case(tmp_path / "relaxed"), {"p50_ms": 1000})
    strict = make_case(tmp_path / "strict")
    proc, record, _ = harness_run(relaxed, strict, profile="tight")
    assert proc.returncode == 1
    assert _cell(record, "relaxed")["verdict"] == "PASS"
    assert _cell(record, "strict")["verdict"] == "OVER_BUDGET"


def test_peak_mb_and_cold_start_budgets(harness_run, add_profile, tiny_case):
    add_profile("lean", "[budgets]\npeak_mb = 0.001\ncold_start_ms = 0.000001")
    proc, record, _ = harness_run(tiny_case, profile="lean")
    assert proc.returncode == 1
    cell = _cell(record)
    assert cell["verdict"] == "OVER_BUDGET"
    assert any(re.fullmatch(r"peak [0-9.e+-]+ MB > budget 0.001 MB", m) for m in cell["budget"]), cell["budget"]
    assert any(re.fullmatch(r"cold start [0-9.e+-]+ ms > budget 1e-06 ms", m) for m in cell["budget"]), cell["budget"]


def test_a_profile_without_device_timings_never_meets_a_case_budget(harness_run, add_profile, profiles_dir,
                                                                     tiny_case):
    """An emulated or fp64 profile (latency = false): its cold start is qemu's or Python's, so a case's budgets
    cannot apply to it (they did: 'cold start 91.3 ms > budget 1 ms' on an emulated arm64 cell)."""
    path = profiles_dir / f"{add_profile('untimed', '')}.toml"
    path.write_text(path.read_text().replace('name = "untimed"', 'name = "untimed"\nlatency = false', 1))
    _with_budgets(tiny_case, {"cold_start_ms": 0.000001, "peak_mb": 0.001})
    proc, record, _ = harness_run(tiny_case, profile="untimed")
    cell = _cell(record)
    assert (proc.returncode, cell["verdict"], cell["budget"]) == (0, "PASS", [])


# (b) --numerics-only -----------------------------------------------------------------------------

def test_numerics_only_records_no_latency(run_case, tiny_case, tmp_path):
    proc = run_case(tiny_case)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [record_path] = (tmp_path / "results").glob("*/record.json")
    cell = _cell(json.loads(record_path.read_text()))
    assert cell["verdict"] == "PASS"
    assert not cell["latency"] and "latency_ns" not in cell["artifacts"]
    assert not list((tmp_path / "results").rglob("latency_ns.npy"))
    assert "p50" not in proc.stdout


# (d) baselines -----------------------------------------------------------------------------------

def _copy_baseline(run_dir: Path, dest: Path, edit: Callable[[dict[str, Any]], None] | None = None) -> Path:
    shutil.copytree(run_dir, dest)
    if edit:
        path = dest / "record.json"
        record = json.loads(path.read_text())
        edit(record)
        path.write_text(json.dumps(record))
    return dest


def test_baseline_of_the_same_model_does_not_flag(harness_run, tiny_case):
    _, _, base = harness_run(tiny_case)
    # Two processes on a shared, loaded VM can differ by tens of percent; the allowance is wide so that
    # only a broken comparison (not noise) flags, and a real false positive would flag on every try.
    for _ in range(3):
        proc, record, _ = harness_run(tiny_case, "--baseline", base, "--max-regression", "p50:100%")
        cell = _cell(record)
        if proc.returncode == 0:
            break
    assert proc.returncode == 0, proc.stdout
    assert cell["verdict"] == "PASS"
    [check] = cell["latency"]["regression"]
    assert check["stat"] == "p50" and not check["regressed"]


def test_baseline_ten_times_faster_flags_regression(harness_run, tiny_case, tmp_path):
    _, record, run_dir = harness_run(tiny_case)
    base = _copy_baseline(run_dir, tmp_path / "fast-baseline")
    samples_path = base / _cell(record)["artifacts"]["latency_ns"]
    np.save(samples_path, np.load(samples_path) // 10)
    proc, record, _ = harness_run(tiny_case, "--baseline", base, "--max-regression", "p50:5%")
    assert proc.returncode == 1, proc.stdout
    cell = _cell(record)
    assert cell["verdict"] == "OVER_BUDGET"
    assert re.match(r"p50 regressed [0-9.]+% \(.* -> .* ms, diff CI .*\) > allowed 5%", cell["detail"]), cell["detail"]
    assert "regressed" in proc.stdout


def test_baseline_with_future_schema_version_is_refused(harness_run, run_cli, tiny_case, tmp_path,
                                                        assert_bad_input):
    _, _, run_dir = harness_run(tiny_case)
    base = _copy_baseline(run_dir, tmp_path / "future", lambda r: r.update(schema_version=99))
    proc, _, _ = harness_run(tiny_case, "--baseline", base)
    line = assert_bad_input(proc)
    assert "schema_version 99 is not readable by this harness" in line


def test_baseline_from_another_host_warns(harness_run, tiny_case, tmp_path):
    _, _, run_dir = harness_run(tiny_case)
    base = _copy_baseline(run_dir, tmp_path / "elsewhere", lambda r: r["machine"].update(node="some-other-box"))
    proc, _, _ = harness_run(tiny_case, "--baseline", base, "--max-regression", "p50:1000%")
    assert proc.returncode == 0, proc.stdout
    assert re.search(r"warning: baseline .* was measured on another host \(some-other-box", proc.stdout), proc.stdout


# (e) --repeat ------------------------------------------------------------------------------------

def test_repeat_reports_noise_floor(harness_run, tiny_case):
    proc, record, _ = harness_run(tiny_case, "--repeat", "3")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"noise floor cpu: 1/1 cells bitwise identical across 3 runs; p50 spread median "
                     r"[0-9.]+% max [0-9.]+%", proc.stdout), proc.stdout
    noise = record["noise"]["cpu"]
    assert noise["cells"] == 1 and noise["bitwise_identical"] == 1
    assert noise["p50_spread_pct_max"] >= noise["p50_spread_pct_median"] >= 0


# (f) budget validation ---------------------------------------------------------------------------

def test_budget_key_typo_is_one_line_with_did_you_mean(run_case, add_profile, tiny_case, assert_bad_input):
    add_profile("typo", "[budgets]\np50_mss = 10")
    line = assert_bad_input(run_case(tiny_case))
    assert "unknown budget 'p50_mss'" in line and "did you mean 'p50_ms'" in line, line


def test_negative_budget_is_refused(run_case, add_profile, tiny_case, assert_bad_input):
    add_profile("negative", "[budgets]\np95_ms = -1")
    line = assert_bad_input(run_case(tiny_case))
    assert "budget 'p95_ms' must be positive" in line, line


def test_bad_case_json_budget_is_refused(harness_run, tiny_case, assert_bad_input):
    _with_budgets(tiny_case, {"p95ms": 3})
    proc, _, _ = harness_run(tiny_case)
    line = assert_bad_input(proc)
    assert "case.json budgets: unknown budget 'p95ms'" in line, line


def test_repeat_keeps_the_raw_samples_of_the_recorded_run(harness_run, tiny_case):
    """Later --repeat runs keep their own samples: the recorded run's latency_ns.npy matches its stats."""
    proc, record, run_dir = harness_run(tiny_case, "--repeat", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cell = _cell(record)
    samples = np.load(run_dir / cell["artifacts"]["latency_ns"])
    assert len(samples) == cell["latency"]["stats"]["n"]
    assert np.median(samples) / 1e6 == pytest.approx(cell["latency"]["stats"]["p50"], rel=0.05)
