"""Issue 8: the run side under hostile but ordinary use. Every test here failed before its fix: a named profile
that ran nothing, colliding artifact folders, torn blesses, a resume that forgot its selection, a full disk,
tracebacks instead of one line, and outcomes that were wrong or silent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import api
from harness.errors import HarnessError
from harness.run import record as R

REPO = Path(__file__).resolve().parents[2]


def _opts(tmp_path: Path, **extra) -> api.MatrixOptions:
    return api.MatrixOptions(out=tmp_path / "results", numerics_only=True, **extra)


def _needs_env(folder: Path, name: str = "needs-env") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.toml").write_text(f'name = "{name}"\n[ep]\nname = "CPUExecutionProvider"\n'
                                         '[requires]\nenv = ["HARNESS_TEST_NO_SUCH_VARIABLE"]\n')
    return folder


# ---- 1: a profile the user named that ran no cell fails the run --------------------------------------------------

def test_a_named_profile_that_ran_no_cell_exits_1_with_the_matrix(tmp_path: Path, make_case, profiles_dir, run_cli):
    case = make_case(tmp_path / "cases" / "tiny")
    _needs_env(profiles_dir)
    proc = run_cli("run", case, "--profile", "cpu", "--profile", "needs-env", "--profiles-dir", profiles_dir,
                   "--numerics-only", "--out", tmp_path / "results")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "Conformance matrix" in proc.stdout and "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert "'needs-env'" in line and "ran no cell" in line and "HARNESS_TEST_NO_SUCH_VARIABLE" in line


def test_a_default_run_still_skips_an_unavailable_profile(tmp_path: Path, make_case, profiles_dir: Path):
    case = make_case(tmp_path / "cases" / "tiny")
    _needs_env(profiles_dir)
    record = api.run_matrix([case], None, _opts(tmp_path, profile_dirs=[profiles_dir], builtin_profiles=False))
    assert {c.profile: c.verdict for c in record.cells} == {"cpu": R.PASS, "needs-env": R.SKIPPED}
    assert api.idle_named_profiles(record) == {}


def test_the_library_says_which_named_profile_ran_nothing(tmp_path: Path, make_case, profiles_dir: Path):
    case = make_case(tmp_path / "cases" / "tiny")
    _needs_env(profiles_dir)
    options = _opts(tmp_path, profile_dirs=[profiles_dir], builtin_profiles=False, named_profiles=["needs-env"])
    record = api.run_matrix([case], ["cpu", "needs-env"], options)
    idle = api.idle_named_profiles(record)
    assert list(idle) == ["needs-env"] and "HARNESS_TEST_NO_SUCH_VARIABLE" in idle["needs-env"]
    assert record.options["named_profiles"] == ["needs-env"]


# ---- 2: artifact folders are unique per cell ----------------------------------------------------------------------

def test_cases_whose_names_differ_only_in_punctuation_get_their_own_folders(tmp_path: Path) -> None:
    from harness.run.executor import cell_dir_name
    names = {cell_dir_name(case, "cpu") for case in ("a/b", "a_b", "a b", "a:b", "A_b")}
    assert len(names) == 5
    assert all(n.startswith(("a_b", "A_b")) for n in names) and all("/" not in n for n in names)
    assert cell_dir_name("a/b", "cpu") == cell_dir_name("a/b", "cpu")  # stable: resume and baselines find it
    assert len(cell_dir_name("x" * 400, "p" * 300)) < 200


# ---- 6: one line instead of a traceback ---------------------------------------------------------------------------

@pytest.mark.parametrize("content, fragment", [
    ("[]", "JSON object"),
    ('{"schema": "onnx-harness/run-record", "schema_version": 1, "cells": {}}', "'cells' must be a list"),
    ('{"schema": "onnx-harness/run-record", "schema_version": 1, "cells": [1, "x"]}', "cells[0] is a int, not an object"),
    ('{"schema": "onnx-harness/run-record", "schema_version": 1, "cells": [{"case": "a", "profile": "p"}]}',
     "cells[0] lacks verdict"),
    ('{"schema": "onnx-harness/run-record", "schema_version": 1, "cells": [{"case": "a", "profile": "p", '
     '"verdict": "PASS", "duration_s": "slow"}]}', "field 'duration_s' is str, not a number"),
])
def test_a_malformed_record_is_one_line(tmp_path: Path, content: str, fragment: str) -> None:
    path = tmp_path / "record.json"
    path.write_text(content)
    with pytest.raises(HarnessError, match=fragment.replace("[", r"\[").replace("]", r"\]")):
        R.load_record(path)


@pytest.mark.parametrize("content", ["[1, 2]", '{"kind": "header"}\n[]\n"x"\n'])
def test_a_journal_of_odd_lines_is_one_line(tmp_path: Path, content: str) -> None:
    (tmp_path / R.JOURNAL_NAME).write_text(content)
    with pytest.raises(HarnessError):
        R.load_record(tmp_path)


def test_an_ill_typed_journal_cell_is_skipped_and_reruns(tmp_path: Path) -> None:
    journal = R.Journal(tmp_path)
    journal.header(R.RunRecord("r", "now", {}, {}, {}, []))
    journal.close()
    with (tmp_path / R.JOURNAL_NAME).open("a") as handle:
        handle.write(json.dumps({"kind": "cell", "case": "a", "profile": "p", "verdict": "PASS", "duration_s": "x"}))
        handle.write("\n" + json.dumps({"kind": "cell", "case": "b", "profile": "p", "verdict": "PASS"}) + "\n")
    record, _ = R.load_record(tmp_path)
    assert [c.case for c in record.cells] == ["b"]


@pytest.mark.parametrize("flag, value, fragment", [
    ("--timeout", "inf", "finite"), ("--timeout", "1e300", "at most"), ("--timeout", "nan", "finite"),
    ("--time-cap", "inf", "finite"), ("--time-cap", "-1", "positive"),
    ("--dim", "batch=1e30", "--dim"), ("--dim", "batch=1.5", "--dim"),
    ("--dim", "batch=100000000000000000000000", "at most"),
])
def test_absurd_numbers_are_refused_at_parse_time(run_cli, assert_bad_input, flag, value, fragment) -> None:
    line = assert_bad_input(run_cli("run", flag, value))
    assert fragment in line, line


def test_no_subcommand_prints_usage_to_stderr_and_exits_2(run_cli) -> None:
    proc = run_cli()
    assert proc.returncode == 2 and proc.stdout == ""
    assert "usage: harness" in proc.stderr and "Traceback" not in proc.stderr


# ---- 5 and 6: write failures are one line; the matrix and every journalled cell are kept ----------------------------

def _long_component(tmp_path: Path) -> Path:
    return tmp_path / ("x" * 300)


def _over_path_max(tmp_path: Path) -> Path:
    return tmp_path.joinpath(*["y" * 200] * 25)


def _a_file(tmp_path: Path) -> Path:
    (tmp_path / "plain").write_text("not a folder")
    return tmp_path / "plain"


@pytest.mark.parametrize("out", [lambda t: Path("/dev/null"), _a_file, lambda t: Path("/proc/harness-results"),
                                 _long_component, _over_path_max])
def test_an_unwritable_out_is_one_line_before_any_cell(out, tiny_case: Path, tmp_path: Path, profiles_dir: Path,
                                                      run_cli, assert_bad_input) -> None:
    proc = run_cli("run", tiny_case, "--profile", "cpu", "--numerics-only", "--profiles-dir", profiles_dir,
                   "--out", out(tmp_path))
    line = assert_bad_input(proc)
    assert "--out" in line and "cannot write run records" in line, line
    assert "Conformance matrix" not in proc.stdout


@pytest.mark.parametrize("target", [lambda t: "x" * 300, lambda t: str(_over_path_max(t))])
def test_a_target_path_too_long_is_one_line(target, tmp_path: Path, run_cli, assert_bad_input) -> None:
    line = assert_bad_input(run_cli("run", target(tmp_path), "--profile", "cpu", "--out", tmp_path / "r"))
    assert "too long" in line and len(line) < 800, line


ENOSPC = 28


def test_a_full_disk_keeps_every_journalled_cell_and_prints_the_matrix(tmp_path: Path, make_case, profiles_dir,
                                                                      monkeypatch, capsys) -> None:
    """The second cell's journal line is torn by ENOSPC, and record.json cannot be written: one line on stderr,
    the matrix on stdout, exit 2, and a journal whose every line reads, holding the first cell."""
    from harness import cli
    for name in ("c1", "c2", "c3"):
        make_case(tmp_path / "cases" / name)
    real_write, calls = os.write, {"cells": 0}

    def full_disk(fd: int, data) -> int:
        if not os.readlink(f"/proc/self/fd/{fd}").endswith(R.JOURNAL_NAME) or b'"kind": "cell"' not in bytes(data):
            return real_write(fd, data)
        calls["cells"] += 1
        if calls["cells"] == 1:
            return real_write(fd, data)
        real_write(fd, bytes(data)[: len(data) // 2])  # half a line reaches the disk, then the disk is full
        raise OSError(ENOSPC, os.strerror(ENOSPC))

    def no_space(path, data) -> None:
        raise OSError(ENOSPC, os.strerror(ENOSPC), str(path))

    monkeypatch.setattr(os, "write", full_disk)
    monkeypatch.setattr(R, "atomic_write_bytes", no_space)
    code = cli.main(["run", "--root", str(tmp_path / "cases"), "--profile", "cpu", "--numerics-only",
                     "--profiles-dir", str(profiles_dir), "--out", str(tmp_path / "results")])
    monkeypatch.undo()
    captured = capsys.readouterr()
    assert code == 2, captured.out + captured.err
    assert "Conformance matrix" in captured.out and "3 cells: 3 PASS" in captured.out
    [line] = captured.err.splitlines()
    assert line.startswith("harness: error: could not write") and "No space left on device" in line
    [journal] = (tmp_path / "results").glob(f"*/{R.JOURNAL_NAME}")
    entries = [json.loads(text) for text in journal.read_text().splitlines()]  # no torn line
    assert [e["case"] for e in entries if e["kind"] == "cell"] == ["c1"]
    record, _ = R.load_record(journal.parent)
    assert [c.case for c in record.cells] == ["c1"]


def test_a_journal_write_that_fails_leaves_no_torn_line(tmp_path: Path, monkeypatch) -> None:
    journal = R.Journal(tmp_path)
    record = R.RunRecord("r", "now", {}, {}, {}, [])
    journal.header(record)
    real_write = os.write

    def torn(fd: int, data) -> int:
        real_write(fd, bytes(data)[:10])
        raise OSError(ENOSPC, os.strerror(ENOSPC))

    monkeypatch.setattr(os, "write", torn)
    with pytest.raises(OSError):
        journal.cell(R.CellResult("a", "cpu", R.PASS))
    monkeypatch.undo()
    journal.cell(R.CellResult("b", "cpu", R.PASS))
    journal.close()
    journal.close()
    header, cells = R.read_journal(tmp_path / R.JOURNAL_NAME)
    assert [c.case for c in cells] == ["b"] and header["run_id"] == "r"
    assert all(json.loads(line) for line in (tmp_path / R.JOURNAL_NAME).read_text().splitlines())


# ---- 4: --resume restores the run's selection and options --------------------------------------------------------

@pytest.fixture
def interrupted(tmp_path: Path, make_case, make_profile, run_cli) -> dict:
    """A two-profile numerics-only run over two cases, then 'killed': no record.json, its last cells not journalled."""
    for name in ("c1", "c2"):
        make_case(tmp_path / "cases" / name)
    make_profile(tmp_path / "profiles", "cpu")
    make_profile(tmp_path / "profiles", "cpu-b")
    make_profile(tmp_path / "profiles", "cpu-c")
    common = ["--root", tmp_path / "cases", "--profiles-dir", tmp_path / "profiles", "--no-builtin-profiles"]
    proc = run_cli("run", *common, "--profile", "cpu", "--profile", "cpu-b", "--numerics-only", "--seed", "5",
                   "--out", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [folder] = (tmp_path / "results").iterdir()
    (folder / R.RECORD_NAME).unlink()
    journal = folder / R.JOURNAL_NAME
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-2]) + "\n")  # the last two cells were lost to the kill
    return {"folder": folder, "common": common}


def test_resume_runs_the_original_profiles_and_options(interrupted: dict, run_cli) -> None:
    proc = run_cli("run", "--resume", interrupted["folder"], *interrupted["common"][2:])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    record = json.loads((interrupted["folder"] / R.RECORD_NAME).read_text())
    assert sorted((c["case"], c["profile"]) for c in record["cells"]) == [
        ("c1", "cpu"), ("c1", "cpu-b"), ("c2", "cpu"), ("c2", "cpu-b")]
    assert all(not c["latency"] for c in record["cells"]), "numerics-only was not restored"
    assert record["options"]["seed"] == 5 and record["options"]["numerics_only"] is True


@pytest.mark.parametrize("extra, fragment", [
    (["--seed", "6"], "--seed 6 conflicts with the run's 5"),
    (["--profile", "cpu-c"], "profiles ['cpu-c'] are not the run's profiles"),
    (["--dim", "N=3"], "--dim"),
])
def test_resume_refuses_options_that_conflict_with_the_record(interrupted: dict, run_cli, assert_bad_input,
                                                             extra, fragment) -> None:
    line = assert_bad_input(run_cli("run", "--resume", interrupted["folder"], *interrupted["common"][2:], *extra))
    assert fragment in line, line


# ---- 3: bless --force swaps a whole case at once -------------------------------------------------------------------

def _outputs(case: Path) -> dict[str, bytes]:
    return {str(p.relative_to(case)): p.read_bytes() for p in sorted(case.glob("test_data_set_*/output_*.pb"))}


@pytest.fixture
def stale_case(tmp_path: Path, make_case, save_tensor, profiles_dir: Path) -> Path:
    """Five data sets whose goldens are all off by one (so a bless changes every one of them), and a case.json."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    case = make_case(tmp_path / "cases" / "big", sets=5)
    for path in case.glob("test_data_set_*/output_0.pb"):
        save_tensor(path, "y", numpy_helper.to_array(onnx.load_tensor(str(path))) + np.float32(1))
    (case / "case.json").write_text(json.dumps({"case": "big", "description": "old"}))
    return case


_KILLED_BLESS = """
import os, signal, sys
from pathlib import Path
import harness.run.bless as B
from harness.golden.cases import discover
from harness.profiles import registry
calls = {"n": 0}
real = B.write_dataset
def dying(*args, **kwargs):
    calls["n"] += 1
    if calls["n"] == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args, **kwargs)
B.write_dataset = dying
[profile] = registry.select(registry.load_all([Path(sys.argv[2])]), ["cpu"])
[case] = discover([sys.argv[1]], Path("no-root"))
B.bless(case, profile, dims={}, seed=0, force=True)
"""


def test_a_bless_killed_midway_leaves_the_old_goldens_whole(stale_case: Path, profiles_dir: Path, tmp_path: Path,
                                                            run_cli, cache_dir: Path) -> None:
    before, manifest = _outputs(stale_case), (stale_case / "case.json").read_text()
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_BLESS, str(stale_case), str(profiles_dir)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert _outputs(stale_case) == before and (stale_case / "case.json").read_text() == manifest
    proc = run_cli("bless", stale_case, "--force", "--profiles-dir", profiles_dir)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    after = _outputs(stale_case)
    assert set(after) == set(before) and all(after[k] != before[k] for k in before)  # all new, none old
    assert '"kind": "profile"' in (stale_case / "case.json").read_text()
    assert sorted(p.name for p in stale_case.parent.iterdir()) == ["big"]  # leftovers cleaned
    assert not list(stale_case.rglob("*.tmp"))
    modes = {oct(p.stat().st_mode & 0o777) for p in stale_case.rglob("*.pb")} | {
        oct((stale_case / "case.json").stat().st_mode & 0o777)}
    umask = os.umask(0)
    os.umask(umask)
    assert modes == {oct(0o666 & ~umask)}


def test_a_kill_between_the_two_renames_restores_the_old_case(stale_case: Path) -> None:
    from harness.run import bless as B
    before = _outputs(stale_case)
    staging = B._stage(stale_case)
    (staging / "test_data_set_0").mkdir()
    os.rename(stale_case, B._beside(stale_case, B.OLD_SUFFIX))  # the first rename of the fallback swap, then kill
    done = B.recover_under(stale_case.parent)
    assert len(done) == 2 and _outputs(stale_case) == before
    assert sorted(p.name for p in stale_case.parent.iterdir()) == ["big"]


def test_a_run_cleans_a_killed_bless_before_finding_cases(stale_case: Path, tmp_path: Path, profiles_dir) -> None:
    from harness.run import bless as B
    B._stage(stale_case)  # a half-built .big.bless-new holds a model.onnx: it must not become a second case
    record = api.run_matrix([], ["cpu"], _opts(tmp_path, root=stale_case.parent, profile_dirs=[profiles_dir]))
    assert [c.case for c in record.cells] == ["big"]
    assert any("bless" in w for w in record.warnings)


# ---- 7: wrong or silent outcomes -------------------------------------------------------------------------------------

SPEC = {"name": "edge", "ep": "CPUExecutionProvider", "plugin": None, "ep_options": {}, "device_type": None,
        "device_metadata": {}, "precision_hint": None, "session": {}, "env": {}, "cpu_cores": None,
        "memory_limit_mb": 512}


def test_a_worker_killed_from_outside_under_a_memory_limit_is_a_crash_not_oom(tmp_path: Path, make_model) -> None:
    import onnx
    from harness.run.pool import WorkerFailure, WorkerHandle
    onnx.save(make_model(), str(tmp_path / "model.onnx"))
    worker = WorkerHandle(SPEC, env={"HARNESS_TEST_FAULT": "hang:victim"})
    worker.send({"type": "load", "case": "victim", "model_path": str(tmp_path / "model.onnx")}, None, "loading")
    time.sleep(0.5)
    os.kill(worker.proc.pid, signal.SIGKILL)
    with pytest.raises(WorkerFailure) as caught:
        worker.receive(30, "creating the session")
    worker.close()
    assert caught.value.outcome == "CRASH" and "SIGKILL" in str(caught.value), str(caught.value)
    assert "512" not in str(caught.value)


_HARNESS_WITH_A_WORKER = """
import sys, threading
from harness.run.pool import WorkerPool
from harness.profiles.schema import Profile
from harness.profiles import registry
[profile] = registry.select(registry.load_all([]), ["cpu"])
holder = {}
thread = threading.Thread(target=lambda: holder.update(w=WorkerPool().acquire(profile)))
thread.start(); thread.join()  # started from a thread that has ended, as the executor's cell threads do
print(holder["w"].proc.pid, flush=True)
threading.Event().wait()
"""


def test_a_stopped_worker_dies_with_a_killed_harness(cache_dir: Path) -> None:
    import psutil
    env = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir)}
    harness = subprocess.Popen([sys.executable, "-c", _HARNESS_WITH_A_WORKER], cwd=REPO, env=env,
                               stdout=subprocess.PIPE, text=True)
    try:
        pid = int(harness.stdout.readline())
        assert psutil.pid_exists(pid), "the worker did not outlive its spawning thread"
        os.kill(pid, signal.SIGSTOP)
        harness.kill()
        harness.wait(10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                    break
            except psutil.NoSuchProcess:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, signal.SIGKILL)
            pytest.fail("a SIGSTOPped worker outlived the harness that was SIGKILLed")
    finally:
        harness.kill()


def _model(path: Path, op: str, dtype: int, opset: int, domain: str = "") -> Path:
    import onnx
    from onnx import helper
    graph = helper.make_graph([helper.make_node(op, ["x"], ["y"], domain=domain)], "g",
                              [helper.make_tensor_value_info("x", dtype, [2])],
                              [helper.make_tensor_value_info("y", dtype, [2])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(domain, opset)])
    model.ir_version = 10
    path.mkdir(parents=True)
    onnx.save(model, str(path / "model.onnx"))
    return path


def test_a_model_onnxruntime_cannot_run_is_unsupported(tmp_path: Path) -> None:
    from onnx import TensorProto
    cases = [_model(tmp_path / "cases" / "relu_bf16", "Relu", TensorProto.BFLOAT16, 17),
             _model(tmp_path / "cases" / "opset_30", "Relu", TensorProto.FLOAT, 30)]
    record = api.run_matrix(cases, ["cpu", "cpu-fp16"], _opts(tmp_path, reference="cpu"))
    cells = {(c.case, c.profile): c for c in record.cells}
    for case in ("relu_bf16", "opset_30"):
        cell = cells[(case, "cpu")]
        assert cell.verdict == R.UNSUPPORTED, (cell.verdict, cell.detail)
        assert cell.detail.startswith("onnxruntime does not support this model on CPUExecutionProvider")
    assert "under development" in cells[("opset_30", "cpu")].detail
    assert api.failing(record) and R.UNSUPPORTED in R.FAILING


def test_an_expected_unsupported_cell_is_xfail(tmp_path: Path, make_profile) -> None:
    from onnx import TensorProto
    case = _model(tmp_path / "cases" / "relu_bf16", "Relu", TensorProto.BFLOAT16, 17)
    (tmp_path / "profiles").mkdir()
    (tmp_path / "profiles" / "cpu.toml").write_text(
        'name = "cpu"\nknown_failures = [{ case = "relu_bf16", reason = "no bf16 Relu kernel" }]\n'
        '[ep]\nname = "CPUExecutionProvider"\n')
    record = api.run_matrix([case], ["cpu"], _opts(tmp_path, profile_dirs=[tmp_path / "profiles"],
                                                   builtin_profiles=False))
    assert [c.verdict for c in record.cells] == [R.XFAIL]


def test_a_dim_no_case_uses_is_refused(tmp_path: Path, make_model, run_cli, assert_bad_input, tiny_case: Path,
                                       profiles_dir: Path) -> None:
    import onnx
    bare = tmp_path / "m.onnx"
    onnx.save(make_model(), str(bare))
    common = ["--profile", "cpu", "--numerics-only", "--profiles-dir", profiles_dir, "--out", tmp_path / "r"]
    line = assert_bad_input(run_cli("run", bare, "--dim", "batchh=2", *common))
    assert "--dim batchh" in line and "dimensions are N" in line, line
    line = assert_bad_input(run_cli("run", tiny_case, "--dim", "N=2", *common))
    assert "stored inputs" in line, line
    proc = run_cli("run", bare, "--dim", "N=2", *common)  # used: the run goes on (cpu alone: no golden, exit 1)
    assert proc.returncode == 1 and "NO_GOLDEN" in proc.stdout and not proc.stderr, proc.stderr


def test_generated_inputs_over_the_cap_are_refused_with_their_size() -> None:
    import numpy as np
    from harness.errors import UsageError
    from harness.model.inputs import generate_inputs
    from harness.model.loader import TensorSig
    sig = TensorSig("x", np.dtype(np.float32), ["batch", 3, 224, 224])
    with pytest.raises(UsageError, match=r"would take 56.1 GiB .*input 'x' shape \[100000, 3, 224, 224\].*2 GiB cap"):
        generate_inputs([sig], case="c", seed=0, dims={"batch": 100_000}, ranges={})
    assert generate_inputs([sig], case="c", seed=0, dims={"batch": 1}, ranges={})["x"].shape == (1, 3, 224, 224)


def test_control_characters_in_names_are_printed_escaped(tmp_path: Path, make_case, run_cli) -> None:
    evil = "ev\x1b[31mil\x07"
    make_case(tmp_path / "cases" / evil)
    broken = make_case(tmp_path / "cases" / f"{evil}2")
    (broken / "test_data_set_0" / "output_0.pb").write_bytes(b"garbage")
    proc = run_cli("run", "--root", tmp_path / "cases", "--profile", "cpu", "--numerics-only", "--out", tmp_path / "r")
    assert "\x1b" not in proc.stderr and "\x07" not in proc.stderr and proc.returncode == 2, proc.stderr
    assert "ev\\x1b[31mil\\x072" in proc.stderr
    broken.joinpath("test_data_set_0", "output_0.pb").unlink()
    broken.joinpath("test_data_set_0", "input_0.pb").unlink()
    proc = run_cli("run", "--root", tmp_path / "cases", "--profile", "cpu", "--numerics-only", "--out", tmp_path / "r",
                   "--dim", "N=2")
    out = proc.stdout + proc.stderr
    assert "\x1b" not in out and "\x07" not in out, out
    assert "ev\\x1b[31mil\\x07" in proc.stdout


def test_an_ascii_only_stdout_degrades_instead_of_crashing(tiny_case: Path, profiles_dir: Path, tmp_path: Path,
                                                           cli) -> None:
    proc = cli("run", tiny_case, "--profile", "cpu", "--profiles-dir", profiles_dir, "--out", tmp_path / "r",
               "--time-cap", "0.2", env={"PYTHONIOENCODING": "ascii"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and "1 cells: 1 PASS" in proc.stdout


def test_the_cell_records_the_case_op(tmp_path: Path, make_case) -> None:
    from harness.golden.cases import load_case
    case = load_case(make_case(tmp_path / "relu_case"), "relu_case")
    case.tested_op = "Relu"  # what the suite source sets for a node test
    record = api.run_matrix([case], ["cpu"], _opts(tmp_path))
    assert record.cells[0].model["op"] == "Relu"


def test_a_lost_journal_line_is_moot_once_the_record_is_written(tmp_path: Path, make_case, monkeypatch) -> None:
    case = make_case(tmp_path / "cases" / "c1")
    monkeypatch.setattr(R.Journal, "cell", lambda self, result: (_ for _ in ()).throw(OSError(ENOSPC, "No space")))
    record = api.run_matrix([case], ["cpu"], _opts(tmp_path))
    assert record.location is not None and record.write_errors == []
    assert [c.verdict for c in R.load_record(record.location)[0].cells] == [R.PASS]


@pytest.mark.parametrize("field, value", [("run_id", 1), ("created", None), ("finished", 5), ("log", ["x"]),
                                          ("warnings", "x"), ("write_errors", {})])
def test_a_record_header_field_of_the_wrong_type_is_one_line(tmp_path: Path, field: str, value) -> None:
    body = json.loads(R.RunRecord("r", "now", {}, {}, {}, []).to_json())
    body[field] = value
    (tmp_path / R.RECORD_NAME).write_text(json.dumps(body))
    with pytest.raises(HarnessError, match=repr(field)):
        R.load_record(tmp_path)
