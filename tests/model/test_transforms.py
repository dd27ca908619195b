"""harness/model/transforms.py: cached precision transforms."""

import numpy as np


def test_int8_static_cache_is_keyed_by_the_calibration_inputs(tmp_path, monkeypatch, make_case) -> None:
    from harness.model.transforms import transformed_path
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    model = make_case(tmp_path / "c") / "model.onnx"
    rng = np.random.default_rng(0)
    first = [{"x": rng.standard_normal((2, 4)).astype(np.float32)}]
    second = [{"x": rng.standard_normal((2, 4)).astype(np.float32) * 10}]
    a = transformed_path(model, "f" * 64, "int8-static", True, first)
    b = transformed_path(model, "f" * 64, "int8-static", True, second)
    assert a != b and a.is_file() and b.is_file()
    assert transformed_path(model, "f" * 64, "int8-static", True, first) == a  # cached
    fp16 = transformed_path(model, "f" * 64, "fp16", True, first)
    assert fp16 == transformed_path(model, "f" * 64, "fp16", True, second)  # fp16 needs no calibration
