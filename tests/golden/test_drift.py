"""harness drift A B: per-input statistics and a two-sample KS test; a shift is flagged, noise is not."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from onnx import numpy_helper

from harness.errors import GoldenError, UsageError
from harness.golden import drift


def capture(folder: Path, sets: list[dict[str, np.ndarray]]) -> Path:
    for k, inputs in enumerate(sets):
        ds = folder / f"test_data_set_{k}"
        ds.mkdir(parents=True)
        for i, (name, value) in enumerate(inputs.items()):
            (ds / f"input_{i}.pb").write_bytes(numpy_helper.from_array(value, name).SerializeToString())
    return folder


def normal_sets(seed: int, shift: float = 0.0, sets: int = 3) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": (rng.standard_normal((64, 8)) + shift).astype(np.float32),
             "ids": rng.integers(0, 100, (64,)).astype(np.int64)} for _ in range(sets)]


def test_the_numpy_ks_matches_scipy():
    from scipy.stats import ks_2samp
    rng = np.random.default_rng(0)
    for a, b in [(rng.normal(0, 1, 500), rng.normal(0.2, 1, 700)), (rng.normal(0, 1, 2000), rng.normal(0, 1, 2000))]:
        theirs = ks_2samp(a, b, method="asymp")
        assert drift.ks_statistic(a, b) == pytest.approx(theirs.statistic)
        assert drift.ks_pvalue(theirs.statistic, a.size, b.size) == pytest.approx(theirs.pvalue, rel=0.05, abs=1e-4)


def test_a_shifted_input_is_flagged_and_an_unchanged_one_is_not(tmp_path: Path):
    a = capture(tmp_path / "a", normal_sets(1))
    b = capture(tmp_path / "b", [{**s, "x": s["x"] + 0.5} for s in normal_sets(2)])
    found = {item.name: item for item in drift.drift(a, b)}
    assert found["x"].shifted and found["x"].ks_d > 0.15 and found["x"].p_value < 1e-6
    assert found["x"].mean_shift_sd == pytest.approx(0.5, abs=0.1)
    assert not found["ids"].shifted
    lines = drift.lines(list(found.values()))
    assert lines[0].startswith("SHIFT x: KS D") and lines[-1] == "1 of 2 input(s) shifted (p < 0.01 and D >= 0.1): x"


def test_the_same_distribution_is_not_flagged(tmp_path: Path):
    found = drift.drift(capture(tmp_path / "a", normal_sets(1)), capture(tmp_path / "b", normal_sets(2)))
    assert not any(item.shifted for item in found)


def test_the_numpy_fallback_is_said(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(drift, "ks_2samp", None)
    [x, _] = drift.drift(capture(tmp_path / "a", normal_sets(1)), capture(tmp_path / "b", normal_sets(1, 1.0)))
    assert x.shifted and x.note == "numpy KS, asymptotic p-value"


def test_sets_of_different_models_and_empty_folders_are_refused(tmp_path: Path):
    a = capture(tmp_path / "a", normal_sets(1))
    b = capture(tmp_path / "b", [{"y": np.zeros(3, np.float32)}])
    with pytest.raises(UsageError, match=r"input\(s\) \['ids', 'x', 'y'\] are in only one of"):
        drift.drift(a, b)
    (tmp_path / "empty").mkdir()
    with pytest.raises(GoldenError, match="no test_data_set_<k>/input_<i>.pb to compare"):
        drift.drift(a, tmp_path / "empty")


def test_the_cli_exits_1_on_a_shift_and_writes_json(run_cli, tmp_path: Path):
    a = capture(tmp_path / "a", normal_sets(1))
    b = capture(tmp_path / "b", normal_sets(2, 0.5))
    proc = run_cli("drift", a, b, "--json", tmp_path / "d.json")
    assert proc.returncode == 1, proc.stderr
    assert "SHIFT x:" in proc.stdout and "1 of 2 input(s) shifted" in proc.stdout
    saved = json.loads((tmp_path / "d.json").read_text())
    assert {item["name"]: item["shifted"] for item in saved} == {"x": True, "ids": False}
    assert run_cli("drift", a, a).returncode == 0


def test_the_cli_says_a_missing_folder_in_one_line(run_cli, assert_bad_input, tmp_path: Path):
    line = assert_bad_input(run_cli("drift", tmp_path / "nope", tmp_path / "nope2"))
    assert "nope: not a folder" in line
