"""The pytest plugin, black-box: a scratch project run by pytest in a subprocess (pytester), output lines matched.

The project: cases/good (passes everywhere), cases/broken (golden shifted: FAIL), cases/expected (shifted too, and
a known failure of the project's cpu profile: XFAIL there), cases/relu (no MatMul: int8-dynamic does not apply,
so cpu-int8 skips); profiles cpu and cpu-int8.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

pytest_plugins = ["pytester"]

CELLS = ("--harness-cases", "cases", "--harness-profile", "cpu", "--harness-profile", "cpu-int8",
         "--no-harness-budgets", "-p", "no:cacheprovider")
KNOWN_FAILURE = """extends = "cpu"

[[known_failures]]
case = "*expected"
reason = "golden shifted on purpose"
"""


def relu_case(folder: Path, save_tensor) -> Path:
    """y = Relu(x): nothing int8-dynamic quantises, so cpu-int8 is NOT_APPLICABLE."""
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    folder.mkdir(parents=True)
    onnx.save(model, str(folder / "model.onnx"))
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
    save_tensor(folder / "test_data_set_0" / "input_0.pb", "x", x)
    save_tensor(folder / "test_data_set_0" / "output_0.pb", "y", np.maximum(x, 0))
    return folder


@pytest.fixture
def project(pytester: pytest.Pytester, make_case, break_golden, save_tensor, cache_dir: Path,
            monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(cache_dir))  # transformed models shared between the tests
    cases = pytester.path / "cases"
    make_case(cases / "good")
    break_golden(make_case(cases / "broken"))
    break_golden(make_case(cases / "expected"))
    relu_case(cases / "relu", save_tensor)
    (pytester.path / "device_profiles").mkdir()
    (pytester.path / "device_profiles" / "cpu.toml").write_text(KNOWN_FAILURE)
    return pytester


def outcome_lines(result: pytest.RunResult) -> list[str]:
    """The -rA summary's per-item lines ('PASSED cases/good::cpu', ...), sorted: xdist finishes in any order."""
    kinds = ("PASSED ", "FAILED ", "SKIPPED ", "XFAIL ", "XPASS ", "ERROR ")
    return sorted(line.split(" - ")[0] for line in result.outlines if line.startswith(kinds))


def verdicts(record: Path) -> dict[str, str]:
    data = json.loads((record / "record.json").read_text())
    return {f"{c['case']}|{c['profile']}": c["verdict"] for c in data["cells"]}


def test_one_item_per_case_and_profile_with_readable_ids(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*CELLS, "--collect-only", "-q")
    result.stdout.fnmatch_lines(["cases/broken::cpu", "cases/broken::cpu-int8", "cases/expected::cpu",
                                 "cases/expected::cpu-int8", "cases/good::cpu", "cases/good::cpu-int8",
                                 "cases/relu::cpu", "cases/relu::cpu-int8", "8 tests collected*"])


def test_verdicts_become_outcomes_with_their_reasons_and_messages(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess(*CELLS, "-v", "-rA")
    result.assert_outcomes(passed=3, failed=3, skipped=1, xfailed=1)
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] cases/relu::cpu-int8: NOT_APPLICABLE: int8-dynamic does not apply: nothing to quantise*",
    ])
    result.stdout.fnmatch_lines(["XFAIL cases/expected::cpu - known failure on cpu: golden shifted on purpose"])
    result.stdout.fnmatch_lines([
        "*_ cases/broken on cpu _*",
        "FAIL: case 'cases/broken' on profile 'cpu': 1 output(s) out of tolerance vs golden (y)*",
        "",
        "case 'cases/broken [[]test_data_set_0[]]' output 'y' on profile 'cpu': tensor-likes are not close vs golden",
        "Mismatched elements: 6 / 6 (100.0%)*",
        "Greatest absolute difference: 1.0 at index (0, 0) (up to 1e-05 allowed)",
    ])
    result.stdout.fnmatch_lines(["*_ cases/broken on cpu-int8 _*",
                                 "FAIL: case 'cases/broken' on profile 'cpu-int8'*", "", "*", "SNR * dB < 15 dB"])
    assert "Traceback" not in result.stdout.str() and "pytest_plugin.py" not in result.stdout.str()


def test_one_failing_cell_exits_1_and_none_exits_0(project: pytest.Pytester) -> None:
    failing = project.runpytest_subprocess("--harness-cases", "cases/good", "--harness-cases", "cases/broken",
                                           "--harness-profile", "cpu", "--no-harness-budgets", "-p", "no:cacheprovider")
    failing.assert_outcomes(passed=1, failed=1)
    assert failing.ret == 1
    passing = project.runpytest_subprocess("--harness-cases", "cases/good", "--harness-profile", "cpu",
                                           "--no-harness-budgets", "-p", "no:cacheprovider")
    passing.assert_outcomes(passed=1)
    assert passing.ret == 0


def test_xdist_gives_the_same_results_and_one_merged_record(project: pytest.Pytester) -> None:
    """Also a bare model (no goldens): cpu, the reference, is what cpu-int8 is compared with, alone on a worker too."""
    (project.path / "bare.onnx").write_bytes((project.path / "cases" / "good" / "model.onnx").read_bytes())
    cells = (*CELLS, "--harness-cases", "bare.onnx", "-rA")
    plain = project.runpytest_subprocess(*cells, "--harness-record", "plain")
    spread = project.runpytest_subprocess(*cells, "-n", "2", "--harness-record", "spread")
    spread.stdout.fnmatch_lines(["*gw0*", "*gw1*"], consecutive=False)  # two workers really ran
    assert spread.ret == plain.ret == 1
    assert outcome_lines(spread) == outcome_lines(plain)
    assert len(outcome_lines(plain)) == 10
    assert {"PASSED bare.onnx::cpu", "PASSED bare.onnx::cpu-int8"} <= set(outcome_lines(spread))
    spread.stdout.fnmatch_lines(["harness: run record of 10 cell(s) written to spread*record.json"])
    assert verdicts(project.path / "spread") == verdicts(project.path / "plain")
    assert verdicts(project.path / "plain")["cases/expected|cpu"] == "XFAIL"
    workers = {p.name for p in (project.path / "spread" / "runs").iterdir()}
    assert workers == {"gw0", "gw1"}  # each worker ran its own items' cells, in its own folder


def test_fixture_helper_and_ini_options(project: pytest.Pytester) -> None:
    project.makepyprojecttoml("""
        [tool.pytest.ini_options]
        harness_cases = ["cases/good"]
        harness_profiles = ["cpu"]
        harness_budgets = false
    """)
    project.makepyfile(test_mine="""
        import numpy as np
        from harness.pytest_plugin import assert_conforms


        def test_cell(harness_run):
            cell = harness_run("cases/good", "cpu")
            assert cell.verdict == "PASS", cell.detail


        def test_close_enough():
            assert_conforms(np.float32([1.0, 2.0]), np.float32([1.0, 2.00001]), {"rtol": 1e-3, "atol": 1e-5})


        def test_too_far():
            assert_conforms(np.float32([1.0, 2.5]), np.float32([1.0, 2.0]), name="logits")
    """)
    result = project.runpytest_subprocess("-p", "no:cacheprovider", "-rA")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["PASSED cases/good::cpu"])
    result.stdout.fnmatch_lines([
        ("E       AssertionError: case 'test_mine.py::test_too_far' output 'logits' on profile 'unspecified': "
         "tensor-likes are not close vs golden"),
        "E       Mismatched elements: 1 / 2 (50.0%) beyond rtol 0.0001 / atol 1e-05",
        "E       Greatest absolute difference: 0.5 at index (1,) (up to 1e-05 allowed)",
    ])
    assert "pytest_plugin.py" not in result.stdout.str()  # the helper's own frame is hidden


def test_strict_xfail_fails_a_known_failure_that_passes(project: pytest.Pytester) -> None:
    (project.path / "device_profiles" / "cpu.toml").write_text(KNOWN_FAILURE.replace("*expected", "*good"))
    result = project.runpytest_subprocess("--harness-cases", "cases/good", "--harness-profile", "cpu",
                                          "--no-harness-budgets", "-p", "no:cacheprovider", "-o", "xfail_strict=true")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*[[]XPASS(strict)[]] known failure on cpu: golden shifted on purpose*"])


def test_a_bad_option_is_one_line(project: pytest.Pytester) -> None:
    result = project.runpytest_subprocess("--harness-cases", "cases", "--harness-profile", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: harness: unknown profile 'nope'. Note: known profiles: cpu*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()


def test_a_broken_model_fails_its_own_items_in_one_line(project: pytest.Pytester) -> None:
    (project.path / "cases" / "garbage").mkdir()
    (project.path / "cases" / "garbage" / "model.onnx").write_text("not onnx")
    result = project.runpytest_subprocess("--harness-cases", "cases/good", "--harness-cases", "cases/garbage",
                                          "--harness-profile", "cpu", "--no-harness-budgets", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)  # the batch is refused; each item then runs alone
    result.stdout.fnmatch_lines(["*_ cases/garbage on cpu _*",
                                 "harness: cases/garbage/model.onnx: not a readable ONNX model (DecodeError*"])
    assert "Traceback" not in result.stdout.str()


def test_a_crashing_worker_fails_one_item_and_the_rest_run(project: pytest.Pytester,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARNESS_TEST_FAULT", "segfault:*broken")  # the worker's test-only fault hook
    result = project.runpytest_subprocess("--harness-cases", "cases/good", "--harness-cases", "cases/broken",
                                          "--harness-profile", "cpu", "--no-harness-budgets", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*_ cases/broken on cpu _*",
                                 "CRASH: case 'broken' on profile 'cpu': worker died *: SIGSEGV"])
