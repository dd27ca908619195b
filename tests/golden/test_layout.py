"""The ONNX test-data layout: round trips, interoperability with onnx's readers, atomic refusing writes."""

from __future__ import annotations

import glob
import os
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from harness.errors import GoldenError
from harness.golden.layout import dataset_dirs, read_dataset, read_tensor, write_dataset

INPUTS = ["tokens", "mask"]
OUTPUTS = ["logits", "lengths"]


def _arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = {"tokens": rng.integers(0, 100, (2, 5)).astype(np.int64),
              "mask": rng.integers(0, 2, (2, 5)).astype(np.bool_)}
    outputs = {"logits": rng.standard_normal((2, 5, 7)).astype(np.float32),
               "lengths": np.array([5, 3], dtype=np.int32)}
    return inputs, outputs


def _load_pb(path: str) -> onnx.TensorProto:
    tensor = onnx.TensorProto()
    with open(path, "rb") as handle:
        tensor.ParseFromString(handle.read())
    return tensor


def test_round_trip_keeps_names_dtypes_and_values(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    ds_dir = write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    assert ds_dir == tmp_path / "test_data_set_0"
    back = read_dataset(ds_dir, 0, INPUTS, OUTPUTS)
    assert list(back.inputs) == INPUTS and list(back.outputs) == OUTPUTS
    for want, got in ((inputs, back.inputs), (outputs, back.outputs)):
        for name in want:
            assert got[name].dtype == want[name].dtype
            np.testing.assert_array_equal(got[name], want[name])


def test_files_follow_onnx_backend_loader_naming(tmp_path: Path) -> None:
    """test_data_set_N/input_K.pb and output_K.pb, K the position in the graph signature, tensor named."""
    inputs, outputs = _arrays()
    write_dataset(tmp_path, 3, inputs, outputs, INPUTS, OUTPUTS)
    names = sorted(p.name for p in (tmp_path / "test_data_set_3").iterdir())
    assert names == ["input_0.pb", "input_1.pb", "output_0.pb", "output_1.pb"]
    for kind, order, arrays in (("input", INPUTS, inputs), ("output", OUTPUTS, outputs)):
        for k, name in enumerate(order):
            tensor = _load_pb(str(tmp_path / "test_data_set_3" / f"{kind}_{k}.pb"))
            assert tensor.name == name
            np.testing.assert_array_equal(numpy_helper.to_array(tensor), arrays[name])


def test_runner_style_glob_reads_every_set(tmp_path: Path) -> None:
    """Iterate like onnx.backend.test.runner: glob test_data_set_*, then input_*.pb / output_*.pb in order."""
    written = {k: _arrays(seed=k) for k in range(3)}
    for k, (inputs, outputs) in written.items():
        write_dataset(tmp_path, k, inputs, outputs, INPUTS, OUTPUTS)
    seen = []
    for ds in sorted(glob.glob(os.path.join(tmp_path, "test_data_set_*"))):
        k = int(ds.rsplit("_", 1)[1])
        n_in = len(glob.glob(os.path.join(ds, "input_*.pb")))
        n_out = len(glob.glob(os.path.join(ds, "output_*.pb")))
        got_in = [numpy_helper.to_array(_load_pb(os.path.join(ds, f"input_{i}.pb"))) for i in range(n_in)]
        got_out = [numpy_helper.to_array(_load_pb(os.path.join(ds, f"output_{i}.pb"))) for i in range(n_out)]
        inputs, outputs = written[k]
        for got, name in zip(got_in, INPUTS):
            np.testing.assert_array_equal(got, inputs[name])
        for got, name in zip(got_out, OUTPUTS):
            np.testing.assert_array_equal(got, outputs[name])
        seen.append(k)
    assert seen == [0, 1, 2]
    assert [k for k, _ in dataset_dirs(tmp_path)] == [0, 1, 2]


def test_dataset_dirs_orders_numerically_and_ignores_strays(tmp_path: Path) -> None:
    for name in ("test_data_set_10", "test_data_set_2", "test_data_set_x", "other"):
        (tmp_path / name).mkdir()
    (tmp_path / "test_data_set_5").write_text("a file, not a set")
    assert [k for k, _ in dataset_dirs(tmp_path)] == [2, 10]
    assert dataset_dirs(tmp_path / "missing") == []


def test_write_leaves_no_temporary_files(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    write_dataset(tmp_path, 0, *_arrays(seed=1), INPUTS, OUTPUTS, force=True)
    leftovers = [p.name for p in tmp_path.rglob("*") if p.is_file() and not p.name.endswith(".pb")]
    assert leftovers == []
    assert not list(tmp_path.rglob(".*"))


def test_existing_goldens_are_refused_without_force(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    ds_dir = write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    before = {p.name: p.read_bytes() for p in ds_dir.iterdir()}
    with pytest.raises(GoldenError, match="already exist") as info:
        write_dataset(tmp_path, 0, *_arrays(seed=1), INPUTS, OUTPUTS)
    assert "--force" in info.value.one_line()
    assert {p.name: p.read_bytes() for p in ds_dir.iterdir()} == before


def test_force_overwrites_and_drops_stale_outputs(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    new_in, new_out = _arrays(seed=9)
    ds_dir = write_dataset(tmp_path, 0, {"tokens": new_in["tokens"]}, {"logits": new_out["logits"]},
                           ["tokens"], ["logits"], force=True)
    # The old second input/output belong to the old signature; leaving them would break the next read.
    back = read_dataset(ds_dir, 0, ["tokens"], ["logits"])
    np.testing.assert_array_equal(back.outputs["logits"], new_out["logits"])


def test_a_missing_array_writes_nothing(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    del outputs["lengths"]
    with pytest.raises(KeyError):
        write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    assert not list(tmp_path.rglob("*.pb"))


@pytest.mark.parametrize("payload", [b"\xff" * 64, os.urandom(0) + b"\x08\x01\x12\x03abc" * 9, b"not a tensor at all"])
def test_garbage_pb_is_a_golden_error_naming_the_file(tmp_path: Path, payload: bytes) -> None:
    path = tmp_path / "output_0.pb"
    path.write_bytes(payload)
    with pytest.raises(GoldenError, match="output_0.pb"):
        read_tensor(path)


def test_wrong_count_and_wrong_names_are_refused(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    ds_dir = write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    with pytest.raises(GoldenError, match="2 output file"):
        read_dataset(ds_dir, 0, INPUTS, ["logits"])
    with pytest.raises(GoldenError, match="named 'logits'"):
        read_dataset(ds_dir, 0, INPUTS, ["scores", "lengths"])


def test_a_set_without_outputs_reads_as_inputs_only(tmp_path: Path) -> None:
    inputs, outputs = _arrays()
    ds_dir = write_dataset(tmp_path, 0, inputs, outputs, INPUTS, OUTPUTS)
    for p in ds_dir.glob("output_*.pb"):
        p.unlink()
    back = read_dataset(ds_dir, 0, INPUTS, OUTPUTS)
    assert back.outputs == {} and list(back.inputs) == INPUTS


def test_onnx_backend_loader_finds_and_replays_a_written_case(tmp_path: Path, make_model, reference) -> None:
    """onnx.backend.test.loader discovers the case; reading it the runner's way and evaluating the model with
    onnx's reference evaluator reproduces the goldens."""
    from onnx.backend.test.loader import load_model_tests
    from onnx.reference import ReferenceEvaluator

    case_dir = tmp_path / "data" / "harness" / "test_tiny"
    case_dir.mkdir(parents=True)
    model = make_model()
    onnx.save(model, str(case_dir / "model.onnx"))
    for k in range(2):
        x = np.random.default_rng(k).uniform(-1, 1, (k + 1, 4)).astype(np.float32)
        write_dataset(case_dir, k, {"x": x}, {"y": reference(model, x)}, ["x"], ["y"])
    [test] = load_model_tests(data_dir=str(tmp_path / "data"), kind="harness")
    assert test.name == "test_tiny" and test.model_dir == str(case_dir)
    loaded = onnx.load(os.path.join(test.model_dir, "model.onnx"))
    evaluator = ReferenceEvaluator(loaded)
    sets = sorted(glob.glob(os.path.join(test.model_dir, "test_data_set*")))
    assert len(sets) == 2
    for ds in sets:
        inputs = [numpy_helper.to_array(_load_pb(os.path.join(ds, f"input_{i}.pb")))
                  for i in range(len(glob.glob(os.path.join(ds, "input_*.pb"))))]
        refs = [numpy_helper.to_array(_load_pb(os.path.join(ds, f"output_{i}.pb")))
                for i in range(len(glob.glob(os.path.join(ds, "output_*.pb"))))]
        feeds = {v.name: arr for v, arr in zip(loaded.graph.input, inputs)}
        for got, want in zip(evaluator.run(None, feeds), refs, strict=True):
            np.testing.assert_allclose(got, want, rtol=test.rtol, atol=1e-6)
