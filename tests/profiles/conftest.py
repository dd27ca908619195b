"""Profile tests see only the layers they set up: a HARNESS_PROFILES of the caller's shell must not leak in."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_user_profile_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HARNESS_PROFILES", raising=False)
