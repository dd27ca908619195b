"""Planning: inputs checked against the model before any worker runs; generated inputs when none stored."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from harness.errors import GoldenError, UsageError
from harness.golden.cases import load_case
from harness.run.plan import plan_case


def _plan(case_dir: Path, dims=None, seed: int = 0):
    return plan_case(load_case(case_dir, case_dir.name), dims=dims or {}, seed=seed)


def test_stored_sets_are_planned_with_goldens(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "c", sets=2))
    assert plan.has_goldens and [ds.index for ds in plan.datasets] == [0, 1] and plan.warnings == []
    feed = plan.feed()
    assert sorted(feed) == ["0/x", "1/x"] and feed["0/x"].shape == (2, 4)


@pytest.mark.parametrize("array, message", [
    (np.zeros((2, 4), np.int32), "dtype int32 but the model expects float32"),
    (np.zeros((8,), np.float32), "rank 1 [8] but the model expects rank 2"),
    (np.zeros((2, 5), np.float32), "axis 1 is 5 but the model fixes it to 4"),
])
def test_inputs_that_do_not_fit_the_model(make_case, save_tensor, tmp_path: Path, array, message: str) -> None:
    case_dir = make_case(tmp_path / "c")
    save_tensor(case_dir / "test_data_set_0" / "input_0.pb", "x", array)
    with pytest.raises(GoldenError) as info:
        _plan(case_dir)
    assert message in info.value.message and "test_data_set_0 input 'x'" in info.value.message


def test_goldens_without_inputs_are_refused(make_case, tmp_path: Path) -> None:
    case_dir = make_case(tmp_path / "c")
    (case_dir / "test_data_set_0" / "input_0.pb").unlink()
    with pytest.raises(GoldenError, match="test_data_set_0.*no input"):
        _plan(case_dir)


def test_nan_in_a_golden_is_a_warning(make_case, save_tensor, tmp_path: Path) -> None:
    case_dir = make_case(tmp_path / "c")
    golden = np.ones((2, 3), np.float32)
    golden[1, 2] = np.nan
    save_tensor(case_dir / "test_data_set_0" / "output_0.pb", "y", golden)
    [warning] = _plan(case_dir).warnings
    assert "golden 'y' holds 1 NaN(s)" in warning


def test_no_sets_means_generated_inputs_and_no_goldens(make_case, tmp_path: Path) -> None:
    case_dir = make_case(tmp_path / "c", sets=0)
    with pytest.raises(UsageError, match="symbolic dimension 'N'") as info:
        _plan(case_dir)
    assert "--dim N=" in info.value.one_line()
    plan = _plan(case_dir, dims={"N": 3}, seed=5)
    assert not plan.has_goldens and list(plan.feed()) == ["0/x"] and plan.feed()["0/x"].shape == (3, 4)
    np.testing.assert_array_equal(plan.feed()["0/x"], _plan(case_dir, dims={"N": 3}, seed=5).feed()["0/x"])


def test_manifest_dims_bind_and_cli_dims_win(make_case, tmp_path: Path) -> None:
    case_dir = make_case(tmp_path / "c", sets=0)
    (case_dir / "case.json").write_text('{"dims": {"N": 2}}')
    assert _plan(case_dir).feed()["0/x"].shape == (2, 4)
    assert _plan(case_dir, dims={"N": 6}).feed()["0/x"].shape == (6, 4)


def test_inputs_only_set_is_kept_without_goldens(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "c", goldens=False))
    assert not plan.has_goldens and [ds.index for ds in plan.datasets] == [0]


def test_a_tolerance_override_for_an_unknown_output_is_refused_before_the_run(tmp_path, make_case):
    import json

    from harness.errors import GoldenError
    from harness.golden.cases import load_case
    from harness.run.plan import plan_case
    case_dir = make_case(tmp_path / "c")
    (case_dir / "case.json").write_text(json.dumps({"output_tolerance": {"yy": {"rtol": 1e-3, "atol": 1e-4}}}))
    with pytest.raises(GoldenError, match=r"output_tolerance names output 'yy' \(did you mean 'y'\?\)"):
        plan_case(load_case(case_dir, "c"), dims={}, seed=0)


def test_a_bad_case_tolerance_is_refused_before_the_run(tmp_path, make_case):
    import json

    from harness.errors import ProfileError
    from harness.golden.cases import load_case
    from harness.run.plan import plan_case
    case_dir = make_case(tmp_path / "c")
    (case_dir / "case.json").write_text(json.dumps({"tolerance": {"rtol": 1e-3}}))
    with pytest.raises(ProfileError, match="rtol and atol"):
        plan_case(load_case(case_dir, "c"), dims={}, seed=0)


# --- every value kind of the ONNX node suite ---

import ml_dtypes  # noqa: E402
import onnx  # noqa: E402
from onnx import TensorProto as T  # noqa: E402
from onnx import helper  # noqa: E402

from harness.golden.layout import write_dataset  # noqa: E402


def _suite_like_case(case_dir: Path, inputs: dict, outputs: dict) -> Path:
    """SequenceInsert(seq, t) plus Cast(bf16 -> float) plus an optional passed through Identity."""
    case_dir.mkdir(parents=True)
    opt_t = helper.make_optional_type_proto(helper.make_tensor_type_proto(T.FLOAT, [2]))
    graph = helper.make_graph(
        [helper.make_node("SequenceInsert", ["seq", "t"], ["out_seq"]),
         helper.make_node("Cast", ["b"], ["f"], to=T.FLOAT), helper.make_node("Identity", ["o"], ["o_out"])],
        "g",
        [helper.make_tensor_sequence_value_info("seq", T.INT64, None), helper.make_tensor_value_info("t", T.INT64, [2]),
         helper.make_tensor_value_info("b", T.BFLOAT16, [3]), helper.make_value_info("o", opt_t)],
        [helper.make_tensor_sequence_value_info("out_seq", T.INT64, None), helper.make_tensor_value_info("f", T.FLOAT, [3]),
         helper.make_value_info("o_out", opt_t)])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(case_dir / "model.onnx"))
    write_dataset(case_dir, 0, inputs, outputs, ["seq", "t", "b", "o"], ["out_seq", "f", "o_out"])
    return case_dir


def _values():
    seq = [np.array([1, 2], np.int64)]
    t = np.array([3, 4], np.int64)
    b = np.array([1.5, -2.0, np.nan], ml_dtypes.bfloat16)
    inputs = {"seq": seq, "t": t, "b": b, "o": None}
    outputs = {"out_seq": [*seq, t], "f": b.astype(np.float32), "o_out": None}
    return inputs, outputs


def test_sequences_optionals_and_bfloat16_are_planned(tmp_path: Path) -> None:
    plan = _plan(_suite_like_case(tmp_path / "c", *_values()))
    feed = plan.feed()
    assert isinstance(feed["0/seq"], list) and feed["0/o"] is None and feed["0/b"].dtype == ml_dtypes.bfloat16
    assert plan.feed_nbytes() == 16 + 16 + 6
    [warning] = plan.warnings  # the NaN is found in a float32 golden next to a sequence and an absent optional
    assert "golden 'f' holds 1 NaN(s)" in warning


def test_a_tensor_where_the_model_wants_a_sequence_is_refused(tmp_path: Path) -> None:
    inputs, outputs = _values()
    case_dir = _suite_like_case(tmp_path / "c", inputs, outputs)
    from harness.golden.layout import value_bytes
    (case_dir / "test_data_set_0" / "input_0.pb").write_bytes(
        onnx.SequenceProto(name="seq", elem_type=onnx.SequenceProto.TENSOR).SerializeToString())
    assert _plan(case_dir).feed()["0/seq"] == []  # an empty sequence is a sequence
    (case_dir / "test_data_set_0" / "input_2.pb").write_bytes(value_bytes("b", np.zeros(3, np.float32)))
    with pytest.raises(GoldenError, match="input 'b': dtype float32 but the model expects bfloat16"):
        _plan(case_dir)


def test_kind_mismatch_is_one_line(tmp_path: Path) -> None:
    from harness.golden.layout import DataSet
    from harness.run.plan import check_inputs
    inputs, outputs = _values()
    case_dir = _suite_like_case(tmp_path / "c", inputs, outputs)
    plan = _plan(case_dir)
    bad = DataSet(0, None, {**inputs, "seq": np.array([1], np.int64)}, {})
    with pytest.raises(GoldenError, match="input 'seq': the model expects a sequence \\(list\\) but the file holds "
                                          "a tensor"):
        check_inputs("c", bad, plan.info)
    with pytest.raises(GoldenError, match="input 't': the model expects a tensor but the file holds a sequence"):
        check_inputs("c", DataSet(0, None, {**inputs, "t": [np.array([1])]}, {}), plan.info)


def test_a_model_without_inputs_keeps_its_goldens(tmp_path: Path) -> None:
    """The node suite's test_constant: no graph inputs, one output golden per set."""
    case_dir = tmp_path / "const"
    case_dir.mkdir()
    value = np.arange(4, dtype=np.float32)
    node = helper.make_node("Constant", [], ["y"], value=onnx.numpy_helper.from_array(value))
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("y", T.FLOAT, [4])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(case_dir / "model.onnx"))
    write_dataset(case_dir, 0, {}, {"y": value}, [], ["y"])
    plan = _plan(case_dir)
    assert plan.has_goldens and [ds.index for ds in plan.datasets] == [0] and plan.feed() == {}


# --- case data that would be silently ignored ---

@pytest.mark.parametrize("strip", ["goldens", "everything"])
def test_a_set_without_goldens_beside_sets_with_them_is_refused(make_case, tmp_path: Path, strip: str) -> None:
    """Set 1 would run uncompared (or not at all) while set 0 passes: green with half the case unchecked."""
    case_dir = make_case(tmp_path / "c", sets=3)
    for stored in (case_dir / "test_data_set_1").iterdir():
        if strip == "everything" or stored.name.startswith("output_"):
            stored.unlink()
    with pytest.raises(GoldenError) as info:
        _plan(case_dir)
    assert info.value.message == ("case 'c' test_data_set_1: no output_*.pb while test_data_set_0 holds goldens "
                                  "(a case's data sets all hold goldens, or none does)")
    assert "harness bless --force" in info.value.hint and "\n" not in info.value.one_line()


def test_sets_without_goldens_all_round_are_kept(make_case, tmp_path: Path) -> None:
    plan = _plan(make_case(tmp_path / "c", sets=2, goldens=False))
    assert not plan.has_goldens and [ds.index for ds in plan.datasets] == [0, 1]


def test_input_ranges_for_an_input_the_model_lacks_are_refused(make_case, tmp_path: Path) -> None:
    case_dir = make_case(tmp_path / "c", sets=0)
    (case_dir / "case.json").write_text('{"dims": {"N": 2}, "input_ranges": {"xx": {"low": 0, "high": 1}}}')
    with pytest.raises(GoldenError) as info:
        _plan(case_dir)
    assert info.value.message == (f"{case_dir / 'case.json'}: input_ranges names input 'xx' (did you mean 'x'?), "
                                  f"but the model's inputs are ['x']")
    (case_dir / "case.json").write_text('{"dims": {"N": 2}, "input_ranges": {"x": {"low": 0, "high": 1}}}')
    assert _plan(case_dir).feed()["0/x"].min() >= 0


def test_case_dims_naming_no_input_dimension_are_refused(make_case, tmp_path: Path) -> None:
    """Like an unused --dim: a typo that would leave the dimension it meant at another value, silently."""
    case_dir = make_case(tmp_path / "c", sets=0)
    (case_dir / "case.json").write_text('{"dims": {"N": 2, "Q": 3}}')
    with pytest.raises(GoldenError) as info:
        _plan(case_dir)
    assert info.value.message == (f"{case_dir / 'case.json'}: dims names 'Q', but no input of the model has a "
                                  f"dimension by that name; its inputs' symbolic dimensions are N")
    (case_dir / "case.json").write_text('{"dims": {"NN": 2}}')
    with pytest.raises(GoldenError, match=r"dims names 'NN' \(did you mean 'N'\?\)"):
        _plan(case_dir)


def test_case_dims_are_not_checked_where_inputs_are_stored(make_case, tmp_path: Path) -> None:
    """Stored inputs fix every dimension: a case.json written for a model exported with other dims still runs."""
    case_dir = make_case(tmp_path / "c")
    (case_dir / "case.json").write_text('{"dims": {"Q": 3}}')
    assert _plan(case_dir).has_goldens
