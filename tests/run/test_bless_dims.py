"""bless (harness/run/bless.py) checks what it is given as run does: a --dim that binds nothing is refused before
anything runs, and a case whose sets only partly hold goldens is what a forced bless repairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import UsageError
from harness.golden.cases import load_case
from harness.golden.layout import read_tensor
from harness.profiles import registry
from harness.run.bless import bless


@pytest.fixture
def cpu(cache_dir: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))
    [profile] = registry.select(registry.load_all(), ["cpu"])
    return profile


def _files(folder: Path) -> dict[Path, bytes]:
    return {p: p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_dim_no_generated_input_has_is_refused_and_nothing_written(make_case, tmp_path: Path, cpu) -> None:
    case_dir = make_case(tmp_path / "c", sets=0)
    with pytest.raises(UsageError) as info:
        bless(load_case(case_dir, "c"), cpu, dims={"N": 2, "NN": 3}, seed=0, force=True)
    assert info.value.message == ("--dim NN: case 'c' has no generated input dimension named 'NN' (did you mean "
                                  "'N'?); its inputs' symbolic dimensions are N")
    assert "nothing was written" in info.value.hint
    assert not list(case_dir.glob("test_data_set_*")) and not list(tmp_path.glob(".c.bless-*"))


def test_a_dim_with_stored_inputs_is_refused(make_case, tmp_path: Path, cpu) -> None:
    case_dir = make_case(tmp_path / "c")
    before = _files(case_dir)
    with pytest.raises(UsageError) as info:
        bless(load_case(case_dir, "c"), cpu, dims={"N": 3}, seed=0, force=True)
    assert info.value.message == ("--dim N: case 'c' has no generated input dimension named 'N'; its inputs are "
                                  "stored in its data sets, which fix every dimension")
    assert _files(case_dir) == before


def test_a_dim_that_binds_shapes_the_blessed_inputs(make_case, tmp_path: Path, cpu) -> None:
    case_dir = make_case(tmp_path / "c", sets=0)
    bless(load_case(case_dir, "c"), cpu, dims={"N": 3}, seed=0, force=False)
    _, x = read_tensor(case_dir / "test_data_set_0" / "input_0.pb")
    _, y = read_tensor(case_dir / "test_data_set_0" / "output_0.pb")
    assert x.shape == (3, 4) and y.shape[0] == 3


def test_a_forced_bless_repairs_a_set_missing_its_goldens(make_case, tmp_path: Path, cpu) -> None:
    """run refuses the case (set 1 would go uncompared); bless --force writes every set's goldens anew."""
    case_dir = make_case(tmp_path / "c", sets=2)
    (case_dir / "test_data_set_1" / "output_0.pb").unlink()
    bless(load_case(case_dir, "c"), cpu, dims={}, seed=0, force=True)
    goldens = sorted(p.relative_to(case_dir).as_posix() for p in case_dir.glob("test_data_set_*/output_*.pb"))
    assert goldens == ["test_data_set_0/output_0.pb", "test_data_set_1/output_0.pb"]
    assert np.isfinite(read_tensor(case_dir / "test_data_set_1" / "output_0.pb")[1]).all()
