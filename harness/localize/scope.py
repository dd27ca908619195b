"""A tolerance for one tensor deep inside a network, not the model output's.

The rule (said in every localisation's output as ``RULE``):

    error(t)   = max |actual - reference| / max |reference|         (over tensor t; NaN/Inf the other side lacks:
                                                                     infinite)
    carried(t) = the largest error(i) over the inputs i of t's node   (graph inputs and weights: 0; an input that
                                                                     could not be compared carries what its own
                                                                     node's inputs carried)
    t is beyond its tolerance when error(t) > base + growth * carried(t)

Why scale by the tensor's own magnitude: an elementwise rtol explodes near zero (a ReLU output is mostly zeros, a
residual sum cancels), and an atol fit for the model's output means nothing for an activation a thousand times
larger or smaller. Normalising by max |reference| judges every tensor on the same scale, whatever its range.

Why allow for the error the inputs carry: after a few layers of fp16 or int8 every tensor carries some error, and
a node that merely passes its inputs' error on is not where the divergence starts. A node is suspect when its
output carries more than ``growth`` times what it received plus ``base``, its own rounding budget: ``base`` is the
profile's relative tolerance for the tensor's dtype (its rtol, or the relative error its SNR/cosine gate allows),
and ``growth`` (default 4) is how much a well-conditioned op may amplify relative error (sums and products of a
few terms stay within it; a cancellation or an overflow does not). AWS Neuron's guidance that tolerance should
tighten with scope (whole model 1e-2, one op 1e-5) is the same idea from the other side.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.compare.metrics import compute_metrics
from harness.compare.tolerances import Tolerance

RULE = ("error(t) = max|actual-reference| / max|reference|; t is beyond its tolerance when error(t) > base + "
        "growth x (largest error on its node's inputs); base = the profile's relative tolerance for the dtype")
DEFAULT_GROWTH = 4.0
_TINY = 1e-30


def base_of(tolerance: Tolerance) -> float:
    """The relative error a profile's tolerance allows on one tensor: rtol when the element rule applies, else the
    relative L2 error its SNR gate allows (10^(-dB/20)) or its cosine gate allows (sqrt(2(1-cos)))."""
    if tolerance.elementwise:
        return max(tolerance.rtol, tolerance.atol) if tolerance.rtol == 0 else tolerance.rtol
    if tolerance.min_snr_db is not None:
        return 10 ** (-tolerance.min_snr_db / 20)
    if tolerance.min_cosine is not None:
        return math.sqrt(max(0.0, 2 * (1 - tolerance.min_cosine)))
    return 1e-2


@dataclass
class TensorError:
    """One intermediate tensor compared between the sides (plain JSON numbers; ``inf`` as the string 'inf')."""

    name: str
    shape: list[int]
    reference_dtype: str
    actual_dtype: str
    magnitude: float  # max |reference|
    max_abs_diff: float
    error: float  # max_abs_diff / magnitude, inf for a NaN/Inf the reference lacks
    carried: float  # the largest error on its node's inputs
    allowed: float  # base + growth * carried
    cosine: float | None
    snr_db: float | None
    non_finite: str  # e.g. "12 Inf in actual" or ""

    @property
    def beyond(self) -> bool:
        return self.error > self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {k: _json_number(v) for k, v in asdict(self).items()} | {"beyond": self.beyond}


def _json_number(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return value


def judge(name: str, reference: np.ndarray, actual: np.ndarray, carried: float, base: float,
          growth: float) -> TensorError:
    """Compare one intermediate with the scope rule above (metrics from harness.compare)."""
    allowed = base + growth * carried
    if reference.shape != actual.shape:
        return TensorError(name, list(actual.shape), reference.dtype.name, actual.dtype.name, math.nan, math.inf,
                           math.inf, carried, allowed, None, None, f"shape {list(reference.shape)} vs {list(actual.shape)}")
    metrics = compute_metrics(reference, actual, 0.0, 0.0, engine="numpy")  # no JIT: its memory is not the model's
    numeric = reference.dtype.kind in "fiub" and actual.dtype.kind in "fiub"
    magnitude = float(np.max(np.abs(reference[np.isfinite(reference)]), initial=0.0)) if numeric and reference.size else 0.0
    unmatched = metrics.nan_mismatch + metrics.inf_mismatch
    non_finite = (f"{metrics.non_finite('actual') or 'none'} in actual vs {metrics.non_finite('golden') or 'none'} in "
                  f"reference" if unmatched else "")
    diff = metrics.max_abs_diff or 0.0
    if unmatched:
        error = math.inf
    elif reference.dtype.kind not in "fc":  # integers, bools, strings: exact, any difference is total
        error = 0.0 if metrics.mismatched == 0 else math.inf
    else:
        error = diff / max(magnitude, _TINY) if diff else 0.0
    return TensorError(name, list(reference.shape), reference.dtype.name, actual.dtype.name, magnitude, diff, error,
                       carried, allowed, metrics.cosine, metrics.snr_db, non_finite)


def amplification(error_out: float, carried: float, base: float) -> float:
    """How much a node amplified the error it received: error out / max(error in, base). ``base`` is the floor so
    that a node fed exact inputs and adding only its rounding budget scores about 1, not 1e6. Infinite in and out
    (a NaN passed on) scores 1: carried, not caused."""
    if math.isinf(error_out):
        return 1.0 if math.isinf(carried) else math.inf
    return error_out / max(carried, base)
