"""Device profile schema (harness/profiles/schema.py): every table parses, every mistake is refused by name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from harness.errors import ProfileError
from harness.profiles.schema import OPT_LEVELS, load_profile

FULL = """
name = "full"
description = "every table"
target = "an OpenVINO CPU"
timeout_s = 42.5

[ep]
name = "OpenVINOExecutionProvider"
plugin = "onnxruntime_ep_openvino"
options = { num_streams = 2, cache_dir = "c" }
device_type = "CPU"
device_metadata = { ov_device = "CPU" }
env = { SOME_VAR = "1" }
precision_hint = "f16"

[session]
intra_op_threads = 2
inter_op_threads = 1
graph_optimization = "extended"
cpu_arena = false
memory_pattern = false
execution_mode = "parallel"
strict_placement = true
config = { "session.use_env_allocators" = "1" }

[precision]
transform = "none"
keep_io_types = false

[constraints]
cpu_cores = 4
memory_limit_mb = 1024

[tolerance]
why = "because"
min_cosine = 0.99

[tolerance.dtype.float32]
rtol = 1e-3
atol = 1e-4

[[tolerance.override]]
case = "class*"
output = "probs"
min_topk_agreement = 1.0
topk = 1

[budgets]
p95_ms = 20
peak_mb = 256

[[known_failures]]
case = "gru*"
output = "h"
reason = "GRU linear_before_reset unsupported"

[requires]
packages = ["some_plugin_module"]
install = "pip install it"
env = ["SOME_VAR"]
"""

MINIMAL = 'name = "p"\n'


def _write(tmp_path: Path, text: str, stem: str = "p") -> Path:
    path = tmp_path / f"{stem}.toml"
    path.write_text(textwrap.dedent(text))
    return path


def _load(tmp_path: Path, text: str, stem: str = "p"):
    return load_profile(_write(tmp_path, text, stem))


def _refused(tmp_path: Path, text: str, stem: str = "p") -> str:
    with pytest.raises(ProfileError) as info:
        _load(tmp_path, text, stem)
    return info.value.one_line()


# ---- every field group parses ---------------------------------------------------------------------------------

def test_identity_and_ep(tmp_path: Path) -> None:
    p = _load(tmp_path, FULL, "full")
    assert (p.name, p.description, p.target, p.timeout_s) == ("full", "every table", "an OpenVINO CPU", 42.5)
    assert p.source == tmp_path / "full.toml"
    assert p.ep == "OpenVINOExecutionProvider" and p.plugin == "onnxruntime_ep_openvino"
    assert p.ep_options == {"num_streams": "2", "cache_dir": "c"}  # stringified for onnxruntime
    assert p.device_type == "CPU" and p.device_metadata == {"ov_device": "CPU"}
    assert p.ep_env == {"SOME_VAR": "1"} and p.precision_hint == "f16"


def test_session_precision_constraints(tmp_path: Path) -> None:
    p = _load(tmp_path, FULL, "full")
    assert p.session == {"intra_op_threads": 2, "inter_op_threads": 1, "graph_optimization": "extended",
                         "cpu_arena": False, "memory_pattern": False, "execution_mode": "parallel",
                         "strict_placement": True, "config": {"session.use_env_allocators": "1"}}
    assert p.strict_placement is True
    assert p.transform == "none" and p.keep_io_types is False
    assert p.cpu_cores == 4 and p.memory_limit_mb == 1024


def test_tolerance_layers(tmp_path: Path) -> None:
    tol = _load(tmp_path, FULL, "full").tolerance
    assert tol.why == "because"
    assert tol.everything is not None and tol.everything.to_dict() == {"min_cosine": 0.99}
    assert tol.per_dtype["float32"].to_dict() == {"rtol": 1e-3, "atol": 1e-4}
    [override] = tol.overrides
    assert (override.case, override.output) == ("class*", "probs")
    assert override.override.to_dict() == {"min_topk_agreement": 1.0, "topk": 1}
    assert override.matches("classifier", "probs") and not override.matches("classifier", "logits")
    assert not override.matches("mlp", "probs")


def test_budgets_known_failures_requires(tmp_path: Path) -> None:
    p = _load(tmp_path, FULL, "full")
    assert p.budgets is not None and p.budgets.to_dict() == {"p95_ms": 20.0, "peak_mb": 256.0}
    [known] = p.known_failures
    assert (known.case, known.output, known.reason) == ("gru*", "h", "GRU linear_before_reset unsupported")
    assert p.known_failure("gru_small") is known and p.known_failure("mlp") is None
    assert p.requires_packages == ("some_plugin_module",) and p.requires_env == ("SOME_VAR",)
    assert p.install_hint == "pip install it"


def test_worker_spec_carries_what_the_worker_needs(tmp_path: Path) -> None:
    spec = _load(tmp_path, FULL, "full").worker_spec()
    assert spec["ep"] == "OpenVINOExecutionProvider" and spec["plugin"] == "onnxruntime_ep_openvino"
    assert spec["precision_hint"] == "f16" and spec["env"] == {"SOME_VAR": "1"}
    assert spec["cpu_cores"] == 4 and spec["memory_limit_mb"] == 1024
    assert spec["session"]["strict_placement"] is True


def test_defaults_of_a_minimal_profile(tmp_path: Path) -> None:
    p = _load(tmp_path, MINIMAL)
    assert p.ep == "CPUExecutionProvider" and p.timeout_s == 120.0 and p.transform == "none"
    assert p.keep_io_types is True and p.budgets is None and p.known_failures == ()
    assert p.cpu_cores is None and p.memory_limit_mb is None and not p.strict_placement
    assert p.tolerance.everything is None and p.tolerance.why == ""


def test_name_defaults_to_the_file_stem(tmp_path: Path) -> None:
    assert _load(tmp_path, "[ep]\nname = 'CPUExecutionProvider'\n", "stemmy").name == "stemmy"


def test_cpu_cores_may_be_a_list_of_core_ids(tmp_path: Path) -> None:
    assert _load(tmp_path, MINIMAL + "[constraints]\ncpu_cores = [0, 2]\n").cpu_cores == [0, 2]


# ---- unknown keys: refused with a did-you-mean in every table -------------------------------------------------

@pytest.mark.parametrize("text, words", [
    ('name = "p"\ndescripton = "x"\n', ["unknown key 'descripton'", "did you mean 'description'"]),
    (MINIMAL + "[ep]\ndevce_type = 'CPU'\n", ["[ep]", "'devce_type'", "did you mean 'device_type'"]),
    (MINIMAL + "[session]\nintra_op_thread = 1\n", ["[session]", "did you mean 'intra_op_threads'"]),
    (MINIMAL + "[precision]\ntransfrom = 'fp16'\n", ["[precision]", "did you mean 'transform'"]),
    (MINIMAL + "[constraints]\nmemory_limit = 5\n", ["[constraints]", "did you mean 'memory_limit_mb'"]),
    (MINIMAL + "[requires]\npackage = ['x']\n", ["[requires]", "did you mean 'packages'"]),
    (MINIMAL + "[tolerance]\nrtoll = 1\natol = 1\n", ["[tolerance]", "'rtoll'", "did you mean 'rtol'"]),
    (MINIMAL + "[tolerance.dtype.float32]\nrtol = 1\natl = 1\n",
     ["[tolerance.dtype.float32]", "did you mean 'atol'"]),
    (MINIMAL + "[[tolerance.override]]\ncase = 'x'\nmin_cosin = 0.9\n",
     ["[[tolerance.override]] #1", "did you mean 'min_cosine'"]),
    (MINIMAL + "[budgets]\np95_msec = 3\n", ["[budgets]", "did you mean 'p95_ms'"]),
    (MINIMAL + "[[known_failures]]\ncase = 'x'\nreasn = 'y'\n", ["[[known_failures]] #1", "did you mean 'reason'"]),
])
def test_unknown_keys_get_a_suggestion(tmp_path: Path, text: str, words: list[str]) -> None:
    line = _refused(tmp_path, text)
    for word in words:
        assert word in line, line


def test_a_misspelt_dtype_table_is_refused(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[tolerance.dtype.flaot32]\nrtol = 1e-3\natol = 1e-4\n")
    assert "did you mean 'float32'" in line


# ---- bad values ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, words", [
    (MINIMAL + "[session]\nintra_op_threads = -1\n", ["intra_op_threads = -1", "an integer >= 0"]),
    (MINIMAL + "[session]\ninter_op_threads = 1.5\n", ["inter_op_threads = 1.5", "an integer >= 0"]),
    (MINIMAL + "[constraints]\nmemory_limit_mb = 0\n", ["memory_limit_mb = 0", "a positive integer"]),
    (MINIMAL + "[constraints]\ncpu_cores = 0\n", ["cpu_cores = 0", "core"]),
    (MINIMAL + "[constraints]\ncpu_cores = [1, 1]\n", ["lists a core twice"]),
    ('timeout_s = 0\n', ["timeout_s = 0", "a positive number"]),
    (MINIMAL + "[session]\ncpu_arena = 'no'\n", ["cpu_arena", "true or false"]),
    (MINIMAL + "[session]\nexecution_mode = 'async'\n", ["one of sequential, parallel"]),
    (MINIMAL + "[precision]\ntransform = 'int4'\n", ["one of none, fp16, fp16-mixed, int8-dynamic, int8-static"]),
    (MINIMAL + "[ep]\nname = 'OpenVINOExecutionProvider'\nprecision_hint = 'f64'\n", ["one of f32, f16, bf16"]),
    (MINIMAL + "[tolerance]\nrtol = 1e-3\n", ["rtol and atol must be given together"]),
    (MINIMAL + "[tolerance]\nwhy = 3\n", ["why must be a string"]),
    (MINIMAL + "[budgets]\np95_ms = -1\n", ["budget 'p95_ms' must be positive"]),
    ('known_failures = "gru"\n', ["known_failures"]),
])
def test_bad_values_are_refused(tmp_path: Path, text: str, words: list[str]) -> None:
    line = _refused(tmp_path, text)
    for word in words:
        assert word in line, line


def test_unknown_graph_optimization_lists_the_choices(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[session]\ngraph_optimization = 'max'\n")
    assert "graph_optimization = 'max'" in line and "one of " + ", ".join(OPT_LEVELS) in line


def test_unknown_ep_lists_the_known_ones(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[ep]\nname = 'CUDAExecutionProviderr'\n")
    assert "unknown execution provider 'CUDAExecutionProviderr'" in line
    assert "did you mean 'CUDAExecutionProvider'" in line
    assert "known: CPUExecutionProvider, OpenVINOExecutionProvider, WebGpuExecutionProvider" in line


@pytest.mark.parametrize("body", ["case = 'x*'\n", "case = 'x*'\nreason = '   '\n"])
def test_a_known_failure_needs_a_reason(tmp_path: Path, body: str) -> None:
    line = _refused(tmp_path, MINIMAL + "[[known_failures]]\n" + body)
    assert "[[known_failures]] #1: a known failure needs a reason" in line and "Note:" in line


def test_a_known_failure_needs_a_case(tmp_path: Path) -> None:
    assert "needs a case pattern" in _refused(tmp_path, MINIMAL + "[[known_failures]]\nreason = 'r'\n")


# ---- contradictions ------------------------------------------------------------------------------------------

OV = MINIMAL + "[ep]\nname = 'OpenVINOExecutionProvider'\nplugin = 'p'\n"


def test_fp16_transform_contradicts_a_bf16_hint(tmp_path: Path) -> None:
    line = _refused(tmp_path, OV + "precision_hint = 'bf16'\n[precision]\ntransform = 'fp16'\n")
    assert "precision.transform = 'fp16' contradicts ep.precision_hint = 'bf16'" in line


def test_int8_transform_contradicts_a_reduced_precision_hint(tmp_path: Path) -> None:
    line = _refused(tmp_path, OV + "precision_hint = 'f16'\n[precision]\ntransform = 'int8-dynamic'\n")
    assert "int8 transform contradicts ep.precision_hint = 'f16'" in line


def test_a_precision_hint_needs_openvino(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[ep]\nname = 'WebGpuExecutionProvider'\nprecision_hint = 'f16'\n")
    assert "precision_hint is only understood by the OpenVINO EP, not WebGpuExecutionProvider" in line


def test_a_built_in_ep_takes_no_plugin(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[ep]\nname = 'CUDAExecutionProvider'\nplugin = 'x'\n")
    assert "built into onnxruntime; ep.plugin must not be set" in line


def test_more_threads_than_cores_is_refused(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[session]\nintra_op_threads = 4\n[constraints]\ncpu_cores = 2\n")
    assert "intra_op_threads = 4 exceeds constraints.cpu_cores = 2" in line


def test_threads_within_cores_are_fine(tmp_path: Path) -> None:
    assert _load(tmp_path, MINIMAL + "[session]\nintra_op_threads = 2\n[constraints]\ncpu_cores = 2\n").cpu_cores == 2


def test_more_threads_than_listed_cores_is_refused(tmp_path: Path) -> None:
    line = _refused(tmp_path, MINIMAL + "[session]\nintra_op_threads = 4\n[constraints]\ncpu_cores = [0]\n")
    assert "intra_op_threads = 4 exceeds" in line


def test_malformed_toml(tmp_path: Path) -> None:
    line = _refused(tmp_path, 'name = "p"\n[session\n')
    assert "malformed TOML" in line and "Note: fix the syntax" in line


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_bytes(b'name = "\xff"\n')
    with pytest.raises(ProfileError, match="not UTF-8"):
        load_profile(path)


def test_name_must_equal_the_file_stem(tmp_path: Path) -> None:
    line = _refused(tmp_path, 'name = "other"\n', stem="p")
    assert "name = 'other' differs from the file name 'p'" in line and "make them equal" in line


# ---- through the CLI: exit 2, one line --------------------------------------------------------------------------

@pytest.mark.parametrize("text, word", [
    ('name = "cpu"\n[session]\ngraph_optimization = "max"\n', "one of disable, basic, extended, layout, all"),
    ('name = "cpu"\n[ep]\nname = "OpenVINOExecutionProvider"\nplugin = "x"\nprecision_hint = "bf16"\n'
     '[precision]\ntransform = "fp16"\n', "contradicts"),
    ('name = "cpu"\n[session\n', "malformed TOML"),
])
def test_the_cli_refuses_a_bad_profile_in_one_line(text: str, word: str, tmp_path: Path, run_cli,
                                                   assert_bad_input) -> None:
    folder = tmp_path / "profiles"
    folder.mkdir()
    _write(folder, text, "cpu")
    line = assert_bad_input(run_cli("profiles", "--profiles-dir", folder))
    assert word in line and "cpu.toml" in line


def test_an_override_that_is_not_a_table_is_refused(tmp_path) -> None:
    from harness.errors import ProfileError
    from harness.profiles.schema import load_profile
    path = tmp_path / "p.toml"
    path.write_text('name = "p"\n[tolerance]\noverride = ["x"]\n')
    with pytest.raises(ProfileError, match=r"\[\[tolerance.override\]\] #1: must be a table"):
        load_profile(path)
    path.write_text('name = "p"\n[tolerance.dtype]\nfloat32 = 0.1\n')
    with pytest.raises(ProfileError, match="expected a table of tolerance keys"):
        load_profile(path)


def test_worker_and_precision_tables_parse(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(MINIMAL + "[precision]\ntransform = 'int8-static'\ncalibration = 'entropy'\nper_channel = false\n"
                    "[worker]\ncommand = ['env', 'A=1']\nenv = { B = '2' }\n")
    profile = load_profile(path)
    assert profile.precision_options == {"calibration": "entropy", "per_channel": False}
    assert profile.launch_command == ("env", "A=1") and profile.launch_env == {"B": "2"}


@pytest.mark.parametrize("text, words", [
    (MINIMAL + "[precision]\ncalibration = 'minmax'\n", ["need a transform"]),
    (MINIMAL + "[precision]\ntransform = 'int8-static'\ncalibration = 'kl'\n", ["one of minmax, entropy, percentile"]),
    (MINIMAL + "[worker]\nlauncher = 'ssh'\n", ["one of python"]),
])
def test_bad_precision_and_worker_options_are_refused(tmp_path: Path, text: str, words: list[str]) -> None:
    line = _refused(tmp_path, text)
    for word in words:
        assert word in line, line


EMULATED = MINIMAL + "latency = false\n[worker]\nlauncher = 'qemu-aarch64'\ncpu = 'neoverse-n1'\n"


def test_an_emulated_worker_names_its_cpu(tmp_path: Path) -> None:
    profile = _load(tmp_path, EMULATED)
    assert (profile.launcher, profile.emulated_cpu, profile.emulated) == ("qemu-aarch64", "neoverse-n1", True)
    assert profile.emulation == "qemu-aarch64 neoverse-n1"
    plain = _load(tmp_path, MINIMAL)
    assert (plain.emulated_cpu, plain.emulated, plain.emulation) == (None, False, "")


@pytest.mark.parametrize("text, words", [
    (EMULATED.replace("neoverse-n1", "neoverse_n1"), ["[worker]: cpu = 'neoverse_n1' is not valid",
                                                      "expected one of cortex-a35, ", "neoverse-n1"]),
    (EMULATED.replace("neoverse-n1", "max"), ["cpu = 'max' is not valid"]),  # SVE2/SME paths no board has
    (MINIMAL + "[worker]\ncpu = 'cortex-a57'\n", ["worker.cpu = 'cortex-a57' is only understood by launcher = "
                                                   "'qemu-aarch64'", "Note: drop worker.cpu"]),
    (MINIMAL + "latency = false\n[worker]\nlauncher = 'qemu-aarch64'\n", ["needs worker.cpu",
                                                                         "one of cortex-a35, cortex-a53"]),
    (EMULATED.replace("latency = false\n", ""), ["times qemu, not a device", "Note: set latency = false"]),
    (EMULATED + "[budgets]\np50_ms = 5\n", ["[budgets] cannot apply to a worker under emulation"]),
])
def test_bad_emulation_settings_are_refused(tmp_path: Path, text: str, words: list[str]) -> None:
    line = _refused(tmp_path, text)
    for word in words:
        assert word in line, line


def test_fp16_inputs_and_outputs_are_refused(tmp_path: Path) -> None:
    """keep_io_types = false would give a model the float32 inputs and goldens cannot feed or match."""
    line = _refused(tmp_path, MINIMAL + "[precision]\ntransform = 'fp16'\nkeep_io_types = false\n")
    assert "keep_io_types = false is not supported" in line and "Note: drop keep_io_types" in line


def test_latency_is_a_boolean_switch(tmp_path) -> None:
    from harness.errors import ProfileError
    from harness.profiles.schema import load_profile
    good = tmp_path / "quiet.toml"
    good.write_text('name = "quiet"\nlatency = false\n[ep]\nname = "CPUExecutionProvider"\n')
    assert load_profile(good).latency is False
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "bad"\nlatency = "no"\n[ep]\nname = "CPUExecutionProvider"\n')
    with pytest.raises(ProfileError, match="latency"):
        load_profile(bad)


def test_a_known_failure_may_be_strict_and_nothing_else(tmp_path: Path) -> None:
    text = 'name = "p"\n[ep]\nname = "CPUExecutionProvider"\n[[known_failures]]\ncase = "a*"\nreason = "r"\nstrict = true\n'
    [known] = _load(tmp_path, text).known_failures
    assert known.strict is True
    with pytest.raises(ProfileError, match="strict"):
        _load(tmp_path, text.replace("strict = true", 'strict = "yes"'))
