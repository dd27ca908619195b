"""The onnx node suite as a case source: written once in the test-data layout, read back as onnx wrote it.

onnx's own loader takes ~15 s, so these tests hand materialise() a few TestCases of the same shape (one
node, an _expanded sibling, bfloat16, int4, sequence and optional values); bench/node_suite.py builds the
real 1884.
"""

from __future__ import annotations

import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from onnx.backend.test.case.test_case import TestCase

from harness.errors import GoldenError, UsageError
from harness.golden import suite
from harness.golden.suite import NodeSuite, materialise, read_index, suite_dir


def _model(nodes: list[onnx.NodeProto], inputs: list, outputs: list, opset: int = 21) -> onnx.ModelProto:
    model = helper.make_model(helper.make_graph(nodes, "g", inputs, outputs),
                              opset_imports=[helper.make_opsetid("", opset)], producer_name="backend-test")
    model.ir_version = 10
    return model


def _case(name: str, model: onnx.ModelProto, inputs: list, outputs: list, rtol: float = 1e-3,
          atol: float = 1e-7) -> TestCase:
    return TestCase(name=name, model_name=name, url=None, model_dir=None, model=model,
                    data_sets=[(inputs, outputs)], kind="node", rtol=rtol, atol=atol)


def _tensor(name: str, elem: int, shape: list) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


X = np.array([-1.5, 0.25, 2.0], dtype=np.float32)


def fake_tests() -> list[TestCase]:
    abs_model = _model([helper.make_node("Abs", ["x"], ["y"])], [_tensor("x", TensorProto.FLOAT, [3])],
                       [_tensor("y", TensorProto.FLOAT, [3])])
    expanded = _model([helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Max", ["x", "n"], ["y"])],
                      [_tensor("x", TensorProto.FLOAT, [3])], [_tensor("y", TensorProto.FLOAT, [3])])
    bf16 = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.BFLOAT16)],
                  [_tensor("x", TensorProto.FLOAT, [3])], [_tensor("y", TensorProto.BFLOAT16, [3])])
    int4 = _model([helper.make_node("Cast", ["x"], ["y"], to=TensorProto.INT4)],
                  [_tensor("x", TensorProto.FLOAT, [3])], [_tensor("y", TensorProto.INT4, [3])])
    int4_out = helper.make_tensor("", TensorProto.INT4, [3], [-2, 0, 2])  # packed, as onnx hands it over
    seq = _model([helper.make_node("SequenceLength", ["s"], ["n"])],
                 [helper.make_tensor_sequence_value_info("s", TensorProto.FLOAT, None)],
                 [_tensor("n", TensorProto.INT64, [])])
    opt_type = helper.make_optional_type_proto(helper.make_tensor_type_proto(TensorProto.FLOAT, [3]))
    opt = _model([helper.make_node("OptionalHasElement", ["o"], ["b"])],
                 [helper.make_value_info("o", opt_type)], [_tensor("b", TensorProto.BOOL, [])])
    return [
        _case("test_abs", abs_model, [X], [np.abs(X)]),
        _case("test_abs_expanded", expanded, [X], [np.abs(X)]),
        _case("test_cast_FLOAT_to_BFLOAT16", bf16, [X], [X.astype(ml_dtypes.bfloat16)], rtol=1e-2, atol=1e-4),
        _case("test_cast_FLOAT_to_INT4", int4, [X], [int4_out]),
        _case("test_sequence_length", seq, [[X, X]], [np.int64(2)]),
        _case("test_optional_has_element_empty_optional_input", opt, [None], [np.array(False)]),
    ]


@pytest.fixture
def built(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(suite, "load_node_tests", fake_tests)
    return tmp_path / "cache"


def test_cases_are_written_in_the_test_data_layout_and_read_back(built: Path) -> None:
    cases = {c.name: c for c in NodeSuite(built).cases()}
    folder = suite_dir(built)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == sorted(cases)
    assert {n: c.op for n, c in cases.items()} == {
        "test_abs": "Abs", "test_abs_expanded": "Abs", "test_cast_FLOAT_to_BFLOAT16": "Cast",
        "test_cast_FLOAT_to_INT4": "Cast", "test_sequence_length": "SequenceLength",
        "test_optional_has_element_empty_optional_input": "OptionalHasElement"}
    [ds] = cases["test_abs"].datasets()
    np.testing.assert_array_equal(ds.inputs["x"], X)
    assert (folder / "test_abs" / "test_data_set_0" / "output_0.pb").is_file()
    [ds] = cases["test_cast_FLOAT_to_BFLOAT16"].datasets()
    assert ds.outputs["y"].dtype == ml_dtypes.bfloat16
    [ds] = cases["test_cast_FLOAT_to_INT4"].datasets()
    assert ds.outputs["y"].dtype.name == "int4" and ds.outputs["y"].astype(np.int8).tolist() == [-2, 0, 2]
    [ds] = cases["test_sequence_length"].datasets()
    assert [a.tolist() for a in ds.inputs["s"]] == [X.tolist(), X.tolist()]
    [ds] = cases["test_optional_has_element_empty_optional_input"].datasets()
    assert ds.inputs["o"] is None and ds.outputs["b"].tolist() is False
    proto = onnx.OptionalProto()  # exactly as onnx's generate-data writes an absent optional
    proto.ParseFromString((folder / "test_optional_has_element_empty_optional_input" / "test_data_set_0"
                           / "input_0.pb").read_bytes())
    assert proto.name == "o" and proto.elem_type == onnx.OptionalProto.UNDEFINED


def test_suite_tolerances_are_written_and_say_which_applied(built: Path) -> None:
    cases = {c.name: c for c in NodeSuite(built).cases()}
    own = cases["test_abs"].tolerance_overrides
    assert (own.data_json.rtol, own.data_json.atol) == (1e-3, 1e-7) and own.per_output == {}
    assert "onnx's defaults" in cases["test_abs"].manifest.source["tolerance"]
    bf16 = cases["test_cast_FLOAT_to_BFLOAT16"]
    own = bf16.tolerance_overrides
    assert (own.data_json.rtol, own.data_json.atol) == (1e-2, 1e-4)  # the TestCase's own override
    assert (own.per_output["y"].rtol, own.per_output["y"].atol) == (2 ** -6, 1e-4)
    assert "this test's own" in bf16.manifest.source["tolerance"] and "bfloat16" in bf16.manifest.source["tolerance"]
    assert json.loads((bf16.path / "data.json").read_text()) == {"rtol": 1e-2, "atol": 1e-4}  # what onnx reads


def test_a_second_run_reuses_the_cache(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    heard: list[str] = []
    first = NodeSuite(built, notify=heard.append).cases()
    assert len(heard) == 1 and "once per onnx version" in heard[0]

    def no_rebuild() -> list:
        raise AssertionError("rebuilt")
    monkeypatch.setattr(suite, "load_node_tests", no_rebuild)
    assert [c.name for c in NodeSuite(built, notify=heard.append).cases()] == [c.name for c in first]
    assert len(heard) == 1  # no second build, nothing said


def test_the_cache_key_holds_the_onnx_version(built: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    NodeSuite(built).cases()
    old = suite_dir(built)
    monkeypatch.setattr(onnx, "__version__", "9.9.9")
    assert suite_dir(built) != old and "9.9.9" in suite_dir(built).name
    assert read_index(old) is None  # an index from another onnx is not this version's cache
    NodeSuite(built).cases()
    assert read_index(suite_dir(built)) is not None


def test_a_failed_build_leaves_no_cache_and_no_temporary_folder(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    bad = fake_tests()
    bad[1].data_sets = [([X.astype(np.float64)], [X])]  # float64 for a float32 input: refused, not written
    monkeypatch.setattr(suite, "load_node_tests", lambda: bad)
    with pytest.raises(GoldenError, match=r"test_abs_expanded: 'x' holds DOUBLE but the graph declares FLOAT"):
        NodeSuite(tmp_path).cases()
    assert list((tmp_path / "suites").iterdir()) == []


def test_an_abandoned_build_is_cleaned_and_a_damaged_cache_rebuilt(built: Path) -> None:
    parents = suite_dir(built).parent
    dead = parents / f".building-{suite_dir(built).name}-{2 ** 22 + 12345}-abc"  # above pid_max: not alive
    dead.mkdir(parents=True)
    live = parents / f".building-{suite_dir(built).name}-{os.getpid()}-abc"
    live.mkdir()
    suite_dir(built).mkdir()  # a folder under our name without an index
    assert len(NodeSuite(built).cases()) == 6
    assert not dead.exists() and live.exists()


def test_two_builds_at_once_both_succeed_on_one_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    both_loading = threading.Barrier(2, timeout=30)

    def slow_tests() -> list[TestCase]:
        both_loading.wait()  # both builds are under way before either publishes
        return fake_tests()
    monkeypatch.setattr(suite, "load_node_tests", slow_tests)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: materialise(tmp_path), range(2)))
    assert results[0] == results[1] and len(results[0][1]) == 6
    assert [p.name for p in (tmp_path / "suites").iterdir()] == [suite_dir(tmp_path).name]  # no leftovers


def test_a_concurrent_build_that_finished_first_wins(built: Path) -> None:
    folder, entries = materialise(built)
    loser = folder.parent / ".building-loser"
    loser.mkdir()
    (loser / "partial").write_text("x")
    suite._publish(loser, folder)  # rename onto a complete cache fails: theirs is kept, no error
    assert read_index(folder) == entries


def test_filter_is_a_regex_searched_in_the_name(built: Path) -> None:
    assert [c.name for c in NodeSuite(built).cases("abs")] == ["test_abs", "test_abs_expanded"]
    assert [c.name for c in NodeSuite(built).cases(r"^test_abs$")] == ["test_abs"]
    with pytest.raises(UsageError, match=r"--filter '\(abs' is not a valid regular expression"):
        NodeSuite(built).cases("(abs")
    with pytest.raises(UsageError, match=r"matches none of the 6 case\(s\) in the onnx-node suite"):
        NodeSuite(built).cases("conv")


def test_an_op_is_found_by_schema_name_without_a_sibling() -> None:
    two_nodes = _model([helper.make_node("Neg", ["x"], ["n"]), helper.make_node("Max", ["x", "n"], ["y"])],
                       [_tensor("x", TensorProto.FLOAT, [3])], [_tensor("y", TensorProto.FLOAT, [3])])
    ops = suite._schema_ops()
    lonely = _case("test_layer_normalization_2d_expanded", two_nodes, [X], [X])
    assert suite._op_under_test(lonely, {}, ops) == "LayerNormalization"
    assert suite._op_under_test(_case("test_nothing_known", two_nodes, [X], [X]), {}, ops) == ""


def test_describe_says_which_tolerances_applied(built: Path) -> None:
    described = NodeSuite(built).describe("cast")
    assert described["cases"] == 2 and described["onnx"] == onnx.__version__ and described["filter"] == "cast"
    assert described["tolerance"] == {"rtol": 1e-3, "atol": 1e-7}
    assert described["bfloat16_outputs"] == {"rtol": 2 ** -6, "cases": ["test_cast_FLOAT_to_BFLOAT16"]}
    assert described["own_tolerance_cases"] == ["test_cast_FLOAT_to_BFLOAT16"]
    json.dumps(described, allow_nan=False)


def test_a_case_removed_from_the_cache_is_named(built: Path) -> None:
    folder, _ = materialise(built)
    (folder / "test_abs" / "model.onnx").unlink()
    with pytest.raises(GoldenError, match=r"lacks 1 case\(s\) its index lists \(first: test_abs\)") as info:
        NodeSuite(built).cases()
    assert f"delete {folder}" in info.value.one_line()


def test_an_unwritable_cache_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(suite, "load_node_tests", fake_tests)
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(GoldenError, match="cannot write the onnx node suite there") as info:
        NodeSuite(blocker).cases()
    assert "HARNESS_CACHE_DIR" in info.value.one_line()
