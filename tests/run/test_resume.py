"""A run killed with SIGKILL resumes from its journal (harness/run/record.py Journal, commands.cmd_run --resume):
finished cells are kept as they were, the rest run, and the record ends up complete."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

CASES = [f"r{k}" for k in range(1, 7)]
HANGS = CASES[-1]
REPO = Path(__file__).resolve().parents[2]


def _cell_lines(journal: Path) -> list[dict]:
    entries = []
    for line in journal.read_text().splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if entry.get("kind") == "cell":
            entries.append(entry)
    return entries


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.fixture(scope="module")
def killed_run(tmp_path_factory: pytest.TempPathFactory, case_builder, make_profile, cache_dir: Path) -> dict:
    """Start a run whose last case hangs, SIGKILL its process group once the other cells are journalled."""
    base = tmp_path_factory.mktemp("resume")
    for name in CASES:
        case_builder(base / "cases" / name)
    make_profile(base / "profiles", "cpu")
    args = ["--root", base / "cases", "--profiles-dir", base / "profiles", "--no-builtin-profiles", "--numerics-only",
            "--out", base / "results"]
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir), "HARNESS_TEST_FAULT": f"hang:{HANGS}"}
    proc = subprocess.Popen([sys.executable, "-m", "harness", "run", *map(str, args), "--timeout", "60"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    descendants: list[int] = []
    try:
        deadline = time.monotonic() + 60
        journal = None
        while time.monotonic() < deadline and proc.poll() is None:
            journal = next(iter((base / "results").glob("*/journal.jsonl")), None)
            if journal and len(_cell_lines(journal)) >= len(CASES) - 1:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()}"
        assert journal is not None and len(_cell_lines(journal)) == len(CASES) - 1
        time.sleep(0.3)  # let the hanging cell's worker reach its hang
        descendants = [p.pid for p in psutil.Process(proc.pid).children(recursive=True)]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        before = _cell_lines(journal)
        record_written = (journal.parent / "record.json").exists()
        time.sleep(2)  # a worker that outlives its parent by this long is an orphan
        survivors = [pid for pid in descendants if _alive(pid)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        for pid in descendants:  # our own children's children: leave nothing hanging for an hour
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.stderr.close()
    return {"base": base, "args": args, "run_dir": journal.parent, "before": before, "survivors": survivors,
            "descendants": descendants, "record_written": record_written}


@pytest.fixture(scope="module")
def resumed(killed_run: dict, cli) -> tuple[subprocess.CompletedProcess, dict]:
    proc = cli("run", "--resume", killed_run["run_dir"], *killed_run["args"])
    record = json.loads((killed_run["run_dir"] / "record.json").read_text())
    return proc, record


def test_the_kill_left_finished_cells_in_the_journal(killed_run: dict) -> None:
    assert sorted(c["case"] for c in killed_run["before"]) == CASES[:-1]
    assert all(c["verdict"] == "PASS" for c in killed_run["before"])
    assert not killed_run["record_written"]


def test_resume_completes_the_record(resumed) -> None:
    proc, record = resumed
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [c["case"] for c in record["cells"]] == CASES
    assert all(c["verdict"] == "PASS" for c in record["cells"]) and record["finished"]
    assert "6 cells: 6 PASS" in proc.stdout


def test_resume_does_not_rerun_finished_cells(killed_run: dict, resumed) -> None:
    _, record = resumed
    lines = _cell_lines(killed_run["run_dir"] / "journal.jsonl")
    per_key: dict[str, int] = {}
    for entry in lines:
        key = f"{entry['case']}|{entry['profile']}"
        per_key[key] = per_key.get(key, 0) + 1
    assert per_key == {f"{case}|cpu": 1 for case in CASES}
    cells = {c["case"]: c for c in record["cells"]}
    for old in killed_run["before"]:
        kept = cells[old["case"]]
        assert kept["duration_s"] == old["duration_s"]
        assert kept["model"]["output_digest"] == old["model"]["output_digest"]
    journal_text = (killed_run["run_dir"] / "journal.jsonl").read_text()
    assert journal_text.count('"kind": "header"') == 1


def test_the_kill_found_the_hung_worker(killed_run: dict) -> None:
    assert killed_run["descendants"], "the harness had no worker when it was killed"


def test_workers_do_not_outlive_a_killed_harness(killed_run: dict) -> None:
    assert killed_run["survivors"] == []
