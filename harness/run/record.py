"""Run records: versioned JSON with an envelope (machine, versions, commit, date), one entry per
case x profile cell. Arrays (latency samples, failing outputs) live in files beside it, referenced by
relative path. A journal (JSON lines) makes a killed run resumable.

Durability of the journal: every cell's line is written whole with ``os.write`` as soon as the cell finishes, so
a killed harness (SIGKILL, OOM killer, a crash) loses nothing: the bytes are in the kernel's page cache. The
file is fsync'd at most once a second (``Journal.SYNC_EVERY_S``) and when it is closed, so a power loss or a
kernel crash costs at most about the last second of cells, which a ``--resume`` reruns. An fsync per cell cost
more than the cell itself on the node suite.

Writing is shallow: a cell's fields go to ``json`` as they are (nested dicts and lists included), never through
``dataclasses.asdict``, whose deep copy of every comparison's metrics cost about a second per 300 cells.

The format is documented by a JSON Schema per version (harness/report/schemas/run-record.v<N>.json). A record of an
older version is upgraded on load, one step per version (``_UPGRADES``); example records of each older version are
kept in tests/data/records/.

Saved outputs (``save_outputs``: "all", "failing" or "none") sit beside the record in the ONNX test-data layout, one
folder per cell, named by the cell's ``artifacts["actual_outputs"]`` (relative to the record's folder)::

    cells/<case>__<profile>-<hash>/outputs.json               {"case", "profile", "layout", "outputs": [{"index",
                                                                "name", "kind"}], "datasets": [k, ...]}
    cells/<case>__<profile>-<hash>/test_data_set_<k>/output_<j>.pb   output j (graph order) of data set k, an
                                                                onnx TensorProto (SequenceProto, OptionalProto or
                                                                MapProto for those kinds) whose name is the output's

``read_saved_outputs`` reads them back.
"""

from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import subprocess
import time
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

from harness.atomic import atomic_write_bytes
from harness.errors import BaselineError

SCHEMA = "onnx-harness/run-record"
SCHEMA_VERSION = 2  # 2: "save_outputs" says which cells' outputs are beside the record; outputs.json per cell
SAVE_OUTPUTS = ("all", "failing", "none")  # --save-outputs: every cell that ran, FAIL cells only, none
OUTPUTS_MANIFEST = "outputs.json"  # in a cell's actual_outputs folder: which outputs and data sets it holds
JOURNAL_NAME = "journal.jsonl"
RECORD_NAME = "record.json"
LOG_NAME = "run.log"  # library warnings and transform output: kept off the terminal
_NOT_IN_HEADER = ("cells", "location")  # the journal's header line holds every other RunRecord field

# Verdicts. PASS* is a PASS with a caveat: its nodes did not all run on the profile's EP ("fell back"), or (harness.task)
# it failed elementwise but passed its profile's [task] gates on a case that declares its task kind.
PASS, PASS_FELL_BACK, FAIL, XFAIL, XPASS = "PASS", "PASS*", "FAIL", "XFAIL", "XPASS"
SKIPPED, CRASH, TIMEOUT, OOM, ERROR = "SKIPPED", "CRASH", "TIMEOUT", "OOM", "ERROR"
OVER_BUDGET, NO_GOLDEN = "OVER_BUDGET", "NO_GOLDEN"
# The harness's own precision transform (fp16, int8) could not produce a model for this profile: not the
# device's fault, counted apart from ERROR. NOT_APPLICABLE: the transform does not apply (e.g. int8 on an
# already quantised model); like SKIPPED, it is not a failure.
TRANSFORM_FAILED, NOT_APPLICABLE = "TRANSFORM_FAILED", "NOT_APPLICABLE"
# ONNX Runtime could not create the session because it does not implement something the model uses (no
# kernel for an op and type, an opset newer than it supports, an op it does not know): a model that cannot run
# fails the run, but it is counted apart from ERROR, and a profile's known_failures can expect it (XFAIL).
UNSUPPORTED = "UNSUPPORTED"
# A Ray lab lost the cell (its hosts died, or it passed its deadline twice): infrastructure, not the device's
# verdict. Failing, so a run with lost cells is not green, and --resume runs lost cells again.
LOST = "LOST"
VERDICTS = (PASS, PASS_FELL_BACK, FAIL, XFAIL, XPASS, SKIPPED, CRASH, TIMEOUT, OOM, ERROR, OVER_BUDGET, NO_GOLDEN,
            TRANSFORM_FAILED, NOT_APPLICABLE, UNSUPPORTED, LOST)  # every verdict a cell can hold
FAILING = frozenset({FAIL, CRASH, TIMEOUT, OOM, ERROR, OVER_BUDGET, NO_GOLDEN, TRANSFORM_FAILED, UNSUPPORTED, LOST})


@dataclass
class CellResult:
    case: str
    profile: str
    verdict: str
    detail: str = ""
    outputs: list[dict[str, Any]] = field(default_factory=list)
    placement: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)
    latency: dict[str, Any] = field(default_factory=dict)
    budget: list[str] = field(default_factory=list)
    error: dict[str, Any] = field(default_factory=dict)
    known_failure: str = ""
    artifacts: dict[str, str] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    host: str = ""  # the machine that ran the cell, where it is not the record's own (a Ray lab host)
    task: dict[str, Any] = field(default_factory=dict)  # task metrics and gates (harness.task), {} for no task kind

    @property
    def key(self) -> str:
        return cell_key(self.case, self.profile)

    def to_dict(self) -> dict[str, Any]:
        """The fields as they are (shallow: nested values are shared with the cell, not copied)."""
        return {name: getattr(self, name) for name in _CELL_FIELDS}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CellResult":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


_CELL_FIELDS = tuple(f.name for f in fields(CellResult))
_FIELD_TYPES = {"case": str, "profile": str, "verdict": str, "detail": str, "outputs": list, "placement": dict,
                "timing": dict, "memory": dict, "latency": dict, "budget": list, "error": dict, "known_failure": str,
                "artifacts": dict, "model": dict, "duration_s": (int, float), "host": str, "task": dict}


def cell_problem(data: Any) -> str:
    """Why ``data`` is not a cell this harness wrote ("" when it is): an object with case, profile and verdict,
    and every known field of its declared type (a record is data; a wrong type would fail later, in the report)."""
    if not isinstance(data, dict):
        return f"is a {type(data).__name__}, not an object"
    missing = [name for name in ("case", "profile", "verdict") if name not in data]
    if missing:
        return f"lacks {', '.join(missing)}"
    for name, kind in _FIELD_TYPES.items():
        if name in data and (not isinstance(data[name], kind) or isinstance(data[name], bool)):
            return f"field {name!r} is {type(data[name]).__name__}, not {getattr(kind, '__name__', 'a number')}"
    return ""


def cell_key(case: str, profile: str) -> str:
    return f"{case}|{profile}"


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1)
def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    import psutil
    return {"node": platform.node(), "cpu": cpu, "cores": os.cpu_count(), "machine": platform.machine(),
            "system": platform.system(), "release": platform.release(), "python": platform.python_version(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)}


def versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime

    from harness import __version__
    return {"harness": __version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__,
            "numpy": numpy.__version__}


def commit_info(cwd: Path) -> dict[str, Any]:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=cwd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return {}
    if sha.returncode != 0:
        return {}
    return {"id": sha.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


@dataclass
class RunRecord:
    run_id: str
    created: str
    machine: dict[str, Any]
    versions: dict[str, str]
    commit: dict[str, Any]
    argv: list[str]
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    cells: list[CellResult] = field(default_factory=list)
    finished: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    ops: dict[str, Any] = field(default_factory=dict)  # per-operator summary (harness.report.ops), when cells name ops
    warnings: list[str] = field(default_factory=list)
    log: str = ""  # the run's log file, relative to the record's folder ("" when nothing was logged)
    write_errors: list[str] = field(default_factory=list)  # what could not be written (a full disk), one line each
    save_outputs: str = "failing"  # whose actual outputs are beside the record: "all", "failing" or "none"
    location: Path | None = field(default=None, compare=False, repr=False)  # where write() put it; not saved

    def header_dict(self) -> dict[str, Any]:
        """Every saved field but the cells (shallow)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in _NOT_IN_HEADER}

    def to_json(self) -> str:
        """The record, one header field and one cell per line: readable and diffable, and written by json's C
        encoder (``indent`` would make json use its pure-Python encoder, ten times slower on a suite's cells)."""
        body = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **self.header_dict()}
        lines = [f"  {json.dumps(name)}: {_dumps(value)}," for name, value in body.items()]
        cells = ",\n".join(f"    {_dumps(cell.to_dict())}" for cell in self.cells)
        return "{\n" + "\n".join(lines) + (f'\n  "cells": [\n{cells}\n  ]\n}}\n' if cells else '\n  "cells": []\n}\n')

    def write(self, folder: Path) -> Path:
        path = folder / RECORD_NAME
        atomic_write_bytes(path, self.to_json().encode("utf-8"))
        return path


def _json_default(value: Any) -> Any:
    """What json cannot write itself: a dataclass as its fields, anything else (a Path) as its text."""
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return str(value)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, default=_json_default)


def _v1_to_v2(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 saved the outputs of FAIL cells only, and said nothing about it."""
    return {**data, "save_outputs": "failing", "schema_version": 2}


_UPGRADES = {1: _v1_to_v2}  # version N -> a function returning the same record as version N+1


def _upgraded(data: dict[str, Any], version: int) -> dict[str, Any]:
    """``data`` (a record, or a journal header, of ``version``) brought to SCHEMA_VERSION one step at a time."""
    while version < SCHEMA_VERSION:
        data = _UPGRADES[version](data)
        version += 1
    return data


def _readable_version(version: Any, where: str) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or version > SCHEMA_VERSION or version < 1:
        newer = isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION
        raise BaselineError(f"{where}: run record schema_version {printable_repr(version)} is not readable by this harness "
                            f"(reads 1..{SCHEMA_VERSION})",
                            hint="upgrade the harness to read it" if newer else "pass the record.json of a harness run")
    return version


def upgrade(data: Any, where: str) -> dict[str, Any]:
    """Bring an older record up to SCHEMA_VERSION, or refuse with the reason."""
    if not isinstance(data, dict):
        raise BaselineError(f"{where}: a run record is a JSON object, not {type(data).__name__}",
                            hint="pass the record.json of a harness run")
    if data.get("schema") != SCHEMA:
        raise BaselineError(f"{where}: not a harness run record (schema {printable_repr(data.get('schema'))})",
                            hint="pass the record.json of a harness run")
    data = _upgraded(data, _readable_version(data.get("schema_version"), where))
    _check_shape(data, where)
    return data


def printable_repr(value: Any, limit: int = 80) -> str:
    """A foreign value, quoted and cut, for a one-line message."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _check_shape(data: dict[str, Any], where: str) -> None:
    """The fields a record's reader indexes into have the types it expects (a hand-edited or foreign file)."""
    cells = data.get("cells", [])
    if not isinstance(cells, list):
        raise BaselineError(f"{where}: 'cells' must be a list, not {type(cells).__name__}")
    for index, cell in enumerate(cells):
        problem = cell_problem(cell)
        if problem:
            raise BaselineError(f"{where}: cells[{index}] {problem}; a cell must be an object with 'case', "
                                f"'profile' and 'verdict' strings")
    for name in ("machine", "versions", "commit", "profiles", "options", "noise", "ops"):
        if not isinstance(data.get(name, {}), dict):
            raise BaselineError(f"{where}: {name!r} must be an object")
    for name in ("argv", "warnings", "write_errors"):
        if not isinstance(data.get(name, []), list):
            raise BaselineError(f"{where}: {name!r} must be a list")
    if data.get("save_outputs", "failing") not in SAVE_OUTPUTS:
        raise BaselineError(f"{where}: 'save_outputs' must be one of {', '.join(SAVE_OUTPUTS)}")
    for name in ("run_id", "created", "finished", "log"):
        if not isinstance(data.get(name, ""), str):
            raise BaselineError(f"{where}: {name!r} must be a string, not {type(data[name]).__name__}")


def load_record(path: Path) -> tuple[RunRecord, Path]:
    """Load record.json (or a run folder holding one, or only a journal from a killed run, passed as its
    folder or as the journal.jsonl itself)."""
    folder = path if path.is_dir() else path.parent
    record_path = folder / RECORD_NAME if path.is_dir() or path.name == JOURNAL_NAME else path
    try:
        return _load_record(path, folder, record_path)
    except OSError as exc:  # unreadable, a name too long, a folder where a file should be
        raise BaselineError(f"{path}: cannot read the run record ({exc.strerror or exc})") from None


def _load_record(path: Path, folder: Path, record_path: Path) -> tuple[RunRecord, Path]:
    if record_path.is_file():
        try:
            data = json.loads(record_path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            raise BaselineError(f"{record_path}: not valid JSON ({type(exc).__name__}: {str(exc)[:200]})") from None
        data = upgrade(data, str(record_path))
        cells = {c.key: c for c in (CellResult.from_dict(c) for c in data.get("cells", []))}
        journal = folder / JOURNAL_NAME
        if journal.is_file():  # a later --resume of this run may have finished more cells, then been killed
            cells.update({c.key: c for c in read_journal(journal)[1]})
        return _record(_header_fields(data), list(cells.values()), record_path), folder
    journal = folder / JOURNAL_NAME
    if journal.is_file():
        header, cells = read_journal(journal)
        return _record(header, cells, journal), folder
    raise BaselineError(f"{path}: no {RECORD_NAME} or {JOURNAL_NAME} there", hint="pass a results/<run>/ folder")


def _record(header: dict[str, Any], cells: list[CellResult], where: Path) -> RunRecord:
    """The loaded record, with ``location`` the file it came from (its folder holds the cells' artifacts)."""
    missing = [name for name in ("run_id", "created", "machine", "versions", "commit", "argv") if name not in header]
    if missing:
        raise BaselineError(f"{where}: run record lacks {', '.join(missing)}", hint="pass the record of a harness run")
    return RunRecord(**header, cells=cells, location=where)


def _header_fields(data: dict[str, Any]) -> dict[str, Any]:
    """The RunRecord fields in ``data`` other than its cells and location (unknown keys are dropped)."""
    return {k: v for k, v in data.items() if k in RunRecord.__dataclass_fields__ and k not in _NOT_IN_HEADER}


def outputs_manifest(case: str, profile: str, outputs: list[dict[str, Any]], datasets: list[int]) -> bytes:
    """The outputs.json of a cell's saved outputs: what a reader needs to parse the .pb files without the model
    (each output's proto kind) and which data sets are there."""
    body = {"case": case, "profile": profile, "layout": "onnx-test-data", "outputs": outputs, "datasets": datasets}
    return (json.dumps(body, indent=1) + "\n").encode("utf-8")


def saved_outputs_dir(folder: Path, cell: CellResult) -> Path | None:
    """The folder of ``cell``'s saved outputs in the run ``folder``, or None when none were saved. A path that
    leaves the run's folder (a hand-edited or hostile record) is refused."""
    relative = cell.artifacts.get("actual_outputs")
    if not relative:
        return None
    root = folder.resolve()
    path = (root / relative).resolve()
    if not path.is_relative_to(root):
        raise BaselineError(f"{folder}: case {cell.case!r} on profile {cell.profile!r}: actual_outputs "
                            f"{printable_repr(relative)} lies outside the run's folder", hint="pass an unedited record")
    return path if path.is_dir() else None


def read_saved_outputs(folder: Path, cell: CellResult) -> dict[int, dict[str, Any]]:
    """The actual outputs ``cell`` saved beside the record in run ``folder``: data set index -> output name ->
    value (a numpy array, or a list / dict / None for sequence, map and optional outputs), {} when none were
    saved. A version 1 folder has no outputs.json: its files are read as TensorProtos, named by their protos."""
    from harness.golden.layout import read_value  # onnx: only for a reader of saved outputs
    where = saved_outputs_dir(folder, cell)
    if where is None:
        return {}
    kinds = _saved_kinds(where)
    found: dict[int, dict[str, Any]] = {}
    for ds_dir in sorted(where.glob("test_data_set_*")):
        index = ds_dir.name.removeprefix("test_data_set_")
        if not index.isdigit():
            continue
        for pb in sorted(ds_dir.glob("output_*.pb")):
            position = pb.stem.removeprefix("output_")
            name, value = read_value(pb, _type_of(kinds.get(int(position)) if position.isdigit() else None))
            found.setdefault(int(index), {})[name or pb.stem] = value
    return found


def _saved_kinds(where: Path) -> dict[int, str]:
    """Output position -> proto kind, from the folder's outputs.json ({} when absent: all tensors)."""
    manifest = where / OUTPUTS_MANIFEST
    if not manifest.is_file():
        return {}
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        kinds = {int(o["index"]): str(o["kind"]) for o in data["outputs"]}
        if not set(kinds.values()) <= _KINDS:
            raise ValueError(f"kinds {sorted(set(kinds.values()) - _KINDS)}")
        return kinds
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        raise BaselineError(f"{manifest}: not a saved-outputs manifest ({type(exc).__name__})",
                            hint="delete the folder's outputs.json to read its files as tensors") from None


_KINDS = {"tensor", "sequence", "optional", "map"}


def _type_of(kind: str | None) -> Any:
    """A TypeProto of ``kind`` (only its kind matters to the reader); None for a tensor."""
    if kind in (None, "tensor"):
        return None
    import onnx
    type_proto = onnx.TypeProto()
    getattr(type_proto, f"{kind}_type").SetInParent()
    return type_proto


class Journal:
    """Append-only JSON lines: a header line, then one line per finished cell, each written whole with
    ``os.write`` (at once in the page cache: a killed process loses nothing) and fsync'd at most every
    ``SYNC_EVERY_S`` and on close (a power loss costs at most that much). A write that fails (a full disk) is cut
    back to the last whole line, so the journal never holds a torn line that a later append would glue onto, and
    the failure is raised to the caller."""

    SYNC_EVERY_S = 1.0

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / JOURNAL_NAME
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        self._synced = 0.0  # monotonic time of the last fsync (0: none yet, so the first line is synced)
        self.syncs = 0

    def _sync(self, fd: int) -> None:
        os.fsync(fd)
        self._synced = time.monotonic()
        self.syncs += 1

    def _append(self, obj: dict[str, Any]) -> None:
        if self._fd is None:
            raise OSError(f"journal {self.path} is closed")
        data = (_dumps(obj) + "\n").encode("utf-8")
        size = os.fstat(self._fd).st_size
        try:
            view = memoryview(data)
            while view:  # os.write may write part of it
                view = view[os.write(self._fd, view):]
            if time.monotonic() - self._synced >= self.SYNC_EVERY_S:
                self._sync(self._fd)
        except OSError:
            try:
                os.ftruncate(self._fd, size)  # no torn line left behind
            except OSError:
                pass
            raise

    def header(self, record: RunRecord) -> None:
        self._append({"kind": "header", "schema_version": SCHEMA_VERSION, **record.header_dict()})

    def cell(self, result: CellResult) -> None:
        self._append({"kind": "cell", **result.to_dict()})

    def close(self) -> None:
        """Every line is already written (nothing is buffered in this process), so closing cannot lose a cell;
        the last fsync puts the cells of the last second on disk."""
        if self._fd is not None:
            fd, self._fd = self._fd, None
            try:
                self._sync(fd)
            except OSError:
                pass  # written, only not forced to disk: a power loss could cost the last second
            try:
                os.close(fd)
            except OSError:
                pass


def read_journal(path: Path) -> tuple[dict[str, Any], list[CellResult]]:
    header: dict[str, Any] = {}
    cells: dict[str, CellResult] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except (json.JSONDecodeError, RecursionError):
            continue  # a line torn by a kill mid-write: that cell simply reruns
        if not isinstance(entry, dict):
            continue  # not ours (a stray or damaged line): skip it like a torn one
        kind = entry.pop("kind", None)
        if kind == "header" and not header:
            version = _readable_version(entry.pop("schema_version", 1), str(path))
            header = _header_fields(_upgraded(entry, version))
        elif kind == "cell" and not cell_problem(entry):  # an ill-typed line is skipped like a torn one: it reruns
            result = CellResult.from_dict(entry)
            cells[result.key] = result
    if not header:
        raise BaselineError(f"{path}: journal has no header line")
    _check_shape(header, str(path))
    return header, list(cells.values())
