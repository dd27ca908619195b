"""Plots for the HTML report, drawn with matplotlib (the ``[report]`` extra) on the Agg backend.

Every function returns one self-contained SVG document as text; the HTML report embeds it as an image, so a
plot can neither reach the network nor run a script, and ids inside one plot never clash with another's.
Labels come from models and records (a node or case name can hold ``<script>`` or ``$``): matplotlib's SVG
writer escapes text, and mathtext is turned off so a ``$`` is a dollar sign, not a formula that fails to parse.

Without matplotlib, ``available()`` is False and the report says which extra adds the plots.
"""

from __future__ import annotations

import importlib.util
import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

EXTRA_HINT = "pip install 'onnx-conformance-harness[report]' (matplotlib) adds the plots"
MAX_LABEL = 40  # characters of a case or profile name on an axis
MAX_BARS = 30  # cases per latency or memory chart; the report says how many were left out

# One colour per verdict, shared with the HTML matrix so the plot and the table read the same.
VERDICT_COLOURS: dict[str, str] = {
    "PASS": "#2e7d32", "PASS*": "#9ccc65", "XFAIL": "#90a4ae", "XPASS": "#ffb300", "FAIL": "#c62828",
    "CRASH": "#6a1b9a", "TIMEOUT": "#ef6c00", "OOM": "#ad1457", "ERROR": "#4e342e", "OVER_BUDGET": "#f9a825",
    "NO_GOLDEN": "#78909c", "TRANSFORM_FAILED": "#8d6e63", "NOT_APPLICABLE": "#cfd8dc", "UNSUPPORTED": "#5d4037", "LOST": "#ff8f00",
    "SKIPPED": "#e0e0e0",
}
UNKNOWN_COLOUR = "#ffffff"  # a cell the run does not have (or a verdict newer than this table)
_RC = {"text.parse_math": False, "svg.fonttype": "none", "svg.hashsalt": "onnx-harness", "font.size": 9}


def available() -> bool:
    """True when matplotlib can be imported (the [report] extra is installed)."""
    return importlib.util.find_spec("matplotlib") is not None


def short(label: str, limit: int = MAX_LABEL) -> str:
    """A long case name keeps its ends on an axis; control characters become visible escapes."""
    text = label if label.isprintable() else label.encode("unicode_escape").decode("ascii")
    return text if len(text) <= limit else f"{text[:limit // 2 - 1]}…{text[-(limit // 2 - 1):]}"


def _new_figure(width: float, height: float) -> Any:
    # A Figure, not pyplot: no global state, no GUI backend, nothing left open.
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _figure(width: float, height: float) -> tuple[Any, Any]:
    fig = _new_figure(width, height)
    return fig, fig.add_subplot()


def _log_scale(axis: Any) -> None:
    """A log axis labelled 1e-05, not with mathtext (which is off, so a '$' in a name stays a dollar sign)."""
    from matplotlib.ticker import LogFormatter, NullFormatter
    axis.set_major_formatter(LogFormatter(labelOnlyBase=True))
    axis.set_minor_formatter(NullFormatter())


def _svg(fig: Any) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    return buffer.getvalue()


def _drawn(draw) -> str:
    """Run ``draw`` under the report's rc settings and return its SVG."""
    import matplotlib
    with matplotlib.rc_context(_RC):
        return _svg(draw())


def verdict_heatmap(cases: Sequence[str], columns: Sequence[str], verdicts: Mapping[tuple[str, str], str]) -> str:
    """Cases x columns, each square the colour of its verdict, with a legend of the verdicts present."""
    def draw() -> Any:
        from matplotlib.colors import ListedColormap
        from matplotlib.patches import Patch
        present = sorted({v for v in verdicts.values()}, key=lambda v: list(VERDICT_COLOURS).index(v)
                         if v in VERDICT_COLOURS else len(VERDICT_COLOURS))
        codes = {v: i + 1 for i, v in enumerate(present)}
        grid = np.array([[codes.get(verdicts.get((c, p), ""), 0) for p in columns] for c in cases], dtype=float)
        cmap = ListedColormap([UNKNOWN_COLOUR] + [VERDICT_COLOURS.get(v, UNKNOWN_COLOUR) for v in present])
        height = min(2.0 + 0.22 * len(cases), 40.0)
        fig, ax = _figure(max(6.0, 3.0 + 0.9 * len(columns)), height)
        ax.imshow(grid, cmap=cmap, vmin=0, vmax=len(present), aspect="auto", interpolation="nearest")
        ax.set_xticks(range(len(columns)), [short(c) for c in columns], rotation=30, ha="right")
        ax.set_yticks(range(len(cases)), [short(c) for c in cases] if len(cases) <= 150 else [""] * len(cases))
        fig.suptitle(f"Verdicts: {len(cases)} case(s) x {len(columns)} profile(s)")  # above the legend
        fig.legend(handles=[Patch(color=VERDICT_COLOURS.get(v, UNKNOWN_COLOUR), label=short(v)) for v in present],
                   loc="outside right upper", frameon=False)
        return fig
    return _drawn(draw)


def error_distribution(title: str, abs_err: np.ndarray, atol: float | None, rtol_err: np.ndarray | None = None,
                       rtol: float | None = None) -> str:
    """Histogram (log-spaced bins) and CDF of one output's element errors, with the tolerance as a line."""
    def draw() -> Any:
        fig = _new_figure(8.0, 3.0)
        hist, cdf = fig.subplots(1, 2)
        finite = abs_err[np.isfinite(abs_err)]
        positive = finite[finite > 0]
        zeros = int(finite.size - positive.size)
        if positive.size:
            low, high = float(positive.min()), float(positive.max())
            bins = np.geomspace(low, high * 1.0001 if high > low else low * 10, 40)
            hist.hist(positive, bins=bins, color="#1565c0")
            hist.set_xscale("log")
            _log_scale(hist.xaxis)
        odd = f", {abs_err.size - finite.size} NaN/Inf" if abs_err.size > finite.size else ""
        hist.set_xlabel(f"|actual - expected| ({zeros} exact{odd} element(s) not shown)")
        hist.set_ylabel("elements")
        for values, colour, label in ((finite, "#1565c0", "absolute error"), (rtol_err, "#6a1b9a", "relative error")):
            if values is None:
                continue
            x, y = _cdf(values)
            if x.size:
                cdf.plot(x, y, color=colour, label=label, drawstyle="steps-post")
                cdf.set_xscale("log")
                _log_scale(cdf.xaxis)
        for axis, value, colour, what in ((hist, atol, "#c62828", "atol"), (cdf, atol, "#c62828", "atol"),
                                          (cdf, rtol, "#6a1b9a", "rtol")):
            if value:
                axis.axvline(value, color=colour, linestyle="--", label=f"{what} {value:g}")
        cdf.set_xlabel("error")
        cdf.set_ylabel("fraction of elements <= error")
        cdf.legend(loc="lower right", frameon=False)
        fig.suptitle(short(title, 90))
        return fig
    return _drawn(draw)


def _cdf(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The empirical CDF over the finite elements, drawn from the smallest non-zero error (a log axis has no 0):
    exact elements count in the fraction, so the curve starts at their share."""
    finite = values[np.isfinite(values)]
    positive = np.sort(finite[finite > 0])
    zeros = finite.size - positive.size
    return positive, (zeros + np.arange(1, positive.size + 1)) / max(1, finite.size)


def latency_boxes(profile: str, samples_ms: Mapping[str, np.ndarray], budgets: Mapping[str, float]) -> str:
    """One box per case (whiskers at p1/p99, no fliers: a latency tail of thousands of points is unreadable),
    with a horizontal line for each latency budget of the profile."""
    def draw() -> Any:
        names = list(samples_ms)
        fig, ax = _figure(max(5.0, 1.5 + 0.45 * len(names)), 3.6)
        ax.boxplot([samples_ms[n] for n in names], whis=(1, 99), showfliers=False, patch_artist=True,
                   boxprops={"facecolor": "#bbdefb"}, medianprops={"color": "#0d47a1"})
        ax.set_xticks(range(1, len(names) + 1), [short(n) for n in names], rotation=30, ha="right")
        everything = np.concatenate([np.asarray(samples_ms[n], dtype=float) for n in names]) if names else np.ones(1)
        if everything.size and everything.min() > 0 and everything.max() / everything.min() > 20:
            ax.set_yscale("log")  # cases a hundred times apart stay readable
            _log_scale(ax.yaxis)
        ax.set_ylabel("latency (ms)")
        for key, value in sorted(budgets.items()):
            if key.endswith("_ms") and key not in ("cold_start_ms", "first_inference_ms"):
                ax.axhline(value, color="#c62828", linestyle="--", label=f"budget {key.removesuffix('_ms')} {value:g} ms")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="upper left", frameon=False)
        ax.set_title(f"Latency on {short(profile)} (box p25-p75, whiskers p1-p99)")
        return fig
    return _drawn(draw)


def grouped_bars(title: str, ylabel: str, values: Mapping[str, Mapping[str, float]], *, stacked: bool = False) -> str:
    """Bars per group (a case, or a profile) with one bar or stack segment per series (a profile, or an EP)."""
    def draw() -> Any:
        groups = list(values)
        series = list(dict.fromkeys(s for g in groups for s in values[g]))
        fig, ax = _figure(max(5.0, 1.5 + 0.5 * len(groups) * (1 if stacked else max(1, len(series)) ** 0.5)), 3.6)
        x = np.arange(len(groups), dtype=float)
        width = 0.8 if stacked else 0.8 / max(1, len(series))
        bottom = np.zeros(len(groups))
        for i, name in enumerate(series):
            heights = np.array([float(values[g].get(name, 0.0)) for g in groups])
            offset = 0.0 if stacked else (i - (len(series) - 1) / 2) * width
            ax.bar(x + offset, heights, width, bottom=bottom if stacked else None, label=short(name))
            if stacked:
                bottom = bottom + heights
        ax.set_xticks(x, [short(g) for g in groups], rotation=30, ha="right")
        ax.set_ylabel(ylabel)
        ax.set_title(short(title, 90))
        if series:
            ax.legend(loc="best", fontsize=8)
        return fig
    return _drawn(draw)
