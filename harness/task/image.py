"""Image-like outputs (a super-resolved image, a mask, a depth map): PSNR against the golden.

The peak is the golden's own dynamic range (max - min; 1 when it is flat), so an image in [0, 1] and one in
[0, 255] read the same. Each item of the leading (batch) axis is one image; the worst and the mean are kept.
Identical images have infinite PSNR, reported as None in JSON with ``identical`` counted.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def psnr(golden: np.ndarray, actual: np.ndarray) -> float:
    g, a = golden.astype(np.float64), actual.astype(np.float64)
    peak = float(g.max() - g.min()) if g.size else 1.0
    peak = peak if peak > 0 else 1.0
    mse = float(np.mean((g - a) ** 2)) if g.size else 0.0
    return math.inf if mse == 0 else 10.0 * math.log10(peak * peak / mse)


def score(golden: list[np.ndarray], actual: list[np.ndarray]) -> dict[str, Any]:
    values = []
    for g, a in zip(golden, actual):
        if g.shape != a.shape:
            return {"error": f"golden shape {list(g.shape)} vs device shape {list(a.shape)}"}
        items = zip(g, a) if g.ndim >= 3 else [(g, a)]
        values.extend(psnr(gi, ai) for gi, ai in items)
    finite = [v for v in values if math.isfinite(v)]
    return {"images": len(values), "identical": len(values) - len(finite),
            "psnr_db_min": min(finite) if finite else None,
            "psnr_db_mean": float(np.mean(finite)) if finite else None}
