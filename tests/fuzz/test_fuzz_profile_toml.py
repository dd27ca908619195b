"""Fuzzed profile TOML: harness.profiles.schema.load_profile and registry.load_all (extends over the built-ins)
raise only HarnessError subclasses, in one line; the schema does the same for any table TOML could hold."""

from __future__ import annotations

import datetime

import pytest
from conftest import assert_held, fuzz_targets, mutated
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import SCALARS, keyed

from harness.errors import HarnessError
from harness.profiles.schema import _SCHEMA, parse_profile

# TOML values: no null, but dates and times, and arrays/tables of them.
TOML_SCALARS = st.one_of(SCALARS.filter(lambda v: v is not None), st.datetimes(), st.dates(), st.times())
TOML = st.recursive(TOML_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                          st.dictionaries(st.text(max_size=6), inner, max_size=3)),
                    max_leaves=6)
TABLES = {kind: keyed(list(keys), TOML) for kind, keys in _SCHEMA.items() if kind}
PROFILE = st.fixed_dictionaries({}, optional={
    **{kind: table for kind, table in TABLES.items() if kind != "known_failures"},
    "known_failures": st.lists(TABLES["known_failures"], max_size=2),
    "tolerance": keyed(["rtol", "atol", "min_cosine", "why", "dtype", "override", "elementwise"], TOML),
    "budgets": keyed(["p95_ms", "p50_ms", "peak_mb", "first_inference_ms"], TOML),
    "timeout_s": TOML, "description": TOML, "target": TOML, "name": TOML,
})


@given(data=mutated(fuzz_targets.profile_seeds()))
def test_mutated_profile_files(targets, data: bytes) -> None:
    assert_held(targets["profile_toml"], data)


def _parse(data: dict) -> None:
    parse_profile(data, None, "p")


@settings(max_examples=100)  # slow to generate; the mutated files run the full budget
@given(table=PROFILE)
def test_any_table_is_parsed_or_refused_in_one_line(table: dict) -> None:
    target = fuzz_targets.Target("profile_table", [], lambda _: _parse(table), (HarnessError,))
    found = target.check(b"")
    assert found is None, f"{found}: {table!r}"


@pytest.mark.parametrize("text", [
    "[session]\nintra_op_threads = 1000\n", "[session]\ninter_op_threads = 99999999999999999\n",
    "timeout_s = inf\n", "timeout_s = nan\n", "[constraints]\nmemory_limit_mb = 1e14\n",
    "[constraints]\ncpu_cores = [99999999999]\n", '[ep]\nname = "CPUExecutionProvider"\nplugin = "os"\n',
    '[ep.env]\nHARNESS_TEST_FAULT = "hang:*"\n', "[tolerance]\nrtol = 1e400\natol = -0.0\n",
    'extends = "fuzzed"\n', 'extends = "nope"\n', "[[known_failures]]\ncase = 1\nreason = 2\n",
    "[budgets]\np95_ms = -1\n", 'description = "\\u001b[31mred"\n',
])
def test_hostile_profiles(targets, text: str) -> None:
    assert_held(targets["profile_toml"], text.encode())


def test_dates_are_refused_not_crashed() -> None:
    target = fuzz_targets.Target("t", [], lambda _: _parse({"timeout_s": datetime.date(2026, 1, 1)}), (HarnessError,))
    assert target.check(b"") is None
