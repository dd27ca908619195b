"""A profile's [task] gates: parsed strictly, each check writes its own message."""

from __future__ import annotations

import pytest

from harness.errors import ProfileError
from harness.task.gates import parse_gate, parse_task_table


def test_gates_parse_and_check():
    gates = parse_task_table({"gates": ["top1_agreement >= 0.99", "f1_drop <= 0.01"], "why": "int8"}, "p.toml")
    top1, drop = gates.gates
    assert top1.check({"top1_agreement": 0.995}) == ""
    assert top1.check({"top1_agreement": 0.95}) == "top1_agreement 0.95 fails >= 0.99"
    assert drop.check({"f1_drop": 0.02}) == "f1_drop 0.02 fails <= 0.01"
    assert "not measured (outputs differ)" in top1.check({"error": "outputs differ"})
    assert gates.for_kind("classification") == gates.gates and gates.for_kind("detection") == ()


@pytest.mark.parametrize("text, words", [("top1_agreemnt >= 0.99", "did you mean 'top1_agreement'"),
                                         ("top1_agreement => 0.99", "is not '<metric> <op> <number>'"),
                                         ("recall >= lots", "is not '<metric> <op> <number>'"),
                                         (3, "is not '<metric> <op> <number>'")])
def test_a_bad_gate_is_one_line_naming_the_file(text, words):
    with pytest.raises(ProfileError) as caught:
        parse_gate(text, "device_profiles/x.toml [task]")
    line = caught.value.one_line()
    assert words in line and "device_profiles/x.toml" in line and "\n" not in line


@pytest.mark.parametrize("table, words", [({"gate": ["recall >= 1"]}, "unknown key 'gate'"),
                                          ({"gates": []}, "non-empty list"), ({"gates": "recall >= 1"}, "non-empty list"),
                                          ([], "must be a table")])
def test_a_bad_table_is_refused(table, words):
    with pytest.raises(ProfileError, match=words):
        parse_task_table(table, "x.toml")
