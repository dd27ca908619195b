"""The run record's JSON Schema: real records (made by running the harness) conform to it, an older version's
example conforms once upgraded, and the schema knows every verdict the harness writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.report import schema
from harness.run import record as R

jsonschema = pytest.importorskip("jsonschema")
REPO = Path(__file__).resolve().parents[2]
RECORDS = REPO / "tests" / "data" / "records"


@pytest.fixture(scope="module")
def real_record(tmp_path_factory, case_builder, break_golden) -> dict:
    """A bundled case (reference_outputs/mlp), a passing case and a failing one, on cpu and cpu-fp16, with
    latency sampled and every output saved: the record as written to disk."""
    from harness import api
    root = tmp_path_factory.mktemp("schema")
    cases = ["mlp", case_builder(root / "good"), break_golden(case_builder(root / "bad"))]
    options = api.MatrixOptions(out=root / "out", time_cap_s=0.05, save_outputs="all",
                                root=REPO / "reference_outputs")
    record = api.run_matrix(cases, ["cpu", "cpu-fp16"], options)
    return json.loads(record.location.read_text())


def test_the_schema_of_this_version_is_a_valid_json_schema() -> None:
    assert schema.schema_path().name == f"run-record.v{R.SCHEMA_VERSION}.json"
    jsonschema.Draft202012Validator.check_schema(schema.load_schema())


def test_a_real_record_conforms(real_record: dict) -> None:
    verdicts = {c["verdict"] for c in real_record["cells"]}
    assert R.FAIL in verdicts and R.PASS in verdicts and real_record["cells"][0]["latency"]["stats"]
    assert all(c["artifacts"].get("actual_outputs") for c in real_record["cells"])
    assert schema.record_problems(real_record) == []


def test_the_schema_names_every_verdict_the_harness_writes() -> None:
    enum = schema.load_schema()["$defs"]["cell"]["properties"]["verdict"]["enum"]
    assert sorted(enum) == sorted(R.VERDICTS) and R.FAILING <= set(R.VERDICTS)


def test_the_schema_names_every_field_the_record_writes() -> None:
    loaded = schema.load_schema()
    assert set(R.RunRecord.__dataclass_fields__) - {"location"} <= set(loaded["properties"])
    assert set(R.CellResult.__dataclass_fields__) == set(loaded["$defs"]["cell"]["properties"])


@pytest.mark.parametrize("version", range(1, R.SCHEMA_VERSION))
def test_an_older_example_conforms_once_upgraded(version: int) -> None:
    raw = json.loads((RECORDS / f"v{version}" / R.RECORD_NAME).read_text())
    assert raw["schema_version"] == version
    assert schema.record_problems(raw)  # as it is, it is not the current version
    assert schema.record_problems(R.upgrade(raw, "example")) == []


def test_a_broken_record_is_reported_with_the_path_of_each_problem(real_record: dict) -> None:
    broken = json.loads(json.dumps(real_record))
    broken["cells"][1]["verdict"] = "MAYBE"
    broken["save_outputs"] = "some"
    del broken["run_id"]
    problems = schema.record_problems(broken)
    assert any(p.startswith("$.cells[1].verdict:") and "MAYBE" in p for p in problems)
    assert any(p.startswith("$.save_outputs:") for p in problems)
    assert any("'run_id' is a required property" in p for p in problems)


def test_there_is_no_schema_for_an_unknown_version() -> None:
    from harness.errors import UsageError
    with pytest.raises(UsageError, match="no JSON Schema for run record version 99"):
        schema.load_schema(99)
