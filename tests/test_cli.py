"""The command line end to end, in subprocesses: exit codes, one-line errors, verdicts, run records."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, external_data_helper, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]


def _read(path: Path) -> np.ndarray:
    tensor = onnx.TensorProto()
    tensor.ParseFromString(path.read_bytes())
    return numpy_helper.to_array(tensor)


def _record(out: Path) -> dict:
    [path] = out.glob("*/record.json")

    def refuse(token: str):
        raise AssertionError(f"non-standard JSON constant {token} in {path}")
    return json.loads(path.read_text(), parse_constant=refuse)


# ---- bad usage and bad input: exit 2, one line, no traceback ------------------------------------------------

def _profile(text: str) -> Callable[[Path, Path, Path], list[str]]:
    def setup(case: Path, profiles: Path, tmp: Path) -> list[str]:
        (profiles / "cpu.toml").write_text(text)
        return [case]
    return setup


def _cpu_with(extra: str, table: str = "") -> str:
    base = (REPO / "device_profiles" / "cpu.toml").read_text()
    return base.replace(f"[{table}]\n", f"[{table}]\n{extra}\n") if table else extra + "\n" + base


def _bytes(name: str, data: Callable[[Path], bytes]) -> Callable[[Path, Path, Path], list[str]]:
    def setup(case: Path, profiles: Path, tmp: Path) -> list[str]:
        (case / name).write_bytes(data(case))
        return [case]
    return setup


def _first_half(path: Path) -> bytes:
    data = path.read_bytes()
    return data[: len(data) // 2]


def _extra_output(case: Path, profiles: Path, tmp: Path) -> list[str]:
    shutil.copy(case / "test_data_set_0" / "output_0.pb", case / "test_data_set_0" / "output_1.pb")
    return [case]


def _renamed_output(case: Path, profiles: Path, tmp: Path) -> list[str]:
    path = case / "test_data_set_0" / "output_0.pb"
    path.write_bytes(numpy_helper.from_array(_read(path), name="not_y").SerializeToString())
    return [case]


def _int_input(case: Path, profiles: Path, tmp: Path) -> list[str]:
    path = case / "test_data_set_0" / "input_0.pb"
    path.write_bytes(numpy_helper.from_array(np.zeros((2, 4), np.int32), name="x").SerializeToString())
    return [case]


def _wrong_shape_input(case: Path, profiles: Path, tmp: Path) -> list[str]:
    path = case / "test_data_set_0" / "input_0.pb"
    path.write_bytes(numpy_helper.from_array(np.zeros((2, 7), np.float32), name="x").SerializeToString())
    return [case]


def _escaping_external_data(case: Path, profiles: Path, tmp: Path) -> list[str]:
    model = onnx.load(str(case / "model.onnx"))
    weight = model.graph.initializer[0]
    (case.parent / "secret.bin").write_bytes(numpy_helper.to_array(weight).tobytes())
    external_data_helper.set_external_data(weight, location="../secret.bin")
    weight.data_location = TensorProto.EXTERNAL
    weight.ClearField("raw_data")
    (case / "model.onnx").write_bytes(model.SerializeToString())
    return [case]


BAD_INPUTS = {
    "missing path": (lambda c, p, t: [t / "nowhere" / "case"], ["no case or directory named"]),
    "not onnx": (_bytes("model.onnx", lambda c: np.random.default_rng(0).bytes(300)), ["model.onnx"]),
    "truncated model": (_bytes("model.onnx", lambda c: _first_half(c / "model.onnx")), ["model.onnx"]),
    "garbage pb": (_bytes("test_data_set_0/output_0.pb", lambda c: b"\xff\xfe garbage \x00" * 8),
                   ["output_0.pb", "not an onnx.TensorProto"]),
    "extra golden": (_extra_output, ["2 output file(s) but the model has 1"]),
    "misnamed golden": (_renamed_output, ["named 'not_y'", "'y'"]),
    "int32 input": (_int_input, ["dtype int32 but the model expects float32"]),
    "wrong input shape": (_wrong_shape_input, ["axis 1 is 7 but the model fixes it to 4"]),
    "escaping external data": (_escaping_external_data, ["outside the model's folder", "../secret.bin"]),
    "profile unknown key": (_profile(_cpu_with("timeout = 5")), ["unknown key 'timeout'", "did you mean 'timeout_s'"]),
    "profile negative threads": (_profile(_cpu_with("intra_op_threads = -1", "session")),
                                 ["intra_op_threads = -1 is not valid"]),
    "profile zero memory": (_profile(_cpu_with("[constraints]\nmemory_limit_mb = 0")),
                            ["memory_limit_mb = 0 is not valid"]),
    "profile bad toml": (_profile("name = \"cpu\"\n[ep\nname = 1\n"), ["malformed TOML"]),
    "profile unknown ep": (_profile('name = "cpu"\n[ep]\nname = "CUDAExecutionProviderX"\n'),
                           ["unknown execution provider", "CPUExecutionProvider", "OpenVINOExecutionProvider"]),
    "profile contradiction": (_profile('name = "cpu"\n[ep]\nname = "OpenVINOExecutionProvider"\n'
                                       'precision_hint = "bf16"\n[precision]\ntransform = "fp16"\n'),
                              ["contradicts ep.precision_hint = 'bf16'"]),
    "unknown profile": (lambda c, p, t: [c, "--profile", "gpuu"], ["unknown profile 'gpuu'", "known profiles: cpu"]),
}


@pytest.mark.parametrize("name", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_2(name: str, tiny_case: Path, profiles_dir: Path, tmp_path: Path,
                                          run_cli, assert_bad_input) -> None:
    setup, fragments = BAD_INPUTS[name]
    args = setup(tiny_case, profiles_dir, tmp_path)
    profile = [] if "--profile" in args else ["--profile", "cpu"]
    proc = run_cli("run", *args, *profile, "--numerics-only", "--profiles-dir", profiles_dir,
                   "--root", tmp_path / "no-root", "--out", tmp_path / "results")
    line = assert_bad_input(proc)
    for fragment in fragments:
        assert fragment in line, line


def test_a_mistyped_case_name_gets_a_suggestion(run_cli, assert_bad_input, tmp_path: Path) -> None:
    line = assert_bad_input(run_cli("run", "mlpp", "--profile", "cpu", "--out", tmp_path))
    assert "did you mean 'mlp'" in line


def test_a_bad_flag_value_is_one_line(run_cli, assert_bad_input) -> None:
    assert "--dim" in assert_bad_input(run_cli("run", "--dim", "N=x"))


def test_no_arguments_is_bad_usage(run_cli) -> None:
    proc = run_cli()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


# ---- verdicts ------------------------------------------------------------------------------------------------

def test_tiny_case_passes_and_writes_a_record(tiny_case: Path, run_case, tmp_path: Path) -> None:
    proc = run_case(tiny_case)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "PASS" in proc.stdout and "1 cells: 1 PASS" in proc.stdout
    record = _record(tmp_path / "results")
    assert record["schema"] == "onnx-harness/run-record" and isinstance(record["schema_version"], int)
    assert {"onnx", "onnxruntime", "numpy"} <= set(record["versions"])
    assert record["machine"]["cores"] and "commit" in record
    [cell] = record["cells"]
    assert (cell["case"], cell["profile"], cell["verdict"]) == ("tiny", "cpu", "PASS")
    [entry] = cell["outputs"]
    assert entry["dataset"] == 0 and entry["comparison"]["name"] == "y" and entry["comparison"]["passed"]
    assert entry["comparison"]["metrics"]["mismatched"] == 0


def test_nan_in_a_golden_is_reported_and_matched_by_nan(tmp_path: Path, save_tensor, run_case) -> None:
    case = tmp_path / "nan_case"
    case.mkdir()
    graph = helper.make_graph([helper.make_node("Abs", ["x"], ["y"])], "abs",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    onnx.save(model, str(case / "model.onnx"))
    x = np.array([[1, -2, 3], [-4, np.nan, 6]], np.float32)
    save_tensor(case / "test_data_set_0" / "input_0.pb", "x", x)
    save_tensor(case / "test_data_set_0" / "output_0.pb", "y", np.abs(x))
    proc = run_case(case)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert any(line.startswith("warning:") and "NaN" in line for line in proc.stdout.splitlines()), proc.stdout
    assert "1 PASS" in proc.stdout
    _record(tmp_path / "results")  # strict JSON even with NaN in the data


def test_golden_of_another_shape_fails_with_both_shapes(tiny_case: Path, save_tensor, run_case) -> None:
    save_tensor(tiny_case / "test_data_set_0" / "output_0.pb", "y", np.zeros((2, 5), np.float32))
    proc = run_case(tiny_case)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "[FAIL] case 'tiny' on profile 'cpu'" in proc.stdout
    assert "golden (2, 5) vs actual (2, 3)" in proc.stdout


def test_a_perturbed_reference_golden_turns_the_run_red(tmp_path: Path, run_case) -> None:
    case = tmp_path / "mlp"
    shutil.copytree(REPO / "reference_outputs" / "mlp", case)
    path = case / "test_data_set_0" / "output_0.pb"
    path.write_bytes(numpy_helper.from_array(_read(path) * np.float32(1.01), name="output").SerializeToString())
    proc = run_case(case)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    out = proc.stdout
    assert "case 'mlp [test_data_set_0]' output 'output' on profile 'cpu'" in out
    mismatched = [line for line in out.splitlines() if line.startswith("Mismatched elements:")]
    assert mismatched and all(ch.isdigit() for ch in mismatched[0].split(":")[1].split("/")[0].strip())
    assert "Greatest absolute difference:" in out
    assert "case 'mlp [test_data_set_1]'" not in out  # only the perturbed set fails


def _node_tests(names: tuple[str, ...]) -> list:
    """onnx's node backend tests, generating only the operators needed (all of them takes ~10 s)."""
    from onnx.backend.test.case import node
    for op in {n.split("_")[1] for n in names}:
        importlib.import_module(f"onnx.backend.test.case.node.{op}")
    found = {c.name: c for c in node._NodeTestCases if c.name in names}
    assert set(found) == set(names)
    return [found[n] for n in names]


def test_a_foreign_onnx_test_data_folder_runs(tmp_path: Path, run_case) -> None:
    """Cases written by onnx's own backend-test generator, no case.json."""
    root = tmp_path / "node"
    names = ("test_abs", "test_add", "test_relu")
    for case in _node_tests(names):
        assert case.model is not None and case.data_sets
        folder = root / case.name
        folder.mkdir(parents=True)
        onnx.save(case.model, str(folder / "model.onnx"))
        inputs = [i.name for i in case.model.graph.input]
        outputs = [o.name for o in case.model.graph.output]
        for k, (ins, outs) in enumerate(case.data_sets):
            ds = folder / f"test_data_set_{k}"
            ds.mkdir()
            for i, (name, arr) in enumerate(zip(inputs, ins)):
                (ds / f"input_{i}.pb").write_bytes(numpy_helper.from_array(arr, name).SerializeToString())
            for j, (name, arr) in enumerate(zip(outputs, outs)):
                (ds / f"output_{j}.pb").write_bytes(numpy_helper.from_array(arr, name).SerializeToString())
    proc = run_case(root)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 cells: 3 PASS" in proc.stdout
    assert {c["case"] for c in _record(tmp_path / "results")["cells"]} == {f"node/{n}" for n in names}


def test_a_case_without_data_sets_has_no_golden(make_case, tmp_path: Path, run_case, assert_bad_input) -> None:
    case = make_case(tmp_path / "bare", sets=0)
    line = assert_bad_input(run_case(case))
    assert "--dim N=" in line
    proc = run_case(case, "--dim", "N=3")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "NO_GOLDEN" in proc.stdout and "harness bless" in proc.stdout


def test_bless_then_run_passes(make_case, tmp_path: Path, profiles_dir: Path, run_cli, run_case) -> None:
    case = make_case(tmp_path / "bare", sets=0)
    bless = ["bless", case, "--profile", "cpu", "--dim", "N=3", "--profiles-dir", profiles_dir]
    proc = run_cli(*bless)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert _read(case / "test_data_set_0" / "output_0.pb").shape == (3, 3)
    proc = run_case(case)
    assert proc.returncode == 0 and "1 PASS" in proc.stdout, proc.stdout + proc.stderr


def test_bless_over_goldens_needs_force(tiny_case: Path, profiles_dir: Path, run_cli, assert_bad_input) -> None:
    golden = tiny_case / "test_data_set_0" / "output_0.pb"
    golden.write_bytes(numpy_helper.from_array(np.full((2, 3), 7, np.float32), "y").SerializeToString())
    before = golden.read_bytes()
    line = assert_bad_input(run_cli("bless", tiny_case, "--profile", "cpu", "--profiles-dir", profiles_dir))
    assert "--force" in line and golden.read_bytes() == before
    proc = run_cli("bless", tiny_case, "--profile", "cpu", "--force", "--profiles-dir", profiles_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not np.array_equal(_read(golden), np.full((2, 3), 7, np.float32))
    assert sorted(p.name for p in golden.parent.iterdir()) == ["input_0.pb", "output_0.pb"]


# ---- list and profiles ---------------------------------------------------------------------------------------

def test_list_and_profiles(run_cli, make_case, tmp_path: Path, profiles_dir: Path) -> None:
    root = tmp_path / "root"
    make_case(root / "alpha", sets=2)
    proc = run_cli("list", "--root", root, "--profiles-dir", profiles_dir)
    assert proc.returncode == 0, proc.stderr
    assert "1 case(s)" in proc.stdout and "alpha" in proc.stdout and "2 data set(s)" in proc.stdout
    assert "cpu" in proc.stdout and "CPUExecutionProvider" in proc.stdout
    proc = run_cli("profiles", "--profiles-dir", profiles_dir, "--no-builtin-profiles")
    assert proc.returncode == 0, proc.stderr
    assert "cpu" in proc.stdout and "available" in proc.stdout and "skipped" not in proc.stdout
    assert f"[from --profiles-dir {profiles_dir / 'cpu.toml'}]" in proc.stdout


def test_list_shows_the_repository_cases_and_profiles(run_cli) -> None:
    proc = run_cli("list")
    assert proc.returncode == 0, proc.stderr
    listed = {line.split()[0] for line in proc.stdout.splitlines() if line.startswith("  ")}
    cases = {p.parent.name for p in (REPO / "reference_outputs").glob("*/model.onnx")}
    profiles = {p.stem for p in (REPO / "device_profiles").glob("*.toml")}
    assert cases and profiles and cases | profiles <= listed


# ---- findings of the whole-change review ---------------------------------------------------------------------


def test_data_sets_need_not_be_numbered_from_zero(tmp_path, make_case, run_case):
    case = make_case(tmp_path / "cases" / "sparse", sets=2)
    (case / "test_data_set_1").rename(case / "test_data_set_7")
    (case / "test_data_set_0").rename(case / "test_data_set_3")
    proc = run_case(case)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1 PASS" in proc.stdout


@pytest.mark.parametrize("manifest, expected", [
    ({"output_tolerance": {"y": 0.1}}, "expected a table of tolerance keys"),
    ({"tolerance": {"rtol": 1e-3}}, "rtol and atol must be given together"),
])
def test_malformed_case_tolerances_are_one_line(tmp_path, make_case, run_case, assert_bad_input, manifest, expected):
    import json
    case = make_case(tmp_path / "cases" / "c")
    (case / "case.json").write_text(json.dumps(manifest))
    assert expected in assert_bad_input(run_case(case))


def test_malformed_data_json_value_is_one_line(tmp_path, make_case, run_case, assert_bad_input):
    case = make_case(tmp_path / "cases" / "c")
    (case / "data.json").write_text('{"rtol": "abc", "atol": null}')
    assert "data.json" in assert_bad_input(run_case(case))


def test_negative_seed_is_one_line(tmp_path, make_case, run_cli, assert_bad_input):
    line = assert_bad_input(run_cli("run", make_case(tmp_path / "c"), "--seed", "-1"))
    assert "--seed" in line


def test_two_cases_with_one_name_are_refused(tmp_path, make_case, run_cli, assert_bad_input):
    a, b = make_case(tmp_path / "a" / "m"), make_case(tmp_path / "b" / "m")
    assert "two different cases are both named 'm'" in assert_bad_input(run_cli("run", a, b))


def test_baseline_with_numerics_only_is_refused(tmp_path, make_case, run_cli, assert_bad_input):
    line = assert_bad_input(run_cli("run", make_case(tmp_path / "c"), "--numerics-only", "--baseline", tmp_path))
    assert "--numerics-only" in line


def test_string_inputs_run_end_to_end(tmp_path, run_cli):
    graph = helper.make_graph([helper.make_node("Identity", ["s"], ["t"])], "g",
                              [helper.make_tensor_value_info("s", TensorProto.STRING, [2])],
                              [helper.make_tensor_value_info("t", TensorProto.STRING, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    case = tmp_path / "strings"
    (case / "test_data_set_0").mkdir(parents=True)
    onnx.save(model, str(case / "model.onnx"))
    strings = np.array([b"a", b"b"], dtype=object)
    (case / "test_data_set_0" / "input_0.pb").write_bytes(numpy_helper.from_array(strings, "s").SerializeToString())
    (case / "test_data_set_0" / "output_0.pb").write_bytes(numpy_helper.from_array(strings, "t").SerializeToString())
    proc = run_cli("run", case, "--profile", "cpu", "--numerics-only", "--out", tmp_path / "results")
    assert proc.returncode == 0 and "1 cells: 1 PASS" in proc.stdout, proc.stdout + proc.stderr


# ---- a user's own model, from anywhere --------------------------------------------------------------------

def test_a_bare_model_runs_from_an_unrelated_folder_against_cpu(run_cli, make_model, tmp_path: Path) -> None:
    import onnx
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    onnx.save(make_model(), str(elsewhere / "mine.onnx"))
    proc = run_cli("run", "mine.onnx", "--profile", "cpu", "--profile", "cpu-noopt", "--numerics-only", cwd=elsewhere)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "cases without goldens were compared with profile cpu" in proc.stdout
    assert "2 cells: 2 PASS" in proc.stdout
    assert (elsewhere / "results").is_dir()


def test_run_without_targets_outside_a_case_folder_says_how_to_start(run_cli, tmp_path: Path, assert_bad_input) -> None:
    line = assert_bad_input(run_cli("run", cwd=tmp_path))
    assert "no cases to run here" in line and "harness run path/to/model.onnx" in line


def test_bless_refuses_a_loose_model(run_cli, make_model, tmp_path: Path, assert_bad_input) -> None:
    import onnx
    onnx.save(make_model(), str(tmp_path / "mine.onnx"))
    line = assert_bad_input(run_cli("bless", tmp_path / "mine.onnx", "--dim", "N=2"))
    assert "not beside a loose model" in line and "cp " in line
    assert not list(tmp_path.glob("test_data_set_*"))


# ---- case sources: --suite, --filter, --by-op, and 'harness ops' ---------------------------------------------

def _suite_cli(*args: str | Path, cwd: Path = REPO) -> "subprocess.CompletedProcess":
    """The CLI with the user's own cache (the onnx-node suite takes ~25 s to build cold, then is reused)."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_CACHE_DIR"}
    env.update(COLUMNS="200", NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_onnx_node_suite_runs_filtered_with_its_tolerances_and_ops(tmp_path: Path) -> None:
    out = tmp_path / "results"
    proc = _suite_cli("run", "--suite", "onnx-node", "--filter", r"^test_(abs|cast_FLOAT_to_BFLOAT16|string_concat)$",
                      "--profile", "cpu", "--numerics-only", "--by-op", "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = _record(out)
    cells = {c["case"]: c for c in record["cells"]}
    assert set(cells) == {"test_abs", "test_cast_FLOAT_to_BFLOAT16", "test_string_concat"}
    assert {c["verdict"] for c in cells.values()} == {"PASS"}
    assert cells["test_abs"]["model"]["op"] == "Abs"
    source = record["options"]["source"]
    assert source["source"] == "onnx-node" and source["cases"] == 3
    assert "Abs: per operator" not in proc.stdout and "cpu: per operator" in proc.stdout
    assert "StringConcat" in proc.stdout


def test_resuming_a_suite_run_takes_its_cases_from_the_record(tmp_path: Path) -> None:
    out = tmp_path / "results"
    first = _suite_cli("run", "--suite", "onnx-node", "--filter", r"^test_abs$", "--profile", "cpu",
                       "--numerics-only", "--out", out)
    assert first.returncode == 0, first.stderr
    [run] = out.iterdir()
    again = _suite_cli("run", "--resume", run)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1 cells: 1 PASS" in again.stdout


@pytest.mark.parametrize("args, words", [
    (["--suite", "onnx-nod"], "no case source named 'onnx-nod'"),
    (["--suite", "onnx-node", "some/case"], "--suite and case paths both pick the cases"),
])
def test_bad_source_arguments_are_one_line(run_case, assert_bad_input, args: list[str], words: str) -> None:
    line = assert_bad_input(run_case(*args))
    assert words in line


def test_filter_picks_directory_cases_by_name(run_cli, make_case, profiles_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    for name in ("alpha", "beta", "alphabet"):
        make_case(root / name)
    out = tmp_path / "results"
    proc = run_cli("run", "--filter", "^alpha", "--root", root, "--profile", "cpu", "--numerics-only",
                   "--profiles-dir", profiles_dir, "--out", out)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(c["case"] for c in _record(out)["cells"]) == ["alpha", "alphabet"]
    assert _record(out)["options"]["source"] == {"source": "directory", "root": str(root), "selectors": [],
                                                "filter": "^alpha"}
    for pattern, words in (("(", "is not a valid regular expression"), ("^gamma", "matches none of the 3")):
        bad = run_cli("run", "--filter", pattern, "--root", root, "--profile", "cpu", "--profiles-dir", profiles_dir,
                      "--out", out)
        assert bad.returncode == 2 and words in bad.stderr and len(bad.stderr.splitlines()) == 1, bad.stderr


def test_ops_shows_a_record_per_operator_and_diffs_two_profiles(run_cli, make_case, save_tensor, profiles_dir: Path,
                                                              tmp_path: Path) -> None:
    case = make_case(tmp_path / "cases" / "relu_case")
    strict = profiles_dir / "strict.toml"
    strict.write_text('name = "strict"\n[ep]\nname = "CPUExecutionProvider"\n[tolerance]\nwhy = "test"\n'
                      '[tolerance.dtype.float32]\nrtol = 0.0\natol = 0.0\n')
    perturb = case / "test_data_set_0" / "output_0.pb"
    golden = _read(perturb)
    save_tensor(perturb, "y", golden + np.float32(1e-6))
    out = tmp_path / "results"
    run = run_cli("run", case, "--profile", "cpu", "--profile", "strict", "--numerics-only",
                  "--profiles-dir", profiles_dir, "--out", out)
    assert run.returncode == 1, run.stdout + run.stderr
    [folder] = out.iterdir()
    proc = run_cli("ops", folder)
    assert proc.returncode == 0, proc.stderr
    assert "cpu: per operator" in proc.stdout and "strict: per operator" in proc.stdout
    assert "pass on one of cpu / strict" in proc.stdout and "relu_case" in proc.stdout
    bad = run_cli("ops", folder, "--profile", "gpu")
    assert bad.returncode == 2 and "profile 'gpu' has no cells in this record" in bad.stderr
