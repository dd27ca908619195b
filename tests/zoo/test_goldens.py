"""The committed zoo goldens are reproducible: a fresh export, run on the cpu profile, matches them, and
today's framework outputs still match them (harness export --check)."""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="the export extra (torch==2.13.0) is not installed")
pytest.importorskip("skl2onnx", reason="the export extra (skl2onnx) is not installed")

REPO = Path(__file__).resolve().parents[2]


def _harness(*args: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**__import__("os").environ, "HARNESS_CACHE_DIR": str(tmp_path / "cache")}
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=600)


def test_reexport_reproduces_every_committed_golden(tmp_path):
    proc = _harness("export", "--check", "--profiles-dir", str(REPO / "device_profiles"),
                    "--root", str(REPO / "reference_outputs"), cwd=tmp_path, tmp_path=tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    cases = sorted(p.name for p in (REPO / "reference_outputs").iterdir() if (p / "model.onnx").is_file())
    assert len(cases) >= 8
    assert f"{len(cases)} cells: {len(cases)} PASS" in proc.stdout


def test_export_refuses_to_overwrite_without_force(tmp_path):
    root = tmp_path / "zoo"
    first = _harness("export", "mlp", "--root", str(root), cwd=tmp_path, tmp_path=tmp_path)
    assert first.returncode == 0, first.stderr
    golden = root / "mlp" / "test_data_set_0" / "output_0.pb"
    before = golden.read_bytes()
    again = _harness("export", "mlp", "--root", str(root), cwd=tmp_path, tmp_path=tmp_path)
    assert again.returncode == 2
    assert again.stderr.startswith("harness: error:") and "--force" in again.stderr
    assert "Traceback" not in again.stderr
    assert golden.read_bytes() == before


def test_unknown_zoo_name_suggests_a_close_one(tmp_path):
    proc = _harness("export", "mpl", "--root", str(tmp_path / "zoo"), cwd=tmp_path, tmp_path=tmp_path)
    assert proc.returncode == 2
    assert "did you mean 'mlp'" in proc.stderr
