"""The pytest plugin (entry point ``pytest11``): conformance cells as ordinary test items in any project's suite.

``pytest --harness-cases reference_outputs --harness-profile cpu --harness-profile cpu-int8`` collects one item
per case x profile (``reference_outputs/mlp::cpu-int8``). Cells run through the library entry point
``api.run_matrix``, in the same isolated workers as ``harness run``, so a crashing execution provider fails one
item and nothing else. Verdicts map onto pytest outcomes: PASS passes, SKIPPED and NOT_APPLICABLE skip with
their reason, a profile's known failure is an xfail marker (strict as pytest's ``xfail_strict`` says), and every
failing verdict fails with the harness's own message (the comparator's, for numbers) and no harness frames.

How cells run: a plain session runs all its items' cells in one matrix run when the first item runs (one probe per
profile, cells in parallel), then each item reads its cell. Under pytest-xdist a worker runs only the items sent to
it and cannot know them in advance, so each worker runs each of its items' cells alone: no cell runs twice, and the
results are those of a plain run. Each process keeps its run records in its own folder; ``--harness-record PATH``
merges their cells (in the xdist controller, from every worker's share) into one ``PATH/record.json`` that
``harness report`` renders.

For people who write their own tests: the ``harness_run`` fixture runs (or reuses) one cell and returns its
``CellResult``; ``assert_conforms(actual, golden, tolerance)`` compares two values with the harness's comparator
and fails with its torch-style message.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from harness.errors import HarnessError

if TYPE_CHECKING:  # imported where used: a project's plain pytest run must not pay for onnx and onnxruntime
    from harness.compare.tolerances import Tolerance
    from harness.golden.cases import Case
    from harness.profiles.schema import Profile
    from harness.run.record import CellResult, RunRecord

_RECORD_OUTPUT = "harness_record"  # the key of a worker's share of the record in xdist's workeroutput
_REFERENCE_DETAIL = "reference: the other profiles are compared with these outputs"  # as harness.api says it


class CellFailed(Exception):
    """A cell whose verdict fails the run; its message is the whole report (no traceback is shown)."""


class KnownFailureHit(Exception):
    """A cell the profile expects to fail did fail: the only exception its xfail marker accepts, so a failure
    the entry does not cover (another output, a crash where an output was listed) stays a failure."""


# ---- options ------------------------------------------------------------------------------------------------------

_OPTIONS = (  # (flag, ini name, ini type, help)
    ("--harness-cases", "harness_cases", "args",
     "case folders, bare .onnx files or a case source name (onnx-node); repeatable"),
    ("--harness-profile", "harness_profiles", "args", "device profile to run each case on; repeatable (default: all)"),
    ("--harness-reference", "harness_reference", "string",
     "profile whose outputs stand in for goldens a case lacks (default: cpu)"),
    ("--harness-record", "harness_record", "string",
     "write the merged run record to PATH/record.json (for 'harness report PATH --markdown/--html')"),
)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "ONNX conformance harness (cells as test items)")
    for flag, ini, kind, text in _OPTIONS:
        repeat = kind == "args"
        group.addoption(flag, action="append" if repeat else "store", dest=ini, default=None,
                        metavar="PATH" if flag in ("--harness-cases", "--harness-record") else "NAME", help=text)
        parser.addini(ini, text, type=kind, default=[] if repeat else "")
    group.addoption("--harness-budgets", action="store_true", dest="harness_budgets", default=None,
                    help="measure latency and memory and fail cells over their profile's budgets (the default)")
    group.addoption("--no-harness-budgets", action="store_false", dest="harness_budgets",
                    help="numerics only: no latency sampling, no budgets (faster; advised with -n)")
    parser.addini("harness_budgets", "check profile budgets (true/false)", type="bool", default=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "harness: a conformance cell (case x profile) collected by --harness-cases; "
                                       "select them with -m harness, leave them out with -m 'not harness'")


@dataclass(frozen=True)
class Settings:
    """The plugin's options, each from the command line or else [tool.pytest.ini_options]."""

    cases: tuple[str, ...]
    profiles: tuple[str, ...]
    reference: str
    budgets: bool
    record: Path | None
    argv: tuple[str, ...]  # the pytest command line, kept in the run records

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def pick(name: str) -> Any:
            given = config.getoption(name)
            return given if given is not None else config.getini(name)
        ini_dir = config.inipath.parent if config.inipath else config.rootpath
        cases = config.getoption("harness_cases")
        if cases is None:  # ini entries that are paths are relative to the ini file, as pytest's own are
            cases = [_ini_path(value, ini_dir) for value in config.getini("harness_cases")]
        record = pick("harness_record")
        return cls(cases=tuple(cases), profiles=tuple(pick("harness_profiles")),
                   reference=pick("harness_reference") or "cpu", budgets=bool(pick("harness_budgets")),
                   record=Path(record) if record else None, argv=("pytest", *config.invocation_params.args))


def _ini_path(value: str, ini_dir: Path) -> str:
    """An ini case entry: a path relative to the ini file when one is there, else as written (a source name)."""
    candidate = ini_dir / value
    return str(candidate) if candidate.exists() else value


# ---- one process's runs ----------------------------------------------------------------------------------------


@dataclass
class _Ran:
    cell: CellResult
    record: RunRecord


@dataclass
class HarnessSession:
    """This process's cells: each run at most once, by an item or by the ``harness_run`` fixture.

    ``batch``: a plain session runs every harness item's cell in one matrix run when its first item runs (one
    probe per profile, cells in parallel on the cores); an xdist worker cannot know which items it will be sent,
    so it runs each item's cell on its own. A batch that is refused as bad input (one broken case) is dropped and
    each item then runs alone, meeting the error itself, as it would under xdist."""

    settings: Settings
    runs_dir: Callable[[], Path]  # where this process's run records go (made on first use)
    batch: bool = True
    profile_names: list[str] = field(default_factory=list)
    ran: dict[tuple[str, str], _Ran] = field(default_factory=dict)
    batched: bool = False
    resolved: tuple[list[Profile], list[_Found]] | None = None

    def options(self, source: dict[str, Any] | None) -> Any:
        from harness import api
        return api.MatrixOptions(out=self.runs_dir(), jobs=0, numerics_only=not self.settings.budgets,
                                 reference=self.settings.reference, source=source, argv=list(self.settings.argv))

    def run(self, case: Case, profile: str, source: dict[str, Any] | None = None) -> CellResult:
        """The cell of ``case`` on ``profile``, run in an isolated worker the first time it is asked for."""
        key = (case.name, profile)
        if key not in self.ran:
            from harness import api
            record = api.run_matrix([case], [profile], self.options(source))
            self._keep(record)
        return self.ran[key].cell

    def run_item(self, item: HarnessItem) -> CellResult:
        if self.batch and not self.batched:
            self.batched = True
            self._run_batch([i for i in item.session.items if isinstance(i, HarnessItem)])
        return self.run(item.found.case, item.profile.name, item.found.source)

    def _run_batch(self, items: list[HarnessItem]) -> None:
        """The items' cells in as few matrix runs as their profiles allow: cases asking for the same profiles
        (all of them, unless -k or -m deselected some) and coming from the same source run together."""
        from harness import api
        profiles: dict[str, list[str]] = {}
        founds: dict[str, _Found] = {}
        for item in [i for i in items if (i.found.case.name, i.profile.name) not in self.ran]:
            profiles.setdefault(item.found.nodeid, []).append(item.profile.name)
            founds[item.found.nodeid] = item.found
        groups: dict[tuple[tuple[str, ...], str], list[_Found]] = {}
        for nodeid, names in profiles.items():
            groups.setdefault((tuple(names), json.dumps(founds[nodeid].source)), []).append(founds[nodeid])
        for (names, _), group in groups.items():
            try:
                self._keep(api.run_matrix([f.case for f in group], list(names), self.options(group[0].source)))
            except HarnessError:
                continue

    def _keep(self, record: RunRecord) -> None:
        for cell in record.cells:
            self.ran[(cell.case, cell.profile)] = _Ran(self._as_in_matrix(cell), record)

    def _as_in_matrix(self, cell: CellResult) -> CellResult:
        """The cell as a run of the whole matrix gives it. Alone, the reference profile's cell of a case without
        goldens has nothing to compare with (NO_GOLDEN); beside other profiles it is the reference they are
        compared with, and passes when it ran, as ``harness run`` reports it."""
        from harness.run import record as R
        others = [p for p in self.profile_names if p != self.settings.reference]
        if cell.verdict == R.NO_GOLDEN and cell.profile == self.settings.reference and others:
            return replace(cell, verdict=R.PASS, detail=_REFERENCE_DETAIL)
        return cell

    def merged(self) -> RunRecord | None:
        """One record of every cell this process ran (artifact paths made relative to the record's folder)."""
        if not self.ran or self.settings.record is None:
            return None
        return merge_records([_relocated(r, self.settings.record) for r in self.ran.values()], self.settings)


def _relocated(ran: _Ran, folder: Path) -> tuple[CellResult, RunRecord]:
    """The cell with its artifacts' paths relative to ``folder`` (they were relative to its own run's folder)."""
    run_dir = ran.record.location.parent if ran.record.location else None
    if run_dir is None:
        return replace(ran.cell, artifacts={}), ran.record
    moved = {name: os.path.relpath(run_dir / path, folder) for name, path in ran.cell.artifacts.items()}
    return replace(ran.cell, artifacts=moved), ran.record


def merge_records(parts: list[tuple[CellResult, RunRecord]], settings: Settings) -> RunRecord:
    """One run record from the cells of many runs: the first run's machine and versions, every run's profiles,
    warnings and write errors (each once), the cells by case, then profile in the order asked for, so that a
    plain run and an xdist run write the same record whatever order their cells finished in."""
    from harness.run import record as R
    rank = {name: i for i, name in enumerate(settings.profiles)}
    parts = sorted(parts, key=lambda part: (part[0].case, rank.get(part[0].profile, len(rank)), part[0].profile))
    first = parts[0][1]
    profiles: dict[str, dict[str, Any]] = {}
    for _, record in parts:
        profiles.update(record.profiles)
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    options = {**first.options, "selection": {"targets": sorted({c.case for c, _ in parts}),
                                              "profiles": list(profiles), "cwd": str(Path.cwd())}}
    return R.RunRecord(run_id=f"pytest-{stamp}", created=min(r.created for _, r in parts), machine=first.machine,
                       versions=first.versions, commit=first.commit, argv=list(settings.argv), profiles=profiles,
                       cells=[c for c, _ in parts], finished=R.now_iso(), options=options,
                       warnings=list(dict.fromkeys(w for _, r in parts for w in r.warnings)),
                       write_errors=list(dict.fromkeys(w for _, r in parts for w in r.write_errors)),
                       save_outputs=first.save_outputs)


def _record_from_json(text: str) -> RunRecord:
    from harness.run import record as R
    data = json.loads(text)
    header = {k: v for k, v in data.items() if k in R.RunRecord.__dataclass_fields__ and k not in ("cells", "location")}
    return R.RunRecord(**header, cells=[R.CellResult.from_dict(c) for c in data.get("cells", [])])


def _write_record(record: RunRecord, folder: Path, session: pytest.Session) -> str:
    """PATH/record.json and the line that says so; one that cannot be written fails the session (exit 4)."""
    try:
        return f"harness: run record of {len(record.cells)} cell(s) written to {record.write(folder)}"
    except OSError as exc:
        session.exitstatus = pytest.ExitCode.USAGE_ERROR
        return f"harness: error: --harness-record {folder}: cannot write the run record: {exc.strerror or exc}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    said = terminalreporter.config.stash.get(_RECORD_LINE, "")
    if said:
        terminalreporter.write_line(said)


_SESSION = pytest.StashKey[HarnessSession]()
_WORKER_PARTS = pytest.StashKey[list[str]]()
_RECORD_LINE = pytest.StashKey[str]()


def _session(config: pytest.Config) -> HarnessSession:
    if _SESSION not in config.stash:
        settings = Settings.from_config(config)
        made: list[Path] = []

        def runs_dir() -> Path:
            if not made:
                made.append(_runs_dir(config, settings))
            return made[0]
        config.stash[_SESSION] = HarnessSession(settings, runs_dir, batch=not hasattr(config, "workerinput"))
    return config.stash[_SESSION]


def _runs_dir(config: pytest.Config, settings: Settings) -> Path:
    """Per process, so xdist workers never write into one folder: beside the merged record, else pytest's tmp."""
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    if settings.record is not None:
        return settings.record / "runs" / worker
    factory = getattr(config, "_tmp_path_factory", None)  # pytest's own (kept a few sessions), unless -p no:tmpdir
    return factory.mktemp("harness-runs") if factory else Path(tempfile.mkdtemp(prefix="harness-runs-"))


def _usage(exc: HarnessError) -> pytest.UsageError:
    return pytest.UsageError(f"harness: {exc.one_line()}")


# ---- collection -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Found:
    case: Case
    nodeid: str
    source: dict[str, Any] | None


def _found_cases(settings: Settings, rootpath: Path) -> list[_Found]:
    """Each ``--harness-cases`` entry: an existing path is case folders or a model file (as ``harness run``
    takes them), a word a case source (``onnx-node``) or else a case name under ./reference_outputs."""
    from harness.golden.sources import SOURCES, get_source
    found: dict[str, _Found] = {}
    for entry in settings.cases:
        if not Path(entry).exists() and entry in SOURCES:
            source = get_source(entry)
            pairs = [(f"{entry}/{case.name}", case) for case in source.cases()]
            described: dict[str, Any] | None = source.describe()
        else:
            pairs = [(_nodeid(case, rootpath), case) for case in _discovered(entry, SOURCES)]
            described = None
        for nodeid, case in pairs:
            found.setdefault(nodeid, _Found(case, nodeid, described))
    return list(found.values())


def _discovered(entry: str, sources: Mapping[str, Any]) -> list[Case]:
    from harness import api
    from harness.errors import UsageError
    from harness.golden.cases import discover
    try:
        return discover([entry], api.MatrixOptions().root)
    except UsageError as exc:
        if Path(entry).exists():
            raise
        raise UsageError(f"--harness-cases {entry}: {exc.message}",
                         hint=f"pass case folders, .onnx files, or a case source: {', '.join(sorted(sources))}"
                         ) from None


def _nodeid(case: Case, rootpath: Path) -> str:
    """The case's path from the rootdir: ``reference_outputs/mlp``, ``models/net.onnx``."""
    return Path(os.path.relpath(case.model_path if case.model_file else case.path, rootpath)).as_posix()


def _profiles(settings: Settings) -> list[Profile]:
    from harness import api
    return api.load_profiles(list(settings.profiles) or None, api.MatrixOptions())


def _resolved(config: pytest.Config) -> tuple[list[Profile], list[_Found]]:
    """The profiles and cases the options name, looked up once per process; bad ones are a usage error."""
    state = _session(config)
    if state.resolved is None:
        try:
            state.resolved = (_profiles(state.settings), _found_cases(state.settings, config.rootpath))
        except HarnessError as exc:
            raise _usage(exc) from None
        state.profile_names = [p.name for p in state.resolved[0]]
    return state.resolved


def pytest_sessionstart(session: pytest.Session) -> None:
    """Bad options fail here, in one line, also in the xdist controller (a worker's collection error would be
    lost there)."""
    if _session(session.config).settings.cases:
        _resolved(session.config)


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselect, so they apply to these items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _session(config).settings.cases:
        return
    profiles, found = _resolved(config)
    for entry in found:  # genitems reports each collector and item, so pytest counts and lists them
        items.extend(session.genitems(HarnessCase.from_parent(session, name=entry.nodeid, nodeid=entry.nodeid,
                                                              found=entry, profiles=profiles)))


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = _session(config).settings
    if not settings.cases:
        return []
    budgets = "budgets checked" if settings.budgets else "numerics only"
    profiles = " ".join(settings.profiles) or "(all)"
    return [f"harness: cases {' '.join(settings.cases)}; profiles {profiles}; reference {settings.reference}; {budgets}"]


class HarnessCase(pytest.Collector):
    """One case: its items are its cells, one per profile."""

    def __init__(self, *, found: _Found, profiles: list[Profile], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.found = found
        self.profiles = profiles

    def collect(self) -> list[HarnessItem]:
        return [HarnessItem.from_parent(self, name=p.name, profile=p) for p in self.profiles]


class HarnessItem(pytest.Item):
    """One cell: ``case::profile``. Runs the cell in an isolated worker and maps its verdict to an outcome."""

    def __init__(self, *, profile: Profile, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.profile = profile
        self.found: _Found = self.parent.found  # type: ignore[union-attr]
        self.add_marker(pytest.mark.harness)
        known = profile.known_failure(self.found.case.name)
        if known is not None:  # strict where the profile's entry says so, else as the project's xfail_strict says
            strict = {"strict": True} if known.strict else {}
            self.add_marker(pytest.mark.xfail(reason=f"known failure on {profile.name}: {known.reason}",
                                              raises=KnownFailureHit, **strict))

    def runtest(self) -> None:
        __tracebackhide__ = True
        cell = _session(self.config).run_item(self)
        self.user_properties += [("verdict", cell.verdict), ("detail", cell.detail)]
        judge(cell)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> Any:
        """The harness's message alone: a failing cell and a bad case are not errors in anyone's Python."""
        if isinstance(excinfo.value, (CellFailed, KnownFailureHit)):
            return str(excinfo.value)
        if isinstance(excinfo.value, HarnessError):
            return f"harness: {excinfo.value.one_line()}"
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        """The failure section's title. Not the node id: pytest would print a '.' in it (model.onnx) as '::'."""
        return self.found.case.model_path, None, f"{self.found.nodeid} on {self.profile.name}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A skipped cell is reported at its id (``cases/relu::cpu-int8: NOT_APPLICABLE: ...``), not at the line
    inside pytest that raised the skip."""
    report = yield
    if isinstance(item, HarnessItem) and report.skipped and isinstance(report.longrepr, tuple):
        report.longrepr = (item.nodeid, None, report.longrepr[2])
    return report


def judge(cell: CellResult) -> None:
    """A cell's verdict as a pytest outcome: return (it passed), skip, or raise with the harness's message."""
    __tracebackhide__ = True
    from harness.run import record as R
    if cell.verdict in (R.PASS, R.PASS_FELL_BACK, R.XPASS):  # XPASS: the xfail marker reports it
        return
    if cell.verdict in (R.SKIPPED, R.NOT_APPLICABLE):
        pytest.skip(f"{cell.verdict}: {cell.detail}" if cell.detail else cell.verdict)
    if cell.verdict == R.XFAIL:
        raise KnownFailureHit(cell.detail)
    raise CellFailed(failure_text(cell))


def failure_text(cell: CellResult) -> str:
    """The verdict line, then the comparator's message for each failing output (numbers, then what to do)."""
    from harness.run.verdict import failure_messages
    head = f"{cell.verdict}: case {cell.case!r} on profile {cell.profile!r}" + (f": {cell.detail}" if cell.detail else "")
    return "\n\n".join([head, *failure_messages(cell)]) if cell.outputs else head


# ---- records: per process, merged in the xdist controller --------------------------------------------------------


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    state = _session(config)
    if state.settings.record is None:
        return
    workeroutput = getattr(config, "workeroutput", None)
    record = state.merged()
    if workeroutput is not None:  # an xdist worker: its share goes to the controller, which writes the record
        workeroutput[_RECORD_OUTPUT] = record.to_json() if record else ""
        return
    parts = config.stash.get(_WORKER_PARTS, [])
    if parts:
        records = [_record_from_json(text) for text in parts]
        record = merge_records([(c, r) for r in records for c in r.cells], state.settings)
    if record is not None:
        config.stash[_RECORD_LINE] = _write_record(record, state.settings.record, session)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: keep each worker's share of the run record (written at the session's end)."""
    text = getattr(node, "workeroutput", {}).get(_RECORD_OUTPUT)
    if text:
        node.config.stash.setdefault(_WORKER_PARTS, []).append(text)


# ---- for people who write their own tests ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def harness_run(pytestconfig: pytest.Config) -> Callable[[Any, str], CellResult]:
    """``harness_run(case, profile) -> CellResult``: the cell of ``case`` (a case folder, a .onnx file, a case name
    under ./reference_outputs, or a ``Case``) on ``profile``, run once per process in an isolated worker and shared
    with the plugin's own items. Its ``verdict``, ``detail`` and ``outputs`` are the run record's."""
    state = _session(pytestconfig)

    def run(case: Any, profile: str) -> CellResult:
        __tracebackhide__ = True
        try:
            return state.run(_one_case(case, state, pytestconfig.rootpath), profile)
        except HarnessError as exc:
            pytest.fail(f"harness: {exc.one_line()}", pytrace=False)
    return run


def _one_case(case: Any, state: HarnessSession, rootpath: Path) -> Case:
    """A ``Case`` as given; else the collected case at that path (its cells may have run already); else the one
    case the selector names, as ``harness run`` resolves it."""
    from harness.errors import UsageError
    from harness.golden.cases import Case
    if isinstance(case, Case):
        return case
    wanted = Path(os.path.relpath(case, rootpath)).as_posix() if Path(case).exists() else str(case)
    for found in (state.resolved or ([], []))[1]:
        if found.nodeid == wanted:
            return found.case
    found = _discovered(str(case), {})
    if len(found) != 1:
        raise UsageError(f"harness_run({str(case)!r}): names {len(found)} cases, not one",
                         hint="pass one case folder or model file")
    return found[0]


def assert_conforms(actual: Any, golden: Any, tolerance: Tolerance | Mapping[str, Any] | None = None, *,
                    name: str = "output", case: str | None = None, profile: str = "unspecified") -> None:
    """Fail with the harness comparator's torch-style message unless ``actual`` conforms to ``golden``.

    ``tolerance``: a ``Tolerance``; or a mapping of the keys a profile's [tolerance] takes (rtol, atol, min_cosine,
    min_snr_db, elementwise ...) laid over the per-dtype default; or None for the default alone. Values may be
    tensors, sequences (lists), maps (dicts) or None (an absent optional), as model outputs are."""
    __tracebackhide__ = True
    from harness.compare.comparator import compare_value, format_failure
    try:
        tolerance_for = _tolerance_for(tolerance)
    except HarnessError as exc:
        pytest.fail(f"assert_conforms: {exc.one_line()}", pytrace=False)
    result = compare_value(name, golden, actual, tolerance_for)
    if not result.passed:
        raise AssertionError(format_failure(result, case=case or _current_test(), profile=profile))


def _tolerance_for(tolerance: Tolerance | Mapping[str, Any] | None) -> Callable[[Any, Any], Tolerance]:
    from harness.compare.tolerances import Tolerance, ToleranceOverride, resolve_tolerance
    if isinstance(tolerance, Tolerance):
        return lambda golden_dtype, actual_dtype: tolerance
    override = ToleranceOverride.from_mapping(tolerance, "assert_conforms tolerance") if tolerance else None
    return lambda golden_dtype, actual_dtype: resolve_tolerance(golden_dtype, actual_dtype, [override])


def _current_test() -> str:
    """The running test's id (pytest sets PYTEST_CURRENT_TEST to 'path::name (call)')."""
    return os.environ.get("PYTEST_CURRENT_TEST", "value").rsplit(" ", 1)[0]


__all__ = ["CellFailed", "HarnessCase", "HarnessItem", "KnownFailureHit", "assert_conforms", "failure_text",
           "harness_run", "judge", "merge_records"]
