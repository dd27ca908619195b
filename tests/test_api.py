"""The library entry point (harness/api.py): run_matrix on cases and profiles, a user's bare model compared
with a reference profile, calibration data, and a quiet terminal."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from harness import api
from harness.errors import HarnessError, UsageError
from harness.run import record as R

REPO = Path(__file__).resolve().parents[1]


def _options(tmp_path: Path, **extra) -> api.MatrixOptions:
    return api.MatrixOptions(out=tmp_path / "results", numerics_only=True, **extra)


@pytest.fixture
def bare_model(make_model, tmp_path: Path) -> Path:
    path = tmp_path / "models" / "mine.onnx"
    path.parent.mkdir()
    onnx.save(make_model(), str(path))
    return path


def test_run_matrix_returns_the_written_record(make_case, tmp_path: Path) -> None:
    case = make_case(tmp_path / "c", sets=1)
    record = api.run_matrix([case], ["cpu"], _options(tmp_path))
    assert [(c.case, c.profile, c.verdict) for c in record.cells] == [("c", "cpu", R.PASS)]
    assert record.location is not None and record.location.is_file()
    saved = json.loads(record.location.read_text())
    assert saved["cells"][0]["verdict"] == R.PASS and "location" not in saved
    assert not api.failing(record)


def test_a_bare_model_is_compared_with_the_reference_profile(bare_model: Path, tmp_path: Path) -> None:
    record = api.run_matrix([bare_model], ["cpu", "cpu-fp16"], _options(tmp_path))
    cells = {c.profile: c for c in record.cells}
    assert cells["cpu"].verdict == R.PASS and "reference" in cells["cpu"].detail
    assert cells["cpu-fp16"].verdict == R.PASS
    [entry] = cells["cpu-fp16"].outputs
    assert entry["comparison"]["against"] == "cpu"
    assert any("symbolic dimension(s) N set to 1" in w for w in record.warnings)


def test_the_reference_runs_even_when_not_in_the_matrix(bare_model: Path, tmp_path: Path) -> None:
    record = api.run_matrix([bare_model], ["cpu-noopt"], _options(tmp_path, reference="cpu"))
    [cell] = record.cells
    assert cell.profile == "cpu-noopt" and cell.verdict == R.PASS
    assert cell.outputs[0]["comparison"]["against"] == "cpu"


def test_a_perturbed_profile_fails_vs_the_reference(tmp_path: Path) -> None:
    """Against the reference, a real difference (fp16 under a 1e-9 tolerance) is a FAIL that says what it was
    compared with."""
    bare_model = tmp_path / "mlp.onnx"
    bare_model.write_bytes((REPO / "reference_outputs" / "mlp" / "model.onnx").read_bytes())
    folder = tmp_path / "profiles"
    folder.mkdir()
    (folder / "strict-fp16.toml").write_text('name = "strict-fp16"\nextends = "cpu-fp16"\n'
                                             '[tolerance.dtype.float32]\nrtol = 1e-9\natol = 1e-9\n')
    record = api.run_matrix([bare_model], ["cpu", "strict-fp16"], _options(tmp_path, profile_dirs=[folder]))
    cell = {c.profile: c for c in record.cells}["strict-fp16"]
    assert cell.verdict == R.FAIL and "vs cpu" in cell.detail, cell.detail


def test_only_the_reference_on_a_case_without_goldens_is_not_a_pass(bare_model: Path, tmp_path: Path) -> None:
    record = api.run_matrix([bare_model], ["cpu"], _options(tmp_path))
    [cell] = record.cells
    assert cell.verdict == R.NO_GOLDEN and "only the reference profile 'cpu' ran" in cell.detail
    assert api.failing(record) == [cell]


def test_an_unknown_reference_is_bad_input(bare_model: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown profile 'cpux'"):
        api.run_matrix([bare_model], ["cpu-fp16"], _options(tmp_path, reference="cpux"))


def test_calibration_data_must_match_the_model(bare_model: Path, tmp_path: Path, save_tensor) -> None:
    calib = tmp_path / "calib"
    save_tensor(calib / "test_data_set_0" / "input_0.pb", "wrong_name", np.ones((2, 4), np.float32))
    with pytest.raises(HarnessError, match="(tensor|value) is named 'wrong_name' but the model's input 0 is 'x'"):
        api.run_matrix([bare_model], ["cpu", "cpu-int8-static"], _options(tmp_path, calibration_data=calib))
    with pytest.raises(UsageError, match="no test_data_set_<k>/ folders"):
        api.run_matrix([bare_model], ["cpu"], _options(tmp_path, calibration_data=tmp_path / "models"))


def test_calibration_data_calibrates_int8_static(bare_model: Path, tmp_path: Path, save_tensor) -> None:
    calib = tmp_path / "calib"
    rng = np.random.default_rng(3)
    for k in range(2):
        save_tensor(calib / f"test_data_set_{k}" / "input_0.pb", "x", rng.uniform(-1, 1, (4, 4)).astype(np.float32))
    record = api.run_matrix([bare_model], ["cpu", "cpu-int8-static"], _options(tmp_path, calibration_data=calib))
    cell = {c.profile: c for c in record.cells}["cpu-int8-static"]
    assert cell.verdict in (R.PASS, R.FAIL), cell.detail
    assert str(calib) in json.dumps(cell.model.get("transform_report", {})), cell.model


def test_library_chatter_goes_to_the_run_log_not_the_terminal(make_case, tmp_path: Path, capfd) -> None:
    """onnxruntime.quantization logs and warns while quantising; none of it reaches the terminal."""
    case = make_case(tmp_path / "c", sets=2)
    import logging
    import warnings
    record = api.run_matrix([case], ["cpu", "cpu-int8"], _options(tmp_path))
    logging.getLogger("probe").warning("after the run: not captured")
    out, err = capfd.readouterr()
    assert "WARNING" not in out + err.replace("after the run: not captured", ""), out + err
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the log context restored the caller's warning machinery
    assert {c.verdict for c in record.cells} <= {R.PASS, R.NOT_APPLICABLE}


def test_a_transform_that_does_not_apply_is_its_own_verdict(tmp_path: Path) -> None:
    """int8 on an already quantised model: NOT_APPLICABLE with the reason, not an EP error, not a failure."""
    from onnx import TensorProto, helper, numpy_helper
    graph = helper.make_graph(
        [helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["y"])], "dq",
        [helper.make_tensor_value_info("q", TensorProto.INT8, [4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4])],
        initializer=[numpy_helper.from_array(np.float32(0.1), "scale"), numpy_helper.from_array(np.int8(0), "zp")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 9
    path = tmp_path / "quantised.onnx"
    onnx.save(model, str(path))
    record = api.run_matrix([path], ["cpu", "cpu-int8"], _options(tmp_path))
    cell = {c.profile: c for c in record.cells}["cpu-int8"]
    assert cell.verdict == R.NOT_APPLICABLE and "quantis" in cell.detail, cell.detail
    assert not api.failing(record)


def test_case_objects_and_selectors_mix(make_case, tmp_path: Path) -> None:
    """A Case object next to a path selector: both run, none is dropped."""
    from harness.golden.cases import discover
    [first] = discover([str(make_case(tmp_path / "one"))], tmp_path)
    second = make_case(tmp_path / "two")
    record = api.run_matrix([first, second], ["cpu"], _options(tmp_path))
    assert sorted(c.case for c in record.cells) == ["one", "two"]


def test_the_record_keeps_the_case_source_and_the_per_operator_summary(make_case, tmp_path: Path) -> None:
    from harness.golden.cases import load_case
    case = load_case(make_case(tmp_path / "c"), "c")
    case.tested_op = "Gemm"
    source = {"source": "onnx-node", "pattern": "c", "onnx": "1.23"}
    record = api.run_matrix([case], ["cpu"], _options(tmp_path, source=source))
    saved = json.loads(record.location.read_text())
    assert saved["options"]["source"] == source
    [row] = saved["ops"]["cpu"]
    assert row["op"] == "Gemm" and row["cases"] == 1 and saved["ops"] == record.ops


def test_a_run_of_cases_testing_no_single_operator_has_no_ops_summary_or_source(make_case, tmp_path: Path) -> None:
    record = api.run_matrix([make_case(tmp_path / "c")], ["cpu"], _options(tmp_path))
    saved = json.loads(record.location.read_text())
    assert record.ops == {} and saved["ops"] == {} and "source" not in saved["options"]


@pytest.mark.parametrize("jobs, numerics_only, expected", [(3, False, 3), (2, True, 2), (0, False, 1), (0, True, None)])
def test_jobs_zero_means_every_core_for_numerics_and_one_for_latency(jobs: int, numerics_only: bool,
                                                                     expected: int | None) -> None:
    import os
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    options = api.MatrixOptions(jobs=jobs, numerics_only=numerics_only)
    assert api.effective_jobs(options) == (expected or cores)


def test_negative_jobs_are_bad_input() -> None:
    with pytest.raises(UsageError, match="--jobs -1"):
        api.effective_jobs(api.MatrixOptions(jobs=-1))


def test_workers_are_prestarted_for_runnable_profiles_before_planning(make_case, make_profile, tmp_path: Path,
                                                                      monkeypatch) -> None:
    """Before any case is planned, each runnable profile gets a worker starting, the first as many as there are
    jobs; a profile whose package is missing gets none; the record stores the jobs actually used."""
    from harness.run.pool import WorkerPool
    started: list[tuple[str, int]] = []
    real = WorkerPool.prestart

    def spy(self, profile, count=1):
        started.append((profile.name, count))
        return real(self, profile, count)
    monkeypatch.setattr(WorkerPool, "prestart", spy)
    folder = tmp_path / "profiles"
    make_profile(folder, "mine")
    make_profile(folder, "absent", extra='[requires]\npackages = ["surely_not_installed_pkg"]\n')
    record = api.run_matrix([make_case(tmp_path / "c")], ["mine", "cpu", "absent"],
                            _options(tmp_path, jobs=0, profile_dirs=[folder]))
    assert started == [("mine", api.effective_jobs(api.MatrixOptions(jobs=0, numerics_only=True))), ("cpu", 1)]
    assert record.options["jobs"] == started[0][1]
    assert {c.profile: c.verdict for c in record.cells} == {"mine": R.PASS, "cpu": R.PASS, "absent": R.SKIPPED}
    started.clear()
    api.run_matrix([make_case(tmp_path / "d")], ["cpu"], _options(tmp_path, in_process=True))
    assert started == []  # in-process: the runner is this process, nothing to start


def test_parallel_numerics_cells_share_the_cores_as_intra_op_threads() -> None:
    import os
    from dataclasses import replace

    from harness.profiles.schema import Profile
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    plain = Profile(name="p", source=None)
    shared = api.shared_cores(plain, api.MatrixOptions(jobs=2, numerics_only=True))
    assert shared.session["intra_op_threads"] == max(1, cores // 2) and plain.session == {}
    assert shared.worker_spec()["session"]["intra_op_threads"] == max(1, cores // 2)
    for kept, options in [(plain, api.MatrixOptions(jobs=2, numerics_only=False)),  # latency: ORT's default
                          (plain, api.MatrixOptions(jobs=1, numerics_only=True)),  # one cell at a time
                          (replace(plain, session={"intra_op_threads": 3}), api.MatrixOptions(jobs=2, numerics_only=True)),
                          (replace(plain, cpu_cores=1), api.MatrixOptions(jobs=2, numerics_only=True))]:
        assert api.shared_cores(kept, options) is kept


def test_a_parallel_run_records_the_threads_each_cell_had(make_case, tmp_path: Path) -> None:
    record = api.run_matrix([make_case(tmp_path / "a"), make_case(tmp_path / "b")], ["cpu"], _options(tmp_path, jobs=2))
    assert [c.verdict for c in record.cells] == [R.PASS, R.PASS]
    assert all(c.timing["threads"]["intra_op"] == api.shared_cores(
        api.load_profiles(["cpu"], api.MatrixOptions())[0], api.MatrixOptions(jobs=2, numerics_only=True)
    ).session["intra_op_threads"] for c in record.cells)


def test_an_absurd_jobs_count_starts_no_more_workers_than_cores_nor_threads_than_cells(make_case, tmp_path: Path,
                                                                                        monkeypatch) -> None:
    import os
    import threading

    from harness.run.pool import WorkerPool
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    counts: list[int] = []
    real_prestart, real_thread = WorkerPool.prestart, threading.Thread.start
    threads: list[str] = []
    monkeypatch.setattr(WorkerPool, "prestart", lambda self, p, n=1: (counts.append(n), real_prestart(self, p, n))[1])
    monkeypatch.setattr(threading.Thread, "start", lambda self: (threads.append(self.name), real_thread(self))[1])
    record = api.run_matrix([make_case(tmp_path / "c")], ["cpu"], _options(tmp_path, jobs=10 ** 9))
    assert [c.verdict for c in record.cells] == [R.PASS] and counts == [cores]
    assert len(threads) < 4 * cores + 8  # prestarts, the spawner, readers, one cell thread: not a billion


@pytest.mark.parametrize("extra, words", [
    ({"repeat": 0}, "--repeat 0"), ({"timeout_s": float("nan")}, "--timeout nan"), ({"timeout_s": -1.0}, "--timeout -1.0"),
    ({"time_cap_s": float("inf")}, "--time-cap inf"), ({"dims": {"N": -1}}, "--dim N=-1"),
    ({"dims": {"N": "two"}}, "--dim N='two'"), ({"jobs": -3}, "--jobs -3")])
def test_options_the_parser_would_refuse_are_bad_input_for_a_library_caller(make_case, tmp_path: Path, extra: dict,
                                                                            words: str) -> None:
    with pytest.raises(UsageError) as caught:
        api.run_matrix([make_case(tmp_path / "c")], ["cpu"], _options(tmp_path, **extra))
    assert words in caught.value.one_line() and "\n" not in caught.value.one_line()
    assert not (tmp_path / "results").exists()  # refused before any run folder


def test_a_profile_asking_more_cores_than_the_host_has_says_so_in_the_record(tmp_path: Path, make_case) -> None:
    """Profile.notes (threads or cores this host lacks) reach the record's warnings and its profiles table."""
    import os
    from harness import api
    folder = tmp_path / "profiles"
    folder.mkdir()
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    (folder / "wide.toml").write_text(f'name = "wide"\n[ep]\nname = "CPUExecutionProvider"\n[session]\n'
                                      f'intra_op_threads = {cores + 3}\n[tolerance]\nwhy = "test"\n')
    case = make_case(tmp_path / "case")
    record = api.run_matrix([case], ["wide"], api.MatrixOptions(numerics_only=True, out=tmp_path / "out",
                                                                 profile_dirs=[folder], builtin_profiles=False))
    assert [c.verdict for c in record.cells] == ["PASS"]
    [note] = record.profiles["wide"]["notes"]
    assert f"intra_op_threads = {cores + 3}" in note and note in record.warnings


def test_a_baseline_of_other_cases_is_refused_and_a_partial_one_warned(tmp_path: Path, make_case) -> None:
    """--baseline exists to catch regressions: one that holds none of the run's cells would check nothing and
    leave the run green."""
    from harness import api
    a, b = make_case(tmp_path / "cases" / "a"), make_case(tmp_path / "cases" / "b")
    quick = dict(out=tmp_path / "out", time_cap_s=0.05)
    base = api.run_matrix([a], ["cpu"], api.MatrixOptions(**quick))
    with pytest.raises(UsageError, match="holds none of this run's 1 cell"):
        api.run_matrix([b], ["cpu"], api.MatrixOptions(baseline=base.location, **quick))
    both = api.run_matrix([a, b], ["cpu"], api.MatrixOptions(baseline=base.location, **quick))
    assert any("has no cell for 1 of this run's 2 cells" in w for w in both.warnings), both.warnings


def test_a_profile_whose_latency_means_nothing_is_never_sampled(tmp_path: Path, make_case) -> None:
    """latency = false (the reference evaluator's profile): its cells carry no latency samples even in a run that
    samples latency, while the other profiles' cells do."""
    from harness import api
    case = make_case(tmp_path / "case")
    record = api.run_matrix([case], ["cpu", "reference"], api.MatrixOptions(out=tmp_path / "out", time_cap_s=0.05))
    cells = {c.profile: c for c in record.cells}
    assert cells["cpu"].latency.get("stats") and "latency_ns" in cells["cpu"].artifacts
    assert cells["reference"].verdict == R.PASS
    assert not cells["reference"].latency and "latency_ns" not in cells["reference"].artifacts


def test_a_resumed_run_runs_its_lost_cells_again(make_case, tmp_path: Path) -> None:
    """A cell a Ray lab lost is infrastructure, not a result: --resume runs it, and keeps the finished ones."""
    a, b = make_case(tmp_path / "a", sets=1), make_case(tmp_path / "b", sets=1)
    record = api.run_matrix([a, b], ["cpu"], _options(tmp_path))
    data = json.loads(record.location.read_text())
    lost = next(c for c in data["cells"] if c["case"] == "b")
    lost.update(verdict=R.LOST, detail="case 'b' on profile 'cpu': the host died", duration_s=123.0)
    kept = next(c for c in data["cells"] if c["case"] == "a")
    kept["duration_s"] = 456.0  # marks the finished cell: a rerun would measure its own
    record.location.write_text(json.dumps(data))
    (record.location.parent / R.JOURNAL_NAME).unlink()
    resumed = api.run_matrix([], [], _options(tmp_path, resume=record.location.parent))
    cells = {c.case: c for c in resumed.cells}
    assert cells["b"].verdict == R.PASS and cells["b"].duration_s != 123.0
    assert cells["a"].duration_s == 456.0
