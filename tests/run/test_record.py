"""Run records: versioned envelope, strict JSON, journal that survives a torn last line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.errors import BaselineError
from harness.run import record as R


def _strict_json(text: str):
    def refuse(token: str):
        raise AssertionError(f"non-standard JSON constant {token} in the record")
    return json.loads(text, parse_constant=refuse)


def _record(**extra) -> R.RunRecord:
    return R.RunRecord(run_id="r1", created=R.now_iso(), machine=R.machine_info(), versions=R.versions(),
                       commit={"id": "abc", "dirty": False}, argv=["run"], **extra)


def _cell(case: str = "mlp", verdict: str = R.PASS) -> R.CellResult:
    return R.CellResult(case=case, profile="cpu", verdict=verdict, outputs=[{"dataset": 0, "comparison": {"x": 1}}])


def test_envelope_and_round_trip(tmp_path: Path) -> None:
    path = _record(cells=[_cell(), _cell("cnn", R.FAIL)]).write(tmp_path)
    assert path == tmp_path / R.RECORD_NAME
    data = _strict_json(path.read_text())
    assert data["schema"] == "onnx-harness/run-record" and data["schema_version"] == R.SCHEMA_VERSION
    assert {"onnx", "onnxruntime", "numpy", "harness"} <= set(data["versions"])
    assert {"cpu", "cores", "python"} <= set(data["machine"])
    record, folder = R.load_record(tmp_path)
    assert folder == tmp_path and [c.key for c in record.cells] == ["mlp|cpu", "cnn|cpu"]
    assert record.cells[1].verdict == R.FAIL and record.cells[0].outputs == _cell().outputs
    assert R.load_record(path)[0].run_id == "r1"


def test_nan_never_reaches_the_json() -> None:
    record = _record(cells=[R.CellResult("c", "cpu", R.PASS, timing={"session_ms": float("nan")})])
    with pytest.raises(ValueError):
        record.to_json()


def test_unknown_cell_fields_are_ignored_when_loading() -> None:
    cell = R.CellResult.from_dict({"case": "a", "profile": "p", "verdict": R.PASS, "from_the_future": 1})
    assert cell.key == "a|p"


@pytest.mark.parametrize("data, message", [
    ({"schema": "other"}, "not a harness run record"),
    ({"schema": R.SCHEMA, "schema_version": R.SCHEMA_VERSION + 1}, "is not readable"),
    ({"schema": R.SCHEMA, "schema_version": 0}, "is not readable"),
    ({"schema": R.SCHEMA}, "is not readable"),
])
def test_unreadable_records(tmp_path: Path, data: dict, message: str) -> None:
    (tmp_path / R.RECORD_NAME).write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=message):
        R.load_record(tmp_path)


def test_missing_and_broken_records(tmp_path: Path) -> None:
    with pytest.raises(BaselineError, match="no record.json or journal.jsonl"):
        R.load_record(tmp_path)
    (tmp_path / R.RECORD_NAME).write_text("{")
    with pytest.raises(BaselineError, match="not valid JSON"):
        R.load_record(tmp_path)


def _journal(folder: Path, cells: list[R.CellResult]) -> Path:
    journal = R.Journal(folder)
    journal.header(_record())
    for cell in cells:
        journal.cell(cell)
    journal.close()
    return journal.path


def test_journal_tolerates_a_torn_last_line(tmp_path: Path) -> None:
    path = _journal(tmp_path, [_cell("a"), _cell("b")])
    whole = path.read_text()
    last = whole.splitlines()[-1]
    path.write_text(whole[: len(whole) - len(last) // 2 - 1])  # cut cell "b" mid-line, no newline
    header, cells = R.read_journal(path)
    assert header["run_id"] == "r1" and [c.case for c in cells] == ["a"]


def test_journal_later_entry_for_a_cell_wins_and_stray_lines_are_skipped(tmp_path: Path) -> None:
    path = _journal(tmp_path, [_cell("a", R.CRASH), _cell("a", R.PASS)])
    with path.open("a") as handle:
        handle.write("[1, 2]\n42\n")
    _, cells = R.read_journal(path)
    assert [(c.case, c.verdict) for c in cells] == [("a", R.PASS)]


def test_journal_without_header_is_refused(tmp_path: Path) -> None:
    path = tmp_path / R.JOURNAL_NAME
    path.write_text(json.dumps({"kind": "cell", **_cell().to_dict()}) + "\n")
    with pytest.raises(BaselineError, match="no header line"):
        R.read_journal(path)


@pytest.mark.parametrize("point_at", ["folder", "journal"])
def test_a_killed_run_loads_from_its_journal(tmp_path: Path, point_at: str) -> None:
    path = _journal(tmp_path, [_cell("a")])
    record, folder = R.load_record(tmp_path if point_at == "folder" else path)
    assert folder == tmp_path and record.run_id == "r1" and [c.case for c in record.cells] == ["a"]


def test_a_resumed_run_prefers_its_journal_over_an_older_record(tmp_path) -> None:
    from harness.run import record as R
    rec = R.RunRecord("r", "now", {}, {}, {}, [], cells=[R.CellResult("a", "cpu", "PASS")])
    rec.write(tmp_path)
    journal = R.Journal(tmp_path)
    journal.header(rec)
    journal.cell(R.CellResult("b", "cpu", "FAIL"))
    journal.close()
    loaded, _ = R.load_record(tmp_path)
    assert {c.key: c.verdict for c in loaded.cells} == {"a|cpu": "PASS", "b|cpu": "FAIL"}


def test_the_json_holds_every_field_as_dataclasses_asdict_would(tmp_path: Path) -> None:
    """The shallow writer (one field and one cell per line, json's C encoder) writes what asdict did."""
    from dataclasses import asdict, dataclass

    @dataclass
    class Inner:
        x: int

    cells = [_cell(), R.CellResult("c", "cpu", R.FAIL, model={"op": "Add", "inner": Inner(3)}, error={"p": Path("a")})]
    record = _record(cells=cells, ops={"cpu": [{"op": "Add", "cases": 1}]}, warnings=["w"])
    data = _strict_json(record.to_json())
    expected = {"schema": R.SCHEMA, "schema_version": R.SCHEMA_VERSION, **asdict(record)}
    expected.pop("location")
    expected["cells"][1]["error"]["p"] = "a"
    assert data == expected
    assert _strict_json(_record().to_json())["cells"] == []
    record.write(tmp_path)
    assert R.load_record(tmp_path)[0].ops == record.ops


def test_a_cell_dict_is_shallow_and_complete() -> None:
    cell = _cell()
    data = cell.to_dict()
    assert set(data) == set(R.CellResult.__dataclass_fields__) and data["outputs"] is cell.outputs


def test_the_journal_writes_every_line_at_once_and_syncs_at_most_every_interval(tmp_path: Path, monkeypatch) -> None:
    """A killed harness loses no cell (each line is written at once); fsync runs on the first line, then at most
    once per SYNC_EVERY_S, and on close."""
    monkeypatch.setattr(R.Journal, "SYNC_EVERY_S", 3600.0)
    journal = R.Journal(tmp_path)
    journal.header(_record())
    for name in "abcdefghij":
        journal.cell(_cell(name))
    assert journal.syncs == 1  # the header's line; the ten cells wait for the interval
    _, cells = R.read_journal(journal.path)  # read before close, as after a kill
    assert [c.case for c in cells] == list("abcdefghij")
    journal.close()
    assert journal.syncs == 2


def test_the_journal_syncs_each_line_when_the_interval_is_zero(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(R.Journal, "SYNC_EVERY_S", 0.0)
    journal = R.Journal(tmp_path)
    journal.header(_record())
    journal.cell(_cell("a"))
    journal.cell(_cell("b"))
    assert journal.syncs == 3
    journal.close()


def test_a_record_whose_ops_is_not_an_object_is_refused(tmp_path: Path) -> None:
    data = json.loads(_record().to_json())
    data["ops"] = [1]
    (tmp_path / R.RECORD_NAME).write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="'ops' must be an object"):
        R.load_record(tmp_path)
