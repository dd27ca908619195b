"""The HTML report: one self-contained file that opens with no network.

No script, no external stylesheet, font or image: CSS is inline, plots are SVG documents embedded as data URIs,
and a Content-Security-Policy meta tag forbids everything else, so a name that slipped through escaping could
still neither run nor load anything. Every text that comes from a model, a record or a file name goes through
``html.escape``.

It reads records (a RunRecord, or a (RunRecord, folder) pair as ``load_record`` returns) and the files beside
them (latency samples, saved outputs, the case's goldens); it never re-runs anything.
"""

from __future__ import annotations

import base64
import html
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

import numpy as np

from harness.atomic import atomic_write_bytes
from harness.report import plots
from harness.report.crossmatrix import (
    Column,
    CrossMatrix,
    Outputs,
    case_folder,
    columns_of,
    differing_cells,
    golden_outputs,
    golden_summary,
    pair_line,
    saved_outputs,
    text_report,
)
from harness.run import record as R

RecordLike = Union[R.RunRecord, tuple[R.RunRecord, Union[Path, None]]]  # noqa: UP007 (a runtime alias)
MAX_FAILING_PLOTTED = 40  # failing cells drawn with plots; the rest are listed with their numbers
MAX_OUTPUT_PLOTS = 8  # failing outputs plotted per cell
WORST_ELEMENTS = 10
_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em;color:#212121;max-width:1400px}
h1{font-size:1.5em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:1.6em}h3{font-size:1.05em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .5em;font-size:.85em}
th{background:#f5f5f5;text-align:left}td.v{text-align:center;font-weight:600;white-space:nowrap}
td.num{text-align:right;font-variant-numeric:tabular-nums}.note{color:#555;font-style:italic}
pre{background:#fafafa;border:1px solid #eee;padding:.5em;white-space:pre-wrap;font-size:.8em}
img.plot{max-width:100%;display:block;margin:.5em 0}.env{font-size:.8em;color:#444}
.warn{color:#b71c1c}.legend span{display:inline-block;padding:.1em .5em;margin:.1em;border-radius:3px}
"""


def esc(value: Any) -> str:
    """Escaped text for an element or an attribute (quotes included); control characters (a NUL, an ESC in a
    case name) are shown as their escapes, since HTML cannot carry them."""
    text = str(value)
    if not text.isprintable():
        text = "".join(c if c in "\n\t" or c.isprintable() else c.encode("unicode_escape").decode("ascii")
                       for c in text)
    return html.escape(text, quote=True)


def _loaded(records: Sequence[RecordLike]) -> list[tuple[R.RunRecord, Path | None]]:
    out: list[tuple[R.RunRecord, Path | None]] = []
    for item in records:
        if isinstance(item, tuple):
            out.append((item[0], None if item[1] is None else Path(item[1])))
        else:
            out.append((item, item.location.parent if item.location else None))
    return out


def _img(svg: str, alt: str) -> str:
    data = base64.b64encode(svg.encode("utf-8")).decode("ascii")
    return f'<img class="plot" alt="{esc(alt)}" src="data:image/svg+xml;base64,{data}">'


def _text_colour(background: str) -> str:
    red, green, blue = (int(background[i:i + 2], 16) for i in (1, 3, 5))
    return "#000" if 0.299 * red + 0.587 * green + 0.114 * blue > 150 else "#fff"


def _verdict_style(verdict: str) -> str:
    colour = plots.VERDICT_COLOURS.get(verdict, plots.UNKNOWN_COLOUR)
    return f"background:{colour};color:{_text_colour(colour)}"


# --- sections --------------------------------------------------------------------------------------------------

def _header(loaded: list[tuple[R.RunRecord, Path | None]]) -> str:
    rows = []
    for record, folder in loaded:
        m, v = record.machine, record.versions
        rows.append(f"<tr><td>{esc(record.run_id)}</td><td>{esc(record.created)}</td><td>{esc(m.get('node', '?'))}"
                    f"</td><td>{esc(m.get('cpu', '?'))} ({esc(m.get('machine', '?'))}, {esc(m.get('cores', '?'))} "
                    f"cores)</td><td>{esc(', '.join(f'{k} {x}' for k, x in sorted(v.items())))}</td>"
                    f"<td>{esc(folder or 'not written')}</td></tr>")
    return ("<table><tr><th>run</th><th>created</th><th>host</th><th>CPU</th><th>versions</th><th>folder</th></tr>"
            + "".join(rows) + "</table>")


def _summary(columns: list[Column]) -> str:
    counts = Counter(cell.verdict for column in columns for cell in column.cells.values())
    spans = "".join(f'<span style="{_verdict_style(v)}">{esc(v)} {n}</span>' for v, n in counts.most_common())
    return f'<p class="legend">{sum(counts.values())} cell(s): {spans}</p>'


def _label(column: Column, single: bool) -> str:
    return column.profile if single else column.label


def _matrix(columns: list[Column], single: bool, marks: dict[tuple[str, str], list[str]],
            disagree: frozenset[tuple[str, str]] = frozenset()) -> str:
    """The heatmap table (and plot). ``marks``: cells whose outputs differ from another column's (with the
    environment differences, shown on hover), ``disagree``: those beyond tolerance ('!'; within it: '~')."""
    cases = list(dict.fromkeys(case for column in columns for case in column.cells))
    head = "".join(f"<th>{esc(_label(c, single))}{'<br><span class=warn>not target</span>' if c.target_note else ''}"
                   f"</th>" for c in columns)
    rows = []
    for case in cases:
        tds = []
        for column in columns:
            cell = column.cells.get(case)
            if cell is None:
                tds.append('<td class="v">-</td>')
                continue
            why = "; ".join(marks.get((case, column.label), []))
            title = cell.detail + (f" | differs: {why}" if why else "")
            flag = " !" if (case, column.label) in disagree else " ~" if (case, column.label) in marks else ""
            tds.append(f'<td class="v" style="{_verdict_style(cell.verdict)}" title="{esc(title)}">'
                       f"{esc(golden_summary(cell))}{flag}</td>")
        rows.append(f"<tr><th>{esc(case)}</th>{''.join(tds)}</tr>")
    table = f"<table><tr><th>case \\ profile</th>{head}</tr>{''.join(rows)}</table>"
    if not plots.available():
        return table
    verdicts = {(case, _label(c, single)): c.cells[case].verdict for c in columns for case in c.cells}
    return table + _img(plots.verdict_heatmap(cases, [_label(c, single) for c in columns], verdicts),
                        "verdict heatmap")


@dataclass
class _Failure:
    column: Column
    cell: R.CellResult


def _expected(column: Column, cell: R.CellResult, against: str, roots: Sequence[Path]) -> tuple[Outputs | None, str]:
    """What the cell was compared against, read back: the case's goldens, or the reference profile's saved
    outputs in the same record. None with the reason when it is not on this machine."""
    if against == "golden":
        folder = case_folder(column.record, cell.case, roots)
        if folder is None:
            return None, "the case's goldens are not on this machine"
        return golden_outputs(folder)[0], ""
    reference = next((c for c in column.record.cells if c.case == cell.case and c.profile == against), None)
    if reference is None or column.folder is None:
        return None, f"the reference profile {against!r} has no cell for this case in the record"
    outputs = saved_outputs(column.folder, reference)[0]
    return outputs, "" if outputs is not None else f"the reference profile {against!r} saved no outputs"


def _element_errors(expected: Any, actual: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """(expected, actual, absolute error, relative error) as float64, flat; None for values without numbers."""
    try:
        e = np.asarray(expected, dtype=np.float64).ravel()
        a = np.asarray(actual, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        return None
    if e.shape != a.shape or not e.size:
        return None
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        err = np.abs(a - e)
        err[np.isnan(a) != np.isnan(e)] = np.inf  # a NaN on one side only is the worst an element can be
        err[np.isnan(a) & np.isnan(e)] = 0.0
        rel = np.where(e != 0, err / np.abs(e), np.where(err == 0, 0.0, np.inf))
    return e, a, err, rel


def _worst_table(shape: tuple[int, ...], e: np.ndarray, a: np.ndarray, err: np.ndarray, rel: np.ndarray) -> str:
    count = min(WORST_ELEMENTS, err.size)
    order = np.argsort(-np.nan_to_num(err, nan=np.inf), kind="stable")[:count]
    rows = "".join(f"<tr><td>{esc(tuple(int(i) for i in np.unravel_index(k, shape)))}</td>"
                   f'<td class="num">{e[k]:.7g}</td><td class="num">{a[k]:.7g}</td>'
                   f'<td class="num">{err[k]:.4g}</td><td class="num">{rel[k]:.4g}</td></tr>' for k in order)
    return (f"<table><tr><th>index</th><th>expected</th><th>actual</th><th>abs error</th><th>rel error</th></tr>"
            f"{rows}</table>")


_METRIC_ROWS = (("mismatched", "mismatched elements"), ("max_abs_diff", "max abs diff"),
                ("max_abs_index", "at"), ("max_rel_diff", "max rel diff"), ("max_rel_index", "at"),
                ("required_atol", "atol that would pass"), ("required_rtol", "rtol that would pass"),
                ("cosine", "cosine"), ("snr_db", "SNR (dB)"), ("max_ulp", "max ULP"), ("first_mismatch", "first mismatch"))


def _metrics_table(comparison: dict[str, Any]) -> str:
    metrics = comparison.get("metrics") or {}
    cells = []
    for key, label in _METRIC_ROWS:
        value = metrics.get(key)
        if value is None:
            continue
        text = f"{value} / {metrics.get('total')}" if key == "mismatched" else (
            f"{value:.{9 if key == 'cosine' else 6}g}" if isinstance(value, float) else value)  # 0.99999997, not 1
        cells.append(f"<tr><th>{esc(label)}</th><td class=num>{esc(text)}</td></tr>")
    return f"<table>{''.join(cells)}</table>" if cells else ""


def _failing_output(failure: _Failure, entry: dict[str, Any], actual: Outputs | None, roots: Sequence[Path],
                    expected_cache: dict[str, tuple[Outputs | None, str]]) -> str:
    comparison = entry.get("comparison") or {}
    name, dataset = str(comparison.get("name", "?")), entry.get("dataset", 0)
    against = str(comparison.get("against", "golden"))
    tol = comparison.get("tolerance") or {}
    parts = [(f"<h3>{esc(failure.cell.case)} / {esc(failure.column.label)} / output {esc(name)} [data set "
              f"{esc(dataset)}] against {esc(against)}</h3>"),
             f"<pre>{esc(chr(10).join(comparison.get('reasons') or []))}</pre>", _metrics_table(comparison)]
    if actual is None:
        parts.append('<p class="note">Actual outputs were not saved for this cell (run with --save-outputs '
                      'failing or all for a histogram and the worst elements); the numbers above are the record\'s.</p>')
        return "".join(parts)
    if against not in expected_cache:
        expected_cache[against] = _expected(failure.column, failure.cell, against, roots)
    expected, why = expected_cache[against]
    key = (dataset, name)
    if expected is None or key not in expected or key not in actual:
        parts.append(f'<p class="note">No element view: {esc(why or "this output is not among the saved files")}.</p>')
        return "".join(parts)
    errors = _element_errors(expected[key], actual[key])
    if errors is None:
        parts.append('<p class="note">No element view: the output is not numeric or its shape differs.</p>')
        return "".join(parts)
    e, a, err, rel = errors
    if plots.available():
        parts.append(_img(plots.error_distribution(f"{failure.cell.case} / {failure.column.label} / {name} "
                                                   f"[data set {dataset}]", err, tol.get("atol"), rel, tol.get("rtol")),
                          f"error distribution of {name}"))
    parts.append(_worst_table(np.shape(expected[key]), e, a, err, rel))
    return "".join(parts)


def _failure_block(failure: _Failure, roots: Sequence[Path], plotted: bool) -> str:
    cell, column = failure.cell, failure.column
    head = (f'<h3><span style="{_verdict_style(cell.verdict)};padding:0 .4em">{esc(cell.verdict)}</span> '
            f"{esc(cell.case)} on {esc(column.label)}</h3><p>{esc(cell.detail)}</p>")
    if cell.error.get("message"):
        head += f"<pre>{esc(str(cell.error['message'])[:4000])}</pre>"
    failing = [e for e in cell.outputs if not (e.get("comparison") or {}).get("passed", True)]
    if not failing or not plotted:
        return head
    actual, problems = saved_outputs(column.folder, cell) if column.folder else (None, [])
    notes = "".join(f'<p class="note">{esc(p)}</p>' for p in problems)
    cache: dict[str, tuple[Outputs | None, str]] = {}
    blocks = [_failing_output(failure, entry, actual, roots, cache) for entry in failing[:MAX_OUTPUT_PLOTS]]
    more = (f'<p class="note">{len(failing) - MAX_OUTPUT_PLOTS} more failing output(s) are in the record.</p>'
            if len(failing) > MAX_OUTPUT_PLOTS else "")
    return head + notes + "".join(blocks) + more


def _failures(columns: list[Column], roots: Sequence[Path]) -> str:
    failures = [_Failure(c, cell) for c in columns for cell in c.cells.values() if cell.verdict in R.FAILING]
    if not failures:
        return "<p>No failing cell.</p>"
    blocks = [_failure_block(f, roots, i < MAX_FAILING_PLOTTED) for i, f in enumerate(failures)]
    more = (f'<p class="note">Plots are drawn for the first {MAX_FAILING_PLOTTED} of {len(failures)} failing cells.</p>'
            if len(failures) > MAX_FAILING_PLOTTED else "")
    return more + "".join(blocks)


def _samples_ms(column: Column, cell: R.CellResult) -> np.ndarray | None:
    relative = cell.artifacts.get("latency_ns")
    if not relative or column.folder is None:
        return None
    path = (column.folder / relative).resolve()
    if not path.is_relative_to(column.folder.resolve()) or not path.is_file():
        return None
    try:
        samples = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    return samples.astype(np.float64).ravel() / 1e6 if samples.size and samples.dtype.kind in "iuf" else None


def _latency(columns: list[Column], single: bool) -> str:
    parts = []
    for column in columns:
        series = {case: s for case, cell in column.cells.items() if (s := _samples_ms(column, cell)) is not None}
        budgets = column.record.profiles.get(column.profile, {}).get("budgets") or {}
        budget_text = ", ".join(f"{k} {v}" for k, v in sorted(budgets.items())) or "none recorded"
        title = f"<h3>{esc(_label(column, single))} (budgets: {esc(budget_text)})</h3>"
        if not series:
            parts.append(f'{title}<p class="note">No latency samples saved for this profile.</p>')
            continue
        shown = dict(sorted(series.items(), key=lambda kv: -float(np.median(kv[1])))[:plots.MAX_BARS])
        rows = "".join(f"<tr><td>{esc(case)}</td><td class=num>{len(s)}</td><td class=num>{np.percentile(s, 50):.4g}</td>"
                       f"<td class=num>{np.percentile(s, 95):.4g}</td><td class=num>{np.percentile(s, 99):.4g}</td></tr>"
                       for case, s in shown.items())
        table = (f"<table><tr><th>case</th><th>samples</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th></tr>{rows}"
                 f"</table>")
        plot = _img(plots.latency_boxes(_label(column, single), shown, budgets),
                    f"latency on {_label(column, single)}") if plots.available() else ""
        more = (f'<p class="note">The {plots.MAX_BARS} slowest of {len(series)} cases are shown.</p>'
                if len(series) > len(shown) else "")
        parts.append(title + plot + table + more)
    return "".join(parts)


def _memory(columns: list[Column], single: bool) -> str:
    values: dict[str, dict[str, float]] = {}
    for column in columns:
        for case, cell in column.cells.items():
            peak = cell.memory.get("peak_delta_mb") if isinstance(cell.memory, dict) else None
            if isinstance(peak, (int, float)):
                values.setdefault(case, {})[_label(column, single)] = float(peak)
    if not values:
        return '<p class="note">No memory measurements in the record(s) (a --numerics-only run).</p>'
    shown = dict(sorted(values.items(), key=lambda kv: -max(kv[1].values()))[:plots.MAX_BARS])
    labels = [_label(c, single) for c in columns]
    rows = "".join(f"<tr><td>{esc(case)}</td>" + "".join(
        f"<td class=num>{esc(f'{v[lab]:.2f}') if lab in v else '-'}</td>" for lab in labels) + "</tr>"
        for case, v in shown.items())
    table = (f"<table><tr><th>case \\ peak MB over the session's start</th>"
             f"{''.join(f'<th>{esc(lab)}</th>' for lab in labels)}</tr>{rows}</table>")
    plot = _img(plots.grouped_bars("Peak memory over the session's start", "MB", shown), "memory") \
        if plots.available() else ""
    return plot + table


def _placement(columns: list[Column], single: bool) -> str:
    per_profile: dict[str, dict[str, float]] = {}
    fell_back: dict[str, list[str]] = {}
    for column in columns:
        label = _label(column, single)
        counts = per_profile.setdefault(label, {})
        for cell in column.cells.values():
            for ep, n in (cell.placement.get("per_ep") or {}).items():
                if isinstance(n, (int, float)):
                    counts[str(ep)] = counts.get(str(ep), 0) + n
            fell_back.setdefault(label, []).extend(f"{cell.case}: {node}" for node in cell.placement.get("fell_back") or [])
    eps = list(dict.fromkeys(ep for counts in per_profile.values() for ep in counts))
    if not eps:
        return '<p class="note">No placement recorded (profiling was off or no cell ran).</p>'
    rows = []
    for label, counts in per_profile.items():
        fb = fell_back.get(label, [])
        listed = esc("; ".join(str(x) for x in fb[:10])) + (f" and {len(fb) - 10} more" if len(fb) > 10 else "")
        rows.append(f"<tr><td>{esc(label)}</td>" + "".join(f"<td class=num>{int(counts.get(ep, 0))}</td>" for ep in eps)
                    + f"<td>{listed or '-'}</td></tr>")
    table = (f"<table><tr><th>profile \\ nodes on</th>{''.join(f'<th>{esc(ep)}</th>' for ep in eps)}"
             f"<th>nodes that fell back</th></tr>{''.join(rows)}</table>")
    plot = _img(plots.grouped_bars("Nodes per execution provider (all cells)", "nodes", per_profile, stacked=True),
                "placement") if plots.available() else ""
    return plot + table


def _page(title: str, body: str) -> str:
    extra = "" if plots.available() else f'<p class="note warn">Plots are not drawn: {esc(plots.EXTRA_HINT)}.</p>'
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<title>{esc(title)}</title><style>{_CSS}</style></head><body><h1>{esc(title)}</h1>{extra}{body}"
            "</body></html>\n")


def render_html(records: Sequence[RecordLike], *, golden_roots: Sequence[Path] = ()) -> str:
    """The report of ``records`` as one HTML document."""
    loaded = _loaded(records)
    if not loaded:
        raise ValueError("render_html needs at least one record")
    columns = columns_of(loaded)
    single = len(loaded) == 1
    title = f"Conformance report: {loaded[0][0].run_id}" if single else f"Conformance report: {len(loaded)} runs"
    body = (f"{_header(loaded)}{_summary(columns)}<h2>Matrix</h2>{_matrix(columns, single, {})}"
            f"<h2>Failing cells</h2>{_failures(columns, golden_roots)}<h2>Latency</h2>{_latency(columns, single)}"
            f"<h2>Memory</h2>{_memory(columns, single)}<h2>Placement</h2>{_placement(columns, single)}")
    return _page(title, body)


def write_html(records: Sequence[RecordLike], path: Path, *, golden_roots: Sequence[Path] = ()) -> Path:
    """Write the report of ``records`` to ``path`` (atomically) and return it. A record is a RunRecord (its
    files are found through ``record.location``) or a ``(RunRecord, folder)`` pair from ``load_record``;
    ``golden_roots`` are extra folders to find the cases' goldens in (default: the run's --root)."""
    atomic_write_bytes(Path(path), render_html(records, golden_roots=golden_roots).encode("utf-8"))
    return Path(path)


def write_compare_html(matrix: CrossMatrix, path: Path) -> Path:
    """``harness compare --html``: the cross-device matrix (cells that differ marked, with the environment
    differences in their tooltip), the compared pairs and the notes."""
    marks = differing_cells(matrix)
    pairs = "".join(f"<li{' class=warn' if not p.passed else ''}>{esc(pair_line(p))}</li>"
                    for p in sorted(matrix.pairs, key=lambda p: p.score(), reverse=True) if not p.identical)
    env = "".join(f"<tr><td>{esc(c.label)}</td><td class=env>{esc('; '.join(f'{k} {v}' for k, v in c.env.items()))}"
                  f"</td><td class=warn>{esc(c.target_note) or '-'}</td></tr>" for c in matrix.columns)
    disagree = frozenset((p.case, side) for p in matrix.disagreements for side in (p.left, p.right))
    common = [_common_only(c, matrix.cases) for c in matrix.columns]
    legend = ('<p class="note">! outputs disagree with another column beyond tolerance; ~ they differ within it '
              "(hover a cell for the environment differences).</p>")
    body = (f"<h2>Matrix (common cases)</h2>{legend}{_matrix(common, False, marks, disagree)}"
            f"<h2>Report</h2><pre>{esc(chr(10).join(text_report(matrix)))}</pre>"
            f"<h2>Differing pairs</h2><ul>{pairs or '<li>none</li>'}</ul>"
            f"<h2>Environments</h2><table><tr><th>column</th><th>environment</th><th>target</th></tr>{env}</table>")
    atomic_write_bytes(Path(path), _page(f"Cross-device comparison: {len(matrix.columns)} columns", body).encode("utf-8"))
    return Path(path)


def _common_only(column: Column, cases: list[str]) -> Column:
    return Column(column.label, column.host, column.profile, column.record, column.folder,
                  {case: column.cells[case] for case in cases}, column.env, column.target_note)
