"""``harness drift A B``: has the input distribution moved between two input sets?

A and B are folders in the ONNX test-data layout (a case folder, or a capture of test_data_set_<k>/input_<i>.pb).
Each input (by the tensor's name, else the file's) pools its values over every data set of a side; per input the
summary statistics of both sides, the two-sample Kolmogorov-Smirnov statistic D with its p-value (scipy's
``ks_2samp`` where scipy is installed, else D computed here with the asymptotic p-value, said in ``test``), and the
mean's move in units of A's standard deviation. An input is flagged as shifted when p < ``alpha`` and D >= ``min_d``:
with a million values a p-value alone flags differences nobody cares about.

Large inputs are subsampled (``max_values`` per side, seeded) before the test; the statistics use every value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.errors import GoldenError, UsageError
from harness.golden.layout import dataset_dirs, read_tensor

try:
    from scipy.stats import ks_2samp
except ImportError:  # pragma: no cover - exercised where scipy is not installed
    ks_2samp = None

ALPHA, MIN_D, MAX_VALUES = 0.01, 0.1, 200_000


@dataclass
class InputDrift:
    name: str
    a: dict[str, float]  # count, mean, std, min, p1, p50, p99, max, nonfinite
    b: dict[str, float]
    ks_d: float | None
    p_value: float | None
    mean_shift_sd: float | None  # (mean B - mean A) / std A
    shifted: bool
    note: str = ""


def read_inputs(folder: Path) -> dict[str, list[np.ndarray]]:
    """Every input tensor of every data set under ``folder``, by name; refused in one line when there is none."""
    if not folder.is_dir():
        raise UsageError(f"{folder}: not a folder", hint="give a case folder or a folder of test_data_set_<k>/")
    found: dict[str, list[np.ndarray]] = {}
    for _, ds in dataset_dirs(folder):
        for path in sorted(ds.glob("input_*.pb")):
            name, array = read_tensor(path)
            found.setdefault(name or path.stem, []).append(np.asarray(array))
    if not found:
        raise GoldenError(f"{folder}: no test_data_set_<k>/input_<i>.pb to compare",
                          hint="give a case folder or a capture in the ONNX test-data layout")
    return found


def summary(values: np.ndarray) -> dict[str, float]:
    finite = values[np.isfinite(values)]
    stats = {"count": int(values.size), "nonfinite": int(values.size - finite.size)}
    if finite.size:
        p1, p50, p99 = np.percentile(finite, [1, 50, 99])
        stats.update(mean=float(finite.mean()), std=float(finite.std()), min=float(finite.min()), p1=float(p1),
                     p50=float(p50), p99=float(p99), max=float(finite.max()))
    return stats


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """The largest gap between the two empirical CDFs."""
    a, b = np.sort(a), np.sort(b)
    grid = np.concatenate([a, b])
    cdf_a = np.searchsorted(a, grid, side="right") / a.size
    cdf_b = np.searchsorted(b, grid, side="right") / b.size
    return float(np.max(np.abs(cdf_a - cdf_b)))


def ks_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic p-value of the two-sample KS statistic (Kolmogorov's series, Stephens' small-sample correction)."""
    en = math.sqrt(n * m / (n + m))
    lam = (en + 0.12 + 0.11 / en) * d
    if lam < 1e-3:
        return 1.0
    total = sum(2 * (-1) ** (k - 1) * math.exp(-2 * k * k * lam * lam) for k in range(1, 101))
    return float(min(1.0, max(0.0, total)))


def two_sample(a: np.ndarray, b: np.ndarray) -> tuple[float, float, str]:
    """(D, p, which test) for two 1-D samples."""
    if ks_2samp is not None:
        found = ks_2samp(a, b)
        return float(found.statistic), float(found.pvalue), "scipy ks_2samp"
    d = ks_statistic(a, b)
    return d, ks_pvalue(d, a.size, b.size), "numpy KS, asymptotic p-value"


def _sample(values: np.ndarray, limit: int, seed: int) -> np.ndarray:
    if values.size <= limit:
        return values
    return np.random.default_rng(seed).choice(values, size=limit, replace=False)


def compare_input(name: str, a: list[np.ndarray], b: list[np.ndarray], alpha: float = ALPHA, min_d: float = MIN_D,
                  max_values: int = MAX_VALUES, seed: int = 0) -> InputDrift:
    flat_a = np.concatenate([x.reshape(-1) for x in a]).astype(np.float64)
    flat_b = np.concatenate([x.reshape(-1) for x in b]).astype(np.float64)
    sa, sb = summary(flat_a), summary(flat_b)
    fa, fb = flat_a[np.isfinite(flat_a)], flat_b[np.isfinite(flat_b)]
    if not fa.size or not fb.size:
        return InputDrift(name, sa, sb, None, None, None, False, "no finite values on one side")
    d, p, test = two_sample(_sample(fa, max_values, seed), _sample(fb, max_values, seed + 1))
    shift = (sb["mean"] - sa["mean"]) / sa["std"] if sa["std"] > 0 else None
    sampled = " (subsampled)" if max(fa.size, fb.size) > max_values else ""
    return InputDrift(name, sa, sb, d, p, shift, p < alpha and d >= min_d, test + sampled)


def drift(a: Path, b: Path, alpha: float = ALPHA, min_d: float = MIN_D) -> list[InputDrift]:
    """Per input present on both sides; an input on one side only is refused (the sets do not describe the same
    model)."""
    side_a, side_b = read_inputs(a), read_inputs(b)
    only = sorted(set(side_a) ^ set(side_b))
    if only:
        raise UsageError(f"input(s) {only} are in only one of {a} and {b}",
                         hint="compare input sets of the same model")
    numeric = [n for n in side_a if all(x.dtype.kind in "fiub" for x in side_a[n] + side_b[n])]
    return [compare_input(n, side_a[n], side_b[n], alpha, min_d) for n in numeric]


def lines(found: list[InputDrift], alpha: float = ALPHA, min_d: float = MIN_D) -> list[str]:
    """One line per input, then the verdict."""
    out = []
    for item in found:
        a, b = item.a, item.b
        head = f"{'SHIFT' if item.shifted else 'ok   '} {item.name}:"
        if item.ks_d is None:
            out.append(f"{head} {item.note}")
            continue
        move = f", mean moved {item.mean_shift_sd:+.3g} sd" if item.mean_shift_sd is not None else ""
        out.append(f"{head} KS D {item.ks_d:.4f}, p {item.p_value:.3g}{move}; A mean {a['mean']:.4g} sd {a['std']:.4g} "
                   f"[{a['min']:.4g}, {a['max']:.4g}] n {a['count']}; B mean {b['mean']:.4g} sd {b['std']:.4g} "
                   f"[{b['min']:.4g}, {b['max']:.4g}] n {b['count']} ({item.note})")
    shifted = [i.name for i in found if i.shifted]
    out.append(f"{len(shifted)} of {len(found)} input(s) shifted (p < {alpha:g} and D >= {min_d:g})"
               + (f": {', '.join(shifted)}" if shifted else ""))
    return out


def to_json(found: list[InputDrift]) -> list[dict[str, Any]]:
    return [asdict(item) for item in found]
