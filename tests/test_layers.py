"""The layering contract in pyproject.toml ([tool.importlinter]) holds: data flows one way, and the worker
imports nothing of the harness outside its own package. Run by import-linter, not hoped for."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _lint_imports() -> list[str]:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if exe is None:
        pytest.fail("import-linter is not installed: it is part of the [test] extra (pip install -e '.[test]')")
    return [exe]


def test_every_import_contract_is_kept() -> None:
    proc = subprocess.run(_lint_imports(), cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout or "broken" not in proc.stdout.lower(), proc.stdout[-2000:]
    assert proc.stdout.count("KEPT") == 2, proc.stdout[-2000:]


def test_a_back_import_would_be_caught(tmp_path: Path) -> None:
    """The contract is not vacuous: in a copy of the package, a lower layer importing a higher one breaks it."""
    shutil.copytree(REPO / "harness", tmp_path / "harness", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "harness" / "model" / "_layer_probe.py").write_text("from harness.run import record  # noqa: F401\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    proc = subprocess.run(_lint_imports(), cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode != 0 and "harness.model._layer_probe -> harness.run.record" in proc.stdout, proc.stdout[-2000:]


def test_there_are_no_import_circles() -> None:
    """No module reaches itself through its imports (lazy imports inside functions included)."""
    import grimp
    graph = grimp.build_graph("harness")
    circles = sorted(f"{module} <-> {other}" for module in graph.modules
                     for other in graph.find_modules_directly_imported_by(module)
                     if other != module and graph.chain_exists(importer=other, imported=module))
    assert not circles, circles
