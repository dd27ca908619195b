"""Report: the cases x profiles matrix, then per-output detail for every cell that did not pass."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterable, Mapping

from rich.console import Console
from rich.table import Table
from rich.text import Text

from harness.run import record as R

_STYLE = {R.PASS: "green", R.PASS_FELL_BACK: "yellow", R.XFAIL: "cyan", R.XPASS: "magenta", R.SKIPPED: "dim",
          R.FAIL: "bold red", R.CRASH: "bold red", R.TIMEOUT: "bold red", R.OOM: "bold red", R.ERROR: "bold red",
          R.OVER_BUDGET: "bold yellow", R.NO_GOLDEN: "yellow", R.TRANSFORM_FAILED: "magenta",
          R.NOT_APPLICABLE: "dim", R.UNSUPPORTED: "magenta", R.LOST: "bold yellow"}


def printable(text: str) -> str:
    """``text`` with every character a terminal would act on (ESC, BEL, C1 controls, bidi overrides) written as
    its escape, so a case or profile name can never recolour, retitle or rewrite the user's terminal. Line
    breaks and tabs stay: report blocks are multi-line."""
    if text.isprintable():
        return text
    return "".join(c if c in "\n\t" or c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def make_console(file=None) -> Console:
    stream = file or sys.stdout
    width = None if stream.isatty() else int(os.environ.get("COLUMNS", 0)) or max(160, shutil.get_terminal_size().columns)
    return Console(file=stream, width=width, highlight=False, soft_wrap=False)


def _ci_pct(value: float, ci: list[float] | None) -> str:
    """The 95% CI as a relative half-width: compact enough for a matrix cell (the record keeps the bounds)."""
    if not ci or value <= 0:
        return ""
    return f" ±{100 * (ci[1] - ci[0]) / 2 / value:.0f}%"


def max_ulps(cell: R.CellResult) -> dict[str, int]:
    """Per float output, the largest ULP distance from what it was compared with over the cell's data sets (the
    comparator's max_ulp). Left out: outputs with no ULP measure (integers, strings, sequences), and outputs judged
    by signal quality rather than elementwise (int8: millions of ULP there say nothing the SNR does not)."""
    found: dict[str, int] = {}
    for entry in cell.outputs:
        comparison = entry.get("comparison") or {}
        ulp = (comparison.get("metrics") or {}).get("max_ulp")
        if isinstance(ulp, int) and (comparison.get("tolerance") or {}).get("elementwise", True):
            name = str(comparison.get("name", "?"))
            found[name] = max(found.get(name, 0), ulp)
    return found


def cell_text(cell: R.CellResult, emulated: bool = False) -> Text:
    """The verdict, then placement, latency and memory. An emulated cell shows instead the largest ULP distance
    over its outputs: its timings and memory are the emulator's, its numerics are the device's."""
    text = Text(cell.verdict, style=_STYLE.get(cell.verdict, ""))
    placement = cell.placement
    if placement.get("available") and placement.get("fraction_on_ep", 1.0) < 1.0:
        text.append(f" {placement['fraction_on_ep']:.0%} on EP", style="yellow")
    if cell.verdict == R.SKIPPED:
        return text
    if emulated:
        ulps = max_ulps(cell)
        if ulps:
            text.append(f" {max(ulps.values())}ulp")
        return text
    stats = cell.latency.get("stats") if cell.latency else None
    if stats:
        for name in ("p50", "p95"):
            text.append(f"\n{name} {stats[name]:.3g} ms{_ci_pct(stats[name], stats.get('ci', {}).get(name))}")
    peak = cell.memory.get("peak_delta_mb") if cell.memory else None
    if peak is not None:
        text.append(f"\npeak +{peak:.1f} MB" if peak < 10 else f"\npeak +{peak:.0f} MB", style="")
    return text


def emulated_profiles(record: R.RunRecord) -> dict[str, str]:
    """Profile name -> what emulates it (e.g. "qemu neoverse-n1"), for the profiles of the run that ran emulated."""
    return {name: str(entry["emulated"]) for name, entry in record.profiles.items()
            if isinstance(entry, dict) and entry.get("emulated")}


def _profile_label(name: str, emulated: Mapping[str, str]) -> Text:
    label = Text(printable(name))
    if name in emulated:
        label.append("\nemulated: max ULP, no timing", style="dim")
    return label


def matrix(cells: list[R.CellResult], profiles: Iterable[str], emulated: Mapping[str, str] | None = None) -> Table:
    """One verdict per case x profile. The longer dimension runs down the rows, so a dozen profiles
    over a handful of cases stays readable in a terminal (and 1,800 node cases still scroll). ``emulated``
    profiles (name -> emulator) are labelled so, and show the max ULP in place of timings."""
    profiles = list(profiles)
    emulated = emulated or {}
    cases = list(dict.fromkeys(c.case for c in cells))
    by_key = {c.key: c for c in cells}
    rows_are_cases = len(cases) >= len(profiles)
    rows, columns = (cases, profiles) if rows_are_cases else (profiles, cases)
    corner = "case \\ profile" if rows_are_cases else "profile \\ case"
    table = Table(title="Conformance matrix", show_lines=True)
    table.add_column(Text(corner), no_wrap=True, min_width=max(len(corner), *(len(printable(r)) for r in rows)))
    for name in columns:
        table.add_column(_profile_label(name, emulated) if rows_are_cases else Text(printable(name)), overflow="fold")
    for row_name in rows:
        row = [Text(printable(row_name)) if rows_are_cases else _profile_label(row_name, emulated)]
        for column in columns:
            case, profile = (row_name, column) if rows_are_cases else (column, row_name)
            cell = by_key.get(R.cell_key(case, profile))
            row.append(cell_text(cell, profile in emulated) if cell else Text("-", style="dim"))
        table.add_row(*row)
    return table


def ulp_table(cells: list[R.CellResult], profiles: Iterable[str],
              emulated: Mapping[str, str] | None = None) -> Table | None:
    """Max ULP vs golden per case and float output, one column per profile: how far an emulated device's
    numerics are from the host's, output by output. None when no output has a ULP measure, or (given
    ``emulated``) when none of those profiles measured any: there is nothing to set the host's numbers against."""
    per: dict[tuple[str, str], dict[str, int]] = {}
    for cell in cells:
        for output, ulp in max_ulps(cell).items():
            per.setdefault((cell.case, output), {})[cell.profile] = ulp
    if not per:
        return None
    measured = {name for ulps in per.values() for name in ulps}
    if emulated is not None and not measured & set(emulated):
        return None
    profiles = [name for name in profiles if name in measured]
    table = Table(title="Max ULP vs golden per output", title_justify="left")
    table.add_column("case")
    table.add_column("output")
    for name in profiles:
        table.add_column(Text(printable(name)), justify="right", overflow="fold")
    for (case, output), ulps in per.items():
        table.add_row(Text(printable(case)), Text(printable(output)), *(str(ulps.get(p, "-")) for p in profiles))
    return table


def ulp_lines(cells: list[R.CellResult], emulated: Mapping[str, str]) -> list[str]:
    """The compact form of ulp_table, one line per emulated profile: its largest ULP and where."""
    lines = []
    for name, how in emulated.items():
        worst = [(ulp, cell.case, output) for cell in cells if cell.profile == name
                 for output, ulp in max_ulps(cell).items()]
        if worst:
            ulp, case, output = max(worst, key=lambda found: found[0])  # the first of the worst
            lines.append(f"{name} ({how}): max ULP vs golden over {len(worst)} float output(s): {ulp} "
                         f"({case}/{output}); the run record has each output's")
    return lines


def details(cells: list[R.CellResult]) -> list[str]:
    """Text blocks for every cell that needs a reader's attention (skips are summarised per profile)."""
    from harness.run.verdict import failure_messages  # imports the comparator (and onnx): only when reporting
    blocks = []
    for cell in cells:
        if cell.verdict in (R.PASS, R.SKIPPED, R.XFAIL, R.NOT_APPLICABLE):
            continue
        head = f"[{cell.verdict}] case {cell.case!r} on profile {cell.profile!r}: {cell.detail}"
        body = failure_messages(cell) if cell.verdict in (R.FAIL, R.PASS_FELL_BACK) else []  # PASS*: on task gates
        if cell.verdict == R.PASS_FELL_BACK and cell.placement.get("fell_back"):
            body.insert(0, "Fell back: " + ", ".join(cell.placement["fell_back"][:10]))
        if cell.budget:
            body += ["Over budget: " + v for v in cell.budget]
        if cell.error.get("stderr_tail"):
            body.append("Last stderr lines:\n  " + cell.error["stderr_tail"].replace("\n", "\n  "))
        if cell.artifacts.get("actual_outputs"):
            body.append(f"Actual outputs saved under {cell.artifacts['actual_outputs']}/")
        blocks.append("\n".join([head, *body]))
    return blocks


def skipped_profiles(cells: list[R.CellResult]) -> list[str]:
    """One line per profile that skipped, and per (profile, reason) where a transform did not apply."""
    reasons: dict[tuple[str, str], str] = {}
    for cell in cells:
        if cell.verdict == R.SKIPPED:
            reasons.setdefault((cell.profile, R.SKIPPED), cell.detail)
        elif cell.verdict == R.NOT_APPLICABLE:
            reasons.setdefault((cell.profile, cell.detail), f"{cell.case}: {cell.detail}")
    return [f"{name}: {R.SKIPPED if kind == R.SKIPPED else R.NOT_APPLICABLE} - {reason}"
            for (name, kind), reason in reasons.items()]


def summary(cells: list[R.CellResult]) -> str:
    counts: dict[str, int] = {}
    for cell in cells:
        counts[cell.verdict] = counts.get(cell.verdict, 0) + 1
    return ", ".join(f"{n} {v}" for v, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def comparison_note(record: R.RunRecord) -> str:
    """Say what cells without goldens were compared with: "vs cpu", not "vs golden"."""
    against = sorted({e["comparison"].get("against", "golden") for c in record.cells for e in c.outputs} - {"golden"})
    return f"cases without goldens were compared with profile {', '.join(against)}" if against else ""


COMPACT_CASES = 40  # more cases than this: per-profile counts instead of the full matrix (the record has it all)
MAX_DETAILS = 25  # in a compact report, the first failing cells in full; the rest are counted


def counts_table(cells: list[R.CellResult], profiles: Iterable[str]) -> Table:
    """Per profile: how many cells ended in each verdict (the compact view of a large run, e.g. a suite)."""
    profiles = list(profiles)
    order = list(dict.fromkeys(c.verdict for c in sorted(cells, key=lambda c: c.verdict not in R.FAILING)))
    table = Table(title="Verdicts per profile", title_justify="left")
    table.add_column("profile")
    table.add_column("cells", justify="right")
    for verdict in order:
        table.add_column(Text(verdict, style=_STYLE.get(verdict, "")), justify="right")
    for profile in profiles:
        mine = [c for c in cells if c.profile == profile]
        tally = {v: sum(1 for c in mine if c.verdict == v) for v in order}
        table.add_row(Text(printable(profile)), str(len(mine)), *(str(tally[v] or "") for v in order))
    return table


def print_by_op(console: Console, cells: list[R.CellResult], profiles: list[str], *,
                other_cells: list[R.CellResult] | None = None, other_label: str = "") -> None:
    """Each profile's per-operator rows, then which operators pass on one side and not the other: the first
    profile against each other one, or (``other_cells``, another record labelled ``other_label``) each profile
    against the same profile there."""
    from harness.report.ops import diff_ops, diff_table, op_summary, ops_table
    summary = op_summary(cells)
    for profile in profiles:
        if summary.get(profile):
            console.print(ops_table(summary[profile], printable(profile)))
    if other_cells is not None:
        pairs = [(name, name, f"{name} ({other_label})") for name in profiles]
    else:
        pairs = [(profiles[0], name, name) for name in profiles[1:]]
    for a, b, label_b in pairs:
        diffs = diff_ops(cells, a, b, other_cells)
        if diffs:
            console.print(diff_table(diffs, printable(a), printable(label_b)))
        else:
            console.print(printable(f"every operator passes on {a} exactly where it passes on {label_b}"),
                          markup=False)


def print_report(console: Console, record: R.RunRecord, notes: list[str] | None = None, *,
                 by_op: bool = False) -> None:
    """The matrix (or, past COMPACT_CASES cases, per-profile verdict counts), notes, skip reasons, the failing
    cells' details, and with ``by_op`` the per-operator tables and the profile diff."""
    cells = record.cells
    profiles = list(record.profiles or dict.fromkeys(c.profile for c in cells))
    compact = len({c.case for c in cells}) > COMPACT_CASES
    emulated = {name: how for name, how in emulated_profiles(record).items() if name in profiles}
    console.print(counts_table(cells, profiles) if compact else matrix(cells, profiles, emulated))
    ulps = ulp_table(cells, profiles, emulated) if emulated and not compact else None
    if ulps is not None:
        console.print(ulps)
    for line in ulp_lines(cells, emulated) if compact else []:
        console.print(printable(line), markup=False)
    if by_op:
        print_by_op(console, cells, profiles)
    note = comparison_note(record)
    if note:
        console.print(printable(note), markup=False)
    warnings = record.warnings[:MAX_DETAILS] if compact else record.warnings
    for line in warnings:
        console.print(printable(f"warning: {line}"), style="yellow", markup=False)
    if len(warnings) < len(record.warnings):
        console.print(f"... and {len(record.warnings) - len(warnings)} more warning(s) in the run record",
                      style="yellow", markup=False)
    for line in notes or []:
        console.print(printable(line), markup=False)
    for line in skipped_profiles(cells):
        console.print(printable(line), style="dim", markup=False)
    blocks = details(cells)
    shown = blocks[:MAX_DETAILS] if compact else blocks
    for block in shown:
        console.print()
        console.print(printable(block), markup=False)
    if len(shown) < len(blocks):
        console.print()
        console.print(f"... and {len(blocks) - len(shown)} more cell(s) that need attention: the run record has "
                      f"each one's detail ('harness ops RECORD' shows them per operator)", markup=False)
    console.print()
    log = f"; library output in {record.location.parent / record.log}" if record.log and record.location else ""
    where = record.location or "not written"
    console.print(printable(f"{len(cells)} cells: {summary(cells)}. Run record: {where}{log}"), markup=False)
