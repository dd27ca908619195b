"""Every shipped device profile (device_profiles/*.toml) loads, explains its tolerance, and pins what matters."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from harness.profiles.registry import load_all
from harness.profiles.schema import load_profile

REPO = Path(__file__).resolve().parents[1]
FOLDER = REPO / "device_profiles"
SHIPPED = sorted(FOLDER.glob("*.toml"))
REQUIRED = {"cpu", "cpu-edge", "cpu-noopt", "cpu-fp16", "cpu-int8", "openvino-cpu-f32", "openvino-cpu-f16",
            "openvino-cpu-bf16", "webgpu", "cuda", "cuda-fp16", "tensorrt"}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_profile_loads_and_explains_its_tolerance(path: Path) -> None:
    profile = load_all(FOLDER)[path.stem]  # through the registry: a profile may extend another
    assert profile.name == path.stem
    assert profile.tolerance.why.strip(), f"{path.name}: [tolerance] why is empty"
    assert profile.description.strip() and profile.target.strip()


def test_the_required_set_exists() -> None:
    assert REQUIRED <= set(load_all(FOLDER)), REQUIRED - {p.stem for p in SHIPPED}


def test_cpu_is_the_reference_and_comes_first() -> None:
    profiles = load_all(FOLDER)
    cpu = profiles["cpu"]
    assert next(iter(profiles)) == "cpu"
    assert cpu.ep == "CPUExecutionProvider" and cpu.transform == "none"


def test_known_failures_of_the_built_ins_name_only_onnx_node_suite_cases() -> None:
    """A built-in profile's known failures are the ONNX node suite's (test_<op>...): a glob that could match a
    user's own case would turn its real failure into an XFAIL."""
    for profile in load_all(FOLDER).values():
        for known in profile.known_failures:
            assert known.case.lstrip("*").startswith("test_") and known.reason.strip(), (profile.name, known)


def test_cpu_edge_is_squeezed() -> None:
    edge = load_profile(FOLDER / "cpu-edge.toml")
    assert edge.session["intra_op_threads"] == 1 and edge.session["cpu_arena"] is False
    assert edge.session["graph_optimization"] == "basic"
    assert edge.cpu_cores == 1 and edge.memory_limit_mb == 512


@pytest.mark.parametrize("hint", ["f32", "f16", "bf16"])
def test_openvino_profiles_pin_the_precision_hint(hint: str) -> None:
    profile = load_profile(FOLDER / f"openvino-cpu-{hint}.toml")
    assert profile.ep == "OpenVINOExecutionProvider" and profile.plugin
    assert profile.precision_hint == hint and profile.worker_spec()["precision_hint"] == hint


@pytest.mark.parametrize("name, transform", [("cpu-fp16", "fp16"), ("cpu-int8", "int8-dynamic"),
                                             ("cuda-fp16", "fp16"), ("cpu-noopt", "none")])
def test_transform_profiles(name: str, transform: str) -> None:
    assert load_profile(FOLDER / f"{name}.toml").transform == transform


def test_gpu_profiles_say_how_to_install() -> None:
    for name in ("cuda", "cuda-fp16", "tensorrt", "webgpu"):
        assert load_profile(FOLDER / f"{name}.toml").install_hint, name


def test_profiles_command_skips_cuda_and_tensorrt_with_a_reason(run_cli) -> None:
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this host's onnxruntime has the CUDA EP, so cuda/tensorrt may be available")
    proc = run_cli("profiles")
    assert proc.returncode == 0, proc.stderr
    lines = {line.split()[0]: line for line in proc.stdout.splitlines() if line.strip()}
    assert set(lines) == {p.stem for p in SHIPPED}
    for name in ("cuda", "cuda-fp16", "tensorrt"):
        assert "skipped: " in lines[name] and "is not in this onnxruntime build" in lines[name], lines[name]
    assert " available  [from built-in " in lines["cpu"] and "skipped" not in lines["cpu"]
