"""--perturb noise:σ / quantize:bits: seeded input perturbations, and how far each device's task metric moves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness import api
from harness.errors import UsageError
from harness.golden.layout import DataSet
from harness.task.perturb import movement, parse, perturbed_datasets

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("text", ["noise", "noise:0", "noise:-1", "noise:nan", "quantize:2.5", "quantize:0",
                                  "quantize:40", "blur:3"])
def test_a_bad_perturbation_is_refused_in_one_line(text):
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert "\n" not in caught.value.one_line() and repr(text) in caught.value.one_line()


def test_noise_is_seeded_and_leaves_integer_inputs_alone():
    ds = [DataSet(0, None, {"x": np.zeros((100, 10), np.float32), "ids": np.arange(5)}, {"y": np.ones(3)})]
    a = perturbed_datasets(ds, parse("noise:0.5"), seed=3)
    b = perturbed_datasets(ds, parse("noise:0.5"), seed=3)
    assert np.array_equal(a[0].inputs["x"], b[0].inputs["x"]) and a[0].inputs["x"].dtype == np.float32
    assert a[0].inputs["x"].std() == pytest.approx(0.5, rel=0.05)
    assert a[0].inputs["ids"] is ds[0].inputs["ids"] and a[0].outputs is ds[0].outputs


def test_quantize_rounds_to_evenly_spaced_levels():
    x = np.linspace(-2, 2, 1001, dtype=np.float32)
    [q] = perturbed_datasets([DataSet(0, None, {"x": x}, {})], parse("quantize:2"), seed=0)
    assert np.unique(q.inputs["x"]) == pytest.approx([-2, -2 / 3, 2 / 3, 2], rel=1e-6)


def test_movement_is_perturbed_minus_clean():
    clean = {"kind": "classification", "metrics": {"top1_agreement": 1.0, "f1_drop": 0.0}}
    moved = movement(clean, {"kind": "classification", "metrics": {"top1_agreement": 0.75, "f1_drop": 0.3}})
    assert moved["moved"] == {"top1_agreement": -0.25, "f1_drop": 0.3} and moved["main"] == "top1_agreement"


def test_run_matrix_keeps_each_devices_move_in_the_clean_cell(tmp_path: Path):
    options = api.MatrixOptions(out=tmp_path / "results", numerics_only=True, perturb=["noise:0.3", "noise:0.001"])
    record = api.run_matrix([REPO / "reference_outputs" / "classifier"], ["cpu", "cpu-int8"], options)
    assert len(record.cells) == 2  # the perturbed reruns are not cells of the run
    for cell in record.cells:
        big, tiny = cell.task["perturbed"]["noise:0.3"], cell.task["perturbed"]["noise:0.001"]
        assert big["moved"]["top1_agreement"] < 0 and tiny["moved"]["top1_agreement"] == 0.0, cell.profile


def test_the_cli_refuses_a_bad_perturbation(run_cli, assert_bad_input):
    line = assert_bad_input(run_cli("run", "classifier", "--profile", "cpu", "--numerics-only", "--perturb", "noise:x"))
    assert "--perturb 'noise:x'" in line
