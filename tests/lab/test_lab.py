"""The lab on a real Ray cluster on this machine (ray.cluster_utils.Cluster): a head that runs nothing, host A
offering profile cpu, host B offering cpu and cpu-noopt; hosts added and removed by the tests that need them.

Every run goes through ``api.run_matrix(..., MatrixOptions(ray=ADDRESS))`` as ``harness run --ray`` does, and is
compared with a local run of the same cells. Skipped, with the reason, where Ray is not installed.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (the [ray] extra): the lab cannot be tested")
from ray.cluster_utils import Cluster

from harness import api
from harness.lab.cluster import DEADLINE_ENV
from harness.report.schema import record_problems
from harness.run import record as R

STORE = 80 << 20  # bytes of object store per node: small, the cases are tiny
# A host's CPUs for Ray: cells ask for none, but a node keeps at most num_cpus idle Ray worker processes, so with 0
# every cell would start a fresh one (importing the harness: ~1.5 s) instead of reusing the last cell's.
CPUS = 1
CRASHING = "crash_case"  # the hosts' workers segfault on this case (the worker's test-only fault hook)


@dataclass
class Lab:
    cluster: Cluster
    address: str
    a: str  # node ids
    b: str


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    """Ray's socket paths must stay under 108 bytes: the session folder is a short one under /tmp, removed after."""
    folder = tempfile.mkdtemp(prefix="rl-", dir="/tmp")
    saved = {k: os.environ.get(k) for k in ("RAY_TMPDIR", "HARNESS_CACHE_DIR", "HARNESS_TEST_FAULT")}
    os.environ.update(RAY_TMPDIR=folder, HARNESS_CACHE_DIR=os.path.join(folder, "cache"),
                      HARNESS_TEST_FAULT=f"segfault:{CRASHING}")  # the hosts inherit these when they start
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 0, "object_store_memory": STORE, "include_dashboard": False,
        "temp_dir": os.path.join(folder, "ray")})
    try:
        a = cluster.add_node(num_cpus=CPUS, resources={"profile:cpu": 1}, object_store_memory=STORE)
        b = cluster.add_node(num_cpus=CPUS, resources={"profile:cpu": 1, "profile:cpu-noopt": 1},
                             object_store_memory=STORE)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        yield Lab(cluster, cluster.address, a.node_id, b.node_id)
    finally:
        ray.shutdown()
        cluster.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(folder, ignore_errors=True)


def _cases(make_case: Callable[..., Path], root: Path, names: list[str]) -> list[str]:
    return [str(make_case(root / name)) for name in names]


def _run(cases: list[str], profiles: list[str], out: Path, address: str | None) -> R.RunRecord:
    return api.run_matrix(cases, profiles, api.MatrixOptions(numerics_only=True, out=out, ray=address))


def _node(cell: R.CellResult, lab_or_ids) -> str:
    """The node id (of those given) named in the cell's host."""
    ids = lab_or_ids if isinstance(lab_or_ids, list) else [lab_or_ids.a, lab_or_ids.b]
    found = [node for node in ids if f"node {node[:12]}" in cell.host]
    assert len(found) == 1, (cell.key, cell.host)
    return found[0]


def test_cells_run_on_hosts_offering_their_profile_with_a_local_runs_verdicts(lab: Lab, make_case, tmp_path: Path):
    cases = _cases(make_case, tmp_path, ["one", "two", "three", CRASHING])
    profiles = ["cpu", "cpu-noopt", "cpu-int8"]  # no host offers cpu-int8
    here = _run(cases, profiles, tmp_path / "local", None)
    there = _run(cases, profiles, tmp_path / "lab", lab.address)

    by_key = {c.key: c for c in here.cells}
    for cell in there.cells:
        if cell.profile == "cpu-int8":
            assert cell.verdict == R.SKIPPED and cell.host == ""
            assert "no host of the Ray lab" in cell.detail and "'cpu-int8'" in cell.detail
            assert "harness lab join" in cell.detail
            continue
        assert cell.verdict == by_key[cell.key].verdict, (cell.key, cell.detail)
        assert _node(cell, lab) == (lab.b if cell.profile == "cpu-noopt" else _node(cell, lab))
        assert by_key[cell.key].host == ""  # a local cell names no host
    verdicts = {c.key: c.verdict for c in there.cells}
    assert verdicts[f"{CRASHING}|cpu"] == R.CRASH and verdicts[f"{CRASHING}|cpu-noopt"] == R.CRASH
    assert verdicts["one|cpu-noopt"] == R.PASS
    assert not there.profiles["cpu-int8"]["available"] and "no host" in there.profiles["cpu-int8"]["reason"]
    assert "lab_host" in there.profiles["cpu-noopt"]["worker"]

    saved = json.loads(Path(there.location).read_text())  # the record and the journal keep each cell's host
    assert {f"{c['case']}|{c['profile']}": c["host"] for c in saved["cells"]} == {c.key: c.host for c in there.cells}
    assert record_problems(saved) == []  # a lab record is a record like any other
    journal = [json.loads(line) for line in (Path(there.location).parent / R.JOURNAL_NAME).read_text().splitlines()]
    assert sorted(line["host"] for line in journal if "host" in line and line.get("profile") == "cpu-noopt") == \
        sorted(c.host for c in there.cells if c.profile == "cpu-noopt")

    again = api.run_matrix([], None, api.MatrixOptions(resume=Path(there.location), ray=lab.address))
    assert [(c.key, c.verdict, c.host) for c in again.cells] == [(c.key, c.verdict, c.host) for c in there.cells]


def test_a_failing_cells_outputs_come_back_into_the_run_folder(lab: Lab, make_case, break_golden, tmp_path: Path):
    case = break_golden(make_case(tmp_path / "drifted"))
    record = _run([str(case)], ["cpu-noopt"], tmp_path / "lab", lab.address)
    [cell] = record.cells
    assert cell.verdict == R.FAIL and _node(cell, lab) == lab.b
    saved = Path(record.location).parent / cell.artifacts["actual_outputs"]
    assert (saved / R.OUTPUTS_MANIFEST).is_file() and (saved / "test_data_set_0" / "output_0.pb").is_file()


def test_harness_run_ray_connects_runs_and_disconnects(lab: Lab, make_case, cli, read_record, tmp_path: Path):
    case = make_case(tmp_path / "one")
    proc = cli("run", case, "--profile", "cpu-noopt", "--numerics-only", "--ray", lab.address, "--out", tmp_path / "out")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    [cell] = read_record(tmp_path / "out")["cells"]
    assert cell["verdict"] == R.PASS and f"node {lab.b[:12]}" in cell["host"]


def test_ray_with_in_process_is_bad_input(lab: Lab, make_case, cli, tmp_path: Path):
    proc = cli("run", make_case(tmp_path / "one"), "--in-process", "--ray", lab.address, "--out", tmp_path / "out")
    assert proc.returncode == 2 and "--ray and --in-process" in proc.stderr and "Traceback" not in proc.stderr


def _remove_after_first_cell(lab: Lab, out: Path, nodes: dict[str, object], removed: list) -> threading.Thread:
    """Remove the host (of ``nodes``) that finished a cell of the run under ``out``, as soon as that cell's
    journal line is written."""
    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in [line for path in out.glob(f"*/{R.JOURNAL_NAME}") for line in path.read_text().splitlines()]:
                host = json.loads(line).get("host", "") if line.endswith("}") else ""
                for node_id, node in nodes.items():
                    if f"node {node_id[:12]}" in host:
                        removed.append(node_id)
                        lab.cluster.remove_node(node)
                        return
            time.sleep(0.05)
    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def test_a_host_that_dies_mid_run_loses_no_finished_cell(lab: Lab, make_case, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch):
    """Hosts C and D offer cpu-edge. C (or D) dies after its first cell: its cells finish on the other host, and
    every cell journalled before is in the record as it was. Then the last host dies: the rest are LOST."""
    monkeypatch.setenv(DEADLINE_ENV, "60")  # a cell that a removal left hanging fails the test in a minute, not 14
    c = lab.cluster.add_node(num_cpus=CPUS, resources={"profile:cpu-edge": 1}, object_store_memory=STORE)
    d = lab.cluster.add_node(num_cpus=CPUS, resources={"profile:cpu-edge": 1}, object_store_memory=STORE)
    cases = _cases(make_case, tmp_path, [f"case{k}" for k in range(6)])
    out = tmp_path / "lab"
    removed: list = []
    thread = _remove_after_first_cell(lab, out, {c.node_id: c, d.node_id: d}, removed)
    record = _run(cases, ["cpu-edge"], out, lab.address)
    thread.join()
    assert removed, "no cell finished on host C or D"
    dead = removed[0]
    survivor = d.node_id if dead == c.node_id else c.node_id
    assert [cell.verdict for cell in record.cells] == [R.PASS] * 6, [cell.detail for cell in record.cells]
    journalled = _journal_cells(Path(record.location).parent)
    assert {k: (v["verdict"], v["host"]) for k, v in journalled.items()} == \
        {cell.key: (cell.verdict, cell.host) for cell in record.cells}
    assert any(f"node {dead[:12]}" in cell.host for cell in record.cells)  # finished before it died: kept
    assert any(f"node {survivor[:12]}" in cell.host for cell in record.cells)

    out2 = tmp_path / "lab2"
    removed2: list = []
    thread = _remove_after_first_cell(lab, out2, {survivor: d if survivor == d.node_id else c}, removed2)
    record = _run(cases, ["cpu-edge"], out2, lab.address)
    thread.join()
    assert removed2
    verdicts = [cell.verdict for cell in record.cells]
    assert R.PASS in verdicts and set(verdicts) <= {R.PASS, R.LOST}, [cell.detail for cell in record.cells]
    lost = [cell for cell in record.cells if cell.verdict == R.LOST]
    assert lost, "every cell finished although the last host died after the first"
    for cell in lost:
        assert cell.error["kind"] == "lost"
        assert "no live host offers the profile any more" in cell.detail and "'cpu-edge'" in cell.detail


def _journal_cells(folder: Path) -> dict[str, dict]:
    lines = [json.loads(line) for line in (folder / R.JOURNAL_NAME).read_text().splitlines()]
    return {f"{line['case']}|{line['profile']}": line for line in lines if "verdict" in line}


def test_a_cell_past_its_deadline_is_cancelled_sent_once_more_then_lost(lab: Lab, make_case, make_profile,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    """A host whose workers hang (the test fault, in that host's environment) looks frozen to the head: the
    worker's own timeout is far off, so the lab's deadline cancels the task, sends it once more, and gives up."""
    make_profile(tmp_path / "profiles", "frozen")
    host = lab.cluster.add_node(num_cpus=CPUS, resources={"profile:frozen": 1}, object_store_memory=STORE,
                                env_vars={"HARNESS_TEST_FAULT": "hang:*"})
    monkeypatch.setenv(DEADLINE_ENV, "3")
    try:
        started = time.monotonic()
        record = api.run_matrix([str(make_case(tmp_path / "slow"))], ["frozen"], api.MatrixOptions(
            numerics_only=True, out=tmp_path / "lab", ray=lab.address, timeout_s=300,
            profile_dirs=[tmp_path / "profiles"]))
        took = time.monotonic() - started
    finally:
        lab.cluster.remove_node(host)
    [cell] = record.cells
    assert cell.verdict == R.LOST and cell.error["kind"] == "lost", cell.detail
    assert cell.detail.count("no answer within its deadline of 3 s (cancelled)") == 2, cell.detail
    assert cell.detail.startswith("case 'slow' on profile 'frozen'")
    assert 6 <= took < 60, took
