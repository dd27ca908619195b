"""The per-device task table: one row per profile, the case kind's metrics as columns (the P/R/F1 table of a
classifier on every profile). Plain rows of strings for any renderer (Markdown, console, a bench's print)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "classification": (("top1_agreement", "top-1"), ("topk_agreement", "top-k"), ("accuracy", "accuracy"),
                       ("macro_precision", "macro P"), ("macro_recall", "macro R"), ("macro_f1", "macro F1"),
                       ("f1_drop", "F1 drop")),
    "detection": (("recall", "recall"), ("precision", "precision"), ("max_coord_error", "max coord err"),
                  ("min_matched_iou", "min IoU"), ("matched", "matched"), ("golden_boxes", "golden boxes")),
    "regression": (("cosine_min", "cos min"), ("cosine_p5", "cos p5"), ("cosine_median", "cos median"),
                   ("nn_rank_correlation", "NN rank corr"), ("max_abs_error", "max abs err")),
    "image": (("psnr_db_min", "PSNR min dB"), ("psnr_db_mean", "PSNR mean dB")),
    "sequence": (("exact_match_rate", "exact match"), ("mean_edit_distance", "mean edits"),
                 ("max_edit_distance", "max edits")),
}
COLUMNS["embedding"] = COLUMNS["regression"]


def number(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "–" if value is None else str(value)
    return f"{value:.4g}"


def _flips(metrics: dict[str, Any]) -> str:
    flips = metrics.get("flips") or []
    return ", ".join(f"{f['golden']}→{f['device']}×{f['count']}" for f in flips[:5]) or "none"


def case_tables(cells: Iterable[Any]) -> dict[str, tuple[str, list[str], list[list[str]]]]:
    """Per case with task metrics: (kind and source, header, one row per profile). ``cells`` are CellResults
    (anything with case, profile, verdict and task)."""
    tables: dict[str, tuple[str, list[str], list[list[str]]]] = {}
    for cell in cells:
        task = cell.task or {}
        kind, metrics = task.get("kind"), task.get("metrics") or {}
        if not kind:
            continue
        columns = COLUMNS.get(kind, ())
        header = ["profile", "verdict", *(label for _, label in columns)]
        header += ["class flips (golden→device)"] if kind == "classification" else []
        if "error" in metrics:
            row = [cell.profile, cell.verdict, f"not scored: {metrics['error']}"] + [""] * (len(header) - 3)
        else:
            row = [cell.profile, cell.verdict, *(number(metrics.get(name)) for name, _ in columns)]
            row += [_flips(metrics)] if kind == "classification" else []
        described = f"{kind} ({task.get('source', '?')}, vs {metrics.get('reference', 'golden')})" \
            if kind == "classification" else f"{kind} ({task.get('source', '?')})"
        tables.setdefault(cell.case, (described, header, []))[2].append(row)
    return tables


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned plain-text lines (for a bench or a closing note)."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    fmt = lambda row: "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths]), *(fmt(r) for r in rows)]
