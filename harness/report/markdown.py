"""Markdown from run records, sized for a GitHub job summary ($GITHUB_STEP_SUMMARY, at most 1 MiB per step): the
verdict counts, the matrix as a table (past COMPACT_CASES cases, verdict counts per profile instead), and each
failing cell with its one-line reason and metrics (the first MAX_FAILING; the record has the rest).

Everything that comes from a model, a file or a profile name is escaped: Markdown's punctuation with a backslash
(so '|' cannot split a table cell nor '*' start emphasis), HTML's '<', '>' and '&' as entities (so '<script>'
is text), line breaks and control characters as visible escapes.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from harness.atomic import atomic_write_bytes
from harness.report.reason import one_line, reason
from harness.run import record as R

COMPACT_CASES = 40  # more cases than this: per-profile verdict counts instead of the matrix
MAX_FAILING = 100  # failing cells listed in full; the rest are counted
MARK = {R.PASS: "✅", R.PASS_FELL_BACK: "✅", R.XPASS: "✅", R.XFAIL: "☑️", R.SKIPPED: "⏭️", R.NOT_APPLICABLE: "⏭️",
        R.OVER_BUDGET: "⚠️", R.NO_GOLDEN: "⚠️"}
_PUNCTUATION = re.compile(r"([\\`*_\[\]|~#!{}])")


def md(text: object, limit: int = 500) -> str:
    """``text`` as inline Markdown that shows exactly those characters, on one line."""
    return html.escape(_PUNCTUATION.sub(r"\\\1", one_line(str(text), limit)), quote=False)


def verdict_mark(verdict: str) -> str:
    return f"{MARK.get(verdict, '❌')} {md(verdict)}"


def _counts(cells: list[R.CellResult]) -> str:
    tally = Counter(c.verdict for c in cells)
    return ", ".join(f"{n} {md(v)}" for v, n in tally.most_common())


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _matrix(cells: list[R.CellResult], profiles: list[str]) -> list[str]:
    by_key = {c.key: c for c in cells}
    cases = list(dict.fromkeys(c.case for c in cells))
    rows = [[md(case, 120)] + [verdict_mark(by_key[R.cell_key(case, p)].verdict) if R.cell_key(case, p) in by_key
                               else "–" for p in profiles] for case in cases]
    return _table(["case \\\\ profile", *(md(p, 60) for p in profiles)], rows)


def _per_profile(cells: list[R.CellResult], profiles: list[str]) -> list[str]:
    verdicts = [v for v in R.VERDICTS if any(c.verdict == v for c in cells)]
    verdicts += sorted({c.verdict for c in cells} - set(verdicts))
    rows = []
    for profile in profiles:
        tally = Counter(c.verdict for c in cells if c.profile == profile)
        rows.append([md(profile, 60), str(sum(tally.values())), *(str(tally[v] or "") for v in verdicts)])
    return _table(["profile", "cells", *(verdict_mark(v) for v in verdicts)], rows)


def _failing(cells: list[R.CellResult]) -> list[str]:
    failing = [c for c in cells if c.verdict in R.FAILING]
    if not failing:
        return []
    rows = [[md(c.case, 120), md(c.profile, 60), verdict_mark(c.verdict), md(reason(c), 600)]
            for c in failing[:MAX_FAILING]]
    lines = ["", f"### Failing cells ({len(failing)})", "", *_table(["case", "profile", "verdict", "reason"], rows)]
    if len(failing) > MAX_FAILING:
        lines += ["", f"… and {len(failing) - MAX_FAILING} more failing cell(s): see the run record."]
    return lines


def _task_tables(cells: list[R.CellResult]) -> list[str]:
    """Task metrics per case (harness.task), one row per profile, beside the elementwise verdicts above; cells
    that passed on their task gates while failing elementwise are listed with both reasons."""
    from harness.task.table import case_tables
    tables = case_tables(cells)
    if not tables or len(tables) > COMPACT_CASES:
        return []
    lines = ["", "### Task metrics"]
    for case, (kind, header, rows) in tables.items():
        lines += ["", f"**{md(case, 120)}** · {md(kind)}", "",
                  *_table([md(h) for h in header], [[md(v, 120) for v in row] for row in rows])]
    on_task = [c for c in cells if c.verdict == R.PASS_FELL_BACK and c.task and any(
        not (e.get("comparison") or {}).get("passed", True) for e in c.outputs)]
    if on_task:
        lines += ["", "### Passed on task gates, failing elementwise", "",
                  *_table(["case", "profile", "reason"], [[md(c.case, 120), md(c.profile, 60), md(reason(c), 600)]
                                                          for c in on_task])]
    return lines


def _host(record: R.RunRecord) -> str:
    machine, versions, commit = record.machine, record.versions, record.commit
    parts = [f"run {md(record.run_id, 60)}",
             f"on {md(machine.get('node', '?'), 60)} ({md(machine.get('cpu', '?'), 80)}, {md(machine.get('cores', '?'))} cores)"]
    parts += [f"{md(name)} {md(versions[name], 40)}" for name in ("onnxruntime", "onnx", "harness") if name in versions]
    if commit.get("id"):
        parts.append(f"commit {md(str(commit['id'])[:12])}{' (dirty)' if commit.get('dirty') else ''}")
    return " · ".join(parts)


def record_markdown(record: R.RunRecord) -> list[str]:
    cells = record.cells
    profiles = list(record.profiles) or list(dict.fromkeys(c.profile for c in cells))
    profiles += [p for p in dict.fromkeys(c.profile for c in cells) if p not in profiles]
    failing = sum(1 for c in cells if c.verdict in R.FAILING)
    status = f"❌ {failing} of {len(cells)} cells failing" if failing else f"✅ all {len(cells)} cells passing"
    compact = len({c.case for c in cells}) > COMPACT_CASES
    lines = [f"## ONNX conformance: {status}", "", _host(record), "", f"**Verdicts:** {_counts(cells) or 'no cells'}", ""]
    lines += _per_profile(cells, profiles) if compact else _matrix(cells, profiles)
    lines += _failing(cells)
    lines += _task_tables(cells)
    skipped = {c.profile: c.detail for c in cells if c.verdict == R.SKIPPED}
    if skipped:
        lines += ["", "### Skipped profiles", ""] + [f"- {md(p, 60)}: {md(why)}" for p, why in skipped.items()]
    if record.warnings:
        lines += ["", "### Warnings", ""] + [f"- {md(w)}" for w in record.warnings[:20]]
        if len(record.warnings) > 20:
            lines.append(f"- … and {len(record.warnings) - 20} more in the run record")
    return lines


def markdown(records: Sequence[R.RunRecord]) -> str:
    return "\n".join(line for record in records for line in [*record_markdown(record), ""])


def write_markdown(records: Sequence[R.RunRecord], path: Path) -> Path:
    atomic_write_bytes(path, markdown(records).encode("utf-8"))
    return path
