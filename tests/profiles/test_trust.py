"""Profiles are code (harness/profiles/trust.py): the plugin a profile names must be an EP package, and its
environment tables may not steer the harness or the loader."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from harness.errors import ProfileError
from harness.profiles import trust
from harness.profiles.schema import load_profile


def _load(tmp_path: Path, text: str):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n' + text)
    return load_profile(path)


def _refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, text)
    line = info.value.one_line()
    assert "\n" not in line and str(tmp_path / "p.toml") in line
    return line


def _plugin(name: str) -> str:
    return f'[ep]\nname = "OpenVINOExecutionProvider"\nplugin = "{name}"\n'


@pytest.mark.parametrize("module", ["os", "subprocess", "harness.worker.main", "surely_not_a_module_xyz", ""])
def test_a_plugin_that_is_not_an_ep_package_is_refused(tmp_path: Path, module: str) -> None:
    line = _refused(tmp_path, _plugin(module))
    assert f"[ep] plugin = {module!r} is not an EP package the harness knows" in line
    assert "allowed: onnxruntime_ep_openvino, onnxruntime_ep_webgpu" in line
    assert trust.ENTRY_POINT_GROUP in line


@pytest.mark.parametrize("module", trust.KNOWN_PLUGINS)
def test_the_known_ep_packages_are_allowed(tmp_path: Path, module: str) -> None:
    assert _load(tmp_path, _plugin(module)).plugin == module


class _EntryPoint:
    def __init__(self, value: str) -> None:
        self.value = value


def test_a_package_declaring_the_entry_point_group_is_allowed(tmp_path: Path, monkeypatch) -> None:
    def entry_points(group: str):
        return [_EntryPoint("acme_ep:plugin_api")] if group == trust.ENTRY_POINT_GROUP else []
    monkeypatch.setattr(metadata, "entry_points", entry_points)
    assert trust.allowed_plugins() == (*trust.KNOWN_PLUGINS, "acme_ep")
    assert _load(tmp_path, _plugin("acme_ep")).plugin == "acme_ep"
    assert "allowed: onnxruntime_ep_openvino, onnxruntime_ep_webgpu, acme_ep" in _refused(tmp_path, _plugin("acme"))


@pytest.mark.parametrize("table", ["ep.env", "worker.env"])
@pytest.mark.parametrize("name", ["HARNESS_TEST_FAULT", "HARNESS_PROFILES", "harness_cache_dir", "LD_PRELOAD",
                                  "LD_LIBRARY_PATH", "DYLD_INSERT_LIBRARIES", "PYTHONPATH", "PYTHONHOME",
                                  "PYTHONSTARTUP"])
def test_harness_and_loader_variables_are_refused(tmp_path: Path, table: str, name: str) -> None:
    section, _ = table.split(".")
    line = _refused(tmp_path, f'[{section}.env]\n{name} = "x"\n')
    assert f"[{table}] sets {name}, which a profile may not set" in line and "Note: set it in your shell" in line


def test_ordinary_variables_are_set(tmp_path: Path) -> None:
    profile = _load(tmp_path, '[ep.env]\nORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER = "1"\n[worker.env]\nOMP_NUM_THREADS = "1"\n')
    assert profile.ep_env == {"ORT_WEBGPU_EP_ALLOW_SOFTWARE_ADAPTER": "1"}
    assert profile.launch_env == {"OMP_NUM_THREADS": "1"}
