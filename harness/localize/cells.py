"""``harness run --localize``: localise each failing cell of a finished run and reference the result from the cell.

The localisation of a cell is written beside the record as ``localize/<cell>.json`` (numbers only), its repro as
``localize/<cell>/`` (a case folder), and the cell's ``artifacts["localize"]`` names the JSON, relative to the
record's folder, like every other artifact; the record is then written again. A cell that failed against its
goldens is localised against ``reference`` (the run's --reference profile, or the float64 evaluator when the
failing profile is that reference itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

from harness.errors import HarnessError
from harness.golden.cases import Case
from harness.localize.render import write_json
from harness.localize.search import LocalizeOptions, localize
from harness.run import record as R
from harness.run.executor import cell_dir_name

FALLBACK_REFERENCE = "reference"


def localize_failing(record: R.RunRecord, cases: Sequence[Case], reference: str, options: LocalizeOptions,
                     say: Callable[[str], None]) -> int:
    """Localise every FAIL cell of ``record``; returns how many were localised. A localisation that cannot run
    (its reference unavailable, a transform that does not apply) is said in one line and costs only that cell."""
    if record.location is None:
        return 0
    folder = Path(record.location).parent
    by_name = {c.name: c for c in cases}
    done = 0
    for cell in record.cells:
        if cell.verdict != R.FAIL or cell.case not in by_name:
            continue
        against = reference if cell.profile != reference else FALLBACK_REFERENCE
        slug = cell_dir_name(cell.case, cell.profile)
        where = folder / "localize" / f"{slug}.json"
        try:
            found = localize(by_name[cell.case], cell.profile,
                             replace(options, against=against, out=folder / "localize" / slug))
        except HarnessError as exc:
            say(f"localize {cell.case} on {cell.profile}: not localised: {exc.one_line()}")
            continue
        write_json(found, where)
        cell.artifacts["localize"] = str(where.relative_to(folder))
        first = found.first
        say(f"localize {cell.case} on {cell.profile} vs {against}: " + (
            f"first diverging node {first['node']!r} ({first['op_type']}) on {first['ep']}" if first else found.status)
            + (f"; repro {found.repro.path}" if found.repro else "") + f" ({where})")
        done += 1
    if done:
        record.location = record.write(folder)
    return done
