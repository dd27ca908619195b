"""harness/commands.py: a profile named with --profile whose plugin package is missing is bad input."""

from pathlib import Path

PLUGIN_PROFILE = '''name = "plugin-missing"
[ep]
name = "OpenVINOExecutionProvider"
plugin = "onnxruntime_ep_openvino"
[requires]
packages = ["onnxruntime_ep_no_such_plugin"]
install = 'pip install -e ".[openvino]"'
'''


def _setup(tmp_path: Path, make_case, profiles_dir: Path) -> Path:
    (profiles_dir / "plugin-missing.toml").write_text(PLUGIN_PROFILE)
    return make_case(tmp_path / "cases" / "tiny")


def test_a_named_profile_without_its_plugin_is_one_line_exit_2(tmp_path, make_case, profiles_dir, run_cli,
                                                               assert_bad_input):
    case = _setup(tmp_path, make_case, profiles_dir)
    proc = run_cli("run", case, "--profile", "plugin-missing", "--profiles-dir", profiles_dir,
                   "--numerics-only", "--out", tmp_path / "results")
    line = assert_bad_input(proc)
    assert "'plugin-missing' cannot run" in line and "onnxruntime_ep_no_such_plugin" in line
    assert 'pip install -e ".[openvino]"' in line


def test_the_same_profile_in_a_default_run_is_skipped_with_the_fix(tmp_path, make_case, profiles_dir, run_cli):
    case = _setup(tmp_path, make_case, profiles_dir)
    proc = run_cli("run", case, "--profiles-dir", profiles_dir, "--numerics-only", "--out", tmp_path / "results")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert 'plugin-missing: SKIPPED - missing package(s) onnxruntime_ep_no_such_plugin; fix: pip install -e ".[openvino]"' \
        in proc.stdout


def test_a_named_cuda_profile_without_a_cuda_build_is_one_line_exit_2(tmp_path, make_case, run_cli,
                                                                      assert_bad_input):
    import onnxruntime
    import pytest
    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA EP: the profile can run here")
    repo = Path(__file__).resolve().parents[1]
    line = assert_bad_input(run_cli("run", make_case(tmp_path / "cases" / "tiny"), "--profile", "cuda",
                                    "--profiles-dir", repo / "device_profiles", "--numerics-only",
                                    "--out", tmp_path / "results"))
    assert "'cuda' cannot run: CUDAExecutionProvider is not in this onnxruntime build" in line
    assert "fix: pip install onnxruntime-gpu" in line
