"""The library entry point: ``run_matrix(cases, profiles, options) -> RunRecord``.

Everything a run does between "these cases on these profiles" and "here is the record": plan each case,
probe each profile (a session must really run), run the reference profile first for cases without goldens,
run every cell in isolated workers, judge, and write the record. The CLI, the benches and the zoo's check
call this; so will the pytest plugin and the Ray lab.

    from harness import api
    record = api.run_matrix(["path/to/model.onnx"], ["cpu", "cpu-int8"], api.MatrixOptions(numerics_only=True))
    failing = [c for c in record.cells if c.verdict in record.failing_verdicts]
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.errors import UsageError
from harness.profiles import registry
from harness.profiles.schema import Profile
from harness.run import record as R
from harness.run.pool import FIXABLE_BY_INSTALL, WorkerPool, missing_requirements

if TYPE_CHECKING:  # imported where used: they bring onnx (~1 s), and workers start while it loads
    from harness.golden.cases import Case
    from harness.run.executor import Availability, Executor, RunOptions
    from harness.run.plan import CasePlan


@dataclass
class MatrixOptions:
    """How to run the matrix. Defaults match ``harness run`` with no flags."""

    out: Path = Path("results")  # run records go to out/<run id>/
    jobs: int = 1  # cells at a time; 0: every core with numerics_only (no latency to disturb), else 1
    timeout_s: float | None = None  # per cell; default: the profile's timeout_s
    dims: dict[str, int] = field(default_factory=dict)  # symbolic dims for generated inputs
    seed: int = 0
    numerics_only: bool = False
    time_cap_s: float = 1.0
    baseline: Path | None = None
    max_regression: list[str] = field(default_factory=list)
    repeat: int = 1
    in_process: bool = False
    resume: Path | None = None
    reference: str = "cpu"  # cases without goldens are compared with this profile's outputs
    calibration_data: Path | None = None  # test-data layout folder whose inputs calibrate int8-static
    named_profiles: Sequence[str] = ()  # asked for by name: one whose package is missing is bad input
    argv: list[str] = field(default_factory=list)
    root: Path = Path("reference_outputs")  # where case names are looked up
    profile_dirs: Sequence[Path] = ()  # user profile folders layered over the built-ins
    builtin_profiles: bool = True
    console: Any = None  # a rich Console for a transient progress bar (the CLI passes one); None: no progress
    source: dict[str, Any] | None = None  # what the cases came from (a case source's describe()), kept in the record
    # Which rule judges a calibrated case (case.json 'calibration'): "auto" (the calibrated rule on profiles that
    # compute in float32, declared gates elsewhere), "calibrated" (on every profile) or "declared" (on none).
    tolerance: str = "auto"
    save_outputs: str = "failing"  # actual outputs kept beside the record: "all", "failing" (FAIL cells) or "none"
    ray: str | None = None  # a Ray cluster's address (or "auto"): each cell runs on a lab host (harness.lab)
    perturb: list[str] = field(default_factory=list)  # "noise:σ" / "quantize:bits": task metrics' move per device


def load_profiles(names: Sequence[str] | None, options: MatrixOptions) -> list[Profile]:
    """Built-in profiles, then ./device_profiles, HARNESS_PROFILES and ``options.profile_dirs``; by name."""
    found = registry.load_all(list(options.profile_dirs), builtin=options.builtin_profiles)
    return registry.select(found, list(names) if names else None)


def _is_case(item: Any) -> bool:
    from harness.golden.cases import Case
    return isinstance(item, Case)


def _cases(cases: Sequence[Case | str | Path], options: MatrixOptions) -> list[Case]:
    """Case objects as given, then the cases the selectors name (no selector and no Case: all of root)."""
    from harness.golden.cases import discover
    given = [c for c in cases if _is_case(c)]
    selectors = [str(c) for c in cases if not _is_case(c)]
    return given + (discover(selectors, options.root) if selectors or not given else [])


def _profiles(profiles: Sequence[Profile | str] | None, options: MatrixOptions) -> list[Profile]:
    if profiles and all(isinstance(p, Profile) for p in profiles):
        return list(profiles)  # type: ignore[arg-type]
    return load_profiles([str(p) for p in profiles or ()], options)


# Options a resumed run takes from its record, with the flag that sets each: a resume runs as the run started.
RESUMED_OPTIONS = {"numerics_only": "--numerics-only", "seed": "--seed", "dims": "--dim", "reference": "--reference",
                   "timeout_s": "--timeout", "time_cap_s": "--time-cap", "baseline": "--baseline",
                   "max_regression": "--max-regression", "repeat": "--repeat", "calibration_data": "--calibration-data",
                   "root": "--root", "profile_dirs": "--profiles-dir", "builtin_profiles": "--no-builtin-profiles",
                   "named_profiles": "--profile", "save_outputs": "--save-outputs",
                   "tolerance": "--tolerance"}
_PATH_OPTIONS = ("baseline", "calibration_data", "root")


def _as_json(value: Any) -> Any:
    """An option's value as the record saves it (paths as given, as strings)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value


def _from_json(name: str, value: Any) -> Any:
    if name in _PATH_OPTIONS:
        return None if value is None else Path(value)
    if name == "profile_dirs":
        return [Path(v) for v in value]
    return value


def saved_options(options: MatrixOptions, targets: list[str] | None, profiles: list[str]) -> dict[str, Any]:
    """What the record keeps so that ``--resume`` reruns the same matrix the same way: the selection (case
    selectors as given, the profiles that made the matrix, the folder they were resolved in) and the options."""
    saved = {name: _as_json(getattr(options, name)) for name in RESUMED_OPTIONS}
    saved["selection"] = {"targets": targets, "profiles": profiles, "cwd": str(Path.cwd())}
    return saved


def _resumed(record: R.RunRecord, cases: Sequence[Case | str | Path], profiles: Sequence[Profile | str] | None,
             options: MatrixOptions) -> tuple[Sequence[Case | str | Path], Sequence[Profile | str], MatrixOptions]:
    """The cases, profiles and options of the run being resumed. What the caller passes again must agree with
    the record; what it leaves out comes from the record. A record from before the selection was kept resumes
    with what the caller passes, as it did then."""
    saved = record.options.get("selection")
    if not isinstance(saved, dict):
        return cases, profiles or (), options
    where = f"--resume {options.resume}"
    if saved.get("cwd") not in (None, str(Path.cwd())):
        raise UsageError(f"{where}: that run was started in {saved['cwd']}, and its case paths are relative to it",
                         hint=f"cd {saved['cwd']} and resume from there")
    cases = _resumed_targets(saved.get("targets"), cases, where)
    given = [p.name if isinstance(p, Profile) else str(p) for p in profiles or ()]
    if given and sorted(set(given)) != sorted(set(saved.get("profiles") or [])):
        raise UsageError(f"{where}: profiles {given} are not the run's profiles {saved.get('profiles')}",
                         hint="drop --profile to resume the run as it was started, or start a new run")
    restored = {}
    defaults = MatrixOptions()
    for name, flag in RESUMED_OPTIONS.items():
        if name not in record.options:
            continue
        now, then = _as_json(getattr(options, name)), record.options[name]
        if now != then and now != _as_json(getattr(defaults, name)):
            raise UsageError(f"{where}: {flag} {now!r} conflicts with the run's {then!r}",
                             hint="drop it to resume the run as it was started, or start a new run without --resume")
        restored[name] = _from_json(name, then)
    return cases, profiles or list(saved.get("profiles") or []), replace(options, **restored)


def _resumed_targets(saved: Any, cases: Sequence[Case | str | Path], where: str) -> Sequence[Case | str | Path]:
    given = [str(c) for c in cases if not _is_case(c)]
    if saved is None:  # the run was given Case objects: they cannot be saved, so the caller passes them again
        if not cases:
            raise UsageError(f"{where}: the run's cases were passed as objects, not names",
                             hint="pass the same cases again")
        return cases
    if given and given != list(saved):
        raise UsageError(f"{where}: cases {given} are not the run's cases {saved}",
                         hint="drop the case arguments to resume the run as it was started, or start a new run")
    return cases or list(saved)


def _open_record(options: MatrixOptions, resumed: tuple[R.RunRecord, Path] | None, commit: Future
                 ) -> tuple[R.RunRecord, Path, dict[str, R.CellResult]]:
    """A new record, or the one being resumed together with the cells it already finished."""
    if resumed:
        record, out_dir = resumed
        return record, out_dir, {c.key: c for c in record.cells if c.verdict != R.LOST}  # lost: run again
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    record = R.RunRecord(run_id=stamp, created=R.now_iso(), machine=R.machine_info(), versions=R.versions(),
                         commit=commit.result(), argv=list(options.argv))
    return record, options.out / record.run_id, {}


def _probe_all(profiles: list[Profile], pool: WorkerPool) -> dict[str, Availability]:
    from harness.run.executor import probe
    with ThreadPoolExecutor(max_workers=4) as threads:
        found = list(threads.map(lambda p: probe(p, pool), profiles))
    return {p.name: a for p, a in zip(profiles, found)}


def probe_profiles(profiles: list[Profile]) -> dict[str, Availability]:
    """Can each profile run here? A session is created and run on a one-node model in its worker."""
    pool = WorkerPool()
    try:
        return _probe_all(profiles, pool)
    finally:
        pool.close()


def _refuse_named_but_uninstalled(named: Sequence[str], availability: dict[str, Availability]) -> None:
    """A profile the user asked for by name whose package is missing (a plugin, or an onnxruntime build with
    its EP) is bad input, not a skip: a default run skips it with the fix, but '--profile cuda' on a
    machine without onnxruntime-gpu must not exit 0 with nothing run."""
    for name in named:
        state = availability.get(name)
        if state is not None and not state.available and state.kind in FIXABLE_BY_INSTALL:
            raise UsageError(f"profile {name!r} cannot run: {state.reason}")


def _refuse_unused_dims(plans: list[CasePlan], dims: dict[str, int]) -> None:
    """A --dim that no case of the run uses would be silently ignored: a typo, or inputs that are stored."""
    from harness.model.inputs import symbolic_dims, unused_dims
    generated = [plan.info.inputs for plan in plans if plan.generates_inputs]
    unused = unused_dims(dims, generated)
    if unused:
        offered = sorted(set().union(*(symbolic_dims(inputs) for inputs in generated))) if generated else []
        why = (f"the generated inputs' dimensions are {', '.join(offered)}" if offered else
               "no case in this run generates its inputs (stored inputs fix every dimension)")
        raise UsageError(f"--dim {unused[0]}: no case in this run has an input dimension named {unused[0]!r}; {why}",
                         hint="drop it, or check the name against the model's inputs")


def _calibration_feeds(folder: Path | None) -> tuple[Path, list[Path]] | None:
    from harness.golden.layout import dataset_dirs
    if folder is None:
        return None
    if not folder.is_dir():
        raise UsageError(f"--calibration-data {folder}: not a directory",
                         hint="pass a folder of test_data_set_<k>/input_<i>.pb sets")
    sets = [d for _, d in dataset_dirs(folder)]
    if not sets:
        raise UsageError(f"--calibration-data {folder}: no test_data_set_<k>/ folders in it",
                         hint="write calibration inputs in the ONNX test-data layout")
    return folder, sets


def _attach_calibration(plans: list[CasePlan], folder: Path | None) -> None:
    """--calibration-data: inputs read from the folder calibrate int8-static instead of the case's own."""
    from harness.golden.layout import read_dataset
    from harness.run.plan import check_inputs
    found = _calibration_feeds(folder)
    if found is None:
        return
    root, sets = found
    for plan in plans:
        names = plan.info.input_names
        datasets = [read_dataset(d, k, names, []) for k, d in enumerate(sets)]
        for ds in datasets:
            if set(ds.inputs) != set(names):
                raise UsageError(f"--calibration-data {ds.path}: inputs {sorted(ds.inputs)} do not match case "
                                 f"{plan.case.name!r}'s inputs {names}", hint="give one calibration folder per model")
            check_inputs(plan.case.name, ds, plan.info)
        plan.calibration = [ds.inputs for ds in datasets]
        plan.calibration_source = str(root)


def _reference_outputs(plans: list[CasePlan], reference: Profile, executor: Executor,
                       availability: dict[str, Availability]) -> dict[str, R.CellResult]:
    """Run the reference profile on every case that has no goldens and make its outputs the goldens
    (in memory only); returns the reference cells, keyed like the record's cells."""
    need = [p for p in plans if not p.has_goldens]
    if not need:
        return {}
    state = availability[reference.name]
    if not state.available:
        raise UsageError(f"reference profile {reference.name!r} cannot run here ({state.reason}), and "
                         f"{len(need)} case(s) have no goldens to compare with",
                         hint="pick another with --reference NAME, or bless goldens with 'harness bless'")
    cells = executor.run([(plan, reference) for plan in need], availability, as_reference=True)
    for plan, cell in zip(need, cells):
        plan.use_reference(reference.name, executor.captured.pop(cell.key, None), cell)
    return {c.key: c for c in cells}


def run_matrix(cases: Sequence[Case | str | Path], profiles: Sequence[Profile | str] | None = None,
               options: MatrixOptions | None = None) -> R.RunRecord:
    """Run every case on every profile; return the run record (also written to ``record.location``).

    Cases may be Case objects or selectors (case names under ``options.root``, case folders, bare .onnx
    files); profiles may be Profile objects or names (None: every profile). Bad input raises a HarnessError
    before any cell runs; a cell's failure is its verdict, never an exception."""
    options = options or MatrixOptions()
    resumed = R.load_record(options.resume) if options.resume else None
    if resumed:
        cases, profiles, options = _resumed(resumed[0], cases, profiles, options)
    if options.numerics_only and (options.baseline or options.max_regression):
        raise UsageError("--baseline and --max-regression compare latency, which --numerics-only skips",
                         hint="drop --numerics-only, or drop the baseline options")
    check_options(options)
    options = replace(options, jobs=effective_jobs(options))
    profile_list = [shared_cores(p, options) for p in _profiles(profiles, options)]
    pool = _pool(options)
    try:
        _prestart(pool, profile_list, options)  # workers start while this process imports onnx and plans
        with ThreadPoolExecutor(max_workers=1) as background:  # git and /proc reads, also while planning
            commit = background.submit(_host_facts)
            return _plan_and_run(cases, profile_list, options, resumed, pool, commit)
    finally:
        pool.close()


def _host_facts() -> dict[str, Any]:
    """The record's commit (two git calls), with the cached machine facts read on the way."""
    R.machine_info()
    return R.commit_info(Path.cwd())


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def check_options(options: MatrixOptions) -> None:
    """What the CLI's parser refuses, refused for a library caller too, in the flag's words: a bad option is bad
    input before anything runs, never an exception from deep inside the run or a record as if all were well."""
    if not isinstance(options.repeat, int) or isinstance(options.repeat, bool) or options.repeat < 1:
        raise UsageError(f"--repeat {options.repeat!r}: must be a whole number of runs, at least 1")
    if options.timeout_s is not None and not _positive_number(options.timeout_s):
        raise UsageError(f"--timeout {options.timeout_s!r}: must be a finite number of seconds above 0",
                         hint="leave it unset for the profile's timeout_s")
    if not _positive_number(options.time_cap_s):
        raise UsageError(f"--time-cap {options.time_cap_s!r}: must be a finite number of seconds above 0")
    if options.ray is not None and options.in_process:
        raise UsageError("--ray and --in-process: a lab cell runs in its host's isolated worker, never in this process",
                         hint="drop --in-process")
    if options.perturb:
        from harness.task.perturb import parse
        for text in options.perturb:
            parse(text)
        if options.ray is not None:
            raise UsageError("--perturb and --ray: perturbed reruns run on this host only", hint="drop one of them")
    if options.save_outputs not in R.SAVE_OUTPUTS:
        raise UsageError(f"--save-outputs {options.save_outputs!r}: must be one of {', '.join(R.SAVE_OUTPUTS)}")
    if options.tolerance not in ("auto", "calibrated", "declared"):
        raise UsageError(f"--tolerance {options.tolerance!r}: must be auto, calibrated or declared")
    for name, value in (options.dims or {}).items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise UsageError(f"--dim {name}={value!r}: a dimension is a whole number, at least 1")


def effective_jobs(options: MatrixOptions) -> int:
    """``jobs``, with 0 meaning every core this process may use when only numerics are checked (cells then
    share nothing that matters) and 1 when latency is measured (a parallel cell would disturb it)."""
    if not isinstance(options.jobs, int) or isinstance(options.jobs, bool) or options.jobs < 0:
        raise UsageError(f"--jobs {options.jobs!r}: must be 0 (automatic) or a positive count")
    if options.jobs:
        return options.jobs
    return _usable_cores() if options.numerics_only else 1


def shared_cores(profile: Profile, options: MatrixOptions) -> Profile:
    """With cells in parallel for numerics only, each cell's session gets its share of the cores as intra-op
    threads (at least 1), unless the profile sets its threads or pins its cores: ``jobs`` sessions each spawning
    a thread per core would oversubscribe the host, and creating and joining those per-session thread pools
    cost more than running a node-suite case (~7 of ~10 ms measured). Latency runs (jobs 1) keep ORT's default."""
    if not options.numerics_only or options.jobs <= 1 or profile.cpu_cores is not None \
            or profile.session.get("intra_op_threads") is not None:
        return profile
    share = max(1, _usable_cores() // options.jobs)
    return replace(profile, session={**profile.session, "intra_op_threads": share})


def _usable_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _pool(options: MatrixOptions) -> WorkerPool:
    if options.in_process:
        from harness.run.runner import InProcessRunner
        return WorkerPool(InProcessRunner)
    return WorkerPool()


def _prestart(pool: WorkerPool, profiles: list[Profile], options: MatrixOptions) -> None:
    """One worker per profile that has what it needs installed (its probe takes it), and as many more for the
    first such profile as the run has jobs (its cells run first), at most one per core: a start beyond that
    would wait for a core anyway, and an absurd --jobs must not fork the host over. Not in-process: that runner
    is this process. Not in a lab (``ray``): the cells run on its hosts."""
    if options.in_process or options.ray:
        return
    runnable = [p for p in profiles if not missing_requirements(p)]
    for index, profile in enumerate(runnable):
        pool.prestart(profile, min(options.jobs, _usable_cores()) if index == 0 else 1)


def _plan_and_run(cases: Sequence[Case | str | Path], profile_list: list[Profile], options: MatrixOptions,
                  resumed: tuple[R.RunRecord, Path] | None, pool: WorkerPool, commit: Future) -> R.RunRecord:
    from harness.run.bless import recover_for
    from harness.run.evaluation import Evaluator, measure_spec, run_repeats
    from harness.run.executor import RunOptions
    from harness.run.plan import plan_case
    from harness.run.quiet import RunLog
    recovered = recover_for([str(c) for c in cases if not _is_case(c)], options.root)
    case_list = _cases(cases, options)
    plans = [plan_case(c, dims=options.dims, seed=options.seed) for c in case_list]
    _refuse_unused_dims(plans, options.dims)
    _attach_calibration(plans, options.calibration_data)
    reference = _reference_profile(plans, profile_list, options)
    measure = None if options.numerics_only else measure_spec(profile_list, case_list, options.time_cap_s)
    record, out_dir, prior = _open_record(options, resumed, commit)
    record.save_outputs = options.save_outputs
    targets = None if any(_is_case(c) for c in cases) else [str(c) for c in cases]
    record.options = {"jobs": options.jobs, **saved_options(options, targets, [p.name for p in profile_list]),
                      **_source_option(options, record)}
    evaluate = Evaluator(options.baseline, list(options.max_regression)) if measure else None
    coverage = evaluate.check_coverage([R.cell_key(plan.case.name, p.name) for p in profile_list for plan in plans],
                                       str(options.baseline)) if evaluate else ""
    log = RunLog(out_dir / R.LOG_NAME)
    executor = _executor(RunOptions(out_dir, options.jobs, options.timeout_s, measure, evaluate,
                                    in_process=options.in_process, log=log.write, save_outputs=options.save_outputs,
                                    tolerance=options.tolerance),
                         out_dir, options, pool)
    with log:
        try:
            if not options.resume:
                _write_header(executor.journal, record, out_dir, options)
            probed = profile_list + ([reference] if reference and reference not in profile_list else [])
            availability = executor.probe_all(probed) if options.ray else _probe_all(probed, executor.pool)
            _refuse_named_but_uninstalled(options.named_profiles, availability)
            record.profiles = {p.name: {"available": availability[p.name].available,
                                        "reason": availability[p.name].reason, "ep": p.ep,
                                        "transform": p.transform, "target": p.target, "origin": profile_origin(p),
                                        "worker": availability[p.name].hello, "notes": list(p.notes),
                                        "budgets": p.budgets.to_dict() if p.budgets else {},
                                        "emulated": p.emulation}
                              for p in profile_list}
            ref_cells = _reference_outputs(plans, reference, executor, availability) if reference else {}
            done = prior.keys() | ref_cells.keys()
            todo = [(plan, p) for p in profile_list for plan in plans if R.cell_key(plan.case.name, p.name) not in done]
            fresh = run_repeats(executor, todo, availability, options.repeat, options.console)
            if options.perturb:
                _perturb(executor, plans, profile_list, availability, fresh, options)
        finally:
            executor.close()
            executor.journal.close()
    kept_refs = [c for k, c in ref_cells.items() if k not in prior]
    record.cells = _in_matrix_order(list(prior.values()) + kept_refs + fresh, plans, profile_list)
    record.noise = executor.noise
    record.ops = _ops_summary(record.cells)
    record.finished = R.now_iso()
    record.warnings = (recovered + [n for p in profile_list for n in p.notes] + ([coverage] if coverage else [])
                       + [w for plan in plans for w in plan.warnings])
    if evaluate and evaluate.baseline_warning:
        record.warnings.append(evaluate.baseline_warning)
    record.log = R.LOG_NAME if log.written else ""
    record.write_errors = executor.write_errors + ([log.failed] if log.failed else [])
    _write_record(record, out_dir, executor.journal_errors)
    return record


def _perturb(executor: Executor, plans: list[CasePlan], profiles: list[Profile], availability: dict[str, Availability],
             cells: list[R.CellResult], options: MatrixOptions) -> None:
    """--perturb: every case rerun on every profile with seeded input perturbations, outside the journal and the
    matrix; how far each cell's task metrics move is kept in its ``task["perturbed"]`` (harness.task.perturb)."""
    from harness.run.executor import Executor
    from harness.task.perturb import run_perturbed
    quiet = Executor(replace(executor.options, save_outputs="none", measure=None, evaluate=None), None, executor.pool)
    run_perturbed(options.perturb, plans, profiles, cells, options.seed, lambda todo: quiet.run(todo, availability))


def _executor(run_options: RunOptions, out_dir: Path, options: MatrixOptions, pool: WorkerPool) -> Executor:
    """The local executor, or with ``options.ray`` the lab's (harness.lab), whose cells run on Ray hosts; it
    connects before the journal is opened, so an unreachable cluster is refused before the run's folder exists."""
    if options.ray:
        from harness.lab.executor import LabExecutor
        lab = LabExecutor(options.ray, run_options, None, pool)
        lab.journal = _journal(out_dir, options)
        return lab
    from harness.run.executor import Executor
    return Executor(run_options, _journal(out_dir, options), pool)


def _source_option(options: MatrixOptions, record: R.RunRecord) -> dict[str, Any]:
    """record.options["source"]: the case source as given, else (a resume) as the run recorded it; absent for
    a run of plain case selectors."""
    source = options.source if options.source is not None else record.options.get("source")
    return {"source": _as_json(source)} if source is not None else {}


def _ops_summary(cells: list[R.CellResult]) -> dict[str, Any]:
    """The per-operator summary (harness.report.ops) when any cell tests a single operator, else {}."""
    if not any(c.model.get("op") for c in cells):
        return {}
    from harness.report.ops import op_summary, summary_dict
    return summary_dict(op_summary(cells))


def _unwritable(out_dir: Path, options: MatrixOptions, exc: OSError) -> UsageError:
    flag = f"--resume {options.resume}" if options.resume else f"--out {options.out}"
    return UsageError(f"{flag}: cannot write run records in {out_dir}: {exc.strerror or exc}",
                      hint="pass a writable folder with --out (a short path, on a disk with space)")


def _journal(out_dir: Path, options: MatrixOptions) -> R.Journal:
    """The run's journal, opened before any cell runs: an --out that cannot be written is bad input, said in
    one line before the run starts rather than after its cells were lost."""
    try:
        return R.Journal(out_dir)
    except OSError as exc:
        raise _unwritable(out_dir, options, exc) from None


def _write_header(journal: R.Journal, record: R.RunRecord, out_dir: Path, options: MatrixOptions) -> None:
    try:
        journal.header(record)
    except OSError as exc:
        raise _unwritable(out_dir, options, exc) from None


def _write_record(record: R.RunRecord, out_dir: Path, journal_errors: list[str]) -> None:
    """record.json; when it cannot be written (a full disk), the record is still returned and printed, with
    ``location`` None and the reasons in ``write_errors``: the cells that were journalled stay resumable. Journal
    lines that failed matter only then: a written record holds every cell."""
    try:
        record.location = record.write(out_dir)
    except OSError as exc:
        record.location = None
        lost = (f"could not write the run record {out_dir / R.RECORD_NAME}: {exc.strerror or exc}; "
                f"the cells that were journalled are in {out_dir / R.JOURNAL_NAME}")
        record.write_errors[:0] = [lost, *journal_errors]  # the record first: it is what the user looks for


def _reference_profile(plans: list[CasePlan], profiles: list[Profile], options: MatrixOptions) -> Profile | None:
    if all(plan.has_goldens for plan in plans):
        return None
    by_name = {p.name: p for p in profiles}
    if list(by_name) == [options.reference]:  # comparing the reference with itself would pass vacuously
        for plan in plans:
            plan.no_golden_reason = (f"no goldens, and only the reference profile {options.reference!r} ran: "
                                     f"nothing to compare with; add another --profile, or bless goldens "
                                     f"with 'harness bless'")
        return None
    if options.reference in by_name:
        return by_name[options.reference]
    [reference] = load_profiles([options.reference], options)
    return shared_cores(reference, options)


def profile_origin(profile: Profile) -> str:
    """Where a profile came from (built-in, ./device_profiles, HARNESS_PROFILES, --profiles-dir) and what it
    extends."""
    return registry.origin(profile)


def _in_matrix_order(cells: list[R.CellResult], plans: list[CasePlan], profiles: list[Profile]) -> list[R.CellResult]:
    order = {R.cell_key(plan.case.name, p.name): i for i, (plan, p) in
             enumerate((plan, p) for plan in plans for p in profiles)}
    return sorted((c for c in cells if c.key in order), key=lambda c: order[c.key])


def failing(record: R.RunRecord) -> list[R.CellResult]:
    """The cells that make a run fail (exit 1 in the CLI)."""
    return [c for c in record.cells if c.verdict in R.FAILING]


def idle_named_profiles(record: R.RunRecord) -> dict[str, str]:
    """Profiles the user asked for by name (``options.named_profiles``) of which every cell was SKIPPED, with
    the reason. Such a run tested nothing on a device the user asked about, so it is not a pass (exit 1 in the
    CLI), although the run itself happened and its matrix stands; a default run skips unavailable profiles."""
    idle = {}
    for name in record.options.get("named_profiles") or []:
        cells = [c for c in record.cells if c.profile == name]
        if cells and all(c.verdict == R.SKIPPED for c in cells):
            idle[name] = cells[0].detail or "skipped"
    return idle


__all__ = [
    "MatrixOptions",
    "check_options",
    "effective_jobs",
    "failing",
    "idle_named_profiles",
    "load_profiles",
    "probe_profiles",
    "profile_origin",
    "run_matrix",
    "shared_cores",
]
