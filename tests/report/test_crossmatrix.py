"""``harness compare``: records of separate runs as one cross-device matrix, device outputs compared directly."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main
from harness.compare.tolerances import Tolerance
from harness.report import crossmatrix as X
from harness.report.markdown import md
from harness.run import record as R

REPO = Path(__file__).resolve().parents[2]
HOSTILE = "mlp<script>alert(1)</script>"
TIGHT = """name = "cpu-fp16-tight"
extends = "cpu-fp16"
[tolerance.dtype.float32]
rtol = 1e-6
atol = 1e-7
"""
# What this AMD host can run in place of OpenVINO's bf16 CPU device: the same name, target and tolerance, with
# real reduced-precision numerics (fp16 weights on the CPU EP). The record says its EP is the CPU EP.
OPENVINO_STAND_IN = """name = "openvino-cpu-bf16"
description = "stand-in for OpenVINO bf16 on a host without an OpenVINO device: CPU EP on fp16 weights"
target = "Intel CPU through OpenVINO (bf16 inference precision)"
[ep]
name = "CPUExecutionProvider"
[precision]
transform = "fp16"
keep_io_types = true
[tolerance]
min_cosine = 0.99
[tolerance.dtype.float32]
rtol = 1e-1
atol = 2e-2
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    """One run per profile, each in its own --out folder, every cell's outputs saved (as on separate machines)."""
    from harness.api import MatrixOptions, run_matrix
    work = tmp_path_factory.mktemp("compare")
    profiles = work / "profiles"
    profiles.mkdir()
    (profiles / "cpu-fp16-tight.toml").write_text(TIGHT, encoding="utf-8")
    standin = work / "standin"
    standin.mkdir()
    (standin / "openvino-cpu-bf16.toml").write_text(OPENVINO_STAND_IN, encoding="utf-8")
    root = work / "cases"
    for name in ("mlp", "classifier"):
        shutil.copytree(REPO / "reference_outputs" / name, root / name)
    shutil.copytree(REPO / "reference_outputs" / "mlp", root / HOSTILE)
    folders = {}
    for name, dirs in (("cpu", [profiles]), ("cpu-fp16", [profiles]), ("cpu-fp16-tight", [profiles]),
                       ("openvino-cpu-bf16", [standin]), ("openvino-real", [])):
        profile = "openvino-cpu-bf16" if name == "openvino-real" else name
        options = MatrixOptions(out=work / name, root=root, profile_dirs=dirs, numerics_only=True, save_outputs="all")
        folders[name] = run_matrix([], [profile], options).location.parent
    return folders


@pytest.fixture(autouse=True)
def _wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Column headers (host/profile@run) are matched whole: a narrow terminal (pytest-xdist's) would wrap them."""
    monkeypatch.setenv("COLUMNS", "400")


def compare(capsys, *paths) -> tuple[int, str, str]:
    code = main(["compare", *map(str, paths)])
    out, err = capsys.readouterr()
    return code, out, err


def saved(folder: Path, case: str) -> dict:
    record, _ = R.load_record(folder)
    return R.read_saved_outputs(folder, next(c for c in record.cells if c.case == case))


def test_cpu_and_cpu_fp16_differ_within_tolerance_with_the_numbers(runs, capsys):
    code, out, err = compare(capsys, runs["cpu"], runs["cpu-fp16"])
    assert code == 0, err
    assert "output pair(s) compared directly: 0 disagree beyond tolerance" in out
    # the numbers printed are the saved outputs' real difference
    a, b = saved(runs["cpu"], "mlp")[1]["output"], saved(runs["cpu-fp16"], "mlp")[1]["output"]
    diff = np.abs(a.astype(np.float64) - b.astype(np.float64))
    line = next(x for x in out.splitlines() if x.strip().startswith("mlp / output [data set 1]"))
    assert f"max abs diff {diff.max():.4g}" in line
    index = np.unravel_index(int(diff.argmax()), diff.shape)
    assert f"at {tuple(int(i) for i in index)}" in line and ": AGREE:" in line
    assert f"{a[index]:.7g}" in line and f"{b[index]:.7g}" in line  # both devices' values at the worst element
    assert "worst pair:" in out and "environment" in out and "transform: none vs fp16" in out


def test_a_pair_beyond_tolerance_exits_1_and_names_the_worst_pair(runs, capsys):
    code, out, _ = compare(capsys, runs["cpu"], runs["cpu-fp16-tight"])
    assert code == 1
    worst = next(x for x in out.splitlines() if x.startswith("worst pair:"))
    case, dataset = worst.split(" / ")[0].removeprefix("worst pair: "), int(re.search(r"data set (\d+)", worst)[1])
    judged = X.looser(*(X.recorded_tolerance(next(c for c in R.load_record(runs[p])[0].cells if c.case == case),
                                             dataset, "output") for p in ("cpu", "cpu-fp16-tight")))
    assert "DISAGREE" in worst and "max abs diff" in worst and f"beyond {judged.describe()}" in worst
    assert re.search(r"\d+/\d+ elements beyond", worst)
    assert " !" in out  # the matrix marks the cells whose outputs disagree


def test_openvino_like_profile_is_compared_and_labelled_off_target(runs, capsys):
    code, out, _ = compare(capsys, runs["cpu"], runs["openvino-cpu-bf16"])
    assert code == 0  # fp16 weights stay within bf16's tolerance
    lines = [x for x in out.splitlines() if "openvino-cpu-bf16" in x and "max abs diff" in x]
    assert lines and all("rtol=1e-01 atol=2e-02" in x for x in lines)
    host_cpu = R.machine_info()["cpu"].lower()
    off_target = not re.search(r"\b(intel|xeon)\b", host_cpu)
    assert ("not the profile's target: target is 'Intel CPU through OpenVINO" in out) == off_target
    if off_target:
        assert "(not target)" in out


def test_real_openvino_profile_without_a_device_is_a_note_not_a_pass(runs, capsys):
    """On this AMD host OpenVINO offers no device: the column has no outputs; on an Intel host it would run."""
    record, _ = R.load_record(runs["openvino-real"])
    code, out, _ = compare(capsys, runs["cpu"], runs["openvino-real"])
    if all(c.verdict == R.SKIPPED for c in record.cells):
        assert code == 0
        assert "0 output pair(s) compared directly" in out
        assert "not available on this host" in out and "did not run there (SKIPPED" in out
    else:
        assert code in (0, 1) and "output pair(s) compared directly" in out


def test_different_case_sets_compare_the_common_cells_with_a_note(runs, tmp_path, capsys):
    shutil.copytree(R.load_record(runs["cpu-fp16"])[1], tmp_path / "part")
    data = json.loads((tmp_path / "part" / R.RECORD_NAME).read_text(encoding="utf-8"))
    data["cells"] = [c for c in data["cells"] if c["case"] == "mlp"]
    (tmp_path / "part" / R.RECORD_NAME).write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "part" / R.JOURNAL_NAME).unlink(missing_ok=True)
    code, out, _ = compare(capsys, runs["cpu"], tmp_path / "part")
    assert code == 0
    assert "2 case(s) not in every record, not compared: 'classifier'" in out
    assert "mlp / output" in out and "classifier / " not in out


@pytest.mark.parametrize("damage, words", [
    (lambda text: json.dumps({"hello": "world"}), "not a harness run record"),
    (lambda text: text[: len(text) // 2], "not valid JSON"),
    (lambda text: text.replace('"schema_version": 2', '"schema_version": 99', 1).replace(
        '"schema_version": 1', '"schema_version": 99', 1), "schema_version 99"),
])
def test_bad_records_are_one_line_and_exit_2(runs, tmp_path, capsys, damage, words):
    bad = tmp_path / "bad"
    shutil.copytree(runs["cpu-fp16"], bad)
    path = bad / R.RECORD_NAME
    path.write_text(damage(path.read_text(encoding="utf-8")), encoding="utf-8")
    code, _, err = compare(capsys, runs["cpu"], path)
    assert code == 2
    assert words in err and err.startswith("harness: error:") and len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_one_column_is_a_usage_error(runs, capsys):
    code, _, err = compare(capsys, runs["cpu"])
    assert code == 2 and "at least two (host, profile) columns" in err


def test_the_same_host_and_profile_twice_is_told_apart_by_run_id(runs, capsys):
    code, out, _ = compare(capsys, runs["cpu"], runs["cpu"])
    record, _ = R.load_record(runs["cpu"])
    assert code == 0 and f"/cpu@{record.run_id}" in out
    assert "0 disagree beyond tolerance, 0 differ within it, 6 identical" in out  # bitwise the same outputs


def test_hostile_case_names_are_escaped_in_the_html(runs, tmp_path, capsys):
    page = tmp_path / "cmp.html"
    code = main(["compare", str(runs["cpu"]), str(runs["cpu-fp16-tight"]), "--html", str(page)])
    capsys.readouterr()
    text = page.read_text(encoding="utf-8")
    assert code == 1
    assert "<script" not in text and "mlp&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "DISAGREE" in text and "Content-Security-Policy" in text
    assert text.count(" !</td>") >= 2 and "outputs disagree with another column beyond tolerance" in text


# --- units ----------------------------------------------------------------------------------------------------

def test_looser_takes_each_gate_from_the_side_that_allows_more():
    a = Tolerance(rtol=1e-4, atol=1e-5, min_cosine=0.999)
    b = Tolerance(rtol=5e-2, atol=1e-6, min_cosine=0.99, max_mismatch_fraction=0.01)
    merged = X.looser(a, b)
    assert (merged.rtol, merged.atol, merged.min_cosine, merged.max_mismatch_fraction) == (5e-2, 1e-5, 0.99, 0.01)
    assert X.looser(a, Tolerance(rtol=1e-4, atol=1e-5)).min_cosine is None  # no gate on one side: none
    signal_only = Tolerance(rtol=0, atol=0, min_cosine=0.9, elementwise=False)
    assert X.looser(a, signal_only).elementwise is False


def _record(cpu: str, arch: str = "x86_64", target: str = "", available: bool = True, **machine) -> R.RunRecord:
    return R.RunRecord(run_id="r", created="", machine={"node": "h", "cpu": cpu, "machine": arch, **machine},
                       versions={"onnxruntime": "1.32.0"}, commit={}, argv=[],
                       profiles={"p": {"target": target, "available": available, "reason": "no OpenVINO device",
                                       "ep": "X", "notes": []}})


@pytest.mark.parametrize("cpu, arch, target, expected", [
    ("AMD EPYC 7763", "x86_64", "Intel CPU through OpenVINO (bf16)", "this host's CPU is 'AMD EPYC 7763'"),
    ("Intel(R) Xeon(R) Platinum", "x86_64", "Intel CPU through OpenVINO (bf16)", ""),
    ("AMD EPYC", "x86_64", "any x86-64 or arm64 host CPU", ""),  # 'arm64' is an architecture, not a vendor
    ("AMD EPYC", "x86_64", "Cortex-A53 class arm64 board", "this host's CPU is 'AMD EPYC'"),
    ("", "x86_64", "an arm64 phone", "this host is x86_64"),
    ("Neoverse-N1", "aarch64", "an arm64 phone", ""),
])
def test_target_note(cpu, arch, target, expected):
    note = X.target_note(_record(cpu, arch, target), "p")
    assert (expected in note and "not the profile's target" in note) if expected else note == ""


def test_target_note_says_an_unavailable_profile():
    assert "not available on this host: no OpenVINO device" in X.target_note(_record("x", available=False), "p")


def test_environment_differences_name_versions_and_cpu_flags():
    left = _record("AMD EPYC", cpu_flags=["avx2", "sse4_2", "avx512f"])
    right = copy.deepcopy(left)
    right.machine["cpu_flags"] = ["avx2", "sse4_2", "amx_bf16"]
    right.versions["onnxruntime"] = "1.31.0"
    a = X.Column("a", "h", "p", left, Path("."), {}, X.environment(left, "p"))
    b = X.Column("b", "h", "p", right, Path("."), {}, X.environment(right, "p"))
    lines = X.env_differences(a, b)
    assert "onnxruntime: 1.32.0 vs 1.31.0" in lines
    assert "cpu flags: only a: avx512f; only b: amx_bf16" in lines


def test_markdown_has_the_matrix_the_pairs_and_escaped_names(runs, tmp_path, capsys):
    path = tmp_path / "cmp.md"
    code = main(["compare", str(runs["cpu"]), str(runs["cpu-fp16-tight"]), "--markdown", str(path)])
    capsys.readouterr()
    text = path.read_text(encoding="utf-8")
    assert code == 1
    assert text.startswith("## Cross-device comparison: 2 columns, 3 common case(s)")
    table = [line for line in text.splitlines() if line.startswith("| ")]
    host = R.machine_info()["node"]
    assert len(table) == 2 + 3 and table[0] == f"| case | {md(host + '/cpu')} | {md(host + '/cpu-fp16-tight')} |"
    assert "mlp&lt;script&gt;alert(1)&lt;/script&gt;" in text and "<script>" not in text
    assert any(line.startswith("- worst pair:") and "DISAGREE" in line for line in text.splitlines())
    assert text.count("❌") >= 2  # both sides of a disagreeing pair are marked


def test_saved_outputs_outside_the_run_folder_are_refused_with_a_note(runs, tmp_path, capsys):
    shutil.copytree(R.load_record(runs["cpu-fp16"])[1], tmp_path / "edited")
    path = tmp_path / "edited" / R.RECORD_NAME
    data = json.loads(path.read_text(encoding="utf-8"))
    for cell in data["cells"]:
        cell["artifacts"]["actual_outputs"] = "../../../../etc"
    path.write_text(json.dumps(data), encoding="utf-8")
    (tmp_path / "edited" / R.JOURNAL_NAME).unlink(missing_ok=True)
    code, out, _ = compare(capsys, runs["cpu"], tmp_path / "edited")
    assert code == 0 and "0 output pair(s) compared directly" in out
    assert "lies outside the run's folder" in out
