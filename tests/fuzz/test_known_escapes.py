"""Escapes the fuzz targets found, kept as examples. Those fixed by their owners are plain regression tests; those
still open are strict xfails naming the owner's file (each reported with its fix): once fixed, the xfail turns
into a failure, and the entry here and in conftest.KNOWN_ESCAPES is removed."""

from __future__ import annotations

import json

import pytest
from conftest import KNOWN_ESCAPES, fuzz_targets

from harness.worker import protocol

# A TensorProto with external data whose location holds a newline: onnx's multi-line error text went into the
# GoldenError as it was (fixed in layout.py, a6fb167).
EXTERNAL_NEWLINE = bytes.fromhex("080210014201786a170a086c6f636174696f6e120b0a066f66667365741201306a0b0a066c656e6774681201387001")
# The same with a location that is not UTF-8: onnx's binding answered with its multi-line overload listing.
EXTERNAL_NOT_UTF8 = bytes.fromhex("080210014201786a170a086c6f636174696f6e120b77656967c574732e62696e6a0b0a066f66667365741201306a0b0a066c656e6774681201387001")



def _frame_announcing(payload_bytes: int) -> bytes:
    header = b'{"type":"bye","tensors":[]}'
    return protocol.PREFIX.pack(protocol.MAGIC, len(header), payload_bytes) + header


def _record_with_cell(cell: dict) -> bytes:
    body = json.loads(fuzz_targets.record_seeds()[0])
    body["cells"] = [cell]
    return json.dumps(body).encode()


def _journal_with_cell(cell: dict) -> bytes:
    header = fuzz_targets.journal_seeds()[0].splitlines()[0]
    return header + b"\n" + json.dumps({"kind": "cell", **cell}).encode() + b"\n"


# ---- fixed ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [EXTERNAL_NEWLINE, EXTERNAL_NOT_UTF8], ids=["newline", "not-utf8"])
def test_read_tensor_external_data_errors_are_one_line(targets, data: bytes) -> None:
    assert targets["pb_tensor"].check(data) is None
    assert targets["pb_dataset"].check(data) is None


@pytest.mark.parametrize("side", ["protocol_parent", "protocol_worker"])
def test_a_frame_announcing_gigabytes_is_a_protocol_error(targets, side: str) -> None:
    """read_message allocated the payload a 16-byte prefix announced (up to 16 GiB) before reading it."""
    assert targets[side].check(_frame_announcing(8 << 30)) is None


@pytest.mark.parametrize("missing", ["case", "profile"])
@pytest.mark.parametrize("kind", ["record_json", "journal"])
def test_a_cell_without_case_or_profile_is_one_line(targets, missing: str, kind: str) -> None:
    cell = {"case": "a", "profile": "cpu", "verdict": "PASS"}
    del cell[missing]
    data = _record_with_cell(cell) if kind == "record_json" else _journal_with_cell(cell)
    assert targets[kind].check(data) is None


def test_a_record_cell_without_a_verdict_is_one_line(targets) -> None:
    assert targets["record_json"].check(_record_with_cell({"case": "a", "profile": "cpu"})) is None


@pytest.mark.parametrize("kind", ["record_json", "journal"])
def test_a_cell_field_of_the_wrong_type_is_one_line(targets, kind: str) -> None:
    cell = {"case": "a", "profile": "cpu", "verdict": "PASS", "duration_s": "slow"}
    data = _record_with_cell(cell) if kind == "record_json" else _journal_with_cell(cell)
    assert targets[kind].check(data) is None


def _record_with(field: str, value) -> bytes:
    body = json.loads(fuzz_targets.record_seeds()[0])
    body[field] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize("field, value", [("argv", "run"), ("machine", [])])
def test_a_header_field_of_the_wrong_type_is_one_line(targets, field: str, value) -> None:
    assert targets["record_json"].check(_record_with(field, value)) is None


def _journal_with(field: str, value) -> bytes:
    lines = fuzz_targets.journal_seeds()[0].splitlines()
    header = json.loads(lines[0])
    header[field] = value
    return b"\n".join([json.dumps(header).encode(), *lines[1:]]) + b"\n"


@pytest.mark.parametrize("field, value", [("run_id", 1), ("created", None), ("finished", 5), ("log", ["x"]),
                                          ("warnings", "x"), ("write_errors", "x")])
@pytest.mark.parametrize("kind", ["record_json", "journal"])
def test_header_strings_of_the_wrong_type_are_one_line(targets, kind: str, field: str, value) -> None:
    data = _record_with(field, value) if kind == "record_json" else _journal_with(field, value)
    assert targets[kind].check(data) is None


# ---- open: none at present ---------------------------------------------------------------------------------

def test_every_open_escape_has_a_test_here() -> None:
    assert set(KNOWN_ESCAPES) == set()
