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
    ('{"schema": "onnx-harness/run-record", "schema_version": 1, "cells": [1, "x"]}', "cells[0] must be an object"),
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
