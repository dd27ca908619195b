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
    (tmp_path / "notes.txt").write_text("not named like a set")
    (tmp_path / "test_data_set_3").symlink_to(tmp_path / "test_data_set_2", target_is_directory=True)
    assert [k for k, _ in dataset_dirs(tmp_path)] == [2, 3, 10]
    assert dataset_dirs(tmp_path / "missing") == []


@pytest.mark.parametrize("make", [lambda p: p.write_text("a file, not a set"),
                                  lambda p: p.symlink_to(p.parent / "absent")], ids=["file", "dangling-link"])
def test_a_data_set_that_is_not_a_folder_is_refused(tmp_path: Path, make) -> None:
    """Skipping it would leave its goldens uncompared and the run green."""
    (tmp_path / "test_data_set_0").mkdir()
    make(tmp_path / "test_data_set_1")
    with pytest.raises(GoldenError) as info:
        dataset_dirs(tmp_path)
    assert info.value.message == f"{tmp_path / 'test_data_set_1'}: named like a data set but not a folder"
    assert "rename" in info.value.hint


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


# --- every element type and value kind the ONNX node suite uses ---

import ml_dtypes  # noqa: E402
from onnx import TensorProto, helper  # noqa: E402

from harness.golden.layout import graph_types, read_value, value_bytes  # noqa: E402

_EXOTIC = {
    "bf16": (TensorProto.BFLOAT16, np.array([1.5, -2.25, 3e38, np.inf], dtype=ml_dtypes.bfloat16)),
    "e4m3fn": (TensorProto.FLOAT8E4M3FN, np.array([1.5, -448, 0.1, np.nan], dtype=ml_dtypes.float8_e4m3fn)),
    "e4m3fnuz": (TensorProto.FLOAT8E4M3FNUZ, np.array([1.5, -240, 0.1], dtype=ml_dtypes.float8_e4m3fnuz)),
    "e5m2": (TensorProto.FLOAT8E5M2, np.array([1.5, -57344, np.inf], dtype=ml_dtypes.float8_e5m2)),
    "e5m2fnuz": (TensorProto.FLOAT8E5M2FNUZ, np.array([1.5, -57344], dtype=ml_dtypes.float8_e5m2fnuz)),
    "i4": (TensorProto.INT4, np.array([[-8, 7, 0], [1, -1, 3]], dtype=ml_dtypes.int4)),
    "u4": (TensorProto.UINT4, np.array([0, 15, 7], dtype=ml_dtypes.uint4)),
    "f4": (TensorProto.FLOAT4E2M1, np.array([0.5, -6, 3, 1.5, 0], dtype=ml_dtypes.float4_e2m1fn)),
    "s": (TensorProto.STRING, np.array([["é", "ab"], ["", "x y"]], dtype=object)),
    "b": (TensorProto.BOOL, np.array([True, False, True])),
}


def _typed_model(path: Path, decls: dict[str, onnx.TypeProto]) -> None:
    """An Identity-per-value model: the layout only needs the graph's declared types."""
    values = [helper.make_value_info(n, t) for n, t in decls.items()]
    outs = [helper.make_value_info(f"{n}_out", t) for n, t in decls.items()]
    nodes = [helper.make_node("Identity", [n], [f"{n}_out"]) for n in decls]
    onnx.save(helper.make_model(helper.make_graph(nodes, "g", values, outs)), str(path / "model.onnx"))


def _tensor_type(elem: int) -> onnx.TypeProto:
    return helper.make_tensor_type_proto(elem, None)


def _same(got, want) -> None:
    if isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w)
    elif want is None:
        assert got is None
    else:
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype == object:
            assert got.tolist() == want.tolist()
        else:
            np.testing.assert_array_equal(got.astype(np.float64) if want.dtype.kind == "V" or "float" in want.dtype.name
                                          else got, want.astype(np.float64) if "float" in want.dtype.name else want)


@pytest.mark.parametrize("key", sorted(_EXOTIC))
def test_every_element_type_round_trips_through_a_tensorproto(tmp_path: Path, key: str) -> None:
    elem, array = _EXOTIC[key]
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "input_0.pb").write_bytes(value_bytes("x", array))
    name, back = read_value(tmp_path / "ds" / "input_0.pb", _tensor_type(elem))
    assert name == "x"
    assert back.dtype == array.dtype and back.shape == array.shape
    if array.dtype == object:
        assert back.tolist() == array.tolist()
    else:  # NaN-aware, bit-exact through the widened values
        np.testing.assert_array_equal(back.astype(np.float64), array.astype(np.float64))
    proto = onnx.TensorProto()
    proto.ParseFromString((tmp_path / "ds" / "input_0.pb").read_bytes())
    assert proto.data_type == elem  # onnx's own readers see the ONNX element type


def test_sequence_optional_and_map_files_follow_the_graph_types(tmp_path: Path) -> None:
    seq_t = helper.make_sequence_type_proto(_tensor_type(TensorProto.INT64))
    empty_seq_t = helper.make_sequence_type_proto(_tensor_type(TensorProto.FLOAT))
    opt_t = helper.make_optional_type_proto(_tensor_type(TensorProto.FLOAT))
    absent_t = helper.make_optional_type_proto(helper.make_sequence_type_proto(_tensor_type(TensorProto.FLOAT)))
    decls = {"seq": seq_t, "empty": empty_seq_t, "opt": opt_t, "absent": absent_t}
    _typed_model(tmp_path, decls)
    inputs = {"seq": [np.array([1, 2], np.int64), np.array([3], np.int64)], "empty": [],
              "opt": np.array([1.5], np.float32), "absent": None}
    outputs = {f"{n}_out": v for n, v in inputs.items()}
    ds_dir = write_dataset(tmp_path, 0, inputs, outputs, list(decls), list(outputs))
    raw = onnx.OptionalProto()
    raw.ParseFromString((ds_dir / "input_2.pb").read_bytes())
    assert raw.elem_type == onnx.OptionalProto.TENSOR  # the present optional is stored as an OptionalProto
    back = read_dataset(ds_dir, 0, list(decls), list(outputs))
    for name, want in inputs.items():
        _same(back.inputs[name], want)
        _same(back.outputs[f"{name}_out"], want)
    assert set(graph_types(tmp_path / "model.onnx")) == set(decls) | set(outputs)


def test_a_map_round_trips(tmp_path: Path) -> None:
    """int64 keys; onnx's from_dict cannot store str keys (numpy 2 gives them dtype 'S'), which is refused in
    one line, not a traceback."""
    map_t = helper.make_map_type_proto(TensorProto.INT64, _tensor_type(TensorProto.FLOAT))
    (tmp_path / "ds").mkdir()
    value = {3: np.array(1.0, np.float32), 7: np.array(2.5, np.float32)}
    (tmp_path / "ds" / "output_0.pb").write_bytes(value_bytes("m", value, map_t))
    name, back = read_value(tmp_path / "ds" / "output_0.pb", map_t)
    assert name == "m" and list(back) == [3, 7]
    assert [float(v) for v in back.values()] == [1.0, 2.5]
    with pytest.raises(GoldenError, match="'m' \\(dict\\) cannot be stored"):
        value_bytes("m", {"a": np.array(1.0, np.float32)}, map_t)


def test_a_tensor_file_read_as_a_sequence_is_a_golden_error(tmp_path: Path) -> None:
    path = tmp_path / "input_0.pb"
    path.write_bytes(b"\xff\xff\xff")
    seq_t = helper.make_sequence_type_proto(_tensor_type(TensorProto.FLOAT))
    with pytest.raises(GoldenError, match="input_0.pb: not an onnx.SequenceProto"):
        read_value(path, seq_t)
    path.write_bytes(onnx.SequenceProto(elem_type=99).SerializeToString())
    with pytest.raises(GoldenError, match="SequenceProto does not decode"):
        read_value(path, seq_t)


def test_an_unstorable_value_is_a_golden_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(GoldenError, match="'bad'"):
        value_bytes("bad", [np.array([1.0]), [np.array([2.0])]])


def test_value_digest_keeps_the_old_tensor_digest_and_covers_every_kind() -> None:
    import hashlib

    from harness.golden.layout import value_digest
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    old = hashlib.sha256()
    old.update(f"y|{x.dtype}|{x.shape}|".encode())
    old.update(x.tobytes())
    assert value_digest({"y": x}) == old.hexdigest()  # what run records held before other kinds existed
    a = {"s": np.array(["ab", "c"], dtype=object), "q": [x, None], "m": {1: x}, "o": None}
    b = {"s": np.array(["ab", "c"], dtype=object), "q": [x.copy(), None], "m": {1: x.copy()}, "o": None}
    assert value_digest(a) == value_digest(b)  # strings by text, not by object pointer
    assert value_digest({**a, "s": np.array(["a", "bc"], dtype=object)}) != value_digest(a)
    assert value_digest({**a, "q": [x]}) != value_digest(a)


@pytest.mark.parametrize("data", [
    # external data whose location holds a newline / is not UTF-8 (found by tests/fuzz): onnx's error text spans lines
    bytes.fromhex("080210014201786a170a086c6f636174696f6e120b0a066f66667365741201306a0b0a066c656e6774681201387001"),
    bytes.fromhex("080210014201786a170a086c6f636174696f6e120b77656967c574732e62696e6a0b0a066f66667365741201306a0b0a"
                  "066c656e6774681201387001")])
def test_onnx_multi_line_errors_become_one_line_golden_errors(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input_0.pb"
    path.write_bytes(data)
    with pytest.raises(GoldenError) as info:
        read_tensor(path)
    assert "\n" not in info.value.one_line() and "input_0.pb" in info.value.one_line()
