"""The subcommands' bodies. Each returns an exit code; bad input raises a HarnessError."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from harness.api import (
    MatrixOptions,
    failing,
    idle_named_profiles,
    load_profiles,
    probe_profiles,
    profile_origin,
    run_matrix,
)
from harness.report.console import make_console, print_by_op, printable
from harness.errors import UsageError
from harness.run import record as R


def _say(console) -> Callable[[str], None]:
    """A line from the library (a name may hold markup or control characters) printed as it is, escaped."""
    return lambda line: console.print(printable(line), markup=False, soft_wrap=True)


def _options(args: argparse.Namespace, **extra) -> MatrixOptions:
    """The CLI flags every command shares, as the library's options."""
    return MatrixOptions(root=args.root, profile_dirs=list(args.profiles_dir or []),
                         builtin_profiles=not args.no_builtin_profiles, **extra)


def _noise_notes(record: R.RunRecord, repeat: int) -> list[str]:
    return [f"noise floor {name}: {n['bitwise_identical']}/{n['cells']} cells bitwise identical across {repeat} "
            f"runs; p50 spread median {n['p50_spread_pct_median']}% max {n['p50_spread_pct_max']}%"
            for name, n in record.noise.items()]


def _source_cases(args: argparse.Namespace, console) -> tuple[list, dict | None]:
    """The run's targets: case selectors as given, or the cases of ``--suite`` / ``--filter`` (a case source),
    or, resuming a run that used a source, that source's cases again. Returns (targets, source description)."""
    name, pattern = args.suite, args.filter
    if name and args.targets:
        raise UsageError("--suite and case paths both pick the cases; give one of them",
                         hint="harness run --suite onnx-node --filter REGEX, or harness run path/to/cases")
    if not name and pattern is None and args.resume and not args.targets:
        saved = _saved_source(args.resume)
        if saved:
            name, pattern = saved.get("source"), saved.get("filter")
            args.targets = list(saved.get("selectors") or [])
    if not name and pattern is None:  # plain selectors: onnx is not imported here, so the workers start first
        return list(args.targets), None
    from harness.golden.sources import DirectorySource, get_source
    if name and name != DirectorySource.name:
        source = get_source(name)
        if hasattr(source, "notify"):
            source.notify = lambda line: console.print(printable(line), style="dim", markup=False)
    else:
        source = DirectorySource(args.root, tuple(args.targets))
    return source.cases(pattern), source.describe(pattern)


def _saved_source(resume) -> dict | None:
    """The case source a run being resumed recorded (None for a run of plain case selectors)."""
    loaded, _ = R.load_record(resume)
    source = loaded.options.get("source")
    return source if isinstance(source, dict) and isinstance(source.get("source"), str) else None


def cmd_run(args: argparse.Namespace) -> int:
    console = make_console()
    targets, source = _source_cases(args, console)
    options = _options(args, source=source, out=args.out, jobs=args.jobs, timeout_s=args.timeout, dims=dict(args.dim),
                       seed=args.seed, numerics_only=args.numerics_only, time_cap_s=args.time_cap,
                       baseline=args.baseline, max_regression=args.max_regression, repeat=args.repeat,
                       in_process=args.in_process, resume=args.resume, reference=args.reference,
                       calibration_data=args.calibration_data, named_profiles=args.profiles or [],
                       save_outputs=args.save_outputs, ray=args.ray, tolerance=args.tolerance, perturb=args.perturb,
                       argv=sys.argv[1:] if sys.argv else [], console=None if args.quiet else console)
    record = run_matrix(targets, args.profiles, options)
    from harness.report.console import print_report  # after the run: its imports overlap the workers' start
    print_report(console, record, _noise_notes(record, args.repeat), by_op=args.by_op)
    if args.perturb:
        from harness.task.perturb import lines as perturbed_lines
        say = _say(console)
        for line in perturbed_lines(record.cells):
            say(line)
    if args.localize:
        _localize_cells(args, record, targets, console)
    _write_reports(args, [record], console)
    if record.write_errors:  # the matrix above stands; what is not on disk is said, and the run is not green
        more = f" (and {len(record.write_errors) - 1} more write failure(s))" if len(record.write_errors) > 1 else ""
        print(f"harness: error: {printable(record.write_errors[0])}{more}. Note: free space or pass another --out, then "
              f"run again (with --resume for the journalled cells)", file=sys.stderr)
        return 2
    idle = idle_named_profiles(record)
    if idle:  # the run happened (matrix above) but tested nothing on a profile the user asked for
        said = "; ".join(f"profile {name!r}: {reason}" for name, reason in idle.items())
        print(f"harness: error: {len(idle)} profile(s) named with --profile ran no cell (all SKIPPED): {printable(said)}. "
              f"Note: make the profile runnable here, or drop --profile to skip it", file=sys.stderr)
        return 1
    return 1 if failing(record) else 0


def _localize_cells(args: argparse.Namespace, record: R.RunRecord, targets: list, console) -> None:
    """run --localize: each failing cell localised, its result referenced from the cell (harness.localize.cells)."""
    from harness.golden.cases import Case, discover
    from harness.localize import LocalizeOptions
    from harness.localize.cells import localize_failing
    cases = [t for t in targets if isinstance(t, Case)] + discover([str(t) for t in targets if not isinstance(t, Case)]
                                                                    or [], args.root)
    options = LocalizeOptions(dims=dict(args.dim), seed=args.seed, timeout_s=args.timeout, in_process=args.in_process,
                              matrix=_options(args))
    localize_failing(record, cases, args.reference, options, _say(console))


def cmd_list(args: argparse.Namespace) -> int:
    from harness.golden.cases import discover
    from harness.golden.layout import dataset_dirs
    console = make_console()
    cases = discover([], args.root)
    console.print(f"{len(cases)} case(s) under {args.root}:", markup=False)
    for case in cases:
        sets = len(dataset_dirs(case.path))
        task = case.manifest.task if case.has_manifest else "no case.json"
        console.print(printable(f"  {case.name:<28} {sets} data set(s)  {task}"), markup=False)
    profiles = load_profiles(None, _options(args))
    console.print(f"{len(profiles)} profile(s):", markup=False)
    for profile in profiles:
        console.print(printable(f"  {profile.name:<20} {profile.ep:<28} {profile.description}"), markup=False)
    return 0


def cmd_profiles(args: argparse.Namespace) -> int:
    profiles = load_profiles(None, _options(args))
    availability = probe_profiles(profiles)
    width = max((len(p.name) for p in profiles), default=0)
    for profile in profiles:
        state = availability[profile.name]
        status = "available" if state.available else f"skipped: {state.reason}"
        print(printable(f"{profile.name:<{width}} {profile.ep:<28} {status}  [from {profile_origin(profile)}]"))
    return 0


def cmd_ops(args: argparse.Namespace) -> int:
    """The per-operator view of a saved record; the first profile diffed against the others (or against the same
    profiles in --against's record)."""
    record, _ = R.load_record(args.record)
    other = R.load_record(args.against)[0] if args.against else None
    present = list(dict.fromkeys(c.profile for c in record.cells))
    profiles = args.profiles or present
    for name in profiles:
        if name not in present:
            raise UsageError(f"{args.record}: profile {name!r} has no cells in this record",
                             hint=f"profiles in it: {', '.join(present) or 'none'}")
    print_by_op(make_console(), record.cells, profiles, other_cells=other.cells if other else None,
                other_label=str(args.against))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Records of several machines as one matrix; exit 1 when two devices' saved outputs disagree."""
    from harness.report.crossmatrix import build, print_cross_matrix
    matrix = build([R.load_record(path) for path in args.records])
    print_cross_matrix(make_console(), matrix)
    if args.html:
        from harness.report.html import write_compare_html
        write_compare_html(matrix, args.html)
    if args.markdown:
        from harness.atomic import atomic_write_bytes
        from harness.report.crossmatrix import compare_markdown
        atomic_write_bytes(args.markdown, compare_markdown(matrix).encode("utf-8"))
    return 1 if matrix.disagreements else 0


def cmd_bless(args: argparse.Namespace) -> int:
    from harness.golden.cases import discover
    from harness.run.bless import bless, recover_for
    [profile] = load_profiles([args.profile], _options(args))
    for line in recover_for([args.case], args.root):
        print(printable(f"note: {line}"), file=sys.stderr)
    cases = discover([args.case], args.root)
    for case in cases:
        written = bless(case, profile, dims=dict(args.dim), seed=args.seed, force=args.force)
        print(printable(f"blessed {case.name} from profile {profile.name}: {written}"))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from harness.zoo.goldens import check_zoo, export_zoo
    if args.check:
        return check_zoo(args.names, args.root, _options(args))
    for path in export_zoo(args.names, args.root, force=args.force):
        print(f"exported {path}")
    return 0


def _write_reports(args: argparse.Namespace, records: list, console) -> None:
    """--junit-xml, --markdown, --html: written from the records (harness.report.render), one line each."""
    from harness.report.render import render
    for path in render(records, html=args.html, markdown=args.markdown, junit_xml=args.junit_xml):
        console.print(printable(f"wrote {path}"), markup=False)


def cmd_report(args: argparse.Namespace) -> int:
    """Saved records rendered without re-running anything: the formats asked for, or each record's matrix."""
    records = [R.load_record(path) for path in args.records]
    console = make_console()
    if not (args.html or args.markdown or args.junit_xml):
        from harness.report.console import print_report
        for record, _ in records:
            print_report(console, record)
    _write_reports(args, records, console)
    return 0


def cmd_setup(args: argparse.Namespace) -> int:
    """Prepare an emulated device (harness/setup/<target>.py) and say where it went; idempotent."""
    from harness.setup import target_module
    console = make_console()
    module = target_module(args.target)
    say = _say(console)
    place = module.setup(force=args.force, say=say)
    say(f"{args.target}: ready in {place}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Measure each case's noise floor on benign CPU variants and the float64 reference; write case.json."""
    from harness.calibrate.calibrate import calibrate, summary_lines
    say = _say(make_console())
    results = calibrate(args.cases, _options(args), k=args.k, force=args.force, jobs=args.jobs)
    for result in results:
        for line in summary_lines(result):
            say(line)
    return 0


def cmd_localize(args: argparse.Namespace) -> int:
    """Exit 0 when the case passes (nothing to localise), 1 when a divergence was localised."""
    from harness.localize import LocalizeOptions, localize
    from harness.localize.render import lines, write_json
    options = LocalizeOptions(against=args.against, cap_mb=args.cap_mb, growth=args.growth, rtol=args.rtol,
                              atol=args.atol, out=args.out, repro=not args.no_repro, bisect=args.bisect,
                              blame_passes=not args.no_pass_blame, dims=dict(args.dim), seed=args.seed,
                              timeout_s=args.timeout, in_process=args.in_process, matrix=_options(args))
    found = localize(args.case, args.profile, options)
    say = _say(make_console())
    for line in lines(found):
        say(line)
    if args.json:
        write_json(found, args.json)
    return 0 if found.status == "passes" else 1


def cmd_lab(args: argparse.Namespace) -> int:
    """``harness lab join``: print or run the ``ray start`` line offering the profiles that run on this host."""
    import shlex
    from harness.lab.join import join_argv, perform, runnable
    names = [n.strip() for n in args.profiles.split(",") if n.strip()] if args.profiles else None
    profiles = load_profiles(names, _options(args))
    offered, dropped = runnable([p.name for p in profiles], probe_profiles(profiles))
    for name, reason in dropped.items():
        print(printable(f"not offered: {name}: {reason}"), file=sys.stderr)
    if not offered:
        raise UsageError(f"none of the profiles {', '.join(p.name for p in profiles)} runs on this host",
                         hint="see 'harness profiles' for each one's reason, and install what it needs")
    argv = join_argv(args.address, {name: args.slots for name in offered})
    if args.print_only:
        print(shlex.join(argv))
        return 0
    return perform(argv)


def cmd_fuzz(args: argparse.Namespace) -> int:
    """``harness fuzz``: exit 1 when the campaign has findings, 0 when every graph agreed."""
    from pathlib import Path
    from harness.fuzzing.campaign import CampaignOptions, run_campaign
    from harness.fuzzing.generate import DEFAULT_OPSET, GeneratorConfig
    from harness.fuzzing.report import lines, write_json
    generator = GeneratorConfig(opset=args.opset or DEFAULT_OPSET, ops=tuple(args.op), max_nodes=args.max_nodes)
    say = _say(make_console())
    out = args.resume or args.out or Path("results/fuzz") / f"seed-{args.seed}"
    options = CampaignOptions(profiles=list(args.profile), reference=args.reference, budget_s=args.budget,
                              seed=args.seed, out=out, batch=args.batch, timeout_s=args.timeout, jobs=args.jobs,
                              generator=generator, resume=args.resume is not None, matrix=_options(args), say=say)
    report = run_campaign(options)
    for line in lines(report):
        say(line)
    if args.json:
        write_json(args.json, report)
    return 1 if report["findings"] else 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Every problem of the cases' data sets, one line each naming the file: exit 1 when any is an error."""
    from harness.golden.cases import discover
    from harness.golden.validate import ERROR, validate
    found = 0
    for case in discover(list(args.cases), args.root):
        for problem in validate(case.name, case.info, case.datasets(), case.manifest.input_ranges):
            print(printable(f"{problem.severity}: {problem.line}"))
            found += problem.severity == ERROR
    print(f"{found} error(s)" if found else "no errors")
    return 1 if found else 0


def cmd_drift(args: argparse.Namespace) -> int:
    """Exit 1 when an input shifted between the two sets, 0 when none did."""
    import json
    from harness.golden.drift import drift, lines, to_json
    found = drift(args.a, args.b, args.alpha, args.min_d)
    for line in lines(found, args.alpha, args.min_d):
        print(printable(line))
    if args.json:
        from harness.atomic import atomic_write_bytes
        atomic_write_bytes(args.json, (json.dumps(to_json(found), indent=1, allow_nan=False) + "\n").encode("utf-8"))
    return 1 if any(item.shifted for item in found) else 0
