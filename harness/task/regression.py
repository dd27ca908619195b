"""Regression and embeddings: does each output row point the same way, and do rows keep their neighbours?

Each leading position of a [.., D] output is one row (a batch item's embedding or its regression targets). The
cosine similarity of each device row with its golden row gives a distribution (min, 5th percentile, median); the
nearest-neighbour rank correlation says whether, for every row, the other rows rank in the same order of
similarity on the device as in the golden (the mean Spearman correlation; what retrieval depends on), and
``nn_top1_agreement`` whether each row keeps its nearest neighbour. Both kinds ("regression", "embedding") use
these metrics; the neighbour metrics need at least 3 rows.
"""

from __future__ import annotations

from typing import Any

import numpy as np

try:
    from scipy.stats import spearmanr
except ImportError:  # pragma: no cover - exercised where scipy is not installed
    spearmanr = None


def row_cosines(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """Cosine of each device row with its golden row; two zero rows agree (1), one zero row does not (0)."""
    dot = np.sum(g * a, axis=1)
    norms = np.linalg.norm(g, axis=1) * np.linalg.norm(a, axis=1)
    both_zero = (np.linalg.norm(g, axis=1) == 0) & (np.linalg.norm(a, axis=1) == 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norms > 0, dot / np.where(norms > 0, norms, 1.0), np.where(both_zero, 1.0, 0.0))


def _similarities(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    unit = x / np.where(norms > 0, norms, 1.0)
    return unit @ unit.T


def _spearman(u: np.ndarray, v: np.ndarray) -> float:
    if spearmanr is not None:
        value = spearmanr(u, v).statistic
        return float(value) if np.isfinite(value) else (1.0 if np.array_equal(u, v) else 0.0)
    ru, rv = np.argsort(np.argsort(u)).astype(float), np.argsort(np.argsort(v)).astype(float)
    if ru.std() == 0 or rv.std() == 0:
        return 1.0 if np.array_equal(u, v) else 0.0
    return float(np.corrcoef(ru, rv)[0, 1])


def neighbour_ranks(g: np.ndarray, a: np.ndarray) -> tuple[float | None, float | None]:
    """(mean Spearman correlation of each row's similarities to the others, share of rows whose nearest
    neighbour is the same); None for fewer than 3 rows."""
    n = g.shape[0]
    if n < 3:
        return None, None
    sg, sa = _similarities(g), _similarities(a)
    others = ~np.eye(n, dtype=bool)
    correlations = [_spearman(sg[i, others[i]], sa[i, others[i]]) for i in range(n)]
    np.fill_diagonal(sg, -np.inf)
    np.fill_diagonal(sa, -np.inf)
    same_nearest = np.mean(np.argmax(sg, axis=1) == np.argmax(sa, axis=1))
    return float(np.mean(correlations)), float(same_nearest)


def score(golden: list[np.ndarray], actual: list[np.ndarray]) -> dict[str, Any]:
    g = np.concatenate([_rows(x) for x in golden]).astype(np.float64)
    a = np.concatenate([_rows(x) for x in actual]).astype(np.float64)
    if g.shape != a.shape:
        return {"error": f"golden rows {list(g.shape)} vs device rows {list(a.shape)}: cannot be paired"}
    cos = row_cosines(g, a)
    rank, nearest = neighbour_ranks(g, a)
    return {"rows": int(g.shape[0]), "cosine_min": float(cos.min()) if cos.size else 1.0,
            "cosine_p5": float(np.percentile(cos, 5)) if cos.size else 1.0,
            "cosine_median": float(np.median(cos)) if cos.size else 1.0,
            "nn_rank_correlation": rank, "nn_top1_agreement": nearest,
            "max_abs_error": float(np.max(np.abs(g - a))) if g.size else 0.0}


def _rows(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1, array.shape[-1]) if array.ndim >= 2 else array.reshape(1, -1)
