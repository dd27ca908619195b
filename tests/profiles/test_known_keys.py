"""The option and config key lists (harness/profiles/known_keys.py) name only what onnxruntime really reads,
and a profile naming anything else is refused by the schema in one line."""

from __future__ import annotations

import importlib
from pathlib import Path

import onnxruntime
import pytest

from harness.errors import ProfileError
from harness.profiles.known_keys import EP_OPTIONS, KNOWN_EPS, REFERENCE_EP, SESSION_CONFIG_KEYS
from harness.profiles.schema import MAX_THREADS, load_profile
from harness.worker import session as worker_session


def _library_bytes(folder: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(folder.glob("*.so*")) if p.is_file())


def test_every_session_config_key_occurs_in_the_installed_onnxruntime() -> None:
    blob = _library_bytes(Path(onnxruntime.__file__).parent / "capi")
    assert [key for key in SESSION_CONFIG_KEYS if key.encode() not in blob] == []


@pytest.mark.parametrize("ep, module", [("WebGpuExecutionProvider", "onnxruntime_ep_webgpu"),
                                        ("OpenVINOExecutionProvider", "onnxruntime_ep_openvino")])
def test_every_plugin_option_occurs_in_the_plugin_library(ep: str, module: str) -> None:
    plugin = pytest.importorskip(module)
    blob = _library_bytes(Path(plugin.get_library_path()).parent)
    assert [key for key in EP_OPTIONS[ep] if key.encode() not in blob] == []


def test_every_known_ep_has_an_option_list_and_the_worker_agrees_on_the_reference_name() -> None:
    assert set(EP_OPTIONS) == set(KNOWN_EPS)
    assert worker_session.REFERENCE_EP == REFERENCE_EP


def _profile(tmp_path: Path, text: str):
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n' + text)
    return load_profile(path)


def _refused(tmp_path: Path, text: str) -> str:
    with pytest.raises(ProfileError) as info:
        _profile(tmp_path, text)
    line = info.value.one_line()
    assert "\n" not in line and "p.toml" in line
    return line


def test_an_unknown_ep_option_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    line = _refused(tmp_path, '[ep]\nname = "CUDAExecutionProvider"\noptions = { devce_id = 0 }\n')
    assert "[ep.options] 'devce_id' is not an option of CUDAExecutionProvider (did you mean 'device_id'?)" in line
    assert "Note: known keys: device_id," in line


def test_the_cpu_ep_takes_no_options(tmp_path: Path) -> None:
    line = _refused(tmp_path, '[ep]\noptions = { use_arena = 1 }\n')
    assert "'use_arena' is not an option of CPUExecutionProvider" in line
    assert "CPUExecutionProvider takes no [ep.options]" in line


def test_an_unknown_session_config_key_is_refused_with_a_did_you_mean(tmp_path: Path) -> None:
    line = _refused(tmp_path, '[session.config]\n"session.disable_prepack" = "1"\n')
    assert "[session.config] 'session.disable_prepack' is not an onnxruntime session config key" in line
    assert "did you mean 'session.disable_prepacking'" in line and "known keys: session.disable_prepacking" in line


def test_known_options_and_config_keys_load(tmp_path: Path) -> None:
    profile = _profile(tmp_path, '[ep]\nname = "WebGpuExecutionProvider"\nplugin = "onnxruntime_ep_webgpu"\n'
                                 'options = { preferredLayout = "NHWC" }\n'
                                 '[session.config]\n"session.intra_op.allow_spinning" = "0"\n')
    assert profile.ep_options == {"preferredLayout": "NHWC"}


@pytest.mark.parametrize("key", ["intra_op_threads", "inter_op_threads"])
def test_absurd_thread_counts_are_refused(tmp_path: Path, key: str) -> None:
    line = _refused(tmp_path, f"[session]\n{key} = 1000\n")
    assert f"session.{key} = 1000 is more than {MAX_THREADS} threads" in line


def test_more_threads_than_host_cores_is_accepted_and_noted(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1})
    profile = _profile(tmp_path, f"[session]\nintra_op_threads = {MAX_THREADS}\n")
    assert profile.session["intra_op_threads"] == MAX_THREADS
    assert len(profile.notes) == 1 and f"intra_op_threads = {MAX_THREADS} is more than the 2 cores" in profile.notes[0]
    assert _profile(tmp_path, "[session]\nintra_op_threads = 2\n").notes == ()


def test_the_reference_evaluator_is_a_known_ep(tmp_path: Path) -> None:
    profile = _profile(tmp_path, f'[ep]\nname = "{REFERENCE_EP}"\nenv = {{ OMP_NUM_THREADS = "1" }}\n'
                                 "[constraints]\nmemory_limit_mb = 2048\n")
    assert profile.ep == REFERENCE_EP and profile.worker_spec()["ep"] == REFERENCE_EP


@pytest.mark.parametrize("text, named", [
    ("[session]\nintra_op_threads = 2\n", "session.intra_op_threads"),
    ('[session]\ngraph_optimization = "all"\n', "session.graph_optimization"),
    ("[ep.options]\ndevice_id = 0\n", "ep.options"),
    ('[ep]\nplugin = "onnxruntime_ep_webgpu"\n', "ep.plugin"),
])
def test_onnxruntime_settings_on_the_reference_evaluator_are_refused(tmp_path: Path, text: str, named: str) -> None:
    body = f'[ep]\nname = "{REFERENCE_EP}"\n' + text.replace("[ep]\n", "")
    line = _refused(tmp_path, body)
    assert f"{REFERENCE_EP} runs onnx.reference, not onnxruntime; {named}" in line and "would be ignored" in line


def test_known_keys_module_is_the_one_ep_list() -> None:
    schema = importlib.import_module("harness.profiles.schema")
    registry = importlib.import_module("harness.profiles.registry")
    assert schema.KNOWN_EPS is KNOWN_EPS and registry.KNOWN_EPS is KNOWN_EPS
