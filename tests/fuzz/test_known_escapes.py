"""Escapes the fuzz targets found in files this suite does not own, kept as failing examples until the owner fixes
them (each reported with its fix). strict: once fixed, the test passes, xfail turns into a failure, and the entry
in conftest.KNOWN_ESCAPES and here is removed."""

from __future__ import annotations

import pytest
from conftest import KNOWN_ESCAPES, fuzz_targets

from harness.worker import protocol

# A TensorProto with external data whose location holds a newline: onnx's error text (multi-line) is put into
# the GoldenError as it is.
EXTERNAL_NEWLINE = bytes.fromhex("080210014201786a170a086c6f636174696f6e120b0a066f66667365741201306a0b0a066c656e6774681201387001")
# The same with a location that is not UTF-8: onnx's binding answers with its multi-line overload listing.
EXTERNAL_NOT_UTF8 = bytes.fromhex("080210014201786a170a086c6f636174696f6e120b77656967c574732e62696e6a0b0a066f66667365741201306a0b0a066c656e6774681201387001")


def _frame_announcing(payload_bytes: int) -> bytes:
    header = b'{"type":"bye","tensors":[]}'
    return protocol.PREFIX.pack(protocol.MAGIC, len(header), payload_bytes) + header


LAYOUT = "GoldenError (not one line) in harness/golden/layout.py:read_tensor"
PROTOCOL = "MemoryError in harness/worker/protocol.py:read_message"


@pytest.mark.xfail(strict=True, reason="harness/golden/layout.py: read_tensor puts onnx's multi-line error text "
                                       "into the GoldenError (external data location with a newline or not UTF-8)")
@pytest.mark.parametrize("data", [EXTERNAL_NEWLINE, EXTERNAL_NOT_UTF8], ids=["newline", "not-utf8"])
def test_read_tensor_external_data_errors_are_one_line(targets, data: bytes) -> None:
    assert targets["pb_tensor"].check(data) is None


@pytest.mark.xfail(strict=True, reason="harness/worker/protocol.py: read_message allocates the payload a 16-byte "
                                       "prefix announces (up to 16 GiB) before reading it: MemoryError, or the "
                                       "host's memory, for a 43-byte frame")
@pytest.mark.parametrize("side", ["protocol_parent", "protocol_worker"])
def test_a_frame_announcing_gigabytes_is_a_protocol_error(targets, side: str) -> None:
    assert targets[side].check(_frame_announcing(8 << 30)) is None


def test_every_known_escape_has_a_test_here() -> None:
    assert set(KNOWN_ESCAPES) == {LAYOUT, PROTOCOL}
