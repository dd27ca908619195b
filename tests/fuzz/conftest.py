"""Shared fuzzing setup: the targets (tests/fuzz/targets.py) in a session folder, a short hypothesis budget for
CI, a strategy that mutates a target's valid seeds, and the escapes already reported to their owners."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))
import targets as fuzz_targets  # noqa: E402

# The whole fuzz dir in about 30 s of CPU; bench/fuzz.py (make bench-fuzz) is the long hunt.
settings.register_profile("ci", max_examples=200, deadline=None, derandomize=True, database=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                                 HealthCheck.data_too_large])
settings.load_profile("ci")

# Escapes found by these targets in files this suite's author does not own: signature -> the owner's file and
# what escapes (an escape is known when its signature starts with a key). Each has a strict-xfail regression test
# with its example in test_known_escapes.py; remove the entry once it is fixed.
KNOWN_ESCAPES: dict[str, str] = {}


@pytest.fixture(scope="session")
def targets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, fuzz_targets.Target]:
    return fuzz_targets.make_targets(tmp_path_factory.mktemp("fuzz"))


def mutated(seeds: list[bytes]) -> st.SearchStrategy[bytes]:
    """A seed with up to eight mutations (see targets.mutate), spliced with another seed."""
    op = st.tuples(st.integers(0, 7), st.integers(0, 1 << 16), st.integers(0, 1 << 16))
    return st.builds(fuzz_targets.mutate, st.sampled_from(seeds), st.lists(op, max_size=8), st.sampled_from(seeds))


def assert_held(target: fuzz_targets.Target, data: bytes) -> None:
    """The target raised nothing but its typed one-line errors (escapes already reported are let through)."""
    found = target.check(data)
    if found is not None and not found.startswith(tuple(KNOWN_ESCAPES)):
        pytest.fail(f"{target.name}: {found} (input {data[:300]!r})")
