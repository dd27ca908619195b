"""Fuzzed .pb tensors: harness.golden.layout.read_tensor and read_dataset raise only GoldenError, in one line."""

from __future__ import annotations

import onnx
from conftest import assert_held, fuzz_targets, mutated
from hypothesis import given
from hypothesis import strategies as st

SEEDS = fuzz_targets.tensor_seeds()


@given(data=mutated(SEEDS))
def test_read_tensor_on_mutated_protos(targets, data: bytes) -> None:
    assert_held(targets["pb_tensor"], data)


@given(data=mutated(SEEDS))
def test_read_dataset_on_mutated_protos(targets, data: bytes) -> None:
    assert_held(targets["pb_dataset"], data)


@st.composite
def protos(draw) -> bytes:
    """A TensorProto whose fields disagree at will: dims against data length, type against payload."""
    tensor = onnx.TensorProto()
    tensor.name = draw(st.sampled_from(["x", "", "y"]))
    tensor.data_type = draw(st.integers(0, 25))
    tensor.dims.extend(draw(st.lists(st.integers(-3, 2**40), max_size=4)))
    payload = draw(st.sampled_from(["raw", "float", "int32", "int64", "double", "string", "external", "none"]))
    count = draw(st.integers(0, 9))
    if payload == "raw":
        tensor.raw_data = draw(st.binary(max_size=64))
    elif payload == "float":
        tensor.float_data.extend(draw(st.lists(st.floats(width=32), min_size=count, max_size=count)))
    elif payload == "int32":
        tensor.int32_data.extend(draw(st.lists(st.integers(-2**31, 2**31 - 1), min_size=count, max_size=count)))
    elif payload == "int64":
        tensor.int64_data.extend(draw(st.lists(st.integers(-2**63, 2**63 - 1), min_size=count, max_size=count)))
    elif payload == "double":
        tensor.double_data.extend(draw(st.lists(st.floats(), min_size=count, max_size=count)))
    elif payload == "string":
        tensor.string_data.extend(draw(st.lists(st.binary(max_size=8), min_size=count, max_size=count)))
    elif payload == "external":
        tensor.data_location = onnx.TensorProto.EXTERNAL
        for key in draw(st.lists(st.sampled_from(["location", "offset", "length", "checksum", "x"]), max_size=4)):
            value = draw(st.sampled_from(["weights.bin", "../weights.bin", "/etc/hostname", "-1", "0", "8",
                                          "99999999999", "", "a\x00b"]))
            tensor.external_data.add(key=key, value=value)
    return tensor.SerializeToString()


@given(data=protos())
def test_read_tensor_on_inconsistent_protos(targets, data: bytes) -> None:
    assert_held(targets["pb_tensor"], data)
