"""Fixtures for the fuzzer's tests: a profiles folder with a planted-fault profile ('faulty')."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture
def faulty_profiles(tmp_path: Path) -> Path:
    """A folder holding profile 'faulty': the CPU EP in a worker whose Sigmoid is HardSigmoid and which dies on
    any graph with a Cos node (faulty_worker.py)."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    command = json.dumps([sys.executable, str(HERE / "faulty_worker.py")])
    (folder / "faulty.toml").write_text(f'''name = "faulty"
description = "test-only: Sigmoid computed as HardSigmoid, a crash on Cos"
[ep]
name = "CPUExecutionProvider"
[worker]
command = {command}
env = {{ FAULT_OP = "Sigmoid", FAULT_CRASH_OP = "Cos" }}
''', encoding="utf-8")
    return folder
