"""The cpu profile's known failures against the real ONNX node suite, through the CLI as a user runs it.

These run ``python -m harness`` in a subprocess with the user's cache (HARNESS_CACHE_DIR is left alone), so the
suite is built once per machine (~25 s cold) and reused. They pin that each listed cause still fails here (XFAIL,
with the profile's reason in the record), that the patterns leave neighbouring passing cases alone, and that an
entry matching a passing case is reported as XPASS.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from harness.profiles.schema import load_profile
from harness.run import record as R

REPO = Path(__file__).resolve().parents[1]
CPU_TOML = REPO / "device_profiles" / "cpu.toml"

# Known failures of different causes (UNSUPPORTED, a golden for undefined behaviour, an ERROR at session
# creation, a random mask, one output only), each next to a passing case its pattern must not swallow.
EXPECTED = {
    "test_bitcast_bool_to_uint8": "XFAIL", "test_bitcast_int8_to_uint8": "PASS",
    "test_cast_FLOAT_to_INT4": "XFAIL", "test_cast_FLOAT_to_FLOAT16": "PASS",
    "test_gru_batchwise": "XFAIL", "test_gru_defaults": "PASS",
    "test_training_dropout": "XFAIL", "test_training_dropout_zero_ratio": "PASS",
    "test_attention_4d_with_past_and_present_qk_matmul_bias_3d_mask_causal": "XFAIL",
    "test_attention_4d_with_past_and_present_qk_matmul_bias_3d_mask_causal_expanded": "PASS",
}


def _run_suite(tmp_path: Path, names: list[str], *extra: str | Path) -> tuple[subprocess.CompletedProcess, dict]:
    """``harness run --suite onnx-node`` on exactly these cases; the process and its run record."""
    pattern = "^(" + "|".join(names) + ")$"
    out = tmp_path / "results"
    env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1"}
    proc = subprocess.run([sys.executable, "-m", "harness", "run", "--suite", "onnx-node", "--filter", pattern,
                           "--profile", "cpu", "--numerics-only", "--out", str(out), *map(str, extra)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    records = sorted(out.glob("*/record.json"))
    assert len(records) == 1, proc.stdout + proc.stderr
    return proc, json.loads(records[0].read_text())


def test_listed_suite_failures_are_xfail_with_their_reason(tmp_path: Path) -> None:
    proc, record = _run_suite(tmp_path, sorted(EXPECTED))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    cells = {c["case"]: c for c in record["cells"]}
    assert {name: cell["verdict"] for name, cell in cells.items()} == EXPECTED
    profile = load_profile(CPU_TOML)
    for name, verdict in EXPECTED.items():
        known = profile.known_failure(name)
        if verdict == "XFAIL":
            assert known is not None and cells[name]["known_failure"] == known.reason
            assert cells[name]["detail"].startswith(f"expected failure: {known.reason}")
        else:
            assert known is None and cells[name]["known_failure"] == ""


def test_an_entry_matching_a_passing_case_is_xpass(tmp_path: Path) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    shutil.copy(CPU_TOML, folder / "cpu.toml")
    reason = "deliberately wrong: this case passes on the CPU EP"
    with (folder / "cpu.toml").open("a") as toml:
        toml.write(f'\n[[known_failures]]\ncase = "test_gru_defaults"\nreason = "{reason}"\n')
    proc, record = _run_suite(tmp_path, ["test_gru_defaults"], "--profiles-dir", folder)
    [cell] = record["cells"]
    assert (cell["verdict"], cell["known_failure"]) == ("XPASS", reason)
    assert "unexpectedly passed" in cell["detail"] and "Remove the entry" in cell["detail"]
    assert "[XPASS] case 'test_gru_defaults' on profile 'cpu'" in proc.stdout
    # The exit code follows the verdict classes: non-zero exactly when XPASS counts as failing.
    assert (proc.returncode != 0) == (R.XPASS in R.FAILING), proc.stdout + proc.stderr

