"""Observation -> verdict (harness/run/verdict.py): tolerance layers, PASS*/FAIL, known failures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from harness.compare.comparator import compare_output
from harness.compare.tolerances import Tolerance, ToleranceOverride
from harness.golden.cases import load_case
from harness.profiles.schema import KnownFailure, OutputOverride, Profile, ProfileTolerance
from harness.run import record as R
from harness.run.verdict import (apply_known_failure, compare_datasets, failure_messages, fell_back,
                                 numeric_verdict, tolerance_layers)

GOLDEN = np.array([1.0, 2.0, 3.0], dtype=np.float32)
TOL = Tolerance(rtol=1e-4, atol=1e-5)


def _profile(**over) -> Profile:
    return Profile(name=over.pop("name", "p"), source=None, **over)


def _comparison(name: str = "y", delta: float = 0.0):
    return compare_output(name, GOLDEN, GOLDEN + np.float32(delta), TOL)


def _cell(verdict: str, case: str = "x_case", outputs: list | None = None) -> R.CellResult:
    return R.CellResult(case, "p", verdict, detail="orig", outputs=outputs or [])


# ---- numeric verdict and placement ------------------------------------------------------------------------------

def test_all_outputs_close_is_pass() -> None:
    case = object()
    assert numeric_verdict(case, _profile(), [(0, _comparison()), (1, _comparison())], {}) == (R.PASS, "")


def test_any_output_out_of_tolerance_is_fail() -> None:
    verdict, detail = numeric_verdict(object(), _profile(), [(0, _comparison()), (1, _comparison("z", 1.0)),
                                                              (2, _comparison("y", 1.0))], {})
    assert verdict == R.FAIL
    assert detail == "2 output(s) out of tolerance vs golden (y, z); first in test_data_set_1"


def test_the_detail_says_what_the_outputs_were_compared_against() -> None:
    verdict, detail = numeric_verdict(object(), _profile(), [(0, _comparison("z", 1.0))], {}, against="cpu")
    assert (verdict, detail) == (R.FAIL, "1 output(s) out of tolerance vs cpu (z); first in test_data_set_0")


def test_nodes_that_fell_back_make_pass_star() -> None:
    placement = {"available": True, "fraction_on_ep": 0.8, "fell_back_count": 12}
    profile = _profile(ep="WebGpuExecutionProvider")
    verdict, detail = numeric_verdict(object(), profile, [(0, _comparison())], placement)
    assert verdict == R.PASS_FELL_BACK
    assert detail == "passed, but only 80% of nodes ran on WebGpuExecutionProvider; 12 fell back"


def test_a_failure_outranks_a_fall_back() -> None:
    placement = {"available": True, "fraction_on_ep": 0.5}
    profile = _profile(ep="WebGpuExecutionProvider")
    assert numeric_verdict(object(), profile, [(0, _comparison("y", 1.0))], placement)[0] == R.FAIL


@pytest.mark.parametrize("ep, placement, expected", [
    ("CPUExecutionProvider", {"available": True, "fraction_on_ep": 0.5}, False),  # the CPU EP is the fallback
    ("WebGpuExecutionProvider", {"available": False, "fraction_on_ep": 0.5}, False),  # no audit, no claim
    ("WebGpuExecutionProvider", {"available": True, "fraction_on_ep": 1.0}, False),
    ("WebGpuExecutionProvider", {"available": True, "fraction_on_ep": 0.99}, True),
])
def test_fell_back(ep: str, placement: dict, expected: bool) -> None:
    assert fell_back(_profile(ep=ep), placement) is expected


# ---- tolerance layers --------------------------------------------------------------------------------------------

def test_layers_in_order_later_wins(make_case, tmp_path: Path) -> None:
    folder = make_case(tmp_path / "cls")
    (folder / "data.json").write_text(json.dumps({"rtol": 0.3, "atol": 0.03}))
    everything = ToleranceOverride(min_cosine=0.9)
    per_dtype = ToleranceOverride(rtol=0.2, atol=0.02)
    late = ToleranceOverride(rtol=0.5, atol=0.05)
    other = ToleranceOverride(rtol=0.9, atol=0.9)
    profile = _profile(tolerance=ProfileTolerance(everything, {"float32": per_dtype},
                                                  (OutputOverride("cl*", "y", late), OutputOverride("zz", "*", other))))
    case = load_case(folder, "cls")
    layers = tolerance_layers(case, profile, "y", np.dtype("float32"))
    assert layers[0] == ToleranceOverride(rtol=0.3, atol=0.03)  # data.json: below the profile's stated precision
    assert layers[1:3] == [everything, per_dtype]
    assert layers[-1] == late and other not in layers
    assert tolerance_layers(case, profile, "y", np.dtype("float16"))[2] is None  # per-dtype is by golden dtype


def test_a_profile_override_loosens_one_case(make_case, tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path / "loose"), "loose")
    [ds] = case.datasets()
    actual = {f"0/{name}": g + np.float32(0.01) for name, g in ds.outputs.items()}
    strict = compare_datasets(case, _profile(), [ds], actual)
    loose = _profile(tolerance=ProfileTolerance(overrides=(OutputOverride("loo*", "*", ToleranceOverride(
        rtol=0.0, atol=0.02)),)))
    assert [c.passed for _, c in strict] == [False]
    assert [c.passed for _, c in compare_datasets(case, loose, [ds], actual)] == [True]


def test_compare_datasets_records_what_it_compared_against(make_case, tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path / "ref"), "ref")
    [ds] = case.datasets()
    actual = {f"0/{name}": g for name, g in ds.outputs.items()}
    assert [c.against for _, c in compare_datasets(case, _profile(), [ds], actual)] == ["golden"]
    assert [c.against for _, c in compare_datasets(case, _profile(), [ds], actual, against="cpu")] == ["cpu"]


def test_a_signal_gated_profile_passes_what_its_gates_pass(make_case, tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path / "q"), "q")
    [ds] = case.datasets()
    actual = {f"0/{name}": g * np.float32(1.001) for name, g in ds.outputs.items()}  # 0.1%: beyond rtol 1e-4
    int8 = _profile(tolerance=ProfileTolerance(ToleranceOverride.from_mapping(
        {"elementwise": False, "min_cosine": 0.99, "min_snr_db": 15}, "cpu-int8 [tolerance]")))
    assert [c.passed for _, c in compare_datasets(case, _profile(), [ds], actual)] == [False]
    [(_, comparison)] = compare_datasets(case, int8, [ds], actual)
    assert comparison.passed and not comparison.tolerance.elementwise


def test_a_missing_actual_output_fails_as_a_shape_mismatch(make_case, tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path / "c"), "c")
    [(k, comparison)] = compare_datasets(case, _profile(), case.datasets(), {})
    assert k == 0 and not comparison.passed and comparison.shape_mismatch


def test_failure_messages_are_torch_style() -> None:
    cell = _cell(R.FAIL, outputs=[{"dataset": 1, "comparison": _comparison("y", 1.0).to_dict()},
                                  {"dataset": 1, "comparison": _comparison("ok").to_dict()}])
    [message] = failure_messages(cell)
    lines = message.splitlines()
    assert lines[0] == "case 'x_case [test_data_set_1]' output 'y' on profile 'p': tensor-likes are not close vs golden"
    assert lines[1] == "Mismatched elements: 3 / 3 (100.0%) beyond rtol 0.0001 / atol 1e-05"
    assert "Greatest absolute difference: 1.0 at index (0,) (up to 1e-05 allowed)" in lines


def test_failure_messages_of_a_reference_comparison_say_vs_cpu() -> None:
    comparison = compare_output("y", GOLDEN, GOLDEN + np.float32(1.0), TOL, against="cpu")
    [message] = failure_messages(_cell(R.FAIL, outputs=[{"dataset": 0, "comparison": comparison.to_dict()}]))
    assert message.splitlines()[0].endswith("on profile 'p': tensor-likes are not close vs cpu")


def test_failure_messages_of_an_old_record_without_against() -> None:
    old = _comparison("y", 1.0).to_dict()
    del old["against"]
    [message] = failure_messages(_cell(R.FAIL, outputs=[{"dataset": 0, "comparison": old}]))
    assert message.splitlines()[0].endswith("tensor-likes are not close vs golden")


# ---- known failures ---------------------------------------------------------------------------------------------

KNOWN = _profile(known_failures=(KnownFailure("x*", "kernel missing on this EP"),))


@pytest.mark.parametrize("before, after", [(R.FAIL, R.XFAIL), (R.ERROR, R.XFAIL), (R.CRASH, R.XFAIL),
                                           (R.PASS, R.XPASS), (R.PASS_FELL_BACK, R.XPASS),
                                           (R.TIMEOUT, R.XFAIL), (R.OOM, R.XFAIL), (R.SKIPPED, R.SKIPPED)])
def test_known_failure_turns_verdicts(before: str, after: str) -> None:
    result = apply_known_failure(_cell(before), KNOWN)
    assert result.verdict == after and result.known_failure == "kernel missing on this EP"
    if after == R.XFAIL:
        assert result.detail == "expected failure: kernel missing on this EP (orig)"
    if after == R.XPASS:
        assert "unexpectedly passed" in result.detail and "Remove the entry" in result.detail


def test_an_unlisted_case_is_untouched() -> None:
    result = apply_known_failure(_cell(R.FAIL, case="other"), KNOWN)
    assert (result.verdict, result.detail, result.known_failure) == (R.FAIL, "orig", "")


def test_a_known_failure_for_one_output_does_not_hide_another() -> None:
    profile = _profile(known_failures=(KnownFailure("x*", "output a is wrong here", output="a"),))
    cell = _cell(R.FAIL, outputs=[{"dataset": 0, "comparison": _comparison("b", 1.0).to_dict()}])
    assert apply_known_failure(cell, profile).verdict == R.FAIL


# ---- known failures end to end ----------------------------------------------------------------------------------

def test_known_failures_in_a_run(make_case, break_golden, make_profile, tmp_path: Path, run_cli, read_record) -> None:
    root = tmp_path / "cases"
    break_golden(make_case(root / "x_fails"))
    make_case(root / "x_passes")
    make_case(root / "plain")
    make_profile(tmp_path / "profiles", "cpu", extra='[[known_failures]]\ncase = "x*"\nreason = "tracked in #42"\n')
    proc = run_cli("run", "--root", root, "--profiles-dir", tmp_path / "profiles", "--profile", "cpu", "--numerics-only",
                   "--out", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = {c["case"]: c for c in read_record(tmp_path / "results")["cells"]}
    assert {k: c["verdict"] for k, c in cells.items()} == {"x_fails": "XFAIL", "x_passes": "XPASS", "plain": "PASS"}
    assert cells["x_fails"]["known_failure"] == cells["x_passes"]["known_failure"] == "tracked in #42"
    assert cells["plain"]["known_failure"] == ""
    assert "[XPASS] case 'x_passes' on profile 'cpu': unexpectedly passed; listed as known failure: tracked in #42" \
        in proc.stdout
    assert "[XFAIL]" not in proc.stdout  # expected failures stay quiet


def test_a_known_failure_expects_an_unsupported_cell(monkeypatch: pytest.MonkeyPatch) -> None:
    """UNSUPPORTED (NOT_IMPLEMENTED at session creation) is counted apart from failures, but a profile that lists
    the case expects it: XFAIL, with the reason."""
    monkeypatch.setattr(R, "UNSUPPORTED", getattr(R, "UNSUPPORTED", "UNSUPPORTED"), raising=False)
    result = apply_known_failure(_cell(R.UNSUPPORTED), KNOWN)
    assert result.verdict == R.XFAIL and result.detail == "expected failure: kernel missing on this EP (orig)"


# ---- every value kind ----------------------------------------------------------------------------------------

def _value_case(tmp_path: Path, goldens: dict):
    """A case whose outputs are a sequence, an optional and a bfloat16 tensor (Identity of each input)."""
    import ml_dtypes  # noqa: F401
    import onnx
    from onnx import TensorProto as T
    from onnx import helper

    from harness.golden.layout import write_dataset
    case_dir = tmp_path / "v"
    case_dir.mkdir()
    seq_t = helper.make_sequence_type_proto(helper.make_tensor_type_proto(T.FLOAT, None))
    opt_t = helper.make_optional_type_proto(helper.make_tensor_type_proto(T.FLOAT, [2]))
    bf_t = helper.make_tensor_type_proto(T.BFLOAT16, [3])
    types = {"s": seq_t, "o": opt_t, "b": bf_t}
    graph = helper.make_graph([helper.make_node("Identity", [n], [f"{n}_out"]) for n in types], "g",
                              [helper.make_value_info(n, t) for n, t in types.items()],
                              [helper.make_value_info(f"{n}_out", t) for n, t in types.items()])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(case_dir / "model.onnx"))
    inputs = {"s": goldens["s_out"], "o": goldens["o_out"], "b": goldens["b_out"]}
    write_dataset(case_dir, 0, inputs, goldens, list(types), [f"{n}_out" for n in types])
    return load_case(case_dir, "v")


def test_compare_datasets_takes_sequences_optionals_and_bfloat16(tmp_path: Path) -> None:
    import ml_dtypes
    goldens = {"s_out": [np.array([1.0, 2.0], np.float32)], "o_out": None,
               "b_out": np.array([1.0, 1.5, -2.0], ml_dtypes.bfloat16)}
    case = _value_case(tmp_path, goldens)
    [ds] = case.datasets()
    actual = {f"0/{n}": v for n, v in goldens.items()}
    got = compare_datasets(case, _profile(), [ds], actual)
    assert [(c.name, c.kind, c.passed) for _, c in got] == [("s_out", "sequence", True), ("o_out", "optional", True),
                                                           ("b_out", "tensor", True)]
    assert numeric_verdict(case, _profile(), got, {}) == (R.PASS, "")
    actual["0/s_out"] = []
    del actual["0/o_out"]  # a missing output never passes, even where the golden is an absent optional
    got = compare_datasets(case, _profile(), [ds], actual)
    assert [c.passed for _, c in got] == [False, False, True]
    verdict, detail = numeric_verdict(case, _profile(), got, {})
    assert verdict == R.FAIL and "(o_out, s_out)" in detail


def test_a_passing_dtype_mismatch_is_said_in_the_detail(make_case, tmp_path: Path) -> None:
    case = load_case(make_case(tmp_path / "w"), "w")
    [ds] = case.datasets()
    actual = {f"0/{name}": g.astype(np.float64) for name, g in ds.outputs.items()}
    got = compare_datasets(case, _profile(), [ds], actual)
    verdict, detail = numeric_verdict(case, _profile(), got, {})
    assert verdict == R.PASS
    assert detail == ("passed; output 'y': dtype mismatch: golden float32 vs actual float64: compared after "
                      "widening both to float64")


def test_a_narrower_golden_fails_at_the_outputs_tolerance_and_says_so(make_case, tmp_path: Path) -> None:
    """A float16 golden for a float32 output: the output is judged at float32's tolerance (float16's rounding,
    ~5e-4 relative, is beyond rtol 1e-4), and the detail names both dtypes."""
    case = load_case(make_case(tmp_path / "h"), "h")
    [ds] = case.datasets()
    exact = dict(ds.outputs)
    ds.outputs = {name: g.astype(np.float16) for name, g in exact.items()}
    actual = {f"0/{name}": g + np.float32(3e-4) * np.abs(g) for name, g in exact.items()}
    [(_, comparison)] = compare_datasets(case, _profile(), [ds], actual)
    assert (comparison.tolerance.rtol, comparison.tolerance.atol) == (1e-4, 1e-5)
    assert not comparison.passed
    assert comparison.notes == ["dtype mismatch: golden float16 vs actual float32: compared after widening both to "
                                "float64"]
    assert "golden float16" in "\n".join(failure_messages(_cell(R.FAIL, outputs=[
        {"dataset": 0, "comparison": comparison.to_dict()}])))
