"""'harness localize' and 'harness run --localize' from the command line."""

from __future__ import annotations

import json
from pathlib import Path


def test_a_failing_case_is_localised_with_exit_1_and_a_repro(run_cli, overflow_case: Path, tmp_path: Path) -> None:
    proc = run_cli("localize", overflow_case, "--profile", "cpu-fp16", "--out", tmp_path / "repro",
                   "--json", tmp_path / "loc.json", "--no-pass-blame")
    assert proc.returncode == 1, proc.stderr
    assert "first beyond its tolerance: tensor 'h3' from node 'amplify' (Mul) on CPUExecutionProvider" in proc.stdout
    assert "fails alone" in proc.stdout and f"harness run {tmp_path / 'repro'} --profile cpu-fp16" in proc.stdout
    assert json.loads((tmp_path / "loc.json").read_text())["repro"]["fails_alone"] is True


def test_a_passing_case_says_so_and_exits_0(run_cli, overflow_case: Path) -> None:
    proc = run_cli("localize", overflow_case, "--profile", "cpu-noopt")
    assert proc.returncode == 0, proc.stderr
    assert "passes, nothing to localise" in proc.stdout


def test_an_unavailable_reference_is_one_line_and_exit_2(run_cli, overflow_case: Path, make_profile, tmp_path: Path,
                                                          assert_bad_input) -> None:
    make_profile(tmp_path / "profiles", "absent", extra='[requires]\npackages = ["no_such_package_h11"]\n')
    proc = run_cli("localize", overflow_case, "--profile", "cpu-fp16", "--against", "absent",
                   "--profiles-dir", tmp_path / "profiles")
    line = assert_bad_input(proc)
    assert "reference profile 'absent' cannot run here" in line and "no_such_package_h11" in line


def test_rtol_without_atol_is_bad_input(run_cli, overflow_case: Path, assert_bad_input) -> None:
    line = assert_bad_input(run_cli("localize", overflow_case, "--profile", "cpu-fp16", "--rtol", "1e-4"))
    assert "--rtol and --atol" in line


def test_run_localize_references_the_localisation_from_the_failing_cell(run_cli, overflow_case: Path,
                                                                        tmp_path: Path, read_record) -> None:
    proc = run_cli("run", overflow_case, "--profile", "cpu-fp16", "--numerics-only", "--localize",
                   "--out", tmp_path / "results", "--root", tmp_path / "no-root")
    assert proc.returncode == 1, proc.stderr
    assert "first diverging node 'amplify' (Mul)" in proc.stdout
    record = read_record(tmp_path / "results")
    [cell] = record["cells"]
    side = next((tmp_path / "results").glob("*/")) / cell["artifacts"]["localize"]
    data = json.loads(side.read_text())
    assert data["first"]["node"] == "amplify" and data["repro"]["fails_alone"] is True
