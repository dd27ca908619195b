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


# ---- schema versions, upgrades and saved outputs --------------------------------------------------------------------

RECORDS = Path(__file__).resolve().parents[1] / "data" / "records"


def test_an_example_of_every_older_version_is_kept() -> None:
    """Bumping SCHEMA_VERSION means keeping a record of the version before it here, and an upgrade step."""
    for version in range(1, R.SCHEMA_VERSION):
        assert (RECORDS / f"v{version}" / R.RECORD_NAME).is_file(), f"no example record of version {version}"
        assert version in R._UPGRADES


def test_a_version_1_record_is_upgraded_on_load() -> None:
    raw = json.loads((RECORDS / "v1" / R.RECORD_NAME).read_text())
    assert raw["schema_version"] == 1 and "save_outputs" not in raw
    record, folder = R.load_record(RECORDS / "v1")
    assert record.save_outputs == "failing"  # what version 1 did, unsaid
    assert {c.key: c.verdict for c in record.cells} == {"good|cpu": R.PASS, "bad|cpu": R.FAIL}
    assert json.loads(record.to_json())["schema_version"] == R.SCHEMA_VERSION


def test_a_version_1_cells_saved_outputs_are_read_without_a_manifest() -> None:
    record, folder = R.load_record(RECORDS / "v1")
    bad, good = (next(c for c in record.cells if c.case == name) for name in ("bad", "good"))
    saved = R.read_saved_outputs(folder, bad)
    assert list(saved) == [0] and list(saved[0]) == ["y"]
    comparison = bad.outputs[0]["comparison"]
    assert list(saved[0]["y"].shape) == comparison["actual_shape"] and saved[0]["y"].dtype.name == "float32"
    assert R.read_saved_outputs(folder, good) == {}


def test_a_version_1_journal_header_is_upgraded(tmp_path: Path) -> None:
    header = {"kind": "header", "schema_version": 1, **_record().header_dict()}
    header.pop("save_outputs")
    (tmp_path / R.JOURNAL_NAME).write_text(json.dumps(header) + "\n")
    record, _ = R.load_record(tmp_path)
    assert record.save_outputs == "failing" and record.run_id == "r1"


def test_a_newer_record_says_to_upgrade_the_harness(tmp_path: Path) -> None:
    data = json.loads(_record().to_json())
    data["schema_version"] = R.SCHEMA_VERSION + 1
    (tmp_path / R.RECORD_NAME).write_text(json.dumps(data))
    with pytest.raises(BaselineError, match=f"schema_version {R.SCHEMA_VERSION + 1} is not readable") as info:
        R.load_record(tmp_path)
    assert "upgrade the harness" in info.value.one_line()


@pytest.mark.parametrize("value", ["some", 3, None])
def test_an_unknown_save_outputs_is_refused(tmp_path: Path, value) -> None:
    data = json.loads(_record().to_json())
    data["save_outputs"] = value
    (tmp_path / R.RECORD_NAME).write_text(json.dumps(data))
    with pytest.raises(BaselineError, match="'save_outputs' must be one of all, failing, none"):
        R.load_record(tmp_path)


def test_saved_outputs_outside_the_run_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    cell = R.CellResult("a", "cpu", R.FAIL, artifacts={"actual_outputs": "../elsewhere"})
    with pytest.raises(BaselineError, match="lies outside the run's folder"):
        R.read_saved_outputs(tmp_path / "run", cell)


def test_a_broken_outputs_manifest_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cells" / "c").mkdir(parents=True)
    (tmp_path / "cells" / "c" / R.OUTPUTS_MANIFEST).write_text('{"outputs": [{"index": 0, "kind": "graph"}]}')
    cell = R.CellResult("a", "cpu", R.FAIL, artifacts={"actual_outputs": "cells/c"})
    with pytest.raises(BaselineError, match="not a saved-outputs manifest"):
        R.read_saved_outputs(tmp_path, cell)


@pytest.fixture(scope="module")
def saved_runs(tmp_path_factory, case_builder, break_golden) -> dict[str, R.RunRecord]:
    """One passing and one failing case (two data sets) on cpu, run once per --save-outputs choice."""
    from harness import api
    root = tmp_path_factory.mktemp("saved")
    cases = [case_builder(root / "good"), break_golden(case_builder(root / "bad", sets=2))]
    return {choice: api.run_matrix(cases, ["cpu"], api.MatrixOptions(out=root / choice, numerics_only=True,
                                                                      save_outputs=choice, root=root))
            for choice in R.SAVE_OUTPUTS}


def test_save_outputs_all_keeps_every_cells_outputs_in_the_test_data_layout(saved_runs) -> None:
    record = saved_runs["all"]
    folder = record.location.parent
    assert record.save_outputs == "all" and json.loads(record.location.read_text())["save_outputs"] == "all"
    for cell in record.cells:
        where = folder / cell.artifacts["actual_outputs"]
        sets = 2 if cell.case == "bad" else 1
        assert sorted(p.relative_to(where).as_posix() for p in where.rglob("*.pb")) == \
            [f"test_data_set_{k}/output_0.pb" for k in range(sets)]
        manifest = json.loads((where / R.OUTPUTS_MANIFEST).read_text())
        assert manifest == {"case": cell.case, "profile": "cpu", "layout": "onnx-test-data",
                            "outputs": [{"index": 0, "name": "y", "kind": "tensor"}], "datasets": list(range(sets))}
        saved = R.read_saved_outputs(folder, cell)
        assert sorted(saved) == list(range(sets)) and all(list(v) == ["y"] for v in saved.values())


def test_saved_outputs_are_the_actual_values(saved_runs, reference, make_model) -> None:
    """The good case's saved output is what the model computes (the test-data inputs through numpy)."""
    import numpy as np
    import onnx
    from onnx import numpy_helper
    record = saved_runs["all"]
    good = next(c for c in record.cells if c.case == "good")
    x = numpy_helper.to_array(onnx.load_tensor(str(Path(record.options["root"]) / "good/test_data_set_0/input_0.pb")))
    actual = R.read_saved_outputs(record.location.parent, good)[0]["y"]
    np.testing.assert_allclose(actual, reference(make_model(), x), rtol=1e-6, atol=1e-6)


def test_save_outputs_failing_keeps_only_fail_cells_and_none_keeps_nothing(saved_runs) -> None:
    failing = {c.case: c.artifacts.get("actual_outputs") for c in saved_runs["failing"].cells}
    assert failing["good"] is None and failing["bad"]
    assert all("actual_outputs" not in c.artifacts for c in saved_runs["none"].cells)
    assert not list(saved_runs["none"].location.parent.rglob("*.pb"))
    assert {c.verdict for c in saved_runs["none"].cells} == {R.PASS, R.FAIL}
