"""Sequences of token ids (a decoder's output, a CTC best path): exact-match rate and edit distance.

Each row of an integer [.., T] output is one sequence (leading axes flattened). With a ``pad`` id, a sequence
ends at its first pad, so padding that differs in length is not counted as an edit. The edit distance is
Levenshtein's (insertions, deletions and substitutions cost 1), on numpy rows of the dynamic programme.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def edit_distance(a: np.ndarray, b: np.ndarray) -> int:
    """Levenshtein distance between two 1-D token sequences."""
    previous = np.arange(len(b) + 1)
    for i, token in enumerate(a, start=1):
        current = np.empty_like(previous)
        current[0] = i
        substitution = previous[:-1] + (b != token)
        deletion = previous[1:] + 1
        current[1:] = np.minimum(substitution, deletion)
        for j in range(1, len(b) + 1):  # insertions depend on the cell to the left: a running minimum
            current[j] = min(current[j], current[j - 1] + 1)
        previous = current
    return int(previous[-1])


def _trim(seq: np.ndarray, pad: int | None) -> np.ndarray:
    if pad is None:
        return seq
    hits = np.flatnonzero(seq == pad)
    return seq[:hits[0]] if hits.size else seq


def score(golden: list[np.ndarray], actual: list[np.ndarray], pad: int | None = None) -> dict[str, Any]:
    distances, lengths = [], []
    for g, a in zip(golden, actual):
        g_rows = g.reshape(-1, g.shape[-1]) if g.ndim >= 1 and g.size else g.reshape(0, 0)
        a_rows = a.reshape(-1, a.shape[-1]) if a.ndim >= 1 and a.size else a.reshape(0, 0)
        if g_rows.shape[0] != a_rows.shape[0]:
            return {"error": f"{g_rows.shape[0]} golden sequences vs {a_rows.shape[0]} on the device"}
        for gs, as_ in zip(g_rows, a_rows):
            gs, as_ = _trim(gs, pad), _trim(as_, pad)
            distances.append(edit_distance(gs, as_))
            lengths.append(max(len(gs), 1))
    if not distances:
        return {"sequences": 0, "exact_match_rate": 1.0, "mean_edit_distance": 0.0, "max_edit_distance": 0,
                "normalized_edit_distance": 0.0}
    d = np.array(distances, dtype=float)
    return {"sequences": len(distances), "exact_match_rate": float(np.mean(d == 0)),
            "mean_edit_distance": float(d.mean()), "max_edit_distance": int(d.max()),
            "normalized_edit_distance": float(np.sum(d) / np.sum(lengths))}
