"""What every report format says about a cell: its one-line reason (the detail, then the numbers behind the verdict:
the worst failed output's errors, latency, memory, budget), and the helpers that write those numbers."""

from __future__ import annotations

import math
from typing import Any

from harness.run import record as R


def number(value: Any) -> str:
    """A metric as a short number ('inf' and 'nan' as the record writes them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def one_line(text: str, limit: int = 500) -> str:
    """``text`` on one line: line breaks as spaces, other control characters as their escapes, cut at ``limit``."""
    flat = " ".join(text.split("\n"))
    flat = "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
    return flat if len(flat) <= limit else flat[:limit - 3] + "..."


def failing_outputs(cell: R.CellResult) -> list[dict[str, Any]]:
    """The cell's output comparisons that failed, each with its data set, worst (largest max abs diff) first."""
    failed = [{**entry["comparison"], "dataset": entry.get("dataset")} for entry in cell.outputs
              if isinstance(entry.get("comparison"), dict) and not entry["comparison"].get("passed", True)]
    return sorted(failed, key=lambda c: -_magnitude((c.get("metrics") or {}).get("max_abs_diff")))


def _magnitude(value: Any) -> float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else math.inf
    return math.inf if value in ("inf", "nan") else -1.0


def output_metrics(comparison: dict[str, Any]) -> str:
    """'y [test_data_set_0]: 6/6 mismatched (100%), max abs diff 1 (atol 1e-05), max rel diff 1 (rtol 0.0001),
    cosine 0.9537, SNR 7.748 dB' for one failed output."""
    metrics = comparison.get("metrics") or {}
    tolerance = comparison.get("tolerance") or {}
    parts = []
    if comparison.get("shape_mismatch"):
        parts.append(f"shape {comparison.get('actual_shape')} vs {comparison.get('golden_shape')}")
    if comparison.get("dtype_mismatch"):
        parts.append(f"dtype {comparison.get('actual_dtype')} vs {comparison.get('golden_dtype')}")
    if "mismatched" in metrics:
        fraction = metrics.get("mismatch_fraction")
        share = f" ({number(100 * fraction)}%)" if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) else ""
        parts.append(f"{metrics['mismatched']}/{metrics.get('total')} mismatched{share}")
    if "max_abs_diff" in metrics:
        parts.append(f"max abs diff {number(metrics['max_abs_diff'])} (atol {number(tolerance.get('atol'))})")
    if "max_rel_diff" in metrics:
        parts.append(f"max rel diff {number(metrics['max_rel_diff'])} (rtol {number(tolerance.get('rtol'))})")
    for name, label, unit in (("cosine", "cosine", ""), ("snr_db", "SNR", " dB")):
        if metrics.get(name) is not None:
            parts.append(f"{label} {number(metrics[name])}{unit}")
    if not parts:
        parts = [one_line("; ".join(comparison.get("reasons") or []) or "failed", 200)]
    return f"{comparison.get('name', '?')} [test_data_set_{comparison.get('dataset')}]: {', '.join(parts)}"


def cell_metrics(cell: R.CellResult) -> str:
    """The numbers behind a verdict on one line: the worst failed output, latency, memory, budget."""
    parts = []
    failed = failing_outputs(cell)
    if failed:
        parts.append(output_metrics(failed[0]) + (f" (+{len(failed) - 1} more failed output(s))"
                                                   if len(failed) > 1 else ""))
    task = task_metrics(cell)
    if task and task not in cell.detail:
        parts.append(task)
    stats = cell.latency.get("stats") if isinstance(cell.latency, dict) else None
    if isinstance(stats, dict) and "p50" in stats:
        parts.append(f"p50 {number(stats['p50'])} ms, p95 {number(stats.get('p95'))} ms")
    peak = cell.memory.get("peak_delta_mb") if isinstance(cell.memory, dict) else None
    if peak is not None:
        parts.append(f"peak +{number(peak)} MB")
    if cell.budget:
        parts.append("over budget: " + "; ".join(str(b) for b in cell.budget))
    return one_line("; ".join(parts))


def task_metrics(cell: R.CellResult) -> str:
    """The cell's task metrics (harness.task) in one phrase, with any failed task gate: 'task classification
    (declared): top1_agreement 1, topk_agreement 1, macro_f1 1, f1_drop 0'; '' for a cell without a task."""
    task = cell.task if isinstance(cell.task, dict) else {}
    if not task.get("kind"):
        return ""
    from harness.task.score import headline
    failed = [g.get("why", "") for g in task.get("gates") or [] if not g.get("passed")]
    said = f"task {task['kind']} ({task.get('source', '?')}): {headline(task['kind'], task.get('metrics') or {})}"
    if not failed:
        return said
    verb = "task gate failed" if task.get("source") == "declared" else "task gate would fail (inferred kind)"
    return f"{said}; {verb}: {'; '.join(failed)}"


def reason(cell: R.CellResult) -> str:
    """Why the cell ended as it did, on one line: its detail, then its metrics."""
    metrics = cell_metrics(cell) if cell.verdict not in (R.SKIPPED, R.NOT_APPLICABLE) else ""
    detail = one_line(cell.detail or cell.known_failure or cell.verdict)
    return f"{detail}; {metrics}" if metrics else detail
