"""One matrix across machines: ``harness compare RECORD_A RECORD_B ...``.

Each (host, profile) of each record is a column. Where two columns both saved a case's outputs
(``--save-outputs``), their outputs are compared with each other directly, with harness.compare's comparator
at the looser of the two cells' tolerances (each device was judged at its own; a pair may differ by what the
looser one allows); every column's own comparison with the golden comes from its record. Environments that
differ (CPU, architecture, onnxruntime, EP, transform) are shown next to the pairs that differ, and a column
whose host is not the profile's target (an OpenVINO profile measured on an AMD CPU) is labelled.

The saved-output readers here (``saved_outputs``, ``golden_outputs``) also serve the HTML report.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.message import DecodeError

from harness.compare.comparator import OutputComparison, compare_value
from harness.compare.tolerances import SIGNAL_GATES, Tolerance, resolve_tolerance
from harness.errors import GoldenError, HarnessError, UsageError
from harness.golden.layout import MODEL_NAME, Value, dataset_dirs, read_value
from harness.run import record as R

OUTPUTS_ARTIFACT = "actual_outputs"  # a cell's saved outputs folder (test-data layout), relative to the run
MAX_LISTED = 20  # diverging pairs and notes listed one per line, then a count
Outputs = dict[tuple[int, str], Value]  # (data set, output name) -> value


@dataclass
class Column:
    """One (host, profile) of one record."""

    label: str
    host: str
    profile: str
    record: R.RunRecord
    folder: Path | None  # None: a record never written (no files beside it)
    cells: dict[str, R.CellResult]
    env: dict[str, str]
    target_note: str = ""


@dataclass
class PairResult:
    """One output of one data set of one case, compared between two columns (``left`` is the expected side)."""

    case: str
    dataset: int
    output: str
    left: str
    right: str
    comparison: OutputComparison
    values_at_worst: tuple[str, str] | None = None  # both sides' elements where the absolute difference is largest

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    @property
    def identical(self) -> bool:
        m = self.comparison.metrics
        return self.passed and m is not None and m.mismatched == 0 and not m.max_abs_diff

    def score(self) -> tuple[bool, float, float]:
        """Worse sorts later: a failure, then the larger mismatched fraction, then the larger difference."""
        m = self.comparison.metrics
        if m is None:
            return (not self.passed, 1.0, float("inf"))
        return (not self.passed, m.mismatch_fraction, m.max_abs_diff if m.max_abs_diff is not None else 0.0)


@dataclass
class CrossMatrix:
    columns: list[Column]
    cases: list[str]
    pairs: list[PairResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def disagreements(self) -> list[PairResult]:
        return [p for p in self.pairs if not p.passed]

    def worst(self) -> PairResult | None:
        diverging = [p for p in self.pairs if not p.identical]
        return max(diverging, key=PairResult.score) if diverging else None

    def column(self, label: str) -> Column:
        return next(c for c in self.columns if c.label == label)


# --- reading saved outputs and goldens -------------------------------------------------------------------------

def _graph_outputs(model_path: Path) -> list[tuple[str, Any]]:
    """The model's outputs in order, (name, declared type): output_<j>.pb is the j-th. [] when unreadable."""
    import onnx
    try:
        graph = onnx.load(str(model_path), load_external_data=False).graph
    except (OSError, ValueError, RuntimeError, DecodeError):
        return []
    return [(value.name, value.type) for value in graph.output]


def case_folder(record: R.RunRecord, case: str, roots: Sequence[Path] = ()) -> Path | None:
    """Where the case's goldens are: under a root given here, else under the run's --root (relative to the
    folder the run started in). None when neither holds the case (another machine's paths, a suite cache)."""
    options = record.options
    selection = options.get("selection") if isinstance(options.get("selection"), dict) else {}
    root = Path(str(options.get("root") or "reference_outputs"))
    cwd = Path(str(selection.get("cwd") or "."))
    for base in (*roots, root if root.is_absolute() else cwd / root):
        candidate = base / case
        if candidate.is_dir() and (candidate / MODEL_NAME).is_file():
            return candidate
    return None


def saved_outputs(folder: Path | None, cell: R.CellResult) -> tuple[Outputs | None, list[str]]:
    """The cell's saved actual outputs (None when the run kept none for it), and why they could not be read."""
    if folder is None or not cell.artifacts.get(OUTPUTS_ARTIFACT):
        return None, []
    try:
        found = R.read_saved_outputs(folder, cell)
    except HarnessError as exc:  # a path leaving the run folder, a damaged .pb or manifest
        return None, [exc.one_line()]
    if not found:
        return None, [f"case {cell.case!r} on {cell.profile!r}: the saved outputs folder is missing or empty"]
    return {(index, name): value for index, values in found.items() for name, value in values.items()}, []


def golden_outputs(case_dir: Path) -> tuple[Outputs, list[str]]:
    """The case's golden outputs, keyed by (data set, output name), each read as its declared type."""
    outputs = _graph_outputs(case_dir / MODEL_NAME)
    values: Outputs = {}
    problems: list[str] = []
    for index, ds_dir in dataset_dirs(case_dir):
        for position, (name, type_proto) in enumerate(outputs):
            path = ds_dir / f"output_{position}.pb"
            if not path.is_file():
                continue
            try:
                values[(index, name)] = read_value(path, type_proto)[1]
            except GoldenError as exc:
                problems.append(exc.one_line())
    return values, problems


# --- columns ---------------------------------------------------------------------------------------------------

def _flags(machine: Mapping[str, Any]) -> str:
    flags = machine.get("cpu_flags", machine.get("flags"))
    if isinstance(flags, (list, tuple)):
        return " ".join(sorted(str(f) for f in flags))
    return str(flags) if flags else ""


def environment(record: R.RunRecord, profile: str) -> dict[str, str]:
    """What can make two devices' numbers differ, flat and comparable: host, CPU, flags, versions, EP."""
    machine, entry = record.machine, record.profiles.get(profile, {})
    env = {"host": str(machine.get("node", "?")), "cpu": str(machine.get("cpu", "?")),
           "arch": str(machine.get("machine", "?")), "cores": str(machine.get("cores", "?"))}
    if _flags(machine):
        env["cpu flags"] = _flags(machine)
    env.update({name: str(value) for name, value in sorted(record.versions.items())})
    env["ep"] = str(entry.get("ep", "?"))
    env["transform"] = str(entry.get("transform", "?"))
    worker = entry.get("worker") if isinstance(entry.get("worker"), dict) else {}
    for name, value in sorted((worker.get("versions") or {}).items()):
        env[f"worker {name}"] = str(value)
    return env


# Whole words only: "arm64" names an architecture, not a vendor; "amd64" is x86-64, not an AMD CPU.
_VENDORS = {"intel": ("intel", "xeon", "core i[3579]"), "amd": ("amd", "epyc", "ryzen"),
            "arm": ("neoverse", "cortex", "graviton", "ampere"), "apple": ("apple",),
            "qualcomm": ("qualcomm", "snapdragon")}
_ARCHES = {"x86_64": ("x86-64", "x86_64", "amd64"), "aarch64": ("arm64", "aarch64")}


def _named(text: str, table: Mapping[str, tuple[str, ...]]) -> set[str]:
    lowered = text.lower()
    return {key for key, words in table.items() if any(re.search(rf"\b{word}\b", lowered) for word in words)}


def target_note(record: R.RunRecord, profile: str) -> str:
    """Why this host is not what the profile stands for ("" when nothing says so): the profile's target names
    a CPU vendor or architecture this host does not have, the profile was not available, or the run noted
    threads or cores this host lacks."""
    entry = record.profiles.get(profile, {})
    target = str(entry.get("target") or "")
    cpu, arch = str(record.machine.get("cpu", "")), str(record.machine.get("machine", "")).lower()
    notes = []
    vendors, here = _named(target, _VENDORS), _named(cpu, _VENDORS)
    arches = _named(target, _ARCHES)
    if vendors and here and not vendors & here:
        notes.append(f"not the profile's target: target is {target!r}, this host's CPU is {cpu!r}")
    elif arches and arch and not any(arch in words or arch == key for key, words in _ARCHES.items() if key in arches):
        notes.append(f"not the profile's target: target is {target!r}, this host is {arch}")
    if entry.get("available") is False:
        notes.append(f"not available on this host: {entry.get('reason') or 'no reason recorded'}")
    notes += [str(n) for n in entry.get("notes") or []]
    return "; ".join(notes)


def columns_of(loaded: Sequence[tuple[R.RunRecord, Path | None]]) -> list[Column]:
    """A column per (record, profile) in record order; a (host, profile) seen twice is told apart by run id."""
    raw = [(record, folder, profile) for record, folder in loaded
           for profile in dict.fromkeys(c.profile for c in record.cells)]
    counts: dict[tuple[str, str], int] = {}
    for record, _, profile in raw:
        key = (str(record.machine.get("node", "?")), profile)
        counts[key] = counts.get(key, 0) + 1
    columns = []
    for record, folder, profile in raw:
        host = str(record.machine.get("node", "?"))
        label = f"{host}/{profile}" + (f"@{record.run_id}" if counts[(host, profile)] > 1 else "")
        cells = {c.case: c for c in record.cells if c.profile == profile}
        columns.append(Column(label, host, profile, record, folder, cells, environment(record, profile),
                              target_note(record, profile)))
    return columns


# --- comparing -------------------------------------------------------------------------------------------------

def _looser_gate(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else min(a, b)


def looser(a: Tolerance, b: Tolerance) -> Tolerance:
    """The tolerance that lets through what either lets through, gate by gate (None: no gate on that side)."""
    gates = {name: _looser_gate(getattr(a, name), getattr(b, name)) for name in SIGNAL_GATES}
    elementwise = a.elementwise and b.elementwise
    merged = replace(a, rtol=max(a.rtol, b.rtol), atol=max(a.atol, b.atol), topk=max(a.topk, b.topk),
                     max_mismatch_fraction=max(a.max_mismatch_fraction, b.max_mismatch_fraction),
                     elementwise=True, **gates)
    return replace(merged, elementwise=elementwise) if elementwise or merged.has_signal_gate() else merged


def recorded_tolerance(cell: R.CellResult, dataset: int, name: str) -> Tolerance | None:
    """The tolerance the cell's run judged this output at (None when the record has no comparison for it)."""
    for entry in cell.outputs:
        comparison = entry.get("comparison") or {}
        if entry.get("dataset") == dataset and comparison.get("name") == name and comparison.get("tolerance"):
            return OutputComparison.from_dict(comparison).tolerance
    return None


def _element(value: Any, index: list[int] | None) -> str:
    try:
        return f"{np.asarray(value)[tuple(index)].item():.7g}" if index is not None else ""
    except (IndexError, TypeError, ValueError):
        return ""


def compare_pair(case: str, left: Column, right: Column, a: Outputs, b: Outputs) -> list[PairResult]:
    """Each output both columns saved, ``left`` as the expected side."""
    results = []
    for key in sorted(a.keys() & b.keys(), key=lambda k: (k[0], k[1])):
        dataset, name = key
        recorded = [t for t in (recorded_tolerance(left.cells[case], dataset, name),
                                recorded_tolerance(right.cells[case], dataset, name)) if t is not None]
        judged = looser(*recorded) if len(recorded) == 2 else (recorded[0] if recorded else None)

        def tolerance_for(golden_dtype: Any, actual_dtype: Any, judged: Tolerance | None = judged) -> Tolerance:
            return judged if judged is not None else resolve_tolerance(golden_dtype, actual_dtype, [])

        comparison = compare_value(name, a[key], b[key], tolerance_for, against=left.label)
        m = comparison.metrics
        worst = None
        if m is not None and m.max_abs_index is not None and comparison.kind == "tensor":
            worst = (_element(a[key], m.max_abs_index), _element(b[key], m.max_abs_index))
        results.append(PairResult(case, dataset, name, left.label, right.label, comparison, worst))
    return results


def _common_cases(columns: list[Column], notes: list[str]) -> list[str]:
    every = [set(c.cells) for c in columns]
    common = set.intersection(*every)
    ordered = list(dict.fromkeys(case for c in columns for case in c.cells if case in common))
    for column in columns:
        extra = sorted(set(column.cells) - common)
        if extra:
            shown = ", ".join(repr(e) for e in extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
            notes.append(f"{column.label}: {len(extra)} case(s) not in every record, not compared: {shown}")
    return ordered


def build(loaded: Sequence[tuple[R.RunRecord, Path]]) -> CrossMatrix:
    """The cross-device matrix of the loaded records (each with its folder), pairs compared where saved."""
    columns = columns_of(loaded)
    if len(columns) < 2:
        raise UsageError(f"compare needs at least two (host, profile) columns; the record(s) given hold "
                         f"{len(columns)}", hint="pass two run records, or one record of a run on two profiles")
    notes: list[str] = []
    cases = _common_cases(columns, notes)
    if not cases:
        raise UsageError("the records share no case, so there is nothing to compare",
                         hint="run the same cases on each machine (harness run CASE... --save-outputs all)")
    matrix = CrossMatrix(columns, cases, notes=notes)
    missing: dict[tuple[str, bool], int] = {}  # (column, ran) -> cases without saved outputs
    for case in cases:
        saved = {}
        for column in columns:
            outputs, problems = saved_outputs(column.folder, column.cells[case])
            notes.extend(problems)
            if outputs is None:
                ran = column.cells[case].verdict not in _DID_NOT_RUN
                missing[(column.label, ran)] = missing.get((column.label, ran), 0) + 1
            else:
                saved[column.label] = outputs
        for left, right in itertools.combinations(columns, 2):
            if left.label in saved and right.label in saved:
                matrix.pairs.extend(compare_pair(case, left, right, saved[left.label], saved[right.label]))
    notes.extend(_missing_notes(missing, len(cases)))
    return matrix


_DID_NOT_RUN = frozenset({R.SKIPPED, R.NOT_APPLICABLE, R.TRANSFORM_FAILED, R.UNSUPPORTED})


def _missing_notes(missing: dict[tuple[str, bool], int], cases: int) -> list[str]:
    """Why a column's cases take no part in a direct comparison: they did not run there, or ran unsaved."""
    return [f"{label}: {count} of {cases} common case(s) " + (
        "have no saved outputs, so they are compared with the golden only (run with --save-outputs all to compare "
        "devices directly)" if ran else "did not run there (SKIPPED or not applicable), so they have no outputs "
        "to compare") for (label, ran), count in missing.items()]


# --- text ------------------------------------------------------------------------------------------------------

def _num(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4g}"


def golden_summary(cell: R.CellResult) -> str:
    """The verdict and the largest difference from the golden over the cell's outputs."""
    diffs = [(e.get("comparison") or {}).get("metrics") or {} for e in cell.outputs]
    worst = max((d.get("max_abs_diff") for d in diffs if isinstance(d.get("max_abs_diff"), (int, float))), default=None)
    return cell.verdict + (f" max|d| {_num(worst)}" if worst is not None else "")


def pair_line(pair: PairResult) -> str:
    """One line with the numbers: 'case/output[ds]: A vs B: max abs diff .. at (..) (A .., B ..), cosine ..'."""
    c, m = pair.comparison, pair.comparison.metrics
    head = f"{pair.case} / {pair.output} [data set {pair.dataset}]: {pair.left} vs {pair.right}: "
    if m is None:
        return head + ("; ".join(c.reasons) or "not comparable")
    at = f" at {tuple(m.max_abs_index)}" if m.max_abs_index is not None else ""
    values = f" ({pair.left} {pair.values_at_worst[0]}, {pair.right} {pair.values_at_worst[1]})" \
        if pair.values_at_worst and pair.values_at_worst[0] else ""
    cosine = f", cosine {m.cosine:.9g}" if m.cosine is not None else ""
    verdict = "AGREE" if pair.passed else "DISAGREE"
    return (f"{head}{verdict}: max abs diff {_num(m.max_abs_diff)}{at}{values}, max rel diff {_num(m.max_rel_diff)}"
            f"{cosine}, {m.mismatched}/{m.total} elements beyond {c.tolerance.describe()}")


def env_differences(a: Column, b: Column) -> list[str]:
    """'onnxruntime: 1.32.0 vs 1.31.0' for each environment key that differs (flags as what each side lacks)."""
    lines = []
    for key in dict.fromkeys([*a.env, *b.env]):
        left, right = a.env.get(key, "-"), b.env.get(key, "-")
        if left == right:
            continue
        if key == "cpu flags":
            only_a = sorted(set(left.split()) - set(right.split()))
            only_b = sorted(set(right.split()) - set(left.split()))
            lines.append(f"cpu flags: only {a.label}: {' '.join(only_a[:12]) or '-'}; "
                         f"only {b.label}: {' '.join(only_b[:12]) or '-'}")
        else:
            lines.append(f"{key}: {left} vs {right}")
    return lines


def text_report(matrix: CrossMatrix) -> list[str]:
    """The pairs, the worst pair, environment differences and notes, as plain lines (the caller escapes them)."""
    lines: list[str] = []
    diverging = sorted((p for p in matrix.pairs if not p.identical), key=PairResult.score, reverse=True)
    identical = len(matrix.pairs) - len(diverging)
    lines.append(f"{len(matrix.pairs)} output pair(s) compared directly: {len(matrix.disagreements)} disagree beyond "
                 f"tolerance, {len(diverging) - len(matrix.disagreements)} differ within it, {identical} identical")
    lines += [f"  {pair_line(p)}" for p in diverging[:MAX_LISTED]]
    if len(diverging) > MAX_LISTED:
        lines.append(f"  ... and {len(diverging) - MAX_LISTED} more differing pair(s)")
    worst = matrix.worst()
    if worst is not None:
        lines.append(f"worst pair: {pair_line(worst)}")
    for left, right in _differing_columns(matrix):
        diffs = env_differences(left, right)
        lines.append(f"environment {left.label} vs {right.label}: " + ("; ".join(diffs) if diffs else "identical"))
    for column in matrix.columns:
        if column.target_note:
            lines.append(f"note: {column.label}: {column.target_note}")
    lines += [f"note: {n}" for n in matrix.notes[:MAX_LISTED]]
    if len(matrix.notes) > MAX_LISTED:
        lines.append(f"note: ... and {len(matrix.notes) - MAX_LISTED} more note(s)")
    return lines


def _differing_columns(matrix: CrossMatrix) -> list[tuple[Column, Column]]:
    """Column pairs with a diverging output or a different verdict on some case, in column order."""
    found: dict[tuple[str, str], None] = {}
    for pair in matrix.pairs:
        if not pair.identical:
            found[(pair.left, pair.right)] = None
    for left, right in itertools.combinations(matrix.columns, 2):
        if any(left.cells[c].verdict != right.cells[c].verdict for c in matrix.cases):
            found[(left.label, right.label)] = None
    order = [c.label for c in matrix.columns]
    return [(matrix.column(a), matrix.column(b)) for a, b in sorted(found, key=lambda k: (order.index(k[0]),
                                                                                         order.index(k[1])))]


def differing_cells(matrix: CrossMatrix) -> dict[tuple[str, str], list[str]]:
    """(case, column label) -> the environment lines that set it apart from the column it differs from."""
    marks: dict[tuple[str, str], list[str]] = {}
    for pair in matrix.pairs:
        if not pair.identical:
            left, right = matrix.column(pair.left), matrix.column(pair.right)
            marks.setdefault((pair.case, pair.right), env_differences(left, right))
    return marks


def print_cross_matrix(console: Any, matrix: CrossMatrix) -> None:
    """The common cases x columns table (verdict and largest difference from the golden; '!' marks a cell whose
    outputs disagree with another column's), then the text report."""
    from rich.table import Table
    from rich.text import Text

    from harness.report.console import printable
    marked = {(p.case, side) for p in matrix.disagreements for side in (p.left, p.right)}
    table = Table(title="Cross-device matrix (host/profile)", show_lines=False)
    table.add_column(Text("case"), no_wrap=True)
    for column in matrix.columns:
        table.add_column(Text(printable(column.label + (" (not target)" if column.target_note else ""))),
                         overflow="fold")
    for case in matrix.cases:
        row = [Text(printable(case))]
        for column in matrix.columns:
            text = golden_summary(column.cells[case]) + (" !" if (case, column.label) in marked else "")
            row.append(Text(printable(text), style="bold red" if (case, column.label) in marked else ""))
        table.add_row(*row)
    console.print(table)
    for line in text_report(matrix):
        console.print(Text(printable(line)), soft_wrap=True)  # one line per pair, whatever the width: greppable


def compare_markdown(matrix: CrossMatrix) -> str:
    """The comparison as Markdown (a pull request or $GITHUB_STEP_SUMMARY): the common cases x columns table,
    then the report's lines; every name escaped by the Markdown report's ``md``."""
    from harness.report.markdown import md
    marked = {(p.case, side) for p in matrix.disagreements for side in (p.left, p.right)}
    header = ["case", *(md(c.label) + (" (not target)" if c.target_note else "") for c in matrix.columns)]
    rows = [[md(case), *(md(golden_summary(c.cells[case])) + (" ❌" if (case, c.label) in marked else "")
                         for c in matrix.columns)] for case in matrix.cases]
    lines = [f"## Cross-device comparison: {len(matrix.columns)} columns, {len(matrix.cases)} common case(s)", "",
             "| " + " | ".join(header) + " |", "|" + " --- |" * len(header),
             *("| " + " | ".join(row) + " |" for row in rows), ""]
    lines += [f"- {md(line, 2000)}" for line in text_report(matrix)]
    return "\n".join(lines) + "\n"
