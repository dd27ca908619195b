"""``harness run --tolerance auto|calibrated|declared`` (MatrixOptions.tolerance) through the executor."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import api
from harness.calibrate.calibrate import calibrate
from harness.errors import UsageError


@pytest.fixture
def calibrated(make_case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    case = make_case(tmp_path / "cases" / "tiny")
    calibrate([str(case)], api.MatrixOptions(root=tmp_path / "cases"))
    return case


def _rules(case: Path, tmp_path: Path, mode: str) -> dict[str, set[str]]:
    record = api.run_matrix([str(case)], ["cpu", "cpu-fp16"], api.MatrixOptions(
        numerics_only=True, out=tmp_path / mode, root=tmp_path / "cases", tolerance=mode))
    assert record.options["tolerance"] == mode  # a resumed run judges the same way
    return {c.profile: {o["comparison"]["rule"] for o in c.outputs} for c in record.cells}


@pytest.mark.parametrize("mode, cpu, fp16", [("auto", "calibrated", "declared"),
                                             ("calibrated", "calibrated", "calibrated"),
                                             ("declared", "declared", "declared")])
def test_each_mode_picks_the_rule_per_profile(calibrated: Path, tmp_path: Path, mode: str, cpu: str, fp16: str) -> None:
    assert _rules(calibrated, tmp_path, mode) == {"cpu": {cpu}, "cpu-fp16": {fp16}}


def test_an_unknown_mode_is_refused_in_the_flags_words(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--tolerance 'strict': must be auto, calibrated or declared"):
        api.run_matrix([], ["cpu"], api.MatrixOptions(out=tmp_path, tolerance="strict"))


def test_the_cli_flag_fails_fp16_in_ulps(calibrated: Path, run_cli, tmp_path: Path) -> None:
    proc = run_cli("run", calibrated, "--profile", "cpu", "--profile", "cpu-fp16", "--numerics-only",
                   "--tolerance", "calibrated", "--root", tmp_path / "cases", "--out", tmp_path / "results")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "[FAIL] case 'tiny' on profile 'cpu-fp16'" in proc.stdout and "ULP allowed, observed" in proc.stdout
    assert "on profile 'cpu':" not in proc.stdout  # the float32 profile passes: no failure block names it
