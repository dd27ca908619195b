"""Every fuzz target works: its seeds are valid inputs that load without any error, and a planted fault is
reported as an escape (so a target that swallowed everything could not pass)."""

from __future__ import annotations

import pytest
from conftest import fuzz_targets

NAMES = ["pb_tensor", "pb_dataset", "case_json", "data_json", "profile_toml", "record_json", "journal",
         "protocol_parent", "protocol_worker"]


@pytest.mark.parametrize("name", NAMES)
def test_seeds_load_cleanly(targets, name: str) -> None:
    target = targets[name]
    assert target.seeds
    for seed in target.seeds:
        target.run(seed)


def test_every_target_is_listed(targets) -> None:
    assert sorted(targets) == sorted(NAMES)


def test_an_unexpected_exception_is_an_escape_with_its_place(targets) -> None:
    target = fuzz_targets.Target("t", [b""], lambda data: {}["missing"], (ValueError,))
    assert target.check(b"x") == "KeyError in outside harness"
    assert list(target.escapes) == ["KeyError in outside harness"]


def test_a_multi_line_typed_error_is_an_escape() -> None:
    from harness.errors import GoldenError

    def run(data: bytes) -> None:
        raise GoldenError("first\nsecond")
    assert fuzz_targets.Target("t", [], run, (GoldenError,)).check(b"") == "GoldenError (not one line) in outside harness"


def test_a_hang_is_an_escape(monkeypatch) -> None:
    import time
    monkeypatch.setattr(fuzz_targets, "DEADLINE_S", 0.2)
    assert fuzz_targets.Target("t", [], lambda data: time.sleep(5), ()).check(b"") == "Hang in outside harness"


def test_a_huge_allocation_is_an_escape_not_the_hosts_memory() -> None:
    def run(data: bytes) -> None:
        bytearray(8 << 30)
    assert fuzz_targets.Target("t", [], run, ()).check(b"") == "MemoryError in outside harness"


def test_mutation_is_deterministic_and_changes_the_input() -> None:
    seed = b'{"rtol": 0.001}'
    ops = [(4, 3, 7), (5, 0, 2), (3, 9, 1)]
    assert fuzz_targets.mutate(seed, ops) == fuzz_targets.mutate(seed, ops) != seed
    assert fuzz_targets.mutate(seed, []) == seed
