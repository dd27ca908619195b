"""Fuzzed case.json and data.json: read_manifest, load_case and Case.tolerance_overrides/budgets raise only
HarnessError subclasses, in one line."""

from __future__ import annotations

from conftest import assert_held, fuzz_targets, mutated
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import JSON, json_bytes, keyed

from harness.golden.manifest import _FIELDS

TOLERANCE_KEYS = ["rtol", "atol", "min_cosine", "min_snr_db", "elementwise", "max_mismatch_fraction",
                  "min_topk_agreement", "topk", "why"]
TOLERANCES = keyed(TOLERANCE_KEYS)
MANIFESTS = keyed(list(_FIELDS), st.one_of(JSON, TOLERANCES, st.dictionaries(st.sampled_from(["x", "y"]), TOLERANCES)))


@given(data=mutated(fuzz_targets.manifest_seeds()))
def test_mutated_case_json(targets, data: bytes) -> None:
    assert_held(targets["case_json"], data)


@settings(max_examples=100)  # structured JSON is slow to generate; the mutated seeds run the full budget
@given(data=json_bytes(MANIFESTS))
def test_structured_case_json(targets, data: bytes) -> None:
    assert_held(targets["case_json"], data)


@given(data=st.one_of(mutated(fuzz_targets.data_json_seeds()), json_bytes(TOLERANCES), json_bytes(JSON)))
def test_data_json(targets, data: bytes) -> None:
    assert_held(targets["data_json"], data)


def test_a_deeply_nested_case_json_is_one_line(targets) -> None:
    """Issue 8 item 6: a case.json nested 100k deep raised RecursionError."""
    assert_held(targets["case_json"], b"[" * 100_000 + b"]" * 100_000)
