"""The built-in profiles are package data: found from any working directory, and inside the wheel and the sdist,
while device_profiles/ stays the one place they are edited."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

from harness.profiles import registry

REPO = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p.name for p in (REPO / "device_profiles").glob("*.toml"))


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != registry.ENV_VAR}


def test_the_builtin_folder_holds_the_repo_profiles() -> None:
    assert (registry.BUILTIN_DIR / "cpu.toml").is_file()
    assert sorted(p.name for p in registry.BUILTIN_DIR.glob("*.toml")) == SHIPPED


def test_builtins_load_from_an_unrelated_folder(tmp_path: Path) -> None:
    code = ("import json; from harness.profiles import registry; "
            "print(json.dumps({n: p.origin for n, p in registry.load_all().items()}))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    origins = json.loads(proc.stdout)
    assert sorted(f"{name}.toml" for name in origins) == SHIPPED
    assert list(origins)[0] == "cpu" and set(origins.values()) == {"built-in"}


def test_the_wheel_and_the_sdist_carry_real_copies(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "device_profiles", src / "device_profiles")
    shutil.copytree(REPO / "harness", src / "harness", symlinks=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.tmp"))
    out = tmp_path / "dist"
    code = f"from setuptools import build_meta as b; b.build_wheel({str(out)!r}); b.build_sdist({str(out)!r})"
    proc = subprocess.run([sys.executable, "-c", code], cwd=src, env=_env(), capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    with zipfile.ZipFile(next(out.glob("*.whl"))) as wheel:
        in_wheel = sorted(n.rsplit("/", 1)[1] for n in wheel.namelist() if n.startswith("harness/profiles/builtin/"))
    with tarfile.open(next(out.glob("*.tar.gz"))) as sdist:
        members = [m for m in sdist.getmembers() if "/harness/profiles/builtin/" in m.name]
    assert in_wheel == SHIPPED
    assert sorted(m.name.rsplit("/", 1)[1] for m in members) == SHIPPED and all(m.isfile() for m in members)
