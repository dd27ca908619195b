"""Shared by the set-up tests: a host with an empty cache and a PATH that holds only the fake tools a test writes."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty cache (HARNESS_CACHE_DIR), and a PATH holding only the folder returned."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    return bin_dir
