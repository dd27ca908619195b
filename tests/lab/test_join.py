"""``harness lab join``: the ray start line offers only the profiles that run on this host; Ray stays in the lab.

No cluster is started here: ``--print`` shows the line, and the line is what ``ray start`` is given.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from harness.errors import UsageError
from harness.lab.join import join_argv, runnable
from harness.run.executor import Availability

REPO = Path(__file__).resolve().parents[2]


def test_the_line_offers_each_profile_as_a_resource_with_its_slots() -> None:
    argv = join_argv(" 10.0.0.5:6379 ", {"cpu": 2, "cpu-noopt": 2})
    assert argv[1:3] == ["start", "--address=10.0.0.5:6379"]
    flag, _, resources = argv[3].partition("=")
    assert flag == "--resources" and json.loads(resources) == {"profile:cpu": 2, "profile:cpu-noopt": 2}
    assert Path(argv[0]).name == "ray"


def test_an_empty_address_is_bad_input() -> None:
    with pytest.raises(UsageError, match="--address"):
        join_argv("  ", {"cpu": 1})


def test_only_the_profiles_that_run_here_are_offered() -> None:
    offered, dropped = runnable(["cpu", "cuda"], {"cpu": Availability(True),
                                                  "cuda": Availability(False, "no CUDA device")})
    assert offered == ["cpu"] and dropped == {"cuda": "no CUDA device"}


def test_the_cli_prints_the_line_and_says_what_it_left_out(cli, profiles_dir: Path, make_profile) -> None:
    pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra): 'ray start' cannot be printed")
    make_profile(profiles_dir, "needs-env", extra='[requires]\nenv = ["HARNESS_TEST_NO_SUCH_VARIABLE"]\n')
    proc = cli("lab", "join", "--address", "head:6379", "--profiles", "cpu,needs-env", "--slots", "3", "--print",
               "--profiles-dir", profiles_dir)
    assert proc.returncode == 0, proc.stderr
    argv = shlex.split(proc.stdout.strip())
    assert argv[1:3] == ["start", "--address=head:6379"]
    assert json.loads(argv[3].partition("=")[2]) == {"profile:cpu": 3}
    assert "not offered: needs-env:" in proc.stderr and "HARNESS_TEST_NO_SUCH_VARIABLE" in proc.stderr


def test_no_profile_that_runs_here_is_bad_input(cli, profiles_dir: Path, make_profile) -> None:
    make_profile(profiles_dir, "needs-env", extra='[requires]\nenv = ["HARNESS_TEST_NO_SUCH_VARIABLE"]\n')
    proc = cli("lab", "join", "--address", "head:6379", "--profiles", "needs-env", "--print",
               "--profiles-dir", profiles_dir)
    assert proc.returncode == 2 and "none of the profiles needs-env runs on this host" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_only_the_lab_imports_ray() -> None:
    """The core never needs Ray: no module outside harness.lab imports it (import-linter's graph, with the
    external packages the contract includes)."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter (the [test] extra)")
    graph = grimp.build_graph("harness", include_external_packages=True)
    importers = graph.find_modules_that_directly_import("ray") if "ray" in graph.modules else set()
    assert importers and all(m.startswith("harness.lab.") for m in importers), importers
