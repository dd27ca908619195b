"""The executor (harness/run/executor.py) under injected faults: a crash, a hang and an OOM each cost one cell,
and the cells around them finish intact in the same record."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.golden.cases import load_case
from harness.profiles.schema import load_profile
from harness.run import record as R
from harness.run.executor import Availability, Executor, RunOptions, missing_requirements, probe
from harness.run.plan import plan_case

FAULT_ENV = "HARNESS_TEST_FAULT"
CASES = ("a_ok", "b_bad", "c_ok")


@pytest.fixture(scope="module")
def fault_run(tmp_path_factory: pytest.TempPathFactory, cli, read_record) -> tuple[object, dict]:
    """One run: three profiles, each injecting one kind of fault into case b_bad only."""
    from conftest import build_case, write_profile  # noqa: F401  (see below)
    raise NotImplementedError
