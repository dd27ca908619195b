"""The profile set (harness/profiles/registry.py): loading a folder, ordering, selecting by name.

Layering, extends and the shipped built-ins have their own tests in test_layers.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.errors import ProfileError, UsageError
from harness.profiles import registry


def _profile(folder: Path, name: str, ep: str = "CPUExecutionProvider", extra: str = "") -> None:
    plugin = "plugin = 'onnxruntime_ep_webgpu'\n" if ep in ("OpenVINOExecutionProvider", "WebGpuExecutionProvider") else ""
    (folder / f"{name}.toml").write_text(f'name = "{name}"\n[ep]\nname = "{ep}"\n{plugin}{extra}')


def _only(folder: Path) -> dict[str, registry.Profile]:
    """The profiles of one folder, as the old one-folder registry loaded them."""
    return registry.load_all([folder], builtin=False, cwd=folder)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    for name, ep in [("tensorrt", "TensorrtExecutionProvider"), ("aaa-cpu", "CPUExecutionProvider"),
                     ("webgpu", "WebGpuExecutionProvider"), ("cpu", "CPUExecutionProvider"),
                     ("cuda", "CUDAExecutionProvider"), ("ov", "OpenVINOExecutionProvider")]:
        _profile(tmp_path, name, ep)
    (tmp_path / "notes.txt").write_text("not a profile")
    return tmp_path


def test_reference_first_then_by_ep_family(folder: Path) -> None:
    assert list(_only(folder)) == ["cpu", "aaa-cpu", "ov", "webgpu", "cuda", "tensorrt"]


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="profile folder .*nope \\(from --profiles-dir\\) not found") as info:
        registry.load_all([tmp_path / "nope"], builtin=False, cwd=tmp_path)
    assert "--profiles-dir" in info.value.one_line()


def test_empty_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"no \*.toml profiles"):
        registry.load_all([tmp_path], builtin=False, cwd=tmp_path)


def test_one_bad_profile_fails_the_load(folder: Path) -> None:
    (folder / "broken.toml").write_text('name = "broken"\n[sesion]\n')
    with pytest.raises(ProfileError, match="broken.toml.*did you mean 'session'"):
        _only(folder)


def test_select_keeps_order_given_and_drops_repeats(folder: Path) -> None:
    profiles = _only(folder)
    assert [p.name for p in registry.select(profiles, ["webgpu", "cpu", "webgpu"])] == ["webgpu", "cpu"]
    assert [p.name for p in registry.select(profiles, None)] == list(profiles)
    assert registry.select(profiles, []) == list(profiles.values())


def test_select_unknown_name_suggests_and_lists(folder: Path) -> None:
    with pytest.raises(UsageError) as info:
        registry.select(_only(folder), ["webgpuu"])
    line = info.value.one_line()
    assert "unknown profile 'webgpuu' (did you mean 'webgpu'?)" in line
    assert "known profiles: cpu, aaa-cpu, ov, webgpu, cuda, tensorrt" in line
