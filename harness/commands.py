"""The subcommands' bodies. Each returns an exit code; bad input raises a HarnessError."""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
from pathlib import Path

from harness.errors import UsageError
from harness.golden.cases import discover
from harness.golden.layout import dataset_dirs
from harness.profiles import registry
from harness.report.console import make_console, print_report
from harness.run import record as R
from harness.run.executor import FIXABLE_BY_INSTALL, Availability, Executor, RunOptions, probe
from harness.run.plan import plan_case


def _profiles(args: argparse.Namespace, names: list[str] | None):
    return registry.select(registry.load_all(args.profiles_dir), names)


def _probe_all(profiles, executor: Executor) -> dict[str, Availability]:
    from concurrent.futures import ThreadPoolExecutor
    with ThreadPoolExecutor(max_workers=4) as pool:
        found = list(pool.map(lambda p: probe(p, executor.pool), profiles))
    return {p.name: a for p, a in zip(profiles, found)}


def _refuse_named_but_uninstalled(named: list[str], availability: dict[str, Availability]) -> None:
    """A profile the user asked for by name whose package is missing (a plugin, or an onnxruntime build with
    its EP) is bad input, not a skip: a default run skips it with the fix, but '--profile cuda' on a
    machine without onnxruntime-gpu must not exit 0 with nothing run."""
    for name in named:
        state = availability[name]
        if not state.available and state.kind in FIXABLE_BY_INSTALL:
            raise UsageError(f"profile {name!r} cannot run: {state.reason}")


def _new_record(argv: list[str]) -> R.RunRecord:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return R.RunRecord(run_id=stamp, created=R.now_iso(), machine=R.machine_info(), versions=R.versions(),
                       commit=R.commit_info(Path.cwd()), argv=argv)


def _open_record(args: argparse.Namespace) -> tuple[R.RunRecord, Path, dict[str, R.CellResult]]:
    """A new record, or the one being resumed together with the cells it already finished."""
    if args.resume:
        record, out_dir = R.load_record(args.resume)
        return record, out_dir, {c.key: c for c in record.cells}
    record = _new_record(sys.argv[1:] if sys.argv else [])
    return record, args.out / record.run_id, {}


def _in_matrix_order(cells: list[R.CellResult], plans, profiles) -> list[R.CellResult]:
    order = {R.cell_key(plan.case.name, p.name): i for i, (plan, p) in
             enumerate((plan, p) for plan in plans for p in profiles)}
    return sorted((c for c in cells if c.key in order), key=lambda c: order[c.key])


def _noise_notes(record: R.RunRecord, repeat: int) -> list[str]:
    return [f"noise floor {name}: {n['bitwise_identical']}/{n['cells']} cells bitwise identical across {repeat} "
            f"runs; p50 spread median {n['p50_spread_pct_median']}% max {n['p50_spread_pct_max']}%"
            for name, n in record.noise.items()]


def cmd_run(args: argparse.Namespace) -> int:
    from harness.perf import evaluation
    if args.numerics_only and (args.baseline or args.max_regression):
        raise UsageError("--baseline and --max-regression compare latency, which --numerics-only skips",
                         hint="drop --numerics-only, or drop the baseline options")
    profiles = _profiles(args, args.profiles)
    cases = discover(args.targets, args.root)
    dims = dict(args.dim)
    plans = [plan_case(c, dims=dims, seed=args.seed) for c in cases]
    measure = None if args.numerics_only else evaluation.measure_spec(profiles, cases, args.time_cap)
    record, out_dir, prior = _open_record(args)
    record.options = {"numerics_only": args.numerics_only, "jobs": args.jobs, "seed": args.seed, "dims": dims}
    evaluate = evaluation.Evaluator(args.baseline, args.max_regression) if measure else None
    options = RunOptions(out_dir, args.jobs, args.timeout, measure, evaluate, in_process=args.in_process)
    executor = Executor(options, R.Journal(out_dir))
    console = make_console()
    try:
        if not args.resume:
            executor.journal.header(record)
        availability = _probe_all(profiles, executor)
        _refuse_named_but_uninstalled(args.profiles or [], availability)
        record.profiles = {p.name: {"available": availability[p.name].available, "reason": availability[p.name].reason,
                                    "ep": p.ep, "transform": p.transform, "target": p.target,
                                    "worker": availability[p.name].hello} for p in profiles}
        todo = [(plan, p) for p in profiles for plan in plans if R.cell_key(plan.case.name, p.name) not in prior]
        fresh = evaluation.run_repeats(executor, todo, availability, args.repeat, console)
    finally:
        executor.close()
        executor.journal.close()
    record.cells = _in_matrix_order(list(prior.values()) + fresh, plans, profiles)
    record.noise = executor.noise
    record.finished = R.now_iso()
    path = record.write(out_dir)
    warnings = [w for plan in plans for w in plan.warnings]
    if evaluate and evaluate.baseline_warning:
        warnings.append(evaluate.baseline_warning)
    print_report(console, record.cells, [p.name for p in profiles], str(path), warnings,
                 _noise_notes(record, args.repeat))
    return 1 if any(c.verdict in R.FAILING for c in record.cells) else 0


def cmd_list(args: argparse.Namespace) -> int:
    console = make_console()
    cases = discover([], args.root)
    console.print(f"{len(cases)} case(s) under {args.root}:", markup=False)
    for case in cases:
        sets = len(dataset_dirs(case.path))
        task = case.manifest.task if case.has_manifest else "no case.json"
        console.print(f"  {case.name:<28} {sets} data set(s)  {task}", markup=False)
    profiles = registry.load_all(args.profiles_dir)
    console.print(f"{len(profiles)} profile(s) in {args.profiles_dir}:", markup=False)
    for profile in profiles.values():
        console.print(f"  {profile.name:<20} {profile.ep:<28} {profile.description}", markup=False)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    profiles = _profiles(args, None)
    executor = Executor(RunOptions(Path(".")), None)
    try:
        availability = _probe_all(profiles, executor)
    finally:
        executor.close()
    for profile in profiles:
        state = availability[profile.name]
        status = "available" if state.available else f"skipped: {state.reason}"
        print(f"{profile.name:<18} {profile.ep:<28} {status}")
    return 0


def cmd_bless(args: argparse.Namespace) -> int:
    from harness.run.bless import bless
    [profile] = _profiles(args, [args.profile])
    cases = discover([args.case], args.root)
    for case in cases:
        written = bless(case, profile, dims=dict(args.dim), seed=args.seed, force=args.force)
        print(f"blessed {case.name} from profile {profile.name}: {written}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from harness.zoo.goldens import check_zoo, export_zoo
    if args.check:
        return check_zoo(args.names, args.root, args.profiles_dir)
    for path in export_zoo(args.names, args.root, force=args.force):
        print(f"exported {path}")
    return 0
