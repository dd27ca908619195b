"""harness/setup/arm64.py: the emulated aarch64 profiles are refused before any worker starts while qemu or the
aarch64 Python is missing, with the command that fixes it; once set up, their worker runs the aarch64 Python
under qemu with the profile's CPU model; ``setup`` is idempotent and a partial set-up is redone.

qemu is faked by a script on PATH and the set-up by a stamp, so these run without qemu and without a network;
only the last test runs a real emulated worker, and only where ``harness setup arm64`` has been run."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from harness import api
from harness.profiles.registry import load_all
from harness.profiles.schema import EMULATED_CPUS
from harness.run import record as R
from harness.run.launchers import LauncherUnavailable, launch_for
from harness.run.pool import missing_requirements
from harness.setup import arm64

REPO = Path(__file__).resolve().parents[2]
ARM_PROFILES = ("arm64-neoverse-n1-emulated", "arm64-cortex-a57-emulated", "arm64-neoverse-n1-int8-emulated")


@pytest.fixture(scope="module")
def profiles() -> dict:
    return load_all()


def _fake_qemu(bin_dir: Path) -> Path:
    path = bin_dir / arm64.QEMU
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _stamp(host: dict[str, str] | None = None) -> None:
    """What a finished set-up leaves: the stamp, with the versions it was made for."""
    versions = host if host is not None else arm64.host_versions()
    arm64.stamp_path().parent.mkdir(parents=True, exist_ok=True)
    arm64.stamp_path().write_text(json.dumps({"format": arm64.STAMP_FORMAT, "host": versions, "installed": versions,
                                              "python": "3.11"}))


def test_without_qemu_the_reason_says_to_install_it_then_set_up(host: Path) -> None:
    assert arm64.state() == ("qemu-aarch64-static is not installed; "
                             "fix: apt-get install qemu-user-static, then harness setup arm64")


def test_without_the_set_up_every_arm_profile_is_skipped_with_the_command(host: Path, profiles: dict) -> None:
    _fake_qemu(host)
    for name in ARM_PROFILES:
        reason = missing_requirements(profiles[name])
        assert reason.startswith("the aarch64 Python is not set up in "), reason
        assert reason.endswith("; fix: harness setup arm64"), reason
        with pytest.raises(LauncherUnavailable, match="fix: harness setup arm64"):
            launch_for(profiles[name])


def test_a_partial_set_up_without_a_valid_stamp_is_not_set_up(host: Path) -> None:
    _fake_qemu(host)
    arm64.stamp_path().parent.mkdir(parents=True)
    arm64.stamp_path().write_text('{"format": 1, "host"')  # killed while writing: the stamp is atomic, but say so
    assert "is not set up" in arm64.state()


def test_a_set_up_for_other_versions_is_refused_naming_both(host: Path) -> None:
    _fake_qemu(host)
    _stamp({"numpy": "1.0.0", "onnxruntime": "1.0.0"})
    why = arm64.state()
    assert "was set up for numpy 1.0.0, onnxruntime 1.0.0, the host has numpy " in why, why
    assert why.endswith("fix: harness setup arm64")


def test_once_set_up_the_worker_is_the_aarch64_python_under_qemu_with_the_profile_cpu(host: Path, profiles: dict) -> None:
    qemu = _fake_qemu(host)
    _stamp()
    assert arm64.state() == ""
    for name, cpu in (("arm64-neoverse-n1-emulated", "neoverse-n1"), ("arm64-cortex-a57-emulated", "cortex-a57")):
        launch = launch_for(profiles[name])
        root = arm64.folder() / "cpus" / cpu
        argv = launch.argv({"name": name})
        assert argv[:6] == [str(qemu), "-L", str(root), "-cpu", cpu, str(root / "usr/bin/python3.11")]
        assert argv[6:8] == ["-m", "harness.worker"]
        assert launch.env == {"PYTHONNOUSERSITE": "1"}  # the host's x86 user site stays out of the aarch64 Python


def test_every_cpu_the_schema_accepts_has_its_cpuinfo() -> None:
    assert set(arm64.CORES) == set(EMULATED_CPUS)
    n1, a57 = arm64.cpuinfo("neoverse-n1"), arm64.cpuinfo("cortex-a57")
    assert "CPU part\t: 0xd0c" in n1 and " asimddp" in n1  # dot product: the kernels Graviton2 takes
    assert "CPU part\t: 0xd07" in a57 and "asimddp" not in a57 and " asimd " in a57


def test_setup_refuses_without_qemu_naming_the_package(host: Path) -> None:
    with pytest.raises(arm64.SetupError) as caught:
        arm64.setup(say=lambda line: None)
    assert "qemu-aarch64-static is not installed" in caught.value.one_line()
    assert "apt-get install qemu-user-static (root), then run harness setup arm64" in caught.value.one_line()


def test_setup_of_a_complete_cache_does_nothing_and_says_so(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(host)
    _stamp()
    monkeypatch.setattr(arm64, "_run", lambda *a, **k: pytest.fail("a complete set-up ran a step"))
    said: list[str] = []
    assert arm64.setup(say=said.append) == arm64.folder()
    assert len(said) == 1 and said[0].startswith("arm64: already set up (python 3.11, numpy "), said


def test_a_failed_step_leaves_no_stamp_and_the_next_setup_starts_over(host: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_qemu(host)
    _stamp({"numpy": "1.0.0", "onnxruntime": "1.0.0"})  # an old set-up, to be replaced
    stale = arm64.sysroot() / "stale-file"
    stale.parent.mkdir(parents=True)
    stale.write_text("from the old set-up")

    def unpack(work: Path, root: Path, say) -> dict[str, str]:
        root.mkdir(parents=True)
        (root / "unpacked").write_text("")
        return {"python3.11-minimal": "3.11.2"}

    def fail(*args, **kwargs):
        raise arm64.SetupError("arm64 setup: pip install onnxruntime==x for aarch64 failed (exit 1): no network")
    monkeypatch.setattr(arm64, "_install_debian", unpack)
    monkeypatch.setattr(arm64, "_install_wheels", fail)
    with pytest.raises(arm64.SetupError, match="no network"):
        arm64.setup(say=lambda line: None)
    assert not arm64.stamp_path().exists() and not stale.exists()
    assert "is not set up" in arm64.state()
    monkeypatch.setattr(arm64, "_install_wheels", lambda wanted, site, say: dict(wanted))
    said: list[str] = []
    arm64.setup(say=said.append)
    stamp = json.loads(arm64.stamp_path().read_text())
    assert stamp["host"] == arm64.host_versions() and stamp["debian"] == {"python3.11-minimal": "3.11.2"}
    assert (arm64.folder() / "cpus" / "neoverse-n1" / "proc" / "cpuinfo").read_text() == arm64.cpuinfo("neoverse-n1")
    assert (arm64.folder() / "cpus" / "cortex-a57" / "unpacked").resolve() == arm64.sysroot() / "unpacked"
    assert arm64.state() == "" and said[-1].startswith("arm64: set up in ")


def test_a_bundled_case_runs_on_the_emulated_neoverse_n1(tmp_path: Path, profiles: dict) -> None:
    """End to end, where the set-up exists (harness setup arm64): the worker says it is the aarch64 Python with the
    host's onnxruntime, and the verdict carries each output's max ULP."""
    why = arm64.state()
    if why:
        pytest.skip(why)
    name = "arm64-neoverse-n1-emulated"
    record = api.run_matrix([str(REPO / "reference_outputs" / "mlp")], [name],
                            api.MatrixOptions(out=tmp_path / "out", numerics_only=True))
    [cell] = record.cells
    assert cell.verdict == R.PASS, (cell.verdict, cell.detail, cell.error)
    worker = record.profiles[name]["worker"]
    assert worker["executable"].startswith(str(arm64.folder() / "cpus" / "neoverse-n1"))
    assert worker["versions"]["onnxruntime"] == arm64.host_versions()["onnxruntime"]
    assert record.profiles[name]["emulated"] == "qemu-aarch64 neoverse-n1"
    ulps = [o["comparison"]["metrics"]["max_ulp"] for o in cell.outputs]
    assert ulps and all(isinstance(u, int) and u >= 0 for u in ulps)
    assert not cell.latency.get("stats")


def test_cpu_override_keeps_the_rest_of_the_profile(profiles: dict) -> None:
    """The int8 variant is cpu-int8's transform and gates, run emulated."""
    int8, base = profiles["arm64-neoverse-n1-int8-emulated"], profiles["cpu-int8"]
    assert (int8.transform, int8.precision_options, int8.tolerance) == (base.transform, base.precision_options,
                                                                        base.tolerance)
    assert int8.emulated_cpu == "neoverse-n1" and not int8.latency and int8.budgets is None
    assert replace(int8, emulated_cpu=None).emulation == ""
