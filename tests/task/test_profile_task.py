"""A profile's [task] table through the CLI: gates parsed when profiles load, PASS* with the elementwise failure
shown in the console, and a typo refused in one line."""

from __future__ import annotations

from pathlib import Path

from harness.profiles.registry import load_all, select

TIGHT_INT8 = '''name = "cpu-int8-task"
extends = "cpu-int8"

[tolerance]
rtol = 1e-4
atol = 1e-5

[task]
gates = ["top1_agreement >= 0.99", "f1_drop <= 0.01"]
'''


def test_the_bundled_int8_profile_gates_on_top1_and_f1():
    [int8] = select(load_all([]), ["cpu-int8"])
    assert [g.text for g in int8.task_gates.gates] == ["top1_agreement >= 0.99", "f1_drop <= 0.01"]
    [cpu] = select(load_all([]), ["cpu"])
    assert cpu.task_gates.gates == ()


def test_a_tight_int8_profile_passes_the_classifier_on_its_task_and_shows_both(run_cli, tmp_path: Path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "cpu-int8-task.toml").write_text(TIGHT_INT8)
    proc = run_cli("run", "classifier", "--profile", "cpu-int8-task", "--profiles-dir", profiles, "--numerics-only",
                   "--out", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr
    text = " ".join(proc.stdout.split())  # the console wraps long lines
    assert "[PASS*] case 'classifier' on profile 'cpu-int8-task': task classification (declared): top1_agreement 1" \
        in text
    assert "passed on task gates (top1_agreement >= 0.99, f1_drop <= 0.01); elementwise: 2 output(s) out of " \
           "tolerance vs golden (probabilities)" in text
    assert "output 'probabilities' on profile 'cpu-int8-task': tensor-likes are not close vs golden" in text
    assert "Fell back" not in text


def test_a_gate_naming_no_metric_is_one_line(run_cli, assert_bad_input, tmp_path: Path):
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "typo.toml").write_text('[task]\ngates = ["top1_agreemnt >= 0.99"]\n')
    line = assert_bad_input(run_cli("run", "classifier", "--profile", "typo", "--profiles-dir", profiles))
    assert "typo.toml [task]: task gate 'top1_agreemnt >= 0.99' names no task metric (did you mean" in line
