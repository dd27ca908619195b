"""Fuzzed worker protocol framing, both sides: the parent's read_message on mutated frame streams, and the
worker's serve loop (in this process, on a CPUExecutionProvider spec) fed mutated request streams. Only
protocol.ProtocolError may escape; the worker's replies must stay readable frames."""

from __future__ import annotations

import json
import struct

from conftest import assert_held, fuzz_targets, mutated
from hypothesis import given
from hypothesis import strategies as st
from strategies import JSON, keyed

from harness.worker import protocol

TENSOR_ENTRY = keyed(["name", "dtype", "shape", "offset", "nbytes"],
                     st.one_of(JSON, st.sampled_from(protocol.SUPPORTED_DTYPES), st.lists(st.integers(-1, 9), max_size=3)))
HEADERS = st.builds(lambda base, tensors: {**base, "tensors": tensors},
                    keyed(["type", "case", "model_path", "measure", "kind", "message"],
                          st.one_of(JSON, st.sampled_from(sorted(protocol.MESSAGE_TYPES)))),
                    st.one_of(st.lists(TENSOR_ENTRY, max_size=3), JSON))


@st.composite
def frames(draw) -> bytes:
    """A frame whose JSON header and payload are fuzzed but whose prefix announces their true lengths, so the
    reader gets past the framing into the header and tensor table checks."""
    header = json.dumps(draw(HEADERS)).encode()
    payload = draw(st.binary(max_size=128))
    return protocol.PREFIX.pack(protocol.MAGIC, len(header), len(payload)) + header + payload


@given(data=mutated(fuzz_targets.frame_seeds()))
def test_parent_reads_mutated_frames(targets, data: bytes) -> None:
    assert_held(targets["protocol_parent"], data)


@given(data=frames())
def test_parent_reads_fuzzed_headers(targets, data: bytes) -> None:
    assert_held(targets["protocol_parent"], data)


@given(data=st.one_of(mutated(fuzz_targets.frame_seeds()), frames()))
def test_worker_serves_mutated_requests(targets, data: bytes) -> None:
    assert_held(targets["protocol_worker"], data)


def test_worker_serves_a_request_stream_then_replies_in_frames(targets) -> None:
    """The worker target is real: a load + infer + bye seed gets hello, loaded and result frames back."""
    target = targets["protocol_worker"]
    seed = target.seeds[0]
    assert target.check(seed) is None
    assert struct.unpack_from("<4s", seed)[0] == protocol.MAGIC
