"""Command line: run, list, profiles, bless, export. Bad usage or input -> one line on stderr, exit 2;
any conformance failure, or a profile named with --profile that ran no cell -> the matrix, then exit 1;
results that could not be written (a full disk) -> the matrix, one line, exit 2; all passed -> exit 0."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

from harness.errors import HarnessError, UsageError

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


MAX_DIM = 2**31 - 1  # onnxruntime's shape arithmetic and any real input stay far below this
MAX_SECONDS = 86_400.0  # a day: a longer per-cell timeout or sampling cap is a typo, not a plan


def _dim(text: str) -> tuple[str, int]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value.isascii() or not value.isdigit() or int(value) <= 0:
        raise argparse.ArgumentTypeError(f"--dim expects name=positive integer, got {text!r}")
    if int(value) > MAX_DIM:
        raise argparse.ArgumentTypeError(f"--dim {name}={value}: a dimension is at most {MAX_DIM}")
    return name, int(value)


def _positive_int(text: str) -> int:
    if not text.isascii() or not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


MAX_REPEAT = 100  # run-to-run spread needs a handful of runs; a billion is a typo that never ends


def _repeat(text: str) -> int:
    value = _positive_int(text)
    if value > MAX_REPEAT:
        raise argparse.ArgumentTypeError(f"--repeat {value}: at most {MAX_REPEAT} runs")
    return value


def _seed(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise argparse.ArgumentTypeError(f"--seed expects an integer >= 0, got {text!r}")
    return int(text)


def _positive_float(text: str) -> float:
    """Seconds: finite, positive and at most a day (inf or 1e300 used to reach the worker and ERROR every cell)."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) and not math.isnan(value):
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds, got {text!r}")
    if not value > 0:
        kind = "finite" if math.isnan(value) else "positive"
        raise argparse.ArgumentTypeError(f"expected a {kind} number of seconds, got {text!r}")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"expected seconds, at most {MAX_SECONDS:.0f} (a day), got {text!r}")
    return value


def _positive_finite(text: str) -> float:
    """A multiple such as --k: finite and above 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number above 0, got {text!r}")
    return value


def _printable(text: str) -> str:
    from harness.report.console import printable  # rich is imported only when a message needs escaping
    return text if text.isprintable() else printable(text).replace("\n", "\\n")


def _shorten(text: str, limit: int = 300) -> str:
    """A path of 4,000 characters does not make a readable line: keep its ends."""
    return text if len(text) <= limit else f"{text[:limit // 2]}...{text[-limit // 2:]}"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2, like every other bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"harness: error: {_printable(message)}. Note: see '{self.prog} --help'", file=sys.stderr)
        sys.exit(EXIT_BAD_INPUT)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--root", type=Path, default=Path("reference_outputs"), help="golden folder (default: %(default)s)")
    p.add_argument("--profiles-dir", type=Path, action="append", metavar="DIR",
                   help="user profiles layered over the built-ins, ./device_profiles and $HARNESS_PROFILES; "
                        "repeatable, later wins")
    p.add_argument("--no-builtin-profiles", action="store_true",
                   help="use only user profiles (./device_profiles, $HARNESS_PROFILES, --profiles-dir)")


def _report_flags(p: argparse.ArgumentParser) -> None:
    """The report formats (harness.report.render), written from the run record."""
    p.add_argument("--junit-xml", type=Path, metavar="PATH",
                   help="write JUnit XML: one testcase per cell, skips, xfails and failures mapped as pytest maps them")
    p.add_argument("--markdown", type=Path, metavar="PATH",
                   help="write a Markdown summary: counts, the matrix, failing cells (fits $GITHUB_STEP_SUMMARY)")
    p.add_argument("--html", type=Path, metavar="PATH",
                   help="write one self-contained HTML report with plots (needs the report extra)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="harness", description="Cross-device ONNX conformance harness.")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)
    run = sub.add_parser("run", help="run cases on profiles and compare against goldens")
    run.add_argument("targets", nargs="*", metavar="PATH|CASE",
                     help="case names, case folders or .onnx files (default: every case under --root)")
    run.add_argument("--suite", metavar="NAME",
                     help="run a built-in case source instead of case folders: 'onnx-node' is onnx's 1884 node tests, "
                          "built once and cached")
    run.add_argument("--filter", metavar="REGEX", help="only the cases whose name matches (Python re.search)")
    run.add_argument("--by-op", action="store_true",
                     help="per-operator tables (cases, verdicts, worst error) and which ops pass on one profile only")
    run.add_argument("--profile", action="append", dest="profiles", metavar="NAME", help="repeatable; default: all")
    run.add_argument("--jobs", type=_positive_int, default=0,
                     help="cells run in parallel (default: every core with --numerics-only, else 1 so latency "
                          "samples do not compete)")
    run.add_argument("--timeout", type=_positive_float, help="per-cell timeout in seconds (default: the profile's)")
    run.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=N", help="bind a symbolic dim")
    run.add_argument("--seed", type=_seed, default=0, help="seed for generated inputs (default: 0)")
    run.add_argument("--out", type=Path, default=Path("results"), help="where run records go (default: %(default)s)")
    run.add_argument("--resume", type=Path, metavar="RECORD", help="skip cells already finished in this run record")
    run.add_argument("--numerics-only", action="store_true", help="skip latency and memory sampling")
    run.add_argument("--time-cap", type=_positive_float, default=1.0, help="latency sampling seconds per cell")
    run.add_argument("--baseline", type=Path, metavar="RECORD", help="compare latency with an earlier run record")
    run.add_argument("--max-regression", action="append", default=[], metavar="STAT:LIMIT",
                     help="e.g. p95:5%% or p50:0.2ms; repeatable (default with --baseline: p50:10%%)")
    run.add_argument("--repeat", type=_repeat, default=1,
                     help=f"run N times (at most {MAX_REPEAT}) and report run-to-run spread")
    run.add_argument("--reference", default="cpu", metavar="PROFILE",
                     help="cases without goldens (a bare model.onnx) are compared with this profile (default: cpu)")
    run.add_argument("--calibration-data", type=Path, metavar="DIR",
                     help="test_data_set_<k>/ inputs that calibrate int8-static (default: the case's own inputs)")
    run.add_argument("--perturb", action="append", default=[], metavar="noise:SIGMA|quantize:BITS",
                     help="rerun each case with seeded input perturbations and report per device how far its task "
                          "metric moves (repeatable)")
    run.add_argument("--save-outputs", choices=("all", "failing", "none"), default="failing",
                     help="keep actual outputs beside the record as ONNX TensorProto files in the test-data layout: "
                          "every cell's, FAIL cells' (default) or none")
    _report_flags(run)
    run.add_argument("--quiet", action="store_true",
                     help="no live progress line (cells done/total, ETA, the running cell); it is shown on a terminal only")
    run.add_argument("--localize", action="store_true",
                     help="localise each failing cell (harness localize) and reference the result from the cell's "
                          "artifacts (localize/<cell>.json beside the record)")
    run.add_argument("--tolerance", choices=("auto", "calibrated", "declared"), default="auto",
                     help="for calibrated cases (harness calibrate): auto = the calibrated rule on float32 profiles, "
                          "declared gates on reduced-precision ones; calibrated = on every profile; declared = never")
    run.add_argument("--in-process", action="store_true",
                     help="debugging: run cells in this process (no isolation, timeouts or memory limits)")
    run.add_argument("--ray", metavar="ADDRESS|auto",
                     help="run each cell on a host of this Ray cluster that offers its profile (harness lab join); "
                          "needs the ray extra")
    _common(run)
    lst = sub.add_parser("list", help="show cases and profiles")
    _common(lst)
    prof = sub.add_parser("profiles", help="show each profile as available or skipped, with the reason")
    _common(prof)
    ops = sub.add_parser("ops", help="per-operator view of a run record; with two profiles, which ops pass on one only")
    ops.add_argument("record", type=Path, metavar="RECORD", help="a results/<run>/ folder or its record.json")
    ops.add_argument("--profile", action="append", dest="profiles", metavar="NAME",
                     help="profiles to show (default: all in the record); the first is diffed against the others")
    ops.add_argument("--against", type=Path, metavar="RECORD",
                     help="diff against this other record (e.g. from another machine): same profile names on both")
    bless = sub.add_parser("bless", help="write goldens from a profile's run (atomic; --force to overwrite)")
    bless.add_argument("case", help="case name or directory")
    bless.add_argument("--profile", default="cpu", help="profile whose outputs become goldens (default: cpu)")
    bless.add_argument("--force", action="store_true", help="overwrite existing goldens")
    bless.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=N")
    bless.add_argument("--seed", type=_seed, default=0)
    _common(bless)
    setup = sub.add_parser("setup", help="prepare an emulated device on this host (arm64: qemu + aarch64 Python; "
                                         "web: Node.js onnxruntime-web), into a cache folder; idempotent")
    setup.add_argument("target", choices=("arm64", "web"))
    setup.add_argument("--force", action="store_true", help="set up again even where the cache is complete")
    compare = sub.add_parser("compare", help="one cross-device matrix from records of several machines and profiles; "
                                             "saved outputs compared device against device (exit 1 on disagreement)")
    compare.add_argument("records", nargs="+", type=Path, metavar="RECORD",
                         help="results/<run>/ folders or their record.json (from any machine)")
    compare.add_argument("--html", type=Path, metavar="PATH", help="also write the comparison as one HTML file")
    compare.add_argument("--markdown", type=Path, metavar="PATH",
                         help="also write the comparison as Markdown (fits $GITHUB_STEP_SUMMARY)")
    report = sub.add_parser("report", help="render saved run records as JUnit XML, Markdown or HTML without re-running "
                                           "(no format given: print each record's matrix)")
    report.add_argument("records", nargs="+", type=Path, metavar="RECORD",
                        help="results/<run>/ folders or their record.json (older record versions are upgraded)")
    _report_flags(report)
    export = sub.add_parser("export", help="export the bundled PyTorch zoo and write goldens from eager PyTorch")
    export.add_argument("names", nargs="*", help="zoo entries (default: all)")
    export.add_argument("--force", action="store_true", help="overwrite existing models and goldens")
    export.add_argument("--check", action="store_true",
                        help="re-export into a scratch folder and regression-check it against the committed goldens")
    _common(export)
    loc = sub.add_parser("localize", help="find the first node where a profile parts ways with a reference, rank "
                                          "suspects, cut a minimal repro case")
    loc.add_argument("case", metavar="CASE", help="case name or folder")
    loc.add_argument("--profile", required=True, help="the profile whose outputs fail")
    loc.add_argument("--against", default="cpu", metavar="PROFILE",
                     help="the reference profile (default: cpu; 'reference' is the float64 onnx.reference evaluator)")
    loc.add_argument("--cap-mb", type=_positive_finite, default=64.0,
                     help="intermediate bytes exposed per side and batch (default: %(default)s)")
    loc.add_argument("--growth", type=_positive_finite, default=4.0,
                     help="how much a node may amplify the relative error it receives before it is suspect "
                          "(default: %(default)s)")
    loc.add_argument("--rtol", type=float, help="with --atol: replace the profile's tolerance (outputs, scope rule "
                                                "and the repro's case.json)")
    loc.add_argument("--atol", type=float)
    loc.add_argument("--out", type=Path, help="repro folder (default: results/localize/<case>__<profile>)")
    loc.add_argument("--json", type=Path, metavar="FILE", help="also write the localisation as JSON")
    loc.add_argument("--bisect", action="store_true",
                     help="binary-search the first diverging batch (log2 of the batches' count runs) instead of "
                          "comparing every batch; suspects are then ranked among the batches that ran")
    loc.add_argument("--no-repro", action="store_true", help="do not cut a repro")
    loc.add_argument("--no-pass-blame", action="store_true", help="do not bisect onnxruntime's optimisers")
    loc.add_argument("--dim", type=_dim, action="append", default=[], metavar="NAME=N")
    loc.add_argument("--seed", type=_seed, default=0)
    loc.add_argument("--timeout", type=_positive_float, help="per-run timeout in seconds (default: the profile's)")
    loc.add_argument("--in-process", action="store_true", help="debugging: run sessions in this process")
    _common(loc)
    calibrate = sub.add_parser("calibrate", help="measure each case's noise floor (CPU EP at 3 graph optimisation "
                                                 "levels + float64 reference) and write calibrated tolerances")
    calibrate.add_argument("cases", nargs="*", metavar="CASE", help="case names or folders (default: every case)")
    calibrate.add_argument("--k", type=_positive_finite, default=8.0,
                           help="allowed multiple of the noise floor: |a-g| <= k*max(U,4)*ulp(max(|g|,f)) (default: 8)")
    calibrate.add_argument("--force", action="store_true", help="replace an existing calibration")
    calibrate.add_argument("--jobs", type=_positive_int, default=0, help="runs in parallel (default: every core)")
    _common(calibrate)
    lab = sub.add_parser("lab", help="a lab of machines on Ray: 'harness lab join' makes this host run cells of the "
                                     "profiles that work here")
    lab_sub = lab.add_subparsers(dest="lab_command", parser_class=_Parser, required=True)
    join = lab_sub.add_parser("join", help="join the lab's Ray cluster (ray start), offering the profiles that run "
                                           "on this host as profile:<name> resources")
    join.add_argument("--address", required=True, metavar="HEAD", help="the head's HOST:PORT (port 6379 by default)")
    join.add_argument("--profiles", metavar="A,B", help="profiles to offer (default: every profile that runs here); "
                                                        "one that does not run here is left out, with the reason")
    join.add_argument("--slots", type=_positive_int, default=1,
                      help="cells of each profile this host runs at once (default: 1, so latency is not disturbed)")
    join.add_argument("--print", action="store_true", dest="print_only", help="print the ray start line, do not run it")
    _common(join)
    _fuzz_parser(sub)
    _data_parsers(sub)
    return parser


def _data_parsers(sub) -> None:
    """harness validate (data sets against the model) and harness drift (two input sets) (harness.golden)."""
    validate = sub.add_parser("validate", help="check cases' inputs and goldens against the model before running: "
                                               "dtype, rank, dims, NaN/Inf, declared ranges, empty and duplicate sets")
    validate.add_argument("cases", nargs="*", metavar="CASE", help="case names or folders (default: every case)")
    _common(validate)
    drift = sub.add_parser("drift", help="compare two input sets (e.g. the goldens' inputs and a new capture): "
                                         "per-input statistics and a two-sample KS test, shift flagged")
    drift.add_argument("a", type=Path, metavar="A", help="a case folder or test-data layout folder")
    drift.add_argument("b", type=Path, metavar="B", help="the same for the other set")
    drift.add_argument("--alpha", type=_positive_finite, default=0.01, help="p-value below which a shift may be "
                                                                            "flagged (default: %(default)s)")
    drift.add_argument("--min-d", type=_positive_finite, default=0.1, help="KS distance at or above which a shift "
                                                                           "may be flagged (default: %(default)s)")
    drift.add_argument("--json", type=Path, metavar="FILE", help="also write the comparison as JSON")


def _budget(text: str) -> float:
    """'10m', '90s', '1h' or plain seconds: a campaign's wall-clock budget in seconds."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1.0)
    try:
        seconds = float(number) * unit
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (e.g. 10m, 90s, 1h)") from None
    if not (seconds > 0 and seconds < float("inf")):
        raise argparse.ArgumentTypeError(f"{text!r}: a budget is a finite duration above 0")
    return seconds


def _fuzz_parser(sub) -> None:
    fuzz = sub.add_parser("fuzz", help="differential fuzzing: random valid ONNX graphs on every profile and the "
                                       "float64 reference; disagreements localised, shrunk and saved as cases")
    fuzz.add_argument("--profile", action="append", default=[], metavar="NAME",
                      help="a profile to fuzz (repeatable; at least one)")
    fuzz.add_argument("--reference", default="reference", metavar="NAME",
                      help="the profile every other one is compared with (default: %(default)s, float64)")
    fuzz.add_argument("--budget", type=_budget, default=600.0, metavar="DURATION",
                      help="wall-clock budget of this session: 10m, 90s, 1h (default: 10m)")
    fuzz.add_argument("--seed", type=_seed, default=0, help="the same seed draws the same graphs (default: 0)")
    fuzz.add_argument("--out", type=Path, default=None, metavar="DIR",
                      help="campaign folder (default: results/fuzz/seed-<S>)")
    fuzz.add_argument("--resume", type=Path, metavar="DIR", help="continue the campaign in DIR where it stopped")
    fuzz.add_argument("--batch", type=_positive_int, default=24, help="graphs per run_matrix batch (default: 24)")
    fuzz.add_argument("--max-nodes", type=_positive_int, default=8, help="nodes per graph at most (default: 8)")
    fuzz.add_argument("--opset", type=_positive_int, default=None, help="opset of the graphs (default: 21)")
    fuzz.add_argument("--op", action="append", default=[], metavar="OP", help="draw only these ops (repeatable)")
    fuzz.add_argument("--timeout", type=_positive_float, default=60.0,
                      help="seconds per cell before it is a TIMEOUT finding (default: %(default)s)")
    fuzz.add_argument("--jobs", type=int, default=0, help="cells at a time (default: 0, every core)")
    fuzz.add_argument("--json", type=Path, metavar="FILE", help="also write the report here (it is always written "
                                                                  "as fuzz-report.json in the campaign folder)")
    _common(fuzz)


def _tolerant_streams() -> None:
    """An ASCII-only (or otherwise narrow) stdout gets '?' for what it cannot show, never a UnicodeEncodeError
    halfway through the matrix."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.reconfigure(errors="replace")  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):  # not a TextIOWrapper (a test's capture), or closed
            pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the main thread is, so a terminated run unwinds like Ctrl-C: the journal is closed,
    the workers are stopped, and one line says how to resume."""


def _terminate_like_interrupt() -> None:
    import signal
    import threading

    def handler(signum, frame) -> None:
        raise Terminated()
    if threading.current_thread() is threading.main_thread():
        try:
            signal.signal(signal.SIGTERM, handler)
        except (ValueError, OSError):  # not allowed here (an embedding host): keep the default
            pass


def main(argv: list[str] | None = None) -> int:
    _tolerant_streams()
    _terminate_like_interrupt()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.command:  # like any other usage error: usage on stderr, exit 2 (--help is stdout, exit 0)
        parser.print_usage(sys.stderr)
        print(f"harness: error: a command is required. Note: see '{parser.prog} --help'", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        from harness import commands
        return getattr(commands, f"cmd_{args.command}")(args)
    except HarnessError as exc:
        print(f"harness: error: {_printable(exc.one_line())}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a path too long, a folder where a file should be, a full disk: the OS's words
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"harness: error: {_printable(_shorten(where))}{exc.strerror or exc}. Note: check the path and the free space",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
        print(f"harness: {what}; finished cells are in the run journal (resume with --resume)", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130


__all__ = ["main", "UsageError"]
