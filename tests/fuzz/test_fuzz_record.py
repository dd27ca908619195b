"""Fuzzed run records and journals: harness.run.record.load_record (record.json, or a journal alone) raises only
HarnessError subclasses, in one line, and what it returns has the types its consumers rely on."""

from __future__ import annotations

from dataclasses import fields

from conftest import assert_held, fuzz_targets, mutated
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import JSON, json_bytes, keyed

from harness.run.record import SCHEMA, SCHEMA_VERSION, CellResult, RunRecord

CELL_KEYS = [f.name for f in fields(CellResult)]
HEADER_KEYS = [f.name for f in fields(RunRecord) if f.name not in ("cells", "location")]
CELLS = st.lists(st.one_of(keyed(CELL_KEYS), JSON), max_size=3)
RECORDS = st.builds(lambda header, cells, envelope: {**header, **envelope, "cells": cells},
                    keyed(HEADER_KEYS), st.one_of(CELLS, JSON),
                    st.fixed_dictionaries({"schema": st.sampled_from([SCHEMA, "x"]),
                                           "schema_version": st.sampled_from([SCHEMA_VERSION, 0, "1", None])}))


def _journal(lines: list) -> bytes:
    import json
    return "\n".join(json.dumps(line) for line in lines).encode()


JOURNALS = st.lists(st.one_of(
    st.builds(lambda h: {"kind": "header", **h}, keyed(HEADER_KEYS)),
    st.builds(lambda c: {"kind": "cell", **c}, keyed(CELL_KEYS)), JSON), min_size=1, max_size=4).map(_journal)


@given(data=mutated(fuzz_targets.record_seeds()))
def test_mutated_records(targets, data: bytes) -> None:
    assert_held(targets["record_json"], data)


@settings(max_examples=100)  # structured JSON is slow to generate; the mutated seeds run the full budget
@given(data=json_bytes(RECORDS))
def test_structured_records(targets, data: bytes) -> None:
    assert_held(targets["record_json"], data)


@given(data=st.one_of(mutated(fuzz_targets.journal_seeds()), JOURNALS))
def test_journals(targets, data: bytes) -> None:
    assert_held(targets["journal"], data)
