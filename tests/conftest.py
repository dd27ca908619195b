"""Shared fixtures: tiny ONNX cases in the test-data layout, a CLI runner, a scratch profiles folder.

Helpers are handed out as fixtures (tests run with --import-mode=importlib, so conftest is not importable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

REPO = Path(__file__).resolve().parents[1]
FEATURES, HIDDEN = 4, 3


def tiny_model(*, batch: int | str = "N", out_name: str = "y") -> onnx.ModelProto:
    """y = Relu(x @ W + b), x: float32[batch, 4], y: float32[batch, 3]; opset 17, IR 9."""
    rng = np.random.default_rng(1234)
    weight = rng.standard_normal((FEATURES, HIDDEN)).astype(np.float32)
    bias = rng.standard_normal(HIDDEN).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]),
         helper.make_node("Add", ["xw", "b"], ["pre"]),
         helper.make_node("Relu", ["pre"], [out_name])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, FEATURES])],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, [batch, HIDDEN])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def tiny_reference(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    weight, bias = (numpy_helper.to_array(t) for t in model.graph.initializer)
    return np.maximum(x @ weight + bias, 0).astype(np.float32)


def write_tensor(path: Path, name: str, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(numpy_helper.from_array(np.asarray(array), name=name).SerializeToString())


def build_case(folder: Path, *, sets: int = 1, batch: int = 2, goldens: bool = True) -> Path:
    """A case folder in the ONNX test-data layout, goldens computed by numpy (no case.json)."""
    folder.mkdir(parents=True, exist_ok=True)
    model = tiny_model()
    onnx.save(model, str(folder / "model.onnx"))
    rng = np.random.default_rng(7)
    for k in range(sets):
        x = rng.uniform(-1, 1, (batch, FEATURES)).astype(np.float32)
        write_tensor(folder / f"test_data_set_{k}" / "input_0.pb", "x", x)
        if goldens:
            write_tensor(folder / f"test_data_set_{k}" / "output_0.pb", "y", tiny_reference(model, x))
    return folder


@pytest.fixture
def tiny_case(tmp_path: Path) -> Path:
    return build_case(tmp_path / "tiny")


@pytest.fixture
def make_case() -> Callable[..., Path]:
    return build_case


@pytest.fixture
def make_model() -> Callable[..., onnx.ModelProto]:
    return tiny_model


@pytest.fixture
def reference() -> Callable[[onnx.ModelProto, np.ndarray], np.ndarray]:
    return tiny_reference


@pytest.fixture
def save_tensor() -> Callable[[Path, str, np.ndarray], None]:
    return write_tensor


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("harness-cache")


@pytest.fixture
def run_cli(cache_dir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """Run ``python -m harness ARGS`` in a subprocess (default cwd: the repository root)."""
    def run(*args: str | Path, cwd: Path = REPO, timeout: float = 120) -> subprocess.CompletedProcess:
        env = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir), "COLUMNS": "200", "NO_COLOR": "1"}
        return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=timeout)
    return run


@pytest.fixture
def profiles_dir(tmp_path: Path) -> Path:
    """A scratch profiles folder holding a copy of the repository's cpu.toml."""
    folder = tmp_path / "profiles"
    folder.mkdir()
    shutil.copy(REPO / "device_profiles" / "cpu.toml", folder / "cpu.toml")
    return folder


@pytest.fixture
def run_case(run_cli, profiles_dir: Path, tmp_path: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``harness run`` on the cpu profile, numerics only, results and root in tmp."""
    def run(*args: str | Path) -> subprocess.CompletedProcess:
        return run_cli("run", *args, "--profile", "cpu", "--numerics-only", "--profiles-dir", profiles_dir,
                       "--root", tmp_path / "no-root", "--out", tmp_path / "results")
    return run


@pytest.fixture
def assert_bad_input() -> Callable[[subprocess.CompletedProcess], str]:
    """Exit 2, exactly one stderr line starting 'harness: error:', no traceback; returns that line."""
    def check(proc: subprocess.CompletedProcess) -> str:
        __tracebackhide__ = True
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2, f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr
        assert len(lines) == 1, f"expected one stderr line, got:\n{proc.stderr}"
        assert lines[0].startswith("harness: error:"), lines[0]
        return lines[0]
    return check


# ---- appended: fixtures for the run / pool / fault-injection tests ------------------------------------------------

FAULT_ENV = "HARNESS_TEST_FAULT"


def write_profile(folder: Path, name: str, *, env: dict[str, str] | None = None, extra: str = "") -> Path:
    """A CPU-EP profile named ``name``; ``env`` goes into its workers' environment (e.g. a test fault)."""
    folder.mkdir(parents=True, exist_ok=True)
    pairs = ", ".join(f'{k} = "{v}"' for k, v in (env or {}).items())
    text = (f'name = "{name}"\n[ep]\nname = "CPUExecutionProvider"\nenv = {{ {pairs} }}\n{extra}\n'
            f'[tolerance]\nwhy = "test profile"\n')
    path = folder / f"{name}.toml"
    path.write_text(text)
    return path


def perturb_golden(case: Path, delta: float = 1.0) -> Path:
    """Shift test_data_set_0's golden by ``delta`` so the case FAILs on any profile."""
    path = case / "test_data_set_0" / "output_0.pb"
    golden = numpy_helper.to_array(onnx.load_tensor(str(path)))
    write_tensor(path, "y", golden + np.float32(delta))
    return case


@pytest.fixture(scope="session")
def make_profile() -> Callable[..., Path]:
    return write_profile


@pytest.fixture(scope="session")
def break_golden() -> Callable[..., Path]:
    return perturb_golden


@pytest.fixture(scope="session")
def case_builder() -> Callable[..., Path]:
    """``make_case`` for module- and session-scoped fixtures."""
    return build_case


@pytest.fixture(scope="session")
def cli(cache_dir: Path) -> Callable[..., subprocess.CompletedProcess]:
    """``run_cli`` for module- and session-scoped fixtures."""
    def run(*args: str | Path, timeout: float = 120, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        full = {**os.environ, "HARNESS_CACHE_DIR": str(cache_dir), "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
        return subprocess.run([sys.executable, "-m", "harness", *map(str, args)], cwd=REPO, env=full,
                              capture_output=True, text=True, timeout=timeout)
    return run


def only_record(out: Path) -> dict:
    """The record.json of the single run under ``out``."""
    import json
    [path] = sorted(out.glob("*/record.json"))
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def read_record() -> Callable[[Path], dict]:
    return only_record
