"""harness/model/transforms.py: the transform entry point, its cache, and a quiet terminal."""

from __future__ import annotations

import io
import logging
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import tomllib
from onnx import numpy_helper

from harness.golden.cases import load_case
from harness.model.transform_spec import TransformFailed, TransformNotApplicable, TransformSpec
from harness.model.transforms import captured, transform_model
from harness.profiles.schema import parse_profile

REPO = Path(__file__).resolve().parents[2]
SHA = "f" * 64


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))


def _feeds(scale: float = 1.0) -> list[dict[str, np.ndarray]]:
    return [{"x": (np.random.default_rng(0).standard_normal((2, 4)) * scale).astype(np.float32)}]


def test_spec_from_profile_fields_reads_every_option() -> None:
    spec = TransformSpec.from_profile_fields("fp16-mixed", False, {
        "calibration": "entropy", "per_channel": False, "op_block_list": ["Resize", "TopK"],
        "mixed_rtol": 0.02, "mixed_atol": 1})
    assert spec == TransformSpec("fp16-mixed", keep_io_types=False, calibration="entropy", per_channel=False,
                                 op_block_list=("Resize", "TopK"), mixed_rtol=0.02, mixed_atol=1.0)
    assert TransformSpec.from_profile_fields("fp16", True, {}) == TransformSpec("fp16")


def test_cache_tag_is_stable_and_changes_with_every_field() -> None:
    base = TransformSpec("int8-static")
    variants = [TransformSpec("int8-dynamic"), TransformSpec("int8-static", keep_io_types=False),
                TransformSpec("int8-static", calibration="entropy"), TransformSpec("int8-static", per_channel=False),
                TransformSpec("int8-static", op_block_list=("Conv",)), TransformSpec("int8-static", mixed_rtol=0.1),
                TransformSpec("int8-static", mixed_atol=0.1)]
    assert base.cache_tag() == TransformSpec("int8-static").cache_tag()
    assert len({base.cache_tag(), *(v.cache_tag() for v in variants)}) == 1 + len(variants)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown transform 'fp8'"):
        TransformSpec("fp8")


def test_none_returns_the_original_model(tmp_path, make_case) -> None:
    model = make_case(tmp_path / "c") / "model.onnx"
    result = transform_model(model, SHA, TransformSpec("none"), _feeds())
    assert result.path == model and result.report == {"kind": "none"}


def test_a_cache_hit_returns_the_same_model_and_report(tmp_path, make_case) -> None:
    model = make_case(tmp_path / "c") / "model.onnx"
    first = transform_model(model, SHA, TransformSpec("fp16"), _feeds())
    stamp = first.path.stat().st_mtime_ns
    time.sleep(0.01)
    again = transform_model(model, SHA, TransformSpec("fp16"), _feeds(10))  # fp16 does not depend on inputs
    assert again.path == first.path and again.path.stat().st_mtime_ns == stamp
    assert again.report == first.report and again.report["converter"] == "onnxruntime.transformers.float16"
    other = transform_model(model, SHA, TransformSpec("fp16", op_block_list=("Relu",)), _feeds())
    assert other.path != first.path and other.report["kept_fp32_by_op"] == {"Relu": 1}


def test_fp16_mixed_is_cached_per_input(tmp_path, make_case) -> None:
    model = make_case(tmp_path / "c") / "model.onnx"
    a = transform_model(model, SHA, TransformSpec("fp16-mixed"), _feeds(), calibration_source="case data sets")
    b = transform_model(model, SHA, TransformSpec("fp16-mixed"), _feeds(10), calibration_source="--calibration-data x")
    assert a.path != b.path and a.path.is_file() and b.path.is_file()
    assert a.report["calibration_source"] == "case data sets" and b.report["calibration_source"] == "--calibration-data x"


def test_int8_static_cache_is_keyed_by_the_calibration_inputs(tmp_path, make_case) -> None:
    model = make_case(tmp_path / "c") / "model.onnx"
    spec = TransformSpec("int8-static")
    a = transform_model(model, SHA, spec, _feeds()).path
    b = transform_model(model, SHA, spec, _feeds(10)).path
    assert a != b and a.is_file() and b.is_file()
    again = transform_model(model, SHA, spec, _feeds(), calibration_source="--calibration-data elsewhere")
    assert again.path == a  # cached: the same inputs from another folder are the same calibration
    assert again.report["calibration_source"] == "--calibration-data elsewhere"
    ort.InferenceSession(str(a), providers=["CPUExecutionProvider"]).run(None, _feeds()[0])


def test_a_file_that_is_not_onnx_is_a_failed_transform_with_the_library_message(tmp_path) -> None:
    bogus = tmp_path / "model.onnx"
    bogus.write_bytes(b"not a protobuf at all \xff\xfe")
    with pytest.raises(TransformFailed) as failed:
        transform_model(bogus, SHA, TransformSpec("fp16"), _feeds())
    assert "fp16 transform of model.onnx raised" in failed.value.message and failed.value.hint


def test_a_failed_transform_carries_what_the_libraries_printed(tmp_path, capfd) -> None:
    """Both converters' models are refused (a custom op); the fallback warned about clipping a large weight."""
    from onnx import TensorProto, helper
    graph = helper.make_graph([helper.make_node("Mul", ["x", "W"], ["r"], name="/Mul"),
                               helper.make_node("Mystery", ["r"], ["y"], name="/Mystery", domain="example.custom")],
                              "custom", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                              initializer=[numpy_helper.from_array(np.full(4, 1e6, np.float32), "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.custom", 1)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "custom.onnx"))
    with pytest.raises(TransformFailed) as failed:
        transform_model(tmp_path / "custom.onnx", SHA, TransformSpec("fp16"), _feeds())
    assert "Mystery" in failed.value.message
    assert "will be truncated" in failed.value.log
    assert capfd.readouterr() == ("", "")


def test_captured_takes_prints_logging_warnings_and_file_descriptors(capfd) -> None:
    log = io.StringIO()
    with captured(log):
        print("python print")
        sys.stderr.write("python stderr\n")
        os.write(1, b"fd one\n")
        os.write(2, b"fd two\n")
        logging.getLogger("onnxruntime.quantization").warning("please pre-process")
        warnings.warn("the float32 number 1e9 will be truncated", UserWarning, stacklevel=1)
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")
    for text in ("python print", "python stderr", "fd one", "fd two", "please pre-process", "will be truncated"):
        assert text in log.getvalue()
    print("after")  # the terminal is back
    assert capfd.readouterr().out == "after\n"


def test_a_transform_prints_nothing_and_returns_the_session_log(tmp_path, capfd) -> None:
    """Large weights make onnxconverter-common warn, and a default session makes onnxruntime's C++ log warn;
    neither reaches the terminal."""
    from onnx import TensorProto, helper
    weight = np.full((4, 3), 1e6, np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y"], name="/MatMul")], "big",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
                              initializer=[numpy_helper.from_array(weight, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path / "big.onnx"
    onnx.save(model, str(path))
    result = transform_model(path, SHA, TransformSpec("fp16"), _feeds())
    log = io.StringIO()
    with captured(log):
        ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])  # default severity: warnings
        from onnxconverter_common import float16
        float16.convert_float_to_float16(onnx.load(str(path)), keep_io_types=True)
    assert capfd.readouterr() == ("", "")
    assert "will be truncated" in log.getvalue()


@pytest.mark.parametrize("profile_name", ["cpu-fp16", "cpu-fp16-mixed"])
def test_every_bundled_case_converts_or_says_why_not(profile_name, capfd) -> None:
    source = REPO / "device_profiles" / f"{profile_name}.toml"
    profile = parse_profile(tomllib.loads(source.read_text()), source, profile_name)
    spec = TransformSpec.from_profile_fields(profile.transform, profile.keep_io_types, profile.precision_options)
    outcomes = {}
    start = time.perf_counter()
    for case in sorted((REPO / "reference_outputs").iterdir()):
        if not (case / "model.onnx").is_file():
            continue
        feed = load_case(case, case.name).datasets()[0].inputs
        try:
            result = transform_model(case / "model.onnx", case.name.ljust(64, "0"), spec, [feed])
        except TransformNotApplicable as exc:
            outcomes[case.name] = exc.reason
            continue
        outputs = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"]).run(None, feed)
        outcomes[case.name] = "ok" if outputs else "no outputs"
    assert time.perf_counter() - start < 30
    assert capfd.readouterr() == ("", "")
    # sklearn pipelines are ai.onnx.ml ops, whose schemas have no float16: nothing to convert.
    assert {name for name, what in outcomes.items() if what != "ok"} == {"sklearn_forest", "sklearn_logreg"}
    assert "allows no float16" in outcomes["sklearn_forest"]
