"""Values a profile's types allow but no device has (issue 8 items 1 and 7): refused in one line at load, or,
when only this host cannot give them, accepted with a note."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ProfileError
from harness.profiles.schema import load_profile


def _load(tmp_path: Path, text: str):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n' + text)
    return load_profile(path)


@pytest.mark.parametrize("text, words", [
    ("timeout_s = inf\n", "timeout_s = inf is not valid; expected a positive number"),
    ("timeout_s = 1e300\n", "timeout_s = 1e+300 is more than a week"),
    ("[constraints]\nmemory_limit_mb = 1\n", "constraints.memory_limit_mb = 1 is outside 16..16777216"),
    ("[constraints]\nmemory_limit_mb = 100000000000000\n", "memory_limit_mb = 100000000000000 is outside"),
    ("[constraints]\ncpu_cores = 100000\n", "cpu_cores = 100000 names more than 4096 cores"),
    ("[constraints]\ncpu_cores = [0, 99999]\n", "cpu_cores = [0, 99999] names more than 4096 cores"),
    ("[precision]\ntransform = 'fp16-mixed'\nmixed_rtol = inf\nmixed_atol = 1e-3\n", "mixed_rtol = inf is not valid"),
])
def test_absurd_values_are_refused_in_one_line(tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, text)
    line = info.value.one_line()
    assert words in line and "\n" not in line and "p.toml" in line


def test_cores_this_host_lacks_are_noted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    profile = _load(tmp_path, "[constraints]\ncpu_cores = [1, 7]\n")
    assert profile.cpu_cores == [1, 7]
    assert profile.notes == (f"{tmp_path / 'p.toml'}: constraints.cpu_cores names cores [7] this host does not offer "
                             f"(it offers [0, 1]); the worker is pinned to those it has, and not pinned when it has "
                             f"none",)
    assert "cpu_cores = 8 is more than the 2 cores" in _load(tmp_path, "[constraints]\ncpu_cores = 8\n").notes[0]
    assert _load(tmp_path, "[constraints]\ncpu_cores = [0]\nmemory_limit_mb = 16\n").notes == ()
