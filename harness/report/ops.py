"""Per-operator summary: which operators does a profile get wrong, and by how much.

Cells are grouped by the operator their case tests (``cell.model["op"]``, set from ``Case.op``; a case
that tests no single operator is grouped under ``NO_OP``). Per profile and operator: the count of cases, of
each verdict class, and the worst difference seen over every compared output (greatest absolute and
relative difference, with the case and output where it happened). ``op_summary`` is plain data for the
record; ``ops_table`` renders it for the terminal (``--by-op``); ``diff_ops`` says which operators pass
on one profile and not on another, case by case.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from harness.compare.metrics import decode_float
from harness.run import record as R

NO_OP = "(whole model)"  # cases whose graph tests no single operator
UNSUPPORTED = getattr(R, "UNSUPPORTED", "UNSUPPORTED")
# Verdict classes, in column order. A verdict this module does not know counts under "other".
CLASSES: dict[str, tuple[str, ...]] = {
    "pass": (R.PASS, R.PASS_FELL_BACK),
    "fail": (R.FAIL,),
    "unsupported": (UNSUPPORTED,),
    "xfail": (R.XFAIL,),
    "xpass": (R.XPASS,),
    "error": (R.ERROR, R.TRANSFORM_FAILED, R.NO_GOLDEN, R.OVER_BUDGET, R.LOST),
    "crash": (R.CRASH, R.OOM),
    "timeout": (R.TIMEOUT,),
    "skipped": (R.SKIPPED, R.NOT_APPLICABLE),
}
_CLASS_OF = {verdict: name for name, verdicts in CLASSES.items() for verdict in verdicts}
PASSING = frozenset(CLASSES["pass"])


@dataclass
class Worst:
    """The greatest difference of one kind, and where it was."""

    value: float
    case: str
    output: str


@dataclass
class OpRow:
    op: str
    cases: int = 0
    counts: dict[str, int] = field(default_factory=dict)  # verdict class -> cells
    worst_abs: Worst | None = None
    worst_rel: Worst | None = None

    @property
    def problems(self) -> int:
        """Cells that did not pass and were not expected to fail (what a user looks at first)."""
        return self.cases - sum(self.counts.get(k, 0) for k in ("pass", "xfail", "skipped"))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("worst_abs", "worst_rel"):  # inf/nan as strings, like every metric in the record
            if data[key] is not None:
                data[key]["value"] = _encode(data[key]["value"])
        return data


def op_summary(cells: Iterable[R.CellResult], ops: Mapping[str, str] | None = None) -> dict[str, list[OpRow]]:
    """Rows per profile (in the cells' order), one per operator, problems first then by name. ``ops`` maps
    case name -> operator for cells whose ``model`` does not carry it (records written before it did)."""
    rows: dict[str, dict[str, OpRow]] = {}
    for cell in cells:
        op = cell.model.get("op") or (ops or {}).get(cell.case) or NO_OP
        row = rows.setdefault(cell.profile, {}).setdefault(op, OpRow(op))
        row.cases += 1
        kind = _CLASS_OF.get(cell.verdict, "other")
        row.counts[kind] = row.counts.get(kind, 0) + 1
        _fold_worst(row, cell)
    return {profile: sorted(by_op.values(), key=lambda r: (r.problems == 0, r.op))
            for profile, by_op in rows.items()}


def summary_dict(summary: Mapping[str, list[OpRow]]) -> dict[str, list[dict[str, Any]]]:
    """JSON-ready form of ``op_summary`` (for the run record)."""
    return {profile: [row.to_dict() for row in rows] for profile, rows in summary.items()}


def _fold_worst(row: OpRow, cell: R.CellResult) -> None:
    for entry in cell.outputs:
        comparison = entry.get("comparison") or {}
        metrics = comparison.get("metrics") or {}
        name = comparison.get("name", "?")
        for key, attr in (("max_abs_diff", "worst_abs"), ("max_rel_diff", "worst_rel")):
            value = _number(metrics.get(key))
            if value is None:
                continue
            if metrics.get("nan_mismatch") or metrics.get("inf_mismatch"):
                value = math.inf  # a NaN/Inf the other side lacks is worse than any finite difference
            current = getattr(row, attr)
            if current is None or value > current.value:
                setattr(row, attr, Worst(value, cell.case, name))


def _number(value: Any) -> float | None:
    value = decode_float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


def _encode(value: float) -> float | str:
    return value if math.isfinite(value) else ("inf" if value > 0 else "-inf")


def _shown_classes(rows: Iterable[OpRow]) -> list[str]:
    """pass, fail and unsupported always; the other classes only when some row has one."""
    present = {k for row in rows for k, n in row.counts.items() if n}
    return [k for k in [*CLASSES, "other"] if k in ("pass", "fail", "unsupported") or k in present]


def _value_text(worst: Worst | None) -> str:
    return "" if worst is None else f"{worst.value:.3g}"


def _where_text(row: OpRow) -> str:
    """Where the greatest absolute difference was (the relative one when no absolute was measured)."""
    worst = row.worst_abs or row.worst_rel
    return "" if worst is None or worst.value == 0 else f"{worst.case}:{worst.output}"


def ops_table(rows: list[OpRow], profile: str) -> Table:
    """One profile's per-operator rows as a rich Table (``harness run --by-op``)."""
    classes = _shown_classes(rows)
    table = Table(title=f"{profile}: per operator", title_justify="left")
    table.add_column("op")
    table.add_column("cases", justify="right")
    for name in classes:
        table.add_column(name, justify="right")
    table.add_column("worst |diff|", justify="right")
    table.add_column("worst rel", justify="right")
    table.add_column("at (case:output)", overflow="fold")
    for row in rows:
        counts = [str(row.counts.get(name, 0) or "") for name in classes]
        style = "" if row.problems == 0 else "red"
        table.add_row(row.op, str(row.cases), *counts, _value_text(row.worst_abs), _value_text(row.worst_rel),
                      _where_text(row), style=style)
    total = Counter[str]()
    for row in rows:
        total.update(row.counts)
    table.add_section()
    table.add_row(f"{len(rows)} ops", str(sum(r.cases for r in rows)),
                  *[str(total.get(name, 0)) for name in classes], "", "", "", style="bold")
    return table


@dataclass
class OpDiff:
    """One operator whose cases pass on one profile and not on the other (case names on each side)."""

    op: str
    only_a: list[str]  # cases passing on profile a and not on b
    only_b: list[str]
    pass_a: int
    pass_b: int
    cases: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def diff_ops(cells_a: Iterable[R.CellResult], profile_a: str, profile_b: str,
             cells_b: Iterable[R.CellResult] | None = None, ops: Mapping[str, str] | None = None) -> list[OpDiff]:
    """Operators whose cases pass on one profile and not the other; ``cells_b`` defaults to ``cells_a``
    (two profiles in one record), else profile_b is looked up there (two records). A case counts as
    passing with PASS or PASS*; only cases present on both sides are compared."""
    cells_a = list(cells_a)
    side_a = _by_case(cells_a, profile_a)
    side_b = _by_case(cells_a if cells_b is None else cells_b, profile_b)
    per_op: dict[str, OpDiff] = {}
    for case in side_a.keys() & side_b.keys():
        a, b = side_a[case], side_b[case]
        op = a.model.get("op") or b.model.get("op") or (ops or {}).get(case) or NO_OP
        diff = per_op.setdefault(op, OpDiff(op, [], [], 0, 0, 0))
        passed_a, passed_b = a.verdict in PASSING, b.verdict in PASSING
        diff.cases += 1
        diff.pass_a += passed_a
        diff.pass_b += passed_b
        if passed_a != passed_b:
            (diff.only_a if passed_a else diff.only_b).append(case)
    found = [d for d in per_op.values() if d.only_a or d.only_b]
    for d in found:
        d.only_a.sort()
        d.only_b.sort()
    return sorted(found, key=lambda d: d.op)


def _by_case(cells: Iterable[R.CellResult], profile: str) -> dict[str, R.CellResult]:
    return {c.case: c for c in cells if c.profile == profile}


def diff_table(diffs: list[OpDiff], profile_a: str, profile_b: str, shown: int = 3) -> Table:
    """The ``diff_ops`` rows for the terminal: pass counts on each side and the first cases that differ."""
    table = Table(title=f"operators that pass on one of {profile_a} / {profile_b} and not the other",
                  title_justify="left")
    for name, justify in (("op", "left"), ("cases", "right"), (f"pass {profile_a}", "right"),
                          (f"pass {profile_b}", "right"), (f"only {profile_a}", "left"), (f"only {profile_b}", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for d in diffs:
        table.add_row(d.op, str(d.cases), str(d.pass_a), str(d.pass_b), _first(d.only_a, shown),
                      _first(d.only_b, shown))
    return table


def _first(names: list[str], shown: int) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" (+{more})" if more > 0 else "")


__all__ = ["NO_OP", "CLASSES", "OpRow", "Worst", "OpDiff", "op_summary", "summary_dict", "ops_table",
           "diff_ops", "diff_table"]
